//! The deterministic cluster simulator every ordering rule runs on.
//!
//! Engines are sans-I/O state machines ([`Engine`]): they hold one node's state, are driven by
//! inputs — a message from a peer, a timer, a client request, a restart from what they
//! persisted — and answer with [`Output`]s: send, set a timer, persist, commit, reply. They
//! hold no clock (the time comes with each input), no socket, no thread and no RNG of their
//! own beyond the seeded one their driver hands them. The [`Simulator`] is one such driver;
//! real network nodes are another.
//!
//! The simulator runs N engines on virtual time from one seed: an event queue ordered by
//! (time, sequence number), a network with a one-way delay distribution, loss, duplication,
//! reordering (from the delay's jitter) and partitions, crashes and restarts (volatile state
//! lost, persisted state kept; a persist still in flight when the crash hits is lost), and an
//! open-loop client load. The same seed and scenario give the same run, bit for bit
//! ([`Simulator::trace_hash`]).
//!
//! Persistence is ordered as real nodes must order it: every output of a step that persisted
//! something — its messages, commits and replies — is held until the write completes
//! (`persist` later), and so are later steps' outputs while a write is pending; timers are
//! armed at once. The disk is the simulator's, not the engine's: an [`Observer`] reads it to
//! judge the run independently of what the engine says about itself.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

pub mod cluster;
pub mod report;
pub mod rng;
pub mod scenario;

pub use rng::SimRng;

/// A node's index in the cluster (0-based).
pub type NodeId = usize;
/// Virtual time in microseconds since the run started.
pub type Micros = u64;
/// One millisecond of virtual time.
pub const MS: Micros = 1_000;

pub use crate::primitives::tx::ClientRequest as Request;

/// A message between engines, as the network accounts for it.
pub trait Message: Clone {
    /// Its kind, an index into the engine's [`Engine::MSG_KINDS`].
    fn kind(&self) -> usize;
    /// Its size on the wire in bytes (an estimate of a compact binary encoding).
    fn wire_bytes(&self) -> usize;
}

/// What a step of an engine asks its driver to do.
#[derive(Debug, Clone)]
pub enum Output<E: Engine + ?Sized> {
    /// Send a message to a peer.
    Send(NodeId, E::Msg),
    /// Fire timer `id` at the given time, replacing the timer of that id.
    Timer(u8, Micros),
    /// Write to durable storage before the step's other outputs take effect.
    Persist(E::Persist),
    /// Something became committed (a log entry, a block).
    Commit(E::Commit),
    /// Tell a client its request is done.
    Reply(Request),
    /// Something for people and reports (a role change, a vote); never changes the run.
    Note(E::Note),
}

/// A sans-I/O consensus engine. See the module docs.
pub trait Engine {
    /// Messages between engines.
    type Msg: Message + fmt::Debug;
    /// One write to durable storage.
    type Persist: fmt::Debug;
    /// Durable storage: what a restarted engine gets back.
    type Disk: Clone + Default + fmt::Debug;
    /// What a commit hands the host.
    type Commit: fmt::Debug;
    /// Notes for timelines and reports.
    type Note: Copy + fmt::Debug + fmt::Display;
    /// The names of the message kinds, for reports.
    const MSG_KINDS: &'static [&'static str];

    /// The node starts (first boot or restart): arm its timers.
    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>);
    /// A message from a peer.
    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    );
    /// Timer `id` fired.
    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>);
    /// A client's request arrived.
    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>);
    /// Several clients' requests arrived at once (a real node hands over what its clients
    /// sent since its last turn): by default one [`Engine::on_client`] each; an engine that
    /// cuts a block as soon as enough requests wait takes them as one batch.
    fn on_clients(&mut self, now: Micros, requests: Vec<Request>, out: &mut Vec<Output<Self>>) {
        for r in requests {
            self.on_client(now, r, out);
        }
    }
    /// Whether the engine believes it leads (for time-without-a-leader).
    fn is_leader(&self) -> bool;
    /// Applies one write to durable storage.
    fn persist(disk: &mut Self::Disk, write: &Self::Persist);
    /// The connection to `peer` broke (FIFO links only, [`Simulator::fifo_links`]): a message
    /// on it was lost, so nothing sent on it since arrives. Engines on plain datagram links
    /// never hear this.
    fn on_disconnect(&mut self, _now: Micros, _peer: NodeId, _out: &mut Vec<Output<Self>>) {}
}

