//! A minimal state machine for the Raft engine: each command is a batch of client requests,
//! and applying it counts them. The engine's step tests, the observer's planted-bug tests and
//! the simulator's benchmark use it, so they measure the protocol rather than block building.

use std::sync::Arc;

use crate::raft::engine::{App, CommandSize, Entry};
use crate::sim::{Micros, Request};

/// A batch of client requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch(pub Vec<Request>);

impl CommandSize for Batch {
    fn size(&self) -> usize {
        4 + 12 * self.0.len()
    }
}

/// Applies batches by counting their requests.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    /// Requests applied.
    pub applied: u64,
    /// Entries applied (no-ops included).
    pub entries: u64,
}

impl App for Batches {
    type Command = Batch;

    fn cut(
        &mut self,
        _now: Micros,
        _term: u64,
        _index: u64,
        _tail: &[Arc<Entry<Batch>>],
        requests: &[Request],
    ) -> Option<(Batch, usize)> {
        (!requests.is_empty()).then(|| (Batch(requests.to_vec()), requests.len()))
    }

    fn requests(command: &Batch) -> &[Request] {
        &command.0
    }

    fn digest(command: &Batch) -> u64 {
        command.0.iter().fold(0x0062_6174_6368, |h, r| {
            (h ^ (u64::from(r.client) << 40 ^ r.serial)).wrapping_mul(0x0100_0000_01b3)
        })
    }

    fn apply(&mut self, entry: &Entry<Batch>) {
        self.entries += 1;
        if let Some(b) = &entry.command {
            self.applied += b.0.len() as u64;
        }
    }
}
