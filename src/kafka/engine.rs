//! The Kafka broker engine, sans-I/O: one partition (the chain) replicated by a leader and
//! followers that pull, as Kafka's replication documentation describes it, with the leader
//! epochs of KIP-101 and a controller run on the Raft engine (KRaft, KIP-500/KIP-595).
//!
//! Every broker is two engines in one ([`KafkaNode`]):
//!
//! - a member of the controller quorum: a [`RaftNode`] over a [`ControllerApp`], whose log
//!   holds the partition's metadata (leader, leader epoch, ISR). The Raft leader is the
//!   active controller: it tracks broker sessions (heartbeats), elects a new partition leader
//!   from the ISR when the leader's session expires (from any live replica when
//!   `unclean_leader_election` is on), and commits the ISR changes the partition leader asks
//!   for (`AlterIsr`);
//! - a replica of the partition (when it is one of the first `replicas` brokers): the leader
//!   appends client records (blocks) to its log; followers fetch from it with
//!   `Fetch(offset, last fetched epoch)`, long-polled up to the fetch interval. The leader
//!   tracks each follower's log end offset (LEO) and the last time it was caught up; it asks
//!   the controller to drop from the ISR a follower that lagged more than
//!   `replica_lag_time_max_ms` and to add back one that caught up (its LEO at least the high
//!   watermark and the start of the leader's epoch). The high watermark (HW) is the smallest
//!   LEO over the ISR (with a pending addition counted, a pending removal not: KIP-497's
//!   "maximal ISR"), advanced only while the ISR has `min_insync_replicas` members
//!   (`acks=all`; writes are refused while it is smaller); offsets below it are committed.
//!   Fetch responses carry the HW and the commit certificates of offsets the follower has
//!   not committed yet.
//!
//! A replica that becomes a follower (on restart, or demoted) first asks the leader for the
//! end offset of its last epoch (`OffsetsForLeaderEpoch`, KIP-101, answered as KIP-279 does
//! for an epoch the leader does not have) and truncates there; fetches then carry the last
//! fetched epoch and a leader that finds it diverging sends the follower back to ask again.
//! With leader epochs off the follower truncates to its own high-watermark checkpoint, as
//! Kafka did before KIP-101 — which loses committed records (the KIP's first scenario; see the
//! tests).
//!
//! Each replica signs every record it stores — (record epoch, offset, record digest) — and
//! sends the signatures with its fetches; a record commits with the leader's signature and
//! those of the ISR members that stored it, at least `min_insync_replicas` of them: the
//! certificate a chain block carries.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::kafka::controller::{ControllerApp, MetaCmd, PartitionState, elect};
use crate::primitives::seal::QuorumSignature;
use crate::raft::engine::{self as raft, RaftConfig, RaftNode};
use crate::sim::{Engine, Message, Micros, NodeId, Output, Request, SimRng};

/// Timer ids (Raft's controller uses 0 to 3).
pub(crate) const FETCH: u8 = 4;
pub(crate) const CUT: u8 = 5;
pub(crate) const HEARTBEAT: u8 = 6;
pub(crate) const ISR_CHECK: u8 = 7;

/// At most this many client requests wait at a broker that knows no leader.
const MAX_WAITING: usize = 10_000;
/// At most this many records (and as many certificates) in one fetch response.
pub const MAX_FETCH: usize = 64;

/// A broker's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// This broker.
    pub id: NodeId,
    /// Brokers (all of them controller-quorum members).
    pub members: usize,
    /// The partition's replicas: brokers `0..replicas`.
    pub replicas: usize,
    /// A follower not caught up for longer than this leaves the ISR
    /// (`replica.lag.time.max.ms`).
    pub lag_max: Micros,
    /// The fewest in-sync replicas that accept a write (`min.insync.replicas`).
    pub min_insync: usize,
    /// Elect an out-of-sync replica when no ISR member is alive
    /// (`unclean.leader.election.enable`).
    pub unclean: bool,
    /// Leader epochs (KIP-101): truncate to the leader's end offset of the last epoch; off:
    /// to the own high watermark.
    pub leader_epochs: bool,
    /// A follower's fetch waits at most this long at the leader for new records
    /// (`replica.fetch.wait.max.ms`); followers retry unanswered fetches after three of them.
    pub fetch_interval: Micros,
    /// Brokers heartbeat the controller this often (`broker.heartbeat.interval.ms`) …
    pub heartbeat: Micros,
    /// … and are deemed dead after this long without one (`broker.session.timeout.ms`).
    pub session_timeout: Micros,
    /// The leader cuts a record (a block) from waiting requests this often …
    pub cut_interval: Micros,
    /// … or as soon as this many wait.
    pub max_batch: usize,
    /// The controller quorum's Raft parameters.
    pub controller: RaftConfig,
    /// Planted bugs the observer or `check` must catch (tests only).
    #[cfg(test)]
    pub bug: Option<Bug>,
}

/// Bugs planted in test-only variants of the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The high watermark is the smallest LEO over all replicas, not the ISR: safe (it is
    /// stricter) but commits stall while any replica is down, which `check`'s liveness bound
    /// catches.
    HwOverAllReplicas,
    /// The high watermark is the leader's own LEO: a record commits before any follower
    /// stores it, and a leader crash loses it.
    HwLeaderOnly,
}

/// A record of the partition's log: the leader epoch it was appended in, its offset and its
/// data (a block).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record<D> {
    /// The leader epoch that appended it.
    pub epoch: u64,
    /// Its offset (0-based).
    pub offset: u64,
    /// The data.
    pub data: D,
    /// The appending leader's signature over it, which travels with it (so that a later
    /// leader certifying it can show who appended it).
    pub leader_sig: Option<QuorumSignature>,
}

/// A committed record and its certificate.
#[derive(Debug, Clone)]
pub struct Committed<D> {
    /// The record.
    pub record: Arc<Record<D>>,
    /// The signatures of the replicas that stored it (empty where the app does not sign).
    pub cert: Arc<Vec<QuorumSignature>>,
}

