//! The validation state of a chain: its tip, the recent headers the difficulty and time rules
//! look at, the unspent outputs, and the accumulated work.
//!
//! Blocks are checked in two steps. [`prepare`] does everything that needs only the block
//! itself — the claimed hash, the merkle root (and CVE-2012-2459 mutation), the target encoding
//! and the proof of work — so verification can run it on many blocks in parallel.
//! [`ChainState::connect`] then checks the block against the chain: height and linkage, the
//! bits the retarget rule demands, the median-time-past and future-time rules, the coinbase,
//! and every transfer's inputs, signatures and amounts. A block is applied only if every check
//! passes. Memory is bounded by the retarget window and the unspent-output set, not by the
//! chain's length.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::chain::authority::{Authority, AuthorityError};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, Consensus};
use crate::pos::retarget::peercoin_next_bits;
use crate::pos::{KernelInput, coin_days, interest, kernel_meets_target, kernel_weight};
use crate::pow::retarget::{AsertAnchor, RetargetRule, asert_next_bits, bitcoin_next_bits};
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256, MerkleRoot, Txid};
use crate::primitives::header::Header;
use crate::primitives::pow_units::{CompactTarget, Target, Work};
use crate::primitives::tx::{Amount, OutPoint, PubKey, Transaction, TxOut};

/// Number of previous block times whose median a new block's time must exceed (BIP113).
pub const MEDIAN_TIME_SPAN: usize = 11;

