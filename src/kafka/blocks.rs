//! The chain as the partition's records: the leader cuts a block from waiting client requests
//! on top of the committed chain, every replica signs the blocks it stores, and applies
//! committed ones with their certificates — checked and connected as `verify` does.
//!
//! The leader keeps one block in flight: the next block's demo transfers spend outputs of
//! the chain as committed, so it is cut once the previous one has committed.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::kafka::engine::{App, DataSize, Record};
use crate::kafka::rule::{certify, sign_ack, unsealed_block};
use crate::primitives::seal::QuorumSignature;
use crate::primitives::tx::KeyPair;
use crate::sim::{Micros, Request};

/// A block in the log (no certificate yet), with its size on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaBlock {
    /// The block.
    pub record: BlockRecord,
    /// Its encoded size: header and transactions.
    pub wire_bytes: usize,
}

impl KafkaBlock {
    /// The block with the certificate `cert`: what a chain file stores.
    #[must_use]
    pub fn certified(&self, cert: &[QuorumSignature]) -> BlockRecord {
        let mut record = self.record.clone();
        certify(&mut record, cert.to_vec());
        record
    }
}

impl DataSize for Arc<KafkaBlock> {
    fn size(&self) -> usize {
        self.wire_bytes
    }
}

/// One replica's chain as the partition's state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct BlockApp {
    state: ChainState,
    key: KeyPair,
    wallets: Arc<Vec<KeyPair>>,
    origin: u32,
    fault: Option<String>,
    /// The chain before each applied block, kept where committed blocks may be lost
    /// (unclean leader election), so a replica can roll back to the new leader's log.
    history: Option<Vec<ChainState>>,
    base: u64,
}

impl BlockApp {
    /// A replica with key `key` whose chain is `state`, the block at offset `base` next;
    /// virtual time 0 is Unix time `origin`; `rollback`: keep what rolling back needs.
    #[must_use]
    pub fn new(state: ChainState, key: KeyPair, origin: u32, base: u64, rollback: bool) -> Self {
        let wallets = Arc::new(state.spec().wallet_keys());
        Self {
            state,
            key,
            wallets,
            origin,
            fault: None,
            history: rollback.then(Vec::new),
            base,
        }
    }

    /// The chain applied so far.
    #[must_use]
    pub const fn state(&self) -> &ChainState {
        &self.state
    }

    /// The first committed block this replica could not connect (a safety failure).
    #[must_use]
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

impl App for BlockApp {
    type Data = Arc<KafkaBlock>;
    const SIGNS: bool = true;

    fn cut(
        &mut self,
        now: Micros,
        epoch: u64,
        offset: u64,
        tail: &[Arc<Record<Arc<KafkaBlock>>>],
        requests: &[Request],
    ) -> Option<(Arc<KafkaBlock>, usize)> {
        if !tail.is_empty() || self.fault.is_some() {
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
            &self.key,
            time,
            (epoch, offset),
            requests[..used].to_vec(),
            transfers,
        );
        let wire_bytes = 80 + record.txs.iter().map(|t| t.to_bytes().len()).sum::<usize>();
        Some((Arc::new(KafkaBlock { record, wire_bytes }), used))
    }

    fn requests(data: &Arc<KafkaBlock>) -> &[Request] {
        data.record.requests()
    }

    fn digest(data: &Arc<KafkaBlock>) -> u64 {
        let bytes = data.record.hash.as_bytes();
        u64::from_le_bytes(bytes[..8].try_into().expect("a hash has 32 bytes"))
    }

    fn sign(&self, record: &Record<Arc<KafkaBlock>>) -> Option<QuorumSignature> {
        Some(sign_ack(
            &self.key,
            record.epoch,
            record.offset,
            record.data.record.hash,
        ))
    }

    fn apply(&mut self, record: &Record<Arc<KafkaBlock>>, cert: &[QuorumSignature]) {
        if let Some(h) = &mut self.history {
            h.push(self.state.clone());
        }
        if self.fault.is_some() {
            return;
        }
        let block = record.data.certified(cert);
        let time = block.time;
        let result = self
            .state
            .check(block)
            .and_then(|checked| self.state.connect(&checked, time));
        if let Err(e) = result {
            self.fault = Some(format!(
                "block {} (offset {}): {e}",
                record.data.record.height, record.offset
            ));
        }
    }

    fn rollback(&mut self, to: u64) {
        let Some(h) = &mut self.history else {
            return;
        };
        let keep = usize::try_from(to.saturating_sub(self.base)).unwrap_or(usize::MAX);
        if let Some(state) = h.get(keep) {
            self.state = state.clone();
            h.truncate(keep);
            self.fault = None;
        }
    }
}
