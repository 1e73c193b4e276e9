//! x86-64 nonce-search kernels: SHA-NI with several nonces in flight, AVX2 with eight nonces
//! in the lanes of a 256-bit register, and AVX-512 with sixteen in a 512-bit register (with
//! native rotates and three-input logic, `vprord` and `vpternlogd`). This module holds all of the crate's `unsafe`
//! code: calling a `#[target_feature]` function is only sound on a CPU that has the feature,
//! which the callers here check with `is_x86_feature_detected!` first.
//!
//! The kernels share the same arithmetic shortcuts, all nonce-independent work done once per
//! call:
//! * the header's first 64 bytes are the caller's midstate;
//! * in the header's second block only word 3 (the nonce) varies: words 0–2 (merkle tail, time,
//!   bits) and the padding words 4–15 are fixed, so the first rounds and every `K + W` of the
//!   padding rounds are precomputed;
//! * the same holds for a stake kernel, a one-block message from the IV whose word 6 (the
//!   timestamp) varies: its rounds 0–5 are precomputed. The kernels are generic over the
//!   varying word (`VAR`: 3 or 6), and the padding after it is a constant of that choice;
//! * the second SHA-256 has fixed padding words 8–15;
//! * only the most significant 32 bits of the hash are needed to reject a nonce: that is word 7
//!   of the final state, which is settled after round 60, so the last rounds are skipped. The
//!   kernels return *candidates* (top word ≤ the target's top word); the caller checks a
//!   candidate against the full target.

#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_cvtsi128_si32, _mm_insert_epi32,
    _mm_set_epi32, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi32,
};

use super::{IV, K};

/// Nonces in flight in the SHA-NI kernel. Two measured fastest on Zen 4 (more lanes spill the
/// sixteen XMM registers: 4 lanes ran ~30 % slower, 3 lanes ~15 %).
pub(super) const SHA_NI_LANES: usize = 2;

/// Whether this CPU has the SHA extensions and the SSE/AVX levels the kernel uses (AVX gives
/// the non-SHA instructions their three-operand VEX forms: fewer register copies).
pub(super) fn has_sha_ni() -> bool {
    is_x86_feature_detected!("sha")
        && is_x86_feature_detected!("avx")
        && is_x86_feature_detected!("sse2")
        && is_x86_feature_detected!("ssse3")
        && is_x86_feature_detected!("sse4.1")
}

/// Whether this CPU has AVX2.
pub(super) fn has_avx2() -> bool {
    is_x86_feature_detected!("avx2")
}

/// Whether this CPU has AVX-512 F (the 32-bit lane arithmetic, rotates, ternary logic) and BW
/// (the byte shuffle that swaps each lane's byte order).
pub(super) fn has_avx512() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw")
}

/// The fixed inputs of a scan: a SHA-256 state and a padded 64-byte block in which one word
/// (`VAR` in the kernels) takes the values scanned. Words after `VAR` must be the padding the
/// kernels assume ([`padding_holds`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct ScanInput {
    /// SHA-256 state before the block (the IV when the message is one block).
    pub(super) midstate: [u32; 8],
    /// The block as big-endian words; word `VAR` is ignored.
    pub(super) block: [u32; 16],
    /// Candidates have a most significant 32-bit word of the hash at most this.
    pub(super) target_top: u32,
}

/// The message length, in bits, of a message whose last block ends with word `var`: one
/// earlier block when the variable word is the fourth (an 80-byte header), none when it is
/// the seventh (a 28-byte stake kernel).
const fn message_bits(var: usize) -> u32 {
    match var {
        3 => 640,
        6 => 224,
        _ => panic!("no kernel for this layout"),
    }
}

/// Whether `block` holds, after word `var`, the padding the kernels hard-wire: `0x80` then
/// zeros then the message length.
pub(super) fn padding_holds(block: &[u32; 16], var: usize) -> bool {
    block[var + 1] == 0x8000_0000
        && block[var + 2..15].iter().all(|w| *w == 0)
        && block[15] == message_bits(var)
}

