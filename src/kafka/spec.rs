//! The Kafka section of a chain spec (`kafka`): the brokers, the partition's replication
//! (replication factor, `replica.lag.time.max.ms`, `min.insync.replicas`, unclean leader
//! election, leader epochs, the fetch wait), the brokers' sessions with the controller, the
//! controller quorum's Raft timing, and the simulated network a demo cluster runs on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::chain::spec::{
    ChainSpec, ClusterSection, SpecError, SpecSection, bad, check_coins, check_names,
};
use crate::raft::spec::{MAX_MS, check_network};
use crate::sim::NetModel;

/// The most brokers a spec may list.
pub const MAX_MEMBERS: usize = 101;

/// Kafka parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// The brokers (wallet names; keys from the spec's `wallet_seed`); every one is a
    /// controller-quorum member (KRaft combined mode).
    pub members: Vec<String>,
    /// Each broker's genesis outputs, in coins (the demo transfers spend them).
    #[serde(default = "default_coins")]
    pub genesis_coins: Vec<f64>,
    /// The partition's replicas are the first this many brokers (all when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<usize>,
    /// A follower not caught up for longer than this leaves the ISR, milliseconds
    /// (`replica.lag.time.max.ms`; Kafka's default is 30 000).
    #[serde(default = "default_lag")]
    pub replica_lag_time_max_ms: u64,
    /// Writes are refused, and nothing commits, while the ISR is smaller than this
    /// (`min.insync.replicas` with `acks=all`).
    #[serde(default = "default_min_insync")]
    pub min_insync_replicas: usize,
    /// When no ISR member is alive, elect any live replica, losing committed blocks
    /// (`unclean.leader.election.enable`).
    #[serde(default)]
    pub unclean_leader_election: bool,
    /// Leader epochs (KIP-101): a follower truncates to the leader's end offset of its last
    /// epoch; off, to its own high watermark (Kafka before 0.11).
    #[serde(default = "yes")]
    pub leader_epochs: bool,
    /// A follower's fetch waits at the leader at most this long for new records, milliseconds
    /// (`replica.fetch.wait.max.ms`).
    #[serde(default = "default_fetch")]
    pub fetch_interval_ms: u64,
    /// Brokers heartbeat the active controller this often, milliseconds; it is also the
    /// controller quorum's Raft heartbeat.
    #[serde(default = "default_heartbeat")]
    pub heartbeat_ms: u64,
    /// The controller deems a broker dead after this long without a heartbeat, milliseconds
    /// (`broker.session.timeout.ms`).
    #[serde(default = "default_session")]
    pub session_timeout_ms: u64,
    /// The controller quorum's Raft election timeout, milliseconds.
    #[serde(default = "default_election")]
    pub election_timeout_ms: (u64, u64),
    /// The leader cuts a block from waiting client transactions this often, milliseconds …
    #[serde(default = "default_block_interval")]
    pub block_interval_ms: u64,
    /// … or as soon as this many wait.
    #[serde(default = "default_max_block_txs")]
    pub max_block_txs: usize,
    /// The simulated network and disk.
    #[serde(default)]
    pub network: NetModel,
}

fn default_coins() -> Vec<f64> {
    vec![50.0, 50.0]
}
const fn default_lag() -> u64 {
    500
}
const fn default_min_insync() -> usize {
    2
}
const fn yes() -> bool {
    true
}
const fn default_fetch() -> u64 {
    100
}
const fn default_heartbeat() -> u64 {
    50
}
const fn default_session() -> u64 {
    400
}
const fn default_election() -> (u64, u64) {
    (150, 300)
}
const fn default_block_interval() -> u64 {
    100
}
const fn default_max_block_txs() -> usize {
    100
}

impl KafkaSpec {
    /// The partition's replicas: the first `replication_factor` brokers.
    #[must_use]
    pub fn replicas(&self) -> usize {
        self.replication_factor.unwrap_or(self.members.len())
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        let n = self.members.len();
        if n == 0 {
            return Err(bad("kafka.members", "the cluster has no brokers"));
        }
        check_names("kafka.members", &self.members)?;
        if n > MAX_MEMBERS {
            return Err(bad(
                "kafka.members",
                format!("{n} brokers, more than {MAX_MEMBERS}"),
            ));
        }
        check_coins("kafka.genesis_coins", &self.genesis_coins)?;
        let rf = self.replicas();
        if rf == 0 || rf > n {
            return Err(bad(
                "kafka.replication_factor",
                format!("{rf}: need 1 to the {n} brokers"),
            ));
        }
        if self.min_insync_replicas == 0 || self.min_insync_replicas > rf {
            return Err(bad(
                "kafka.min_insync_replicas",
                format!(
                    "{}: need 1 to the replication factor {rf}",
                    self.min_insync_replicas
                ),
            ));
        }
        let ms = |field: &'static str, v: u64| {
            if v == 0 || v > MAX_MS {
                Err(bad(field, format!("{v}: must be 1 to {MAX_MS}")))
            } else {
                Ok(())
            }
        };
        ms("kafka.fetch_interval_ms", self.fetch_interval_ms)?;
        ms(
            "kafka.replica_lag_time_max_ms",
            self.replica_lag_time_max_ms,
        )?;
        ms("kafka.heartbeat_ms", self.heartbeat_ms)?;
        ms("kafka.session_timeout_ms", self.session_timeout_ms)?;
        ms("kafka.block_interval_ms", self.block_interval_ms)?;
        if self.replica_lag_time_max_ms < 2 * self.fetch_interval_ms {
            return Err(bad(
                "kafka.replica_lag_time_max_ms",
                format!(
                    "{} must be at least twice fetch_interval_ms {} (a waiting fetch is not lag)",
                    self.replica_lag_time_max_ms, self.fetch_interval_ms
                ),
            ));
        }
        if self.session_timeout_ms <= 2 * self.heartbeat_ms {
            return Err(bad(
                "kafka.session_timeout_ms",
                format!(
                    "{} must exceed twice heartbeat_ms {}",
                    self.session_timeout_ms, self.heartbeat_ms
                ),
            ));
        }
        let (lo, hi) = self.election_timeout_ms;
        if lo == 0 || lo > hi || hi > MAX_MS {
            return Err(bad(
                "kafka.election_timeout_ms",
                format!("[{lo}, {hi}]: need 1 ≤ min ≤ max ≤ {MAX_MS}"),
            ));
        }
        if self.heartbeat_ms >= lo {
            return Err(bad(
                "kafka.heartbeat_ms",
                format!(
                    "{} must be below the minimum election timeout {lo}",
                    self.heartbeat_ms
                ),
            ));
        }
        if self.max_block_txs == 0 || self.max_block_txs > 10_000 {
            return Err(bad("kafka.max_block_txs", "must be 1 to 10000"));
        }
        check_network("kafka.network", &self.network)?;
        if self.network.persist_ms * 2.0 >= lo as f64 {
            return Err(SpecError::BadFieldAt {
                field: "kafka.network.persist_ms".into(),
                reason: format!(
                    "{} ms writes leave the controller quorum no time to elect within the {lo} ms election timeout: keep them below half of it",
                    self.network.persist_ms
                ),
            });
        }
        Ok(())
    }
}

impl SpecSection for KafkaSpec {
    const KEY: &'static str = "kafka";
}

impl ClusterSection for KafkaSpec {
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

/// `spec` (a valid Kafka spec) with `nodes` brokers and `params` merged into its `kafka`
/// section ([`crate::chain::spec::cluster_spec`]).
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    crate::chain::spec::cluster_spec::<KafkaSpec>(spec, nodes, params)
}
