//! The consensus-rule interface: what the consensus-neutral core ([`crate::chain`]) asks of a
//! rule, and the registry of rules.
//!
//! A rule is a module that owns everything specific to it — its spec section and its
//! validation, its block checks, its state along a chain, its finality and its report — and
//! implements two traits:
//!
//! - [`Rule`], stateless: its name, the context-free checks of a block's seal (run in parallel
//!   by verification), which transactions it owns, how block time is constrained, what
//!   producing a block costs, and its state at genesis;
//! - [`RuleState`], the rule's state after a block: the contextual check of the next block
//!   (returning the next state and leaving `self` untouched, so a rejected block changes
//!   nothing), and what it reports.
//!
//! The core names no rule. It reaches rules through [`Consensus`], a handle into the registry
//! [`RULES`], which is the only list of rules in the crate: adding a rule is a module and one
//! line there. Every method a rule's validity depends on is required, so a rule that forgets a
//! part does not compile; only the timing that reports use has a default.
//!
//! Blocks reach a chain's state only as a [`CheckedBlock`], which can only be made by
//! [`Consensus::check`] and remembers the rule that checked it; [`ChainState::connect`]
//! refuses a block checked under another rule.
//!
//! [`ChainState::connect`]: crate::chain::state::ChainState::connect

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::chain::ledger::{LedgerDelta, Utxo};
use crate::chain::produce::{ProduceError, ProduceOptions, Producer};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::{BlockError, Tip};
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Txid};
use crate::primitives::header::Header;
use crate::primitives::seal::Seal;
use crate::primitives::sig::{SigCheck, Strict};
use crate::primitives::tx::{OutPoint, PubKey, SigDomain, Transaction};

pub mod quorum;
#[cfg(test)]
mod test_rule;

/// Every consensus rule, in the order the CLI lists them. The only list of rules in the crate.
pub static RULES: &[&dyn Rule] = &[
    &crate::pow::Pow,
    &crate::pos::Pos,
    &crate::dpos::Dpos,
    &crate::poa::Poa,
    &crate::raft::Raft,
    &crate::pbft::Pbft,
    &crate::paxos::Paxos,
    &crate::zab::Zab,
    &crate::kafka::Kafka,
    #[cfg(test)]
    &test_rule::QuorumDemo,
];

/// What producing a block costs under a rule, so reports show only what the rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockWork {
    /// A nonce search over sha256d(header) on the hash backends and every thread.
    NonceSearch,
    /// A kernel search: one sha256d per eligible output per second of chain time.
    KernelSearch,
    /// Signatures only: no hashing.
    Signatures,
}

/// How a block's header time is constrained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeRule {
    /// After the median of the previous 11 block times (BIP113), at most the spec's
    /// `max_future_s` past the verifier's clock.
    MedianTimePast,
    /// The rule's own schedule (slots, periods); still at most `max_future_s` ahead.
    Scheduled,
}

/// What the core and the reports need to know about a rule, declared once per rule.
#[derive(Debug, Clone, Copy)]
pub struct RuleInfo {
    /// The rule's name in specs, on the command line and in JSON (`pow`).
    pub name: &'static str,
    /// One line for `--help`.
    pub summary: &'static str,
    /// What producing a block costs.
    pub work: BlockWork,
    /// How many blocks `chainsmith mine` adds by default: enough to show the rule at work.
    pub demo_blocks: u64,
    /// How block time is constrained.
    pub time_rule: TimeRule,
    /// The spec section the rule owns (`pos`), if any; other rules' sections are refused.
    pub section: Option<SectionDef>,
    /// Whether a producer signing two blocks for one turn is detected (and reported as
    /// evidence) by the rule's producer.
    pub detects_equivocation: bool,
}

