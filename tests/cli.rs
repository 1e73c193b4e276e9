//! The command-line contract: outputs, JSON keys, exit codes (0 ok, 1 invalid, 2 usage/IO,
//! 130 interrupted), tamper detection by height, crash safety and repair.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use predicates::prelude::*;
use serde_json::Value;
use tempfile::TempDir;

const GENESIS_HEX: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

fn test_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-pow.json")
}

/// Mines `blocks` blocks of the test spec (transfers from height 3 on) into `dir/c.jsonl`.
fn mine_test_chain(dir: &TempDir, blocks: u32) -> PathBuf {
    let chain = dir.path().join("c.jsonl");
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--threads", "1", "--blocks"])
        .arg(blocks.to_string())
        .arg("--spec")
        .arg(test_spec_path())
        .arg("--chain")
        .arg(&chain)
        .assert()
        .success();
    chain
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_lines(path: &Path, values: &[Value]) {
    let text: String = values.iter().map(|v| format!("{v}\n")).collect();
    std::fs::write(path, text).unwrap();
}

fn verify_json(path: &Path) -> (i32, Value) {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["verify", "--json", "--quiet"])
        .arg(path)
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), v)
}

#[test]
fn header_decodes_bitcoin_genesis() {
    cargo_bin_cmd!("chainsmith")
        .args(["header", GENESIS_HEX])
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
        ))
        .stdout(predicate::str::contains("2009-01-03 18:15:05 UTC"))
        .stdout(predicate::str::contains("meets_target  yes"));
    let out = cargo_bin_cmd!("chainsmith")
        .args(["header", "--json", GENESIS_HEX])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["bits"], "1d00ffff");
    assert_eq!(v["nonce"], 2_083_236_893u32);
    assert_eq!(v["version"], 1);
    assert_eq!(v["meets_target"], true);
    assert_eq!(
        v["target"],
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    );
    for key in ["hash", "prev_hash", "merkle_root", "time"] {
        assert!(v.get(key).is_some(), "{key}");
    }
}

#[test]
fn header_rejects_bad_input_with_one_line_and_exit_2() {
    for (input, needle) in [
        ("zz", "not a hex string"),
        (&GENESIS_HEX[..158], "expected 80 bytes, got 79"),
        (&GENESIS_HEX[..159], "odd number of digits"),
    ] {
        let out = cargo_bin_cmd!("chainsmith")
            .args(["header", input])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{input}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(needle), "{err}");
    }
}

#[test]
fn help_and_usage_errors() {
    for sub in ["mine", "verify", "header", "show", "bench"] {
        cargo_bin_cmd!("chainsmith")
            .args([sub, "--help"])
            .assert()
            .success()
            .stdout(predicate::str::contains("Usage"));
    }
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--threads", "0"])
        .assert()
        .code(2);
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "tendermint"])
        .assert()
        .code(2);
    // A spec of the other consensus rule is a usage error.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--spec", "regtest"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "mine it with `chainsmith mine pow`",
        ));
}

#[test]
fn mine_then_verify_then_outside_check() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("r.jsonl");
    let out = cargo_bin_cmd!("chainsmith")
        .args([
            "mine", "pow", "--spec", "regtest", "--blocks", "8", "--json", "--chain",
        ])
        .arg(&chain)
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["consensus"], "pow");
    assert_eq!(v["blocks_mined"], 8);
    assert_eq!(v["height"], 8);
    assert!(v["hashes"].as_u64().unwrap() >= 8);
    assert!(v["elapsed_s"].as_f64().unwrap() > 0.0);
    assert!(v["hash_rate"].as_f64().unwrap() > 0.0);
    assert_eq!(v["chain"], chain.display().to_string());

    let (code, v) = verify_json(&chain);
    assert_eq!(code, 0);
    assert_eq!(v["valid"], true);
    assert_eq!(v["blocks"], 9);
    assert_eq!(v["height"], 8);

    // The regtest genesis is Bitcoin's, byte for byte.
    let first = &lines(&chain)[0];
    assert_eq!(
        first["hash"],
        "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );

    // An independent re-hash with Python's hashlib agrees.
    let hex = cargo_bin_cmd!("chainsmith")
        .args(["show", "--hex"])
        .arg(&chain)
        .output()
        .unwrap();
    assert!(hex.status.success());
    let mut py = StdCommand::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tools/outside-check.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for the outside check");
    std::io::Write::write_all(py.stdin.as_mut().unwrap(), &hex.stdout).unwrap();
    let checked = py.wait_with_output().unwrap();
    assert!(checked.status.success());
    assert_eq!(
        String::from_utf8(checked.stdout).unwrap().trim(),
        "9 0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206"
    );
}

