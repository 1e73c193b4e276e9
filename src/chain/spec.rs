//! Chain specs: the genesis and the rules of a chain, as JSON.
//!
//! A spec names the consensus rule, the genesis header and transaction, the proof-of-work limit,
//! the target spacing and retarget rule, the block reward, the coinbase maturity, and the seed
//! from which the demo wallets' keys are derived. Unknown and missing fields are errors that
//! name the field. The built-in specs live in `chains/` and are compiled in.

use serde::{Deserialize, Serialize};

use crate::consensus::Consensus;
use crate::difficulty::RetargetRule;
use crate::pos::InterestRule;
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256};
use crate::primitives::header::Header;
use crate::primitives::pow_units::{CompactTarget, Target};
use crate::primitives::tx::{Amount, HexBytes, KeyPair, Transaction, TxOut};

/// The built-in specs: name and JSON text.
pub const BUILTIN_SPECS: [(&str, &str); 5] = [
    ("pow-demo", include_str!("../../chains/pow-demo.json")),
    ("pos-demo", include_str!("../../chains/pos-demo.json")),
    ("dpos-demo", include_str!("../../chains/dpos-demo.json")),
    ("poa-demo", include_str!("../../chains/poa-demo.json")),
    ("regtest", include_str!("../../chains/regtest.json")),
];

/// The genesis block's header fields and transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisSpec {
    /// Header version.
    pub version: i32,
    /// Header time.
    pub time: u32,
    /// Header bits: the first target of the chain.
    pub bits: CompactTarget,
    /// Header nonce (the genesis must meet its own target).
    pub nonce: u32,
    /// The genesis transaction's raw bytes in hex; its sha256d is the merkle root.
    pub coinbase_hex: HexBytes,
}

/// The block subsidy schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Subsidy of the first blocks, in coins.
    pub initial: Amount,
    /// Blocks between halvings (210 000 on Bitcoin, 150 on regtest).
    pub halving_interval: u32,
}

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
    /// Blocks between stake modifier changes (see [`crate::chain::state::ChainState::stake_modifier`]).
    #[serde(default = "default_modifier_interval")]
    pub modifier_interval: u32,
    /// The miner's clock.
    #[serde(default)]
    pub clock: Clock,
}

/// Proof-of-authority (Clique) parameters. The block period is the spec's `target_spacing_s`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoaSpec {
    /// The genesis signers (wallet names; keys from the spec's `wallet_seed`).
    pub signers: Vec<String>,
    /// Blocks between checkpoints, which clear pending votes (30 000 on Ethereum).
    #[serde(default = "default_epoch")]
    pub epoch: u32,
}

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

const fn default_epoch() -> u32 {
    30_000
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

/// A chain spec. See the module docs and README for every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Short name; the default chain file is `chains/<name>.jsonl`.
    pub name: String,
    /// The consensus rule (a name in the registry, [`crate::consensus::RULES`]).
    pub consensus: Consensus,
    /// The genesis block.
    pub genesis: GenesisSpec,
    /// The easiest allowed target, 64 hex digits.
    pub pow_limit: Target,
    /// The intended seconds between blocks.
    pub target_spacing_s: u32,
    /// The difficulty rule.
    pub retarget: RetargetRule,
    /// The subsidy schedule.
    pub reward: RewardSpec,
    /// Blocks before a coinbase output may be spent (100 on Bitcoin).
    pub coinbase_maturity: u32,
    /// How far past the verifier's clock a block time may be, in seconds (7200 on Bitcoin).
    pub max_future_s: u32,
    /// Seed from which every wallet key is derived.
    pub wallet_seed: String,
    /// The wallet that receives coinbase rewards (proof of stake: a stakeholder; rewards go
    /// to each block's staker).
    pub miner: String,
    /// Demo wallets that transfers move coins between.
    pub wallets: Vec<String>,
    /// Proof-of-stake parameters (required when `consensus` is `pos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<PosSpec>,
    /// Delegated-proof-of-stake parameters (required when `consensus` is `dpos`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpos: Option<DposSpec>,
    /// Proof-of-authority parameters (required when `consensus` is `poa`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub poa: Option<PoaSpec>,
}

