//! A small seeded random number generator for the simulator and the engines it drives:
//! xoshiro256** seeded through SplitMix64. Deterministic on every platform, so a seed names a
//! run; not for cryptography.

/// xoshiro256** (Blackman & Vigna), seeded by SplitMix64.
#[derive(Debug, Clone)]
pub struct SimRng {
    s: [u64; 4],
}

/// One SplitMix64 step: the next state and its output.
const fn splitmix(state: u64) -> (u64, u64) {
    let state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (state, z ^ (z >> 31))
}

impl SimRng {
    /// A generator whose whole stream follows from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        let (st, a) = splitmix(seed);
        let (st, b) = splitmix(st);
        let (st, c) = splitmix(st);
        let (_, d) = splitmix(st);
        Self { s: [a, b, c, d] }
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A value in `lo..=hi` (Lemire's multiply-shift; the bias is below 2^-32 for the small
    /// ranges the simulator draws).
    pub const fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        let span = hi - lo;
        if span == u64::MAX {
            return self.next_u64();
        }
        lo + ((self.next_u64() as u128 * (span as u128 + 1)) >> 64) as u64
    }

    /// A value in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A new generator for a sub-stream (a node, a schedule), independent of this one's
    /// later draws.
    pub const fn fork(&mut self) -> Self {
        Self::new(self.next_u64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_ranges_stay_in_bounds() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        let mut c = SimRng::new(8);
        let xs: Vec<u64> = (0..100).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..100).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..100).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut seen = [0u32; 6];
        for _ in 0..60_000 {
            let v = a.range(150, 155);
            assert!((150..=155).contains(&v));
            seen[(v - 150) as usize] += 1;
        }
        // Each of six values near 10 000 times.
        assert!(seen.iter().all(|n| (9_000..11_000).contains(n)), "{seen:?}");
        assert_eq!(a.range(5, 5), 5);
    }

    #[test]
    fn splitmix_matches_the_reference_output() {
        // SplitMix64 from seed 0: first output 0xe220a8397b1dcdaf (Vigna's reference code).
        assert_eq!(splitmix(0).1, 0xe220_a839_7b1d_cdaf);
    }
}
