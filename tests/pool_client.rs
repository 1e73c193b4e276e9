//! `chainsmith mine pow --pool …`: usage errors, a run against a fake pool ended by
//! --time-limit and one ended by Ctrl-C, and a pool that cannot be reached.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use assert_cmd::cargo::cargo_bin_cmd;
use serde_json::{Value, json};

fn chainsmith(args: &[&str]) -> Output {
    cargo_bin_cmd!("chainsmith").args(args).output().unwrap()
}

#[test]
fn pool_usage_errors_are_one_line_and_exit_2() {
    let url = "stratum+tcp://127.0.0.1:3333";
    let cases: [(&[&str], &str); 10] = [
        (
            &[
                "mine",
                "pow",
                "--pool",
                "http://127.0.0.1:3333",
                "--user",
                "u",
            ],
            "--pool",
        ),
        (
            &["mine", "pow", "--pool", "stratum+tcp://host", "--user", "u"],
            "--pool",
        ),
        (&["mine", "pos", "--pool", url, "--user", "u"], "pow"),
        (&["mine", "pow", "--pool", url], "--user"),
        (
            &["mine", "pow", "--pool", url, "--user", "u", "--blocks", "3"],
            "--blocks",
        ),
        (
            &[
                "mine",
                "pow",
                "--pool",
                url,
                "--user",
                "u",
                "--tx-per-block",
                "2",
            ],
            "--tx-per-block",
        ),
        (
            &[
                "mine",
                "pow",
                "--pool",
                url,
                "--user",
                "u",
                "--deterministic",
            ],
            "--deterministic",
        ),
        (&["mine", "pow", "--user", "u"], "--user needs --pool"),
        (
            &[
                "mine",
                "pow",
                "--pool",
                url,
                "--user",
                "u",
                "--retries",
                "-2",
            ],
            "--retries -2",
        ),
        (
            &[
                "mine",
                "pow",
                "--pool",
                url,
                "--user",
                "u",
                "--time-limit",
                "0",
            ],
            "--time-limit",
        ),
    ];
    for (args, needle) in cases {
        let out = chainsmith(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn an_unreachable_pool_is_an_error_after_the_retries() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("stratum+tcp://127.0.0.1:{port}");
    let out = chainsmith(&[
        "mine",
        "pow",
        "--pool",
        &url,
        "--user",
        "u",
        "--retries",
        "1",
        "--retry-pause",
        "0",
    ]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("connection failed").count(), 2, "{err}");
    let last = err.trim_end().lines().last().unwrap();
    assert!(
        last.starts_with("chainsmith: error: no working connection to"),
        "{err}"
    );
    assert!(last.contains("after 2 attempt(s)"), "{err}");
}

/// A pool that sends one easy job and accepts every share; it tells `first_share` when it
/// has answered the first one, and ends when the miner hangs up.
fn fake_pool(listener: TcpListener, first_share: mpsc::Sender<()>) -> JoinHandle<u64> {
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut send = |v: Value| writer.write_all(format!("{v}\n").as_bytes()).unwrap();
        let mut shares = 0;
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let m: Value = serde_json::from_str(&line).unwrap();
            match m["method"].as_str().unwrap() {
                "mining.subscribe" => send(json!({"id": m["id"], "error": null,
                    "result": [[["mining.notify", "1"]], "01020304", 4]})),
                "mining.authorize" => {
                    assert_eq!(m["params"], json!(["alice.rig1", "x"]));
                    send(json!({"id": m["id"], "error": null, "result": true}));
                    send(json!({"id": null, "method": "mining.set_difficulty",
                        "params": [1.0 / 16_777_216.0]}));
                    send(json!({"id": null, "method": "mining.notify", "params": [
                        "j1", "00".repeat(32), "01", "02", [], "20000000", "1d00ffff",
                        "65000000", true]}));
                }
                "mining.submit" => {
                    send(json!({"id": m["id"], "error": null, "result": true}));
                    shares += 1;
                    if shares == 1 {
                        first_share.send(()).unwrap();
                    }
                }
                other => panic!("unexpected {other}"),
            }
        }
        shares
    })
}

fn pool_miner(extra: &[&str]) -> (std::process::Child, JoinHandle<u64>, mpsc::Receiver<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "stratum+tcp://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = mpsc::channel();
    let pool = fake_pool(listener, tx);
    let child = StdCommand::new(env!("CARGO_BIN_EXE_chainsmith"))
        .args(["mine", "pow", "--pool", &url, "--user", "alice.rig1"])
        .args(["--threads", "1", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    (child, pool, rx)
}

fn summary(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn mining_for_a_pool_until_the_time_limit() {
    let (child, pool, _first) = pool_miner(&["--time-limit", "1"]);
    let out = child.wait_with_output().unwrap();
    let shares = pool.join().unwrap();
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("mining for stratum+tcp://127.0.0.1:"), "{err}");
    assert!(err.contains("new job j1 (clean), difficulty"), "{err}");
    assert!(err.contains("] accepted: 1/1 (100.00%), "), "{err}");
    assert!(err.contains(" MH/s yes!"), "{err}");
    let v = summary(&out);
    assert!(v["accepted"].as_u64().unwrap() >= 1, "{v}");
    // Shares sent just before the end may go unanswered.
    assert!(v["accepted"].as_u64().unwrap() <= shares, "{v}");
    assert_eq!(v["rejected"], 0);
    assert_eq!(v["interrupted"], false);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["user"], "alice.rig1");
    assert!(v["hashes"].as_u64().unwrap() > 0);
    for key in ["pool", "elapsed_s", "hash_rate", "backend"] {
        assert!(v.get(key).is_some(), "{key}: {v}");
    }
}

#[test]
fn ctrl_c_stops_the_pool_miner_with_its_summary() {
    let (child, pool, first) = pool_miner(&["--quiet"]);
    first.recv_timeout(Duration::from_secs(10)).unwrap();
    let status = StdCommand::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    pool.join().unwrap();
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("accepted:"), "--quiet: {err}");
    assert!(err.contains("done (interrupted) after"), "{err}");
    let v = summary(&out);
    assert_eq!(v["interrupted"], true);
}
