//! PBFT as a chain rule: the seal each block carries (a `pbft` transaction naming primary,
//! view and sequence number, and a quorum certificate of 2f+1 replicas' COMMIT signatures),
//! what a chain file proves by itself, and the producer `mine pbft` uses.
//!
//! From the file alone a verifier checks that every block was proposed by the primary of its
//! view, that at least 2f+1 distinct replicas signed its COMMIT (view, sequence number and
//! block hash) in a view no earlier than the proposal's, that sequence numbers always go
//! forward (sequence numbers the protocol spent on no-ops are not blocks, so gaps are
//! allowed), that block times never go back, and that each client request is answered once
//! (one transfer each). Unlike Raft's, a chain signed by one lying replica does not verify:
//! up to f replicas cannot make a certificate, so a certified block is final for anyone
//! holding the file.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{ProduceError, ProduceOptions, Producer, unsigned_block};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::{BlockError, ChainState};
use crate::consensus::quorum::check_signatures;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, Rule, RuleError, RuleInfo, RuleReport,
    RuleState, SpecNames, TimeRule, check_miner_listed, check_no_puzzle,
};
use crate::pbft::spec::PbftSpec;
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature, Seal};
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{ClientRequest, KeyPair, PubKey, Transaction};
use crate::sim::cluster::ClusterProducer;

/// The domain tag every COMMIT signature starts with.
pub const COMMIT_TAG: &[u8; 22] = b"chainsmith/pbft/commit";
/// The length of [`commit_bytes`]: the tag, view, sequence number and block hash.
pub const COMMIT_BYTES: usize = COMMIT_TAG.len() + 8 + 8 + 32;
/// What the signatures of a PBFT certificate are over, as errors name it.
const COMMIT_OVER: &str = "the commit (view, sequence, block hash)";

/// What a replica signs in its COMMIT for the block with hash `hash`, assigned `sequence` and
/// committed in `view`, and what a certificate's signatures cover: [`COMMIT_TAG`] ‖ view
/// (little-endian u64) ‖ sequence (little-endian u64) ‖ hash.
#[must_use]
pub fn commit_bytes(view: u64, sequence: u64, hash: BlockHash) -> [u8; COMMIT_BYTES] {
    let mut out = [0; COMMIT_BYTES];
    let (tag, rest) = out.split_at_mut(COMMIT_TAG.len());
    tag.copy_from_slice(COMMIT_TAG);
    rest[..8].copy_from_slice(&view.to_le_bytes());
    rest[8..16].copy_from_slice(&sequence.to_le_bytes());
    rest[16..].copy_from_slice(hash.as_bytes());
    out
}

/// `key`'s COMMIT signature for the block with hash `hash` at `sequence` in `view`, as a
/// certificate holds it.
#[must_use]
pub fn sign_commit(key: &KeyPair, view: u64, sequence: u64, hash: BlockHash) -> QuorumSignature {
    QuorumSignature {
        signer: key.pubkey(),
        signature: key.sign(&commit_bytes(view, sequence, hash)),
    }
}

/// The index among `n` replicas of the primary of `view`: `view mod n`.
///
/// # Panics
/// When `n` is 0.
#[must_use]
pub fn primary_index(view: u64, n: usize) -> usize {
    usize::try_from(view % n as u64).expect("below n")
}

/// Builds the next block on `state`'s tip as `primary` proposes it in `view` with
/// `sequence`: its coinbase paying the primary, the `pbft` transaction naming them and
/// `requests`, then `txs` (one transfer per request). It carries no seal: [`certify`] attaches
/// the certificate once 2f+1 replicas have committed it.
#[must_use]
pub fn unsealed_block(
    state: &ChainState,
    primary: &KeyPair,
    time: u32,
    view: u64,
    sequence: u64,
    requests: Vec<ClientRequest>,
    txs: Vec<Transaction>,
) -> BlockRecord {
    let seal = Transaction::Pbft {
        primary: primary.pubkey(),
        view,
        sequence,
        requests,
    };
    unsigned_block(state, primary.pubkey(), time, seal, txs, 0)
}

/// Seals `record` with the certificate of `signatures`: COMMIT signatures over
/// [`commit_bytes`]`(view, sequence, record.hash)`.
pub fn certify(
    record: &mut BlockRecord,
    view: u64,
    sequence: u64,
    signatures: Vec<QuorumSignature>,
) {
    record.certificate = Some(QuorumCertificate {
        signatures,
        view: Some(view),
        sequence: Some(sequence),
    });
}

