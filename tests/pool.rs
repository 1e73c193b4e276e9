//! The Stratum pool as miners see it: `chainsmith pool` processes on 127.0.0.1 driven by an
//! outside client (the npm package `stratum-client`), by raw hostile connections, by our own
//! miner processes and by a load of 500 connections; judged by the answers, the pool's JSON
//! event log and `verify` on its chain file.

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chainsmith::pool::stratum::{Notify, Submit, share_target};
use serde_json::{Value, json};

const EXE: &str = env!("CARGO_BIN_EXE_chainsmith");

/// A pool process with its JSON event log, stopped when dropped (and by itself after two
/// minutes whatever happens to the test).
struct Pool {
    child: Child,
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
    chain: PathBuf,
}

impl Pool {
    fn start(dir: &Path, extra: &[&str]) -> Self {
        let chain = dir.join("pool.jsonl");
        let mut child = Command::new(EXE)
            .args([
                "pool",
                "--listen",
                "127.0.0.1:0",
                "--json-log",
                "--lifetime",
                "120s",
            ])
            .arg("--chain")
            .arg(&chain)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = channel();
        let out = child.stdout.take().unwrap();
        let log = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
                if v["event"] == "listening" {
                    let _ = tx.send(v.clone());
                }
                log.lock().unwrap().push(v);
            }
        });
        let listening = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the pool starts");
        let port = listening["address"]
            .as_str()
            .unwrap()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        Self {
            child,
            port,
            events,
            chain,
        }
    }

    fn url(&self) -> String {
        format!("stratum+tcp://127.0.0.1:{}", self.port)
    }

    fn events(&self, kind: &str) -> Vec<Value> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e["event"] == kind)
            .cloned()
            .collect()
    }

    /// Waits until the log has `n` events of `kind` (the log trails the answers a little);
    /// returns how many it has then.
    fn wait_count(&self, kind: &str, n: usize) -> usize {
        let end = Instant::now() + Duration::from_secs(10);
        while self.events(kind).len() < n && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.events(kind).len()
    }

    /// Waits until the log has an event for which `pred` holds.
    fn wait_for(&self, what: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + timeout;
        loop {
            if let Some(e) = self.events.lock().unwrap().iter().find(|e| pred(e)) {
                return e.clone();
            }
            assert!(
                Instant::now() < end,
                "no {what} in the pool's log within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Ctrl-C: waits for the exit.
    fn interrupt(&mut self) -> ExitStatus {
        Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .unwrap();
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                // Its last words: every event before them has been read.
                self.wait_for("the stopped event", Duration::from_secs(5), |e| {
                    e["event"] == "stopped"
                });
                return s;
            }
            assert!(Instant::now() < end, "the pool did not stop on SIGINT");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn verify(chain: &Path) -> (bool, String) {
    let o = Command::new(EXE)
        .arg("verify")
        .arg(chain)
        .arg("--json")
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr),
    )
}

fn chain_lines(chain: &Path) -> Vec<Value> {
    std::fs::read_to_string(chain)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A raw Stratum connection for the test to speak through.
struct Raw {
    write: TcpStream,
    read: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self {
            write: s.try_clone().unwrap(),
            read: BufReader::new(s),
        }
    }

    fn send(&mut self, v: &Value) {
        self.write.write_all(format!("{v}\n").as_bytes()).unwrap();
    }

    /// The next line, or `None` once the pool closed the connection.
    fn recv(&mut self) -> Option<Value> {
        let mut line = String::new();
        match self.read.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(serde_json::from_str(&line).unwrap()),
        }
    }

    /// The answer to request `id` (notifications before it are kept in `seen`).
    fn answer(&mut self, id: &Value, seen: &mut Vec<Value>) -> Value {
        loop {
            let m = self.recv().expect("an answer before the connection closed");
            if m.get("method").is_none() && m["id"] == *id {
                return m;
            }
            seen.push(m);
        }
    }

    /// Subscribes and authorizes `user`; returns extranonce1, the difficulty in force and the
    /// newest job.
    fn handshake(&mut self, user: &str) -> Miner {
        self.send(&json!({"id": 1, "method": "mining.subscribe", "params": ["test/1"]}));
        let mut seen = Vec::new();
        let sub = self.answer(&json!(1), &mut seen);
        self.send(&json!({"id": 2, "method": "mining.authorize", "params": [user, "x"]}));
        assert_eq!(self.answer(&json!(2), &mut seen)["result"], true);
        let mut miner = Miner {
            extranonce1: hex::decode(sub["result"][1].as_str().unwrap()).unwrap(),
            difficulty: 0.0,
            notify: None,
        };
        for m in seen {
            miner.take(&m);
        }
        while miner.notify.is_none() || miner.difficulty == 0.0 {
            let m = self.recv().unwrap();
            miner.take(&m);
        }
        miner
    }
}

