//! A minimal state machine for the Paxos engine: each value is a batch of client requests,
//! and executing it counts them. The engine's step tests and the observer's planted-bug
//! tests use it, so they exercise the protocol rather than block building.

use crate::paxos::engine::{App, Ballot, Chosen, Digest, ValueSize};
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, Request};

/// A batch of client requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch(pub Vec<Request>);

impl ValueSize for Batch {
    fn wire_size(&self) -> usize {
        4 + 12 * self.0.len()
    }
}

/// Executes batches by counting their requests.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    /// Requests executed.
    pub executed: u64,
    /// Slots executed (no-ops included).
    pub slots: u64,
}

impl App for Batches {
    type Value = Batch;

    fn cut(
        &mut self,
        _now: Micros,
        _key: &KeyPair,
        _ballot: Ballot,
        _slot: u64,
        requests: &[Request],
    ) -> Option<(Batch, usize)> {
        (!requests.is_empty()).then(|| (Batch(requests.to_vec()), requests.len()))
    }

    fn digest(value: &Batch) -> Digest {
        let mut bytes = b"batch".to_vec();
        for r in &value.0 {
            bytes.extend_from_slice(&r.client.to_le_bytes());
            bytes.extend_from_slice(&r.serial.to_le_bytes());
        }
        BlockHash::hash(&bytes)
    }

    fn requests(value: &Batch) -> &[Request] {
        &value.0
    }

    fn execute(&mut self, chosen: &Chosen<Batch>) {
        self.slots += 1;
        if let Some(b) = &chosen.value {
            self.executed += b.0.len() as u64;
        }
    }
}
