//! Proof of work: the parallel nonce search and the difficulty rules.

pub mod miner;
pub mod retarget;
