//! The ZAB engine (Junqueira, Reed & Serafini, "Zab: High-performance broadcast for
//! primary-backup systems", DSN 2011; ZooKeeper's internals guide), sans-I/O: one server's
//! state, stepped by inputs and answering with [`Output`]s.
//!
//! - **Election** (fast leader election, as ZooKeeper's `FastLeaderElection`): a looking server
//!   votes for the best (current epoch, last zxid, id) it has heard of in its election round
//!   and follows the vote a quorum shares; a server that already follows or leads answers a
//!   looking one with its leader, and a looking server joins a leader a quorum reports.
//! - **Discovery**: followers send their accepted epoch (`FOLLOWERINFO`); from a quorum the
//!   prospective leader picks a new epoch above all of them (`LEADERINFO`); a follower persists
//!   it as its accepted epoch before answering (`ACKEPOCH`, with its current epoch and last
//!   zxid). A leader that learns of a more recent history than its own gives up.
//! - **Synchronization**: per follower, a `DIFF` of the proposals it misses, a `TRUNC` of
//!   proposals the leader never had (then a `DIFF`), or a `SNAP` of the leader's whole history
//!   when the follower is further behind than the leader's committed log reaches; then
//!   `NEWLEADER`, which the follower acknowledges after persisting the epoch as its current
//!   epoch. Once a quorum acknowledged it, the leader's history is committed (`UPTODATE`) and
//!   only then does it propose.
//! - **Broadcast**: `PROPOSAL` (the leader logs it and acknowledges it itself), followers log it
//!   and `ACK` in zxid order, the leader `COMMIT`s once a quorum acknowledged; every server
//!   delivers in zxid order.
//!
//! Links are FIFO (TCP): a lost message breaks the connection, and a follower whose
//! connection to its leader broke goes back to looking and re-synchronizes, as ZooKeeper's
//! learners do. Clients are answered by the leader; followers forward requests to it.
//!
//! Each acknowledgement carries the acknowledging server's endorsement of the proposal (for
//! blocks: an ed25519 signature over zxid and block hash), and a commit carries the quorum's
//! endorsements, so every server delivers each transaction with its certificate.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::sim::{Engine, Message, Micros, NodeId, Output, Request, SimRng};

/// Timer ids.
const ELECTION: u8 = 0;
const TICK: u8 = 1;
const CUT: u8 = 2;
const LIMIT: u8 = 3;
const FINALIZE: u8 = 4;

/// At most this many client requests wait at a server that knows no leader.
const MAX_WAITING: usize = 10_000;

/// A ZooKeeper transaction id: the epoch of the leader that proposed it and its counter in
/// that epoch (from 1). Ordered by epoch, then counter.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Zxid {
    /// The proposing leader's epoch.
    pub epoch: u64,
    /// The proposal's number within the epoch.
    pub counter: u64,
}

impl Zxid {
    /// The zxid (epoch, counter).
    #[must_use]
    pub const fn new(epoch: u64, counter: u64) -> Self {
        Self { epoch, counter }
    }
}

impl fmt::Display for Zxid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.epoch, self.counter)
    }
}

/// A ZAB server's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZabConfig {
    /// This server.
    pub id: NodeId,
    /// Ensemble size.
    pub members: usize,
    /// ZooKeeper's tick: the leader pings its followers this often.
    pub tick: Micros,
    /// Discovery and synchronization must finish within this (`initLimit` ticks).
    pub init_limit: Micros,
    /// A follower that hears nothing from its leader this long, or a leader that hears from
    /// less than a quorum, goes back to looking (`syncLimit` ticks).
    pub sync_limit: Micros,
    /// A looking server resends its vote after a timeout drawn in this range.
    pub election: (Micros, Micros),
    /// The leader proposes a transaction from waiting requests this often …
    pub cut_interval: Micros,
    /// … or as soon as this many wait.
    pub max_batch: usize,
    /// How many of its latest transactions a leader can send as a `DIFF`; a follower further
    /// behind gets a `SNAP` (ZooKeeper's committed log).
    pub commit_log: usize,
    /// Planted bugs the safety observer must catch (tests only).
    #[cfg(test)]
    pub bug: Option<Bug>,
}

/// Bugs planted in test-only variants of the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The leader commits its history and proposes as soon as it has sent `NEWLEADER`,
    /// without waiting for a quorum to acknowledge it.
    EarlyBroadcast,
}

/// A transaction: its zxid and what it carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Txn<C> {
    /// Its zxid.
    pub zxid: Zxid,
    /// The command (a block, a batch).
    pub command: C,
}

/// A quorum's endorsements of one transaction.
pub type Cert<V> = Arc<Vec<V>>;

/// A transaction a synchronization sends, with its certificate once committed.
pub type SyncTxn<C, V> = (Arc<Txn<C>>, Option<Cert<V>>);

/// What a server keeps on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable<C, V> {
    /// The last epoch it agreed to follow (`acceptedEpoch`).
    pub accepted_epoch: u64,
    /// The epoch whose history it took as its own (`currentEpoch`).
    pub current_epoch: u64,
    /// The zxid before the history (a chain continued from a file starts after its last
    /// block; zero from genesis).
    pub base: Zxid,
    /// The transactions it logged, in zxid order.
    pub history: Vec<Arc<Txn<C>>>,
    /// The certificates of committed transactions it learned.
    pub certs: BTreeMap<Zxid, Cert<V>>,
}

impl<C, V> Default for Durable<C, V> {
    fn default() -> Self {
        Self {
            accepted_epoch: 0,
            current_epoch: 0,
            base: Zxid::default(),
            history: Vec::new(),
            certs: BTreeMap::new(),
        }
    }
}

/// One write to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Persist<C, V> {
    /// `acceptedEpoch`.
    AcceptedEpoch(u64),
    /// `currentEpoch`.
    CurrentEpoch(u64),
    /// Drop every transaction after this zxid (a `TRUNC`).
    Truncate(Zxid),
    /// Log transactions.
    Append(Vec<Arc<Txn<C>>>),
    /// Replace the whole history (a `SNAP`).
    Snapshot(Vec<Arc<Txn<C>>>),
    /// Certificates of committed transactions.
    Certs(Vec<(Zxid, Cert<V>)>),
}

/// A server's state as election messages report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Electing a leader.
    Looking,
    /// Following a leader.
    Following,
    /// Leading.
    Leading,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Looking => "looking",
            Self::Following => "following",
            Self::Leading => "leading",
        })
    }
}

/// Where a follower or leader is in the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Electing (looking).
    Election,
    /// Agreeing on a new epoch.
    Discovery,
    /// Bringing followers' histories to the leader's.
    Sync,
    /// Proposing and committing.
    Broadcast,
}

/// A vote: the server voted for and its credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vote {
    /// The proposed leader.
    pub leader: NodeId,
    /// Its current epoch.
    pub epoch: u64,
    /// Its last zxid.
    pub zxid: Zxid,
}

impl Vote {
    /// Fast leader election's order: current epoch, then last zxid, then id.
    fn key(&self) -> (u64, Zxid, NodeId) {
        (self.epoch, self.zxid, self.leader)
    }
}

