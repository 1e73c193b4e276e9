//! The chain as Paxos's state machine: the leader cuts the next block on top of everything
//! executed, with a demo transfer for each client request it orders; every node executes a
//! chosen slot by attaching the certificate of the majority's 2b signatures and checking and
//! connecting the block as `verify` does. A no-op slot executes as nothing.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::paxos::engine::{App, Ballot, Chosen, Digest, ValueSize};
use crate::paxos::rule::{certify, unsealed_block};
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, Request};

/// A proposed block (no certificate yet), with its size on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PaxosBlock {
    /// The block.
    pub record: BlockRecord,
    /// Its encoded size: header and transactions.
    pub wire_bytes: usize,
}

impl ValueSize for Arc<PaxosBlock> {
    fn wire_size(&self) -> usize {
        self.wire_bytes
    }
}

impl PaxosBlock {
    /// The block sealed with `chosen`'s certificate: what a chain file stores.
    #[must_use]
    pub fn certified(&self, chosen: &Chosen<Arc<Self>>) -> BlockRecord {
        let mut record = self.record.clone();
        certify(
            &mut record,
            chosen.ballot,
            chosen.slot,
            chosen.signatures.clone(),
        );
        record
    }
}

/// One node's chain as a Paxos state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct BlockApp {
    state: ChainState,
    wallets: Arc<Vec<KeyPair>>,
    origin: u32,
    fault: Option<String>,
}

impl BlockApp {
    /// A node whose chain is `state`; virtual time 0 is Unix time `origin`.
    #[must_use]
    pub fn new(state: ChainState, origin: u32) -> Self {
        let wallets = Arc::new(state.spec().wallet_keys());
        Self {
            state,
            wallets,
            origin,
            fault: None,
        }
    }

    /// The chain executed so far.
    #[must_use]
    pub const fn state(&self) -> &ChainState {
        &self.state
    }

    /// The first chosen block this node could not connect (the observer's agreement check
    /// catches the cause; this names the block).
    #[must_use]
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

impl App for BlockApp {
    type Value = Arc<PaxosBlock>;

    fn cut(
        &mut self,
        now: Micros,
        key: &KeyPair,
        ballot: Ballot,
        slot: u64,
        requests: &[Request],
    ) -> Option<(Arc<PaxosBlock>, usize)> {
        if self.fault.is_some() {
            return None;
        }
        let tip = &self.state;
        let height = tip.next_height();
        let elapsed = u32::try_from(now / 1_000_000).unwrap_or(u32::MAX);
        let parent_time = tip.tip().map_or(0, |t| t.header.time);
        let time = self.origin.saturating_add(elapsed).max(parent_time);
        let transfers = demo_transfers(tip, &self.wallets, requests.len(), height, &[]);
        let used = transfers.len();
        let record = unsealed_block(
            tip,
            key,
            time,
            ballot.round,
            slot,
            requests[..used].to_vec(),
            transfers,
        );
        let wire_bytes = 80 + record.txs.iter().map(|t| t.to_bytes().len()).sum::<usize>();
        Some((Arc::new(PaxosBlock { record, wire_bytes }), used))
    }

    fn digest(value: &Arc<PaxosBlock>) -> Digest {
        value.record.hash
    }

    fn requests(value: &Arc<PaxosBlock>) -> &[Request] {
        value.record.requests()
    }

    fn execute(&mut self, chosen: &Chosen<Arc<PaxosBlock>>) {
        let Some(block) = &chosen.value else {
            return;
        };
        if self.fault.is_some() {
            return;
        }
        let record = block.certified(chosen);
        let (height, time) = (record.height, record.time);
        let result = self
            .state
            .check(record)
            .and_then(|checked| self.state.connect(&checked, time));
        if let Err(e) = result {
            self.fault = Some(format!("block {height} (slot {}): {e}", chosen.slot));
        }
    }
}
