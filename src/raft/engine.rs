//! The Raft engine (Ongaro & Ousterhout, "In Search of an Understandable Consensus Algorithm",
//! USENIX ATC 2014, Figure 2), sans-I/O: one node's state, stepped by inputs and answering
//! with [`Output`]s. Terms; follower, candidate and leader; `RequestVote` with the
//! up-to-date-log rule; `currentTerm`, `votedFor` and the log persisted before any answer that
//! depends on them (the driver holds a step's messages until its writes complete);
//! `AppendEntries` with the previous-entry check, conflict truncation and a back-off hint;
//! commit by counting replicas only for an entry of the leader's own term (Figure 8), with a
//! no-op at the start of each term; apply in order; client requests carry (client, serial) and
//! are applied once; followers forward requests to the leader they know. Pre-vote (§9.6 of
//! Ongaro's thesis) and check-quorum as etcd has them, each behind a switch.
//!
//! What the replicated log carries is the [`App`]'s: the chain's blocks, or a plain counter in
//! tests and benches.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::sim::{Engine, Message, Micros, NodeId, Output, Request, SimRng};

/// Timer ids.
const ELECTION: u8 = 0;
const HEARTBEAT: u8 = 1;
const CUT: u8 = 2;
const QUORUM: u8 = 3;

/// At most this many client requests wait at a node that knows no leader (more are refused;
/// the client retries).
const MAX_WAITING: usize = 10_000;
/// At most this many entries in one `AppendEntries` by default.
pub const MAX_APPEND: usize = 64;

/// A Raft node's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    /// This node.
    pub id: NodeId,
    /// Cluster size.
    pub members: usize,
    /// Election timeout, drawn uniformly in `[min, max]` microseconds at each reset.
    pub election: (Micros, Micros),
    /// Heartbeat interval (below the minimum election timeout).
    pub heartbeat: Micros,
    /// A leader cuts a command (a block) from waiting requests this often …
    pub cut_interval: Micros,
    /// … or as soon as this many wait.
    pub max_batch: usize,
    /// At most this many entries in one `AppendEntries` (etcd's `MaxSizePerMsg`, in entries).
    pub max_append: usize,
    /// Pre-vote: a candidate first asks whether it could win, without raising its term.
    pub pre_vote: bool,
    /// Check-quorum: a leader that has not heard from a majority in an election timeout steps
    /// down, and a follower that hears from its leader ignores vote requests until an
    /// election timeout has passed.
    pub check_quorum: bool,
    /// Planted bugs the safety observer must catch (tests only).
    #[cfg(test)]
    pub bug: Option<Bug>,
}

/// Bugs planted in test-only variants of the engine.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// Commit any entry a majority stores, whatever its term (what Figure 8 forbids).
    CommitOldTerm,
    /// Forget `votedFor` across a restart.
    ForgetVote,
}

/// A log entry: its term, its index and its command (`None`: the leader's no-op).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry<C> {
    /// The leader's term when it was appended.
    pub term: u64,
    /// Its position in the log (1-based).
    pub index: u64,
    /// The command.
    pub command: Option<C>,
}

/// What a node keeps on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Durable<C> {
    /// The latest term it has seen.
    pub term: u64,
    /// Whom it voted for in `term`.
    pub voted_for: Option<NodeId>,
    /// The index and term of the entry just before `log` (0, 0 for a log from the start;
    /// a chain continued from a file starts after its last block).
    pub base: (u64, u64),
    /// The entries after `base`.
    pub log: Vec<Arc<Entry<C>>>,
}

impl<C> Default for Durable<C> {
    fn default() -> Self {
        Self {
            term: 0,
            voted_for: None,
            base: (0, 0),
            log: Vec::new(),
        }
    }
}

/// One write to disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Persist<C> {
    /// The term and vote.
    Hard {
        /// `currentTerm`.
        term: u64,
        /// `votedFor`.
        voted_for: Option<NodeId>,
    },
    /// Drop every entry after `index`.
    Truncate(u64),
    /// Append entries.
    Append(Vec<Arc<Entry<C>>>),
}

