//! The Multi-Paxos engine (Lamport, "Paxos Made Simple", 2001), sans-I/O: one node's state,
//! stepped by inputs and answering with [`Output`]s. Every node is a proposer, an acceptor
//! and a learner.
//!
//! - **Ballots** are (round, proposer id), ordered lexicographically, so two proposers never
//!   share one.
//! - **Single-decree Paxos per slot.** Phase 1: a proposer sends `Prepare(b)` (1a); an
//!   acceptor whose promise is not above `b` promises `b` and answers `Promise` (1b) with its
//!   last vote `(maxVBal, maxVal)` for each slot. Phase 2: with promises from a majority the
//!   proposer sends `Accept(b, v)` (2a), where `v` is the value of the highest-ballot vote
//!   the promises reported — the value-choice rule — and is free only where none reported
//!   one. An acceptor whose promise is not above `b` votes and answers `Accepted` (2b),
//!   signed. A value is chosen when a majority voted for it in one ballot; the leader, as
//!   the distinguished learner, counts the 2b messages and tells the other learners with
//!   the majority's signatures.
//! - **Persistence.** An acceptor writes its promise and its votes before it answers (the
//!   driver holds a step's messages until its writes complete); a proposer writes its own
//!   promise before its `Prepare` leaves, so a restarted node never reuses a ballot.
//! - **Multi-Paxos.** One slot per block. A leader runs phase 1 once for every slot from its
//!   first unknown one on; then each new value costs only 2a/2b. A new leader re-proposes
//!   every vote the promises reported and fills the gaps among them with no-ops, then
//!   proposes new values. The leader proposes one slot at a time (a slot is proposed once the
//!   previous one executed), so each block builds on a chosen parent.
//! - **Election.** Each node starts as a proposer. A proposer that meets a higher ballot (a
//!   `Nack`, or a competitor's `Prepare`) is preempted: with back-off (the default) it
//!   follows and waits a random, growing time before trying again; without back-off it
//!   retries at once with a higher round — the duel in which no value is ever chosen. A
//!   leader sends heartbeats; a follower that hears none within its randomized timeout
//!   campaigns.
//! - **Execution** in slot order; the leader answers clients; followers forward requests to
//!   the leader they know. A learner that sees it is behind (a heartbeat names a later
//!   chosen slot) asks the leader for the chosen values it misses.
//!
//! What the slots carry is the [`App`]'s: the chain's blocks, or plain batches in tests.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use crate::primitives::hash::BlockHash;
use crate::primitives::seal::QuorumSignature;
use crate::primitives::tx::{KeyPair, PubKey};
use crate::sim::{Engine, Message, Micros, NodeId, Output, Request, SimRng};

/// Timer ids.
const ELECTION: u8 = 0;
const HEARTBEAT: u8 = 1;
const CUT: u8 = 2;

/// At most this many client requests wait at a node (more are refused; clients retry).
const MAX_WAITING: usize = 10_000;
/// At most this many chosen values in one catch-up answer.
const MAX_CATCH_UP: u64 = 64;
/// The back-off window doubles at most this many times.
const MAX_DOUBLINGS: u32 = 5;

/// A value's digest: a block's hash, or [`NOOP`] for a no-op.
pub type Digest = BlockHash;
/// The digest of a no-op.
pub const NOOP: Digest = BlockHash::from_byte_array([0; 32]);

/// A ballot: (round, proposer), compared round first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round.
    pub round: u64,
    /// The proposer's node id.
    pub node: u32,
}

impl Ballot {
    /// The ballot below every proposer's (round 0 is never used).
    pub const ZERO: Self = Self { round: 0, node: 0 };

    /// The ballot as one number, order preserved: `round · 2^16 + node` (members stay below
    /// 2^16, rounds below 2^47).
    #[must_use]
    pub const fn pack(self) -> u64 {
        (self.round << 16) | self.node as u64
    }

    /// The ballot [`Ballot::pack`] made.
    #[must_use]
    pub const fn unpack(v: u64) -> Self {
        Self {
            round: v >> 16,
            node: (v & 0xffff) as u32,
        }
    }
}

impl fmt::Display for Ballot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.round, self.node)
    }
}

/// The domain tag of every 2b signature.
pub const ACCEPTED_TAG: &[u8; 25] = b"chainsmith/paxos/accepted";
/// The length of [`accepted_bytes`].
pub const ACCEPTED_BYTES: usize = ACCEPTED_TAG.len() + 8 + 8 + 32;

