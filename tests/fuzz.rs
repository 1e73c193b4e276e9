//! Mutated chain files through verification: bit flips, overwritten and inserted bytes, cuts,
//! and duplicated, dropped or swapped lines of the golden chains of every rule. Whatever the
//! damage, verification must return (no panic, no hang: every case is timed) with a verdict
//! that is consistent: its valid prefix verifies again on its own, as `--repair` would leave it.
//!
//! CI runs `PROPTEST_CASES` cases per rule (default 64); a long campaign sets it higher, e.g.
//! `PROPTEST_CASES=20000 cargo test --release --test fuzz`.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Cursor;
use std::time::{Duration, Instant};

use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::{LineErrorKind, Replay, replay};
use proptest::prelude::*;

const GOLDEN: [&[u8]; 5] = [
    include_bytes!("golden/pow-demo.jsonl"),
    include_bytes!("golden/regtest.jsonl"),
    include_bytes!("golden/pos-demo.jsonl"),
    include_bytes!("golden/dpos-demo.jsonl"),
    include_bytes!("golden/poa-demo.jsonl"),
];

/// One way of damaging a file.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit { at: usize, bit: u8 },
    Overwrite { at: usize, byte: u8 },
    Insert { at: usize, bytes: Vec<u8> },
    Cut { at: usize },
    DuplicateLine { line: usize },
    DropLine { line: usize },
    SwapLines { a: usize, b: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Overwrite { at, byte }),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        any::<usize>().prop_map(|at| Mutation::Cut { at }),
        any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        any::<usize>().prop_map(|line| Mutation::DropLine { line }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines { a, b }),
    ]
}

fn apply(file: &[u8], m: &Mutation) -> Vec<u8> {
    let mut out = file.to_vec();
    let n = out.len();
    let mut lines: Vec<Vec<u8>> = file
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect();
    match m {
        Mutation::FlipBit { at, bit } => out[at % n] ^= 1 << bit,
        Mutation::Overwrite { at, byte } => out[at % n] = *byte,
        Mutation::Insert { at, bytes } => {
            let at = at % (n + 1);
            out.splice(at..at, bytes.iter().copied());
        }
        Mutation::Cut { at } => out.truncate(at % (n + 1)),
        Mutation::DuplicateLine { line } => {
            let l = lines[line % lines.len()].clone();
            lines.insert(line % lines.len(), l);
            out = lines.concat();
        }
        Mutation::DropLine { line } => {
            lines.remove(line % lines.len());
            out = lines.concat();
        }
        Mutation::SwapLines { a, b } => {
            let len = lines.len();
            lines.swap(a % len, b % len);
            out = lines.concat();
        }
    }
    out
}

/// The verifier's clock: after every block time in the golden files.
const NOW: u32 = 2_000_000_000;

fn verify(bytes: &[u8]) -> Replay {
    replay(LineReader::new(Cursor::new(bytes)), NOW, &mut ()).unwrap()
}

fn check(file: &[u8], m: &Mutation) {
    let bytes = apply(file, m);
    let started = Instant::now();
    let result = verify(&bytes);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{m:?} took {:?}",
        started.elapsed()
    );
    let valid = usize::try_from(result.valid_bytes).unwrap();
    assert!(valid <= bytes.len(), "{m:?}");
    let lines = bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    match &result.error {
        None => {
            // A clean verdict covers the whole file.
            assert_eq!(valid, bytes.len(), "{m:?}");
            assert_eq!(result.state.as_ref().unwrap().block_count(), lines, "{m:?}");
        }
        Some(err) => {
            assert!(err.line >= 1 && err.line <= lines.max(1), "{m:?}: {err}");
            // What `--repair` keeps verifies on its own, with the blocks the verdict counted.
            let mut kept = bytes[..valid].to_vec();
            if err.kind == LineErrorKind::MissingNewline {
                kept.push(b'\n');
            }
            if kept.is_empty() {
                return;
            }
            let again = verify(&kept);
            assert!(
                again.error.is_none(),
                "{m:?}: prefix fails: {:?}",
                again.error
            );
            assert_eq!(
                again.state.map(|s| s.block_count()),
                result.state.map(|s| s.block_count()),
                "{m:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(64)))]

    #[test]
    fn mutated_pow_chains(m in mutation()) { check(GOLDEN[0], &m); }

    #[test]
    fn mutated_regtest_chains(m in mutation()) { check(GOLDEN[1], &m); }

    #[test]
    fn mutated_pos_chains(m in mutation()) { check(GOLDEN[2], &m); }

    #[test]
    fn mutated_dpos_chains(m in mutation()) { check(GOLDEN[3], &m); }

    #[test]
    fn mutated_poa_chains(m in mutation()) { check(GOLDEN[4], &m); }
}