/// A safety property broken during a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The property (`election safety`, `log matching`…).
    pub property: &'static str,
    /// Virtual time, microseconds.
    pub time_us: Micros,
    /// The nodes involved.
    pub nodes: Vec<NodeId>,
    /// What was seen.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} violated at {:.3} s (nodes {:?}): {}",
            self.property,
            self.time_us as f64 / 1e6,
            self.nodes,
            self.detail
        )
    }
}

/// Judges a run from outside the engines: sees every step, every completed write (with the
/// disk after it) and every commit.
pub trait Observer<E: Engine> {
    /// After `node` took a step.
    ///
    /// # Errors
    /// The first property the step broke.
    fn stepped(&mut self, now: Micros, node: NodeId, engine: &E) -> Result<(), Violation>;
    /// After a write of `node` reached its disk.
    ///
    /// # Errors
    /// The first property the write broke.
    fn persisted(
        &mut self,
        now: Micros,
        node: NodeId,
        write: &E::Persist,
        disk: &E::Disk,
    ) -> Result<(), Violation>;
    /// After `node` committed.
    ///
    /// # Errors
    /// The first property the commit broke.
    fn committed(&mut self, now: Micros, node: NodeId, commit: &E::Commit)
    -> Result<(), Violation>;
    /// A client submitted `request` (its first try): what a valid commit may contain.
    fn requested(&mut self, _request: Request) {}
}

/// What the simulator's host learns: commits and notes (to write chain files, count blocks,
/// print a timeline).
pub trait Host<E: Engine> {
    /// `node` committed.
    fn commit(&mut self, now: Micros, node: NodeId, commit: &E::Commit);
    /// `node` noted something.
    fn note(&mut self, now: Micros, node: NodeId, note: E::Note);
}

/// The network and disk model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetModel {
    /// One-way delay, uniform between these bounds, milliseconds.
    #[serde(default = "default_delay")]
    pub delay_ms: (f64, f64),
    /// Probability a message is lost.
    #[serde(default)]
    pub drop: f64,
    /// Probability a message is delivered twice.
    #[serde(default)]
    pub duplicate: f64,
    /// Time a write to disk takes, milliseconds.
    #[serde(default = "default_persist")]
    pub persist_ms: f64,
}

const fn default_delay() -> (f64, f64) {
    (5.0, 10.0)
}

const fn default_persist() -> f64 {
    1.0
}

impl Default for NetModel {
    fn default() -> Self {
        Self {
            delay_ms: default_delay(),
            drop: 0.0,
            duplicate: 0.0,
            persist_ms: default_persist(),
        }
    }
}

/// A node crashes at `at` and, when `restart` is given, comes back then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash {
    /// The node.
    pub node: NodeId,
    /// When it crashes.
    pub at: Micros,
    /// When it restarts from its disk.
    pub restart: Option<Micros>,
}

/// Whichever node leads at `at` crashes and, when `restart` is given, comes back then: the
/// same scenario crashes "the leader" under every rule, whoever that is. When several nodes
/// believe they lead (a deposed leader that has not heard yet), the one that took the lead
/// last crashes; when none does, nothing crashes (and the report says so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderCrash {
    /// When the leader crashes.
    pub at: Micros,
    /// When it restarts from its disk.
    pub restart: Option<Micros>,
}

/// Groups of nodes that cannot reach each other from `from` until `to` (nodes no group names
/// form one more group).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// The groups.
    pub groups: Vec<Vec<NodeId>>,
    /// Start.
    pub from: Micros,
    /// Healed.
    pub to: Micros,
}

/// Messages from one node to another are lost from `start` until `end` (one direction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkCut {
    /// The sender.
    pub from: NodeId,
    /// The receiver.
    pub to: NodeId,
    /// Start.
    pub start: Micros,
    /// Healed.
    pub end: Micros,
}