/// A consensus rule. See the module docs.
pub trait Rule: fmt::Debug + Send + Sync + 'static {
    /// The rule's name, work, time rule and spec section.
    fn info(&self) -> &'static RuleInfo;

    /// The rule's name (from [`Rule::info`]).
    fn name(&self) -> &'static str {
        self.info().name
    }

    /// The intended milliseconds between blocks; by default the spec's `target_spacing_s`.
    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        u64::from(spec.target_spacing_s) * 1000
    }

    /// `spec` with `seconds` between blocks; by default in `target_spacing_s`.
    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        ChainSpec {
            target_spacing_s: seconds,
            ..spec.clone()
        }
    }

    /// When `block` was made, in milliseconds since 1970; by default its header time.
    fn block_time_ms(&self, _spec: &ChainSpec, block: &Block) -> u64 {
        u64::from(block.header.time) * 1000
    }

    /// The names a valid `spec` gives the rule's people.
    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s>;

    /// Checks the rule's part of a spec: its section and what it demands of the core fields.
    ///
    /// # Errors
    /// [`SpecError`] naming the field.
    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError>;

    /// The context-free checks of a block after genesis: its seal (proof of work, the
    /// producer's signature, a quorum certificate) and header fields the rule fixes. Runs in
    /// parallel, before the block meets the chain. Signatures are checked through `sigs`.
    /// By default: a zero nonce and the signature, over the block hash, of the producer the
    /// block names ([`Self::producer_of`]; a block that names none is reported when it is
    /// connected).
    ///
    /// # Errors
    /// The first check that fails.
    fn check_seal(
        &self,
        block: &Block,
        hash: BlockHash,
        seal: &Seal,
        sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        check_producer_signature(
            block,
            hash,
            seal,
            self.producer_of(block).map(|p| p.key),
            sigs,
        )
    }

    /// Who made `block` as the block names it (the staker, the signer, the producer), with a
    /// note for people (`in turn`, `slot 7`); `None` where no one key made it (proof of work,
    /// a committee) or the block names no one.
    fn producer_of(&self, block: &Block) -> Option<BlockProducer>;

    /// Signatures a block's seal carries when its rule signs blocks ([`BlockWork`] other than
    /// a nonce search): one producer's signature, unless a committee certifies it.
    fn seal_signatures(&self, _spec: &ChainSpec) -> u64 {
        1
    }

    /// Whether transaction `index` of a block is the rule's own (a seal transaction, a
    /// coinstake, a vote), checked by [`RuleState::check`] rather than by the ledger.
    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool;

    /// The rule's state after the genesis block of a valid `spec`.
    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState>;

    /// The rule's block producer for chains of a valid `spec`, simulating every producer the
    /// spec names.
    ///
    /// # Errors
    /// [`ProduceError::OptionNotApplicable`] for an option the rule does not have.
    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError>;
}

/// Who made a block, as the block names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockProducer {
    /// The producer's key.
    pub key: PubKey,
    /// A note for people: `in turn`, `slot 7`.
    pub note: Option<String>,
}

/// The names a spec gives a rule's people.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecNames<'s> {
    /// Who may produce blocks (stakeholders, candidates, signers).
    pub producers: Vec<&'s str>,
    /// Wallets whose keys the demo traffic uses, besides the spec's `wallets`.
    pub wallets: Vec<&'s str>,
    /// Genesis holdings: each owner's outputs, in coins.
    pub genesis: Vec<(&'s str, &'s [f64])>,
}

impl<'s> SpecNames<'s> {
    /// The names of a cluster's members: each produces blocks, holds a wallet and starts
    /// with `coins` (Raft, PBFT).
    #[must_use]
    pub fn members(members: &'s [String], coins: &'s [f64]) -> Self {
        let names: Vec<&str> = members.iter().map(String::as_str).collect();
        Self {
            producers: names.clone(),
            wallets: names.clone(),
            genesis: names.into_iter().map(|m| (m, coins)).collect(),
        }
    }
}

/// What a rule's contextual check sees of a block and its chain.
#[derive(Clone, Copy)]
pub struct BlockContext<'a> {
    /// The block's height.
    pub height: u32,
    /// The block's hash.
    pub hash: BlockHash,
    /// The block's header.
    pub header: &'a Header,
    /// The block's seal (checked for its kind by [`Rule::check_seal`]; who may sign is the
    /// state's to check where the signer set changes along the chain).
    pub seal: &'a Seal,
    /// What the chain's transaction signatures are bound to.
    pub domain: SigDomain,
    /// What checks the block's signatures.
    pub sigs: &'a dyn SigCheck,
    /// The block's transactions.
    pub txs: &'a [Transaction],
    /// Their txids.
    pub txids: &'a [Txid],
    /// The chain's tip: the block's parent.
    pub parent: &'a Tip,
    /// The chain's spec.
    pub spec: &'a ChainSpec,
    /// The unspent outputs before the block.
    pub utxos: &'a dyn Fn(&OutPoint) -> Option<Utxo>,
}