/// How a leader brings a follower's history to its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncMode {
    /// Send the proposals it misses.
    Diff,
    /// Drop its proposals after a zxid, then send the ones it misses.
    Trunc(Zxid),
    /// Replace its history with the leader's.
    Snap,
}

/// ZAB's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg<C, V> {
    /// Fast leader election's notification.
    Notification {
        /// The sender's election round (logical clock).
        round: u64,
        /// Its vote (for a server out of the election: its leader).
        vote: Vote,
        /// Its state.
        role: Role,
    },
    /// Discovery: a follower's accepted epoch.
    FollowerInfo {
        /// `acceptedEpoch`.
        accepted_epoch: u64,
        /// The follower's election round: a new one is a new session.
        session: u64,
    },
    /// Discovery: the new epoch (`LEADERINFO`, the paper's NEWEPOCH).
    LeaderInfo {
        /// The new epoch.
        epoch: u64,
    },
    /// Discovery: the follower accepted the epoch.
    AckEpoch {
        /// The epoch acknowledged.
        epoch: u64,
        /// The follower's current epoch.
        current_epoch: u64,
        /// Its last zxid.
        last: Zxid,
    },
    /// Synchronization: DIFF, TRUNC or SNAP.
    Sync {
        /// The leader's epoch.
        epoch: u64,
        /// How.
        mode: SyncMode,
        /// The transactions (after the follower's last or the truncation point; the whole
        /// history for a SNAP), with the certificates of those already committed.
        txns: Vec<SyncTxn<C, V>>,
        /// The leader's last committed zxid.
        commit: Zxid,
    },
    /// Synchronization done: take the leader's history as epoch `epoch`'s.
    NewLeader {
        /// The epoch.
        epoch: u64,
        /// Transactions of the leader's history not yet committed, to endorse.
        endorse: Vec<Zxid>,
    },
    /// The follower persisted the epoch as its current one.
    AckNewLeader {
        /// The epoch.
        epoch: u64,
        /// Its endorsements of the transactions asked for.
        endorsements: Vec<(Zxid, V)>,
    },
    /// A quorum took the history: deliver it.
    UpToDate {
        /// The epoch.
        epoch: u64,
        /// Committed through this zxid.
        commit: Zxid,
        /// Certificates of the transactions it commits.
        certs: Vec<(Zxid, Cert<V>)>,
    },
    /// Broadcast: a new transaction.
    Proposal {
        /// The epoch.
        epoch: u64,
        /// The transaction.
        txn: Arc<Txn<C>>,
    },
    /// A follower logged a proposal.
    Ack {
        /// The epoch.
        epoch: u64,
        /// The transaction's zxid.
        zxid: Zxid,
        /// The follower's endorsement.
        endorsement: V,
    },
    /// A quorum logged the transaction: deliver it.
    Commit {
        /// The epoch.
        epoch: u64,
        /// The zxid.
        zxid: Zxid,
        /// The quorum's endorsements.
        cert: Cert<V>,
    },
    /// The leader's liveness check, and the follower's answer.
    Ping {
        /// The epoch.
        epoch: u64,
    },
    /// Client requests a follower forwards to its leader.
    Forward(Vec<Request>),
}

/// Kinds of [`Msg`], for reports.
pub const MSG_KINDS: &[&str] = &[
    "notification",
    "followerinfo",
    "leaderinfo",
    "ackepoch",
    "diff",
    "trunc",
    "snap",
    "newleader",
    "ack-newleader",
    "uptodate",
    "proposal",
    "ack",
    "commit",
    "ping",
    "forward",
];

/// The size of a command on the wire.
pub trait CommandSize {
    /// Bytes.
    fn size(&self) -> usize;
}

/// The size of an endorsement on the wire.
pub trait EndorsementSize {
    /// Bytes.
    fn size(&self) -> usize;
}

impl EndorsementSize for () {
    fn size(&self) -> usize {
        0
    }
}

const ZXID_BYTES: usize = 16;

fn cert_size<V: EndorsementSize>(cert: &Cert<V>) -> usize {
    4 + cert.iter().map(EndorsementSize::size).sum::<usize>()
}

impl<C: CommandSize + Clone, V: EndorsementSize + Clone> Message for Msg<C, V> {
    fn kind(&self) -> usize {
        match self {
            Self::Notification { .. } => 0,
            Self::FollowerInfo { .. } => 1,
            Self::LeaderInfo { .. } => 2,
            Self::AckEpoch { .. } => 3,
            Self::Sync {
                mode: SyncMode::Diff,
                ..
            } => 4,
            Self::Sync {
                mode: SyncMode::Trunc(_),
                ..
            } => 5,
            Self::Sync {
                mode: SyncMode::Snap,
                ..
            } => 6,
            Self::NewLeader { .. } => 7,
            Self::AckNewLeader { .. } => 8,
            Self::UpToDate { .. } => 9,
            Self::Proposal { .. } => 10,
            Self::Ack { .. } => 11,
            Self::Commit { .. } => 12,
            Self::Ping { .. } => 13,
            Self::Forward(_) => 14,
        }
    }

    fn wire_bytes(&self) -> usize {
        // A compact binary encoding: a tag, fixed-width integers, a length per list.
        1 + match self {
            Self::Notification { .. } => 8 + 8 + 8 + ZXID_BYTES + 1,
            Self::FollowerInfo { .. } => 16,
            Self::LeaderInfo { .. } | Self::Ping { .. } => 8,
            Self::AckEpoch { .. } => 16 + ZXID_BYTES,
            Self::Sync { txns, .. } => {
                8 + ZXID_BYTES * 2
                    + 4
                    + txns
                        .iter()
                        .map(|(t, c)| {
                            ZXID_BYTES + t.command.size() + 1 + c.as_ref().map_or(0, cert_size)
                        })
                        .sum::<usize>()
            }
            Self::NewLeader { endorse, .. } => 8 + 4 + endorse.len() * ZXID_BYTES,
            Self::AckNewLeader { endorsements, .. } => {
                8 + 4
                    + endorsements
                        .iter()
                        .map(|(_, v)| ZXID_BYTES + v.size())
                        .sum::<usize>()
            }
            Self::UpToDate { certs, .. } => {
                8 + ZXID_BYTES
                    + 4
                    + certs
                        .iter()
                        .map(|(_, c)| ZXID_BYTES + cert_size(c))
                        .sum::<usize>()
            }
            Self::Proposal { txn, .. } => 8 + ZXID_BYTES + txn.command.size(),
            Self::Ack { endorsement, .. } => 8 + ZXID_BYTES + endorsement.size(),
            Self::Commit { cert, .. } => 8 + ZXID_BYTES + cert_size(cert),
            Self::Forward(r) => 4 + r.len() * 12,
        }
    }
}