/// The faults and load of a run, in node indices and microseconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    /// Crashes and restarts.
    pub crashes: Vec<Crash>,
    /// Crashes of whoever leads at the time.
    pub leader_crashes: Vec<LeaderCrash>,
    /// Partitions.
    pub partitions: Vec<Partition>,
    /// One-way link cuts.
    pub cuts: Vec<LinkCut>,
    /// Loss and duplication stop at this time (`None`: they last the whole run).
    pub lossy_until: Option<Micros>,
    /// Client transactions per second, submitted to random nodes.
    pub load_tps: f64,
    /// The first client's id (clients of a run that continues a chain must differ from the
    /// earlier runs').
    pub first_client: u32,
}

/// Counters of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Events processed.
    pub events: u64,
    /// Messages sent, by kind.
    pub sent: Vec<u64>,
    /// Bytes sent, by kind.
    pub bytes: Vec<u64>,
    /// Messages lost to loss, partitions or a crashed receiver.
    pub dropped: u64,
    /// Microseconds during which no live node believed it led.
    pub leaderless_us: Micros,
    /// Client requests submitted (first tries).
    pub submitted: u64,
    /// Client retries.
    pub retries: u64,
    /// Requests the clients gave up on after [`MAX_RETRIES`] retries.
    pub abandoned: u64,
    /// Submit-to-reply latency of each answered request, microseconds, in answer order.
    pub latencies: Vec<Micros>,
    /// Replies the nodes sent to clients.
    pub replies: u64,
    /// Each leader crash, in order: when, and the node it took down (`None`: no node led
    /// then).
    pub crashed_leaders: Vec<(Micros, Option<NodeId>)>,
}

/// Clients submitting the load.
pub const CLIENTS: u32 = 8;
/// A client retries a request not answered within this time, at another random node.
const CLIENT_RETRY: Micros = 1_000 * MS;
/// … at most this many times, then gives up on it (so an overloaded cluster's backlog of
/// retries stays bounded).
pub const MAX_RETRIES: u32 = 10;

enum Event<E: Engine> {
    Deliver {
        from: NodeId,
        to: NodeId,
        msg: E::Msg,
        /// FIFO links: the connection's generation when it was sent.
        conn: u64,
    },
    /// FIFO links: the broken connection between two nodes is noticed at both ends.
    Disconnect(NodeId, NodeId),
    Timer {
        node: NodeId,
        id: u8,
        generation: u64,
    },
    Written {
        node: NodeId,
        incarnation: u64,
        batch: Vec<Output<E>>,
    },
    Crash(NodeId),
    CrashLeader(Option<Micros>),
    Restart(NodeId),
    ClientTick,
    ClientSend(Request),
    ClientRetry(Request, u32),
    ClientTo(NodeId, Request),
}

struct Slot<E: Engine> {
    engine: Option<E>,
    disk: E::Disk,
    incarnation: u64,
    timers: [u64; 8],
    /// When the last pending write completes.
    disk_busy_until: Micros,
    /// Batches of outputs held until a write completes: while any is, later outputs queue
    /// behind it, so they take effect in the order the engine produced them.
    held: usize,
    leader: bool,
    /// When it last began to lead.
    leading_since: Micros,
}

/// Builds an engine for a node from its disk and its RNG (first boot: an empty disk).
pub type Boot<E> = Box<dyn FnMut(NodeId, &<E as Engine>::Disk, SimRng) -> E + Send>;

/// The simulator. See the module docs.
pub struct Simulator<E: Engine> {
    now: Micros,
    seq: u64,
    queue: BinaryHeap<Reverse<(Micros, u64, u32)>>,
    events: Vec<Option<Event<E>>>,
    free: Vec<u32>,
    nodes: Vec<Slot<E>>,
    boot: Boot<E>,
    rng: SimRng,
    net: NetModel,
    faults: Faults,
    stats: SimStats,
    hash: u64,
    out: Vec<Output<E>>,
    leaders: usize,
    leaderless_since: Option<Micros>,
    next_serial: Vec<u64>,
    waiting: HashMap<Request, (Micros, u128)>,
    replies_needed: u32,
    retry_all: bool,
    fifo: Option<Fifo>,
    violation: Option<Violation>,
}

