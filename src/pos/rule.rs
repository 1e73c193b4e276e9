//! The proof-of-stake rule: its seal (the staker's signature), its contextual check (the
//! coinstake and its kernel), and its state along a chain (the stake modifier's recent block
//! hashes and what each stakeholder has staked).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::chain::ledger::{LedgerDelta, Origin};
use crate::chain::produce::{ProduceEnv, ProduceError, ProduceOptions, Producer, Step};
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::{BlockError, ChainState, check_maturity, sum_outputs};
use crate::chain::wallet::demo_transfers;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, ProducerRow, Rule, RuleError, RuleInfo,
    RuleReport, RuleState, SpecNames, TimeRule, check_miner_listed,
};
use crate::difficulty::RetargetRule;
use crate::pos::spec::{Clock, PosSpec};
use crate::pos::stake::{StakeOutcome, earliest_stake_time, find_stake, stake_block};
use crate::pos::{KernelInput, coin_days, interest, kernel_meets_target, kernel_weight};
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256};
use crate::primitives::tx::{Amount, KeyPair, MAX_MONEY, PubKey, Transaction};

/// Why a block breaks the proof-of-stake rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PosError {
    /// The block has no coinstake as its second transaction.
    #[error("proof-of-stake block has no coinstake as its second transaction")]
    MissingCoinstake,
    /// The coinstake does not spend exactly one output.
    #[error("coinstake spends {0} outputs; it must spend exactly one (the kernel)")]
    CoinstakeInputs(usize),
    /// The coinstake pays nobody.
    #[error("coinstake has no outputs; it must pay the staker")]
    CoinstakeNoOutputs,
    /// The staked output is younger than the minimum age.
    #[error("staked output is {age_s} s old, younger than the minimum age {min_age_s} s")]
    StakeTooYoung {
        /// Its age at the block time.
        age_s: u64,
        /// The minimum age.
        min_age_s: u64,
    },
    /// The kernel hash is above target × weight.
    #[error("kernel hash {hash} is above target × weight (weight {weight} coin-days)")]
    KernelAboveTarget {
        /// The kernel hash (display order).
        hash: Hash256,
        /// The staked output's weight.
        weight: u64,
    },
    /// The coinstake pays more than the staked value plus interest.
    #[error("coinstake pays {paid} but stake + interest is {allowed}")]
    CoinstakeTooLarge {
        /// The coinstake's outputs.
        paid: Amount,
        /// Staked value plus interest.
        allowed: Amount,
    },
    /// The coinstake's first output is not paid to the staker.
    #[error("coinstake must pay the staker {owner} first")]
    CoinstakeNotToStaker {
        /// The staked output's owner.
        owner: PubKey,
    },
}

