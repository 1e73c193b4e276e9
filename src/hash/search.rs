//! What a caller gives a search and sees of it: the options of a nonce search, and the stop
//! flag and hash counter that every search (nonces, stake kernels) and the producer loop share.

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64};

use crate::hash::Backend;

/// Nonces per chunk handed to a worker thread (~3 ms of hashing on one core).
pub const DEFAULT_CHUNK: u64 = 1 << 16;

/// How the parallel search picks among solutions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchMode {
    /// Return whichever solution a thread finds first: the fastest.
    #[default]
    Any,
    /// Return the lowest solving nonce, independent of thread count and timing.
    Lowest,
}

/// Shared controls of a running search: a stop flag (Ctrl-C) and a hash counter for progress.
#[derive(Debug, Default)]
pub struct SearchControl {
    /// Raised by the caller to stop every thread.
    pub stop: AtomicBool,
    /// Hashes done so far, updated once per chunk.
    pub hashes: AtomicU64,
}

/// Parameters of a nonce search.
#[derive(Debug, Clone)]
pub struct SearchOptions {
    /// Solution choice.
    pub mode: SearchMode,
    /// Nonces per chunk.
    pub chunk: u64,
    /// The nonces to try (the full range is `0..2^32`).
    pub nonces: Range<u64>,
    /// The hash backend [`solve_block`] uses.
    pub backend: Backend,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            mode: SearchMode::Any,
            chunk: DEFAULT_CHUNK,
            nonces: 0..1 << 32,
            backend: Backend::detect(),
        }
    }
}
