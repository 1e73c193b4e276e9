//! The stake kernel, its weight, and interest.

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};

use crate::primitives::hash::sha256d;
use crate::primitives::pow_units::Target;
use crate::primitives::tx::{Amount, COIN};

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// The fields a stake kernel hashes (Peercoin v0.3+ layout, 28 bytes, all little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelInput {
    /// The stake modifier in force (8 bytes).
    pub modifier: u64,
    /// Time of the block holding the staked output (Peercoin `nTimeBlockFrom`).
    pub block_time_from: u32,
    /// Position of the staking output's transaction in that block. Peercoin uses the byte
    /// offset of the transaction; this chain uses its index, equally fixed once confirmed.
    pub tx_offset: u32,
    /// Time of the transaction that created the output (equal to its block time here).
    pub tx_time: u32,
    /// The output's index in its transaction.
    pub vout: u32,
    /// The candidate timestamp: the new block's time.
    pub time: u32,
}

impl KernelInput {
    /// Returns the 28-byte preimage.
    #[must_use]
    pub fn preimage(&self) -> [u8; 28] {
        let mut out = [0u8; 28];
        out[0..8].copy_from_slice(&self.modifier.to_le_bytes());
        out[8..12].copy_from_slice(&self.block_time_from.to_le_bytes());
        out[12..16].copy_from_slice(&self.tx_offset.to_le_bytes());
        out[16..20].copy_from_slice(&self.tx_time.to_le_bytes());
        out[20..24].copy_from_slice(&self.vout.to_le_bytes());
        out[24..28].copy_from_slice(&self.time.to_le_bytes());
        out
    }

    /// Returns sha256d of the preimage, 32 bytes in internal order (a little-endian number).
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256d(&self.preimage())
    }
}

/// The kernel weight of an output in whole coin-days:
/// `((value × (min(age, max_age) − min_age)) / COIN) / 86400`, truncating in that order
/// (Peercoin v0.3+). Zero below the minimum age.
#[must_use]
pub fn kernel_weight(value: Amount, age_s: u64, min_age_s: u64, max_age_s: u64) -> u64 {
    if age_s < min_age_s {
        return 0;
    }
    let time_weight = age_s.min(max_age_s) - min_age_s;
    let w = u128::from(value.to_base_units()) * u128::from(time_weight)
        / u128::from(COIN)
        / u128::from(DAY);
    u64::try_from(w).unwrap_or(u64::MAX)
}

/// Returns true if the kernel hash, read as a little-endian 256-bit number, is at most
/// `target × weight` (computed in big integers: the product exceeds 2^256).
#[must_use]
pub fn kernel_meets_target(hash: &[u8; 32], weight: u64, target: Target) -> bool {
    weight > 0 && BigUint::from_bytes_le(hash) <= target.to_biguint() * BigUint::from(weight)
}

/// The coin-age an input consumes, in whole coin-days, uncapped (Peercoin `GetCoinAge`):
/// `cent_seconds = value × age / CENT`, then `((cent_seconds × CENT) / COIN) / 86400`.
#[must_use]
pub fn coin_days(value: Amount, age_s: u64) -> u64 {
    let cent = u128::from(COIN / 100);
    let cent_seconds = u128::from(value.to_base_units()) * u128::from(age_s) / cent;
    u64::try_from(cent_seconds * cent / u128::from(COIN) / u128::from(DAY)).unwrap_or(u64::MAX)
}

/// How a coinstake's interest is computed from the coin-age it consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case", deny_unknown_fields)]
pub enum InterestRule {
    /// The toolkit's rule: `rate` coin per 365 coin-days, on the exact coin-seconds, floored
    /// to a base unit: `floor(value × age_s × rate_ppm / (10^6 × 365 × 86400))`.
    Exact {
        /// Coins of interest per 365 coin-days, in millionths (50 000 = 0.05).
        rate_ppm: u64,
    },
    /// Peercoin's: 1 % per coin-year of 365.2424 days, floored to whole coin-years and paid in
    /// multiples of 0.01 coin: `(coin_days × 33 / (365 × 33 + 8)) × 0.01 coin`.
    Peercoin,
}

