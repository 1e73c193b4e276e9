//! The chain as ZAB's state machine: each transaction is a block the leader cuts from waiting
//! client requests on top of its history; every server endorses a block it logs by signing
//! its zxid and hash, and delivers a committed block with the quorum's signatures as its
//! certificate, checking and connecting it as `verify` does.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::chain::produce::unsigned_block;
use crate::chain::state::ChainState;
use crate::chain::wallet::demo_transfers;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature};
use crate::primitives::tx::{KeyPair, Transaction};
use crate::sim::{Micros, Request};
use crate::zab::engine::{App, CommandSize, EndorsementSize, Txn, Zxid};
use crate::zab::rule::sign_ack;

/// A proposed block (no certificate yet), with its size on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZabBlock {
    /// The block.
    pub record: crate::chain::record::BlockRecord,
    /// The proposing leader's ACK signature: it travels with the proposal, so a later
    /// leader that commits the block still certifies it with its proposer's signature.
    pub leader_signature: QuorumSignature,
    /// Its encoded size: header, transactions and the leader's signature.
    pub wire_bytes: usize,
}

impl CommandSize for Arc<ZabBlock> {
    fn size(&self) -> usize {
        self.wire_bytes
    }
}

impl EndorsementSize for QuorumSignature {
    fn size(&self) -> usize {
        32 + 64
    }
}

/// The block of a delivered transaction with its certificate: what a chain file stores.
#[must_use]
pub fn certified(block: &ZabBlock, cert: &[QuorumSignature]) -> crate::chain::record::BlockRecord {
    let mut record = block.record.clone();
    let mut signatures = cert.to_vec();
    if !signatures
        .iter()
        .any(|s| s.signer == block.leader_signature.signer)
    {
        signatures.insert(0, block.leader_signature);
    }
    record.certificate = Some(QuorumCertificate {
        signatures,
        view: None,
        sequence: None,
    });
    record
}

/// One server's chain as a ZAB state machine. See the module docs.
#[derive(Debug, Clone)]
pub struct BlockApp {
    state: ChainState,
    key: KeyPair,
    wallets: Arc<Vec<KeyPair>>,
    origin: u32,
    fault: Option<String>,
}

impl BlockApp {
    /// A server with key `key` whose chain is `state`; virtual time 0 is Unix time `origin`.
    #[must_use]
    pub fn new(state: ChainState, key: KeyPair, origin: u32) -> Self {
        let wallets = Arc::new(state.spec().wallet_keys());
        Self {
            state,
            key,
            wallets,
            origin,
            fault: None,
        }
    }

    /// The chain delivered so far.
    #[must_use]
    pub const fn state(&self) -> &ChainState {
        &self.state
    }

    /// The first delivered block this server could not connect (a safety failure).
    #[must_use]
    pub fn fault(&self) -> Option<&str> {
        self.fault.as_deref()
    }
}

impl App for BlockApp {
    type Command = Arc<ZabBlock>;
    type Endorsement = QuorumSignature;

    fn cut(
        &mut self,
        now: Micros,
        zxid: Zxid,
        tail: &[Arc<Txn<Arc<ZabBlock>>>],
        requests: &[Request],
    ) -> Option<(Arc<ZabBlock>, usize)> {
        // Each block names its parent, which must be certified before the chain can take a
        // child: one block in flight at a time (the rest of the requests wait).
        if !tail.is_empty() {
            return None;
        }
        let tip = &self.state;
        let height = tip.next_height();
        let elapsed = u32::try_from(now / 1_000_000).unwrap_or(u32::MAX);
        let parent_time = tip.tip().map_or(0, |t| t.header.time);
        let time = self.origin.saturating_add(elapsed).max(parent_time);
        // A block every interval, with a transfer for each waiting request the chain can
        // fund now (the rest wait for the next block).
        let transfers = demo_transfers(tip, &self.wallets, requests.len(), height, &[]);
        let used = transfers.len();
        let seal = Transaction::Zab {
            leader: self.key.pubkey(),
            epoch: zxid.epoch,
            counter: zxid.counter,
            requests: requests[..used].to_vec(),
        };
        let record = unsigned_block(tip, self.key.pubkey(), time, seal, transfers, 0);
        let wire_bytes = 80 + 96 + record.txs.iter().map(|t| t.to_bytes().len()).sum::<usize>();
        let leader_signature = sign_ack(&self.key, zxid, record.hash);
        Some((
            Arc::new(ZabBlock {
                record,
                leader_signature,
                wire_bytes,
            }),
            used,
        ))
    }

    fn requests(command: &Arc<ZabBlock>) -> &[Request] {
        command.record.requests()
    }

    fn digest(command: &Arc<ZabBlock>) -> u64 {
        let bytes = command.record.hash.as_bytes();
        u64::from_le_bytes(bytes[..8].try_into().expect("a hash has 32 bytes"))
    }

    fn endorse(&self, txn: &Txn<Arc<ZabBlock>>) -> QuorumSignature {
        sign_ack(&self.key, txn.zxid, txn.command.record.hash)
    }

    fn deliver(&mut self, txn: &Txn<Arc<ZabBlock>>, cert: &[QuorumSignature]) {
        if self.fault.is_some() {
            return;
        }
        let record = certified(&txn.command, cert);
        let time = record.time;
        let result = self
            .state
            .check(record)
            .and_then(|checked| self.state.connect(&checked, time));
        if let Err(e) = result {
            self.fault = Some(format!(
                "block {} (zxid {}): {e}",
                txn.command.record.height, txn.zxid
            ));
        }
    }
}
