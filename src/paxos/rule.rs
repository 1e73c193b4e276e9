//! Paxos as a chain rule: the seal each block carries (a `paxos` transaction naming the
//! leader that proposed it, its ballot's round and its slot, and a quorum certificate of a
//! majority of acceptors' 2b signatures), what a chain file proves by itself, and the
//! producer `mine paxos` uses (a fault-free simulated cluster).
//!
//! From the file alone a verifier checks that every block was proposed by a member, that a
//! majority of distinct members signed its 2b — (ballot, slot, block hash) — in a ballot no
//! lower than the one it was proposed in and for the slot the block names, that slots always
//! go forward (slots spent on no-ops are not blocks, so gaps are allowed), that block times
//! never go back, and that each client request is answered once (one transfer each). Paxos
//! tolerates crashes, not lies: a majority's signatures show that a majority accepted the
//! block, and so that it was chosen, as long as the members follow the protocol.

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
use crate::paxos::engine::{Ballot, accepted_bytes};
use crate::paxos::spec::PaxosSpec;
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature, Seal};
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{ClientRequest, KeyPair, PubKey, Transaction};
use crate::sim::cluster::ClusterProducer;

/// What the signatures of a Paxos certificate are over, as errors name it.
const ACCEPTED_OVER: &str = "the 2b (ballot, slot, block hash)";

/// The largest round or slot a block may carry: a packed ballot (round · 2^16 + member)
/// must fit in 64 bits, with room for a cluster continuing the chain.
pub const MAX_ROUND: u64 = 1 << 46;
/// The largest slot a block may carry.
pub const MAX_SLOT: u64 = 1 << 62;

/// `key`'s 2b signature for the block with hash `hash` in `slot` at `ballot`, as a
/// certificate holds it.
#[must_use]
pub fn sign_accepted(key: &KeyPair, ballot: Ballot, slot: u64, hash: BlockHash) -> QuorumSignature {
    QuorumSignature {
        signer: key.pubkey(),
        signature: key.sign(&accepted_bytes(ballot, slot, hash)),
    }
}

/// Builds the next block on `state`'s tip as `leader` proposes it in a ballot of `round`
/// for `slot`: its coinbase paying the leader, the `paxos` transaction naming them and
/// `requests`, then `txs` (one transfer per request). It carries no seal: [`certify`]
/// attaches the certificate once a majority voted for it.
#[must_use]
pub fn unsealed_block(
    state: &ChainState,
    leader: &KeyPair,
    time: u32,
    round: u64,
    slot: u64,
    requests: Vec<ClientRequest>,
    txs: Vec<Transaction>,
) -> BlockRecord {
    let seal = Transaction::Paxos {
        leader: leader.pubkey(),
        round,
        slot,
        requests,
    };
    unsigned_block(state, leader.pubkey(), time, seal, txs, 0)
}

/// Seals `record` with the certificate of `signatures`: 2b signatures over
/// [`accepted_bytes`]`(ballot, slot, record.hash)`. The certificate's `view` holds the packed
/// ballot ([`Ballot::pack`]) and its `sequence` the slot.
pub fn certify(
    record: &mut BlockRecord,
    ballot: Ballot,
    slot: u64,
    signatures: Vec<QuorumSignature>,
) {
    record.certificate = Some(QuorumCertificate {
        signatures,
        view: Some(ballot.pack()),
        sequence: Some(slot),
    });
}