/// What a broker keeps on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable<D> {
    /// The controller quorum member's term, vote and log.
    pub controller: raft::Durable<MetaCmd>,
    /// The offset of the log's first record (records before it are in the chain's base).
    pub base: u64,
    /// The epoch of the record before `base`.
    pub base_epoch: u64,
    /// The records from `base`.
    pub log: Vec<Arc<Record<D>>>,
    /// The high-watermark checkpoint.
    pub hw: u64,
    /// The certificates of the committed records from `base`.
    pub certs: Vec<Arc<Vec<QuorumSignature>>>,
}

impl<D> Default for Durable<D> {
    fn default() -> Self {
        Self {
            controller: raft::Durable::default(),
            base: 0,
            base_epoch: 0,
            log: Vec::new(),
            hw: 0,
            certs: Vec::new(),
        }
    }
}

/// One write to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Persist<D> {
    /// The controller quorum member's write.
    Controller(raft::Persist<MetaCmd>),
    /// Drop the records from this offset on (and their certificates).
    Truncate(u64),
    /// Append records.
    Append(Vec<Arc<Record<D>>>),
    /// The high-watermark checkpoint.
    Hw(u64),
    /// Certificates of newly committed records, in offset order.
    Certs(Vec<Arc<Vec<QuorumSignature>>>),
}

/// How a leader answers a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FetchResult {
    /// Records (perhaps none) from the fetch offset.
    Ok,
    /// The follower's log diverges (its last fetched epoch is not the leader's at that
    /// offset): it must ask for its epoch's end offset again.
    Diverging,
    /// The offset is past the leader's log end (leader epochs off): truncate to `leo`.
    OutOfRange {
        /// The leader's log end offset.
        leo: u64,
    },
    /// The follower's leader epoch is older than the leader's.
    Fenced,
}

/// A broker's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg<D> {
    /// The controller quorum's Raft messages.
    Controller(raft::Msg<MetaCmd>),
    /// A follower's fetch.
    Fetch {
        /// The leader epoch it follows.
        epoch: u64,
        /// Its log end offset: the first record it wants.
        offset: u64,
        /// The epoch of its last record.
        last_epoch: u64,
        /// The first offset it has not committed: certificates wanted from here.
        committed: u64,
        /// Its signatures over the records it stores above the leader's last HW.
        sigs: Vec<(u64, QuorumSignature)>,
    },
    /// The leader's answer.
    FetchReply {
        /// The leader epoch.
        epoch: u64,
        /// The outcome.
        result: FetchResult,
        /// The high watermark.
        hw: u64,
        /// Records from the fetch offset.
        records: Vec<Arc<Record<D>>>,
        /// Certificates of committed offsets from the follower's commit point.
        certs: Vec<(u64, Arc<Vec<QuorumSignature>>)>,
    },
    /// `OffsetsForLeaderEpoch`: where does `last_epoch` end in the leader's log?
    EpochQuery {
        /// The leader epoch the asker follows.
        epoch: u64,
        /// The epoch of the asker's last record.
        last_epoch: u64,
    },
    /// The answer: the largest epoch at most the asked one, and its end offset.
    EpochReply {
        /// The leader epoch.
        epoch: u64,
        /// The epoch found.
        found: u64,
        /// Its end offset in the leader's log.
        end: u64,
    },
    /// The partition leader asks the controller for a new ISR.
    AlterIsr {
        /// The leader's epoch.
        epoch: u64,
        /// The metadata version it saw.
        version: u64,
        /// The ISR it asks for.
        isr: Vec<NodeId>,
    },
    /// A broker's heartbeat to the active controller.
    Heartbeat,
    /// Client requests a broker forwards to the partition leader.
    Forward(Vec<Request>),
}

/// Kinds of [`Msg`], for reports: the controller quorum's Raft kinds, then the broker's.
pub const MSG_KINDS: &[&str] = &[
    "ctl pre-vote",
    "ctl pre-vote rep",
    "ctl vote",
    "ctl vote reply",
    "ctl append",
    "ctl heartbeat",
    "ctl append reply",
    "ctl forward",
    "fetch",
    "fetch reply",
    "records",
    "epoch query",
    "epoch reply",
    "alter isr",
    "broker heartbeat",
    "forward",
];

/// The size of a record's data on the wire.
pub trait DataSize {
    /// Bytes.
    fn size(&self) -> usize;
}

impl<D: DataSize + Clone> Message for Msg<D> {
    fn kind(&self) -> usize {
        let base = raft::MSG_KINDS.len();
        match self {
            Self::Controller(m) => m.kind(),
            Self::Fetch { .. } => base,
            Self::FetchReply { records, .. } if records.is_empty() => base + 1,
            Self::FetchReply { .. } => base + 2,
            Self::EpochQuery { .. } => base + 3,
            Self::EpochReply { .. } => base + 4,
            Self::AlterIsr { .. } => base + 5,
            Self::Heartbeat => base + 6,
            Self::Forward(_) => base + 7,
        }
    }

    fn wire_bytes(&self) -> usize {
        match self {
            Self::Controller(m) => m.wire_bytes(),
            Self::Fetch { sigs, .. } => 1 + 8 * 4 + 4 + sigs.len() * (8 + 96),
            Self::FetchReply { records, certs, .. } => {
                1 + 8 * 2
                    + 9
                    + 4
                    + records.iter().map(|r| 16 + r.data.size()).sum::<usize>()
                    + 4
                    + certs.iter().map(|(_, c)| 12 + 96 * c.len()).sum::<usize>()
            }
            Self::EpochQuery { .. } => 1 + 8 * 2,
            Self::EpochReply { .. } => 1 + 8 * 3,
            Self::AlterIsr { isr, .. } => 1 + 8 * 2 + 4 + 4 * isr.len(),
            Self::Heartbeat => 1 + 8,
            Self::Forward(r) => 1 + 4 + r.len() * 12,
        }
    }
}

