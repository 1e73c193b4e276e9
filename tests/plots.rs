//! `compare --plot`: every chart is well-formed XML that names its series, says where its
//! hashes come from, and a chart with nothing to draw is not written.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use tempfile::TempDir;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Runs `compare` with `args` and `--plot DIR`; returns the charts written, by name.
fn charts(args: &[&str], dir: &Path) -> BTreeSet<String> {
    cargo_bin_cmd!("chainsmith")
        .arg("compare")
        .args(args)
        .args(["--quiet", "--json", "--plot"])
        .arg(dir)
        .assert()
        .success();
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

/// A chart's text, parsed as XML: every text node, joined by newlines.
fn text(dir: &Path, chart: &str) -> String {
    let svg = std::fs::read_to_string(dir.join(chart)).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap_or_else(|e| panic!("{chart}: {e}"));
    assert_eq!(doc.root_element().tag_name().name(), "svg", "{chart}");
    doc.descendants()
        .filter(|n| n.is_text())
        .map(|n| n.text().unwrap().trim())
        .collect::<Vec<_>>()
        .join("\n")
}

fn assert_names(dir: &Path, chart: &str, needles: &[&str]) {
    let text = text(dir, chart);
    for n in needles {
        assert!(text.contains(n), "{chart} lacks {n:?}:\n{text}");
    }
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

#[test]
fn chain_files_chart_expected_work_and_recorded_attempts_and_no_energy() {
    let dir = TempDir::new().unwrap();
    let (pow, pos) = (
        repo("tests/golden/pow-demo.jsonl"),
        repo("tests/golden/pos-demo.jsonl"),
    );
    let written = charts(&[pow.to_str().unwrap(), pos.to_str().unwrap()], dir.path());
    // Nothing ran, so there is no energy to chart: that chart is skipped, not left empty.
    assert_eq!(
        written,
        set(&[
            "block_intervals.svg",
            "hashes_per_block.svg",
            "pos_stake_shares.svg"
        ])
    );
    assert_names(
        dir.path(),
        "hashes_per_block.svg",
        &[
            "Hashes per block",
            "POW (pow-demo): expected work of each block's target, 2^256/(target+1)",
            "POS (pos-demo): kernel attempts the staker recorded in each block",
            "hashes per block (log scale)",
        ],
    );
    let hashes = text(dir.path(), "hashes_per_block.svg");
    assert!(!hashes.contains("hash nothing"), "{hashes}");
    assert_names(
        dir.path(),
        "block_intervals.svg",
        &[
            "Block intervals",
            "POW (pow-demo) · spacing 1.00 s",
            "POS (pos-demo) · spacing 1 h 00 min",
            "PoW: memoryless mining at the target spacing",
            "longer",
        ],
    );
    assert_names(
        dir.path(),
        "pos_stake_shares.svg",
        &[
            "blocks won against share of stake, pos-demo",
            "alice",
            "judy",
            "a fair lottery's range: mean ± 2σ",
        ],
    );
}

#[test]
fn authority_files_have_no_hashes_chart() {
    let dir = TempDir::new().unwrap();
    let (dpos, poa) = (
        repo("tests/golden/dpos-demo.jsonl"),
        repo("tests/golden/poa-demo.jsonl"),
    );
    let written = charts(&[dpos.to_str().unwrap(), poa.to_str().unwrap()], dir.path());
    assert_eq!(written, set(&["block_intervals.svg"]));
    let text = text(dir.path(), "block_intervals.svg");
    assert!(text.contains("DPOS (dpos-demo) · spacing 500 ms"), "{text}");
    assert!(text.contains("POA (poa-demo) · spacing 15.0 s"), "{text}");
    // No proof of work here: no exponential curve in the legend.
    assert!(!text.contains("memoryless"), "{text}");
}

#[test]
fn a_live_run_charts_measured_hashes_over_expected_work_and_every_rules_energy() {
    let dir = TempDir::new().unwrap();
    let spec = |rule: &str, file: &str| format!("{rule}={}", repo(file).display());
    let written = charts(
        &[
            "--blocks",
            "3",
            "--spec",
            &spec("pow", "tests/data/test-pow.json"),
            "--spec",
            &spec("pos", "tests/data/test-pos.json"),
            "--spec",
            &spec("dpos", "tests/data/test-dpos.json"),
        ],
        dir.path(),
    );
    assert_eq!(
        written,
        set(&[
            "block_intervals.svg",
            "energy_per_block.svg",
            "hashes_per_block.svg",
            "pos_stake_shares.svg"
        ])
    );
    assert_names(
        dir.path(),
        "hashes_per_block.svg",
        &[
            "POW (test-pow): hashes tried (measured)",
            "POW (test-pow): expected work of each block's target",
            "POS (test-pos): kernel hashes tried (measured)",
            "hash nothing, not drawn: DPOS, POA, RAFT, PBFT, PAXOS, ZAB, KAFKA",
        ],
    );
    assert_names(
        dir.path(),
        "energy_per_block.svg",
        &[
            "Energy per block",
            "energy per block (log scale)",
            "POW",
            "POS",
            "DPOS",
            "POA",
            "RAFT",
            "PBFT",
            "PAXOS",
            "ZAB",
            "KAFKA",
        ],
    );
    let energy = text(dir.path(), "energy_per_block.svg");
    assert!(
        energy.contains("every rule: estimate") || energy.contains("rapl: measured"),
        "{energy}"
    );
    // The ordering rules' block times are whole seconds, their spacing 100–200 ms: no
    // histogram of theirs would mean anything, and the legend says so.
    assert_names(
        dir.path(),
        "block_intervals.svg",
        &["not drawn: RAFT (100 ms)", "coarser than their spacing"],
    );
}
