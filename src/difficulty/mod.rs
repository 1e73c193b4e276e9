//! Difficulty retargeting, shared by every rule that solves a puzzle: Bitcoin's 2016-block rule,
//! ASERT (aserti3-2d), and Peercoin's per-block rule for proof of stake ([`peercoin`]).
//!
//! All are pure functions of the headers they look at, so verification recomputes exactly
//! what a miner used.

pub mod peercoin;

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};

use crate::primitives::pow_units::{CompactTarget, Target};

/// How a chain's difficulty follows its block rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetargetRule {
    /// Every block keeps the genesis bits (Bitcoin regtest's `fPowNoRetargeting`).
    None,
    /// Bitcoin's rule: every `interval` blocks, scale the target by the time the previous
    /// `interval − 1` intervals took over `interval × spacing`, clamped to ×4 / ÷4.
    Bitcoin {
        /// Blocks per retarget period (2016 on Bitcoin).
        interval: u32,
    },
    /// ASERT (aserti3-2d, Bitcoin Cash, Nov 2020): a per-block exponential rule anchored at the
    /// genesis block; the target doubles for every `half_life_s` the chain falls behind
    /// schedule and halves for every `half_life_s` it runs ahead.
    Asert {
        /// Seconds of schedule drift that double or halve the target.
        half_life_s: u32,
    },
    /// Peercoin's proof-of-stake rule: a per-block moving average of the spacing over
    /// `timespan_s` (see [`crate::difficulty::peercoin::peercoin_next_bits`]).
    Peercoin {
        /// The averaging window in seconds (one week on Peercoin).
        timespan_s: u32,
    },
}

/// Bitcoin Core's `CalculateNextWorkRequired`: the bits of the first block of a new period.
///
/// `first_time` is the time of the block `interval` blocks before the new one (Core's
/// off-by-one: the span covers `interval − 1` intervals), `last_time` the time of its parent.
/// The product is computed before the division, in big integers, and capped at `pow_limit`.
#[must_use]
pub fn bitcoin_next_bits(
    last_bits: CompactTarget,
    first_time: u32,
    last_time: u32,
    target_timespan: u32,
    pow_limit: Target,
) -> CompactTarget {
    let timespan = i64::from(target_timespan);
    let actual = (i64::from(last_time) - i64::from(first_time)).clamp(timespan / 4, timespan * 4);
    let old = last_bits.decode().value.to_biguint();
    #[allow(clippy::cast_sign_loss)]
    let new = old * BigUint::from(actual as u64) / BigUint::from(timespan as u64);
    let new = Target::from_biguint_saturating(&new).min(pow_limit);
    new.to_compact_lossy()
}

/// The anchor an ASERT chain measures its schedule from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsertAnchor {
    /// The anchor block's bits.
    pub bits: CompactTarget,
    /// The anchor block's height.
    pub height: u32,
    /// The time of the anchor block's parent (for a genesis anchor: genesis time − spacing).
    pub parent_time: i64,
}

/// ASERT (aserti3-2d): the bits of the block after `eval_height`/`eval_time`.
///
/// Exact integer algorithm of the Bitcoin Cash specification (v0.5.1): a fixed-point exponent
/// with 16 fractional bits, a cubic approximation of `2^frac`, and shifts.
#[must_use]
pub fn asert_next_bits(
    anchor: AsertAnchor,
    eval_height: u32,
    eval_time: i64,
    spacing: u32,
    half_life: u32,
    pow_limit: Target,
) -> CompactTarget {
    let time_delta = i128::from(eval_time) - i128::from(anchor.parent_time);
    let height_delta = i128::from(eval_height) - i128::from(anchor.height);
    // Rust's `/` truncates toward zero, as the spec's `trunc_div` requires.
    let exponent =
        (time_delta - i128::from(spacing) * (height_delta + 1)) * 65536 / i128::from(half_life);
    let shifts = exponent >> 16; // arithmetic shift: floor
    let frac = (exponent - shifts * 65536) as u128;
    let factor = 65536
        + ((195_766_423_245_049 * frac
            + 971_821_376 * frac * frac
            + 5127 * frac * frac * frac
            + (1u128 << 47))
            >> 48);
    let mut next = anchor.bits.decode().value.to_biguint() * BigUint::from(factor);
    let shifts = shifts - 16;
    if shifts < 0 {
        next >>= usize::try_from(-shifts).unwrap_or(usize::MAX);
    } else if shifts > 256 {
        return pow_limit.to_compact_lossy();
    } else {
        next <<= usize::try_from(shifts).unwrap_or(0);
    }
    if next.bits() == 0 {
        return Target::from_le_bytes({
            let mut one = [0u8; 32];
            one[0] = 1;
            one
        })
        .to_compact_lossy();
    }
    let next = Target::from_biguint_saturating(&next);
    if next > pow_limit {
        pow_limit.to_compact_lossy()
    } else {
        next.to_compact_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(b: u32) -> CompactTarget {
        CompactTarget::from_consensus(b)
    }

    fn mainnet_limit() -> Target {
        Target::from_hex(&format!("00000000{}", "f".repeat(56))).unwrap()
    }

    /// Reference: docs/PROTOCOLS.md §3.3, vectors verified against the BCHN qa-assets runs.
    #[test]
    fn asert_reproduces_specification_vectors() {
        let anchor = AsertAnchor {
            bits: bits(0x1d00_ffff),
            height: 1,
            parent_time: 0,
        };
        let cases = [
            (2, 0x1d00_fec5),
            (290, 0x1c7f_62c0),
            (2306, 0x1c00_fec5),
            (62_498, 0x017f_0000),
            (64_514, 0x0101_0000),
        ];
        for (height, expected) in cases {
            // The vectors give the evaluated block; its successor's bits are computed.
            let got = asert_next_bits(anchor, height, 0, 600, 172_800, mainnet_limit());
            assert_eq!(got, bits(expected), "height {height}");
        }
    }

    #[test]
    fn asert_half_life_doubles_and_halves() {
        let anchor = AsertAnchor {
            bits: bits(0x1b04_04cb),
            height: 0,
            parent_time: -600,
        };
        let limit = mainnet_limit();
        let on = asert_next_bits(anchor, 10, 6000, 600, 172_800, limit);
        let ahead = asert_next_bits(anchor, 10, 6000 - 172_800, 600, 172_800, limit);
        let behind = asert_next_bits(anchor, 10, 6000 + 172_800, 600, 172_800, limit);
        assert_eq!(on, bits(0x1b04_04cb));
        assert_eq!(ahead, bits(0x1b02_0265));
        assert_eq!(behind, bits(0x1b08_0996));
    }
}
