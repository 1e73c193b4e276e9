//! The PBFT engine (Castro & Liskov, "Practical Byzantine Fault Tolerance", OSDI 1999),
//! sans-I/O: one replica's state, stepped by inputs and answering with [`Output`]s.
//!
//! - Views; the primary of view `v` is replica `v mod n`; `n = 3f + 1` replicas.
//! - Normal case: the primary assigns a sequence number to a block of client requests and
//!   multicasts a PRE-PREPARE; backups accept it in its view, inside the watermarks, with the
//!   right digest and no other digest for that (view, sequence), and multicast a PREPARE. A
//!   replica is *prepared* with the pre-prepare and `2f` matching prepares from different
//!   backups; it then multicasts a COMMIT, and is *committed-local* with `2f + 1` matching
//!   commits. Committed sequence numbers execute in order; every replica replies to the
//!   clients, which accept after `f + 1` replies.
//! - Every protocol message is signed by its sender (ed25519) and checked by its receiver. A
//!   COMMIT signs exactly what a block's commit certificate signs, so the `2f + 1` commits a
//!   replica collected are the certificate its chain file carries.
//! - Checkpoints every `K` sequence numbers; `2f + 1` matching CHECKPOINTs make one stable,
//!   which moves the low watermark `h` (the high one is `h + L`) and discards the messages at
//!   or below it, so memory stays bounded however long the run.
//! - View change: a replica that sees no progress within its timeout (or a client request
//!   waiting that long) multicasts a VIEW-CHANGE with its stable checkpoint's proof and its
//!   prepared certificates; the new primary gathers `2f + 1` and multicasts a NEW-VIEW whose
//!   pre-prepares (the O set) every backup recomputes from the view-changes: for each sequence
//!   number after the newest stable checkpoint, the digest prepared in the highest view, or a
//!   no-op where none was. A replica waiting for a new view doubles its timeout (up to 4×)
//!   each time it fires; it moves on to the next view only if `2f + 1` replicas asked for
//!   this one (its primary failed them), else it asks again, so one replica that timed out
//!   early does not run ahead of the rest alone. One that sees `f + 1` view-changes for
//!   higher views joins the smallest.
//! - A replica that falls behind (lost messages, a crash) fetches committed entries with
//!   their commit certificates from a peer and checks each certificate before executing it.
//!
//! Blocks are cut one at a time: the primary proposes the next block once the previous one
//! executed, on top of its chain, every block interval (empty blocks included, so a backup
//! that sees no block executed within its timeout suspects the primary). A committed block
//! that no longer fits the chain (its parent was replaced by a view change's no-op) is
//! skipped by every replica alike, and its requests wait for a later block.
//!
//! A replica that restarts after a crash keeps its view, prepared certificates, stable
//! checkpoint and executed entries (its disk), and takes part again from the next view on:
//! until then it only catches up, so it never sends a prepare or commit that contradicts one
//! it sent before the crash.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature};
use crate::primitives::tx::{KeyPair, PubKey, SigBytes};
use crate::sim::{Engine, Message, Micros, NodeId, Output, Request};

/// Timer ids.
const VIEW: u8 = 0;
const CUT: u8 = 1;
const FETCH: u8 = 2;

/// At most this many client requests wait at a replica (more are refused; clients retry).
const MAX_WAITING: usize = 10_000;
/// A view change's timeout doubles at most this many times (to 4× the base), so a long
/// fault does not leave the cluster waiting minutes once it heals.
const MAX_DOUBLINGS: u32 = 2;
/// Executed entries kept to answer peers that fall behind.
pub const HISTORY: usize = 1024;
/// At most this many entries in one state-transfer message.
const MAX_TRANSFER: usize = 64;

/// A digest: a block's hash, or [`NULL`] for a no-op.
pub type Digest = BlockHash;
/// The digest of a no-op (the null request that fills a view change's gaps).
pub const NULL: Digest = BlockHash::from_byte_array([0; 32]);

/// The bytes a COMMIT signs, and so each signature of a block's commit certificate
/// ([`crate::pbft::rule::commit_bytes`]).
#[must_use]
pub fn commit_bytes(view: u64, seq: u64, digest: Digest) -> Vec<u8> {
    crate::pbft::rule::commit_bytes(view, seq, digest).to_vec()
}

fn signed_bytes(tag: &[u8], numbers: &[u64], digests: &[Digest]) -> Vec<u8> {
    let mut b = Vec::with_capacity(tag.len() + 8 * numbers.len() + 32 * digests.len());
    b.extend_from_slice(tag);
    for n in numbers {
        b.extend_from_slice(&n.to_le_bytes());
    }
    for d in digests {
        b.extend_from_slice(d.as_bytes());
    }
    b
}

/// The state machine PBFT orders: the chain's blocks, or request batches in tests.
pub trait App {
    /// What a pre-prepare carries.
    type Block: Clone + fmt::Debug;
    /// Whether the primary proposes a block every interval even with no request waiting
    /// (then a backup that sees nothing executed within its timeout suspects the primary);
    /// otherwise only waiting requests start the timeout.
    const EMPTY_BLOCKS: bool;

    /// A block for sequence `seq` in `view`, proposed by `primary` on top of everything
    /// executed, ordering the first of `requests` it can; with how many it took.
    fn propose(
        &mut self,
        now: Micros,
        primary: &KeyPair,
        view: u64,
        seq: u64,
        requests: &[Request],
    ) -> Option<(Self::Block, usize)>;
    /// The block's digest (never [`NULL`]).
    fn digest(block: &Self::Block) -> Digest;
    /// Whether the block is what its digest says: a replica votes for a digest and executes
    /// the block, so the two must not come apart (a chain block's claimed hash must be its
    /// header's, and its header's merkle root its transactions').
    fn well_formed(block: &Self::Block) -> bool;
    /// The client requests it orders.
    fn requests(block: &Self::Block) -> &[Request];
    /// Executes a committed entry; false when the block does not fit the state (skipped).
    fn execute(&mut self, entry: &Executed<Self::Block>) -> bool;
    /// A digest of everything executed (checkpoints compare it).
    fn state_digest(&self) -> Digest;
}

/// A replica's parameters.
#[derive(Debug, Clone)]
pub struct PbftConfig {
    /// This replica.
    pub id: NodeId,
    /// Every replica's key, in member order.
    pub keys: Arc<Vec<PubKey>>,
    /// This replica's key pair.
    pub key: KeyPair,
    /// The primary proposes a block this often.
    pub block_interval: Micros,
    /// At most this many requests in a block.
    pub max_batch: usize,
    /// A checkpoint every this many sequence numbers (K).
    pub checkpoint_interval: u64,
    /// High watermark minus low watermark (L).
    pub window: u64,
    /// No progress for this long starts a view change (doubling while views fail).
    pub view_timeout: Micros,
    /// The sequence number executed before the run (a chain continued from a file).
    pub base: u64,
    /// Planted bugs the safety observer must catch (tests only).
    #[cfg(test)]
    pub bug: Option<Bug>,
}

