//! The PBFT section of a chain spec (`pbft`): the replicas, the protocol's timing, checkpoints
//! and watermarks, and the simulated network a demo cluster runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chain::spec::{
    ChainSpec, ClusterSection, SpecError, SpecSection, bad, check_coins, check_names,
};
use crate::consensus::quorum::byzantine_quorum;
use crate::raft::spec::{MAX_MS, check_network};
use crate::sim::NetModel;

/// The fewest replicas a spec may list: `n = 3f + 1` with `f = 1`.
pub const MIN_MEMBERS: usize = 4;
/// The most replicas a spec may list.
pub const MAX_MEMBERS: usize = 100;
/// The largest watermark window a spec may set, in sequence numbers.
pub const MAX_WINDOW: u64 = 1 << 16;

/// PBFT parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbftSpec {
    /// The replicas (wallet names; keys from the spec's `wallet_seed`). The primary of view
    /// `v` is `members[v mod n]`.
    pub members: Vec<String>,
    /// Each replica's genesis outputs, in coins (the demo transfers spend them).
    #[serde(default = "default_coins")]
    pub genesis_coins: Vec<f64>,
    /// The primary cuts a block from waiting client requests this often, milliseconds …
    #[serde(default = "default_block_interval")]
    pub block_interval_ms: u64,
    /// … or as soon as this many wait.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// A checkpoint every this many sequence numbers (`K`).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// The watermark window `L = H − h`: sequence numbers a primary may assign beyond the last
    /// stable checkpoint.
    #[serde(default = "default_window")]
    pub window: u64,
    /// A backup waiting this long for a request to commit suspects the primary and starts a
    /// view change, milliseconds.
    #[serde(default = "default_view_timeout")]
    pub view_timeout_ms: u64,
    /// The simulated network and disk.
    #[serde(default)]
    pub network: NetModel,
}

fn default_coins() -> Vec<f64> {
    vec![50.0, 50.0]
}
const fn default_block_interval() -> u64 {
    200
}
const fn default_max_block_txs() -> usize {
    100
}
const fn default_checkpoint_interval() -> u64 {
    16
}
const fn default_window() -> u64 {
    32
}
const fn default_view_timeout() -> u64 {
    1000
}

impl PbftSpec {
    /// The number of replicas, `n`.
    #[must_use]
    pub fn n(&self) -> usize {
        self.members.len()
    }

    /// The Byzantine replicas tolerated, `f = ⌊(n − 1)/3⌋`.
    #[must_use]
    pub fn f(&self) -> usize {
        self.n().saturating_sub(1) / 3
    }

    /// The quorum, `2f + 1`: COMMIT signatures a certificate needs.
    #[must_use]
    pub fn quorum(&self) -> usize {
        byzantine_quorum(self.n())
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.members.len() < MIN_MEMBERS {
            return Err(bad(
                "pbft.members",
                format!(
                    "{} replicas: pbft needs at least {MIN_MEMBERS} replicas (n = 3f + 1)",
                    self.members.len()
                ),
            ));
        }
        if self.members.len() > MAX_MEMBERS {
            return Err(bad(
                "pbft.members",
                format!("{} replicas, more than {MAX_MEMBERS}", self.members.len()),
            ));
        }
        check_names("pbft.members", &self.members)?;
        check_coins("pbft.genesis_coins", &self.genesis_coins)?;
        if self.block_interval_ms == 0 || self.block_interval_ms > MAX_MS {
            return Err(bad(
                "pbft.block_interval_ms",
                format!("must be 1 to {MAX_MS}"),
            ));
        }
        if self.max_block_txs == 0 || self.max_block_txs > 10_000 {
            return Err(bad("pbft.max_block_txs", "must be 1 to 10000"));
        }
        if self.checkpoint_interval == 0 {
            return Err(bad("pbft.checkpoint_interval", "must be at least 1"));
        }
        if self.window < self.checkpoint_interval || self.window > MAX_WINDOW {
            return Err(bad(
                "pbft.window",
                format!(
                    "{} must be at least the checkpoint interval {} and at most {MAX_WINDOW}",
                    self.window, self.checkpoint_interval
                ),
            ));
        }
        if self.view_timeout_ms <= self.block_interval_ms || self.view_timeout_ms > MAX_MS {
            return Err(bad(
                "pbft.view_timeout_ms",
                format!(
                    "{} must be above the block interval {} and at most {MAX_MS}",
                    self.view_timeout_ms, self.block_interval_ms
                ),
            ));
        }
        check_network("pbft.network", &self.network)
    }
}

impl SpecSection for PbftSpec {
    const KEY: &'static str = "pbft";
}

impl ClusterSection for PbftSpec {
    const MIN_MEMBERS: usize = MIN_MEMBERS;
    const MAX_MEMBERS: usize = MAX_MEMBERS;

    fn members_mut(&mut self) -> &mut Vec<String> {
        &mut self.members
    }

    fn network_mut(&mut self) -> &mut NetModel {
        &mut self.network
    }

    fn check_fields(&self) -> Result<(), SpecError> {
        self.validate()
    }
}

