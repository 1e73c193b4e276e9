//! A minimal state machine for the ZAB engine: each transaction is a batch of client
//! requests, and delivering it counts them. The engine's step tests and the observer's
//! planted-bug tests use it, so they exercise the protocol rather than block building.

use std::sync::Arc;

use crate::sim::{Micros, Request};
use crate::zab::engine::{App, CommandSize, Txn, Zxid};

/// A batch of client requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch(pub Vec<Request>);

impl CommandSize for Batch {
    fn size(&self) -> usize {
        4 + 12 * self.0.len()
    }
}

/// Delivers batches by counting them.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    /// Requests delivered.
    pub delivered: u64,
    /// Transactions delivered.
    pub txns: u64,
}

impl App for Batches {
    type Command = Batch;
    type Endorsement = ();

    fn cut(
        &mut self,
        _now: Micros,
        _zxid: Zxid,
        _tail: &[Arc<Txn<Batch>>],
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

    fn endorse(&self, _txn: &Txn<Batch>) {}

    fn deliver(&mut self, txn: &Txn<Batch>, _cert: &[()]) {
        self.txns += 1;
        self.delivered += txn.command.0.len() as u64;
    }
}
