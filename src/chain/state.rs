//! The validation state of a chain: its tip, the recent headers the difficulty and time rules
//! look at, the unspent outputs, the accumulated work, and the state of its consensus rule.
//!
//! Blocks are checked in two steps. [`Consensus::check`] does everything that needs only the
//! block itself — the claimed hash, the merkle root (and CVE-2012-2459 mutation), the target
//! encoding and the rule's seal (proof of work, the producer's signature) — so verification
//! can run it on many blocks in parallel. [`ChainState::connect`] then checks the block
//! against the chain: height and linkage, the bits the retarget rule demands, the time rules,
//! the rule's own contextual checks ([`RuleState::check`]), the coinbase, and every
//! transfer's inputs, signatures and amounts. A block is applied only if every check passes.
//! Memory is bounded by the retarget window, the unspent-output set and the rule's state, not
//! by the chain's length. Nothing here names a consensus rule.

use std::collections::{BTreeMap, VecDeque};

use crate::chain::ledger::{LedgerDelta, Origin, Utxo};
use crate::chain::record::{BlockRecord, CHAIN_BOUND_FORMAT};
use crate::chain::spec::ChainSpec;
use crate::consensus::{BlockContext, CheckedBlock, Connected, Consensus, RuleState, TimeRule};
use crate::difficulty::peercoin::peercoin_next_bits;
use crate::difficulty::{AsertAnchor, RetargetRule, asert_next_bits, bitcoin_next_bits};
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256, MerkleRoot, Txid};
use crate::primitives::header::Header;
use crate::primitives::pow_units::{CompactTarget, Target, Work};
use crate::primitives::sig::{SigCheck, Strict};
use crate::primitives::tx::{Amount, OutPoint, PubKey, SigDomain, Transaction, TxOut};

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
    BadSpec(crate::chain::spec::SpecError),
    /// The genesis line names a chain-file format this version does not know.
    #[error("chain-file format {0} is not one this version reads (1, or 2)")]
    UnknownFormat(u32),
    /// A line after genesis carries a spec.
    #[error("only the genesis line may carry `spec`, `spec_hash` and `format`")]
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
    /// A block lacks its staker's or producer's signature, or it is invalid.
    #[error("block signature is missing or not valid for the block's producer {0}")]
    BadBlockSignature(PubKey),
    /// A block not mined by proof of work has a nonzero nonce (it proves nothing and must
    /// not vary).
    #[error("block has nonce {0}; only proof-of-work blocks may use the nonce")]
    NonzeroNonce(u32),
    /// The block carries a seal of the wrong kind for its rule.
    #[error("the block must carry {expected}, not {found}")]
    UnexpectedSeal {
        /// The kind the rule wants.
        expected: &'static str,
        /// The kind on the line.
        found: &'static str,
    },
    /// The block's quorum certificate is invalid.
    #[error("{0}")]
    Quorum(#[from] crate::consensus::quorum::QuorumError),
    /// A block breaks a rule of its consensus rule (`PosError`, `DposError`, `PoaError`…).
    #[error("{0}")]
    Rule(crate::consensus::RuleError),
    /// The block was checked under another consensus rule than the chain's.
    #[error("block was checked under rule {checked}, but the chain runs {chain}")]
    OtherRule {
        /// The rule that checked it.
        checked: &'static str,
        /// The chain's rule.
        chain: &'static str,
    },
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

impl BlockError {
    /// The rule's own error inside [`BlockError::Rule`] as its type `E` (`PosError`,
    /// `DposError`…), if it is one.
    #[must_use]
    pub fn rule_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Rule(e) => e.downcast_ref(),
            _ => None,
        }
    }
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
    rule: Box<dyn RuleState>,
    /// The outputs the last block spent and created: buffers kept so that connecting a block
    /// allocates nothing for them once they have grown.
    moved: (Vec<Utxo>, Vec<Utxo>),
    /// What transaction signatures are bound to, as the genesis line's format says.
    domain: SigDomain,
}

