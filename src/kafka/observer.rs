//! The safety observer: judges a Kafka run from outside the brokers, from what the simulator
//! sees — each broker's partition role and log after every step, every write that reaches a
//! disk, and every commit. It checks:
//!
//! - **one leader per epoch**: no two brokers lead the partition in one leader epoch;
//! - **no committed record lost**: a broker that starts leading an epoch holds every record
//!   committed so far (the ISR guarantee: a leader is elected from replicas that have them);
//! - **leader append-only**: a leader never truncates its log, and no replica truncates below
//!   what it committed;
//! - **agreement**: no two brokers commit different records at one offset, and each commits
//!   offsets in order;
//! - **validity**: a committed record answers only requests clients made;
//! - **exactly-once**: no request is committed twice.
//!
//! With `unclean_leader_election` on, losing committed records is what the switch allows:
//! a leader elected without them (or a commit replacing them) is counted as lost committed
//! records, not reported as a violation, and the records after the loss count afresh.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use crate::kafka::engine::{App, Committed, Durable, KafkaNode, Persist, Role};
use crate::sim::{Micros, NodeId, Observer, Request, Violation};

/// The Kafka safety observer. See the module docs.
#[derive(Debug)]
pub struct KafkaObserver<A: App> {
    base: u64,
    unclean: bool,
    leaders: HashMap<u64, NodeId>,
    leading: Vec<Option<u64>>,
    committed: Vec<(u64, Vec<Request>)>,
    node_commit: Vec<u64>,
    applied: HashSet<Request>,
    requested: HashSet<Request>,
    lost: u64,
    losses: u64,
    app: PhantomData<fn() -> A>,
}

fn violation(property: &'static str, now: Micros, nodes: Vec<NodeId>, detail: String) -> Violation {
    Violation {
        property,
        time_us: now,
        nodes,
        detail,
    }
}

impl<A: App> KafkaObserver<A> {
    /// An observer of `n` brokers whose logs start at offset `base`; `unclean`: unclean
    /// leader elections are allowed (losses are counted, not violations).
    #[must_use]
    pub fn new(n: usize, base: u64, unclean: bool) -> Self {
        Self {
            base,
            unclean,
            leaders: HashMap::new(),
            leading: vec![None; n],
            committed: Vec::new(),
            node_commit: vec![base; n],
            applied: HashSet::new(),
            requested: HashSet::new(),
            lost: 0,
            losses: 0,
            app: PhantomData,
        }
    }

    /// Records committed (by any broker) past the base and not lost since.
    #[must_use]
    pub fn committed_count(&self) -> u64 {
        self.committed.len() as u64
    }

    /// Committed records lost to unclean elections.
    #[must_use]
    pub const fn lost(&self) -> u64 {
        self.lost
    }

    /// Unclean elections that lost committed records.
    #[must_use]
    pub const fn losses(&self) -> u64 {
        self.losses
    }

    fn end(&self) -> u64 {
        self.base + self.committed.len() as u64
    }

    /// Forgets the committed records from `offset` on (lost to an unclean election).
    fn lose_from(&mut self, offset: u64) {
        let keep = usize::try_from(offset - self.base).unwrap_or(usize::MAX);
        for (_, requests) in self.committed.drain(keep..) {
            self.lost += 1;
            for r in requests {
                self.applied.remove(&r);
            }
        }
        self.losses += 1;
        for c in &mut self.node_commit {
            *c = (*c).min(offset);
        }
    }
}

impl<A: App> Observer<KafkaNode<A>> for KafkaObserver<A> {
    fn stepped(
        &mut self,
        now: Micros,
        node: NodeId,
        engine: &KafkaNode<A>,
    ) -> Result<(), Violation> {
        if engine.role() != Role::Leader {
            self.leading[node] = None;
            return Ok(());
        }
        let epoch = engine.epoch();
        if self.leading[node] == Some(epoch) {
            return Ok(());
        }
        self.leading[node] = Some(epoch);
        match self.leaders.get(&epoch) {
            Some(&other) if other != node => {
                return Err(violation(
                    "one leader per epoch",
                    now,
                    vec![other, node],
                    format!("node {other} and node {node} both lead epoch {epoch}"),
                ));
            }
            _ => {
                self.leaders.insert(epoch, node);
            }
        }
        let first_missing = (self.base..self.end()).find(|o| {
            let i = usize::try_from(o - self.base).unwrap_or(usize::MAX);
            engine.record(*o).map(|r| A::digest(&r.data)) != Some(self.committed[i].0)
        });
        if let Some(offset) = first_missing {
            if self.unclean {
                self.lose_from(offset);
            } else {
                return Err(violation(
                    "no committed record lost",
                    now,
                    vec![node],
                    format!(
                        "node {node} leads epoch {epoch} without committed offset {offset} ({}); {} committed records would be lost",
                        if engine.record(offset).is_some() {
                            "it holds another record there"
                        } else {
                            "its log ends before it"
                        },
                        self.end() - offset
                    ),
                ));
            }
        }
        Ok(())
    }

    fn persisted(
        &mut self,
        now: Micros,
        node: NodeId,
        write: &Persist<A::Data>,
        _disk: &Durable<A::Data>,
    ) -> Result<(), Violation> {
        let Persist::Truncate(to) = write else {
            return Ok(());
        };
        if self.leading[node].is_some() {
            return Err(violation(
                "leader append-only",
                now,
                vec![node],
                format!("leader node {node} truncated its log to offset {to}"),
            ));
        }
        if *to < self.node_commit[node] {
            if !self.unclean {
                return Err(violation(
                    "no committed record lost",
                    now,
                    vec![node],
                    format!(
                        "node {node} truncated to offset {to} below its committed offset {}",
                        self.node_commit[node]
                    ),
                ));
            }
            self.node_commit[node] = *to;
        }
        Ok(())
    }

    fn committed(
        &mut self,
        now: Micros,
        node: NodeId,
        commit: &Committed<A::Data>,
    ) -> Result<(), Violation> {
        let offset = commit.record.offset;
        if offset != self.node_commit[node] {
            if self.unclean && offset > self.end() {
                // A commit from before a loss, at a broker that has not heard of it yet.
                return Ok(());
            }
            return Err(violation(
                "agreement",
                now,
                vec![node],
                format!(
                    "node {node} committed offset {offset} where its next is {}",
                    self.node_commit[node]
                ),
            ));
        }
        self.node_commit[node] = offset + 1;
        let digest = A::digest(&commit.record.data);
        if offset < self.end() {
            let i = usize::try_from(offset - self.base).unwrap_or(usize::MAX);
            if self.committed[i].0 == digest {
                return Ok(());
            }
            if !self.unclean {
                return Err(violation(
                    "agreement",
                    now,
                    vec![node],
                    format!("node {node} committed another record at offset {offset}"),
                ));
            }
            self.lose_from(offset);
            self.node_commit[node] = offset + 1;
        }
        let requests = A::requests(&commit.record.data).to_vec();
        for r in &requests {
            if !self.requested.contains(r) {
                return Err(violation(
                    "validity",
                    now,
                    vec![node],
                    format!(
                        "offset {offset} answers request {}/{} no client made",
                        r.client, r.serial
                    ),
                ));
            }
            if !self.applied.insert(*r) {
                return Err(violation(
                    "exactly-once",
                    now,
                    vec![node],
                    format!(
                        "request {}/{} committed twice (again at offset {offset})",
                        r.client, r.serial
                    ),
                ));
            }
        }
        self.committed.push((digest, requests));
        Ok(())
    }

    fn requested(&mut self, request: Request) {
        self.requested.insert(request);
    }
}