/// Why a block breaks the PBFT chain rules. Replicas are named by their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PbftError {
    /// The second transaction is not the `pbft` seal.
    #[error(
        "second transaction must be the `pbft` transaction naming primary, view and sequence number"
    )]
    MissingSeal,
    /// The certificate does not say which view and sequence number its commits were for.
    #[error(
        "the quorum certificate must name the view and sequence number its commits were signed in"
    )]
    UnboundCertificate,
    /// The proposer is not the primary of the view it names.
    #[error("{found} is not the primary of view {view} ({expected} is)")]
    NotPrimary {
        /// The view.
        view: u64,
        /// Its primary.
        expected: PubKey,
        /// The block's proposer.
        found: PubKey,
    },
    /// The certificate commits another sequence number than the block was assigned.
    #[error(
        "the certificate commits sequence number {certificate}, but the block was assigned {block}"
    )]
    SequenceMismatch {
        /// The certificate's.
        certificate: u64,
        /// The block's.
        block: u64,
    },
    /// The certificate's view is before the view the block was proposed in.
    #[error("the certificate's view {certificate} is before the block's view {block}")]
    CommitBeforeProposal {
        /// The certificate's.
        certificate: u64,
        /// The block's.
        block: u64,
    },
    /// The sequence number did not go forward.
    #[error(
        "sequence number {sequence} does not follow the previous block's sequence number {previous}"
    )]
    SequenceNotAfter {
        /// The block's.
        sequence: u64,
        /// The previous block's.
        previous: u64,
    },
    /// A view or sequence number beyond what a cluster could continue from.
    #[error("view {view} or sequence number {sequence} is above 2^62")]
    TooLarge {
        /// The view (the block's or the certificate's).
        view: u64,
        /// The sequence number.
        sequence: u64,
    },
    /// The block time went back.
    #[error("time {time} is before the parent's time {parent}")]
    TimeWentBack {
        /// The block's time.
        time: u32,
        /// The parent's.
        parent: u32,
    },
    /// The requests do not match the transfers one to one.
    #[error("{requests} client requests for {transfers} transfers: each request is one transfer")]
    RequestsMismatch {
        /// Requests in the seal.
        requests: usize,
        /// Transfers in the block.
        transfers: usize,
    },
    /// A request answered twice.
    #[error("client {client} request {serial} was already answered")]
    DuplicateRequest {
        /// The client.
        client: u32,
        /// Its serial.
        serial: u64,
    },
}

