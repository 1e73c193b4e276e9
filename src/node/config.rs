//! The cluster file every node and client reads (`cluster.toml`):
//!
//! ```toml
//! rule = "raft"                 # the ordering rule
//! spec = "raft-demo"            # a built-in spec or a spec file (relative to this file);
//!                               # default: the rule's demo spec
//! data_dir = "."                # each node keeps NAME/chain.jsonl and NAME/state.wal here
//!
//! [params]                      # the rule's spec section, over the spec's own values
//! heartbeat_ms = 50
//! election_timeout_ms = [250, 500]
//!
//! [[node]]
//! name = "s1"
//! address = "127.0.0.1:7101"    # where it listens, IP:port
//! public_key = "…"              # its node key (hex): authenticates its links
//! key_file = "keys/s1.key"      # its secret node key (hex), read only by that node
//! ```
//!
//! The nodes, in order, are the spec's members. A node with neither `key_file` nor
//! `public_key` uses a demo node key derived from the spec's wallet seed: anyone holding the
//! spec can derive it, so such a cluster is for one machine's demos only. Blocks are sealed
//! with the members' wallet keys from the spec, as in every other command, so that `verify`
//! checks a node's chain file from the spec alone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::chain::spec::ChainSpec;
use crate::primitives::hash::sha256;
use crate::primitives::tx::{KeyPair, PubKey};

/// A cluster file that cannot be used: one line naming the file and the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {what}")]
pub struct ConfigError {
    /// The file.
    pub file: String,
    /// What is wrong, with the field or line.
    pub what: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    rule: String,
    spec: Option<String>,
    data_dir: Option<String>,
    #[serde(default)]
    params: toml::Table,
    #[serde(default)]
    node: Vec<NodeEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NodeEntry {
    name: String,
    address: String,
    public_key: Option<String>,
    key_file: Option<String>,
}

/// One member of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name (a member of the spec).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddr,
    /// Its node key.
    pub public_key: PubKey,
    /// Its secret node key's file, if it has one.
    pub key_file: Option<PathBuf>,
}

/// A parsed, checked cluster file.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// The file.
    pub path: PathBuf,
    /// The rule.
    pub rule: String,
    /// The spec the cluster runs: the named spec with the nodes as its members and the
    /// params merged in.
    pub spec: ChainSpec,
    /// The members, in order (a member's index is its node id).
    pub members: Vec<Member>,
    /// Where nodes keep their files.
    pub data_dir: PathBuf,
}

/// The demo node key of `name`: derived from the spec's wallet seed.
#[must_use]
pub fn demo_node_key(spec: &ChainSpec, name: &str) -> KeyPair {
    KeyPair::derive(&spec.wallet_seed, &format!("node/{name}"))
}

/// Parses a key file's text: 64 hex digits (surrounding white space allowed).
///
/// # Errors
/// A message saying what is wrong.
pub fn parse_secret(text: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(text.trim()).map_err(|e| format!("not hex: {e}"))?;
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| format!("{} bytes, a key has 32", b.len()))
}

