//! Chain specs: the genesis and the rules of a chain, as JSON.
//!
//! A spec names the consensus rule, the genesis header and transaction, the proof-of-work limit,
//! the target spacing and retarget rule, the block reward, the coinbase maturity, and the seed
//! from which the demo wallets' keys are derived; then the chain's rule's own section (`pos`,
//! `dpos`, `poa`), which its rule defines, parses and validates ([`SpecSection`]). Unknown and
//! missing fields are errors that name the field. The built-in specs live in `chains/` and are
//! compiled in.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::consensus::Consensus;
use crate::difficulty::RetargetRule;
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256};
use crate::primitives::header::Header;
use crate::primitives::pow_units::{CompactTarget, Target};
use crate::primitives::tx::{Amount, HexBytes, KeyPair, MAX_MONEY, Transaction, TxOut};

/// The latest genesis time a spec may have: 2080-11-28, which leaves a chain decades of
/// block times before `u32` seconds run out in 2106.
pub const MAX_GENESIS_TIME: u32 = 3_500_000_000;

/// The longest Bitcoin-rule retarget interval a spec may have: the headers of one interval are
/// kept in memory (Bitcoin's is 2016).
pub const MAX_RETARGET_INTERVAL: u32 = 100_000;

/// The built-in specs: name and JSON text.
pub const BUILTIN_SPECS: [(&str, &str); 11] = [
    ("pow-demo", include_str!("../../chains/pow-demo.json")),
    ("pos-demo", include_str!("../../chains/pos-demo.json")),
    (
        "pos-peercoin",
        include_str!("../../chains/pos-peercoin.json"),
    ),
    ("dpos-demo", include_str!("../../chains/dpos-demo.json")),
    ("poa-demo", include_str!("../../chains/poa-demo.json")),
    ("raft-demo", include_str!("../../chains/raft-demo.json")),
    ("pbft-demo", include_str!("../../chains/pbft-demo.json")),
    ("paxos-demo", include_str!("../../chains/paxos-demo.json")),
    ("zab-demo", include_str!("../../chains/zab-demo.json")),
    ("kafka-demo", include_str!("../../chains/kafka-demo.json")),
    ("regtest", include_str!("../../chains/regtest.json")),
];

/// The genesis block's header fields and transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSpec {
    /// Header version.
    pub version: i32,
    /// Header time.
    pub time: u32,
    /// Header bits: the first target of the chain.
    pub bits: CompactTarget,
    /// Header nonce (a proof-of-work genesis must meet its own target).
    pub nonce: u32,
    /// The genesis transaction's raw bytes in hex; its sha256d is the merkle root.
    pub coinbase_hex: HexBytes,
}

/// The block subsidy schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Subsidy of the first blocks, in coins.
    pub initial: Amount,
    /// Blocks between halvings (210 000 on Bitcoin, 150 on regtest).
    pub halving_interval: u32,
}

/// A rule's own part of a spec: the value of the spec field the rule names.
pub trait SpecSection: Serialize + DeserializeOwned + fmt::Debug + Send + Sync + 'static {
    /// The spec field (`pos`).
    const KEY: &'static str;
}

/// A section that lists the members of a cluster that orders blocks (Raft, PBFT): what
/// [`cluster_spec`] needs to resize the cluster and merge parameters into the section.
pub trait ClusterSection: SpecSection + Clone {
    /// The fewest members a cluster may have.
    const MIN_MEMBERS: usize;
    /// The most members a cluster may have.
    const MAX_MEMBERS: usize;
    /// The members (wallet names), in order.
    fn members_mut(&mut self) -> &mut Vec<String>;
    /// The network the simulator gives the cluster.
    fn network_mut(&mut self) -> &mut crate::sim::NetModel;
    /// Checks the section's fields, naming the one out of range.
    ///
    /// # Errors
    /// [`SpecError`] naming the field.
    fn check_fields(&self) -> Result<(), SpecError>;
}

/// A rule's section of a spec, kept typed for its rule and as canonical JSON (the typed
/// value serialised compactly, fields in declaration order) for the spec hash.
#[derive(Clone)]
pub struct RuleSection {
    key: &'static str,
    raw: Box<RawValue>,
    typed: Arc<dyn Any + Send + Sync>,
}