/// What the broadcast carries and how it is delivered: the state machine.
pub trait App {
    /// A transaction's command.
    type Command: Clone + fmt::Debug + CommandSize;
    /// A server's endorsement of a transaction it logged.
    type Endorsement: Clone + fmt::Debug + EndorsementSize;
    /// The leader's next command from `requests` (in arrival order, possibly none), on top of
    /// its history: `tail` holds the transactions after the last delivered one. Returns the
    /// command and how many requests it took (from the front); `None` when there is nothing
    /// to propose.
    fn cut(
        &mut self,
        now: Micros,
        zxid: Zxid,
        tail: &[Arc<Txn<Self::Command>>],
        requests: &[Request],
    ) -> Option<(Self::Command, usize)>;
    /// The client requests a command carries.
    fn requests(command: &Self::Command) -> &[Request];
    /// A digest of a command's content, for the safety observer.
    fn digest(command: &Self::Command) -> u64;
    /// This server's endorsement of `txn`.
    fn endorse(&self, txn: &Txn<Self::Command>) -> Self::Endorsement;
    /// Delivers a committed transaction with its certificate.
    fn deliver(&mut self, txn: &Txn<Self::Command>, cert: &[Self::Endorsement]);
}

/// What a server delivers: a committed transaction and its certificate.
#[derive(Debug, Clone)]
pub struct Delivered<C, V> {
    /// The transaction.
    pub txn: Arc<Txn<C>>,
    /// The quorum's endorsements.
    pub cert: Cert<V>,
}

/// What a server notes for timelines and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Started looking, in election round `round`.
    Looking {
        /// The round.
        round: u64,
    },
    /// The election ended: following or leading `leader`.
    Elected {
        /// The leader.
        leader: NodeId,
        /// The role taken.
        role: Role,
    },
    /// The prospective leader chose a new epoch.
    NewEpoch {
        /// The epoch.
        epoch: u64,
    },
    /// The leader synchronized a follower.
    Synced {
        /// The follower.
        follower: NodeId,
        /// How.
        mode: SyncMode,
        /// Transactions sent.
        txns: usize,
    },
    /// A quorum acknowledged `NEWLEADER`: the leader of `epoch` broadcasts.
    Established {
        /// The epoch.
        epoch: u64,
    },
    /// The leader proposed a transaction.
    Proposed {
        /// Its zxid.
        zxid: Zxid,
    },
    /// Delivered through `zxid`.
    Delivered {
        /// The last delivered zxid.
        zxid: Zxid,
    },
    /// Gave up leading or following.
    Abandoned {
        /// Why.
        why: &'static str,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Looking { round } => write!(f, "looks for a leader (round {round})"),
            Self::Elected { leader, role } => write!(f, "elected node {leader}: {role}"),
            Self::NewEpoch { epoch } => write!(f, "proposes epoch {epoch}"),
            Self::Synced {
                follower,
                mode,
                txns,
            } => {
                let how = match mode {
                    SyncMode::Diff => "DIFF".to_owned(),
                    SyncMode::Trunc(z) => format!("TRUNC to {z} +"),
                    SyncMode::Snap => "SNAP".to_owned(),
                };
                write!(f, "syncs node {follower}: {how} {txns} transactions")
            }
            Self::Established { epoch } => {
                write!(f, "leads epoch {epoch}: NEWLEADER acknowledged by a quorum")
            }
            Self::Proposed { zxid } => write!(f, "proposes {zxid}"),
            Self::Delivered { zxid } => write!(f, "delivers through {zxid}"),
            Self::Abandoned { why } => write!(f, "goes back to looking: {why}"),
        }
    }
}

/// A leader's view of its ensemble.
#[derive(Debug)]
struct Leading<V> {
    /// The new epoch, once a quorum's accepted epochs gave it.
    epoch: Option<u64>,
    /// Followers' accepted epochs (FOLLOWERINFO).
    infos: BTreeMap<NodeId, u64>,
    /// Each follower's session (its election round when it joined).
    sessions: HashMap<NodeId, u64>,
    /// The leader's last zxid and last delivered zxid when it synchronized each follower.
    sync_points: HashMap<NodeId, (Zxid, Zxid)>,
    /// Followers that acknowledged the epoch, with their last zxid.
    epoch_acks: BTreeMap<NodeId, Zxid>,
    /// Whether a quorum acknowledged the epoch (synchronization started).
    syncing: bool,
    /// Followers sent `NEWLEADER`: they get every proposal and commit from then on.
    forwarding: HashSet<NodeId>,
    /// Followers that acknowledged `NEWLEADER`.
    newleader_acks: HashSet<NodeId>,
    /// Established: a quorum acknowledged `NEWLEADER`.
    established: bool,
    /// The last zxid each server acknowledged (FIFO: acknowledgements are cumulative).
    acked: HashMap<NodeId, Zxid>,
    /// Endorsements of transactions not yet committed.
    endorsements: BTreeMap<Zxid, Vec<(NodeId, V)>>,
    /// Servers heard from since the last liveness check.
    heard: HashSet<NodeId>,
}

impl<V> Default for Leading<V> {
    fn default() -> Self {
        Self {
            epoch: None,
            infos: BTreeMap::new(),
            sessions: HashMap::new(),
            sync_points: HashMap::new(),
            epoch_acks: BTreeMap::new(),
            syncing: false,
            forwarding: HashSet::new(),
            newleader_acks: HashSet::new(),
            established: false,
            acked: HashMap::new(),
            endorsements: BTreeMap::new(),
            heard: HashSet::new(),
        }
    }
}

/// A follower's progress with its leader.
#[derive(Debug, Default)]
struct Following {
    /// The leader's new epoch, once received.
    epoch: Option<u64>,
    /// Last time the leader was heard.
    heard: Micros,
}

/// One ZAB server. See the module docs.
#[derive(Debug)]
pub struct ZabNode<A: App> {
    config: ZabConfig,
    rng: SimRng,
    app: A,
    accepted_epoch: u64,
    current_epoch: u64,
    base: Zxid,
    log: Vec<Arc<Txn<A::Command>>>,
    certs: BTreeMap<Zxid, Cert<A::Endorsement>>,
    delivered: Zxid,
    role: Role,
    phase: Phase,
    leader: Option<NodeId>,
    round: u64,
    vote: Vote,
    votes: BTreeMap<NodeId, Vote>,
    out_of_election: BTreeMap<NodeId, (NodeId, Role)>,
    leading: Leading<A::Endorsement>,
    following: Following,
    waiting: VecDeque<Request>,
    queued: HashSet<Request>,
    done: HashSet<Request>,
}

type Out<A> = Vec<Output<ZabNode<A>>>;

impl<A: App> ZabNode<A> {
    /// A server restarted from `disk` (an empty disk: first boot), with `rng` for its
    /// timeouts and `app` holding its state machine as of its history's base.
    #[must_use]
    pub fn new(
        config: ZabConfig,
        disk: &Durable<A::Command, A::Endorsement>,
        rng: SimRng,
        app: A,
    ) -> Self {
        let id = config.id;
        Self {
            rng,
            app,
            accepted_epoch: disk.accepted_epoch,
            current_epoch: disk.current_epoch,
            base: disk.base,
            log: disk.history.clone(),
            certs: disk.certs.clone(),
            delivered: disk.base,
            role: Role::Looking,
            phase: Phase::Election,
            leader: None,
            round: 0,
            vote: Vote {
                leader: id,
                epoch: disk.current_epoch,
                zxid: disk.history.last().map_or(disk.base, |t| t.zxid),
            },
            votes: BTreeMap::new(),
            out_of_election: BTreeMap::new(),
            leading: Leading::default(),
            following: Following::default(),
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            done: HashSet::new(),
            config,
        }
    }