/// Raft's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Msg<C> {
    /// `RequestVote` (or its pre-vote, which changes no one's term).
    Vote {
        /// A pre-vote.
        pre: bool,
        /// The candidate's term (for a pre-vote, the term it would campaign in).
        term: u64,
        /// Its last log index.
        last_index: u64,
        /// Its last log term.
        last_term: u64,
    },
    /// The answer to a (pre-)vote.
    VoteReply {
        /// For a pre-vote.
        pre: bool,
        /// The voter's term (for a granted pre-vote, the term asked about).
        term: u64,
        /// Granted.
        granted: bool,
    },
    /// `AppendEntries` (a heartbeat when empty).
    Append {
        /// The leader's term.
        term: u64,
        /// The index of the entry before `entries`.
        prev_index: u64,
        /// Its term.
        prev_term: u64,
        /// New entries.
        entries: Vec<Arc<Entry<C>>>,
        /// The leader's commit index.
        commit: u64,
    },
    /// The answer to `AppendEntries`.
    AppendReply {
        /// The follower's term.
        term: u64,
        /// Whether the follower's log now matches the leader's through `index`.
        success: bool,
        /// On success, the last index known to match; on failure, where the leader should
        /// try next (the follower's hint).
        index: u64,
    },
    /// Client requests a follower forwards to the leader.
    Forward(Vec<Request>),
}

/// Kinds of [`Msg`], for reports.
pub const MSG_KINDS: &[&str] = &[
    "pre-vote",
    "pre-vote reply",
    "vote",
    "vote reply",
    "append",
    "heartbeat",
    "append reply",
    "forward",
];

impl<C: CommandSize + Clone> Message for Msg<C> {
    fn kind(&self) -> usize {
        match self {
            Self::Vote { pre: true, .. } => 0,
            Self::VoteReply { pre: true, .. } => 1,
            Self::Vote { pre: false, .. } => 2,
            Self::VoteReply { pre: false, .. } => 3,
            Self::Append { entries, .. } if !entries.is_empty() => 4,
            Self::Append { .. } => 5,
            Self::AppendReply { .. } => 6,
            Self::Forward(_) => 7,
        }
    }

    fn wire_bytes(&self) -> usize {
        // A compact binary encoding: a tag, fixed-width integers, a length per list.
        match self {
            Self::Vote { .. } => 1 + 8 * 3 + 1,
            Self::VoteReply { .. } => 1 + 8 + 2,
            Self::Append { entries, .. } => {
                1 + 8 * 4
                    + 4
                    + entries
                        .iter()
                        .map(|e| 16 + 1 + e.command.as_ref().map_or(0, CommandSize::size))
                        .sum::<usize>()
            }
            Self::AppendReply { .. } => 1 + 8 * 2 + 1,
            Self::Forward(r) => 1 + 4 + r.len() * 12,
        }
    }
}

/// The size of a command on the wire.
pub trait CommandSize {
    /// Bytes.
    fn size(&self) -> usize;
}

/// What the replicated log carries and how it is applied: the state machine.
pub trait App {
    /// A command in the log.
    type Command: Clone + fmt::Debug + CommandSize;
    /// The leader's next command from `requests` (in arrival order, possibly none), on top of
    /// its log: `tail` holds the entries after the last applied one. Returns the command and
    /// how many requests it took (from the front); `None` when there is nothing to append.
    fn cut(
        &mut self,
        now: Micros,
        term: u64,
        index: u64,
        tail: &[Arc<Entry<Self::Command>>],
        requests: &[Request],
    ) -> Option<(Self::Command, usize)>;
    /// The client requests a command carries.
    fn requests(command: &Self::Command) -> &[Request];
    /// A digest of a command's content, for the safety observer.
    fn digest(command: &Self::Command) -> u64;
    /// Applies a committed entry.
    fn apply(&mut self, entry: &Entry<Self::Command>);
}

/// A node's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking for pre-votes.
    PreCandidate,
    /// Asking for votes.
    Candidate,
    /// Leads its term.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Follower => "follower",
            Self::PreCandidate => "pre-candidate",
            Self::Candidate => "candidate",
            Self::Leader => "leader",
        })
    }
}

