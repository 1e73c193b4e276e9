//! A simulated PBFT cluster ordering blocks: every replica a [`PbftNode`] over a
//! [`BlockApp`], honest or Byzantine ([`Replica`]), driven by the [`Simulator`] and judged by
//! the [`PbftObserver`]; the host records each correct replica's committed chain, the notes
//! (view changes, primaries, checkpoints) and a readable timeline.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::ChainState;
use crate::pbft::blocks::{BlockApp, PbftBlock};
use crate::pbft::byzantine::{Behaviour, Replica};
use crate::pbft::engine::{Durable, Executed, MSG_KINDS, Note, PbftConfig, PbftNode};
use crate::pbft::observer::PbftObserver;
use crate::pbft::spec::PbftSpec;
use crate::primitives::tx::KeyPair;
use crate::sim::cluster::{BlockSink, OrderedCluster};
use crate::sim::report::{
    ByzantineRow, Latency, LeaderCrashRow, MessageRow, PrimaryRow, ProtocolReport, Safety,
    SimReport, message_rows, per_block,
};
use crate::sim::{Faults, Host, MS, Micros, NodeId, SimRng, SimStats, Simulator};

type Node = Replica<BlockApp>;

/// What a cluster run is given.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// A valid PBFT spec whose members are the replicas.
    pub spec: ChainSpec,
    /// The seed.
    pub seed: u64,
    /// Faults and load.
    pub faults: Faults,
    /// Replicas that do not follow the protocol.
    pub byzantine: Vec<(NodeId, Behaviour)>,
    /// Record a readable timeline.
    pub trace: bool,
    /// Unix time of virtual time 0 (block times count from it).
    pub origin: u32,
}

/// The host: what the correct replicas committed and noted.
#[derive(Default)]
struct Recorder {
    sink: Option<BlockSink>,
    honest: Vec<bool>,
    n: usize,
    blocks: u64,
    max_seq: u64,
    last_block_at: Micros,
    follow: Option<NodeId>,
    followed: VecDeque<BlockRecord>,
    primaries: BTreeMap<u64, NodeId>,
    stable: u64,
    skipped: u64,
    signatures: u64,
    proposed: HashMap<u64, Micros>,
    commit_latencies: Vec<Micros>,
    trace: Option<Vec<String>>,
    names: Vec<String>,
}

impl Host<Node> for Recorder {
    fn commit(&mut self, now: Micros, node: NodeId, e: &Arc<Executed<Arc<PbftBlock>>>) {
        if !self.honest[node] {
            return;
        }
        let first = e.seq > self.max_seq;
        if first {
            self.max_seq = e.seq;
            if let Some(at) = self.proposed.remove(&e.seq) {
                self.commit_latencies.push(now - at);
            }
        }
        let Some(block) = &e.block else {
            return;
        };
        if !e.applied {
            if first {
                self.skipped += 1;
            }
            return;
        }
        let record = block.certified(e);
        if first {
            self.blocks += 1;
            self.last_block_at = now;
            self.signatures += e.cert.signatures.len() as u64;
        }
        if self.follow == Some(node) {
            self.followed.push_back(record.clone());
        }
        if let Some(sink) = &mut self.sink {
            sink(node, &record);
        }
    }

    fn note(&mut self, now: Micros, node: NodeId, note: Note) {
        if !self.honest[node] {
            return;
        }
        match note {
            Note::View { view } => {
                self.primaries
                    .insert(view, (view % self.n as u64) as NodeId);
            }
            Note::Proposed { seq } => {
                self.proposed.entry(seq).or_insert(now);
            }
            Note::Stable { .. } if Some(node) == self.honest.iter().position(|h| *h) => {
                self.stable += 1;
            }
            _ => {}
        }
        if let Some(trace) = &mut self.trace {
            trace.push(format!(
                "{:>9.3} s  {:<4} {}",
                now as f64 / 1e6,
                self.names[node],
                note
            ));
        }
    }
}

/// A simulated PBFT cluster. See the module docs.
pub struct Cluster {
    sim: Simulator<Node>,
    observer: PbftObserver,
    host: Recorder,
    spec: ChainSpec,
    names: Vec<String>,
    byzantine: Vec<(NodeId, Behaviour)>,
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

/// `mine pbft`'s cluster: fault-free, over the chain so far.
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
        byzantine: Vec::new(),
        trace: false,
        origin,
    };
    Box::new(Cluster::new(&run, state))
}

/// Replica `id`'s configuration from the spec, with keys derived from its wallet seed.
#[must_use]
pub fn node_config(spec: &ChainSpec, pbft: &PbftSpec, id: NodeId, base: u64) -> PbftConfig {
    let keys: Vec<KeyPair> = pbft
        .members
        .iter()
        .map(|m| KeyPair::derive(&spec.wallet_seed, m))
        .collect();
    PbftConfig {
        id,
        keys: Arc::new(keys.iter().map(KeyPair::pubkey).collect()),
        key: keys[id].clone(),
        block_interval: pbft.block_interval_ms * MS,
        max_batch: pbft.max_block_txs,
        checkpoint_interval: pbft.checkpoint_interval,
        window: pbft.window,
        view_timeout: pbft.view_timeout_ms * MS,
        base,
        #[cfg(test)]
        bug: None,
    }
}

/// The sequence number of `base`'s last block (0 for a chain without PBFT blocks): the
/// replicas' sequence numbers go on after it.
pub(crate) fn base_sequence(base: &ChainState) -> u64 {
    base.rule_state_as::<crate::pbft::rule::PbftState>()
        .and_then(crate::pbft::rule::PbftState::last_sequence)
        .unwrap_or(0)
}