#[test]
fn mine_continues_an_existing_chain() {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 5);
    let first = std::fs::read(&chain).unwrap();
    mine_test_chain(&dir, 4);
    let after = std::fs::read(&chain).unwrap();
    // Append-only: the old bytes are untouched and four more blocks follow.
    assert_eq!(&after[..first.len()], &first[..]);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(9)));
    // Transfers were mined (maturity 2 in the test spec).
    assert!(
        lines(&chain)
            .iter()
            .any(|b| b["txs"].as_array().unwrap().len() > 1)
    );
}

#[test]
fn mining_onto_a_chain_of_another_spec_is_refused() {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 1);
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--spec", "regtest", "--quiet", "--chain"])
        .arg(&chain)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("was made with spec \"test-pow\""));
}

/// Tampers one field of block `height` and expects `verify` to exit 1 naming that height.
fn assert_tamper_detected(field: &str, height: usize, change: impl Fn(&mut Value)) {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 6);
    let mut blocks = lines(&chain);
    change(&mut blocks[height]);
    write_lines(&chain, &blocks);
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1, "{field}: {v}");
    assert_eq!(v["valid"], false, "{field}");
    assert_eq!(v["error"]["height"], height, "{field}: {v}");
    assert_eq!(v["blocks"], height, "{field}");
    let out = cargo_bin_cmd!("chainsmith")
        .arg("verify")
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("height {height}:")),
        "{field}: {text}"
    );
}

#[test]
fn tampered_header_fields_are_rejected_at_their_height() {
    assert_tamper_detected("nonce", 3, |b| {
        b["nonce"] = (b["nonce"].as_u64().unwrap() + 1).into()
    });
    assert_tamper_detected("merkle_root", 4, |b| {
        b["merkle_root"] = "11".repeat(32).into();
    });
    assert_tamper_detected("prev_hash", 2, |b| b["prev_hash"] = "22".repeat(32).into());
    assert_tamper_detected("bits", 5, |b| b["bits"] = "207ffffe".into());
    assert_tamper_detected("time", 1, |b| {
        b["time"] = (b["time"].as_u64().unwrap() - 1).into()
    });
}

#[test]
fn tampered_transactions_are_rejected_at_their_height() {
    assert_tamper_detected("coinbase value", 2, |b| {
        b["txs"][0]["outputs"][0]["value"] = 5000.0.into();
    });
    assert_tamper_detected("transfer output", 5, |b| {
        let v = b["txs"][1]["outputs"][0]["value"].as_f64().unwrap();
        b["txs"][1]["outputs"][0]["value"] = (v + 1.0).into();
    });
    assert_tamper_detected("dropped transaction", 6, |b| {
        b["txs"].as_array_mut().unwrap().pop();
    });
}

#[test]
fn malformed_lines_name_line_height_and_field() {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 3);
    let mut blocks = lines(&chain);
    blocks[2]
        .as_object_mut()
        .unwrap()
        .insert("colour".into(), "red".into());
    write_lines(&chain, &blocks);
    let out = cargo_bin_cmd!("chainsmith")
        .arg("verify")
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("line 3: height 2: malformed block line"),
        "{text}"
    );
    assert!(text.contains("unknown field `colour`"), "{text}");

    std::fs::write(&chain, "").unwrap();
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1);
    assert!(v["error"]["reason"].as_str().unwrap().contains("empty"));

    cargo_bin_cmd!("chainsmith")
        .args(["verify", "/nonexistent/chain.jsonl"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "reading chain /nonexistent/chain.jsonl",
        ));
}

