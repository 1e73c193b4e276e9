//! The controller: the replicated service that chooses the partition's leader and keeps its
//! in-sync replica set, run on the Raft engine as KRaft runs Kafka's metadata (KIP-500,
//! KIP-595).
//!
//! The metadata is one record, the [`PartitionState`]: leader, leader epoch, ISR and a version
//! that every change bumps. Changes are [`MetaCmd`]s in the Raft log, each a compare-and-set
//! on the version, so a command decided on stale metadata is a no-op at every node alike.
//! The active controller (the Raft leader) proposes them: leader elections when the leader's
//! broker session expires ([`elect`]), and the ISR changes the partition leader asks for
//! (`AlterIsr`, as KIP-497 routes them through the controller).

use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

use crate::raft::engine::{App, CommandSize, Entry};
use crate::sim::{Micros, NodeId, Request};

/// The partition's metadata, as the controller commits it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The leader (`None`: offline, no eligible replica alive).
    pub leader: Option<NodeId>,
    /// The leader epoch: bumped by every leader change (KIP-101).
    pub epoch: u64,
    /// The in-sync replicas, ascending; the leader is one of them.
    pub isr: Vec<NodeId>,
    /// Bumped by every change (Kafka's partition epoch).
    pub version: u64,
    /// Whether the last election chose a replica outside the ISR.
    pub unclean: bool,
}

impl PartitionState {
    /// The state before any election: no leader, every replica in sync, leader epoch
    /// `epoch` (0, or the last epoch of a chain being continued).
    #[must_use]
    pub fn initial(replicas: usize, epoch: u64) -> Self {
        Self {
            leader: None,
            epoch,
            isr: (0..replicas).collect(),
            version: 0,
            unclean: false,
        }
    }
}

/// A metadata change: `next` replaces the state if its version is still `expect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCmd {
    /// The version the change was decided on.
    pub expect: u64,
    /// The new state (its version is `expect + 1`).
    pub next: PartitionState,
}

impl CommandSize for MetaCmd {
    fn size(&self) -> usize {
        8 + 4 + 8 + 8 + 1 + 4 + 4 * self.next.isr.len()
    }
}

/// The controller's state machine: the partition's metadata, and the changes the active
/// controller has decided and not yet handed to its Raft log.
#[derive(Debug, Clone)]
pub struct ControllerApp {
    state: PartitionState,
    queue: VecDeque<MetaCmd>,
}

impl ControllerApp {
    /// The metadata of a partition on `replicas` replicas, before any election, its leader
    /// epochs counting from `epoch`.
    #[must_use]
    pub fn new(replicas: usize, epoch: u64) -> Self {
        Self {
            state: PartitionState::initial(replicas, epoch),
            queue: VecDeque::new(),
        }
    }

    /// The committed metadata.
    #[must_use]
    pub const fn state(&self) -> &PartitionState {
        &self.state
    }

    /// Whether a change waits to enter the log.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.queue.is_empty()
    }

    /// Queues a change of the committed state to `next` (the Raft leader appends it at its
    /// next cut).
    pub fn propose(&mut self, mut next: PartitionState) {
        let expect = self.state.version;
        next.version = expect + 1;
        self.queue.push_back(MetaCmd { expect, next });
    }

    /// Forgets queued changes (this node no longer leads the controller quorum).
    pub fn clear(&mut self) {
        self.queue.clear();
    }
}

impl App for ControllerApp {
    type Command = MetaCmd;

    fn cut(
        &mut self,
        _now: Micros,
        _term: u64,
        _index: u64,
        _tail: &[Arc<Entry<MetaCmd>>],
        _requests: &[Request],
    ) -> Option<(MetaCmd, usize)> {
        self.queue.pop_front().map(|c| (c, 0))
    }

    fn requests(_command: &MetaCmd) -> &[Request] {
        &[]
    }

    fn digest(command: &MetaCmd) -> u64 {
        let s = &command.next;
        let mut h = command.expect ^ 0x6d65_7461;
        for v in [
            s.leader.map_or(u64::MAX, |l| l as u64),
            s.epoch,
            s.version,
            u64::from(s.unclean),
        ]
        .into_iter()
        .chain(s.isr.iter().map(|r| *r as u64))
        {
            h = (h ^ v).wrapping_mul(0x0100_0000_01b3).rotate_left(7);
        }
        h
    }

    fn apply(&mut self, entry: &Entry<MetaCmd>) {
        if let Some(c) = &entry.command
            && c.expect == self.state.version
        {
            self.state = c.next.clone();
        }
    }
}

/// What the controller does about the partition's leader, given which replicas' brokers are
/// alive: `None` when the leader lives; else the new state — the first live ISR member
/// (replica order) leads in the next epoch and the dead leader leaves the ISR; with no live
/// ISR member, an unclean election (when allowed) makes the first live replica the leader
/// and the only ISR member, otherwise the partition goes offline keeping its ISR (so a
/// returning member can lead it cleanly).
#[must_use]
pub fn elect(
    state: &PartitionState,
    replicas: usize,
    alive: impl Fn(NodeId) -> bool,
    unclean: bool,
) -> Option<PartitionState> {
    if state.leader.is_some_and(&alive) {
        return None;
    }
    let dead = state.leader;
    let mut next = state.clone();
    next.epoch += 1;
    next.unclean = false;
    if let Some(c) = state
        .isr
        .iter()
        .copied()
        .find(|r| Some(*r) != dead && alive(*r))
    {
        next.leader = Some(c);
        next.isr.retain(|r| Some(*r) != dead);
        return Some(next);
    }
    if unclean && let Some(c) = (0..replicas).find(|r| alive(*r)) {
        next.leader = Some(c);
        next.isr = vec![c];
        next.unclean = true;
        return Some(next);
    }
    // Offline: bump the epoch only when a leader is deposed.
    dead.map(|_| {
        next.leader = None;
        next
    })
}