impl From<PbftError> for BlockError {
    fn from(e: PbftError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// PBFT: a primary orders blocks, committed by 2f+1 of 3f+1 replicas; Byzantine-fault
/// tolerant.
#[derive(Debug, Clone, Copy)]
pub struct Pbft;

const PBFT_INFO: RuleInfo = RuleInfo {
    name: "pbft",
    summary: "PBFT: a primary orders blocks, committed by 2f+1 of 3f+1 replicas; survives f Byzantine replicas (Castro & Liskov 1999)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<PbftSpec>()),
    detects_equivocation: false,
};

/// The largest view or sequence number a block may carry: far beyond any real cluster, and
/// far enough below `u64::MAX` that a cluster continuing the chain never overflows.
const MAX_SEAL: u64 = 1 << 62;

/// The certificate a seal must be, with the view and sequence number its commits were
/// signed in.
fn commit_of(seal: &Seal) -> Result<(&QuorumCertificate, u64, u64), BlockError> {
    let Seal::Quorum(qc) = seal else {
        return Err(BlockError::UnexpectedSeal {
            expected: "a quorum certificate",
            found: seal.kind(),
        });
    };
    match (qc.view, qc.sequence) {
        (Some(view), Some(sequence)) => Ok((qc, view, sequence)),
        _ => Err(PbftError::UnboundCertificate.into()),
    }
}

impl Rule for Pbft {
    fn info(&self) -> &'static RuleInfo {
        &PBFT_INFO
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<PbftSpec>()
            .map_or(1000, |p| p.block_interval_ms)
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut out = spec.clone();
        if let Some(p) = spec.section::<PbftSpec>() {
            let mut p = p.clone();
            p.block_interval_ms = u64::from(seconds) * 1000;
            // The view timeout stays above the interval: at least five intervals.
            p.view_timeout_ms = p.view_timeout_ms.max(p.block_interval_ms * 5);
            out.section = Some(crate::chain::spec::RuleSection::new(p));
        }
        out
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        spec.section::<PbftSpec>()
            .map_or_else(SpecNames::default, |p| {
                SpecNames::members(&p.members, &p.genesis_coins)
            })
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let p = spec
            .section::<PbftSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "pbft",
                reason: "required when consensus is pbft".into(),
            })?;
        p.validate()?;
        check_miner_listed(spec, "pbft.members", &p.members)?;
        check_no_puzzle(spec)
    }

    fn check_seal(
        &self,
        block: &Block,
        _hash: BlockHash,
        seal: &Seal,
        _sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        if block.header.nonce != 0 {
            return Err(BlockError::NonzeroNonce(block.header.nonce));
        }
        let (_, view, sequence) = commit_of(seal)?;
        // A block without its `pbft` transaction is reported when it is connected.
        if let Some(Transaction::Pbft {
            view: proposed,
            sequence: assigned,
            ..
        }) = block.txs.get(1)
        {
            if sequence != *assigned {
                return Err(PbftError::SequenceMismatch {
                    certificate: sequence,
                    block: *assigned,
                }
                .into());
            }
            if view < *proposed {
                return Err(PbftError::CommitBeforeProposal {
                    certificate: view,
                    block: *proposed,
                }
                .into());
            }
        }
        // Who signed is checked against the replicas when the block is connected.
        Ok(())
    }

    fn seal_signatures(&self, spec: &ChainSpec) -> u64 {
        // The replicas certify a block with exactly a quorum of commits.
        spec.section::<PbftSpec>().map_or(1, |p| p.quorum() as u64)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Pbft {
                primary,
                view,
                sequence,
                ..
            }) => Some(BlockProducer {
                key: *primary,
                note: Some(format!("view {view}, sequence {sequence}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool {
        index == 1 && matches!(tx, Transaction::Pbft { .. })
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(PbftState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(PBFT_INFO.name, &[])?;
        let interval = spec
            .section::<PbftSpec>()
            .map_or(200, |p| p.block_interval_ms);
        Ok(Box::new(ClusterProducer::new(
            spec,
            options.tx_per_block,
            interval,
            crate::pbft::cluster::mine_cluster,
        )))
    }
}

/// The state of a PBFT chain after its tip.
#[derive(Debug, Clone)]
pub struct PbftState {
    members: Arc<Vec<PubKey>>,
    names: Arc<HashMap<PubKey, String>>,
    quorum: usize,
    last_sequence: Option<u64>,
    blocks: HashMap<PubKey, u64>,
    answered: imbl::HashSet<ClientRequest>,
    height: u32,
}

impl PbftState {
    fn genesis(spec: &ChainSpec) -> Self {
        let p = spec.section::<PbftSpec>().expect("a valid pbft spec");
        Self {
            members: Arc::new(
                p.members
                    .iter()
                    .map(|m| KeyPair::derive(&spec.wallet_seed, m).pubkey())
                    .collect(),
            ),
            names: Arc::new(spec.names_by_key()),
            quorum: p.quorum(),
            last_sequence: None,
            blocks: HashMap::new(),
            answered: imbl::HashSet::new(),
            height: 0,
        }
    }

    /// The sequence number of the last block, if any block follows genesis.
    #[must_use]
    pub const fn last_sequence(&self) -> Option<u64> {
        self.last_sequence
    }

    /// The replicas' keys, in spec order: the primary of view `v` is
    /// `replicas()[primary_index(v, n)]`.
    #[must_use]
    pub fn replicas(&self) -> &[PubKey] {
        &self.members
    }

    /// Checks the block of `block` and returns the state after it.
    fn advance(&self, block: &BlockContext<'_>) -> Result<Self, BlockError> {
        let txs = block.txs;
        let Some(Transaction::Pbft {
            primary,
            view,
            sequence,
            requests,
        }) = txs.get(1)
        else {
            return Err(PbftError::MissingSeal.into());
        };
        let (qc, commit_view, commit_sequence) = commit_of(block.seal)?;
        if *view > MAX_SEAL || commit_view > MAX_SEAL || *sequence > MAX_SEAL {
            return Err(PbftError::TooLarge {
                view: (*view).max(commit_view),
                sequence: *sequence,
            }
            .into());
        }
        let expected = self.members[primary_index(*view, self.members.len())];
        if *primary != expected {
            return Err(PbftError::NotPrimary {
                view: *view,
                expected,
                found: *primary,
            }
            .into());
        }
        // That the certificate's sequence number is the block's, and its view no earlier,
        // `check_seal` checked before the block met the chain.
        check_signatures(
            qc,
            &commit_bytes(commit_view, commit_sequence, block.hash),
            COMMIT_OVER,
            &self.members,
            self.quorum,
            block.sigs,
        )?;
        if let Some(previous) = self.last_sequence
            && *sequence <= previous
        {
            return Err(PbftError::SequenceNotAfter {
                sequence: *sequence,
                previous,
            }
            .into());
        }
        let (time, parent) = (block.header.time, block.parent.header.time);
        if time < parent {
            return Err(PbftError::TimeWentBack { time, parent }.into());
        }
        let transfers = txs.len() - 2;
        if requests.len() != transfers
            || txs[2..]
                .iter()
                .any(|t| !matches!(t, Transaction::Transfer { .. }))
        {
            return Err(PbftError::RequestsMismatch {
                requests: requests.len(),
                transfers,
            }
            .into());
        }
        let mut next = self.clone();
        for r in requests {
            if next.answered.insert(*r).is_some() {
                return Err(PbftError::DuplicateRequest {
                    client: r.client,
                    serial: r.serial,
                }
                .into());
            }
        }
        next.last_sequence = Some(*sequence);
        *next.blocks.entry(*primary).or_default() += 1;
        next.height = block.height;
        Ok(next)
    }
}

impl RuleState for PbftState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        Ok(Box::new(self.advance(block)?))
    }

    fn connected(&mut self, block: &Connected<'_>) {
        self.height = block.height;
    }

    fn report(&self) -> RuleReport {
        RuleReport::blocks_by_member("primaries", &self.members, &self.names, &self.blocks)
    }

    fn irreversible_height(&self) -> Option<u32> {
        // A block reaches the chain only with the commits of 2f+1 replicas, which its
        // certificate proves to anyone with the file: it is final at once.
        Some(self.height)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