/// A replica over the chain `state`, behaving as `behaviour`, restarted from `disk`: as
/// the simulator and a real node both build it.
pub(crate) fn boot_replica(
    config: PbftConfig,
    state: &ChainState,
    origin: u32,
    behaviour: Behaviour,
    twins: &[bool],
    disk: &Durable<Arc<PbftBlock>>,
    rng: SimRng,
) -> Node {
    let app = BlockApp::new(state.clone(), origin);
    let node = PbftNode::new(config, disk, app.clone());
    Replica::new(behaviour, node, disk, &app, twins, rng)
}

impl Cluster {
    /// A cluster over `base`, a chain of `run.spec` (its genesis, or a PBFT chain to
    /// continue: sequence numbers go on after its last block's).
    #[must_use]
    pub fn new(run: &ClusterRun, base: &ChainState) -> Self {
        Self::with_config(run, base, |_| {})
    }

    /// As [`Cluster::new`], each replica's configuration changed by `tweak` (tests plant
    /// bugs this way).
    pub(crate) fn with_config(
        run: &ClusterRun,
        base: &ChainState,
        tweak: fn(&mut PbftConfig),
    ) -> Self {
        let pbft = run
            .spec
            .section::<PbftSpec>()
            .expect("a valid pbft spec")
            .clone();
        let names = pbft.members.clone();
        let n = names.len();
        let base_seq = base_sequence(base);
        let mut behaviours = vec![Behaviour::Honest; n];
        for (i, b) in &run.byzantine {
            behaviours[*i] = *b;
        }
        let twins: Vec<bool> = behaviours.iter().map(|b| *b == Behaviour::Twins).collect();
        let honest: Vec<bool> = behaviours.iter().map(|b| *b == Behaviour::Honest).collect();
        let spec = run.spec.clone();
        let state = base.clone();
        let origin = run.origin;
        let boot_pbft = pbft.clone();
        let boot = Box::new(move |id: NodeId, disk: &Durable<_>, rng: SimRng| {
            let mut config = node_config(&spec, &boot_pbft, id, base_seq);
            tweak(&mut config);
            boot_replica(config, &state, origin, behaviours[id], &twins, disk, rng)
        });
        let mut sim = Simulator::new(
            n,
            run.seed,
            pbft.network,
            run.faults.clone(),
            &Durable::default(),
            boot,
        );
        sim.byzantine_clients((pbft.f() + 1) as u32);
        let keys = node_config(&run.spec, &pbft, 0, base_seq).keys;
        Self {
            sim,
            observer: PbftObserver::new(keys.to_vec(), honest.clone(), base_seq, true),
            host: Recorder {
                honest,
                n,
                trace: run.trace.then(Vec::new),
                names: names.clone(),
                max_seq: base_seq,
                ..Recorder::default()
            },
            spec: run.spec.clone(),
            names,
            byzantine: run.byzantine.clone(),
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

    /// The simulator's counters.
    #[must_use]
    pub fn stats(&self) -> SimStats {
        self.sim.stats()
    }

    /// The first violation, if any.
    #[must_use]
    pub fn violation(&self) -> Option<&crate::sim::Violation> {
        self.sim.violation()
    }
}

impl OrderedCluster for Cluster {
    fn now(&self) -> Micros {
        self.sim.now()
    }

    fn follow_first_correct(&mut self) {
        self.host.follow = self.host.honest.iter().position(|h| *h);
    }

    fn next_followed_block(&mut self) -> Option<BlockRecord> {
        self.host.followed.pop_front()
    }

    fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    fn names(&self) -> &[String] {
        &self.names
    }

    fn set_sink(&mut self, sink: BlockSink) {
        self.host.sink = Some(sink);
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

    fn trace(&self) -> &[String] {
        self.host.trace.as_deref().unwrap_or(&[])
    }

    fn report(&self) -> SimReport {
        let stats = self.sim.stats();
        let blocks = self.host.blocks;
        let per_block = |v: u64| per_block(v, blocks);
        let mut messages = message_rows(MSG_KINDS, &stats, blocks);
        // Replies go to clients, not replicas: reported, not counted in the totals.
        messages.push(MessageRow::new(
            "reply (to clients)",
            stats.replies,
            stats.replies * REPLY_BYTES,
            blocks,
        ));
        let total_sent: u64 = stats.sent.iter().sum();
        let total_bytes: u64 = stats.bytes.iter().sum();
        SimReport {
            rule: "pbft",
            spec: self.spec.name.clone(),
            nodes: self.names.clone(),
            seed: self.seed,
            virtual_s: self.sim.now() as f64 / 1e6,
            events: stats.events,
            blocks,
            entries: self.observer.entries(),
            protocol: ProtocolReport::Pbft {
                view_changes: self.host.primaries.len().saturating_sub(1) as u64,
                primaries: self
                    .host
                    .primaries
                    .iter()
                    .map(|(v, p)| PrimaryRow {
                        view: *v,
                        primary: self.names[*p].clone(),
                    })
                    .collect(),
                stable_checkpoints: self.host.stable,
                skipped: self.host.skipped,
                byzantine: self
                    .byzantine
                    .iter()
                    .map(|(n, b)| ByzantineRow {
                        node: self.names[*n].clone(),
                        behaviour: b.name().to_owned(),
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
            signatures_per_block: per_block(self.host.signatures),
            dropped: stats.dropped,
            safety: Safety::judge(self.sim.violation(), &[], self.sim.now(), &self.names),
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// A reply's size on the wire: view, timestamp, client, replica, result digest, signature.
const REPLY_BYTES: u64 = 8 + 8 + 4 + 4 + 32 + 64;
