//! Multi-Paxos: crash-fault-tolerant ordering of blocks, one single-decree Paxos instance per
//! slot under a stable leader (Lamport, "Paxos Made Simple", 2001).
//!
//! - [`engine`]: proposer, acceptor and learner as a sans-I/O state machine, over any
//!   [`engine::App`];
//! - [`blocks`]: the chain as its state machine (the leader cuts blocks, every node executes
//!   them with the quorum's certificate);
//! - [`observer`]: the safety observer that judges a simulated run from outside;
//! - [`cluster`]: a simulated cluster of block-ordering nodes, with its report;
//! - [`rule`]: Paxos as a chain rule (the seal and certificate, what `verify` checks,
//!   `mine paxos`);
//! - [`spec`]: the spec's `paxos` section;
//! - [`batches`]: a minimal state machine for tests.

pub mod batches;
pub mod blocks;
pub mod check;
pub mod cluster;
pub mod engine;
pub mod observer;
pub mod rule;
pub mod spec;

pub use rule::{Paxos, PaxosError, PaxosState};

#[cfg(test)]
mod tests;