    /// Its role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Its phase.
    #[must_use]
    pub const fn phase(&self) -> Phase {
        self.phase
    }

    /// The leader it follows (itself when leading).
    #[must_use]
    pub const fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// `acceptedEpoch`.
    #[must_use]
    pub const fn accepted_epoch(&self) -> u64 {
        self.accepted_epoch
    }

    /// `currentEpoch`.
    #[must_use]
    pub const fn current_epoch(&self) -> u64 {
        self.current_epoch
    }

    /// The epoch it leads in broadcast, if it is an established leader.
    #[must_use]
    pub fn established_epoch(&self) -> Option<u64> {
        (self.role == Role::Leading && self.leading.established)
            .then_some(self.leading.epoch)
            .flatten()
    }

    /// The zxid of its last logged transaction.
    #[must_use]
    pub fn last_zxid(&self) -> Zxid {
        self.log.last().map_or(self.base, |t| t.zxid)
    }

    /// The last zxid it delivered.
    #[must_use]
    pub const fn delivered(&self) -> Zxid {
        self.delivered
    }

    /// Its logged history after the base.
    #[must_use]
    pub fn history(&self) -> &[Arc<Txn<A::Command>>] {
        &self.log
    }

    /// Its state machine.
    #[must_use]
    pub const fn app(&self) -> &A {
        &self.app
    }

    /// Its current vote.
    #[must_use]
    pub const fn vote(&self) -> Vote {
        self.vote
    }

