//! Raft end to end through the command line: `mine raft`, `sim raft` with faults (every node's
//! chain verifies and is a prefix of the longest, judged by plain file comparison), the same
//! run twice from one seed, `check raft`, and bad input.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use assert_cmd::cargo_bin_cmd;
use serde_json::Value;

fn chainsmith(args: &[&str]) -> std::process::Output {
    cargo_bin_cmd!("chainsmith").args(args).output().unwrap()
}

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

#[test]
fn mine_raft_with_no_options_orders_twenty_verifiable_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("raft.jsonl");
    let out = chainsmith(&[
        "mine",
        "raft",
        "--json",
        "--quiet",
        "--chain",
        chain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["consensus"], "raft");
    assert_eq!(j["blocks_mined"], 20);
    assert_eq!(j["irreversible_height"], 20);
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 20);
    // Continuing the chain keeps terms and log indices going forward.
    let out = chainsmith(&[
        "mine",
        "raft",
        "--quiet",
        "--blocks",
        "5",
        "--chain",
        chain.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 25);
}

/// Every line of `path` after genesis, as the block hashes.
fn hashes(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["hash"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_faulty_run_leaves_every_node_a_valid_prefix_of_the_longest_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = chainsmith(&[
        "sim",
        "raft",
        "--json",
        "--duration",
        "6s",
        "--load",
        "40",
        "--seed",
        "11",
        "--crash",
        "s1@1s..3s",
        "--crash",
        "s4@2.5s",
        "--partition",
        "s2,s3|s1,s4,s5@3.5s..4.5s",
        "--drop",
        "0.05",
        "--duplicate",
        "0.02",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["safety"]["verdict"], "ok");
    assert!(j["blocks"].as_u64().unwrap() > 20, "{j}");
    assert!(
        j["leaders"].as_array().unwrap().len() >= 2,
        "the crash of the first leader elects another: {j}"
    );
    let files: Vec<String> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 5);
    let chains: Vec<Vec<String>> = files.iter().map(|f| hashes(Path::new(f))).collect();
    let longest = chains.iter().max_by_key(|c| c.len()).unwrap();
    for (f, c) in files.iter().zip(&chains) {
        let out = chainsmith(&["verify", "--json", f]);
        assert!(out.status.success(), "{f}: {out:?}");
        assert_eq!(
            &longest[..c.len()],
            &c[..],
            "{f} is not a prefix of the longest chain"
        );
    }
    // s4 crashed for good at 2.5 s: its chain stops short of the others.
    let s4 = files.iter().position(|f| f.ends_with("s4.jsonl")).unwrap();
    assert!(chains[s4].len() < longest.len());
}

#[test]
fn one_seed_one_run_bit_for_bit() {
    let run = |seed: &str| {
        let out = chainsmith(&[
            "sim",
            "raft",
            "--json",
            "--duration",
            "3s",
            "--seed",
            seed,
            "--drop",
            "0.1",
            "--crash",
            "s2@1s..2s",
        ]);
        assert!(out.status.success(), "{out:?}");
        let j = json(&out);
        (
            j["trace_hash"].as_str().unwrap().to_owned(),
            j["blocks"].clone(),
            j["events"].clone(),
        )
    };
    let a = run("5");
    assert_eq!(a, run("5"));
    assert_ne!(a.0, run("6").0);
}

#[test]
fn check_raft_runs_random_schedules_without_a_violation() {
    let out = chainsmith(&["check", "raft", "--schedules", "24", "--json", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["schedules"], 24);
    assert_eq!(j["violations"], 0);
    assert_eq!(j["not_live"], 0);
    assert!(j["recovery_max_s"].as_f64().unwrap() <= j["liveness_bound_s"].as_f64().unwrap());
    assert!(j["failures"].as_array().unwrap().is_empty());
}

#[test]
fn bad_input_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let unknown = write("u.json", r#"{"seed": 1, "sed": 2}"#);
    let ghost = write("g.json", r#"{"crashes": [{"node": "s9", "at_s": 1}]}"#);
    let twice = write(
        "t.json",
        r#"{"partitions": [{"groups": [["s1","s2"],["s2","s3"]], "from_s": 1, "to_s": 2}]}"#,
    );
    let heartbeat = write("h.json", r#"{"params": {"heartbeat_ms": 200}}"#);
    let forever = write("f.json", r#"{"duration_s": 1e30}"#);
    let backwards = write("b.json", r#"{"duration_s": -5}"#);
    let crowd = write("c.json", r#"{"nodes": 2000000}"#);
    let overlap = write(
        "o.json",
        r#"{"crashes": [{"node": "s1", "at_s": 1, "restart_s": 5}, {"node": "s1", "at_s": 2, "restart_s": 3}]}"#,
    );
    let slow_disk = write("d.json", r#"{"network": {"persist_ms": 100}}"#);
    let cases: [(&[&str], &str); 13] = [
        (
            &["sim", "raft", "--scenario", &unknown],
            "unknown field `sed`",
        ),
        (&["sim", "raft", "--scenario", &ghost], "crashes[0].node"),
        (
            &["sim", "raft", "--scenario", &twice],
            "partitions[0].groups[1][0]",
        ),
        (
            &["sim", "raft", "--scenario", &heartbeat],
            "raft.heartbeat_ms",
        ),
        (
            &["sim", "raft", "--election", "300..150"],
            "minimum is above the maximum",
        ),
        (&["sim", "raft", "--nodes", "0"], "--nodes"),
        (&["sim", "pow"], "not an ordering protocol"),
        (&["sim", "raft", "--crash", "s1"], "NODE@T"),
        (&["sim", "raft", "--scenario", &forever], "duration_s"),
        (&["sim", "raft", "--scenario", &backwards], "duration_s"),
        (&["sim", "raft", "--scenario", &crowd], "nodes"),
        (&["sim", "raft", "--scenario", &overlap], "crashes[1]"),
        (&["sim", "raft", "--scenario", &slow_disk], "persist_ms"),
    ];
    for (args, needle) in cases {
        let out = chainsmith(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}

#[test]
fn pre_vote_and_check_quorum_keep_a_rejoining_node_from_deposing_the_leader() {
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sim",
            "raft",
            "--json",
            "--duration",
            "6s",
            "--partition",
            "s5|s1,s2,s3,s4@1s..4s",
        ];
        args.extend_from_slice(extra);
        let out = chainsmith(&args);
        assert!(out.status.success(), "{out:?}");
        json(&out)["leaders"].as_array().unwrap().clone()
    };
    // Cut off, s5 campaigns again and again, raising its term; back, its term deposes s1.
    let bare = run(&["--no-pre-vote", "--no-check-quorum"]);
    assert!(bare.len() >= 2, "{bare:?}");
    assert!(
        bare.last().unwrap()["term"].as_u64().unwrap() > 5,
        "{bare:?}"
    );
    // With pre-vote its campaigns never raise a term, and s1 leads throughout.
    let guarded = run(&[]);
    assert_eq!(guarded.len(), 1, "{guarded:?}");
    assert_eq!(guarded[0]["term"], 1);
}
