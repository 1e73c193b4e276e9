//! The Raft section of a chain spec (`raft`): the members, the protocol's timing, and the
//! simulated network a demo cluster runs on.

use serde::{Deserialize, Serialize};

use crate::chain::spec::{ClusterSection, SpecError, SpecSection, bad, check_coins, check_names};
use crate::sim::NetModel;

/// The most members a spec may list.
pub const MAX_MEMBERS: usize = 101;
/// The longest timeout or interval a spec may set, milliseconds.
pub const MAX_MS: u64 = 60_000;

/// Raft parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RaftSpec {
    /// The members (wallet names; keys from the spec's `wallet_seed`).
    pub members: Vec<String>,
    /// Each member's genesis outputs, in coins (the demo transfers spend them).
    #[serde(default = "default_coins")]
    pub genesis_coins: Vec<f64>,
    /// Election timeout, drawn uniformly between these bounds at each reset, milliseconds.
    #[serde(default = "default_election")]
    pub election_timeout_ms: (u64, u64),
    /// Heartbeat interval, milliseconds (below the minimum election timeout).
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// A leader cuts a block from waiting client transactions this often, milliseconds …
    #[serde(default = "default_block_interval")]
    pub block_interval_ms: u64,
    /// … or as soon as this many wait.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// Pre-vote (a candidate first asks whether it could win).
    #[serde(default = "yes")]
    pub pre_vote: bool,
    /// Check-quorum (a leader cut off from a majority steps down; followers of a live leader
    /// ignore campaigns).
    #[serde(default = "yes")]
    pub check_quorum: bool,
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
const fn yes() -> bool {
    true
}

impl RaftSpec {
    /// Checks every field.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.members.is_empty() {
            return Err(bad("raft.members", "the cluster has no members"));
        }
        check_names("raft.members", &self.members)?;
        if self.members.len() > MAX_MEMBERS {
            return Err(bad(
                "raft.members",
                format!("{} members, more than {MAX_MEMBERS}", self.members.len()),
            ));
        }
        check_coins("raft.genesis_coins", &self.genesis_coins)?;
        let (lo, hi) = self.election_timeout_ms;
        if lo == 0 || lo > hi || hi > MAX_MS {
            return Err(bad(
                "raft.election_timeout_ms",
                format!("[{lo}, {hi}]: need 1 ≤ min ≤ max ≤ {MAX_MS}"),
            ));
        }
        if self.heartbeat_ms == 0 || self.heartbeat_ms >= lo {
            return Err(bad(
                "raft.heartbeat_ms",
                format!(
                    "{} must be at least 1 and below the minimum election timeout {lo}",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.block_interval_ms == 0 || self.block_interval_ms > MAX_MS {
            return Err(bad(
                "raft.block_interval_ms",
                format!("must be 1 to {MAX_MS}"),
            ));
        }
        if self.max_block_txs == 0 || self.max_block_txs > 10_000 {
            return Err(bad("raft.max_block_txs", "must be 1 to 10000"));
        }
        check_network("raft.network", &self.network)?;
        if self.network.persist_ms * 2.0 >= lo as f64 {
            return Err(SpecError::BadFieldAt {
                field: "raft.network.persist_ms".into(),
                reason: format!(
                    "{} ms writes leave no time to elect within the {lo} ms election timeout: keep them below half of it",
                    self.network.persist_ms
                ),
            });
        }
        Ok(())
    }
}

/// Checks a network model: delays, probabilities, the disk's write time.
///
/// # Errors
/// [`SpecError::BadFieldAt`] naming the field under `field`.
pub fn check_network(field: &str, net: &NetModel) -> Result<(), SpecError> {
    let at = |f: &str, why: String| SpecError::BadFieldAt {
        field: format!("{field}.{f}"),
        reason: why,
    };
    let (lo, hi) = net.delay_ms;
    if !(lo.is_finite() && hi.is_finite() && lo >= 0.0 && lo <= hi && hi <= MAX_MS as f64) {
        return Err(at(
            "delay_ms",
            format!("[{lo}, {hi}]: need 0 ≤ min ≤ max ≤ {MAX_MS}"),
        ));
    }
    for (name, p) in [("drop", net.drop), ("duplicate", net.duplicate)] {
        if !(0.0..1.0).contains(&p) {
            return Err(at(name, format!("{p} is not a probability below 1")));
        }
    }
    if !(net.persist_ms.is_finite() && (0.0..=1000.0).contains(&net.persist_ms)) {
        return Err(at("persist_ms", "must be 0 to 1000".into()));
    }
    Ok(())
}

impl SpecSection for RaftSpec {
    const KEY: &'static str = "raft";
}

impl ClusterSection for RaftSpec {
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