    fn quorum(&self) -> usize {
        self.config.members / 2 + 1
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + use<A> {
        let me = self.config.id;
        (0..self.config.members).filter(move |p| *p != me)
    }

    fn my_vote(&self) -> Vote {
        Vote {
            leader: self.config.id,
            epoch: self.current_epoch,
            zxid: self.last_zxid(),
        }
    }

    /// The position in the log of the transaction with `zxid` (`Some(0)`: the base; `Some(i)`:
    /// after `i` transactions).
    fn position(&self, zxid: Zxid) -> Option<usize> {
        if zxid == self.base {
            return Some(0);
        }
        self.log
            .binary_search_by(|t| t.zxid.cmp(&zxid))
            .ok()
            .map(|i| i + 1)
    }

    // ----- election -----

    fn look(&mut self, now: Micros, why: &'static str, out: &mut Out<A>) {
        if self.role != Role::Looking {
            out.push(Output::Note(Note::Abandoned { why }));
        }
        self.role = Role::Looking;
        self.phase = Phase::Election;
        self.leader = None;
        self.leading = Leading::default();
        self.following = Following::default();
        self.round += 1;
        self.vote = self.my_vote();
        self.votes.clear();
        self.votes.insert(self.config.id, self.vote);
        self.out_of_election.clear();
        out.push(Output::Note(Note::Looking { round: self.round }));
        self.send_votes(out);
        self.arm_election(now, out);
        if self.config.members == 1 {
            self.decide(now, out);
        }
    }

    fn arm_election(&mut self, now: Micros, out: &mut Out<A>) {
        let (lo, hi) = self.config.election;
        out.push(Output::Timer(ELECTION, now + self.rng.range(lo, hi)));
    }

    fn notification(&self) -> Msg<A::Command, A::Endorsement> {
        let vote = match self.role {
            Role::Looking => self.vote,
            _ => Vote {
                leader: self.leader.unwrap_or(self.config.id),
                epoch: self.current_epoch,
                zxid: self.last_zxid(),
            },
        };
        Msg::Notification {
            round: self.round,
            vote,
            role: self.role,
        }
    }

    fn send_votes(&self, out: &mut Out<A>) {
        for p in self.peers() {
            out.push(Output::Send(p, self.notification()));
        }
    }

    fn handle_notification(
        &mut self,
        now: Micros,
        from: NodeId,
        (round, vote, role): (u64, Vote, Role),
        out: &mut Out<A>,
    ) {
        if self.role != Role::Looking {
            // Out of the election: tell a looking server whom we follow.
            if role == Role::Looking {
                out.push(Output::Send(from, self.notification()));
            }
            return;
        }
        if role != Role::Looking {
            // A server that follows or leads: join its leader once a quorum reports it and the
            // leader itself says it leads.
            self.out_of_election.insert(from, (vote.leader, role));
            let backers = self
                .out_of_election
                .values()
                .filter(|(l, _)| *l == vote.leader)
                .count();
            let leads = self
                .out_of_election
                .get(&vote.leader)
                .is_some_and(|(l, r)| *l == vote.leader && *r == Role::Leading);
            if backers >= self.quorum() && leads && vote.leader != self.config.id {
                self.follow(now, vote.leader, out);
            }
            return;
        }
        if round > self.round {
            self.round = round;
            self.votes.clear();
            let mine = self.my_vote();
            self.vote = if vote.key() > mine.key() { vote } else { mine };
            self.votes.insert(self.config.id, self.vote);
            self.send_votes(out);
        } else if round < self.round {
            out.push(Output::Send(from, self.notification()));
            return;
        } else if vote.key() > self.vote.key() {
            self.vote = vote;
            self.votes.insert(self.config.id, self.vote);
            self.send_votes(out);
        }
        self.votes.insert(from, vote);
        let agree = self.votes.values().filter(|v| **v == self.vote).count();
        if agree == self.config.members {
            self.decide(now, out);
        } else if agree >= self.quorum() {
            // A quorum agrees: wait a tick for a better vote before deciding
            // (ZooKeeper's finalizeWait).
            out.push(Output::Timer(FINALIZE, now + self.config.tick));
        }
    }

    fn decide(&mut self, now: Micros, out: &mut Out<A>) {
        if self.vote.leader == self.config.id {
            self.lead(now, out);
        } else {
            self.follow(now, self.vote.leader, out);
        }
    }

    // ----- discovery, leader side -----

    fn lead(&mut self, now: Micros, out: &mut Out<A>) {
        self.role = Role::Leading;
        self.phase = Phase::Discovery;
        self.leader = Some(self.config.id);
        self.leading = Leading::default();
        self.leading
            .infos
            .insert(self.config.id, self.accepted_epoch);
        out.push(Output::Note(Note::Elected {
            leader: self.config.id,
            role: Role::Leading,
        }));
        out.push(Output::Timer(LIMIT, now + self.config.init_limit));
        self.choose_epoch(now, out);
    }

    fn choose_epoch(&mut self, now: Micros, out: &mut Out<A>) {
        if self.leading.epoch.is_some() || self.leading.infos.len() < self.quorum() {
            return;
        }
        let epoch = self.leading.infos.values().max().copied().unwrap_or(0) + 1;
        self.leading.epoch = Some(epoch);
        self.accepted_epoch = epoch;
        out.push(Output::Persist(Persist::AcceptedEpoch(epoch)));
        out.push(Output::Note(Note::NewEpoch { epoch }));
        let followers: Vec<NodeId> = self.leading.infos.keys().copied().collect();
        for f in followers.into_iter().filter(|f| *f != self.config.id) {
            out.push(Output::Send(f, Msg::LeaderInfo { epoch }));
        }
        self.leading
            .epoch_acks
            .insert(self.config.id, self.last_zxid());
        self.start_sync(now, out);
    }

    fn handle_follower_info(
        &mut self,
        now: Micros,
        from: NodeId,
        (accepted_epoch, session): (u64, u64),
        out: &mut Out<A>,
    ) {
        if self.role != Role::Leading {
            return;
        }
        if self.leading.sessions.get(&from) == Some(&session) {
            // A resent FOLLOWERINFO of a session under way.
            if let Some(epoch) = self.leading.epoch
                && !self.leading.forwarding.contains(&from)
            {
                out.push(Output::Send(from, Msg::LeaderInfo { epoch }));
            }
            return;
        }
        // A follower (re)joining: it starts over.
        self.leading.sessions.insert(from, session);
        self.leading.forwarding.remove(&from);
        self.leading.newleader_acks.remove(&from);
        self.leading.epoch_acks.remove(&from);
        self.leading.acked.remove(&from);
        self.leading.infos.insert(from, accepted_epoch);
        self.leading.heard.insert(from);
        match self.leading.epoch {
            Some(epoch) => out.push(Output::Send(from, Msg::LeaderInfo { epoch })),
            None => self.choose_epoch(now, out),
        }
    }

    fn handle_ack_epoch(
        &mut self,
        now: Micros,
        from: NodeId,
        (epoch, current_epoch, last): (u64, u64, Zxid),
        out: &mut Out<A>,
    ) {
        if self.role != Role::Leading
            || self.leading.epoch != Some(epoch)
            || !self.leading.infos.contains_key(&from)
            || self.leading.forwarding.contains(&from)
        {
            return;
        }
        self.leading.heard.insert(from);
        if (current_epoch, last) > (self.current_epoch, self.last_zxid()) {
            // A follower holds a more recent history: this server must not lead.
            self.look(now, "a follower's history is more recent", out);
            return;
        }
        self.leading.epoch_acks.insert(from, last);
        if self.leading.syncing {
            self.sync_follower(from, last, out);
        } else {
            self.start_sync(now, out);
        }
    }

    /// Once a quorum acknowledged the new epoch: take it as the current epoch and synchronize
    /// every follower that acknowledged it.
    fn start_sync(&mut self, now: Micros, out: &mut Out<A>) {
        let Some(epoch) = self.leading.epoch else {
            return;
        };
        if self.leading.syncing || self.leading.epoch_acks.len() < self.quorum() {
            return;
        }
        self.leading.syncing = true;
        self.phase = Phase::Sync;
        self.current_epoch = epoch;
        out.push(Output::Persist(Persist::CurrentEpoch(epoch)));
        let acks: Vec<(NodeId, Zxid)> = self
            .leading
            .epoch_acks
            .iter()
            .filter(|(f, _)| **f != self.config.id)
            .map(|(f, z)| (*f, *z))
            .collect();
        for (f, last) in acks {
            self.sync_follower(f, last, out);
        }
        #[cfg(test)]
        if self.config.bug == Some(Bug::EarlyBroadcast) {
            self.establish(now, out);
            return;
        }
        self.try_establish(now, out);
    }

    /// Synchronizes `follower`, whose last zxid is `last`: DIFF, TRUNC (+ DIFF) or SNAP, then
    /// NEWLEADER; from then on it gets every proposal and commit.
    fn sync_follower(&mut self, follower: NodeId, last: Zxid, out: &mut Out<A>) {
        let Some(epoch) = self.leading.epoch else {
            return;
        };
        let my_last = self.last_zxid();
        // Where the follower's history meets the leader's: its last zxid if the leader has
        // it, else the leader's last zxid below it (what follows there is truncated).
        let (mode, from) = match self.position(last) {
            Some(i) => (SyncMode::Diff, i),
            None => {
                let below = self.log.partition_point(|t| t.zxid < last);
                let to = if below == 0 {
                    self.base
                } else {
                    self.log[below - 1].zxid
                };
                (SyncMode::Trunc(to.min(my_last)), below)
            }
        };
        // Only the committed log's reach can be sent as a diff.
        let reach = self.log.len().saturating_sub(self.config.commit_log);
        let (mode, from) = if from < reach || (last < self.base) {
            (SyncMode::Snap, 0)
        } else {
            (mode, from)
        };
        let txns: Vec<_> = self.log[from..]
            .iter()
            .map(|t| (t.clone(), self.certs.get(&t.zxid).cloned()))
            .collect();
        out.push(Output::Note(Note::Synced {
            follower,
            mode,
            txns: txns.len(),
        }));
        out.push(Output::Send(
            follower,
            Msg::Sync {
                epoch,
                mode,
                txns,
                commit: self.delivered,
            },
        ));
        let endorse: Vec<Zxid> = self
            .log
            .iter()
            .map(|t| t.zxid)
            .filter(|z| *z > self.delivered && !self.certs.contains_key(z))
            .collect();
        out.push(Output::Send(follower, Msg::NewLeader { epoch, endorse }));
        self.leading.forwarding.insert(follower);
        self.leading.acked.insert(follower, Zxid::default());
        self.leading
            .sync_points
            .insert(follower, (my_last, self.delivered));
    }

    fn handle_ack_newleader(
        &mut self,
        now: Micros,
        from: NodeId,
        epoch: u64,
        endorsements: Vec<(Zxid, A::Endorsement)>,
        out: &mut Out<A>,
    ) {
        if self.role != Role::Leading
            || self.leading.epoch != Some(epoch)
            || !self.leading.forwarding.contains(&from)
        {
            return;
        }
        self.leading.heard.insert(from);
        for (z, e) in endorsements {
            if self.position(z).is_some() && z > self.delivered {
                endorse_once(self.leading.endorsements.entry(z).or_default(), from, e);
            }
        }
        // It holds the leader's history as of its sync.
        let (synced, committed) = self
            .leading
            .sync_points
            .get(&from)
            .copied()
            .unwrap_or_default();
        let acked = self.leading.acked.entry(from).or_default();
        *acked = (*acked).max(synced);
        self.leading.newleader_acks.insert(from);
        if self.leading.established {
            // What was committed since its sync: the history the leader certified when it was
            // established (COMMITs carried the certificates of later ones, sent again here).
            let certs = self.certs_after(committed);
            out.push(Output::Send(
                from,
                Msg::UpToDate {
                    epoch,
                    commit: self.delivered,
                    certs,
                },
            ));
            self.try_commit(out);
        } else {
            self.try_establish(now, out);
        }
    }

    /// Certificates of the transactions committed after `after`.
    fn certs_after(&self, after: Zxid) -> Vec<(Zxid, Cert<A::Endorsement>)> {
        self.log
            .iter()
            .filter(|t| t.zxid > after && t.zxid <= self.delivered)
            .filter_map(|t| self.certs.get(&t.zxid).map(|c| (t.zxid, c.clone())))
            .collect()
    }

    fn try_establish(&mut self, now: Micros, out: &mut Out<A>) {
        if self.leading.established
            || !self.leading.syncing
            || self.leading.newleader_acks.len() + 1 < self.quorum()
        {
            return;
        }
        self.establish(now, out);
    }

    /// A quorum took the leader's history: it is committed; broadcast starts.
    fn establish(&mut self, now: Micros, out: &mut Out<A>) {
        let Some(epoch) = self.leading.epoch else {
            return;
        };
        self.leading.established = true;
        self.phase = Phase::Broadcast;
        out.push(Output::Note(Note::Established { epoch }));
        // Certify the uncommitted tail of the history with the endorsements NEWLEADER's
        // acknowledgements carried, and the leader's own.
        let before = self.delivered;
        let tail: Vec<Arc<Txn<A::Command>>> = self
            .log
            .iter()
            .filter(|t| t.zxid > self.delivered && !self.certs.contains_key(&t.zxid))
            .cloned()
            .collect();
        let mut new_certs = Vec::new();
        for t in tail {
            let mut sigs: Vec<A::Endorsement> = vec![self.app.endorse(&t)];
            if let Some(e) = self.leading.endorsements.remove(&t.zxid) {
                sigs.extend(e.into_iter().map(|(_, v)| v));
            }
            let cert = Arc::new(sigs);
            self.certs.insert(t.zxid, cert.clone());
            new_certs.push((t.zxid, cert));
        }
        if !new_certs.is_empty() {
            out.push(Output::Persist(Persist::Certs(new_certs)));
        }
        let last = self.last_zxid();
        self.deliver_through(last, out);
        let certs = self.certs_after(before);
        let acked: Vec<NodeId> = self.leading.newleader_acks.iter().copied().collect();
        for f in acked {
            out.push(Output::Send(
                f,
                Msg::UpToDate {
                    epoch,
                    commit: self.delivered,
                    certs: certs.clone(),
                },
            ));
        }
        out.push(Output::Timer(CUT, now));
        out.push(Output::Timer(TICK, now + self.config.tick));
        out.push(Output::Timer(LIMIT, now + self.config.sync_limit));
        self.leading.heard.clear();
    }

    // ----- broadcast, leader side -----

    fn cut(&mut self, now: Micros, out: &mut Out<A>) {
        let Some(epoch) = self.established_epoch() else {
            return;
        };
        let pending = self.log.partition_point(|t| t.zxid <= self.delivered);
        let in_log: HashSet<Request> = self.log[pending..]
            .iter()
            .flat_map(|t| A::requests(&t.command).iter().copied())
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
        let last = self.last_zxid();
        let zxid = Zxid::new(
            epoch,
            if last.epoch == epoch {
                last.counter + 1
            } else {
                1
            },
        );
        let Some((command, used)) = self.app.cut(now, zxid, &self.log[pending..], &requests) else {
            return;
        };
        for r in self.waiting.drain(..used.min(take)) {
            self.queued.remove(&r);
        }
        let txn = Arc::new(Txn { zxid, command });
        out.push(Output::Note(Note::Proposed { zxid }));
        out.push(Output::Persist(Persist::Append(vec![txn.clone()])));
        self.log.push(txn.clone());
        let mine = self.app.endorse(&txn);
        self.leading
            .endorsements
            .entry(zxid)
            .or_default()
            .push((self.config.id, mine));
        self.leading.acked.insert(self.config.id, zxid);
        let mut followers: Vec<NodeId> = self.leading.forwarding.iter().copied().collect();
        followers.sort_unstable();
        for f in followers {
            out.push(Output::Send(
                f,
                Msg::Proposal {
                    epoch,
                    txn: txn.clone(),
                },
            ));
        }
        self.try_commit(out);
    }

    fn handle_ack(
        &mut self,
        from: NodeId,
        epoch: u64,
        zxid: Zxid,
        endorsement: A::Endorsement,
        out: &mut Out<A>,
    ) {
        if self.established_epoch() != Some(epoch) || !self.leading.forwarding.contains(&from) {
            return;
        }
        self.leading.heard.insert(from);
        if zxid > self.delivered && self.position(zxid).is_some() {
            endorse_once(
                self.leading.endorsements.entry(zxid).or_default(),
                from,
                endorsement,
            );
        }
        let acked = self.leading.acked.entry(from).or_default();
        *acked = (*acked).max(zxid);
        self.try_commit(out);
    }

    /// Commits, in zxid order, every proposal a quorum acknowledged.
    fn try_commit(&mut self, out: &mut Out<A>) {
        let Some(epoch) = self.established_epoch() else {
            return;
        };
        loop {
            let next = self.log.partition_point(|t| t.zxid <= self.delivered);
            let Some(txn) = self.log.get(next).cloned() else {
                return;
            };
            let acks = self
                .leading
                .acked
                .iter()
                .filter(|(n, z)| {
                    (**n == self.config.id || self.leading.forwarding.contains(n))
                        && **z >= txn.zxid
                })
                .count();
            let sigs = self.leading.endorsements.get(&txn.zxid).map_or(0, Vec::len);
            if acks < self.quorum() || sigs < self.quorum() {
                return;
            }
            let cert: Cert<A::Endorsement> = Arc::new(
                self.leading
                    .endorsements
                    .remove(&txn.zxid)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(_, v)| v)
                    .collect(),
            );
            self.certs.insert(txn.zxid, cert.clone());
            out.push(Output::Persist(Persist::Certs(vec![(
                txn.zxid,
                cert.clone(),
            )])));
            let mut followers: Vec<NodeId> = self.leading.forwarding.iter().copied().collect();
            followers.sort_unstable();
            for f in followers {
                out.push(Output::Send(
                    f,
                    Msg::Commit {
                        epoch,
                        zxid: txn.zxid,
                        cert: cert.clone(),
                    },
                ));
            }
            self.deliver_through(txn.zxid, out);
        }
    }

