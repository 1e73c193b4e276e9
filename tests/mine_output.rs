//! What `mine`, `verify` and `info` print for people and programs: block lines on a stderr
//! that is no terminal (as under nohup or in CI logs), the `--json-log` event stream, the
//! `--json` reports (snapshots, run-dependent values redacted), and the repair hints.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::Value;
use tempfile::TempDir;

fn test_spec_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/test-pow.json")
}

/// Runs `chainsmith mine ARGS --chain CHAIN` (stderr a pipe, not a terminal).
fn mine(args: &[&str], chain: &Path) -> std::process::Output {
    cargo_bin_cmd!("chainsmith")
        .arg("mine")
        .args(args)
        .arg("--chain")
        .arg(chain)
        .output()
        .unwrap()
}

/// The `block H …` lines of a log, in order, with their heights.
fn block_lines(stderr: &str) -> Vec<(u32, String)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (stamp, rest) = l.split_once("] ")?;
            assert!(stamp.starts_with("[20") && stamp.ends_with(" UTC"), "{l}");
            let h = rest
                .strip_prefix("block ")?
                .split(' ')
                .next()?
                .parse()
                .ok()?;
            Some((h, rest.to_owned()))
        })
        .collect()
}

#[test]
fn every_rule_logs_a_banner_and_one_line_per_block_without_a_terminal() {
    let dir = TempDir::new().unwrap();
    let spec = test_spec_path();
    let spec = spec.to_str().unwrap();
    for (rule, extra, blocks) in [
        ("pow", vec!["--spec", spec, "--threads", "1"], 4u32),
        ("pos", vec![], 2),
        ("dpos", vec![], 5),
        ("poa", vec![], 3),
    ] {
        let chain = dir.path().join(format!("{rule}.jsonl"));
        let n = blocks.to_string();
        let mut args = vec![rule, "--blocks", n.as_str()];
        args.extend(extra);
        let out = mine(&args, &chain);
        assert_eq!(out.status.code(), Some(0), "{rule}");
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr
                .lines()
                .next()
                .unwrap()
                .contains(&format!("mine {rule}")),
            "{rule}: banner first:\n{stderr}"
        );
        let lines = block_lines(&stderr);
        let heights: Vec<u32> = lines.iter().map(|(h, _)| *h).collect();
        assert_eq!(
            heights,
            (1..=blocks).collect::<Vec<_>>(),
            "{rule}:\n{stderr}"
        );
        // Each line names its block: the hash's first 16 digits, as the chain file has it.
        let records: Vec<Value> = std::fs::read_to_string(&chain)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for (h, line) in &lines {
            let hash = records[*h as usize]["hash"].as_str().unwrap();
            assert!(line.contains(&hash[..16]), "{rule}: {line}");
            let hashing = matches!(rule, "pow" | "pos");
            // `1 hash`, `7 hashes`, `356.3 k hashes`: a count, then the rate.
            let counted = line.contains(" hash (") || line.contains(" hashes (");
            assert_eq!(counted, hashing, "{rule}: {line}");
            assert_eq!(line.contains(", diff "), rule == "pow", "{rule}: {line}");
            assert_eq!(line.contains(", by "), rule != "pow", "{rule}: {line}");
        }
        // The report says `1 block`, not `1 blocks`, and no colour codes reach a pipe.
        assert!(!stderr.contains('\x1b'), "{rule}");
    }
    let one = mine(&["poa", "--blocks", "1"], &dir.path().join("one.jsonl"));
    assert!(
        String::from_utf8(one.stdout)
            .unwrap()
            .starts_with("mined 1 block on")
    );
}

#[test]
fn quiet_silences_the_log_lines() {
    let dir = TempDir::new().unwrap();
    let out = mine(
        &["dpos", "--blocks", "3", "-q"],
        &dir.path().join("d.jsonl"),
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "");
}

#[test]
fn json_log_streams_start_block_and_done_events_on_stdout() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("c.jsonl");
    let spec = test_spec_path();
    let out = mine(
        &[
            "pow",
            "--blocks",
            "3",
            "--json-log",
            "-t",
            "1",
            "--spec",
            spec.to_str().unwrap(),
        ],
        &chain,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "",
        "events go to stdout only"
    );
    let events: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["start", "block", "block", "block", "done"]);
    assert_eq!(events[0]["threads"], 1);
    assert_eq!(events[0]["height"], 0);
    let records: Vec<Value> = std::fs::read_to_string(&chain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut hashes = 0;
    for (i, e) in events[1..4].iter().enumerate() {
        let r = &records[i + 1];
        assert_eq!(e["height"], r["height"]);
        assert_eq!(e["hash"], r["hash"]);
        assert_eq!(e["time"], r["time"]);
        assert!(e["hashes"].is_u64());
        hashes += e["hashes"].as_u64().unwrap();
    }
    // The last event is the `--json` report: the same keys, the block hashes adding up.
    let done = &events[4];
    assert_eq!(done["blocks_mined"], 3);
    assert_eq!(done["hashes"].as_u64(), Some(hashes));
    // --json-log and --json are one or the other.
    let both = mine(&["pow", "--json-log", "--json"], &chain);
    assert_eq!(both.status.code(), Some(2));
}