/// What an acceptor signs in its 2b for the value with digest `digest` in `slot` at
/// `ballot`, and what a block certificate's signatures cover: [`ACCEPTED_TAG`] ‖ packed
/// ballot (little-endian u64) ‖ slot (little-endian u64) ‖ digest.
#[must_use]
pub fn accepted_bytes(ballot: Ballot, slot: u64, digest: Digest) -> [u8; ACCEPTED_BYTES] {
    let mut out = [0; ACCEPTED_BYTES];
    let (tag, rest) = out.split_at_mut(ACCEPTED_TAG.len());
    tag.copy_from_slice(ACCEPTED_TAG);
    rest[..8].copy_from_slice(&ballot.pack().to_le_bytes());
    rest[8..16].copy_from_slice(&slot.to_le_bytes());
    rest[16..].copy_from_slice(digest.as_bytes());
    out
}

/// What a slot holds and how it is executed: the state machine.
pub trait App {
    /// A value (a block).
    type Value: Clone + fmt::Debug + PartialEq + ValueSize;
    /// The leader's next value, built on everything executed, from the first of `requests`
    /// it can order; with how many it took. `None`: nothing to propose now.
    fn cut(
        &mut self,
        now: Micros,
        key: &KeyPair,
        ballot: Ballot,
        slot: u64,
        requests: &[Request],
    ) -> Option<(Self::Value, usize)>;
    /// Its digest (never [`NOOP`]).
    fn digest(value: &Self::Value) -> Digest;
    /// The client requests it orders.
    fn requests(value: &Self::Value) -> &[Request];
    /// Executes a chosen slot (a no-op when its value is `None`).
    fn execute(&mut self, chosen: &Chosen<Self::Value>);
}

/// A node's parameters.
#[derive(Debug, Clone)]
pub struct PaxosConfig {
    /// This node.
    pub id: NodeId,
    /// Every member's key, in member order.
    pub keys: Arc<Vec<PubKey>>,
    /// This node's key pair (it signs its 2b messages).
    pub key: KeyPair,
    /// A follower that hears no leader for a time drawn in `[min, max]` campaigns.
    pub election: (Micros, Micros),
    /// The leader's heartbeat interval.
    pub heartbeat: Micros,
    /// The leader cuts a block this often …
    pub cut_interval: Micros,
    /// … or as soon as this many requests wait.
    pub max_batch: usize,
    /// Randomized, growing back-off after a preemption (off: retry at once — the duel).
    pub backoff: bool,
    /// The first back-off window; it doubles with each preemption in a row.
    pub backoff_base: Micros,
    /// The last slot executed before the run (a chain continued from a file).
    pub base: u64,
    /// Planted bugs the safety observer must catch (tests only).
    #[cfg(test)]
    pub bug: Option<Bug>,
}

/// Bugs planted in test-only variants of the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// A new leader ignores the votes its promises report and proposes its own value.
    IgnoreVotes,
}

/// An acceptor's last vote in a slot: `(maxVBal, maxVal)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vote<V> {
    /// The ballot it voted in.
    pub ballot: Ballot,
    /// The value (`None`: a no-op).
    pub value: Option<V>,
}

/// A chosen slot, with the signatures of the majority that chose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chosen<V> {
    /// The slot.
    pub slot: u64,
    /// The ballot in which a majority voted for it.
    pub ballot: Ballot,
    /// The value (`None`: a no-op).
    pub value: Option<V>,
    /// The voters' 2b signatures over [`accepted_bytes`]`(ballot, slot, digest)`.
    pub signatures: Vec<QuorumSignature>,
}

/// What a node keeps on disk.
#[derive(Debug, Clone)]
pub struct Durable<V> {
    /// The highest ballot promised (the acceptor's `maxBal`).
    pub promised: Ballot,
    /// The last vote in each slot.
    pub votes: BTreeMap<u64, Vote<V>>,
    /// The slots known chosen.
    pub chosen: BTreeMap<u64, Arc<Chosen<V>>>,
}

impl<V> Default for Durable<V> {
    fn default() -> Self {
        Self {
            promised: Ballot::ZERO,
            votes: BTreeMap::new(),
            chosen: BTreeMap::new(),
        }
    }
}

/// One write to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Persist<V> {
    /// A promise.
    Promise(Ballot),
    /// A vote in a slot (a vote implies the promise of its ballot).
    Vote(u64, Vote<V>),
    /// A chosen slot.
    Chosen(Arc<Chosen<V>>),
}

/// How a `Chosen` message carries the value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Carried<V> {
    /// The value itself (`None`: a no-op), for a learner that may not hold it.
    Value(Option<V>),
    /// Only its digest: the learner voted for it in the chosen ballot.
    Voted(Digest),
}

