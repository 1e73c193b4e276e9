//! How long blocks wait to become final, observed block by block in O(1) amortized per block:
//! blocks not yet final wait in a queue in height order, and each advance of the irreversible
//! height pops exactly the blocks it finalizes.

use std::collections::VecDeque;

/// Tracks, for every block, the chain time and the blocks until it became irreversible.
#[derive(Debug, Clone, Default)]
pub struct FinalityTracker {
    /// Blocks not yet irreversible: height and time (seconds).
    pending: VecDeque<(u32, f64)>,
    /// For each block that became irreversible: seconds and blocks until it did.
    waits: Vec<(f64, u32)>,
}

impl FinalityTracker {
    /// Records block `height` made at `time` (seconds), after which the chain's irreversible
    /// height is `irreversible`. Blocks must come in height order.
    pub fn observe(&mut self, height: u32, time: f64, irreversible: u32) {
        self.pending.push_back((height, time));
        while let Some(&(h, t)) = self.pending.front() {
            if h > irreversible {
                break;
            }
            self.waits.push((time - t, height - h));
            self.pending.pop_front();
        }
    }

    /// For each block that became irreversible, in height order: chain seconds and blocks
    /// from it to the block that made it irreversible.
    #[must_use]
    pub fn waits(&self) -> &[(f64, u32)] {
        &self.waits
    }

    /// Consumes the tracker, returning [`Self::waits`].
    #[must_use]
    pub fn into_waits(self) -> Vec<(f64, u32)> {
        self.waits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_block_waits_until_the_irreversible_height_passes_it() {
        let mut f = FinalityTracker::default();
        // Blocks 1..=6 two seconds apart; block 3 finalizes 1, block 4 finalizes 2, block 6
        // finalizes 3, 4 and 5 at once (6, 4 and 2 s; 3, 2 and 1 blocks).
        for (height, lib) in [(1, 0), (2, 0), (3, 1), (4, 2), (5, 2), (6, 5)] {
            f.observe(height, 2.0 * f64::from(height), lib);
        }
        assert_eq!(
            f.waits(),
            [(4.0, 2), (4.0, 2), (6.0, 3), (4.0, 2), (2.0, 1)]
        );
        // A block final at once waits nothing.
        let mut g = FinalityTracker::default();
        g.observe(1, 10.0, 1);
        assert_eq!(g.into_waits(), [(0.0, 0)]);
    }
}
