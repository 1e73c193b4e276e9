//! The Paxos section of a chain spec (`paxos`): the members (each a proposer, acceptor and
//! learner), the protocol's timing and back-off, and the simulated network a demo cluster
//! runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chain::spec::{
    ChainSpec, ClusterSection, SpecError, SpecSection, bad, check_coins, check_names,
};
use crate::raft::spec::{MAX_MS, check_network};
use crate::sim::NetModel;

/// The most members a spec may list.
pub const MAX_MEMBERS: usize = 101;

/// Paxos parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaxosSpec {
    /// The members (wallet names; keys from the spec's `wallet_seed`); member `i` proposes
    /// ballots `(round, i)`.
    pub members: Vec<String>,
    /// Each member's genesis outputs, in coins (the demo transfers spend them).
    #[serde(default = "default_coins")]
    pub genesis_coins: Vec<f64>,
    /// A follower that hears no leader for a time drawn between these bounds campaigns,
    /// milliseconds (every node first campaigns after the lower bound).
    #[serde(default = "default_election")]
    pub election_timeout_ms: (u64, u64),
    /// The leader's heartbeat interval, milliseconds (below the minimum election timeout).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// The leader cuts a block from waiting client transactions this often, milliseconds …
    #[serde(default = "default_block_interval")]
    pub block_interval_ms: u64,
    /// … or as soon as this many wait.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// Randomized back-off after a preemption; off, preempted proposers retry at once with a
    /// higher ballot and can duel for ever.
    #[serde(default = "yes")]
    pub backoff: bool,
    /// The first back-off window, milliseconds; it doubles with each preemption in a row (up
    /// to 32 times).
    #[serde(default = "default_backoff")]
    pub backoff_ms: u64,
    /// The simulated network and disk.
    #[serde(default)]
    pub network: NetModel,
}

fn default_coins() -> Vec<f64> {
    vec![50.0, 50.0]
}
const fn default_election() -> (u64, u64) {
    (150, 300)
}
const fn default_heartbeat() -> u64 {
    50
}
const fn default_block_interval() -> u64 {
    100
}
const fn default_max_block_txs() -> usize {
    100
}
const fn default_backoff() -> u64 {
    100
}
const fn yes() -> bool {
    true
}

impl PaxosSpec {
    /// A majority of the members: the quorum of both phases.
    #[must_use]
    pub fn majority(&self) -> usize {
        crate::consensus::quorum::majority(self.members.len())
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.members.is_empty() {
            return Err(bad("paxos.members", "the cluster has no members"));
        }
        check_names("paxos.members", &self.members)?;
        if self.members.len() > MAX_MEMBERS {
            return Err(bad(
                "paxos.members",
                format!("{} members, more than {MAX_MEMBERS}", self.members.len()),
            ));
        }
        check_coins("paxos.genesis_coins", &self.genesis_coins)?;
        let (lo, hi) = self.election_timeout_ms;
        if lo == 0 || lo > hi || hi > MAX_MS {
            return Err(bad(
                "paxos.election_timeout_ms",
                format!("[{lo}, {hi}]: need 1 ≤ min ≤ max ≤ {MAX_MS}"),
            ));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= lo {
            return Err(bad(
                "paxos.heartbeat_ms",
                format!(
                    "{} must be at least 1 and below the minimum election timeout {lo}",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.block_interval_ms == 0 || self.block_interval_ms > MAX_MS {
            return Err(bad(
                "paxos.block_interval_ms",
                format!("must be 1 to {MAX_MS}"),
            ));
        }
        if self.max_block_txs == 0 || self.max_block_txs > 10_000 {
            return Err(bad("paxos.max_block_txs", "must be 1 to 10000"));
        }
        if self.backoff_ms == 0 || self.backoff_ms > MAX_MS {
            return Err(bad("paxos.backoff_ms", format!("must be 1 to {MAX_MS}")));
        }
        check_network("paxos.network", &self.network)?;
        if self.network.persist_ms * 2.0 >= lo as f64 {
            return Err(SpecError::BadFieldAt {
                field: "paxos.network.persist_ms".into(),
                reason: format!(
                    "{} ms writes leave no time to elect within the {lo} ms election timeout: keep them below half of it",
                    self.network.persist_ms
                ),
            });
        }
        Ok(())
    }
}

impl SpecSection for PaxosSpec {
    const KEY: &'static str = "paxos";
}

impl ClusterSection for PaxosSpec {
    const MIN_MEMBERS: usize = 1;
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

/// `spec` (a valid Paxos spec) with `nodes` members and `params` merged into its `paxos`
/// section ([`crate::chain::spec::cluster_spec`]).
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    crate::chain::spec::cluster_spec::<PaxosSpec>(spec, nodes, params)
}
