//! The parallel nonce search.
//!
//! The 2^32 nonces of a header are cut into chunks that rayon hands to its worker threads. In
//! throughput mode ([`SearchMode::Any`]) the first thread to find a solution raises a flag
//! that every other thread sees within a few thousand hashes. In reproducible mode
//! ([`SearchMode::Lowest`]) the search returns the lowest solving nonce, exactly what a
//! sequential scan from 0 returns. When all nonces fail, [`solve_block`] rolls the coinbase
//! extra-nonce, which changes the merkle root, and searches again.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::hash::PowJob;
use crate::hash::search::{SearchControl, SearchMode, SearchOptions};
use crate::primitives::block::Block;
use crate::primitives::pow_units::Target;
use crate::primitives::tx::Transaction;

/// How a nonce search ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchOutcome {
    /// A nonce whose header hash meets the target.
    Found(u32),
    /// Every nonce in the range failed.
    Exhausted,
    /// The stop flag was raised.
    Stopped,
}

/// Searches `opts.nonces` for a nonce meeting the job's target on the current rayon pool.
pub fn search(job: &PowJob, opts: &SearchOptions, control: &SearchControl) -> SearchOutcome {
    let start = opts.nonces.start;
    let end = opts.nonces.end.min(1 << 32);
    if start >= end {
        return SearchOutcome::Exhausted;
    }
    let chunk = opts.chunk.max(1);
    let n_chunks = (end - start).div_ceil(chunk);
    let solved = AtomicBool::new(false);
    let scan_chunk = |i: u64| {
        let lo = start + i * chunk;
        let range = lo..(lo + chunk).min(end);
        let scan = match opts.mode {
            SearchMode::Any => job.scan(range, || {
                control.stop.load(Ordering::Relaxed) || solved.load(Ordering::Relaxed)
            }),
            SearchMode::Lowest => job.scan(range, || control.stop.load(Ordering::Relaxed)),
        };
        control.hashes.fetch_add(scan.hashes, Ordering::Relaxed);
        if scan.found.is_some() {
            solved.store(true, Ordering::Relaxed);
        }
        scan.found
    };
    let found = match opts.mode {
        SearchMode::Any => (0..n_chunks).into_par_iter().find_map_any(scan_chunk),
        SearchMode::Lowest => (0..n_chunks).into_par_iter().find_map_first(scan_chunk),
    };
    match found {
        Some(nonce) => SearchOutcome::Found(nonce),
        None if control.stop.load(Ordering::Relaxed) => SearchOutcome::Stopped,
        None => SearchOutcome::Exhausted,
    }
}

/// Searches every nonce of `opts.nonces` on the current rayon pool and calls `found` with each
/// one that meets the job's target — in order within a chunk, in no set order across chunks.
/// Unlike [`search`], a solution does not end the search: a pool miner submits every share, and
/// restarting after each one would redo (or skip) the other threads' chunks. Returns
/// [`SearchOutcome::Exhausted`] when the range is done, [`SearchOutcome::Stopped`] when the stop
/// flag ended it (`opts.mode` is not used).
pub fn search_all(
    job: &PowJob,
    opts: &SearchOptions,
    control: &SearchControl,
    found: &(dyn Fn(u32) + Sync),
) -> SearchOutcome {
    let start = opts.nonces.start;
    let end = opts.nonces.end.min(1 << 32);
    if start >= end {
        return SearchOutcome::Exhausted;
    }
    let chunk = opts.chunk.max(1);
    let stopped = || control.stop.load(Ordering::Relaxed);
    (0..(end - start).div_ceil(chunk))
        .into_par_iter()
        .for_each(|i| {
            let mut lo = start + i * chunk;
            let hi = (lo + chunk).min(end);
            while lo < hi && !stopped() {
                let scan = job.scan(lo..hi, stopped);
                control.hashes.fetch_add(scan.hashes, Ordering::Relaxed);
                match scan.found {
                    Some(nonce) => {
                        found(nonce);
                        lo = u64::from(nonce) + 1;
                    }
                    None => break,
                }
            }
        });
    if stopped() {
        SearchOutcome::Stopped
    } else {
        SearchOutcome::Exhausted
    }
}

/// Why [`solve_block`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SolveError {
    /// The stop flag was raised.
    #[error("stopped")]
    Stopped,
    /// The first transaction is not a coinbase, so there is no extra-nonce to roll.
    #[error("block has no coinbase to roll")]
    NoCoinbase,
    /// The CPU cannot run the requested backend.
    #[error(transparent)]
    Unsupported(#[from] crate::hash::UnsupportedBackend),
}

