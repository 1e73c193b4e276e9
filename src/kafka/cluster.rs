//! A simulated Kafka cluster ordering blocks: every broker a [`KafkaNode`] over a
//! [`BlockApp`], driven by the [`Simulator`] and judged by the [`KafkaObserver`]; the host
//! records each broker's committed chain, the committed metadata (leaders, ISR changes,
//! unclean elections) and a readable timeline.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::ChainState;
use crate::kafka::blocks::BlockApp;
use crate::kafka::engine::{Committed, Durable, KafkaConfig, KafkaNode, NodeSet, Note};
use crate::kafka::observer::KafkaObserver;
use crate::kafka::spec::KafkaSpec;
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::KeyPair;
use crate::raft::engine::RaftConfig;
use crate::sim::cluster::{BlockSink, OrderedCluster};
use crate::sim::report::{
    Latency, LeaderCrashRow, LeaderRow, ProtocolReport, Safety, SimReport, message_rows,
    name_nodes, per_block,
};
use crate::sim::{Faults, Host, MS, Micros, NodeId, SimRng, Simulator};

type Node = KafkaNode<BlockApp>;
type Block = std::sync::Arc<crate::kafka::blocks::KafkaBlock>;

/// What a cluster run is given.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// A valid Kafka spec whose members are the brokers.
    pub spec: ChainSpec,
    /// The seed.
    pub seed: u64,
    /// Faults and load.
    pub faults: Faults,
    /// Record a readable timeline.
    pub trace: bool,
    /// Unix time of virtual time 0.
    pub origin: u32,
}

/// Committed metadata, as the brokers noted it.
#[derive(Debug, Clone, Copy)]
struct Meta {
    leader: Option<NodeId>,
    epoch: u64,
    isr: NodeSet,
    unclean: bool,
}

/// The host: what the brokers committed and noted.
#[derive(Default)]
struct Recorder {
    sink: Option<BlockSink>,
    blocks: u64,
    seen: HashMap<u64, BlockHash>,
    follow_first: bool,
    first_node_blocks: VecDeque<BlockRecord>,
    metadata: BTreeMap<u64, Meta>,
    controller_elections: u64,
    refused: u64,
    truncations: u64,
    trace: Option<Vec<String>>,
    names: Vec<String>,
    last_block_at: Micros,
    appended: HashMap<u64, Micros>,
    commit_latencies: Vec<Micros>,
}

impl Host<Node> for Recorder {
    fn commit(&mut self, now: Micros, node: NodeId, c: &Committed<Block>) {
        let offset = c.record.offset;
        let hash = c.record.data.record.hash;
        if self.seen.insert(offset, hash) != Some(hash) {
            self.blocks += 1;
            self.last_block_at = now;
            if let Some(at) = self.appended.remove(&offset) {
                self.commit_latencies.push(now - at);
            }
        }
        let record = c.record.data.certified(&c.cert);
        if node == 0 && self.follow_first {
            self.first_node_blocks.push_back(record.clone());
        }
        if let Some(sink) = &mut self.sink {
            sink(node, &record);
        }
    }

    fn note(&mut self, now: Micros, node: NodeId, note: Note) {
        match note {
            Note::Controller {
                role: crate::raft::engine::Role::Candidate,
                ..
            } => self.controller_elections += 1,
            Note::Metadata {
                version,
                leader,
                epoch,
                isr,
                unclean,
            } => {
                self.metadata.entry(version).or_insert(Meta {
                    leader,
                    epoch,
                    isr,
                    unclean,
                });
            }
            Note::Appended { offset, .. } => {
                self.appended.insert(offset, now);
            }
            Note::Refused { count, .. } => self.refused += count,
            Note::Truncated { .. } => self.truncations += 1,
            _ => {}
        }
        if let Some(trace) = &mut self.trace {
            trace.push(format!(
                "{:>9.3} s  {:<4} {}",
                now as f64 / 1e6,
                self.names[node],
                name_nodes(&note.to_string(), &self.names)
            ));
        }
    }
}

/// A simulated Kafka cluster. See the module docs.
pub struct Cluster {
    sim: Simulator<Node>,
    observer: KafkaObserver<BlockApp>,
    host: Recorder,
    spec: ChainSpec,
    kafka: KafkaSpec,
    names: Vec<String>,
    seed: u64,
    started: bool,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("nodes", &self.names)
            .field("now", &self.sim.now())
            .finish_non_exhaustive()
    }
}

