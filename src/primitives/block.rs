//! A block: a header and its transactions.

use crate::primitives::hash::{BlockHash, Txid};
use crate::primitives::header::Header;
use crate::primitives::merkle::{MerkleResult, merkle_root};
use crate::primitives::tx::Transaction;

/// A block: the 80-byte header and the transactions its merkle root commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions, coinbase (or genesis transaction) first.
    pub txs: Vec<Transaction>,
}

impl Block {
    /// Returns the block hash.
    #[must_use]
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }

    /// Returns the txids in block order.
    #[must_use]
    pub fn txids(&self) -> Vec<Txid> {
        self.txs.iter().map(Transaction::txid).collect()
    }

    /// Computes the merkle root of the transactions (and the CVE-2012-2459 mutation flag).
    #[must_use]
    pub fn compute_merkle_root(&self) -> MerkleResult {
        merkle_root(&self.txids())
    }
}