/// What the partition's records carry and how committed ones are applied.
pub trait App {
    /// A record's data.
    type Data: Clone + fmt::Debug + DataSize;
    /// Whether replicas sign records (a record then commits only with `min_insync_replicas`
    /// signatures).
    const SIGNS: bool;
    /// The leader's next record from `requests` (arrival order, possibly none), to go at
    /// `offset` in `epoch` on top of `tail` (the records after the last committed one).
    /// Returns it and how many requests it took from the front; `None`: nothing to append.
    fn cut(
        &mut self,
        now: Micros,
        epoch: u64,
        offset: u64,
        tail: &[Arc<Record<Self::Data>>],
        requests: &[Request],
    ) -> Option<(Self::Data, usize)>;
    /// The client requests a record answers.
    fn requests(data: &Self::Data) -> &[Request];
    /// A digest of a record's content, for the observer.
    fn digest(data: &Self::Data) -> u64;
    /// This replica's signature over a record it stores.
    fn sign(&self, record: &Record<Self::Data>) -> Option<QuorumSignature>;
    /// Applies a committed record with its certificate.
    fn apply(&mut self, record: &Record<Self::Data>, cert: &[QuorumSignature]);
    /// Undoes the records applied from offset `to` on (only an unclean election loses
    /// committed records).
    fn rollback(&mut self, to: u64);
}

/// A replica's part in the partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not a replica, no metadata yet, or the partition is offline.
    Idle,
    /// Fetches from the leader.
    Follower,
    /// Leads the partition.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::Follower => "follower",
            Self::Leader => "leader",
        })
    }
}

/// A set of brokers as a bit mask (for notes, which are `Copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeSet(pub u128);

impl NodeSet {
    /// The set of `nodes` (ids above 127 are left out).
    #[must_use]
    pub fn of(nodes: &[NodeId]) -> Self {
        Self(
            nodes
                .iter()
                .filter(|n| **n < 128)
                .fold(0, |m, n| m | 1 << n),
        )
    }

    /// Its members.
    #[must_use]
    pub fn members(self) -> Vec<NodeId> {
        (0..128).filter(|n| self.0 >> n & 1 == 1).collect()
    }
}

impl fmt::Display for NodeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self.members().iter().map(|n| format!("node {n}")).collect();
        write!(f, "{{{}}}", names.join(", "))
    }
}

/// What a broker notes for timelines and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Its controller quorum member became `role` in `term`.
    Controller {
        /// The Raft role.
        role: raft::Role,
        /// The term.
        term: u64,
    },
    /// It learned committed metadata.
    Metadata {
        /// The metadata version.
        version: u64,
        /// The leader.
        leader: Option<NodeId>,
        /// The leader epoch.
        epoch: u64,
        /// The ISR.
        isr: NodeSet,
        /// Whether the leader was elected uncleanly.
        unclean: bool,
    },
    /// Became `role` of the partition in leader epoch `epoch`.
    Role {
        /// The role.
        role: Role,
        /// The epoch.
        epoch: u64,
    },
    /// Truncated its log from `from` to `to`.
    Truncated {
        /// The old log end offset.
        from: u64,
        /// The new one.
        to: u64,
        /// By the leader's epoch end (else by the own high watermark).
        by_epoch: bool,
    },
    /// The leader appended a record.
    Appended {
        /// Its offset.
        offset: u64,
        /// Its epoch.
        epoch: u64,
    },
    /// The high watermark moved.
    Committed {
        /// The new high watermark.
        hw: u64,
    },
    /// The leader asked the controller for another ISR.
    AlterIsr {
        /// The ISR asked for.
        isr: NodeSet,
    },
    /// The leader refused waiting writes: the ISR is below `min_insync_replicas`.
    Refused {
        /// Requests refused.
        count: u64,
        /// The ISR's size.
        isr: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Controller { role, term } => {
                write!(f, "controller quorum: becomes {role} in term {term}")
            }
            Self::Metadata {
                version,
                leader,
                epoch,
                isr,
                unclean,
            } => write!(
                f,
                "metadata v{version}: leader {} in epoch {epoch}, ISR {isr}{}",
                leader.map_or_else(|| "none (offline)".to_owned(), |l| format!("node {l}")),
                if *unclean { " (unclean election)" } else { "" }
            ),
            Self::Role { role, epoch } => write!(f, "becomes {role} in leader epoch {epoch}"),
            Self::Truncated { from, to, by_epoch } => write!(
                f,
                "truncates its log from offset {from} to {to} ({})",
                if *by_epoch {
                    "the leader's end offset of its last epoch"
                } else {
                    "its own high watermark"
                }
            ),
            Self::Appended { offset, epoch } => {
                write!(f, "appends a block at offset {offset} (epoch {epoch})")
            }
            Self::Committed { hw } => write!(f, "high watermark {hw}"),
            Self::AlterIsr { isr } => write!(f, "asks the controller for ISR {isr}"),
            Self::Refused { count, isr } => write!(
                f,
                "refuses {count} writes: ISR of {isr} is below min_insync_replicas"
            ),
        }
    }
}

/// What the leader knows of a follower.
#[derive(Debug, Clone, Copy)]
struct Peer {
    leo: Option<u64>,
    last_fetch: Micros,
    last_fetch_leo: u64,
    caught_up: Micros,
}

/// A follower's fetch waiting at the leader for records.
#[derive(Debug, Clone, Copy)]
struct Parked {
    from: NodeId,
    offset: u64,
    committed: u64,
    until: Micros,
}

/// Where a follower is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the leader's end offset of its last epoch.
    Truncating,
    /// Fetching.
    Fetching,
}

/// One broker. See the module docs.
#[derive(Debug)]
pub struct KafkaNode<A: App> {
    config: KafkaConfig,
    raft: RaftNode<ControllerApp>,
    app: A,
    base: u64,
    base_epoch: u64,
    log: Vec<Arc<Record<A::Data>>>,
    hw: u64,
    committed: u64,
    certs: Vec<Arc<Vec<QuorumSignature>>>,
    own_sigs: BTreeMap<u64, QuorumSignature>,
    incoming_certs: BTreeMap<u64, Arc<Vec<QuorumSignature>>>,
    role: Role,
    epoch: u64,
    leader: Option<NodeId>,
    meta_version: Option<u64>,
    isr: Vec<NodeId>,
    peers: Vec<Peer>,
    sigs: BTreeMap<u64, BTreeMap<NodeId, QuorumSignature>>,
    parked: Vec<Parked>,
    epoch_start: u64,
    pending_isr: Option<(Vec<NodeId>, u64, Micros)>,
    phase: Phase,
    sent_at: Option<Micros>,
    sig_from: Option<u64>,
    was_controller: bool,
    heard: Vec<Micros>,
    waiting: VecDeque<Request>,
    queued: HashSet<Request>,
    done: HashSet<Request>,
}

