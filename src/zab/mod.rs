//! ZooKeeper atomic broadcast (ZAB): crash-fault-tolerant ordering of blocks by an elected
//! leader over FIFO links (Junqueira, Reed & Serafini, DSN 2011).
//!
//! - [`engine`]: the protocol as a sans-I/O state machine, over any [`engine::App`];
//! - [`blocks`]: the chain as its state machine (the leader cuts blocks, every server delivers
//!   them with the quorum's signatures);
//! - [`observer`]: the safety observer that judges a simulated run from outside;
//! - [`cluster`]: a simulated ensemble of block-ordering servers, with its report;
//! - [`check`]: scenarios (`sim zab`) and random fault schedules (`check zab`);
//! - [`rule`]: ZAB as a chain rule (the seal, what `verify` checks, `mine zab`);
//! - [`spec`]: the spec's `zab` section;
//! - [`batches`]: a minimal state machine for tests.

pub mod batches;
pub mod blocks;
pub mod check;
pub mod cluster;
pub mod engine;
pub mod observer;
pub mod rule;
pub mod spec;

pub use rule::{Zab, ZabError, ZabState};

#[cfg(test)]
mod tests;
