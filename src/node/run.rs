//! One node process.
//!
//! The engine lives on one thread that owns it, its write-ahead log and its chain file. It
//! waits for the next input — a peer's message, a client's command, a broken link — or its
//! next timer, takes every input already waiting (up to a batch), steps the engine on each,
//! then syncs the batch's writes once and only then lets the batch's messages, commits and
//! answers out: a group commit, in the order the simulator models.
//!
//! Around it a tokio runtime runs the network: a listener that authenticates every
//! connection ([`crate::node::wire`]) and reads frames into the engine's queue, one outbound
//! link per peer with reconnection and back-off, and one writer per client. Time is the wall
//! clock in microseconds since the process started; block times count from its Unix start.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc as tmpsc;
use tracing::{Instrument, debug, error, info, warn};

use crate::chain::record::BlockRecord;
use crate::chain::store::{ChainLock, ChainWriter, LineReader};
use crate::node::config::{Cluster, ConfigError};
use crate::node::faults::LinkFaults;
use crate::node::wal::Wal;
use crate::node::wire::{
    self, Auth, BlockSummary, Challenge, ClientCmd, ClientReply, Hello, NodeStatus, PeerLink, Side,
};
use crate::node::{BootContext, EngineStatus, NodeEngine};
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, NodeId, Output, Request, SimRng};

/// Inputs waiting in the engine's queue beyond which a batch is cut.
const BATCH: usize = 1024;
/// Messages waiting for one outbound link beyond which new ones are dropped.
const LINK_QUEUE: usize = 16_384;
/// Connections a node handshakes at once.
const MAX_CONNECTIONS: usize = 512;
/// Client connections a node serves at once: idle clients cannot crowd out its peers' links.
const MAX_CLIENTS: usize = 256;
/// Requests waiting for their commit at one node beyond which submissions are refused.
const MAX_WAITING: usize = 1_000_000;
/// Client requests handed to the engine in one turn: a large submission is stepped over
/// several turns, so that heartbeats and votes go out between them.
const REQUESTS_PER_TURN: usize = 1024;
/// How long a request may wait for its commit at a node before it is forgotten.
const WAITING_LIMIT: Duration = Duration::from_secs(60);
/// Replies a client may leave unread when it asks for a status (each about a kilobyte).
const STATUS_BACKLOG: usize = 64;
/// How often requests of clients that went away are forgotten.
const PRUNE: Duration = Duration::from_secs(1);
/// How long a handshake may take.
const HANDSHAKE: Duration = Duration::from_secs(5);
/// Replies waiting to be written to one client beyond which the client is cut off (it does
/// not read what it asked for): room for a full submission's answers twice over.
const CLIENT_REPLIES: usize = 2 * wire::MAX_SUBMIT;
/// Commands from one client connection the engine has not yet taken.
const CLIENT_INFLIGHT: usize = 64;
/// Frames from one peer link the engine has not yet taken.
const PEER_INFLIGHT: usize = 1024;

/// Where the engine thread sends one client's replies: bounded; a client that lets
/// [`CLIENT_REPLIES`] pile up is cut off rather than growing the node's memory.
#[derive(Clone)]
struct ReplyTx {
    tx: tmpsc::Sender<ClientReply>,
    overrun: Arc<AtomicBool>,
}