/// What a node notes for timelines and reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Note {
    /// Became `role` in `term`.
    Role {
        /// The role.
        role: Role,
        /// The term.
        term: u64,
    },
    /// Voted for `candidate` in `term`.
    Voted {
        /// The candidate.
        candidate: NodeId,
        /// The term.
        term: u64,
    },
    /// The leader appended entry `index` (a command when `command`, else its no-op).
    Appended {
        /// Index.
        index: u64,
        /// Term.
        term: u64,
        /// A command rather than a no-op.
        command: bool,
    },
    /// Committed through `index`.
    Committed {
        /// The commit index.
        index: u64,
    },
    /// A leader stepped down: it had not heard from a majority.
    LostQuorum {
        /// Its term.
        term: u64,
    },
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Role { role, term } => write!(f, "becomes {role} in term {term}"),
            Self::Voted { candidate, term } => {
                write!(f, "votes for node {candidate} in term {term}")
            }
            Self::Appended {
                index,
                term,
                command,
            } => write!(
                f,
                "appends {} at index {index} (term {term})",
                if *command { "a block" } else { "its no-op" }
            ),
            Self::Committed { index } => write!(f, "commits through index {index}"),
            Self::LostQuorum { term } => {
                write!(
                    f,
                    "steps down: no majority heard in term {term} (check-quorum)"
                )
            }
        }
    }
}

/// One Raft node. See the module docs.
#[derive(Debug)]
pub struct RaftNode<A: App> {
    config: RaftConfig,
    rng: SimRng,
    app: A,
    term: u64,
    voted_for: Option<NodeId>,
    base: (u64, u64),
    log: Vec<Arc<Entry<A::Command>>>,
    commit: u64,
    applied: u64,
    role: Role,
    leader: Option<NodeId>,
    votes: Vec<Option<bool>>,
    next: Vec<u64>,
    matched: Vec<u64>,
    heard: Vec<bool>,
    last_leader_contact: Option<Micros>,
    waiting: VecDeque<Request>,
    queued: HashSet<Request>,
    done: HashSet<Request>,
}

impl<A: App> RaftNode<A> {
    /// A node restarted from `disk` (an empty disk: first boot), with `rng` for its timeouts
    /// and `app` holding its state machine as of its log's base.
    #[must_use]
    pub fn new(config: RaftConfig, disk: &Durable<A::Command>, rng: SimRng, app: A) -> Self {
        let n = config.members;
        #[cfg(test)]
        let voted_for = if config.bug == Some(Bug::ForgetVote) {
            None
        } else {
            disk.voted_for
        };
        #[cfg(not(test))]
        let voted_for = disk.voted_for;
        Self {
            rng,
            app,
            term: disk.term,
            voted_for,
            base: disk.base,
            log: disk.log.clone(),
            commit: disk.base.0,
            applied: disk.base.0,
            role: Role::Follower,
            leader: None,
            votes: vec![None; n],
            next: vec![0; n],
            matched: vec![0; n],
            heard: vec![false; n],
            last_leader_contact: None,
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            done: HashSet::new(),
            config,
        }
    }

    /// The node's role.
    #[must_use]
    pub const fn role(&self) -> Role {
        self.role
    }

    /// Its current term.
    #[must_use]
    pub const fn term(&self) -> u64 {
        self.term
    }

    /// Whom it voted for in its term.
    #[must_use]
    pub const fn voted_for(&self) -> Option<NodeId> {
        self.voted_for
    }

    /// The leader it knows.
    #[must_use]
    pub const fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// Its commit index.
    #[must_use]
    pub const fn commit_index(&self) -> u64 {
        self.commit
    }

    /// The index of its last entry.
    #[must_use]
    pub fn last_index(&self) -> u64 {
        self.base.0 + self.log.len() as u64
    }

    /// The term of its last entry.
    #[must_use]
    pub fn last_term(&self) -> u64 {
        self.log.last().map_or(self.base.1, |e| e.term)
    }

    /// The entry at `index`, if the log holds it.
    #[must_use]
    pub fn entry(&self, index: u64) -> Option<&Arc<Entry<A::Command>>> {
        let i = index.checked_sub(self.base.0 + 1)?;
        self.log.get(usize::try_from(i).ok()?)
    }

    /// Its state machine.
    #[must_use]
    pub const fn app(&self) -> &A {
        &self.app
    }

    /// Its state machine, to hand it work (an engine hosting this node, as Kafka's brokers
    /// host the controller quorum, queues the commands its leader is to append).
    pub const fn app_mut(&mut self) -> &mut A {
        &mut self.app
    }

    fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.base.0 {
            return Some(self.base.1);
        }
        self.entry(index).map(|e| e.term)
    }

    fn majority(&self) -> usize {
        self.config.members / 2 + 1
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + use<A> {
        let me = self.config.id;
        (0..self.config.members).filter(move |p| *p != me)
    }

    fn reset_election(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        let (lo, hi) = self.config.election;
        let timeout = self.rng.range(lo, hi);
        out.push(Output::Timer(ELECTION, now + timeout));
    }

    fn persist_hard(&self, out: &mut Vec<Output<Self>>) {
        out.push(Output::Persist(Persist::Hard {
            term: self.term,
            voted_for: self.voted_for,
        }));
    }

    /// Follows `leader` (or no one yet) in `term`. The election timer restarts when `heard`
    /// (the node heard from its leader, as Figure 2 says) or when it led and had none running;
    /// otherwise it runs on, so a campaign it rejects does not delay its own.
    fn become_follower(
        &mut self,
        now: Micros,
        term: u64,
        leader: Option<NodeId>,
        heard: bool,
        out: &mut Vec<Output<Self>>,
    ) {
        let was_leader = self.role == Role::Leader;
        let changed_term = term != self.term;
        if changed_term {
            self.term = term;
            self.voted_for = None;
            self.persist_hard(out);
        }
        if self.role != Role::Follower || changed_term {
            self.role = Role::Follower;
            out.push(Output::Note(Note::Role {
                role: Role::Follower,
                term,
            }));
        }
        self.leader = leader;
        if heard || was_leader {
            self.reset_election(now, out);
        }
        self.forward_waiting(out);
    }

    fn campaign(&mut self, now: Micros, pre: bool, out: &mut Vec<Output<Self>>) {
        let term = self.term + 1;
        if pre {
            self.role = Role::PreCandidate;
        } else {
            self.role = Role::Candidate;
            self.term = term;
            self.voted_for = Some(self.config.id);
            self.persist_hard(out);
        }
        self.leader = None;
        out.push(Output::Note(Note::Role {
            role: self.role,
            term,
        }));
        self.votes.fill(None);
        self.votes[self.config.id] = Some(true);
        self.reset_election(now, out);
        if self.tally() {
            // A cluster of one wins at once.
            self.won(now, pre, out);
            return;
        }
        let (last_index, last_term) = (self.last_index(), self.last_term());
        for p in self.peers() {
            out.push(Output::Send(
                p,
                Msg::Vote {
                    pre,
                    term,
                    last_index,
                    last_term,
                },
            ));
        }
    }

    fn tally(&self) -> bool {
        self.votes.iter().filter(|v| **v == Some(true)).count() >= self.majority()
    }

    fn won(&mut self, now: Micros, pre: bool, out: &mut Vec<Output<Self>>) {
        if pre {
            self.campaign(now, false, out);
        } else {
            self.become_leader(now, out);
        }
    }

    fn become_leader(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.role = Role::Leader;
        self.leader = Some(self.config.id);
        out.push(Output::Note(Note::Role {
            role: Role::Leader,
            term: self.term,
        }));
        let last = self.last_index();
        self.next.fill(last + 1);
        self.matched.fill(0);
        self.heard.fill(false);
        // A no-op of the new term, so that entries of earlier terms commit with it.
        self.append_local(None, out);
        self.broadcast(out);
        out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
        out.push(Output::Timer(CUT, now + self.config.cut_interval));
        if self.config.check_quorum {
            out.push(Output::Timer(QUORUM, now + self.config.election.0));
        }
    }

    fn append_local(&mut self, command: Option<A::Command>, out: &mut Vec<Output<Self>>) {
        let entry = Arc::new(Entry {
            term: self.term,
            index: self.last_index() + 1,
            command,
        });
        out.push(Output::Note(Note::Appended {
            index: entry.index,
            term: entry.term,
            command: entry.command.is_some(),
        }));
        out.push(Output::Persist(Persist::Append(vec![entry.clone()])));
        self.log.push(entry);
        self.matched[self.config.id] = self.last_index();
        self.advance_commit(out);
    }

    fn broadcast(&mut self, out: &mut Vec<Output<Self>>) {
        for p in self.peers() {
            self.send_append(p, out);
        }
    }

    /// Sends `to` the entries from its next index (none for a heartbeat to a follower that has
    /// them all) and, optimistically, moves its next index past them, as etcd's replicate state
    /// does: a lost message shows up as a refused later one, and the leader backs off then.
    fn send_append(&mut self, to: NodeId, out: &mut Vec<Output<Self>>) {
        let next = self.next[to].max(self.base.0 + 1);
        let prev_index = next - 1;
        let prev_term = self.term_at(prev_index).unwrap_or(0);
        let from = usize::try_from(prev_index - self.base.0).unwrap_or(usize::MAX);
        let entries: Vec<Arc<Entry<A::Command>>> = self
            .log
            .get(from..)
            .map(|s| {
                s.iter()
                    .take(self.config.max_append.max(1))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        self.next[to] = next + entries.len() as u64;
        out.push(Output::Send(
            to,
            Msg::Append {
                term: self.term,
                prev_index,
                prev_term,
                entries,
                commit: self.commit,
            },
        ));
    }

    fn advance_commit(&mut self, out: &mut Vec<Output<Self>>) {
        let mut sorted = self.matched.clone();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let n = sorted[self.majority() - 1];
        #[cfg(test)]
        let old_term_ok = self.config.bug == Some(Bug::CommitOldTerm);
        #[cfg(not(test))]
        let old_term_ok = false;
        if n > self.commit && (old_term_ok || self.term_at(n) == Some(self.term)) {
            self.commit = n;
            self.apply(out);
        }
    }

    fn apply(&mut self, out: &mut Vec<Output<Self>>) {
        if self.applied >= self.commit {
            return;
        }
        out.push(Output::Note(Note::Committed { index: self.commit }));
        while self.applied < self.commit {
            // The commit index never passes the log's end (a leader's is a stored index, a
            // follower's is capped by the entries the leader vouched for).
            let Some(entry) = self.entry(self.applied + 1).cloned() else {
                break;
            };
            self.applied += 1;
            if let Some(c) = &entry.command {
                for r in A::requests(c) {
                    self.done.insert(*r);
                    if self.role == Role::Leader {
                        out.push(Output::Reply(*r));
                    }
                }
            }
            self.app.apply(&entry);
            out.push(Output::Commit(entry));
        }
    }

    fn cut(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.role != Role::Leader {
            return;
        }
        // Requests already in the log (a retry of a request not yet applied) are not cut again.
        let unapplied = usize::try_from(self.applied - self.base.0).unwrap_or(usize::MAX);
        let in_log: HashSet<Request> = self
            .log
            .get(unapplied..)
            .unwrap_or_default()
            .iter()
            .filter_map(|e| e.command.as_ref())
            .flat_map(|c| A::requests(c).iter().copied())
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
        let from = usize::try_from(self.applied - self.base.0).unwrap_or(0);
        let index = self.last_index() + 1;
        let Some((command, used)) =
            self.app
                .cut(now, self.term, index, &self.log[from..], &requests)
        else {
            return;
        };
        for r in self.waiting.drain(..used.min(take)) {
            self.queued.remove(&r);
        }
        self.append_local(Some(command), out);
        self.broadcast(out);
    }

    fn forward_waiting(&mut self, out: &mut Vec<Output<Self>>) {
        if let Some(leader) = self.leader.filter(|l| *l != self.config.id)
            && !self.waiting.is_empty()
        {
            {
                let requests: Vec<Request> = self.waiting.drain(..).collect();
                self.queued.clear();
                out.push(Output::Send(leader, Msg::Forward(requests)));
            }
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

    /// A (pre-)vote request: `last` is the candidate's last log (index, term).
    fn handle_vote(
        &mut self,
        now: Micros,
        from: NodeId,
        (pre, term): (bool, u64),
        (last_index, last_term): (u64, u64),
        out: &mut Vec<Output<Self>>,
    ) {
        // Check-quorum's lease: a node that hears from a live leader ignores campaigns.
        let in_lease = self.config.check_quorum
            && (self.role == Role::Leader
                || (self.leader.is_some()
                    && self
                        .last_leader_contact
                        .is_some_and(|t| now < t + self.config.election.0)));
        if term > self.term && in_lease {
            return;
        }
        if term < self.term {
            out.push(Output::Send(
                from,
                Msg::VoteReply {
                    pre,
                    term: self.term,
                    granted: false,
                },
            ));
            return;
        }
        if term > self.term && !pre {
            self.become_follower(now, term, None, false, out);
        }
        let up_to_date = last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index());
        let granted = if pre {
            // A pre-vote is granted to a log at least as up to date, for a later term, when
            // this node is not following a live leader.
            up_to_date && term > self.term
        } else {
            up_to_date && self.voted_for.is_none_or(|v| v == from)
        };
        if granted && !pre {
            self.voted_for = Some(from);
            self.persist_hard(out);
            out.push(Output::Note(Note::Voted {
                candidate: from,
                term,
            }));
            self.reset_election(now, out);
        }
        out.push(Output::Send(
            from,
            Msg::VoteReply {
                pre,
                term: if pre && granted { term } else { self.term },
                granted,
            },
        ));
    }

    fn handle_vote_reply(
        &mut self,
        now: Micros,
        from: NodeId,
        pre: bool,
        term: u64,
        granted: bool,
        out: &mut Vec<Output<Self>>,
    ) {
        // A granted pre-vote carries the term asked about; anything else carries the voter's
        // term, and a later one ends the campaign.
        if term > self.term && !(pre && granted) {
            self.become_follower(now, term, None, false, out);
            return;
        }
        let (expected, asked) = if pre {
            (Role::PreCandidate, self.term + 1)
        } else {
            (Role::Candidate, self.term)
        };
        if self.role != expected || (granted && term != asked) {
            return;
        }
        self.votes[from] = Some(granted);
        if self.tally() {
            self.won(now, pre, out);
        } else if self.votes.iter().filter(|v| **v == Some(false)).count() >= self.majority() {
            // Lost: wait for the next timeout as a follower.
            self.become_follower(now, self.term, None, false, out);
        }
    }

    /// `AppendEntries`: `prev` is the (index, term) of the entry before `entries`.
    fn handle_append(
        &mut self,
        now: Micros,
        from: NodeId,
        (term, commit): (u64, u64),
        (prev_index, prev_term): (u64, u64),
        entries: Vec<Arc<Entry<A::Command>>>,
        out: &mut Vec<Output<Self>>,
    ) {
        if term < self.term {
            out.push(Output::Send(
                from,
                Msg::AppendReply {
                    term: self.term,
                    success: false,
                    index: 0,
                },
            ));
            return;
        }
        if term > self.term || self.role != Role::Follower || self.leader != Some(from) {
            self.become_follower(now, term, Some(from), true, out);
        } else {
            self.reset_election(now, out);
        }
        self.last_leader_contact = Some(now);
        // Entries before the base are committed and already match.
        if prev_index < self.base.0 {
            out.push(Output::Send(
                from,
                Msg::AppendReply {
                    term: self.term,
                    success: false,
                    index: self.base.0 + 1,
                },
            ));
            return;
        }
        match self.term_at(prev_index) {
            None => {
                // Too short: try after our last entry.
                out.push(Output::Send(
                    from,
                    Msg::AppendReply {
                        term: self.term,
                        success: false,
                        index: self.last_index() + 1,
                    },
                ));
                return;
            }
            Some(t) if t != prev_term => {
                // Conflict: skip back over the whole conflicting term.
                let mut hint = prev_index;
                while hint > self.base.0 + 1 && self.term_at(hint - 1) == Some(t) {
                    hint -= 1;
                }
                out.push(Output::Send(
                    from,
                    Msg::AppendReply {
                        term: self.term,
                        success: false,
                        index: hint.max(self.commit + 1),
                    },
                ));
                return;
            }
            Some(_) => {}
        }
        let last_new = prev_index + entries.len() as u64;
        let mut fresh = Vec::new();
        for e in entries {
            match self.term_at(e.index) {
                Some(t) if t == e.term => {}
                Some(_) => {
                    // Delete the conflicting entry and all that follow it.
                    let keep = usize::try_from(e.index - 1 - self.base.0).unwrap_or(0);
                    self.log.truncate(keep);
                    out.push(Output::Persist(Persist::Truncate(e.index - 1)));
                    self.log.push(e.clone());
                    fresh.push(e);
                }
                None => {
                    self.log.push(e.clone());
                    fresh.push(e);
                }
            }
        }
        if !fresh.is_empty() {
            out.push(Output::Persist(Persist::Append(fresh)));
        }
        if commit > self.commit {
            self.commit = commit.min(last_new).max(self.commit);
            self.apply(out);
        }
        out.push(Output::Send(
            from,
            Msg::AppendReply {
                term: self.term,
                success: true,
                index: last_new,
            },
        ));
    }

    fn handle_append_reply(
        &mut self,
        now: Micros,
        from: NodeId,
        term: u64,
        success: bool,
        index: u64,
        out: &mut Vec<Output<Self>>,
    ) {
        if term > self.term {
            self.become_follower(now, term, None, false, out);
            return;
        }
        if self.role != Role::Leader || term < self.term {
            return;
        }
        self.heard[from] = true;
        if success {
            if index > self.matched[from] {
                self.matched[from] = index;
                self.advance_commit(out);
            }
            self.next[from] = self.next[from].max(index + 1);
            if self.next[from] <= self.last_index() {
                self.send_append(from, out);
            }
        } else {
            // Back off to the follower's hint, never below what is known to match.
            self.next[from] = index.clamp(self.matched[from] + 1, self.last_index() + 1);
            self.send_append(from, out);
        }
    }
}

impl<A: App> Engine for RaftNode<A> {
    type Msg = Msg<A::Command>;
    type Persist = Persist<A::Command>;
    type Disk = Durable<A::Command>;
    type Commit = Arc<Entry<A::Command>>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        out.push(Output::Note(Note::Role {
            role: Role::Follower,
            term: self.term,
        }));
        self.reset_election(now, out);
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
            Msg::Vote {
                pre,
                term,
                last_index,
                last_term,
            } => self.handle_vote(now, from, (pre, term), (last_index, last_term), out),
            Msg::VoteReply { pre, term, granted } => {
                self.handle_vote_reply(now, from, pre, term, granted, out);
            }
            Msg::Append {
                term,
                prev_index,
                prev_term,
                entries,
                commit,
            } => self.handle_append(
                now,
                from,
                (term, commit),
                (prev_index, prev_term),
                entries,
                out,
            ),
            Msg::AppendReply {
                term,
                success,
                index,
            } => self.handle_append_reply(now, from, term, success, index, out),
            Msg::Forward(requests) => self.accept_requests(now, requests, out),
        }
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        match (id, self.role) {
            (ELECTION, Role::Leader) => {}
            (ELECTION, _) => {
                self.last_leader_contact = None;
                self.campaign(now, self.config.pre_vote, out);
            }
            (HEARTBEAT, Role::Leader) => {
                self.broadcast(out);
                out.push(Output::Timer(HEARTBEAT, now + self.config.heartbeat));
            }
            (CUT, Role::Leader) => {
                self.cut(now, out);
                out.push(Output::Timer(CUT, now + self.config.cut_interval));
            }
            (QUORUM, Role::Leader) => {
                self.heard[self.config.id] = true;
                let heard = self.heard.iter().filter(|h| **h).count();
                if heard < self.majority() {
                    out.push(Output::Note(Note::LostQuorum { term: self.term }));
                    self.become_follower(now, self.term, None, false, out);
                } else {
                    self.heard.fill(false);
                    out.push(Output::Timer(QUORUM, now + self.config.election.0));
                }
            }
            _ => {}
        }
    }

    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>) {
        self.accept_requests(now, [request], out);
    }

    fn on_clients(&mut self, now: Micros, requests: Vec<Request>, out: &mut Vec<Output<Self>>) {
        self.accept_requests(now, requests, out);
    }

    fn is_leader(&self) -> bool {
        self.role == Role::Leader
    }

    fn persist(disk: &mut Self::Disk, write: &Self::Persist) {
        match write {
            Persist::Hard { term, voted_for } => {
                disk.term = *term;
                disk.voted_for = *voted_for;
            }
            Persist::Truncate(after) => {
                let keep = usize::try_from(after.saturating_sub(disk.base.0)).unwrap_or(usize::MAX);
                disk.log.truncate(keep);
            }
            Persist::Append(entries) => disk.log.extend(entries.iter().cloned()),
        }
    }
}
