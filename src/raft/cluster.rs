//! A simulated Raft cluster ordering blocks: every member a [`RaftNode`] over a [`BlockApp`],
//! driven by the [`Simulator`] and judged by the [`RaftObserver`]; the host records each
//! node's committed chain, the notes (elections, leaders) and a readable timeline.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use serde::Serialize;

use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SpecError};
use crate::chain::state::ChainState;
use crate::primitives::tx::{KeyPair, Transaction};
use crate::raft::blocks::{BlockApp, RaftBlock};
use crate::raft::engine::{Durable, Entry, Note, RaftConfig, RaftNode, Role};
use crate::raft::observer::RaftObserver;
use crate::raft::spec::RaftSpec;
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

/// Where each node's newly committed blocks go (its chain file), in commit order.
pub type BlockSink = Box<dyn FnMut(NodeId, &BlockRecord) + Send>;

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

    /// Runs until virtual time `until`; false when a violation ended it.
    pub fn run_until(&mut self, until: Micros) -> bool {
        self.start();
        self.sim
            .run_until(until, &mut self.observer, &mut self.host, &mut |_| false)
    }

    /// Runs until `blocks` blocks are committed or virtual time `until`; false when a
    /// violation ended it.
    pub fn run_blocks(&mut self, blocks: u64, until: Micros) -> bool {
        self.start();
        while self.host.blocks < blocks && self.sim.now() < until {
            let next = (self.sim.now() + 10 * MS).min(until);
            if !self
                .sim
                .run_until(next, &mut self.observer, &mut self.host, &mut |_| false)
            {
                return false;
            }
        }
        true
    }

    /// Queues the blocks the first node commits from now on for
    /// [`Cluster::next_first_node_block`] (`mine` reads them one by one).
    pub fn follow_first_node(&mut self) {
        self.host.follow_first = true;
    }

    /// The next block the first node committed, if any waits.
    pub fn next_first_node_block(&mut self) -> Option<BlockRecord> {
        self.host.first_node_blocks.pop_front()
    }

    /// Virtual time now.
    #[must_use]
    pub const fn now(&self) -> Micros {
        self.sim.now()
    }

    /// The first violation, if any.
    #[must_use]
    pub fn violation(&self) -> Option<&Violation> {
        self.sim.violation()
    }

    /// Blocks committed (by any node).
    #[must_use]
    pub const fn blocks(&self) -> u64 {
        self.host.blocks
    }

    /// When the last new block was committed.
    #[must_use]
    pub const fn last_block_at(&self) -> Micros {
        self.host.last_block_at
    }

    /// Hands every block a node commits from now on to `sink` (each node's chain file).
    pub fn set_sink(&mut self, sink: BlockSink) {
        self.host.sink = Some(sink);
    }

    /// The spec the nodes run: the members, parameters and network the run uses.
    #[must_use]
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// The members' names.
    #[must_use]
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// The timeline (when recorded).
    #[must_use]
    pub fn trace(&self) -> &[String] {
        self.host.trace.as_deref().unwrap_or(&[])
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

    /// The report of the run so far.
    #[must_use]
    pub fn report(&self) -> SimReport {
        let stats = self.sim.stats();
        let blocks = self.host.blocks;
        let per_block = |v: u64| {
            if blocks == 0 {
                0.0
            } else {
                v as f64 / blocks as f64
            }
        };
        let messages = crate::raft::engine::MSG_KINDS
            .iter()
            .enumerate()
            .filter(|(i, _)| stats.sent[*i] > 0)
            .map(|(i, kind)| MessageRow {
                kind,
                sent: stats.sent[i],
                bytes: stats.bytes[i],
                per_block: per_block(stats.sent[i]),
                bytes_per_block: per_block(stats.bytes[i]),
            })
            .collect();
        let latency = |mut lat: Vec<Micros>| {
            lat.sort_unstable();
            let pct = |p: f64| {
                if lat.is_empty() {
                    None
                } else {
                    let i = ((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1;
                    Some(lat[i] as f64 / 1000.0)
                }
            };
            Latency {
                p50: pct(0.5),
                p99: pct(0.99),
                max: lat.last().map(|v| *v as f64 / 1000.0),
            }
        };
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
            leaderless_s: stats.leaderless_us as f64 / 1e6,
            requests: stats.submitted,
            answered: stats.latencies.len() as u64,
            retries: stats.retries,
            abandoned: stats.abandoned,
            latency_ms: latency(stats.latencies.clone()),
            block_commit_ms: latency(self.host.commit_latencies.clone()),
            messages,
            messages_per_block: per_block(total_sent),
            bytes_per_block: per_block(total_bytes),
            signatures_per_block: 1.0,
            dropped: stats.dropped,
            safety: match self.sim.violation() {
                None if faults.is_empty() => Safety::Ok,
                None => Safety::Violated {
                    property: "state machine safety",
                    time_s: self.sim.now() as f64 / 1e6,
                    nodes: Vec::new(),
                    detail: faults.join("; "),
                },
                Some(v) => Safety::Violated {
                    property: v.property,
                    time_s: v.time_us as f64 / 1e6,
                    nodes: v.nodes.iter().map(|n| self.names[*n].clone()).collect(),
                    detail: name_nodes(&v.detail, &self.names),
                },
            },
            trace_hash: format!("{:016x}", self.sim.trace_hash()),
        }
    }
}

/// `text` with `node K` replaced by the node's name.
fn name_nodes(text: &str, names: &[String]) -> String {
    let mut out = text.to_owned();
    for (i, name) in names.iter().enumerate().rev() {
        out = out.replace(&format!("node {i}"), name);
        out = out.replace(&format!("nodes {i}"), &format!("nodes {name}"));
    }
    out
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

/// One message kind's line in a report.
#[derive(Debug, Clone, Serialize)]
pub struct MessageRow {
    /// The kind.
    pub kind: &'static str,
    /// Sent.
    pub sent: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Sent per committed block.
    pub per_block: f64,
    /// Bytes per committed block.
    pub bytes_per_block: f64,
}

/// The leader of a term.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderRow {
    /// The term.
    pub term: u64,
    /// Its leader.
    pub leader: String,
}

/// Submit-to-reply latency percentiles, milliseconds (`None` with no answers).
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// Longest.
    pub max: Option<f64>,
}