/// A block just connected, as a rule's state learns of it.
#[derive(Debug, Clone, Copy)]
pub struct Connected<'a> {
    /// Its height.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
    /// The outputs it spent.
    pub spent: &'a [Utxo],
    /// The outputs it created.
    pub created: &'a [Utxo],
}

/// One producer's line in a report: a staker, a DPoS producer, a Clique signer.
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerRow {
    /// Its key.
    pub key: PubKey,
    /// Its spec name, or the start of its key's hex when the spec does not name it.
    pub name: String,
    /// Blocks it produced.
    pub blocks: u64,
    /// Turns it owned but did not produce (`None` where the rule has no turns).
    pub missed: Option<u64>,
    /// Proof of stake: coins it holds at genesis.
    pub coins: Option<f64>,
    /// Proof of stake: coin-days its coinstakes consumed.
    pub coin_days: Option<u64>,
    /// Proof of stake: interest paid to it, in coins.
    pub interest: Option<f64>,
}

/// What one producer (signer) with turns has done over a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerStats {
    /// Blocks produced.
    pub blocks: u64,
    /// Turns it owned but did not produce: DPoS slots without its block, Clique in-turn
    /// blocks sealed by someone else.
    pub missed: u64,
}

impl ProducerRow {
    /// The row of a producer with turns (DPoS, PoA): blocks and missed turns.
    #[must_use]
    pub const fn with_turns(key: PubKey, name: String, stats: ProducerStats) -> Self {
        Self {
            key,
            name,
            blocks: stats.blocks,
            missed: Some(stats.missed),
            coins: None,
            coin_days: None,
            interest: None,
        }
    }
}

/// What a rule's state reports about a chain.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleReport {
    /// What the rule calls its producers in reports and JSON (`stakeholders`, `producers`,
    /// `signers`), with their rows; `None` for a rule without named producers.
    pub producers: Option<(&'static str, Vec<ProducerRow>)>,
}

impl RuleReport {
    /// The report of a rule whose members take turns at nothing: each member's blocks,
    /// under `label` (`leaders`, `primaries`).
    #[must_use]
    pub fn blocks_by_member(
        label: &'static str,
        members: &[PubKey],
        names: &HashMap<PubKey, String>,
        blocks: &HashMap<PubKey, u64>,
    ) -> Self {
        let rows = members
            .iter()
            .map(|k| ProducerRow {
                key: *k,
                name: name_in(names, k),
                blocks: blocks.get(k).copied().unwrap_or(0),
                missed: None,
                coins: None,
                coin_days: None,
                interest: None,
            })
            .collect();
        Self {
            producers: Some((label, rows)),
        }
    }
}

/// Copies a rule state behind a box; implemented for every `Clone` state.
pub trait CloneState {
    /// A copy of the state.
    fn clone_state(&self) -> Box<dyn RuleState>;
}

impl<T: RuleState + Clone> CloneState for T {
    fn clone_state(&self) -> Box<dyn RuleState> {
        Box::new(self.clone())
    }
}

