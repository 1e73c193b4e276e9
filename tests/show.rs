//! `chainsmith show` and `chainsmith header` as people and scripts read them: tables that fit 80
//! columns, height ranges, JSON lines, header hex, and one-line errors with the right exit code.
//! The chains are the committed golden files, so every time and hash in a snapshot is fixed.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use tempfile::TempDir;

const GENESIS_HEX: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(format!("{name}.jsonl"))
}

/// Runs `chainsmith ARGS` and returns (exit code, stdout, stderr).
fn run(args: &[&str]) -> (i32, String, String) {
    let out = cargo_bin_cmd!("chainsmith").args(args).output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        out.status.code().unwrap(),
        String::from_utf8(out.stdout).unwrap(),
        stderr,
    )
}

/// `show GOLDEN ARGS`, which must succeed; returns stdout.
fn show(name: &str, args: &[&str]) -> String {
    let chain = golden(name);
    let mut all = vec!["show", chain.to_str().unwrap()];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = run(&all);
    assert_eq!(code, 0, "{stderr}");
    stdout
}

/// The heights of a table's rows (the lines after the chain line and the column header).
fn table_heights(table: &str) -> Vec<u64> {
    table
        .lines()
        .skip(2)
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn every_table_fits_80_columns() {
    for name in ["pow-demo", "regtest", "pos-demo", "dpos-demo", "poa-demo"] {
        let table = show(name, &[]);
        let blocks = std::fs::read_to_string(golden(name))
            .unwrap()
            .lines()
            .count();
        assert_eq!(
            table.lines().count(),
            blocks + 2,
            "{name}: one line a block"
        );
        for line in table.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name}: {} columns: {line}",
                line.chars().count()
            );
        }
    }
}

#[test]
fn pow_table_shows_bits_nonce_and_the_named_payee() {
    insta::assert_snapshot!("pow_demo_tail_5", show("pow-demo", &["--tail", "5"]));
}

#[test]
fn pos_table_names_the_staker_and_the_stake_target_without_nonce() {
    insta::assert_snapshot!("pos_demo_to_4", show("pos-demo", &["--to", "4"]));
}

#[test]
fn dpos_table_names_producer_and_slot() {
    insta::assert_snapshot!(
        "dpos_demo_from_20_to_24",
        show("dpos-demo", &["--from", "20", "--to", "24"])
    );
}

#[test]
fn poa_table_names_the_signer_and_turn() {
    let table = show("poa-demo", &["--from", "1", "--to", "4"]);
    insta::assert_snapshot!("poa_demo_from_1_to_4", table);
}

#[test]
fn wide_table_has_full_hashes() {
    let table = show("pow-demo", &["--wide", "--height", "24"]);
    assert!(table.contains("000000c5e0f5f5e83e809bed21312a4a1d03084bf240556971b7b9bee33e5ad2"));
    insta::assert_snapshot!("pow_demo_wide_height_24", table);
}

#[test]
fn ranges_pick_heights() {
    assert_eq!(
        table_heights(&show("dpos-demo", &["--tail", "3"])),
        [38, 39, 40]
    );
    assert_eq!(
        table_heights(&show("dpos-demo", &["--from", "38"])),
        [38, 39, 40]
    );
    assert_eq!(table_heights(&show("dpos-demo", &["--to", "2"])), [0, 1, 2]);
    assert_eq!(
        table_heights(&show("dpos-demo", &["--to", "10", "--tail", "2"])),
        [9, 10]
    );
    assert_eq!(
        table_heights(&show("dpos-demo", &["--to", "999"])).len(),
        41
    );
    assert_eq!(table_heights(&show("dpos-demo", &["--height", "0"])), [0]);
    // The tail longer than the chain is the whole chain.
    assert_eq!(
        table_heights(&show("poa-demo", &["--tail", "500"])).len(),
        31
    );
}