impl RuleSection {
    /// Wraps a typed section.
    ///
    /// # Panics
    /// Never: a section type always serialises.
    #[must_use]
    pub fn new<T: SpecSection>(value: T) -> Self {
        Self {
            key: T::KEY,
            raw: serde_json::value::to_raw_value(&value).expect("a spec section serialises"),
            typed: Arc::new(value),
        }
    }

    /// Parses the JSON of a section of type `T`.
    ///
    /// # Errors
    /// serde's, naming the field.
    pub fn parse<T: SpecSection>(value: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value::<T>(value).map(Self::new)
    }

    /// The spec field it is the value of.
    #[must_use]
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// The section as type `T`, if it is one.
    #[must_use]
    pub fn get<T: SpecSection>(&self) -> Option<&T> {
        self.typed.downcast_ref()
    }
}

impl PartialEq for RuleSection {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.raw.get() == other.raw.get()
    }
}

impl fmt::Debug for RuleSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.raw.get())
    }
}

impl Serialize for RuleSection {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.key, &self.raw)?;
        map.end()
    }
}

/// How a rule's spec section is found and parsed: its field and its type's parser.
#[derive(Debug, Clone, Copy)]
pub struct SectionDef {
    /// The spec field.
    pub key: &'static str,
    /// Parses its JSON.
    pub parse: fn(serde_json::Value) -> Result<RuleSection, serde_json::Error>,
}

impl SectionDef {
    /// The definition of section type `T`.
    #[must_use]
    pub const fn of<T: SpecSection>() -> Self {
        Self {
            key: T::KEY,
            parse: RuleSection::parse::<T>,
        }
    }
}

/// A chain spec. See the module docs and README for every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "SpecFields")]
pub struct ChainSpec {
    /// Short name; the default chain file is `chains/<name>.jsonl`.
    pub name: String,
    /// The consensus rule (a name in the registry, [`crate::consensus::RULES`]).
    pub consensus: Consensus,
    /// The genesis block.
    pub genesis: GenesisSpec,
    /// The easiest allowed target, 64 hex digits.
    pub pow_limit: Target,
    /// The intended seconds between blocks.
    pub target_spacing_s: u32,
    /// The difficulty rule.
    pub retarget: RetargetRule,
    /// The subsidy schedule.
    pub reward: RewardSpec,
    /// Blocks before a coinbase output may be spent (100 on Bitcoin).
    pub coinbase_maturity: u32,
    /// How far past the verifier's clock a block time may be, in seconds (7200 on Bitcoin).
    pub max_future_s: u32,
    /// Seed from which every wallet key is derived.
    pub wallet_seed: String,
    /// The wallet that receives coinbase rewards (proof of stake: a stakeholder; rewards go
    /// to each block's staker).
    pub miner: String,
    /// Demo wallets that transfers move coins between.
    pub wallets: Vec<String>,
    /// The rule's own section (`pos`, `dpos`, `poa`), required by the rules that have one.
    #[serde(flatten)]
    pub section: Option<RuleSection>,
}

/// A spec as written: the core fields and any others, which must be a rule's section.
#[derive(Deserialize)]
struct SpecFields {
    name: String,
    consensus: Consensus,
    genesis: GenesisSpec,
    pow_limit: Target,
    target_spacing_s: u32,
    retarget: RetargetRule,
    reward: RewardSpec,
    coinbase_maturity: u32,
    max_future_s: u32,
    wallet_seed: String,
    miner: String,
    wallets: Vec<String>,
    #[serde(flatten)]
    rest: ExtraFields,
}

/// The fields of a spec beyond the core ones, in order; a repeated one is an error (a map
/// would keep the last silently).
struct ExtraFields(Vec<(String, serde_json::Value)>);

impl<'de> Deserialize<'de> for ExtraFields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;

        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = ExtraFields;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("spec fields")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ExtraFields, A::Error> {
                let mut fields: Vec<(String, serde_json::Value)> = Vec::new();
                while let Some((key, value)) = map.next_entry::<String, serde_json::Value>()? {
                    if fields.iter().any(|(k, _)| *k == key) {
                        return Err(serde::de::Error::custom(format!("duplicate field `{key}`")));
                    }
                    fields.push((key, value));
                }
                Ok(ExtraFields(fields))
            }
        }

        d.deserialize_map(Fields)
    }
}

