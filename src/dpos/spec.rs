//! The delegated-proof-of-stake section of a chain spec (`dpos`): candidates, token holders
//! and their genesis votes, and the schedule parameters.

use serde::{Deserialize, Serialize};

use crate::chain::spec::{SpecError, SpecSection, bad, bad_owned, check_coins, check_names};

/// How a DPoS round orders its producers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleOrder {
    /// Sorted by name, as EOSIO does.
    #[default]
    Eosio,
    /// Shuffled each round with BitShares' generator, seeded from the previous block's hash.
    Bitshares,
}

/// A DPoS token holder: its genesis outputs and its genesis approval vote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenHolder {
    /// Wallet name (its key is derived from the spec's `wallet_seed`).
    pub name: String,
    /// The value of each genesis output it owns, in coins.
    pub coins: Vec<f64>,
    /// The candidates it approves at genesis (at most `max_votes`).
    pub votes: Vec<String>,
}

/// Delegated-proof-of-stake parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DposSpec {
    /// The candidate producers (wallet names).
    pub candidates: Vec<String>,
    /// The token holders: their stake and votes.
    pub holders: Vec<TokenHolder>,
    /// Active producers per round (21 on EOSIO).
    #[serde(default = "default_producers")]
    pub producers: u32,
    /// Consecutive slots each producer gets per round (12 on EOSIO).
    #[serde(default = "default_blocks_per_turn")]
    pub blocks_per_turn: u32,
    /// Slot length in milliseconds (500 on EOSIO).
    #[serde(default = "default_slot_ms")]
    pub slot_ms: u32,
    /// Candidates one holder may approve (30 on EOSIO).
    #[serde(default = "default_max_votes")]
    pub max_votes: u32,
    /// Producer order within a round.
    #[serde(default)]
    pub order: ScheduleOrder,
}

const fn default_producers() -> u32 {
    21
}
const fn default_blocks_per_turn() -> u32 {
    12
}
const fn default_slot_ms() -> u32 {
    500
}
const fn default_max_votes() -> u32 {
    30
}

impl DposSpec {
    /// Checks candidates, holders, votes and the schedule parameters; the genesis votes must
    /// elect a full set of producers.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        check_names("dpos.candidates", &self.candidates)?;
        if self.candidates.len() > usize::from(u16::MAX) {
            return Err(bad("dpos.candidates", "more than 65 535 candidates"));
        }
        check_names("dpos.holders", self.holders.iter().map(|h| &h.name))?;
        for (field, value) in [
            ("dpos.producers", self.producers),
            ("dpos.blocks_per_turn", self.blocks_per_turn),
            ("dpos.slot_ms", self.slot_ms),
            ("dpos.max_votes", self.max_votes),
        ] {
            if value == 0 {
                return Err(bad(field, "must be at least 1"));
            }
        }
        // A producer scans two rounds of slots for an online owner: keep rounds bounded.
        for (field, value, max) in [
            ("dpos.blocks_per_turn", self.blocks_per_turn, 1_000),
            ("dpos.slot_ms", self.slot_ms, 3_600_000),
        ] {
            if value > max {
                return Err(bad(field, format!("{value} is more than {max}")));
            }
        }
        if self.producers as usize > self.candidates.len() {
            return Err(bad(
                "dpos.producers",
                format!(
                    "{} producers but only {} candidates",
                    self.producers,
                    self.candidates.len()
                ),
            ));
        }
        let mut approved = std::collections::HashSet::new();
        for (i, h) in self.holders.iter().enumerate() {
            check_coins(&format!("dpos.holders[{i}].coins"), &h.coins)?;
            if h.votes.len() > self.max_votes as usize {
                return Err(bad_owned(
                    format!("dpos.holders[{i}].votes"),
                    format!(
                        "{} votes, more than max_votes {}",
                        h.votes.len(),
                        self.max_votes
                    ),
                ));
            }
            let mut own = std::collections::HashSet::new();
            for (j, v) in h.votes.iter().enumerate() {
                if !self.candidates.contains(v) || !own.insert(v) {
                    return Err(bad_owned(
                        format!("dpos.holders[{i}].votes[{j}]"),
                        format!("{v:?} is not a candidate, or is listed twice"),
                    ));
                }
                approved.insert(v);
            }
        }
        if approved.len() < self.producers as usize {
            return Err(bad(
                "dpos.holders",
                format!(
                    "the genesis votes approve {} candidates; {} producers are needed",
                    approved.len(),
                    self.producers
                ),
            ));
        }
        Ok(())
    }

    /// Slots per round: producers × blocks per turn.
    #[must_use]
    pub const fn round_slots(&self) -> u64 {
        self.producers as u64 * self.blocks_per_turn as u64
    }
}

impl SpecSection for DposSpec {
    const KEY: &'static str = "dpos";
}