/// Why a block breaks the Paxos chain rules. Members are named by their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaxosError {
    /// The second transaction is not the `paxos` seal.
    #[error("second transaction must be the `paxos` transaction naming leader, round and slot")]
    MissingSeal,
    /// The certificate does not say which ballot and slot its 2b messages were for.
    #[error("the quorum certificate must name the ballot and slot its 2b messages were signed for")]
    UnboundCertificate,
    /// The proposer is not a member.
    #[error("{0} is not a member of the cluster")]
    NotMember(PubKey),
    /// The certificate is for another slot than the block names.
    #[error("the certificate is for slot {certificate}, but the block fills slot {block}")]
    SlotMismatch {
        /// The certificate's.
        certificate: u64,
        /// The block's.
        block: u64,
    },
    /// The certificate's ballot is below the ballot the block was proposed in.
    #[error("the certificate's ballot {certificate} is below the block's ballot {block}")]
    AcceptedBeforeProposed {
        /// The certificate's.
        certificate: Ballot,
        /// The block's.
        block: Ballot,
    },
    /// The slot did not go forward.
    #[error("slot {slot} does not follow the previous block's slot {previous}")]
    SlotNotAfter {
        /// The block's.
        slot: u64,
        /// The previous block's.
        previous: u64,
    },
    /// A round or slot beyond what a cluster could continue from.
    #[error("round {round} is above 2^46 or slot {slot} above 2^62")]
    TooLarge {
        /// The round (the block's or the certificate's).
        round: u64,
        /// The slot.
        slot: u64,
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

impl From<PaxosError> for BlockError {
    fn from(e: PaxosError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Paxos: an elected leader orders blocks, each chosen by a majority of acceptors;
/// crash-fault tolerant.
#[derive(Debug, Clone, Copy)]
pub struct Paxos;

const PAXOS_INFO: RuleInfo = RuleInfo {
    name: "paxos",
    summary: "Multi-Paxos: a leader elected by ballot proposes blocks, each chosen by a majority of acceptors; survives crashes (Lamport 2001)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<PaxosSpec>()),
    detects_equivocation: false,
};

/// The certificate a seal must be, with the ballot and slot its 2b messages were signed for.
fn accepted_of(seal: &Seal) -> Result<(&QuorumCertificate, Ballot, u64), BlockError> {
    let Seal::Quorum(qc) = seal else {
        return Err(BlockError::UnexpectedSeal {
            expected: "a quorum certificate",
            found: seal.kind(),
        });
    };
    match (qc.view, qc.sequence) {
        (Some(ballot), Some(slot)) => Ok((qc, Ballot::unpack(ballot), slot)),
        _ => Err(PaxosError::UnboundCertificate.into()),
    }
}

impl Rule for Paxos {
    fn info(&self) -> &'static RuleInfo {
        &PAXOS_INFO
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<PaxosSpec>()
            .map_or(1000, |p| p.block_interval_ms)
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut out = spec.clone();
        if let Some(p) = spec.section::<PaxosSpec>() {
            let mut p = p.clone();
            p.block_interval_ms = u64::from(seconds) * 1000;
            out.section = Some(crate::chain::spec::RuleSection::new(p));
        }
        out
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        spec.section::<PaxosSpec>()
            .map_or_else(SpecNames::default, |p| {
                SpecNames::members(&p.members, &p.genesis_coins)
            })
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let p = spec
            .section::<PaxosSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "paxos",
                reason: "required when consensus is paxos".into(),
            })?;
        p.validate()?;
        check_miner_listed(spec, "paxos.members", &p.members)?;
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
        let (_, ballot, slot) = accepted_of(seal)?;
        // A block without its `paxos` transaction is reported when it is connected, and so
        // are the signers (the members are the chain's).
        if let Some(Transaction::Paxos {
            round,
            slot: proposed,
            ..
        }) = block.txs.get(1)
        {
            if slot != *proposed {
                return Err(PaxosError::SlotMismatch {
                    certificate: slot,
                    block: *proposed,
                }
                .into());
            }
            if ballot.round < *round {
                return Err(PaxosError::AcceptedBeforeProposed {
                    certificate: ballot,
                    block: Ballot {
                        round: *round,
                        node: 0,
                    },
                }
                .into());
            }
        }
        Ok(())
    }

    fn seal_signatures(&self, spec: &ChainSpec) -> u64 {
        // The leader certifies a block with exactly a majority of 2b signatures.
        spec.section::<PaxosSpec>()
            .map_or(1, |p| p.majority() as u64)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Paxos {
                leader,
                round,
                slot,
                ..
            }) => Some(BlockProducer {
                key: *leader,
                note: Some(format!("round {round}, slot {slot}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool {
        index == 1 && matches!(tx, Transaction::Paxos { .. })
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(PaxosState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(PAXOS_INFO.name, &[])?;
        let interval = spec
            .section::<PaxosSpec>()
            .map_or(100, |p| p.block_interval_ms);
        Ok(Box::new(ClusterProducer::new(
            spec,
            options.tx_per_block,
            interval,
            crate::paxos::cluster::mine_cluster,
        )))
    }
}

/// The state of a Paxos chain after its tip.
#[derive(Debug, Clone)]
pub struct PaxosState {
    members: Arc<Vec<PubKey>>,
    names: Arc<HashMap<PubKey, String>>,
    majority: usize,
    last_slot: Option<u64>,
    blocks: HashMap<PubKey, u64>,
    answered: imbl::HashSet<ClientRequest>,
    height: u32,
}

impl PaxosState {
    fn genesis(spec: &ChainSpec) -> Self {
        let p = spec.section::<PaxosSpec>().expect("a valid paxos spec");
        Self {
            members: Arc::new(
                p.members
                    .iter()
                    .map(|m| KeyPair::derive(&spec.wallet_seed, m).pubkey())
                    .collect(),
            ),
            names: Arc::new(spec.names_by_key()),
            majority: p.majority(),
            last_slot: None,
            blocks: HashMap::new(),
            answered: imbl::HashSet::new(),
            height: 0,
        }
    }

    /// The slot of the last block, if any block follows genesis.
    #[must_use]
    pub const fn last_slot(&self) -> Option<u64> {
        self.last_slot
    }

    /// Checks the block of `block` and returns the state after it.
    fn advance(&self, block: &BlockContext<'_>) -> Result<Self, BlockError> {
        let txs = block.txs;
        let Some(Transaction::Paxos {
            leader,
            round,
            slot,
            requests,
        }) = txs.get(1)
        else {
            return Err(PaxosError::MissingSeal.into());
        };
        let (qc, ballot, cert_slot) = accepted_of(block.seal)?;
        if *round > MAX_ROUND || ballot.round > MAX_ROUND || *slot > MAX_SLOT {
            return Err(PaxosError::TooLarge {
                round: (*round).max(ballot.round),
                slot: *slot,
            }
            .into());
        }
        let Some(index) = self.members.iter().position(|m| m == leader) else {
            return Err(PaxosError::NotMember(*leader).into());
        };
        let proposed = Ballot {
            round: *round,
            node: u32::try_from(index).expect("members fit u32"),
        };
        if cert_slot != *slot {
            return Err(PaxosError::SlotMismatch {
                certificate: cert_slot,
                block: *slot,
            }
            .into());
        }
        if ballot < proposed {
            return Err(PaxosError::AcceptedBeforeProposed {
                certificate: ballot,
                block: proposed,
            }
            .into());
        }
        check_signatures(
            qc,
            &accepted_bytes(ballot, *slot, block.hash),
            ACCEPTED_OVER,
            &self.members,
            self.majority,
            block.sigs,
        )?;
        if let Some(previous) = self.last_slot
            && *slot <= previous
        {
            return Err(PaxosError::SlotNotAfter {
                slot: *slot,
                previous,
            }
            .into());
        }
        let (time, parent) = (block.header.time, block.parent.header.time);
        if time < parent {
            return Err(PaxosError::TimeWentBack { time, parent }.into());
        }
        let transfers = txs.len() - 2;
        if requests.len() != transfers
            || txs[2..]
                .iter()
                .any(|t| !matches!(t, Transaction::Transfer { .. }))
        {
            return Err(PaxosError::RequestsMismatch {
                requests: requests.len(),
                transfers,
            }
            .into());
        }
        let mut next = self.clone();
        for r in requests {
            if next.answered.insert(*r).is_some() {
                return Err(PaxosError::DuplicateRequest {
                    client: r.client,
                    serial: r.serial,
                }
                .into());
            }
        }
        next.last_slot = Some(*slot);
        *next.blocks.entry(*leader).or_default() += 1;
        next.height = block.height;
        Ok(next)
    }
}

impl RuleState for PaxosState {
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
        // A block reaches the chain only once a majority accepted it in one ballot, which
        // its certificate shows: it is chosen, and final at once.
        Some(self.height)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