impl TryFrom<SpecFields> for ChainSpec {
    type Error = SpecError;

    fn try_from(f: SpecFields) -> Result<Self, SpecError> {
        let mut section = None;
        for (key, value) in f.rest.0 {
            let owner = Consensus::all()
                .find(|c| c.info().section.is_some_and(|d| d.key == key))
                .ok_or_else(|| SpecError::UnknownField(key.clone()))?;
            if owner != f.consensus {
                return Err(bad_owned(
                    key,
                    format!("only allowed with consensus {owner}"),
                ));
            }
            let def = owner.info().section.expect("the owner has this section");
            section = Some((def.parse)(value).map_err(|e| bad_owned(key, e.to_string()))?);
        }
        Ok(Self {
            name: f.name,
            consensus: f.consensus,
            genesis: f.genesis,
            pow_limit: f.pow_limit,
            target_spacing_s: f.target_spacing_s,
            retarget: f.retarget,
            reward: f.reward,
            coinbase_maturity: f.coinbase_maturity,
            max_future_s: f.max_future_s,
            wallet_seed: f.wallet_seed,
            miner: f.miner,
            wallets: f.wallets,
            section,
        })
    }
}

/// Why a spec is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The JSON is malformed or has a missing, unknown or mistyped field.
    #[error("{0}")]
    Json(String),
    /// A field has a value the rules forbid.
    #[error("field `{field}`: {reason}")]
    BadField {
        /// The field's path, e.g. `genesis.bits`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A field inside a list has a value the rules forbid.
    #[error("field `{field}`: {reason}")]
    BadFieldAt {
        /// The field's path, e.g. `pos.stakeholders[2].coins[0]`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A field no spec has.
    #[error("unknown field `{0}`")]
    UnknownField(String),
    /// No built-in spec has this name.
    #[error("no built-in spec named {0:?} (built-in: {names})", names = builtin_names().join(", "))]
    UnknownBuiltin(String),
}

/// The names of the built-in specs.
#[must_use]
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SPECS.iter().map(|(n, _)| *n).collect()
}

/// `spec` (a valid spec whose section is an `S`) with `nodes` members — the first of its
/// own, then `s1`, `s2`… (the next names it does not have) as needed — and `params` merged
/// into its section; the miner becomes the first member if it is no longer one.
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec<S: ClusterSection>(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    let section = spec.section::<S>().ok_or_else(|| SpecError::BadField {
        field: "consensus",
        reason: format!("{} is not a {} spec", spec.name, S::KEY),
    })?;
    let mut value = serde_json::to_value(section).map_err(|e| SpecError::Json(e.to_string()))?;
    if let Some(map) = value.as_object_mut() {
        for (k, v) in params {
            map.insert(k.clone(), v.clone());
        }
    }
    let mut section: S = serde_json::from_value(value).map_err(|e| SpecError::BadFieldAt {
        field: "params".into(),
        reason: e.to_string(),
    })?;
    if let Some(n) = nodes {
        if !(S::MIN_MEMBERS..=S::MAX_MEMBERS).contains(&n) {
            return Err(SpecError::BadField {
                field: "nodes",
                reason: format!(
                    "{n}: a cluster has {} to {} nodes",
                    S::MIN_MEMBERS,
                    S::MAX_MEMBERS
                ),
            });
        }
        let members = section.members_mut();
        members.truncate(n);
        let mut k = 1;
        while members.len() < n {
            let name = format!("s{k}");
            if !members.contains(&name) {
                members.push(name);
            }
            k += 1;
        }
    }
    let mut out = spec.clone();
    let members = section.members_mut();
    if let Some(first) = members.first()
        && !members.contains(&out.miner)
    {
        out.miner = first.clone();
    }
    out.section = Some(RuleSection::new(section));
    out.validate()?;
    Ok(out)
}

pub(crate) fn check_names<'a>(
    list: &'static str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), SpecError> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.into_iter().enumerate() {
        if name.is_empty() || !seen.insert(name.as_str()) {
            return Err(bad_owned(
                format!("{list}[{i}]"),
                format!("{name:?} is empty or not unique"),
            ));
        }
    }
    Ok(())
}

