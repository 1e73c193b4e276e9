//! Per-worker accounting: shares accepted and rejected (by reason), blocks found, and the hash
//! rate the shares imply.
//!
//! A share of difficulty `d` stands for `d · 2^32` hashes on average, so a worker's hash rate
//! is estimated from the difficulty of its accepted shares over time: an exponentially
//! weighted sum with a five-minute time constant, divided by the time it covers (the
//! worker's whole life while it is younger than that), as ckpool's decaying averages do.

use std::collections::BTreeMap;

use serde::Serialize;

/// Hashes a difficulty-1 share stands for.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// The hash-rate estimator's time constant, seconds.
pub const RATE_WINDOW_S: f64 = 300.0;

/// An exponentially decaying estimate of hashes per second from share difficulties.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateMeter {
    first_s: f64,
    last_s: f64,
    weighted: f64,
}

impl RateMeter {
    /// A meter started at `now_s`.
    #[must_use]
    pub const fn new(now_s: f64) -> Self {
        Self {
            first_s: now_s,
            last_s: now_s,
            weighted: 0.0,
        }
    }

    /// Adds a share of `difficulty` at `now_s`.
    pub fn add(&mut self, difficulty: f64, now_s: f64) {
        let dt = (now_s - self.last_s).max(0.0);
        self.weighted =
            self.weighted * (-dt / RATE_WINDOW_S).exp() + difficulty * HASHES_PER_DIFFICULTY;
        self.last_s = self.last_s.max(now_s);
    }

    /// Hashes per second at `now_s`.
    #[must_use]
    pub fn rate(&self, now_s: f64) -> f64 {
        let age = now_s - self.first_s;
        if age <= 0.0 {
            return 0.0;
        }
        let decayed = self.weighted * (-(now_s - self.last_s).max(0.0) / RATE_WINDOW_S).exp();
        decayed / (RATE_WINDOW_S * (1.0 - (-age / RATE_WINDOW_S).exp()))
    }
}

/// One worker's books.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Accepted shares.
    pub accepted: u64,
    /// The sum of their difficulties.
    pub accepted_difficulty: f64,
    /// Rejected shares by reason ("stale", "duplicate", "low-difficulty", …).
    pub rejected: BTreeMap<&'static str, u64>,
    /// Blocks the worker's shares solved that the chain took.
    pub blocks: u64,
    meter: RateMeter,
}

/// A worker's books as logs and reports show them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkerReport {
    /// `NAME.WORKER` as it authorized.
    pub worker: String,
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares, all reasons.
    pub rejected: u64,
    /// Rejected shares that named a stale or unknown job.
    pub stale: u64,
    /// Rejected shares by reason.
    pub rejected_by_reason: BTreeMap<&'static str, u64>,
    /// The estimated hash rate, hashes per second.
    pub hash_rate: f64,
    /// Blocks found.
    pub blocks: u64,
}

impl WorkerStats {
    /// Empty books opened at `now_s`.
    #[must_use]
    pub fn new(now_s: f64) -> Self {
        Self {
            accepted: 0,
            accepted_difficulty: 0.0,
            rejected: BTreeMap::new(),
            blocks: 0,
            meter: RateMeter::new(now_s),
        }
    }

    /// Counts an accepted share.
    pub fn accept(&mut self, difficulty: f64, now_s: f64) {
        self.accepted += 1;
        self.accepted_difficulty += difficulty;
        self.meter.add(difficulty, now_s);
    }

    /// Counts a rejected share.
    pub fn reject(&mut self, reason: &'static str) {
        *self.rejected.entry(reason).or_default() += 1;
    }

    /// The books at `now_s`.
    #[must_use]
    pub fn report(&self, worker: &str, now_s: f64) -> WorkerReport {
        WorkerReport {
            worker: worker.to_owned(),
            accepted: self.accepted,
            rejected: self.rejected.values().sum(),
            stale: self.rejected.get("stale").copied().unwrap_or(0),
            rejected_by_reason: self.rejected.clone(),
            hash_rate: self.meter.rate(now_s),
            blocks: self.blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_worker_is_measured_at_its_rate() {
        // 10 MH/s with difficulty-0.01 shares: one every 4.29 s.
        let rate = 1e7;
        let d = 0.01;
        let every = d * HASHES_PER_DIFFICULTY / rate;
        let mut m = RateMeter::new(0.0);
        let mut t = 0.0;
        while t < 60.0 {
            t += every;
            m.add(d, t);
        }
        let young = m.rate(t);
        assert!((young / rate - 1.0).abs() < 0.1, "after a minute: {young}");
        while t < 3600.0 {
            t += every;
            m.add(d, t);
        }
        let old = m.rate(t);
        assert!((old / rate - 1.0).abs() < 0.05, "after an hour: {old}");
        // A worker that stops fades away.
        assert!(m.rate(t + 1800.0) < rate * 0.01);
    }

    #[test]
    fn books_count_by_reason() {
        let mut w = WorkerStats::new(0.0);
        w.accept(2.0, 1.0);
        w.reject("stale");
        w.reject("stale");
        w.reject("duplicate");
        let r = w.report("alice.rig", 2.0);
        assert_eq!((r.accepted, r.rejected, r.stale), (1, 3, 2));
        assert_eq!(r.rejected_by_reason.get("duplicate"), Some(&1));
        assert!(r.hash_rate > 0.0);
    }
}
