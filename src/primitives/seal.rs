//! Block seals: what a block carries, beside its header, to show who may append it.
//!
//! A proof-of-work block needs nothing (its hash is the proof); a block one producer makes
//! (a staker, a DPoS producer, a Clique signer, later a Raft or ZAB leader) carries that
//! producer's ed25519 signature over the block hash; a block a committee agrees on (PBFT's
//! 2f+1 commits, a Paxos quorum of accepts) carries a [`QuorumCertificate`]: many
//! (signer, signature) pairs over the block hash, or over a message binding it (PBFT signs
//! its view and sequence number with it). Which kind a block must carry, and who may
//! sign it, is its rule's business ([`crate::consensus::Rule::check_seal`],
//! [`crate::consensus::quorum`]).

use serde::{Deserialize, Serialize};

use crate::primitives::tx::{PubKey, SigBytes};

/// One member's signature in a quorum certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumSignature {
    /// The signer's key.
    pub signer: PubKey,
    /// Its ed25519 signature over the block hash (or the message binding it).
    pub signature: SigBytes,
}

/// Signatures of many members over one block hash, or over a message that binds it (PBFT's
/// COMMIT: view, sequence number and block hash). On a chain-file line it is the
/// `certificate` field; the block hash does not cover it (it signs the hash), as a block
/// signature does not cover itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuorumCertificate {
    /// The signatures, in any order.
    pub signatures: Vec<QuorumSignature>,
    /// PBFT: the view the COMMIT messages were signed in; absent where the signatures are
    /// over the block hash alone, so those lines keep their bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<u64>,
    /// PBFT: the sequence number the COMMIT messages were signed for; absent like `view`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
}

/// A block's seal, as its line carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seal {
    /// No seal (proof of work).
    None,
    /// One producer's signature over the block hash.
    Signature(SigBytes),
    /// A quorum certificate over the block hash.
    Quorum(QuorumCertificate),
}

impl Seal {
    /// A short name of the seal's kind, for messages.
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::None => "no seal",
            Self::Signature(_) => "a signature",
            Self::Quorum(_) => "a quorum certificate",
        }
    }
}