impl PbftConfig {
    /// Replicas.
    #[must_use]
    pub fn n(&self) -> usize {
        self.keys.len()
    }

    /// Byzantine replicas tolerated.
    #[must_use]
    pub fn f(&self) -> usize {
        (self.n() - 1) / 3
    }

    /// A quorum: `2f + 1` when `n = 3f + 1`, and in general `⌈(n + f + 1)/2⌉`, so that two
    /// quorums share at least `f + 1` replicas, one of them correct.
    #[must_use]
    pub fn quorum(&self) -> usize {
        crate::consensus::quorum::byzantine_quorum(self.n())
    }

    /// The primary of `view`.
    #[must_use]
    pub fn primary(&self, view: u64) -> NodeId {
        (view % self.n() as u64) as NodeId
    }
}

/// Bugs planted in test-only variants of the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Committed-local with `2f` matching commits instead of `2f + 1`.
    CommitWith2f,
}

/// A pre-prepare: the primary of `view` assigns `seq` to the block with `digest`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrePrepare<B> {
    /// The view.
    pub view: u64,
    /// The sequence number.
    pub seq: u64,
    /// The block's digest ([`NULL`] for a no-op).
    pub digest: Digest,
    /// The block (`None` for a no-op).
    pub block: Option<B>,
    /// The primary.
    pub from: NodeId,
    /// Its signature.
    pub sig: SigBytes,
}

impl<B> PrePrepare<B> {
    fn bytes(&self) -> Vec<u8> {
        signed_bytes(
            b"chainsmith/pbft/pre-prepare",
            &[self.view, self.seq, self.from as u64],
            &[self.digest],
        )
    }
}

/// A PREPARE or a COMMIT.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Vote {
    /// The view.
    pub view: u64,
    /// The sequence number.
    pub seq: u64,
    /// The digest voted for.
    pub digest: Digest,
    /// The voter.
    pub from: NodeId,
    /// Its signature.
    pub sig: SigBytes,
}

/// The two kinds of vote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// PREPARE.
    Prepare,
    /// COMMIT.
    Commit,
}

impl Vote {
    fn bytes(&self, phase: Phase) -> Vec<u8> {
        match phase {
            Phase::Prepare => signed_bytes(
                b"chainsmith/pbft/prepare",
                &[self.view, self.seq, self.from as u64],
                &[self.digest],
            ),
            Phase::Commit => commit_bytes(self.view, self.seq, self.digest),
        }
    }
}

/// A CHECKPOINT: the sender executed up to `seq` and reached state `digest`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The sequence number.
    pub seq: u64,
    /// The state digest.
    pub digest: Digest,
    /// The sender.
    pub from: NodeId,
    /// Its signature.
    pub sig: SigBytes,
}

impl Checkpoint {
    fn bytes(&self) -> Vec<u8> {
        signed_bytes(
            b"chainsmith/pbft/checkpoint",
            &[self.seq, self.from as u64],
            &[self.digest],
        )
    }
}

/// A prepared certificate: a pre-prepare and `2f` matching prepares from different backups.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared<B> {
    /// The pre-prepare.
    pub pre: Arc<PrePrepare<B>>,
    /// The prepares.
    pub prepares: Vec<Vote>,
}

/// A VIEW-CHANGE to `view`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ViewChange<B> {
    /// The view asked for.
    pub view: u64,
    /// The sender's stable checkpoint.
    pub stable: u64,
    /// Its state digest.
    pub stable_digest: Digest,
    /// Its proof: `2f + 1` checkpoints (none for the run's base).
    pub proof: Arc<Vec<Checkpoint>>,
    /// A prepared certificate for each sequence number above it the sender prepared.
    pub prepared: Vec<Arc<Prepared<B>>>,
    /// The sender.
    pub from: NodeId,
    /// Its signature.
    pub sig: SigBytes,
}

impl<B> ViewChange<B> {
    fn bytes(&self) -> Vec<u8> {
        let mut numbers = vec![self.view, self.stable, self.from as u64];
        let mut digests = vec![self.stable_digest];
        for p in &self.prepared {
            numbers.extend([p.pre.view, p.pre.seq]);
            digests.push(p.pre.digest);
        }
        signed_bytes(b"chainsmith/pbft/view-change", &numbers, &digests)
    }
}

/// A NEW-VIEW: the view-changes that justify `view` and the pre-prepares they imply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewView<B> {
    /// The new view.
    pub view: u64,
    /// `2f + 1` view-changes for it.
    pub changes: Vec<Arc<ViewChange<B>>>,
    /// The O set.
    pub pres: Vec<Arc<PrePrepare<B>>>,
    /// The new primary.
    pub from: NodeId,
    /// Its signature.
    pub sig: SigBytes,
}

impl<B> NewView<B> {
    fn bytes(&self) -> Vec<u8> {
        let mut numbers = vec![self.view, self.from as u64];
        let mut digests = Vec::new();
        for c in &self.changes {
            numbers.push(c.from as u64);
            digests.push(BlockHash::hash(&c.sig.to_bytes()));
        }
        for p in &self.pres {
            numbers.push(p.seq);
            digests.push(p.digest);
        }
        signed_bytes(b"chainsmith/pbft/new-view", &numbers, &digests)
    }
}

/// An executed sequence number: its block (`None` for a no-op) and its commit certificate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Executed<B> {
    /// The sequence number.
    pub seq: u64,
    /// The block.
    pub block: Option<B>,
    /// `2f + 1` commits over (view, sequence, digest).
    pub cert: QuorumCertificate,
    /// Whether it became part of the state (false: a block that no longer fit, skipped).
    pub applied: bool,
    /// The executing replica's state digest after it (what its checkpoints would carry).
    pub state: Digest,
}

/// What travels between replicas.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Body<B> {
    /// A client request relayed to the primary.
    Request(Request),
    /// PRE-PREPARE.
    PrePrepare(Arc<PrePrepare<B>>),
    /// PREPARE.
    Prepare(Vote),
    /// COMMIT.
    Commit(Vote),
    /// CHECKPOINT.
    Checkpoint(Checkpoint),
    /// VIEW-CHANGE.
    ViewChange(Arc<ViewChange<B>>),
    /// NEW-VIEW.
    NewView(Arc<NewView<B>>),
    /// Asks for executed entries after this sequence number.
    Fetch(u64),
    /// Executed entries, each with its commit certificate.
    State(Arc<Vec<Arc<Executed<B>>>>),
}

/// A message: its body, and the connection it travels on (`lane`, 0 for every honest
/// replica; a Twins pair tells its two halves apart by it). The lane is transport, not
/// content: no signature covers it and no honest replica reads it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Msg<B> {
    /// The connection.
    pub lane: u8,
    /// The message.
    pub body: Body<B>,
}

/// The names of the message kinds, in [`Message::kind`] order.
pub const MSG_KINDS: &[&str] = &[
    "request",
    "pre-prepare",
    "prepare",
    "commit",
    "checkpoint",
    "view-change",
    "new-view",
    "fetch",
    "state",
];

