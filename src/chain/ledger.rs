//! The ledger of unspent outputs every rule shares, and the changes one block makes to it.

use std::collections::{HashMap, HashSet};

use crate::primitives::hash::Txid;
use crate::primitives::tx::{Amount, OutPoint, PubKey, TxOut};

/// An unspent output and where it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utxo {
    /// The amount.
    pub value: Amount,
    /// The owner's key.
    pub owner: PubKey,
    /// Height of the block that created it.
    pub height: u32,
    /// Whether a coinbase or coinstake created it (and so it must mature before it is spent).
    pub coinbase: bool,
    /// Time of the block that created it: where its coin-age starts.
    pub time: u32,
    /// Position of the creating transaction in its block (the kernel's `tx_offset`).
    pub tx_index: u32,
}

/// Where new outputs come from: their transaction and block.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The creating transaction.
    pub txid: Txid,
    /// Its position in the block.
    pub tx_index: u32,
    /// The block's height.
    pub height: u32,
    /// The block's time.
    pub time: u32,
    /// Whether the outputs must mature before they are spent (coinbase, coinstake).
    pub coinbase: bool,
}

/// What one block does to the unspent outputs: outpoints spent and outputs created, applied
/// only if the whole block is valid.
#[derive(Debug, Clone, Default)]
pub struct LedgerDelta {
    changes: HashMap<OutPoint, Option<Utxo>>,
    spent: HashSet<OutPoint>,
}

impl LedgerDelta {
    /// Marks `op` spent; returns false if the block already spent it.
    pub fn spend(&mut self, op: OutPoint) -> bool {
        self.changes.insert(op, None);
        self.spent.insert(op)
    }

    /// Whether the block has spent `op`.
    #[must_use]
    pub fn is_spent(&self, op: &OutPoint) -> bool {
        self.spent.contains(op)
    }

    /// An output the block created earlier, or `None`.
    #[must_use]
    pub fn created(&self, op: &OutPoint) -> Option<Utxo> {
        self.changes.get(op).copied().flatten()
    }

    /// Adds the outputs of one transaction.
    pub fn create(&mut self, origin: Origin, outputs: &[TxOut]) {
        for (vout, o) in (0u32..).zip(outputs) {
            self.changes.insert(
                OutPoint {
                    txid: origin.txid,
                    vout,
                },
                Some(Utxo {
                    value: o.value,
                    owner: o.to,
                    height: origin.height,
                    coinbase: origin.coinbase,
                    time: origin.time,
                    tx_index: origin.tx_index,
                }),
            );
        }
    }

    /// Adds the outputs of one transaction that the rest of the block may not spend (a
    /// coinstake's: they mature like a coinbase's, and not within their own block).
    pub fn create_locked(&mut self, origin: Origin, outputs: &[TxOut]) {
        self.create(origin, outputs);
        for vout in (0u32..).take(outputs.len()) {
            self.spent.insert(OutPoint {
                txid: origin.txid,
                vout,
            });
        }
    }

    /// The changes, each outpoint once: `Some` created, `None` spent.
    pub fn into_changes(self) -> impl Iterator<Item = (OutPoint, Option<Utxo>)> {
        self.changes.into_iter()
    }
}
