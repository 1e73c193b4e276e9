//! Helpers shared by the block producers of rules whose blocks a known key signs: finding
//! the key, and building and signing the next block on the tip.

use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::primitives::tx::{KeyPair, PubKey, Transaction};

/// Why no block can be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// Clique: too few signers are online to satisfy the recency rule.
    #[error(
        "the chain halts at height {height}: no online signer may seal (online {online} of \
         {signers}; Clique needs ⌊N/2⌋+1 = {needed} to take turns)"
    )]
    Halted {
        /// The height that cannot be sealed.
        height: u32,
        /// Online signers.
        online: usize,
        /// Current signers.
        signers: usize,
        /// ⌊N/2⌋ + 1.
        needed: usize,
    },
    /// DPoS: a whole round passed with every scheduled producer offline.
    #[error("no online producer is scheduled in the {0} slots after the tip")]
    NoProducer(u64),
    /// The chain's rule is not an authority rule, or the key of a producer is not known.
    #[error("{0}")]
    Unsupported(String),
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
    let mut block = state.block_template(time, key.pubkey(), txs);
    if let Some(Transaction::Coinbase { extra_nonce: n, .. }) = block.txs.first_mut() {
        *n = extra_nonce;
    }
    block.txs.insert(1, seal);
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut record = BlockRecord::new(state.next_height(), &block, None);
    record.signature = Some(key.sign(record.hash.as_bytes()));
    record
}