impl From<PosError> for BlockError {
    fn from(e: PosError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Proof of stake, Peercoin style: `sha256d(kernel) ≤ target × coin-age weight`.
#[derive(Debug, Clone, Copy)]
pub struct Pos;

const POS_INFO: RuleInfo = RuleInfo {
    name: "pos",
    summary: "Proof of stake: sha256d(kernel) ≤ target × coin-age (Peercoin-style)",
    work: BlockWork::KernelSearch,
    demo_blocks: 20,
    time_rule: TimeRule::MedianTimePast,
    section: Some(SectionDef::of::<PosSpec>()),
    detects_equivocation: false,
};

impl Rule for Pos {
    fn info(&self) -> &'static RuleInfo {
        &POS_INFO
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        let holders = spec
            .section::<PosSpec>()
            .map_or(&[][..], |p| &p.stakeholders);
        let names: Vec<&str> = holders.iter().map(|h| h.name.as_str()).collect();
        SpecNames {
            producers: names.clone(),
            wallets: names,
            genesis: holders
                .iter()
                .map(|h| (h.name.as_str(), h.coins.as_slice()))
                .collect(),
        }
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let pos = spec
            .section::<PosSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "pos",
                reason: "required when consensus is pos".into(),
            })?;
        pos.validate()?;
        let names: Vec<String> = pos.stakeholders.iter().map(|h| h.name.clone()).collect();
        check_miner_listed(spec, "pos.stakeholders", &names)?;
        if !matches!(spec.retarget, RetargetRule::Peercoin { .. }) {
            return Err(SpecError::BadField {
                field: "retarget.rule",
                reason: "peercoin is the proof-of-stake rule, and only it".into(),
            });
        }
        Ok(())
    }

    /// The staker: the coinstake's payee.
    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Coinstake { outputs, .. }) => Some(BlockProducer {
                key: outputs
                    .first()
                    .map_or(PubKey::from_bytes([0; 32]), |o| o.to),
                note: None,
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, _tx: &Transaction) -> bool {
        index == 1
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(PosState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(POS_INFO.name, &[])?;
        Ok(Box::new(PosProducer {
            keys: spec.wallet_keys(),
            tx_per_block: options.tx_per_block,
            wall_clock: spec
                .section::<PosSpec>()
                .is_some_and(|p| p.clock == Clock::Wall),
            max_future_s: spec.max_future_s,
            stake_from: 0,
        }))
    }
}

/// How long a producer waits for the clock when no output is eligible before it says so
/// instead: an hour.
const MAX_IDLE_S: u64 = 3_600;

/// No output the spec's wallets hold can stake before the clock allows (chain time runs at
/// most `max_future_s` ahead of the machine's clock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NothingToStake {
    /// The first output becomes eligible at this Unix time, hours away.
    #[error(
        "no output can stake before Unix time {0}, more than an hour past what this machine's \
         clock allows; the blocks so far are kept, and `mine` continues from them then"
    )]
    Until(u64),
    /// No output ever will.
    #[error(
        "no output the spec's wallets hold can ever stake: none is both mature (coinbase and \
         coinstake outputs mature only as blocks come) and heavy enough"
    )]
    Never,
}

impl From<NothingToStake> for ProduceError {
    fn from(e: NothingToStake) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Stakes blocks with every stakeholder's outputs, with demo transfers between the wallets.
struct PosProducer {
    keys: Vec<KeyPair>,
    tx_per_block: usize,
    /// Chain time follows the clock (else it runs ahead, up to the future limit).
    wall_clock: bool,
    max_future_s: u32,
    /// The first second not yet searched for the next block.
    stake_from: u32,
}

impl Producer for PosProducer {
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let from = self.stake_from.max(earliest_stake_time(state));
        let until = if self.wall_clock {
            env.now
        } else {
            env.now.saturating_add(self.max_future_s)
        };
        let backend = env.search.backend;
        Ok(
            match find_stake(state, &self.keys, (from, until), backend, env.control) {
                StakeOutcome::Found(stake) => {
                    let height = state.next_height();
                    let transfers = demo_transfers(
                        state,
                        &self.keys,
                        self.tx_per_block,
                        height,
                        &[stake.outpoint],
                    );
                    let mut record = stake_block(state, &self.keys, &stake, transfers);
                    record.stake_attempts = Some(stake.attempts);
                    Step::Block(Box::new(record), Vec::new())
                }
                StakeOutcome::Exhausted { idle_until, .. }
                    if idle_until.is_some_and(|at| at > u64::from(until) + MAX_IDLE_S) =>
                {
                    // Waiting would look like a hang: say when staking can go on instead.
                    return Err(match idle_until {
                        Some(at) if at != u64::MAX => NothingToStake::Until(at),
                        _ => NothingToStake::Never,
                    }
                    .into());
                }
                StakeOutcome::Exhausted { next, .. } => {
                    // Chain time has reached the clock: wait for it to move on.
                    self.stake_from = next;
                    Step::Wait
                }
                StakeOutcome::Stopped => Step::Stopped,
            },
        )
    }
}

/// What one stakeholder has staked over a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StakeStats {
    /// Blocks staked.
    pub blocks: u64,
    /// Coin-days consumed by its coinstakes.
    pub coin_days: u64,
    /// Interest paid to it.
    pub interest: Amount,
    /// Coins it holds in unspent outputs now.
    pub holdings: Amount,
}

