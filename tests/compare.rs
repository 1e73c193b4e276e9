//! `compare`: documented JSON keys with sane values, the energy model's arithmetic, the same
//! counts from chain files as from the run that mined them, and the SVG charts.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

mod common;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use tempfile::TempDir;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn compare_json(args: &[&std::ffi::OsStr]) -> Value {
    common::json_output(
        cargo_bin_cmd!("chainsmith")
            .arg("compare")
            .args(args)
            .args(["--json", "--quiet"]),
    )
}

#[test]
fn live_compare_measures_both_and_files_give_the_same_counts() {
    let dir = TempDir::new().unwrap();
    let kept = dir.path().join("kept");
    let plots = dir.path().join("plots");
    let rule_spec = |rule: &str, file: &str| format!("{rule}={}", data(file).display());
    let (pow, pos, dpos) = (
        rule_spec("pow", "slow-pow.json"),
        rule_spec("pos", "test-pos.json"),
        rule_spec("dpos", "test-dpos.json"),
    );
    let live = compare_json(&[
        "--blocks".as_ref(),
        "30".as_ref(),
        "--spec".as_ref(),
        pow.as_ref(),
        "--spec".as_ref(),
        pos.as_ref(),
        "--spec".as_ref(),
        dpos.as_ref(),
        "--keep".as_ref(),
        kept.as_os_str(),
        "--plot".as_ref(),
        plots.as_os_str(),
        "--watts-per-core".as_ref(),
        "5".as_ref(),
    ]);
    for c in [
        "pow", "pos", "dpos", "poa", "raft", "pbft", "paxos", "zab", "kafka",
    ] {
        let v = &live[c];
        for key in [
            "blocks",
            "hashes",
            "hashes_per_block",
            "cpu_s",
            "energy_j",
            "energy_j_per_block",
            "energy_method",
            "hash_rate",
            "wall_s",
        ] {
            assert!(v.get(key).is_some_and(|x| !x.is_null()), "{c}.{key}: {v}");
        }
        // Genesis counts in `blocks`, as in `verify`; the rule produced `height` of them.
        assert_eq!(
            (v["blocks"].as_u64(), v["height"].as_u64()),
            (Some(31), Some(30))
        );
        let method = v["energy_method"].as_str().unwrap();
        assert!(method == "rapl" || method == "estimate", "{method}");
        if method == "estimate" {
            // The power model: CPU seconds × watts per busy core.
            let expect = v["cpu_s"].as_f64().unwrap() * 5.0;
            assert!((v["energy_j"].as_f64().unwrap() - expect).abs() < 1e-9 * expect.max(1.0));
        }
        let per_block = v["energy_j"].as_f64().unwrap() / 30.0;
        assert!((v["energy_j_per_block"].as_f64().unwrap() - per_block).abs() < 1e-12);
    }
    // PoW measured hashes are at least (statistically) the expected work: 30 blocks of
    // 65 536 expected hashes; their sum is below half the mean with probability ~1e-5.
    let pow_hashes = live["pow"]["hashes"].as_f64().unwrap();
    assert!(pow_hashes >= 0.5 * 30.0 * 65_536.0, "{pow_hashes}");
    assert!(live["pos"]["hashes"].as_f64().unwrap() >= 30.0);

    // Authority chains: no hashes, one signature per block, finality worked out by hand.
    // test-dpos: 4 producers × 3 slots of 0.5 s; a block is irreversible once 3 producers
    // have built on it, i.e. when the second producer after its own starts: 6, 5 or 4 blocks
    // later by its place in the turn, median 5 blocks = 2.5 s. poa-demo: 5 signers, 3
    // distinct sealers, so 2 blocks of 15 s.
    // At tip 30 (the end of b's turn 28-30), the third most recent producer, d, last made 24;
    // on poa the three latest sealers reach back to 28.
    for (c, blocks, seconds, lib) in [("dpos", 5.0, 2.5, 24), ("poa", 2.0, 30.0, 28)] {
        let v = &live[c];
        assert_eq!(v["hashes"], 0.0, "{c}");
        assert_eq!(v["signatures"], 30, "{c}");
        assert_eq!(v["blocks_to_irreversible"], blocks, "{c}");
        assert_eq!(v["time_to_irreversible_s"], seconds, "{c}");
        assert_eq!(v["irreversible_height"], lib, "{c}");
    }
    assert!(
        live["pow"]["irreversible_height"].is_null(),
        "PoW finality is probabilistic"
    );
    // Raft: a committed block is final at once; it costs messages, not hashes.
    let raft = &live["raft"];
    assert_eq!(raft["hashes"], 0.0);
    assert_eq!(raft["signatures"], 30);
    assert_eq!(raft["irreversible_height"], 30);
    assert_eq!(raft["blocks_to_irreversible"], 0.0);
    // Four followers: at least an append and its reply each per block.
    let messages = raft["messages_per_block"].as_f64().unwrap();
    assert!(messages >= 8.0, "{raft}");
    assert!(
        raft["bytes_per_block"].as_f64().unwrap() > 80.0 * 4.0,
        "{raft}"
    );
    // One round trip of 10–20 ms and two 1 ms writes, from the leader's append to its commit.
    let latency = raft["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");
    // PBFT: final on commit too, and its certificate is 2f + 1 = 3 signatures per block; a
    // block costs (n − 1) + (n − 1)² + n(n − 1) = 24 replica messages at n = 4, plus relayed
    // requests and checkpoints. Commit: three one-way delays of 5–10 ms and two 1 ms writes.
    let pbft = &live["pbft"];
    assert_eq!(pbft["hashes"], 0.0);
    assert_eq!(pbft["signatures"], 90);
    assert_eq!(pbft["irreversible_height"], 30);
    assert_eq!(pbft["blocks_to_irreversible"], 0.0);
    let messages = pbft["messages_per_block"].as_f64().unwrap();
    assert!((24.0..40.0).contains(&messages), "{pbft}");
    let latency = pbft["commit_latency_ms"].as_f64().unwrap();
    assert!((17.0..=32.0).contains(&latency), "{latency}");
    // Paxos: final once chosen, and its certificate is a majority's 2b signatures, 3 of 5;
    // a block costs at least a 2a, a 2b and a Chosen per follower. Commit: one round trip
    // and two 1 ms writes (the leader's own vote, then the acceptor's).
    let paxos = &live["paxos"];
    assert_eq!(paxos["hashes"], 0.0);
    assert_eq!(paxos["signatures"], 90);
    assert_eq!(paxos["irreversible_height"], 30);
    assert_eq!(paxos["blocks_to_irreversible"], 0.0);
    let messages = paxos["messages_per_block"].as_f64().unwrap();
    assert!((12.0..40.0).contains(&messages), "{paxos}");
    let latency = paxos["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");

    // ZAB: final on commit; its certificate is a majority's ACK signatures, the leader's
    // among them (3 of 5). Per follower and block a PROPOSAL, an ACK and a COMMIT, plus the
    // leader's pings; commit after one round trip and two 1 ms writes.
    let zab = &live["zab"];
    assert_eq!(zab["hashes"], 0.0);
    assert_eq!(zab["signatures"], 90);
    assert_eq!(zab["irreversible_height"], 30);
    assert_eq!(zab["blocks_to_irreversible"], 0.0);
    let messages = zab["messages_per_block"].as_f64().unwrap();
    assert!(messages >= 12.0, "{zab}");
    let latency = zab["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");

    // Kafka: final on commit, a certificate of the three replicas' acks per block. A block
    // costs the records to two followers and their next fetch (four messages), plus the
    // controller quorum's Raft heartbeats and the brokers' heartbeats to it (twelve per
    // 100 ms block). Commit: the records to a follower and its next fetch back, 5–10 ms each,
    // and two 1 ms writes.
    let kafka = &live["kafka"];
    assert_eq!(
        (kafka["blocks"].as_u64(), kafka["height"].as_u64()),
        (Some(31), Some(30))
    );
    assert_eq!(kafka["hashes"], 0.0);
    assert_eq!(kafka["signatures"], 90);
    assert_eq!(kafka["irreversible_height"], 30);
    assert_eq!(kafka["blocks_to_irreversible"], 0.0);
    let messages = kafka["messages_per_block"].as_f64().unwrap();
    assert!((12.0..40.0).contains(&messages), "{kafka}");
    let latency = kafka["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");
    for c in ["pow", "pos", "dpos", "poa"] {
        assert!(live[c]["messages_per_block"].is_null(), "{c}");
    }

    // The same chains read back: same blocks, same recorded PoS attempts, PoW expected work.
    let files = compare_json(&[
        kept.join("pow.jsonl").as_os_str(),
        kept.join("pos.jsonl").as_os_str(),
    ]);
    assert_eq!(files["pow"]["blocks"], 31);
    assert_eq!(files["pos"]["blocks"], 31);
    assert_eq!(files["pos"]["hashes"], live["pos"]["hashes"]);
    assert_eq!(files["pow"]["hashes_source"], "expected_work");
    let expected_work = files["pow"]["hashes"].as_f64().unwrap();
    assert!(
        (expected_work - 30.0 * 65_537.0).abs() < 30.0 * 2.0,
        "{expected_work}"
    );
    assert_eq!(files["pow"]["energy_method"], "none");
    let files = compare_json(&[
        kept.join("dpos.jsonl").as_os_str(),
        kept.join("poa.jsonl").as_os_str(),
    ]);
    for c in ["dpos", "poa"] {
        assert_eq!(files[c]["blocks"], 31);
        assert_eq!(
            files[c]["irreversible_height"],
            live[c]["irreversible_height"]
        );
        assert_eq!(files[c]["signatures"], 30);
        for key in ["time_to_irreversible_s", "blocks_to_irreversible"] {
            assert_eq!(files[c][key], live[c][key], "{c}.{key}");
        }
    }

    // Charts: present, SVG, titled, with both series named.
    for (file, needles) in [
        (
            "hashes_per_block.svg",
            vec![
                "Hashes per block",
                "POW (slow)",
                "POS (test-pos)",
                "hash nothing, not drawn: DPOS",
            ],
        ),
        (
            "energy_per_block.svg",
            vec!["Energy per block", "energy per block (log scale)", "POW"],
        ),
        (
            "block_intervals.svg",
            vec!["Block intervals", "POS (test-pos)"],
        ),
        ("pos_stake_shares.svg", vec!["share of stake", "h0", "h9"]),
    ] {
        let svg = std::fs::read_to_string(plots.join(file)).unwrap();
        assert!(svg.starts_with("<svg"), "{file}");
        for n in needles {
            assert!(svg.contains(n), "{file} lacks {n:?}");
        }
    }
}