#[test]
fn torn_last_line_is_reported_and_repaired() {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 5);
    let full = std::fs::read(&chain).unwrap();
    let cut = full.len() - 40;
    std::fs::write(&chain, &full[..cut]).unwrap();

    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["line"], 6);
    assert_eq!(v["error"]["height"], 5);
    assert!(v["error"]["reason"].as_str().unwrap().contains("torn"));

    // Mining refuses a damaged chain rather than appending after a torn line.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--chain"])
        .arg(&chain)
        .assert()
        .code(1)
        .stderr(predicate::str::contains("line 6: height 5: torn last line"));

    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair"])
        .arg(&chain)
        .assert()
        .success()
        .stdout(predicate::str::contains("removed"))
        .stdout(predicate::str::contains("from line 6 (height 5)"));
    let repaired = std::fs::read(&chain).unwrap();
    let last_newline = full[..cut].iter().rposition(|b| *b == b'\n').unwrap();
    assert_eq!(repaired, full[..=last_newline]);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(4)));
    mine_test_chain(&dir, 2);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(6)));
}

/// Sends Ctrl-C (SIGINT) to a running miner and waits for it to exit.
fn interrupt(child: std::process::Child) -> std::process::Output {
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    child.wait_with_output().unwrap()
}

fn wait_for_blocks(chain: &Path, min_lines: usize) {
    // Up to a minute: a shared machine under load hashes slowly in a debug build.
    for _ in 0..3000 {
        let n = std::fs::read_to_string(chain).map_or(0, |t| t.lines().count());
        if n >= min_lines {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the miner wrote no blocks");
}

/// A slower spec (2^16 expected hashes a block, fixed difficulty) so a kill lands mid-run.
fn slow_spec() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/slow-pow.json")
}

fn spawn_miner(spec: &Path, chain: &Path) -> std::process::Child {
    StdCommand::new(env!("CARGO_BIN_EXE_chainsmith"))
        .args([
            "mine",
            "pow",
            "--quiet",
            "--threads",
            "1",
            "--blocks",
            "1000000",
            "--spec",
        ])
        .arg(spec)
        .arg("--chain")
        .arg(chain)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn sigkill_mid_run_loses_no_completed_block_and_mining_resumes() {
    let dir = TempDir::new().unwrap();
    let spec = slow_spec();
    let chain = dir.path().join("k.jsonl");
    let mut child = spawn_miner(&spec, &chain);
    wait_for_blocks(&chain, 4);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let (code, v) = verify_json(&chain);
    assert_eq!(code, 0, "{v}");
    let height = v["height"].as_u64().unwrap();
    assert!(height >= 3);
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "2", "--spec"])
        .arg(&spec)
        .arg("--chain")
        .arg(&chain)
        .assert()
        .success();
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(height + 2)));
}

#[test]
fn a_second_writer_is_refused_naming_the_first_and_loses_nothing() {
    let dir = TempDir::new().unwrap();
    let spec = slow_spec();
    let chain = dir.path().join("two.jsonl");
    let mut first = spawn_miner(&spec, &chain);
    wait_for_blocks(&chain, 2);
    let out = cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "3", "--spec"])
        .arg(&spec)
        .arg("--chain")
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&format!("pid {}", first.id())),
        "names the writer: {err}"
    );
    // Repair writes too, so it waits its turn; reading goes on beside the miner.
    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair"])
        .arg(&chain)
        .assert()
        .code(2);
    let (code, _) = verify_json(&chain);
    assert_eq!(code, 0);
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock dies with its holder: mining resumes.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "1", "--spec"])
        .arg(&spec)
        .arg("--chain")
        .arg(&chain)
        .assert()
        .success();
    let (code, _) = verify_json(&chain);
    assert_eq!(code, 0);
}

#[test]
fn a_crash_before_the_genesis_is_complete_leaves_a_minable_chain() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("g.jsonl");
    // What a crash in the first milliseconds used to leave: an empty file, or a torn genesis.
    std::fs::write(&chain, b"").unwrap();
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--quiet", "--blocks", "1", "--chain"])
        .arg(&chain)
        .assert()
        .success();
    let genesis = std::fs::read(&chain).unwrap();
    let first_line = genesis.split(|b| *b == b'\n').next().unwrap().to_vec();
    std::fs::write(&chain, &first_line[..4096.min(first_line.len() - 1)]).unwrap();
    let out = cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair"])
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("no complete genesis"), "{text}");
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--quiet", "--blocks", "1", "--chain"])
        .arg(&chain)
        .assert()
        .success();
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(1)));
}

