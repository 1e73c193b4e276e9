//! ZAB as a chain rule: the seal each block carries (a `zab` transaction naming the leader and
//! the zxid, and a quorum certificate of ACK signatures over zxid and block hash, the leader's
//! among them), what a chain file proves by itself, and the producer `mine zab` uses (a
//! fault-free simulated ensemble).
//!
//! From the file alone a verifier checks that a majority of the servers, the leader included,
//! signed each block's zxid and hash (what a server does only once it has logged the
//! proposal); that zxids rise as ZAB delivers them — within an epoch one counter after the
//! other, a new epoch from counter 1 — with one leader per epoch; that block times never go
//! back; and that each client request is answered once (one transfer each). Unlike a Raft
//! chain, a chain signed by one lying server does not verify; but ZAB tolerates crashes, not
//! lies: a majority that signs two histories is beyond what it defends against.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{ProduceError, ProduceOptions, Producer};
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::BlockError;
use crate::consensus::quorum::{QuorumError, check_signatures};
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, Rule, RuleError, RuleInfo, RuleReport,
    RuleState, SpecNames, TimeRule, check_miner_listed, check_no_puzzle,
};
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature, Seal};
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{ClientRequest, KeyPair, PubKey, Transaction};
use crate::sim::cluster::ClusterProducer;
use crate::zab::engine::Zxid;
use crate::zab::spec::ZabSpec;

/// The domain tag every ACK signature starts with.
pub const ACK_TAG: &[u8; 18] = b"chainsmith/zab/ack";
/// The length of [`ack_bytes`]: the tag, epoch, counter and block hash.
pub const ACK_BYTES: usize = ACK_TAG.len() + 8 + 8 + 32;
/// What the signatures of a ZAB certificate are over, as errors name them.
const ACK_OVER: &str = "the ack (zxid, block hash)";

/// What a server signs when it acknowledges the proposal of the block with hash `hash` at
/// `zxid`, and what a certificate's signatures cover: [`ACK_TAG`] ‖ epoch (little-endian
/// u64) ‖ counter (little-endian u64) ‖ hash.
#[must_use]
pub fn ack_bytes(zxid: Zxid, hash: BlockHash) -> [u8; ACK_BYTES] {
    let mut out = [0; ACK_BYTES];
    let (tag, rest) = out.split_at_mut(ACK_TAG.len());
    tag.copy_from_slice(ACK_TAG);
    rest[..8].copy_from_slice(&zxid.epoch.to_le_bytes());
    rest[8..16].copy_from_slice(&zxid.counter.to_le_bytes());
    rest[16..].copy_from_slice(hash.as_bytes());
    out
}

/// `key`'s ACK signature for the block with hash `hash` at `zxid`.
#[must_use]
pub fn sign_ack(key: &KeyPair, zxid: Zxid, hash: BlockHash) -> QuorumSignature {
    QuorumSignature {
        signer: key.pubkey(),
        signature: key.sign(&ack_bytes(zxid, hash)),
    }
}