/// What a miner knows of its job.
struct Miner {
    extranonce1: Vec<u8>,
    difficulty: f64,
    notify: Option<Notify>,
}

impl Miner {
    fn take(&mut self, m: &Value) {
        match m["method"].as_str() {
            Some("mining.set_difficulty") => self.difficulty = m["params"][0].as_f64().unwrap(),
            Some("mining.notify") => self.notify = Some(Notify::from_params(&m["params"]).unwrap()),
            _ => {}
        }
    }

    /// The first nonce from `from` whose header meets (`meets`) or misses the share target,
    /// never a block.
    fn find(&self, en2: [u8; 4], from: u32, meets: bool) -> u32 {
        let n = self.notify.as_ref().unwrap();
        let root = n.merkle_root(&self.extranonce1, &en2);
        let share = share_target(self.difficulty);
        let block = n.bits.to_target().unwrap();
        (from..)
            .find(|nonce| {
                let hash = n.header(root, n.time, *nonce, n.version).block_hash();
                share.is_met_by(hash) == meets && !block.is_met_by(hash)
            })
            .unwrap()
    }

    fn submit(&self, user: &str, en2: [u8; 4], nonce: u32) -> Value {
        let n = self.notify.as_ref().unwrap();
        Submit {
            worker: user.into(),
            job_id: n.job_id.clone(),
            extranonce2: en2,
            time: n.time,
            nonce,
            version_bits: None,
        }
        .to_params()
    }
}

/// The outside client: subscribe → authorize → notify → submit through the npm package
/// `stratum-client`; a share computed here is accepted, a bad one refused with code 23, the
/// same share again with 22, a job never sent with 21.
#[test]
fn an_outside_stratum_client_mines_a_share() {
    let outside = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/stratum-outside");
    if !outside.join("node_modules/stratum-client").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&outside)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            ok,
            "the outside client needs Node.js and npm (`.ci/run` installs them)"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let mut pool = Pool::start(dir.path(), &["--share-difficulty", "0.0001"]);
    let mut node = Command::new("node")
        .arg(outside.join("driver.js"))
        .args(["127.0.0.1", &pool.port.to_string(), "alice.npm", "x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = node.stdin.take().unwrap();
    let (tx, events) = channel();
    let out = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(serde_json::from_str::<Value>(&line).unwrap());
        }
    });
    // Events in arrival order; `next` takes the first of a kind not yet taken.
    let mut buffered: Vec<Value> = Vec::new();
    let mut next = |events: &Receiver<Value>, kind: &str| loop {
        if let Some(i) = buffered.iter().position(|e| e["event"] == kind) {
            return buffered.remove(i);
        }
        let e = events
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("no {kind} from the outside client"));
        buffered.push(e);
    };
    let subscribed = next(&events, "subscribed");
    assert_eq!(subscribed["extranonce2_size"], 4);
    let mut miner = Miner {
        extranonce1: hex::decode(subscribed["extranonce1"].as_str().unwrap()).unwrap(),
        difficulty: 0.0,
        notify: None,
    };
    assert_eq!(next(&events, "authorized")["result"], true);
    let d = next(&events, "difficulty");
    miner.difficulty = d["difficulty"].as_f64().unwrap();
    let work = next(&events, "notify");
    miner.notify = Some(
        Notify::from_params(&json!([
            work["job_id"],
            work["prevhash"],
            work["coinb1"],
            work["coinb2"],
            work["merkle_branch"],
            work["version"],
            work["nbits"],
            work["ntime"],
            work["clean_jobs"]
        ]))
        .unwrap(),
    );
    let en2 = [0, 0, 0, 7];
    let good = miner.find(en2, 0, true);
    let bad = miner.find(en2, 0, false);
    let n = miner.notify.as_ref().unwrap();
    let submit = |stdin: &mut ChildStdin, tag: &str, job: &str, nonce: u32| {
        let cmd = json!({"submit": {"tag": tag, "job_id": job, "extranonce2": hex::encode(en2),
            "ntime": format!("{:08x}", n.time), "nonce": format!("{nonce:08x}")}});
        writeln!(stdin, "{cmd}").unwrap();
    };
    let job = n.job_id.clone();
    submit(&mut stdin, "good", &job, good);
    submit(&mut stdin, "bad", &job, bad);
    submit(&mut stdin, "again", &job, good);
    submit(&mut stdin, "unknown", "ffffff", good);
    let mut results = std::collections::HashMap::new();
    while results.len() < 4 {
        let r = next(&events, "submit_result");
        results.insert(r["tag"].as_str().unwrap().to_owned(), r);
    }
    assert_eq!(results["good"]["result"], true, "{:?}", results["good"]);
    assert_eq!(results["bad"]["error"][0], 23, "{:?}", results["bad"]);
    assert_eq!(results["again"]["error"][0], 22, "{:?}", results["again"]);
    assert_eq!(
        results["unknown"]["error"][0], 21,
        "{:?}",
        results["unknown"]
    );
    writeln!(stdin, "{}", json!({"quit": true})).unwrap();
    assert!(node.wait().unwrap().success());
    assert_eq!(pool.interrupt().code(), Some(130), "Ctrl-C exits 130");
    // The pool counted it: one accepted share by alice.npm, three rejections.
    let shares = pool.events("share");
    let accepted: Vec<_> = shares.iter().filter(|s| s["seq"].is_u64()).collect();
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["worker"], "alice.npm");
    assert_eq!(shares.iter().filter(|s| s["reason"].is_string()).count(), 3);
    let (ok, out) = verify(&pool.chain);
    assert!(ok, "{out}");
}