/// Scans `start..end` (`end ≤ 2^32`) with SHA-NI and returns the first candidate value of the
/// varying word (a nonce, or a stake kernel's timestamp).
///
/// # Panics
/// If the CPU lacks SHA-NI (the caller checks [`has_sha_ni`] when choosing the backend).
pub(super) fn scan_sha_ni<const VAR: usize>(
    input: &ScanInput,
    start: u64,
    end: u64,
) -> Option<u32> {
    assert!(
        has_sha_ni(),
        "the SHA-NI backend needs a CPU with SHA extensions"
    );
    // SAFETY: the CPU has sha, sse2, ssse3, sse4.1 and avx, checked just above.
    unsafe { sha_ni_scan::<SHA_NI_LANES, VAR>(input, start, end) }
}

/// Scans `start..end` (`end ≤ 2^32`) with AVX2 and returns the first candidate value of the
/// varying word (a nonce, or a stake kernel's timestamp).
///
/// # Panics
/// If the CPU lacks AVX2 (the caller checks [`has_avx2`] when choosing the backend).
pub(super) fn scan_avx2<const VAR: usize>(input: &ScanInput, start: u64, end: u64) -> Option<u32> {
    assert!(has_avx2(), "the AVX2 backend needs a CPU with AVX2");
    // SAFETY: the CPU has avx2, checked just above.
    unsafe { avx2_scan::<VAR>(input, start, end) }
}

/// Scans `start..end` (`end ≤ 2^32`) with AVX-512 and returns the first candidate value of the
/// varying word (a nonce, or a stake kernel's timestamp).
///
/// # Panics
/// If the CPU lacks AVX-512 F and BW (the caller checks [`has_avx512`] when choosing the
/// backend).
pub(super) fn scan_avx512<const VAR: usize>(
    input: &ScanInput,
    start: u64,
    end: u64,
) -> Option<u32> {
    assert!(
        has_avx512(),
        "the AVX-512 backend needs a CPU with AVX-512 F and BW"
    );
    // SAFETY: the CPU has avx512f and avx512bw, checked just above.
    unsafe { avx512_scan::<VAR>(input, start, end) }
}

/// The lowest lane `l < valid` whose top word passes, as a nonce.
fn first_candidate(
    top_words: impl Iterator<Item = u32>,
    base: u64,
    valid: u64,
    top: u32,
) -> Option<u32> {
    top_words
        .zip(0..valid)
        .find(|(h7, _)| h7.swap_bytes() <= top)
        .map(|(_, l)| (base + l) as u32)
}

// ---------------------------------------------------------------------------------------------
// SHA-NI
// ---------------------------------------------------------------------------------------------

/// `K[4i..4i+4]` as one register (lane 0 = `K[4i]`).
#[inline]
#[target_feature(enable = "sse2")]
fn k4(i: usize) -> __m128i {
    _mm_set_epi32(
        K[4 * i + 3] as i32,
        K[4 * i + 2] as i32,
        K[4 * i + 1] as i32,
        K[4 * i] as i32,
    )
}

/// Four message words as one register (lane 0 = `w[0]`).
#[inline]
#[target_feature(enable = "sse2")]
fn words4(w: [u32; 4]) -> __m128i {
    _mm_set_epi32(w[3] as i32, w[2] as i32, w[1] as i32, w[0] as i32)
}

/// A SHA-256 state in the ABEF/CDGH register layout that `sha256rnds2` works on.
#[inline]
#[target_feature(enable = "sse2,ssse3,sse4.1")]
fn to_abef_cdgh(s: &[u32; 8]) -> (__m128i, __m128i) {
    let abef = _mm_set_epi32(s[0] as i32, s[1] as i32, s[4] as i32, s[5] as i32);
    let cdgh = _mm_set_epi32(s[2] as i32, s[3] as i32, s[6] as i32, s[7] as i32);
    (abef, cdgh)
}

