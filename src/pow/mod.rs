//! Proof of work: the rule (a block's hash must meet the target of its bits, which the
//! chain's retarget rule sets) and the parallel nonce search.

pub mod miner;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{ProduceEnv, ProduceError, ProduceOptions, Producer, Step};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SpecError};
use crate::chain::state::BlockError;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, Rule, RuleError, RuleInfo, RuleReport,
    RuleState, SpecNames, TimeRule,
};
use crate::difficulty::RetargetRule;
use crate::pow::miner::{SolveError, solve_block};
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::pow_units::Target;
use crate::primitives::seal::Seal;
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{KeyPair, PubKey, Transaction};

/// Why a block breaks the proof-of-work rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PowError {
    /// The hash does not meet the target.
    #[error("proof of work: hash {hash} is above the target {target}")]
    HighHash {
        /// The block hash.
        hash: BlockHash,
        /// The target of the header's bits.
        target: Target,
    },
}

impl From<PowError> for BlockError {
    fn from(e: PowError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Proof of work: `sha256d(header) ≤ target`.
#[derive(Debug, Clone, Copy)]
pub struct Pow;

const POW_INFO: RuleInfo = RuleInfo {
    name: "pow",
    summary: "Proof of work: sha256d(header) ≤ target",
    work: BlockWork::NonceSearch,
    demo_blocks: 20,
    time_rule: TimeRule::MedianTimePast,
    section: None,
    detects_equivocation: false,
};

impl Rule for Pow {
    fn info(&self) -> &'static RuleInfo {
        &POW_INFO
    }

    fn names<'s>(&self, _spec: &'s ChainSpec) -> SpecNames<'s> {
        SpecNames::default()
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        if matches!(spec.retarget, RetargetRule::Peercoin { .. }) {
            return Err(SpecError::BadField {
                field: "retarget.rule",
                reason: "peercoin is the proof-of-stake rule, and only it".into(),
            });
        }
        // The genesis block is proof of work like every other block.
        let genesis = spec.genesis_block();
        let target = genesis
            .header
            .bits
            .to_target()
            .map_err(|e| SpecError::BadField {
                field: "genesis.bits",
                reason: e.to_string(),
            })?;
        let hash = genesis.block_hash();
        if !target.is_met_by(hash) {
            return Err(SpecError::BadField {
                field: "genesis.nonce",
                reason: format!("the genesis hash {hash} does not meet its target {target}"),
            });
        }
        Ok(())
    }

    fn check_seal(
        &self,
        block: &Block,
        hash: BlockHash,
        seal: &Seal,
        _sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        if *seal != Seal::None {
            return Err(BlockError::UnexpectedSeal {
                expected: "no seal",
                found: seal.kind(),
            });
        }
        let target = block.header.bits.to_target()?;
        if !target.is_met_by(hash) {
            return Err(PowError::HighHash { hash, target }.into());
        }
        Ok(())
    }

    fn producer_of(&self, _block: &Block) -> Option<BlockProducer> {
        None
    }

    fn is_rule_tx(&self, _index: usize, _tx: &Transaction) -> bool {
        false
    }

    fn genesis_state(&self, _spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(PowState)
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(POW_INFO.name, &[])?;
        Ok(Box::new(PowProducer {
            keys: spec.wallet_keys(),
            miner: spec.miner_key().pubkey(),
            tx_per_block: options.tx_per_block,
        }))
    }
}

/// Mines blocks paying the spec's miner, with demo transfers between its wallets.
struct PowProducer {
    keys: Vec<KeyPair>,
    miner: PubKey,
    tx_per_block: usize,
}

impl Producer for PowProducer {
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let height = state.next_height();
        let mut txs = demo_transfers(state, &self.keys, self.tx_per_block, height, &[]);
        txs.extend_from_slice(env.pending);
        let template = state.block_template(env.now, self.miner, txs);
        let target = template
            .header
            .bits
            .to_target()
            .expect("the required bits of a valid chain decode");
        match solve_block(template, target, env.search, env.control) {
            Ok(block) => Ok(Step::Block(
                Box::new(BlockRecord::new(height, &block, None)),
                Vec::new(),
            )),
            Err(SolveError::Stopped) => Ok(Step::Stopped),
            Err(e) => Err(ProduceError::Rule(RuleError::new(e))),
        }
    }
}

/// Proof of work keeps no state of its own: difficulty and time are the core's.
#[derive(Debug, Clone, Copy)]
pub struct PowState;

impl RuleState for PowState {
    fn check(
        &self,
        _block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        Ok(Box::new(*self))
    }

    fn connected(&mut self, _block: &Connected<'_>) {}

    fn report(&self) -> RuleReport {
        RuleReport::default()
    }

    fn irreversible_height(&self) -> Option<u32> {
        None
    }
}