    // ----- follower side -----

    fn follow(&mut self, now: Micros, leader: NodeId, out: &mut Out<A>) {
        self.role = Role::Following;
        self.phase = Phase::Discovery;
        self.leader = Some(leader);
        self.following = Following {
            epoch: None,
            heard: now,
        };
        out.push(Output::Note(Note::Elected {
            leader,
            role: Role::Following,
        }));
        self.send_follower_info(out);
        out.push(Output::Timer(LIMIT, now + self.config.init_limit));
        out.push(Output::Timer(TICK, now + self.config.tick * 2));
    }

    fn send_follower_info(&self, out: &mut Out<A>) {
        if let Some(leader) = self.leader {
            out.push(Output::Send(
                leader,
                Msg::FollowerInfo {
                    accepted_epoch: self.accepted_epoch,
                    session: self.round,
                },
            ));
        }
    }

    fn heard_from_leader(&mut self, now: Micros, from: NodeId) -> bool {
        if self.role == Role::Following && self.leader == Some(from) {
            self.following.heard = now;
            true
        } else {
            false
        }
    }

    fn handle_leader_info(&mut self, now: Micros, from: NodeId, epoch: u64, out: &mut Out<A>) {
        if !self.heard_from_leader(now, from) || self.phase != Phase::Discovery {
            return;
        }
        if epoch < self.accepted_epoch {
            self.look(
                now,
                "the leader's epoch is older than the one accepted",
                out,
            );
            return;
        }
        if epoch > self.accepted_epoch {
            self.accepted_epoch = epoch;
            out.push(Output::Persist(Persist::AcceptedEpoch(epoch)));
        }
        self.following.epoch = Some(epoch);
        out.push(Output::Send(
            from,
            Msg::AckEpoch {
                epoch,
                current_epoch: self.current_epoch,
                last: self.last_zxid(),
            },
        ));
    }