impl<A: App> KafkaNode<A> {
    /// A broker restarted from `disk` (an empty disk: first boot), with `rng` for its
    /// controller member's timeouts and `app` holding its state as of the log's base. The
    /// committed records on disk are applied again.
    #[must_use]
    pub fn new(config: KafkaConfig, disk: &Durable<A::Data>, rng: SimRng, app: A) -> Self {
        let controller = RaftNode::new(
            config.controller.clone(),
            &disk.controller,
            rng,
            ControllerApp::new(config.replicas, disk.base_epoch),
        );
        let n = config.members;
        let mut node = Self {
            raft: controller,
            app,
            base: disk.base,
            base_epoch: disk.base_epoch,
            log: disk.log.clone(),
            hw: disk.hw,
            committed: disk.base,
            certs: Vec::new(),
            own_sigs: BTreeMap::new(),
            incoming_certs: BTreeMap::new(),
            role: Role::Idle,
            epoch: 0,
            leader: None,
            meta_version: None,
            isr: Vec::new(),
            peers: vec![
                Peer {
                    leo: None,
                    last_fetch: 0,
                    last_fetch_leo: 0,
                    caught_up: 0,
                };
                n
            ],
            sigs: BTreeMap::new(),
            parked: Vec::new(),
            epoch_start: 0,
            pending_isr: None,
            phase: Phase::Fetching,
            sent_at: None,
            sig_from: None,
            was_controller: false,
            heard: vec![0; n],
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            done: HashSet::new(),
            config,
        };
        for cert in &disk.certs {
            let Some(record) = node.record(node.committed).cloned() else {
                break;
            };
            node.apply_one(&record, cert.clone());
        }
        let leo = node.leo();
        for offset in node.committed..leo {
            if let Some(s) = node.record(offset).and_then(|r| node.app.sign(r)) {
                node.own_sigs.insert(offset, s);
            }
        }
        node
    }

    /// Its partition role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Its controller quorum member.
    #[must_use]
    pub const fn controller(&self) -> &RaftNode<ControllerApp> {
        &self.raft
    }

    /// The leader epoch it acts in.
    #[must_use]
    pub const fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The partition leader it knows.
    #[must_use]
    pub const fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Its high watermark.
    #[must_use]
    pub const fn hw(&self) -> u64 {
        self.hw
    }

    /// The first offset it has not committed.
    #[must_use]
    pub const fn committed(&self) -> u64 {
        self.committed
    }

    /// Its log end offset.
    #[must_use]
    pub fn leo(&self) -> u64 {
        self.base + self.log.len() as u64
    }

    /// The ISR in the metadata it knows.
    #[must_use]
    pub fn isr(&self) -> &[NodeId] {
        &self.isr
    }

    /// The record at `offset`, if its log holds it.
    #[must_use]
    pub fn record(&self, offset: u64) -> Option<&Arc<Record<A::Data>>> {
        let i = offset.checked_sub(self.base)?;
        self.log.get(usize::try_from(i).ok()?)
    }

    /// Its state machine.
    #[must_use]
    pub const fn app(&self) -> &A {
        &self.app
    }

    /// Takes `state` as committed metadata (step tests, which run no controller quorum).
    #[cfg(test)]
    pub(crate) fn set_metadata(
        &mut self,
        now: Micros,
        state: &PartitionState,
        out: &mut Vec<Output<Self>>,
    ) {
        self.on_metadata(now, state, out);
    }

    fn is_replica(&self) -> bool {
        self.config.id < self.config.replicas
    }

    fn me(&self) -> NodeId {
        self.config.id
    }

    fn last_epoch(&self) -> u64 {
        self.log.last().map_or(self.base_epoch, |r| r.epoch)
    }

    fn epoch_at(&self, offset: u64) -> Option<u64> {
        if offset + 1 == self.base {
            return Some(self.base_epoch);
        }
        self.record(offset).map(|r| r.epoch)
    }

    /// The largest epoch at most `epoch` among its records and where it ends (KIP-101's
    /// `OffsetsForLeaderEpoch`, answered as KIP-279 does for an epoch it lacks).
    fn epoch_end(&self, epoch: u64) -> (u64, u64) {
        match self.log.iter().rposition(|r| r.epoch <= epoch) {
            Some(i) => (self.log[i].epoch, self.base + i as u64 + 1),
            None => (self.base_epoch.min(epoch), self.base),
        }
    }

    // ---- controller glue ----

    /// Steps the controller quorum member and maps its outputs.
    fn raft_step(
        &mut self,
        now: Micros,
        out: &mut Vec<Output<Self>>,
        input: impl FnOnce(&mut RaftNode<ControllerApp>, &mut Vec<Output<RaftNode<ControllerApp>>>),
    ) {
        let mut raft_out = Vec::new();
        input(&mut self.raft, &mut raft_out);
        for o in raft_out {
            match o {
                Output::Send(to, m) => out.push(Output::Send(to, Msg::Controller(m))),
                Output::Timer(id, at) => out.push(Output::Timer(id, at)),
                Output::Persist(p) => out.push(Output::Persist(Persist::Controller(p))),
                Output::Note(raft::Note::Role { role, term }) => {
                    out.push(Output::Note(Note::Controller { role, term }));
                }
                Output::Commit(_) | Output::Reply(_) | Output::Note(_) => {}
            }
        }
        self.sync_controller(now, out);
    }

    /// After the controller member stepped: a new active controller starts every broker's
    /// session afresh; new committed metadata takes effect.
    fn sync_controller(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let is_controller = self.raft.role() == raft::Role::Leader;
        if is_controller && !self.was_controller {
            self.heard.fill(now);
        }
        if !is_controller && self.was_controller {
            self.raft.app_mut().clear();
        }
        self.was_controller = is_controller;
        let state = self.raft.app().state();
        if self.meta_version != Some(state.version) {
            let state = state.clone();
            self.on_metadata(now, &state, out);
        }
    }