/// Four rounds on every lane; `$wk` holds `W + K` for the four rounds, per lane.
macro_rules! rounds4 {
    ($abef:ident, $cdgh:ident, $wk:expr) => {{
        let wk = $wk;
        for l in 0..wk.len() {
            $cdgh[l] = _mm_sha256rnds2_epu32($cdgh[l], $abef[l], wk[l]);
        }
        for l in 0..wk.len() {
            $abef[l] = _mm_sha256rnds2_epu32($abef[l], $cdgh[l], _mm_shuffle_epi32(wk[l], 0x0E));
        }
    }};
}

/// Message words `4i..4i+4` (`i ≥ 4`) into `$m[i % 4]`, from the sixteen before them held in
/// the ring `$m`, on every lane; then four rounds with them (two, for the stopping group).
macro_rules! scheduled_group {
    ($abef:ident, $cdgh:ident, $m:ident, $i:literal) => {{
        scheduled_group!(@words $m, $i);
        let k = k4($i);
        rounds4!($abef, $cdgh, $m[$i % 4].map(|x| _mm_add_epi32(x, k)));
    }};
    ($abef:ident, $cdgh:ident, $m:ident, $i:literal, stop) => {{
        scheduled_group!(@words $m, $i);
        let k = k4($i);
        for l in 0..$m[0].len() {
            $cdgh[l] = _mm_sha256rnds2_epu32($cdgh[l], $abef[l], _mm_add_epi32($m[$i % 4][l], k));
        }
    }};
    (@words $m:ident, $i:literal) => {{
        for l in 0..$m[0].len() {
            let t = _mm_sha256msg1_epu32($m[$i % 4][l], $m[($i + 1) % 4][l]);
            let t = _mm_add_epi32(t, _mm_alignr_epi8($m[($i + 3) % 4][l], $m[($i + 2) % 4][l], 4));
            $m[$i % 4][l] = _mm_sha256msg2_epu32(t, $m[($i + 3) % 4][l]);
        }
    }};
}

/// Word `VAR` of `m` replaced by `value` (`VAR % 4` is 2 or 3: the first two rounds of its
/// group use only fixed words).
#[inline]
#[target_feature(enable = "sse2,sse4.1")]
fn with_word<const VAR: usize>(m: __m128i, value: u32) -> __m128i {
    match VAR % 4 {
        2 => _mm_insert_epi32::<2>(m, value as i32),
        3 => _mm_insert_epi32::<3>(m, value as i32),
        _ => unreachable!("the varying word is the third or fourth of its group"),
    }
}

