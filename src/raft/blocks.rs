//! The replicated state machine of a Raft chain: each log entry's command is a block, cut by
//! the leader from waiting client requests on top of its own log, and applied by every node
//! to its chain (checked and connected by the chain's rule, as `verify` does).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::chain::produce::seal_block;
use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::{KeyPair, Transaction};
use crate::raft::engine::{App, CommandSize, Entry};
use crate::sim::{Micros, Request};

/// A block in the log, with its size on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RaftBlock {
    /// The block.
    pub record: BlockRecord,
    /// Its encoded size: header, transactions, signature.
    pub wire_bytes: usize,
}

impl RaftBlock {
    fn new(record: BlockRecord) -> Self {
        let wire_bytes = 80 + 64 + record.txs.iter().map(|t| t.to_bytes().len()).sum::<usize>();
        Self { record, wire_bytes }
    }
}

impl CommandSize for Arc<RaftBlock> {
    fn size(&self) -> usize {
        self.wire_bytes
    }
}

/// One node's chain as a Raft state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct BlockApp {
    state: ChainState,
    tail: Option<(BlockHash, ChainState)>,
    key: KeyPair,
    wallets: Arc<Vec<KeyPair>>,
    origin: u32,
    fault: Option<String>,
}

impl BlockApp {
    /// A node with key `key` whose chain is `state`; virtual time 0 is Unix time `origin`.
    #[must_use]
    pub fn new(state: ChainState, key: KeyPair, origin: u32) -> Self {
        let wallets = Arc::new(state.spec().wallet_keys());
        Self {
            state,
            tail: None,
            key,
            wallets,
            origin,
            fault: None,
        }
    }

    /// The chain applied so far.
    #[must_use]
    pub const fn state(&self) -> &ChainState {
        &self.state
    }

    /// The first committed block this node could not connect (a safety failure the observer
    /// also reports).
    #[must_use]
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }

    /// The chain at the end of the leader's log: the applied chain plus the blocks in `tail`.
    fn tail_state(&mut self, tail: &[Arc<Entry<Arc<RaftBlock>>>]) -> Option<ChainState> {
        let blocks: Vec<&Arc<RaftBlock>> = tail.iter().filter_map(|e| e.command.as_ref()).collect();
        let Some(last) = blocks.last() else {
            return Some(self.state.clone());
        };
        if let Some((hash, state)) = &self.tail
            && *hash == last.record.hash
        {
            return Some(state.clone());
        }
        let mut state = self.state.clone();
        for b in blocks {
            let checked = state.check(b.record.clone()).ok()?;
            state.connect(&checked, b.record.time).ok()?;
        }
        Some(state)
    }
}

impl App for BlockApp {
    type Command = Arc<RaftBlock>;

    fn cut(
        &mut self,
        now: Micros,
        term: u64,
        index: u64,
        tail: &[Arc<Entry<Arc<RaftBlock>>>],
        requests: &[Request],
    ) -> Option<(Arc<RaftBlock>, usize)> {
        let mut tip = self.tail_state(tail)?;
        let height = tip.next_height();
        let elapsed = u32::try_from(now / 1_000_000).unwrap_or(u32::MAX);
        let parent_time = tip.tip().map_or(0, |t| t.header.time);
        let time = self.origin.saturating_add(elapsed).max(parent_time);
        // A block every interval, with a transfer for each waiting request the chain can
        // fund now (the rest wait for the next block).
        let transfers = demo_transfers(&tip, &self.wallets, requests.len(), height, &[]);
        let used = transfers.len();
        let seal = Transaction::Raft {
            leader: self.key.pubkey(),
            term,
            index,
            requests: requests[..used].to_vec(),
        };
        let record = seal_block(&tip, &self.key, time, seal, transfers, 0);
        let checked = tip.check(record.clone()).ok()?;
        tip.connect(&checked, time).ok()?;
        self.tail = Some((record.hash, tip));
        Some((Arc::new(RaftBlock::new(record)), used))
    }

    fn requests(command: &Arc<RaftBlock>) -> &[Request] {
        command.record.requests()
    }

    fn digest(command: &Arc<RaftBlock>) -> u64 {
        let bytes = command.record.hash.as_bytes();
        u64::from_le_bytes(bytes[..8].try_into().expect("a hash has 32 bytes"))
    }

    fn apply(&mut self, entry: &Entry<Arc<RaftBlock>>) {
        let Some(block) = &entry.command else {
            return;
        };
        if self.fault.is_some() {
            return;
        }
        let record = &block.record;
        let result = self
            .state
            .check(record.clone())
            .and_then(|checked| self.state.connect(&checked, record.time));
        if let Err(e) = result {
            self.fault = Some(format!(
                "block {} (log index {}): {e}",
                record.height, entry.index
            ));
        }
    }
}
