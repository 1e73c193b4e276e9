//! Pay per last N shares, paid in the coinbase.
//!
//! The rule: when the pool makes a job, its coinbase splits the block reward among the payees
//! of the last `N` accepted shares (the window), each share weighted by the work its
//! difficulty stands for (the expected hashes to find it, `2^256 / (target + 1)`). Payee `p`
//! gets `⌊reward · W_p / W⌋` base units, where `W_p` is the weight of `p`'s shares in the
//! window and `W` the weight of all of them; the base units left over by rounding down (fewer
//! than the number of payees) go to the payee with the most weight (the lowest key among
//! equals). Outputs are ordered by key; a payee whose part rounds to zero gets no output. With
//! no share yet the operator takes everything.
//!
//! Because the coinbase is fixed when the job goes out, a block pays the window as it was when
//! its job was made (the pool makes a fresh job every few seconds), not at the instant the
//! block was found: a share counts in the jobs made after it, until `N` newer shares push it
//! out. Workers of one user (`NAME.WORKER`) share the user's payee.

use std::collections::{BTreeMap, VecDeque};

use num_bigint::BigUint;
use num_traits::{ToPrimitive, Zero};

use crate::primitives::tx::{Amount, PubKey, TxOut};

/// The last `N` accepted shares and their payees.
#[derive(Debug, Clone)]
pub struct Pplns {
    window: usize,
    shares: VecDeque<(PubKey, BigUint)>,
}

impl Pplns {
    /// An empty window of `window` shares (at least 1).
    #[must_use]
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            shares: VecDeque::new(),
        }
    }

    /// Adds an accepted share of `work` expected hashes paying `payee`.
    pub fn push(&mut self, payee: PubKey, work: BigUint) {
        if self.shares.len() == self.window {
            self.shares.pop_front();
        }
        self.shares.push_back((payee, work));
    }

    /// The coinbase outputs that split `reward` over the window.
    #[must_use]
    pub fn split(&self, reward: Amount) -> Vec<TxOut> {
        split(self.shares.iter().map(|(p, w)| (*p, w)), reward)
    }
}

/// Splits `reward` by the shares' weights (the rule in the module's documentation); empty when
/// there are no shares or nothing to pay.
pub fn split<'a>(
    shares: impl Iterator<Item = (PubKey, &'a BigUint)>,
    reward: Amount,
) -> Vec<TxOut> {
    let mut weights: BTreeMap<PubKey, BigUint> = BTreeMap::new();
    for (payee, work) in shares {
        *weights.entry(payee).or_default() += work;
    }
    let total: BigUint = weights.values().sum();
    if total.is_zero() || reward == Amount::ZERO {
        return Vec::new();
    }
    let units = BigUint::from(reward.to_base_units());
    let mut parts: BTreeMap<PubKey, u64> = weights
        .iter()
        .map(|(p, w)| {
            let part = (&units * w / &total)
                .to_u64()
                .expect("a part is at most the reward");
            (*p, part)
        })
        .collect();
    let paid: u64 = parts.values().sum();
    let heaviest = weights
        .iter()
        .fold(None::<(&PubKey, &BigUint)>, |best, (p, w)| match best {
            Some((_, bw)) if bw >= w => best,
            _ => Some((p, w)),
        })
        .map(|(p, _)| *p)
        .expect("at least one payee");
    *parts.get_mut(&heaviest).expect("a payee") += reward.to_base_units() - paid;
    parts
        .into_iter()
        .filter(|(_, v)| *v > 0)
        .map(|(to, v)| TxOut {
            value: Amount::from_base_units(v),
            to,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::tx::KeyPair;

    fn key(name: &str) -> PubKey {
        KeyPair::derive("pplns", name).pubkey()
    }

    fn value_of(outs: &[TxOut], k: PubKey) -> u64 {
        outs.iter()
            .find(|o| o.to == k)
            .map_or(0, |o| o.value.to_base_units())
    }

    #[test]
    fn splits_by_difficulty_weighted_shares_in_the_window() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let mut p = Pplns::new(4);
        assert!(p.split(Amount::from_base_units(100)).is_empty());
        p.push(c, BigUint::from(1000u32)); // pushed out below
        p.push(a, BigUint::from(1u32));
        p.push(a, BigUint::from(1u32));
        p.push(b, BigUint::from(2u32));
        p.push(b, BigUint::from(4u32));
        // Window: a 2, b 6 of 8.
        let outs = p.split(Amount::from_base_units(1000));
        assert_eq!(value_of(&outs, c), 0);
        assert_eq!(value_of(&outs, a), 250);
        assert_eq!(value_of(&outs, b), 750);
        let mut keys: Vec<_> = outs.iter().map(|o| o.to).collect();
        let sorted = {
            let mut k = keys.clone();
            k.sort();
            k
        };
        assert_eq!(keys, sorted, "outputs ordered by key");
        keys.dedup();
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn rounding_remainder_goes_to_the_heaviest_and_the_sum_is_the_reward() {
        let (a, b, c) = (key("a"), key("b"), key("c"));
        let w = |n: u32| BigUint::from(n);
        let shares = [(a, w(1)), (b, w(1)), (c, w(2))];
        let outs = split(
            shares.iter().map(|(p, w)| (*p, w)),
            Amount::from_base_units(7),
        );
        // 7·1/4 = 1, 7·1/4 = 1, 7·2/4 = 3; 2 left over go to c.
        assert_eq!(
            (value_of(&outs, a), value_of(&outs, b), value_of(&outs, c)),
            (1, 1, 5)
        );
        // A part that rounds to zero gets no output; the sum is always the reward.
        let tiny = [(a, w(1)), (b, w(1_000_000))];
        let outs = split(
            tiny.iter().map(|(p, w)| (*p, w)),
            Amount::from_base_units(10),
        );
        assert_eq!(outs.len(), 1);
        assert_eq!(value_of(&outs, b), 10);
        assert!(split(tiny.iter().map(|(p, w)| (*p, w)), Amount::ZERO).is_empty());
    }
}
