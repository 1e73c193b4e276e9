//! Kafka as a chain rule: the seal each block carries (a `kafka` transaction naming the
//! partition leader, the leader epoch and the block's offset, and a certificate of the
//! signatures of the replicas that stored it), what a chain file proves by itself, and the
//! producer `mine kafka` uses (a fault-free simulated cluster).
//!
//! From the file alone a verifier checks that every block was appended by a replica, that
//! its certificate holds the leader's signature and those of at least `min_insync_replicas`
//! distinct replicas over the ack — (epoch, offset, block hash) — that one epoch has one
//! leader, that epochs never go back and offsets always go forward, that block times never
//! go back, and that each client request is answered once. The certificate shows that the
//! block reached `min_insync_replicas` replicas (the `acks=all` guarantee); it cannot show
//! that those replicas were the ISR at the time, which only the controller knew.

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
use crate::kafka::spec::KafkaSpec;
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature, Seal};
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{ClientRequest, KeyPair, PubKey, Transaction};
use crate::sim::cluster::ClusterProducer;

/// The domain tag every ack signature starts with.
pub const ACK_TAG: &[u8; 20] = b"chainsmith/kafka/ack";
/// The length of [`ack_bytes`]: the tag, epoch, offset and block hash.
pub const ACK_BYTES: usize = ACK_TAG.len() + 8 + 8 + 32;
/// What the signatures of a Kafka certificate are over, as errors name it.
const ACK_OVER: &str = "the ack (epoch, offset, block hash)";

/// What a replica signs when it stores the block with hash `hash` at `offset`, appended in
/// leader epoch `epoch`: [`ACK_TAG`] ‖ epoch (little-endian u64) ‖ offset (little-endian u64)
/// ‖ hash.
#[must_use]
pub fn ack_bytes(epoch: u64, offset: u64, hash: BlockHash) -> [u8; ACK_BYTES] {
    let mut out = [0; ACK_BYTES];
    let (tag, rest) = out.split_at_mut(ACK_TAG.len());
    tag.copy_from_slice(ACK_TAG);
    rest[..8].copy_from_slice(&epoch.to_le_bytes());
    rest[8..16].copy_from_slice(&offset.to_le_bytes());
    rest[16..].copy_from_slice(hash.as_bytes());
    out
}

/// `key`'s ack signature for the block with hash `hash` at `offset` in `epoch`.
#[must_use]
pub fn sign_ack(key: &KeyPair, epoch: u64, offset: u64, hash: BlockHash) -> QuorumSignature {
    QuorumSignature {
        signer: key.pubkey(),
        signature: key.sign(&ack_bytes(epoch, offset, hash)),
    }
}

/// Builds the next block on `state`'s tip as `leader` appends it at `offset` in `epoch`: its
/// coinbase paying the leader, the `kafka` transaction, then `txs` (one transfer per
/// request). It carries no seal: [`certify`] attaches the certificate once it commits.
#[must_use]
pub fn unsealed_block(
    state: &ChainState,
    leader: &KeyPair,
    time: u32,
    (epoch, offset): (u64, u64),
    requests: Vec<ClientRequest>,
    txs: Vec<Transaction>,
) -> BlockRecord {
    let seal = Transaction::Kafka {
        leader: leader.pubkey(),
        epoch,
        offset,
        requests,
    };
    unsigned_block(state, leader.pubkey(), time, seal, txs, 0)
}

/// Seals `record` with the certificate of `signatures` (acks over [`ack_bytes`]).
pub fn certify(record: &mut BlockRecord, signatures: Vec<QuorumSignature>) {
    record.certificate = Some(QuorumCertificate {
        signatures,
        view: None,
        sequence: None,
    });
}

