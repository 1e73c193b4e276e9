//! The safety observer of a simulated PBFT run. It judges from outside the engines, by what
//! the honest replicas commit, with no trust in what an engine says of itself:
//!
//! - **agreement**: no two honest replicas execute different digests at one sequence number,
//!   or the same digest with different outcomes (one applying a block another skips, or
//!   reaching another state);
//! - **order**: each honest replica executes sequence numbers one after another, none twice;
//! - **validity**: every request a committed block orders was submitted by a client, and no
//!   honest replica applies a request twice;
//! - **certificates**: every executed entry carries `2f + 1` distinct replicas' valid COMMIT
//!   signatures over (view, sequence, digest) — what `verify` demands of a chain file.
//!
//! Byzantine replicas' commits are not judged: they may do anything.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use crate::pbft::byzantine::Replica;
use crate::pbft::engine::{App, BlockSize, Digest, Executed, NULL, commit_bytes};
use crate::primitives::tx::PubKey;
use crate::sim::{Micros, NodeId, Observer, Request, Violation};

/// The observer. See the module docs.
#[derive(Debug)]
pub struct PbftObserver {
    keys: Vec<PubKey>,
    honest: Vec<bool>,
    decided: BTreeMap<u64, (Digest, bool, Digest, NodeId)>,
    last: Vec<u64>,
    applied: Vec<HashSet<Request>>,
    submitted: HashSet<Request>,
    check_validity: bool,
    entries: u64,
}

impl PbftObserver {
    /// An observer of replicas with `keys`, of which those marked `honest` are judged, that
    /// executed up to `base` before the run. With `check_validity`, requests must have been
    /// submitted during the run (tests that hand requests to nodes directly turn it off).
    #[must_use]
    pub fn new(keys: Vec<PubKey>, honest: Vec<bool>, base: u64, check_validity: bool) -> Self {
        let n = keys.len();
        Self {
            keys,
            honest,
            decided: BTreeMap::new(),
            last: vec![base; n],
            applied: vec![HashSet::new(); n],
            submitted: HashSet::new(),
            check_validity,
            entries: 0,
        }
    }

    /// Distinct sequence numbers executed by an honest replica.
    #[must_use]
    pub fn entries(&self) -> u64 {
        self.entries
    }

    fn certified<B>(&self, e: &Executed<B>, digest: Digest) -> Result<(), String> {
        let (Some(view), Some(seq)) = (e.cert.view, e.cert.sequence) else {
            return Err("the certificate names no view or sequence".into());
        };
        if seq != e.seq {
            return Err(format!("the certificate is for sequence {seq}"));
        }
        let bytes = commit_bytes(view, seq, digest);
        let mut seen = Vec::new();
        for s in &e.cert.signatures {
            let Some(i) = self.keys.iter().position(|k| *k == s.signer) else {
                return Err(format!("{} is not a replica", s.signer));
            };
            if seen.contains(&i) {
                return Err(format!("replica {i} signed twice"));
            }
            if !s.signer.verifies(&bytes, &s.signature) {
                return Err(format!("replica {i}'s signature does not verify"));
            }
            seen.push(i);
        }
        let quorum = crate::consensus::quorum::byzantine_quorum(self.keys.len());
        if seen.len() < quorum {
            return Err(format!("{} signatures; {quorum} are needed", seen.len()));
        }
        Ok(())
    }
}

impl<A: App + Clone> Observer<Replica<A>> for PbftObserver
where
    A::Block: BlockSize,
{
    fn stepped(&mut self, _: Micros, _: NodeId, _: &Replica<A>) -> Result<(), Violation> {
        Ok(())
    }

    fn persisted(
        &mut self,
        _: Micros,
        _: NodeId,
        _: &crate::pbft::engine::Persist<A::Block>,
        _: &crate::pbft::engine::Durable<A::Block>,
    ) -> Result<(), Violation> {
        Ok(())
    }

    fn committed(
        &mut self,
        now: Micros,
        node: NodeId,
        e: &Arc<Executed<A::Block>>,
    ) -> Result<(), Violation> {
        if !self.honest[node] {
            return Ok(());
        }
        let violation = |property, nodes, detail| Violation {
            property,
            time_us: now,
            nodes,
            detail,
        };
        if e.seq != self.last[node] + 1 {
            return Err(violation(
                "order",
                vec![node],
                format!(
                    "node {node} executed sequence {} after {}",
                    e.seq, self.last[node]
                ),
            ));
        }
        self.last[node] = e.seq;
        let digest = e.block.as_ref().map_or(NULL, A::digest);
        if let Err(why) = self.certified(e, digest) {
            return Err(violation(
                "certificate",
                vec![node],
                format!("node {node}'s sequence {}: {why}", e.seq),
            ));
        }
        match self.decided.get(&e.seq) {
            Some((d, _, _, first)) if *d != digest => {
                return Err(violation(
                    "agreement",
                    vec![*first, node],
                    format!(
                        "sequence {}: node {first} executed {}, node {node} executed {}",
                        e.seq,
                        short(*d),
                        short(digest)
                    ),
                ));
            }
            Some((_, applied, state, first)) if *applied != e.applied || *state != e.state => {
                return Err(violation(
                    "agreement",
                    vec![*first, node],
                    format!(
                        "sequence {}: nodes {first} and {node} executed {} into different states",
                        e.seq,
                        short(digest)
                    ),
                ));
            }
            Some(_) => {}
            None => {
                self.decided
                    .insert(e.seq, (digest, e.applied, e.state, node));
                self.entries += 1;
            }
        }
        if e.applied
            && let Some(b) = &e.block
        {
            for r in A::requests(b) {
                if self.check_validity && !self.submitted.contains(r) {
                    return Err(violation(
                        "validity",
                        vec![node],
                        format!(
                            "sequence {} orders request {}/{} no client submitted",
                            e.seq, r.client, r.serial
                        ),
                    ));
                }
                if !self.applied[node].insert(*r) {
                    return Err(violation(
                        "exactly once",
                        vec![node],
                        format!(
                            "node {node} applied request {}/{} twice (again at sequence {})",
                            r.client, r.serial, e.seq
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

fn short(d: Digest) -> String {
    if d == NULL {
        "a no-op".into()
    } else {
        format!("block {}", &d.to_string()[..16])
    }
}
