//! The proof-of-authority rule (Clique, EIP-225) on chainsmith's chains: each block names its
//! sealer in its second transaction (`clique`), which the merkle root commits to, and carries
//! the sealer's signature over the block hash. [`PoaState`] keeps the Clique snapshot along a
//! chain and checks everything else — who may seal, when, with which difficulty, checkpoints
//! and votes — and counts blocks, missed turns and the irreversible height. A check returns
//! the next state and leaves `self` untouched, so a rejected block changes nothing.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{
    ProduceEnv, ProduceError, ProduceOptions, Producer, Step, key_for, seal_block,
};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::{BlockError, ChainState};
use crate::chain::wallet::demo_transfers;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, ProducerRow, ProducerStats, Rule, RuleError,
    RuleInfo, RuleReport, RuleState, SpecNames, TimeRule, check_miner_listed, check_no_puzzle,
    name_in,
};
use crate::poa::spec::PoaSpec;
use crate::poa::{Snapshot, SnapshotError, Vote};
use crate::primitives::block::Block;
use crate::primitives::header::Header;
use crate::primitives::tx::{KeyPair, PubKey, SignerVote, Transaction};

/// Why a block breaks the Clique rules. Signers are named by their keys (a report puts names
/// in their place with [`crate::consensus::with_names`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoaError {
    /// The second transaction is not the consensus rule's seal.
    #[error("second transaction must be the `{0}` transaction naming the producer")]
    MissingSeal(&'static str),
    /// The sealer is not a signer.
    #[error("{0} is not an authorized signer")]
    Unauthorized(PubKey),
    /// The sealer sealed one of the last ⌊N/2⌋ blocks.
    #[error(
        "{signer} already sealed block {previous}: a signer may seal one of any {window} consecutive blocks"
    )]
    RecentlySigned {
        /// The sealer.
        signer: PubKey,
        /// Its recent block.
        previous: u64,
        /// ⌊N/2⌋ + 1.
        window: u64,
    },
    /// The difficulty does not match the signer's turn.
    #[error("difficulty {actual}, but {signer} is {turn} and must seal with difficulty {expected}")]
    WrongDifficulty {
        /// The sealer.
        signer: PubKey,
        /// "in turn" or "out of turn".
        turn: &'static str,
        /// 2 or 1.
        expected: u8,
        /// The block's.
        actual: u8,
    },
    /// The block comes less than one period after its parent.
    #[error("time {time} is less than the period {period} s after the parent's time {parent}")]
    TooSoon {
        /// The block's time.
        time: u32,
        /// The parent's time.
        parent: u32,
        /// The block period.
        period: u32,
    },
    /// A checkpoint block's signer list is missing or wrong.
    #[error(
        "checkpoint block (height a multiple of the epoch {epoch}) must list the {count} current signers, sorted"
    )]
    BadCheckpoint {
        /// The epoch.
        epoch: u32,
        /// The number of signers.
        count: usize,
    },
    /// A signer list on a block that is not a checkpoint.
    #[error("only checkpoint blocks (height a multiple of the epoch {0}) carry a signer list")]
    UnexpectedCheckpoint(u32),
    /// A vote on a checkpoint block.
    #[error("checkpoint blocks carry no vote")]
    VoteOnCheckpoint,
}

impl From<PoaError> for BlockError {
    fn from(e: PoaError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Proof of authority, Clique (EIP-225): a voted signer set taking turns.
#[derive(Debug, Clone, Copy)]
pub struct Poa;

const POA_INFO: RuleInfo = RuleInfo {
    name: "poa",
    summary: "Proof of authority: a voted signer set taking turns (Clique, EIP-225)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<PoaSpec>()),
    detects_equivocation: false,
};

impl Rule for Poa {
    fn info(&self) -> &'static RuleInfo {
        &POA_INFO
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        let signers: Vec<&str> = spec
            .section::<PoaSpec>()
            .map_or_else(Vec::new, |p| p.signers.iter().map(String::as_str).collect());
        SpecNames {
            producers: signers.clone(),
            wallets: signers,
            genesis: Vec::new(),
        }
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let poa = spec
            .section::<PoaSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "poa",
                reason: "required when consensus is poa".into(),
            })?;
        poa.validate()?;
        check_miner_listed(spec, "poa.signers", &poa.signers)?;
        check_no_puzzle(spec)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Clique {
                signer, difficulty, ..
            }) => Some(BlockProducer {
                key: *signer,
                note: Some(
                    if *difficulty == crate::poa::DIFF_IN_TURN {
                        "in turn"
                    } else {
                        "out of turn"
                    }
                    .to_owned(),
                ),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, _tx: &Transaction) -> bool {
        index == 1
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(PoaState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(POA_INFO.name, &["--offline", "--vote"])?;
        let mut keys = spec.wallet_keys();
        keys.extend(options.extra_keys.iter().cloned());
        Ok(Box::new(PoaProducer {
            keys,
            tx_per_block: options.tx_per_block,
            offline: options.offline.clone(),
            proposal: options.proposal,
        }))
    }
}

/// Seals blocks by the signer whose turn it is (or out of turn when it is down), with demo
/// transfers; every signer votes for the proposal until it passes.
struct PoaProducer {
    keys: Vec<KeyPair>,
    tx_per_block: usize,
    offline: Vec<PubKey>,
    proposal: Option<SignerVote>,
}

impl Producer for PoaProducer {
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let height = state.next_height();
        let mut txs = demo_transfers(state, &self.keys, self.tx_per_block, height, &[]);
        txs.extend_from_slice(env.pending);
        let record = poa_block(state, &self.keys, &self.offline, self.proposal, txs)?;
        Ok(Step::Block(Box::new(record), Vec::new()))
    }
}