    /// The active controller's periodic decision: elect a leader when the current one's
    /// session expired (only on metadata it knows to be current).
    fn control(&mut self, now: Micros) {
        if !self.was_controller
            || self.raft.commit_index() != self.raft.last_index()
            || !self.raft.app().is_idle()
        {
            return;
        }
        let me = self.me();
        let session = self.config.session_timeout;
        let heard = &self.heard;
        let alive = |r: NodeId| r == me || now.saturating_sub(heard[r]) < session;
        if let Some(next) = elect(
            self.raft.app().state(),
            self.config.replicas,
            alive,
            self.config.unclean,
        ) {
            self.raft.app_mut().propose(next);
        }
    }

    /// The active controller handles a leader's ISR change.
    fn handle_alter_isr(&mut self, from: NodeId, epoch: u64, version: u64, isr: Vec<NodeId>) {
        if !self.was_controller
            || self.raft.commit_index() != self.raft.last_index()
            || !self.raft.app().is_idle()
        {
            return;
        }
        let state = self.raft.app().state();
        let valid = state.leader == Some(from)
            && state.epoch == epoch
            && state.version == version
            && isr.contains(&from)
            && isr.iter().all(|r| *r < self.config.replicas)
            && isr.windows(2).all(|w| w[0] < w[1]);
        if valid && isr != state.isr {
            let mut next = state.clone();
            next.isr = isr;
            next.unclean = false;
            self.raft.app_mut().propose(next);
        }
    }

    /// Committed metadata changed: lead, follow or idle as it says.
    fn on_metadata(&mut self, now: Micros, state: &PartitionState, out: &mut Vec<Output<Self>>) {
        self.meta_version = Some(state.version);
        self.isr.clone_from(&state.isr);
        out.push(Output::Note(Note::Metadata {
            version: state.version,
            leader: state.leader,
            epoch: state.epoch,
            isr: NodeSet::of(&state.isr),
            unclean: state.unclean,
        }));
        if self
            .pending_isr
            .as_ref()
            .is_some_and(|(_, v, _)| *v < state.version)
        {
            self.pending_isr = None;
        }
        if !self.is_replica() {
            self.leader = state.leader;
            self.epoch = state.epoch;
            self.forward_waiting(out);
            return;
        }
        match state.leader {
            Some(l) if l == self.me() => {
                if self.role == Role::Leader && self.epoch == state.epoch {
                    self.advance_hw(now, out);
                } else {
                    self.become_leader(now, state.epoch, out);
                }
            }
            Some(l) => {
                if self.role != Role::Follower
                    || self.epoch != state.epoch
                    || self.leader != Some(l)
                {
                    self.become_follower(now, Some(l), state.epoch, out);
                }
            }
            None => {
                if self.role != Role::Idle || self.epoch != state.epoch {
                    self.become_follower(now, None, state.epoch, out);
                }
            }
        }
    }

    // ---- roles ----

    fn become_leader(&mut self, now: Micros, epoch: u64, out: &mut Vec<Output<Self>>) {
        self.role = Role::Leader;
        self.epoch = epoch;
        self.leader = Some(self.me());
        self.epoch_start = self.leo();
        let leo = self.leo();
        self.peers.fill(Peer {
            leo: None,
            last_fetch: now,
            last_fetch_leo: leo,
            caught_up: now,
        });
        self.sigs.clear();
        self.parked.clear();
        self.pending_isr = None;
        // Offsets it knows committed but holds no certificate for are certified again in
        // this epoch (their signatures are over the record's own epoch, so old and new
        // certificates agree).
        self.hw = self.hw.min(self.committed);
        out.push(Output::Note(Note::Role {
            role: Role::Leader,
            epoch,
        }));
        out.push(Output::Timer(CUT, now + self.config.cut_interval));
        out.push(Output::Timer(ISR_CHECK, now + self.isr_check_interval()));
        self.advance_hw(now, out);
    }

    fn become_follower(
        &mut self,
        now: Micros,
        leader: Option<NodeId>,
        epoch: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        self.role = if leader.is_some() {
            Role::Follower
        } else {
            Role::Idle
        };
        self.epoch = epoch;
        self.leader = leader;
        self.sigs.clear();
        self.parked.clear();
        self.pending_isr = None;
        self.sig_from = None;
        self.sent_at = None;
        out.push(Output::Note(Note::Role {
            role: self.role,
            epoch,
        }));
        if leader.is_some() {
            if self.config.leader_epochs {
                self.phase = Phase::Truncating;
                self.send_epoch_query(now, out);
            } else {
                // Kafka before KIP-101: back to the own high-watermark checkpoint.
                self.truncate(self.hw, false, out);
                self.phase = Phase::Fetching;
                self.send_fetch(now, out);
            }
        }
        self.forward_waiting(out);
    }

    fn isr_check_interval(&self) -> Micros {
        (self.config.lag_max / 4).max(1)
    }

    // ---- the log ----

    /// Drops the records from `to` on; committed ones only after an unclean election.
    fn truncate(&mut self, to: u64, by_epoch: bool, out: &mut Vec<Output<Self>>) {
        let to = to.max(self.base);
        let from = self.leo();
        if to >= from {
            return;
        }
        if to < self.committed {
            for r in &self.log[usize::try_from(to - self.base).unwrap_or(0)
                ..usize::try_from(self.committed - self.base).unwrap_or(0)]
            {
                for q in A::requests(&r.data) {
                    self.done.remove(q);
                }
            }
            self.app.rollback(to);
            self.certs
                .truncate(usize::try_from(to - self.base).unwrap_or(0));
            self.committed = to;
        }
        if self.hw > to {
            self.hw = to;
            out.push(Output::Persist(Persist::Hw(to)));
        }
        self.log
            .truncate(usize::try_from(to - self.base).unwrap_or(0));
        self.own_sigs.retain(|o, _| *o < to);
        self.incoming_certs.retain(|o, _| *o < to);
        out.push(Output::Persist(Persist::Truncate(to)));
        out.push(Output::Note(Note::Truncated { from, to, by_epoch }));
    }

    fn append(&mut self, records: Vec<Arc<Record<A::Data>>>, out: &mut Vec<Output<Self>>) {
        for r in &records {
            if let Some(s) = self.app.sign(r) {
                self.own_sigs.insert(r.offset, s);
            }
        }
        self.log.extend(records.iter().cloned());
        out.push(Output::Persist(Persist::Append(records)));
    }