#[target_feature(enable = "sha,sse2,ssse3,sse4.1,avx")]
fn sha_ni_scan<const L: usize, const VAR: usize>(
    input: &ScanInput,
    start: u64,
    end: u64,
) -> Option<u32> {
    const {
        assert!(
            VAR % 4 >= 2,
            "rounds 4g and 4g+1 of the varying word's group are fixed"
        )
    };
    let (mid_abef, mid_cdgh) = to_abef_cdgh(&input.midstate);
    let (iv_abef, iv_cdgh) = to_abef_cdgh(&IV);
    let group = |g: usize| {
        let b = &input.block;
        words4([b[4 * g], b[4 * g + 1], b[4 * g + 2], b[4 * g + 3]])
    };
    let m_fixed: [__m128i; 4] = std::array::from_fn(group);
    let wk_fixed: [__m128i; 4] = std::array::from_fn(|g| _mm_add_epi32(m_fixed[g], k4(g)));
    // The groups before the varying word's, and the first two rounds of its own, do not
    // depend on it: run them once.
    let g = VAR / 4;
    let (mut pre_abef, mut pre_cdgh) = (mid_abef, mid_cdgh);
    for wk in &wk_fixed[..g] {
        pre_cdgh = _mm_sha256rnds2_epu32(pre_cdgh, pre_abef, *wk);
        pre_abef = _mm_sha256rnds2_epu32(pre_abef, pre_cdgh, _mm_shuffle_epi32(*wk, 0x0E));
    }
    let half = _mm_sha256rnds2_epu32(pre_cdgh, pre_abef, wk_fixed[g]);
    // Second hash: padding words 8-15 (0x80, length 256 bits).
    let zero = words4([0, 0, 0, 0]);
    let pad8 = words4([0x8000_0000, 0, 0, 0]);
    let pad12 = words4([0, 0, 0, 256]);
    let wk_pad2 = [_mm_add_epi32(pad8, k4(2)), _mm_add_epi32(pad12, k4(3))];

    let mut base = start;
    while base < end {
        // First compression: rounds 4g+2 to 63.
        let mg: [__m128i; L] = std::array::from_fn(|l| {
            let value = (base + l as u64) as u32;
            with_word::<VAR>(m_fixed[g], value.swap_bytes())
        });
        let mut abef: [__m128i; L] = std::array::from_fn(|l| {
            let wk = _mm_shuffle_epi32(_mm_add_epi32(mg[l], k4(g)), 0x0E);
            _mm_sha256rnds2_epu32(pre_abef, half, wk)
        });
        let mut cdgh = [half; L];
        for wk in &wk_fixed[g + 1..] {
            rounds4!(abef, cdgh, [*wk; L]);
        }
        let mut m: [[__m128i; L]; 4] =
            std::array::from_fn(|i| if i == g { mg } else { [m_fixed[i]; L] });
        scheduled_group!(abef, cdgh, m, 4);
        scheduled_group!(abef, cdgh, m, 5);
        scheduled_group!(abef, cdgh, m, 6);
        scheduled_group!(abef, cdgh, m, 7);
        scheduled_group!(abef, cdgh, m, 8);
        scheduled_group!(abef, cdgh, m, 9);
        scheduled_group!(abef, cdgh, m, 10);
        scheduled_group!(abef, cdgh, m, 11);
        scheduled_group!(abef, cdgh, m, 12);
        scheduled_group!(abef, cdgh, m, 13);
        scheduled_group!(abef, cdgh, m, 14);
        scheduled_group!(abef, cdgh, m, 15);
        // Digest words as the second hash's message: [H0..H3] and [H4..H7].
        let mut h = [[zero; L], [zero; L], [pad8; L], [pad12; L]];
        for l in 0..L {
            let feba = _mm_shuffle_epi32(_mm_add_epi32(abef[l], mid_abef), 0x1B);
            let dchg = _mm_shuffle_epi32(_mm_add_epi32(cdgh[l], mid_cdgh), 0xB1);
            h[0][l] = _mm_blend_epi16(feba, dchg, 0xF0);
            h[1][l] = _mm_alignr_epi8(dchg, feba, 8);
        }
        // Second compression, from the IV, stopped after round 61.
        let mut abef2 = [iv_abef; L];
        let mut cdgh2 = [iv_cdgh; L];
        rounds4!(abef2, cdgh2, h[0].map(|x| _mm_add_epi32(x, k4(0))));
        rounds4!(abef2, cdgh2, h[1].map(|x| _mm_add_epi32(x, k4(1))));
        rounds4!(abef2, cdgh2, [wk_pad2[0]; L]);
        rounds4!(abef2, cdgh2, [wk_pad2[1]; L]);
        scheduled_group!(abef2, cdgh2, h, 4);
        scheduled_group!(abef2, cdgh2, h, 5);
        scheduled_group!(abef2, cdgh2, h, 6);
        scheduled_group!(abef2, cdgh2, h, 7);
        scheduled_group!(abef2, cdgh2, h, 8);
        scheduled_group!(abef2, cdgh2, h, 9);
        scheduled_group!(abef2, cdgh2, h, 10);
        scheduled_group!(abef2, cdgh2, h, 11);
        scheduled_group!(abef2, cdgh2, h, 12);
        scheduled_group!(abef2, cdgh2, h, 13);
        scheduled_group!(abef2, cdgh2, h, 14);
        scheduled_group!(abef2, cdgh2, h, 15, stop);
        // After rounds 60-61 the ABEF register's F lane holds e after round 60, which rounds
        // 61-63 shift into h: the final word 7 is it plus IV[7].
        let valid = (end - base).min(L as u64);
        let tops = cdgh2
            .iter()
            .map(|x| (_mm_cvtsi128_si32(*x) as u32).wrapping_add(IV[7]));
        if let Some(n) = first_candidate(tops, base, valid, input.target_top) {
            return Some(n);
        }
        base += L as u64;
    }
    None
}

