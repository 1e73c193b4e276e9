//! Kafka-style ISR replication: the chain is one partition, replicated by a leader and
//! followers that pull, committed below the high watermark of the in-sync replicas, with
//! KIP-101's leader epochs and a controller run on the Raft engine (KRaft) — the orderer
//! Hyperledger Fabric used before Raft.
//!
//! - [`engine`]: the broker as a sans-I/O state machine, over any [`engine::App`];
//! - [`controller`]: the controller's state machine (leader and ISR as Raft commands) and its
//!   election rule;
//! - [`blocks`]: the chain as the partition's records (the leader cuts blocks, every replica
//!   applies them with their certificates);
//! - [`observer`]: the safety observer that judges a simulated run from outside;
//! - [`cluster`]: a simulated cluster of brokers ordering blocks, with its report;
//! - [`check`]: scenarios and random fault schedules;
//! - [`rule`]: Kafka as a chain rule (the seal and certificate, what `verify` checks,
//!   `mine kafka`);
//! - [`spec`]: the spec's `kafka` section;
//! - [`batches`]: a minimal state machine for tests.

pub mod batches;
pub mod blocks;
pub mod check;
pub mod cluster;
pub mod controller;
pub mod engine;
pub mod observer;
pub mod rule;
pub mod spec;

pub use rule::{Kafka, KafkaError, KafkaState};

#[cfg(test)]
mod tests;