    fn apply_one(&mut self, record: &Arc<Record<A::Data>>, cert: Arc<Vec<QuorumSignature>>) {
        for r in A::requests(&record.data) {
            self.done.insert(*r);
        }
        self.app.apply(record, &cert);
        self.certs.push(cert);
        self.committed += 1;
        self.own_sigs.remove(&record.offset);
    }

    /// Commits the records below the high watermark whose certificates it holds.
    fn commit(&mut self, out: &mut Vec<Output<Self>>) {
        let mut fresh = Vec::new();
        while self.committed < self.hw {
            let offset = self.committed;
            let Some(record) = self.record(offset).cloned() else {
                break;
            };
            let Some(cert) = self.incoming_certs.remove(&offset) else {
                break;
            };
            if self.role == Role::Leader {
                for r in A::requests(&record.data) {
                    out.push(Output::Reply(*r));
                }
            }
            self.apply_one(&record, cert.clone());
            fresh.push(cert.clone());
            out.push(Output::Commit(Committed { record, cert }));
        }
        if !fresh.is_empty() {
            out.push(Output::Persist(Persist::Certs(fresh)));
        }
    }

    // ---- leader ----

    /// The ISR the high watermark is computed over: the committed one plus any addition the
    /// leader has asked for (KIP-497's maximal ISR).
    fn hw_isr(&self) -> Vec<NodeId> {
        let mut isr = self.isr.clone();
        if let Some((pending, _, _)) = &self.pending_isr {
            for r in pending {
                if !isr.contains(r) {
                    isr.push(*r);
                }
            }
        }
        isr
    }

    fn peer_leo(&self, r: NodeId) -> Option<u64> {
        if r == self.me() {
            Some(self.leo())
        } else {
            self.peers[r].leo
        }
    }

    /// Moves the high watermark to the smallest LEO over the ISR, offset by offset, as long
    /// as the ISR has `min_insync_replicas` members and (where records are signed) each
    /// record has as many signatures; commits and answers clients.
    fn advance_hw(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.role != Role::Leader {
            return;
        }
        let isr = self.hw_isr();
        if isr.len() < self.config.min_insync {
            return;
        }
        #[cfg(test)]
        let isr = match self.config.bug {
            Some(Bug::HwOverAllReplicas) => (0..self.config.replicas).collect(),
            Some(Bug::HwLeaderOnly) => vec![self.me()],
            None => isr,
        };
        let Some(target) = isr.iter().map(|r| self.peer_leo(*r)).min().flatten() else {
            return;
        };
        let mut hw = self.hw;
        while hw < target {
            if !A::SIGNS {
                self.incoming_certs.insert(hw, Arc::new(Vec::new()));
                hw += 1;
                continue;
            }
            // The appending leader's signature, this leader's, then the ISR's, each signer once.
            let mut cert: Vec<QuorumSignature> = Vec::new();
            let appender = self.record(hw).and_then(|r| r.leader_sig);
            let own = self.own_sigs.get(&hw).copied();
            let others = self.sigs.get(&hw).into_iter().flat_map(|sigs| {
                isr.iter()
                    .filter(|r| **r != self.me())
                    .filter_map(|r| sigs.get(r).copied())
            });
            for s in appender.into_iter().chain(own).chain(others) {
                if !cert.iter().any(|c| c.signer == s.signer) {
                    cert.push(s);
                }
            }
            #[cfg(test)]
            let enough = self.config.bug.is_some() || cert.len() >= self.config.min_insync;
            #[cfg(not(test))]
            let enough = cert.len() >= self.config.min_insync;
            if !enough {
                break;
            }
            self.incoming_certs.insert(hw, Arc::new(cert));
            hw += 1;
        }
        if hw > self.hw {
            self.hw = hw;
            self.sigs = self.sigs.split_off(&hw);
            out.push(Output::Persist(Persist::Hw(hw)));
            out.push(Output::Note(Note::Committed { hw }));
            self.commit(out);
            self.answer_parked(now, false, out);
        }
    }

    fn handle_fetch(
        &mut self,
        now: Micros,
        from: NodeId,
        epoch: u64,
        (offset, last_epoch, committed): (u64, u64, u64),
        sigs: Vec<(u64, QuorumSignature)>,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Leader || from >= self.config.replicas || epoch > self.epoch {
            return;
        }
        let reply = |result, hw| {
            Output::Send(
                from,
                Msg::FetchReply {
                    epoch,
                    result,
                    hw,
                    records: Vec::new(),
                    certs: Vec::new(),
                },
            )
        };
        if epoch < self.epoch {
            out.push(reply(FetchResult::Fenced, self.hw));
            return;
        }
        let leo = self.leo();
        if self.config.leader_epochs {
            if offset > leo || (offset > self.base && self.epoch_at(offset - 1) != Some(last_epoch))
            {
                out.push(reply(FetchResult::Diverging, self.hw));
                return;
            }
        } else if offset > leo {
            out.push(reply(FetchResult::OutOfRange { leo }, self.hw));
            return;
        }
        let p = &mut self.peers[from];
        if offset >= leo {
            p.caught_up = now;
        } else if offset >= p.last_fetch_leo {
            p.caught_up = p.caught_up.max(p.last_fetch);
        }
        p.last_fetch = now;
        p.last_fetch_leo = leo;
        p.leo = Some(offset);
        for (o, s) in sigs {
            if o >= self.hw && o < offset {
                self.sigs.entry(o).or_default().insert(from, s);
            }
        }
        if !self.isr.contains(&from) && offset >= self.hw && offset >= self.epoch_start {
            self.maybe_alter_isr(now, out);
        }
        self.advance_hw(now, out);
        if offset >= self.leo() && committed >= self.hw {
            self.parked.retain(|p| p.from != from);
            self.parked.push(Parked {
                from,
                offset,
                committed,
                until: now + self.config.fetch_interval,
            });
        } else {
            self.parked.retain(|p| p.from != from);
            self.send_fetch_reply(from, offset, committed, out);
        }
    }

