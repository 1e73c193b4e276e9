//! A simulated Paxos cluster ordering blocks: every member a [`PaxosNode`] over a
//! [`BlockApp`], driven by the [`Simulator`] and judged by the [`PaxosObserver`]; the host
//! records each node's executed chain, the notes (ballots, preemptions, leaders) and a
//! readable timeline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::ChainState;
use crate::paxos::blocks::{BlockApp, PaxosBlock};
use crate::paxos::engine::{Ballot, Chosen, Durable, Note, PaxosConfig, PaxosNode};
use crate::paxos::observer::PaxosObserver;
use crate::paxos::spec::PaxosSpec;
use crate::primitives::tx::KeyPair;
use crate::sim::cluster::{BlockSink, OrderedCluster};
use crate::sim::report::{
    BallotRow, Latency, LeaderCrashRow, ProtocolReport, Safety, SimReport, message_rows,
    name_nodes, per_block,
};
use crate::sim::{Faults, Host, MS, Micros, NodeId, SimRng, SimStats, Simulator, Violation};

type Node = PaxosNode<BlockApp>;

/// What a cluster run is given.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// A valid Paxos spec whose members are the nodes.
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

/// The host: what the cluster's nodes executed and noted.
#[derive(Default)]
struct Recorder {
    sink: Option<BlockSink>,
    last: Vec<u64>,
    blocks: u64,
    max_slot: u64,
    follow_first: bool,
    first_node_blocks: VecDeque<BlockRecord>,
    campaigns: u64,
    preemptions: u64,
    noops: u64,
    ballots: BTreeMap<Ballot, NodeId>,
    trace: Option<Vec<String>>,
    names: Vec<String>,
    last_block_at: Micros,
    proposed: HashMap<u64, Micros>,
    commit_latencies: Vec<Micros>,
}

impl Host<Node> for Recorder {
    fn commit(&mut self, now: Micros, node: NodeId, c: &Arc<Chosen<Arc<PaxosBlock>>>) {
        if c.slot <= self.last[node] {
            // Executed again from its disk after a restart: already in this node's chain.
            return;
        }
        self.last[node] = c.slot;
        let Some(block) = &c.value else {
            return;
        };
        if c.slot > self.max_slot {
            self.max_slot = c.slot;
            self.blocks += 1;
            self.last_block_at = now;
            if let Some(at) = self.proposed.remove(&c.slot) {
                self.commit_latencies.push(now - at);
            }
        }
        let record = block.certified(c);
        if node == 0 && self.follow_first {
            self.first_node_blocks.push_back(record.clone());
        }
        if let Some(sink) = &mut self.sink {
            sink(node, &record);
        }
    }

