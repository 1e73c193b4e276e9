//! The sha256d nonce loop and its backends.
//!
//! A header's first 64 bytes (version, previous hash and 28 bytes of the merkle root) do not
//! change while the nonce runs, so their SHA-256 state — the *midstate* — is computed once per
//! job. Each nonce then costs two compressions: the header's second 64-byte block (the last 16
//! header bytes plus constant padding) and the second SHA-256 over the 32-byte digest.
//!
//! Backends share one interface, [`PowJob::scan`], and are chosen once at run time from the
//! CPU's features ([`Backend::detect`]), as the sha2 and BLAKE3 crates do:
//! * [`Backend::Soft`]: portable, the `sha2` crate's compression function on the midstate;
//! * [`Backend::ShaNi`]: x86 SHA extensions, several independent nonces in flight to hide the
//!   latency of `sha256rnds2`, nonce-independent rounds precomputed, the last rounds skipped;
//! * [`Backend::Avx2`]: eight nonces in the lanes of 256-bit registers, same shortcuts;
//! * [`Backend::Avx512`]: sixteen nonces in 512-bit registers, with native rotates and
//!   three-input logic.
//!
//! A kernel reports *candidates* — nonces whose hash has a most significant 32-bit word at or
//! below the target's — and [`PowJob::scan`] checks each candidate against the full target.
//! Nothing in the loop allocates or locks.
//!
//! The proof-of-stake search hashes stake kernels the same way ([`KernelJob`]): a kernel is
//! sha256d of 28 bytes whose last field, the timestamp, is what the search varies — one block
//! from the IV, the rounds before the timestamp precomputed, then the same second hash. The
//! backends are the same code, generic over which word of the block varies.

pub mod search;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use sha2::block_api::compress256;

use crate::primitives::header::Header;
use crate::primitives::pow_units::Target;

#[cfg(target_arch = "x86_64")]
mod x86;

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

/// SHA-256 round constants (FIPS 180-4 §4.2.2).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
const K: [u32; 64] = [
    0x428a_2f98,
    0x7137_4491,
    0xb5c0_fbcf,
    0xe9b5_dba5,
    0x3956_c25b,
    0x59f1_11f1,
    0x923f_82a4,
    0xab1c_5ed5,
    0xd807_aa98,
    0x1283_5b01,
    0x2431_85be,
    0x550c_7dc3,
    0x72be_5d74,
    0x80de_b1fe,
    0x9bdc_06a7,
    0xc19b_f174,
    0xe49b_69c1,
    0xefbe_4786,
    0x0fc1_9dc6,
    0x240c_a1cc,
    0x2de9_2c6f,
    0x4a74_84aa,
    0x5cb0_a9dc,
    0x76f9_88da,
    0x983e_5152,
    0xa831_c66d,
    0xb003_27c8,
    0xbf59_7fc7,
    0xc6e0_0bf3,
    0xd5a7_9147,
    0x06ca_6351,
    0x1429_2967,
    0x27b7_0a85,
    0x2e1b_2138,
    0x4d2c_6dfc,
    0x5338_0d13,
    0x650a_7354,
    0x766a_0abb,
    0x81c2_c92e,
    0x9272_2c85,
    0xa2bf_e8a1,
    0xa81a_664b,
    0xc24b_8b70,
    0xc76c_51a3,
    0xd192_e819,
    0xd699_0624,
    0xf40e_3585,
    0x106a_a070,
    0x19a4_c116,
    0x1e37_6c08,
    0x2748_774c,
    0x34b0_bcb5,
    0x391c_0cb3,
    0x4ed8_aa4a,
    0x5b9c_ca4f,
    0x682e_6ff3,
    0x748f_82ee,
    0x78a5_636f,
    0x84c8_7814,
    0x8cc7_0208,
    0x90be_fffa,
    0xa450_6ceb,
    0xbef9_a3f7,
    0xc671_78f2,
];

