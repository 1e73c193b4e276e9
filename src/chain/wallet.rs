//! Demo transfers: coins moving between the spec's wallets while a chain is produced, so that
//! verification has real signatures, spends and fees to check (every rule's producer adds
//! them; a rule adds its own demo traffic, such as DPoS re-votes).

use crate::chain::state::ChainState;
use crate::primitives::tx::{Amount, KeyPair, OutPoint, Transaction, TxOut};

/// The fee every demo transfer pays: 0.0001 coin.
pub const DEMO_FEE: Amount = Amount::from_base_units(10_000);

/// Builds up to `count` transfers for the block at `height`, each spending one spendable
/// output owned by one of `keys` (mature, large enough to pay the fee, and not in `exclude`,
/// e.g. the output a coinstake spends), sending half to another wallet (to itself when it is
/// the only one) and the rest, less [`DEMO_FEE`], back as change. Deterministic: the same state, keys and height always give the
/// same transfers.
#[must_use]
pub fn demo_transfers(
    state: &ChainState,
    keys: &[KeyPair],
    count: usize,
    height: u32,
    exclude: &[OutPoint],
) -> Vec<Transaction> {
    if keys.is_empty() || count == 0 {
        return Vec::new();
    }
    let maturity = state.spec().coinbase_maturity;
    let min_value = DEMO_FEE.to_base_units() * 4;
    let mut out = Vec::with_capacity(count);
    for (op, utxo) in state.utxos() {
        if out.len() == count {
            break;
        }
        if exclude.contains(op)
            || utxo.value.to_base_units() < min_value
            || (utxo.coinbase && height < utxo.height.saturating_add(maturity))
        {
            continue;
        }
        let Some(owner) = keys.iter().position(|k| k.pubkey() == utxo.owner) else {
            continue;
        };
        // Another wallet, in turn; a chain with one wallet pays itself.
        let step = 1 + (height as usize + out.len()) % (keys.len() - 1).max(1);
        let recipient = &keys[(owner + step) % keys.len()];
        let value = utxo.value.to_base_units();
        let pay = value / 2;
        let change = value - pay - DEMO_FEE.to_base_units();
        let outputs = vec![
            TxOut {
                value: Amount::from_base_units(pay),
                to: recipient.pubkey(),
            },
            TxOut {
                value: Amount::from_base_units(change),
                to: utxo.owner,
            },
        ];
        let spend: (OutPoint, &KeyPair) = (*op, &keys[owner]);
        out.push(Transaction::signed_transfer(
            state.sig_domain(),
            &[spend],
            outputs,
        ));
    }
    out
}