impl ReplyTx {
    /// Queues `reply`; false when the client is gone or was cut off.
    fn send(&self, reply: ClientReply) -> bool {
        match self.tx.try_send(reply) {
            Ok(()) => true,
            Err(tmpsc::error::TrySendError::Full(_)) => {
                self.cut_off();
                false
            }
            Err(tmpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Cuts the client off: its connection is closed and its queued replies dropped.
    fn cut_off(&self) {
        self.overrun.store(true, Ordering::Relaxed);
    }

    /// Whether the client is gone or was cut off.
    fn is_closed(&self) -> bool {
        self.tx.is_closed() || self.overrun.load(Ordering::Relaxed)
    }

    /// Replies that still fit before the client is cut off.
    fn room(&self) -> usize {
        self.tx.capacity()
    }
}

/// How a node process is started.
#[derive(Debug, Clone, Default)]
pub struct NodeOptions {
    /// A Byzantine mode (PBFT).
    pub byzantine: Option<String>,
    /// Accept `client fault …` commands.
    pub allow_faults: bool,
    /// Stop by itself after this long (test and demo clusters).
    pub lifetime: Option<Duration>,
}

/// Why a node could not run.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The configuration or the environment (a port in use, a key file): exit 2.
    #[error("{0}")]
    Usage(String),
    /// The node's files are invalid or it saw its chain diverge: exit 1.
    #[error("{0}")]
    Invalid(String),
}

impl From<ConfigError> for NodeError {
    fn from(e: ConfigError) -> Self {
        Self::Usage(e.to_string())
    }
}

/// Runs member `id` of `cluster` until `stop` is set (SIGTERM, Ctrl-C): dispatches on the
/// rule.
///
/// # Errors
/// [`NodeError`].
pub fn run(
    cluster: &Cluster,
    id: NodeId,
    opts: &NodeOptions,
    stop: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    use crate::node::rules::{KafkaEngine, PaxosEngine, PbftEngine, RaftEngine, ZabEngine};
    match cluster.rule.as_str() {
        "raft" => run_engine::<RaftEngine>(cluster, id, opts, stop),
        "pbft" => run_engine::<PbftEngine>(cluster, id, opts, stop),
        "paxos" => run_engine::<PaxosEngine>(cluster, id, opts, stop),
        "zab" => run_engine::<ZabEngine>(cluster, id, opts, stop),
        "kafka" => run_engine::<KafkaEngine>(cluster, id, opts, stop),
        other => Err(NodeError::Usage(format!("no node engine for rule {other}"))),
    }
}

/// What the network tasks hand the engine thread.
enum Input {
    Peer(NodeId, Vec<u8>, tokio::sync::OwnedSemaphorePermit),
    Client(ClientCmd, ReplyTx, tokio::sync::OwnedSemaphorePermit),
    Disconnected(NodeId),
}

/// State the engine thread and the network tasks share.
struct Shared {
    cluster_id: [u8; 32],
    me: NodeId,
    names: Vec<String>,
    members: Vec<crate::node::config::Member>,
    key: KeyPair,
    fifo: bool,
    faults: RwLock<LinkFaults>,
    /// (outbound up, inbound up) per member.
    links: Mutex<Vec<(bool, bool)>>,
    /// Set to make an outbound link drop its connection (a FIFO link lost a message).
    resets: Vec<AtomicBool>,
    inputs: Mutex<Sender<Input>>,
}

impl Shared {
    fn send(&self, input: Input) {
        if let Ok(tx) = self.inputs.lock() {
            let _ = tx.send(input);
        }
    }

    fn set_link(&self, peer: NodeId, outbound: bool, up: bool) {
        if let Ok(mut l) = self.links.lock() {
            if outbound {
                l[peer].0 = up;
            } else {
                l[peer].1 = up;
            }
        }
    }

    fn loses(&self, peer: NodeId, rng: &mut SimRng) -> bool {
        self.faults.read().is_ok_and(|f| f.loses(peer, rng))
    }

    fn is_cut(&self, peer: NodeId) -> bool {
        self.faults.read().is_ok_and(|f| f.is_cut(peer))
    }
}

/// The node's chain file, as the engine thread appends to it.
struct Chain {
    writer: ChainWriter,
    hashes: Vec<BlockHash>,
    summaries: Vec<BlockSummary>,
    committed: HashMap<Request, u32>,
}

impl Chain {
    /// Opens the node's chain file (creating it with the spec's genesis), cutting a torn last
    /// line; checks each line is the next block of this spec's chain.
    fn open(path: &Path, genesis: &BlockRecord) -> Result<Self, NodeError> {
        let bad = |what: String| NodeError::Invalid(format!("{}: {what}", path.display()));
        let usage = |e: std::io::Error| NodeError::Usage(format!("{}: {e}", path.display()));
        let exists = std::fs::metadata(path).is_ok_and(|m| m.len() > 0);
        if !exists {
            let writer = ChainWriter::create(path, genesis).map_err(usage)?;
            let mut c = Self {
                writer,
                hashes: Vec::new(),
                summaries: Vec::new(),
                committed: HashMap::new(),
            };
            c.remember(genesis);
            return Ok(c);
        }
        let mut reader = LineReader::open(path).map_err(usage)?;
        let mut records = Vec::new();
        let mut cut = None;
        while let Some(line) = reader.next_line().map_err(usage)? {
            if !line.complete {
                cut = Some(line.offset);
                break;
            }
            let record: BlockRecord = serde_json::from_str(&line.text)
                .map_err(|e| bad(format!("line {}: {e}", line.number)))?;
            records.push(record);
        }
        if let Some(offset) = cut {
            warn!(chain = %path.display(), offset, "cutting a torn last line");
            crate::chain::store::truncate(path, offset).map_err(usage)?;
        }
        match records.first() {
            Some(g) if g.hash == genesis.hash => {}
            _ => {
                return Err(bad(
                    "its genesis is not this cluster's spec's (another cluster's data directory?)"
                        .into(),
                ));
            }
        }
        let writer = ChainWriter::open_append(path).map_err(usage)?;
        let mut c = Self {
            writer,
            hashes: Vec::new(),
            summaries: Vec::new(),
            committed: HashMap::new(),
        };
        for (h, r) in records.iter().enumerate() {
            if r.height as usize != h || (h > 0 && r.prev_hash != c.hashes[h - 1]) {
                return Err(bad(format!(
                    "line {}: block {} does not follow the line before",
                    h + 1,
                    r.height
                )));
            }
            c.remember(r);
        }
        Ok(c)
    }

    fn remember(&mut self, record: &BlockRecord) {
        self.hashes.push(record.hash);
        self.summaries.push(BlockSummary::of(record));
        for r in record.requests() {
            self.committed.insert(*r, record.height);
        }
    }

    fn height(&self) -> u32 {
        u32::try_from(self.hashes.len().saturating_sub(1)).unwrap_or(u32::MAX)
    }
}

/// A step's output held until the batch's writes are durable.
enum Held<E: NodeEngine> {
    Send(NodeId, E::Msg),
    Commit(E::Commit),
}

/// The engine thread's state.
struct Host<E: NodeEngine> {
    engine: E,
    shared: Arc<Shared>,
    wal: Wal,
    chain: Chain,
    links: Vec<Option<tmpsc::Sender<Vec<u8>>>>,
    timers: Vec<Option<Micros>>,
    held: Vec<Held<E>>,
    again: VecDeque<NodeId>,
    waiting: HashMap<Request, (Instant, Vec<ReplyTx>)>,
    queued: VecDeque<Request>,
    waiting_count: usize,
    pruned: Instant,
    watchers: Vec<ReplyTx>,
    started: Instant,
    allow_faults: bool,
    lifetime: Option<Duration>,
    byzantine: Option<String>,
    rule: String,
    last_status: Option<EngineStatus>,
    rng: SimRng,
    diverged: Option<String>,
}

impl<E: NodeEngine> Host<E> {
    fn now(&self) -> Micros {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn outputs(&mut self, out: &mut Vec<Output<E>>) {
        for o in out.drain(..) {
            match o {
                Output::Send(to, m) => self.held.push(Held::Send(to, m)),
                Output::Timer(id, at) => {
                    let id = usize::from(id);
                    if self.timers.len() <= id {
                        self.timers.resize(id + 1, None);
                    }
                    self.timers[id] = Some(at);
                }
                Output::Persist(w) => {
                    if let Some(line) = E::describe_write(&w) {
                        info!("{line}");
                    }
                    self.wal.append(&w);
                }
                Output::Commit(c) => self.held.push(Held::Commit(c)),
                // Clients are answered when their request's block reaches this node's chain.
                Output::Reply(_) => {}
                Output::Note(n) => debug!("{n}"),
            }
        }
    }

    fn input(&mut self, input: Input, out: &mut Vec<Output<E>>) {
        let now = self.now();
        match input {
            // The permit (the link's flow control) is released once the input is stepped.
            Input::Peer(from, bytes, _permit) => match wire::decode::<E::Msg>(&bytes) {
                Ok(msg) => self.engine.on_message(now, from, msg, out),
                Err(e) => warn!(peer = %self.shared.names[from], "undecodable message: {e}"),
            },
            Input::Disconnected(peer) => self.engine.on_disconnect(now, peer, out),
            Input::Client(cmd, tx, _permit) => self.client(cmd, tx),
        }
        self.outputs(out);
    }

    fn client(&mut self, cmd: ClientCmd, tx: ReplyTx) {
        match cmd {
            ClientCmd::Submit(requests) => {
                if self.waiting_count + requests.len() > MAX_WAITING {
                    let _ = tx.send(ClientReply::Refused(format!(
                        "{} requests already wait for their commit here; try later",
                        self.waiting_count
                    )));
                    return;
                }
                for r in requests {
                    if let Some(height) = self.chain.committed.get(&r) {
                        let _ = tx.send(ClientReply::Committed {
                            request: r,
                            height: *height,
                        });
                        continue;
                    }
                    self.waiting
                        .entry(r)
                        .or_insert_with(|| (Instant::now(), Vec::new()))
                        .1
                        .push(tx.clone());
                    self.waiting_count += 1;
                    self.queued.push_back(r);
                }
            }
            ClientCmd::Status => {
                // A status is about a kilobyte: a client that asks again and again without
                // reading is cut off once a few of them wait, not once the queue is full.
                if tx.room() + STATUS_BACKLOG < CLIENT_REPLIES {
                    tx.cut_off();
                    return;
                }
                let _ = tx.send(ClientReply::Status(Box::new(self.status())));
            }
            ClientCmd::Watch { from } => {
                let len = self.chain.summaries.len();
                let backlog = len.saturating_sub(from as usize);
                let most = tx.room().saturating_sub(1024);
                if backlog > most {
                    let _ = tx.send(ClientReply::Refused(format!(
                        "watch from {from}: {backlog} blocks of history, the most is {most}; watch from height {} or later",
                        len.saturating_sub(most)
                    )));
                    return;
                }
                for s in self.chain.summaries.iter().skip(from as usize) {
                    let _ = tx.send(ClientReply::Block(s.clone()));
                }
                // One watch per connection: a repeated watch only replays history.
                if !self
                    .watchers
                    .iter()
                    .any(|w| Arc::ptr_eq(&w.overrun, &tx.overrun))
                {
                    self.watchers.push(tx);
                }
            }
            ClientCmd::Fault(cmd) => {
                if !self.allow_faults {
                    let _ = tx.send(ClientReply::Refused(
                        "fault injection is off: start the node with --allow-faults".into(),
                    ));
                    return;
                }
                let result = self
                    .shared
                    .faults
                    .write()
                    .map_err(|_| "fault state poisoned".to_owned())
                    .and_then(|mut f| {
                        f.apply(&cmd, &self.shared.names)?;
                        Ok(f.describe(&self.shared.names))
                    });
                match result {
                    Ok(now) => {
                        warn!(faults = ?now, "link faults set by a client");
                        for (i, r) in self.shared.resets.iter().enumerate() {
                            if self.shared.is_cut(i) {
                                r.store(true, Ordering::Relaxed);
                            }
                        }
                        let _ = tx.send(ClientReply::FaultsNow(now));
                    }
                    Err(e) => {
                        let _ = tx.send(ClientReply::Refused(e));
                    }
                }
            }
        }
    }

    fn status(&self) -> NodeStatus {
        let s = self.engine.status();
        let links = self
            .shared
            .links
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        let faults = self.shared.faults.read().map(|f| f.clone());
        NodeStatus {
            name: self.shared.names[self.shared.me].clone(),
            rule: self.rule.clone(),
            role: s.role,
            term_name: s.term_name.into(),
            term: s.term,
            leader: s.leader.map(|l| self.shared.names[l].clone()),
            height: self.chain.height(),
            tip: *self.chain.hashes.last().unwrap_or(&BlockHash::ZERO),
            uptime_s: self.started.elapsed().as_secs_f64(),
            peers: self
                .shared
                .members
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != self.shared.me)
                .map(|(i, m)| PeerLink {
                    name: m.name.clone(),
                    address: m.address.to_string(),
                    outbound: links.get(i).is_some_and(|l| l.0),
                    inbound: links.get(i).is_some_and(|l| l.1),
                    cut: faults.as_ref().is_ok_and(|f| f.is_cut(i)),
                })
                .collect(),
            faults: faults
                .map(|f| f.describe(&self.shared.names))
                .unwrap_or_default(),
            byzantine: self.byzantine.clone(),
        }
    }

    /// Makes the batch's writes durable, then lets its outputs out.
    fn flush(&mut self) -> Result<(), NodeError> {
        self.wal
            .sync()
            .map_err(|e| NodeError::Usage(format!("write-ahead log: {e}")))?;
        let mut appended = Vec::new();
        for h in std::mem::take(&mut self.held) {
            match h {
                Held::Send(to, msg) => self.send(to, &msg),
                Held::Commit(c) => {
                    if let Some(record) = E::block(&c)
                        && self.commit(&record)?
                    {
                        appended.push(record);
                    }
                }
            }
        }
        if !appended.is_empty() {
            // One sync for the turn's blocks, then their answers.
            self.chain.writer.sync().map_err(|e| {
                NodeError::Usage(format!("{}: {e}", self.chain.writer.path().display()))
            })?;
            for record in &appended {
                self.answer(record);
            }
        }
        let status = self.engine.status();
        if self.last_status.as_ref() != Some(&status) {
            let leader = status
                .leader
                .map_or_else(|| "none".to_owned(), |l| self.shared.names[l].clone());
            info!(
                role = %status.role,
                leader = %leader,
                "{} in {} {} (leader: {leader})",
                status.role,
                status.term_name,
                status.term
            );
            self.last_status = Some(status);
        }
        Ok(())
    }

    fn send(&mut self, to: NodeId, msg: &E::Msg) {
        if to == self.shared.me || to >= self.links.len() {
            return;
        }
        let lost = self.shared.loses(to, &mut self.rng);
        let queued = !lost
            && self.links[to]
                .as_ref()
                .is_some_and(|l| l.try_send(wire::encode(msg)).is_ok());
        if !queued && E::FIFO && !self.shared.is_cut(to) {
            // A FIFO link that loses a message breaks: the peer must not see what follows
            // without what was lost.
            self.shared.resets[to].store(true, Ordering::Relaxed);
            self.again.push_back(to);
        }
    }

    /// Appends a committed block to the chain file (unsynced); false when it is not the next
    /// block (a replay after restart, or a divergence, logged).
    fn commit(&mut self, record: &BlockRecord) -> Result<bool, NodeError> {
        let next = self.chain.hashes.len();
        let height = record.height as usize;
        if height < next {
            if self.chain.hashes[height] != record.hash {
                let why = format!(
                    "block {} committed now ({}) differs from the one in the chain file ({})",
                    record.height, record.hash, self.chain.hashes[height]
                );
                error!("safety: {why}");
                self.diverged.get_or_insert(why);
            }
            return Ok(false);
        }
        if height > next || record.prev_hash != self.chain.hashes[next - 1] {
            let why = format!(
                "committed block {} does not extend the chain file (height {})",
                record.height,
                next - 1
            );
            error!("safety: {why}");
            self.diverged.get_or_insert(why);
            return Ok(false);
        }
        self.chain.writer.append_unsynced(record).map_err(|e| {
            NodeError::Usage(format!("{}: {e}", self.chain.writer.path().display()))
        })?;
        self.chain.remember(record);
        info!(
            height = record.height,
            hash = %record.hash,
            requests = record.requests().len(),
            "committed block {}",
            record.height
        );
        Ok(true)
    }

    /// Answers the clients waiting for the requests of a block now synced, and the watchers.
    fn answer(&mut self, record: &BlockRecord) {
        for r in record.requests() {
            if let Some((_, txs)) = self.waiting.remove(r) {
                self.waiting_count -= txs.len();
                for tx in txs {
                    let _ = tx.send(ClientReply::Committed {
                        request: *r,
                        height: record.height,
                    });
                }
            }
        }
        let summary = BlockSummary::of(record);
        self.watchers
            .retain(|w| w.send(ClientReply::Block(summary.clone())));
    }

    /// Forgets the waiting requests of clients that went away, and requests waiting longer
    /// than [`WAITING_LIMIT`] (a request the cluster lost would otherwise hold its place
    /// forever; a client that still waits resends it).
    fn prune(&mut self) {
        self.waiting.retain(|_, (since, txs)| {
            txs.retain(|t| !t.is_closed());
            !txs.is_empty() && since.elapsed() < WAITING_LIMIT
        });
        self.waiting_count = self.waiting.values().map(|(_, txs)| txs.len()).sum();
        self.watchers.retain(|w| !w.is_closed());
        self.pruned = Instant::now();
    }

    /// Steps the engine until `stop` is set.
    fn run(&mut self, inputs: &Receiver<Input>, stop: &AtomicBool) -> Result<(), NodeError> {
        let mut out = Vec::new();
        let now = self.now();
        self.engine.start(now, &mut out);
        self.outputs(&mut out);
        self.flush()?;
        while !stop.load(Ordering::Relaxed) {
            if self.lifetime.is_some_and(|l| self.started.elapsed() >= l) {
                info!("its lifetime is over: stopping");
                break;
            }
            let next = self.timers.iter().flatten().min().copied();
            // Wake at least every 100 ms to see `stop`, at once while requests wait.
            let wait = if self.queued.is_empty() {
                next.map_or(100_000, |t| t.saturating_sub(self.now()).min(100_000))
            } else {
                0
            };
            let first = match inputs.recv_timeout(Duration::from_micros(wait)) {
                Ok(i) => Some(i),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            if let Some(i) = first {
                self.input(i, &mut out);
                for _ in 0..BATCH {
                    match inputs.try_recv() {
                        Ok(i) => self.input(i, &mut out),
                        Err(_) => break,
                    }
                }
            }
            let take = self.queued.len().min(REQUESTS_PER_TURN);
            let requests: Vec<Request> = self
                .queued
                .drain(..take)
                .filter(|r| !self.chain.committed.contains_key(r))
                .collect();
            if !requests.is_empty() {
                let now = self.now();
                self.engine.on_clients(now, requests, &mut out);
                self.outputs(&mut out);
            }
            while let Some(peer) = self.again.pop_front() {
                let now = self.now();
                self.engine.on_disconnect(now, peer, &mut out);
                self.outputs(&mut out);
            }
            loop {
                let now = self.now();
                let due = self.timers.iter().position(|t| t.is_some_and(|t| t <= now));
                let Some(id) = due else { break };
                self.timers[id] = None;
                self.engine
                    .on_timer(now, u8::try_from(id).unwrap_or(u8::MAX), &mut out);
                self.outputs(&mut out);
            }
            self.flush()?;
            if self.pruned.elapsed() >= PRUNE {
                self.prune();
            }
        }
        // Whatever was stepped is durable and out; the links close with the runtime.
        self.flush()?;
        match &self.diverged {
            Some(why) => Err(NodeError::Invalid(format!("the chain diverged: {why}"))),
            None => Ok(()),
        }
    }
}

fn run_engine<E: NodeEngine>(
    cluster: &Cluster,
    id: NodeId,
    opts: &NodeOptions,
    stop: Arc<AtomicBool>,
) -> Result<(), NodeError> {
    let key = cluster.node_key(id)?;
    let name = cluster.members[id].name.clone();
    let span = tracing::info_span!("node", name = %name);
    let _entered = span.enter();
    let dir = cluster.node_dir(id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| NodeError::Usage(format!("{}: {e}", dir.display())))?;
    let chain_path = dir.join("chain.jsonl");
    let _lock = ChainLock::acquire(&chain_path).map_err(|e| NodeError::Usage(e.to_string()))?;
    let genesis = crate::sim::cluster::genesis_state(&cluster.spec)
        .map_err(|e| NodeError::Usage(format!("spec: {e}")))?;
    let genesis_record = BlockRecord::new(0, &cluster.spec.genesis_block(), Some(&cluster.spec));
    let chain = Chain::open(&chain_path, &genesis_record)?;
    let mut disk = E::Disk::default();
    let wal_path: PathBuf = dir.join("state.wal");
    let (wal, recovered) = Wal::open(&wal_path, &mut disk, E::persist)
        .map_err(|e| NodeError::Invalid(e.to_string()))?;
    let origin = u32::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    )
    .unwrap_or(u32::MAX);
    let ctx = BootContext {
        spec: cluster.spec.clone(),
        genesis,
        id,
        origin,
        byzantine: opts.byzantine.clone(),
    };
    let seed = u64::from_le_bytes(wire::nonce()[..8].try_into().unwrap_or([0; 8]));
    let engine = E::boot(&ctx, &disk, SimRng::new(seed)).map_err(NodeError::Usage)?;
    info!(
        rule = %cluster.rule,
        height = chain.height(),
        wal_records = recovered.records,
        torn_bytes = recovered.torn_bytes,
        "starting at height {} with {} durable writes",
        chain.height(),
        recovered.records
    );

    let address = cluster.members[id].address;
    let listener = std::net::TcpListener::bind(address)
        .map_err(|e| NodeError::Usage(format!("{name}: cannot listen on {address}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| NodeError::Usage(e.to_string()))?;
    let n = cluster.members.len();
    let (tx, rx) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        cluster_id: cluster.id(),
        me: id,
        names: cluster.members.iter().map(|m| m.name.clone()).collect(),
        members: cluster.members.clone(),
        key,
        fifo: E::FIFO,
        faults: RwLock::new(LinkFaults::new(n)),
        links: Mutex::new(vec![(false, false); n]),
        resets: (0..n).map(|_| AtomicBool::new(false)).collect(),
        inputs: Mutex::new(tx.clone()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| NodeError::Usage(format!("starting the runtime: {e}")))?;
    let mut links = Vec::with_capacity(n);
    {
        let _guard = runtime.enter();
        let listener = TcpListener::from_std(listener)
            .map_err(|e| NodeError::Usage(format!("{name}: {address}: {e}")))?;
        runtime.spawn(accept(listener, shared.clone()).instrument(span.clone()));
        for peer in 0..n {
            if peer == id {
                links.push(None);
                continue;
            }
            let (ltx, lrx) = tmpsc::channel(LINK_QUEUE);
            runtime.spawn(outbound(peer, lrx, shared.clone()).instrument(span.clone()));
            links.push(Some(ltx));
        }
    }
    drop(tx);
    let mut host = Host::<E> {
        engine,
        shared,
        wal,
        chain,
        links,
        timers: Vec::new(),
        held: Vec::new(),
        again: VecDeque::new(),
        waiting: HashMap::new(),
        queued: VecDeque::new(),
        waiting_count: 0,
        pruned: Instant::now(),
        watchers: Vec::new(),
        started: Instant::now(),
        allow_faults: opts.allow_faults,
        lifetime: opts.lifetime,
        byzantine: opts.byzantine.clone(),
        rule: cluster.rule.clone(),
        last_status: None,
        rng: SimRng::new(seed ^ 0x5eed),
        diverged: None,
    };
    let result = host.run(&rx, &stop);
    info!(height = host.chain.height(), "stopped");
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// Accepts connections, at most [`MAX_CONNECTIONS`] handshaking and [`MAX_CLIENTS`] clients
/// at once.
async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let clients = Arc::new(tokio::sync::Semaphore::new(MAX_CLIENTS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, from)) => {
                let shared = shared.clone();
                let clients = clients.clone();
                tokio::spawn(
                    async move {
                        let _ = stream.set_nodelay(true);
                        serve(stream, from, shared, permit, clients).await;
                    }
                    .in_current_span(),
                );
            }
            Err(e) => {
                warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One accepted connection: the handshake, then a peer's messages or a client's commands.
async fn serve(
    stream: TcpStream,
    from: SocketAddr,
    shared: Arc<Shared>,
    handshake: tokio::sync::OwnedSemaphorePermit,
    clients: Arc<tokio::sync::Semaphore>,
) {
    let (mut r, mut w) = stream.into_split();
    let hello = tokio::time::timeout(
        HANDSHAKE,
        wire::read_msg::<Hello, _>(&mut r, wire::MAX_HELLO_FRAME),
    )
    .await;
    let hello = match hello {
        Ok(Ok(Some(h))) => h,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => {
            warn!(%from, "refused a connection: {e}");
            return;
        }
        Err(_) => {
            warn!(%from, "refused a connection: no hello within {HANDSHAKE:?}");
            return;
        }
    };
    let (cluster, opener_nonce) = match &hello {
        Hello::Peer { cluster, nonce, .. } | Hello::Client { cluster, nonce } => (*cluster, *nonce),
    };
    if cluster != shared.cluster_id {
        warn!(%from, "refused a connection: it runs another cluster (its cluster file differs from ours)");
        let _ = wire::write_msg(
            &mut w,
            &ClientReply::Refused(
                "it belongs to another cluster (the cluster files differ)".into(),
            ),
        )
        .await;
        return;
    }
    let me = &shared.names[shared.me];
    let my_nonce = wire::nonce();
    let challenge = Challenge {
        name: me.clone(),
        nonce: my_nonce,
        signature: shared.key.sign(&wire::transcript(
            Side::Acceptor,
            &cluster,
            &opener_nonce,
            &my_nonce,
            me,
        )),
    };
    if wire::write_msg(&mut w, &challenge).await.is_err() {
        return;
    }
    match hello {
        Hello::Peer { name, .. } => {
            let Some(peer) = shared.names.iter().position(|n| *n == name) else {
                warn!(%from, "refused a link: {name:?} is not a member");
                return;
            };
            let auth = tokio::time::timeout(
                HANDSHAKE,
                wire::read_msg::<Auth, _>(&mut r, wire::MAX_HELLO_FRAME),
            )
            .await;
            let signed = matches!(&auth, Ok(Ok(Some(a))) if shared.members[peer].public_key.verifies(&wire::transcript(Side::Opener, &cluster, &opener_nonce, &my_nonce, &name),
                &a.signature,
            ));
            if !signed || peer == shared.me {
                warn!(%from, "refused a link claiming to be {name}: its signature does not verify with {name}'s node key");
                return;
            }
            drop(handshake);
            info!(peer = %name, %from, "link from {name} up");
            shared.set_link(peer, false, true);
            let mut rng = SimRng::new(u64::from_le_bytes(
                my_nonce[..8].try_into().unwrap_or([0; 8]),
            ));
            // Flow control: a peer that sends faster than the engine steps waits.
            let inflight = Arc::new(tokio::sync::Semaphore::new(PEER_INFLIGHT));
            loop {
                let Ok(permit) = inflight.clone().acquire_owned().await else {
                    break;
                };
                match wire::read_frame(&mut r, wire::MAX_PEER_FRAME).await {
                    Ok(Some(bytes)) => {
                        if shared.loses(peer, &mut rng) {
                            if shared.fifo || shared.is_cut(peer) {
                                break;
                            }
                            continue;
                        }
                        shared.send(Input::Peer(peer, bytes, permit));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        warn!(peer = %name, "link from {name} closed: {e}");
                        break;
                    }
                }
            }
            shared.set_link(peer, false, false);
            info!(peer = %name, "link from {name} down");
            if shared.fifo {
                // Both ends of a FIFO link learn that it broke, as in the simulator.
                shared.send(Input::Disconnected(peer));
            }
        }
        Hello::Client { .. } => {
            drop(handshake);
            let Ok(_slot) = clients.try_acquire_owned() else {
                warn!(%from, "refused a client: {MAX_CLIENTS} clients are connected");
                let _ = wire::write_msg(
                    &mut w,
                    &ClientReply::Refused(format!(
                        "{MAX_CLIENTS} clients are connected; try later"
                    )),
                )
                .await;
                return;
            };
            let (tx, mut rx) = tmpsc::channel::<ClientReply>(CLIENT_REPLIES);
            let tx = ReplyTx {
                tx,
                overrun: Arc::new(AtomicBool::new(false)),
            };
            let overrun = tx.overrun.clone();
            let mut writer = tokio::spawn(async move {
                while let Some(reply) = rx.recv().await {
                    if overrun.load(Ordering::Relaxed) {
                        return;
                    }
                    if wire::write_msg(&mut w, &reply).await.is_err() {
                        return;
                    }
                }
            });
            // Flow control: a client that sends faster than the engine answers waits.
            let inflight = Arc::new(tokio::sync::Semaphore::new(CLIENT_INFLIGHT));
            // A client cut off is dropped at once, with the replies queued for it, even while
            // the writer waits on a client that does not read.
            let flag = tx.overrun.clone();
            let cut = async move {
                while !flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                warn!(%from, "client cut off: it let {CLIENT_REPLIES} replies pile up unread");
            };
            tokio::pin!(cut);
            loop {
                let permit = tokio::select! {
                    p = inflight.clone().acquire_owned() => match p {
                        Ok(p) => p,
                        Err(_) => break,
                    },
                    // The writer ended: the client is gone.
                    _ = &mut writer => break,
                    () = &mut cut => break,
                };
                let cmd = tokio::select! {
                    c = wire::read_msg::<ClientCmd, _>(&mut r, wire::MAX_CLIENT_FRAME) => c,
                    _ = &mut writer => break,
                    () = &mut cut => break,
                };
                match cmd {
                    Ok(Some(ClientCmd::Submit(reqs))) if reqs.len() > wire::MAX_SUBMIT => {
                        let _ = tx.send(ClientReply::Refused(format!(
                            "{} requests in one submission, the most is {}",
                            reqs.len(),
                            wire::MAX_SUBMIT
                        )));
                    }
                    Ok(Some(cmd)) => shared.send(Input::Client(cmd, tx.clone(), permit)),
                    Ok(None) => break,
                    Err(e) => {
                        warn!(%from, "client connection closed: {e}");
                        break;
                    }
                }
            }
            drop(tx);
            writer.abort();
        }
    }
}

/// This node's link to `peer`: connects, authenticates, sends what the engine queues;
/// reconnects with back-off when it breaks.
async fn outbound(peer: NodeId, mut queue: tmpsc::Receiver<Vec<u8>>, shared: Arc<Shared>) {
    let name = shared.names[peer].clone();
    let address = shared.members[peer].address;
    let mut backoff = Duration::from_millis(50);
    let mut rng = SimRng::new(u64::from(shared.key.pubkey().to_bytes()[0]) << 8 | peer as u64);
    let mut was_up = false;
    loop {
        if shared.is_cut(peer) || shared.resets[peer].swap(false, Ordering::Relaxed) {
            // Messages queued for a cut or broken link are lost with it.
            while queue.try_recv().is_ok() {}
            tokio::time::sleep(Duration::from_millis(20)).await;
            if shared.is_cut(peer) {
                continue;
            }
        }
        match connect(peer, address, &shared).await {
            Ok(stream) => {
                backoff = Duration::from_millis(50);
                info!(peer = %name, "link to {name} up");
                shared.set_link(peer, true, true);
                was_up = true;
                pump(peer, stream, &mut queue, &shared).await;
                shared.set_link(peer, true, false);
                info!(peer = %name, "link to {name} down");
                if shared.fifo {
                    // What was queued for the broken connection is lost with it: the peer
                    // must not get what followed a lost message without it.
                    while queue.try_recv().is_ok() {}
                }
                shared.send(Input::Disconnected(peer));
            }
            Err(e) => {
                if was_up {
                    debug!(peer = %name, "connecting to {name}: {e}");
                }
                if shared.fifo {
                    while queue.try_recv().is_ok() {}
                }
                let jitter =
                    Duration::from_millis(rng.range(0, backoff.as_millis() as u64 / 2 + 1));
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

async fn connect(peer: NodeId, address: SocketAddr, shared: &Shared) -> Result<TcpStream, String> {
    let mut stream = tokio::time::timeout(HANDSHAKE, TcpStream::connect(address))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    let me = shared.names[shared.me].clone();
    let nonce = wire::nonce();
    let hello = Hello::Peer {
        cluster: shared.cluster_id,
        name: me.clone(),
        nonce,
    };
    wire::write_msg(&mut stream, &hello)
        .await
        .map_err(|e| e.to_string())?;
    let challenge = tokio::time::timeout(
        HANDSHAKE,
        wire::read_msg::<Challenge, _>(&mut stream, wire::MAX_HELLO_FRAME),
    )
    .await
    .map_err(|_| "no answer to hello".to_owned())?
    .map_err(|e| e.to_string())?
    .ok_or("closed during the handshake")?;
    let peer_name = &shared.names[peer];
    let t = wire::transcript(
        Side::Acceptor,
        &shared.cluster_id,
        &nonce,
        &challenge.nonce,
        peer_name,
    );
    if challenge.name != *peer_name
        || !shared.members[peer]
            .public_key
            .verifies(&t, &challenge.signature)
    {
        warn!(peer = %peer_name, "{address} did not prove it is {peer_name}: link refused");
        return Err("the acceptor's signature does not verify".into());
    }
    let t = wire::transcript(
        Side::Opener,
        &shared.cluster_id,
        &nonce,
        &challenge.nonce,
        &me,
    );
    wire::write_msg(
        &mut stream,
        &Auth {
            signature: shared.key.sign(&t),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Sends queued messages until the link breaks, is reset or is cut.
async fn pump(
    peer: NodeId,
    stream: TcpStream,
    queue: &mut tmpsc::Receiver<Vec<u8>>,
    shared: &Shared,
) {
    let (mut r, mut w) = stream.into_split();
    let mut probe = [0u8; 1];
    loop {
        tokio::select! {
            msg = queue.recv() => {
                let Some(bytes) = msg else { return };
                if shared.resets[peer].swap(false, Ordering::Relaxed) || shared.is_cut(peer) {
                    return;
                }
                let delay = shared.faults.read().map(|f| f.delay(peer)).unwrap_or_default();
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if wire::write_frame(&mut w, &bytes).await.is_err() {
                    return;
                }
            }
            // The acceptor never writes after the handshake: a read returns only when it
            // closed the link.
            _ = r.read(&mut probe) => return,
        }
    }
}
