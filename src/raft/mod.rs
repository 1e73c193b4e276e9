//! Raft: crash-fault-tolerant ordering of blocks by an elected leader (Ongaro & Ousterhout,
//! USENIX ATC 2014).
//!
//! - [`engine`]: the protocol as a sans-I/O state machine, over any [`engine::App`];
//! - [`blocks`]: the chain as its state machine (the leader cuts blocks, every node applies
//!   them);
//! - [`observer`]: the safety observer that judges a simulated run from outside;
//! - [`cluster`]: a simulated cluster of block-ordering nodes, with its report;
//! - [`rule`]: Raft as a chain rule (the seal, what `verify` checks, `mine raft`);
//! - [`spec`]: the spec's `raft` section;
//! - [`batches`]: a minimal state machine for tests and benches.

pub mod batches;
pub mod blocks;
pub mod check;
pub mod cluster;
pub mod election;
pub mod engine;
pub mod observer;
pub mod rule;
pub mod spec;

pub use rule::{Raft, RaftError, RaftState};

#[cfg(test)]
mod tests;
