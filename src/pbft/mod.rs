//! PBFT: Byzantine-fault-tolerant ordering of blocks by a primary and 3f+1 replicas (Castro &
//! Liskov, OSDI 1999).
//!
//! The primary of view `v` (replica `v mod n`) assigns each block a sequence number in a
//! PRE-PREPARE; replicas PREPARE it and, once 2f+1 agree, COMMIT it, signing its view, sequence
//! number and hash. A block is committed once 2f+1 replicas have committed it, and those 2f+1
//! COMMIT signatures are its seal: a certificate anyone can check from the chain file alone.
//!
//! - [`engine`]: the protocol as a sans-I/O state machine, over any [`engine::App`];
//! - [`byzantine`]: replicas that bend the protocol, for the simulator;
//! - [`observer`]: the safety observer that judges a simulated run from outside;
//! - [`rule`]: PBFT as a chain rule (the seal, what `verify` checks, `mine pbft`);
//! - [`spec`]: the spec's `pbft` section;
//! - [`batches`]: a minimal state machine for tests and benches.

pub mod batches;
pub mod blocks;
pub mod byzantine;
pub mod check;
pub mod cluster;
pub mod engine;
pub mod observer;
pub mod rule;
pub mod spec;

pub use rule::{Pbft, PbftError, PbftState};
pub use spec::PbftSpec;

#[cfg(test)]
mod tests;