/// Hostile peers: silence, an endless line, garbage, requests out of order, a flood of bad
/// submissions. Each is answered or cut off; a miner connected throughout still gets its
/// share accepted; the chain file verifies.
#[test]
fn hostile_peers_are_cut_off_and_the_pool_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut pool = Pool::start(
        dir.path(),
        &[
            "--share-difficulty",
            "0.0001",
            "--handshake-timeout",
            "1s",
            "--max-submit-rate",
            "10000",
        ],
    );
    let mut good = Raw::connect(pool.port);
    let miner = good.handshake("alice.good");

    // Silent: closed after the handshake timeout.
    let mut silent = Raw::connect(pool.port);
    let t = Instant::now();
    assert!(silent.recv().is_none());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());

    // An endless line: cut off at the cap, not buffered.
    let mut long = Raw::connect(pool.port);
    let chunk = vec![b'x'; 64 * 1024];
    let _ = long.write.write_all(&chunk);
    assert!(long.recv().is_none());

    // Garbage and requests out of order get errors.
    let mut rude = Raw::connect(pool.port);
    rude.write.write_all(b"{not json\n").unwrap();
    assert_eq!(rude.recv().unwrap()["error"][0], 20);
    rude.send(&json!({"id": 5, "method": "mining.mine_for_me", "params": []}));
    let m = rude.recv().unwrap();
    assert_eq!(
        (m["id"].clone(), m["error"][0].clone()),
        (json!(5), json!(20))
    );
    rude.send(&json!({"id": 6, "method": "mining.submit", "params": ["x", "1", "00000000", "00000000", "00000000"]}));
    assert_eq!(rude.recv().unwrap()["error"][0], 25, "not subscribed");
    rude.send(&json!({"id": 7, "method": "mining.subscribe", "params": []}));
    let mut seen = Vec::new();
    rude.answer(&json!(7), &mut seen);
    rude.send(&json!({"id": 8, "method": "mining.submit", "params": ["mallory", "1", "00000000", "00000000", "00000000"]}));
    assert_eq!(
        rude.answer(&json!(8), &mut seen)["error"][0],
        24,
        "unauthorized"
    );
    rude.send(&json!({"id": 9, "method": "mining.authorize", "params": ["bad name!", "x"]}));
    let m = rude.answer(&json!(9), &mut seen);
    assert_eq!(m["error"][0], 20);
    assert!(m["error"][1].as_str().unwrap().contains("NAME[.WORKER]"));

    // A flood of submissions for a job never sent: cut off after 100 rejections in a row.
    let mut flood = Raw::connect(pool.port);
    flood.handshake("mallory.flood");
    let mut batch = String::new();
    for i in 0..300 {
        batch.push_str(&format!(
            "{}\n",
            json!({"id": i, "method": "mining.submit", "params": ["mallory.flood", "nope", "00000000", "00000000", "00000000"]})
        ));
    }
    let _ = flood.write.write_all(batch.as_bytes());
    let mut answers = 0;
    while let Some(m) = flood.recv() {
        if m.get("method").is_none() {
            assert_eq!(m["error"][0], 21);
            answers += 1;
        }
    }
    assert_eq!(
        answers, 100,
        "the pool stops reading a flood after 100 rejections"
    );
    let closed = pool.wait_for("flood disconnect", Duration::from_secs(5), |e| {
        e["event"] == "disconnected" && e["reason"].as_str().is_some_and(|r| r.contains("rejected"))
    });
    assert!(closed["reason"].as_str().unwrap().contains("100"));

    // The good miner is still served.
    let nonce = miner.find([0, 0, 0, 1], 0, true);
    good.send(&json!({"id": 50, "method": "mining.submit", "params": miner.submit("alice.good", [0, 0, 0, 1], nonce)}));
    let mut seen = Vec::new();
    let m = good.answer(&json!(50), &mut seen);
    assert_eq!(m["result"], true, "{m}");
    // A version-rolled share outside the negotiated mask (none negotiated) is refused.
    let mut p = miner.submit("alice.good", [0, 0, 0, 2], nonce);
    p.as_array_mut().unwrap().push(json!("00002000"));
    good.send(&json!({"id": 51, "method": "mining.submit", "params": p}));
    let m = good.answer(&json!(51), &mut seen);
    assert!(m["error"][1].as_str().unwrap().contains("mask"), "{m}");
    drop(good);
    assert_eq!(pool.interrupt().code(), Some(130));
    let (ok, out) = verify(&pool.chain);
    assert!(ok, "{out}");
    let lines = chain_lines(&pool.chain);
    assert!(!lines.is_empty());
}

