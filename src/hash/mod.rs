//! The sha256d nonce loop.
//!
//! A header's first 64 bytes (version, previous hash and 28 bytes of the merkle root) do not
//! change while the nonce runs, so their SHA-256 state — the *midstate* — is computed once per
//! job. Each nonce then costs two compressions: the header's second 64-byte block (the last 16
//! header bytes plus constant padding) and the second SHA-256 over the 32-byte digest. The loop
//! neither allocates nor locks; the hash is compared with the target as machine words, most
//! significant word first, so almost every nonce is rejected after one comparison.

use sha2::block_api::compress256;
use std::ops::Range;

use crate::primitives::header::Header;
use crate::primitives::pow_units::Target;

/// SHA-256 initial state (FIPS 180-4 §5.3.3).
const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// How often (in nonces) the loop looks at the stop flag.
const STOP_CHECK_INTERVAL: u64 = 4096;

/// A header prepared for nonce search: its midstate, its padded second block and the target.
#[derive(Debug, Clone)]
pub struct PowJob {
    midstate: [u32; 8],
    tail: [u8; 64],
    target: Target,
    target_top: u32,
}

/// The outcome of scanning a nonce range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The first nonce in the range whose hash meets the target, if one was found before the
    /// range ended or the stop flag was raised.
    pub found: Option<u32>,
    /// How many nonces were hashed.
    pub hashes: u64,
}

impl PowJob {
    /// Prepares `header` (its nonce is ignored) for a search against `target`.
    #[must_use]
    pub fn new(header: &Header, target: Target) -> Self {
        let bytes = header.to_bytes();
        let mut midstate = IV;
        let first: [u8; 64] = bytes[..64].try_into().expect("header has 80 bytes");
        compress256(&mut midstate, &[first]);
        let mut tail = [0u8; 64];
        tail[..16].copy_from_slice(&bytes[64..80]);
        tail[16] = 0x80;
        // Message length: 80 bytes = 640 bits, big-endian in the last 8 bytes.
        tail[56..64].copy_from_slice(&640u64.to_be_bytes());
        let target_top = (target.to_limbs()[3] >> 32) as u32;
        Self {
            midstate,
            tail,
            target,
            target_top,
        }
    }

    /// Returns the target this job searches for.
    #[must_use]
    pub const fn target(&self) -> Target {
        self.target
    }

    /// Returns sha256d of the header with `nonce`, as 32 bytes in internal order.
    #[must_use]
    pub fn hash_nonce(&self, nonce: u32) -> [u8; 32] {
        let state = self.second_hash(nonce);
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    #[inline]
    fn second_hash(&self, nonce: u32) -> [u32; 8] {
        let mut block = self.tail;
        block[12..16].copy_from_slice(&nonce.to_le_bytes());
        let mut first = self.midstate;
        compress256(&mut first, &[block]);
        let mut second = [0u8; 64];
        for (chunk, word) in second.chunks_exact_mut(4).zip(first) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        second[32] = 0x80;
        // Message length: 32 bytes = 256 bits.
        second[56..64].copy_from_slice(&256u64.to_be_bytes());
        let mut state = IV;
        compress256(&mut state, &[second]);
        state
    }

    /// Returns true if the final SHA-256 state meets the target. The digest's last word,
    /// byte-swapped, is the most significant 32 bits of the hash read as a little-endian number.
    #[inline]
    fn state_meets_target(&self, state: &[u32; 8]) -> bool {
        let top = state[7].swap_bytes();
        if top != self.target_top {
            return top < self.target_top;
        }
        let mut digest = [0u8; 32];
        for (chunk, word) in digest.chunks_exact_mut(4).zip(state) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        Target::from_le_bytes(digest) <= self.target
    }

    /// Hashes the nonces in `range` (clamped to `0..=u32::MAX`) in order and returns the first
    /// that meets the target. Calls `stop` every few thousand nonces and returns early, with
    /// `found: None`, once it answers true.
    #[must_use]
    pub fn scan(&self, range: Range<u64>, stop: impl Fn() -> bool) -> Scan {
        let end = range.end.min(1 << 32);
        let mut nonce = range.start;
        while nonce < end {
            if stop() {
                break;
            }
            let batch_end = (nonce + STOP_CHECK_INTERVAL).min(end);
            while nonce < batch_end {
                #[allow(clippy::cast_possible_truncation)]
                let n = nonce as u32;
                if self.state_meets_target(&self.second_hash(n)) {
                    return Scan {
                        found: Some(n),
                        hashes: nonce + 1 - range.start,
                    };
                }
                nonce += 1;
            }
        }
        Scan {
            found: None,
            hashes: nonce.saturating_sub(range.start),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::hash::sha256d;

    const BLOCK_125552: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

    #[test]
    fn midstate_matches_plain_sha256d() {
        let header = Header::from_hex(BLOCK_125552).unwrap();
        let job = PowJob::new(&header, Target::MAX);
        for nonce in [0, 1, header.nonce, u32::MAX] {
            let mut h = header;
            h.nonce = nonce;
            assert_eq!(
                job.hash_nonce(nonce),
                sha256d(&h.to_bytes()),
                "nonce {nonce}"
            );
        }
    }

    #[test]
    fn scan_finds_the_real_nonce() {
        let header = Header::from_hex(BLOCK_125552).unwrap();
        let target = header.bits.to_target().unwrap();
        let job = PowJob::new(&header, target);
        let scan = job.scan(
            u64::from(header.nonce) - 1000..u64::from(header.nonce) + 1000,
            || false,
        );
        assert_eq!(scan.found, Some(header.nonce));
        assert_eq!(scan.hashes, 1001);
    }

    #[test]
    fn scan_honours_stop_and_range_end() {
        let header = Header::from_hex(BLOCK_125552).unwrap();
        let job = PowJob::new(&header, Target::ZERO);
        assert_eq!(job.scan(0..100_000, || true).hashes, 0);
        let near_end = (1u64 << 32) - 10;
        assert_eq!(
            job.scan(near_end..u64::MAX, || false),
            Scan {
                found: None,
                hashes: 10
            }
        );
    }
}
