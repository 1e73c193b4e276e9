//! The client side: what `chainsmith client` does against a running cluster.
//!
//! A client connects to any node, checks that the node proves its name with its node key
//! (a client never talks to an impostor), and submits requests there; a follower forwards
//! them to its leader, so a client need not know who leads. Submissions are a closed loop: a
//! fixed number of requests in flight, round-robin over the nodes that answer, each resent to
//! the next node if its node's link breaks or it waits too long (the engines apply a
//! (client, serial) once however often it arrives).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;

use crate::node::config::Cluster;
use crate::node::wire::{
    self, BlockSummary, Challenge, ClientCmd, ClientReply, FaultCmd, Hello, NodeStatus, Side,
};
use crate::sim::{NodeId, Request};

/// How long connecting to a node may take.
const CONNECT: Duration = Duration::from_secs(2);

/// A client's connection to one node.
#[derive(Debug)]
pub struct Conn {
    r: OwnedReadHalf,
    w: OwnedWriteHalf,
}

/// Opens a client connection to `address`, which must prove it is member `id`.
async fn open(cluster: &Cluster, id: NodeId, address: SocketAddr) -> Result<Conn, String> {
    let member = &cluster.members[id];
    let stream = tokio::time::timeout(CONNECT, TcpStream::connect(address))
        .await
        .map_err(|_| format!("{}: {address}: timed out", member.name))?
        .map_err(|e| format!("{}: {address}: {e}", member.name))?;
    let _ = stream.set_nodelay(true);
    let (mut r, mut w) = stream.into_split();
    let cluster_id = cluster.id();
    let nonce = wire::nonce();
    wire::write_msg(
        &mut w,
        &Hello::Client {
            cluster: cluster_id,
            nonce,
        },
    )
    .await
    .map_err(|e| format!("{}: {e}", member.name))?;
    let frame = tokio::time::timeout(CONNECT, wire::read_frame(&mut r, wire::MAX_HELLO_FRAME))
        .await
        .map_err(|_| format!("{}: no answer", member.name))?
        .map_err(|e| format!("{}: {e}", member.name))?
        .ok_or_else(|| format!("{}: closed the connection", member.name))?;
    let challenge: Challenge = match wire::decode(&frame) {
        Ok(c) => c,
        Err(_) => {
            return Err(match wire::decode::<ClientReply>(&frame) {
                Ok(ClientReply::Refused(why)) => format!("{}: refused: {why}", member.name),
                _ => format!("{}: not a chainsmith node", member.name),
            });
        }
    };
    let t = wire::transcript(
        Side::Acceptor,
        &cluster_id,
        &nonce,
        &challenge.nonce,
        &member.name,
    );
    if challenge.name != member.name || !member.public_key.verifies(&t, &challenge.signature) {
        return Err(format!(
            "{}: {address} did not prove it is {} (wrong node key)",
            member.name, member.name
        ));
    }
    Ok(Conn { r, w })
}

impl Conn {
    /// Connects to member `id`.
    ///
    /// # Errors
    /// One line naming the node: unreachable, another cluster, or not proving its name.
    pub async fn to(cluster: &Cluster, id: NodeId) -> Result<Self, String> {
        open(cluster, id, cluster.members[id].address).await
    }

    /// Sends a command.
    ///
    /// # Errors
    /// I/O errors, as a line.
    pub async fn send(&mut self, cmd: &ClientCmd) -> Result<(), String> {
        wire::write_msg(&mut self.w, cmd)
            .await
            .map_err(|e| e.to_string())
    }

    /// The next reply; `None` when the node closed the connection.
    ///
    /// # Errors
    /// A broken or undecodable stream.
    pub async fn recv(&mut self) -> Result<Option<ClientReply>, String> {
        wire::read_msg(&mut self.r, wire::MAX_PEER_FRAME)
            .await
            .map_err(|e| e.to_string())
    }

    /// Sends `cmd` and waits for one reply.
    ///
    /// # Errors
    /// I/O, a closed connection, or no reply within `timeout`.
    pub async fn ask(&mut self, cmd: &ClientCmd, timeout: Duration) -> Result<ClientReply, String> {
        self.send(cmd).await?;
        tokio::time::timeout(timeout, self.recv())
            .await
            .map_err(|_| "no answer".to_owned())??
            .ok_or_else(|| "closed the connection".to_owned())
    }
}

/// A tokio runtime for one client command.
///
/// # Errors
/// The runtime cannot start.
pub fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("starting the runtime: {e}"))
}

/// Every node's status (or why it could not be had), in member order.
pub async fn status_all(cluster: &Cluster) -> Vec<Result<NodeStatus, String>> {
    let asks = (0..cluster.members.len()).map(|id| async move {
        let mut c = Conn::to(cluster, id).await?;
        match c.ask(&ClientCmd::Status, CONNECT).await? {
            ClientReply::Status(s) => Ok(*s),
            other => Err(format!("unexpected answer {other:?}")),
        }
    });
    let handles: Vec<_> = asks.collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}