impl ChainState {
    /// Starts an empty chain (no genesis yet) under a valid `spec`.
    ///
    /// # Panics
    /// If `spec` lacks its rule's section ([`ChainSpec::validate`] refuses such a spec).
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
            rule: spec.consensus.rule().genesis_state(&spec),
            moved: (Vec::new(), Vec::new()),
            domain: SigDomain::Chain(spec.genesis_block().block_hash()),
            spec,
        }
    }

    /// Returns the consensus rule.
    #[must_use]
    pub const fn consensus(&self) -> Consensus {
        self.spec.consensus
    }

    /// Returns the state of the chain's consensus rule after the tip.
    #[must_use]
    pub fn rule_state(&self) -> &dyn RuleState {
        self.rule.as_ref()
    }

    /// Returns what the chain's transaction signatures are bound to: its genesis (chains of
    /// format 2, and every chain before its genesis line is read) or nothing (format 1).
    #[must_use]
    pub const fn sig_domain(&self) -> SigDomain {
        self.domain
    }

    /// Returns the rule's state as its concrete type `T`, or `None` if the chain runs another
    /// rule.
    #[must_use]
    pub fn rule_state_as<T: RuleState>(&self) -> Option<&T> {
        let state: &dyn std::any::Any = self.rule.as_ref();
        state.downcast_ref()
    }

    /// Runs the context-free checks of `record` under the chain's rule (see
    /// [`Consensus::check`]).
    ///
    /// # Errors
    /// The first failed check.
    pub fn check(&self, record: BlockRecord) -> Result<CheckedBlock, BlockError> {
        self.consensus().check(record)
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

    /// Returns the number of blocks connected, genesis included.
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
    /// `max(now, median time past + 1)` (`now` where the rule
    /// schedules block times itself), a coinbase paying subsidy plus fees to `miner` (no
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
                time: match self.consensus().rule().info().time_rule {
                    TimeRule::Scheduled => now,
                    TimeRule::MedianTimePast => now.max(self.median_time_past() + 1),
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

    /// Checks `block` against the chain and, if every rule holds, makes it the new tip.
    /// `now` is the verifier's clock (Unix seconds) for the future-time rule.
    ///
    /// # Errors
    /// The first rule the block breaks ([`BlockError::OtherRule`] if it was checked under
    /// another rule than the chain's); the state is then unchanged.
    pub fn connect(&mut self, block: &CheckedBlock, now: u32) -> Result<(), BlockError> {
        self.connect_with(block, now, &Strict)
    }

    /// [`ChainState::connect`], every signature checked through `sigs`.
    ///
    /// # Errors
    /// As [`ChainState::connect`].
    pub fn connect_with(
        &mut self,
        block: &CheckedBlock,
        now: u32,
        sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        if block.rule() != self.consensus() {
            return Err(BlockError::OtherRule {
                checked: block.rule().name(),
                chain: self.consensus().name(),
            });
        }
        let record = block.record();
        let header = &block.block().header;
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
        let (delta, next) = match self.tip {
            None => {
                self.domain = self.check_genesis(block)?;
                // Genesis stake allocations: spendable and aging from genesis time.
                let mut delta = LedgerDelta::default();
                for (index, (tx, txid)) in (0u32..).zip(block.block().txs.iter().zip(block.txids()))
                {
                    let origin = Origin {
                        txid: *txid,
                        tx_index: index,
                        height: 0,
                        time: header.time,
                        coinbase: false,
                    };
                    delta.create(origin, tx.outputs());
                }
                (delta, None)
            }
            Some(tip) => {
                if record.spec.is_some() || record.spec_hash.is_some() || record.format.is_some() {
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
                let median = self.median_time_past();
                if self.consensus().rule().info().time_rule == TimeRule::MedianTimePast
                    && header.time <= median
                {
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
                let mut delta = LedgerDelta::default();
                let seal = record.seal()?;
                let utxos = |op: &OutPoint| self.utxos.get(op).copied();
                let context = BlockContext {
                    height,
                    hash: block.hash(),
                    header,
                    seal: &seal,
                    domain: self.domain,
                    sigs,
                    txs: &block.block().txs,
                    txids: block.txids(),
                    parent: &tip,
                    spec: &self.spec,
                    utxos: &utxos,
                };
                let next = self.rule.check(&context, &mut delta)?;
                self.check_transactions(block, height, &mut delta, sigs)?;
                (delta, Some(next))
            }
        };
        if let Some(next) = next {
            self.rule = next;
        }
        self.apply(block, height, target, delta);
        Ok(())
    }

    /// Checks the genesis line against the spec; returns the signing domain its format says.
    fn check_genesis(&self, block: &CheckedBlock) -> Result<SigDomain, BlockError> {
        let record = block.record();
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
        if &expected != block.block() {
            return Err(BlockError::GenesisMismatch {
                expected: expected.block_hash(),
                actual: block.hash(),
            });
        }
        match record.format {
            None => Ok(SigDomain::Legacy),
            Some(CHAIN_BOUND_FORMAT) => Ok(SigDomain::Chain(block.hash())),
            Some(format) => Err(BlockError::UnknownFormat(format)),
        }
    }

    /// Checks the coinbase and the transfers (every transaction after the coinbase that is
    /// not the rule's own), adding what they spend and create to `delta`; signatures are
    /// checked through `sigs`.
    fn check_transactions(
        &self,
        block: &CheckedBlock,
        height: u32,
        delta: &mut LedgerDelta,
        sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        let txs = &block.block().txs;
        let time = block.block().header.time;
        let rule = self.consensus().rule();
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
        let mut fees = Amount::ZERO;
        for (index, (tx, txid)) in txs.iter().zip(block.txids()).enumerate().skip(1) {
            if rule.is_rule_tx(index, tx) {
                continue;
            }
            let (inputs, outputs) = match tx {
                Transaction::Transfer { inputs, outputs } => (inputs, outputs),
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
                        consensus: rule.name(),
                    });
                }
            };
            if inputs.is_empty() || outputs.is_empty() {
                return Err(BlockError::EmptyTransfer { index });
            }
            let sighash = tx.sighash(self.domain);
            let mut total_in = Amount::ZERO;
            for (input, txin) in inputs.iter().enumerate() {
                let op = txin.prevout();
                let missing = BlockError::MissingInput {
                    index,
                    input,
                    txid: op.txid,
                    vout: op.vout,
                };
                let created = delta.created(&op);
                if !delta.spend(op) {
                    return Err(missing);
                }
                let utxo = match created {
                    Some(u) => u,
                    None => *self.utxos.get(&op).ok_or(missing)?,
                };
                check_maturity(&utxo, height, self.spec.coinbase_maturity, index, input)?;
                if !sigs.check(&utxo.owner, &sighash, &txin.signature) {
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
            let origin = Origin {
                txid: *txid,
                tx_index: index as u32,
                height,
                time,
                coinbase: false,
            };
            delta.create(origin, outputs);
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
        let origin = Origin {
            txid: block.txids()[0],
            tx_index: 0,
            height,
            time,
            coinbase: true,
        };
        delta.create(origin, cb_outputs);
        Ok(())
    }

    fn apply(&mut self, block: &CheckedBlock, height: u32, target: Target, delta: LedgerDelta) {
        let (spent, created) = &mut self.moved;
        spent.clear();
        created.clear();
        for (op, change) in delta.into_changes() {
            match change {
                Some(utxo) => {
                    created.push(utxo);
                    self.utxos.insert(op, utxo);
                }
                None => spent.extend(self.utxos.remove(&op)),
            }
        }
        self.rule.connected(&Connected {
            height,
            hash: block.hash(),
            spent,
            created,
        });
        let header = block.block().header;
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
            hash: block.hash(),
            header,
        });
    }
}

/// Checks that a coinbase or coinstake output `utxo` has matured by `height`
/// (`maturity` blocks after the block that created it).
///
/// # Errors
/// [`BlockError::ImmatureCoinbase`] naming transaction `index`, input `input`.
pub fn check_maturity(
    utxo: &Utxo,
    height: u32,
    maturity: u32,
    index: usize,
    input: usize,
) -> Result<(), BlockError> {
    let mature = utxo.height.saturating_add(maturity);
    if utxo.coinbase && height < mature {
        return Err(BlockError::ImmatureCoinbase {
            index,
            input,
            created: utxo.height,
            mature,
        });
    }
    Ok(())
}

/// The sum of `outputs` of transaction `index`; each must be positive.
///
/// # Errors
/// [`BlockError::ZeroOutput`], [`BlockError::AmountOverflow`].
pub fn sum_outputs(outputs: &[TxOut], index: usize) -> Result<Amount, BlockError> {
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

#[cfg(test)]
impl ChainState {
    /// The chain of built-in spec `name` with its genesis block connected, for unit tests.
    pub(crate) fn started(name: &str) -> Self {
        let spec = ChainSpec::builtin(name).expect("a built-in spec");
        let mut state = Self::new(spec.clone());
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        let checked = state.check(genesis).expect("the genesis block is valid");
        state
            .connect(&checked, u32::MAX)
            .expect("the genesis block connects");
        state
    }
}