/// Why a block is invalid. Messages are lowercase and carry the values involved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The line's height is not the next height.
    #[error("height field says {actual}, expected {expected}")]
    WrongHeight {
        /// The next height.
        expected: u32,
        /// The height on the line.
        actual: u32,
    },
    /// The `hash` field does not match the header.
    #[error("hash field {claimed} does not match the header's hash {actual}")]
    HashMismatch {
        /// The hash on the line.
        claimed: BlockHash,
        /// sha256d of the header.
        actual: BlockHash,
    },
    /// The header does not link to the tip.
    #[error("prev_hash {actual} does not link to the previous block {expected}")]
    PrevHashMismatch {
        /// The tip's hash.
        expected: BlockHash,
        /// The header's prev_hash.
        actual: BlockHash,
    },
    /// The merkle root does not commit to the transactions.
    #[error("merkle_root {header} does not match the transactions (they give {computed})")]
    BadMerkleRoot {
        /// The header's merkle root.
        header: MerkleRoot,
        /// The root of the transactions.
        computed: MerkleRoot,
    },
    /// The transaction list repeats a txid in a way that leaves the root unchanged.
    #[error("transaction list is mutated: duplicate txids (CVE-2012-2459)")]
    MutatedMerkle,
    /// The block has no transactions.
    #[error("block has no transactions")]
    NoTransactions,
    /// The bits do not decode to a usable target.
    #[error("bits: {0}")]
    BadBits(#[from] crate::primitives::pow_units::CompactError),
    /// The target is easier than the chain allows.
    #[error("bits {bits}: target is above the chain's pow_limit")]
    TargetAboveLimit {
        /// The header's bits.
        bits: CompactTarget,
    },
    /// The hash does not meet the target.
    #[error("proof of work: hash {hash} is above the target {target}")]
    HighHash {
        /// The block hash.
        hash: BlockHash,
        /// The target of the header's bits.
        target: Target,
    },
    /// The bits are not what the retarget rule demands.
    #[error("bits {actual} but the retarget rule requires {expected}")]
    WrongBits {
        /// Required bits.
        expected: CompactTarget,
        /// Header bits.
        actual: CompactTarget,
    },
    /// The time is not after the median of the previous 11 blocks.
    #[error("time {time} is not after the median time past {median}")]
    TimeTooOld {
        /// The header time.
        time: u32,
        /// Median of the previous 11 block times.
        median: u32,
    },
    /// The time is too far ahead of the verifier's clock.
    #[error("time {time} is more than {max_future_s} s after the current time {now}")]
    TimeTooNew {
        /// The header time.
        time: u32,
        /// The verifier's clock.
        now: u32,
        /// The allowed drift.
        max_future_s: u32,
    },
    /// The genesis line differs from the genesis its spec defines.
    #[error("genesis block {actual} differs from the spec's genesis {expected}")]
    GenesisMismatch {
        /// The spec's genesis hash.
        expected: BlockHash,
        /// The line's genesis hash.
        actual: BlockHash,
    },
    /// The genesis line carries no spec.
    #[error("genesis line has no `spec` field")]
    MissingSpec,
    /// The `spec_hash` field does not match the spec.
    #[error("spec_hash {claimed:?} does not match the spec's hash {actual}")]
    SpecHashMismatch {
        /// The field's value.
        claimed: Option<Hash256>,
        /// The hash of the spec.
        actual: Hash256,
    },
    /// The spec on the genesis line is invalid.
    #[error("spec: {0}")]
    BadSpec(String),
    /// A line after genesis carries a spec.
    #[error("only the genesis line may carry `spec` and `spec_hash`")]
    UnexpectedSpec,
    /// The first transaction is not a coinbase.
    #[error("first transaction is not a coinbase")]
    MissingCoinbase,
    /// A coinbase or genesis transaction appears after the first position.
    #[error("transaction {index} is a {kind}; only the first transaction may be")]
    MisplacedCoinbase {
        /// Position in the block.
        index: usize,
        /// The kind found.
        kind: &'static str,
    },
    /// The coinbase's height is not the block's height.
    #[error("coinbase height {actual} does not match block height {expected}")]
    CoinbaseHeight {
        /// The block height.
        expected: u32,
        /// The coinbase's height.
        actual: u32,
    },
    /// The coinbase pays more than subsidy plus fees.
    #[error("coinbase pays {paid} but subsidy + fees is {allowed}")]
    CoinbaseTooLarge {
        /// The coinbase's outputs.
        paid: Amount,
        /// Subsidy plus fees.
        allowed: Amount,
    },
    /// An output has zero value.
    #[error("transaction {index} output {vout} has zero value")]
    ZeroOutput {
        /// Position in the block.
        index: usize,
        /// Output index.
        vout: usize,
    },
    /// A sum of amounts exceeds the money supply limit.
    #[error("transaction {index}: amounts exceed 21 million coins")]
    AmountOverflow {
        /// Position in the block.
        index: usize,
    },
    /// A transfer has no inputs or no outputs.
    #[error("transaction {index} has no inputs or no outputs")]
    EmptyTransfer {
        /// Position in the block.
        index: usize,
    },
    /// An input spends an output that does not exist or is already spent.
    #[error("transaction {index} input {input} spends {txid}:{vout}, which is not unspent")]
    MissingInput {
        /// Position in the block.
        index: usize,
        /// Input index.
        input: usize,
        /// The spent output's txid.
        txid: Txid,
        /// The spent output's index.
        vout: u32,
    },
    /// An input spends a coinbase output before it matured.
    #[error(
        "transaction {index} input {input} spends a coinbase from height {created}, \
         immature until height {mature}"
    )]
    ImmatureCoinbase {
        /// Position in the block.
        index: usize,
        /// Input index.
        input: usize,
        /// Height of the coinbase.
        created: u32,
        /// First height at which it may be spent.
        mature: u32,
    },
    /// An input's signature is not valid for the spent output's owner.
    #[error("transaction {index} input {input}: signature is not valid for owner {owner}")]
    BadSignature {
        /// Position in the block.
        index: usize,
        /// Input index.
        input: usize,
        /// The spent output's owner.
        owner: PubKey,
    },
    /// A proof-of-stake block has no coinstake as its second transaction.
    #[error("proof-of-stake block has no coinstake as its second transaction")]
    MissingCoinstake,
    /// The coinstake does not spend exactly one output.
    #[error("coinstake spends {0} outputs; it must spend exactly one (the kernel)")]
    CoinstakeInputs(usize),
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
        hash: crate::primitives::hash::Hash256,
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
    /// A block lacks its staker's or producer's signature, or it is invalid.
    #[error("block signature is missing or not valid for the block's producer {0}")]
    BadBlockSignature(PubKey),
    /// A block not mined by proof of work has a nonzero nonce (it proves nothing and must
    /// not vary).
    #[error("block has nonce {0}; only proof-of-work blocks may use the nonce")]
    NonzeroNonce(u32),
    /// A proof-of-work block carries a block signature.
    #[error("proof-of-work blocks carry no signature")]
    UnexpectedSignature,
    /// A block breaks its producer rules (proof of authority, delegated proof of stake).
    #[error("{0}")]
    Authority(#[from] AuthorityError),
    /// A transaction of a kind the chain's rule does not allow at its position.
    #[error("transaction {index} is a {kind}, which a {consensus} chain does not allow there")]
    UnexpectedTransaction {
        /// Position in the block.
        index: usize,
        /// Its kind.
        kind: &'static str,
        /// The chain's rule.
        consensus: &'static str,
    },
    /// A transfer creates more than it spends.
    #[error("transaction {index} spends {inputs} but creates {outputs}")]
    Inflation {
        /// Position in the block.
        index: usize,
        /// Sum of inputs.
        inputs: Amount,
        /// Sum of outputs.
        outputs: Amount,
    },
}