/// Per-link FIFO delivery, as TCP gives it ([`Simulator::fifo_links`]). A connection joins
/// each pair of nodes; it carries messages in send order, and a lost message breaks it: what
/// is still in flight on it and what is sent on it until both ends have noticed is lost too,
/// then a fresh connection starts.
struct Fifo {
    /// Per directed link, when its last message is due.
    due: Vec<Micros>,
    /// Per pair of nodes, the connection's generation (it grows when the connection breaks).
    generation: Vec<u64>,
    /// Per pair, whether the connection is broken and its ends not yet told.
    broken: Vec<bool>,
}

const fn mix(h: u64, v: u64) -> u64 {
    (h ^ v).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5)
}

fn to_us(ms: f64) -> Micros {
    (ms * 1000.0).round().max(0.0) as Micros
}

impl<E: Engine> Simulator<E> {
    /// A cluster of `n` nodes booted by `boot` from disks holding `disk`, from `seed`, on
    /// network `net` with `faults`.
    pub fn new(
        n: usize,
        seed: u64,
        net: NetModel,
        faults: Faults,
        disk: &E::Disk,
        mut boot: Boot<E>,
    ) -> Self {
        let mut rng = SimRng::new(seed);
        let nodes = (0..n)
            .map(|i| {
                let disk = disk.clone();
                Slot {
                    engine: Some(boot(i, &disk, rng.fork())),
                    disk,
                    incarnation: 0,
                    timers: [0; 8],
                    disk_busy_until: 0,
                    held: 0,
                    leader: false,
                    leading_since: 0,
                }
            })
            .collect();
        let mut sim = Self {
            now: 0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: Vec::new(),
            free: Vec::new(),
            nodes,
            boot,
            rng,
            net,
            faults,
            stats: SimStats {
                sent: vec![0; E::MSG_KINDS.len()],
                bytes: vec![0; E::MSG_KINDS.len()],
                ..SimStats::default()
            },
            hash: 0xcbf2_9ce4_8422_2325,
            out: Vec::new(),
            leaders: 0,
            leaderless_since: Some(0),
            next_serial: vec![0; CLIENTS as usize],
            waiting: HashMap::new(),
            replies_needed: 1,
            retry_all: false,
            fifo: None,
            violation: None,
        };
        for c in sim.faults.crashes.clone() {
            sim.schedule(c.at, Event::Crash(c.node));
            if let Some(r) = c.restart {
                sim.schedule(r, Event::Restart(c.node));
            }
        }
        for c in sim.faults.leader_crashes.clone() {
            sim.schedule(c.at, Event::CrashLeader(c.restart));
        }
        if sim.faults.load_tps > 0.0 {
            let first = sim.client_gap();
            sim.schedule(first, Event::ClientTick);
        }
        sim
    }

    /// Clients as Byzantine-fault-tolerant protocols have them: a request is answered once
    /// `replies` different nodes replied (PBFT's `f + 1`), and a retry goes to every node
    /// rather than to one.
    pub fn byzantine_clients(&mut self, replies: u32) {
        self.replies_needed = replies.clamp(1, 128);
        self.retry_all = true;
    }

    /// Links as TCP connections: messages from one node to another arrive in the order they
    /// were sent, never twice (duplication is off); a packet lost at random is retransmitted
    /// (late, and holding up what follows). A message that cannot get through — the link is
    /// cut or partitioned, the receiver is down, or it restarted since the connection was
    /// made — breaks the connection between the two: nothing else sent on it arrives until
    /// both ends have been told ([`Engine::on_disconnect`], one delay later), and then a new
    /// connection starts. A crash by itself tells no one. Off by default; a run that never
    /// calls this is unchanged.
    pub fn fifo_links(&mut self) {
        let n = self.nodes.len();
        self.fifo = Some(Fifo {
            due: vec![0; n * n],
            generation: vec![0; n * n],
            broken: vec![false; n * n],
        });
    }

    /// FIFO links: breaks the connection between `a` and `b` (once) and tells both ends one
    /// delay later.
    fn break_connection(&mut self, a: NodeId, b: NodeId) {
        let n = self.nodes.len();
        let pair = a.min(b) * n + a.max(b);
        let Some(fifo) = self.fifo.as_mut() else {
            return;
        };
        if fifo.broken[pair] {
            return;
        }
        fifo.broken[pair] = true;
        fifo.generation[pair] += 1;
        let d = self.delay();
        self.schedule(self.now + d, Event::Disconnect(a, b));
    }

