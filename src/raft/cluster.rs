//! A simulated Raft cluster ordering blocks: every member a [`RaftNode`] over a [`BlockApp`],
//! driven by the [`Simulator`] and judged by the [`RaftObserver`]; the host records each
//! node's committed chain, the notes (elections, leaders) and a readable timeline.

use std::collections::{BTreeMap, VecDeque};

use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SpecError};
use crate::chain::state::ChainState;
use crate::primitives::tx::{KeyPair, Transaction};
use crate::raft::blocks::{BlockApp, RaftBlock};
use crate::raft::engine::{Durable, Entry, Note, RaftConfig, RaftNode, Role};
use crate::raft::observer::RaftObserver;
use crate::raft::spec::RaftSpec;
use crate::sim::cluster::{BlockSink, OrderedCluster};
use crate::sim::report::{
    Latency, LeaderCrashRow, LeaderRow, ProtocolReport, Safety, SimReport, message_rows,
    name_nodes, per_block,
};
use crate::sim::{Faults, Host, MS, Micros, NodeId, SimRng, SimStats, Simulator, Violation};

type Node = RaftNode<BlockApp>;

/// `spec` (a valid Raft spec) with `nodes` members — the first of its own, then `s6`, `s7`…
/// as needed — and `params` merged into its `raft` section
/// ([`crate::chain::spec::cluster_spec`]).
///
/// # Errors
/// [`SpecError`] naming the parameter that is unknown or out of range.
pub fn cluster_spec(
    spec: &ChainSpec,
    nodes: Option<usize>,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ChainSpec, SpecError> {
    crate::chain::spec::cluster_spec::<RaftSpec>(spec, nodes, params)
}

/// What a cluster run is given.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// A valid Raft spec whose members are the nodes.
    pub spec: ChainSpec,
    /// The seed.
    pub seed: u64,
    /// Faults and load.
    pub faults: Faults,
    /// Record a readable timeline.
    pub trace: bool,
    /// Unix time of virtual time 0 (block times count from it).
    pub origin: u32,
}

/// The host: what the cluster's nodes committed and noted.
#[derive(Default)]
struct Recorder {
    sink: Option<BlockSink>,
    last: Vec<u64>,
    blocks: u64,
    max_block_index: u64,
    follow_first: bool,
    first_node_blocks: VecDeque<BlockRecord>,
    elections: u64,
    leaders: BTreeMap<u64, NodeId>,
    trace: Option<Vec<String>>,
    names: Vec<String>,
    last_block_at: Micros,
    appended: std::collections::HashMap<u64, Micros>,
    commit_latencies: Vec<Micros>,
}

impl Host<Node> for Recorder {
    fn commit(
        &mut self,
        now: Micros,
        node: NodeId,
        entry: &std::sync::Arc<Entry<std::sync::Arc<RaftBlock>>>,
    ) {
        if entry.index <= self.last[node] {
            // Re-applied from the log after a restart: already in this node's chain.
            return;
        }
        self.last[node] = entry.index;
        let Some(block) = &entry.command else {
            return;
        };
        if entry.index > self.max_block_index {
            self.max_block_index = entry.index;
            self.blocks += 1;
            self.last_block_at = now;
            if let Some(at) = self.appended.remove(&entry.index) {
                self.commit_latencies.push(now - at);
            }
        }
        if node == 0 && self.follow_first {
            self.first_node_blocks.push_back(block.record.clone());
        }
        if let Some(sink) = &mut self.sink {
            sink(node, &block.record);
        }
    }

