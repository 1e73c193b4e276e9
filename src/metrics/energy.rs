//! Energy arithmetic (pure maths, no I/O).
//!
//! Where no energy counter can be read, energy is *estimated* from the CPU seconds a phase
//! used and a power model — watts per busy core — the same idea as CodeCarbon's fallback
//! (CPU TDP × utilisation). Every output that uses it says `energy_method: "estimate"`.

use serde::Serialize;

/// TDP of the reference CPU of the default power model: AMD EPYC 9654 (Zen 4), 360 W.
pub const REFERENCE_TDP_W: f64 = 360.0;
/// Cores of the reference CPU: 96.
pub const REFERENCE_CORES: f64 = 96.0;
/// Default watts per busy core: the reference TDP over its cores, 3.75 W.
pub const DEFAULT_WATTS_PER_CORE: f64 = REFERENCE_TDP_W / REFERENCE_CORES;

/// A modern Bitcoin ASIC's efficiency, joules per terahash: about 28 J/TH (the efficiency the
/// Cambridge Bitcoin Electricity Consumption Index assumed for 2025's fleet of new machines).
pub const ASIC_J_PER_TH: f64 = 28.0;

/// A recent Bitcoin mainnet difficulty used by default for extrapolation (late 2025, about
/// 1.5 × 10^14; pass today's with `--mainnet-difficulty`).
pub const DEFAULT_MAINNET_DIFFICULTY: f64 = 1.5e14;

/// How an energy figure was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// Read from the CPU's RAPL energy counters.
    Rapl,
    /// CPU seconds × watts per busy core.
    Estimate,
    /// Nothing ran (figures taken from a chain file): no energy figure.
    None,
}

impl EnergyMethod {
    /// The name used in reports.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Rapl => "rapl",
            Self::Estimate => "estimate",
            Self::None => "none",
        }
    }
}

/// Estimated joules for `cpu_seconds` of busy cores at `watts_per_core`.
#[must_use]
pub fn estimate_joules(cpu_seconds: f64, watts_per_core: f64) -> f64 {
    cpu_seconds.max(0.0) * watts_per_core
}

/// The increase of an energy counter that wraps at `max_range` (RAPL's
/// `max_energy_range_uj`): one wrap between the readings is undone.
#[must_use]
pub fn counter_delta(before: u64, after: u64, max_range: u64) -> u64 {
    if after >= before {
        after - before
    } else {
        max_range.saturating_sub(before) + after
    }
}

/// Expected sha256d hashes to find one Bitcoin block at `difficulty`: `difficulty × 2^48 /
/// 0xffff` (difficulty 1 is the target `0xffff × 2^208`).
#[must_use]
pub fn hashes_per_mainnet_block(difficulty: f64) -> f64 {
    difficulty * 2f64.powi(48) / f64::from(0xffff)
}

/// Joules to find one Bitcoin block at `difficulty` at `joules_per_hash`.
#[must_use]
pub fn mainnet_block_joules(joules_per_hash: f64, difficulty: f64) -> f64 {
    hashes_per_mainnet_block(difficulty) * joules_per_hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn estimate_is_seconds_times_watts() {
        assert!((estimate_joules(2.0, 3.75) - 7.5).abs() < 1e-12);
        assert_eq!(estimate_joules(-1.0, 3.75), 0.0);
        assert!((DEFAULT_WATTS_PER_CORE - 3.75).abs() < 1e-12);
    }

    #[test]
    fn counter_wrap_around_is_undone() {
        assert_eq!(counter_delta(100, 250, 1000), 150);
        assert_eq!(counter_delta(900, 50, 1000), 150);
    }

    #[test]
    fn difficulty_one_is_about_two_to_the_32_hashes() {
        let h = hashes_per_mainnet_block(1.0);
        assert!((h - 4_295_032_833.0).abs() < 1.0, "{h}");
        // At 28 J/TH and difficulty 1.5e14 a block costs about 1.8 × 10^13 J (~5 GWh).
        let j = mainnet_block_joules(ASIC_J_PER_TH * 1e-12, 1.5e14);
        assert!((j / 1e13 - 1.8039).abs() < 0.001, "{j}");
    }
}