/// Why a block breaks the ZAB chain rules. Servers are named by their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ZabError {
    /// The second transaction is not the `zab` seal.
    #[error("second transaction must be the `zab` transaction naming leader and zxid")]
    MissingSeal,
    /// The leader is not a member.
    #[error("leader {0} is not a member of the ensemble")]
    NotMember(PubKey),
    /// The certificate lacks the leader's own signature.
    #[error("the quorum certificate lacks the leader's signature ({0})")]
    MissingLeaderSignature(PubKey),
    /// The certificate is bound to a view or sequence number (PBFT's), not a zxid.
    #[error("a zab certificate names no view or sequence number: its signatures bind the zxid")]
    UnboundCertificate,
    /// The zxid did not rise.
    #[error("zxid {epoch}.{counter} does not follow the previous block's zxid {previous}")]
    ZxidNotAfter {
        /// The block's epoch.
        epoch: u64,
        /// Its counter.
        counter: u64,
        /// The previous block's zxid.
        previous: String,
    },
    /// Two leaders signed blocks of one epoch.
    #[error("epoch {epoch} has two leaders: {first} and {second}")]
    TwoLeaders {
        /// The epoch.
        epoch: u64,
        /// The earlier block's leader.
        first: PubKey,
        /// This block's.
        second: PubKey,
    },
    /// An epoch or counter beyond what an ensemble could continue from.
    #[error("epoch {epoch} or counter {counter} is above 2^62")]
    TooLarge {
        /// The block's epoch.
        epoch: u64,
        /// Its counter.
        counter: u64,
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

impl From<ZabError> for BlockError {
    fn from(e: ZabError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// ZAB: an elected leader broadcasts blocks over FIFO links, committed by a majority's ACKs;
/// crash-fault tolerant.
#[derive(Debug, Clone, Copy)]
pub struct Zab;

const ZAB_INFO: RuleInfo = RuleInfo {
    name: "zab",
    summary: "ZAB: ZooKeeper's atomic broadcast — an elected leader's proposals committed by a majority's ACKs, delivered in zxid order; survives crashes (Junqueira, Reed & Serafini 2011)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<ZabSpec>()),
    detects_equivocation: false,
};

/// The largest epoch or counter a block may carry.
const MAX_SEAL: u64 = 1 << 62;

/// The certificate a seal must be.
fn certificate_of(seal: &Seal) -> Result<&QuorumCertificate, BlockError> {
    let Seal::Quorum(qc) = seal else {
        return Err(BlockError::UnexpectedSeal {
            expected: "a quorum certificate",
            found: seal.kind(),
        });
    };
    if qc.view.is_some() || qc.sequence.is_some() {
        return Err(ZabError::UnboundCertificate.into());
    }
    Ok(qc)
}

impl Rule for Zab {
    fn info(&self) -> &'static RuleInfo {
        &ZAB_INFO
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<ZabSpec>()
            .map_or(1000, |z| z.block_interval_ms)
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut out = spec.clone();
        if let Some(z) = spec.section::<ZabSpec>() {
            let mut z = z.clone();
            z.block_interval_ms = u64::from(seconds) * 1000;
            out.section = Some(crate::chain::spec::RuleSection::new(z));
        }
        out
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        spec.section::<ZabSpec>()
            .map_or_else(SpecNames::default, |z| {
                SpecNames::members(&z.members, &z.genesis_coins)
            })
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let z = spec
            .section::<ZabSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "zab",
                reason: "required when consensus is zab".into(),
            })?;
        z.validate()?;
        check_miner_listed(spec, "zab.members", &z.members)?;
        check_no_puzzle(spec)
    }

    fn check_seal(
        &self,
        block: &Block,
        hash: BlockHash,
        seal: &Seal,
        sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        if block.header.nonce != 0 {
            return Err(BlockError::NonzeroNonce(block.header.nonce));
        }
        let qc = certificate_of(seal)?;
        // A block without its `zab` transaction is reported when it is connected.
        if let Some(Transaction::Zab {
            leader,
            epoch,
            counter,
            ..
        }) = block.txs.get(1)
        {
            // Every signature over this block's zxid and hash, no signer twice; who may sign
            // and how many must is checked against the ensemble when the block is connected.
            let signers: Vec<PubKey> = qc.signatures.iter().map(|s| s.signer).collect();
            check_signatures(
                qc,
                &ack_bytes(Zxid::new(*epoch, *counter), hash),
                ACK_OVER,
                &signers,
                0,
                sigs,
            )?;
            if !signers.contains(leader) {
                return Err(ZabError::MissingLeaderSignature(*leader).into());
            }
        }
        Ok(())
    }

    fn seal_signatures(&self, spec: &ChainSpec) -> u64 {
        spec.section::<ZabSpec>().map_or(1, |z| z.quorum() as u64)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Zab {
                leader,
                epoch,
                counter,
                ..
            }) => Some(BlockProducer {
                key: *leader,
                note: Some(format!("zxid {epoch}.{counter}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool {
        index == 1 && matches!(tx, Transaction::Zab { .. })
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(ZabState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(ZAB_INFO.name, &[])?;
        let interval = spec
            .section::<ZabSpec>()
            .map_or(100, |z| z.block_interval_ms);
        Ok(Box::new(ClusterProducer::new(
            spec,
            options.tx_per_block,
            interval,
            crate::zab::cluster::mine_cluster,
        )))
    }
}

/// The state of a ZAB chain after its tip.
#[derive(Debug, Clone)]
pub struct ZabState {
    members: Arc<Vec<PubKey>>,
    names: Arc<HashMap<PubKey, String>>,
    quorum: usize,
    last: Option<(Zxid, PubKey)>,
    blocks: HashMap<PubKey, u64>,
    answered: imbl::HashSet<ClientRequest>,
    height: u32,
}

impl ZabState {
    fn genesis(spec: &ChainSpec) -> Self {
        let z = spec.section::<ZabSpec>().expect("a valid zab spec");
        Self {
            members: Arc::new(
                z.members
                    .iter()
                    .map(|m| KeyPair::derive(&spec.wallet_seed, m).pubkey())
                    .collect(),
            ),
            names: Arc::new(spec.names_by_key()),
            quorum: z.quorum(),
            last: None,
            blocks: HashMap::new(),
            answered: imbl::HashSet::new(),
            height: 0,
        }
    }

    /// The zxid of the last block, if any block follows genesis.
    #[must_use]
    pub fn last_zxid(&self) -> Option<Zxid> {
        self.last.map(|(z, _)| z)
    }

    /// Checks the block of `block` and returns the state after it.
    fn advance(&self, block: &BlockContext<'_>) -> Result<Self, BlockError> {
        let txs = block.txs;
        let Some(Transaction::Zab {
            leader,
            epoch,
            counter,
            requests,
        }) = txs.get(1)
        else {
            return Err(ZabError::MissingSeal.into());
        };
        let qc = certificate_of(block.seal)?;
        if *epoch > MAX_SEAL || *counter > MAX_SEAL {
            return Err(ZabError::TooLarge {
                epoch: *epoch,
                counter: *counter,
            }
            .into());
        }
        if !self.members.contains(leader) {
            return Err(ZabError::NotMember(*leader).into());
        }
        let zxid = Zxid::new(*epoch, *counter);
        // `check_seal` verified every signature over this zxid and hash and refused a repeated
        // signer; here the signers must be servers of the ensemble, a majority of them.
        for (index, s) in qc.signatures.iter().enumerate() {
            if !self.members.contains(&s.signer) {
                return Err(QuorumError::NotMember {
                    index,
                    signer: s.signer,
                }
                .into());
            }
        }
        if qc.signatures.len() < self.quorum {
            return Err(QuorumError::TooFewSigners {
                signers: qc.signatures.len(),
                threshold: self.quorum,
            }
            .into());
        }
        let previous = self.last.map_or_else(Zxid::default, |(z, _)| z);
        let follows = if zxid.epoch == previous.epoch {
            zxid.counter == previous.counter + 1
        } else {
            zxid.epoch > previous.epoch && zxid.counter == 1
        };
        if !follows {
            return Err(ZabError::ZxidNotAfter {
                epoch: *epoch,
                counter: *counter,
                previous: previous.to_string(),
            }
            .into());
        }
        if let Some((_, first)) = self.last
            && zxid.epoch == previous.epoch
            && first != *leader
        {
            return Err(ZabError::TwoLeaders {
                epoch: *epoch,
                first,
                second: *leader,
            }
            .into());
        }
        let (time, parent) = (block.header.time, block.parent.header.time);
        if time < parent {
            return Err(ZabError::TimeWentBack { time, parent }.into());
        }
        let transfers = txs.len() - 2;
        if requests.len() != transfers
            || txs[2..]
                .iter()
                .any(|t| !matches!(t, Transaction::Transfer { .. }))
        {
            return Err(ZabError::RequestsMismatch {
                requests: requests.len(),
                transfers,
            }
            .into());
        }
        let mut next = self.clone();
        for r in requests {
            if next.answered.insert(*r).is_some() {
                return Err(ZabError::DuplicateRequest {
                    client: r.client,
                    serial: r.serial,
                }
                .into());
            }
        }
        next.last = Some((zxid, *leader));
        *next.blocks.entry(*leader).or_default() += 1;
        next.height = block.height;
        Ok(next)
    }
}

impl RuleState for ZabState {
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
        RuleReport::blocks_by_member("leaders", &self.members, &self.names, &self.blocks)
    }

    fn irreversible_height(&self) -> Option<u32> {
        // A block reaches the chain only once a majority logged it, as its certificate shows:
        // it is final at once.
        Some(self.height)
    }
}