/// Why a spec is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The JSON is malformed or has a missing, unknown or mistyped field.
    #[error("{0}")]
    Json(String),
    /// A field has a value the rules forbid.
    #[error("field `{field}`: {reason}")]
    BadField {
        /// The field's path, e.g. `genesis.bits`.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A field inside a list has a value the rules forbid.
    #[error("field `{field}`: {reason}")]
    BadFieldAt {
        /// The field's path, e.g. `pos.stakeholders[2].coins[0]`.
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// No built-in spec has this name.
    #[error("no built-in spec named {0:?} (built-in: {names})", names = builtin_names().join(", "))]
    UnknownBuiltin(String),
}

/// The names of the built-in specs.
#[must_use]
pub fn builtin_names() -> Vec<&'static str> {
    BUILTIN_SPECS.iter().map(|(n, _)| *n).collect()
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
        if self.max_age_s() == 0 {
            return Err(bad("pos.max_age_days", "must be more than zero"));
        }
        if self.modifier_interval == 0 {
            return Err(bad("pos.modifier_interval", "must be at least 1"));
        }
        Ok(())
    }
}

fn check_names<'a>(
    list: &'static str,
    names: impl IntoIterator<Item = &'a String>,
) -> Result<(), SpecError> {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in names.into_iter().enumerate() {
        if name.is_empty() || !seen.insert(name.as_str()) {
            return Err(bad_owned(
                format!("{list}[{i}]"),
                format!("{name:?} is empty or not unique"),
            ));
        }
    }
    Ok(())
}

fn check_coins(field: &str, coins: &[f64]) -> Result<(), SpecError> {
    if coins.is_empty() {
        return Err(bad_owned(field.to_owned(), "no outputs"));
    }
    for (j, c) in coins.iter().enumerate() {
        let amount =
            Amount::from_coins_f64(*c).map_err(|e| bad_owned(format!("{field}[{j}]"), e))?;
        if amount == Amount::ZERO {
            return Err(bad_owned(format!("{field}[{j}]"), "must be positive"));
        }
    }
    Ok(())
}

impl PoaSpec {
    /// Checks the signer list and the epoch.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.signers.is_empty() {
            return Err(bad("poa.signers", "the signer set is empty"));
        }
        check_names("poa.signers", &self.signers)?;
        if self.epoch == 0 {
            return Err(bad("poa.epoch", "must be at least 1"));
        }
        Ok(())
    }
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

fn bad_owned(field: String, reason: impl Into<String>) -> SpecError {
    SpecError::BadFieldAt {
        field,
        reason: reason.into(),
    }
}

fn bad(field: &'static str, reason: impl Into<String>) -> SpecError {
    SpecError::BadField {
        field,
        reason: reason.into(),
    }
}