/// A broker's configuration from the spec.
#[must_use]
pub fn node_config(kafka: &KafkaSpec, id: NodeId) -> KafkaConfig {
    KafkaConfig {
        id,
        members: kafka.members.len(),
        replicas: kafka.replicas(),
        lag_max: kafka.replica_lag_time_max_ms * MS,
        min_insync: kafka.min_insync_replicas,
        unclean: kafka.unclean_leader_election,
        leader_epochs: kafka.leader_epochs,
        fetch_interval: kafka.fetch_interval_ms * MS,
        heartbeat: kafka.heartbeat_ms * MS,
        session_timeout: kafka.session_timeout_ms * MS,
        cut_interval: kafka.block_interval_ms * MS,
        max_batch: kafka.max_block_txs,
        controller: RaftConfig {
            id,
            members: kafka.members.len(),
            election: (
                kafka.election_timeout_ms.0 * MS,
                kafka.election_timeout_ms.1 * MS,
            ),
            heartbeat: kafka.heartbeat_ms * MS,
            cut_interval: 10 * MS,
            max_batch: 1,
            max_append: crate::raft::engine::MAX_APPEND,
            pre_vote: true,
            check_quorum: true,
            #[cfg(test)]
            bug: None,
        },
        #[cfg(test)]
        bug: None,
    }
}

/// What every broker holds before its first start over `base`: the log starts after the
/// chain's last block, epochs after its last epoch.
pub(crate) fn initial_disk(base: &ChainState) -> Durable<Block> {
    match last_seal(base) {
        Some((epoch, offset)) => Durable {
            base: offset + 1,
            base_epoch: epoch,
            hw: offset + 1,
            ..Durable::default()
        },
        None => Durable::default(),
    }
}

/// A broker over the chain `state` (the block at offset `start` next), sealing with `key`,
/// restarted from `disk`: as the simulator and a real node both build it.
pub(crate) fn boot_node(
    config: KafkaConfig,
    state: &ChainState,
    key: KeyPair,
    origin: u32,
    start: u64,
    disk: &Durable<Block>,
    rng: SimRng,
) -> Node {
    let unclean = config.unclean;
    let app = BlockApp::new(state.clone(), key, origin, start, unclean);
    KafkaNode::new(config, disk, rng, app)
}

impl Cluster {
    /// A cluster over `base`, a chain of `run.spec` (its genesis, or a Kafka chain to
    /// continue: the log starts after its last block, epochs after its last epoch).
    #[must_use]
    pub fn new(run: &ClusterRun, base: &ChainState) -> Self {
        Self::with_config(run, base, node_config)
    }

    /// As [`Cluster::new`], each broker configured by `config` (tests plant bugs this way).
    pub(crate) fn with_config(
        run: &ClusterRun,
        base: &ChainState,
        config: fn(&KafkaSpec, NodeId) -> KafkaConfig,
    ) -> Self {
        let kafka = run
            .spec
            .section::<KafkaSpec>()
            .expect("a valid kafka spec")
            .clone();
        let names = kafka.members.clone();
        let n = names.len();
        let disk = initial_disk(base);
        let keys: Vec<KeyPair> = names
            .iter()
            .map(|m| KeyPair::derive(&run.spec.wallet_seed, m))
            .collect();
        let state = base.clone();
        let origin = run.origin;
        let (start, unclean) = (disk.base, kafka.unclean_leader_election);
        let spec = kafka.clone();
        let boot = Box::new(move |id: NodeId, disk: &Durable<Block>, rng: SimRng| {
            let config = config(&spec, id);
            boot_node(config, &state, keys[id].clone(), origin, start, disk, rng)
        });
        let sim = Simulator::new(n, run.seed, kafka.network, run.faults.clone(), &disk, boot);
        Self {
            sim,
            observer: KafkaObserver::new(n, disk.base, unclean),
            host: Recorder {
                trace: run.trace.then(Vec::new),
                names: names.clone(),
                ..Recorder::default()
            },
            spec: run.spec.clone(),
            kafka,
            names,
            seed: run.seed,
            started: false,
        }
    }

    fn start(&mut self) {
        if !self.started {
            self.started = true;
            self.sim.start(&mut self.observer, &mut self.host);
        }
    }

    /// Committed blocks lost to unclean leader elections.
    #[must_use]
    pub const fn lost_committed(&self) -> u64 {
        self.observer.lost()
    }

    /// Broker `node`'s engine, if it is up.
    #[must_use]
    pub fn engine(&self, node: NodeId) -> Option<&Node> {
        self.sim.engine(node)
    }

    /// Crashes `node` now.
    pub fn crash_now(&mut self, node: NodeId) {
        self.sim.crash_now(node);
    }

    /// Cuts the link from `from` to `to` from now until `end`.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId, end: Micros) {
        self.sim.cut_link(from, to, end);
    }

    /// Runs until `stop` holds (checked after each event) or virtual time `until`; false
    /// when a violation ended it.
    pub fn run_until_with(
        &mut self,
        until: Micros,
        stop: &mut dyn FnMut(&Simulator<Node>) -> bool,
    ) -> bool {
        self.start();
        self.sim
            .run_until(until, &mut self.observer, &mut self.host, stop)
    }
}

