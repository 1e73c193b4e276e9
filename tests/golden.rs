//! Golden chain files: one small chain per built-in spec, written by the version before the
//! consensus rules got their own modules, committed byte for byte. They pin the chain format:
//! every later version must verify them unchanged, derive the same block hashes and txids, and
//! give the built-in specs the same `spec_hash`. Never regenerate these files; add new ones.
#![allow(clippy::unwrap_used)]

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use assert_cmd::cargo::cargo_bin_cmd;
use chainsmith::ChainSpec;
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::replay;
use chainsmith::primitives::tx::Transaction;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A clock after every block time in the files (2033).
const NOW: u32 = 2_000_000_000;

/// (file, built-in spec, blocks including genesis, tip hash, sha256 of every txid in file order).
const GOLDEN: [(&str, &str, u64, &str, &str); 5] = [
    (
        "pow-demo.jsonl",
        "pow-demo",
        25,
        "000000c5e0f5f5e83e809bed21312a4a1d03084bf240556971b7b9bee33e5ad2",
        "b3f1e7599f568d61aaa1f6738628799943787dd2e5c63f0df50195c962799ffb",
    ),
    (
        "regtest.jsonl",
        "regtest",
        121,
        "19995f0ca7f76dd2e413f3af964a1165ac10f552c7166bcf79f0bc98bd5f543f",
        "ab0cb94166e8fd9e6c6499af24eac3a64eb7b0087266f887b5627951f2fd1199",
    ),
    (
        "pos-demo.jsonl",
        "pos-demo",
        31,
        "ea5826c7133dfdae8d087b34c97b5d822bf2cd8853713f273bfb87f3c13c7c46",
        "e3b076db9b6fd660305a6269c5a1b9c3f440063011b852a73443a3c96daff210",
    ),
    (
        "dpos-demo.jsonl",
        "dpos-demo",
        41,
        "dc078f29d39e0a5c5b79c3c0fa0dac948978f9a6d0fa79182b7ceba7b2262d78",
        "df6ac4d63ca3a7d3c4a231933c77515c5e06e11af2c770ced31bd9a276e0050f",
    ),
    (
        "poa-demo.jsonl",
        "poa-demo",
        31,
        "25fba46f2abc21bf8a3816432a8dfb461a79015057e15495a5875312d846487a",
        "8a227ff16e23fa2274845cc7ae80a80dedd7d07fbf7042ebf43210a855572955",
    ),
];

/// The `spec_hash` of every built-in spec (sha256 of its canonical JSON), as chain files
/// record it on their genesis line.
const SPEC_HASHES: [(&str, &str); 5] = [
    (
        "pow-demo",
        "0c3a3b15c610ad004271642ff764110aec7dce4ba019e821e0ad4af6171d414a",
    ),
    (
        "pos-demo",
        "78178d9b2ae5f104cbaf3ec00c2978d5da13217eea491844bd8ca8798100adff",
    ),
    (
        "dpos-demo",
        "5095bae47f1900a1bc4c303d0938bb84290b88b507a7997d627fde61e2d455eb",
    ),
    (
        "poa-demo",
        "cd28c9e4f053a2e463c2b12184bfbc8c40a03fdef60e72e25281b92a1468dcf9",
    ),
    (
        "regtest",
        "4f4c194c2f5953a6c7eaea00cd5b5eafa2a6f4acfb85ae873ae35c9cef4e195b",
    ),
];

fn golden(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(file)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Hex of a hash in display order (byte-reversed), as chain files write it.
fn display_hex(internal: [u8; 32]) -> String {
    let mut b = internal;
    b.reverse();
    hex::encode(b)
}

fn internal_bytes(display: &str) -> [u8; 32] {
    let mut b: [u8; 32] = hex::decode(display).unwrap().try_into().unwrap();
    b.reverse();
    b
}

/// Bitcoin's 80-byte header from a line's fields, built here without the library.
fn header_bytes(line: &Value) -> Vec<u8> {
    let mut h = Vec::with_capacity(80);
    h.extend((line["version"].as_i64().unwrap() as i32).to_le_bytes());
    h.extend(internal_bytes(line["prev_hash"].as_str().unwrap()));
    h.extend(internal_bytes(line["merkle_root"].as_str().unwrap()));
    h.extend((line["time"].as_u64().unwrap() as u32).to_le_bytes());
    let bits = u32::from_str_radix(line["bits"].as_str().unwrap(), 16).unwrap();
    h.extend(bits.to_le_bytes());
    h.extend((line["nonce"].as_u64().unwrap() as u32).to_le_bytes());
    assert_eq!(h.len(), 80);
    h
}

/// Bitcoin's merkle root (last hash doubled on odd levels), built here without the library.
fn merkle_root(mut level: Vec<[u8; 32]>) -> [u8; 32] {
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            level.push(*level.last().unwrap());
        }
        level = level
            .chunks(2)
            .map(|p| sha256(&sha256(&[p[0], p[1]].concat())))
            .collect();
    }
    level[0]
}

