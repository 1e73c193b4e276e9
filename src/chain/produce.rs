//! Producing blocks: the interface every rule's block producer implements ([`Producer`]),
//! the options and faults a run injects ([`ProduceOptions`]), and the loop that drives a
//! producer — each block checked and connected by the chain's own rule, then handed to the
//! caller's sink (a chain file, a vector) before the next one is made ([`produce_blocks`]).
//! `mine`, `compare`, the tests and the benches drive the same code.
//!
//! The library holds no clock: the loop reads the caller's [`TimeSource`], so a test can run a
//! chain at any time it likes. Ctrl-C (or any caller) stops a run through the
//! [`SearchControl`] flag, which the nonce and stake searches also watch.

use std::time::Duration;

use crate::chain::record::BlockRecord;
use crate::chain::state::{BlockError, ChainState};
use crate::consensus::TimeRule;
use crate::hash::search::{SearchControl, SearchOptions};
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::{KeyPair, PubKey, SignerVote, Transaction};

/// Why no block can be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The rule's own reason (`poa::Halted`, `dpos::NoProducer`…).
    #[error("{0}")]
    Rule(crate::consensus::RuleError),
    /// The chain runs another rule, or the key of a producer is not known.
    #[error("{0}")]
    Unsupported(String),
    /// A production option the chain's rule does not have.
    #[error("{option} does not apply to {rule} chains")]
    OptionNotApplicable {
        /// The option, as the command line names it (`--vote`).
        option: &'static str,
        /// The chain's rule.
        rule: &'static str,
    },
}

impl ProduceError {
    /// The rule's own error inside [`ProduceError::Rule`] as its type `E`, if it is one.
    #[must_use]
    pub fn rule_error<E: std::error::Error + 'static>(&self) -> Option<&E> {
        match self {
            Self::Rule(e) => e.downcast_ref(),
            _ => None,
        }
    }
}

/// What a run asks of a rule's producer beyond producing blocks: demo traffic, proposals and
/// injected faults. A rule's [`crate::consensus::Rule::producer`] refuses an option it does not
/// have ([`ProduceError::OptionNotApplicable`]).
#[derive(Debug, Clone, Default)]
pub struct ProduceOptions {
    /// Demo transfers between the spec's wallets per block (every rule).
    pub tx_per_block: usize,
    /// Producers (signers) that are down and miss their turns (rules with turns).
    pub offline: Vec<PubKey>,
    /// A producer that signs two different blocks for each of its turns (rules with turns
    /// that detect equivocation).
    pub double_sign: Option<PubKey>,
    /// Proof of authority: the proposal every signer votes for until it passes.
    pub proposal: Option<SignerVote>,
    /// Delegated proof of stake: holders' re-votes per block (the rule's demo default, 1, when
    /// not given).
    pub votes_per_block: Option<usize>,
    /// Keys the spec does not name that may come to produce (signers voted in).
    pub extra_keys: Vec<KeyPair>,
}

impl ProduceOptions {
    /// Refuses every option set here that is not in `allowed` (by its command-line name); an
    /// option that asks for nothing (no re-votes) is not refused.
    ///
    /// # Errors
    /// [`ProduceError::OptionNotApplicable`] for the first one.
    pub fn refuse_others(&self, rule: &'static str, allowed: &[&str]) -> Result<(), ProduceError> {
        let given = [
            ("--offline", !self.offline.is_empty()),
            ("--double-sign", self.double_sign.is_some()),
            ("--vote", self.proposal.is_some()),
            (
                "--votes-per-block",
                self.votes_per_block.is_some_and(|n| n > 0),
            ),
        ];
        match given
            .into_iter()
            .find(|(option, set)| *set && !allowed.contains(option))
        {
            Some((option, _)) => Err(ProduceError::OptionNotApplicable { option, rule }),
            None => Ok(()),
        }
    }
}