#[test]
fn ctrl_c_stops_cleanly_with_exit_130() {
    let dir = TempDir::new().unwrap();
    let spec = slow_spec();
    let chain = dir.path().join("i.jsonl");
    let child = spawn_miner(&spec, &chain);
    wait_for_blocks(&chain, 3);
    let out = interrupt(child);
    assert_eq!(out.status.code(), Some(130));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("(interrupted)"), "{text}");
    let (code, _) = verify_json(&chain);
    assert_eq!(code, 0);
}

#[test]
fn spec_files_with_unknown_or_bad_fields_are_refused() {
    let dir = TempDir::new().unwrap();
    let mut spec: Value =
        serde_json::from_str(&std::fs::read_to_string(test_spec_path()).unwrap()).unwrap();
    spec["flavour"] = "x".into();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let out = cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--spec"])
        .arg(&path)
        .arg("--chain")
        .arg(dir.path().join("x.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bad.json") && err.contains("unknown field `flavour`"),
        "{err}"
    );

    spec.as_object_mut().unwrap().remove("flavour");
    spec["genesis"]["bits"] = "00000000".into();
    std::fs::write(&path, spec.to_string()).unwrap();
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--spec"])
        .arg(&path)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("field `genesis.bits`"));

    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--spec", "no-such-spec"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no built-in spec"));
}

#[test]
fn show_prints_a_table_one_height_and_json() {
    let dir = TempDir::new().unwrap();
    let chain = mine_test_chain(&dir, 3);
    cargo_bin_cmd!("chainsmith")
        .arg("show")
        .arg(&chain)
        .assert()
        .success()
        .stdout(predicate::str::contains("height"))
        .stdout(predicate::function(|s: &str| s.lines().count() == 6));
    let out = cargo_bin_cmd!("chainsmith")
        .args(["show", "--json", "--height", "2"])
        .arg(&chain)
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["height"], 2);
    cargo_bin_cmd!("chainsmith")
        .args(["show", "--height", "9"])
        .arg(&chain)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no block at height 9"));
}

