//! ZAB end to end through the command line: `mine zab` and `verify` (a certificate tampered
//! with at one height is rejected at that height), `sim zab` with the leader crashing (every
//! server's chain verifies and is a prefix of the longest, judged by plain file comparison),
//! `check zab`, and bad input.
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
        "zab",
        "--json",
        "--quiet",
        "--blocks",
        blocks,
        "--chain",
        chain.to_str().unwrap(),
    ])
}

#[test]
fn mine_zab_makes_a_chain_verify_accepts_and_tampering_is_caught_at_its_height() {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join("zab.jsonl");
    let out = mine(&chain, "20");
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["consensus"], "zab");
    assert_eq!(j["blocks_mined"], 20);
    assert_eq!(j["irreversible_height"], 20, "final on commit");
    assert!(
        j["signatures"].as_u64().unwrap() >= 60,
        "a majority of 5 per block: {j}"
    );
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 20);
    // Continuing the chain: a new ensemble, a new epoch from counter 1.
    assert!(mine(&chain, "5").status.success());
    let out = chainsmith(&["verify", "--json", chain.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(json(&out)["height"], 25);

    let text = std::fs::read_to_string(&chain).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let line = |h: usize| -> Value { serde_json::from_str(lines[h]).unwrap() };
    let zab = |h: usize| line(h)["txs"][1].clone();
    assert_eq!(zab(20)["epoch"], 1);
    assert_eq!(zab(20)["counter"], 20);
    assert_eq!(zab(21)["epoch"], 2);
    assert_eq!(zab(21)["counter"], 1);
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
    let leader = zab(7)["leader"].clone();
    // Down to two signatures, the leader's kept.
    let err = tampered(
        &|v| {
            let sigs = v["certificate"]["signatures"].as_array_mut().unwrap();
            sigs.sort_by_key(|s| s["signer"] != leader);
            sigs.truncate(2);
        },
        "too few",
    );
    assert!(err.contains("2 signatures; 3 are needed"), "{err}");
    let err = tampered(
        &|v| {
            let sigs = v["certificate"]["signatures"].as_array_mut().unwrap();
            sigs[1] = sigs[0].clone();
        },
        "duplicate",
    );
    assert!(err.contains("signed twice"), "{err}");
    // A signature over another block (height 8's zxid and hash, by the same signer).
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
        "another block",
    );
    assert!(err.contains("over the ack (zxid, block hash)"), "{err}");
    let err = tampered(
        &|v| {
            let sigs = v["certificate"]["signatures"].as_array_mut().unwrap();
            sigs.retain(|s| s["signer"] != leader);
        },
        "no leader",
    );
    assert!(err.contains("lacks the leader's signature"), "{err}");
    let err = tampered(
        &|v| {
            v["certificate"]["view"] = 3.into();
        },
        "pbft-style",
    );
    assert!(err.contains("no view or sequence number"), "{err}");
}

#[test]
fn sim_zab_survives_a_leader_crash_and_every_chain_is_a_verified_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    // s5 (the highest id) leads epoch 1; it crashes and comes back.
    let out = chainsmith(&[
        "sim",
        "zab",
        "--crash",
        "s5@1s..2.5s",
        "--load",
        "50",
        "--duration",
        "4s",
        "--json",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["rule"], "zab");
    assert_eq!(j["safety"]["verdict"], "ok", "{j}");
    let epochs = j["epochs"].as_array().unwrap();
    assert!(epochs.len() >= 2, "a new epoch after the crash: {j}");
    assert_eq!(epochs[0]["leader"], "s5");
    assert_ne!(epochs[1]["leader"], "s5");
    assert!(j["blocks"].as_u64().unwrap() >= 25, "{j}");
    assert!(j["leaderless_s"].as_f64().unwrap() < 1.0, "{j}");
    let kinds: Vec<&str> = j["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    for k in [
        "notification",
        "leaderinfo",
        "diff",
        "newleader",
        "proposal",
        "ack",
        "commit",
    ] {
        assert!(kinds.contains(&k), "{k}: {kinds:?}");
    }
    let files: Vec<String> = (1..=5)
        .map(|i| std::fs::read_to_string(out_dir.join(format!("s{i}.jsonl"))).unwrap())
        .collect();
    let longest = files.iter().max_by_key(|f| f.len()).unwrap();
    for (i, f) in files.iter().enumerate() {
        let strip = |t: &str| -> Vec<String> {
            // The certificate a server stores is the one it learned: compare blocks by hash.
            t.lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap()["hash"].to_string())
                .collect()
        };
        let (mine, all) = (strip(f), strip(longest));
        assert!(all.starts_with(&mine), "s{} is not a prefix", i + 1);
        let path = out_dir.join(format!("s{}.jsonl", i + 1));
        let v = chainsmith(&["verify", "--json", path.to_str().unwrap()]);
        assert!(v.status.success(), "s{}: {v:?}", i + 1);
    }
}

#[test]
fn check_zab_runs_fault_schedules_without_a_violation() {
    let out = chainsmith(&["check", "zab", "--schedules", "8", "--json", "--quiet"]);
    assert!(out.status.success(), "{out:?}");
    let j = json(&out);
    assert_eq!(j["rule"], "zab");
    assert_eq!(j["violations"], 0);
    assert_eq!(j["not_live"], 0);
}

#[test]
fn bad_input_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let spec: Value = serde_json::from_str(include_str!("../chains/zab-demo.json")).unwrap();
    let mut bad = spec.clone();
    bad["name"] = "zab-bad".into();
    bad["zab"]["sync_limit"] = 1.into();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, bad.to_string()).unwrap();
    for (args, needle) in [
        (
            vec!["sim", "zab", "--byzantine", "s1:silent"],
            "not a zab option",
        ),
        (vec!["sim", "zab", "--no-pre-vote"], "not a zab option"),
        (vec!["sim", "zab", "--allow-unsafe"], "not a zab option"),
        (
            vec!["sim", "zab", "--spec", path.to_str().unwrap()],
            "zab.sync_limit",
        ),
        (vec!["sim", "zab", "--crash", "s9@1s"], "s9"),
    ] {
        let out = chainsmith(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
    }
}
