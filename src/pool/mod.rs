//! Pooled proof-of-work mining over Stratum V1: many miners, each searching its own part of
//! the space (its extranonce1), one chain.
//!
//! [`stratum`] is the wire format and the byte orders existing miners expect; [`job`] cuts the
//! next block of a chain into a job and checks shares against it; [`pplns`] splits a block's
//! reward among the last N shares in its coinbase; [`vardiff`] retargets each connection's
//! share difficulty; [`client`] is the other side, a miner that mines for a pool with the
//! parallel nonce search.

pub mod client;
pub mod job;
pub mod pplns;
pub mod server;
pub mod stats;
pub mod stratum;
pub mod vardiff;