/// Paxos's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg<V> {
    /// 1a: prepare ballot `ballot` for every slot from `from` on.
    Prepare {
        /// The ballot.
        ballot: Ballot,
        /// The proposer's first slot not known chosen.
        from: u64,
    },
    /// 1b: the promise not to vote below `ballot`, with the last vote in each slot from
    /// `from` on.
    Promise {
        /// The ballot promised.
        ballot: Ballot,
        /// The votes: (slot, `(maxVBal, maxVal)`).
        votes: Vec<(u64, Vote<V>)>,
    },
    /// 2a: vote for `value` in `slot` at `ballot`.
    Accept {
        /// The ballot.
        ballot: Ballot,
        /// The slot.
        slot: u64,
        /// The value (`None`: a no-op).
        value: Option<V>,
    },
    /// 2b: the acceptor voted, with its signature.
    Accepted {
        /// The ballot.
        ballot: Ballot,
        /// The slot.
        slot: u64,
        /// The value's digest.
        digest: Digest,
        /// The signature over [`accepted_bytes`].
        signature: QuorumSignature,
    },
    /// The acceptor refused `ballot`: it promised `promised`.
    Nack {
        /// The refused ballot.
        ballot: Ballot,
        /// The acceptor's promise.
        promised: Ballot,
    },
    /// A chosen slot, for the learners.
    Chosen {
        /// The slot.
        slot: u64,
        /// The ballot a majority voted in.
        ballot: Ballot,
        /// The value or its digest.
        value: Carried<V>,
        /// The majority's signatures.
        signatures: Vec<QuorumSignature>,
    },
    /// The leader is alive; it knows every slot through `chosen_through` chosen.
    Heartbeat {
        /// Its ballot.
        ballot: Ballot,
        /// Its last slot of an unbroken run of chosen ones.
        chosen_through: u64,
    },
    /// A learner asks for the chosen slots from `from` on.
    CatchUp {
        /// The first slot it misses.
        from: u64,
    },
    /// Client requests a follower forwards to the leader.
    Forward(Vec<Request>),
}

/// Kinds of [`Msg`], for reports.
pub const MSG_KINDS: &[&str] = &[
    "prepare",
    "promise",
    "accept",
    "accepted",
    "nack",
    "chosen",
    "heartbeat",
    "catch-up",
    "forward",
];

/// The size of a value on the wire.
pub trait ValueSize {
    /// Bytes.
    fn wire_size(&self) -> usize;
}

const BALLOT_BYTES: usize = 12;
const SIG_BYTES: usize = 32 + 64;

fn value_bytes<V: ValueSize>(v: Option<&V>) -> usize {
    1 + v.map_or(0, ValueSize::wire_size)
}

impl<V: ValueSize + Clone> Message for Msg<V> {
    fn kind(&self) -> usize {
        match self {
            Self::Prepare { .. } => 0,
            Self::Promise { .. } => 1,
            Self::Accept { .. } => 2,
            Self::Accepted { .. } => 3,
            Self::Nack { .. } => 4,
            Self::Chosen { .. } => 5,
            Self::Heartbeat { .. } => 6,
            Self::CatchUp { .. } => 7,
            Self::Forward(_) => 8,
        }
    }

    fn wire_bytes(&self) -> usize {
        match self {
            Self::Prepare { .. } => 1 + BALLOT_BYTES + 8,
            Self::Promise { votes, .. } => {
                1 + BALLOT_BYTES
                    + 4
                    + votes
                        .iter()
                        .map(|(_, v)| 8 + BALLOT_BYTES + value_bytes(v.value.as_ref()))
                        .sum::<usize>()
            }
            Self::Accept { value, .. } => 1 + BALLOT_BYTES + 8 + value_bytes(value.as_ref()),
            Self::Accepted { .. } => 1 + BALLOT_BYTES + 8 + 32 + SIG_BYTES,
            Self::Nack { .. } => 1 + 2 * BALLOT_BYTES,
            Self::Chosen {
                value, signatures, ..
            } => {
                let v = match value {
                    Carried::Value(v) => value_bytes(v.as_ref()),
                    Carried::Voted(_) => 1 + 32,
                };
                1 + 8 + BALLOT_BYTES + v + 4 + signatures.len() * SIG_BYTES
            }
            Self::Heartbeat { .. } => 1 + BALLOT_BYTES + 8,
            Self::CatchUp { .. } => 1 + 8,
            Self::Forward(r) => 1 + 4 + r.len() * 12,
        }
    }
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits to try again).
    Follower,
    /// Runs phase 1 for its ballot.
    Candidate,
    /// Phase 1 done: proposes values for its ballot.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Follower => "follower",
            Self::Candidate => "candidate",
            Self::Leader => "leader",
        })
    }
}