// ---------------------------------------------------------------------------------------------
// AVX2 and AVX-512: one kernel body over two lane widths
// ---------------------------------------------------------------------------------------------

fn scalar_round(s: &mut [u32; 8], kw: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
    let ch = (e & f) ^ (!e & g);
    let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(kw);
    let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
    let maj = (a & b) | (c & (a | b));
    *s = [
        t1.wrapping_add(s0).wrapping_add(maj),
        a,
        b,
        c,
        d.wrapping_add(t1),
        e,
        f,
        g,
    ];
}

/// Eight 32-bit lanes in a 256-bit register: AVX2 has no rotate or three-input logic, so
/// rotates are two shifts and an OR, and Ch and Maj take three and four operations.
mod v8 {
    use std::arch::x86_64::{
        __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_andnot_si256, _mm256_castsi256_ps,
        _mm256_cmpeq_epi32, _mm256_min_epu32, _mm256_movemask_ps, _mm256_or_si256, _mm256_set_epi8,
        _mm256_set1_epi32, _mm256_setr_epi32, _mm256_shuffle_epi8, _mm256_slli_epi32,
        _mm256_srli_epi32, _mm256_xor_si256,
    };

    pub(super) type V = __m256i;
    pub(super) const LANES: usize = 8;

    macro_rules! ror {
        ($x:expr, $n:literal) => {
            _mm256_or_si256(
                _mm256_srli_epi32::<$n>($x),
                _mm256_slli_epi32::<{ 32 - $n }>($x),
            )
        };
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn splat(x: u32) -> V {
        _mm256_set1_epi32(x as i32)
    }

    /// Lane `i` holds `i`.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn lane_index() -> V {
        _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn add(a: V, b: V) -> V {
        _mm256_add_epi32(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm256_xor_si256(_mm256_xor_si256(a, b), c)
    }

    /// Σ0.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn big_sigma0(a: V) -> V {
        xor3(ror!(a, 2), ror!(a, 13), ror!(a, 22))
    }

    /// Σ1.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn big_sigma1(e: V) -> V {
        xor3(ror!(e, 6), ror!(e, 11), ror!(e, 25))
    }

    /// σ0.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn small_sigma0(w: V) -> V {
        xor3(ror!(w, 7), ror!(w, 18), _mm256_srli_epi32::<3>(w))
    }

    /// σ1.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn small_sigma1(w: V) -> V {
        xor3(ror!(w, 17), ror!(w, 19), _mm256_srli_epi32::<10>(w))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn ch(e: V, f: V, g: V) -> V {
        _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g))
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn maj(a: V, b: V, c: V) -> V {
        _mm256_or_si256(
            _mm256_and_si256(a, b),
            _mm256_and_si256(c, _mm256_or_si256(a, b)),
        )
    }

    /// Reverses the bytes of each lane.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn swap_bytes(x: V) -> V {
        let order = _mm256_set_epi8(
            12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4,
            5, 6, 7, 0, 1, 2, 3,
        );
        _mm256_shuffle_epi8(x, order)
    }

    /// Bit `i` set if lane `i` of `x` ≤ lane `i` of `top` (unsigned).
    #[inline]
    #[target_feature(enable = "avx2")]
    pub(super) fn at_most(x: V, top: V) -> u32 {
        let pass = _mm256_cmpeq_epi32(_mm256_min_epu32(x, top), x);
        _mm256_movemask_ps(_mm256_castsi256_ps(pass)) as u32
    }
}