/// A block that passed the context-free checks of [`prepare`].
#[derive(Debug, Clone)]
pub struct PreparedBlock {
    /// The record it came from.
    pub record: BlockRecord,
    /// The block.
    pub block: Block,
    /// Its hash.
    pub hash: BlockHash,
    /// Its transactions' ids.
    pub txids: Vec<Txid>,
}

/// Runs the checks that need only the block: claimed hash, merkle root, mutation, target
/// encoding, and for proof of work the hash against the header's own bits; for the other rules
/// a zero nonce and the producer's block signature (the staker, signer or producer the block
/// names).
///
/// # Errors
/// The first failed check.
pub fn prepare(record: BlockRecord, consensus: Consensus) -> Result<PreparedBlock, BlockError> {
    let block = record.to_block();
    let hash = block.block_hash();
    if record.hash != hash {
        return Err(BlockError::HashMismatch {
            claimed: record.hash,
            actual: hash,
        });
    }
    if block.txs.is_empty() {
        return Err(BlockError::NoTransactions);
    }
    let txids = block.txids();
    let merkle = crate::primitives::merkle::merkle_root(&txids);
    if merkle.root != block.header.merkle_root {
        return Err(BlockError::BadMerkleRoot {
            header: block.header.merkle_root,
            computed: merkle.root,
        });
    }
    if merkle.mutated {
        return Err(BlockError::MutatedMerkle);
    }
    let target = block.header.bits.to_target()?;
    match consensus {
        Consensus::Pow => {
            if record.signature.is_some() {
                return Err(BlockError::UnexpectedSignature);
            }
            if !target.is_met_by(hash) {
                return Err(BlockError::HighHash { hash, target });
            }
        }
        _ if record.height == 0 => {}
        Consensus::Pos | Consensus::Dpos | Consensus::Poa => {
            if block.header.nonce != 0 {
                return Err(BlockError::NonzeroNonce(block.header.nonce));
            }
            // The block is signed by the key it names: the coinstake's payee, the Clique
            // signer or the DPoS producer. A missing seal is reported when it is connected.
            let producer = match block.txs.get(1) {
                Some(Transaction::Coinstake { outputs, .. }) if consensus == Consensus::Pos => {
                    Some(
                        outputs
                            .first()
                            .map_or(PubKey::from_bytes([0; 32]), |o| o.to),
                    )
                }
                Some(Transaction::Clique { signer, .. }) if consensus == Consensus::Poa => {
                    Some(*signer)
                }
                Some(Transaction::Producer { producer, .. }) if consensus == Consensus::Dpos => {
                    Some(*producer)
                }
                _ => None,
            };
            if let Some(key) = producer {
                let signed = record
                    .signature
                    .is_some_and(|sig| key.verifies(hash.as_bytes(), &sig));
                if !signed {
                    return Err(BlockError::BadBlockSignature(key));
                }
            }
        }
    }
    Ok(PreparedBlock {
        record,
        block,
        hash,
        txids,
    })
}

/// An unspent output and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// The amount.
    pub value: Amount,
    /// The owner's key.
    pub owner: PubKey,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase or coinstake created it (and so it must mature before it is spent).
    pub coinbase: bool,
    /// Time of the block that created it: where its coin-age starts.
    pub time: u32,
    /// Position of the creating transaction in its block (the kernel's `tx_offset`).
    pub tx_index: u32,
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
}

/// The stake a proof-of-stake block consumed.
#[derive(Debug, Clone, Copy)]
struct StakeUse {
    owner: PubKey,
    coin_days: u64,
    interest: Amount,
}

/// The tip of a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tip {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: BlockHash,
    /// Header.
    pub header: Header,
}

/// The state needed to validate and extend a chain. See the module docs.
#[derive(Debug, Clone)]
pub struct ChainState {
    spec: ChainSpec,
    tip: Option<Tip>,
    recent: VecDeque<Header>,
    window: usize,
    anchor: Option<AsertAnchor>,
    utxos: BTreeMap<OutPoint, Utxo>,
    total_work: Work,
    recent_hashes: VecDeque<BlockHash>,
    stakes: BTreeMap<PubKey, StakeStats>,
    authority: Option<Authority>,
    balances: HashMap<PubKey, u64>,
}

