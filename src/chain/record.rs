//! One line of a chain file: a block as JSON.
//!
//! Field names follow `header --json`: `height`, `hash`, `version`, `prev_hash`,
//! `merkle_root`, `time`, `bits`, `nonce`, then `txs`. The genesis line also carries the chain
//! spec and its hash, so a chain file needs nothing else to be verified.

use serde::{Deserialize, Serialize};

use crate::chain::spec::ChainSpec;
use crate::chain::state::BlockError;
use crate::primitives::block::Block;
use crate::primitives::hash::{BlockHash, Hash256, MerkleRoot};
use crate::primitives::header::Header;
use crate::primitives::pow_units::CompactTarget;
use crate::primitives::seal::{QuorumCertificate, Seal};
use crate::primitives::tx::{ClientRequest, SigBytes, Transaction};

/// The chain-file format whose transaction signatures are bound to their chain (see
/// [`SigDomain`](crate::primitives::tx::SigDomain)); new chains are written in it.
pub const CHAIN_BOUND_FORMAT: u32 = 2;

/// A block as stored on one line of a chain file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRecord {
    /// The block's height (genesis is 0).
    pub height: u32,
    /// The block hash as claimed by the writer (checked against the header).
    pub hash: BlockHash,
    /// Header version.
    pub version: i32,
    /// Header previous-block hash.
    pub prev_hash: BlockHash,
    /// Header merkle root.
    pub merkle_root: MerkleRoot,
    /// Header time.
    pub time: u32,
    /// Header bits.
    pub bits: CompactTarget,
    /// Header nonce.
    pub nonce: u32,
    /// The chain spec (genesis line only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ChainSpec>,
    /// The spec's hash (genesis line only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_hash: Option<Hash256>,
    /// The chain file's format (genesis line only): absent on files written before
    /// signatures were bound to their chain, [`CHAIN_BOUND_FORMAT`] since.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<u32>,
    /// The transactions.
    pub txs: Vec<Transaction>,
    /// The producer's signature over the block hash (the staker, DPoS producer or Clique
    /// signer): the seal of rules whose blocks one producer signs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<SigBytes>,
    /// A quorum certificate over the block hash: the seal of rules whose blocks a committee
    /// signs. Never on the lines of the rules that exist before it, so their bytes are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<QuorumCertificate>,
    /// Proof of stake: the kernel hashes its staker tried for this block, as the staker
    /// reports it. Informational (for `compare`): not covered by the block hash or checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stake_attempts: Option<u64>,
}

impl BlockRecord {
    /// Builds the record of `block` at `height`; `spec` is given for the genesis line only.
    #[must_use]
    pub fn new(height: u32, block: &Block, spec: Option<&ChainSpec>) -> Self {
        let h = &block.header;
        Self {
            height,
            hash: block.block_hash(),
            version: h.version,
            prev_hash: h.prev_hash,
            merkle_root: h.merkle_root,
            time: h.time,
            bits: h.bits,
            nonce: h.nonce,
            spec: spec.cloned(),
            spec_hash: spec.map(ChainSpec::spec_hash),
            format: spec.map(|_| CHAIN_BOUND_FORMAT),
            txs: block.txs.clone(),
            signature: None,
            certificate: None,
            stake_attempts: None,
        }
    }

    /// Returns the header the record describes.
    #[must_use]
    pub fn header(&self) -> Header {
        Header {
            version: self.version,
            prev_hash: self.prev_hash,
            merkle_root: self.merkle_root,
            time: self.time,
            bits: self.bits,
            nonce: self.nonce,
        }
    }

    /// Returns the block the record describes.
    #[must_use]
    pub fn to_block(&self) -> Block {
        Block {
            header: self.header(),
            txs: self.txs.clone(),
        }
    }

    /// Returns the line's seal: its signature, its quorum certificate, or nothing.
    ///
    /// # Errors
    /// [`BlockError::UnexpectedSeal`] when the line carries both.
    pub fn seal(&self) -> Result<Seal, BlockError> {
        match (&self.signature, &self.certificate) {
            (None, None) => Ok(Seal::None),
            (Some(sig), None) => Ok(Seal::Signature(*sig)),
            (None, Some(qc)) => Ok(Seal::Quorum(qc.clone())),
            (Some(_), Some(_)) => Err(BlockError::UnexpectedSeal {
                expected: "one seal",
                found: "a signature and a quorum certificate",
            }),
        }
    }

    /// The client requests an ordering rule's block answers: its seal's list (the second
    /// transaction); none for other rules' blocks.
    #[must_use]
    pub fn requests(&self) -> &[ClientRequest] {
        match self.txs.get(1) {
            Some(
                Transaction::Raft { requests, .. }
                | Transaction::Pbft { requests, .. }
                | Transaction::Paxos { requests, .. }
                | Transaction::Zab { requests, .. }
                | Transaction::Kafka { requests, .. },
            ) => requests,
            _ => &[],
        }
    }

    /// Serialises to one JSON line, without the trailing newline.
    #[must_use]
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).expect("a block record always serialises")
    }
}