/// What a node notes for timelines and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Started phase 1 with `ballot`.
    Prepared {
        /// The ballot.
        ballot: Ballot,
        /// Its first slot.
        from: u64,
    },
    /// Phase 1 succeeded: leads `ballot`, re-proposing `reproposed` voted values and filling
    /// `noops` gaps.
    Leads {
        /// The ballot.
        ballot: Ballot,
        /// Voted values proposed again.
        reproposed: u64,
        /// Gaps filled with no-ops.
        noops: u64,
    },
    /// Its ballot was preempted by `by`; it retries after `retry_in` (0: at once).
    Preempted {
        /// Its ballot.
        ballot: Ballot,
        /// The higher ballot.
        by: Ballot,
        /// The wait before it tries again.
        retry_in: Micros,
    },
    /// The leader proposed a new value in `slot`.
    Proposed {
        /// The slot.
        slot: u64,
        /// The ballot.
        ballot: Ballot,
    },
    /// Learned `slot` chosen (a block unless `noop`).
    Learned {
        /// The slot.
        slot: u64,
        /// A no-op.
        noop: bool,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Prepared { ballot, from } => {
                write!(f, "prepares ballot {ballot} for slots from {from}")
            }
            Self::Leads {
                ballot,
                reproposed,
                noops,
            } => write!(
                f,
                "leads ballot {ballot}: re-proposes {reproposed} voted values, fills {noops} gaps with no-ops"
            ),
            Self::Preempted {
                ballot,
                by,
                retry_in,
            } => {
                if *retry_in == 0 {
                    write!(f, "ballot {ballot} preempted by {by}: retries at once")
                } else {
                    write!(
                        f,
                        "ballot {ballot} preempted by {by}: backs off {:.1} ms",
                        *retry_in as f64 / 1e3
                    )
                }
            }
            Self::Proposed { slot, ballot } => {
                write!(f, "proposes a block for slot {slot} in ballot {ballot}")
            }
            Self::Learned { slot, noop } => write!(
                f,
                "learns slot {slot} chosen ({})",
                if *noop { "no-op" } else { "a block" }
            ),
        }
    }
}

/// The votes a promise reports: (slot, last vote).
pub type Votes<V> = Vec<(u64, Vote<V>)>;

/// A leader's value in flight: who voted for it.
#[derive(Debug, Clone)]
struct Proposal<V> {
    value: Option<V>,
    digest: Digest,
    signatures: Vec<Option<QuorumSignature>>,
    sent_at: Micros,
}

/// One Paxos node. See the module docs.
#[derive(Debug)]
pub struct PaxosNode<A: App> {
    config: PaxosConfig,
    rng: SimRng,
    app: A,
    promised: Ballot,
    votes: BTreeMap<u64, Vote<A::Value>>,
    chosen: BTreeMap<u64, Arc<Chosen<A::Value>>>,
    executed: u64,
    role: Role,
    ballot: Ballot,
    seen: Ballot,
    leader: Option<NodeId>,
    promises: Vec<Option<Votes<A::Value>>>,
    phase1_from: u64,
    proposals: BTreeMap<u64, Proposal<A::Value>>,
    next_slot: u64,
    preempted_in_a_row: u32,
    preemptions: u64,
    waiting: VecDeque<Request>,
    queued: HashSet<Request>,
    done: HashSet<Request>,
}

