//! A simulated ZAB ensemble ordering blocks: every member a [`ZabNode`] over a [`BlockApp`],
//! driven by the [`Simulator`] on FIFO links and judged by the [`ZabObserver`]; the host
//! records each server's delivered chain, the notes (elections, epochs, synchronizations)
//! and a readable timeline.

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::ChainState;
use crate::primitives::seal::QuorumSignature;
use crate::primitives::tx::{KeyPair, Transaction};
use crate::sim::cluster::{BlockSink, OrderedCluster};
use crate::sim::report::{
    EpochRow, Latency, LeaderCrashRow, ProtocolReport, Safety, SimReport, message_rows, name_nodes,
    per_block,
};
use crate::sim::{Faults, Host, MS, Micros, NodeId, SimRng, SimStats, Simulator, Violation};
use crate::zab::blocks::{BlockApp, ZabBlock, certified};
use crate::zab::engine::{Delivered, Durable, Note, SyncMode, ZabConfig, ZabNode, Zxid};
use crate::zab::observer::ZabObserver;
use crate::zab::spec::ZabSpec;

type Node = ZabNode<BlockApp>;

/// What a cluster run is given.
#[derive(Debug, Clone)]
pub struct ClusterRun {
    /// A valid ZAB spec whose members are the servers.
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

/// The host: what the ensemble's servers delivered and noted.
#[derive(Default)]
struct Recorder {
    sink: Option<BlockSink>,
    last: Vec<Zxid>,
    max_delivered: Zxid,
    blocks: u64,
    follow_first: bool,
    first_node_blocks: VecDeque<BlockRecord>,
    elections: u64,
    leaders: BTreeMap<u64, NodeId>,
    syncs: [u64; 3],
    trace: Option<Vec<String>>,
    names: Vec<String>,
    last_block_at: Micros,
    proposed: HashMap<Zxid, Micros>,
    commit_latencies: Vec<Micros>,
}

impl Host<Node> for Recorder {
    fn commit(
        &mut self,
        now: Micros,
        node: NodeId,
        d: &Delivered<std::sync::Arc<ZabBlock>, crate::primitives::seal::QuorumSignature>,
    ) {
        let zxid = d.txn.zxid;
        if zxid <= self.last[node] {
            // Delivered again after a restart: already in this server's chain.
            return;
        }
        self.last[node] = zxid;
        if zxid > self.max_delivered {
            self.max_delivered = zxid;
            self.blocks += 1;
            self.last_block_at = now;
            if let Some(at) = self.proposed.remove(&zxid) {
                self.commit_latencies.push(now - at);
            }
        }
        let record = certified(&d.txn.command, &d.cert);
        if let Some(sink) = &mut self.sink {
            sink(node, &record);
        }
        if node == 0 && self.follow_first {
            self.first_node_blocks.push_back(record);
        }
    }