/// Re-derives every block hash and merkle root of a golden file; returns the sha256 of all
/// txids in file order.
fn rederive(file: &str) -> String {
    let mut all_txids = Vec::new();
    let reader = BufReader::new(File::open(golden(file)).unwrap());
    for (n, text) in reader.lines().enumerate() {
        let text = text.unwrap();
        let line: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            line["height"].as_u64(),
            Some(n as u64),
            "{file} line {}",
            n + 1
        );
        let hash = display_hex(sha256(&sha256(&header_bytes(&line))));
        assert_eq!(
            line["hash"].as_str(),
            Some(hash.as_str()),
            "{file} height {n}"
        );
        let txs: Vec<Transaction> = serde_json::from_value(line["txs"].clone()).unwrap();
        let txids: Vec<[u8; 32]> = txs.iter().map(|t| t.txid().to_byte_array()).collect();
        let root = display_hex(merkle_root(txids.clone()));
        assert_eq!(
            line["merkle_root"].as_str(),
            Some(root.as_str()),
            "{file} height {n}: txids no longer commit to the merkle root"
        );
        all_txids.extend(txids.iter().flatten());
    }
    hex::encode(sha256(&all_txids))
}

#[test]
fn golden_files_verify_unchanged() {
    for (file, spec, blocks, tip, _) in GOLDEN {
        let reader = LineReader::open(&golden(file)).unwrap();
        let result = replay(reader, NOW, &mut ()).unwrap();
        assert_eq!(result.error, None, "{file}");
        let state = result.state.unwrap();
        assert_eq!(state.block_count(), blocks, "{file}");
        assert_eq!(state.tip().unwrap().hash.to_string(), tip, "{file}");
        assert_eq!(state.spec().name, spec, "{file}");
    }
}

#[test]
fn golden_files_rederive_hashes_and_txids() {
    for (file, _, _, _, txids) in GOLDEN {
        assert_eq!(rederive(file), txids, "{file}: txids changed");
    }
}

#[test]
fn builtin_spec_hashes_are_pinned() {
    for (name, hash) in SPEC_HASHES {
        let spec = ChainSpec::builtin(name).unwrap();
        assert_eq!(spec.spec_hash().to_string(), hash, "{name}");
    }
    // The golden files embed the built-in specs unchanged.
    for (file, spec, ..) in GOLDEN {
        let first = std::fs::read_to_string(golden(file)).unwrap();
        let genesis: Value = serde_json::from_str(first.lines().next().unwrap()).unwrap();
        let pinned = SPEC_HASHES.iter().find(|(n, _)| *n == spec).unwrap().1;
        assert_eq!(genesis["spec_hash"].as_str(), Some(pinned), "{file}");
    }
}

#[test]
fn golden_files_verify_from_the_command_line() {
    for (file, _, blocks, tip, _) in GOLDEN {
        let out = cargo_bin_cmd!("chainsmith")
            .args(["verify", "--json"])
            .arg(golden(file))
            .output()
            .unwrap();
        assert!(out.status.success(), "{file}: {out:?}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["valid"], true, "{file}");
        assert_eq!(json["blocks"].as_u64(), Some(blocks), "{file}");
        assert_eq!(json["tip"].as_str(), Some(tip), "{file}");
    }
}

/// The stake search on every core and with every hash backend finds the blocks the
/// one-thread, portable search of the version before it found: `test-pos-sequential.jsonl` was
/// mined by that version (commit bec6545) with `chainsmith mine pos --spec
/// tests/data/test-pos.json --blocks 40` and is kept byte for byte. Mining it again must give
/// the same bytes: the same winning kernels, timestamps, transfers, signatures and the same
/// `stake_attempts` (the kernels a sequential search tries), for 1 and 2 threads.
#[test]
fn the_stake_search_stakes_the_sequential_chain_on_every_backend_and_thread_count() {
    let want = std::fs::read(golden("test-pos-sequential.jsonl")).unwrap();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-pos.json");
    let dir = tempfile::tempdir().unwrap();
    for backend in chainsmith::hash::Backend::supported() {
        for threads in ["1", "2"] {
            let chain = dir.path().join(format!("{backend}-{threads}.jsonl"));
            let out = cargo_bin_cmd!("chainsmith")
                .args(["mine", "pos", "--blocks", "40", "-q", "--spec", spec])
                .args(["--backend", backend.name(), "--threads", threads, "--chain"])
                .arg(&chain)
                .output()
                .unwrap();
            assert!(out.status.success(), "{backend} {threads}: {out:?}");
            let got = std::fs::read(&chain).unwrap();
            assert!(
                got == want,
                "{backend} on {threads} threads: the chain differs from the sequential search's"
            );
        }
    }
}