    fn send_fetch_reply(
        &self,
        to: NodeId,
        offset: u64,
        committed: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        let from = usize::try_from(offset.saturating_sub(self.base)).unwrap_or(usize::MAX);
        let records: Vec<Arc<Record<A::Data>>> = self
            .log
            .get(from..)
            .map(|s| s.iter().take(MAX_FETCH).cloned().collect())
            .unwrap_or_default();
        let certs = (committed.max(self.base)..self.hw)
            .take(MAX_FETCH)
            .filter_map(|o| {
                self.certs
                    .get(usize::try_from(o - self.base).ok()?)
                    .map(|c| (o, c.clone()))
            })
            .collect();
        out.push(Output::Send(
            to,
            Msg::FetchReply {
                epoch: self.epoch,
                result: FetchResult::Ok,
                hw: self.hw,
                records,
                certs,
            },
        ));
    }

    /// Answers parked fetches: all of them (new records or a new high watermark), or those
    /// that waited their time.
    fn answer_parked(&mut self, now: Micros, expired_only: bool, out: &mut Vec<Output<Self>>) {
        let parked = std::mem::take(&mut self.parked);
        for p in parked {
            if expired_only && p.until > now {
                self.parked.push(p);
            } else {
                self.send_fetch_reply(p.from, p.offset, p.committed, out);
            }
        }
    }

    /// Asks the controller to drop followers that lagged too long and to add back those
    /// that caught up (one request at a time, resent if unanswered).
    fn maybe_alter_isr(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.role != Role::Leader {
            return;
        }
        if let Some((_, _, at)) = &self.pending_isr
            && now < at + self.config.lag_max
        {
            return;
        }
        let me = self.me();
        let mut isr: Vec<NodeId> = (0..self.config.replicas)
            .filter(|r| {
                let p = &self.peers[*r];
                if *r == me {
                    return true;
                }
                let lagging = now.saturating_sub(p.caught_up) > self.config.lag_max;
                if self.isr.contains(r) {
                    !lagging
                } else {
                    !lagging && p.leo.is_some_and(|l| l >= self.hw && l >= self.epoch_start)
                }
            })
            .collect();
        isr.sort_unstable();
        if isr == self.isr {
            self.pending_isr = None;
            return;
        }
        let version = self.meta_version.unwrap_or(0);
        out.push(Output::Note(Note::AlterIsr {
            isr: NodeSet::of(&isr),
        }));
        self.pending_isr = Some((isr.clone(), version, now));
        match self.raft.leader() {
            Some(c) if c == me => self.handle_alter_isr(me, self.epoch, version, isr),
            Some(c) => out.push(Output::Send(
                c,
                Msg::AlterIsr {
                    epoch: self.epoch,
                    version,
                    isr,
                },
            )),
            None => {}
        }
    }

    fn handle_epoch_query(
        &self,
        from: NodeId,
        epoch: u64,
        last_epoch: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Leader || epoch != self.epoch {
            return;
        }
        let (found, end) = self.epoch_end(last_epoch);
        out.push(Output::Send(from, Msg::EpochReply { epoch, found, end }));
    }

    // ---- follower ----

    fn send_fetch(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let Some(leader) = self.leader else {
            return;
        };
        let leo = self.leo();
        let sigs = match self.sig_from {
            Some(from) => self.own_sigs.range(from..).map(|(o, s)| (*o, *s)).collect(),
            None => Vec::new(),
        };
        self.sent_at = Some(now);
        out.push(Output::Send(
            leader,
            Msg::Fetch {
                epoch: self.epoch,
                offset: leo,
                last_epoch: self.last_epoch(),
                committed: self.committed,
                sigs,
            },
        ));
    }

    fn send_epoch_query(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let Some(leader) = self.leader else {
            return;
        };
        self.sent_at = Some(now);
        out.push(Output::Send(
            leader,
            Msg::EpochQuery {
                epoch: self.epoch,
                last_epoch: self.last_epoch(),
            },
        ));
    }