/// Sixteen 32-bit lanes in a 512-bit register, with AVX-512's rotate (`vprord`) and
/// three-input logic (`vpternlogd`: XOR3 `0x96`, Ch `0xca`, Maj `0xe8`).
mod v16 {
    use std::arch::x86_64::{
        __m512i, _mm_set_epi32, _mm512_add_epi32, _mm512_broadcast_i32x4, _mm512_cmple_epu32_mask,
        _mm512_ror_epi32, _mm512_set_epi32, _mm512_set1_epi32, _mm512_shuffle_epi8,
        _mm512_srli_epi32, _mm512_ternarylogic_epi32,
    };

    pub(super) type V = __m512i;
    pub(super) const LANES: usize = 16;

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn splat(x: u32) -> V {
        _mm512_set1_epi32(x as i32)
    }

    /// Lane `i` holds `i`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn lane_index() -> V {
        _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn add(a: V, b: V) -> V {
        _mm512_add_epi32(a, b)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn xor3(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0x96>(a, b, c)
    }

    /// Σ0.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn big_sigma0(a: V) -> V {
        xor3(
            _mm512_ror_epi32::<2>(a),
            _mm512_ror_epi32::<13>(a),
            _mm512_ror_epi32::<22>(a),
        )
    }

    /// Σ1.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn big_sigma1(e: V) -> V {
        xor3(
            _mm512_ror_epi32::<6>(e),
            _mm512_ror_epi32::<11>(e),
            _mm512_ror_epi32::<25>(e),
        )
    }

    /// σ0.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn small_sigma0(w: V) -> V {
        xor3(
            _mm512_ror_epi32::<7>(w),
            _mm512_ror_epi32::<18>(w),
            _mm512_srli_epi32::<3>(w),
        )
    }

    /// σ1.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn small_sigma1(w: V) -> V {
        xor3(
            _mm512_ror_epi32::<17>(w),
            _mm512_ror_epi32::<19>(w),
            _mm512_srli_epi32::<10>(w),
        )
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn ch(e: V, f: V, g: V) -> V {
        _mm512_ternarylogic_epi32::<0xca>(e, f, g)
    }

    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn maj(a: V, b: V, c: V) -> V {
        _mm512_ternarylogic_epi32::<0xe8>(a, b, c)
    }

    /// Reverses the bytes of each lane (the shuffle works within 128-bit lanes).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(super) fn swap_bytes(x: V) -> V {
        let order = _mm512_broadcast_i32x4(_mm_set_epi32(
            0x0c0d_0e0f,
            0x0809_0a0b,
            0x0405_0607,
            0x0001_0203,
        ));
        _mm512_shuffle_epi8(x, order)
    }

    /// Bit `i` set if lane `i` of `x` ≤ lane `i` of `top` (unsigned).
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) fn at_most(x: V, top: V) -> u32 {
        u32::from(_mm512_cmple_epu32_mask(x, top))
    }
}

/// One round; `$kw` is `K[t] + W[t]`, `$s` is `[a, b, c, d, e, f, g, h]`, `$v` a lane module.
macro_rules! round {
    ($v:ident, $s:ident, $kw:expr) => {{
        let [a, b, c, d, e, f, g, h] = $s;
        let t1 = $v::add($v::add(h, $v::big_sigma1(e)), $v::add($v::ch(e, f, g), $kw));
        let t2 = $v::add($v::big_sigma0(a), $v::maj(a, b, c));
        $s = [$v::add(t1, t2), a, b, c, $v::add(d, t1), e, f, g];
    }};
}

