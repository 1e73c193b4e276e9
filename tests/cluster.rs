//! Real clusters: node processes on 127.0.0.1, started, killed, partitioned and restarted
//! through the CLI, judged from outside — by `verify` on every node's chain file and by
//! comparing the files (each is a prefix of the longest).

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_chainsmith");

fn cmd(args: &[&str]) -> Output {
    Command::new(EXE).args(args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A local cluster in a temporary directory, stopped (SIGTERM) when dropped; its nodes also
/// stop by themselves after a few minutes whatever happens to the test.
struct Local {
    dir: tempfile::TempDir,
}

impl Local {
    fn up(rule: &str, nodes: usize, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap().to_owned();
        let n = nodes.to_string();
        let mut args = vec![
            "cluster",
            "up",
            "--rule",
            rule,
            "--nodes",
            &n,
            "--dir",
            &d,
            "--lifetime",
            "240s",
        ];
        args.extend_from_slice(extra);
        let o = cmd(&args);
        let local = Self { dir };
        assert!(o.status.success(), "cluster up: {}", text(&o));
        local
    }

    fn dir(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn config(&self) -> String {
        format!("{}/cluster.toml", self.dir())
    }

    fn client(&self, args: &[&str]) -> Output {
        let config = self.config();
        let mut all = vec!["client", "--config", config.as_str()];
        all.extend_from_slice(args);
        cmd(&all)
    }

    fn status(&self) -> Vec<Value> {
        let o = self.client(&["status", "--json"]);
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)))
    }

    fn node(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|s| s["name"] == name)
            .unwrap()
    }

    /// The leader that a majority of the whole cluster names, among `among` (all when empty),
    /// waiting up to `limit`.
    fn leader(&self, among: &[&str], limit: Duration) -> String {
        let end = Instant::now() + limit;
        loop {
            let st = self.status();
            let quorum = st.len() / 2 + 1;
            let named: Vec<&str> = st
                .iter()
                .filter(|s| among.is_empty() || among.contains(&s["name"].as_str().unwrap()))
                .filter_map(|s| s["leader"].as_str())
                .collect();
            if let Some(l) = named.iter().find(|l| {
                (among.is_empty() || among.contains(*l))
                    && named.iter().filter(|x| x == l).count() >= quorum
            }) {
                return (*l).to_owned();
            }
            assert!(Instant::now() < end, "no leader among {among:?}: {st:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn submit(&self, args: &[&str]) -> (bool, Value) {
        let mut all = vec!["submit", "--json"];
        all.extend_from_slice(args);
        let o = self.client(&all);
        let v: Value =
            serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&o)));
        (o.status.success(), v)
    }

    fn chain(&self, name: &str) -> PathBuf {
        self.dir.path().join(name).join("chain.jsonl")
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(name).join("node.log")).unwrap()
    }

    fn height(&self, name: &str) -> u64 {
        self.node(name)["height"].as_u64().unwrap_or(0)
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = cmd(&["cluster", "down", "--dir", self.dir()]);
    }
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The block hashes of a chain file, in order.
fn hashes(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["hash"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Every chain file verifies, and each is a prefix of the longest (by block hash: a PBFT
/// replica's certificate holds the signatures it collected, which differ from node to
/// node); returns the longest file's lines.
fn judge(files: &[PathBuf]) -> Vec<String> {
    for f in files {
        let o = cmd(&["verify", f.to_str().unwrap()]);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
    }
    let all: Vec<Vec<String>> = files.iter().map(|f| lines(f)).collect();
    let longest = all.iter().max_by_key(|l| l.len()).unwrap().clone();
    let want = hashes(&longest);
    for (f, l) in files.iter().zip(&all) {
        let got = hashes(l);
        if let Some(h) = (0..got.len()).find(|h| got[*h] != want[*h]) {
            panic!(
                "{} is not a prefix of the longest chain: block {h} is {} there, {} in the longest",
                f.display(),
                got[h],
                want[h]
            );
        }
    }
    longest
}

/// (client, serial) → how many blocks of `chain` carry it.
fn request_counts(chain: &[String], client: u64) -> std::collections::HashMap<u64, usize> {
    let mut counts = std::collections::HashMap::new();
    for line in chain {
        let v: Value = serde_json::from_str(line).unwrap();
        let Some(seal) = v["txs"].get(1) else {
            continue;
        };
        let reqs = seal
            .get("requests")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for r in reqs {
            if r["client"].as_u64() == Some(client) {
                *counts.entry(r["serial"].as_u64().unwrap()).or_default() += 1;
            }
        }
    }
    counts
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("s{i}")).collect()
}

#[test]
fn five_raft_nodes_survive_kill_9_of_the_leader_and_the_victim_catches_up() {
    let c = Local::up("raft", 5, &[]);
    let first = c.leader(&[], Duration::from_secs(10));

    // 200 transactions round-robin over all five nodes (followers forward): each commits once.
    let (ok, r) = c.submit(&[
        "--count",
        "200",
        "--concurrency",
        "20",
        "--client",
        "7",
        "--timeout",
        "30s",
    ]);
    assert!(ok, "{r}");
    assert_eq!(r["committed"], 200);

    // kill -9 the leader: a new one is elected and commits go on.
    let o = cmd(&["cluster", "kill", &first, "--dir", c.dir()]);
    assert!(o.status.success(), "{}", text(&o));
    let killed = Instant::now();
    let (ok, r) = c.submit(&[
        "--count",
        "1",
        "--client",
        "8",
        "--timeout",
        "10s",
        "--retry",
        "200ms",
    ]);
    let recovered = killed.elapsed();
    assert!(ok, "{r}");
    let others: Vec<String> = names(5).into_iter().filter(|n| *n != first).collect();
    let others: Vec<&str> = others.iter().map(String::as_str).collect();
    let second = c.leader(&others, Duration::from_secs(5));
    assert_ne!(second, first);
    // The election timeout is 150–300 ms: recovery is a matter of a few timeouts, not
    // seconds of them (a generous bound for a loaded CI machine).
    assert!(
        recovered < Duration::from_secs(5),
        "recovered after {recovered:?}"
    );
    let (ok, r) = c.submit(&["--count", "50", "--concurrency", "10", "--client", "9"]);
    assert!(ok, "{r}");

    // The victim restarts from its write-ahead log and chain file and catches up.
    let o = cmd(&[
        "cluster",
        "start",
        &first,
        "--dir",
        c.dir(),
        "--lifetime",
        "240s",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let target = c.height(&second);
    let end = Instant::now() + Duration::from_secs(15);
    while c.height(&first) < target {
        assert!(
            Instant::now() < end,
            "{first} stuck at {} < {target}",
            c.height(&first)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(c.log(&first).contains("durable writes"));

    let down = cmd(&["cluster", "down", "--dir", c.dir()]);
    assert!(down.status.success(), "{}", text(&down));
    let files: Vec<PathBuf> = names(5).iter().map(|n| c.chain(n)).collect();
    let longest = judge(&files);
    let counts = request_counts(&longest, 7);
    assert_eq!(
        counts.len(),
        200,
        "every request of client 7 is in the chain"
    );
    assert!(counts.values().all(|n| *n == 1), "each exactly once");
}

#[test]
fn a_partitioned_minority_commits_nothing_and_its_old_leader_truncates_on_heal() {
    let c = Local::up("raft", 5, &[]);
    let old = c.leader(&[], Duration::from_secs(10));
    let follower = names(5).into_iter().find(|n| *n != old).unwrap();
    let majority: Vec<String> = names(5)
        .into_iter()
        .filter(|n| *n != old && *n != follower)
        .collect();
    let old_term = c.node(&old)["term"].as_u64().unwrap();
    let minority_group = format!("{old},{follower}");
    let majority_group = majority.join(",");
    let o = c.client(&["fault", "partition", &minority_group, &majority_group]);
    assert!(o.status.success(), "{}", text(&o));
    let cut_at = c.height(&old);

    // The minority cannot commit: a submission there times out.
    let (ok, r) = c.submit(&[
        "--node",
        &old,
        "--count",
        "3",
        "--timeout",
        "2s",
        "--client",
        "11",
    ]);
    assert!(!ok, "{r}");
    assert_eq!(r["committed"], 0);
    assert!(c.height(&old) <= cut_at + 1, "the minority kept committing");
    assert!(c.height(&follower) <= cut_at + 1);

    // The majority elects a leader of its own and commits.
    let maj: Vec<&str> = majority.iter().map(String::as_str).collect();
    let new = c.leader(&maj, Duration::from_secs(10));
    assert!(maj.contains(&new.as_str()));
    let (ok, r) = c.submit(&["--node", maj[0], "--count", "10", "--client", "12"]);
    assert!(ok, "{r}");

    // Heal: the old leader follows the new term and drops the entries it could not commit.
    let o = c.client(&["fault", "heal"]);
    assert!(o.status.success(), "{}", text(&o));
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let s = c.node(&old);
        if s["role"] == "follower"
            && s["term"].as_u64().unwrap() > old_term
            && c.height(&old) >= c.height(&new)
        {
            break;
        }
        assert!(Instant::now() < end, "{old} did not rejoin: {s}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        c.log(&old).contains("log truncated after index"),
        "{}",
        c.log(&old)
    );
    let down = cmd(&["cluster", "down", "--dir", c.dir()]);
    assert!(down.status.success());
    let files: Vec<PathBuf> = names(5).iter().map(|n| c.chain(n)).collect();
    let longest = judge(&files);
    assert_eq!(request_counts(&longest, 12).len(), 10);
}

#[test]
fn non_members_and_garbage_are_refused_and_the_node_keeps_serving() {
    use chainsmith::node::config::Cluster;
    use chainsmith::node::wire::{Auth, Hello, Side, encode, transcript};
    use chainsmith::primitives::tx::KeyPair;

    let c = Local::up("raft", 3, &[]);
    let cluster = Cluster::load(Path::new(&c.config())).unwrap();
    let target = cluster.members[0].address;
    let frame = |payload: Vec<u8>| {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend(payload);
        f
    };
    // Garbage bytes, and a length prefix of 4 GiB.
    for junk in [b"GET / HTTP/1.1\r\n\r\n".to_vec(), vec![0xff; 64]] {
        let mut s = TcpStream::connect(target).unwrap();
        s.write_all(&junk).unwrap();
        let mut buf = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.read_to_end(&mut buf);
    }
    // A process that claims to be s2 but holds another key.
    let mut s = TcpStream::connect(target).unwrap();
    let nonce = [5u8; 32];
    s.write_all(&frame(encode(&Hello::Peer {
        cluster: cluster.id(),
        name: "s2".into(),
        nonce,
    })))
    .unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut challenge = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut challenge).unwrap();
    let challenge: chainsmith::node::wire::Challenge =
        chainsmith::node::wire::decode(&challenge).unwrap();
    let forger = KeyPair::from_secret("s2", [9; 32]);
    let t = transcript(Side::Opener, &cluster.id(), &nonce, &challenge.nonce, "s2");
    s.write_all(&frame(encode(&Auth {
        signature: forger.sign(&t),
    })))
    .unwrap();
    // A forged engine message after the refused handshake goes nowhere: the node closes.
    let _ = s.write_all(&frame(vec![0x90]));
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "the node answered a forged link");
    // A name that is no member.
    let mut s = TcpStream::connect(target).unwrap();
    s.write_all(&frame(encode(&Hello::Peer {
        cluster: cluster.id(),
        name: "mallory".into(),
        nonce,
    })))
    .unwrap();
    let _ = s.read_to_end(&mut Vec::new());

    let log = c.log("s1");
    assert!(log.contains("refused a link claiming to be s2"), "{log}");
    assert!(log.contains("\"mallory\" is not a member"), "{log}");
    assert!(log.contains("refused a connection"), "{log}");
    // Still serving, still in the cluster.
    assert_eq!(c.node("s1")["peers"].as_array().unwrap().len(), 2);
    let (ok, r) = c.submit(&["--node", "s1", "--count", "5"]);
    assert!(ok, "{r}");
}

#[test]
fn bad_cluster_files_and_a_busy_port_get_one_line_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let good = format!(
        "rule = \"raft\"\n[[node]]\nname = \"a\"\naddress = \"127.0.0.1:{port}\"\n[[node]]\nname = \"b\"\naddress = \"127.0.0.1:1\"\n"
    );
    for (i, (file, expect)) in [
        (good.replace("\"b\"", "\"a\""), "named twice"),
        (good.replace("127.0.0.1:1", "nowhere"), "is not an IP address"),
        (good.replace("\"raft\"", "\"bft\""), "is not an ordering rule"),
        (
            good.replace(
                "name = \"a\"",
                "name = \"a\"\nkey_file = \"missing.key\"\npublic_key = \"0000000000000000000000000000000000000000000000000000000000000001\"",
            ),
            "missing.key",
        ),
        (good.clone(), "cannot listen on"),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::write(&path, &file).unwrap();
        let o = cmd(&["node", "--config", path.to_str().unwrap(), "--id", "a"]);
        assert_eq!(o.status.code(), Some(2), "{}", text(&o));
        let err = String::from_utf8_lossy(&o.stderr);
        let last = err.lines().last().unwrap_or_default();
        assert!(last.starts_with("chainsmith: error:") && last.contains(expect), "{err}");
    }
    drop(busy);
}

#[test]
fn four_pbft_nodes_with_an_equivocating_primary_agree_and_certify_every_block() {
    // s1 is view 0's primary: it sends different pre-prepares to different backups.
    let c = Local::up("pbft", 4, &["--byzantine", "s1:equivocate"]);
    assert_eq!(c.node("s1")["byzantine"], "equivocate");
    let (ok, r) = c.submit(&[
        "--count",
        "60",
        "--concurrency",
        "10",
        "--client",
        "21",
        "--timeout",
        "30s",
        "--retry",
        "500ms",
    ]);
    assert!(ok, "{r}");
    // The honest replicas moved past the lying primary's view.
    let view = c.node("s2")["term"].as_u64().unwrap();
    assert!(view >= 1, "still in view 0 under an equivocating primary");
    let down = cmd(&["cluster", "down", "--dir", c.dir()]);
    assert!(down.status.success());
    // Every honest replica's file verifies — each block's quorum certificate included — and
    // they agree.
    let files: Vec<PathBuf> = ["s2", "s3", "s4"].iter().map(|n| c.chain(n)).collect();
    let longest = judge(&files);
    let counts = request_counts(&longest, 21);
    assert_eq!(counts.len(), 60);
    assert!(counts.values().all(|n| *n == 1));
}

#[test]
fn paxos_zab_and_kafka_clusters_commit_and_survive_kill_9_of_their_leader() {
    for rule in ["paxos", "zab", "kafka"] {
        let c = Local::up(rule, 3, &[]);
        let (ok, r) = c.submit(&["--count", "30", "--concurrency", "5", "--client", "31"]);
        assert!(ok, "{rule}: {r}");
        let leader = c.leader(&[], Duration::from_secs(10));
        let o = cmd(&["cluster", "kill", &leader, "--dir", c.dir()]);
        assert!(o.status.success(), "{rule}: {}", text(&o));
        let (ok, r) = c.submit(&[
            "--count",
            "10",
            "--client",
            "32",
            "--timeout",
            "20s",
            "--retry",
            "300ms",
        ]);
        assert!(ok, "{rule} after killing {leader}: {r}");
        let o = cmd(&[
            "cluster",
            "start",
            &leader,
            "--dir",
            c.dir(),
            "--lifetime",
            "240s",
        ]);
        assert!(o.status.success(), "{rule}: {}", text(&o));
        let others: Vec<String> = names(3).into_iter().filter(|n| *n != leader).collect();
        let target = c.height(&others[0]);
        let end = Instant::now() + Duration::from_secs(15);
        while c.height(&leader) < target {
            assert!(
                Instant::now() < end,
                "{rule}: {leader} stuck at {}",
                c.height(&leader)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let down = cmd(&["cluster", "down", "--dir", c.dir()]);
        assert!(down.status.success());
        let longest = judge(&names(3).iter().map(|n| c.chain(n)).collect::<Vec<_>>());
        assert_eq!(request_counts(&longest, 31).len(), 30, "{rule}");
        assert_eq!(request_counts(&longest, 32).len(), 10, "{rule}");
    }
}

#[test]
fn a_large_submission_commits_once_and_leaves_the_node_serving() {
    let c = Local::up("raft", 3, &[]);
    let leader = c.leader(&[], Duration::from_secs(10));
    // 5 000 transactions in one window to the leader: it takes them over several turns, in
    // batches, sending heartbeats in between; whatever a leader change loses, the client
    // resends, and each commits once.
    let (ok, r) = c.submit(&[
        "--node",
        &leader,
        "--count",
        "5000",
        "--concurrency",
        "5000",
        "--client",
        "41",
        "--timeout",
        "120s",
    ]);
    assert!(ok, "{r}");
    // The node still takes and commits new work at once.
    let (ok, r) = c.submit(&[
        "--node",
        &leader,
        "--count",
        "3",
        "--client",
        "42",
        "--timeout",
        "10s",
    ]);
    assert!(ok, "{r}");
    let down = cmd(&["cluster", "down", "--dir", c.dir()]);
    assert!(down.status.success());
    let longest = judge(&names(3).iter().map(|n| c.chain(n)).collect::<Vec<_>>());
    let counts = request_counts(&longest, 41);
    assert_eq!(counts.len(), 5000);
    assert!(counts.values().all(|n| *n == 1));
}

#[test]
fn a_client_that_asks_for_status_without_reading_is_cut_off() {
    use chainsmith::node::config::Cluster;
    use chainsmith::node::wire::{ClientCmd, Hello, encode};

    let c = Local::up("raft", 3, &[]);
    let cluster = Cluster::load(Path::new(&c.config())).unwrap();
    let mut s = TcpStream::connect(cluster.members[0].address).unwrap();
    let frame = |payload: Vec<u8>| {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend(payload);
        f
    };
    s.write_all(&frame(encode(&Hello::Client {
        cluster: cluster.id(),
        nonce: [3; 32],
    })))
    .unwrap();
    // 100 000 status requests (each answer about a kilobyte), never reading an answer.
    let status = frame(encode(&ClientCmd::Status));
    let burst: Vec<u8> = status.repeat(1000);
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sent = 0;
    for _ in 0..100 {
        if s.write_all(&burst).is_err() {
            break;
        }
        sent += 1000;
    }
    // Still not reading: the node must not be holding the answers for it.
    std::thread::sleep(Duration::from_secs(2));
    let pid = std::fs::read_to_string(c.dir.path().join("s1").join("node.pid")).unwrap();
    let rss_kb: u64 = std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    eprintln!("node s1: {rss_kb} kB after {sent} unread status requests");
    assert!(rss_kb < 60_000, "the node holds {rss_kb} kB");
    drop(s);
    let (ok, r) = c.submit(&["--node", "s1", "--count", "3"]);
    assert!(ok, "{r}");
}