impl OrderedCluster for Cluster {
    fn now(&self) -> Micros {
        self.sim.now()
    }

    fn follow_first_correct(&mut self) {
        self.host.follow_first = true;
    }

    fn next_followed_block(&mut self) -> Option<BlockRecord> {
        self.host.first_node_blocks.pop_front()
    }

    fn run_until(&mut self, until: Micros) -> bool {
        self.start();
        self.sim
            .run_until(until, &mut self.observer, &mut self.host, &mut |_| false)
    }

    fn blocks(&self) -> u64 {
        self.host.blocks
    }

    fn last_block_at(&self) -> Micros {
        self.host.last_block_at
    }

    fn set_sink(&mut self, sink: BlockSink) {
        self.host.sink = Some(sink);
    }

    fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn names(&self) -> &[String] {
        &self.names
    }

    fn trace(&self) -> &[String] {
        self.host.trace.as_deref().unwrap_or(&[])
    }

    fn report(&self) -> SimReport {
        let stats = self.sim.stats();
        let blocks = self.host.blocks;
        let per_block = |v: u64| per_block(v, blocks);
        let messages = message_rows(crate::kafka::engine::MSG_KINDS, &stats, blocks);
        let faults: Vec<String> = (0..self.sim.len())
            .filter_map(|n| {
                self.sim
                    .engine(n)
                    .and_then(|e| e.app().fault())
                    .map(|f| format!("{}: {f}", self.names[n]))
            })
            .collect();
        let (mut elections, mut unclean, mut shrinks, mut expands) = (0, 0, 0, 0);
        let mut leaders = Vec::new();
        let mut previous: Option<Meta> = None;
        for m in self.host.metadata.values() {
            let prev_epoch = previous.map(|p| p.epoch);
            if prev_epoch != Some(m.epoch)
                && let Some(l) = m.leader
            {
                elections += 1;
                unclean += u64::from(m.unclean);
                leaders.push(LeaderRow {
                    term: m.epoch,
                    leader: self.names[l].clone(),
                });
            }
            // A new leader's metadata may shrink the ISR too (the dead leader leaves it).
            if let Some(p) = previous {
                let (before, after) = (p.isr.0.count_ones(), m.isr.0.count_ones());
                if after < before {
                    shrinks += 1;
                } else if after > before {
                    expands += 1;
                }
            }
            previous = Some(*m);
        }
        let total_sent: u64 = stats.sent.iter().sum();
        let total_bytes: u64 = stats.bytes.iter().sum();
        SimReport {
            rule: "kafka",
            spec: self.spec.name.clone(),
            nodes: self.names.clone(),
            seed: self.seed,
            virtual_s: self.sim.now() as f64 / 1e6,
            events: stats.events,
            blocks,
            entries: self.observer.committed_count(),
            protocol: ProtocolReport::Kafka {
                leader_elections: elections,
                unclean_elections: unclean,
                leaders,
                isr_shrinks: shrinks,
                isr_expands: expands,
                refused_writes: self.host.refused,
                truncations: self.host.truncations,
                lost_committed: self.observer.lost(),
                controller_elections: self.host.controller_elections,
                replicas: self.kafka.replicas() as u64,
                min_insync_replicas: self.kafka.min_insync_replicas as u64,
                leader_epochs: self.kafka.leader_epochs,
                unclean_leader_election: self.kafka.unclean_leader_election,
            },
            leaderless_s: stats.leaderless_us as f64 / 1e6,
            leader_crashes: LeaderCrashRow::of(&stats, &self.names),
            requests: stats.submitted,
            answered: stats.latencies.len() as u64,
            retries: stats.retries,
            abandoned: stats.abandoned,
            latency_ms: Latency::of(stats.latencies.clone()),
            block_commit_ms: Latency::of(self.host.commit_latencies.clone()),
            messages,
            messages_per_block: per_block(total_sent),
            bytes_per_block: per_block(total_bytes),
            signatures_per_block: self.kafka.replicas() as f64,
            dropped: stats.dropped,
            safety: Safety::judge(self.sim.violation(), &faults, self.sim.now(), &self.names),
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// `mine kafka`'s cluster: fault-free, over the chain so far.
#[must_use]
pub fn mine_cluster(
    spec: &ChainSpec,
    state: &ChainState,
    origin: u32,
    faults: Faults,
) -> Box<dyn OrderedCluster + Send> {
    let run = ClusterRun {
        spec: spec.clone(),
        seed: 1,
        faults,
        trace: false,
        origin,
    };
    Box::new(Cluster::new(&run, state))
}

/// The (epoch, offset) of the chain's last block's Kafka seal, if it has one.
#[must_use]
pub fn last_seal(state: &ChainState) -> Option<(u64, u64)> {
    state
        .rule_state_as::<crate::kafka::rule::KafkaState>()?
        .last_seal()
}