/// Rounds `$t…` of a compression whose message words live in the ring `$w` (`$w[t % 16]` holds
/// `W[t − 16]` until round `t ≥ 16` replaces it with `W[t]`).
/// Rounds before `$from` are skipped (a constant, so the test folds away).
macro_rules! rounds {
    ($v:ident, $s:ident, $w:ident, $from:expr; $($t:literal)*) => {$(
        if $t >= $from {
            if $t >= 16 {
                let s0 = $v::small_sigma0($w[($t + 1) % 16]);
                let s1 = $v::small_sigma1($w[($t + 14) % 16]);
                $w[$t % 16] =
                    $v::add($v::add($w[$t % 16], s0), $v::add($w[($t + 9) % 16], s1));
            }
            round!($v, $s, $v::add($w[$t % 16], $v::splat(K[$t])));
        }
    )*};
}

/// The vector kernel's body over lane module `$v`: `$v::LANES` values of word `$var` per
/// batch. The rounds before that word use only fixed words and run once, scalar; the padding
/// after it is constant, so the compiler folds and hoists everything else that does not
/// depend on the varying word (the padding words' schedule and `K + W`).
macro_rules! vector_scan {
    ($v:ident, $var:ident, $input:ident, $start:ident, $end:ident) => {{
        let mut pre = $input.midstate;
        for t in 0..$var {
            scalar_round(&mut pre, K[t].wrapping_add($input.block[t]));
        }
        let mid: [$v::V; 8] = std::array::from_fn(|i| $v::splat($input.midstate[i]));
        let pre_v: [$v::V; 8] = std::array::from_fn(|i| $v::splat(pre[i]));
        let top = $v::splat($input.target_top);
        let lane = $v::lane_index();
        let mut base = $start;
        while base < $end {
            let value = $v::add($v::splat(base as u32), lane);
            let mut w = [$v::splat(0); 16];
            for i in 0..$var {
                w[i] = $v::splat($input.block[i]);
            }
            // The varying word is a little-endian field read big-endian.
            w[$var] = $v::swap_bytes(value);
            w[$var + 1] = $v::splat(0x8000_0000);
            w[15] = $v::splat(const { message_bits($var) });
            let mut s = pre_v;
            rounds!($v, s, w, $var; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22
                23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49
                50 51 52 53 54 55 56 57 58 59 60 61 62 63);
            // Second hash over the 32-byte digest, stopped after round 60.
            let mut w2 = [$v::splat(0); 16];
            for i in 0..8 {
                w2[i] = $v::add(s[i], mid[i]);
            }
            w2[8] = $v::splat(0x8000_0000);
            w2[15] = $v::splat(256);
            let mut s2: [$v::V; 8] = std::array::from_fn(|i| $v::splat(IV[i]));
            rounds!($v, s2, w2, 0; 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22
                23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49
                50 51 52 53 54 55 56 57 58 59 60);
            // After round 60, e is what rounds 61-63 shift into h: word 7 is e + IV[7].
            let msb = $v::swap_bytes($v::add(s2[4], $v::splat(IV[7])));
            // Lanes past the end of the range do not count.
            let valid = ($end - base).min($v::LANES as u64);
            let mask = $v::at_most(msb, top) & ((1u32 << valid) - 1);
            if mask != 0 {
                return Some((base + u64::from(mask.trailing_zeros())) as u32);
            }
            base += $v::LANES as u64;
        }
        None
    }};
}

#[target_feature(enable = "avx2")]
fn avx2_scan<const VAR: usize>(input: &ScanInput, start: u64, end: u64) -> Option<u32> {
    vector_scan!(v8, VAR, input, start, end)
}

#[target_feature(enable = "avx512f,avx512bw")]
fn avx512_scan<const VAR: usize>(input: &ScanInput, start: u64, end: u64) -> Option<u32> {
    vector_scan!(v16, VAR, input, start, end)
}
