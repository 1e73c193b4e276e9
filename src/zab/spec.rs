//! The ZAB section of a chain spec (`zab`): the ensemble, ZooKeeper's timing (tick,
//! `initLimit`, `syncLimit` in ticks, as in `zoo.cfg`), block cutting, the committed log's
//! reach, and the simulated network a demo ensemble runs on.

use serde::{Deserialize, Serialize};

use crate::chain::spec::{
    ChainSpec, ClusterSection, SpecError, SpecSection, bad, check_coins, check_names,
};
use crate::raft::spec::check_network;
use crate::sim::NetModel;

/// The most members a spec may list.
pub const MAX_MEMBERS: usize = 101;
/// The longest timeout or interval a spec may set, milliseconds.
pub const MAX_MS: u64 = 60_000;

/// ZAB parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZabSpec {
    /// The servers (wallet names; keys from the spec's `wallet_seed`).
    pub members: Vec<String>,
    /// Each member's genesis outputs, in coins (the demo transfers spend them).
    #[serde(default = "default_coins")]
    pub genesis_coins: Vec<f64>,
    /// ZooKeeper's `tickTime`, milliseconds: the leader pings its followers every tick.
    #[serde(default = "default_tick")]
    pub tick_ms: u64,
    /// `initLimit`, in ticks: discovery and synchronization must finish within it.
    #[serde(default = "default_init_limit")]
    pub init_limit: u64,
    /// `syncLimit`, in ticks: a follower silent (or a leader unheard by a quorum) this long
    /// is dropped.
    #[serde(default = "default_sync_limit")]
    pub sync_limit: u64,
    /// A looking server resends its vote after a timeout drawn between these bounds,
    /// milliseconds.
    #[serde(default = "default_election")]
    pub election_timeout_ms: (u64, u64),
    /// The leader cuts a block from waiting client transactions this often, milliseconds …
    #[serde(default = "default_block_interval")]
    pub block_interval_ms: u64,
    /// … or as soon as this many wait.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// How many of its latest transactions a leader can send as a DIFF; a follower further
    /// behind gets a SNAP (ZooKeeper's committed log, 500 there).
    #[serde(default = "default_commit_log")]
    pub commit_log: usize,
    /// The simulated network and disk (links are FIFO, as TCP).
    #[serde(default)]
    pub network: NetModel,
}

fn default_coins() -> Vec<f64> {
    vec![50.0, 50.0]
}
const fn default_tick() -> u64 {
    50
}
const fn default_init_limit() -> u64 {
    10
}
const fn default_sync_limit() -> u64 {
    5
}
const fn default_election() -> (u64, u64) {
    (100, 200)
}
const fn default_block_interval() -> u64 {
    100
}
const fn default_max_block_txs() -> usize {
    100
}
const fn default_commit_log() -> usize {
    500
}

impl ZabSpec {
    /// A quorum: a majority of the servers.
    #[must_use]
    pub fn quorum(&self) -> usize {
        crate::consensus::quorum::majority(self.members.len())
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.members.is_empty() {
            return Err(bad("zab.members", "the ensemble has no members"));
        }
        check_names("zab.members", &self.members)?;
        if self.members.len() > MAX_MEMBERS {
            return Err(bad(
                "zab.members",
                format!("{} members, more than {MAX_MEMBERS}", self.members.len()),
            ));
        }
        check_coins("zab.genesis_coins", &self.genesis_coins)?;
        if self.tick_ms == 0 || self.tick_ms > MAX_MS {
            return Err(bad("zab.tick_ms", format!("must be 1 to {MAX_MS}")));
        }
        if !(2..=100).contains(&self.init_limit) {
            return Err(bad("zab.init_limit", "must be 2 to 100 ticks"));
        }
        if !(2..=100).contains(&self.sync_limit) {
            return Err(bad("zab.sync_limit", "must be 2 to 100 ticks"));
        }
        let (lo, hi) = self.election_timeout_ms;
        if lo == 0 || lo > hi || hi > MAX_MS {
            return Err(bad(
                "zab.election_timeout_ms",
                format!("[{lo}, {hi}]: need 1 ≤ min ≤ max ≤ {MAX_MS}"),
            ));
        }
        if self.block_interval_ms == 0 || self.block_interval_ms > MAX_MS {
            return Err(bad(
                "zab.block_interval_ms",
                format!("must be 1 to {MAX_MS}"),
            ));
        }
        if self.max_block_txs == 0 || self.max_block_txs > 10_000 {
            return Err(bad("zab.max_block_txs", "must be 1 to 10000"));
        }
        if self.commit_log == 0 || self.commit_log > 1_000_000 {
            return Err(bad("zab.commit_log", "must be 1 to 1000000"));
        }
        check_network("zab.network", &self.network)?;
        let sync = self.tick_ms * self.sync_limit;
        if self.network.persist_ms * 2.0 >= sync as f64
            || self.network.delay_ms.1 * 2.0 >= sync as f64
        {
            return Err(SpecError::BadFieldAt {
                field: "zab.sync_limit".into(),
                reason: format!(
                    "{sync} ms (tick_ms × sync_limit) must exceed twice the network's longest delay and a disk write"
                ),
            });
        }
        Ok(())
    }
}

impl SpecSection for ZabSpec {
    const KEY: &'static str = "zab";
}

impl ClusterSection for ZabSpec {
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

/// `spec` (a valid ZAB spec) with `nodes` members — the first of its own, then `s6`, `s7`… as
/// needed — and `params` merged into its `zab` section.
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    crate::chain::spec::cluster_spec::<ZabSpec>(spec, nodes, params)
}