/// Proof-of-authority state: the Clique snapshot plus counts and the irreversible height.
#[derive(Debug, Clone)]
pub struct PoaState {
    snapshot: Snapshot<PubKey>,
    period: u32,
    epoch: u32,
    names: Arc<HashMap<PubKey, String>>,
    order: Vec<PubKey>,
    stats: HashMap<PubKey, ProducerStats>,
    sealers: VecDeque<PubKey>,
    lib: u32,
}

impl PoaState {
    fn genesis(spec: &ChainSpec) -> Self {
        let poa = spec
            .section::<PoaSpec>()
            .expect("a valid proof-of-authority spec");
        let keys: Vec<PubKey> = poa
            .signers
            .iter()
            .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
            .collect();
        Self {
            snapshot: Snapshot::genesis(keys.iter().copied(), u64::from(poa.epoch)),
            period: spec.target_spacing_s,
            epoch: poa.epoch,
            names: Arc::new(spec.names_by_key()),
            order: keys,
            stats: HashMap::new(),
            sealers: VecDeque::new(),
            lib: 0,
        }
    }

    /// The name of `key`: its spec wallet name, or the start of its hex.
    #[must_use]
    pub fn name_of(&self, key: &PubKey) -> String {
        name_in(&self.names, key)
    }

    /// The Clique snapshot after the tip.
    #[must_use]
    pub const fn snapshot(&self) -> &Snapshot<PubKey> {
        &self.snapshot
    }

    /// The block period in seconds.
    #[must_use]
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// Whether blocks at `height` are checkpoints.
    #[must_use]
    pub const fn is_checkpoint(&self, height: u32) -> bool {
        height.is_multiple_of(self.epoch)
    }

    fn producer_rows(&self) -> Vec<ProducerRow> {
        self.order
            .iter()
            .map(|k| {
                let stats = self.stats.get(k).copied().unwrap_or_default();
                ProducerRow::with_turns(*k, self.name_of(k), stats)
            })
            .collect()
    }

    /// The last irreversible height (Aura-style, see [`Self::check`]).
    #[must_use]
    pub const fn irreversible_height(&self) -> u32 {
        self.lib
    }

    /// Checks the block at `height` (header, parent header, transactions) against the Clique
    /// rules and returns the state after it.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(
        &self,
        height: u32,
        header: &Header,
        parent: &Header,
        txs: &[Transaction],
    ) -> Result<Self, PoaError> {
        let Some(Transaction::Clique {
            signer,
            difficulty,
            vote,
            checkpoint,
        }) = txs.get(1)
        else {
            return Err(PoaError::MissingSeal("clique"));
        };
        let min_time = u64::from(parent.time) + u64::from(self.period);
        if u64::from(header.time) < min_time {
            return Err(PoaError::TooSoon {
                time: header.time,
                parent: parent.time,
                period: self.period,
            });
        }
        let signers = self.snapshot.signers();
        if self.is_checkpoint(height) {
            if vote.is_some() {
                return Err(PoaError::VoteOnCheckpoint);
            }
            if checkpoint.as_ref() != Some(&signers) {
                return Err(PoaError::BadCheckpoint {
                    epoch: self.epoch,
                    count: signers.len(),
                });
            }
        } else if checkpoint.is_some() {
            return Err(PoaError::UnexpectedCheckpoint(self.epoch));
        }
        let number = u64::from(height);
        let in_turn = self.snapshot.in_turn(number, signer);
        let expected = self.snapshot.difficulty(number, signer);
        if self.snapshot.signers().contains(signer) && *difficulty != expected {
            return Err(PoaError::WrongDifficulty {
                signer: *signer,
                turn: if in_turn { "in turn" } else { "out of turn" },
                expected,
                actual: *difficulty,
            });
        }
        let mut next = self.clone();
        let vote = vote.map(|SignerVote { target, authorize }| Vote { target, authorize });
        next.snapshot.apply(signer, vote).map_err(|e| match e {
            SnapshotError::UnauthorizedSigner { signer, .. } => PoaError::Unauthorized(signer),
            SnapshotError::RecentlySigned {
                signer, previous, ..
            } => PoaError::RecentlySigned {
                signer,
                previous,
                window: signers.len() as u64 / 2 + 1,
            },
        })?;
        next.stats.entry(*signer).or_default().blocks += 1;
        if !in_turn {
            let owner = signers[(number % signers.len() as u64) as usize];
            next.stats.entry(owner).or_default().missed += 1;
        }
        let now = next.snapshot.signers();
        if now.len() > signers.len() {
            // A signer was voted in: report it after the genesis signers (once).
            let known: std::collections::HashSet<PubKey> = next.order.iter().copied().collect();
            next.order
                .extend(now.iter().filter(|k| !known.contains(*k)).copied());
        }
        next.sealers.push_front(*signer);
        next.sealers.truncate(2 * signers.len().max(now.len()));
        next.lib = next.lib.max(next.majority_sealed(height));
        Ok(next)
    }

    /// Aura-style finality (Clique itself has none): the highest block that, with the blocks
    /// on top of it, was sealed by more than half of the current signers — reverting it would
    /// take a majority of signers sealing a conflicting chain.
    fn majority_sealed(&self, tip: u32) -> u32 {
        let needed = self.snapshot.signers().len() / 2 + 1;
        let mut seen = std::collections::HashSet::with_capacity(needed);
        for (back, s) in (0u32..).zip(&self.sealers) {
            seen.insert(*s);
            if seen.len() >= needed {
                return tip.saturating_sub(back);
            }
        }
        0
    }
}