#[test]
fn compare_rejects_a_single_file_and_a_wrong_spec() {
    let dir = TempDir::new().unwrap();
    cargo_bin_cmd!("chainsmith")
        .args(["compare", "a.jsonl"])
        .assert()
        .code(2);
    let pos_as_pow = format!("pow={}", data("test-pos.json").display());
    cargo_bin_cmd!("chainsmith")
        .args(["compare", "--quiet", "--blocks", "1", "--spec", &pos_as_pow])
        .arg("--keep")
        .arg(dir.path())
        .assert()
        .code(2)
        .stderr(predicates::str::contains("is not a pow spec"));
    // Nothing was mined before the bad spec was found.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    cargo_bin_cmd!("chainsmith")
        .args(["compare", "--spec", "tendermint=x"])
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "unknown consensus rule \"tendermint\" (rules: pow, pos, dpos, poa, raft, pbft, paxos, zab, kafka)",
        ));
}

/// `sim --all`: the reference scenario (the leader crashes at 2 s, back at 5 s) on every
/// ordering rule, one seed: every rule recovers and stays safe, and the chart names them all.
#[test]
fn sim_all_runs_one_scenario_on_every_ordering_rule() {
    let dir = TempDir::new().unwrap();
    let j = common::json_output(cargo_bin_cmd!("chainsmith").args([
        "sim",
        "--all",
        "--json",
        "--plot",
        dir.path().to_str().unwrap(),
    ]));
    assert_eq!(j["scenario"]["crashes"][0]["node"], "leader");
    let rules = j["rules"].as_array().unwrap();
    let names: Vec<&str> = rules
        .iter()
        .map(|r| r["report"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(names, chainsmith::ordering::ORDERING_RULES);
    let svg = std::fs::read_to_string(dir.path().join("ordering_rules.svg")).unwrap();
    for r in rules {
        let rule = r["report"]["rule"].as_str().unwrap();
        assert!(
            svg.contains(&format!(">\n{rule}\n<")),
            "{rule} missing from the chart"
        );
        assert_eq!(r["report"]["safety"]["verdict"], "ok", "{rule}");
        assert_eq!(r["report"]["nodes"].as_array().unwrap().len(), 5, "{rule}");
        assert_eq!(r["recovery"]["crash_s"], 2.0, "{rule}");
        // The crash took the leader: a while without one, then blocks again.
        let leaderless = r["recovery"]["leaderless_s"].as_f64().unwrap();
        let next = r["recovery"]["next_block_s"].as_f64().unwrap();
        assert!(leaderless > 0.0 && leaderless < 3.0, "{rule}: {leaderless}");
        assert!(next >= leaderless.min(0.05) && next < 3.0, "{rule}: {next}");
        // 10 s at 100 ms a block, less the recovery.
        let blocks = r["report"]["blocks"].as_u64().unwrap();
        assert!((50..=100).contains(&blocks), "{rule}: {blocks} blocks");
        assert!(r["tolerates"]["crashed"].as_u64().unwrap() >= 1, "{rule}");
        // The crash named the node that led.
        let crashed = &r["report"]["leader_crashes"][0];
        assert_eq!(crashed["at_s"], 2.0, "{rule}");
        assert!(crashed["node"].is_string(), "{rule}: {crashed}");
    }
    assert_eq!(j["skipped"].as_array().unwrap().len(), 0);
}

/// A scenario that does not fit every rule runs the others and says why it skipped one.
#[test]
fn sim_all_skips_a_rule_the_scenario_does_not_fit() {
    let j = common::json_output(cargo_bin_cmd!("chainsmith").args([
        "sim",
        "--all",
        "--nodes",
        "3",
        "--duration",
        "4s",
        "--json",
    ]));
    let ran: Vec<&str> = j["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["report"]["rule"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["raft", "paxos", "zab", "kafka"]);
    assert_eq!(j["skipped"][0]["rule"], "pbft");
    assert!(j["skipped"][0]["why"].as_str().unwrap().contains("nodes"));
}

#[test]
fn sim_all_refuses_one_rules_options_and_unknown_nodes() {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["sim", "--all", "--election", "100..200"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--election"));
    let out = cargo_bin_cmd!("chainsmith")
        .args(["sim", "--all", "--crash", "s9@1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("crashes[0].node"));
    let out = cargo_bin_cmd!("chainsmith")
        .args(["sim", "--all", "raft"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
