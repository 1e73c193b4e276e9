//! What `compare` measures of one rule's run and `plot` draws: a phase of blocks with their
//! times and hashes, its cost and its finality.

use chainsmith::ChainSpec;
use chainsmith::consensus::Consensus;
use chainsmith::metrics::energy::EnergyMethod;
use serde_json::{Value, json};

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
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
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

    pub(crate) fn finality_blocks(&self) -> Option<f64> {
        median(self.finality.iter().map(|f| f64::from(f.1)).collect())
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "spec": self.spec.name,
            "target_spacing_s": self.spec.spacing_s(),
            // As in `verify`: every block of the chain, genesis included.
            "blocks": self.produced() + 1,
            "height": self.produced(),
            "hashes": self.hashes(),
            "hashes_per_block": self.per_block(Some(self.hashes())),
            "hashes_source": self.hashes_source,
            "hash_rate": self.hash_rate(),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
            "energy_j": self.energy_j,
            "energy_j_per_block": self.per_block(self.energy_j),
            "energy_method": self.method.as_str(),
            "signatures": self.signatures,
            "irreversible_height": self.irreversible_height,
            "time_to_irreversible_s": self.finality_s(),
            "blocks_to_irreversible": self.finality_blocks(),
            "messages_per_block": self.per_block(self.network.map(|n| n.messages as f64)),
            "bytes_per_block": self.per_block(self.network.map(|n| n.bytes as f64)),
            "commit_latency_ms": self.network.and_then(|n| n.commit_latency_ms),
        })
    }
}