/// How often (in nonces) the loop looks at the stop flag.
const STOP_CHECK_INTERVAL: u64 = 4096;

/// A sha256d implementation for the nonce loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Portable: the `sha2` crate's compression function on the midstate.
    Soft,
    /// x86 SHA extensions, several nonces interleaved.
    ShaNi,
    /// x86 AVX2, eight nonces per batch.
    Avx2,
    /// x86 AVX-512 (F and BW), sixteen nonces per batch.
    Avx512,
}

/// The backend asked for is not supported by this CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backend {0} is not supported by this CPU")]
pub struct UnsupportedBackend(pub Backend);

impl Backend {
    /// Every backend, fastest first on CPUs that have them all (measured with `bench`).
    pub const ALL: [Self; 4] = [Self::Avx512, Self::ShaNi, Self::Avx2, Self::Soft];

    /// Returns the name used by `--backend` and in reports.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::ShaNi => "sha-ni",
            Self::Avx2 => "avx2",
            Self::Avx512 => "avx512",
        }
    }

    /// Returns true if this CPU can run the backend.
    #[must_use]
    pub fn is_supported(self) -> bool {
        match self {
            Self::Soft => true,
            #[cfg(target_arch = "x86_64")]
            Self::ShaNi => x86::has_sha_ni(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx2 => x86::has_avx2(),
            #[cfg(target_arch = "x86_64")]
            Self::Avx512 => x86::has_avx512(),
            #[cfg(not(target_arch = "x86_64"))]
            Self::ShaNi | Self::Avx2 | Self::Avx512 => false,
        }
    }

    /// Returns the backends this CPU supports, fastest first.
    #[must_use]
    pub fn supported() -> Vec<Self> {
        Self::ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    /// Returns the fastest backend this CPU supports.
    #[must_use]
    pub fn detect() -> Self {
        Self::ALL
            .into_iter()
            .find(|b| b.is_supported())
            .unwrap_or(Self::Soft)
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| format!("unknown backend {s:?} (soft, sha-ni, avx2, avx512)"))
    }
}

/// A sha256d message whose last 64-byte block varies in one 32-bit little-endian field, word
/// `VAR` of the block (word 3 of a header's second block: the nonce; word 6 of a stake
/// kernel: the timestamp): the state before that block and the padded block, from which every
/// backend scans the field's values.
#[derive(Debug, Clone)]
struct Sweep<const VAR: usize> {
    midstate: [u32; 8],
    block: [u8; 64],
}

impl<const VAR: usize> Sweep<VAR> {
    /// The final SHA-256 state of sha256d with `value` in the field (portable code).
    #[inline]
    fn state(&self, value: u32) -> [u32; 8] {
        let mut block = self.block;
        block[4 * VAR..4 * VAR + 4].copy_from_slice(&value.to_le_bytes());
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

    /// sha256d with `value` in the field, as 32 bytes in internal order.
    fn digest(&self, value: u32) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, word) in out.chunks_exact_mut(4).zip(self.state(value)) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    /// The first value in `start..end` (`end ≤ 2^32`) that is a candidate (below) whose
    /// digest `accept` takes: each candidate is hashed once more, portably, and checked.
    fn find(
        &self,
        backend: Backend,
        (mut start, end): (u64, u64),
        top: u32,
        accept: impl Fn(u32, [u8; 32]) -> bool,
    ) -> Option<u32> {
        while let Some(value) = self.candidate(backend, start, end, top) {
            if accept(value, self.digest(value)) {
                return Some(value);
            }
            start = u64::from(value) + 1;
        }
        None
    }