/// Why a block breaks the Kafka chain rules. Replicas are named by their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The second transaction is not the `kafka` seal.
    #[error("second transaction must be the `kafka` transaction naming leader, epoch and offset")]
    MissingSeal,
    /// The certificate names a view or sequence number (PBFT's), which a Kafka ack has not.
    #[error("a kafka certificate names no view or sequence number: its acks bind epoch and offset")]
    ForeignCertificate,
    /// The leader is not a replica.
    #[error("leader {0} is not a replica of the partition")]
    NotReplica(PubKey),
    /// The leader did not sign its own block.
    #[error("the certificate lacks the leader {0}'s signature")]
    LeaderNotSigned(PubKey),
    /// The epoch went back.
    #[error("leader epoch {epoch} is below the previous block's epoch {previous}")]
    EpochWentBack {
        /// The block's epoch.
        epoch: u64,
        /// The previous block's.
        previous: u64,
    },
    /// Two leaders appended blocks in one epoch.
    #[error("leader epoch {epoch} has two leaders: {first} and {second}")]
    TwoLeaders {
        /// The epoch.
        epoch: u64,
        /// The earlier block's leader.
        first: PubKey,
        /// This block's.
        second: PubKey,
    },
    /// The offset did not go forward.
    #[error("offset {offset} does not follow the previous block's offset {previous}")]
    OffsetNotAfter {
        /// The block's offset.
        offset: u64,
        /// The previous block's.
        previous: u64,
    },
    /// An epoch or offset beyond what a cluster could continue from.
    #[error("epoch {epoch} or offset {offset} is above 2^62")]
    TooLarge {
        /// The block's epoch.
        epoch: u64,
        /// The block's offset.
        offset: u64,
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

impl From<KafkaError> for BlockError {
    fn from(e: KafkaError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Kafka: a partition leader appends blocks, committed once the in-sync replicas store them;
/// crash-fault tolerant.
#[derive(Debug, Clone, Copy)]
pub struct Kafka;

const KAFKA_INFO: RuleInfo = RuleInfo {
    name: "kafka",
    summary: "Kafka ISR replication: a partition leader appends blocks, committed below the in-sync replicas' high watermark; a Raft controller elects leaders (KRaft, KIP-101 epochs)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<KafkaSpec>()),
    detects_equivocation: false,
};

/// The largest epoch or offset a block may carry.
const MAX_SEAL: u64 = 1 << 62;

impl Rule for Kafka {
    fn info(&self) -> &'static RuleInfo {
        &KAFKA_INFO
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<KafkaSpec>()
            .map_or(1000, |k| k.block_interval_ms)
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut out = spec.clone();
        if let Some(k) = spec.section::<KafkaSpec>() {
            let mut k = k.clone();
            k.block_interval_ms = u64::from(seconds) * 1000;
            out.section = Some(crate::chain::spec::RuleSection::new(k));
        }
        out
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        spec.section::<KafkaSpec>()
            .map_or_else(SpecNames::default, |k| {
                SpecNames::members(&k.members, &k.genesis_coins)
            })
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let k = spec
            .section::<KafkaSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "kafka",
                reason: "required when consensus is kafka".into(),
            })?;
        k.validate()?;
        check_miner_listed(spec, "kafka.members", &k.members)?;
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
        let Seal::Quorum(qc) = seal else {
            return Err(BlockError::UnexpectedSeal {
                expected: "a quorum certificate",
                found: seal.kind(),
            });
        };
        if qc.view.is_some() || qc.sequence.is_some() {
            return Err(KafkaError::ForeignCertificate.into());
        }
        // Who signed, and what, is checked against the replicas when the block is connected.
        Ok(())
    }

    fn seal_signatures(&self, spec: &ChainSpec) -> u64 {
        // With every replica in sync, each one acks every block.
        spec.section::<KafkaSpec>()
            .map_or(1, |k| k.replicas() as u64)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Kafka {
                leader,
                epoch,
                offset,
                ..
            }) => Some(BlockProducer {
                key: *leader,
                note: Some(format!("epoch {epoch}, offset {offset}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool {
        index == 1 && matches!(tx, Transaction::Kafka { .. })
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(KafkaState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(KAFKA_INFO.name, &[])?;
        let interval = spec
            .section::<KafkaSpec>()
            .map_or(100, |k| k.block_interval_ms);
        Ok(Box::new(ClusterProducer::new(
            spec,
            options.tx_per_block,
            interval,
            crate::kafka::cluster::mine_cluster,
        )))
    }
}

/// The state of a Kafka chain after its tip.
#[derive(Debug, Clone)]
pub struct KafkaState {
    replicas: Arc<Vec<PubKey>>,
    names: Arc<HashMap<PubKey, String>>,
    min_insync: usize,
    last: Option<(u64, u64, PubKey)>,
    blocks: HashMap<PubKey, u64>,
    answered: imbl::HashSet<ClientRequest>,
    height: u32,
}

impl KafkaState {
    fn genesis(spec: &ChainSpec) -> Self {
        let k = spec.section::<KafkaSpec>().expect("a valid kafka spec");
        Self {
            replicas: Arc::new(
                k.members[..k.replicas()]
                    .iter()
                    .map(|m| KeyPair::derive(&spec.wallet_seed, m).pubkey())
                    .collect(),
            ),
            names: Arc::new(spec.names_by_key()),
            min_insync: k.min_insync_replicas,
            last: None,
            blocks: HashMap::new(),
            answered: imbl::HashSet::new(),
            height: 0,
        }
    }

    /// The (epoch, offset) of the last block, if any block follows genesis.
    #[must_use]
    pub fn last_seal(&self) -> Option<(u64, u64)> {
        self.last.map(|(e, o, _)| (e, o))
    }

    /// Checks `block` and returns the state after it.
    fn advance(&self, block: &BlockContext<'_>) -> Result<Self, BlockError> {
        let txs = block.txs;
        let Some(Transaction::Kafka {
            leader,
            epoch,
            offset,
            requests,
        }) = txs.get(1)
        else {
            return Err(KafkaError::MissingSeal.into());
        };
        let Seal::Quorum(qc) = block.seal else {
            return Err(BlockError::UnexpectedSeal {
                expected: "a quorum certificate",
                found: block.seal.kind(),
            });
        };
        if *epoch > MAX_SEAL || *offset > MAX_SEAL {
            return Err(KafkaError::TooLarge {
                epoch: *epoch,
                offset: *offset,
            }
            .into());
        }
        if !self.replicas.contains(leader) {
            return Err(KafkaError::NotReplica(*leader).into());
        }
        check_signatures(
            qc,
            &ack_bytes(*epoch, *offset, block.hash),
            ACK_OVER,
            &self.replicas,
            self.min_insync,
            block.sigs,
        )?;
        if !qc.signatures.iter().any(|s| s.signer == *leader) {
            return Err(KafkaError::LeaderNotSigned(*leader).into());
        }
        if let Some((last_epoch, last_offset, last_leader)) = self.last {
            if *epoch < last_epoch {
                return Err(KafkaError::EpochWentBack {
                    epoch: *epoch,
                    previous: last_epoch,
                }
                .into());
            }
            if *epoch == last_epoch && *leader != last_leader {
                return Err(KafkaError::TwoLeaders {
                    epoch: *epoch,
                    first: last_leader,
                    second: *leader,
                }
                .into());
            }
            if *offset <= last_offset {
                return Err(KafkaError::OffsetNotAfter {
                    offset: *offset,
                    previous: last_offset,
                }
                .into());
            }
        }
        let (time, parent) = (block.header.time, block.parent.header.time);
        if time < parent {
            return Err(KafkaError::TimeWentBack { time, parent }.into());
        }
        let transfers = txs.len() - 2;
        if requests.len() != transfers
            || txs[2..]
                .iter()
                .any(|t| !matches!(t, Transaction::Transfer { .. }))
        {
            return Err(KafkaError::RequestsMismatch {
                requests: requests.len(),
                transfers,
            }
            .into());
        }
        let mut next = self.clone();
        for r in requests {
            if next.answered.insert(*r).is_some() {
                return Err(KafkaError::DuplicateRequest {
                    client: r.client,
                    serial: r.serial,
                }
                .into());
            }
        }
        next.last = Some((*epoch, *offset, *leader));
        *next.blocks.entry(*leader).or_default() += 1;
        next.height = block.height;
        Ok(next)
    }
}

impl RuleState for KafkaState {
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
        RuleReport::blocks_by_member("leaders", &self.replicas, &self.names, &self.blocks)
    }

    fn irreversible_height(&self) -> Option<u32> {
        // A block reaches the chain only once min_insync_replicas replicas store it, which
        // its certificate proves: final at once (unless an unclean election is allowed).
        Some(self.height)
    }
}