/// A rule's state along a chain. See the module docs. A rule's own producer reaches the
/// concrete type through [`Any`] ([`crate::chain::state::ChainState::rule_state_as`]).
pub trait RuleState: fmt::Debug + Send + Sync + Any + CloneState {
    /// Checks the next block against the chain and returns the state after it; `delta`
    /// receives the outputs the rule's own transactions spend and create (a coinstake).
    ///
    /// # Errors
    /// The first rule the block breaks.
    fn check(
        &self,
        block: &BlockContext<'_>,
        delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError>;

    /// Learns of a connected block (genesis included) and the outputs it moved.
    fn connected(&mut self, block: &Connected<'_>);

    /// What the rule reports after the tip.
    fn report(&self) -> RuleReport;

    /// The last irreversible height after the tip, for rules whose blocks become final at a
    /// height; `None` for rules whose blocks are never final (they only get harder to revert).
    fn irreversible_height(&self) -> Option<u32>;
}

impl Clone for Box<dyn RuleState> {
    fn clone(&self) -> Self {
        self.clone_state()
    }
}

/// A handle to a registered rule: what a spec's `consensus` field names. Serialised as the
/// rule's name; two handles are equal when they name the same rule.
#[derive(Clone, Copy)]
pub struct Consensus(&'static dyn Rule);

impl Consensus {
    /// The registered rule called `name`.
    ///
    /// # Errors
    /// [`UnknownRule`] listing the rules there are.
    pub fn from_name(name: &str) -> Result<Self, UnknownRule> {
        RULES
            .iter()
            .find(|r| r.name() == name)
            .map(|r| Self(*r))
            .ok_or_else(|| UnknownRule(name.to_owned()))
    }

    /// The rule's name, work, time rule and spec section.
    #[must_use]
    pub fn info(self) -> &'static RuleInfo {
        self.0.info()
    }

    /// Every registered rule.
    pub fn all() -> impl Iterator<Item = Self> {
        RULES.iter().map(|r| Self(*r))
    }

    /// The rule.
    #[must_use]
    pub fn rule(self) -> &'static dyn Rule {
        self.0
    }

    /// The rule's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        self.0.name()
    }

    /// Runs the context-free checks of `record` under this rule: the claimed hash, the merkle
    /// root and its mutation, the target encoding, and (after genesis) the rule's seal.
    ///
    /// # Errors
    /// The first failed check.
    pub fn check(self, record: BlockRecord) -> Result<CheckedBlock, BlockError> {
        self.check_with(record, &Strict)
    }

    /// [`Consensus::check`], the seal's signatures checked through `sigs`.
    ///
    /// # Errors
    /// The first failed check.
    pub fn check_with(
        self,
        record: BlockRecord,
        sigs: &dyn SigCheck,
    ) -> Result<CheckedBlock, BlockError> {
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
        block.header.bits.to_target()?;
        let seal = record.seal()?;
        if record.height == 0 {
            // Genesis is checked whole against its spec when it is connected (and the spec's
            // genesis against the rule, e.g. its proof of work); it carries no seal.
            if seal != Seal::None {
                return Err(BlockError::UnexpectedSeal {
                    expected: "no seal on the genesis block",
                    found: seal.kind(),
                });
            }
        } else {
            self.0.check_seal(&block, hash, &seal, sigs)?;
        }
        Ok(CheckedBlock {
            rule: self,
            record,
            block,
            hash,
            txids,
        })
    }
}

impl PartialEq for Consensus {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

impl Eq for Consensus {}

impl fmt::Debug for Consensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Consensus({})", self.name())
    }
}

impl fmt::Display for Consensus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for Consensus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Consensus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// No registered rule has this name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consensus rule {0:?} (rules: {names})", names = rule_names().join(", "))]
pub struct UnknownRule(pub String);

/// The names of the registered rules, in registry order.
#[must_use]
pub fn rule_names() -> Vec<&'static str> {
    RULES.iter().map(|r| r.name()).collect()
}

/// A block that passed the context-free checks of the rule it remembers. Only
/// [`Consensus::check`] makes one; its fields cannot be set from outside.
#[derive(Debug, Clone)]
pub struct CheckedBlock {
    rule: Consensus,
    record: BlockRecord,
    block: Block,
    hash: BlockHash,
    txids: Vec<Txid>,
}

impl CheckedBlock {
    /// The rule that checked it.
    #[must_use]
    pub const fn rule(&self) -> Consensus {
        self.rule
    }

    /// The record it came from.
    #[must_use]
    pub const fn record(&self) -> &BlockRecord {
        &self.record
    }

    /// The block.
    #[must_use]
    pub const fn block(&self) -> &Block {
        &self.block
    }

    /// Its hash.
    #[must_use]
    pub const fn hash(&self) -> BlockHash {
        self.hash
    }

    /// Its transactions' ids, in block order.
    #[must_use]
    pub fn txids(&self) -> &[Txid] {
        &self.txids
    }
}

/// A rule's own error, wrapped by [`BlockError::Rule`]: `PosError`, `DposError`,
/// `PoaError`… Two are equal when they say the same thing.
#[derive(Debug, Clone)]
pub struct RuleError(Arc<dyn std::error::Error + Send + Sync>);

