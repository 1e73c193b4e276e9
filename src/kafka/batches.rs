//! A minimal state machine for the Kafka engine: each record is a batch of client requests,
//! applying it counts them. The engine's step tests and the planted-bug tests use it, so they
//! exercise the protocol rather than block building.

use std::sync::Arc;

use crate::kafka::engine::{App, DataSize, Record};
use crate::primitives::seal::QuorumSignature;
use crate::sim::{Micros, Request};

/// A batch of client requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch(pub Vec<Request>);

impl DataSize for Batch {
    fn size(&self) -> usize {
        4 + 12 * self.0.len()
    }
}

/// Applies batches by counting their requests.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    /// Requests applied, after each applied record.
    pub applied: Vec<u64>,
}

impl Batches {
    /// Requests applied in all.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.applied.last().copied().unwrap_or(0)
    }
}

impl App for Batches {
    type Data = Batch;
    const SIGNS: bool = false;

    fn cut(
        &mut self,
        _now: Micros,
        _epoch: u64,
        _offset: u64,
        _tail: &[Arc<Record<Batch>>],
        requests: &[Request],
    ) -> Option<(Batch, usize)> {
        (!requests.is_empty()).then(|| (Batch(requests.to_vec()), requests.len()))
    }

    fn requests(data: &Batch) -> &[Request] {
        &data.0
    }

    fn digest(data: &Batch) -> u64 {
        data.0.iter().fold(0x0062_6174_6368, |h, r| {
            (h ^ (u64::from(r.client) << 40 ^ r.serial)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn sign(&self, _record: &Record<Batch>) -> Option<QuorumSignature> {
        None
    }

    fn apply(&mut self, record: &Record<Batch>, _cert: &[QuorumSignature]) {
        let total = self.total() + record.data.0.len() as u64;
        self.applied.push(total);
    }

    fn rollback(&mut self, to: u64) {
        self.applied
            .truncate(usize::try_from(to).unwrap_or(usize::MAX));
    }
}