/// Proof-of-stake state: the recent block hashes the stake modifier comes from, and each
/// stakeholder's record.
#[derive(Debug, Clone)]
pub struct PosState {
    params: Arc<PosSpec>,
    maturity: u32,
    /// The stakeholders in spec order, with their names.
    holders: Arc<Vec<(PubKey, String)>>,
    /// Hashes of the last `2k + 1` blocks, the tip last.
    recent_hashes: VecDeque<BlockHash>,
    tip_height: u32,
    stats: BTreeMap<PubKey, StakeStats>,
}

impl PosState {
    fn genesis(spec: &ChainSpec) -> Self {
        let pos = spec
            .section::<PosSpec>()
            .cloned()
            .expect("a valid proof-of-stake spec");
        let holders = pos
            .stakeholders
            .iter()
            .map(|h| {
                let key = KeyPair::derive(&spec.wallet_seed, &h.name).pubkey();
                (key, h.name.clone())
            })
            .collect();
        Self {
            params: Arc::new(pos),
            maturity: spec.coinbase_maturity,
            holders: Arc::new(holders),
            recent_hashes: VecDeque::new(),
            tip_height: 0,
            stats: BTreeMap::new(),
        }
    }

    /// The chain's proof-of-stake parameters.
    #[must_use]
    pub fn params(&self) -> &PosSpec {
        &self.params
    }

    /// What each stakeholder has staked, by key.
    #[must_use]
    pub const fn stake_stats(&self) -> &BTreeMap<PubKey, StakeStats> {
        &self.stats
    }

    /// Returns the stake modifier for the block at `height` (the next one): the first 8 bytes
    /// (little-endian) of the hash of block `m = max(0, ⌊(height − 1)/k⌋·k − k)`, `k` the
    /// spec's `modifier_interval`. It changes every `k` blocks and comes from a block between
    /// `k + 1` and `2k` blocks back, so it is fixed well before the blocks that use it.
    /// Peercoin builds its modifier from 64 blocks' entropy bits over about nine days; this
    /// simplification gives up that dilution — the producer of block `m` could grind its hash
    /// to favour its own later kernels (stake grinding), and a coin whose minimum age is
    /// shorter than `2k` blocks can meet a modifier that existed when it was created.
    ///
    /// # Panics
    /// If `height` is not the next height.
    #[must_use]
    pub fn stake_modifier(&self, height: u32) -> u64 {
        let k = self.params.modifier_interval;
        let m = ((height.saturating_sub(1) / k) * k).saturating_sub(k);
        let back = (self.tip_height - m) as usize;
        let hash = self.recent_hashes[self.recent_hashes.len() - 1 - back];
        let bytes = hash.to_byte_array();
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }

