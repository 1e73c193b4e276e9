//! Chains: specs, the block-line format, the chain file store, validation state, streaming
//! verification and demo wallets. Shared by every consensus rule.

pub mod ledger;
pub mod produce;
pub mod record;
pub mod spec;
pub mod state;
pub mod store;
pub mod verify;
pub mod wallet;
