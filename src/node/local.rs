//! Local clusters: `cluster up|down|kill|start`, node processes on 127.0.0.1 in one
//! directory.
//!
//! `up` writes `DIR/cluster.toml` (free ports, a fresh random node key per node in
//! `DIR/keys/`), starts one `chainsmith node` process per member — each in its own process
//! group, so that a Ctrl-C at the terminal that ran `up` does not reach it — logging to
//! `DIR/NAME/node.log` and recording its pid in `DIR/NAME/node.pid`, and waits until a
//! majority names the same leader. `kill` is `kill -9`; `down` is SIGTERM, then SIGKILL for
//! a node still running after a grace period.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::node::config::Cluster;

/// The cluster file's name in a cluster directory.
pub const CONFIG: &str = "cluster.toml";

/// What `cluster up` starts.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// The rule.
    pub rule: String,
    /// Nodes (s1, s2, …).
    pub nodes: usize,
    /// The cluster directory.
    pub dir: PathBuf,
    /// The first port (the others follow); free ports when `None`.
    pub base_port: Option<u16>,
    /// A spec other than the rule's demo spec.
    pub spec: Option<String>,
    /// The rule's parameters, `key` = TOML value.
    pub params: Vec<(String, String)>,
}

fn config_path(dir: &Path) -> PathBuf {
    dir.join(CONFIG)
}

fn pid_path(cluster: &Cluster, id: usize) -> PathBuf {
    cluster.node_dir(id).join("node.pid")
}

/// The pid of member `id`'s process, if it runs.
#[must_use]
pub fn running(cluster: &Cluster, id: usize) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(pid_path(cluster, id))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    // The pid must still be this node's process, not a recycled one.
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let name = cluster.members[id].name.as_bytes();
    let ours = args.windows(2).any(|w| w[0] == b"--id" && w[1] == name)
        && args.iter().any(|a| *a == b"node");
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let zombie = stat
        .rsplit(')')
        .next()
        .is_some_and(|rest| rest.trim_start().starts_with('Z'));
    (ours && !zombie).then_some(pid)
}

/// Free ports on 127.0.0.1, `n` of them (held together while chosen, so they differ).
fn free_ports(n: usize) -> Result<Vec<u16>, String> {
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("finding free ports: {e}"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("finding free ports: {e}"))
}