    fn connection(&self, a: NodeId, b: NodeId) -> (usize, u64, bool) {
        let n = self.nodes.len();
        let pair = a.min(b) * n + a.max(b);
        self.fifo.as_ref().map_or((pair, 0, false), |f| {
            (pair, f.generation[pair], f.broken[pair])
        })
    }

    /// Starts every node (call once, before running).
    pub fn start(&mut self, observer: &mut dyn Observer<E>, host: &mut dyn Host<E>) {
        for node in 0..self.nodes.len() {
            self.step(node, observer, host, |e, now, out| e.start(now, out));
        }
    }

    /// Virtual time now.
    #[must_use]
    pub const fn now(&self) -> Micros {
        self.now
    }

    /// The counters so far (leaderless time up to now).
    #[must_use]
    pub fn stats(&self) -> SimStats {
        let mut s = self.stats.clone();
        if let Some(since) = self.leaderless_since {
            s.leaderless_us += self.now - since;
        }
        s
    }

    /// A hash of everything that happened, in order: equal for equal runs.
    #[must_use]
    pub const fn trace_hash(&self) -> u64 {
        self.hash
    }

    /// The first safety violation the observer reported, if any.
    #[must_use]
    pub const fn violation(&self) -> Option<&Violation> {
        self.violation.as_ref()
    }

    /// Node `node`'s engine, if it is up.
    #[must_use]
    pub fn engine(&self, node: NodeId) -> Option<&E> {
        self.nodes[node].engine.as_ref()
    }

    /// Number of nodes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether the cluster has no nodes.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Crashes `node` now (experiments that crash whoever leads).
    pub fn crash_now(&mut self, node: NodeId) {
        let now = self.now;
        self.schedule(now, Event::Crash(node));
    }

    /// Cuts the link from `from` to `to` (one direction) from now until `end`.
    pub fn cut_link(&mut self, from: NodeId, to: NodeId, end: Micros) {
        self.faults.cuts.push(LinkCut {
            from,
            to,
            start: self.now,
            end,
        });
    }

    /// Hands `request` to `node` now, as a client next to it would.
    pub fn submit_to(&mut self, node: NodeId, request: Request) {
        let now = self.now;
        self.schedule(now, Event::ClientTo(node, request));
    }

    /// Runs events until virtual time `until`, a violation, or `stop` says so (checked after
    /// each event). Returns false when a violation ended it.
    pub fn run_until(
        &mut self,
        until: Micros,
        observer: &mut dyn Observer<E>,
        host: &mut dyn Host<E>,
        stop: &mut dyn FnMut(&Self) -> bool,
    ) -> bool {
        while self.violation.is_none() {
            let Some(&Reverse((at, _, slot))) = self.queue.peek() else {
                self.advance(until);
                break;
            };
            if at > until {
                self.advance(until);
                break;
            }
            self.queue.pop();
            let event = self.events[slot as usize]
                .take()
                .expect("a queued event is stored");
            self.free.push(slot);
            self.advance(at);
            self.stats.events += 1;
            self.handle(event, observer, host);
            if stop(self) {
                break;
            }
        }
        self.violation.is_none()
    }

    fn advance(&mut self, to: Micros) {
        self.now = self.now.max(to);
    }

