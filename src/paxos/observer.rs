//! The safety observer: judges a Paxos run from outside the engines, from what the simulator
//! sees — every write that reaches a node's disk and every slot a node executes. It checks:
//!
//! - **agreement**: no two nodes execute different values in one slot (Paxos's safety: at
//!   most one value is chosen per instance);
//! - **order**: each node executes slots in order, none skipped;
//! - **validity**: every request a chosen value orders was submitted by a client;
//! - **exactly-once**: no request is ordered in two slots;
//! - **certificates**: every executed slot carries 2b signatures of a majority of distinct
//!   members over (ballot, slot, value digest);
//! - **acceptor rules** on disk: a node's promise never goes back, and it never writes a vote
//!   below the ballot it promised.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;
use std::sync::Arc;

use crate::paxos::engine::{
    App, Ballot, Chosen, Digest, Durable, NOOP, PaxosNode, Persist, accepted_bytes,
};
use crate::primitives::tx::PubKey;
use crate::sim::{Micros, NodeId, Observer, Request, Violation};

/// The Paxos safety observer. See the module docs.
#[derive(Debug)]
pub struct PaxosObserver<A: App> {
    keys: Vec<PubKey>,
    base: u64,
    agreed: HashMap<u64, (Digest, NodeId)>,
    certified: HashSet<(u64, Ballot)>,
    executed: Vec<u64>,
    promised: Vec<Ballot>,
    submitted: HashSet<Request>,
    ordered: HashMap<Request, u64>,
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

impl<A: App> PaxosObserver<A> {
    /// An observer of the members with `keys`, whose slots start after `base`.
    #[must_use]
    pub fn new(keys: Vec<PubKey>, base: u64) -> Self {
        let n = keys.len();
        Self {
            keys,
            base,
            agreed: HashMap::new(),
            certified: HashSet::new(),
            executed: vec![base; n],
            promised: vec![Ballot::ZERO; n],
            submitted: HashSet::new(),
            ordered: HashMap::new(),
            app: PhantomData,
        }
    }

    /// Slots chosen (executed by any node) past the base.
    #[must_use]
    pub fn chosen_count(&self) -> u64 {
        self.agreed.len() as u64
    }

    fn check_certificate(&self, c: &Chosen<A::Value>, digest: Digest) -> Result<(), String> {
        let message = accepted_bytes(c.ballot, c.slot, digest);
        let mut signers = Vec::new();
        for s in &c.signatures {
            if !self.keys.contains(&s.signer) {
                return Err(format!("a signer of slot {} is not a member", c.slot));
            }
            if signers.contains(&s.signer) {
                return Err(format!("slot {}: a member signed twice", c.slot));
            }
            if !s.signer.verifies(&message, &s.signature) {
                return Err(format!(
                    "slot {}: a signature is not over ballot {}, the slot and the value",
                    c.slot, c.ballot
                ));
            }
            signers.push(s.signer);
        }
        let majority = self.keys.len() / 2 + 1;
        if signers.len() < majority {
            return Err(format!(
                "slot {} chosen with {} votes, a majority is {majority}",
                c.slot,
                signers.len()
            ));
        }
        Ok(())
    }
}

impl<A: App> Observer<PaxosNode<A>> for PaxosObserver<A> {
    fn stepped(
        &mut self,
        _now: Micros,
        _node: NodeId,
        _engine: &PaxosNode<A>,
    ) -> Result<(), Violation> {
        Ok(())
    }

    fn persisted(
        &mut self,
        now: Micros,
        node: NodeId,
        write: &Persist<A::Value>,
        _disk: &Durable<A::Value>,
    ) -> Result<(), Violation> {
        let promised = self.promised[node];
        match write {
            Persist::Promise(b) => {
                if *b < promised {
                    return Err(violation(
                        "acceptor rules",
                        now,
                        vec![node],
                        format!("node {node} promised ballot {b} after promising {promised}"),
                    ));
                }
                self.promised[node] = *b;
            }
            Persist::Vote(slot, vote) => {
                if vote.ballot < promised {
                    return Err(violation(
                        "acceptor rules",
                        now,
                        vec![node],
                        format!(
                            "node {node} voted in slot {slot} at ballot {} below its promise {promised}",
                            vote.ballot
                        ),
                    ));
                }
                self.promised[node] = vote.ballot;
            }
            Persist::Chosen(_) => {}
        }
        Ok(())
    }

    fn committed(
        &mut self,
        now: Micros,
        node: NodeId,
        c: &Arc<Chosen<A::Value>>,
    ) -> Result<(), Violation> {
        let last = self.executed[node];
        if c.slot > last + 1 {
            return Err(violation(
                "order",
                now,
                vec![node],
                format!("node {node} executed slot {} after slot {last}", c.slot),
            ));
        }
        self.executed[node] = c.slot;
        if c.slot <= self.base {
            return Ok(());
        }
        let digest = c.value.as_ref().map_or(NOOP, A::digest);
        if self.certified.insert((c.slot, c.ballot))
            && let Err(detail) = self.check_certificate(c, digest)
        {
            return Err(violation("certificates", now, vec![node], detail));
        }
        if let Some(&(agreed, first)) = self.agreed.get(&c.slot) {
            if agreed != digest {
                return Err(violation(
                    "agreement",
                    now,
                    vec![first, node],
                    format!(
                        "node {first} and node {node} executed different values in slot {}",
                        c.slot
                    ),
                ));
            }
            return Ok(());
        }
        self.agreed.insert(c.slot, (digest, node));
        if let Some(v) = &c.value {
            for r in A::requests(v) {
                if !self.submitted.contains(r) {
                    return Err(violation(
                        "validity",
                        now,
                        vec![node],
                        format!(
                            "slot {} orders request {}/{}, which no client submitted",
                            c.slot, r.client, r.serial
                        ),
                    ));
                }
                if let Some(earlier) = self.ordered.insert(*r, c.slot) {
                    return Err(violation(
                        "exactly-once",
                        now,
                        vec![node],
                        format!(
                            "request {}/{} ordered in slot {earlier} and again in slot {}",
                            r.client, r.serial, c.slot
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn requested(&mut self, request: Request) {
        self.submitted.insert(request);
    }
}
