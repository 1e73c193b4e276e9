//! # chainsmith
//!
//! Mine, verify and compare blockchains under different consensus rules.
//!
//! Every chain shares one block format — Bitcoin's 80-byte header, a small UTXO transaction
//! model and Bitcoin's merkle tree — and one chain store, JSON Lines files that are
//! append-only and synced per block. Consensus rules are separate modules on top of that core,
//! each behind the interface of [`consensus`] and listed once in its registry: proof of work
//! ([`pow`]), proof of stake ([`pos`]), delegated proof of stake ([`dpos`]) and proof of
//! authority ([`poa`]). `docs/ARCHITECTURE.md` shows the layering and how to add a rule.
//!
//! ```
//! use chainsmith::chain::spec::ChainSpec;
//!
//! // Bitcoin's regtest genesis block, rebuilt from the built-in spec.
//! let spec = ChainSpec::builtin("regtest").unwrap();
//! assert_eq!(
//!     spec.genesis_block().block_hash().to_string(),
//!     "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206",
//! );
//! ```
//!
//! The library does no I/O of its own except in the chain file store ([`chain::store`]); the
//! clock and the thread pool are the caller's. The `chainsmith` binary is a thin CLI over it.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod chain;
pub mod consensus;
pub mod difficulty;
pub mod dpos;
pub mod hash;
pub mod kafka;
pub mod metrics;
pub mod node;
pub mod ordering;
pub mod paxos;
pub mod pbft;
pub mod poa;
pub mod pool;
pub mod pos;
pub mod pow;
pub mod primitives;
pub mod raft;
pub mod sim;
pub mod zab;

pub use chain::spec::ChainSpec;
pub use chain::state::ChainState;
pub use primitives::block::Block;
pub use primitives::header::Header;
pub use primitives::pow_units::{CompactTarget, Target, Work};
