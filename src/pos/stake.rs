//! The staking search: timestamps, not nonces.
//!
//! For each second of chain time from the earliest allowed timestamp on, every eligible output
//! the staker's keys own gets one kernel attempt ([`find_stake`]); the first hit — lowest
//! timestamp, then lowest outpoint — wins and becomes a block ([`stake_block`]). An output is
//! eligible once it is past the minimum age and its weight has reached one coin-day; when none
//! is, the search jumps straight to the first second one becomes eligible, so a chain in
//! virtual time crosses months of coin-age at once. Every attempt is counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::chain::ledger::Utxo;
use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::pos::PosState;
use crate::pos::kernel::{DAY, KernelInput, interest, kernel_weight};
use crate::primitives::pow_units::Target;
use crate::primitives::tx::{Amount, COIN, KeyPair, MAX_MONEY, OutPoint, Transaction, TxOut};

/// A winning kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stake {
    /// The staked output.
    pub outpoint: OutPoint,
    /// Index of its owner's key in the keys searched.
    pub key: usize,
    /// The block time the kernel won at.
    pub time: u32,
    /// Its weight in coin-days.
    pub weight: u64,
}

/// How a staking search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakeOutcome {
    /// A kernel met its target.
    Found(Stake),
    /// No kernel met its target up to the last second allowed; search again from `next`.
    Exhausted {
        /// The first second not yet searched.
        next: u32,
        /// When no output was even eligible before the search ran out: the first second one
        /// is (`u64::MAX`: none ever will). `None` when outputs were eligible and simply did
        /// not win.
        idle_until: Option<u64>,
    },
    /// The stop flag was raised.
    Stopped,
}

/// `target × weight` as five little-endian 64-bit limbs (the product needs up to 320 bits).
fn threshold(target: Target, weight: u64) -> [u64; 5] {
    let mut out = [0u64; 5];
    let mut carry = 0u128;
    for (o, limb) in out.iter_mut().zip(target.to_limbs()) {
        let p = u128::from(limb) * u128::from(weight) + carry;
        *o = p as u64;
        carry = p >> 64;
    }
    out[4] = carry as u64;
    out
}

/// `hash` (a little-endian number) ≤ `threshold`, compared as machine words.
fn hash_at_most(hash: &[u8; 32], threshold: &[u64; 5]) -> bool {
    if threshold[4] != 0 {
        return true;
    }
    for i in (0..4).rev() {
        let h = u64::from_le_bytes(hash[8 * i..8 * i + 8].try_into().expect("8 bytes"));
        if h != threshold[i] {
            return h < threshold[i];
        }
    }
    true
}

struct Candidate {
    outpoint: OutPoint,
    utxo: Utxo,
    key: usize,
    /// The first second at which its weight is at least one coin-day.
    eligible_from: u64,
    weight: u64,
    threshold: [u64; 5],
}

/// The first second a new block may stake at: after the median of the previous 11 blocks
/// and, because virtual chain time only moves forward, after the tip.
#[must_use]
pub fn earliest_stake_time(state: &ChainState) -> u32 {
    let tip = state.tip().map_or(0, |t| t.header.time);
    (state.median_time_past() + 1).max(tip.saturating_add(1))
}

