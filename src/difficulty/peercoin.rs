//! Proof-of-stake retargeting: Peercoin's per-block exponential moving average
//! (`GetNextTargetRequired`, peercoin `v0.4.0ppc` `src/main.cpp`).

use num_bigint::BigUint;

use crate::primitives::pow_units::{CompactTarget, Target};

/// The next per-coin-day target after a block that came `actual_s` seconds after its parent:
/// `new = old × ((N − 1)·T + 2·actual) / ((N + 1)·T)` with `N = timespan / T`, capped at
/// `limit`. Each block moves the target by `1 + 2(actual − T)/((N + 1)T)`: a block on time
/// leaves it unchanged. Peercoin v0.4 does not clamp `actual`; like BlackCoin, this clamps a
/// negative spacing to `T` and a long one to `10·T`, so that no timestamp can drive the
/// numerator to zero or the target up without bound.
#[must_use]
pub fn peercoin_next_bits(
    old: CompactTarget,
    actual_s: i64,
    spacing_s: u32,
    timespan_s: u32,
    limit: Target,
) -> CompactTarget {
    let t = i64::from(spacing_s);
    let actual = if actual_s < 0 {
        t
    } else {
        actual_s.min(10 * t)
    };
    let n = i64::from(timespan_s / spacing_s.max(1)).max(1);
    let num = (n - 1) * t + 2 * actual;
    let den = (n + 1) * t;
    #[allow(clippy::cast_sign_loss)]
    let new =
        old.decode().value.to_biguint() * BigUint::from(num as u64) / BigUint::from(den as u64);
    Target::from_biguint_saturating(&new)
        .min(limit)
        .to_compact_lossy()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reference: docs/PROTOCOLS.md §1.9, computed examples (T = 600, timespan one week).
    #[test]
    fn reproduces_peercoin_examples() {
        let old = CompactTarget::from_consensus(0x1c00_ffff);
        let limit = Target::MAX;
        let next = |actual| peercoin_next_bits(old, actual, 600, 604_800, limit).to_consensus();
        assert_eq!(next(600), 0x1c00_ffff);
        assert_eq!(next(0), 0x1c00_ff7d);
        assert_eq!(next(1200), 0x1c01_0080);
        // Negative spacing counts as on time; very long spacing is capped at 10·T.
        assert_eq!(next(-5000), 0x1c00_ffff);
        assert_eq!(next(1_000_000), next(6000));
    }
}