/// Two different blocks signed by one producer for one turn: evidence of equivocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Equivocation {
    /// The producer.
    pub producer: PubKey,
    /// Its turn (a DPoS slot).
    pub turn: u64,
    /// The height both blocks claim.
    pub height: u32,
    /// The two block hashes.
    pub hashes: [BlockHash; 2],
}

/// What a producer reads of the world for one block.
#[derive(Debug, Clone, Copy)]
pub struct ProduceEnv<'a> {
    /// The clock, Unix seconds.
    pub now: u32,
    /// Transactions waiting to be included (a node's mempool), after the demo traffic.
    pub pending: &'a [Transaction],
    /// The stop flag and the hash counter every search updates.
    pub control: &'a SearchControl,
    /// Nonce-search options (proof of work).
    pub search: &'a SearchOptions,
}

/// One step of a producer.
#[derive(Debug)]
pub enum Step {
    /// A block for the tip, and any equivocation seen making it.
    Block(Box<BlockRecord>, Vec<Equivocation>),
    /// Nothing can be produced before the clock moves on (a stake search reached it).
    Wait,
    /// The stop flag was raised.
    Stopped,
}

/// What agreeing on blocks cost a producer's simulated network (ordering rules).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NetworkCost {
    /// Messages sent between nodes.
    pub messages: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Median time from a block's proposal to its commit, milliseconds.
    pub commit_latency_ms: Option<f64>,
}

/// A rule's block producer: simulates every producer of the spec in one process.
pub trait Producer: Send {
    /// What the blocks so far cost in messages, for rules whose nodes talk to agree; `None`
    /// for the others.
    fn network(&self) -> Option<NetworkCost> {
        None
    }

    /// Produces the next block on `state`'s tip.
    ///
    /// # Errors
    /// When no block can be produced (the chain halts, a search fails).
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError>;
}

/// The caller's clock.
pub trait TimeSource {
    /// The time, Unix seconds.
    fn now(&self) -> u32;
    /// Waits a little before the time is read again.
    fn pause(&self, wait: Duration);
}

/// What a run of [`produce_blocks`] is given.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    /// Blocks to produce.
    pub blocks: u64,
    /// The caller's clock.
    pub clock: &'a dyn TimeSource,
    /// The stop flag and the hash counter.
    pub control: &'a SearchControl,
    /// Nonce-search options (proof of work).
    pub search: &'a SearchOptions,
}

/// How a run of [`produce_blocks`] ended.
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Blocks produced and handed to the sink.
    pub produced: u64,
    /// Whether the stop flag ended it early.
    pub stopped: bool,
    /// Equivocations seen.
    pub equivocations: Vec<Equivocation>,
}