impl RuleState for PoaState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        let next = PoaState::check(
            self,
            block.height,
            block.header,
            &block.parent.header,
            block.txs,
        )?;
        Ok(Box::new(next))
    }

    fn connected(&mut self, _block: &Connected<'_>) {}

    fn report(&self) -> RuleReport {
        RuleReport {
            producers: Some(("signers", self.producer_rows())),
        }
    }

    fn irreversible_height(&self) -> Option<u32> {
        Some(self.lib)
    }
}

/// The chain halts: no online signer may seal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "the chain halts at height {height}: no online signer may seal (online {online} of \
     {signers}; Clique needs ⌊N/2⌋+1 = {needed} to take turns)"
)]
pub struct Halted {
    /// The height that cannot be sealed.
    pub height: u32,
    /// Online signers.
    pub online: usize,
    /// Current signers.
    pub signers: usize,
    /// ⌊N/2⌋ + 1.
    pub needed: usize,
}

impl From<Halted> for ProduceError {
    fn from(e: Halted) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// The Clique signer for the next block, one period after the tip: the in-turn signer if it
/// is online and may seal, else — out of turn — the first online signer the recency rule
/// allows, walking back through the rotation from the in-turn position (so the signers whose
/// turns come next stay free for them). Returns the signer and whether it is in turn.
///
/// # Errors
/// [`Halted`] when no online signer may seal.
pub fn poa_sealer(
    poa: &PoaState,
    height: u32,
    offline: &[PubKey],
) -> Result<(PubKey, bool), ProduceError> {
    let snap = poa.snapshot();
    let signers = snap.signers();
    let n = signers.len();
    if n == 0 {
        return Err(Halted {
            height,
            online: 0,
            signers: 0,
            needed: 1,
        }
        .into());
    }
    let first = (u64::from(height) % n as u64) as usize;
    std::iter::once(first)
        .chain((1..n).map(|back| (first + n - back) % n))
        .map(|i| signers[i])
        .find(|s| !offline.contains(s) && snap.may_seal(s))
        .map(|s| (s, s == signers[first]))
        .ok_or_else(|| {
            Halted {
                height,
                online: signers.iter().filter(|s| !offline.contains(s)).count(),
                signers: n,
                needed: n / 2 + 1,
            }
            .into()
        })
}

/// Builds and seals the next proof-of-authority block, one period after the tip, carrying
/// `proposal` if it is still meaningful, would not drop the last signer, and the block is not
/// a checkpoint.
///
/// # Errors
/// [`ProduceError`] when no online signer may seal.
pub fn poa_block(
    state: &ChainState,
    keys: &[KeyPair],
    offline: &[PubKey],
    proposal: Option<SignerVote>,
    transfers: Vec<Transaction>,
) -> Result<BlockRecord, ProduceError> {
    let Some(poa) = state.rule_state_as::<PoaState>() else {
        return Err(ProduceError::Unsupported(
            "not a proof-of-authority chain".into(),
        ));
    };
    let tip = state.tip().expect("genesis is connected");
    let height = tip.height + 1;
    let (signer, in_turn) = poa_sealer(poa, height, offline)?;
    let checkpoint = poa.is_checkpoint(height);
    let signers = poa.snapshot().signers();
    // A vote is cast while it still means something — and never to drop the last signer,
    // which Clique allows (EIP-225's "single signer, dropping itself") but which would halt the
    // chain for good.
    let vote = proposal.filter(|v| {
        !checkpoint
            && signers.contains(&v.target) != v.authorize
            && (v.authorize || signers.len() > 1)
    });
    let tx = Transaction::Clique {
        signer,
        difficulty: if in_turn {
            crate::poa::DIFF_IN_TURN
        } else {
            crate::poa::DIFF_NO_TURN
        },
        vote,
        checkpoint: checkpoint.then_some(signers),
    };
    let time = tip.header.time.saturating_add(poa.period());
    Ok(seal_block(
        state,
        key_for(keys, &signer)?,
        time,
        tx,
        transfers,
        0,
    ))
}
