//! A minimal state machine for the PBFT engine: each block is a batch of client requests,
//! executing it counts them, and the state digest chains the batches executed. The engine's
//! tests, the observer's planted-bug tests and the memory measurement use it, so they
//! measure the protocol rather than block building.

use crate::pbft::engine::{App, BlockSize, Digest, Executed};
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, Request};

/// A batch of client requests, proposed at (view, sequence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The sequence number it was proposed at.
    pub seq: u64,
    /// The requests.
    pub requests: Vec<Request>,
}

impl BlockSize for Batch {
    fn wire_size(&self) -> usize {
        12 + 12 * self.requests.len()
    }
}

/// Executes batches by counting their requests.
#[derive(Debug, Clone, Default)]
pub struct Batches {
    /// Requests executed.
    pub executed: u64,
    /// Sequence numbers executed (no-ops included).
    pub entries: u64,
    digest: [u8; 32],
}

impl App for Batches {
    type Block = Batch;
    const EMPTY_BLOCKS: bool = false;

    fn propose(
        &mut self,
        _now: Micros,
        _primary: &KeyPair,
        _view: u64,
        seq: u64,
        requests: &[Request],
    ) -> Option<(Batch, usize)> {
        Some((
            Batch {
                seq,
                requests: requests.to_vec(),
            },
            requests.len(),
        ))
    }

    fn digest(block: &Batch) -> Digest {
        let mut bytes = block.seq.to_le_bytes().to_vec();
        for r in &block.requests {
            bytes.extend_from_slice(&r.client.to_le_bytes());
            bytes.extend_from_slice(&r.serial.to_le_bytes());
        }
        BlockHash::hash(&bytes)
    }

    fn requests(block: &Batch) -> &[Request] {
        &block.requests
    }

    fn well_formed(_: &Batch) -> bool {
        // Its digest is computed from its content.
        true
    }

    fn execute(&mut self, entry: &Executed<Batch>) -> bool {
        self.entries += 1;
        let digest = entry
            .block
            .as_ref()
            .map_or(crate::pbft::engine::NULL, Self::digest);
        let mut bytes = self.digest.to_vec();
        bytes.extend_from_slice(&entry.seq.to_le_bytes());
        bytes.extend_from_slice(digest.as_bytes());
        self.digest = BlockHash::hash(&bytes).to_byte_array();
        if let Some(b) = &entry.block {
            self.executed += b.requests.len() as u64;
        }
        true
    }

    fn state_digest(&self) -> Digest {
        BlockHash::from_byte_array(self.digest)
    }
}
