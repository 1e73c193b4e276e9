//! The `--json` reports of the simulator's commands keep their keys and values (the simulator
//! is deterministic: one seed, one run), and their long runs log progress without a terminal.
#![allow(clippy::unwrap_used)]

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;

fn json(args: &[&str]) -> Value {
    let out = cargo_bin_cmd!("chainsmith").args(args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn sim_json_is_stable() {
    insta::assert_json_snapshot!(
        "sim_raft_json",
        json(&["sim", "raft", "--blocks", "3", "--json"])
    );
    insta::assert_json_snapshot!(
        "sim_pbft_json",
        json(&[
            "sim",
            "pbft",
            "--blocks",
            "3",
            "--byzantine",
            "s4:silent",
            "--json"
        ])
    );
}

#[test]
fn check_json_is_stable_but_for_its_timing() {
    let mut v = json(&["check", "raft", "--schedules", "3", "--json", "-t", "1"]);
    for k in ["elapsed_s", "events_per_s"] {
        assert!(v[k].as_f64().unwrap() > 0.0, "{k}");
        v[k] = format!("[{k}]").into();
    }
    insta::assert_json_snapshot!("check_raft_json", v);
}

#[test]
fn elections_json_is_stable() {
    insta::assert_json_snapshot!(
        "elections_json",
        json(&["elections", "--trials", "3", "--json", "-t", "1"])
    );
}

#[test]
fn long_campaigns_log_progress_without_a_terminal() {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["check", "raft", "--schedules", "10", "-t", "1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let steps: Vec<&str> = stderr
        .lines()
        .filter_map(|l| l.split_once("] ").map(|(_, rest)| rest))
        .collect();
    let want: Vec<String> = (1..=10)
        .map(|i| format!("{i}/10 schedules ({} %)", i * 10))
        .collect();
    assert_eq!(steps, want, "{stderr}");
    let quiet = cargo_bin_cmd!("chainsmith")
        .args(["check", "raft", "--schedules", "2", "-q"])
        .output()
        .unwrap();
    assert!(quiet.stderr.is_empty());
}

#[test]
fn every_text_report_fits_80_columns() {
    let runs: [&[&str]; 8] = [
        &["sim", "raft", "--blocks", "3"],
        &[
            "sim",
            "pbft",
            "--blocks",
            "3",
            "--byzantine",
            "s2:equivocate",
        ],
        &["sim", "paxos", "--blocks", "3"],
        &["sim", "zab", "--blocks", "3"],
        &["sim", "kafka", "--blocks", "3"],
        &["sim", "--all", "--duration", "3s"],
        &["check", "zab", "--schedules", "2", "-q"],
        &["elections", "--trials", "2", "-q"],
    ];
    for args in runs {
        let out = cargo_bin_cmd!("chainsmith").args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let wide: Vec<&str> = text.lines().filter(|l| l.chars().count() > 80).collect();
        assert!(wide.is_empty(), "{args:?}: {wide:#?}");
    }
}