    fn note(&mut self, now: Micros, node: NodeId, note: Note) {
        match note {
            Note::Looking { .. } => self.elections += 1,
            Note::Established { epoch } => {
                self.leaders.insert(epoch, node);
            }
            Note::Synced { mode, .. } => {
                self.syncs[match mode {
                    SyncMode::Diff => 0,
                    SyncMode::Trunc(_) => 1,
                    SyncMode::Snap => 2,
                }] += 1;
            }
            Note::Proposed { zxid } => {
                self.proposed.insert(zxid, now);
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

/// A simulated ZAB ensemble. See the module docs.
pub struct Cluster {
    sim: Simulator<Node>,
    observer: ZabObserver<BlockApp>,
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

/// A server's configuration from the spec.
#[must_use]
pub fn node_config(zab: &ZabSpec, id: NodeId) -> ZabConfig {
    ZabConfig {
        id,
        members: zab.members.len(),
        tick: zab.tick_ms * MS,
        init_limit: zab.tick_ms * zab.init_limit * MS,
        sync_limit: zab.tick_ms * zab.sync_limit * MS,
        election: (
            zab.election_timeout_ms.0 * MS,
            zab.election_timeout_ms.1 * MS,
        ),
        cut_interval: zab.block_interval_ms * MS,
        max_batch: zab.max_block_txs,
        commit_log: zab.commit_log,
        #[cfg(test)]
        bug: None,
    }
}

/// What every server holds before its first start over `base`: its history starts after
/// the chain's last block.
pub(crate) fn initial_disk(
    base: &ChainState,
) -> Durable<std::sync::Arc<ZabBlock>, QuorumSignature> {
    let start = last_zxid(base).unwrap_or_default();
    Durable {
        accepted_epoch: start.epoch,
        current_epoch: start.epoch,
        base: start,
        ..Durable::default()
    }
}

/// A server over the chain `state`, sealing with `key`, restarted from `disk`: as the
/// simulator and a real node both build it.
pub(crate) fn boot_node(
    config: ZabConfig,
    state: &ChainState,
    key: KeyPair,
    origin: u32,
    disk: &Durable<std::sync::Arc<ZabBlock>, QuorumSignature>,
    rng: SimRng,
) -> Node {
    ZabNode::new(config, disk, rng, BlockApp::new(state.clone(), key, origin))
}

impl Cluster {
    /// An ensemble over `base`, a chain of `run.spec` (its genesis, or a ZAB chain to
    /// continue: every server starts with its history after the last block).
    #[must_use]
    pub fn new(run: &ClusterRun, base: &ChainState) -> Self {
        Self::with_config(run, base, node_config)
    }

    /// As [`Cluster::new`], each server configured by `config` (tests plant bugs this way).
    pub(crate) fn with_config(
        run: &ClusterRun,
        base: &ChainState,
        config: fn(&ZabSpec, NodeId) -> ZabConfig,
    ) -> Self {
        let zab = run
            .spec
            .section::<ZabSpec>()
            .expect("a valid zab spec")
            .clone();
        let names = zab.members.clone();
        let n = names.len();
        let disk = initial_disk(base);
        let start = disk.base;
        let keys: Vec<KeyPair> = names
            .iter()
            .map(|m| KeyPair::derive(&run.spec.wallet_seed, m))
            .collect();
        let state = base.clone();
        let origin = run.origin;
        let net = zab.network;
        let boot = Box::new(move |id: NodeId, disk: &Durable<_, _>, rng: SimRng| {
            boot_node(
                config(&zab, id),
                &state,
                keys[id].clone(),
                origin,
                disk,
                rng,
            )
        });
        let mut sim = Simulator::new(n, run.seed, net, run.faults.clone(), &disk, boot);
        sim.fifo_links();
        Self {
            sim,
            observer: ZabObserver::new(n, start),
            host: Recorder {
                last: vec![start; n],
                max_delivered: start,
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

    /// Server `node`'s engine, if it is up.
    #[must_use]
    pub fn engine(&self, node: NodeId) -> Option<&Node> {
        self.sim.engine(node)
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
        let messages = message_rows(crate::zab::engine::MSG_KINDS, &stats, blocks);
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
        let quorum = self.spec.section::<ZabSpec>().map_or(1, ZabSpec::quorum);
        SimReport {
            rule: "zab",
            spec: self.spec.name.clone(),
            nodes: self.names.clone(),
            seed: self.seed,
            virtual_s: self.sim.now() as f64 / 1e6,
            events: stats.events,
            blocks,
            entries: self.observer.delivered_count(),
            protocol: ProtocolReport::Zab {
                elections: self.host.elections,
                epochs: self
                    .host
                    .leaders
                    .iter()
                    .map(|(e, n)| EpochRow {
                        epoch: *e,
                        leader: self.names[*n].clone(),
                    })
                    .collect(),
                diffs: self.host.syncs[0],
                truncs: self.host.syncs[1],
                snaps: self.host.syncs[2],
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
            signatures_per_block: quorum as f64,
            dropped: stats.dropped,
            safety: Safety::judge(self.sim.violation(), &faults, self.sim.now(), &self.names),
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// `mine zab`'s ensemble: fault-free, over the chain so far.
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

/// The zxid of the chain's last block's ZAB seal, if it has one.
#[must_use]
pub fn last_zxid(state: &ChainState) -> Option<Zxid> {
    state
        .rule_state_as::<crate::zab::rule::ZabState>()?
        .last_zxid()
}

/// The seal of a ZAB block: (leader, zxid).
#[must_use]
pub fn seal_of(record: &BlockRecord) -> Option<(crate::primitives::tx::PubKey, Zxid)> {
    match record.txs.get(1) {
        Some(Transaction::Zab {
            leader,
            epoch,
            counter,
            ..
        }) => Some((*leader, Zxid::new(*epoch, *counter))),
        _ => None,
    }
}
