//! The safety observer: judges a Raft run from outside the engines, from what the simulator
//! sees — each node's role and term after every step, every write that reaches a node's disk,
//! and every commit. It checks the properties of the paper's Figure 3 as they happen:
//!
//! - **Election Safety**: at most one leader per term;
//! - **Leader Append-Only**: a leader never truncates its log;
//! - **Log Matching**: two logs with an entry of the same index and term hold the same
//!   entries up to it (checked on disk: every entry's prefix digest, keyed by index and term,
//!   must agree across nodes and time);
//! - **Leader Completeness**: a new leader of term T holds every entry committed in a term
//!   before T;
//! - **State Machine Safety**: no two nodes commit different entries at one index, and each
//!   node commits in index order;
//!
//! plus two from the TLA+ spec and the client contract: a node's term on disk never goes back,
//! and no client request is applied twice.

use std::collections::{HashMap, HashSet};
use std::marker::PhantomData;

use crate::raft::engine::{App, Entry, Persist, RaftNode, Role};
use crate::sim::{Micros, NodeId, Observer, Request, Violation};

const fn mix(a: u64, b: u64) -> u64 {
    (a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .rotate_left(29)
        .wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

fn entry_digest<A: App>(e: &Entry<A::Command>) -> u64 {
    let content = e.command.as_ref().map_or(0x6e6f_6f70, A::digest);
    mix(mix(e.term, e.index), content)
}

/// The Raft safety observer. See the module docs.
#[derive(Debug)]
pub struct RaftObserver<A: App> {
    base: u64,
    leaders: HashMap<u64, NodeId>,
    leading: Vec<Option<u64>>,
    prefixes: HashMap<(u64, u64), (u64, NodeId)>,
    disk_prefix: Vec<Vec<u64>>,
    disk_term: Vec<u64>,
    committed: Vec<u64>,
    /// For each committed entry, the lowest term a node was in when it applied it: the entry
    /// was committed in that term or an earlier one.
    commit_terms: Vec<u64>,
    node_terms: Vec<u64>,
    node_commit: Vec<u64>,
    applied: HashSet<Request>,
    app: PhantomData<fn() -> A>,
}

impl<A: App> RaftObserver<A> {
    /// An observer of `n` nodes whose logs start after index `base`.
    #[must_use]
    pub fn new(n: usize, base: u64) -> Self {
        Self {
            base,
            leaders: HashMap::new(),
            leading: vec![None; n],
            prefixes: HashMap::new(),
            disk_prefix: vec![Vec::new(); n],
            disk_term: vec![0; n],
            committed: Vec::new(),
            commit_terms: Vec::new(),
            node_terms: vec![0; n],
            node_commit: vec![base; n],
            applied: HashSet::new(),
            app: PhantomData,
        }
    }

    /// How many entries have been committed (by any node) past the base.
    #[must_use]
    pub fn committed_count(&self) -> u64 {
        self.committed.len() as u64
    }
}

fn violation(property: &'static str, now: Micros, nodes: Vec<NodeId>, detail: String) -> Violation {
    Violation {
        property,
        time_us: now,
        nodes,
        detail,
    }
}

impl<A: App> Observer<RaftNode<A>> for RaftObserver<A> {
    fn stepped(
        &mut self,
        now: Micros,
        node: NodeId,
        engine: &RaftNode<A>,
    ) -> Result<(), Violation> {
        if engine.role() != Role::Leader {
            self.leading[node] = None;
            return Ok(());
        }
        let term = engine.term();
        if self.leading[node] == Some(term) {
            return Ok(());
        }
        self.leading[node] = Some(term);
        match self.leaders.get(&term) {
            Some(&other) if other != node => {
                return Err(violation(
                    "election safety",
                    now,
                    vec![other, node],
                    format!("node {other} and node {node} both lead term {term}"),
                ));
            }
            _ => {
                self.leaders.insert(term, node);
            }
        }
        // Entries committed in earlier terms (a leader of a stale term may win late, and owes
        // nothing to entries committed after its term).
        for (i, (digest, _)) in self
            .committed
            .iter()
            .zip(&self.commit_terms)
            .enumerate()
            .filter(|(_, (_, t))| **t < term)
        {
            let index = self.base + 1 + i as u64;
            let theirs = engine.entry(index).map(|e| entry_digest::<A>(e));
            if theirs != Some(*digest) {
                return Err(violation(
                    "leader completeness",
                    now,
                    vec![node],
                    format!(
                        "node {node} leads term {term} without committed entry {index} ({})",
                        if theirs.is_some() {
                            "it holds another"
                        } else {
                            "missing"
                        }
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
        write: &Persist<A::Command>,
        _disk: &crate::raft::engine::Durable<A::Command>,
    ) -> Result<(), Violation> {
        match write {
            Persist::Hard { term, .. } => {
                if *term < self.disk_term[node] {
                    return Err(violation(
                        "term monotonicity",
                        now,
                        vec![node],
                        format!(
                            "node {node} wrote term {term} after term {}",
                            self.disk_term[node]
                        ),
                    ));
                }
                self.disk_term[node] = *term;
            }
            Persist::Truncate(after) => {
                if self.leading[node].is_some() {
                    return Err(violation(
                        "leader append-only",
                        now,
                        vec![node],
                        format!("leader {node} truncated its log after index {after}"),
                    ));
                }
                let keep = usize::try_from(after.saturating_sub(self.base)).unwrap_or(usize::MAX);
                self.disk_prefix[node].truncate(keep);
            }
            Persist::Append(entries) => {
                for e in entries {
                    let prefixes = &mut self.disk_prefix[node];
                    let expected = self.base + 1 + prefixes.len() as u64;
                    if e.index != expected {
                        return Err(violation(
                            "log matching",
                            now,
                            vec![node],
                            format!(
                                "node {node} wrote entry {} where its log continues at {expected}",
                                e.index
                            ),
                        ));
                    }
                    let prev = prefixes.last().copied().unwrap_or(0);
                    let prefix = mix(prev, entry_digest::<A>(e));
                    prefixes.push(prefix);
                    match self.prefixes.get(&(e.index, e.term)) {
                        Some(&(p, other)) if p != prefix => {
                            return Err(violation(
                                "log matching",
                                now,
                                vec![other, node],
                                format!(
                                    "entry {} of term {} ends different logs on nodes {other} and {node}",
                                    e.index, e.term
                                ),
                            ));
                        }
                        Some(_) => {}
                        None => {
                            self.prefixes.insert((e.index, e.term), (prefix, node));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn committed(
        &mut self,
        now: Micros,
        node: NodeId,
        entry: &std::sync::Arc<Entry<A::Command>>,
    ) -> Result<(), Violation> {
        let index = entry.index;
        let last = self.node_commit[node];
        if index > last + 1 {
            return Err(violation(
                "state machine safety",
                now,
                vec![node],
                format!("node {node} applied entry {index} after entry {last}"),
            ));
        }
        self.node_commit[node] = index;
        let digest = entry_digest::<A>(entry);
        let Some(slot) = index.checked_sub(self.base + 1) else {
            return Ok(());
        };
        let slot = usize::try_from(slot).unwrap_or(usize::MAX);
        let term = self.node_terms[node];
        if let Some(t) = self.commit_terms.get_mut(slot) {
            *t = (*t).min(term);
        }
        if let Some(agreed) = self.committed.get(slot) {
            if *agreed != digest {
                return Err(violation(
                    "state machine safety",
                    now,
                    vec![node],
                    format!(
                        "node {node} applied a different entry at index {index} than another node"
                    ),
                ));
            }
            return Ok(());
        }
        self.committed.push(digest);
        self.commit_terms.push(term);
        if let Some(c) = &entry.command {
            for r in A::requests(c) {
                if !self.applied.insert(*r) {
                    return Err(violation(
                        "exactly-once",
                        now,
                        vec![node],
                        format!(
                            "request {}/{} applied twice (again at index {index})",
                            r.client, r.serial
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}