    fn note(&mut self, now: Micros, node: NodeId, note: Note) {
        match note {
            Note::Role {
                role: Role::Candidate,
                ..
            } => self.elections += 1,
            Note::Role {
                role: Role::Leader,
                term,
            } => {
                self.leaders.insert(term, node);
            }
            Note::Appended {
                index,
                command: true,
                ..
            } => {
                self.appended.insert(index, now);
            }
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

/// A simulated Raft cluster. See the module docs.
pub struct Cluster {
    sim: Simulator<Node>,
    observer: RaftObserver<BlockApp>,
    host: Recorder,
    spec: ChainSpec,
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

/// A node's configuration from the spec.
#[must_use]
pub fn node_config(raft: &RaftSpec, id: NodeId) -> RaftConfig {
    RaftConfig {
        id,
        members: raft.members.len(),
        election: (
            raft.election_timeout_ms.0 * MS,
            raft.election_timeout_ms.1 * MS,
        ),
        heartbeat: raft.heartbeat_ms * MS,
        cut_interval: raft.block_interval_ms * MS,
        max_batch: raft.max_block_txs,
        max_append: crate::raft::engine::MAX_APPEND,
        pre_vote: raft.pre_vote,
        check_quorum: raft.check_quorum,
        #[cfg(test)]
        bug: None,
    }
}

impl Cluster {
    /// A cluster over `base`, a chain of `run.spec` (its genesis, or a Raft chain to continue:
    /// every node starts with the log after its last block).
    #[must_use]
    pub fn new(run: &ClusterRun, base: &ChainState) -> Self {
        Self::with_config(run, base, node_config)
    }

    /// As [`Cluster::new`], each node configured by `config` (tests plant bugs this way).
    pub(crate) fn with_config(
        run: &ClusterRun,
        base: &ChainState,
        config: fn(&RaftSpec, NodeId) -> RaftConfig,
    ) -> Self {
        let raft = run
            .spec
            .section::<RaftSpec>()
            .expect("a valid raft spec")
            .clone();
        let names = raft.members.clone();
        let n = names.len();
        let disk = match base.tip().and_then(|_| last_seal(base)) {
            Some((term, index)) => Durable {
                term,
                voted_for: None,
                base: (index, term),
                log: Vec::new(),
            },
            None => Durable::default(),
        };
        let keys: Vec<KeyPair> = names
            .iter()
            .map(|m| KeyPair::derive(&run.spec.wallet_seed, m))
            .collect();
        let state = base.clone();
        let origin = run.origin;
        let boot = Box::new(move |id: NodeId, disk: &Durable<_>, rng: SimRng| {
            let app = BlockApp::new(state.clone(), keys[id].clone(), origin);
            RaftNode::new(config(&raft, id), disk, rng, app)
        });
        let net = run.spec.section::<RaftSpec>().expect("raft").network;
        let sim = Simulator::new(n, run.seed, net, run.faults.clone(), &disk, boot);
        Self {
            sim,
            observer: RaftObserver::new(n, disk.base.0),
            host: Recorder {
                last: vec![disk.base.0; n],
                trace: run.trace.then(Vec::new),
                names: names.clone(),
                ..Recorder::default()
            },
            spec: run.spec.clone(),
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

    /// The first violation, if any.
    #[must_use]
    pub fn violation(&self) -> Option<&Violation> {
        self.sim.violation()
    }

    /// A hash of the whole run: equal for equal seeds and scenarios.
    #[must_use]
    pub const fn trace_hash(&self) -> u64 {
        self.sim.trace_hash()
    }

    /// The simulator's counters.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.sim.stats()
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
        let messages = message_rows(crate::raft::engine::MSG_KINDS, &stats, blocks);
        let faults: Vec<String> = (0..self.sim.len())
            .filter_map(|n| {
                self.sim
                    .engine(n)
                    .and_then(|e| e.app().fault())
                    .map(|f| format!("{}: {f}", self.names[n]))
            })
            .collect();
        let total_sent: u64 = stats.sent.iter().sum();
        let total_bytes: u64 = stats.bytes.iter().sum();
        SimReport {
            rule: "raft",
            spec: self.spec.name.clone(),
            nodes: self.names.clone(),
            seed: self.seed,
            virtual_s: self.sim.now() as f64 / 1e6,
            events: stats.events,
            blocks,
            entries: self.observer.committed_count(),
            protocol: ProtocolReport::Raft {
                elections: self.host.elections,
                leaders: self
                    .host
                    .leaders
                    .iter()
                    .map(|(t, n)| LeaderRow {
                        term: *t,
                        leader: self.names[*n].clone(),
                    })
                    .collect(),
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
            signatures_per_block: 1.0,
            dropped: stats.dropped,
            safety: Safety::judge(self.sim.violation(), &faults, self.sim.now(), &self.names),
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// `mine raft`'s cluster: fault-free, over the chain so far.
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

/// The (term, index) of the chain's last block's Raft seal, if it has one.
#[must_use]
pub fn last_seal(state: &ChainState) -> Option<(u64, u64)> {
    state
        .rule_state_as::<crate::raft::rule::RaftState>()?
        .last_seal()
}

/// The seal of a Raft block: (leader, term, index).
#[must_use]
pub fn seal_of(record: &BlockRecord) -> Option<(crate::primitives::tx::PubKey, u64, u64)> {
    match record.txs.get(1) {
        Some(Transaction::Raft {
            leader,
            term,
            index,
            ..
        }) => Some((*leader, *term, *index)),
        _ => None,
    }
}