/// Searches seconds `from..=until` for a kernel of an output owned by one of `keys` that
/// meets the next block's target. Adds every attempt to `hashes`; looks at `stop` every
/// thousand seconds of chain time.
///
/// # Panics
/// If the chain is not a proof-of-stake chain with a connected genesis.
#[must_use]
pub fn find_stake(
    state: &ChainState,
    keys: &[KeyPair],
    from: u32,
    until: u32,
    hashes: &AtomicU64,
    stop: &AtomicBool,
) -> StakeOutcome {
    let pos_state: &PosState = state.rule_state_as().expect("a proof-of-stake chain");
    let pos = pos_state.params();
    let (min_age, max_age) = (pos.min_age_s(), pos.max_age_s());
    let height = state.next_height();
    let target = state
        .required_bits()
        .to_target()
        .expect("the required bits of a valid chain decode");
    let modifier = pos_state.stake_modifier(height);
    let maturity = state.spec().coinbase_maturity;
    let mut candidates: Vec<Candidate> = state
        .utxos()
        .iter()
        .filter(|(_, u)| !u.coinbase || height >= u.height.saturating_add(maturity))
        .filter_map(|(op, u)| {
            let key = keys.iter().position(|k| k.pubkey() == u.owner)?;
            // Weight reaches one coin-day once value × extra age ≥ COIN × DAY.
            let extra = (u128::from(COIN) * u128::from(DAY))
                .div_ceil(u128::from(u.value.to_base_units().max(1)));
            let extra = u64::try_from(extra)
                .ok()
                .filter(|e| *e <= max_age - min_age)?;
            Some(Candidate {
                outpoint: *op,
                utxo: *u,
                key,
                eligible_from: u64::from(u.time) + min_age + extra,
                weight: 0,
                threshold: [0; 5],
            })
        })
        .collect();
    let mut t = u64::from(from);
    let mut count = 0u64;
    // Whether the search last jumped over seconds in which nothing was eligible.
    let mut jumped = false;
    let outcome = loop {
        if t > u64::from(until) {
            break StakeOutcome::Exhausted {
                next: until.saturating_add(1),
                idle_until: jumped.then_some(t),
            };
        }
        if t % 1000 == 0 && stop.load(Ordering::Relaxed) {
            break StakeOutcome::Stopped;
        }
        let mut next_eligible = u64::MAX;
        let mut found = None;
        for c in &mut candidates {
            if t < c.eligible_from {
                next_eligible = next_eligible.min(c.eligible_from);
                continue;
            }
            let weight = kernel_weight(c.utxo.value, t - u64::from(c.utxo.time), min_age, max_age);
            if weight != c.weight {
                c.weight = weight;
                c.threshold = threshold(target, weight);
            }
            #[allow(clippy::cast_possible_truncation)]
            let kernel = KernelInput {
                modifier,
                block_time_from: c.utxo.time,
                tx_offset: c.utxo.tx_index,
                tx_time: c.utxo.time,
                vout: c.outpoint.vout,
                time: t as u32,
            };
            count += 1;
            if hash_at_most(&kernel.hash(), &c.threshold) {
                found = Some(Stake {
                    outpoint: c.outpoint,
                    key: c.key,
                    time: t as u32,
                    weight,
                });
                break;
            }
        }
        if let Some(stake) = found {
            break StakeOutcome::Found(stake);
        }
        if next_eligible == u64::MAX && candidates.iter().all(|c| t < c.eligible_from) {
            // Nothing this key set owns can ever stake.
            break StakeOutcome::Exhausted {
                next: until.saturating_add(1),
                idle_until: Some(u64::MAX),
            };
        }
        // Jump over seconds in which no output is eligible.
        let any_eligible = candidates.iter().any(|c| t >= c.eligible_from);
        jumped = !any_eligible;
        t = if any_eligible { t + 1 } else { next_eligible };
    };
    hashes.fetch_add(count, Ordering::Relaxed);
    outcome
}

/// Builds and signs the block for `stake`: a coinbase paying the subsidy and the transfers'
/// fees to the staker, the coinstake paying the staked value plus interest back to the
/// staker (a new output at age zero), the transfers, and the staker's signature over the
/// block hash.
///
/// # Panics
/// If the stake's output is not unspent or the chain is not proof of stake.
#[must_use]
pub fn stake_block(
    state: &ChainState,
    keys: &[KeyPair],
    stake: &Stake,
    transfers: Vec<Transaction>,
) -> BlockRecord {
    let pos = state
        .rule_state_as::<PosState>()
        .expect("a proof-of-stake chain")
        .params();
    let utxo = state.utxos()[&stake.outpoint];
    let key = &keys[stake.key];
    let age = u64::from(stake.time - utxo.time);
    let reward = utxo
        .value
        .checked_add(interest(pos.interest, utxo.value, age))
        .unwrap_or(Amount::from_base_units(MAX_MONEY));
    let coinstake = Transaction::signed_coinstake(
        state.sig_domain(),
        stake.outpoint,
        key,
        vec![TxOut {
            value: reward,
            to: key.pubkey(),
        }],
    );
    let mut block = state.block_template(stake.time, key.pubkey(), transfers);
    block.txs.insert(1, coinstake);
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut record = BlockRecord::new(state.next_height(), &block, None);
    record.signature = Some(key.sign(record.hash.as_bytes()));
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pos::kernel_meets_target;

    #[test]
    fn word_threshold_agrees_with_big_integer_condition() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..2000 {
            let mut hash = [0u8; 32];
            for chunk in hash.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            let mut t = [0u8; 32];
            for chunk in t.chunks_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            let shift = next() % 256;
            let target =
                Target::from_biguint_saturating(&(num_bigint::BigUint::from_bytes_le(&t) >> shift));
            let weight = next() >> (next() % 64);
            assert_eq!(
                weight > 0 && hash_at_most(&hash, &threshold(target, weight)),
                kernel_meets_target(&hash, weight, target)
            );
        }
    }
}