/// Finds a nonce for `block` against `target`, rolling the coinbase extra-nonce (and so the
/// merkle root) whenever a full nonce range fails. Returns the solved block.
///
/// # Errors
/// [`SolveError::Stopped`] when `control.stop` is raised; [`SolveError::NoCoinbase`] when the
/// range is exhausted and the block has no coinbase; [`SolveError::Unsupported`] when this CPU
/// cannot run `opts.backend`.
pub fn solve_block(
    mut block: Block,
    target: Target,
    opts: &SearchOptions,
    control: &SearchControl,
) -> Result<Block, SolveError> {
    loop {
        let job = PowJob::new(&block.header, target).with_backend(opts.backend)?;
        match search(&job, opts, control) {
            SearchOutcome::Found(nonce) => {
                block.header.nonce = nonce;
                return Ok(block);
            }
            SearchOutcome::Stopped => return Err(SolveError::Stopped),
            SearchOutcome::Exhausted => {
                match block.txs.first_mut() {
                    Some(Transaction::Coinbase { extra_nonce, .. }) => *extra_nonce += 1,
                    _ => return Err(SolveError::NoCoinbase),
                }
                block.header.merkle_root = block.compute_merkle_root().root;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::hash::{BlockHash, MerkleRoot};
    use crate::primitives::header::Header;
    use crate::primitives::pow_units::CompactTarget;

    fn header(seed: u8) -> Header {
        Header {
            version: 1,
            prev_hash: BlockHash::from_byte_array([seed; 32]),
            merkle_root: MerkleRoot::from_byte_array([seed ^ 0x55; 32]),
            time: 1_700_000_000,
            bits: CompactTarget::from_consensus(0x1f00_ffff),
            nonce: 0,
        }
    }

    fn sequential_first(job: &PowJob, range: std::ops::Range<u64>) -> Option<u32> {
        range
            .map(|n| n as u32)
            .find(|n| Target::from_le_bytes(job.hash_nonce(*n)) <= job.target())
    }

    #[test]
    fn parallel_lowest_matches_sequential_search() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        for seed in 0..6 {
            let h = header(seed);
            let job = PowJob::new(&h, h.bits.to_target().unwrap());
            let opts = SearchOptions {
                mode: SearchMode::Lowest,
                chunk: 1000,
                nonces: 0..400_000,
                ..SearchOptions::default()
            };
            let control = SearchControl::default();
            let got = pool.install(|| search(&job, &opts, &control));
            let want = sequential_first(&job, 0..400_000);
            match want {
                Some(n) => assert_eq!(got, SearchOutcome::Found(n), "seed {seed}"),
                None => assert_eq!(got, SearchOutcome::Exhausted, "seed {seed}"),
            }
        }
    }

    #[test]
    fn search_all_reports_every_solution_once() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let h = header(4);
        // One hash in 16 solves.
        let target = Target::from_hex(&format!("0{}", "f".repeat(63))).unwrap();
        let job = PowJob::new(&h, target);
        let opts = SearchOptions {
            chunk: 100,
            nonces: 50..5_000,
            ..SearchOptions::default()
        };
        let control = SearchControl::default();
        let got = std::sync::Mutex::new(Vec::new());
        let outcome =
            pool.install(|| search_all(&job, &opts, &control, &|n| got.lock().unwrap().push(n)));
        assert_eq!(outcome, SearchOutcome::Exhausted);
        let mut got = got.into_inner().unwrap();
        got.sort_unstable();
        let want: Vec<u32> = (50..5_000u32)
            .filter(|n| Target::from_le_bytes(job.hash_nonce(*n)) <= target)
            .collect();
        assert!(want.len() > 200);
        assert_eq!(got, want);
        assert_eq!(
            control.hashes.load(Ordering::Relaxed),
            4_950,
            "every nonce hashed once"
        );
        let control = SearchControl::default();
        control.stop.store(true, Ordering::Relaxed);
        assert_eq!(
            search_all(&job, &opts, &control, &|_| ()),
            SearchOutcome::Stopped
        );
        assert_eq!(control.hashes.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn any_mode_returns_a_valid_solution() {
        let h = header(9);
        let job = PowJob::new(&h, h.bits.to_target().unwrap());
        let control = SearchControl::default();
        let SearchOutcome::Found(n) = search(&job, &SearchOptions::default(), &control) else {
            panic!("an easy target must be solved")
        };
        assert!(Target::from_le_bytes(job.hash_nonce(n)) <= job.target());
        assert!(control.hashes.load(Ordering::Relaxed) > u64::from(n) / 64);
    }

    #[test]
    fn exhausted_nonce_range_rolls_the_extra_nonce() {
        use crate::chain::state::ChainState;

        let state = ChainState::started("regtest");
        let spec = state.spec();
        let template = state.block_template(1_800_000_000, spec.miner_key().pubkey(), Vec::new());
        // One hash in 256 meets this target; with four nonces per range, rolls are needed.
        let target = Target::from_hex(&format!("00{}", "f".repeat(62))).unwrap();
        let opts = SearchOptions {
            mode: SearchMode::Lowest,
            chunk: 2,
            nonces: 0..4,
            ..SearchOptions::default()
        };
        let control = SearchControl::default();
        let block = solve_block(template, target, &opts, &control).unwrap();
        let Transaction::Coinbase { extra_nonce, .. } = &block.txs[0] else {
            panic!("coinbase first")
        };
        assert!(
            *extra_nonce > 0,
            "the first range happened to solve; pick another target"
        );
        assert!(block.header.nonce < 4);
        assert!(target.is_met_by(block.block_hash()));
        assert_eq!(block.header.merkle_root, block.compute_merkle_root().root);
        // Every failed range was hashed in full (parallel chunks may hash a little more).
        let minimum = 4 * extra_nonce + u64::from(block.header.nonce) + 1;
        assert!(control.hashes.load(Ordering::Relaxed) >= minimum);
    }

    #[test]
    fn stop_flag_stops_the_search() {
        let h = header(1);
        let job = PowJob::new(&h, Target::ZERO);
        let control = SearchControl::default();
        control.stop.store(true, Ordering::Relaxed);
        assert_eq!(
            search(&job, &SearchOptions::default(), &control),
            SearchOutcome::Stopped
        );
    }
}