/// The safety verdict.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Safety {
    /// No property broken.
    Ok,
    /// A property broken.
    Violated {
        /// The property.
        property: &'static str,
        /// When, seconds of virtual time.
        time_s: f64,
        /// The nodes involved.
        nodes: Vec<String>,
        /// What was seen.
        detail: String,
    },
}

/// What `sim` reports. Keys are stable.
#[derive(Debug, Clone, Serialize)]
pub struct SimReport {
    /// The rule.
    pub rule: &'static str,
    /// The spec's name.
    pub spec: String,
    /// The nodes.
    pub nodes: Vec<String>,
    /// The seed.
    pub seed: u64,
    /// Virtual seconds simulated.
    pub virtual_s: f64,
    /// Events processed.
    pub events: u64,
    /// Blocks committed.
    pub blocks: u64,
    /// Log entries committed (blocks and each term's no-op).
    pub entries: u64,
    /// Campaigns started (candidates).
    pub elections: u64,
    /// The leader of each term that had one.
    pub leaders: Vec<LeaderRow>,
    /// Seconds during which no live node led.
    pub leaderless_s: f64,
    /// Client requests submitted.
    pub requests: u64,
    /// Requests answered.
    pub answered: u64,
    /// Client retries (unanswered within a second).
    pub retries: u64,
    /// Requests the clients gave up on after ten retries.
    pub abandoned: u64,
    /// Client latency: submit to reply.
    pub latency_ms: Latency,
    /// Block latency: the leader appends it to the first commit.
    pub block_commit_ms: Latency,
    /// Messages by kind.
    pub messages: Vec<MessageRow>,
    /// Messages per committed block.
    pub messages_per_block: f64,
    /// Bytes per committed block.
    pub bytes_per_block: f64,
    /// Signatures per block (the leader's).
    pub signatures_per_block: f64,
    /// Messages lost (loss, partitions, crashed receivers).
    pub dropped: u64,
    /// The observer's verdict.
    pub safety: Safety,
    /// A hash of the run: equal for equal seeds and scenarios.
    pub trace_hash: String,
}

impl SimReport {
    /// The report as text for people.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "raft: {} nodes ({}), seed {}, {:.3} s simulated, {} events",
            self.nodes.len(),
            self.nodes.join(" "),
            self.seed,
            self.virtual_s,
            self.events
        );
        let _ = writeln!(
            s,
            "  blocks committed   {:>10}   (log entries {}, with each term's no-op)",
            self.blocks, self.entries
        );
        let leaders: Vec<String> = self
            .leaders
            .iter()
            .map(|l| format!("{}:{}", l.term, l.leader))
            .collect();
        let _ = writeln!(
            s,
            "  elections          {:>10}   leaders by term: {}",
            self.elections,
            if leaders.is_empty() {
                "none".into()
            } else {
                leaders.join(" ")
            }
        );
        let _ = writeln!(s, "  without a leader   {:>10.3} s", self.leaderless_s);
        let ms = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.1} ms"));
        let _ = writeln!(
            s,
            "  client latency     p50 {}  p99 {}  max {}   ({} of {} requests answered, {} retries, {} abandoned)",
            ms(self.latency_ms.p50),
            ms(self.latency_ms.p99),
            ms(self.latency_ms.max),
            self.answered,
            self.requests,
            self.retries,
            self.abandoned
        );
        let _ = writeln!(
            s,
            "  block commit       p50 {}  p99 {}  max {}   (leader appends → first commit)",
            ms(self.block_commit_ms.p50),
            ms(self.block_commit_ms.p99),
            ms(self.block_commit_ms.max)
        );
        let _ = writeln!(
            s,
            "  per block          {:.1} messages, {:.0} bytes, {} signature; {} messages lost",
            self.messages_per_block, self.bytes_per_block, self.signatures_per_block, self.dropped
        );
        let _ = writeln!(
            s,
            "  {:<16} {:>10} {:>12} {:>10} {:>12}",
            "message", "sent", "bytes", "/block", "bytes/block"
        );
        for m in &self.messages {
            let _ = writeln!(
                s,
                "  {:<16} {:>10} {:>12} {:>10.1} {:>12.0}",
                m.kind, m.sent, m.bytes, m.per_block, m.bytes_per_block
            );
        }
        match &self.safety {
            Safety::Ok => {
                let _ = writeln!(
                    s,
                    "  safety             ok: election safety, log matching, leader completeness, state machine safety held"
                );
            }
            Safety::Violated {
                property,
                time_s,
                nodes,
                detail,
            } => {
                let _ = writeln!(
                    s,
                    "  safety             VIOLATED: {property} at {time_s:.3} s, nodes {}, seed {}: {detail}",
                    nodes.join(" "),
                    self.seed
                );
            }
        }
        let _ = write!(s, "  trace hash         {}", self.trace_hash);
        s
    }
}
