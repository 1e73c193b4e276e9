//! Delegated proof of stake, as EOSIO and BitShares (Graphene) run it: the rules as pure
//! functions, with no chain or I/O in sight.
//!
//! * **Election** — approval voting: a holder approves up to `max_votes` candidates and each
//!   one gets the holder's full stake ([`tally`]); the `n` candidates with the most votes are
//!   the active producers ([`elect`]: ties go to the lower name, candidates with no votes are
//!   never elected).
//! * **Schedule** — time is cut into slots; a round is `n × blocks_per_turn` slots and each
//!   active producer owns `blocks_per_turn` consecutive ones ([`Schedule::producer_at`]). The
//!   order within a round is by name (EOSIO) or a per-round shuffle ([`bitshares_shuffle`]).
//!   A slot without a block is missed by its owner; the chain simply goes on at a later slot.
//! * **Irreversibility** — a block is irreversible once at least `⌊2n/3⌋ + 1` active producers
//!   have produced it or a block on top of it ([`last_irreversible`]).
//! * **Evidence** — two different blocks signed by one producer for one slot
//!   ([`DoubleSign`]).

pub mod spec;
pub mod state;

pub use spec::{DposSpec, ScheduleOrder, TokenHolder};
pub use state::{Dpos, DposError, DposState, demo_votes, dpos_block, dpos_slot};

use crate::primitives::hash::BlockHash;

/// The multiplier of BitShares' schedule generator (`db_witness_schedule.cpp`).
const SHUFFLE_MUL: u64 = 2_685_821_657_736_338_717;

/// Sums, for every candidate, the stake of the holders approving it. `ballots` yields each
/// holder's stake and the candidate indices it approves; indices past `candidates` are ignored.
#[must_use]
pub fn tally<'a>(
    candidates: usize,
    ballots: impl IntoIterator<Item = (u64, &'a [u16])>,
) -> Vec<u64> {
    let mut votes = vec![0u64; candidates];
    for (stake, approved) in ballots {
        for &c in approved {
            if let Some(v) = votes.get_mut(usize::from(c)) {
                *v = v.saturating_add(stake);
            }
        }
    }
    votes
}

/// Returns the `n` most-voted candidates (indices), most votes first, ties to the lower name;
/// `None` when fewer than `n` candidates have any votes (EOSIO then keeps the old schedule).
#[must_use]
pub fn elect(votes: &[u64], names: &[String], n: usize) -> Option<Vec<u16>> {
    let mut ranked: Vec<u16> = (0..votes.len())
        .filter(|&i| votes[i] > 0)
        .filter_map(|i| u16::try_from(i).ok())
        .collect();
    if ranked.len() < n {
        return None;
    }
    ranked.sort_by(|&a, &b| {
        let (a, b) = (usize::from(a), usize::from(b));
        votes[b]
            .cmp(&votes[a])
            .then_with(|| names[a].cmp(&names[b]))
    });
    ranked.truncate(n);
    Some(ranked)
}

/// Shuffles `list` in place with BitShares' generator: for each `i`, a xorshift-multiply of
/// `seed + i × 2685821657736338717` picks `j` in `i..len` to swap with. BitShares seeds it with
/// the head block time shifted left by 32 bits; any 64-bit seed works.
pub fn bitshares_shuffle<T>(list: &mut [T], seed: u64) {
    let n = list.len() as u64;
    for i in 0..n {
        let mut k = seed.wrapping_add(i.wrapping_mul(SHUFFLE_MUL));
        k ^= k >> 12;
        k ^= k << 25;
        k ^= k >> 27;
        k = k.wrapping_mul(SHUFFLE_MUL);
        let j = i + k % (n - i);
        list.swap(i as usize, j as usize);
    }
}

/// The round a slot belongs to; slot 0 is genesis, so round 0 is slots `1..=round_slots`.
#[must_use]
pub const fn round_of(slot: u64, round_slots: u64) -> u64 {
    slot.saturating_sub(1) / round_slots
}

/// One round's producers in slot order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The round.
    pub round: u64,
    /// Candidate indices in the order they produce.
    pub producers: Vec<u16>,
}

impl Schedule {
    /// The producer owning `slot` (which must be in this round): the `⌊p / bpt⌋`-th, `p` the
    /// slot's position in the round.
    #[must_use]
    pub fn producer_at(&self, slot: u64, blocks_per_turn: u32) -> u16 {
        let round_slots = self.producers.len() as u64 * u64::from(blocks_per_turn);
        let position = slot.saturating_sub(1) % round_slots;
        self.producers[(position / u64::from(blocks_per_turn)) as usize]
    }
}

/// The last irreversible height given the last height each active producer produced (`None`
/// for never): the highest height that at least `⌊2n/3⌋ + 1` of the `n` producers have
/// reached, or `None` when fewer have produced at all.
#[must_use]
pub fn last_irreversible(last_produced: &[Option<u32>]) -> Option<u32> {
    let n = last_produced.len();
    let needed = n * 2 / 3 + 1;
    let mut heights: Vec<u32> = last_produced.iter().flatten().copied().collect();
    if heights.len() < needed {
        return None;
    }
    heights.sort_unstable_by(|a, b| b.cmp(a));
    Some(heights[needed - 1])
}

/// A signed claim to one slot: what double-sign detection compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotClaim {
    /// The producer (candidate index).
    pub producer: u16,
    /// The slot.
    pub slot: u64,
    /// The block's hash.
    pub hash: BlockHash,
    /// The block's height.
    pub height: u32,
}