pub(crate) fn check_coins(field: &str, coins: &[f64]) -> Result<(), SpecError> {
    if coins.is_empty() {
        return Err(bad_owned(field.to_owned(), "no outputs"));
    }
    for (j, c) in coins.iter().enumerate() {
        let amount = Amount::from_coins_f64(*c)
            .map_err(|e| bad_owned(format!("{field}[{j}]"), e.to_string()))?;
        if amount == Amount::ZERO {
            return Err(bad_owned(format!("{field}[{j}]"), "must be positive"));
        }
    }
    Ok(())
}

pub(crate) fn bad_owned(field: String, reason: impl Into<String>) -> SpecError {
    SpecError::BadFieldAt {
        field,
        reason: reason.into(),
    }
}

pub(crate) fn bad(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::BadField {
        field,
        reason: reason.into(),
    }
}

impl ChainSpec {
    /// Parses and validates a spec.
    ///
    /// # Errors
    /// [`SpecError::Json`] naming the line, column and field for malformed JSON;
    /// [`SpecError::BadField`] for values outside the rules.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let fields: SpecFields =
            serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))?;
        let spec = Self::try_from(fields)?;
        spec.validate()?;
        Ok(spec)
    }

    /// Returns the built-in spec called `name`.
    ///
    /// # Errors
    /// [`SpecError::UnknownBuiltin`] when there is none.
    pub fn builtin(name: &str) -> Result<Self, SpecError> {
        let (_, text) = BUILTIN_SPECS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SpecError::UnknownBuiltin(name.to_owned()))?;
        Self::from_json(text)
    }

    /// Checks every field's value.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the first bad field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("name", "must be non-empty letters, digits, '-' or '_'"));
        }
        if self.pow_limit == Target::ZERO {
            return Err(bad("pow_limit", "must not be zero"));
        }
        let genesis_target = self
            .genesis
            .bits
            .to_target()
            .map_err(|e| bad("genesis.bits", e.to_string()))?;
        if genesis_target > self.pow_limit {
            return Err(bad("genesis.bits", "target is above pow_limit"));
        }
        if self.target_spacing_s == 0 {
            return Err(bad("target_spacing_s", "must be at least 1"));
        }
        // Bounds that keep every later computation finite: the retarget window in memory, the
        // chain's clock well inside u32 seconds, a difficulty that can follow its blocks.
        if self.genesis.time > MAX_GENESIS_TIME {
            return Err(bad(
                "genesis.time",
                format!(
                    "{} leaves the chain no room before 2106 (at most {MAX_GENESIS_TIME})",
                    self.genesis.time
                ),
            ));
        }
        if self.target_spacing_s > 86_400 {
            return Err(bad("target_spacing_s", "must be at most 86400 (a day)"));
        }
        match self.retarget {
            RetargetRule::Bitcoin { interval }
                if !(1..=MAX_RETARGET_INTERVAL).contains(&interval) =>
            {
                return Err(bad(
                    "retarget.interval",
                    format!("{interval} is not in 1..={MAX_RETARGET_INTERVAL} (Bitcoin: 2016)"),
                ));
            }
            RetargetRule::Asert { half_life_s } if half_life_s < self.target_spacing_s => {
                return Err(bad(
                    "retarget.half_life_s",
                    format!(
                        "{half_life_s} is shorter than target_spacing_s {}: the target would \
                         move faster than blocks come (Bitcoin Cash: 172800)",
                        self.target_spacing_s
                    ),
                ));
            }
            _ => {}
        }
        let minted = u128::from(self.reward.initial.to_base_units())
            * 2
            * u128::from(self.reward.halving_interval.max(1));
        if minted > u128::from(MAX_MONEY) {
            return Err(bad(
                "reward.initial",
                "the subsidy schedule mints more than 21 million coins (initial × 2 × halving_interval)",
            ));
        }
        if self.reward.halving_interval == 0 {
            return Err(bad("reward.halving_interval", "must be at least 1"));
        }
        if self.miner.is_empty() {
            return Err(bad("miner", "must name a wallet"));
        }
        if self.wallets.iter().any(String::is_empty) {
            return Err(bad("wallets", "wallet names must not be empty"));
        }
        let rule = self.consensus.rule();
        if let Some(s) = &self.section {
            let owner = Consensus::all()
                .find(|c| c.info().section.is_some_and(|d| d.key == s.key()))
                .map_or("none", Consensus::name);
            if rule.info().section.map(|d| d.key) != Some(s.key()) {
                return Err(bad(s.key(), format!("only allowed with consensus {owner}")));
            }
        }
        rule.validate_spec(self)?;
        let genesis_coins = self
            .genesis_allocations()
            .iter()
            .try_fold(Amount::ZERO, |sum, o| sum.checked_add(o.value));
        if genesis_coins.is_none() {
            return Err(bad(
                "genesis",
                "the genesis holdings add up to more than 21 million coins",
            ));
        }
        Ok(())
    }

    /// Returns the genesis stake outputs of a proof-of-stake spec: owner key and value, in
    /// spec order (empty for proof of work).
    #[must_use]
    pub fn genesis_allocations(&self) -> Vec<TxOut> {
        self.consensus
            .rule()
            .names(self)
            .genesis
            .into_iter()
            .flat_map(|(name, coins)| {
                let to = KeyPair::derive(&self.wallet_seed, name).pubkey();
                coins.iter().map(move |c| TxOut {
                    value: Amount::from_coins_f64(*c).unwrap_or(Amount::ZERO),
                    to,
                })
            })
            .collect()
    }

    /// Returns the names of the block producers this spec knows: stakeholders, DPoS
    /// candidates or PoA signers (empty for proof of work).
    #[must_use]
    pub fn producer_names(&self) -> Vec<&str> {
        self.consensus.rule().names(self).producers
    }

    /// Returns the rule's section as type `T`, if the spec has one of that type.
    #[must_use]
    pub fn section<T: SpecSection>(&self) -> Option<&T> {
        self.section.as_ref()?.get()
    }

    /// Returns the spec's hash: sha256d of its canonical JSON (fields in declaration order).
    #[must_use]
    pub fn spec_hash(&self) -> Hash256 {
        Hash256::hash(
            serde_json::to_string(self)
                .expect("a spec always serialises")
                .as_bytes(),
        )
    }

    /// Builds the genesis block this spec defines: the genesis transaction, and for proof of
    /// stake a second transaction creating the stakeholders' outputs.
    #[must_use]
    pub fn genesis_block(&self) -> Block {
        let mut txs = vec![Transaction::Genesis {
            raw: self.genesis.coinbase_hex.clone(),
        }];
        let allocations = self.genesis_allocations();
        if !allocations.is_empty() {
            txs.push(Transaction::Coinbase {
                height: 0,
                extra_nonce: 0,
                outputs: allocations,
            });
        }
        let mut block = Block {
            header: Header {
                version: self.genesis.version,
                prev_hash: BlockHash::ZERO,
                merkle_root: crate::primitives::hash::MerkleRoot::ZERO,
                time: self.genesis.time,
                bits: self.genesis.bits,
                nonce: self.genesis.nonce,
            },
            txs,
        };
        block.header.merkle_root = block.compute_merkle_root().root;
        block
    }

    /// Returns the intended seconds between blocks, as the rule counts them (DPoS: its slot).
    #[must_use]
    pub fn spacing_s(&self) -> f64 {
        self.consensus.rule().spacing_ms(self) as f64 / 1000.0
    }

    /// Returns the subsidy of the block at `height`: `initial` halved every
    /// `halving_interval` blocks, zero after 64 halvings (Bitcoin's `GetBlockSubsidy`).
    #[must_use]
    pub fn subsidy(&self, height: u32) -> Amount {
        let halvings = height / self.reward.halving_interval;
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_base_units(self.reward.initial.to_base_units() >> halvings)
    }

    /// Returns the miner's key pair.
    #[must_use]
    pub fn miner_key(&self) -> KeyPair {
        KeyPair::derive(&self.wallet_seed, &self.miner)
    }

    /// Returns the name of every key the spec derives — wallets, stakeholders, holders,
    /// signers and DPoS candidates — for messages and reports.
    #[must_use]
    pub fn names_by_key(&self) -> std::collections::HashMap<crate::primitives::tx::PubKey, String> {
        self.wallet_keys()
            .iter()
            .map(|k| (k.pubkey(), k.name().to_owned()))
            .chain(
                self.producer_names()
                    .into_iter()
                    .map(|n| (KeyPair::derive(&self.wallet_seed, n).pubkey(), n.to_owned())),
            )
            .collect()
    }

    /// Returns the key pairs of the miner, every demo wallet and every stakeholder (miner
    /// first, no repeats).
    #[must_use]
    pub fn wallet_keys(&self) -> Vec<KeyPair> {
        let mut names = vec![self.miner.as_str()];
        let rule_names = self.consensus.rule().names(self).wallets;
        for w in self.wallets.iter().map(String::as_str).chain(rule_names) {
            if !names.contains(&w) {
                names.push(w);
            }
        }
        names
            .into_iter()
            .map(|n| KeyPair::derive(&self.wallet_seed, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_parse_and_validate() {
        for (name, _) in BUILTIN_SPECS {
            let spec = ChainSpec::builtin(name).unwrap();
            assert_eq!(spec.name, name);
        }
        assert!(matches!(
            ChainSpec::builtin("nope"),
            Err(SpecError::UnknownBuiltin(_))
        ));
    }

    /// Reference: Bitcoin Core chainparams.cpp, regtest `hashGenesisBlock`.
    #[test]
    fn regtest_genesis_hashes_to_bitcoin_regtest_genesis() {
        let spec = ChainSpec::builtin("regtest").unwrap();
        let genesis = spec.genesis_block();
        assert_eq!(
            genesis.header.merkle_root.to_string(),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
        assert_eq!(
            genesis.block_hash().to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let text = BUILTIN_SPECS[1].1;
        let unknown = text.replacen('{', "{\"colour\": 1,", 1);
        let err = ChainSpec::from_json(&unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
        value.as_object_mut().unwrap().remove("target_spacing_s");
        let err = ChainSpec::from_json(&value.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `target_spacing_s`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut spec = ChainSpec::builtin("regtest").unwrap();
        spec.genesis.bits = CompactTarget::from_consensus(0x2100_ffff);
        let err = spec.validate().unwrap_err();
        assert!(
            matches!(
                err,
                SpecError::BadField {
                    field: "genesis.bits",
                    ..
                }
            ),
            "{err}"
        );
        let mut spec = ChainSpec::builtin("regtest").unwrap();
        spec.retarget = RetargetRule::Asert { half_life_s: 0 };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("half_life_s")
        );
    }

    /// Edits built-in spec `name` as JSON and asserts the edited spec is refused with an error
    /// containing `needle`.
    fn assert_refused(name: &str, edit: &dyn Fn(&mut serde_json::Value), needle: &str) {
        let mut v = serde_json::to_value(ChainSpec::builtin(name).unwrap()).unwrap();
        edit(&mut v);
        let err = ChainSpec::from_json(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn bad_stake_sets_name_the_field() {
        let check = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
            assert_refused("pos-demo", edit, needle);
        };
        check(
            &|v| v["pos"]["stakeholders"][2]["coins"][1] = (-5.0).into(),
            "field `pos.stakeholders[2].coins[1]`: amount -5 is not a non-negative number",
        );
        check(
            &|v| v["pos"]["min_age_days"] = 100.0.into(),
            "min_age_days 100 is greater than max_age_days 3",
        );
        check(
            &|v| v["pos"]["stakeholders"] = serde_json::json!([]),
            "stake set is empty",
        );
        check(
            &|v| v["miner"] = "mallory".into(),
            "field `miner`: \"mallory\" is not one of pos.stakeholders",
        );
        check(
            &|v| v["pos"]["stakeholders"][1]["name"] = "alice".into(),
            "not unique",
        );
        check(&|v| v["pos"]["colour"] = 1.into(), "unknown field `colour`");
        check(
            &|v| v["retarget"] = serde_json::json!({"rule": "asert", "half_life_s": 7200}),
            "peercoin is the proof-of-stake rule",
        );
    }

    #[test]
    fn bad_producer_sets_name_the_field() {
        let check = assert_refused;
        check(
            "dpos-demo",
            &|v| v["dpos"]["holders"][3]["votes"][0] = "nobody".into(),
            "field `dpos.holders[3].votes[0]`: \"nobody\" is not a candidate",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["max_votes"] = 2.into(),
            "more than max_votes 2",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["producers"] = 101.into(),
            "field `dpos.producers`: 101 producers but only 100 candidates",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["candidates"][5] = "bp001".into(),
            "field `dpos.candidates[5]`",
        );
        check(
            "dpos-demo",
            &|v| {
                v["dpos"]["holders"] =
                    serde_json::json!([{"name": "h", "coins": [1], "votes": ["bp001"]}])
            },
            "the genesis votes approve 1 candidates; 21 producers are needed",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["blocks_per_turn"] = 0.into(),
            "field `dpos.blocks_per_turn`: must be at least 1",
        );
        check(
            "dpos-demo",
            &|v| v["retarget"] = serde_json::json!({"rule": "asert", "half_life_s": 60}),
            "the rule must be none",
        );
        check(
            "poa-demo",
            &|v| v["poa"]["signers"] = serde_json::json!([]),
            "signer set is empty",
        );
        check(
            "poa-demo",
            &|v| v["poa"]["epoch"] = 0.into(),
            "field `poa.epoch`",
        );
        check(
            "poa-demo",
            &|v| v["miner"] = "mallory".into(),
            "field `miner`: \"mallory\" is not one of poa.signers",
        );
        check(
            "poa-demo",
            &|v| {
                v["pos"] =
                    serde_json::to_value(ChainSpec::builtin("pos-demo").unwrap()).unwrap()["pos"]
                        .clone()
            },
            "field `pos`: only allowed with consensus pos",
        );
        check(
            "poa-demo",
            &|v| {
                v.as_object_mut().unwrap().remove("poa");
            },
            "field `poa`: required when consensus is poa",
        );
    }

    /// Values that validation used to accept and that then exhausted memory, hung a miner or
    /// failed at block 1 with a confusing message: each is refused naming its field.
    #[test]
    fn values_no_chain_can_live_with_are_refused() {
        use serde_json::json;
        let check = assert_refused;
        check(
            "regtest",
            &|v| v["retarget"] = json!({"rule": "bitcoin", "interval": 4_294_967_295u32}),
            "field `retarget.interval`",
        );
        check(
            "pow-demo",
            &|v| v["retarget"] = json!({"rule": "asert", "half_life_s": 0}),
            "field `retarget.half_life_s`",
        );
        check(
            "regtest",
            &|v| v["genesis"]["time"] = 4_294_967_000u32.into(),
            "field `genesis.time`",
        );
        check(
            "poa-demo",
            &|v| v["target_spacing_s"] = u32::MAX.into(),
            "field `target_spacing_s`",
        );
        check(
            "regtest",
            &|v| v["reward"]["initial"] = 21_000_000.0.into(),
            "field `reward.initial`",
        );
        check(
            "pos-demo",
            &|v| v["pos"]["max_age_days"] = v["pos"]["min_age_days"].clone(),
            "nothing could stake",
        );
        check(
            "pos-demo",
            &|v| {
                for h in v["pos"]["stakeholders"].as_array_mut().unwrap() {
                    h["coins"] = json!([0.00000001]);
                }
            },
            "nothing could ever stake",
        );
        check(
            "pos-demo",
            &|v| v["pos"]["interest"] = json!({"rule": "exact", "rate_ppm": u64::MAX}),
            "field `pos.interest.rate_ppm`",
        );
        check(
            "pos-demo",
            &|v| {
                for h in v["pos"]["stakeholders"].as_array_mut().unwrap() {
                    h["coins"] = json!([21_000_000.0]);
                }
            },
            "more than 21 million coins",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["blocks_per_turn"] = u32::MAX.into(),
            "field `dpos.blocks_per_turn`",
        );
    }

    #[test]
    fn subsidy_halves() {
        let spec = ChainSpec::builtin("regtest").unwrap();
        let initial = spec.subsidy(0).to_base_units();
        assert_eq!(spec.subsidy(149).to_base_units(), initial);
        assert_eq!(spec.subsidy(150).to_base_units(), initial / 2);
        assert_eq!(spec.subsidy(150 * 64), Amount::ZERO);
    }
}
