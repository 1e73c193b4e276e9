//! The proof-of-stake section of a chain spec (`pos`): the genesis stake distribution, the
//! coin ages, the interest rule, the stake modifier interval and the miner's clock.

use serde::{Deserialize, Serialize};

use crate::chain::spec::{SpecError, SpecSection, bad, bad_owned, check_coins};
use crate::pos::{InterestRule, kernel_weight};
use crate::primitives::tx::Amount;

/// The highest interest rate a spec may set: 10 coins per 365 coin-days (Peercoin: 0.01).
pub const MAX_RATE_PPM: u64 = 10_000_000;

/// A stakeholder of a proof-of-stake genesis: a wallet name and the outputs it starts with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stakeholder {
    /// Wallet name (its key is derived from the spec's `wallet_seed`).
    pub name: String,
    /// The value of each genesis output it owns, in coins.
    pub coins: Vec<f64>,
}

/// How a proof-of-stake miner's clock runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// Chain time jumps ahead as fast as kernels are tried: months of coin-age in seconds.
    #[default]
    Virtual,
    /// Chain time follows the wall clock: one attempt per output per real second.
    Wall,
}

/// Proof-of-stake parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PosSpec {
    /// The genesis stake distribution.
    pub stakeholders: Vec<Stakeholder>,
    /// Age (days, fractions allowed) before an output may stake; its kernel weight starts
    /// from zero there.
    #[serde(default = "default_min_age")]
    pub min_age_days: f64,
    /// Age (days, fractions allowed) at which kernel weight stops growing.
    #[serde(default = "default_max_age")]
    pub max_age_days: f64,
    /// How interest is paid on the coin-age a coinstake consumes.
    #[serde(default = "default_interest")]
    pub interest: InterestRule,
    /// Blocks between stake modifier changes (see [`crate::pos::PosState::stake_modifier`]).
    #[serde(default = "default_modifier_interval")]
    pub modifier_interval: u32,
    /// The miner's clock.
    #[serde(default)]
    pub clock: Clock,
}

const fn default_min_age() -> f64 {
    30.0
}
const fn default_max_age() -> f64 {
    90.0
}
const fn default_interest() -> InterestRule {
    InterestRule::Exact { rate_ppm: 50_000 }
}
const fn default_modifier_interval() -> u32 {
    16
}

impl PosSpec {
    /// Checks the stake distribution and the ages.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.stakeholders.is_empty() {
            return Err(bad("pos.stakeholders", "the stake set is empty"));
        }
        let mut seen = std::collections::HashSet::new();
        for (i, h) in self.stakeholders.iter().enumerate() {
            if h.name.is_empty() || !seen.insert(h.name.as_str()) {
                return Err(bad_owned(
                    format!("pos.stakeholders[{i}].name"),
                    format!("{:?} is empty or not unique", h.name),
                ));
            }
            check_coins(&format!("pos.stakeholders[{i}].coins"), &h.coins)?;
        }
        for (field, days) in [
            ("pos.min_age_days", self.min_age_days),
            ("pos.max_age_days", self.max_age_days),
        ] {
            if !days.is_finite() || !(0.0..=36_500.0).contains(&days) {
                return Err(bad(
                    field,
                    format!("{days} is not a number of days in 0..=36500"),
                ));
            }
        }
        if self.min_age_days > self.max_age_days {
            return Err(bad(
                "pos.min_age_days",
                format!(
                    "min_age_days {} is greater than max_age_days {}",
                    self.min_age_days, self.max_age_days
                ),
            ));
        }
        if self.min_age_s() == self.max_age_s() {
            return Err(bad(
                "pos.max_age_days",
                "equals min_age_days: no output would ever weigh anything, and nothing could stake",
            ));
        }
        if self.max_age_s() == 0 {
            return Err(bad("pos.max_age_days", "must be more than zero"));
        }
        if self.modifier_interval == 0 {
            return Err(bad("pos.modifier_interval", "must be at least 1"));
        }
        // Some output must be able to reach a weight of one coin-day, or nothing ever stakes.
        let span = self.max_age_s() - self.min_age_s();
        let can_stake = self
            .stakeholders
            .iter()
            .flat_map(|h| &h.coins)
            .filter_map(|c| Amount::from_coins_f64(*c).ok())
            .any(|v| kernel_weight(v, self.max_age_s(), self.min_age_s(), self.max_age_s()) >= 1);
        if !can_stake {
            return Err(bad(
                "pos.stakeholders",
                format!(
                    "no output can reach one coin-day of weight in the {} days between the ages: \
                     nothing could ever stake",
                    span / 86_400
                ),
            ));
        }
        if let InterestRule::Exact { rate_ppm } = self.interest
            && rate_ppm > MAX_RATE_PPM
        {
            return Err(bad(
                "pos.interest.rate_ppm",
                format!("{rate_ppm} is more than {MAX_RATE_PPM} (10 coins per coin-year)"),
            ));
        }
        Ok(())
    }
}

impl PosSpec {
    /// The minimum age in seconds.
    #[must_use]
    pub fn min_age_s(&self) -> u64 {
        days_to_seconds(self.min_age_days)
    }

    /// The maximum age in seconds.
    #[must_use]
    pub fn max_age_s(&self) -> u64 {
        days_to_seconds(self.max_age_days)
    }
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn days_to_seconds(days: f64) -> u64 {
    (days * 86_400.0).round() as u64
}

impl SpecSection for PosSpec {
    const KEY: &'static str = "pos";
}
