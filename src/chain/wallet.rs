//! Demo transfers and votes: coins moving between the spec's wallets, and DPoS holders
//! changing their votes, while a chain is mined, so that verification has real signatures,
//! spends, fees and elections to check.

use crate::chain::state::ChainState;
use crate::dpos::{DposSpec, DposState};
use crate::primitives::tx::{Amount, KeyPair, OutPoint, Transaction, TxOut};

/// The fee every demo transfer pays: 0.0001 coin.
pub const DEMO_FEE: Amount = Amount::from_base_units(10_000);

/// Builds up to `count` transfers for the block at `height`, each spending one spendable
/// output owned by one of `keys` (mature, large enough to pay the fee, and not in `exclude`,
/// e.g. the output a coinstake spends), sending half to another wallet and the rest, less
/// [`DEMO_FEE`], back as change. Deterministic: the same state, keys and height always give the
/// same transfers.
#[must_use]
pub fn demo_transfers(
    state: &ChainState,
    keys: &[KeyPair],
    count: usize,
    height: u32,
    exclude: &[OutPoint],
) -> Vec<Transaction> {
    if keys.len() < 2 || count == 0 {
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
        let step = 1 + (height as usize + out.len()) % (keys.len() - 1);
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
        out.push(Transaction::signed_transfer(&[spend], outputs));
    }
    out
}

/// Builds up to `count` demo re-votes for the block at `height`: holders taken in turn from
/// `holders` each approve a fresh pseudo-random set of 1 to `max_votes` candidates, seeded by
/// the height, with the sequence number the chain expects. Deterministic like
/// [`demo_transfers`].
#[must_use]
pub fn demo_votes(
    state: &ChainState,
    holders: &[KeyPair],
    count: usize,
    height: u32,
) -> Vec<Transaction> {
    let (Some(dpos), Some(dstate)) = (
        state.spec().section::<DposSpec>(),
        state.rule_state_as::<DposState>(),
    ) else {
        return Vec::new();
    };
    if holders.is_empty() {
        return Vec::new();
    }
    let mut seed = u64::from(height).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let candidates = &dpos.candidates;
    (0..count.min(holders.len()))
        .map(|i| {
            let voter = &holders[(height as usize + i) % holders.len()];
            let want = 1 + (next() % u64::from(dpos.max_votes)) as usize;
            let mut picks: Vec<String> = Vec::with_capacity(want);
            while picks.len() < want.min(candidates.len()) {
                let c = &candidates[(next() % candidates.len() as u64) as usize];
                if !picks.contains(c) {
                    picks.push(c.clone());
                }
            }
            let seq = dstate.next_vote_seq(&voter.pubkey());
            Transaction::signed_vote(voter, seq, picks)
        })
        .collect()
}
