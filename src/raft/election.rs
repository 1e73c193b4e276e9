//! The Raft paper's election experiment (Ongaro & Ousterhout, USENIX ATC 2014, §9.3 and
//! Figure 16): how long a five-server cluster is without a leader after its leader crashes,
//! for election timeouts drawn from ranges of growing width.
//!
//! Each trial follows the paper's worst case: a stable cluster (broadcast time about 15 ms:
//! one-way delays of 7–8 ms), then the leader broadcasts a new entry that reaches only two of
//! its four followers — so the servers' logs differ and two of them cannot win — and crashes
//! at a uniformly random moment within its heartbeat interval (half the minimum election
//! timeout). The time without a leader runs from the crash until a server becomes leader.
//! Pre-vote and check-quorum are off, as in the paper's Raft. The safety observer watches
//! every trial.

use std::sync::Arc;

use crate::raft::batches::{Batch, Batches};
use crate::raft::engine::{Durable, Entry, Note, RaftConfig, RaftNode};
use crate::raft::observer::RaftObserver;
use crate::sim::{Faults, Host, MS, Micros, NetModel, NodeId, Request, SimRng, Simulator};

/// The paper's ranges of election timeouts, milliseconds.
pub const PAPER_RANGES: [(u64, u64); 6] = [
    (150, 150),
    (150, 151),
    (150, 155),
    (150, 175),
    (150, 200),
    (150, 300),
];

/// How an experiment runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ElectionOptions {
    /// Trials per range.
    pub trials: u64,
    /// The seed.
    pub seed: u64,
    /// A trial without a leader this long stops there (and counts as at least this long).
    pub cap: Micros,
    /// One-way delay, milliseconds.
    pub delay_ms: (f64, f64),
}

impl Default for ElectionOptions {
    fn default() -> Self {
        Self {
            trials: 1_000,
            seed: 1,
            cap: 30_000 * MS,
            delay_ms: (7.0, 8.0),
        }
    }
}

/// One range's downtimes.
#[derive(Debug, Clone, PartialEq)]
pub struct ElectionRun {
    /// The election timeout range, milliseconds.
    pub range_ms: (u64, u64),
    /// Each trial's time without a leader, milliseconds, sorted.
    pub downtimes_ms: Vec<f64>,
    /// Trials that reached the cap.
    pub capped: u64,
}

impl ElectionRun {
    /// The `p`-quantile (0 < p ≤ 1) of the downtimes, milliseconds.
    #[must_use]
    pub fn quantile(&self, p: f64) -> f64 {
        let n = self.downtimes_ms.len();
        if n == 0 {
            return 0.0;
        }
        let i = ((n as f64 * p).ceil() as usize).clamp(1, n) - 1;
        self.downtimes_ms[i]
    }

    /// The mean downtime, milliseconds.
    #[must_use]
    pub fn mean(&self) -> f64 {
        self.downtimes_ms.iter().sum::<f64>() / self.downtimes_ms.len().max(1) as f64
    }
}

struct Quiet;

impl Host<RaftNode<Batches>> for Quiet {
    fn commit(&mut self, _: Micros, _: NodeId, _: &Arc<Entry<Batch>>) {}
    fn note(&mut self, _: Micros, _: NodeId, _: Note) {}
}

fn config(id: NodeId, range: (u64, u64)) -> RaftConfig {
    RaftConfig {
        id,
        members: 5,
        election: (range.0 * MS, range.1 * MS),
        heartbeat: range.0 * MS / 2,
        cut_interval: 1_000_000 * MS,
        max_batch: 1,
        max_append: crate::raft::engine::MAX_APPEND,
        pre_vote: false,
        check_quorum: false,
        #[cfg(test)]
        bug: None,
    }
}

fn leader(sim: &Simulator<RaftNode<Batches>>) -> Option<NodeId> {
    (0..sim.len()).find(|n| sim.engine(*n).is_some_and(crate::sim::Engine::is_leader))
}

/// Runs one trial; the downtime in microseconds (capped).
///
/// # Errors
/// A safety violation the observer saw (a bug).
pub fn trial(
    range: (u64, u64),
    options: &ElectionOptions,
    trial: u64,
) -> Result<Micros, crate::sim::Violation> {
    let seed = options.seed ^ trial.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (range.1 << 40);
    let net = NetModel {
        delay_ms: options.delay_ms,
        drop: 0.0,
        duplicate: 0.0,
        persist_ms: 0.5,
    };
    let boot = Box::new(move |id, disk: &Durable<Batch>, rng| {
        RaftNode::new(config(id, range), disk, rng, Batches::default())
    });
    let mut sim = Simulator::new(5, seed, net, Faults::default(), &Durable::default(), boot);
    let mut observer = RaftObserver::<Batches>::new(5, 0);
    let mut host = Quiet;
    let mut rng = SimRng::new(seed ^ 0x5eed);
    sim.start(&mut observer, &mut host);
    // A stable leader (with no randomness the first election may itself take long).
    let mut warm = 1_000 * MS;
    let l = loop {
        sim.run_until(warm, &mut observer, &mut host, &mut |_| false);
        if let Some(v) = sim.violation() {
            return Err(v.clone());
        }
        if let Some(l) = leader(&sim) {
            break l;
        }
        warm += 1_000 * MS;
        if warm > options.cap {
            return Ok(options.cap);
        }
    };
    // The last broadcast reaches two followers only.
    let mut followers: Vec<NodeId> = (0..5).filter(|n| *n != l).collect();
    for _ in 0..2 {
        let i = rng.range(0, followers.len() as u64 - 1) as usize;
        let cut = followers.remove(i);
        sim.cut_link(l, cut, Micros::MAX);
    }
    sim.submit_to(
        l,
        Request {
            client: 0,
            serial: trial,
        },
    );
    let heartbeat = range.0 * MS / 2;
    let crash_at = sim.now() + rng.range(0, heartbeat);
    sim.run_until(crash_at, &mut observer, &mut host, &mut |_| false);
    sim.crash_now(l);
    let crashed = sim.now();
    sim.run_until(crashed, &mut observer, &mut host, &mut |_| false);
    sim.run_until(crashed + options.cap, &mut observer, &mut host, &mut |s| {
        leader(s).is_some()
    });
    if let Some(v) = sim.violation() {
        return Err(v.clone());
    }
    Ok((sim.now() - crashed).min(options.cap))
}