#[test]
fn bench_reports_every_backend_against_the_reference() {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["bench", "--seconds", "0.05", "--threads", "2", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = v["results"].as_array().unwrap();
    let skipped = v["skipped"].as_array().unwrap();
    // Every backend is either measured (both searches at 1 and 2 threads) or listed as
    // skipped.
    assert_eq!(results.len() / 4 + skipped.len(), 4);
    for search in ["nonce", "kernel"] {
        assert_eq!(
            results.iter().filter(|r| r["search"] == search).count(),
            results.len() / 2
        );
    }
    for r in results {
        for key in [
            "search",
            "backend",
            "threads",
            "hashes",
            "seconds",
            "hash_rate",
        ] {
            assert!(r.get(key).is_some(), "{key}");
        }
        assert!(r["hashes"].as_u64().unwrap() > 0);
        let rate = r["hash_rate"].as_f64().unwrap();
        let expect = r["hashes"].as_f64().unwrap() / r["seconds"].as_f64().unwrap();
        assert!((rate - expect).abs() < 1e-6 * rate);
    }
    let soft1 = results
        .iter()
        .find(|r| r["backend"] == "soft" && r["threads"] == 1)
        .unwrap();
    assert!((soft1["ratio_vs_soft"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    // A kernel row's ratio to the nonce search is its rate over the nonce row's.
    for k in results.iter().filter(|r| r["search"] == "kernel") {
        let nonce = results
            .iter()
            .find(|r| {
                r["search"] == "nonce"
                    && r["backend"] == k["backend"]
                    && r["threads"] == k["threads"]
            })
            .unwrap();
        let want = k["hash_rate"].as_f64().unwrap() / nonce["hash_rate"].as_f64().unwrap();
        assert!((k["ratio_vs_nonce"].as_f64().unwrap() - want).abs() < 1e-9 * want);
    }

    cargo_bin_cmd!("chainsmith")
        .args([
            "bench",
            "--seconds",
            "0.05",
            "--backend",
            "soft",
            "--threads",
            "1",
        ])
        .assert()
        .success()
        .stdout(predicate::str::contains("best nonce: soft on 1 thread,"))
        .stdout(predicate::str::contains("best kernel: soft on 1 thread,"));
    cargo_bin_cmd!("chainsmith")
        .args(["bench", "--backend", "sse9"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown backend"));
    cargo_bin_cmd!("chainsmith")
        .args(["bench", "--seconds", "-1"])
        .assert()
        .code(2);
}

#[test]
fn mine_reports_and_honours_the_backend() {
    let dir = TempDir::new().unwrap();
    let test_pos = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/test-pos.json");
    for (rule, spec) in [("pow", "regtest"), ("pos", test_pos)] {
        for backend in ["soft", "default"] {
            let chain = dir.path().join(format!("{rule}-{backend}.jsonl"));
            let mut cmd = cargo_bin_cmd!("chainsmith");
            cmd.args([
                "mine", rule, "--spec", spec, "--blocks", "3", "--json", "--chain",
            ])
            .arg(&chain)
            .args(["--threads", "2"]);
            if backend == "soft" {
                cmd.args(["--backend", "soft"]);
            }
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{rule} {backend}: {out:?}");
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            let name = v["backend"].as_str().unwrap();
            if backend == "soft" {
                assert_eq!(name, "soft");
            } else {
                assert!(["avx512", "sha-ni", "avx2", "soft"].contains(&name));
            }
            assert_eq!(v["threads"], 2, "{rule} {backend}");
            assert_eq!(verify_json(&chain).0, 0);
        }
    }
    // The stake search always finds the same block: nothing to make deterministic.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--deterministic", "--spec", test_pos])
        .arg("--chain")
        .arg(dir.path().join("refused.jsonl"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("always finds the same block"));
    // Rules that sign rather than hash have no threads or backend to choose.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "dpos", "--threads", "2", "--chain"])
        .arg(dir.path().join("dpos.jsonl"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--threads applies to the hash searches of pow and pos chains",
        ));
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "poa", "--backend", "soft", "--chain"])
        .arg(dir.path().join("poa.jsonl"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--backend applies to the hash searches of pow and pos chains",
        ));
}

#[test]
fn mine_pos_reports_stakeholders_and_verifies() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("pos.jsonl");
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-pos.json");
    let out = cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--blocks", "12", "--json", "--spec"])
        .arg(&spec)
        .arg("--chain")
        .arg(&chain)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["consensus"], "pos");
    assert_eq!(v["blocks_mined"], 12);
    assert!(v["hashes"].as_u64().unwrap() >= 12);
    let holders = v["stakeholders"].as_array().unwrap();
    assert_eq!(holders.len(), 10);
    let blocks: u64 = holders.iter().map(|h| h["blocks"].as_u64().unwrap()).sum();
    assert_eq!(blocks, 12);
    for h in holders {
        for key in ["name", "coins", "blocks", "coin_days_consumed", "interest"] {
            assert!(h.get(key).is_some(), "{key}");
        }
    }
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(12)));

    // Human output: the stakeholder table.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pos", "--blocks", "1", "--spec"])
        .arg(&spec)
        .arg("--chain")
        .arg(&chain)
        .assert()
        .success()
        .stdout(predicate::str::contains("coin-days consumed"))
        .stdout(predicate::str::contains("h9"));

    // A forged block signature is rejected at its height.
    let mut blocks = lines(&chain);
    let sig = blocks[7]["signature"].as_str().unwrap().to_owned();
    let flipped = if sig.starts_with('0') { "1" } else { "0" };
    blocks[7]["signature"] = format!("{flipped}{}", &sig[1..]).into();
    write_lines(&chain, &blocks);
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1);
    assert_eq!(v["error"]["height"], 7);
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("block signature")
    );
}

fn mine_json(args: &[&str], chain: &Path) -> Value {
    common::json_output(
        cargo_bin_cmd!("chainsmith")
            .args(["mine"])
            .args(args)
            .args(["--json", "--quiet", "--chain"])
            .arg(chain),
    )
}

