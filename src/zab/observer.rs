//! The safety observer: judges a ZAB run from outside the engines, from what the simulator
//! sees — each server's role after every step, every write that reaches a server's disk, and
//! every delivery. It checks the properties of the DSN 2011 paper (§III) as they happen:
//!
//! - **Agreement and total order** (the prefix property): every server delivers a prefix of
//!   one sequence of transactions;
//! - **Primary order**: along that sequence zxids rise, each epoch's transactions follow one
//!   another from counter 1 without a gap;
//! - **Integrity / validity**: a delivered transaction is one a leader proposed (the content
//!   logged under its zxid), and it is on the disks of a quorum when delivered;
//! - **Primary uniqueness**: one proposal per zxid, and at most one established leader per
//!   epoch;
//! - **History consistency**: two disks holding one zxid hold the same history up to it;
//! - **Established before broadcast**: a leader's new proposal of epoch e reaches a disk only
//!   once a quorum has persisted e as its current epoch (acknowledged NEWLEADER);
//! - **Epochs**: a disk's accepted and current epochs never go back, and the current epoch
//!   never passes the accepted one;
//! - **Certificates**: every delivery carries a quorum's endorsements;
//! - **Exactly-once**: no client request is delivered twice.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use crate::sim::{Micros, NodeId, Observer, Request, Violation};
use crate::zab::engine::{App, Delivered, Durable, Persist, Txn, ZabNode, Zxid};