fn parse_pubkey(text: &str) -> Result<PubKey, String> {
    parse_secret(text).map(PubKey::from_bytes)
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

impl Cluster {
    /// Reads and checks the cluster file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`]: unreadable, malformed TOML, an unknown rule or spec, a node named
    /// twice, an address that does not parse, a bad key.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let err = |what: String| ConfigError {
            file: file.clone(),
            what,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let parsed: File = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(String::new(), |s| {
                format!("line {}: ", line_of(&text, s.start))
            });
            err(format!("{line}{}", e.message().trim()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_parts(path, base, parsed).map_err(err)
    }

    fn from_parts(path: &Path, base: &Path, f: File) -> Result<Self, String> {
        if !crate::ordering::is_ordering(&f.rule) {
            return Err(format!(
                "rule: {:?} is not an ordering rule ({})",
                f.rule,
                crate::ordering::ORDERING_RULES.join(", ")
            ));
        }
        let spec_name = f.spec.unwrap_or_else(|| format!("{}-demo", f.rule));
        let spec = if crate::chain::spec::builtin_names().contains(&spec_name.as_str()) {
            ChainSpec::builtin(&spec_name).map_err(|e| format!("spec: {e}"))?
        } else {
            let p = base.join(&spec_name);
            let text =
                std::fs::read_to_string(&p).map_err(|e| format!("spec: {}: {e}", p.display()))?;
            ChainSpec::from_json(&text).map_err(|e| format!("spec: {}: {e}", p.display()))?
        };
        if spec.consensus.name() != f.rule {
            return Err(format!(
                "spec: {} is a {} spec, the cluster's rule is {}",
                spec.name,
                spec.consensus.name(),
                f.rule
            ));
        }
        if f.node.is_empty() {
            return Err("node: the cluster lists no [[node]]".into());
        }
        let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, n) in f.node.iter().enumerate() {
            // A name is a directory under data_dir and a column in tables: no paths, no
            // control characters.
            let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
            if n.name.is_empty() || n.name.len() > 64 || !n.name.chars().all(plain) {
                return Err(format!(
                    "node[{i}].name: {:?} is not a node name (1 to 64 letters, digits, '-' or '_')",
                    n.name
                ));
            }
            if let Some(first) = seen.insert(n.name.as_str(), i) {
                return Err(format!(
                    "node[{i}].name: {:?} is named twice (node[{first}] and node[{i}])",
                    n.name
                ));
            }
        }
        let mut params: BTreeMap<String, serde_json::Value> = f
            .params
            .into_iter()
            .map(|(k, v)| serde_json::to_value(v).map(|v| (k, v)))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("params: {e}"))?;
        if params.contains_key("members") {
            return Err("params.members: the members are the [[node]] entries".into());
        }
        let names: Vec<String> = f.node.iter().map(|n| n.name.clone()).collect();
        params.insert("members".into(), serde_json::json!(names));
        let spec =
            crate::ordering::cluster_spec(&spec, None, &params).map_err(|e| format!("{e}"))?;
        let mut members = Vec::with_capacity(f.node.len());
        let mut addresses: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for (i, n) in f.node.into_iter().enumerate() {
            let address: SocketAddr = n.address.parse().map_err(|_| {
                format!(
                    "node[{i}].address: {:?} is not an IP address and port (e.g. 127.0.0.1:7101)",
                    n.address
                )
            })?;
            if address.port() == 0 {
                return Err(format!("node[{i}].address: {address} has no port"));
            }
            if let Some(first) = addresses.insert(address, i) {
                return Err(format!(
                    "node[{i}].address: {address} is node[{first}]'s address too"
                ));
            }
            let public_key = match (&n.public_key, &n.key_file) {
                (Some(k), _) => {
                    parse_pubkey(k).map_err(|e| format!("node[{i}].public_key: {e}"))?
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "node[{i}].public_key: a node with a key_file needs its public_key listed, for the others"
                    ));
                }
                (None, None) => demo_node_key(&spec, &n.name).pubkey(),
            };
            members.push(Member {
                name: n.name,
                address,
                public_key,
                key_file: n.key_file.map(|k| base.join(k)),
            });
        }
        let data_dir = base.join(f.data_dir.unwrap_or_else(|| ".".into()));
        Ok(Self {
            path: path.to_owned(),
            rule: f.rule,
            spec,
            members,
            data_dir,
        })
    }

    /// The cluster's identity: a hash of its spec and its members' names and node keys. A
    /// node refuses links from a node whose file differs.
    #[must_use]
    pub fn id(&self) -> [u8; 32] {
        let mut pre = b"chainsmith/cluster/v1".to_vec();
        pre.extend_from_slice(self.spec.spec_hash().as_bytes());
        for m in &self.members {
            pre.extend_from_slice(m.name.as_bytes());
            pre.push(0);
            pre.extend_from_slice(&m.public_key.to_bytes());
        }
        sha256(&pre)
    }

    /// The index of the member named `name`.
    ///
    /// # Errors
    /// A message listing the members.
    pub fn index(&self, name: &str) -> Result<usize, ConfigError> {
        self.members
            .iter()
            .position(|m| m.name == name)
            .ok_or_else(|| ConfigError {
                file: self.path.display().to_string(),
                what: format!(
                    "no node named {name:?} (nodes: {})",
                    self.members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The secret node key of member `id`: from its key file (which must match its public
    /// key), or the demo key.
    ///
    /// # Errors
    /// [`ConfigError`] naming the key file.
    pub fn node_key(&self, id: usize) -> Result<KeyPair, ConfigError> {
        let m = &self.members[id];
        let err = |what: String| ConfigError {
            file: self.path.display().to_string(),
            what,
        };
        let key = match &m.key_file {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| err(format!("node {}: key_file {}: {e}", m.name, p.display())))?;
                let secret = parse_secret(&text)
                    .map_err(|e| err(format!("node {}: key_file {}: {e}", m.name, p.display())))?;
                KeyPair::from_secret(&m.name, secret)
            }
            None => demo_node_key(&self.spec, &m.name),
        };
        if key.pubkey() != m.public_key {
            return Err(err(format!(
                "node {}: its key does not match its public_key",
                m.name
            )));
        }
        Ok(key)
    }

    /// Where member `id` keeps its files.
    #[must_use]
    pub fn node_dir(&self, id: usize) -> PathBuf {
        self.data_dir.join(&self.members[id].name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Cluster, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, text).unwrap();
        Cluster::load(&path)
    }

    const THREE: &str = r#"
rule = "raft"
[params]
heartbeat_ms = 20
[[node]]
name = "a"
address = "127.0.0.1:7101"
[[node]]
name = "b"
address = "127.0.0.1:7102"
[[node]]
name = "c"
address = "127.0.0.1:7103"
"#;

    #[test]
    fn a_cluster_file_names_the_spec_members_and_params() {
        let c = load(THREE).unwrap();
        assert_eq!(crate::ordering::members(&c.spec), ["a", "b", "c"]);
        let raft = c.spec.section::<crate::raft::spec::RaftSpec>().unwrap();
        assert_eq!(raft.heartbeat_ms, 20);
        assert_eq!(c.index("b").unwrap(), 1);
        assert_eq!(c.node_key(2).unwrap().pubkey(), c.members[2].public_key);
        // The identity changes with the params (a node with other timeouts is refused).
        let other = load(&THREE.replace("20", "25")).unwrap();
        assert_ne!(c.id(), other.id());
    }

    #[test]
    fn bad_files_get_one_line_naming_the_field() {
        for (text, expect) in [
            (
                THREE.replace("\"b\"", "\"a\""),
                "node[1].name: \"a\" is named twice",
            ),
            (
                THREE.replace("127.0.0.1:7102", "localhost"),
                "node[1].address: \"localhost\" is not an IP",
            ),
            (
                THREE.replace("7103", "7101"),
                "node[2].address: 127.0.0.1:7101 is node[0]'s",
            ),
            (
                THREE.replace("\"raft\"", "\"raf\""),
                "rule: \"raf\" is not an ordering rule",
            ),
            (
                THREE.replace("heartbeat_ms = 20", "heartbeat_ms = \"x\""),
                "params",
            ),
            (THREE.replace("[params]", "[params\n"), "line "),
            (format!("{THREE}\nport = 1\n"), "unknown field"),
            (
                THREE.replace("\"b\"", "\"../../etc\""),
                "node[1].name: \"../../etc\" is not a node name",
            ),
            (
                THREE.replace("\"b\"", "\"\""),
                "node[1].name: \"\" is not a node name",
            ),
        ] {
            let err = load(&text).unwrap_err().to_string();
            assert!(err.contains(expect), "{err} lacks {expect}");
            assert!(!err.contains('\n'), "{err:?}");
        }
        let c = load(&THREE.replace(
            "name = \"c\"",
            "name = \"c\"\nkey_file = \"c.key\"\npublic_key = \"00000000000000000000000000000000000000000000000000000000000000aa\"",
        ))
        .unwrap();
        let err = c.node_key(2).unwrap_err().to_string();
        assert!(err.contains("key_file") && err.contains("c.key"), "{err}");
    }
}