/// Block size as [`App::size`] gives it, known to messages through this trait.
pub trait BlockSize {
    /// Bytes on the wire.
    fn wire_size(&self) -> usize;
}

const SIGNED: usize = 64 + 4;
const VOTE: usize = 8 + 8 + 32 + SIGNED;

fn pre_size<B: BlockSize>(p: &PrePrepare<B>) -> usize {
    VOTE + p.block.as_ref().map_or(0, BlockSize::wire_size)
}

fn prepared_size<B: BlockSize>(p: &Prepared<B>) -> usize {
    pre_size(&p.pre) + VOTE * p.prepares.len()
}

fn view_change_size<B: BlockSize>(c: &ViewChange<B>) -> usize {
    8 + 8
        + 32
        + SIGNED
        + c.proof.len() * (8 + 32 + SIGNED)
        + c.prepared.iter().map(|p| prepared_size(p)).sum::<usize>()
}

impl<B: BlockSize + Clone> Message for Msg<B> {
    fn kind(&self) -> usize {
        match self.body {
            Body::Request(_) => 0,
            Body::PrePrepare(_) => 1,
            Body::Prepare(_) => 2,
            Body::Commit(_) => 3,
            Body::Checkpoint(_) => 4,
            Body::ViewChange(_) => 5,
            Body::NewView(_) => 6,
            Body::Fetch(_) => 7,
            Body::State(_) => 8,
        }
    }

    fn wire_bytes(&self) -> usize {
        match &self.body {
            Body::Request(_) => 12,
            Body::PrePrepare(p) => pre_size(p),
            Body::Prepare(_) | Body::Commit(_) => VOTE,
            Body::Checkpoint(_) => 8 + 32 + SIGNED,
            Body::ViewChange(c) => view_change_size(c),
            Body::NewView(v) => {
                8 + SIGNED
                    + v.changes.iter().map(|c| view_change_size(c)).sum::<usize>()
                    + v.pres.iter().map(|p| pre_size(p)).sum::<usize>()
            }
            Body::Fetch(_) => 8,
            Body::State(entries) => entries
                .iter()
                .map(|e| {
                    8 + e.block.as_ref().map_or(0, BlockSize::wire_size)
                        + 16
                        + 96 * e.cert.signatures.len()
                })
                .sum(),
        }
    }
}

/// One entry of a NEW-VIEW's O set: a sequence number, its digest and block (none for a
/// no-op).
pub(crate) type OEntry<B> = (u64, Digest, Option<B>);

/// What a replica keeps on disk.
#[derive(Debug, Clone)]
pub struct Durable<B> {
    /// The view it last entered or asked for (`None`: never started).
    pub view: Option<u64>,
    /// Its prepared certificates above its stable checkpoint.
    pub prepared: BTreeMap<u64, Arc<Prepared<B>>>,
    /// Its stable checkpoint's proof.
    pub stable: Arc<Vec<Checkpoint>>,
    /// Executed entries, in order.
    pub executed: Vec<Arc<Executed<B>>>,
}

impl<B> Default for Durable<B> {
    fn default() -> Self {
        Self {
            view: None,
            prepared: BTreeMap::new(),
            stable: Arc::new(Vec::new()),
            executed: Vec::new(),
        }
    }
}

/// One write to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Persist<B> {
    /// The view.
    View(u64),
    /// A prepared certificate (before the COMMIT that follows it leaves).
    Prepared(Arc<Prepared<B>>),
    /// A stable checkpoint: its proof; older prepared certificates are dropped.
    Stable(Arc<Vec<Checkpoint>>),
    /// An executed entry.
    Executed(Arc<Executed<B>>),
}

/// Notes for timelines and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Entered `view` in normal operation (its primary is `view mod n`).
    View {
        /// The view.
        view: u64,
    },
    /// Asked for a change to `view`.
    ViewChange {
        /// The view asked for.
        view: u64,
    },
    /// As primary, proposed a block at `seq`.
    Proposed {
        /// The sequence number.
        seq: u64,
    },
    /// A committed block did not fit the chain and was skipped.
    Skipped {
        /// The sequence number.
        seq: u64,
    },
    /// A checkpoint became stable.
    Stable {
        /// Its sequence number.
        seq: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::View { view } => write!(f, "enters view {view}"),
            Self::ViewChange { view } => write!(f, "asks for view {view}"),
            Self::Proposed { seq } => write!(f, "proposes sequence {seq}"),
            Self::Skipped { seq } => write!(f, "skips sequence {seq}: its block no longer fits"),
            Self::Stable { seq } => write!(f, "checkpoint {seq} is stable"),
        }
    }
}

#[derive(Debug)]
struct Slot<B> {
    pre: Option<Arc<PrePrepare<B>>>,
    prepares: BTreeMap<NodeId, Vote>,
    commits: BTreeMap<NodeId, Vote>,
    prepared: bool,
    decided: Option<(Option<B>, QuorumCertificate)>,
}

impl<B> Default for Slot<B> {
    fn default() -> Self {
        Self {
            pre: None,
            prepares: BTreeMap::new(),
            commits: BTreeMap::new(),
            prepared: false,
            decided: None,
        }
    }
}

/// A client's executed serials: all below `low`, and those in `above`.
#[derive(Debug, Default, Clone)]
struct Done {
    low: u64,
    above: std::collections::BTreeSet<u64>,
}

impl Done {
    fn contains(&self, serial: u64) -> bool {
        serial < self.low || self.above.contains(&serial)
    }

    fn insert(&mut self, serial: u64) {
        if serial < self.low {
            return;
        }
        self.above.insert(serial);
        while self.above.remove(&self.low) {
            self.low += 1;
        }
    }
}

/// Sizes of a replica's protocol state, for the bounded-memory measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogSize {
    /// Sequence-number slots held.
    pub slots: usize,
    /// Votes (prepares and commits) held.
    pub votes: usize,
    /// Checkpoint messages held.
    pub checkpoints: usize,
    /// Prepared certificates held.
    pub prepared: usize,
    /// Executed entries kept for peers.
    pub history: usize,
    /// Client serials remembered above each client's contiguous prefix.
    pub done: usize,
}

/// One PBFT replica. See the module docs.
pub struct PbftNode<A: App> {
    config: PbftConfig,
    app: A,
    view: u64,
    /// Waiting for a NEW-VIEW (after sending a VIEW-CHANGE for `view`).
    changing: bool,
    /// Restarted and not yet in a new view: catches up but does not vote.
    passive: bool,
    attempts: u32,
    slots: BTreeMap<u64, Slot<A::Block>>,
    prepared: BTreeMap<u64, Arc<Prepared<A::Block>>>,
    low: u64,
    stable_digest: Digest,
    proof: Arc<Vec<Checkpoint>>,
    checkpoints: BTreeMap<u64, BTreeMap<NodeId, Checkpoint>>,
    last_exec: u64,
    next_seq: u64,
    history: VecDeque<Arc<Executed<A::Block>>>,
    changes: BTreeMap<NodeId, Arc<ViewChange<A::Block>>>,
    /// As the primary of the view: its NEW-VIEW, and who asked for the view after it.
    new_view: Option<Arc<NewView<A::Block>>>,
    asked: HashSet<NodeId>,
    /// Waiting for a new view, it asked for it a second time.
    asked_again: bool,
    pending: VecDeque<Request>,
    queued: HashSet<Request>,
    proposed: Option<(u64, Vec<Request>)>,
    waiting: VecDeque<(Micros, Request)>,
    done: HashMap<u32, Done>,
    last_progress: Micros,
    fetching: bool,
    fetch_turn: usize,
}

