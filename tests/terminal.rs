//! What a user sees at the terminal: `bench`'s banner, table and JSON report (a snapshot with
//! the run-dependent values redacted), tables within 80 columns, `--spec` typos answered with
//! the built-in names and the nearest one, a halted Clique chain's exit status.
#![allow(clippy::unwrap_used)]

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use tempfile::TempDir;

fn stdout_of(args: &[&str]) -> String {
    let out = cargo_bin_cmd!("chainsmith").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A redaction that checks the value is a non-negative integer before hiding it.
fn integer(value: insta::internals::Content, _: insta::internals::ContentPath<'_>) -> String {
    assert!(value.as_u64().is_some(), "{value:?} is not an integer");
    "[integer]".to_owned()
}

/// A redaction that checks the value is a number before hiding it.
fn number(value: insta::internals::Content, _: insta::internals::ContentPath<'_>) -> String {
    assert!(value.as_f64().is_some(), "{value:?} is not a number");
    "[number]".to_owned()
}

#[test]
fn bench_json_keys_are_stable() {
    let text = stdout_of(&[
        "bench",
        "--seconds",
        "0.05",
        "--backend",
        "soft",
        "--threads",
        "1",
        "--json",
        "--quiet",
    ]);
    let v: Value = serde_json::from_str(&text).unwrap();
    insta::assert_json_snapshot!("bench_json", v, {
        ".cpu.model" => "[model]",
        ".cpu.cores" => insta::dynamic_redaction(integer),
        ".cpu.threads" => insta::dynamic_redaction(integer),
        ".cpu.features" => "[features]",
        ".cpu.backend" => "[backend]",
        ".results[].hashes" => insta::dynamic_redaction(integer),
        ".results[].seconds" => insta::dynamic_redaction(number),
        ".results[].hash_rate" => insta::dynamic_redaction(number),
        ".results[].ratio_vs_nonce" => insta::dynamic_redaction(number),
        ".best.hash_rate" => insta::dynamic_redaction(number),
        ".best_kernel.hash_rate" => insta::dynamic_redaction(number),
    });
    // The features are the vector backends' names, and the detected backend is one of them
    // or the portable one.
    let features: Vec<&str> = v["cpu"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(
        features
            .iter()
            .all(|f| ["avx512", "sha-ni", "avx2"].contains(f))
    );
    let backend = v["cpu"]["backend"].as_str().unwrap();
    assert!(
        backend == "soft" || features.contains(&backend),
        "{backend}"
    );
}

#[test]
fn bench_text_names_the_cpu_and_fits_80_columns() {
    let text = stdout_of(&["bench", "--seconds", "0.05", "--threads", "2", "--quiet"]);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("CPU ") && lines[0].contains("cores"),
        "{text}"
    );
    for feature in ["SHA-NI", "AVX2", "AVX-512"] {
        assert!(lines[1].contains(feature), "{text}");
    }
    assert!(lines[2].starts_with("backend "), "{text}");
    // The ratio is to soft, as JSON's `ratio_vs_soft` says.
    assert!(text.contains("× soft"), "{text}");
    // Each backend's nonce and kernel rows, the kernel row's rate also as a share of the
    // nonce search's.
    assert!(text.contains("× nonce"), "{text}");
    for search in ["nonce ", "kernel "] {
        assert!(lines.iter().any(|l| l.starts_with(search)), "{text}");
    }
    assert!(lines[lines.len() - 2].starts_with("best nonce: "), "{text}");
    assert!(
        lines[lines.len() - 1].starts_with("best kernel: "),
        "{text}"
    );
    assert!(text.contains("H/s"), "{text}");
    for line in &lines {
        assert!(line.chars().count() <= 80, "wider than 80 columns: {line}");
        assert_eq!(line.trim_end(), *line, "trailing spaces: {line:?}");
    }
}

#[test]
fn a_misspelt_spec_lists_the_builtins_and_suggests_the_nearest() {
    let dir = TempDir::new().unwrap();
    let out = cargo_bin_cmd!("chainsmith")
        .current_dir(dir.path())
        .args(["mine", "pos", "--spec", "pos-dmeo"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("did you mean pos-demo?"), "{err}");
    for name in chainsmith::chain::spec::builtin_names() {
        assert!(err.contains(name), "{name} missing: {err}");
    }
    // Nothing near: the list, no guess.
    let out = cargo_bin_cmd!("chainsmith")
        .current_dir(dir.path())
        .args(["mine", "pow", "--spec", "bitcoin-mainnet"])
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("built-in: pow-demo") && !err.contains("did you mean"),
        "{err}"
    );
}

#[test]
fn a_dpos_schedule_with_no_online_producer_exits_1() {
    let dir = TempDir::new().unwrap();
    let offline: Vec<String> = (1..=100).map(|i| format!("bp{i:03}")).collect();
    let out = cargo_bin_cmd!("chainsmith")
        .args(["mine", "dpos", "--quiet", "--blocks", "2", "--offline"])
        .args(&offline)
        .arg("--chain")
        .arg(dir.path().join("d.jsonl"))
        .output()
        .unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no online producer is scheduled"), "{err}");
}

#[test]
fn a_halted_clique_chain_exits_1_after_keeping_its_blocks() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("halt.jsonl");
    let out = cargo_bin_cmd!("chainsmith")
        .args([
            "mine",
            "poa",
            "--quiet",
            "--offline",
            "alice",
            "bob",
            "carol",
        ])
        .arg("--chain")
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("halts at height 3"), "{err}");
    // The blocks sealed before the halt are written and valid.
    cargo_bin_cmd!("chainsmith")
        .args(["verify", "--quiet"])
        .arg(&chain)
        .assert()
        .success();
    // A usage error is still 2.
    cargo_bin_cmd!("chainsmith")
        .args(["mine", "poa", "--offline", "mallory"])
        .arg("--chain")
        .arg(dir.path().join("other.jsonl"))
        .assert()
        .code(2);
}