/// Sends `cmd` to each of `nodes`; each node's answer (what it now injects) or error.
pub async fn fault(
    cluster: &Cluster,
    orders: Vec<(NodeId, FaultCmd)>,
) -> Vec<(String, Result<Vec<String>, String>)> {
    let mut out = Vec::new();
    for (id, cmd) in orders {
        let name = cluster.members[id].name.clone();
        let result = async {
            let mut c = Conn::to(cluster, id).await?;
            match c.ask(&ClientCmd::Fault(cmd), CONNECT).await? {
                ClientReply::FaultsNow(f) => Ok(f),
                ClientReply::Refused(why) => Err(why),
                other => Err(format!("unexpected answer {other:?}")),
            }
        }
        .await;
        out.push((name, result));
    }
    out
}

/// How to submit.
#[derive(Debug, Clone)]
pub struct SubmitOptions {
    /// Requests to submit.
    pub count: u64,
    /// Only to this node (else round-robin over all).
    pub node: Option<NodeId>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Give up on requests not committed after this long.
    pub timeout: Duration,
    /// Resend a request to the next node after it waited this long.
    pub retry: Duration,
    /// The client's id (its requests are (id, 1), (id, 2), …).
    pub client: u32,
}

/// Commit latencies, milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LatencyMs {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// The slowest.
    pub max: f64,
}