impl ChainSpec {
    /// Parses and validates a spec.
    ///
    /// # Errors
    /// [`SpecError::Json`] naming the line, column and field for malformed JSON;
    /// [`SpecError::BadField`] for values outside the rules.
    pub fn from_json(text: &str) -> Result<Self, SpecError> {
        let spec: Self = serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))?;
        spec.validate()?;
        Ok(spec)
    }

    /// Returns the built-in spec called `name`.
    ///
    /// # Errors
    /// [`SpecError::UnknownBuiltin`] when there is none.
    pub fn builtin(name: &str) -> Result<Self, SpecError> {
        let (_, text) = BUILTIN_SPECS
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| SpecError::UnknownBuiltin(name.to_owned()))?;
        Self::from_json(text)
    }

    /// Checks every field's value.
    ///
    /// # Errors
    /// [`SpecError::BadField`] naming the first bad field.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("name", "must be non-empty letters, digits, '-' or '_'"));
        }
        if self.pow_limit == Target::ZERO {
            return Err(bad("pow_limit", "must not be zero"));
        }
        let genesis_target = self
            .genesis
            .bits
            .to_target()
            .map_err(|e| bad("genesis.bits", e.to_string()))?;
        if genesis_target > self.pow_limit {
            return Err(bad("genesis.bits", "target is above pow_limit"));
        }
        if self.target_spacing_s == 0 {
            return Err(bad("target_spacing_s", "must be at least 1"));
        }
        match self.retarget {
            RetargetRule::Bitcoin { interval: 0 } => {
                return Err(bad("retarget.interval", "must be at least 1"));
            }
            RetargetRule::Asert { half_life_s: 0 } => {
                return Err(bad("retarget.half_life_s", "must be at least 1"));
            }
            _ => {}
        }
        if self.reward.halving_interval == 0 {
            return Err(bad("reward.halving_interval", "must be at least 1"));
        }
        if self.miner.is_empty() {
            return Err(bad("miner", "must name a wallet"));
        }
        if self.wallets.iter().any(String::is_empty) {
            return Err(bad("wallets", "wallet names must not be empty"));
        }
        let rule = self.consensus.rule();
        for (section, present) in [
            ("pos", self.pos.is_some()),
            ("dpos", self.dpos.is_some()),
            ("poa", self.poa.is_some()),
        ] {
            if present && rule.info().section != Some(section) {
                return Err(bad(
                    section,
                    format!("only allowed with consensus {section}"),
                ));
            }
        }
        rule.validate_spec(self)?;
        Ok(())
    }

    /// Returns the genesis stake outputs of a proof-of-stake spec: owner key and value, in
    /// spec order (empty for proof of work).
    #[must_use]
    pub fn genesis_allocations(&self) -> Vec<TxOut> {
        let pos = self.pos.iter().flat_map(|p| {
            p.stakeholders
                .iter()
                .map(|h| (h.name.as_str(), h.coins.as_slice()))
        });
        let dpos = self.dpos.iter().flat_map(|d| {
            d.holders
                .iter()
                .map(|h| (h.name.as_str(), h.coins.as_slice()))
        });
        pos.chain(dpos)
            .flat_map(|(name, coins)| {
                let to = KeyPair::derive(&self.wallet_seed, name).pubkey();
                coins.iter().map(move |c| TxOut {
                    value: Amount::from_coins_f64(*c).unwrap_or(Amount::ZERO),
                    to,
                })
            })
            .collect()
    }

    /// Returns the names of the block producers this spec knows: stakeholders, DPoS
    /// candidates or PoA signers (empty for proof of work).
    #[must_use]
    pub fn producer_names(&self) -> Vec<&str> {
        let pos = self
            .pos
            .iter()
            .flat_map(|p| p.stakeholders.iter().map(|h| h.name.as_str()));
        let dpos = self
            .dpos
            .iter()
            .flat_map(|d| d.candidates.iter().map(String::as_str));
        let poa = self
            .poa
            .iter()
            .flat_map(|p| p.signers.iter().map(String::as_str));
        pos.chain(dpos).chain(poa).collect()
    }

    /// Returns the spec's hash: sha256d of its canonical JSON (fields in declaration order).
    #[must_use]
    pub fn spec_hash(&self) -> Hash256 {
        Hash256::hash(
            serde_json::to_string(self)
                .expect("a spec always serialises")
                .as_bytes(),
        )
    }

    /// Builds the genesis block this spec defines: the genesis transaction, and for proof of
    /// stake a second transaction creating the stakeholders' outputs.
    #[must_use]
    pub fn genesis_block(&self) -> Block {
        let mut txs = vec![Transaction::Genesis {
            raw: self.genesis.coinbase_hex.clone(),
        }];
        let allocations = self.genesis_allocations();
        if !allocations.is_empty() {
            txs.push(Transaction::Coinbase {
                height: 0,
                extra_nonce: 0,
                outputs: allocations,
            });
        }
        let mut block = Block {
            header: Header {
                version: self.genesis.version,
                prev_hash: BlockHash::ZERO,
                merkle_root: crate::primitives::hash::MerkleRoot::ZERO,
                time: self.genesis.time,
                bits: self.genesis.bits,
                nonce: self.genesis.nonce,
            },
            txs,
        };
        block.header.merkle_root = block.compute_merkle_root().root;
        block
    }

    /// Returns the intended seconds between blocks: the DPoS slot, else `target_spacing_s`.
    #[must_use]
    pub fn spacing_s(&self) -> f64 {
        self.dpos
            .as_ref()
            .map_or(f64::from(self.target_spacing_s), |d| {
                f64::from(d.slot_ms) / 1000.0
            })
    }

    /// Returns the subsidy of the block at `height`: `initial` halved every
    /// `halving_interval` blocks, zero after 64 halvings (Bitcoin's `GetBlockSubsidy`).
    #[must_use]
    pub fn subsidy(&self, height: u32) -> Amount {
        let halvings = height / self.reward.halving_interval;
        if halvings >= 64 {
            return Amount::ZERO;
        }
        Amount::from_base_units(self.reward.initial.to_base_units() >> halvings)
    }

    /// Returns the miner's key pair.
    #[must_use]
    pub fn miner_key(&self) -> KeyPair {
        KeyPair::derive(&self.wallet_seed, &self.miner)
    }

    /// Returns the name of every key the spec derives — wallets, stakeholders, holders,
    /// signers and DPoS candidates — for messages and reports.
    #[must_use]
    pub fn names_by_key(&self) -> std::collections::HashMap<crate::primitives::tx::PubKey, String> {
        self.wallet_keys()
            .iter()
            .map(|k| (k.pubkey(), k.name().to_owned()))
            .chain(
                self.producer_names()
                    .into_iter()
                    .map(|n| (KeyPair::derive(&self.wallet_seed, n).pubkey(), n.to_owned())),
            )
            .collect()
    }

    /// Returns the key pairs of the miner, every demo wallet and every stakeholder (miner
    /// first, no repeats).
    #[must_use]
    pub fn wallet_keys(&self) -> Vec<KeyPair> {
        let mut names = vec![self.miner.as_str()];
        let stakeholders = self
            .pos
            .iter()
            .flat_map(|p| p.stakeholders.iter().map(|h| &h.name));
        let holders = self
            .dpos
            .iter()
            .flat_map(|d| d.holders.iter().map(|h| &h.name));
        let signers = self.poa.iter().flat_map(|p| p.signers.iter());
        for w in self
            .wallets
            .iter()
            .chain(stakeholders)
            .chain(holders)
            .chain(signers)
        {
            if !names.contains(&w.as_str()) {
                names.push(w);
            }
        }
        names
            .into_iter()
            .map(|n| KeyPair::derive(&self.wallet_seed, n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_specs_parse_and_validate() {
        for (name, _) in BUILTIN_SPECS {
            let spec = ChainSpec::builtin(name).unwrap();
            assert_eq!(spec.name, name);
        }
        assert!(matches!(
            ChainSpec::builtin("nope"),
            Err(SpecError::UnknownBuiltin(_))
        ));
    }

    /// Reference: Bitcoin Core chainparams.cpp, regtest `hashGenesisBlock`.
    #[test]
    fn regtest_genesis_hashes_to_bitcoin_regtest_genesis() {
        let spec = ChainSpec::builtin("regtest").unwrap();
        let genesis = spec.genesis_block();
        assert_eq!(
            genesis.header.merkle_root.to_string(),
            "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"
        );
        assert_eq!(
            genesis.block_hash().to_string(),
            "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_named() {
        let text = BUILTIN_SPECS[1].1;
        let unknown = text.replacen('{', "{\"colour\": 1,", 1);
        let err = ChainSpec::from_json(&unknown).unwrap_err().to_string();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
        value.as_object_mut().unwrap().remove("target_spacing_s");
        let err = ChainSpec::from_json(&value.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `target_spacing_s`"), "{err}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let mut spec = ChainSpec::builtin("regtest").unwrap();
        spec.genesis.bits = CompactTarget::from_consensus(0x2100_ffff);
        let err = spec.validate().unwrap_err();
        assert!(
            matches!(
                err,
                SpecError::BadField {
                    field: "genesis.bits",
                    ..
                }
            ),
            "{err}"
        );
        let mut spec = ChainSpec::builtin("regtest").unwrap();
        spec.retarget = RetargetRule::Asert { half_life_s: 0 };
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("half_life_s")
        );
    }

    /// Edits built-in spec `name` as JSON and asserts the edited spec is refused with an error
    /// containing `needle`.
    fn assert_refused(name: &str, edit: &dyn Fn(&mut serde_json::Value), needle: &str) {
        let mut v = serde_json::to_value(ChainSpec::builtin(name).unwrap()).unwrap();
        edit(&mut v);
        let err = ChainSpec::from_json(&v.to_string())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{err}");
    }

    #[test]
    fn bad_stake_sets_name_the_field() {
        let check = |edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
            assert_refused("pos-demo", edit, needle);
        };
        check(
            &|v| v["pos"]["stakeholders"][2]["coins"][1] = (-5.0).into(),
            "field `pos.stakeholders[2].coins[1]`: amount -5 is not a non-negative number",
        );
        check(
            &|v| v["pos"]["min_age_days"] = 100.0.into(),
            "min_age_days 100 is greater than max_age_days 3",
        );
        check(
            &|v| v["pos"]["stakeholders"] = serde_json::json!([]),
            "stake set is empty",
        );
        check(
            &|v| v["miner"] = "mallory".into(),
            "field `miner`: \"mallory\" is not one of pos.stakeholders",
        );
        check(
            &|v| v["pos"]["stakeholders"][1]["name"] = "alice".into(),
            "not unique",
        );
        check(&|v| v["pos"]["colour"] = 1.into(), "unknown field `colour`");
        check(
            &|v| v["retarget"] = serde_json::json!({"rule": "asert", "half_life_s": 60}),
            "peercoin is the proof-of-stake rule",
        );
    }

    #[test]
    fn bad_producer_sets_name_the_field() {
        let check = assert_refused;
        check(
            "dpos-demo",
            &|v| v["dpos"]["holders"][3]["votes"][0] = "nobody".into(),
            "field `dpos.holders[3].votes[0]`: \"nobody\" is not a candidate",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["max_votes"] = 2.into(),
            "more than max_votes 2",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["producers"] = 101.into(),
            "field `dpos.producers`: 101 producers but only 100 candidates",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["candidates"][5] = "bp001".into(),
            "field `dpos.candidates[5]`",
        );
        check(
            "dpos-demo",
            &|v| {
                v["dpos"]["holders"] =
                    serde_json::json!([{"name": "h", "coins": [1], "votes": ["bp001"]}])
            },
            "the genesis votes approve 1 candidates; 21 producers are needed",
        );
        check(
            "dpos-demo",
            &|v| v["dpos"]["blocks_per_turn"] = 0.into(),
            "field `dpos.blocks_per_turn`: must be at least 1",
        );
        check(
            "dpos-demo",
            &|v| v["retarget"] = serde_json::json!({"rule": "asert", "half_life_s": 60}),
            "the rule must be none",
        );
        check(
            "poa-demo",
            &|v| v["poa"]["signers"] = serde_json::json!([]),
            "signer set is empty",
        );
        check(
            "poa-demo",
            &|v| v["poa"]["epoch"] = 0.into(),
            "field `poa.epoch`",
        );
        check(
            "poa-demo",
            &|v| v["miner"] = "mallory".into(),
            "field `miner`: \"mallory\" is not one of poa.signers",
        );
        check(
            "poa-demo",
            &|v| {
                v["pos"] =
                    serde_json::to_value(ChainSpec::builtin("pos-demo").unwrap().pos).unwrap()
            },
            "field `pos`: only allowed with consensus pos",
        );
        check(
            "poa-demo",
            &|v| {
                v.as_object_mut().unwrap().remove("poa");
            },
            "field `poa`: required when consensus is poa",
        );
    }

    #[test]
    fn subsidy_halves() {
        let spec = ChainSpec::builtin("regtest").unwrap();
        let initial = spec.subsidy(0).to_base_units();
        assert_eq!(spec.subsidy(149).to_base_units(), initial);
        assert_eq!(spec.subsidy(150).to_base_units(), initial / 2);
        assert_eq!(spec.subsidy(150 * 64), Amount::ZERO);
    }
}
