//! Every hash backend this CPU supports against the portable reference: random headers,
//! targets and nonce ranges, the real headers of tests/vectors, and nonce boundaries (0,
//! 2^32 − 1, ranges that start or end inside a batch of lanes); and the same for stake
//! kernels, whose timestamp is the field that varies.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::hash::{Backend, KernelJob, PowJob};
use chainsmith::pos::KernelInput;
use chainsmith::primitives::hash::sha256d;
use chainsmith::primitives::hash::{BlockHash, MerkleRoot};
use chainsmith::{CompactTarget, Header, Target};
use proptest::prelude::*;

fn header(prev: [u8; 32], merkle: [u8; 32], time: u32, bits: u32) -> Header {
    Header {
        version: 0x2000_0000,
        prev_hash: BlockHash::from_byte_array(prev),
        merkle_root: MerkleRoot::from_byte_array(merkle),
        time,
        bits: CompactTarget::from_consensus(bits),
        nonce: 0,
    }
}

/// A target whose top 32 bits are `top` and whose lower bits are `low` repeated, so that
/// candidates (top word ≤ target's) are common and the full comparison matters.
fn target(top: u32, low: u64) -> Target {
    let mut be = [0u8; 32];
    be[..4].copy_from_slice(&top.to_be_bytes());
    for chunk in be[4..].chunks_mut(8) {
        let n = chunk.len();
        chunk.copy_from_slice(&low.to_be_bytes()[..n]);
    }
    Target::from_be_bytes(be)
}

fn compare_all(h: &Header, t: Target, start: u64, len: u64) {
    let reference = PowJob::new(h, t).with_backend(Backend::Soft).unwrap();
    let want = reference.scan(start..start + len, || false);
    for backend in Backend::supported() {
        let job = PowJob::new(h, t).with_backend(backend).unwrap();
        let got = job.scan(start..start + len, || false);
        assert_eq!(got, want, "{backend} on {start}..+{len}, target {t}");
    }
}

#[test]
fn reports_which_backends_this_cpu_runs() {
    let supported = Backend::supported();
    let skipped: Vec<_> = Backend::ALL
        .into_iter()
        .filter(|b| !supported.contains(b))
        .collect();
    eprintln!("hash backends tested: {supported:?}; skipped (CPU lacks them): {skipped:?}");
    assert!(supported.contains(&Backend::Soft));
    assert_eq!(Backend::detect(), supported[0]);
}

/// Ranges (start, length) that start or end inside a batch of lanes, at 0 and at 2^32.
const BOUNDARIES: [(u64, u64); 9] = [
    (0, 1),
    (0, 7),
    (1, 9),
    (3, 17),
    ((1 << 32) - 1, 1),
    ((1 << 32) - 3, 3),
    ((1 << 32) - 9, 9),
    ((1 << 32) - 16, 16),
    ((1 << 32) - 17, 17),
];

#[test]
fn nonce_boundaries_agree() {
    let h = header([3; 32], [4; 32], 1_700_000_000, 0x207f_ffff);
    // One nonce in about four passes: many candidates, hits at every lane position.
    let t = target(0x4000_0000, 0x1234_5678_9abc_def0);
    let top = 1u64 << 32;
    for (start, len) in BOUNDARIES {
        compare_all(&h, t, start, len);
    }
    // A target no hash meets: every backend hashes the whole range, up to 2^32 − 1.
    for backend in Backend::supported() {
        let job = PowJob::new(&h, Target::ZERO).with_backend(backend).unwrap();
        let scan = job.scan(top - 13..top + 5, || false);
        assert_eq!((scan.found, scan.hashes), (None, 13), "{backend}");
    }
}