/// Evidence that a producer signed two different blocks for one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DoubleSign {
    /// The first block seen.
    pub first: SlotClaim,
    /// The conflicting block.
    pub second: SlotClaim,
}

impl DoubleSign {
    /// Returns the evidence if `a` and `b` are two different blocks by one producer for one
    /// slot. Both must already be known to carry that producer's valid signature.
    #[must_use]
    pub fn check(a: SlotClaim, b: SlotClaim) -> Option<Self> {
        (a.producer == b.producer && a.slot == b.slot && a.hash != b.hash).then_some(Self {
            first: a,
            second: b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("c{i}")).collect()
    }

    /// Hand-computed: holders (100: {0, 1}), (40: {1, 2}), (25: {2, 3}), (0: {4}).
    #[test]
    fn tally_gives_each_approved_candidate_the_full_stake() {
        let ballots: [(u64, &[u16]); 4] = [(100, &[0, 1]), (40, &[1, 2]), (25, &[2, 3]), (0, &[4])];
        assert_eq!(tally(5, ballots), vec![100, 140, 65, 25, 0]);
        let names = names(5);
        let votes = tally(5, ballots);
        assert_eq!(elect(&votes, &names, 3), Some(vec![1, 0, 2]));
        assert_eq!(elect(&votes, &names, 4), Some(vec![1, 0, 2, 3]));
        // Candidate 4 has only a zero-stake approval: never elected.
        assert_eq!(elect(&votes, &names, 5), None);
    }

    #[test]
    fn ties_go_to_the_lower_name() {
        let names: Vec<String> = ["zed", "amy", "bob"].map(String::from).to_vec();
        assert_eq!(elect(&[7, 7, 9], &names, 2), Some(vec![2, 1]));
    }

    #[test]
    fn schedule_gives_each_producer_consecutive_slots() {
        let s = Schedule {
            round: 0,
            producers: vec![5, 3, 8],
        };
        let owners: Vec<u16> = (1..=12).map(|slot| s.producer_at(slot, 4)).collect();
        assert_eq!(owners, [5, 5, 5, 5, 3, 3, 3, 3, 8, 8, 8, 8]);
        assert_eq!(s.producer_at(13, 4), 5, "period is n × bpt");
        assert_eq!(round_of(12, 12), 0);
        assert_eq!(round_of(13, 12), 1);
    }

    #[test]
    fn shuffle_is_a_deterministic_permutation() {
        let base: Vec<u16> = (0..21).collect();
        let mut orders = std::collections::HashSet::new();
        for seed in [0u64, 1, 1 << 32, 0xdead_beef_0000_0000, u64::MAX] {
            let mut a = base.clone();
            bitshares_shuffle(&mut a, seed);
            let mut b = base.clone();
            bitshares_shuffle(&mut b, seed);
            assert_eq!(a, b);
            let mut sorted = a.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, base);
            orders.insert(a);
        }
        assert!(orders.len() >= 4, "seeds give different orders");
    }

    /// Hand-computed shuffle of three items with seed 0 (the generator run on paper):
    /// i = 0: k = 0 → j = 0; i = 1: k₀ = M, j = 1 + k mod 2; i = 2: nothing to swap.
    #[test]
    fn shuffle_follows_the_generator() {
        let step = |seed: u64| {
            let mut k = seed;
            k ^= k >> 12;
            k ^= k << 25;
            k ^= k >> 27;
            k.wrapping_mul(SHUFFLE_MUL)
        };
        let mut list = ['a', 'b', 'c'];
        bitshares_shuffle(&mut list, 0);
        let j1 = 1 + step(SHUFFLE_MUL) % 2;
        let mut expected = ['a', 'b', 'c'];
        expected.swap(0, usize::try_from(step(0) % 3).unwrap());
        expected.swap(1, usize::try_from(j1).unwrap());
        assert_eq!(list, expected);
    }

    #[test]
    fn irreversibility_needs_two_thirds_plus_one() {
        // 21 producers need 15.
        let mut last = vec![None; 21];
        for (i, h) in last.iter_mut().enumerate().take(14) {
            *h = Some(100 + i as u32);
        }
        assert_eq!(last_irreversible(&last), None, "14 of 21 are not enough");
        last[20] = Some(50);
        assert_eq!(last_irreversible(&last), Some(50));
        last[20] = Some(200);
        // Heights 200, 113, 112, ..., 100: the 15th highest is 100.
        assert_eq!(last_irreversible(&last), Some(100));
        // Three producers need all three (⌊2·3/3⌋ + 1).
        assert_eq!(last_irreversible(&[Some(7), Some(9), None]), None);
        assert_eq!(last_irreversible(&[Some(7), Some(9), Some(8)]), Some(7));
        assert_eq!(last_irreversible(&[Some(7)]), Some(7));
    }

    #[test]
    fn double_sign_needs_same_producer_slot_and_different_blocks() {
        let claim = |producer, slot, byte| SlotClaim {
            producer,
            slot,
            hash: BlockHash::from_byte_array([byte; 32]),
            height: 9,
        };
        assert!(DoubleSign::check(claim(1, 5, 1), claim(1, 5, 2)).is_some());
        assert!(DoubleSign::check(claim(1, 5, 1), claim(1, 5, 1)).is_none());
        assert!(DoubleSign::check(claim(1, 5, 1), claim(2, 5, 2)).is_none());
        assert!(DoubleSign::check(claim(1, 5, 1), claim(1, 6, 2)).is_none());
    }
}