/// `mining.configure` (BIP 310): version rolling within BIP 320's mask; a share with rolled
/// bits is checked against the header the miner built with them.
#[test]
fn version_rolling_is_negotiated_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(dir.path(), &["--share-difficulty", "0.0001"]);
    let mut c = Raw::connect(pool.port);
    c.send(&json!({"id": 1, "method": "mining.configure", "params": [["version-rolling", "minimum-difficulty"], {"version-rolling.mask": "ffffffff", "version-rolling.min-bit-count": 2}]}));
    let mut seen = Vec::new();
    let m = c.answer(&json!(1), &mut seen);
    assert_eq!(m["result"]["version-rolling"], true);
    assert_eq!(m["result"]["version-rolling.mask"], "1fffe000");
    assert_eq!(m["result"]["minimum-difficulty"], false);
    let miner = c.handshake("bob.asic");
    let n = miner.notify.as_ref().unwrap();
    let bits = 0x0012_4000u32;
    let root = n.merkle_root(&miner.extranonce1, &[0; 4]);
    let share = share_target(miner.difficulty);
    let block = n.bits.to_target().unwrap();
    let version = (n.version & !0x1fff_e000) | bits;
    let nonce = (0..)
        .find(|x| {
            let h = n.header(root, n.time, *x, version).block_hash();
            share.is_met_by(h) && !block.is_met_by(h)
        })
        .unwrap();
    let mut p = miner.submit("bob.asic", [0; 4], nonce);
    p.as_array_mut().unwrap().push(json!(format!("{bits:08x}")));
    c.send(&json!({"id": 3, "method": "mining.submit", "params": p}));
    assert_eq!(c.answer(&json!(3), &mut seen)["result"], true);
    assert_eq!(pool.wait_count("share", 1), 1);
}

/// Reads `/proc/PID/stat`'s user + system CPU seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The pool's peak resident memory, MiB.
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    kb / 1024.0
}