impl LatencyMs {
    /// Percentiles of `us` (microseconds), or `None` for none.
    #[must_use]
    pub fn of(mut us: Vec<u64>) -> Option<Self> {
        if us.is_empty() {
            return None;
        }
        us.sort_unstable();
        let at = |q: f64| {
            let i = ((us.len() as f64 - 1.0) * q).round() as usize;
            us[i] as f64 / 1e3
        };
        Some(Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// What a submission achieved.
#[derive(Debug, Clone, Serialize)]
pub struct SubmitReport {
    /// The client id.
    pub client: u32,
    /// Requests submitted.
    pub submitted: u64,
    /// Requests committed.
    pub committed: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Commits per second.
    pub per_s: f64,
    /// Commit latency (first send to the node's answer).
    pub latency_ms: Option<LatencyMs>,
    /// Resends (a node went away or was slow).
    pub resent: u64,
    /// Nodes that could not be reached, broke or refused at some point, with the last
    /// reason.
    pub unreachable: Vec<String>,
    /// The lowest and highest block heights the commits landed in.
    pub heights: Option<(u32, u32)>,
}

enum Event {
    Reply(NodeId, ClientReply),
    Closed(NodeId, u64, String),
}

/// Opens connection `generation` to member `id` for `submit`; its replies go to `events`.
async fn attach(
    cluster: &Cluster,
    id: NodeId,
    generation: u64,
    events: &mpsc::UnboundedSender<Event>,
) -> Result<OwnedWriteHalf, String> {
    let Conn { mut r, w } = Conn::to(cluster, id).await?;
    let events = events.clone();
    tokio::spawn(async move {
        loop {
            let event = match wire::read_msg::<ClientReply, _>(&mut r, wire::MAX_PEER_FRAME).await {
                Ok(Some(reply)) => Event::Reply(id, reply),
                Ok(None) => Event::Closed(id, generation, "closed the connection".into()),
                Err(e) => Event::Closed(id, generation, e.to_string()),
            };
            let last = matches!(event, Event::Closed(..));
            if events.send(event).is_err() || last {
                return;
            }
        }
    });
    Ok(w)
}

/// A submission's connections: the write half of each live one, with its generation (a
/// stale connection's close must not drop a newer one), and why each node was last
/// unreachable.
struct Links {
    writers: HashMap<NodeId, (u64, OwnedWriteHalf)>,
    generation: u64,
    unreachable: std::collections::BTreeMap<NodeId, String>,
}

impl Links {
    /// Connects to each of `targets` without a live connection.
    async fn attach_missing(
        &mut self,
        cluster: &Cluster,
        targets: &[NodeId],
        events: &mpsc::UnboundedSender<Event>,
    ) {
        for &id in targets {
            if self.writers.contains_key(&id) {
                continue;
            }
            self.generation += 1;
            match attach(cluster, id, self.generation, events).await {
                Ok(w) => {
                    self.writers.insert(id, (self.generation, w));
                }
                Err(e) => {
                    self.unreachable.insert(id, e);
                }
            }
        }
    }
}

/// Submits `opts.count` requests, at most `opts.concurrency` in flight; returns when all are
/// committed or the time is up. Nodes that cannot be reached, or whose connection breaks, are
/// tried again every `opts.retry`.
///
/// # Errors
/// No node could be reached at the start.
pub async fn submit(cluster: &Cluster, opts: &SubmitOptions) -> Result<SubmitReport, String> {
    let targets: Vec<NodeId> = match opts.node {
        Some(n) => vec![n],
        None => (0..cluster.members.len()).collect(),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<Event>();
    let mut links = Links {
        writers: HashMap::new(),
        generation: 0,
        unreachable: std::collections::BTreeMap::new(),
    };
    links.attach_missing(cluster, &targets, &tx).await;
    if links.writers.is_empty() {
        let why: Vec<String> = links.unreachable.into_values().collect();
        return Err(format!("no node answered: {}", why.join("; ")));
    }
    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut next_serial = 1u64;
    let mut next_node = 0usize;
    // serial -> (first sent, last sent, node)
    let mut flight: HashMap<u64, (Instant, Instant, NodeId)> = HashMap::new();
    let mut latencies = Vec::new();
    let mut heights: Option<(u32, u32)> = None;
    let mut resent = 0u64;
    let mut reconnected = Instant::now();
    let concurrency = opts.concurrency.max(1);
    let request = |serial| Request {
        client: opts.client,
        serial,
    };
    loop {
        // Try the nodes that went away again, once a retry interval.
        if links.writers.len() < targets.len() && reconnected.elapsed() >= opts.retry {
            reconnected = Instant::now();
            links.attach_missing(cluster, &targets, &tx).await;
        }
        let live: Vec<NodeId> = targets
            .iter()
            .copied()
            .filter(|n| links.writers.contains_key(n))
            .collect();
        let mut batch: HashMap<NodeId, Vec<Request>> = HashMap::new();
        if !live.is_empty() {
            // Fill the window, round-robin over the live nodes.
            while flight.len() < concurrency && next_serial <= opts.count {
                let node = live[next_node % live.len()];
                next_node += 1;
                let now = Instant::now();
                flight.insert(next_serial, (now, now, node));
                batch.entry(node).or_default().push(request(next_serial));
                next_serial += 1;
            }
            // Resend what waited too long, or whose node went away, to the next live node.
            let now = Instant::now();
            for (serial, (_, last, node)) in &mut flight {
                if now.duration_since(*last) >= opts.retry || !links.writers.contains_key(node) {
                    *node = live[next_node % live.len()];
                    next_node += 1;
                    *last = now;
                    resent += 1;
                    batch.entry(*node).or_default().push(request(*serial));
                }
            }
        }
        for (node, reqs) in batch {
            if let Some((_, w)) = links.writers.get_mut(&node)
                && wire::write_msg(w, &ClientCmd::Submit(reqs)).await.is_err()
            {
                links.writers.remove(&node);
            }
        }
        if flight.is_empty() && next_serial > opts.count {
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        let wait = (deadline - Instant::now())
            .min(opts.retry / 2)
            .max(Duration::from_millis(1));
        let mut events = Vec::new();
        if let Ok(Some(e)) = tokio::time::timeout(wait, rx.recv()).await {
            events.push(e);
            while let Ok(e) = rx.try_recv() {
                events.push(e);
            }
        }
        for event in events {
            match event {
                Event::Reply(_, ClientReply::Committed { request, height }) => {
                    if request.client == opts.client
                        && let Some((first, _, _)) = flight.remove(&request.serial)
                    {
                        latencies
                            .push(u64::try_from(first.elapsed().as_micros()).unwrap_or(u64::MAX));
                        heights = Some(heights.map_or((height, height), |(lo, hi)| {
                            (lo.min(height), hi.max(height))
                        }));
                    }
                }
                Event::Reply(node, ClientReply::Refused(why)) => {
                    links.unreachable.insert(node, format!("refused: {why}"));
                }
                Event::Reply(..) => {}
                Event::Closed(node, g, why) => {
                    if links.writers.get(&node).is_some_and(|(wg, _)| *wg == g) {
                        links.writers.remove(&node);
                        links.unreachable.insert(node, why);
                    }
                }
            }
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let committed = latencies.len() as u64;
    Ok(SubmitReport {
        client: opts.client,
        submitted: (next_serial - 1).min(opts.count),
        committed,
        seconds,
        per_s: committed as f64 / seconds.max(1e-9),
        latency_ms: LatencyMs::of(latencies),
        resent,
        unreachable: links
            .unreachable
            .into_iter()
            .map(|(id, why)| format!("{}: {why}", cluster.members[id].name))
            .collect(),
        heights,
    })
}

/// Follows node `id`'s committed blocks from `from`, calling `each` until it returns false or
/// the node closes the connection.
///
/// # Errors
/// The node cannot be reached or the connection breaks.
pub async fn watch(
    cluster: &Cluster,
    id: NodeId,
    from: u32,
    mut each: impl FnMut(&BlockSummary) -> bool,
) -> Result<(), String> {
    let mut c = Conn::to(cluster, id).await?;
    c.send(&ClientCmd::Watch { from }).await?;
    while let Some(reply) = c.recv().await? {
        if let ClientReply::Block(b) = reply
            && !each(&b)
        {
            return Ok(());
        }
    }
    Err(format!(
        "{}: closed the connection",
        cluster.members[id].name
    ))
}

/// A fresh client id.
#[must_use]
pub fn client_id() -> u32 {
    let n = wire::nonce();
    u32::from_le_bytes([n[0], n[1], n[2], n[3]])
}