impl ChainState {
    /// Starts an empty chain (no genesis yet) under `spec`.
    #[must_use]
    pub fn new(spec: ChainSpec) -> Self {
        let window = match spec.retarget {
            RetargetRule::Bitcoin { interval } => (interval as usize).max(MEDIAN_TIME_SPAN),
            RetargetRule::None | RetargetRule::Asert { .. } | RetargetRule::Peercoin { .. } => {
                MEDIAN_TIME_SPAN
            }
        };
        Self {
            tip: None,
            recent: VecDeque::with_capacity(window),
            window,
            anchor: None,
            utxos: BTreeMap::new(),
            total_work: Work::default(),
            recent_hashes: VecDeque::new(),
            stakes: BTreeMap::new(),
            authority: Authority::genesis(&spec),
            balances: HashMap::new(),
            spec,
        }
    }

    /// Returns the producer state of a proof-of-authority or DPoS chain.
    #[must_use]
    pub const fn authority(&self) -> Option<&Authority> {
        self.authority.as_ref()
    }

    /// Returns the coins `owner` holds in unspent outputs, in base units (kept on DPoS chains,
    /// whose votes weigh them; 0 on the others).
    #[must_use]
    pub fn balance(&self, owner: &PubKey) -> u64 {
        self.balances.get(owner).copied().unwrap_or(0)
    }

    /// Returns what each stakeholder has staked (proof of stake), by key.
    #[must_use]
    pub const fn stake_stats(&self) -> &BTreeMap<PubKey, StakeStats> {
        &self.stakes
    }

    /// Returns the stake modifier for a block at `height`: the first 8 bytes (little-endian) of
    /// the hash of block `m = max(0, ⌊(height − 1)/k⌋·k − k)`, `k` the spec's
    /// `modifier_interval`. It changes every `k` blocks and comes from a block between `k + 1`
    /// and `2k` blocks back, so nobody knows a coin's future kernels when the coin confirms.
    /// Peercoin builds its modifier from 64 blocks' entropy bits over about nine days; this
    /// simplification gives up that dilution — the producer of block `m` could grind its hash to
    /// favour its own later kernels (stake grinding).
    ///
    /// # Panics
    /// If `height` is not the next height or not a proof-of-stake chain.
    #[must_use]
    pub fn stake_modifier(&self, height: u32) -> u64 {
        let k = self.spec.pos.as_ref().map_or(1, |p| p.modifier_interval);
        let m = ((height.saturating_sub(1) / k) * k).saturating_sub(k);
        let tip = self.tip.map_or(0, |t| t.height);
        let back = (tip - m) as usize;
        let hash = self.recent_hashes[self.recent_hashes.len() - 1 - back];
        let bytes = hash.to_byte_array();
        u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"))
    }

    /// Returns the consensus rule.
    #[must_use]
    pub const fn consensus(&self) -> Consensus {
        self.spec.consensus
    }

    /// Returns the spec.
    #[must_use]
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// Returns the tip, or `None` before the genesis block is connected.
    #[must_use]
    pub const fn tip(&self) -> Option<&Tip> {
        self.tip.as_ref()
    }

    /// Returns the height the next block will have.
    #[must_use]
    pub fn next_height(&self) -> u32 {
        self.tip.map_or(0, |t| t.height + 1)
    }

    /// Returns the number of blocks connected.
    #[must_use]
    pub fn block_count(&self) -> u64 {
        self.tip.map_or(0, |t| u64::from(t.height) + 1)
    }

    /// Returns the chain work of every connected block.
    #[must_use]
    pub const fn total_work(&self) -> &Work {
        &self.total_work
    }

    /// Returns the unspent outputs, ordered by outpoint.
    #[must_use]
    pub const fn utxos(&self) -> &BTreeMap<OutPoint, Utxo> {
        &self.utxos
    }