/// A spec whose blocks need difficulty 1 (Bitcoin's genesis), so that no load-test share is a
/// block.
fn hard_spec(dir: &Path) -> PathBuf {
    let mut spec: Value = serde_json::from_str(include_str!("../chains/regtest.json")).unwrap();
    spec["name"] = json!("pool-load");
    spec["genesis"]["time"] = json!(1_231_006_505);
    spec["genesis"]["bits"] = json!("1d00ffff");
    spec["genesis"]["nonce"] = json!(2_083_236_893);
    spec["pow_limit"] = json!("00000000ffffffffffffffffffffffffffffffffffffffffffffffffffffffff");
    let path = dir.join("pool-load.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// Load: 500 connections at once, each submitting shares one at a time (a valid share at the
/// lowest difficulty, every hash). Measures shares checked per CPU-second of the pool and the
/// p99 submit latency; the pool's memory stays bounded. `CHAINSMITH_POOL_LOAD_SHARES` (per
/// connection, default 20) makes it longer.
#[test]
fn five_hundred_connections_submitting_shares() {
    let per_conn: u32 = std::env::var("CHAINSMITH_POOL_LOAD_SHARES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let conns = 500usize;
    let dir = tempfile::tempdir().unwrap();
    let spec = hard_spec(dir.path());
    let mut pool = Pool::start(
        dir.path(),
        &[
            "--spec",
            spec.to_str().unwrap(),
            "--share-difficulty",
            "2.3283064365386963e-10",
            "--max-connections-per-ip",
            "1000",
            "--tx-per-block",
            "0",
        ],
    );
    // Connect and hand-shake every connection before the clock starts.
    let miners: Vec<(Raw, Miner)> = (0..conns)
        .map(|i| {
            let mut c = Raw::connect(pool.port);
            let m = c.handshake(&format!("load.w{i}"));
            (c, m)
        })
        .collect();
    assert_eq!(pool.wait_count("authorized", conns), conns);
    let cpu0 = cpu_seconds(pool.pid());
    let started = Instant::now();
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = miners
        .into_iter()
        .enumerate()
        .map(|(i, (mut c, m))| {
            let latencies = Arc::clone(&latencies);
            std::thread::spawn(move || {
                let user = format!("load.w{i}");
                let mut mine = Vec::with_capacity(per_conn as usize);
                let mut nonce = 0;
                for k in 0..per_conn {
                    // At the lowest difficulty all but one hash in 65 536 is a share.
                    nonce = m.find([0; 4], nonce, true);
                    let params = m.submit(&user, [0; 4], nonce);
                    nonce += 1;
                    let t = Instant::now();
                    c.send(&json!({"id": k, "method": "mining.submit", "params": params}));
                    let mut seen = Vec::new();
                    let a = c.answer(&json!(k), &mut seen);
                    mine.push(t.elapsed().as_secs_f64());
                    assert_eq!(a["result"], true, "{a}");
                }
                latencies.lock().unwrap().extend(mine);
                c
            })
        })
        .collect();
    let conns_back: Vec<Raw> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pool.pid()) - cpu0;
    let peak = peak_mib(pool.pid());
    let mut lat = latencies.lock().unwrap().clone();
    lat.sort_by(f64::total_cmp);
    let total = lat.len();
    let p = |q: f64| lat[((total as f64 * q) as usize).min(total - 1)] * 1000.0;
    println!(
        "pool load: {conns} connections, {total} shares in {wall:.2} s ({:.0}/s), pool CPU {cpu:.2} s = {:.0} shares per CPU-second, latency p50 {:.2} ms p99 {:.2} ms, peak RSS {peak:.1} MiB",
        total as f64 / wall,
        total as f64 / cpu.max(0.01),
        p(0.5),
        p(0.99)
    );
    assert_eq!(total, conns * per_conn as usize);
    assert!(peak < 256.0, "the pool's memory grew to {peak:.0} MiB");
    drop(conns_back);
    assert_eq!(pool.interrupt().code(), Some(130));
    let shares = pool.events("share");
    assert_eq!(shares.iter().filter(|s| s["seq"].is_u64()).count(), total);
}

/// A spec for quick pooled blocks: difficulty 2^-16 (65 536 hashes a block, fast even in a
/// debug build), coinbases mature after one block so that demo transfers give the jobs a real
/// merkle branch, no retargeting.
fn quick_spec(dir: &Path) -> PathBuf {
    use chainsmith::primitives::hash::BlockHash;
    let mut spec: Value = serde_json::from_str(include_str!("../chains/pow-demo.json")).unwrap();
    spec["name"] = json!("pool-quick");
    spec["genesis"]["bits"] = json!("1f00ffff");
    spec["coinbase_maturity"] = json!(1);
    spec["retarget"] = json!({"rule": "none"});
    let target = chainsmith::CompactTarget::from_consensus(0x1f00_ffff)
        .to_target()
        .unwrap();
    let raw = hex::decode(spec["genesis"]["coinbase_hex"].as_str().unwrap()).unwrap();
    let root = BlockHash::hash(&raw).to_byte_array();
    let header = |nonce: u32| chainsmith::Header {
        version: 1,
        prev_hash: BlockHash::ZERO,
        merkle_root: chainsmith::primitives::hash::MerkleRoot::from_byte_array(root),
        time: u32::try_from(spec["genesis"]["time"].as_u64().unwrap()).unwrap(),
        bits: chainsmith::CompactTarget::from_consensus(0x1f00_ffff),
        nonce,
    };
    let nonce = (0..)
        .find(|n| target.is_met_by(header(*n).block_hash()))
        .unwrap();
    spec["genesis"]["nonce"] = json!(nonce);
    let path = dir.join("pool-quick.json");
    std::fs::write(&path, spec.to_string()).unwrap();
    path
}

/// Three of our miner processes on one pool: the chain verifies, every block's coinbase pays
/// the PPLNS split recomputed here from the pool's share log, and each miner's count of
/// accepted shares is the pool's.
#[test]
fn three_miners_one_pool_pplns() {
    let dir = tempfile::tempdir().unwrap();
    let spec = quick_spec(dir.path());
    let window = 24u64;
    let mut pool = Pool::start(
        dir.path(),
        &[
            "--spec",
            spec.to_str().unwrap(),
            "--share-difficulty",
            "9.5367431640625e-7",
            "--pplns-window",
            &window.to_string(),
            "--blocks",
            "8",
            "--job-interval",
            "200ms",
        ],
    );
    let users = ["alice.r1", "bob.r2", "carol.r3"];
    let miners: Vec<Child> = users
        .iter()
        .map(|u| {
            Command::new(EXE)
                .args([
                    "mine",
                    "pow",
                    "--pool",
                    &pool.url(),
                    "--user",
                    u,
                    "--threads",
                    "1",
                    "--json",
                    "--quiet",
                    "--retry-pause",
                    "1",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = pool.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "8 blocks within two minutes");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "--blocks 8 ends the pool with exit 0");
    pool.wait_for("the stopped event", Duration::from_secs(5), |e| {
        e["event"] == "stopped"
    });
    let mut accepted_by_miner = std::collections::HashMap::new();
    for (user, m) in users.iter().zip(miners) {
        Command::new("kill")
            .args(["-INT", &m.id().to_string()])
            .status()
            .unwrap();
        let out = m.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(130),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
        accepted_by_miner.insert(*user, summary["accepted"].as_u64().unwrap());
    }
    let (ok, out) = verify(&pool.chain);
    assert!(ok, "{out}");
    let blocks = chain_lines(&pool.chain);
    assert_eq!(blocks.len(), 9, "genesis and 8 blocks");

    // The share log, in acceptance order.
    let shares: Vec<(u64, String, u128)> = pool
        .events("share")
        .iter()
        .filter(|s| s["seq"].is_u64())
        .map(|s| {
            (
                s["seq"].as_u64().unwrap(),
                s["worker"].as_str().unwrap().to_owned(),
                s["work"].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect();
    for (i, s) in shares.iter().enumerate() {
        assert_eq!(s.0, i as u64, "shares are numbered in order");
    }
    for user in users {
        let pool_count = shares.iter().filter(|s| s.1 == user).count() as u64;
        let miner_count = accepted_by_miner[user];
        assert!(pool_count > 0, "{user} had shares accepted");
        // A share accepted as the pool stopped may not have reached its miner.
        assert!(
            (pool_count - miner_count) <= 1 && miner_count <= pool_count,
            "{user}: pool {pool_count}, miner {miner_count}"
        );
    }
    // The pool's own books, as its last statistics event gives them, count the same.
    let stats = pool.events("stats");
    let last = stats.last().expect("a statistics event at the stop");
    for user in users {
        let w = last["workers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["worker"] == user)
            .unwrap();
        let logged = shares.iter().filter(|s| s.1 == user).count() as u64;
        assert_eq!(w["accepted"].as_u64().unwrap(), logged, "{user}");
        assert!(w["hash_rate"].as_f64().unwrap() > 0.0);
    }
    let found: u64 = last["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["blocks"].as_u64().unwrap())
        .sum();
    assert_eq!(found, 8, "the workers found the 8 blocks");
    let seed = "chainsmith pow-demo";
    let payee = |worker: &str| {
        chainsmith::primitives::tx::KeyPair::derive(seed, worker.split('.').next().unwrap())
            .pubkey()
            .to_string()
    };
    let jobs = pool.events("job");
    let mut multi_payee_blocks = 0;
    let mut branch_blocks = 0;
    for b in pool
        .events("block")
        .iter()
        .filter(|b| b["accepted"] == true)
    {
        let job = jobs.iter().find(|j| j["job"] == b["job"]).unwrap();
        let height = b["height"].as_u64().unwrap() as usize;
        let line = &blocks[height];
        assert_eq!(line["hash"], b["hash"]);
        branch_blocks += usize::from(line["txs"].as_array().unwrap().len() > 1);
        let paid: Vec<(String, u64)> = line["txs"][0]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["to"].as_str().unwrap().to_owned(),
                    (o["value"].as_f64().unwrap() * 1e8).round() as u64,
                )
            })
            .collect();
        let reward: u64 = paid.iter().map(|p| p.1).sum();
        // The rule, recomputed: the last `window` shares before the job, weighted by work.
        let before = job["shares_before"].as_u64().unwrap() as usize;
        let from = before.saturating_sub(window as usize);
        let mut weights: std::collections::BTreeMap<String, u128> =
            std::collections::BTreeMap::new();
        for s in &shares[from..before] {
            *weights.entry(payee(&s.1)).or_default() += s.2;
        }
        let expected: Vec<(String, u64)> = if weights.is_empty() {
            vec![(
                chainsmith::primitives::tx::KeyPair::derive(seed, "miner")
                    .pubkey()
                    .to_string(),
                reward,
            )]
        } else {
            let total: u128 = weights.values().sum();
            let mut parts: std::collections::BTreeMap<String, u64> = weights
                .iter()
                .map(|(k, w)| (k.clone(), (u128::from(reward) * w / total) as u64))
                .collect();
            let heaviest = weights
                .iter()
                .rev()
                .max_by_key(|(_, w)| **w)
                .unwrap()
                .0
                .clone();
            let left = reward - parts.values().sum::<u64>();
            *parts.get_mut(&heaviest).unwrap() += left;
            parts.into_iter().filter(|p| p.1 > 0).collect()
        };
        assert_eq!(
            paid, expected,
            "block {height}: coinbase against the PPLNS split of shares {from}..{before}"
        );
        multi_payee_blocks += usize::from(paid.len() > 1);
    }
    assert!(multi_payee_blocks > 0, "some block split its reward");
    assert!(
        branch_blocks > 0,
        "some block had transfers after its coinbase"
    );
}

/// Bad command lines: one line naming what is wrong, exit 2, nothing written.
#[test]
fn pool_usage_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let chain = dir.path().join("c.jsonl");
    let c = chain.to_str().unwrap();
    for (args, want) in [
        (
            vec!["pool", "--spec", "pos-demo", "--chain", c],
            "proof-of-work",
        ),
        (vec!["pool", "--listen", &busy, "--chain", c], "--listen"),
        (
            vec!["pool", "--listen", "nowhere", "--chain", c],
            "--listen",
        ),
        (
            vec!["pool", "--share-difficulty", "0", "--chain", c],
            "--share-difficulty",
        ),
        (
            vec!["pool", "--share-difficulty=-1", "--chain", c],
            "--share-difficulty",
        ),
        (
            vec![
                "pool",
                "--operator",
                "not a name!",
                "--listen",
                "127.0.0.1:0",
                "--chain",
                c,
            ],
            "--operator",
        ),
        (
            vec!["pool", "--pplns-window", "0", "--chain", c],
            "--pplns-window",
        ),
    ] {
        let o = Command::new(EXE).args(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        // The first line says it (clap adds a pointer to --help after its own errors).
        assert!(
            err.lines().next().unwrap().contains(want),
            "{args:?}: {err}"
        );
    }
    assert!(!chain.exists(), "no chain file was created");
}

/// Vardiff: a connection that sends shares far faster than wanted gets a higher difficulty
/// (`mining.set_difficulty`, then the job again under a new id), and a share for the new job
/// is judged at it; one for the job sent before still at the old one.
#[test]
fn vardiff_raises_a_fast_connection() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(
        dir.path(),
        &[
            "--share-difficulty",
            "1e-7",
            "--vardiff",
            "--shares-per-minute",
            "1",
        ],
    );
    let mut c = Raw::connect(pool.port);
    let mut miner = c.handshake("carol.fast");
    let start = miner.difficulty;
    let old_job = miner.notify.clone().unwrap();
    let mut seen = Vec::new();
    let mut nonce = 0;
    // 16 quick shares: 960 a minute against the wanted 1.
    for id in 100..116 {
        nonce = miner.find([0; 4], nonce, true);
        c.send(&json!({"id": id, "method": "mining.submit", "params": miner.submit("carol.fast", [0; 4], nonce)}));
        assert_eq!(c.answer(&json!(id), &mut seen)["result"], true);
        nonce += 1;
    }
    for m in &seen {
        miner.take(m);
    }
    // The retarget follows the answer to the share that triggered it.
    while miner.notify.as_ref().unwrap().job_id == old_job.job_id {
        let m = c.recv().expect("a new difficulty and job");
        miner.take(&m);
    }
    assert!(
        (miner.difficulty / start - 4.0).abs() < 1e-9,
        "one step of ×4: {} → {}",
        start,
        miner.difficulty
    );
    let new_job = miner.notify.clone().unwrap();
    assert_ne!(
        new_job.job_id, old_job.job_id,
        "the job again under a new id"
    );
    // On the new job: a hash that meets the old target but not the new one is low.
    let root = new_job.merkle_root(&miner.extranonce1, &[0, 0, 0, 9]);
    let (old_t, new_t) = (share_target(start), share_target(miner.difficulty));
    let between = (0..)
        .find(|n| {
            let h = new_job
                .header(root, new_job.time, *n, new_job.version)
                .block_hash();
            old_t.is_met_by(h) && !new_t.is_met_by(h)
        })
        .unwrap();
    c.send(&json!({"id": 200, "method": "mining.submit", "params": miner.submit("carol.fast", [0, 0, 0, 9], between)}));
    assert_eq!(c.answer(&json!(200), &mut seen)["error"][0], 23);
    // The job sent before the change keeps its difficulty.
    miner.notify = Some(old_job.clone());
    let root = old_job.merkle_root(&miner.extranonce1, &[0, 0, 0, 9]);
    let between = (0..)
        .find(|n| {
            let h = old_job
                .header(root, old_job.time, *n, old_job.version)
                .block_hash();
            old_t.is_met_by(h) && !new_t.is_met_by(h)
        })
        .unwrap();
    c.send(&json!({"id": 201, "method": "mining.submit", "params": miner.submit("carol.fast", [0, 0, 0, 9], between)}));
    assert_eq!(c.answer(&json!(201), &mut seen)["result"], true);
    pool.wait_for("the difficulty event", Duration::from_secs(5), |e| {
        e["event"] == "difficulty"
    });
}

/// One header is one share: the same share sent again under another id of the same job (the
/// pool resends its newest job to a second `mining.subscribe`, after a retarget, and
/// refreshes jobs whose coinbase did not change) is a duplicate, not a second share.
#[test]
fn a_share_counts_once_whatever_job_id_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(
        dir.path(),
        &["--share-difficulty", "0.00001", "--job-interval", "1s"],
    );
    let mut c = Raw::connect(pool.port);
    let mut miner = c.handshake("alice.rig");
    // A refreshed job is not clean: a second subscribe then keeps the ids sent before.
    while miner.notify.as_ref().unwrap().clean_jobs {
        let m = c.recv().unwrap();
        miner.take(&m);
    }
    let first = miner.notify.clone().unwrap();
    c.send(&json!({"id": 5, "method": "mining.subscribe", "params": []}));
    let mut seen = Vec::new();
    c.answer(&json!(5), &mut seen);
    while seen.iter().all(|m| m["method"] != "mining.notify") {
        seen.push(c.recv().unwrap());
    }
    let again = seen
        .iter()
        .rev()
        .find(|m| m["method"] == "mining.notify")
        .unwrap();
    let second = Notify::from_params(&again["params"]).unwrap();
    assert_ne!(first.job_id, second.job_id);
    miner.notify = Some(second.clone());
    let nonce = miner.find([0; 4], 0, true);
    let mut answers = Vec::new();
    for (id, job) in [(6, &second), (7, &first)] {
        let mut p = miner.submit("alice.rig", [0; 4], nonce);
        p[1] = json!(job.job_id);
        p[3] = json!(format!("{:08x}", first.time.max(second.time)));
        c.send(&json!({"id": id, "method": "mining.submit", "params": p}));
        answers.push(c.answer(&json!(id), &mut seen));
    }
    assert_eq!(answers[0]["result"], true, "{answers:?}");
    assert_eq!(answers[1]["error"][0], 22, "{answers:?}");
}

/// `mining.suggest_difficulty` may raise a connection's difficulty, never lower it below the
/// pool's: nearly free shares would fill the PPLNS window.
#[test]
fn suggested_difficulty_is_not_below_the_pools() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(dir.path(), &["--share-difficulty", "0.0001"]);
    let mut c = Raw::connect(pool.port);
    c.send(&json!({"id": 9, "method": "mining.suggest_difficulty", "params": [1e-300]}));
    c.answer(&json!(9), &mut Vec::new());
    assert_eq!(c.handshake("mallory.x").difficulty, 0.0001);
    let mut c = Raw::connect(pool.port);
    c.send(&json!({"id": 9, "method": "mining.suggest_difficulty", "params": [0.001]}));
    c.answer(&json!(9), &mut Vec::new());
    assert_eq!(c.handshake("bob.x").difficulty, 0.001);
}

/// Worker names that come and go do not fill the pool's books for good: once the pool keeps
/// its most workers, a new worker takes the books of one that is on no connection.
#[test]
fn throw_away_workers_do_not_lock_out_new_ones() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(dir.path(), &[]);
    for conn in 0..=(10_000 / 16) {
        let mut c = Raw::connect(pool.port);
        let mut lines = String::from("{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n");
        for w in 0..16 {
            lines += &format!(
                "{}\n",
                json!({"id": 2 + w, "method": "mining.authorize", "params": [format!("{}.c{conn}w{w}", "ab".repeat(32)), "x"]})
            );
        }
        c.write.write_all(lines.as_bytes()).unwrap();
        c.answer(&json!(17), &mut Vec::new());
    }
    let mut c = Raw::connect(pool.port);
    c.handshake("honest.rig");
}

/// At most `--max-connections-per-ip` connections from one address: the next is closed on
/// arrival, and a slot frees when one leaves.
#[test]
fn connections_per_address_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let pool = Pool::start(dir.path(), &["--max-connections-per-ip", "2"]);
    let mut a = Raw::connect(pool.port);
    a.handshake("alice.a");
    let mut b = Raw::connect(pool.port);
    b.handshake("alice.b");
    let mut c = Raw::connect(pool.port);
    assert!(c.recv().is_none(), "the third is closed");
    pool.wait_for("the refusal", Duration::from_secs(5), |e| {
        e["event"] == "disconnected"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("2 connections from 127.0.0.1"))
    });
    drop(a);
    pool.wait_for("the first leaving", Duration::from_secs(5), |e| {
        e["event"] == "disconnected" && e["connection"] == 1
    });
    let mut d = Raw::connect(pool.port);
    d.handshake("alice.d");
}