impl<A: App> fmt::Debug for PbftNode<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PbftNode")
            .field("id", &self.config.id)
            .field("view", &self.view)
            .field("changing", &self.changing)
            .field("low", &self.low)
            .field("last_exec", &self.last_exec)
            .finish_non_exhaustive()
    }
}

type Out<A> = Vec<Output<PbftNode<A>>>;

impl<A: App> PbftNode<A>
where
    A::Block: BlockSize,
{
    /// A replica booted from `disk` (first boot: an empty disk) over `app`, which holds the
    /// state before the run; the executed entries on disk are replayed into it.
    pub fn new(config: PbftConfig, disk: &Durable<A::Block>, mut app: A) -> Self {
        let mut last_exec = config.base;
        let mut history = VecDeque::new();
        let mut done: HashMap<u32, Done> = HashMap::new();
        for e in &disk.executed {
            app.execute(e);
            if e.applied {
                for r in e.block.as_ref().map_or(&[][..], A::requests) {
                    done.entry(r.client).or_default().insert(r.serial);
                }
            }
            last_exec = e.seq;
            history.push_back(Arc::clone(e));
            if history.len() > HISTORY {
                history.pop_front();
            }
        }
        let (low, stable_digest) = disk
            .stable
            .first()
            .map_or((config.base, NULL), |c| (c.seq, c.digest));
        let view = disk.view.unwrap_or(0);
        Self {
            next_seq: last_exec.max(low) + 1,
            passive: disk.view.is_some(),
            app,
            view,
            changing: false,
            attempts: 0,
            slots: BTreeMap::new(),
            prepared: disk.prepared.clone(),
            low,
            stable_digest,
            proof: Arc::clone(&disk.stable),
            checkpoints: BTreeMap::new(),
            last_exec,
            history,
            changes: BTreeMap::new(),
            new_view: None,
            asked: HashSet::new(),
            asked_again: false,
            pending: VecDeque::new(),
            queued: HashSet::new(),
            proposed: None,
            waiting: VecDeque::new(),
            done,
            last_progress: 0,
            fetching: false,
            fetch_turn: 0,
            config,
        }
    }

    /// The replica's state machine.
    #[must_use]
    pub const fn app(&self) -> &A {
        &self.app
    }

    /// Its view.
    #[must_use]
    pub const fn view(&self) -> u64 {
        self.view
    }

    /// Whether it waits for a new view.
    #[must_use]
    pub const fn changing(&self) -> bool {
        self.changing
    }

    /// The last sequence number executed.
    #[must_use]
    pub const fn last_executed(&self) -> u64 {
        self.last_exec
    }

    /// The low watermark (the stable checkpoint).
    #[must_use]
    pub const fn low_watermark(&self) -> u64 {
        self.low
    }

    /// Its parameters.
    #[must_use]
    pub const fn config(&self) -> &PbftConfig {
        &self.config
    }

    /// The sizes of what it holds.
    #[must_use]
    pub fn log_size(&self) -> LogSize {
        LogSize {
            slots: self.slots.len(),
            votes: self
                .slots
                .values()
                .map(|s| s.prepares.len() + s.commits.len())
                .sum(),
            checkpoints: self.checkpoints.values().map(BTreeMap::len).sum(),
            prepared: self.prepared.len(),
            history: self.history.len(),
            done: self.done.values().map(|d| d.above.len()).sum(),
        }
    }

    fn f(&self) -> usize {
        self.config.f()
    }

    fn quorum(&self) -> usize {
        self.config.quorum()
    }

    fn primary(&self, view: u64) -> NodeId {
        self.config.primary(view)
    }

    fn is_primary(&self) -> bool {
        self.primary(self.view) == self.config.id
    }

    fn active(&self) -> bool {
        !self.changing && !self.passive
    }

    fn high(&self) -> u64 {
        self.low + self.config.window
    }

    fn in_window(&self, seq: u64) -> bool {
        seq > self.low && seq <= self.high()
    }

    fn verifies(&self, from: NodeId, bytes: &[u8], sig: &SigBytes) -> bool {
        self.config
            .keys
            .get(from)
            .is_some_and(|k| k.verifies(bytes, sig))
    }

    fn broadcast(&self, body: &Body<A::Block>, out: &mut Out<A>) {
        for to in 0..self.config.n() {
            if to != self.config.id {
                out.push(Output::Send(
                    to,
                    Msg {
                        lane: 0,
                        body: body.clone(),
                    },
                ));
            }
        }
    }

    fn send(to: NodeId, body: Body<A::Block>, out: &mut Out<A>) {
        out.push(Output::Send(to, Msg { lane: 0, body }));
    }

    fn is_done(&self, r: &Request) -> bool {
        self.done
            .get(&r.client)
            .is_some_and(|d| d.contains(r.serial))
    }

    fn timeout(&self) -> Micros {
        self.config
            .view_timeout
            .saturating_mul(1 << self.attempts.min(MAX_DOUBLINGS))
    }

    fn arm_view_timer(&self, now: Micros, out: &mut Out<A>) {
        if !self.passive {
            out.push(Output::Timer(VIEW, now + self.timeout()));
        }
    }

    // ---- normal case ----

    fn propose(&mut self, now: Micros, out: &mut Out<A>) {
        let seq = self.next_seq;
        if !self.active()
            || !self.is_primary()
            || self.proposed.is_some()
            || self.last_exec + 1 != seq
            || !self.in_window(seq)
        {
            return;
        }
        let mut take = Vec::new();
        while take.len() < self.config.max_batch {
            let Some(r) = self.pending.pop_front() else {
                break;
            };
            self.queued.remove(&r);
            if !self.is_done(&r) {
                take.push(r);
            }
        }
        if take.is_empty() && !A::EMPTY_BLOCKS {
            return;
        }
        let Some((block, used)) = self
            .app
            .propose(now, &self.config.key, self.view, seq, &take)
        else {
            self.requeue(take);
            return;
        };
        let rest = take.split_off(used);
        self.requeue(rest);
        let digest = A::digest(&block);
        let mut pre = PrePrepare {
            view: self.view,
            seq,
            digest,
            block: Some(block),
            from: self.config.id,
            sig: SigBytes::from_bytes([0; 64]),
        };
        pre.sig = self.config.key.sign(&pre.bytes());
        let pre = Arc::new(pre);
        self.next_seq = seq + 1;
        self.proposed = Some((seq, take));
        out.push(Output::Note(Note::Proposed { seq }));
        self.broadcast(&Body::PrePrepare(Arc::clone(&pre)), out);
        self.slots.entry(seq).or_default().pre = Some(pre);
        self.check_prepared(now, seq, out);
    }

    fn requeue(&mut self, requests: Vec<Request>) {
        for r in requests.into_iter().rev() {
            if self.queued.insert(r) {
                self.pending.push_front(r);
            }
        }
    }

    fn valid_pre(&self, p: &PrePrepare<A::Block>) -> bool {
        p.from == self.primary(p.view)
            && match &p.block {
                Some(b) => A::digest(b) == p.digest && p.digest != NULL && A::well_formed(b),
                None => p.digest == NULL,
            }
            && self.verifies(p.from, &p.bytes(), &p.sig)
    }

    fn on_pre_prepare(&mut self, now: Micros, pre: Arc<PrePrepare<A::Block>>, out: &mut Out<A>) {
        if !self.active()
            || pre.view != self.view
            || self.is_primary()
            || !self.in_window(pre.seq)
            || !self.valid_pre(&pre)
        {
            return;
        }
        let slot = self.slots.entry(pre.seq).or_default();
        if let Some(have) = &slot.pre
            && have.view == pre.view
        {
            return;
        }
        slot.pre = Some(Arc::clone(&pre));
        self.vote(Phase::Prepare, pre.seq, pre.digest, out);
        self.check_prepared(now, pre.seq, out);
    }

    fn vote(&mut self, phase: Phase, seq: u64, digest: Digest, out: &mut Out<A>) {
        let mut v = Vote {
            view: self.view,
            seq,
            digest,
            from: self.config.id,
            sig: SigBytes::from_bytes([0; 64]),
        };
        v.sig = self.config.key.sign(&v.bytes(phase));
        let slot = self.slots.entry(seq).or_default();
        match phase {
            Phase::Prepare => {
                slot.prepares.insert(self.config.id, v);
                self.broadcast(&Body::Prepare(v), out);
            }
            Phase::Commit => {
                slot.commits.insert(self.config.id, v);
                self.broadcast(&Body::Commit(v), out);
            }
        }
    }

    fn on_vote(&mut self, now: Micros, phase: Phase, v: Vote, out: &mut Out<A>) {
        if self.passive
            || v.from == self.config.id
            || v.view < self.view
            || !self.in_window(v.seq)
            || (phase == Phase::Prepare && v.from == self.primary(v.view))
            || !self.verifies(v.from, &v.bytes(phase), &v.sig)
        {
            return;
        }
        let slot = self.slots.entry(v.seq).or_default();
        let votes = match phase {
            Phase::Prepare => &mut slot.prepares,
            Phase::Commit => &mut slot.commits,
        };
        if votes.get(&v.from).is_some_and(|old| old.view >= v.view) {
            return;
        }
        votes.insert(v.from, v);
        match phase {
            Phase::Prepare => self.check_prepared(now, v.seq, out),
            Phase::Commit => self.check_committed(now, v.seq, out),
        }
    }

    fn check_prepared(&mut self, now: Micros, seq: u64, out: &mut Out<A>) {
        let view = self.view;
        let need = self.quorum() - 1;
        let primary = self.primary(view);
        let active = self.active();
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        let Some(pre) = slot.pre.clone() else {
            return;
        };
        if slot.prepared || pre.view != view || !active {
            return;
        }
        let matching: Vec<Vote> = slot
            .prepares
            .values()
            .filter(|v| v.view == view && v.digest == pre.digest && v.from != primary)
            .copied()
            .collect();
        if matching.len() < need {
            return;
        }
        slot.prepared = true;
        let cert = Arc::new(Prepared {
            pre: Arc::clone(&pre),
            prepares: matching[..need].to_vec(),
        });
        self.prepared.insert(seq, Arc::clone(&cert));
        out.push(Output::Persist(Persist::Prepared(cert)));
        self.vote(Phase::Commit, seq, pre.digest, out);
        self.check_committed(now, seq, out);
    }

    fn commit_quorum(&self) -> usize {
        #[cfg(test)]
        if self.config.bug == Some(Bug::CommitWith2f) {
            return self.quorum() - 1;
        }
        self.quorum()
    }

    fn check_committed(&mut self, now: Micros, seq: u64, out: &mut Out<A>) {
        let view = self.view;
        let need = self.commit_quorum();
        let keys = Arc::clone(&self.config.keys);
        let Some(slot) = self.slots.get_mut(&seq) else {
            return;
        };
        if !slot.prepared || slot.decided.is_some() {
            return;
        }
        let Some(pre) = slot.pre.clone() else {
            return;
        };
        let signatures: Vec<QuorumSignature> = slot
            .commits
            .values()
            .filter(|v| v.view == view && v.digest == pre.digest)
            .map(|v| QuorumSignature {
                signer: keys[v.from],
                signature: v.sig,
            })
            .collect();
        if signatures.len() < need {
            return;
        }
        slot.decided = Some((
            pre.block.clone(),
            QuorumCertificate {
                view: Some(view),
                sequence: Some(seq),
                signatures,
            },
        ));
        self.try_execute(now, out);
    }

    fn try_execute(&mut self, now: Micros, out: &mut Out<A>) {
        loop {
            let seq = self.last_exec + 1;
            let Some((block, cert)) = self.slots.get_mut(&seq).and_then(|s| s.decided.take())
            else {
                return;
            };
            self.execute(now, seq, block, cert, out);
        }
    }

    fn execute(
        &mut self,
        now: Micros,
        seq: u64,
        block: Option<A::Block>,
        cert: QuorumCertificate,
        out: &mut Out<A>,
    ) {
        let mut entry = Executed {
            seq,
            block,
            cert,
            applied: true,
            state: NULL,
        };
        entry.applied = self.app.execute(&entry);
        entry.state = self.app.state_digest();
        let entry = Arc::new(entry);
        self.last_exec = seq;
        self.attempts = 0;
        out.push(Output::Persist(Persist::Executed(Arc::clone(&entry))));
        out.push(Output::Commit(Arc::clone(&entry)));
        if let Some(b) = &entry.block {
            if entry.applied {
                for r in A::requests(b) {
                    self.done.entry(r.client).or_default().insert(r.serial);
                    out.push(Output::Reply(*r));
                }
            } else {
                out.push(Output::Note(Note::Skipped { seq }));
            }
        }
        if let Some((s, reqs)) = self.proposed.take() {
            if s == seq && !entry.applied {
                self.requeue(reqs);
            } else if s != seq {
                self.proposed = Some((s, reqs));
            }
        }
        self.history.push_back(entry);
        if self.history.len() > HISTORY {
            self.history.pop_front();
        }
        self.next_seq = self.next_seq.max(seq + 1);
        if seq.is_multiple_of(self.config.checkpoint_interval) {
            let mut c = Checkpoint {
                seq,
                digest: self.app.state_digest(),
                from: self.config.id,
                sig: SigBytes::from_bytes([0; 64]),
            };
            c.sig = self.config.key.sign(&c.bytes());
            self.broadcast(&Body::Checkpoint(c), out);
            self.on_checkpoint_checked(now, c, out);
        }
    }

    // ---- checkpoints and state transfer ----

    fn on_checkpoint(&mut self, now: Micros, c: Checkpoint, out: &mut Out<A>) {
        if c.from == self.config.id
            || c.seq <= self.low
            || !c.seq.is_multiple_of(self.config.checkpoint_interval)
            || !self.verifies(c.from, &c.bytes(), &c.sig)
        {
            return;
        }
        self.on_checkpoint_checked(now, c, out);
    }

    fn on_checkpoint_checked(&mut self, now: Micros, c: Checkpoint, out: &mut Out<A>) {
        // Each sender's newest few checkpoints are kept: enough for a window and the next.
        let keep = (2 * self.config.window / self.config.checkpoint_interval + 2) as usize;
        let mine: Vec<u64> = self
            .checkpoints
            .iter()
            .filter(|(_, m)| m.contains_key(&c.from))
            .map(|(s, _)| *s)
            .collect();
        if mine.len() >= keep {
            if mine[0] > c.seq {
                return;
            }
            if let Some(m) = self.checkpoints.get_mut(&mine[0]) {
                m.remove(&c.from);
            }
        }
        self.checkpoints.entry(c.seq).or_default().insert(c.from, c);
        let matching: Vec<Checkpoint> = self.checkpoints[&c.seq]
            .values()
            .filter(|x| x.digest == c.digest)
            .copied()
            .collect();
        if matching.len() >= self.quorum() {
            self.make_stable(now, Arc::new(matching), out);
        } else if matching.len() > self.f() && c.seq > self.last_exec {
            // At least one correct replica executed this far: catch up from it.
            self.fetch(now, c.from, out);
        }
    }

    fn make_stable(&mut self, now: Micros, proof: Arc<Vec<Checkpoint>>, out: &mut Out<A>) {
        let seq = proof[0].seq;
        if seq <= self.low {
            return;
        }
        self.low = seq;
        self.stable_digest = proof[0].digest;
        self.proof = Arc::clone(&proof);
        out.push(Output::Persist(Persist::Stable(Arc::clone(&proof))));
        out.push(Output::Note(Note::Stable { seq }));
        self.slots = self.slots.split_off(&(seq + 1));
        self.prepared = self.prepared.split_off(&(seq + 1));
        self.checkpoints = self.checkpoints.split_off(&(seq + 1));
        self.next_seq = self.next_seq.max(seq + 1);
        if self.last_exec < seq {
            let from = proof
                .iter()
                .map(|c| c.from)
                .find(|f| *f != self.config.id)
                .unwrap_or(0);
            self.fetch(now, from, out);
        }
    }

    fn fetch(&mut self, now: Micros, from: NodeId, out: &mut Out<A>) {
        if self.fetching || from == self.config.id {
            return;
        }
        self.fetching = true;
        Self::send(from, Body::Fetch(self.last_exec), out);
        out.push(Output::Timer(FETCH, now + self.config.view_timeout / 2));
    }

    /// The fetch timer: the peer did not answer; ask the next signer of the stable
    /// checkpoint while still behind it.
    fn on_fetch_timer(&mut self, now: Micros, out: &mut Out<A>) {
        self.fetching = false;
        if self.last_exec < self.low && !self.proof.is_empty() {
            self.fetch_turn = self.fetch_turn.wrapping_add(1);
            let from = self.proof[self.fetch_turn % self.proof.len()].from;
            self.fetch(now, from, out);
        }
    }

    fn on_fetch(&self, from: NodeId, after: u64, out: &mut Out<A>) {
        let entries: Vec<Arc<Executed<A::Block>>> = self
            .history
            .iter()
            .filter(|e| e.seq > after)
            .take(MAX_TRANSFER)
            .cloned()
            .collect();
        if !entries.is_empty() {
            Self::send(from, Body::State(Arc::new(entries)), out);
        }
    }

    /// Whether `cert` proves that `seq` committed with `digest`: `2f + 1` distinct replicas'
    /// COMMIT signatures over (view, seq, digest).
    fn proves(&self, cert: &QuorumCertificate, seq: u64, digest: Digest) -> bool {
        let (Some(view), Some(s)) = (cert.view, cert.sequence) else {
            return false;
        };
        let bytes = commit_bytes(view, seq, digest);
        let mut seen = Vec::new();
        for s in &cert.signatures {
            let Some(i) = self.config.keys.iter().position(|k| *k == s.signer) else {
                return false;
            };
            if seen.contains(&i) || !s.signer.verifies(&bytes, &s.signature) {
                return false;
            }
            seen.push(i);
        }
        s == seq && seen.len() >= self.quorum()
    }

    fn on_state(
        &mut self,
        now: Micros,
        from: NodeId,
        entries: &[Arc<Executed<A::Block>>],
        out: &mut Out<A>,
    ) {
        self.fetching = false;
        let before = self.last_exec;
        for e in entries {
            if e.seq != self.last_exec + 1 {
                continue;
            }
            let digest = e.block.as_ref().map_or(NULL, A::digest);
            if e.block.as_ref().is_some_and(|b| !A::well_formed(b))
                || !self.proves(&e.cert, e.seq, digest)
            {
                return;
            }
            self.execute(now, e.seq, e.block.clone(), e.cert.clone(), out);
        }
        if self.last_exec > before {
            self.last_progress = now;
            self.try_execute(now, out);
            if entries.len() == MAX_TRANSFER {
                self.fetch(now, from, out);
            }
        }
    }

    // ---- view change ----

    fn start_view_change(&mut self, now: Micros, view: u64, out: &mut Out<A>) {
        if view <= self.view {
            return;
        }
        self.view = view;
        self.changing = true;
        self.asked_again = false;
        self.passive = false;
        if let Some((_, reqs)) = self.proposed.take() {
            self.requeue(reqs);
        }
        if !self.is_primary() {
            // Requests queued as primary are the new primary's now (clients resend them to
            // every replica).
            self.pending.clear();
            self.queued.clear();
        }
        for slot in self.slots.values_mut() {
            slot.pre = None;
            slot.prepared = false;
        }
        let mut c = ViewChange {
            view,
            stable: self.low,
            stable_digest: self.stable_digest,
            proof: Arc::clone(&self.proof),
            prepared: self
                .prepared
                .range(self.low + 1..)
                .map(|(_, p)| Arc::clone(p))
                .collect(),
            from: self.config.id,
            sig: SigBytes::from_bytes([0; 64]),
        };
        c.sig = self.config.key.sign(&c.bytes());
        let c = Arc::new(c);
        out.push(Output::Persist(Persist::View(view)));
        out.push(Output::Note(Note::ViewChange { view }));
        self.broadcast(&Body::ViewChange(Arc::clone(&c)), out);
        self.changes.insert(self.config.id, c);
        self.arm_view_timer(now, out);
        self.attempts = self.attempts.saturating_add(1);
        self.try_new_view(now, out);
    }

    fn valid_prepared(&self, p: &Prepared<A::Block>, below: u64) -> bool {
        let pre = &p.pre;
        let primary = self.primary(pre.view);
        let mut seen = Vec::new();
        pre.view < below
            && self.valid_pre(pre)
            && p.prepares.len() + 1 >= self.quorum()
            && p.prepares.iter().all(|v| {
                let fresh = !seen.contains(&v.from);
                seen.push(v.from);
                fresh
                    && v.from != primary
                    && v.view == pre.view
                    && v.seq == pre.seq
                    && v.digest == pre.digest
                    && self.verifies(v.from, &v.bytes(Phase::Prepare), &v.sig)
            })
    }

    fn valid_proof(&self, stable: u64, digest: Digest, proof: &[Checkpoint]) -> bool {
        if stable == self.config.base && proof.is_empty() {
            return true;
        }
        let mut seen = Vec::new();
        proof.len() >= self.quorum()
            && proof.iter().all(|c| {
                let fresh = !seen.contains(&c.from);
                seen.push(c.from);
                fresh
                    && c.seq == stable
                    && c.digest == digest
                    && self.verifies(c.from, &c.bytes(), &c.sig)
            })
    }

    fn valid_view_change(&self, c: &ViewChange<A::Block>) -> bool {
        let mut seqs = Vec::new();
        self.verifies(c.from, &c.bytes(), &c.sig)
            && self.valid_proof(c.stable, c.stable_digest, &c.proof)
            && c.prepared.iter().all(|p| {
                let fresh = !seqs.contains(&p.pre.seq);
                seqs.push(p.pre.seq);
                fresh
                    && p.pre.seq > c.stable
                    && p.pre.seq <= c.stable + self.config.window
                    && self.valid_prepared(p, c.view)
            })
    }

    fn on_view_change(&mut self, now: Micros, c: Arc<ViewChange<A::Block>>, out: &mut Out<A>) {
        if c.from == self.config.id || c.from >= self.config.n() {
            return;
        }
        if c.view < self.view || (c.view == self.view && !self.changing) {
            // A replica asking again for the view this one leads lost the NEW-VIEW: resend it
            // (to a sender the signature proves).
            if let Some(nv) = &self.new_view
                && nv.view == c.view
                && c.view == self.view
                && self.verifies(c.from, &c.bytes(), &c.sig)
                && (nv.changes.iter().any(|x| x.from == c.from) || !self.asked.insert(c.from))
            {
                Self::send(c.from, Body::NewView(Arc::clone(nv)), out);
            }
            return;
        }
        if self
            .changes
            .get(&c.from)
            .is_some_and(|old| old.view >= c.view)
            || !self.valid_view_change(&c)
        {
            return;
        }
        self.changes.insert(c.from, c);
        // f + 1 replicas ask for higher views: join the smallest of them.
        let mut higher: Vec<u64> = self
            .changes
            .values()
            .filter(|x| x.view > self.view)
            .map(|x| x.view)
            .collect();
        if higher.len() > self.f() {
            higher.sort_unstable();
            self.start_view_change(now, higher[0], out);
            return;
        }
        self.try_new_view(now, out);
    }

    /// The O set implied by `changes`: for each sequence number after the newest stable
    /// checkpoint up to the highest prepared one, the block prepared in the highest view, or
    /// a no-op.
    pub(crate) fn compute_o(changes: &[Arc<ViewChange<A::Block>>]) -> Vec<OEntry<A::Block>> {
        let min_s = changes.iter().map(|c| c.stable).max().unwrap_or(0);
        let mut best: BTreeMap<u64, &PrePrepare<A::Block>> = BTreeMap::new();
        for c in changes {
            for p in &c.prepared {
                if p.pre.seq <= min_s {
                    continue;
                }
                let e = best.entry(p.pre.seq).or_insert(&p.pre);
                if p.pre.view > e.view {
                    *e = &p.pre;
                }
            }
        }
        let max_s = best.keys().next_back().copied().unwrap_or(min_s);
        (min_s + 1..=max_s)
            .map(|s| match best.get(&s) {
                Some(p) => (s, p.digest, p.block.clone()),
                None => (s, NULL, None),
            })
            .collect()
    }

    fn try_new_view(&mut self, now: Micros, out: &mut Out<A>) {
        if !self.changing || !self.is_primary() {
            return;
        }
        let mut changes: Vec<Arc<ViewChange<A::Block>>> = self
            .changes
            .values()
            .filter(|c| c.view == self.view)
            .cloned()
            .collect();
        if changes.len() < self.quorum() {
            return;
        }
        changes.truncate(self.quorum());
        let o = Self::compute_o(&changes);
        let pres = o
            .into_iter()
            .map(|(seq, digest, block)| {
                let mut p = PrePrepare {
                    view: self.view,
                    seq,
                    digest,
                    block,
                    from: self.config.id,
                    sig: SigBytes::from_bytes([0; 64]),
                };
                p.sig = self.config.key.sign(&p.bytes());
                Arc::new(p)
            })
            .collect();
        let mut nv = NewView {
            view: self.view,
            changes,
            pres,
            from: self.config.id,
            sig: SigBytes::from_bytes([0; 64]),
        };
        nv.sig = self.config.key.sign(&nv.bytes());
        let nv = Arc::new(nv);
        self.broadcast(&Body::NewView(Arc::clone(&nv)), out);
        self.install(now, &nv, out);
    }

    fn valid_new_view(&self, nv: &NewView<A::Block>) -> bool {
        if nv.from != self.primary(nv.view)
            || nv.changes.len() < self.quorum()
            || !self.verifies(nv.from, &nv.bytes(), &nv.sig)
        {
            return false;
        }
        let mut senders = Vec::new();
        for c in &nv.changes {
            if c.view != nv.view || senders.contains(&c.from) || !self.valid_view_change(c) {
                return false;
            }
            senders.push(c.from);
        }
        let o = Self::compute_o(&nv.changes);
        o.len() == nv.pres.len()
            && o.iter().zip(&nv.pres).all(|((seq, digest, _), p)| {
                p.seq == *seq && p.digest == *digest && p.view == nv.view && self.valid_pre(p)
            })
    }

    fn on_new_view(&mut self, now: Micros, nv: Arc<NewView<A::Block>>, out: &mut Out<A>) {
        if nv.view < self.view
            || (nv.view == self.view && !self.changing)
            || !self.valid_new_view(&nv)
        {
            return;
        }
        self.install(now, &nv, out);
    }

    fn install(&mut self, now: Micros, nv: &Arc<NewView<A::Block>>, out: &mut Out<A>) {
        if nv.view != self.view {
            out.push(Output::Persist(Persist::View(nv.view)));
        }
        self.view = nv.view;
        self.changing = false;
        self.passive = false;
        self.changes.retain(|_, c| c.view > nv.view);
        self.new_view = self.is_primary().then(|| Arc::clone(nv));
        self.asked.clear();
        out.push(Output::Note(Note::View { view: nv.view }));
        if let Some(newest) = nv.changes.iter().max_by_key(|c| c.stable)
            && newest.stable > self.low
        {
            self.make_stable(now, Arc::clone(&newest.proof), out);
        }
        for slot in self.slots.values_mut() {
            slot.pre = None;
            slot.prepared = false;
        }
        let mut max_s = self.low;
        for p in &nv.pres {
            max_s = max_s.max(p.seq);
            if !self.in_window(p.seq) {
                continue;
            }
            self.slots.entry(p.seq).or_default().pre = Some(Arc::clone(p));
            if !self.is_primary() {
                self.vote(Phase::Prepare, p.seq, p.digest, out);
            }
        }
        let seqs: Vec<u64> = self.slots.keys().copied().collect();
        for s in seqs {
            self.check_prepared(now, s, out);
        }
        self.next_seq = max_s.max(self.last_exec) + 1;
        self.last_progress = now;
        self.arm_view_timer(now, out);
        if self.is_primary() {
            // The requests it relayed to the old primary are now its own to order.
            let waiting: Vec<Request> = self.waiting.drain(..).map(|(_, r)| r).collect();
            for r in waiting {
                if !self.is_done(&r) && self.queued.insert(r) {
                    self.pending.push_back(r);
                }
            }
            out.push(Output::Timer(CUT, now + self.config.block_interval));
        }
    }

    fn on_view_timer(&mut self, now: Micros, out: &mut Out<A>) {
        if self.passive {
            return;
        }
        while let Some((_, r)) = self.waiting.front() {
            if self.is_done(r) {
                self.waiting.pop_front();
            } else {
                break;
            }
        }
        let stalled = A::EMPTY_BLOCKS && now.saturating_sub(self.last_progress) >= self.timeout();
        let starved = self
            .waiting
            .front()
            .is_some_and(|(at, _)| now.saturating_sub(*at) >= self.timeout());
        if self.changing {
            // Replicas asking for this view or a later one have all given up the old one.
            let asking = self
                .changes
                .values()
                .filter(|c| c.view >= self.view)
                .count();
            if asking >= self.quorum() && self.asked_again {
                // The new primary had its quorum, was asked twice, and did not deliver: try
                // the next view.
                self.start_view_change(now, self.view + 1, out);
            } else {
                // Too few asked for this view yet, or a view-change or the NEW-VIEW was lost:
                // ask again (the new primary resends its NEW-VIEW to whoever asks twice)
                // rather than run ahead of the others alone, and wait longer.
                self.asked_again = true;
                if let Some(c) = self.changes.get(&self.config.id) {
                    self.broadcast(&Body::ViewChange(Arc::clone(c)), out);
                }
                self.attempts = self.attempts.saturating_add(1);
                self.arm_view_timer(now, out);
            }
        } else if stalled || starved {
            self.start_view_change(now, self.view + 1, out);
        } else {
            // Look again when the chain could stall or the oldest request starve; with no
            // progress for a timeout already (blocks only on demand) and nothing waiting, no
            // sooner than a timeout from now.
            let timeout = self.timeout();
            let mut next = self.last_progress + timeout;
            if next <= now {
                next = self
                    .waiting
                    .front()
                    .map_or(now + timeout, |(at, _)| at + timeout);
            }
            out.push(Output::Timer(VIEW, next.max(now + 1)));
        }
    }
}

