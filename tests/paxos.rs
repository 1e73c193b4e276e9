//! Multi-Paxos end to end through the command line: `mine paxos` (a chain `verify` accepts,
//! continued), `sim paxos` with faults (every node's chain verifies and is a prefix of the
//! longest), the duel without back-off, `check paxos`, a tampered certificate refused by
//! `verify` at its height, and bad input.
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
fn mine_paxos_makes_a_certified_chain_that_verify_accepts_and_continues_it() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("paxos.jsonl");
    let path = chain.to_str().unwrap();
    let out = chainsmith(&["mine", "paxos", "--json", "--quiet", "--chain", path]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["consensus"], "paxos");
    assert_eq!(j["blocks_mined"], 20);
    assert_eq!(j["irreversible_height"], 20);
    // A majority of five signs each block's 2b.
    assert_eq!(j["signatures"], 60);
    let out = chainsmith(&["verify", "--json", path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 20);
    // Continuing the chain keeps slots rising.
    let out = chainsmith(&["mine", "paxos", "--quiet", "--blocks", "5", "--chain", path]);
    assert!(out.status.success(), "{out:?}");
    let out = chainsmith(&["verify", "--json", path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 25);
    let lines: Vec<Value> = std::fs::read_to_string(&chain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let slots: Vec<u64> = lines[1..]
        .iter()
        .map(|l| l["certificate"]["sequence"].as_u64().unwrap())
        .collect();
    assert!(slots.windows(2).all(|w| w[0] < w[1]), "{slots:?}");

    // One signature of block 7's certificate dropped: below a majority, refused at height 7.
    let mut tampered = lines.clone();
    tampered[7]["certificate"]["signatures"]
        .as_array_mut()
        .unwrap()
        .pop();
    let bad = dir.path().join("bad.jsonl");
    let text: Vec<String> = tampered.iter().map(Value::to_string).collect();
    std::fs::write(&bad, text.join("\n") + "\n").unwrap();
    let out = chainsmith(&["verify", bad.to_str().unwrap()]);
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("height 7") || err.contains("block 7"), "{err}");
    assert!(err.contains("2 signatures; 3 are needed"), "{err}");
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
        "paxos",
        "--json",
        "--duration",
        "6s",
        "--load",
        "40",
        "--seed",
        "11",
        "--crash",
        "s5@1s..3s",
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
    assert_eq!(j["livelock"], false);
    // s5 led first (the highest ballot of round 1); its crash made another leader.
    let ballots = j["ballots"].as_array().unwrap();
    assert_eq!(ballots[0]["leader"], "s5");
    assert!(ballots.len() >= 2, "{j}");
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
        assert_eq!(&longest[..c.len()], &c[..], "{f} is not a prefix");
    }
    let s4 = files.iter().position(|f| f.ends_with("s4.jsonl")).unwrap();
    assert!(chains[s4].len() < longest.len());
}

#[test]
fn without_back_off_proposers_duel_and_no_block_is_chosen_with_it_they_converge() {
    let run = |extra: &[&str]| {
        let mut args = vec!["sim", "paxos", "--duration", "2s"];
        args.extend_from_slice(extra);
        chainsmith(&args)
    };
    let out = run(&["--no-backoff"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("LIVELOCK           no block chosen"),
        "{text}"
    );
    assert!(text.contains("blocks committed            0"), "{text}");
    let j = json(&run(&["--no-backoff", "--json"]));
    assert_eq!(
        (j["blocks"].as_u64(), j["livelock"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(j["preemptions"].as_u64().unwrap() > 100, "{j}");
    assert_eq!(j["safety"]["verdict"], "ok");
    let j = json(&run(&["--json"]));
    assert_eq!(j["livelock"], false);
    assert!(j["blocks"].as_u64().unwrap() >= 15, "{j}");
    assert_eq!(j["ballots"].as_array().unwrap().len(), 1, "{j}");
}

#[test]
fn one_seed_one_run_bit_for_bit() {
    let run = |seed: &str| {
        let out = chainsmith(&[
            "sim",
            "paxos",
            "--json",
            "--duration",
            "3s",
            "--seed",
            seed,
            "--drop",
            "0.1",
            "--crash",
            "s5@1s..2s",
        ]);
        assert!(out.status.success(), "{out:?}");
        let j = json(&out);
        (
            j["trace_hash"].as_str().unwrap().to_owned(),
            j["blocks"].clone(),
        )
    };
    let a = run("5");
    assert_eq!(a, run("5"));
    assert_ne!(a.0, run("6").0);
}

#[test]
fn check_paxos_runs_random_schedules_without_a_violation() {
    let out = chainsmith(&["check", "paxos", "--schedules", "16", "--json", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["schedules"], 16);
    assert_eq!(j["violations"], 0);
    assert_eq!(j["not_live"], 0);
    assert!(j["recovery_max_s"].as_f64().unwrap() <= j["liveness_bound_s"].as_f64().unwrap());
}

#[test]
fn bad_input_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let heartbeat = write("h.json", r#"{"params": {"heartbeat_ms": 200}}"#);
    let backoff = write("b.json", r#"{"params": {"backoff_ms": 0}}"#);
    let unknown = write("u.json", r#"{"params": {"pre_vote": false}}"#);
    let cases: [(&[&str], &str); 8] = [
        (
            &["sim", "paxos", "--scenario", &heartbeat],
            "paxos.heartbeat_ms",
        ),
        (
            &["sim", "paxos", "--scenario", &backoff],
            "paxos.backoff_ms",
        ),
        (
            &["sim", "paxos", "--scenario", &unknown],
            "unknown field `pre_vote`",
        ),
        (
            &["sim", "paxos", "--election", "300..150"],
            "minimum is above the maximum",
        ),
        (&["sim", "paxos", "--no-pre-vote"], "not a paxos option"),
        (
            &["sim", "paxos", "--byzantine", "s1:silent"],
            "not a paxos option",
        ),
        (&["sim", "raft", "--no-backoff"], "not a raft option"),
        (&["sim", "pbft", "--no-backoff"], "not a pbft option"),
    ];
    for (args, needle) in cases {
        let out = chainsmith(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        // The first line says what is wrong (clap adds a usage hint below its own).
        assert!(
            err.lines().next().unwrap().contains(needle),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
}