    fn handle_epoch_reply(
        &mut self,
        now: Micros,
        from: NodeId,
        (epoch, found, end): (u64, u64, u64),
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Follower
            || self.leader != Some(from)
            || epoch != self.epoch
            || self.phase != Phase::Truncating
        {
            return;
        }
        // KIP-279: where the leader lacks our last epoch, truncate to the end of the epoch it
        // has in our own log too.
        let (_, own_end) = self.epoch_end(found);
        self.truncate(end.min(own_end), true, out);
        self.phase = Phase::Fetching;
        self.send_fetch(now, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn handle_fetch_reply(
        &mut self,
        now: Micros,
        from: NodeId,
        epoch: u64,
        result: FetchResult,
        hw: u64,
        records: Vec<Arc<Record<A::Data>>>,
        certs: Vec<(u64, Arc<Vec<QuorumSignature>>)>,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Follower
            || self.leader != Some(from)
            || epoch != self.epoch
            || self.phase != Phase::Fetching
        {
            return;
        }
        self.sent_at = None;
        match result {
            FetchResult::Fenced => return,
            FetchResult::Diverging => {
                self.phase = Phase::Truncating;
                self.send_epoch_query(now, out);
                return;
            }
            FetchResult::OutOfRange { leo } => {
                self.truncate(leo, false, out);
                self.send_fetch(now, out);
                return;
            }
            FetchResult::Ok => {}
        }
        let leo = self.leo();
        let fresh: Vec<_> = records.into_iter().skip_while(|r| r.offset < leo).collect();
        if fresh.first().is_some_and(|r| r.offset != leo) {
            // Not the continuation of our log: ask again.
            self.send_fetch(now, out);
            return;
        }
        if !fresh.is_empty() {
            self.append(fresh, out);
        }
        for (o, c) in certs {
            if o >= self.committed {
                self.incoming_certs.insert(o, c);
            }
        }
        let new_hw = hw.min(self.leo());
        if new_hw > self.hw {
            self.hw = new_hw;
            out.push(Output::Persist(Persist::Hw(new_hw)));
        }
        self.sig_from = Some(hw);
        self.commit(out);
        self.send_fetch(now, out);
    }

    // ---- clients ----

    fn forward_waiting(&mut self, out: &mut Vec<Output<Self>>) {
        if let Some(leader) = self.leader.filter(|l| *l != self.me())
            && !self.waiting.is_empty()
        {
            let requests: Vec<Request> = self.waiting.drain(..).collect();
            self.queued.clear();
            out.push(Output::Send(leader, Msg::Forward(requests)));
        }
    }

    fn accept_requests(
        &mut self,
        now: Micros,
        requests: impl IntoIterator<Item = Request>,
        out: &mut Vec<Output<Self>>,
    ) {
        for r in requests {
            if self.done.contains(&r) || self.waiting.len() >= MAX_WAITING || !self.queued.insert(r)
            {
                continue;
            }
            self.waiting.push_back(r);
        }
        if self.role == Role::Leader {
            if self.waiting.len() >= self.config.max_batch {
                self.cut(now, out);
            }
        } else {
            self.forward_waiting(out);
        }
    }

    /// The leader appends a record from waiting requests — unless the ISR is below
    /// `min_insync_replicas`, when it refuses them (`NOT_ENOUGH_REPLICAS`; clients retry).
    fn cut(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.role != Role::Leader {
            return;
        }
        if self.isr.len() < self.config.min_insync {
            if !self.waiting.is_empty() {
                out.push(Output::Note(Note::Refused {
                    count: self.waiting.len() as u64,
                    isr: self.isr.len() as u64,
                }));
                self.waiting.clear();
                self.queued.clear();
            }
            return;
        }
        let from = usize::try_from(self.committed - self.base).unwrap_or(0);
        let in_log: HashSet<Request> = self.log[from..]
            .iter()
            .flat_map(|r| A::requests(&r.data).iter().copied())
            .collect();
        let done = &self.done;
        let queued = &mut self.queued;
        self.waiting.retain(|r| {
            let keep = !in_log.contains(r) && !done.contains(r);
            if !keep {
                queued.remove(r);
            }
            keep
        });
        let take = self.waiting.len().min(self.config.max_batch);
        let requests: Vec<Request> = self.waiting.iter().take(take).copied().collect();
        let offset = self.leo();
        let Some((data, used)) =
            self.app
                .cut(now, self.epoch, offset, &self.log[from..], &requests)
        else {
            return;
        };
        for r in self.waiting.drain(..used.min(take)) {
            self.queued.remove(&r);
        }
        let mut record = Record {
            epoch: self.epoch,
            offset,
            data,
            leader_sig: None,
        };
        record.leader_sig = self.app.sign(&record);
        let record = Arc::new(record);
        out.push(Output::Note(Note::Appended {
            offset,
            epoch: self.epoch,
        }));
        self.append(vec![record], out);
        self.answer_parked(now, false, out);
        self.advance_hw(now, out);
    }
}

impl<A: App> Engine for KafkaNode<A> {
    type Msg = Msg<A::Data>;
    type Persist = Persist<A::Data>;
    type Disk = Durable<A::Data>;
    type Commit = Committed<A::Data>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.raft_step(now, out, |r, o| r.start(now, o));
        out.push(Output::Timer(FETCH, now + self.config.fetch_interval));
        out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
    }

    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    ) {
        if from >= self.config.members || from == self.me() {
            return;
        }
        match msg {
            Msg::Controller(m) => self.raft_step(now, out, |r, o| r.on_message(now, from, m, o)),
            Msg::Fetch {
                epoch,
                offset,
                last_epoch,
                committed,
                sigs,
            } => self.handle_fetch(now, from, epoch, (offset, last_epoch, committed), sigs, out),
            Msg::FetchReply {
                epoch,
                result,
                hw,
                records,
                certs,
            } => self.handle_fetch_reply(now, from, epoch, result, hw, records, certs, out),
            Msg::EpochQuery { epoch, last_epoch } => {
                self.handle_epoch_query(from, epoch, last_epoch, out);
            }
            Msg::EpochReply { epoch, found, end } => {
                self.handle_epoch_reply(now, from, (epoch, found, end), out);
            }
            Msg::AlterIsr {
                epoch,
                version,
                isr,
            } => self.handle_alter_isr(from, epoch, version, isr),
            Msg::Heartbeat => {
                if self.was_controller {
                    self.heard[from] = now;
                }
            }
            Msg::Forward(requests) => self.accept_requests(now, requests, out),
        }
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        match id {
            FETCH => {
                out.push(Output::Timer(FETCH, now + self.config.fetch_interval));
                match self.role {
                    Role::Leader => self.answer_parked(now, true, out),
                    Role::Follower => {
                        let stale = self
                            .sent_at
                            .is_none_or(|t| now >= t + 3 * self.config.fetch_interval);
                        if stale {
                            match self.phase {
                                Phase::Truncating => self.send_epoch_query(now, out),
                                Phase::Fetching => self.send_fetch(now, out),
                            }
                        }
                    }
                    Role::Idle => {}
                }
            }
            CUT => {
                if self.role == Role::Leader {
                    self.cut(now, out);
                    out.push(Output::Timer(CUT, now + self.config.cut_interval));
                }
            }
            HEARTBEAT => {
                out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
                if let Some(c) = self.raft.leader().filter(|c| *c != self.me()) {
                    out.push(Output::Send(c, Msg::Heartbeat));
                }
                self.control(now);
            }
            ISR_CHECK => {
                if self.role == Role::Leader {
                    self.maybe_alter_isr(now, out);
                    out.push(Output::Timer(ISR_CHECK, now + self.isr_check_interval()));
                }
            }
            _ => self.raft_step(now, out, |r, o| r.on_timer(now, id, o)),
        }
    }

    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>) {
        self.accept_requests(now, [request], out);
    }

    fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    fn persist(disk: &mut Self::Disk, write: &Self::Persist) {
        match write {
            Persist::Controller(w) => RaftNode::<ControllerApp>::persist(&mut disk.controller, w),
            Persist::Truncate(to) => {
                let keep = usize::try_from(to.saturating_sub(disk.base)).unwrap_or(usize::MAX);
                disk.log.truncate(keep);
                disk.certs.truncate(keep);
            }
            Persist::Append(records) => disk.log.extend(records.iter().cloned()),
            Persist::Hw(hw) => disk.hw = *hw,
            Persist::Certs(certs) => disk.certs.extend(certs.iter().cloned()),
        }
    }
}