    fn note(&mut self, now: Micros, node: NodeId, note: Note) {
        match note {
            Note::Prepared { .. } => self.campaigns += 1,
            Note::Preempted { .. } => self.preemptions += 1,
            Note::Leads { ballot, noops, .. } => {
                self.ballots.insert(ballot, node);
                self.noops += noops;
            }
            Note::Proposed { slot, .. } => {
                self.proposed.insert(slot, now);
            }
            Note::Learned { .. } => {}
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

/// A simulated Paxos cluster. See the module docs.
pub struct Cluster {
    sim: Simulator<Node>,
    observer: PaxosObserver<BlockApp>,
    host: Recorder,
    spec: ChainSpec,
    names: Vec<String>,
    seed: u64,
    backoff: bool,
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

/// A node's configuration from the spec: member `id` of a chain whose last slot is `base`.
#[must_use]
pub fn node_config(spec: &ChainSpec, id: NodeId, base: u64) -> PaxosConfig {
    let p = spec.section::<PaxosSpec>().expect("a valid paxos spec");
    let keys: Vec<KeyPair> = p
        .members
        .iter()
        .map(|m| KeyPair::derive(&spec.wallet_seed, m))
        .collect();
    PaxosConfig {
        id,
        keys: Arc::new(keys.iter().map(KeyPair::pubkey).collect()),
        key: keys[id].clone(),
        election: (p.election_timeout_ms.0 * MS, p.election_timeout_ms.1 * MS),
        heartbeat: p.heartbeat_ms * MS,
        cut_interval: p.block_interval_ms * MS,
        max_batch: p.max_block_txs,
        backoff: p.backoff,
        backoff_base: p.backoff_ms * MS,
        base,
        #[cfg(test)]
        bug: None,
    }
}

/// A node over the chain `state`, restarted from `disk`: as the simulator and a real node
/// both build it.
pub(crate) fn boot_node(
    config: PaxosConfig,
    state: &ChainState,
    origin: u32,
    disk: &Durable<Arc<PaxosBlock>>,
    rng: SimRng,
) -> Node {
    PaxosNode::new(config, disk, rng, BlockApp::new(state.clone(), origin))
}

impl Cluster {
    /// A cluster over `base`, a chain of `run.spec` (its genesis, or a Paxos chain to
    /// continue: slots start after its last block's).
    #[must_use]
    pub fn new(run: &ClusterRun, base: &ChainState) -> Self {
        Self::with_config(run, base, node_config)
    }

    /// As [`Cluster::new`], each node configured by `config` (tests plant bugs this way).
    pub(crate) fn with_config(
        run: &ClusterRun,
        base: &ChainState,
        config: fn(&ChainSpec, NodeId, u64) -> PaxosConfig,
    ) -> Self {
        let p = run
            .spec
            .section::<PaxosSpec>()
            .expect("a valid paxos spec")
            .clone();
        let names = p.members.clone();
        let n = names.len();
        let last = last_slot(base).unwrap_or(0);
        let state = base.clone();
        let origin = run.origin;
        let spec = run.spec.clone();
        let configs: Vec<PaxosConfig> = (0..n).map(|id| config(&spec, id, last)).collect();
        let keys = configs[0].keys.as_ref().clone();
        let boot = Box::new(move |id: NodeId, disk: &Durable<_>, rng: SimRng| {
            boot_node(configs[id].clone(), &state, origin, disk, rng)
        });
        let sim = Simulator::new(
            n,
            run.seed,
            p.network,
            run.faults.clone(),
            &Durable::default(),
            boot,
        );
        Self {
            sim,
            observer: PaxosObserver::new(keys, last),
            host: Recorder {
                last: vec![last; n],
                trace: run.trace.then(Vec::new),
                names: names.clone(),
                ..Recorder::default()
            },
            spec: run.spec.clone(),
            names,
            seed: run.seed,
            backoff: p.backoff,
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
        let messages = message_rows(crate::paxos::engine::MSG_KINDS, &stats, blocks);
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
        let majority = crate::consensus::quorum::majority(self.names.len());
        SimReport {
            rule: "paxos",
            spec: self.spec.name.clone(),
            nodes: self.names.clone(),
            seed: self.seed,
            virtual_s: self.sim.now() as f64 / 1e6,
            events: stats.events,
            blocks,
            entries: self.observer.chosen_count(),
            protocol: ProtocolReport::Paxos {
                campaigns: self.host.campaigns,
                preemptions: self.host.preemptions,
                ballots: self
                    .host
                    .ballots
                    .iter()
                    .map(|(b, n)| BallotRow {
                        round: b.round,
                        leader: self.names[*n].clone(),
                    })
                    .collect(),
                noops: self.host.noops,
                backoff: self.backoff,
                livelock: self.observer.chosen_count() == 0 && self.host.preemptions > 0,
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
            signatures_per_block: majority as f64,
            dropped: stats.dropped,
            safety: Safety::judge(self.sim.violation(), &faults, self.sim.now(), &self.names),
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// `mine paxos`'s cluster: fault-free, over the chain so far.
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

/// The slot of the chain's last block, if it has one after genesis.
#[must_use]
pub fn last_slot(state: &ChainState) -> Option<u64> {
    state
        .rule_state_as::<crate::paxos::rule::PaxosState>()?
        .last_slot()
}