    fn schedule(&mut self, at: Micros, event: Event<E>) {
        let slot = if let Some(s) = self.free.pop() {
            self.events[s as usize] = Some(event);
            s
        } else {
            self.events.push(Some(event));
            (self.events.len() - 1) as u32
        };
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, slot)));
    }

    fn client_gap(&mut self) -> Micros {
        let mean = 1e6 / self.faults.load_tps;
        ((mean * (0.5 + self.rng.unit())) as Micros).max(1)
    }

    fn delay(&mut self) -> Micros {
        let (lo, hi) = self.net.delay_ms;
        self.rng.range(to_us(lo), to_us(hi).max(to_us(lo)))
    }

    fn lossy(&self) -> bool {
        self.faults.lossy_until.is_none_or(|t| self.now < t)
    }

    fn reachable(&self, a: NodeId, b: NodeId) -> bool {
        let cut = self
            .faults
            .cuts
            .iter()
            .any(|c| c.from == a && c.to == b && self.now >= c.start && self.now < c.end);
        !cut && self.faults.partitions.iter().all(|p| {
            if self.now < p.from || self.now >= p.to {
                return true;
            }
            let group = |n: NodeId| p.groups.iter().position(|g| g.contains(&n));
            group(a) == group(b)
        })
    }

    fn handle(&mut self, event: Event<E>, observer: &mut dyn Observer<E>, host: &mut dyn Host<E>) {
        match event {
            Event::Deliver {
                from,
                to,
                msg,
                conn,
            } => {
                self.hash = mix(
                    mix(self.hash, self.now),
                    (from * 64 + to) as u64 ^ (msg.kind() as u64) << 32,
                );
                if self.fifo.is_some() {
                    let (_, generation, _) = self.connection(from, to);
                    if generation != conn {
                        // Sent on a connection that broke since.
                        self.stats.dropped += 1;
                        return;
                    }
                }
                if self.nodes[to].engine.is_none() || !self.reachable(from, to) {
                    self.stats.dropped += 1;
                    self.break_connection(from, to);
                    return;
                }
                self.step(to, observer, host, |e, now, out| {
                    e.on_message(now, from, msg, out)
                });
            }
            Event::Timer {
                node,
                id,
                generation,
            } => {
                if self.nodes[node].timers[id as usize] != generation
                    || self.nodes[node].engine.is_none()
                {
                    return;
                }
                self.hash = mix(
                    mix(self.hash, self.now),
                    0x1000 + node as u64 * 8 + u64::from(id),
                );
                self.step(node, observer, host, |e, now, out| e.on_timer(now, id, out));
            }
            Event::Written {
                node,
                incarnation,
                batch,
            } => {
                if self.nodes[node].incarnation != incarnation {
                    return;
                }
                self.nodes[node].held -= 1;
                self.hash = mix(mix(self.hash, self.now), 0x2000 + node as u64);
                self.release(node, batch, observer, host);
            }
            Event::Disconnect(a, b) => {
                self.hash = mix(mix(self.hash, self.now), 0x6000 + (a * 64 + b) as u64);
                let (pair, _, _) = self.connection(a, b);
                if let Some(f) = self.fifo.as_mut() {
                    f.broken[pair] = false;
                }
                for (node, peer) in [(a, b), (b, a)] {
                    self.step(node, observer, host, |e, now, out| {
                        e.on_disconnect(now, peer, out);
                    });
                }
            }
            Event::Crash(node) => self.crash(node),
            Event::CrashLeader(restart) => {
                let leader = (0..self.nodes.len())
                    .filter(|&n| self.nodes[n].engine.as_ref().is_some_and(E::is_leader))
                    .max_by_key(|&n| (self.nodes[n].leading_since, std::cmp::Reverse(n)));
                self.stats.crashed_leaders.push((self.now, leader));
                if let Some(node) = leader {
                    self.crash(node);
                    if let Some(r) = restart {
                        self.schedule(r.max(self.now), Event::Restart(node));
                    }
                }
            }
            Event::Restart(node) => {
                self.hash = mix(mix(self.hash, self.now), 0x4000 + node as u64);
                if self.nodes[node].engine.is_some() {
                    return;
                }
                // A restarted process has no connections: what its peers still send on the
                // old ones is refused, and they learn the connections are gone.
                if self.fifo.is_some() {
                    for peer in (0..self.nodes.len()).filter(|p| *p != node) {
                        self.break_connection(node, peer);
                    }
                }
                let rng = self.rng.fork();
                let engine = (self.boot)(node, &self.nodes[node].disk, rng);
                self.nodes[node].engine = Some(engine);
                self.step(node, observer, host, |e, now, out| e.start(now, out));
            }
            Event::ClientTick => {
                let c = self.rng.range(0, u64::from(CLIENTS) - 1) as usize;
                let serial = self.next_serial[c];
                self.next_serial[c] += 1;
                let request = Request {
                    client: self.faults.first_client.saturating_add(c as u32),
                    serial,
                };
                self.stats.submitted += 1;
                self.waiting.insert(request, (self.now, 0));
                observer.requested(request);
                let d = self.delay();
                self.schedule(self.now + d, Event::ClientSend(request));
                self.schedule(self.now + CLIENT_RETRY, Event::ClientRetry(request, 1));
                let gap = self.client_gap();
                self.schedule(self.now + gap, Event::ClientTick);
            }
            Event::ClientSend(request) => {
                let node = self.rng.range(0, self.nodes.len() as u64 - 1) as usize;
                self.client_step(node, request, observer, host);
            }
            Event::ClientTo(node, request) => {
                observer.requested(request);
                self.client_step(node, request, observer, host);
            }
            Event::ClientRetry(request, n) => {
                if !self.waiting.contains_key(&request) {
                    return;
                }
                if n > MAX_RETRIES {
                    self.waiting.remove(&request);
                    self.stats.abandoned += 1;
                    return;
                }
                self.stats.retries += 1;
                if self.retry_all {
                    for node in 0..self.nodes.len() {
                        let d = self.delay();
                        self.schedule(self.now + d, Event::ClientTo(node, request));
                    }
                } else {
                    let d = self.delay();
                    self.schedule(self.now + d, Event::ClientSend(request));
                }
                self.schedule(self.now + CLIENT_RETRY, Event::ClientRetry(request, n + 1));
            }
        }
    }

    /// `node` gets a client's request (lost if the node is down).
    fn client_step(
        &mut self,
        node: NodeId,
        request: Request,
        observer: &mut dyn Observer<E>,
        host: &mut dyn Host<E>,
    ) {
        self.hash = mix(
            mix(self.hash, self.now),
            0x5000 + node as u64 + (request.serial << 8),
        );
        if self.nodes[node].engine.is_some() {
            self.step(node, observer, host, |e, now, out| {
                e.on_client(now, request, out)
            });
        }
    }

    fn crash(&mut self, node: NodeId) {
        self.hash = mix(mix(self.hash, self.now), 0x3000 + node as u64);
        let slot = &mut self.nodes[node];
        if slot.engine.take().is_some() {
            // Its timers die with it.
            for g in &mut slot.timers {
                *g += 1;
            }
            slot.incarnation += 1;
            slot.disk_busy_until = 0;
            slot.held = 0;
            self.set_leader(node, false);
        }
    }

    fn set_leader(&mut self, node: NodeId, leader: bool) {
        let slot = &mut self.nodes[node];
        if slot.leader == leader {
            return;
        }
        slot.leader = leader;
        if leader {
            slot.leading_since = self.now;
            self.leaders += 1;
            if let Some(since) = self.leaderless_since.take() {
                self.stats.leaderless_us += self.now - since;
            }
        } else {
            self.leaders -= 1;
            if self.leaders == 0 {
                self.leaderless_since = Some(self.now);
            }
        }
    }

    fn step(
        &mut self,
        node: NodeId,
        observer: &mut dyn Observer<E>,
        host: &mut dyn Host<E>,
        input: impl FnOnce(&mut E, Micros, &mut Vec<Output<E>>),
    ) {
        let mut out = std::mem::take(&mut self.out);
        out.clear();
        let now = self.now;
        let Some(engine) = self.nodes[node].engine.as_mut() else {
            self.out = out;
            return;
        };
        input(engine, now, &mut out);
        let leader = engine.is_leader();
        if let Err(v) = observer.stepped(now, node, self.nodes[node].engine.as_ref().expect("up")) {
            self.violation.get_or_insert(v);
        }
        self.set_leader(node, leader);
        // Timers and notes take effect now; the rest waits for any write of this step or
        // still pending.
        let persists = out.iter().any(|o| matches!(o, Output::Persist(_)));
        let busy = self.nodes[node].held > 0;
        let mut held = Vec::new();
        for o in out.drain(..) {
            match o {
                Output::Timer(id, at) => {
                    let slot = &mut self.nodes[node];
                    slot.timers[id as usize] += 1;
                    let generation = slot.timers[id as usize];
                    self.schedule(
                        at.max(now),
                        Event::Timer {
                            node,
                            id,
                            generation,
                        },
                    );
                }
                Output::Note(n) => host.note(now, node, n),
                other if persists || busy => held.push(other),
                other => self.emit(node, other, observer, host),
            }
        }
        self.out = out;
        if !held.is_empty() {
            let cost = if persists {
                to_us(self.net.persist_ms)
            } else {
                0
            };
            let done = (now + cost).max(self.nodes[node].disk_busy_until);
            self.nodes[node].disk_busy_until = done;
            self.nodes[node].held += 1;
            let incarnation = self.nodes[node].incarnation;
            self.schedule(
                done,
                Event::Written {
                    node,
                    incarnation,
                    batch: held,
                },
            );
        }
    }

    fn release(
        &mut self,
        node: NodeId,
        batch: Vec<Output<E>>,
        observer: &mut dyn Observer<E>,
        host: &mut dyn Host<E>,
    ) {
        for o in batch {
            self.emit(node, o, observer, host);
        }
    }

    /// Sends on a FIFO link: due no earlier than the link's last message (ties keep send
    /// order). A packet lost at random is resent after a retransmission timeout of twice
    /// the longest delay, holding up what follows it; a message to a node it cannot reach
    /// is lost with everything after it on the connection.
    fn send_fifo(&mut self, from: NodeId, to: NodeId, msg: E::Msg) {
        let (_, conn, broken) = self.connection(from, to);
        if broken || !self.reachable(from, to) {
            self.stats.dropped += 1;
            self.break_connection(from, to);
            return;
        }
        let mut d = self.delay();
        let rto = to_us(2.0 * self.net.delay_ms.1).max(1);
        while self.lossy() && self.rng.chance(self.net.drop) {
            self.stats.dropped += 1;
            d += rto + self.delay();
        }
        let n = self.nodes.len();
        let fifo = self.fifo.as_mut().expect("fifo links");
        let at = (self.now + d).max(fifo.due[from * n + to]);
        fifo.due[from * n + to] = at;
        self.schedule(
            at,
            Event::Deliver {
                from,
                to,
                msg,
                conn,
            },
        );
    }

    fn emit(
        &mut self,
        node: NodeId,
        output: Output<E>,
        observer: &mut dyn Observer<E>,
        host: &mut dyn Host<E>,
    ) {
        let now = self.now;
        match output {
            Output::Send(to, msg) => {
                let kind = msg.kind();
                self.stats.sent[kind] += 1;
                self.stats.bytes[kind] += msg.wire_bytes() as u64;
                if self.fifo.is_some() {
                    self.send_fifo(node, to, msg);
                    return;
                }
                if !self.reachable(node, to) || (self.lossy() && self.rng.chance(self.net.drop)) {
                    self.stats.dropped += 1;
                    return;
                }
                if self.lossy() && self.rng.chance(self.net.duplicate) {
                    let d = self.delay();
                    self.schedule(
                        now + d,
                        Event::Deliver {
                            from: node,
                            to,
                            msg: msg.clone(),
                            conn: 0,
                        },
                    );
                }
                let d = self.delay();
                self.schedule(
                    now + d,
                    Event::Deliver {
                        from: node,
                        to,
                        msg,
                        conn: 0,
                    },
                );
            }
            Output::Persist(write) => {
                E::persist(&mut self.nodes[node].disk, &write);
                if let Err(v) = observer.persisted(now, node, &write, &self.nodes[node].disk) {
                    self.violation.get_or_insert(v);
                }
            }
            Output::Commit(c) => {
                if let Err(v) = observer.committed(now, node, &c) {
                    self.violation.get_or_insert(v);
                }
                host.commit(now, node, &c);
            }
            Output::Reply(request) => {
                self.stats.replies += 1;
                let needed = self.replies_needed;
                if let Some((at, replied)) = self.waiting.get_mut(&request) {
                    *replied |= 1u128 << node.min(127);
                    if replied.count_ones() >= needed {
                        let at = *at;
                        self.waiting.remove(&request);
                        self.stats.latencies.push(now - at);
                    }
                }
            }
            Output::Timer(..) | Output::Note(_) => unreachable!("handled in step"),
        }
    }
}