/// Why a run stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The producer could not produce.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// A produced block failed its own rule (a bug in the producer).
    #[error("produced block {height} failed validation")]
    Invalid {
        /// Its height.
        height: u32,
        /// Why.
        #[source]
        source: BlockError,
    },
    /// The sink failed (writing the chain file).
    #[error("storing block {height}")]
    Sink {
        /// The block's height.
        height: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Produces `run.blocks` blocks onto `state` with `producer`: waits while the next block's
/// earliest time would be past the future limit (a chain faster than the median-time-past rule
/// allows runs ahead of the clock), asks the producer — offering `pending(state)` as the
/// transactions waiting — checks and connects the block under the chain's rule, then calls
/// `sink(state, record, hashes)` (`hashes`: nonces or kernels tried for it) before the next.
/// Stops early when `run.control.stop` is raised.
///
/// # Errors
/// [`RunError`]; the state holds every block the sink accepted.
pub fn produce_blocks(
    state: &mut ChainState,
    producer: &mut dyn Producer,
    run: &Run<'_>,
    pending: &mut dyn FnMut(&ChainState) -> Vec<Transaction>,
    sink: &mut dyn FnMut(&ChainState, &BlockRecord, u64) -> std::io::Result<()>,
) -> Result<RunOutcome, RunError> {
    use std::sync::atomic::Ordering;

    let Run {
        blocks,
        clock,
        control,
        search,
    } = *run;
    let mut outcome = RunOutcome::default();
    while outcome.produced < blocks {
        if control.stop.load(Ordering::Relaxed) || !wait_for_clock(state, clock, control) {
            outcome.stopped = true;
            break;
        }
        let height = state.next_height();
        let before = control.hashes.load(Ordering::Relaxed);
        let waiting = pending(state);
        let env = ProduceEnv {
            now: clock.now(),
            pending: &waiting,
            control,
            search,
        };
        let (record, equivocations) = match producer.next_block(state, &env)? {
            Step::Block(record, equivocations) => (*record, equivocations),
            Step::Wait => {
                clock.pause(Duration::from_millis(250));
                continue;
            }
            Step::Stopped => {
                outcome.stopped = true;
                break;
            }
        };
        let invalid = |source| RunError::Invalid { height, source };
        let checked = state.check(record.clone()).map_err(invalid)?;
        state.connect(&checked, clock.now()).map_err(invalid)?;
        let hashes = control.hashes.load(Ordering::Relaxed) - before;
        sink(state, &record, hashes).map_err(|source| RunError::Sink { height, source })?;
        outcome.produced += 1;
        outcome.equivocations.extend(equivocations);
    }
    Ok(outcome)
}

/// Blocks must be later than the median of the previous 11, so a chain produced faster than
/// one block per second runs ahead of the clock (one second per six blocks). Waits while the
/// next block's earliest time is past the future limit that verification allows, so every
/// block produced stays valid. Returns false if the stop flag ended the wait.
fn wait_for_clock(state: &ChainState, clock: &dyn TimeSource, control: &SearchControl) -> bool {
    use std::sync::atomic::Ordering;

    if state.consensus().info().time_rule != TimeRule::MedianTimePast {
        return true;
    }
    let earliest = u64::from(state.median_time_past()) + 1;
    let limit = u64::from(state.spec().max_future_s);
    while earliest > u64::from(clock.now()) + limit {
        if control.stop.load(Ordering::Relaxed) {
            return false;
        }
        clock.pause(Duration::from_millis(100));
    }
    true
}

/// The key among `keys` whose public key is `pubkey`.
///
/// # Errors
/// [`ProduceError::Unsupported`] when none is.
pub fn key_for<'a>(keys: &'a [KeyPair], pubkey: &PubKey) -> Result<&'a KeyPair, ProduceError> {
    keys.iter()
        .find(|k| k.pubkey() == *pubkey)
        .ok_or_else(|| ProduceError::Unsupported(format!("no key for producer {pubkey}")))
}

/// Builds the next block on the tip at `time`, its coinbase paying `key` (with `extra_nonce`),
/// `seal` as its second transaction and `txs` after it, signed by `key` over its hash.
#[must_use]
pub fn seal_block(
    state: &ChainState,
    key: &KeyPair,
    time: u32,
    seal: Transaction,
    txs: Vec<Transaction>,
    extra_nonce: u64,
) -> BlockRecord {
    let mut record = unsigned_block(state, key.pubkey(), time, seal, txs, extra_nonce);
    record.signature = Some(key.sign(record.hash.as_bytes()));
    record
}

/// Builds the next block on the tip at `time` as [`seal_block`] does, its coinbase paying
/// `producer`, but unsigned: for rules whose seal (a quorum certificate) is attached once a
/// committee has agreed on the block's hash.
#[must_use]
pub fn unsigned_block(
    state: &ChainState,
    producer: PubKey,
    time: u32,
    seal: Transaction,
    txs: Vec<Transaction>,
    extra_nonce: u64,
) -> BlockRecord {
    let mut block = state.block_template(time, producer, txs);
    if let Some(Transaction::Coinbase { extra_nonce: n, .. }) = block.txs.first_mut() {
        *n = extra_nonce;
    }
    block.txs.insert(1, seal);
    block.header.merkle_root = block.compute_merkle_root().root;
    BlockRecord::new(state.next_height(), &block, None)
}