    fn handle_sync(
        &mut self,
        now: Micros,
        from: NodeId,
        (epoch, mode, commit): (u64, SyncMode, Zxid),
        txns: Vec<SyncTxn<A::Command, A::Endorsement>>,
        out: &mut Out<A>,
    ) {
        if !self.heard_from_leader(now, from)
            || self.phase != Phase::Discovery
            || self.following.epoch != Some(epoch)
        {
            return;
        }
        self.phase = Phase::Sync;
        match mode {
            SyncMode::Snap => {
                self.log = txns.iter().map(|(t, _)| t.clone()).collect();
                out.push(Output::Persist(Persist::Snapshot(self.log.clone())));
            }
            SyncMode::Trunc(to) => {
                let keep = self.log.partition_point(|t| t.zxid <= to);
                if keep < self.log.len() {
                    self.log.truncate(keep);
                    out.push(Output::Persist(Persist::Truncate(to)));
                }
                self.append_new(&txns, out);
            }
            SyncMode::Diff => self.append_new(&txns, out),
        }
        let certs: Vec<(Zxid, Cert<A::Endorsement>)> = txns
            .into_iter()
            .filter_map(|(t, c)| c.map(|c| (t.zxid, c)))
            .filter(|(z, _)| !self.certs.contains_key(z))
            .collect();
        self.store_certs(certs, out);
        self.deliver_through(commit, out);
    }

    fn append_new(&mut self, txns: &[SyncTxn<A::Command, A::Endorsement>], out: &mut Out<A>) {
        let last = self.last_zxid();
        let fresh: Vec<Arc<Txn<A::Command>>> = txns
            .iter()
            .filter(|(t, _)| t.zxid > last)
            .map(|(t, _)| t.clone())
            .collect();
        if !fresh.is_empty() {
            self.log.extend(fresh.iter().cloned());
            out.push(Output::Persist(Persist::Append(fresh)));
        }
    }

    fn store_certs(&mut self, certs: Vec<(Zxid, Cert<A::Endorsement>)>, out: &mut Out<A>) {
        if certs.is_empty() {
            return;
        }
        for (z, c) in &certs {
            self.certs.insert(*z, c.clone());
        }
        out.push(Output::Persist(Persist::Certs(certs)));
    }

    fn handle_new_leader(
        &mut self,
        now: Micros,
        from: NodeId,
        epoch: u64,
        endorse: &[Zxid],
        out: &mut Out<A>,
    ) {
        if !self.heard_from_leader(now, from)
            || self.phase != Phase::Sync
            || self.following.epoch != Some(epoch)
        {
            return;
        }
        self.current_epoch = epoch;
        out.push(Output::Persist(Persist::CurrentEpoch(epoch)));
        let endorsements = endorse
            .iter()
            .filter_map(|z| {
                let i = self.position(*z)?.checked_sub(1)?;
                Some((*z, self.app.endorse(&self.log[i])))
            })
            .collect();
        out.push(Output::Send(
            from,
            Msg::AckNewLeader {
                epoch,
                endorsements,
            },
        ));
    }

    fn handle_up_to_date(
        &mut self,
        now: Micros,
        from: NodeId,
        (epoch, commit): (u64, Zxid),
        certs: Vec<(Zxid, Cert<A::Endorsement>)>,
        out: &mut Out<A>,
    ) {
        if !self.heard_from_leader(now, from)
            || self.phase != Phase::Sync
            || self.current_epoch != epoch
        {
            return;
        }
        self.phase = Phase::Broadcast;
        let certs = certs
            .into_iter()
            .filter(|(z, _)| !self.certs.contains_key(z))
            .collect();
        self.store_certs(certs, out);
        self.deliver_through(commit, out);
        out.push(Output::Timer(LIMIT, now + self.config.sync_limit));
        self.forward_waiting(out);
    }

    fn handle_proposal(
        &mut self,
        now: Micros,
        from: NodeId,
        epoch: u64,
        txn: Arc<Txn<A::Command>>,
        out: &mut Out<A>,
    ) {
        if !self.heard_from_leader(now, from)
            || !matches!(self.phase, Phase::Sync | Phase::Broadcast)
            || self.current_epoch != epoch
        {
            return;
        }
        let last = self.last_zxid();
        if txn.zxid <= last {
            return;
        }
        let expected = if last.epoch == epoch {
            Zxid::new(epoch, last.counter + 1)
        } else {
            Zxid::new(epoch, 1)
        };
        if txn.zxid != expected {
            // FIFO links never skip: a gap means the connection broke.
            self.look(now, "a proposal out of order", out);
            return;
        }
        out.push(Output::Persist(Persist::Append(vec![txn.clone()])));
        self.log.push(txn.clone());
        let endorsement = self.app.endorse(&txn);
        out.push(Output::Send(
            from,
            Msg::Ack {
                epoch,
                zxid: txn.zxid,
                endorsement,
            },
        ));
    }

    fn handle_commit(
        &mut self,
        now: Micros,
        from: NodeId,
        (epoch, zxid): (u64, Zxid),
        cert: Cert<A::Endorsement>,
        out: &mut Out<A>,
    ) {
        if !self.heard_from_leader(now, from)
            || !matches!(self.phase, Phase::Sync | Phase::Broadcast)
            || self.current_epoch != epoch
            || self.position(zxid).is_none()
        {
            return;
        }
        if !self.certs.contains_key(&zxid) {
            self.store_certs(vec![(zxid, cert)], out);
        }
        if self.phase == Phase::Broadcast {
            self.deliver_through(zxid, out);
        }
    }

    /// Delivers, in zxid order, every logged transaction through `zxid` that has its
    /// certificate.
    fn deliver_through(&mut self, zxid: Zxid, out: &mut Out<A>) {
        let start = self.delivered;
        let from = self.log.partition_point(|t| t.zxid <= self.delivered);
        for i in from..self.log.len() {
            let txn = self.log[i].clone();
            if txn.zxid > zxid {
                break;
            }
            let Some(cert) = self.certs.get(&txn.zxid).cloned() else {
                break;
            };
            self.delivered = txn.zxid;
            for r in A::requests(&txn.command) {
                self.done.insert(*r);
                if self.role == Role::Leading {
                    out.push(Output::Reply(*r));
                }
            }
            self.app.deliver(&txn, &cert);
            out.push(Output::Commit(Delivered { txn, cert }));
        }
        if self.delivered > start {
            out.push(Output::Note(Note::Delivered {
                zxid: self.delivered,
            }));
        }
    }

    // ----- clients -----

    fn forward_waiting(&mut self, out: &mut Out<A>) {
        if self.role == Role::Following
            && self.phase == Phase::Broadcast
            && !self.waiting.is_empty()
            && let Some(leader) = self.leader
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
        out: &mut Out<A>,
    ) {
        for r in requests {
            if self.done.contains(&r) || self.waiting.len() >= MAX_WAITING || !self.queued.insert(r)
            {
                continue;
            }
            self.waiting.push_back(r);
        }
        if self.established_epoch().is_some() {
            if self.waiting.len() >= self.config.max_batch {
                self.cut(now, out);
            }
        } else {
            self.forward_waiting(out);
        }
    }
}

