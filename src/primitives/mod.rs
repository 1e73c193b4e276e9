//! Consensus primitives shared by every consensus rule: hashes, targets, headers,
//! transactions, merkle trees, blocks and the ed25519 signature rule.

pub mod block;
pub mod hash;
pub mod header;
pub mod merkle;
pub mod pow_units;
pub mod seal;
pub mod sig;
pub mod tx;