/// The values of `keys` replaced by placeholders: what varies from run to run.
fn redact(v: &mut Value, keys: &[&str]) {
    for k in keys {
        if let Some(x) = v.get_mut(*k) {
            *x = Value::String(format!("[{k}]"));
        }
    }
}

#[test]
fn mine_verify_and_info_json_keep_their_keys() {
    // DPoS demo chains are the same bytes on every run: the slot clock starts at the spec's
    // genesis time.
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("d.jsonl");
    let out = mine(&["dpos", "--blocks", "30", "--json"], &chain);
    assert_eq!(out.status.code(), Some(0));
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    redact(&mut v, &["elapsed_s", "chain"]);
    insta::assert_json_snapshot!("mine_dpos_json", v);

    let out = cargo_bin_cmd!("chainsmith")
        .args(["verify", "--json"])
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!("verify_dpos_json", v);

    let out = cargo_bin_cmd!("chainsmith")
        .args(["info", "--json"])
        .arg(&chain)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    redact(&mut v, &["chain"]);
    insta::assert_json_snapshot!("info_dpos_json", v);
}

#[test]
fn mine_pow_json_counts_are_integers() {
    let dir = TempDir::new().unwrap();
    let spec = test_spec_path();
    let out = mine(
        &[
            "pow",
            "--blocks",
            "2",
            "--json",
            "-t",
            "1",
            "--spec",
            spec.to_str().unwrap(),
        ],
        &dir.path().join("c.jsonl"),
    );
    let mut v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v["hashes"].is_u64() && v["blocks_mined"].is_u64() && v["threads"].is_u64());
    redact(
        &mut v,
        &["elapsed_s", "chain", "hash_rate", "hashes", "backend"],
    );
    insta::assert_json_snapshot!("mine_pow_json", v);
}

#[test]
fn info_describes_a_chain_and_names_the_first_invalid_line() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("a.jsonl");
    assert_eq!(
        mine(&["poa", "--blocks", "4", "-q"], &chain).status.code(),
        Some(0)
    );
    let info = |chain: &Path| {
        cargo_bin_cmd!("chainsmith")
            .arg("info")
            .arg(chain)
            .output()
            .unwrap()
    };
    let out = info(&chain);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "rule           poa",
        "spec           poa-demo",
        "blocks         5 (height 4)",
        "irreversible   height",
    ] {
        assert!(text.contains(want), "{want}:\n{text}");
    }
    assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
    // A torn tail: what is valid is described, the torn line named, exit 1.
    let mut bytes = std::fs::read(&chain).unwrap();
    bytes.extend_from_slice(b"{\"height\":");
    std::fs::write(&chain, bytes).unwrap();
    let out = info(&chain);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("invalid from line 6: height 5: torn last line"),
        "{text}"
    );
    assert!(text.contains("blocks         5 (height 4)"), "{text}");
}

#[test]
fn repair_hints_are_given_where_repair_helps_and_not_after_it() {
    let dir = TempDir::new().unwrap();
    let chain = dir.path().join("d.jsonl");
    assert_eq!(
        mine(&["dpos", "--blocks", "3", "-q"], &chain).status.code(),
        Some(0)
    );
    let mut bytes = std::fs::read(&chain).unwrap();
    bytes.extend_from_slice(b"{\"height\":");
    std::fs::write(&chain, bytes).unwrap();

    // `mine` on a damaged chain mines nothing and says how to repair it.
    let out = mine(&["dpos", "--blocks", "1"], &chain);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    let hint = format!(
        "`chainsmith verify --repair {}` removes it",
        chain.display()
    );
    assert!(stderr.contains(&hint), "{stderr}");

    let verify = |extra: &[&str]| {
        cargo_bin_cmd!("chainsmith")
            .arg("verify")
            .arg(&chain)
            .args(extra)
            .output()
            .unwrap()
    };
    let out = verify(&["--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["consensus"], "dpos");
    assert_eq!(v["error"]["repair"].as_str(), Some(hint.as_str()));
    let out = verify(&["--repair"]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("repaired "), "{text}");
    assert!(
        !text.contains("--repair"),
        "no hint after the repair: {text}"
    );
    assert!(text.contains("irreversible height"), "{text}");
}

/// Runs `command` under a pseudo-terminal (util-linux `script`), so that stderr is a terminal.
fn on_a_terminal(command: &str, no_color: bool) -> String {
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", command, "/dev/null"]);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd
        .output()
        .expect("util-linux `script` runs commands on a terminal");
    assert!(out.status.success(), "{command}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn on_a_terminal_block_lines_are_green_unless_no_color() {
    let dir = TempDir::new().unwrap();
    let bin = assert_cmd::cargo::cargo_bin!("chainsmith")
        .display()
        .to_string();
    let run = |name: &str, no_color: bool| {
        let chain = dir.path().join(name);
        on_a_terminal(
            &format!("{bin} mine poa --blocks 2 --chain {}", chain.display()),
            no_color,
        )
    };
    let coloured = run("a.jsonl", false);
    assert!(coloured.contains("\x1b[32mblock\x1b[0m 1 "), "{coloured:?}");
    // A signing rule's bar shows no hash rate.
    assert!(!coloured.contains("H/s"), "{coloured:?}");
    let plain = run("b.jsonl", true);
    assert!(
        plain.contains("] block 1 ") && !plain.contains("\x1b[32m"),
        "{plain:?}"
    );
}