impl<A: App> Engine for ZabNode<A> {
    type Msg = Msg<A::Command, A::Endorsement>;
    type Persist = Persist<A::Command, A::Endorsement>;
    type Disk = Durable<A::Command, A::Endorsement>;
    type Commit = Delivered<A::Command, A::Endorsement>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.look(now, "started", out);
    }

    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    ) {
        if from >= self.config.members || from == self.config.id {
            return;
        }
        match msg {
            Msg::Notification { round, vote, role } => {
                self.handle_notification(now, from, (round, vote, role), out);
            }
            Msg::FollowerInfo {
                accepted_epoch,
                session,
            } => self.handle_follower_info(now, from, (accepted_epoch, session), out),
            Msg::LeaderInfo { epoch } => self.handle_leader_info(now, from, epoch, out),
            Msg::AckEpoch {
                epoch,
                current_epoch,
                last,
            } => self.handle_ack_epoch(now, from, (epoch, current_epoch, last), out),
            Msg::Sync {
                epoch,
                mode,
                txns,
                commit,
            } => self.handle_sync(now, from, (epoch, mode, commit), txns, out),
            Msg::NewLeader { epoch, endorse } => {
                self.handle_new_leader(now, from, epoch, &endorse, out);
            }
            Msg::AckNewLeader {
                epoch,
                endorsements,
            } => self.handle_ack_newleader(now, from, epoch, endorsements, out),
            Msg::UpToDate {
                epoch,
                commit,
                certs,
            } => self.handle_up_to_date(now, from, (epoch, commit), certs, out),
            Msg::Proposal { epoch, txn } => self.handle_proposal(now, from, epoch, txn, out),
            Msg::Ack {
                epoch,
                zxid,
                endorsement,
            } => self.handle_ack(from, epoch, zxid, endorsement, out),
            Msg::Commit { epoch, zxid, cert } => {
                self.handle_commit(now, from, (epoch, zxid), cert, out);
            }
            Msg::Ping { epoch } => {
                if self.role == Role::Leading && self.established_epoch() == Some(epoch) {
                    self.leading.heard.insert(from);
                } else if self.heard_from_leader(now, from) && self.current_epoch == epoch {
                    out.push(Output::Send(from, Msg::Ping { epoch }));
                }
            }
            Msg::Forward(requests) => self.accept_requests(now, requests, out),
        }
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        match (id, self.role) {
            (FINALIZE, Role::Looking) => {
                let agree = self.votes.values().filter(|v| **v == self.vote).count();
                if agree >= self.quorum() {
                    self.decide(now, out);
                }
            }
            (ELECTION, Role::Looking) => {
                self.send_votes(out);
                self.arm_election(now, out);
            }
            (TICK, Role::Leading) => {
                if let Some(epoch) = self.established_epoch() {
                    let mut followers: Vec<NodeId> =
                        self.leading.forwarding.iter().copied().collect();
                    followers.sort_unstable();
                    for f in followers {
                        out.push(Output::Send(f, Msg::Ping { epoch }));
                    }
                    out.push(Output::Timer(TICK, now + self.config.tick));
                }
            }
            // The leader may not have been leading yet: ask again until it answers.
            (TICK, Role::Following)
                if self.phase == Phase::Discovery && self.following.epoch.is_none() =>
            {
                self.send_follower_info(out);
                out.push(Output::Timer(TICK, now + self.config.tick * 2));
            }
            (CUT, Role::Leading) if self.established_epoch().is_some() => {
                self.cut(now, out);
                out.push(Output::Timer(CUT, now + self.config.cut_interval));
            }
            (LIMIT, Role::Leading) => {
                if self.established_epoch().is_none() {
                    self.look(now, "no quorum synchronized within initLimit", out);
                    return;
                }
                self.leading.heard.insert(self.config.id);
                let heard = self
                    .leading
                    .heard
                    .iter()
                    .filter(|n| **n == self.config.id || self.leading.forwarding.contains(n))
                    .count();
                if heard < self.quorum() {
                    self.look(now, "less than a quorum heard within syncLimit", out);
                } else {
                    self.leading.heard.clear();
                    out.push(Output::Timer(LIMIT, now + self.config.sync_limit));
                }
            }
            (LIMIT, Role::Following) => {
                if self.phase != Phase::Broadcast {
                    self.look(now, "not synchronized within initLimit", out);
                } else if now >= self.following.heard + self.config.sync_limit {
                    self.look(now, "the leader was silent for syncLimit", out);
                } else {
                    out.push(Output::Timer(
                        LIMIT,
                        self.following.heard + self.config.sync_limit,
                    ));
                }
            }
            _ => {}
        }
    }

    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>) {
        self.accept_requests(now, [request], out);
    }

    fn on_disconnect(&mut self, now: Micros, peer: NodeId, out: &mut Vec<Output<Self>>) {
        match self.role {
            Role::Following if self.leader == Some(peer) => {
                self.look(now, "the connection to the leader broke", out);
            }
            Role::Leading => {
                // The follower left; it comes back through discovery.
                self.leading.forwarding.remove(&peer);
                self.leading.newleader_acks.remove(&peer);
                self.leading.epoch_acks.remove(&peer);
                self.leading.infos.remove(&peer);
                self.leading.sessions.remove(&peer);
                self.leading.acked.remove(&peer);
            }
            _ => {}
        }
    }

    fn is_leader(&self) -> bool {
        self.established_epoch().is_some()
    }

    fn persist(disk: &mut Self::Disk, write: &Self::Persist) {
        match write {
            Persist::AcceptedEpoch(e) => disk.accepted_epoch = *e,
            Persist::CurrentEpoch(e) => disk.current_epoch = *e,
            Persist::Truncate(to) => {
                let keep = disk.history.partition_point(|t| t.zxid <= *to);
                disk.history.truncate(keep);
            }
            Persist::Append(txns) => disk.history.extend(txns.iter().cloned()),
            Persist::Snapshot(txns) => disk.history.clone_from(txns),
            Persist::Certs(certs) => {
                for (z, c) in certs {
                    disk.certs.insert(*z, c.clone());
                }
            }
        }
    }
}

/// Adds `from`'s endorsement unless it already gave one: a follower that rejoins and
/// acknowledges again must not sign a certificate twice.
fn endorse_once<V>(list: &mut Vec<(NodeId, V)>, from: NodeId, endorsement: V) {
    if list.iter().all(|(n, _)| *n != from) {
        list.push((from, endorsement));
    }
}

#[cfg(test)]
mod endorsement_tests {
    use super::endorse_once;

    #[test]
    fn a_rejoining_follower_endorses_a_transaction_once() {
        let mut list = Vec::new();
        endorse_once(&mut list, 1, 'a');
        endorse_once(&mut list, 2, 'b');
        endorse_once(&mut list, 1, 'c');
        assert_eq!(list, [(1, 'a'), (2, 'b')]);
    }
}