    /// Checks the coinstake (transaction 1): one input, the kernel, mature, old enough,
    /// signed by its owner, meeting `target × weight` with this height's modifier, and paying
    /// at most value + interest back to the owner first. Records the spend and the new output
    /// (aging from zero, maturing like a coinbase) in `delta`; returns the staker's record
    /// after the block.
    fn check_coinstake(
        &self,
        block: &BlockContext<'_>,
        delta: &mut LedgerDelta,
    ) -> Result<(PubKey, StakeStats), BlockError> {
        let header = block.header;
        let Some(tx @ Transaction::Coinstake { inputs, outputs }) = block.txs.get(1) else {
            return Err(PosError::MissingCoinstake.into());
        };
        let [kernel] = inputs.as_slice() else {
            return Err(PosError::CoinstakeInputs(inputs.len()).into());
        };
        let Some(first) = outputs.first() else {
            return Err(PosError::CoinstakeNoOutputs.into());
        };
        let op = kernel.prevout();
        let utxo = (block.utxos)(&op).ok_or(BlockError::MissingInput {
            index: 1,
            input: 0,
            txid: op.txid,
            vout: op.vout,
        })?;
        check_maturity(&utxo, block.height, self.maturity, 1, 0)?;
        if !block
            .sigs
            .check(&utxo.owner, &tx.sighash(block.domain), &kernel.signature)
        {
            return Err(BlockError::BadSignature {
                index: 1,
                input: 0,
                owner: utxo.owner,
            });
        }
        let pos = &self.params;
        let age_s = u64::from(header.time.saturating_sub(utxo.time));
        let min_age_s = pos.min_age_s();
        if header.time < utxo.time || age_s < min_age_s {
            return Err(PosError::StakeTooYoung { age_s, min_age_s }.into());
        }
        let weight = kernel_weight(utxo.value, age_s, min_age_s, pos.max_age_s());
        let input = KernelInput {
            modifier: self.stake_modifier(block.height),
            block_time_from: utxo.time,
            tx_offset: utxo.tx_index,
            tx_time: utxo.time,
            vout: op.vout,
            time: header.time,
        };
        let hash = input.hash();
        let target = header.bits.to_target()?;
        if !kernel_meets_target(&hash, weight, target) {
            return Err(PosError::KernelAboveTarget {
                hash: Hash256::from_byte_array(hash),
                weight,
            }
            .into());
        }
        let earned = interest(pos.interest, utxo.value, age_s);
        // Interest stops at the money supply cap: an output near 21 million coins still stakes
        // (a coinstake is never more than the cap, which no valid coinstake ever exceeded).
        let allowed = utxo
            .value
            .checked_add(earned)
            .unwrap_or(Amount::from_base_units(MAX_MONEY));
        let paid = sum_outputs(outputs, 1)?;
        if paid > allowed {
            return Err(PosError::CoinstakeTooLarge { paid, allowed }.into());
        }
        if first.to != utxo.owner {
            return Err(PosError::CoinstakeNotToStaker { owner: utxo.owner }.into());
        }
        delta.spend(op);
        let origin = Origin {
            txid: block.txids[1],
            tx_index: 1,
            height: block.height,
            time: header.time,
            coinbase: true,
        };
        delta.create_locked(origin, outputs);
        let mut stats = self.stats.get(&utxo.owner).copied().unwrap_or_default();
        stats.blocks += 1;
        stats.coin_days += coin_days(utxo.value, age_s);
        let gained = paid.checked_sub(utxo.value).unwrap_or(Amount::ZERO);
        stats.interest = stats.interest.checked_add(gained).unwrap_or(stats.interest);
        Ok((utxo.owner, stats))
    }
}

impl RuleState for PosState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        let (owner, stats) = self.check_coinstake(block, delta)?;
        let mut next = self.clone();
        next.stats.insert(owner, stats);
        Ok(Box::new(next))
    }

    fn connected(&mut self, block: &Connected<'_>) {
        let k = self.params.modifier_interval as usize;
        if self.recent_hashes.len() > 2 * k {
            self.recent_hashes.pop_front();
        }
        self.recent_hashes.push_back(block.hash);
        self.tip_height = block.height;
        let holders = Arc::clone(&self.holders);
        for (utxo, add) in block
            .spent
            .iter()
            .map(|u| (u, false))
            .chain(block.created.iter().map(|u| (u, true)))
        {
            if !holders.iter().any(|(k, _)| *k == utxo.owner) {
                continue;
            }
            let entry = self.stats.entry(utxo.owner).or_default();
            entry.holdings = if add {
                entry.holdings.checked_add(utxo.value)
            } else {
                entry.holdings.checked_sub(utxo.value)
            }
            .unwrap_or(entry.holdings);
        }
    }

    fn report(&self) -> RuleReport {
        let rows = self
            .holders
            .iter()
            .map(|(key, name)| {
                let s = self.stats.get(key).copied().unwrap_or_default();
                ProducerRow {
                    key: *key,
                    name: name.clone(),
                    blocks: s.blocks,
                    missed: None,
                    coins: Some(s.holdings.to_coins_f64()),
                    coin_days: Some(s.coin_days),
                    interest: Some(s.interest.to_coins_f64()),
                }
            })
            .collect();
        RuleReport {
            producers: Some(("stakeholders", rows)),
        }
    }

    fn irreversible_height(&self) -> Option<u32> {
        None
    }
}