    /// The first value in `start..end` (`end ≤ 2^32`) whose hash has a most significant
    /// 32-bit word at most `top`, from `backend`. The digest's last word, byte-swapped, is the
    /// most significant 32 bits of the hash read as a little-endian number.
    fn candidate(&self, backend: Backend, start: u64, end: u64, top: u32) -> Option<u32> {
        #[cfg(target_arch = "x86_64")]
        let input = || {
            let block = std::array::from_fn(|i| {
                u32::from_be_bytes(self.block[4 * i..4 * i + 4].try_into().expect("4 bytes"))
            });
            debug_assert!(x86::padding_holds(&block, VAR));
            x86::ScanInput {
                midstate: self.midstate,
                block,
                target_top: top,
            }
        };
        match backend {
            Backend::Soft => (start..end)
                .map(|v| v as u32)
                .find(|v| self.state(*v)[7].swap_bytes() <= top),
            #[cfg(target_arch = "x86_64")]
            Backend::ShaNi => x86::scan_sha_ni::<VAR>(&input(), start, end),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86::scan_avx2::<VAR>(&input(), start, end),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => x86::scan_avx512::<VAR>(&input(), start, end),
            #[cfg(not(target_arch = "x86_64"))]
            Backend::ShaNi | Backend::Avx2 | Backend::Avx512 => {
                Self::candidate(self, Backend::Soft, start, end, top)
            }
        }
    }
}

/// A header prepared for nonce search: its midstate, its padded second block, the target and
/// the backend that will hash it.
#[derive(Debug, Clone)]
pub struct PowJob {
    sweep: Sweep<3>,
    target: Target,
    target_top: u32,
    backend: Backend,
}

/// The outcome of scanning a nonce range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scan {
    /// The first nonce in the range whose hash meets the target, if one was found before the
    /// range ended or the stop flag was raised.
    pub found: Option<u32>,
    /// How many nonces were hashed (up to and including the one found).
    pub hashes: u64,
}

impl PowJob {
    /// Prepares `header` (its nonce is ignored) for a search against `target` with the
    /// fastest backend this CPU supports.
    #[must_use]
    pub fn new(header: &Header, target: Target) -> Self {
        let bytes = header.to_bytes();
        let mut midstate = IV;
        let first: [u8; 64] = bytes[..64].try_into().expect("header has 80 bytes");
        compress256(&mut midstate, &[first]);
        let mut block = [0u8; 64];
        block[..16].copy_from_slice(&bytes[64..80]);
        block[16] = 0x80;
        // Message length: 80 bytes = 640 bits, big-endian in the last 8 bytes.
        block[56..64].copy_from_slice(&640u64.to_be_bytes());
        let target_top = (target.to_limbs()[3] >> 32) as u32;
        Self {
            sweep: Sweep { midstate, block },
            target,
            target_top,
            backend: Backend::detect(),
        }
    }

    /// Returns the job with another backend.
    ///
    /// # Errors
    /// [`UnsupportedBackend`] when this CPU cannot run it.
    pub fn with_backend(mut self, backend: Backend) -> Result<Self, UnsupportedBackend> {
        if !backend.is_supported() {
            return Err(UnsupportedBackend(backend));
        }
        self.backend = backend;
        Ok(self)
    }

    /// Returns the backend that hashes this job.
    #[must_use]
    pub const fn backend(&self) -> Backend {
        self.backend
    }

    /// Returns the target this job searches for.
    #[must_use]
    pub const fn target(&self) -> Target {
        self.target
    }

    /// Returns sha256d of the header with `nonce`, as 32 bytes in internal order (portable
    /// code, whatever the backend).
    #[must_use]
    pub fn hash_nonce(&self, nonce: u32) -> [u8; 32] {
        self.sweep.digest(nonce)
    }

    /// Hashes the nonces in `range` (clamped to `0..=u32::MAX`) and returns the first that
    /// meets the target. Calls `stop` every few thousand nonces and returns early, with
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
            let meets = |_, hash| Target::from_le_bytes(hash) <= self.target;
            if let Some(found) =
                self.sweep
                    .find(self.backend, (nonce, batch_end), self.target_top, meets)
            {
                return Scan {
                    found: Some(found),
                    hashes: u64::from(found) + 1 - range.start,
                };
            }
            nonce = batch_end;
        }
        Scan {
            found: None,
            hashes: nonce.saturating_sub(range.start),
        }
    }
}