/// `spec` (a valid PBFT spec) with `nodes` replicas — the first of its own, then `s5`, `s6`…
/// as needed — and `params` merged into its `pbft` section
/// ([`crate::chain::spec::cluster_spec`]).
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    crate::chain::spec::cluster_spec::<PbftSpec>(spec, nodes, params)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn demo() -> ChainSpec {
        ChainSpec::builtin("pbft-demo").unwrap()
    }

    fn section(spec: &ChainSpec) -> &PbftSpec {
        spec.section::<PbftSpec>().unwrap()
    }

    #[test]
    fn the_demo_tolerates_one_fault_with_quorums_of_three() {
        let spec = demo();
        let p = section(&spec);
        assert_eq!(p.members, ["s1", "s2", "s3", "s4"]);
        assert_eq!((p.n(), p.f(), p.quorum()), (4, 1, 3));
        assert_eq!(p.block_interval_ms, 200);
        let mut seven = p.clone();
        seven.members.extend(["s5", "s6", "s7"].map(String::from));
        assert_eq!((seven.n(), seven.f(), seven.quorum()), (7, 2, 5));
        seven.members.push("s8".into());
        assert_eq!((seven.n(), seven.f(), seven.quorum()), (8, 2, 6));
    }

    fn refused(edit: impl Fn(&mut PbftSpec)) -> String {
        let mut p = section(&demo()).clone();
        edit(&mut p);
        p.validate().unwrap_err().to_string()
    }

    #[test]
    fn bad_fields_are_named() {
        let err = refused(|p| p.members.truncate(3));
        assert!(
            err.contains("pbft.members")
                && err.contains("pbft needs at least 4 replicas (n = 3f + 1)"),
            "{err}"
        );
        let err = refused(|p| p.members = (1..=101).map(|i| format!("s{i}")).collect());
        assert!(err.contains("more than 100"), "{err}");
        let err = refused(|p| p.members[3] = "s1".into());
        assert!(err.contains("pbft.members[3]"), "{err}");
        let err = refused(|p| p.members[0] = String::new());
        assert!(err.contains("pbft.members[0]"), "{err}");
        assert!(refused(|p| p.checkpoint_interval = 0).contains("pbft.checkpoint_interval"));
        let err = refused(|p| p.window = p.checkpoint_interval - 1);
        assert!(err.contains("pbft.window"), "{err}");
        let err = refused(|p| p.view_timeout_ms = p.block_interval_ms);
        assert!(err.contains("pbft.view_timeout_ms"), "{err}");
        assert!(refused(|p| p.block_interval_ms = 0).contains("pbft.block_interval_ms"));
        assert!(refused(|p| p.max_block_txs = 0).contains("pbft.max_block_txs"));
        assert!(refused(|p| p.genesis_coins.clear()).contains("pbft.genesis_coins"));
        let err = refused(|p| p.network.drop = 1.0);
        assert!(err.contains("pbft.network.drop"), "{err}");
        // The boundaries themselves are accepted.
        let mut p = section(&demo()).clone();
        p.window = p.checkpoint_interval;
        p.view_timeout_ms = p.block_interval_ms + 1;
        p.members = (1..=100).map(|i| format!("s{i}")).collect();
        p.validate().unwrap();
    }

    #[test]
    fn cluster_specs_resize_the_replicas_and_merge_parameters() {
        let spec = demo();
        let seven = cluster_spec(&spec, Some(7), &BTreeMap::new()).unwrap();
        assert_eq!(
            section(&seven).members,
            ["s1", "s2", "s3", "s4", "s5", "s6", "s7"]
        );
        let params = BTreeMap::from([("view_timeout_ms".to_owned(), serde_json::json!(500))]);
        let four = cluster_spec(&seven, Some(4), &params).unwrap();
        assert_eq!(section(&four).members, ["s1", "s2", "s3", "s4"]);
        assert_eq!(section(&four).view_timeout_ms, 500);
        let err = cluster_spec(&spec, Some(3), &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("3: a cluster has 4 to 100 nodes"), "{err}");
        let unknown = BTreeMap::from([("colour".to_owned(), serde_json::json!(1))]);
        let err = cluster_spec(&spec, None, &unknown).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        let raft = ChainSpec::builtin("raft-demo").unwrap();
        let err = cluster_spec(&raft, None, &BTreeMap::new())
            .unwrap_err()
            .to_string();
        assert!(err.contains("raft-demo is not a pbft spec"), "{err}");
    }

    #[test]
    fn a_cluster_without_its_miner_is_mined_by_its_first_replica() {
        let mut spec = demo();
        spec.miner = "s4".into();
        let smaller = cluster_spec(&spec, Some(4), &BTreeMap::new()).unwrap();
        assert_eq!(smaller.miner, "s4");
        let params = BTreeMap::from([(
            "members".to_owned(),
            serde_json::json!(["r1", "r2", "r3", "r4"]),
        )]);
        let renamed = cluster_spec(&spec, None, &params).unwrap();
        assert_eq!(renamed.miner, "r1");
        let empty = BTreeMap::from([("members".to_owned(), serde_json::json!([]))]);
        let err = cluster_spec(&spec, None, &empty).unwrap_err().to_string();
        assert!(err.contains("at least 4 replicas"), "{err}");
    }
}