#[test]
fn ranges_apply_to_json_and_hex() {
    let json = show("pow-demo", &["--json", "--tail", "2"]);
    let heights: Vec<u64> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["height"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(heights, [23, 24]);
    // Each line is the chain file's record, byte for byte.
    let file = std::fs::read_to_string(golden("pow-demo")).unwrap();
    let file_lines: Vec<&str> = file.lines().collect();
    assert_eq!(json.lines().collect::<Vec<_>>(), file_lines[23..]);

    let hex = show("pow-demo", &["--hex", "--from", "1", "--to", "3"]);
    assert_eq!(hex.lines().count(), 3);
    assert!(hex.lines().all(|l| l.len() == 160));
    insta::assert_snapshot!("pow_demo_hex_from_1_to_3", hex);
}

#[test]
fn json_lines_are_block_records() {
    let json = show("poa-demo", &["--json", "--height", "1"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    insta::assert_json_snapshot!("poa_demo_json_height_1", v);
}

#[test]
fn height_past_the_tip_names_the_tip() {
    let chain = golden("pow-demo");
    for flags in [["--height", "999"], ["--from", "999"]] {
        let (code, stdout, stderr) = run(&["show", chain.to_str().unwrap(), flags[0], flags[1]]);
        assert_eq!(code, 2, "{flags:?}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains("no block at height 999: the tip is at height 24"),
            "{stderr}"
        );
        assert!(stderr.contains("pow-demo.jsonl"), "{stderr}");
    }
}

#[test]
fn conflicting_or_empty_ranges_are_usage_errors() {
    let chain = golden("pow-demo");
    let chain = chain.to_str().unwrap();
    for (args, needle) in [
        (
            &["--from", "5", "--to", "3"][..],
            "--from 5 is after --to 3",
        ),
        (&["--tail", "0"], "--tail"),
        (&["--tail", "2", "--from", "1"], "cannot be used with"),
        (&["--height", "2", "--from", "1"], "cannot be used with"),
        (&["--height", "2", "--tail", "1"], "cannot be used with"),
        (&["--wide", "--json"], "cannot be used with"),
        (&["--hex", "--json"], "cannot be used with"),
    ] {
        let mut all = vec!["show", chain];
        all.extend_from_slice(args);
        let (code, stdout, stderr) = run(&all);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stdout.is_empty(), "{args:?}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

#[test]
fn an_empty_file_is_not_a_chain() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("empty.jsonl");
    std::fs::write(&chain, "").unwrap();
    for flags in [&[][..], &["--json"], &["--hex"], &["--tail", "1"]] {
        let mut all = vec!["show", chain.to_str().unwrap()];
        all.extend_from_slice(flags);
        let (code, stdout, stderr) = run(&all);
        assert_eq!(code, 1, "{flags:?}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains("empty.jsonl: file is empty"), "{stderr}");
    }
}

#[test]
fn a_malformed_line_names_file_line_and_height() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("bad.jsonl");
    let text = std::fs::read_to_string(golden("pos-demo")).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[3] = lines[3].replacen("\"nonce\"", "\"colour\":\"red\",\"nonce\"", 1);
    std::fs::write(&chain, lines.join("\n") + "\n").unwrap();
    let path = chain.to_str().unwrap();
    for flags in [
        &[][..],
        &["--json"],
        &["--hex"],
        &["--height", "3"],
        &["--tail", "28"],
    ] {
        let mut all = vec!["show", path];
        all.extend_from_slice(flags);
        let (code, _, stderr) = run(&all);
        assert_eq!(code, 1, "{flags:?}");
        assert!(
            stderr.contains("bad.jsonl: line 4: height 3: malformed block line"),
            "{flags:?}: {stderr}"
        );
        assert!(stderr.contains("unknown field `colour`"), "{stderr}");
    }
    // Lines outside the range are not read as blocks.
    assert_eq!(run(&["show", path, "--tail", "27"]).0, 0);

    // A line that is not text stops the reading wherever it is.
    let mut bytes = text.into_bytes();
    let third = bytes
        .iter()
        .enumerate()
        .filter(|&(_, &b)| b == b'\n')
        .nth(1)
        .unwrap()
        .0;
    bytes[third + 1] = 0xff;
    std::fs::write(&chain, bytes).unwrap();
    for flags in [&[][..], &["--json"], &["--tail", "1"]] {
        let mut all = vec!["show", path];
        all.extend_from_slice(flags);
        let (code, _, stderr) = run(&all);
        assert_eq!(code, 1, "{flags:?}: {stderr}");
        assert!(
            stderr.contains("bad.jsonl: line 3: height 2: line is not UTF-8"),
            "{flags:?}: {stderr}"
        );
    }
}

#[test]
fn header_text_and_json() {
    let (code, text, _) = run(&["header", GENESIS_HEX]);
    assert_eq!(code, 0);
    insta::assert_snapshot!("header_bitcoin_genesis", text);
    let (code, json, _) = run(&["header", "--json", GENESIS_HEX]);
    assert_eq!(code, 0);
    assert_eq!(json.lines().count(), 1);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["nonce"], 2_083_236_893u32);
    // The text itself: key order and integer types are part of the contract.
    insta::assert_snapshot!("header_bitcoin_genesis_json", json);
}