#[test]
fn mine_dpos_reports_producers_irreversibility_and_evidence() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("dpos.jsonl");
    // bp001 is elected in the demo's first round (it has the most approvals).
    let v = mine_json(
        &["dpos", "--offline", "bp002", "--double-sign", "bp001"],
        &chain,
    );
    assert_eq!(v["consensus"], "dpos");
    assert_eq!(v["blocks_mined"], 300, "the dpos default");
    let producers = v["producers"].as_array().unwrap();
    assert_eq!(producers.len(), 100, "every candidate is listed");
    let find = |name: &str| producers.iter().find(|p| p["name"] == name).unwrap();
    let blocks: u64 = producers
        .iter()
        .map(|p| p["blocks"].as_u64().unwrap())
        .sum();
    assert_eq!(blocks, 300);
    assert_eq!(find("bp002")["blocks"], 0);
    assert!(find("bp002")["missed"].as_u64().unwrap() >= 12);
    let lib = v["irreversible_height"].as_u64().unwrap();
    assert!(lib > 0 && lib < 300, "{lib}");
    let evidence = v["evidence"].as_array().unwrap();
    assert_eq!(
        evidence.len() as u64,
        find("bp001")["blocks"].as_u64().unwrap()
    );
    let e = &evidence[0];
    assert_eq!(e["producer"], "bp001");
    assert_ne!(e["hashes"][0], e["hashes"][1]);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(300)));
    // The file alone gives the same producer counts and irreversible height.
    assert_eq!(v["producers"].as_array().unwrap(), producers);
    assert_eq!(v["irreversible_height"], lib);

    // A block moved to another producer's slot is rejected at its height, with the reason.
    let mut blocks = lines(&chain);
    let slot = blocks[40]["txs"][1]["slot"].as_u64().unwrap();
    blocks[40]["txs"][1]["slot"] = (slot + 12).into();
    write_lines(&chain, &blocks);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["error"]["height"].as_u64()), (1, Some(40)));

    // Options of other rules and unknown names are usage errors.
    for args in [
        ["dpos", "--offline", "nobody"],
        ["dpos", "--vote", "+bp001"],
        ["pow", "--offline", "bp001"],
    ] {
        cargo_bin_cmd!("chainsmith")
            .args(["mine"])
            .args(args)
            .arg("--chain")
            .arg(dir.path().join("x.jsonl"))
            .assert()
            .code(2);
    }
}

#[test]
fn mine_poa_reports_signers_votes_and_verifies() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("poa.jsonl");
    let v = mine_json(&["poa", "--offline", "bob", "--vote", "+frank"], &chain);
    assert_eq!(v["consensus"], "poa");
    assert_eq!(v["blocks_mined"], 20);
    let signers = v["signers"].as_array().unwrap();
    let names: Vec<&str> = signers
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob", "carol", "dave", "erin", "frank"]);
    assert_eq!(signers[1]["blocks"], 0);
    assert!(
        signers[5]["blocks"].as_u64().unwrap() > 0,
        "frank was voted in"
    );
    let missed: u64 = signers.iter().map(|s| s["missed"].as_u64().unwrap()).sum();
    assert!(missed > 0);
    let height = v["height"].as_u64().unwrap();
    assert!(v["irreversible_height"].as_u64().unwrap() < height);
    assert_eq!(verify_json(&chain).0, 0);
    // `show` names each block's signer and turn.
    cargo_bin_cmd!("chainsmith")
        .args(["show", "--height", "1"])
        .arg(&chain)
        .assert()
        .success()
        .stdout(predicate::str::contains("producer"))
        .stdout(predicate::str::contains("(in turn)"));

    // Continuing a chain keeps its rules; a second seal by a recent signer is rejected.
    let mut blocks = lines(&chain);
    blocks[6]["txs"][1]["signer"] = blocks[5]["txs"][1]["signer"].clone();
    write_lines(&chain, &blocks);
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["error"]["height"].as_u64()), (1, Some(6)));
    // Three of five offline: the chain halts with a one-line reason and exit 1 (a domain
    // result, like an invalid chain: the blocks before the halt are written).
    cargo_bin_cmd!("chainsmith")
        .args([
            "mine",
            "poa",
            "--quiet",
            "--offline",
            "bob",
            "carol",
            "dave",
            "--chain",
        ])
        .arg(dir.path().join("halt.jsonl"))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("halts at height"));
}

