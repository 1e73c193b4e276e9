//! The staking search: timestamps, not nonces.
//!
//! For each second of chain time from the earliest allowed timestamp on, every eligible output
//! the staker's keys own gets one kernel attempt ([`find_stake`]); the first hit — lowest
//! timestamp, then lowest outpoint — wins and becomes a block ([`stake_block`]). An output is
//! eligible once it is past the minimum age and its weight has reached one coin-day; when none
//! is, the search jumps straight to the first second one becomes eligible, so a chain in
//! virtual time crosses months of coin-age at once. Every attempt is counted. The search runs
//! on every thread of the rayon pool with the fast hash backends and finds exactly what the
//! sequential search finds.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::chain::ledger::Utxo;
use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::hash::search::SearchControl;
use crate::hash::{Backend, KernelJob};
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
    /// The kernels a sequential search (second by second, outputs in order) tries up to and
    /// including this one: the same for every thread count and backend.
    pub attempts: u64,
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

/// An output that may stake, with its kernel prepared for the timestamp search.
struct Candidate {
    outpoint: OutPoint,
    utxo: Utxo,
    key: usize,
    /// The first second at which its weight is at least one coin-day.
    eligible_from: u64,
    job: KernelJob,
}

/// Kernel attempts per slice of chain time, at most: the search hands out its work in slices
/// of seconds, every eligible output's kernels over one slice before the next, so that a
/// winner found in one slice wastes at most the rest of that slice and what the other threads
/// have in hand (~0.5 ms of hashing).
const SLICE_ATTEMPTS: u64 = 1 << 14;

/// Seconds in the first slice (a batch of the widest backend's lanes); each next slice is
/// twice as long until it holds [`SLICE_ATTEMPTS`], so an early winner wastes little and a
/// long search splits its work into pieces long enough to keep the setup cost small.
const FIRST_SLICE_SECONDS: u64 = 16;

/// Slices `j` and later: where slice `j` starts, seconds after the search's first, and how
/// long it is, when slices double from [`FIRST_SLICE_SECONDS`] up to `longest`.
fn slice_bounds(j: u64, longest: u64) -> (u64, u64) {
    // The slices that double: j < doublings.
    let doublings = u64::from((longest / FIRST_SLICE_SECONDS).max(1).ilog2());
    if j < doublings {
        (
            FIRST_SLICE_SECONDS * ((1 << j) - 1),
            FIRST_SLICE_SECONDS << j,
        )
    } else {
        let start = FIRST_SLICE_SECONDS * ((1 << doublings) - 1);
        (
            start.saturating_add((j - doublings).saturating_mul(longest)),
            longest,
        )
    }
}

/// The first second a new block may stake at: after the median of the previous 11 blocks
/// and, because virtual chain time only moves forward, after the tip.
#[must_use]
pub fn earliest_stake_time(state: &ChainState) -> u32 {
    let tip = state.tip().map_or(0, |t| t.header.time);
    (state.median_time_past() + 1).max(tip.saturating_add(1))
}

