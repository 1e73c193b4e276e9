//! PBFT: Byzantine-fault-tolerant ordering of blocks by a primary and 3f+1 replicas (Castro &
//! Liskov, OSDI 1999).
//!
//! The primary of view `v` (replica `v mod n`) assigns each block a sequence number in a
//! PRE-PREPARE; replicas PREPARE it and, once 2f+1 agree, COMMIT it, signing its view, sequence
//! number and hash. A block is committed once 2f+1 replicas have committed it, and those 2f+1
//! COMMIT signatures are its seal: a certificate anyone can check from the chain file alone.
//!
//! - [`rule`]: PBFT as a chain rule (the seal, what `verify` checks, `mine pbft`);
//! - [`spec`]: the spec's `pbft` section.

pub mod rule;
pub mod spec;

pub use rule::{Pbft, PbftError, PbftState};
pub use spec::PbftSpec;
