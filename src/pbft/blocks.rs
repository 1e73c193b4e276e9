//! The chain as PBFT's state machine: the primary proposes a block on top of everything
//! executed, with a demo transfer for each client request it orders; every replica executes
//! committed blocks by attaching the commit certificate it gathered and checking and
//! connecting the block as `verify` does. A block that does not connect (its parent was
//! replaced by a view change's no-op) is skipped, alike at every correct replica.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::pbft::engine::{App, BlockSize, Digest, Executed};
use crate::pbft::rule::{certify, unsealed_block};
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, Request};

/// A proposed block (no certificate yet), with its size on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PbftBlock {
    /// The block.
    pub record: BlockRecord,
    /// Its encoded size: header and transactions.
    pub wire_bytes: usize,
}

impl BlockSize for Arc<PbftBlock> {
    fn wire_size(&self) -> usize {
        self.wire_bytes
    }
}

impl PbftBlock {
    /// The block with `cert`'s signatures: what a chain file stores.
    #[must_use]
    pub fn certified(&self, e: &Executed<Arc<Self>>) -> BlockRecord {
        let mut record = self.record.clone();
        certify(
            &mut record,
            e.cert.view.unwrap_or(0),
            e.cert.sequence.unwrap_or(e.seq),
            e.cert.signatures.clone(),
        );
        record
    }
}

/// One replica's chain as a PBFT state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct BlockApp {
    state: ChainState,
    wallets: Arc<Vec<KeyPair>>,
    origin: u32,
}

impl BlockApp {
    /// A replica whose chain is `state`; virtual time 0 is Unix time `origin`.
    #[must_use]
    pub fn new(state: ChainState, origin: u32) -> Self {
        let wallets = Arc::new(state.spec().wallet_keys());
        Self {
            state,
            wallets,
            origin,
        }
    }

    /// The chain executed so far.
    #[must_use]
    pub const fn state(&self) -> &ChainState {
        &self.state
    }
}

impl App for BlockApp {
    type Block = Arc<PbftBlock>;
    const EMPTY_BLOCKS: bool = true;

    fn propose(
        &mut self,
        now: Micros,
        primary: &KeyPair,
        view: u64,
        seq: u64,
        requests: &[Request],
    ) -> Option<(Arc<PbftBlock>, usize)> {
        let tip = &self.state;
        let height = tip.next_height();
        let elapsed = u32::try_from(now / 1_000_000).unwrap_or(u32::MAX);
        let parent_time = tip.tip().map_or(0, |t| t.header.time);
        let time = self.origin.saturating_add(elapsed).max(parent_time);
        let transfers = demo_transfers(tip, &self.wallets, requests.len(), height, &[]);
        let used = transfers.len();
        let record = unsealed_block(
            tip,
            primary,
            time,
            view,
            seq,
            requests[..used].to_vec(),
            transfers,
        );
        let wire_bytes = 80 + record.txs.iter().map(|t| t.to_bytes().len()).sum::<usize>();
        Some((Arc::new(PbftBlock { record, wire_bytes }), used))
    }

    fn digest(block: &Arc<PbftBlock>) -> Digest {
        block.record.hash
    }

    fn requests(block: &Arc<PbftBlock>) -> &[Request] {
        block.record.requests()
    }

    fn well_formed(block: &Arc<PbftBlock>) -> bool {
        let b = block.record.to_block();
        let merkle = b.compute_merkle_root();
        b.header.block_hash() == block.record.hash
            && merkle.root == b.header.merkle_root
            && !merkle.mutated
    }

    fn execute(&mut self, e: &Executed<Arc<PbftBlock>>) -> bool {
        let Some(block) = &e.block else {
            return true;
        };
        let record = block.certified(e);
        let time = record.time;
        self.state
            .check(record)
            .and_then(|checked| self.state.connect(&checked, time))
            .is_ok()
    }

    fn state_digest(&self) -> Digest {
        self.state
            .tip()
            .map_or(crate::pbft::engine::NULL, |t| t.hash)
    }
}