/// The interest earned by an input of `value` held `age_s` seconds under `rule`.
#[must_use]
pub fn interest(rule: InterestRule, value: Amount, age_s: u64) -> Amount {
    let units = match rule {
        InterestRule::Exact { rate_ppm } => {
            // Saturating: a huge rate or age pays at most the cap, which the coinstake check
            // then refuses as more than 21 million coins.
            let n = u128::from(value.to_base_units())
                .saturating_mul(u128::from(age_s))
                .saturating_mul(u128::from(rate_ppm));
            n / (1_000_000 * 365 * u128::from(DAY))
        }
        InterestRule::Peercoin => {
            let years = u128::from(coin_days(value, age_s)) * 33 / (365 * 33 + 8);
            years * u128::from(COIN / 100)
        }
    };
    Amount::from_base_units(u64::try_from(units).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coins(n: u64) -> Amount {
        Amount::from_base_units(n * COIN)
    }

    /// Reference: docs/PROTOCOLS.md §1.3, computed example of the v0.3+ layout.
    #[test]
    fn kernel_preimage_and_hash_match_the_worked_example() {
        let k = KernelInput {
            modifier: 0x0123_4567_89ab_cdef,
            block_time_from: 1_400_000_000,
            tx_offset: 81,
            tx_time: 1_399_999_990,
            vout: 1,
            time: 1_400_000_000 + 31 * 86_400,
        };
        assert_eq!(
            hex::encode(k.preimage()),
            "efcdab8967452301004e725351000000f64d725301000000802c9b53"
        );
        let mut shown = k.hash();
        shown.reverse();
        assert_eq!(
            hex::encode(shown),
            "0f1e8bf827677f58c7f25e0743c492ba6090d1ed09a17375903eaa1f5cd80acf"
        );
    }

    /// Reference: docs/PROTOCOLS.md §1.4.
    #[test]
    fn weight_subtracts_min_age_caps_at_max_age_and_truncates() {
        let (min, max) = (30 * DAY, 90 * DAY);
        assert_eq!(kernel_weight(coins(1000), 60 * DAY, min, max), 30_000);
        assert_eq!(kernel_weight(coins(1000), 120 * DAY, min, max), 60_000);
        assert_eq!(kernel_weight(coins(1000), 29 * DAY, min, max), 0);
        // 0.01 coin aged 90 days weighs 0.6 coin-days: truncated to 0, it can never stake.
        assert_eq!(
            kernel_weight(Amount::from_base_units(COIN / 100), 90 * DAY, min, max),
            0
        );
    }

    /// Reference: docs/PROTOCOLS.md §1.7, Peercoin's reward examples.
    #[test]
    fn peercoin_interest_floors_to_whole_coin_years() {
        let cent = COIN / 100;
        let r = |value: Amount, days: u64| interest(InterestRule::Peercoin, value, days * DAY);
        assert_eq!(r(coins(1), 365), Amount::ZERO);
        assert_eq!(r(coins(1), 366), Amount::from_base_units(cent));
        assert_eq!(r(coins(100), 365), Amount::from_base_units(99 * cent));
        assert_eq!(r(coins(1000), 60), Amount::from_base_units(164 * cent));
        assert_eq!(r(coins(1000), 120), Amount::from_base_units(328 * cent));
    }

    #[test]
    fn exact_interest_pays_five_percent_per_coin_year() {
        let rule = InterestRule::Exact { rate_ppm: 50_000 };
        assert_eq!(
            interest(rule, coins(1), 365 * DAY),
            Amount::from_base_units(5_000_000)
        );
        assert_eq!(interest(rule, coins(100), 73 * DAY), coins(1));
        // One base unit of interest needs 1 / 0.05 × 365 × 86400 / 10^8 coin-seconds: less
        // is floored to zero.
        assert_eq!(
            interest(rule, Amount::from_base_units(1), DAY),
            Amount::ZERO
        );
    }

    #[test]
    fn kernel_condition_is_hash_at_most_target_times_weight() {
        let mut hash = [0u8; 32];
        hash[0] = 10;
        let target = Target::from_le_bytes({
            let mut t = [0u8; 32];
            t[0] = 5;
            t
        });
        assert!(kernel_meets_target(&hash, 2, target));
        assert!(!kernel_meets_target(&hash, 1, target));
        assert!(!kernel_meets_target(&hash, 0, Target::MAX));
        // The product may exceed 2^256.
        assert!(kernel_meets_target(&[0xff; 32], 3, Target::MAX));
    }
}