impl<A: App> Engine for PbftNode<A>
where
    A::Block: BlockSize,
{
    type Msg = Msg<A::Block>;
    type Persist = Persist<A::Block>;
    type Disk = Durable<A::Block>;
    type Commit = Arc<Executed<A::Block>>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.last_progress = now;
        if self.passive {
            return;
        }
        out.push(Output::Persist(Persist::View(self.view)));
        out.push(Output::Note(Note::View { view: self.view }));
        self.arm_view_timer(now, out);
        if self.is_primary() {
            out.push(Output::Timer(CUT, now + self.config.block_interval));
        }
    }

    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    ) {
        if from >= self.config.n() || from == self.config.id {
            return;
        }
        let executed = self.last_exec;
        match msg.body {
            Body::Request(r) => self.on_client(now, r, out),
            Body::PrePrepare(p) => self.on_pre_prepare(now, p, out),
            Body::Prepare(v) => self.on_vote(now, Phase::Prepare, v, out),
            Body::Commit(v) => self.on_vote(now, Phase::Commit, v, out),
            Body::Checkpoint(c) => self.on_checkpoint(now, c, out),
            Body::ViewChange(c) => self.on_view_change(now, c, out),
            Body::NewView(nv) => self.on_new_view(now, nv, out),
            Body::Fetch(after) => self.on_fetch(from, after, out),
            Body::State(entries) => self.on_state(now, from, &entries, out),
        }
        if self.last_exec > executed {
            self.last_progress = now;
        }
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        match id {
            VIEW => self.on_view_timer(now, out),
            CUT => {
                if self.is_primary() && !self.changing && !self.passive {
                    self.propose(now, out);
                    out.push(Output::Timer(CUT, now + self.config.block_interval));
                }
            }
            _ => self.on_fetch_timer(now, out),
        }
    }

    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>) {
        if self.is_done(&request) {
            out.push(Output::Reply(request));
            return;
        }
        if self.queued.len() >= MAX_WAITING || self.waiting.len() >= MAX_WAITING {
            return;
        }
        if self.is_primary() {
            if self.queued.insert(request) {
                self.pending.push_back(request);
            }
        } else if self.waiting.iter().all(|(_, r)| *r != request) {
            self.waiting.push_back((now, request));
            Self::send(self.primary(self.view), Body::Request(request), out);
        }
    }

    fn is_leader(&self) -> bool {
        self.is_primary() && self.active()
    }

    fn persist(disk: &mut Self::Disk, write: &Self::Persist) {
        match write {
            Persist::View(v) => disk.view = Some(*v),
            Persist::Prepared(p) => {
                disk.prepared.insert(p.pre.seq, Arc::clone(p));
            }
            Persist::Stable(proof) => {
                let seq = proof[0].seq;
                disk.prepared = disk.prepared.split_off(&(seq + 1));
                disk.stable = Arc::clone(proof);
            }
            Persist::Executed(e) => disk.executed.push(Arc::clone(e)),
        }
    }
}

/// The bytes a pre-prepare's signature covers.
pub(crate) fn pre_prepare_bytes<B>(p: &PrePrepare<B>) -> Vec<u8> {
    p.bytes()
}

/// The bytes a prepare's (`commit` false) or commit's signature covers.
pub(crate) fn vote_bytes(v: &Vote, commit: bool) -> Vec<u8> {
    v.bytes(if commit {
        Phase::Commit
    } else {
        Phase::Prepare
    })
}

/// The bytes a view-change's signature covers.
#[cfg(test)]
pub(crate) fn view_change_bytes<B>(c: &ViewChange<B>) -> Vec<u8> {
    c.bytes()
}

/// The bytes a new-view's signature covers.
#[cfg(test)]
pub(crate) fn new_view_bytes<B>(nv: &NewView<B>) -> Vec<u8> {
    nv.bytes()
}