/// Searches seconds `from..=until` for a kernel of an output owned by one of `keys` that
/// meets the next block's target, on the current rayon pool with `backend`.
///
/// The result is the sequential search's: the earliest second with a winning kernel, and in
/// it the first winning output in outpoint order, whatever the thread count and backend.
/// Chain time is cut into slices of seconds and each slice into pieces, one per output; every
/// thread of the pool takes the next piece in that order (slice by slice) and scans it with
/// the backend's kernel, which reports candidates against the piece's highest threshold (the
/// weight only grows with time); each candidate is then checked exactly. A thread stops once
/// the next piece starts after the best hit found: every piece that could hold an earlier one
/// has been taken. Adds every hash done to `control.hashes`; looks at `control.stop` before
/// each piece, and a stopped search reports [`StakeOutcome::Stopped`] even if it had a hit.
///
/// # Panics
/// If the chain is not a proof-of-stake chain with a connected genesis, or the CPU cannot run
/// `backend`.
#[must_use]
pub fn find_stake(
    state: &ChainState,
    keys: &[KeyPair],
    (from, until): (u32, u32),
    backend: Backend,
    control: &SearchControl,
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
    let candidates: Vec<Candidate> = state
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
            let kernel = KernelInput {
                modifier,
                block_time_from: u.time,
                tx_offset: u.tx_index,
                tx_time: u.time,
                vout: op.vout,
                time: 0,
            };
            let prefix = kernel.preimage()[..24]
                .try_into()
                .expect("a kernel has 28 bytes");
            Some(Candidate {
                outpoint: *op,
                utxo: *u,
                key,
                eligible_from: u64::from(u.time) + min_age + extra,
                job: KernelJob::new(&prefix, backend).expect("a backend this CPU runs"),
            })
        })
        .collect();
    if candidates.is_empty() {
        // Nothing this key set owns can ever stake.
        return StakeOutcome::Exhausted {
            next: until.saturating_add(1),
            idle_until: Some(u64::MAX),
        };
    }
    let weight_at = |c: &Candidate, t: u64| {
        kernel_weight(c.utxo.value, t - u64::from(c.utxo.time), min_age, max_age)
    };
    let end_of_search = u64::from(until) + 1;
    let mut t = u64::from(from);
    // Jump over seconds in which no output is eligible.
    let mut jumped = false;
    loop {
        if t >= end_of_search {
            return StakeOutcome::Exhausted {
                next: until.saturating_add(1),
                idle_until: jumped.then_some(t),
            };
        }
        if candidates.iter().any(|c| t >= c.eligible_from) {
            break;
        }
        jumped = true;
        t = candidates
            .iter()
            .map(|c| c.eligible_from)
            .min()
            .unwrap_or(u64::MAX);
    }
    // Slices as long as the outputs eligible now and over the first long slice allow: outputs
    // that come of age during the search hash in every later slice too.
    let eligible_by = |when: u64| {
        candidates
            .iter()
            .filter(|c| when >= c.eligible_from)
            .count()
    };
    let horizon = SLICE_ATTEMPTS / eligible_by(t) as u64;
    let active = eligible_by(t.saturating_add(horizon)) as u64;
    let longest = (SLICE_ATTEMPTS / active).max(FIRST_SLICE_SECONDS);
    let n = candidates.len() as u64;
    // Pieces of work, in order: piece k is output k % n over slice k / n.
    let next_piece = AtomicU64::new(0);
    // The best (time, output index) found so far, packed into one word.
    let best = AtomicU64::new(u64::MAX);
    rayon::broadcast(|_| {
        while !control.stop.load(Ordering::Relaxed) {
            let k = next_piece.fetch_add(1, Ordering::Relaxed);
            let i = (k % n) as usize;
            let (offset, slice) = slice_bounds(k / n, longest);
            let slice_start = t.saturating_add(offset);
            // Every later piece starts as late or later: this thread is done.
            if slice_start >= end_of_search || slice_start > best.load(Ordering::Relaxed) >> 32 {
                break;
            }
            let c = &candidates[i];
            let (a, b) = (
                slice_start.max(c.eligible_from),
                slice_start.saturating_add(slice).min(end_of_search),
            );
            if a >= b {
                continue;
            }
            let top = threshold_top(&threshold(target, weight_at(c, b - 1)));
            let wins =
                |time, hash| hash_at_most(&hash, &threshold(target, weight_at(c, u64::from(time))));
            let hit = c.job.find(a..b, top, wins).map(u64::from);
            control
                .hashes
                .fetch_add(hit.map_or(b, |h| h + 1) - a, Ordering::Relaxed);
            if let Some(time) = hit {
                best.fetch_min(time << 32 | i as u64, Ordering::Relaxed);
            }
        }
    });
    // A stopped search may have left pieces before its best hit undone: that hit is not
    // necessarily the first.
    if control.stop.load(Ordering::Relaxed) {
        return StakeOutcome::Stopped;
    }
    let best = best.into_inner();
    if best != u64::MAX {
        let (time, i) = (best >> 32, (best & u64::from(u32::MAX)) as usize);
        let c = &candidates[i];
        return StakeOutcome::Found(Stake {
            outpoint: c.outpoint,
            key: c.key,
            time: u32::try_from(time).expect("times are 32-bit"),
            weight: weight_at(c, time),
            attempts: sequential_attempts(&candidates, u64::from(from), time, i),
        });
    }
    StakeOutcome::Exhausted {
        next: until.saturating_add(1),
        idle_until: None,
    }
}

/// The top 32 bits of a threshold below 2^256 (all of them when it is not).
fn threshold_top(threshold: &[u64; 5]) -> u32 {
    if threshold[4] != 0 {
        u32::MAX
    } else {
        (threshold[3] >> 32) as u32
    }
}

/// The kernels a sequential search from `from` tries up to the winner (output `winner` at
/// `time`): every eligible output each second before `time`, then the outputs up to the
/// winner's at `time`. The count does not depend on how the search was split.
fn sequential_attempts(candidates: &[Candidate], from: u64, time: u64, winner: usize) -> u64 {
    let before: u64 = candidates
        .iter()
        .map(|c| time.saturating_sub(from.max(c.eligible_from)))
        .sum();
    let at = candidates[..=winner]
        .iter()
        .filter(|c| c.eligible_from <= time)
        .count() as u64;
    before + at
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
    fn slices_tile_chain_time_doubling_up_to_the_longest() {
        for longest in [16, 17, 31, 32, 100, 468, 16_384] {
            let mut end = 0;
            let mut last = 0;
            for j in 0..40 {
                let (start, len) = slice_bounds(j, longest);
                assert_eq!(start, end, "slice {j} of {longest}");
                assert!((FIRST_SLICE_SECONDS..=longest).contains(&len), "{j}: {len}");
                assert!(len == 2 * last || len == longest || j == 0, "{j}: {len}");
                (end, last) = (start + len, len);
            }
        }
    }

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