const fn mix(a: u64, b: u64) -> u64 {
    (a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .rotate_left(29)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn txn_digest<A: App>(t: &Txn<A::Command>) -> u64 {
    mix(mix(t.zxid.epoch, t.zxid.counter), A::digest(&t.command))
}

/// The ZAB safety observer. See the module docs.
#[derive(Debug)]
pub struct ZabObserver<A: App> {
    n: usize,
    base: Zxid,
    /// Established leader of each epoch.
    leaders: HashMap<u64, NodeId>,
    /// The one content per zxid any disk logged.
    proposed: HashMap<Zxid, u64>,
    /// Per server, its disk's history as (zxid, prefix digest).
    disk: Vec<Vec<(Zxid, u64)>>,
    /// Prefix digest of each zxid, as first seen.
    prefixes: HashMap<Zxid, (u64, NodeId)>,
    accepted: Vec<u64>,
    current: Vec<u64>,
    /// The delivered sequence.
    delivered: Vec<(Zxid, u64)>,
    position: HashMap<Zxid, usize>,
    /// Per server, how much of the sequence it delivered.
    node_pos: Vec<usize>,
    requests: HashSet<Request>,
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

impl<A: App> ZabObserver<A> {
    /// An observer of `n` servers whose histories start after `base`, at epoch `base.epoch`.
    #[must_use]
    pub fn new(n: usize, base: Zxid) -> Self {
        Self {
            n,
            base,
            leaders: HashMap::new(),
            proposed: HashMap::new(),
            disk: vec![Vec::new(); n],
            prefixes: HashMap::new(),
            accepted: vec![base.epoch; n],
            current: vec![base.epoch; n],
            delivered: Vec::new(),
            position: HashMap::new(),
            node_pos: vec![0; n],
            requests: HashSet::new(),
            app: PhantomData,
        }
    }

    /// Transactions delivered (by any server).
    #[must_use]
    pub fn delivered_count(&self) -> u64 {
        self.delivered.len() as u64
    }

    /// Whether any server delivered `zxid`.
    #[must_use]
    pub fn was_delivered(&self, zxid: Zxid) -> bool {
        self.position.contains_key(&zxid)
    }

    /// The delivered sequence's zxids.
    #[must_use]
    pub fn sequence(&self) -> Vec<Zxid> {
        self.delivered.iter().map(|(z, _)| *z).collect()
    }

    fn quorum(&self) -> usize {
        self.n / 2 + 1
    }

    fn log_txn(&mut self, now: Micros, node: NodeId, t: &Txn<A::Command>) -> Result<(), Violation> {
        let digest = A::digest(&t.command);
        match self.proposed.get(&t.zxid) {
            Some(d) if *d != digest => {
                return Err(violation(
                    "primary uniqueness",
                    now,
                    vec![node],
                    format!(
                        "node {node} logged another transaction under zxid {}",
                        t.zxid
                    ),
                ));
            }
            Some(_) => {}
            None => {
                // A new proposal: its epoch's leader must be established.
                let current = self.current.iter().filter(|e| **e >= t.zxid.epoch).count();
                if current < self.quorum() {
                    return Err(violation(
                        "established before broadcast",
                        now,
                        vec![node],
                        format!(
                            "proposal {} logged while only {current} servers had epoch {} as their current epoch (NEWLEADER not acknowledged by a quorum)",
                            t.zxid, t.zxid.epoch
                        ),
                    ));
                }
                self.proposed.insert(t.zxid, digest);
            }
        }
        let disk = &mut self.disk[node];
        if let Some((last, _)) = disk.last()
            && t.zxid <= *last
        {
            return Err(violation(
                "history consistency",
                now,
                vec![node],
                format!("node {node} logged {} after {last}", t.zxid),
            ));
        }
        let prefix = mix(disk.last().map_or(0, |(_, p)| *p), txn_digest::<A>(t));
        disk.push((t.zxid, prefix));
        match self.prefixes.get(&t.zxid) {
            Some(&(p, other)) if p != prefix => Err(violation(
                "history consistency",
                now,
                vec![other, node],
                format!(
                    "zxid {} ends different histories on nodes {other} and {node}",
                    t.zxid
                ),
            )),
            Some(_) => Ok(()),
            None => {
                self.prefixes.insert(t.zxid, (prefix, node));
                Ok(())
            }
        }
    }
}

impl<A: App> Observer<ZabNode<A>> for ZabObserver<A> {
    fn stepped(&mut self, now: Micros, node: NodeId, engine: &ZabNode<A>) -> Result<(), Violation> {
        let Some(epoch) = engine.established_epoch() else {
            return Ok(());
        };
        match self.leaders.get(&epoch) {
            Some(&other) if other != node => Err(violation(
                "primary uniqueness",
                now,
                vec![other, node],
                format!("node {other} and node {node} both lead epoch {epoch}"),
            )),
            Some(_) => Ok(()),
            None => {
                self.leaders.insert(epoch, node);
                Ok(())
            }
        }
    }

    fn persisted(
        &mut self,
        now: Micros,
        node: NodeId,
        write: &Persist<A::Command, A::Endorsement>,
        _disk: &Durable<A::Command, A::Endorsement>,
    ) -> Result<(), Violation> {
        match write {
            Persist::AcceptedEpoch(e) | Persist::CurrentEpoch(e) => {
                let accepted = matches!(write, Persist::AcceptedEpoch(_));
                let (old, name) = if accepted {
                    (self.accepted[node], "accepted")
                } else {
                    (self.current[node], "current")
                };
                if *e < old {
                    return Err(violation(
                        "epochs",
                        now,
                        vec![node],
                        format!("node {node} wrote {name} epoch {e} after {old}"),
                    ));
                }
                if accepted {
                    self.accepted[node] = *e;
                } else {
                    if *e > self.accepted[node] {
                        return Err(violation(
                            "epochs",
                            now,
                            vec![node],
                            format!(
                                "node {node} took epoch {e} as current without accepting it (accepted {})",
                                self.accepted[node]
                            ),
                        ));
                    }
                    self.current[node] = *e;
                }
            }
            Persist::Truncate(to) => {
                let keep = self.disk[node].partition_point(|(z, _)| z <= to);
                self.disk[node].truncate(keep);
            }
            Persist::Append(txns) => {
                for t in txns {
                    self.log_txn(now, node, t)?;
                }
            }
            Persist::Snapshot(txns) => {
                self.disk[node].clear();
                for t in txns {
                    self.log_txn(now, node, t)?;
                }
            }
            Persist::Certs(_) => {}
        }
        Ok(())
    }

    fn committed(
        &mut self,
        now: Micros,
        node: NodeId,
        d: &Delivered<A::Command, A::Endorsement>,
    ) -> Result<(), Violation> {
        let zxid = d.txn.zxid;
        let digest = txn_digest::<A>(&d.txn);
        if d.cert.len() < self.quorum() {
            return Err(violation(
                "certificates",
                now,
                vec![node],
                format!(
                    "node {node} delivered {zxid} with {} endorsements, below a quorum of {}",
                    d.cert.len(),
                    self.quorum()
                ),
            ));
        }
        if self.proposed.get(&zxid) != Some(&A::digest(&d.txn.command)) {
            return Err(violation(
                "validity",
                now,
                vec![node],
                format!("node {node} delivered {zxid}, which no leader proposed"),
            ));
        }
        let holders = self
            .disk
            .iter()
            .filter(|h| h.binary_search_by(|(z, _)| z.cmp(&zxid)).is_ok())
            .count();
        if holders < self.quorum() {
            return Err(violation(
                "integrity",
                now,
                vec![node],
                format!("node {node} delivered {zxid}, which only {holders} servers have logged"),
            ));
        }
        let pos = self.node_pos[node];
        if let Some(&at) = self.position.get(&zxid)
            && at < pos
        {
            // Delivered again after a restart: the same transaction, in its place.
            return if self.delivered[at].1 == digest {
                Ok(())
            } else {
                Err(violation(
                    "agreement",
                    now,
                    vec![node],
                    format!("node {node} delivered another transaction as {zxid}"),
                ))
            };
        }
        if let Some(&(expected, agreed)) = self.delivered.get(pos) {
            if expected != zxid || agreed != digest {
                return Err(violation(
                    "agreement",
                    now,
                    vec![node],
                    format!(
                        "node {node} delivered {zxid} where another server delivered {expected}"
                    ),
                ));
            }
            self.node_pos[node] = pos + 1;
            return Ok(());
        }
        // The sequence grows.
        let last = self.delivered.last().map_or(self.base, |(z, _)| *z);
        let follows = if zxid.epoch == last.epoch {
            zxid.counter == last.counter + 1
        } else {
            zxid.epoch > last.epoch && zxid.counter == 1
        };
        if !follows {
            return Err(violation(
                "primary order",
                now,
                vec![node],
                format!("node {node} delivered {zxid} right after {last}"),
            ));
        }
        for r in A::requests(&d.txn.command) {
            if !self.requests.insert(*r) {
                return Err(violation(
                    "exactly-once",
                    now,
                    vec![node],
                    format!(
                        "request {}/{} delivered twice (again in {zxid})",
                        r.client, r.serial
                    ),
                ));
            }
        }
        self.position.insert(zxid, self.delivered.len());
        self.delivered.push((zxid, digest));
        self.node_pos[node] = pos + 1;
        Ok(())
    }
}
