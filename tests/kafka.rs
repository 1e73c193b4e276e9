//! Kafka end to end through the command line: `mine kafka` and `verify` (a certificate
//! tampered with at one height is rejected at that height), `sim kafka` with faults (every
//! replica's chain verifies and is a prefix of the longest), unclean leader election losing
//! committed blocks and the report counting them, `check kafka`, and bad input.
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
fn mine_kafka_orders_blocks_whose_certificates_verify_and_tampering_is_caught_at_its_height() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("kafka.jsonl");
    let path = chain.to_str().unwrap();
    let out = chainsmith(&["mine", "kafka", "--json", "--quiet", "--chain", path]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["consensus"], "kafka");
    assert_eq!(j["blocks_mined"], 20);
    assert_eq!(j["irreversible_height"], 20);
    let out = chainsmith(&["verify", "--json", path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 20);
    // Continuing the chain: epochs and offsets go on.
    let out = chainsmith(&["mine", "kafka", "--quiet", "--blocks", "5", "--chain", path]);
    assert!(out.status.success(), "{out:?}");
    let out = chainsmith(&["verify", "--json", path]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 25);

    let text = std::fs::read_to_string(&chain).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = |h: usize| -> Value { serde_json::from_str(lines[h]).unwrap() };
    // The leader and both followers acked every block.
    assert_eq!(
        line(7)["certificate"]["signatures"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let tampered = |edit: &dyn Fn(&mut Value), why: &str| {
        let mut v = line(7);
        edit(&mut v);
        let mut copy = lines.clone();
        let s = v.to_string();
        copy[7] = &s;
        let path = dir.path().join("tampered.jsonl");
        std::fs::write(&path, copy.join("\n") + "\n").unwrap();
        let out = chainsmith(&["verify", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{why}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(err.contains("height 7"), "{why}: {err}");
        err
    };
    let sigs = |v: &mut Value| -> Vec<Value> {
        v["certificate"]["signatures"].as_array().unwrap().clone()
    };
    let set = |v: &mut Value, s: Vec<Value>| v["certificate"]["signatures"] = Value::Array(s);
    let err = tampered(
        &|v| {
            let s = sigs(v);
            set(v, s[..1].to_vec());
        },
        "one signature",
    );
    assert!(err.contains("1 signatures; 2 are needed"), "{err}");
    let err = tampered(
        &|v| {
            let mut s = sigs(v);
            s[2] = s[0].clone();
            set(v, s);
        },
        "duplicate",
    );
    assert!(err.contains("signed twice"), "{err}");
    let other = line(8);
    let err = tampered(
        &|v| {
            let mut s = sigs(v);
            let theirs = other["certificate"]["signatures"].as_array().unwrap();
            s[1] = theirs
                .iter()
                .find(|t| t["signer"] == s[1]["signer"])
                .unwrap()
                .clone();
            set(v, s);
        },
        "another block's ack",
    );
    assert!(err.contains("signature over the ack"), "{err}");
    let err = tampered(
        &|v| v["certificate"]["signatures"][1]["signer"] = Value::String("11".repeat(32)),
        "non-member",
    );
    assert!(err.contains("not a member"), "{err}");
    let err = tampered(
        &|v| {
            let s = sigs(v);
            set(v, s[1..].to_vec());
        },
        "the leader's ack removed",
    );
    assert!(err.contains("lacks the leader"), "{err}");
    let err = tampered(&|v| v["certificate"]["view"] = Value::from(3), "a view");
    assert!(err.contains("names no view"), "{err}");
}

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
fn a_faulty_run_leaves_every_replica_a_valid_prefix_of_the_longest_chain() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = chainsmith(&[
        "sim",
        "kafka",
        "--json",
        "--duration",
        "5s",
        "--load",
        "40",
        "--seed",
        "4",
        "--crash",
        "s1@1s..2.5s",
        "--partition",
        "s3|s1,s2@3s..3.8s",
        "--drop",
        "0.05",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["safety"]["verdict"], "ok", "{j}");
    assert!(j["blocks"].as_u64().unwrap() > 15, "{j}");
    assert!(j["leaders"].as_array().unwrap().len() >= 2, "{j}");
    assert!(j["isr_shrinks"].as_u64().unwrap() >= 1, "{j}");
    assert_eq!(j["lost_committed"], 0);
    let files: Vec<String> = j["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(files.len(), 3);
    let chains: Vec<Vec<String>> = files.iter().map(|f| hashes(Path::new(f))).collect();
    let longest = chains.iter().max_by_key(|c| c.len()).unwrap();
    for (f, c) in files.iter().zip(&chains) {
        let out = chainsmith(&["verify", "--json", f]);
        assert!(out.status.success(), "{f}: {out:?}");
        assert_eq!(&longest[..c.len()], &c[..], "{f} is not a prefix");
    }
}

#[test]
fn unclean_leader_election_loses_committed_blocks_and_the_report_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    // Five brokers, the partition on s1–s3; s3 falls behind, s1 and s2 die, s3 returns.
    let scenario = dir.path().join("unclean.json");
    std::fs::write(
        &scenario,
        r#"{"nodes": 5, "duration_s": 5, "load_tps": 30,
            "params": {"replication_factor": 3},
            "crashes": [{"node": "s3", "at_s": 1, "restart_s": 3.5},
                        {"node": "s1", "at_s": 3}, {"node": "s2", "at_s": 3}]}"#,
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec!["sim", "kafka", "--json", "--scenario"];
        args.push(scenario.to_str().unwrap());
        args.extend_from_slice(extra);
        let out = chainsmith(&args);
        assert!(out.status.success(), "{out:?}");
        json(&out)
    };
    let unclean = run(&["--unclean-leader-election"]);
    assert_eq!(unclean["safety"]["verdict"], "ok", "{unclean}");
    assert_eq!(unclean["unclean_elections"], 1);
    let lost = unclean["lost_committed"].as_u64().unwrap();
    assert!(lost >= 10, "{unclean}");
    let clean = run(&[]);
    assert_eq!(clean["lost_committed"], 0);
    assert_eq!(clean["unclean_elections"], 0);
    // The text report says it too.
    let out = chainsmith(&[
        "sim",
        "kafka",
        "--scenario",
        scenario.to_str().unwrap(),
        "--unclean-leader-election",
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .any(|l| l.trim_start().starts_with("lost committed")
                && l.split_whitespace().nth(2) == Some(lost.to_string().as_str())),
        "{text}"
    );
}

#[test]
fn check_kafka_runs_random_schedules_without_a_violation() {
    let out = chainsmith(&["check", "kafka", "--schedules", "16", "--json", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["violations"], 0);
    assert_eq!(j["not_live"], 0);
}

#[test]
fn bad_input_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let min_isr = write("m.json", r#"{"params": {"min_insync_replicas": 4}}"#);
    let rf = write("r.json", r#"{"params": {"replication_factor": 9}}"#);
    let lag = write("l.json", r#"{"params": {"replica_lag_time_max_ms": 150}}"#);
    let cases: [(&[&str], &str); 6] = [
        (
            &["sim", "kafka", "--scenario", &min_isr],
            "kafka.min_insync_replicas",
        ),
        (
            &["sim", "kafka", "--scenario", &rf],
            "kafka.replication_factor",
        ),
        (
            &["sim", "kafka", "--scenario", &lag],
            "kafka.replica_lag_time_max_ms",
        ),
        (&["sim", "kafka", "--no-pre-vote"], "not a kafka option"),
        (
            &["sim", "raft", "--unclean-leader-election"],
            "not a raft option",
        ),
        (&["sim", "pbft", "--no-leader-epochs"], "not a pbft option"),
    ];
    for (args, needle) in cases {
        let out = chainsmith(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}