impl RuleError {
    /// Wraps a rule's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(error))
    }

    /// The rule's error as its own type, if it is one.
    #[must_use]
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        self.0.downcast_ref()
    }
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for RuleError {}

impl PartialEq for RuleError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for RuleError {}

/// `text` (an error message, which names keys by their hex) with every key `names` knows
/// replaced by its name: errors carry keys, and names are put in where they are printed.
#[must_use]
pub fn with_names(text: &str, names: &HashMap<PubKey, String>) -> String {
    let mut out = text.to_owned();
    for (key, name) in names {
        let hex = key.to_string();
        if out.contains(&hex) {
            out = out.replace(&hex, name);
        }
    }
    out
}

/// `key`'s name in `names`, or the start of its hex for a key the spec does not name.
#[must_use]
pub fn name_in(names: &HashMap<PubKey, String>, key: &PubKey) -> String {
    names.get(key).cloned().unwrap_or_else(|| {
        let hex = key.to_string();
        format!("key {}…", &hex[..16])
    })
}

/// Checks that a spec's `miner` is one of the rule's producers, listed in spec field `list`.
///
/// # Errors
/// [`SpecError::BadField`] naming `miner`.
pub fn check_miner_listed(
    spec: &ChainSpec,
    list: &'static str,
    names: &[String],
) -> Result<(), SpecError> {
    if names.contains(&spec.miner) {
        return Ok(());
    }
    Err(SpecError::BadField {
        field: "miner",
        reason: format!("{:?} is not one of {list}", spec.miner),
    })
}

/// Checks that a spec whose blocks solve no puzzle has no retarget rule.
///
/// # Errors
/// [`SpecError::BadField`] naming `retarget.rule`.
pub fn check_no_puzzle(spec: &ChainSpec) -> Result<(), SpecError> {
    if spec.retarget == crate::difficulty::RetargetRule::None {
        return Ok(());
    }
    Err(SpecError::BadField {
        field: "retarget.rule",
        reason: format!(
            "{} blocks solve no puzzle: the rule must be none",
            spec.consensus
        ),
    })
}

/// Checks that a block after genesis is sealed by `producer`'s signature over its hash and
/// leaves the nonce at zero (it proves nothing without a hash puzzle, so it must not vary):
/// the seal of every rule whose blocks one producer signs. The signature is checked through
/// `sigs`.
///
/// # Errors
/// [`BlockError::NonzeroNonce`], [`BlockError::UnexpectedSeal`], [`BlockError::BadBlockSignature`].
pub fn check_producer_signature(
    block: &Block,
    hash: BlockHash,
    seal: &Seal,
    producer: Option<PubKey>,
    sigs: &dyn SigCheck,
) -> Result<(), BlockError> {
    if block.header.nonce != 0 {
        return Err(BlockError::NonzeroNonce(block.header.nonce));
    }
    // A block that names no producer is reported when it is connected (missing seal).
    let Some(key) = producer else {
        return Ok(());
    };
    match seal {
        Seal::Signature(sig) if sigs.check(&key, hash.as_bytes(), sig) => Ok(()),
        Seal::Signature(_) | Seal::None => Err(BlockError::BadBlockSignature(key)),
        Seal::Quorum(_) => Err(BlockError::UnexpectedSeal {
            expected: "a signature",
            found: seal.kind(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_names_are_unique_and_resolve() {
        let names = rule_names();
        for (i, n) in names.iter().enumerate() {
            assert!(!names[..i].contains(n), "{n} registered twice");
            assert_eq!(Consensus::from_name(n).unwrap().name(), *n);
        }
        let err = Consensus::from_name("tendermint").unwrap_err().to_string();
        assert!(
            err.contains("\"tendermint\"")
                && err.contains("pow, pos, dpos, poa, raft, pbft, paxos"),
            "{err}"
        );
    }

    #[test]
    fn consensus_serialises_as_its_name() {
        let c = Consensus::from_name("dpos").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"dpos\"");
        let back: Consensus = serde_json::from_str("\"dpos\"").unwrap();
        assert_eq!(back, c);
        assert!(serde_json::from_str::<Consensus>("\"nope\"").is_err());
    }
}
