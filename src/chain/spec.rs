//! Chain specs: the genesis and the rules of a chain, as JSON.
//!
//! A spec names the consensus rule, the genesis header and transaction, the proof-of-work limit,
//! the target spacing and retarget rule, the block reward, the coinbase maturity, and the seed
//! from which the demo wallets' keys are derived. Unknown and missing fields are errors that
//! name the field. The built-in specs live in `chains/` and are compiled in.

use serde::{Deserialize, Serialize};

use crate::pow::retarget::RetargetRule;
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256};
use crate::primitives::header::Header;
use crate::primitives::pow_units::{CompactTarget, Target};
use crate::primitives::tx::{Amount, HexBytes, KeyPair, Transaction};

/// The built-in specs: name and JSON text.
pub const BUILTIN_SPECS: [(&str, &str); 2] = [
    ("pow-demo", include_str!("../../chains/pow-demo.json")),
    ("regtest", include_str!("../../chains/regtest.json")),
];

/// The consensus rule a chain runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Consensus {
    /// Proof of work: sha256d(header) ≤ target.
    Pow,
}

impl Consensus {
    /// Returns the lower-case name used in specs and JSON output.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pow => "pow",
        }
    }
}

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

/// A chain spec. See the module docs and README for every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainSpec {
    /// Short name; the default chain file is `chains/<name>.jsonl`.
    pub name: String,
    /// The consensus rule.
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
    /// The wallet that receives coinbase rewards.
    pub miner: String,
    /// Demo wallets that transfers move coins between.
    pub wallets: Vec<String>,
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
    /// No built-in spec has this name.
    #[error("no built-in spec named {0:?} (built-in: pow-demo, regtest)")]
    UnknownBuiltin(String),
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
        Ok(())
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

    /// Builds the genesis block this spec defines.
    #[must_use]
    pub fn genesis_block(&self) -> Block {
        let txs = vec![Transaction::Genesis {
            raw: self.genesis.coinbase_hex.clone(),
        }];
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

    /// Returns the key pairs of the miner and every demo wallet (miner first, no repeats).
    #[must_use]
    pub fn wallet_keys(&self) -> Vec<KeyPair> {
        let mut names = vec![self.miner.as_str()];
        for w in &self.wallets {
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

    #[test]
    fn subsidy_halves() {
        let spec = ChainSpec::builtin("regtest").unwrap();
        let initial = spec.subsidy(0).to_base_units();
        assert_eq!(spec.subsidy(149).to_base_units(), initial);
        assert_eq!(spec.subsidy(150).to_base_units(), initial / 2);
        assert_eq!(spec.subsidy(150 * 64), Amount::ZERO);
    }
}