/// Authority chains have no search to interrupt: Ctrl-C must still stop them at once, leave
/// every written block valid, and the chain must continue from there.
#[test]
fn ctrl_c_stops_a_dpos_run_and_mining_resumes() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("d.jsonl");
    let child = StdCommand::new(env!("CARGO_BIN_EXE_chainsmith"))
        .args([
            "mine",
            "dpos",
            "--quiet",
            "--blocks",
            "100000000",
            "--chain",
        ])
        .arg(&chain)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_blocks(&chain, 50);
    let out = interrupt(child);
    assert_eq!(out.status.code(), Some(130));
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 0);
    let height = v["height"].as_u64().unwrap();
    let more = mine_json(&["dpos", "--blocks", "5"], &chain);
    assert_eq!(more["height"].as_u64().unwrap(), height + 5);
}

#[test]
fn absurd_counts_are_refused_at_the_command_line() {
    for args in [
        &["mine", "pow", "--tx-per-block", "18446744073709551615"][..],
        &["mine", "pow", "--tx-per-block", "10001"],
        &["verify", "--threads", "8192", "x.jsonl"],
    ] {
        cargo_bin_cmd!("chainsmith").args(args).assert().code(2);
    }
}

#[test]
fn an_endless_line_is_damage_read_only_to_the_limit() {
    // /dev/zero is one line that never ends: read to 32 MiB, reported, not held.
    let out = StdCommand::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_chainsmith"),
            "verify",
            "--json",
            "/dev/zero",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        v["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{v}"
    );
}

#[test]
fn repair_keeps_a_whole_last_block_and_removes_damaged_bytes() {
    let dir = TempDir::new().unwrap();
    let original = std::fs::read(mine_test_chain(&dir, 4)).unwrap();
    let chain = dir.path().join("c.jsonl");

    // The newline of a whole last block was lost: the block stays, the newline comes back.
    std::fs::write(&chain, &original[..original.len() - 1]).unwrap();
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1, "{v}");
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("newline"),
        "{v}"
    );
    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair"])
        .arg(&chain)
        .assert()
        .success()
        .stdout(predicate::str::contains("added the missing newline"));
    assert_eq!(std::fs::read(&chain).unwrap(), original);

    // A torn line of bytes that are not UTF-8: invalid (exit 1, a JSON error), repairable.
    let mut damaged = original.clone();
    damaged.extend_from_slice(b"{\"height\":\xff\xfe");
    std::fs::write(&chain, &damaged).unwrap();
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["error"]["height"], 5, "{v}");
    assert!(
        v["error"]["reason"].as_str().unwrap().contains("UTF-8"),
        "{v}"
    );
    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair", "--quiet"])
        .arg(&chain)
        .assert()
        .success();
    assert_eq!(std::fs::read(&chain).unwrap(), original);
}

/// A block ahead of the verifier's clock is reported, but it is the clock that may be wrong
/// (a reset, a skewed machine): `--repair` removes nothing, and mining does not extend it.
#[test]
fn a_clock_behind_the_chain_destroys_nothing() {
    use chainsmith::chain::produce::ProduceOptions;

    let dir = TempDir::new().unwrap();
    let spec = chainsmith::ChainSpec::from_json(include_str!("data/test-pow.json")).unwrap();
    // Blocks dated 2033: years ahead of any clock this test runs under.
    let (records, _) = common::produce_chain(
        &spec,
        4,
        &ProduceOptions::default(),
        |h| common::NOW + h,
        |_, _| Vec::new(),
        |_, _| {},
    );
    let chain = dir.path().join("future.jsonl");
    let bytes = common::to_file_bytes(&records);
    std::fs::write(&chain, &bytes).unwrap();
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["error"]["height"].as_u64()), (1, Some(1)), "{v}");
    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--repair"])
        .arg(&chain)
        .assert()
        .code(1)
        .stdout(predicate::str::contains("not repaired"));
    assert_eq!(std::fs::read(&chain).unwrap(), bytes, "nothing removed");
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "1", "--spec"])
        .arg(test_spec_path())
        .arg("--chain")
        .arg(&chain)
        .assert()
        .code(1);
    assert_eq!(std::fs::read(&chain).unwrap(), bytes, "nothing added");
}

