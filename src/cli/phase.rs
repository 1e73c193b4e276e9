//! What `compare` measures of one rule's run and `plot` draws: a phase of blocks with their
//! times and hashes, its cost and its finality.

use std::path::PathBuf;

use chainsmith::ChainSpec;
use chainsmith::consensus::Consensus;
use chainsmith::metrics::energy::EnergyMethod;

/// One mined (or read) block, for the tables and charts.
pub(crate) struct Point {
    /// Block height.
    pub(crate) height: u32,
    /// Block time in seconds (DPoS: of its slot, to the millisecond).
    pub(crate) time: f64,
    /// Hashes for this block (measured, expected work, or recorded kernel attempts).
    pub(crate) hashes: f64,
    /// PoW: the hashes the block's target takes on average, 2^256/(target+1).
    pub(crate) expected_hashes: Option<f64>,
}

/// One consensus rule's run.
pub(crate) struct Phase {
    pub(crate) consensus: Consensus,
    pub(crate) spec: ChainSpec,
    pub(crate) points: Vec<Point>,
    pub(crate) hashes_source: &'static str,
    pub(crate) wall_s: Option<f64>,
    pub(crate) cpu_s: Option<f64>,
    pub(crate) energy_j: Option<f64>,
    pub(crate) method: EnergyMethod,
    /// PoS: each stakeholder's (name, share of genesis stake, share of blocks).
    pub(crate) stake_shares: Vec<(String, f64, f64)>,
    /// Block signatures made (and checked once each by validation).
    pub(crate) signatures: u64,
    /// DPoS, PoA: the last irreversible height at the end.
    pub(crate) irreversible_height: Option<u32>,
    /// DPoS, PoA (live mode): per block that became irreversible, the chain seconds and blocks
    /// until it did.
    pub(crate) finality: Vec<(f64, u32)>,
    /// Ordering rules (live mode): the messages agreeing on the blocks cost.
    pub(crate) network: Option<chainsmith::chain::produce::NetworkCost>,
    /// File mode: the chain file read.
    pub(crate) file: Option<PathBuf>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

impl Phase {
    /// Blocks the rule produced: every block after genesis (the tip's height).
    pub(crate) fn produced(&self) -> usize {
        self.points.len()
    }

    pub(crate) fn hashes(&self) -> f64 {
        self.points.iter().map(|p| p.hashes).sum()
    }

    pub(crate) fn per_block(&self, total: Option<f64>) -> Option<f64> {
        total.map(|t| t / self.produced().max(1) as f64)
    }

    pub(crate) fn hash_rate(&self) -> Option<f64> {
        self.wall_s.filter(|w| *w > 0.0).map(|w| self.hashes() / w)
    }

    pub(crate) fn finality_s(&self) -> Option<f64> {
        median(self.finality.iter().map(|f| f.0).collect())
    }

    pub(crate) fn finality_blocks(&self) -> Option<u32> {
        let mut v: Vec<u32> = self.finality.iter().map(|f| f.1).collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
    }
}
