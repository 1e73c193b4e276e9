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

/// The row of `rules` for `consensus`.
fn rule<'a>(report: &'a Value, consensus: &str) -> &'a Value {
    report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["consensus"] == consensus)
        .unwrap_or_else(|| panic!("no {consensus} row: {report}"))
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
    assert_eq!(live["mode"], "mined");
    assert!(live["threads"].as_u64().unwrap() >= 1);
    assert!(live["backend"].is_string());
    assert!(live["interrupted"].is_null());
    let order: Vec<&str> = live["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["consensus"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "pow", "pos", "dpos", "poa", "raft", "pbft", "paxos", "zab", "kafka"
        ]
    );
    for c in order {
        let v = rule(&live, c);
        for key in [
            "blocks",
            "hashes",
            "hashes_per_block",
            "cpu_s",
            "energy_j",
            "energy_j_per_block",
            "energy_method",
            "elapsed_s",
        ] {
            assert!(v.get(key).is_some_and(|x| !x.is_null()), "{c}.{key}: {v}");
        }
        // Counts are integers, never `30.0`.
        for key in ["blocks", "height", "hashes", "signatures"] {
            assert!(v[key].is_u64(), "{c}.{key}: {v}");
        }
        // A rate only for the rules that hash; PoW is the reference of the ratios.
        let hashes = matches!(c, "pow" | "pos");
        assert_eq!(v["hash_rate"].is_f64(), hashes, "{c}: {v}");
        assert_eq!(v["pow_hashes_ratio"].is_f64(), hashes, "{c}: {v}");
        let pow_energy = rule(&live, "pow")["energy_j_per_block"].as_f64().unwrap();
        let ratio = pow_energy / v["energy_j_per_block"].as_f64().unwrap();
        assert!((v["pow_energy_ratio"].as_f64().unwrap() / ratio - 1.0).abs() < 1e-9);
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
    let pow_hashes = rule(&live, "pow")["hashes"].as_u64().unwrap();
    assert!(pow_hashes >= 15 * 65_536, "{pow_hashes}");
    assert!(rule(&live, "pos")["hashes"].as_u64().unwrap() >= 30);

    // Authority chains: no hashes, one signature per block. poa-demo: 5 signers, 3 distinct
    // sealers, so a block is final 2 blocks (of 15 s) later; at tip 30 the three latest
    // sealers reach back to 28.
    let poa = rule(&live, "poa");
    assert_eq!(poa["hashes"], 0);
    assert_eq!(poa["signatures"], 30);
    assert_eq!(poa["blocks_to_irreversible"], 2);
    assert_eq!(poa["time_to_irreversible_s"], 30.0);
    assert_eq!(poa["irreversible_height"], 28);
    // test-dpos: 4 producers × 3 slots of 0.5 s, with `mine`'s demo transfers and re-votes
    // (which change the next rounds' producers): `mine` on the same spec and blocks reaches
    // the same irreversible height, and a block waits half a second per block after it.
    let dpos = rule(&live, "dpos");
    assert_eq!(dpos["hashes"], 0);
    assert_eq!(dpos["signatures"], 30);
    let mined = common::json_output(
        cargo_bin_cmd!("chainsmith")
            .args([
                "mine", "dpos", "--blocks", "30", "--json", "--quiet", "--spec",
            ])
            .arg(data("test-dpos.json"))
            .arg("--chain")
            .arg(dir.path().join("mined-dpos.jsonl")),
    );
    assert_eq!(dpos["irreversible_height"], mined["irreversible_height"]);
    let blocks = dpos["blocks_to_irreversible"].as_u64().unwrap();
    // At least the three producers' turns to build on it.
    assert!((4..=12).contains(&blocks), "{dpos}");
    assert_eq!(dpos["time_to_irreversible_s"], blocks as f64 * 0.5);
    assert!(
        rule(&live, "pow")["irreversible_height"].is_null(),
        "PoW finality is probabilistic"
    );
    // Raft: a committed block is final at once; it costs messages, not hashes.
    let raft = rule(&live, "raft");
    assert_eq!(raft["hashes"], 0);
    assert_eq!(raft["signatures"], 30);
    assert_eq!(raft["irreversible_height"], 30);
    assert_eq!(raft["blocks_to_irreversible"], 0);
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
    let pbft = rule(&live, "pbft");
    assert_eq!(pbft["hashes"], 0);
    assert_eq!(pbft["signatures"], 90);
    assert_eq!(pbft["irreversible_height"], 30);
    assert_eq!(pbft["blocks_to_irreversible"], 0);
    let messages = pbft["messages_per_block"].as_f64().unwrap();
    assert!((24.0..40.0).contains(&messages), "{pbft}");
    let latency = pbft["commit_latency_ms"].as_f64().unwrap();
    assert!((17.0..=32.0).contains(&latency), "{latency}");
    // Paxos: final once chosen, and its certificate is a majority's 2b signatures, 3 of 5;
    // a block costs at least a 2a, a 2b and a Chosen per follower. Commit: one round trip
    // and two 1 ms writes (the leader's own vote, then the acceptor's).
    let paxos = rule(&live, "paxos");
    assert_eq!(paxos["hashes"], 0);
    assert_eq!(paxos["signatures"], 90);
    assert_eq!(paxos["irreversible_height"], 30);
    assert_eq!(paxos["blocks_to_irreversible"], 0);
    let messages = paxos["messages_per_block"].as_f64().unwrap();
    assert!((12.0..40.0).contains(&messages), "{paxos}");
    let latency = paxos["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");

    // ZAB: final on commit; its certificate is a majority's ACK signatures, the leader's
    // among them (3 of 5). Per follower and block a PROPOSAL, an ACK and a COMMIT, plus the
    // leader's pings; commit after one round trip and two 1 ms writes.
    let zab = rule(&live, "zab");
    assert_eq!(zab["hashes"], 0);
    assert_eq!(zab["signatures"], 90);
    assert_eq!(zab["irreversible_height"], 30);
    assert_eq!(zab["blocks_to_irreversible"], 0);
    let messages = zab["messages_per_block"].as_f64().unwrap();
    assert!(messages >= 12.0, "{zab}");
    let latency = zab["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");

    // Kafka: final on commit, a certificate of the three replicas' acks per block. A block
    // costs the records to two followers and their next fetch (four messages), plus the
    // controller quorum's Raft heartbeats and the brokers' heartbeats to it (twelve per
    // 100 ms block). Commit: the records to a follower and its next fetch back, 5–10 ms each,
    // and two 1 ms writes.
    let kafka = rule(&live, "kafka");
    assert_eq!(
        (kafka["blocks"].as_u64(), kafka["height"].as_u64()),
        (Some(31), Some(30))
    );
    assert_eq!(kafka["hashes"], 0);
    assert_eq!(kafka["signatures"], 90);
    assert_eq!(kafka["irreversible_height"], 30);
    assert_eq!(kafka["blocks_to_irreversible"], 0);
    let messages = kafka["messages_per_block"].as_f64().unwrap();
    assert!((12.0..40.0).contains(&messages), "{kafka}");
    let latency = kafka["commit_latency_ms"].as_f64().unwrap();
    assert!((12.0..=22.0).contains(&latency), "{latency}");
    for c in ["pow", "pos", "dpos", "poa"] {
        assert!(rule(&live, c)["messages_per_block"].is_null(), "{c}");
    }

    // The same chains read back, all nine at once: same blocks, same recorded PoS attempts,
    // PoW expected work, the same finality.
    let files: Vec<PathBuf> = [
        "pow", "pos", "dpos", "poa", "raft", "pbft", "paxos", "zab", "kafka",
    ]
    .iter()
    .map(|c| kept.join(format!("{c}.jsonl")))
    .collect();
    let args: Vec<&std::ffi::OsStr> = files.iter().map(|f| f.as_os_str()).collect();
    let read = compare_json(&args);
    assert_eq!(read["mode"], "files");
    assert_eq!(read["rules"].as_array().unwrap().len(), 9);
    for (c, file) in ["pow", "pos", "dpos", "poa", "raft"].iter().zip(&files) {
        let v = rule(&read, c);
        assert_eq!(v["blocks"], 31, "{c}");
        assert_eq!(v["file"], file.display().to_string(), "{c}");
        assert!(
            v["elapsed_s"].is_null() && v["hash_rate"].is_null(),
            "{c}: {v}"
        );
        assert_eq!(v["energy_method"], "none", "{c}");
    }
    let (pow, pos) = (rule(&read, "pow"), rule(&read, "pos"));
    // Live: every kernel hashed, those of the winner's slice of chain time past the winner
    // included; recorded: the kernels a sequential search tries up to each winner. At most a
    // slice (2^14 kernels) and a piece in each thread's hand apart per block.
    let (recorded, measured) = (
        pos["hashes"].as_u64().unwrap(),
        rule(&live, "pos")["hashes"].as_u64().unwrap(),
    );
    let threads = std::thread::available_parallelism().unwrap().get() as u64;
    assert!(
        recorded <= measured && measured - recorded <= (30 * (threads + 1)) << 14,
        "recorded {recorded}, measured {measured}"
    );
    assert_eq!(pos["hashes_source"], "recorded_attempts");
    assert_eq!(pow["hashes_source"], "expected_work");
    let expected_work = pow["hashes"].as_u64().unwrap();
    assert!(expected_work.abs_diff(30 * 65_537) < 60, "{expected_work}");
    let ratio =
        pow["hashes_per_block"].as_f64().unwrap() / pos["hashes_per_block"].as_f64().unwrap();
    assert!((pos["pow_hashes_ratio"].as_f64().unwrap() / ratio - 1.0).abs() < 1e-9);
    for c in ["dpos", "poa"] {
        for key in [
            "irreversible_height",
            "signatures",
            "time_to_irreversible_s",
            "blocks_to_irreversible",
        ] {
            assert_eq!(rule(&read, c)[key], rule(&live, c)[key], "{c}.{key}");
        }
    }
    // As text: every line fits 80 columns, and the hashes say how they were counted.
    let out = cargo_bin_cmd!("chainsmith")
        .arg("compare")
        .args(&files)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_fits_80_columns(&text);
    for needle in [
        "expected work",
        "recorded attempts",
        "no hashing",
        "pow.jsonl",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
    // The same rule and spec twice is refused, naming both files.
    let out = cargo_bin_cmd!("chainsmith")
        .arg("compare")
        .args([&files[0], &files[1], &files[0]])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("are both pow chains of spec \"slow\""),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

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

fn assert_fits_80_columns(text: &str) {
    for line in text.lines() {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
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

/// Keeps a value that says "none" (null, zero) and redacts one a run measured.
fn measured() -> insta::internals::Redaction {
    insta::dynamic_redaction(|v: insta::internals::Content, _| {
        if v.is_nil() || v.as_f64() == Some(0.0) || v.as_u64() == Some(0) {
            v
        } else {
            insta::internals::Content::from("[measured]")
        }
    })
}

/// `compare --json` on three blocks of each rule: its keys and every value that does not
/// depend on the run (timings, hashes, energy, rates and the simulated network's figures
/// redacted); and, stderr not being a terminal, one progress line per rule mined.
#[test]
fn compare_json_snapshot_and_one_progress_line_per_rule() {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["compare", "--json", "--blocks", "3", "--spec"])
        .arg(format!("pow={}", data("slow-pow.json").display()))
        .arg("--spec")
        .arg(format!("pos={}", data("test-pos.json").display()))
        .arg("--spec")
        .arg(format!("dpos={}", data("test-dpos.json").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("compare_json", v, {
        ".threads" => "[threads]",
        ".backend" => "[backend]",
        ".rules[].energy_method" => "[rapl or estimate]",
        ".rules[].hashes" => measured(),
        ".rules[].hashes_per_block" => measured(),
        ".rules[].hash_rate" => measured(),
        ".rules[].elapsed_s" => measured(),
        ".rules[].cpu_s" => measured(),
        ".rules[].energy_j" => measured(),
        ".rules[].energy_j_per_block" => measured(),
        ".rules[].pow_hashes_ratio" => measured(),
        ".rules[].pow_energy_ratio" => measured(),
        ".rules[].messages_per_block" => measured(),
        ".rules[].bytes_per_block" => measured(),
        ".rules[].commit_latency_ms" => measured(),
        ".extrapolation.joules_per_hash_measured" => measured(),
        ".extrapolation.mainnet_block_j_at_measured" => measured(),
        ".extrapolation.cpu_to_asic_ratio" => measured(),
    });
    let err = String::from_utf8(out.stderr).unwrap();
    for c in [
        "pow", "pos", "dpos", "poa", "raft", "pbft", "paxos", "zab", "kafka",
    ] {
        let line = err
            .lines()
            .find(|l| l.contains(&format!(" UTC] {c}: 3 blocks in ")))
            .unwrap_or_else(|| panic!("no progress line for {c}:\n{err}"));
        assert!(line.starts_with("[20"), "{line}");
    }
}

/// Mined as text: three tables within 80 columns, a dash where a rule does not hash, and a
/// line saying which threads and backend searched nonces.
#[test]
fn compare_text_fits_80_columns() {
    let out = cargo_bin_cmd!("chainsmith")
        .args(["compare", "--quiet", "--blocks", "2", "--spec"])
        .arg(format!("pow={}", data("slow-pow.json").display()))
        .arg("--spec")
        .arg(format!("pos={}", data("test-pos.json").display()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(out.stderr.is_empty(), "--quiet: {out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert_fits_80_columns(&text);
    let dpos = text.lines().find(|l| l.starts_with("dpos ")).unwrap();
    // No hashes, no hash rate, no hash ratio; an energy ratio to PoW.
    assert_eq!(dpos.matches('–').count(), 3, "{dpos}");
    assert!(dpos.ends_with('×'), "{dpos}");
    assert!(
        text.contains("pow and pos searched nonces and stake kernels on "),
        "{text}"
    );
    assert!(text.contains("this CPU spends "), "{text}");
    assert!(text.contains("irreversible height"), "{text}");
}

/// Ctrl-C while the second rule mines: the first rule's figures, a line saying where it
/// stopped, exit 130.
#[test]
fn compare_interrupted_prints_what_it_has() {
    let dir = TempDir::new().unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_chainsmith"))
        .args(["compare", "--blocks", "3", "--spec"])
        .arg(format!("pow={}", data("slow-pow.json").display()))
        .args(["--spec", "pos=pos-demo", "--keep"])
        .arg(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // pos.jsonl is created (with its genesis block) once PoW is done.
    let pos = dir.path().join("pos.jsonl");
    for _ in 0..3000 {
        if std::fs::read_to_string(&pos).is_ok_and(|t| t.ends_with('\n')) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.starts_with("pow ")), "{text}");
    assert!(text.contains("interrupted while mining pos ("), "{text}");
    assert!(text.contains("finished: pow."), "{text}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("pos: interrupted after "), "{err}");
}