/// `verify` says which rules it trusted, and a spec that borrows a built-in's name without its
/// rules is called out (by `mine` too, which would otherwise extend it silently).
#[test]
fn verify_names_the_spec_and_flags_a_lookalike_of_a_builtin() {
    let dir = TempDir::new().unwrap();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/regtest.jsonl");
    let (code, v) = verify_json(&golden);
    assert_eq!(code, 0);
    assert_eq!(v["spec"], "regtest");
    assert_eq!(
        v["spec_hash"],
        chainsmith::ChainSpec::builtin("regtest")
            .unwrap()
            .spec_hash()
            .to_string()
    );
    assert_eq!(v["warnings"], serde_json::json!([]));

    // Named regtest, but every block is free: pow_limit ff…ff.
    let mut spec: Value = serde_json::from_str(include_str!("../chains/regtest.json")).unwrap();
    spec["pow_limit"] = "f".repeat(64).into();
    spec["genesis"]["bits"] = "2100ffff".into();
    let spec_path = dir.path().join("fake.json");
    std::fs::write(&spec_path, spec.to_string()).unwrap();
    let chain = dir.path().join("fake.jsonl");
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "2", "--spec"])
        .arg(&spec_path)
        .arg("--chain")
        .arg(&chain)
        .assert()
        .success();
    let (code, v) = verify_json(&chain);
    assert_eq!(code, 0, "{v}");
    let warning = v["warnings"][0].as_str().unwrap();
    assert!(warning.contains("like a built-in spec but differs"), "{v}");
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "pow", "--quiet", "--blocks", "1", "--chain"])
        .arg(&chain)
        .arg("--spec")
        .arg(&spec_path)
        .assert()
        .success()
        .stderr(predicate::str::contains("warning"));
}

#[test]
fn a_chain_path_that_is_no_file_gets_a_clear_refusal() {
    let dir = TempDir::new().unwrap();
    let dangling = dir.path().join("dangling.jsonl");
    std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
    let looping = dir.path().join("loop.jsonl");
    std::os::unix::fs::symlink(&looping, &looping).unwrap();
    for (chain, says) in [
        (dangling.as_path(), "symbolic link"),
        (looping.as_path(), "symbolic link"),
        (Path::new("/dev/null"), "not a regular file"),
        (dir.path(), "not a regular file"),
    ] {
        let out = cargo_bin_cmd!("chainsmith")
            .args(["mine", "poa", "--quiet", "--chain"])
            .arg(chain)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{chain:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(err.contains(says) && !err.contains("os error 17"), "{err}");
    }
}

/// A proof-of-stake chain whose only output has just staked can never stake again (its new
/// output matures only as blocks come): `mine` says so at once instead of waiting forever, and
/// keeps the block it made.
#[test]
fn a_stake_set_that_cannot_go_on_fails_fast() {
    let dir = TempDir::new().unwrap();
    let mut spec: Value = serde_json::from_str(include_str!("../chains/pos-demo.json")).unwrap();
    spec["name"] = "pos-single".into();
    spec["pos"]["stakeholders"] = serde_json::json!([{"name": "alice", "coins": [1000.0]}]);
    spec["miner"] = "alice".into();
    let path = dir.path().join("single.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    let chain = dir.path().join("single.jsonl");
    let out = StdCommand::new("timeout")
        .args([
            "60",
            env!("CARGO_BIN_EXE_chainsmith"),
            "mine",
            "pos",
            "--quiet",
            "--blocks",
            "3",
            "--spec",
        ])
        .arg(&path)
        .arg("--chain")
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("can ever stake"), "{err}");
    let (code, v) = verify_json(&chain);
    assert_eq!((code, v["height"].as_u64()), (0, Some(1)));
}