#[test]
fn real_headers_agree_on_every_backend() {
    let data: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/vectors/headers.json"
        ))
        .unwrap(),
    )
    .unwrap();
    for v in data["headers"].as_array().unwrap() {
        let h = Header::from_hex(v["header_hex"].as_str().unwrap()).unwrap();
        let t = h.bits.to_target().unwrap();
        let n = u64::from(h.nonce);
        for backend in Backend::supported() {
            let job = PowJob::new(&h, t).with_backend(backend).unwrap();
            let scan = job.scan(n.saturating_sub(37)..n + 37, || false);
            // Regtest's target is met by about half of all nonces; the others are real.
            let first = (n.saturating_sub(37)..=n)
                .find(|k| t >= Target::from_le_bytes(job.hash_nonce(*k as u32)))
                .unwrap();
            assert_eq!(scan.found, Some(first as u32), "{backend} {}", v["height"]);
        }
    }
}

/// Every candidate time of `times` (top word of the hash ≤ `top`), in order, from `backend`.
fn kernel_candidates(prefix: &[u8; 24], backend: Backend, times: (u64, u64), top: u32) -> Vec<u32> {
    let job = KernelJob::new(prefix, backend).unwrap();
    let mut out = Vec::new();
    let mut from = times.0;
    while let Some(t) = job.find(from..times.1, top, |_, _| true) {
        out.push(t);
        from = u64::from(t) + 1;
    }
    out
}

fn compare_kernels(prefix: &[u8; 24], start: u64, len: u64, top: u32) {
    let times = (start, start + len);
    // The reference, from first principles: sha256d of the 28 bytes, top word read as the
    // most significant 32 bits of a little-endian number.
    let want: Vec<u32> = (start..(start + len).min(1 << 32))
        .map(|t| t as u32)
        .filter(|t| {
            let mut msg = prefix.to_vec();
            msg.extend_from_slice(&t.to_le_bytes());
            u32::from_le_bytes(sha256d(&msg)[28..].try_into().unwrap()) <= top
        })
        .collect();
    for backend in Backend::supported() {
        let got = kernel_candidates(prefix, backend, times, top);
        assert_eq!(got, want, "{backend} on {start}..+{len}, top {top:#x}");
    }
}

#[test]
fn kernel_hash_is_sha256d_of_the_28_bytes() {
    let k = KernelInput {
        modifier: 0x0123_4567_89ab_cdef,
        block_time_from: 1_400_000_000,
        tx_offset: 81,
        tx_time: 1_399_999_990,
        vout: 1,
        time: 1_402_678_400,
    };
    let prefix: [u8; 24] = k.preimage()[..24].try_into().unwrap();
    let job = KernelJob::new(&prefix, Backend::Soft).unwrap();
    assert_eq!(job.hash(k.time), k.hash());
    assert_eq!(job.hash(k.time), sha256d(&k.preimage()));
}

#[test]
fn kernel_boundaries_agree() {
    let prefix = [7u8; 24];
    let top = 1u64 << 32;
    // Past the end of the times, too: the scan stops at 2^32 − 1.
    let more = [(1_700_000_000, 33), (top - 5, 40)];
    for (start, len) in BOUNDARIES.into_iter().chain(more) {
        // One hash in four, one in 2^30, and every hash.
        for t in [0x3fff_ffff, 3, u32::MAX] {
            compare_kernels(&prefix, start, len, t);
        }
    }
    for backend in Backend::supported() {
        let job = KernelJob::new(&prefix, backend).unwrap();
        assert_eq!(job.find(10..10, u32::MAX, |_, _| true), None, "{backend}");
        assert_eq!(
            job.find(top..top + 9, u32::MAX, |_, _| true),
            None,
            "{backend}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn kernel_backends_agree_with_the_reference(
        prefix in any::<[u8; 24]>(), start in 0u64..(1 << 32), len in 0u64..200,
        shift in 0u32..32, top in any::<u32>(),
    ) {
        let start = start.min((1 << 32) - len);
        compare_kernels(&prefix, start, len, top >> shift);
    }

    #[test]
    fn backends_agree_with_the_reference(
        prev in any::<[u8; 32]>(), merkle in any::<[u8; 32]>(), time in any::<u32>(),
        bits in any::<u32>(), top in any::<u32>(), low in any::<u64>(),
        start in 0u64..(1 << 32), len in 0u64..200,
    ) {
        let h = header(prev, merkle, time, bits);
        let start = start.min((1 << 32) - len);
        compare_all(&h, target(top, low), start, len);
    }
}