    /// Returns the median of the last 11 block times (fewer near genesis), or 0 with no blocks.
    #[must_use]
    pub fn median_time_past(&self) -> u32 {
        let mut times: Vec<u32> = self
            .recent
            .iter()
            .rev()
            .take(MEDIAN_TIME_SPAN)
            .map(|h| h.time)
            .collect();
        if times.is_empty() {
            return 0;
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Returns the bits the retarget rule requires of the next block.
    ///
    /// # Panics
    /// Never after genesis is connected; before it, returns the genesis bits.
    #[must_use]
    pub fn required_bits(&self) -> CompactTarget {
        let Some(tip) = self.tip else {
            return self.spec.genesis.bits;
        };
        let next = tip.height + 1;
        let spacing = self.spec.target_spacing_s;
        match self.spec.retarget {
            RetargetRule::None => tip.header.bits,
            RetargetRule::Bitcoin { interval } => {
                if next % interval != 0 {
                    return tip.header.bits;
                }
                // The window holds the last `interval` headers; the oldest is at
                // height next − interval.
                let first = self.recent[self.recent.len() - interval as usize];
                bitcoin_next_bits(
                    tip.header.bits,
                    first.time,
                    tip.header.time,
                    interval.saturating_mul(spacing),
                    self.spec.pow_limit,
                )
            }
            RetargetRule::Peercoin { timespan_s } => {
                // Like Peercoin, the first two blocks keep the initial target: the gap after
                // genesis is the minimum stake age, not a block interval.
                if tip.height < 2 {
                    return tip.header.bits;
                }
                let prev = self.recent[self.recent.len() - 2];
                peercoin_next_bits(
                    tip.header.bits,
                    i64::from(tip.header.time) - i64::from(prev.time),
                    spacing,
                    timespan_s,
                    self.spec.pow_limit,
                )
            }
            RetargetRule::Asert { half_life_s } => match self.anchor {
                None => tip.header.bits,
                Some(anchor) => asert_next_bits(
                    anchor,
                    tip.height,
                    i64::from(tip.header.time),
                    spacing,
                    half_life_s,
                    self.spec.pow_limit,
                ),
            },
        }
    }

    /// Builds the next block for the miner: header on the tip with the required bits and time
    /// `max(now, median time past + 1)` (`now` on authority chains, whose time rules are their
    /// own), a coinbase paying subsidy plus fees to `miner` (no
    /// output when that is zero), then `transfers`. The nonce is 0 and the merkle root is filled in.
    ///
    /// # Panics
    /// If genesis is not connected.
    #[must_use]
    pub fn block_template(&self, now: u32, miner: PubKey, transfers: Vec<Transaction>) -> Block {
        let tip = self.tip.expect("a template needs a connected genesis");
        let height = tip.height + 1;
        let fees = transfers
            .iter()
            .filter_map(|tx| self.fee_of(tx))
            .fold(Amount::ZERO, |a, f| a.checked_add(f).unwrap_or(a));
        let reward = self
            .spec
            .subsidy(height)
            .checked_add(fees)
            .unwrap_or_else(|| self.spec.subsidy(height));
        // Once the subsidy has halved to nothing a block without fees pays nothing: its
        // coinbase then has no outputs (an output may not be zero).
        let outputs = if reward == Amount::ZERO {
            Vec::new()
        } else {
            vec![TxOut {
                value: reward,
                to: miner,
            }]
        };
        let mut txs = vec![Transaction::Coinbase {
            height,
            extra_nonce: 0,
            outputs,
        }];
        txs.extend(transfers);
        let mut block = Block {
            header: Header {
                version: 1,
                prev_hash: tip.hash,
                merkle_root: MerkleRoot::ZERO,
                time: if self.spec.consensus.is_authority() {
                    now
                } else {
                    now.max(self.median_time_past() + 1)
                },
                bits: self.required_bits(),
                nonce: 0,
            },
            txs,
        };
        block.header.merkle_root = block.compute_merkle_root().root;
        block
    }

    fn fee_of(&self, tx: &Transaction) -> Option<Amount> {
        let Transaction::Transfer { inputs, outputs } = tx else {
            return None;
        };
        let spent = inputs.iter().try_fold(Amount::ZERO, |acc, i| {
            acc.checked_add(self.utxos.get(&i.prevout())?.value)
        })?;
        let created = outputs
            .iter()
            .try_fold(Amount::ZERO, |acc, o| acc.checked_add(o.value))?;
        spent.checked_sub(created)
    }

    /// Checks `prepared` against the chain and, if every rule holds, makes it the new tip.
    /// `now` is the verifier's clock (Unix seconds) for the future-time rule.
    ///
    /// # Errors
    /// The first rule the block breaks; the state is then unchanged.
    pub fn connect(&mut self, prepared: &PreparedBlock, now: u32) -> Result<(), BlockError> {
        let record = &prepared.record;
        let header = &prepared.block.header;
        let height = self.next_height();
        if record.height != height {
            return Err(BlockError::WrongHeight {
                expected: height,
                actual: record.height,
            });
        }
        let target = header.bits.to_target()?;
        if target > self.spec.pow_limit {
            return Err(BlockError::TargetAboveLimit { bits: header.bits });
        }
        let (created, stake) = match self.tip {
            None => {
                self.check_genesis(prepared)?;
                // Genesis stake allocations: spendable and aging from genesis time.
                let mut created = HashMap::new();
                for (index, (tx, txid)) in
                    (0u32..).zip(prepared.block.txs.iter().zip(&prepared.txids))
                {
                    add_outputs(
                        &mut created,
                        *txid,
                        tx.outputs(),
                        0,
                        false,
                        header.time,
                        index,
                    );
                }
                (created, None)
            }
            Some(tip) => {
                if record.spec.is_some() || record.spec_hash.is_some() {
                    return Err(BlockError::UnexpectedSpec);
                }
                if header.prev_hash != tip.hash {
                    return Err(BlockError::PrevHashMismatch {
                        expected: tip.hash,
                        actual: header.prev_hash,
                    });
                }
                let expected = self.required_bits();
                if header.bits != expected {
                    return Err(BlockError::WrongBits {
                        expected,
                        actual: header.bits,
                    });
                }
                // Authority chains have their own time rules (Clique's period, DPoS slots),
                // and DPoS slots are shorter than the header's one-second resolution.
                let median = self.median_time_past();
                if !self.spec.consensus.is_authority() && header.time <= median {
                    return Err(BlockError::TimeTooOld {
                        time: header.time,
                        median,
                    });
                }
                let max_future_s = self.spec.max_future_s;
                if u64::from(header.time) > u64::from(now) + u64::from(max_future_s) {
                    return Err(BlockError::TimeTooNew {
                        time: header.time,
                        now,
                        max_future_s,
                    });
                }
                let authority = self.check_authority(prepared, height, &tip)?;
                let (created, stake) = self.check_transactions(prepared, height)?;
                if authority.is_some() {
                    self.authority = authority;
                }
                (created, stake)
            }
        };
        self.apply(prepared, height, target, created, stake);
        Ok(())
    }

    /// Checks the producer rules of an authority chain; returns the producer state after the
    /// block (`None` for proof of work and proof of stake).
    fn check_authority(
        &self,
        prepared: &PreparedBlock,
        height: u32,
        tip: &Tip,
    ) -> Result<Option<Authority>, BlockError> {
        let header = &prepared.block.header;
        let txs = &prepared.block.txs;
        Ok(match &self.authority {
            None => None,
            Some(Authority::Poa(poa)) => Some(Authority::Poa(poa.check(
                height,
                header,
                &tip.header,
                txs,
            )?)),
            Some(Authority::Dpos(dpos)) => {
                let stake_of = |k: &PubKey| self.balance(k);
                Some(Authority::Dpos(
                    dpos.check(height, header, &tip.hash, txs, &stake_of)?,
                ))
            }
        })
    }

    fn check_genesis(&self, prepared: &PreparedBlock) -> Result<(), BlockError> {
        let record = &prepared.record;
        let Some(spec) = &record.spec else {
            return Err(BlockError::MissingSpec);
        };
        let actual = spec.spec_hash();
        if record.spec_hash != Some(actual) || spec != &self.spec {
            return Err(BlockError::SpecHashMismatch {
                claimed: record.spec_hash,
                actual: self.spec.spec_hash(),
            });
        }
        let expected = self.spec.genesis_block();
        if expected != prepared.block {
            return Err(BlockError::GenesisMismatch {
                expected: expected.block_hash(),
                actual: prepared.hash,
            });
        }
        Ok(())
    }

    /// Checks the coinbase and transfers; returns the outputs to add and (as `None` values)
    /// the outpoints to remove.
    #[allow(clippy::type_complexity)]
    fn check_transactions(
        &self,
        prepared: &PreparedBlock,
        height: u32,
    ) -> Result<(HashMap<OutPoint, Option<Utxo>>, Option<StakeUse>), BlockError> {
        let txs = &prepared.block.txs;
        let time = prepared.block.header.time;
        let Some(Transaction::Coinbase {
            height: cb_height,
            outputs: cb_outputs,
            ..
        }) = txs.first()
        else {
            return Err(BlockError::MissingCoinbase);
        };
        if *cb_height != height {
            return Err(BlockError::CoinbaseHeight {
                expected: height,
                actual: *cb_height,
            });
        }
        let mut changes: HashMap<OutPoint, Option<Utxo>> = HashMap::new();
        let mut spent: HashSet<OutPoint> = HashSet::new();
        let mut fees = Amount::ZERO;
        let consensus = self.spec.consensus;
        let stake = match consensus {
            Consensus::Pow | Consensus::Dpos | Consensus::Poa => None,
            Consensus::Pos => {
                let stake = self.check_coinstake(prepared, height, &mut changes)?;
                spent.extend(changes.keys().copied());
                Some(stake)
            }
        };
        // The second transaction of the other rules is their seal, checked by check_authority.
        let first_transfer = if consensus == Consensus::Pow { 1 } else { 2 };
        for (index, (tx, txid)) in txs
            .iter()
            .zip(&prepared.txids)
            .enumerate()
            .skip(first_transfer)
        {
            let (inputs, outputs) = match tx {
                Transaction::Transfer { inputs, outputs } => (inputs, outputs),
                Transaction::Vote { .. } if consensus == Consensus::Dpos => continue,
                Transaction::Genesis { .. } | Transaction::Coinbase { .. } => {
                    let kind = if let Transaction::Genesis { .. } = tx {
                        "genesis transaction"
                    } else {
                        "coinbase"
                    };
                    return Err(BlockError::MisplacedCoinbase { index, kind });
                }
                _ => {
                    return Err(BlockError::UnexpectedTransaction {
                        index,
                        kind: tx.kind(),
                        consensus: consensus.as_str(),
                    });
                }
            };
            if inputs.is_empty() || outputs.is_empty() {
                return Err(BlockError::EmptyTransfer { index });
            }
            let sighash = tx.sighash();
            let mut total_in = Amount::ZERO;
            for (input, txin) in inputs.iter().enumerate() {
                let op = txin.prevout();
                let missing = BlockError::MissingInput {
                    index,
                    input,
                    txid: op.txid,
                    vout: op.vout,
                };
                if !spent.insert(op) {
                    return Err(missing);
                }
                let utxo = match changes.get(&op) {
                    Some(Some(u)) => *u,
                    Some(None) => return Err(missing),
                    None => *self.utxos.get(&op).ok_or(missing)?,
                };
                let mature = utxo.height.saturating_add(self.spec.coinbase_maturity);
                if utxo.coinbase && height < mature {
                    return Err(BlockError::ImmatureCoinbase {
                        index,
                        input,
                        created: utxo.height,
                        mature,
                    });
                }
                if !utxo.owner.verifies(&sighash, &txin.signature) {
                    return Err(BlockError::BadSignature {
                        index,
                        input,
                        owner: utxo.owner,
                    });
                }
                total_in = total_in
                    .checked_add(utxo.value)
                    .ok_or(BlockError::AmountOverflow { index })?;
            }
            let total_out = sum_outputs(outputs, index)?;
            let fee = total_in
                .checked_sub(total_out)
                .ok_or(BlockError::Inflation {
                    index,
                    inputs: total_in,
                    outputs: total_out,
                })?;
            fees = fees
                .checked_add(fee)
                .ok_or(BlockError::AmountOverflow { index })?;
            for op in inputs.iter().map(|i| i.prevout()) {
                changes.insert(op, None);
            }
            add_outputs(
                &mut changes,
                *txid,
                outputs,
                height,
                false,
                time,
                index as u32,
            );
        }
        let paid = sum_outputs(cb_outputs, 0)?;
        let allowed = self
            .spec
            .subsidy(height)
            .checked_add(fees)
            .ok_or(BlockError::AmountOverflow { index: 0 })?;
        if paid > allowed {
            return Err(BlockError::CoinbaseTooLarge { paid, allowed });
        }
        add_outputs(
            &mut changes,
            prepared.txids[0],
            cb_outputs,
            height,
            true,
            time,
            0,
        );
        Ok((changes, stake))
    }

    /// Checks a proof-of-stake block's coinstake (transaction 1): one input, the kernel, old
    /// enough, signed by its owner, meeting `target × weight` with this height's modifier, and
    /// paying at most value + interest back to the owner. Records the spend and the new
    /// output (aging from zero, maturing like a coinbase) in `changes`.
    fn check_coinstake(
        &self,
        prepared: &PreparedBlock,
        height: u32,
        changes: &mut HashMap<OutPoint, Option<Utxo>>,
    ) -> Result<StakeUse, BlockError> {
        let header = &prepared.block.header;
        let pos = self.spec.pos.as_ref().ok_or(BlockError::MissingCoinstake)?;
        let Some(Transaction::Coinstake { inputs, outputs }) = prepared.block.txs.get(1) else {
            return Err(BlockError::MissingCoinstake);
        };
        let [kernel] = inputs.as_slice() else {
            return Err(BlockError::CoinstakeInputs(inputs.len()));
        };
        let op = kernel.prevout();
        let utxo = *self.utxos.get(&op).ok_or(BlockError::MissingInput {
            index: 1,
            input: 0,
            txid: op.txid,
            vout: op.vout,
        })?;
        let mature = utxo.height.saturating_add(self.spec.coinbase_maturity);
        if utxo.coinbase && height < mature {
            return Err(BlockError::ImmatureCoinbase {
                index: 1,
                input: 0,
                created: utxo.height,
                mature,
            });
        }
        let tx = &prepared.block.txs[1];
        if !utxo.owner.verifies(&tx.sighash(), &kernel.signature) {
            return Err(BlockError::BadSignature {
                index: 1,
                input: 0,
                owner: utxo.owner,
            });
        }
        let age_s = u64::from(header.time.saturating_sub(utxo.time));
        let min_age_s = pos.min_age_s();
        if header.time < utxo.time || age_s < min_age_s {
            return Err(BlockError::StakeTooYoung { age_s, min_age_s });
        }
        let weight = kernel_weight(utxo.value, age_s, min_age_s, pos.max_age_s());
        let input = KernelInput {
            modifier: self.stake_modifier(height),
            block_time_from: utxo.time,
            tx_offset: utxo.tx_index,
            tx_time: utxo.time,
            vout: op.vout,
            time: header.time,
        };
        let hash = input.hash();
        let target = header.bits.to_target()?;
        if !kernel_meets_target(&hash, weight, target) {
            return Err(BlockError::KernelAboveTarget {
                hash: crate::primitives::hash::Hash256::from_byte_array(hash),
                weight,
            });
        }
        let earned = interest(pos.interest, utxo.value, age_s);
        let allowed = utxo
            .value
            .checked_add(earned)
            .ok_or(BlockError::AmountOverflow { index: 1 })?;
        let paid = sum_outputs(outputs, 1)?;
        if paid > allowed {
            return Err(BlockError::CoinstakeTooLarge { paid, allowed });
        }
        if outputs[0].to != utxo.owner {
            return Err(BlockError::CoinstakeNotToStaker { owner: utxo.owner });
        }
        changes.insert(op, None);
        add_outputs(
            changes,
            prepared.txids[1],
            outputs,
            height,
            true,
            header.time,
            1,
        );
        Ok(StakeUse {
            owner: utxo.owner,
            coin_days: coin_days(utxo.value, age_s),
            interest: paid.checked_sub(utxo.value).unwrap_or(Amount::ZERO),
        })
    }

    fn apply(
        &mut self,
        prepared: &PreparedBlock,
        height: u32,
        target: Target,
        changes: HashMap<OutPoint, Option<Utxo>>,
        stake: Option<StakeUse>,
    ) {
        if let Some(st) = stake {
            let entry = self.stakes.entry(st.owner).or_default();
            entry.blocks += 1;
            entry.coin_days += st.coin_days;
            entry.interest = entry
                .interest
                .checked_add(st.interest)
                .unwrap_or(entry.interest);
        }
        let k = self
            .spec
            .pos
            .as_ref()
            .map_or(0, |p| p.modifier_interval as usize);
        if self.recent_hashes.len() > 2 * k {
            self.recent_hashes.pop_front();
        }
        self.recent_hashes.push_back(prepared.hash);
        // Only DPoS weighs votes by holdings; other chains keep no balances.
        let balances = self.spec.consensus == Consensus::Dpos;
        for (op, change) in changes {
            match change {
                Some(utxo) => {
                    if balances {
                        *self.balances.entry(utxo.owner).or_default() += utxo.value.to_base_units();
                    }
                    self.utxos.insert(op, utxo);
                }
                None => {
                    if let Some(old) = self.utxos.remove(&op)
                        && let Some(b) = self.balances.get_mut(&old.owner)
                    {
                        *b -= old.value.to_base_units();
                    }
                }
            }
        }
        let header = prepared.block.header;
        if height == 1 {
            // ASERT is anchored at block 1, the first mined block, with an ideal parent time
            // one spacing earlier; anchoring at genesis would make a chain whose genesis is old
            // start far behind schedule.
            self.anchor = Some(AsertAnchor {
                bits: header.bits,
                height: 1,
                parent_time: i64::from(header.time) - i64::from(self.spec.target_spacing_s),
            });
        }
        if self.recent.len() == self.window {
            self.recent.pop_front();
        }
        self.recent.push_back(header);
        self.total_work += &target.to_work();
        self.tip = Some(Tip {
            height,
            hash: prepared.hash,
            header,
        });
    }
}

fn sum_outputs(outputs: &[TxOut], index: usize) -> Result<Amount, BlockError> {
    let mut total = Amount::ZERO;
    for (vout, o) in outputs.iter().enumerate() {
        if o.value == Amount::ZERO {
            return Err(BlockError::ZeroOutput { index, vout });
        }
        total = total
            .checked_add(o.value)
            .ok_or(BlockError::AmountOverflow { index })?;
    }
    Ok(total)
}

fn add_outputs(
    changes: &mut HashMap<OutPoint, Option<Utxo>>,
    txid: Txid,
    outputs: &[TxOut],
    height: u32,
    coinbase: bool,
    time: u32,
    tx_index: u32,
) {
    for (vout, o) in (0u32..).zip(outputs) {
        changes.insert(
            OutPoint { txid, vout },
            Some(Utxo {
                value: o.value,
                owner: o.to,
                height,
                coinbase,
                time,
                tx_index,
            }),
        );
    }
}
