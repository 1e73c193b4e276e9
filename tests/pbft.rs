//! PBFT end to end through the command line: `mine pbft` and `verify` (a certificate tampered
//! with at one height is rejected at that height), `sim pbft` with Byzantine replicas (every
//! honest replica's chain verifies and is a prefix of the longest, judged by plain file
//! comparison), `f + 1` twins caught disagreeing, the paper's message counts in `--json`,
//! `check pbft`, and bad input.
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

fn mine(chain: &Path, blocks: &str) -> std::process::Output {
    chainsmith(&[
        "mine",
        "pbft",
        "--json",
        "--quiet",
        "--blocks",
        blocks,
        "--chain",
        chain.to_str().unwrap(),
    ])
}

#[test]
fn mine_pbft_orders_blocks_whose_certificates_verify_and_tampering_is_caught_at_its_height() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("pbft.jsonl");
    let out = mine(&chain, "20");
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["consensus"], "pbft");
    assert_eq!(j["blocks_mined"], 20);
    assert_eq!(j["irreversible_height"], 20, "final on commit");
    assert_eq!(j["signatures"], 60, "a certificate of 2f + 1 = 3 per block");
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 20);
    // Continuing the chain: sequence numbers go on.
    assert!(mine(&chain, "5").status.success());
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 25);

    let text = std::fs::read_to_string(&chain).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = |h: usize| -> Value { serde_json::from_str(lines[h]).unwrap() };
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
    // 2f signatures.
    let err = tampered(
        &|v| {
            v["certificate"]["signatures"].as_array_mut().unwrap().pop();
        },
        "2f signatures",
    );
    assert!(err.contains("2 signatures; 3 are needed"), "{err}");
    // A duplicate signer.
    let err = tampered(
        &|v| {
            let sigs = v["certificate"]["signatures"].as_array_mut().unwrap();
            sigs[2] = sigs[0].clone();
        },
        "duplicate",
    );
    assert!(err.contains("signed twice"), "{err}");
    // A signature over another block's hash (height 8's, by the same signer).
    let other = line(8);
    let err = tampered(
        &|v| {
            let sigs = v["certificate"]["signatures"].as_array_mut().unwrap();
            let theirs = other["certificate"]["signatures"].as_array().unwrap();
            let same = theirs
                .iter()
                .find(|s| s["signer"] == sigs[0]["signer"])
                .unwrap();
            sigs[0] = same.clone();
        },
        "another hash",
    );
    assert!(
        err.contains("not") && err.contains("signature over"),
        "{err}"
    );
    // A non-member: a key from another spec's wallet seed.
    let err = tampered(
        &|v| {
            v["certificate"]["signatures"][1]["signer"] = Value::String("11".repeat(32));
        },
        "non-member",
    );
    assert!(err.contains("not a member"), "{err}");
    // Another view than the commits were signed in.
    tampered(
        &|v| {
            let view = v["certificate"]["view"].as_u64().unwrap();
            v["certificate"]["view"] = Value::from(view + 1);
        },
        "view",
    );
}