/// A stake kernel prepared for search over its timestamp: the 24 bytes before the time
/// (stake modifier, the staked output's block time, transaction position, transaction time
/// and output index) in a padded one-block message, and the backend that will hash it.
///
/// A kernel is sha256d of 28 bytes: two compressions per timestamp, like a nonce. Only the
/// last field varies, so the kernels precompute the six rounds before it.
#[derive(Debug, Clone)]
pub struct KernelJob {
    sweep: Sweep<6>,
    backend: Backend,
}

impl KernelJob {
    /// Prepares the kernel whose first 24 bytes are `prefix` (its layout: `pos::KernelInput`),
    /// to be hashed by `backend`.
    ///
    /// # Errors
    /// [`UnsupportedBackend`] when this CPU cannot run it.
    pub fn new(prefix: &[u8; 24], backend: Backend) -> Result<Self, UnsupportedBackend> {
        if !backend.is_supported() {
            return Err(UnsupportedBackend(backend));
        }
        let mut block = [0u8; 64];
        block[..24].copy_from_slice(prefix);
        block[28] = 0x80;
        // Message length: 28 bytes = 224 bits.
        block[56..64].copy_from_slice(&224u64.to_be_bytes());
        Ok(Self {
            sweep: Sweep {
                midstate: IV,
                block,
            },
            backend,
        })
    }

    /// Returns sha256d of the kernel at `time`, 32 bytes in internal order (portable code,
    /// whatever the backend).
    #[must_use]
    pub fn hash(&self, time: u32) -> [u8; 32] {
        self.sweep.digest(time)
    }

    /// Returns the first time in `times` (clamped to `0..=u32::MAX`) whose kernel hash has a
    /// most significant 32-bit word (of the hash read as a little-endian number) at most `top`
    /// — a candidate — and whose hash `accept(time, hash)` takes (the caller's full threshold).
    #[must_use]
    pub fn find(
        &self,
        times: Range<u64>,
        top: u32,
        accept: impl Fn(u32, [u8; 32]) -> bool,
    ) -> Option<u32> {
        let end = times.end.min(1 << 32);
        if times.start >= end {
            return None;
        }
        self.sweep
            .find(self.backend, (times.start, end), top, accept)
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
    fn every_backend_finds_the_real_nonce() {
        let header = Header::from_hex(BLOCK_125552).unwrap();
        let target = header.bits.to_target().unwrap();
        for backend in Backend::supported() {
            let job = PowJob::new(&header, target).with_backend(backend).unwrap();
            let n = u64::from(header.nonce);
            let scan = job.scan(n - 1000..n + 1000, || false);
            assert_eq!(scan.found, Some(header.nonce), "{backend}");
            assert_eq!(scan.hashes, 1001, "{backend}");
        }
    }

    #[test]
    fn scan_honours_stop_and_range_end() {
        let header = Header::from_hex(BLOCK_125552).unwrap();
        for backend in Backend::supported() {
            let job = PowJob::new(&header, Target::ZERO)
                .with_backend(backend)
                .unwrap();
            assert_eq!(job.scan(0..100_000, || true).hashes, 0);
            let near_end = (1u64 << 32) - 10;
            let scan = job.scan(near_end..u64::MAX, || false);
            assert_eq!(
                scan,
                Scan {
                    found: None,
                    hashes: 10
                },
                "{backend}"
            );
        }
    }

    #[test]
    fn backend_names_roundtrip() {
        for b in Backend::ALL {
            assert_eq!(b.name().parse::<Backend>(), Ok(b));
        }
        assert!("sse".parse::<Backend>().is_err());
        assert!(Backend::Soft.is_supported());
        assert_eq!(Backend::supported().last(), Some(&Backend::Soft));
    }
}