/// Writes a new cluster directory for `opts`: keys and `cluster.toml`.
///
/// # Errors
/// I/O, or an invalid configuration (the file is checked by loading it back).
pub fn write_config(opts: &UpOptions) -> Result<Cluster, String> {
    if !crate::ordering::is_ordering(&opts.rule) {
        return Err(format!(
            "--rule {}: not an ordering rule ({})",
            opts.rule,
            crate::ordering::ORDERING_RULES.join(", ")
        ));
    }
    if !(1..=101).contains(&opts.nodes) {
        return Err(format!(
            "--nodes {}: a cluster has 1 to 101 nodes",
            opts.nodes
        ));
    }
    let ports = match opts.base_port {
        Some(p) => (0..opts.nodes)
            .map(|i| {
                u16::try_from(usize::from(p) + i)
                    .map_err(|_| format!("--base-port {p}: ports past 65535"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => free_ports(opts.nodes)?,
    };
    let dir = &opts.dir;
    let keys = dir.join("keys");
    std::fs::create_dir_all(&keys).map_err(|e| format!("{}: {e}", keys.display()))?;
    let mut text = String::new();
    let _ = writeln!(text, "# Written by `chainsmith cluster up`.");
    let _ = writeln!(text, "rule = {:?}", opts.rule);
    if let Some(spec) = &opts.spec {
        let spec = if Path::new(spec).exists() {
            std::fs::canonicalize(spec)
                .map_err(|e| format!("--spec {spec}: {e}"))?
                .display()
                .to_string()
        } else {
            spec.clone()
        };
        let _ = writeln!(text, "spec = {spec:?}");
    }
    let _ = writeln!(text, "data_dir = \".\"");
    if !opts.params.is_empty() {
        let _ = writeln!(text, "\n[params]");
        for (k, v) in &opts.params {
            let _ = writeln!(text, "{k} = {v}");
        }
    }
    for (i, port) in ports.iter().enumerate() {
        let name = format!("s{}", i + 1);
        let secret = crate::node::wire::nonce();
        let key = crate::primitives::tx::KeyPair::from_secret(&name, secret);
        let key_file = keys.join(format!("{name}.key"));
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key_file)
            .map_err(|e| format!("{}: {e}", key_file.display()))?;
        writeln!(f, "{}", hex::encode(secret))
            .map_err(|e| format!("{}: {e}", key_file.display()))?;
        let _ = writeln!(
            text,
            "\n[[node]]\nname = {name:?}\naddress = \"127.0.0.1:{port}\"\npublic_key = \"{}\"\nkey_file = \"keys/{name}.key\"",
            hex::encode(key.pubkey().to_bytes())
        );
    }
    let path = config_path(dir);
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    Cluster::load(&path).map_err(|e| {
        // A file that does not load is no cluster: leave the directory free for a retry.
        let _ = std::fs::remove_file(&path);
        e.to_string()
    })
}

/// Starts member `id`'s process with `exe` (this program).
///
/// # Errors
/// It is already running, or cannot be started.
pub fn start(
    cluster: &Cluster,
    id: usize,
    exe: &Path,
    byzantine: Option<&str>,
    lifetime: Option<Duration>,
) -> Result<i32, String> {
    let name = &cluster.members[id].name;
    if let Some(pid) = running(cluster, id) {
        return Err(format!("{name} already runs (pid {pid})"));
    }
    let dir = cluster.node_dir(id);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let log_path = dir.join("node.log");
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| format!("{}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = Command::new(exe);
    cmd.arg("node")
        .arg("--config")
        .arg(&cluster.path)
        .arg("--id")
        .arg(name)
        .arg("--allow-faults");
    if let Some(kind) = byzantine {
        cmd.arg("--byzantine").arg(kind);
    }
    if let Some(l) = lifetime {
        cmd.arg("--lifetime").arg(format!("{}ms", l.as_millis()));
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("starting {name}: {e}"))?;
    let pid = i32::try_from(child.id()).map_err(|e| e.to_string())?;
    std::fs::write(pid_path(cluster, id), format!("{pid}\n"))
        .map_err(|e| format!("{}: {e}", pid_path(cluster, id).display()))?;
    Ok(pid)
}

/// Sends `signal` to member `id`'s process; its pid, or `None` when it does not run.
fn signal(cluster: &Cluster, id: usize, signal: Signal) -> Option<i32> {
    running(cluster, id).filter(|pid| kill(Pid::from_raw(*pid), signal).is_ok())
}

/// Whether process `pid` has exited (gone, or a zombie: its files and locks are released).
fn exited(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit(')')
            .next()
            .is_some_and(|rest| matches!(rest.trim_start().chars().next(), Some('Z' | 'X')))
    })
}

/// Waits until process `pid` has exited, at most `limit`.
fn wait_gone(pid: i32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while !exited(pid) {
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// `kill -9` member `id`.
///
/// # Errors
/// It does not run, or does not die.
pub fn kill9(cluster: &Cluster, id: usize) -> Result<(), String> {
    let name = &cluster.members[id].name;
    let Some(pid) = signal(cluster, id, Signal::SIGKILL) else {
        return Err(format!("{name} is not running"));
    };
    if !wait_gone(pid, Duration::from_secs(5)) {
        return Err(format!("{name} is still running after SIGKILL"));
    }
    let _ = std::fs::remove_file(pid_path(cluster, id));
    Ok(())
}

/// Stops every node: SIGTERM, then SIGKILL after `grace`. Returns the names stopped.
#[must_use]
pub fn down(cluster: &Cluster, grace: Duration) -> Vec<String> {
    let mut stopped = Vec::new();
    let signalled: Vec<(usize, i32)> = (0..cluster.members.len())
        .filter_map(|i| signal(cluster, i, Signal::SIGTERM).map(|pid| (i, pid)))
        .collect();
    for (id, pid) in signalled {
        if !wait_gone(pid, grace) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            wait_gone(pid, Duration::from_secs(5));
        }
        let _ = std::fs::remove_file(pid_path(cluster, id));
        stopped.push(cluster.members[id].name.clone());
    }
    stopped
}

/// Loads the cluster in `dir`.
///
/// # Errors
/// No cluster file there, or an invalid one.
pub fn load(dir: &Path) -> Result<Cluster, String> {
    let path = config_path(dir);
    if !path.exists() {
        return Err(format!(
            "{}: no cluster here (start one with `chainsmith cluster up --dir {}`)",
            path.display(),
            dir.display()
        ));
    }
    Cluster::load(&path).map_err(|e| e.to_string())
}

/// The leader a majority of the nodes names, if any.
pub async fn agreed_leader(cluster: &Cluster) -> Option<String> {
    let statuses = crate::node::client::status_all(cluster).await;
    let mut votes: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for s in statuses.into_iter().flatten() {
        if let Some(l) = s.leader {
            *votes.entry(l).or_default() += 1;
        }
    }
    let majority = cluster.members.len() / 2 + 1;
    votes
        .into_iter()
        .find(|(_, v)| *v >= majority)
        .map(|(l, _)| l)
}

/// Waits until a majority names the same leader, at most `limit`.
///
/// # Errors
/// No leader in time: names the logs to read.
pub async fn wait_for_leader(cluster: &Cluster, limit: Duration) -> Result<String, String> {
    let end = Instant::now() + limit;
    loop {
        if let Some(l) = agreed_leader(cluster).await {
            return Ok(l);
        }
        if Instant::now() >= end {
            return Err(format!(
                "no leader after {:.0} s; see the logs in {}/*/node.log",
                limit.as_secs_f64(),
                cluster.data_dir.display()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