/// Every line of `path`, as the block hashes.
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
fn byzantine_replicas_up_to_f_leave_every_honest_chain_a_valid_prefix_of_the_longest() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out = chainsmith(&[
        "sim",
        "pbft",
        "--json",
        "--nodes",
        "7",
        "--byzantine",
        "s1:equivocate",
        "--byzantine",
        "s3:forge",
        "--crash",
        "s5@2s..3s",
        "--duration",
        "10s",
        "--load",
        "40",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    // Two Byzantine replicas and a crash: three faults among seven tolerate two at once, but
    // the crash is a third replica only for a second; safety must hold regardless.
    let j = json(&out);
    assert_eq!(j["safety"]["verdict"], "ok", "{j}");
    assert!(out.status.success());
    assert!(
        j["view_changes"].as_u64().unwrap() >= 1,
        "the equivocating primary is replaced"
    );
    assert!(j["blocks"].as_u64().unwrap() >= 15, "{j}");
    let honest = ["s2", "s4", "s5", "s6", "s7"];
    let chains: Vec<Vec<String>> = honest
        .iter()
        .map(|n| {
            let path = out_dir.join(format!("{n}.jsonl"));
            let v = chainsmith(&["verify", path.to_str().unwrap()]);
            assert!(v.status.success(), "{n}: {v:?}");
            hashes(&path)
        })
        .collect();
    let longest = chains.iter().max_by_key(|c| c.len()).unwrap();
    for (n, c) in honest.iter().zip(&chains) {
        assert_eq!(
            &longest[..c.len()],
            &c[..],
            "{n} is a prefix of the longest"
        );
        assert!(c.len() > 10, "{n} committed: {}", c.len());
    }
}

#[test]
fn f_plus_1_twins_break_agreement_only_with_allow_unsafe_and_the_report_says_where() {
    let args = [
        "sim",
        "pbft",
        "--byzantine",
        "s1:twins",
        "--byzantine",
        "s2:twins",
    ];
    let refused = chainsmith(&args);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("tolerate 1") && err.contains("--allow-unsafe"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let mut unsafe_args = args.to_vec();
    unsafe_args.extend(["--allow-unsafe", "--json"]);
    let out = chainsmith(&unsafe_args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let j = json(&out);
    assert_eq!(j["safety"]["verdict"], "violated");
    assert_eq!(j["safety"]["property"], "agreement");
    assert_eq!(j["safety"]["nodes"], serde_json::json!(["s3", "s4"]));
    let detail = j["safety"]["detail"].as_str().unwrap();
    assert!(
        detail.contains("sequence") && detail.matches("block").count() == 2,
        "{detail}"
    );
}

#[test]
fn sim_json_reports_the_papers_message_counts_by_kind() {
    // No faults: per block, (n − 1) pre-prepares, (n − 1)² prepares, n(n − 1) commits.
    for (n, per_block) in [(4_u64, 24.0), (7, 84.0), (10, 180.0)] {
        let out = chainsmith(&[
            "sim",
            "pbft",
            "--json",
            "--nodes",
            &n.to_string(),
            "--blocks",
            "12",
        ]);
        assert!(out.status.success(), "{out:?}");
        let j = json(&out);
        let kind = |k: &str| -> f64 {
            j["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["kind"] == k)
                .map_or(0.0, |m| m["sent"].as_f64().unwrap())
        };
        let blocks = j["blocks"].as_f64().unwrap();
        // The last block may still be in flight when the run stops: count proposals made.
        let proposals = kind("pre-prepare") / (n - 1) as f64;
        assert!(proposals >= blocks && proposals <= blocks + 1.0, "{j}");
        let normal = kind("pre-prepare") + kind("prepare") + kind("commit");
        let per = normal / proposals;
        assert!(
            (per - per_block).abs() < 0.5 * n as f64,
            "n = {n}: {per} per block, {j}"
        );
        assert_eq!(kind("prepare"), kind("pre-prepare") * (n - 1) as f64);
        assert_eq!(j["signatures_per_block"], (2 * ((n - 1) / 3) + 1) as f64);
    }
}

#[test]
fn check_pbft_runs_byzantine_schedules_without_a_violation() {
    let out = chainsmith(&["check", "pbft", "--schedules", "12", "--json", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["rule"], "pbft");
    assert_eq!(j["violations"], 0);
    assert_eq!(j["not_live"], 0);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    for (args, needle) in [
        (vec!["sim", "pbft", "--nodes", "3"], "4 to 100"),
        (
            vec!["sim", "pbft", "--byzantine", "s1:liar"],
            "unknown behaviour",
        ),
        (vec!["sim", "pbft", "--byzantine", "s9:silent"], "no node"),
        (vec!["sim", "pbft", "--byzantine", "s1"], "NODE:BEHAVIOUR"),
        (
            vec!["sim", "raft", "--byzantine", "s1:silent"],
            "not a raft option",
        ),
        (vec!["sim", "pbft", "--no-pre-vote"], "not a pbft option"),
    ] {
        let out = chainsmith(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