impl<A: App> PaxosNode<A> {
    /// A node restarted from `disk` (an empty disk: first boot), with `rng` for its timeouts
    /// and `app` holding its state machine as of `config.base`. Chosen slots on disk are
    /// executed again when it starts.
    #[must_use]
    pub fn new(config: PaxosConfig, disk: &Durable<A::Value>, rng: SimRng, app: A) -> Self {
        let n = config.keys.len();
        Self {
            rng,
            app,
            promised: disk.promised,
            votes: disk.votes.clone(),
            chosen: disk.chosen.clone(),
            executed: config.base,
            role: Role::Follower,
            ballot: Ballot::ZERO,
            seen: Ballot::ZERO,
            leader: None,
            promises: vec![None; n],
            phase1_from: config.base + 1,
            proposals: BTreeMap::new(),
            next_slot: config.base + 1,
            preempted_in_a_row: 0,
            preemptions: 0,
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

    /// Its ballot as proposer (meaningful while candidate or leader).
    #[must_use]
    pub const fn ballot(&self) -> Ballot {
        self.ballot
    }

    /// The highest ballot it promised.
    #[must_use]
    pub const fn promised(&self) -> Ballot {
        self.promised
    }

    /// The leader it knows.
    #[must_use]
    pub const fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Its last vote in `slot`.
    #[must_use]
    pub fn vote(&self, slot: u64) -> Option<&Vote<A::Value>> {
        self.votes.get(&slot)
    }

    /// What it knows chosen in `slot`.
    #[must_use]
    pub fn chosen(&self, slot: u64) -> Option<&Arc<Chosen<A::Value>>> {
        self.chosen.get(&slot)
    }

    /// The last slot it executed.
    #[must_use]
    pub const fn executed(&self) -> u64 {
        self.executed
    }

    /// How often its ballots were preempted.
    #[must_use]
    pub const fn preemptions(&self) -> u64 {
        self.preemptions
    }

    /// Its state machine.
    #[must_use]
    pub const fn app(&self) -> &A {
        &self.app
    }

    fn members(&self) -> usize {
        self.config.keys.len()
    }

    fn majority(&self) -> usize {
        self.members() / 2 + 1
    }

    fn me(&self) -> u32 {
        u32::try_from(self.config.id).expect("fewer than 2^32 members")
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + use<A> {
        let me = self.config.id;
        (0..self.config.keys.len()).filter(move |p| *p != me)
    }

    fn digest_of(value: Option<&A::Value>) -> Digest {
        value.map_or(NOOP, A::digest)
    }

    fn sign(&self, ballot: Ballot, slot: u64, digest: Digest) -> QuorumSignature {
        QuorumSignature {
            signer: self.config.key.pubkey(),
            signature: self.config.key.sign(&accepted_bytes(ballot, slot, digest)),
        }
    }

    fn election_timeout(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let (lo, hi) = self.config.election;
        let t = self.rng.range(lo, hi);
        out.push(Output::Timer(ELECTION, now + t));
    }

    /// The last slot of the unbroken run of chosen slots after the executed ones.
    fn chosen_through(&self) -> u64 {
        let mut s = self.executed;
        while self.chosen.contains_key(&(s + 1)) {
            s += 1;
        }
        s
    }

    /// Phase 1 for a new ballot above everything seen.
    fn campaign(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let round = self.promised.max(self.ballot).max(self.seen).round + 1;
        self.ballot = Ballot {
            round,
            node: self.me(),
        };
        self.role = Role::Candidate;
        self.leader = None;
        self.proposals.clear();
        self.promised = self.ballot;
        out.push(Output::Persist(Persist::Promise(self.ballot)));
        let from = self.chosen_through() + 1;
        self.phase1_from = from;
        out.push(Output::Note(Note::Prepared {
            ballot: self.ballot,
            from,
        }));
        self.promises.fill(None);
        self.promises[self.config.id] = Some(self.votes_from(from));
        // Another try if this one gets nowhere (lost messages, a crashed majority).
        self.election_timeout(now, out);
        if self.promise_quorum() {
            self.lead(now, out);
            return;
        }
        for p in self.peers() {
            out.push(Output::Send(
                p,
                Msg::Prepare {
                    ballot: self.ballot,
                    from,
                },
            ));
        }
    }

    fn votes_from(&self, from: u64) -> Vec<(u64, Vote<A::Value>)> {
        self.votes
            .range(from..)
            .map(|(s, v)| (*s, v.clone()))
            .collect()
    }

    fn promise_quorum(&self) -> bool {
        self.promises.iter().filter(|p| p.is_some()).count() >= self.majority()
    }

    /// Phase 1 succeeded: apply the value-choice rule to every slot the promises reported,
    /// fill the gaps with no-ops, and lead.
    fn lead(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        self.preempted_in_a_row = 0;
        // The highest-ballot vote in each slot among the promises.
        let mut best: BTreeMap<u64, Vote<A::Value>> = BTreeMap::new();
        for (slot, vote) in self.promises.iter().flatten().flatten() {
            if best.get(slot).is_none_or(|b| vote.ballot > b.ballot) {
                best.insert(*slot, vote.clone());
            }
        }
        let from = self.phase1_from;
        let last = best
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0)
            .max(self.chosen.keys().next_back().copied().unwrap_or(0))
            .max(from - 1);
        let (mut reproposed, mut noops) = (0, 0);
        for slot in from..=last {
            if self.chosen.contains_key(&slot) {
                continue;
            }
            let value = match best.remove(&slot) {
                Some(vote) => {
                    reproposed += 1;
                    self.own_value_instead(now, slot, vote.value)
                }
                None => {
                    noops += 1;
                    None
                }
            };
            self.propose(now, slot, value, out);
        }
        self.next_slot = last + 1;
        out.push(Output::Note(Note::Leads {
            ballot: self.ballot,
            reproposed,
            noops,
        }));
        self.heartbeat(out);
        out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
        out.push(Output::Timer(CUT, now + self.config.cut_interval));
    }

    /// The value a new leader proposes in a slot a promise reported a vote for: that vote's
    /// (the correct rule), or with the planted bug its own.
    #[cfg(test)]
    fn own_value_instead(
        &mut self,
        now: Micros,
        slot: u64,
        voted: Option<A::Value>,
    ) -> Option<A::Value> {
        if self.config.bug != Some(Bug::IgnoreVotes) {
            return voted;
        }
        let requests: Vec<Request> = self.waiting.iter().copied().collect();
        let ballot = self.ballot;
        self.app
            .cut(now, &self.config.key, ballot, slot, &requests)
            .map(|(v, _)| v)
    }

    #[cfg(not(test))]
    #[allow(clippy::unused_self)]
    fn own_value_instead(
        &mut self,
        _now: Micros,
        _slot: u64,
        voted: Option<A::Value>,
    ) -> Option<A::Value> {
        voted
    }

    /// Phase 2 for `value` in `slot`: the leader votes itself and sends 2a to the others.
    fn propose(
        &mut self,
        now: Micros,
        slot: u64,
        value: Option<A::Value>,
        out: &mut Vec<Output<Self>>,
    ) {
        let digest = Self::digest_of(value.as_ref());
        let mut signatures = vec![None; self.members()];
        let vote = Vote {
            ballot: self.ballot,
            value: value.clone(),
        };
        self.votes.insert(slot, vote.clone());
        out.push(Output::Persist(Persist::Vote(slot, vote)));
        signatures[self.config.id] = Some(self.sign(self.ballot, slot, digest));
        self.proposals.insert(
            slot,
            Proposal {
                value: value.clone(),
                digest,
                signatures,
                sent_at: now,
            },
        );
        for p in self.peers() {
            out.push(Output::Send(
                p,
                Msg::Accept {
                    ballot: self.ballot,
                    slot,
                    value: value.clone(),
                },
            ));
        }
        self.tally(slot, out);
    }

    /// Whether `slot`'s proposal has a majority; if so it is chosen.
    fn tally(&mut self, slot: u64, out: &mut Vec<Output<Self>>) {
        let Some(p) = self.proposals.get(&slot) else {
            return;
        };
        if p.signatures.iter().filter(|s| s.is_some()).count() < self.majority() {
            return;
        }
        let p = self.proposals.remove(&slot).expect("present");
        let chosen = Arc::new(Chosen {
            slot,
            ballot: self.ballot,
            value: p.value.clone(),
            signatures: p.signatures.iter().flatten().copied().collect(),
        });
        for peer in self.peers() {
            let value = if p.signatures[peer].is_some() {
                Carried::Voted(p.digest)
            } else {
                Carried::Value(p.value.clone())
            };
            out.push(Output::Send(
                peer,
                Msg::Chosen {
                    slot,
                    ballot: chosen.ballot,
                    value,
                    signatures: chosen.signatures.clone(),
                },
            ));
        }
        self.learn(chosen, out);
    }

    /// Learns a chosen slot: writes it, then executes every slot it can in order.
    fn learn(&mut self, chosen: Arc<Chosen<A::Value>>, out: &mut Vec<Output<Self>>) {
        if chosen.slot <= self.executed || self.chosen.contains_key(&chosen.slot) {
            return;
        }
        out.push(Output::Note(Note::Learned {
            slot: chosen.slot,
            noop: chosen.value.is_none(),
        }));
        out.push(Output::Persist(Persist::Chosen(chosen.clone())));
        self.chosen.insert(chosen.slot, chosen);
        self.execute(out);
    }

    fn execute(&mut self, out: &mut Vec<Output<Self>>) {
        while let Some(c) = self.chosen.get(&(self.executed + 1)).cloned() {
            self.executed += 1;
            if let Some(v) = &c.value {
                for r in A::requests(v) {
                    self.done.insert(*r);
                    if self.role == Role::Leader {
                        out.push(Output::Reply(*r));
                    }
                }
            }
            self.app.execute(&c);
            out.push(Output::Commit(c));
        }
    }

    /// The leader's next block, when nothing it proposed is still open.
    fn cut(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.role != Role::Leader || self.next_slot != self.executed + 1 {
            return;
        }
        let done = &self.done;
        let queued = &mut self.queued;
        self.waiting.retain(|r| {
            let keep = !done.contains(r);
            if !keep {
                queued.remove(r);
            }
            keep
        });
        let take = self.waiting.len().min(self.config.max_batch);
        let requests: Vec<Request> = self.waiting.iter().take(take).copied().collect();
        let (ballot, slot) = (self.ballot, self.next_slot);
        let Some((value, used)) = self.app.cut(now, &self.config.key, ballot, slot, &requests)
        else {
            return;
        };
        for r in self.waiting.drain(..used.min(take)) {
            self.queued.remove(&r);
        }
        out.push(Output::Note(Note::Proposed { slot, ballot }));
        self.next_slot += 1;
        self.propose(now, slot, Some(value), out);
    }

    fn heartbeat(&self, out: &mut Vec<Output<Self>>) {
        let chosen_through = self.chosen_through();
        for p in self.peers() {
            out.push(Output::Send(
                p,
                Msg::Heartbeat {
                    ballot: self.ballot,
                    chosen_through,
                },
            ));
        }
    }

    /// Sends the proposals open for a heartbeat interval again to the acceptors that have not
    /// voted (lost messages).
    fn resend(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let peers: Vec<NodeId> = self.peers().collect();
        let ballot = self.ballot;
        for (slot, p) in &mut self.proposals {
            if now < p.sent_at + self.config.heartbeat {
                continue;
            }
            p.sent_at = now;
            for &peer in &peers {
                if p.signatures[peer].is_none() {
                    out.push(Output::Send(
                        peer,
                        Msg::Accept {
                            ballot,
                            slot: *slot,
                            value: p.value.clone(),
                        },
                    ));
                }
            }
        }
    }

    /// A higher ballot `by` preempted this proposer: follow, and try again after a back-off
    /// (or at once without one).
    fn preempted(&mut self, now: Micros, by: Ballot, out: &mut Vec<Output<Self>>) {
        if self.role == Role::Follower || by <= self.ballot {
            return;
        }
        self.preemptions += 1;
        self.seen = self.seen.max(by);
        let ballot = self.ballot;
        self.role = Role::Follower;
        self.proposals.clear();
        self.forward_waiting(out);
        if !self.config.backoff {
            out.push(Output::Note(Note::Preempted {
                ballot,
                by,
                retry_in: 0,
            }));
            self.campaign(now, out);
            return;
        }
        let window = self.config.backoff_base << self.preempted_in_a_row.min(MAX_DOUBLINGS);
        self.preempted_in_a_row += 1;
        let (lo, _) = self.config.election;
        let wait = lo + self.rng.range(0, window.max(1));
        out.push(Output::Note(Note::Preempted {
            ballot,
            by,
            retry_in: wait,
        }));
        out.push(Output::Timer(ELECTION, now + wait));
    }

    /// A leader of `ballot` (at least the promise) was heard from.
    fn heard_leader(&mut self, now: Micros, from: NodeId, out: &mut Vec<Output<Self>>) {
        if self.leader != Some(from) {
            self.leader = Some(from);
            self.forward_waiting(out);
        }
        if self.role == Role::Follower {
            self.preempted_in_a_row = 0;
            self.election_timeout(now, out);
        }
    }

    fn forward_waiting(&mut self, out: &mut Vec<Output<Self>>) {
        if let Some(leader) = self.leader.filter(|l| *l != self.config.id)
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

    /// Whether a message of `ballot` from `from` may be acted on: not below the promise. A
    /// higher ballot preempts this node's own first (which, without back-off, may raise its
    /// promise at once); a refused one is answered with a `Nack`.
    fn admit(
        &mut self,
        now: Micros,
        from: NodeId,
        ballot: Ballot,
        out: &mut Vec<Output<Self>>,
    ) -> bool {
        if ballot >= self.promised {
            self.preempted(now, ballot, out);
        }
        if ballot < self.promised {
            out.push(Output::Send(
                from,
                Msg::Nack {
                    ballot,
                    promised: self.promised,
                },
            ));
            return false;
        }
        true
    }

    fn on_prepare(
        &mut self,
        now: Micros,
        from: NodeId,
        ballot: Ballot,
        slot: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        if !self.admit(now, from, ballot, out) {
            return;
        }
        if ballot > self.promised {
            self.promised = ballot;
            out.push(Output::Persist(Persist::Promise(ballot)));
            if self.role == Role::Follower && self.preempted_in_a_row == 0 {
                // A campaign is under way: give it a full timeout before starting another.
                self.election_timeout(now, out);
            }
        }
        out.push(Output::Send(
            from,
            Msg::Promise {
                ballot,
                votes: self.votes_from(slot),
            },
        ));
    }

    fn on_promise(
        &mut self,
        now: Micros,
        from: NodeId,
        ballot: Ballot,
        votes: Vec<(u64, Vote<A::Value>)>,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Candidate || ballot != self.ballot {
            return;
        }
        self.promises[from] = Some(votes);
        if self.promise_quorum() {
            self.lead(now, out);
        }
    }

    fn on_accept(
        &mut self,
        now: Micros,
        from: NodeId,
        (ballot, slot): (Ballot, u64),
        value: Option<A::Value>,
        out: &mut Vec<Output<Self>>,
    ) {
        if !self.admit(now, from, ballot, out) {
            return;
        }
        self.promised = ballot;
        let digest = Self::digest_of(value.as_ref());
        let vote = Vote { ballot, value };
        if self.votes.get(&slot) != Some(&vote) {
            self.votes.insert(slot, vote.clone());
            out.push(Output::Persist(Persist::Vote(slot, vote)));
        }
        self.heard_leader(now, from, out);
        out.push(Output::Send(
            from,
            Msg::Accepted {
                ballot,
                slot,
                digest,
                signature: self.sign(ballot, slot, digest),
            },
        ));
    }

    fn on_accepted(
        &mut self,
        from: NodeId,
        (ballot, slot): (Ballot, u64),
        digest: Digest,
        signature: QuorumSignature,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.role != Role::Leader || ballot != self.ballot {
            return;
        }
        let Some(p) = self.proposals.get_mut(&slot) else {
            return;
        };
        if p.digest != digest || signature.signer != self.config.keys[from] {
            return;
        }
        p.signatures[from] = Some(signature);
        self.tally(slot, out);
    }

    fn on_chosen(
        &mut self,
        from: NodeId,
        (slot, ballot): (u64, Ballot),
        value: Carried<A::Value>,
        signatures: Vec<QuorumSignature>,
        out: &mut Vec<Output<Self>>,
    ) {
        if slot <= self.executed || self.chosen.contains_key(&slot) {
            return;
        }
        let value = match value {
            Carried::Value(v) => v,
            Carried::Voted(digest) => match self.votes.get(&slot) {
                Some(v) if v.ballot == ballot && Self::digest_of(v.value.as_ref()) == digest => {
                    v.value.clone()
                }
                _ => {
                    // It lost its vote's value (it never had it): ask for it.
                    out.push(Output::Send(
                        from,
                        Msg::CatchUp {
                            from: self.executed + 1,
                        },
                    ));
                    return;
                }
            },
        };
        self.learn(
            Arc::new(Chosen {
                slot,
                ballot,
                value,
                signatures,
            }),
            out,
        );
    }

    fn on_heartbeat(
        &mut self,
        now: Micros,
        from: NodeId,
        ballot: Ballot,
        chosen_through: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        if !self.admit(now, from, ballot, out) {
            return;
        }
        self.heard_leader(now, from, out);
        if chosen_through > self.chosen_through() {
            out.push(Output::Send(
                from,
                Msg::CatchUp {
                    from: self.chosen_through() + 1,
                },
            ));
        }
    }

    fn on_catch_up(&self, from: NodeId, first: u64, out: &mut Vec<Output<Self>>) {
        for (slot, c) in self.chosen.range(first..first.saturating_add(MAX_CATCH_UP)) {
            out.push(Output::Send(
                from,
                Msg::Chosen {
                    slot: *slot,
                    ballot: c.ballot,
                    value: Carried::Value(c.value.clone()),
                    signatures: c.signatures.clone(),
                },
            ));
        }
    }
}

impl<A: App> Engine for PaxosNode<A> {
    type Msg = Msg<A::Value>;
    type Persist = Persist<A::Value>;
    type Disk = Durable<A::Value>;
    type Commit = Arc<Chosen<A::Value>>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        // What it learned before a restart executes again (its state machine starts over).
        self.execute(out);
        // Every node starts as a proposer: the first campaign after the shortest timeout.
        out.push(Output::Timer(ELECTION, now + self.config.election.0));
    }

    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    ) {
        if from >= self.members() || from == self.config.id {
            return;
        }
        match msg {
            Msg::Prepare { ballot, from: slot } => self.on_prepare(now, from, ballot, slot, out),
            Msg::Promise { ballot, votes } => self.on_promise(now, from, ballot, votes, out),
            Msg::Accept {
                ballot,
                slot,
                value,
            } => self.on_accept(now, from, (ballot, slot), value, out),
            Msg::Accepted {
                ballot,
                slot,
                digest,
                signature,
            } => self.on_accepted(from, (ballot, slot), digest, signature, out),
            Msg::Nack { ballot, promised } => {
                if ballot == self.ballot {
                    self.preempted(now, promised, out);
                }
            }
            Msg::Chosen {
                slot,
                ballot,
                value,
                signatures,
            } => self.on_chosen(from, (slot, ballot), value, signatures, out),
            Msg::Heartbeat {
                ballot,
                chosen_through,
            } => self.on_heartbeat(now, from, ballot, chosen_through, out),
            Msg::CatchUp { from: first } => self.on_catch_up(from, first, out),
            Msg::Forward(requests) => self.accept_requests(now, requests, out),
        }
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        match (id, self.role) {
            (ELECTION, Role::Leader) => {}
            (ELECTION, _) => self.campaign(now, out),
            (HEARTBEAT, Role::Leader) => {
                self.heartbeat(out);
                self.resend(now, out);
                out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
            }
            (CUT, Role::Leader) => {
                self.cut(now, out);
                out.push(Output::Timer(CUT, now + self.config.cut_interval));
            }
            _ => {}
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
            Persist::Promise(b) => disk.promised = disk.promised.max(*b),
            Persist::Vote(slot, vote) => {
                disk.promised = disk.promised.max(vote.ballot);
                disk.votes.insert(*slot, vote.clone());
            }
            Persist::Chosen(c) => {
                disk.chosen.insert(c.slot, c.clone());
            }
        }
    }
}
