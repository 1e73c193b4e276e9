//! The Stratum V1 pool server.
//!
//! One chain thread owns the chain (its state, its file and its writer): it makes jobs —
//! a fresh one every `job_interval`, a clean one after every block — and takes the blocks
//! shares solve, checking each with the chain's own rules (the code `verify` runs) before it
//! appends and syncs it. Connections are tokio tasks on a small runtime: each reads lines of
//! at most [`MAX_LINE`] bytes, answers requests in order, and checks its own shares (the
//! header hash is the only costly step, so checking spreads over the runtime's threads). The
//! books (per-worker accounting and the PPLNS window) sit behind one mutex taken once per
//! share.
//!
//! Every peer is treated as hostile: a line longer than [`MAX_LINE`], a connection that does
//! not subscribe and authorize within `handshake_timeout` or says nothing for
//! `idle_timeout`, one that submits faster than `max_submit_rate` (answered with code 20) or
//! whose last [`MAX_REJECTS_IN_A_ROW`] shares were all rejected, and one that does not read
//! what it is sent within [`WRITE_TIMEOUT`] is disconnected. Past `max_connections` (or
//! `max_connections_per_ip` from one address) a new connection is closed at once. Each
//! connection remembers the shares of its last [`JOBS_KEPT`] jobs to refuse duplicates, at
//! most [`MAX_SHARES_PER_JOB`] per job.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{oneshot, watch};

use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::chain::store::ChainWriter;
use crate::chain::wallet::demo_transfers;
use crate::pool::job::{Job, JobSpec, Share, ShareRules};
use crate::pool::pplns::Pplns;
use crate::pool::stats::{WorkerReport, WorkerStats};
use crate::pool::stratum::{
    EXTRANONCE2_SIZE, MAX_DIFFICULTY, MIN_DIFFICULTY, Message, StratumError, Submit,
    VERSION_ROLLING_MASK, difficulty_of, request, response, share_target,
};
use crate::pool::vardiff::{Vardiff, VardiffConfig};
use crate::primitives::pow_units::Target;
use crate::primitives::tx::{KeyPair, PubKey, TxOut};

/// The longest line a peer may send, bytes.
pub const MAX_LINE: usize = 16 * 1024;
/// Jobs a connection can submit shares for: the newest and the ones sent before it on the
/// same block.
pub const JOBS_KEPT: usize = 8;
/// Distinct shares a connection may submit for one job.
pub const MAX_SHARES_PER_JOB: usize = 65_536;
/// Rejected shares in a row that end a connection.
pub const MAX_REJECTS_IN_A_ROW: u32 = 100;
/// Workers one connection may authorize.
pub const MAX_WORKERS_PER_CONNECTION: usize = 16;
/// Distinct workers the pool keeps books for.
pub const MAX_WORKERS: usize = 10_000;
/// How long a peer has to take what the pool writes.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a pool runs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The share difficulty a connection starts at (and keeps, without vardiff).
    pub share_difficulty: f64,
    /// Retarget each connection's difficulty.
    pub vardiff: Option<VardiffConfig>,
    /// Shares in the PPLNS window.
    pub pplns_window: usize,
    /// Who the coinbase pays before any share.
    pub operator: PubKey,
    /// Demo transfers between the spec's wallets per block.
    pub tx_per_block: usize,
    /// Seconds between fresh jobs on the same block.
    pub job_interval: Duration,
    /// Seconds between per-worker statistics events.
    pub stats_interval: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once from one IP address.
    pub max_connections_per_ip: usize,
    /// Time to subscribe and authorize.
    pub handshake_timeout: Duration,
    /// Time an authorized connection may say nothing.
    pub idle_timeout: Duration,
    /// Submissions per second one connection may make (a burst of one second's worth).
    pub max_submit_rate: f64,
    /// Stop after this many blocks.
    pub blocks: Option<u64>,
    /// Stop by itself after this long (tests and demos).
    pub lifetime: Option<Duration>,
}

/// What the pool reports: one event per line in its log.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// The pool is serving.
    Listening {
        /// The bound address.
        address: String,
        /// The chain's spec.
        spec: String,
        /// The chain's height.
        height: u32,
        /// The starting share difficulty.
        share_difficulty: f64,
        /// Whether vardiff is on.
        vardiff: bool,
        /// Shares in the PPLNS window.
        pplns_window: usize,
    },
    /// A peer connected.
    Connected {
        /// The connection's number.
        connection: u64,
        /// Its address.
        peer: String,
    },
    /// A peer was turned away or left.
    Disconnected {
        /// The connection's number.
        connection: u64,
        /// Its address.
        peer: String,
        /// Why.
        reason: String,
    },
    /// A worker authorized.
    Authorized {
        /// The connection's number.
        connection: u64,
        /// `NAME.WORKER`.
        worker: String,
        /// The key its shares pay.
        payee: PubKey,
    },
    /// A new job went out.
    Job {
        /// The job's id.
        job: String,
        /// The block's height.
        height: u32,
        /// Whether it voids the jobs before it.
        clean: bool,
        /// The chain's difficulty for the block.
        block_difficulty: f64,
        /// Accepted shares before the job: its coinbase splits the last `pplns_window` of
        /// them.
        shares_before: u64,
        /// The coinbase's outputs.
        payouts: Vec<TxOut>,
    },
    /// A connection's share difficulty changed.
    Difficulty {
        /// The connection's number.
        connection: u64,
        /// The new difficulty.
        difficulty: f64,
    },
    /// A share was checked.
    Share {
        /// The connection's number.
        connection: u64,
        /// The worker named in the submission.
        worker: String,
        /// The job's id (the pool's, not the connection's).
        job: Option<String>,
        /// The share's difficulty.
        difficulty: f64,
        /// Its number among accepted shares (from 0); `None` when rejected.
        seq: Option<u64>,
        /// The hashes it stands for (`2^256 / (target + 1)`), in decimal.
        work: Option<String>,
        /// Why it was rejected.
        reason: Option<String>,
    },
    /// A share solved a block.
    Block {
        /// The block's height.
        height: u32,
        /// Its hash.
        hash: String,
        /// The job it was mined on.
        job: String,
        /// The worker that found it.
        worker: String,
        /// Whether the chain took it.
        accepted: bool,
        /// Why not.
        reason: Option<String>,
    },
    /// Per-worker statistics.
    Stats {
        /// Connections open.
        connections: usize,
        /// Blocks found so far.
        blocks: u64,
        /// Every worker with books.
        workers: Vec<WorkerReport>,
    },
    /// The pool stopped.
    Stopped {
        /// Blocks found.
        blocks: u64,
        /// Accepted shares.
        shares: u64,
        /// Why it stopped.
        reason: String,
    },
}

/// Where the pool's events go.
pub trait EventSink: Send + Sync {
    /// Records one event.
    fn event(&self, event: &Event);
}

/// The caller's clock, Unix seconds.
pub type Clock = Arc<dyn Fn() -> u32 + Send + Sync>;

/// Why the pool stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The stop flag (Ctrl-C).
    Interrupted,
    /// `blocks` blocks were found.
    BlocksFound,
    /// The lifetime ran out.
    Lifetime,
}

/// Why the pool failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// The chain file could not be written.
    #[error("writing block {height} to the chain file")]
    Write {
        /// The block's height.
        height: u32,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The runtime or the listener failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// A job as the pool hands it out, numbered.
#[derive(Debug)]
struct PoolJob {
    job: Job,
    serial: u64,
    /// Accepted shares before it: its coinbase splits the last `pplns_window` of them.
    shares_before: u64,
    /// A digest of every header field the miner does not choose (prevhash, version, bits,
    /// coinbase halves, merkle branch): jobs with the same one have the same shares.
    space: [u8; 32],
}

/// The digest of a job's header space (see [`PoolJob::space`]).
fn header_space(notify: &crate::pool::stratum::Notify) -> [u8; 32] {
    let mut b = Vec::new();
    b.extend_from_slice(&notify.prev_hash.to_byte_array());
    b.extend_from_slice(&notify.version.to_le_bytes());
    b.extend_from_slice(&notify.bits.to_consensus().to_le_bytes());
    for part in [&notify.coinb1, &notify.coinb2] {
        b.extend_from_slice(&(part.len() as u64).to_le_bytes());
        b.extend_from_slice(part);
    }
    for h in &notify.merkle_branch {
        b.extend_from_slice(h);
    }
    crate::primitives::hash::sha256d(&b)
}

/// The books: per-worker accounting and the PPLNS window.
struct Books {
    pplns: Pplns,
    accepted: u64,
    workers: HashMap<String, WorkerStats>,
    /// Connections each worker is authorized on now: a worker on none may lose its books
    /// to a new one when the pool keeps [`MAX_WORKERS`].
    live: HashMap<String, usize>,
}

/// What connections share.
struct Shared {
    config: PoolConfig,
    spec_seed: String,
    books: Mutex<Books>,
    jobs: watch::Receiver<Arc<PoolJob>>,
    to_chain: mpsc::Sender<Found>,
    sink: Arc<dyn EventSink>,
    clock: Clock,
    started: Instant,
    next_connection: AtomicU64,
    next_extranonce1: AtomicU32,
    connections: AtomicUsize,
    per_ip: Mutex<HashMap<std::net::IpAddr, usize>>,
    /// The latest header time a share may carry, past the clock: at most 10 minutes, and never
    /// past the chain's own limit, so that a share that is a block is a valid one.
    max_ahead_s: u32,
    blocks: AtomicU64,
}

impl Shared {
    fn now_s(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

/// A solved block on its way to the chain thread.
struct Found {
    job: Arc<PoolJob>,
    share: Share,
    worker: String,
    reply: oneshot::Sender<Result<(), String>>,
}

/// Serves `listener` over the chain in `state`/`writer` until `stop` is raised or
/// `config.blocks` blocks are found. Every block is synced before the next job goes out.
///
/// # Errors
/// [`PoolError`] when the chain file cannot be written or the runtime cannot start.
pub fn serve(
    state: ChainState,
    writer: ChainWriter,
    listener: std::net::TcpListener,
    config: PoolConfig,
    clock: Clock,
    sink: Arc<dyn EventSink>,
    stop: &Arc<AtomicBool>,
) -> Result<StopReason, PoolError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("pool")
        .build()?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let mut chain = ChainThread {
        keys: state.spec().wallet_keys(),
        state,
        writer,
        tx_per_block: config.tx_per_block,
        operator: config.operator,
        serial: 0,
    };
    let books = Mutex::new(Books {
        pplns: Pplns::new(config.pplns_window),
        accepted: 0,
        workers: HashMap::new(),
        live: HashMap::new(),
    });
    let first = chain.make_job(true, &books, &*clock);
    let (job_tx, job_rx) = watch::channel(Arc::new(first));
    let (to_chain, from_conns) = mpsc::channel();
    let shared = Arc::new(Shared {
        spec_seed: chain.state.spec().wallet_seed.clone(),
        books,
        jobs: job_rx,
        to_chain,
        sink: Arc::clone(&sink),
        clock,
        started: Instant::now(),
        next_connection: AtomicU64::new(1),
        next_extranonce1: AtomicU32::new(random_u32()),
        connections: AtomicUsize::new(0),
        per_ip: Mutex::new(HashMap::new()),
        max_ahead_s: chain.state.spec().max_future_s.min(600),
        blocks: AtomicU64::new(0),
        config,
    });
    sink.event(&Event::Listening {
        address: address.to_string(),
        spec: chain.state.spec().name.clone(),
        height: chain.state.tip().map_or(0, |t| t.height),
        share_difficulty: shared.config.share_difficulty,
        vardiff: shared.config.vardiff.is_some(),
        pplns_window: shared.config.pplns_window,
    });
    sink.event(&job_event(&shared.jobs.borrow()));
    let accept = {
        let shared = Arc::clone(&shared);
        let stop = Arc::clone(stop);
        runtime.spawn(async move { accept_loop(listener, shared, stop).await })
    };
    let outcome = chain.run(&shared, &job_tx, &from_conns, stop);
    stop.store(true, Ordering::Relaxed);
    accept.abort();
    runtime.shutdown_timeout(Duration::from_secs(1));
    // The books as they end, then the last words.
    sink.event(&stats_event(&shared));
    let accepted = shared.books.lock().map_or(0, |b| b.accepted);
    let blocks = shared.blocks.load(Ordering::Relaxed);
    match &outcome {
        Ok(reason) => sink.event(&Event::Stopped {
            blocks,
            shares: accepted,
            reason: match reason {
                StopReason::Interrupted => "interrupted",
                StopReason::BlocksFound => "blocks found",
                StopReason::Lifetime => "lifetime over",
            }
            .to_owned(),
        }),
        Err(e) => sink.event(&Event::Stopped {
            blocks,
            shares: accepted,
            reason: e.to_string(),
        }),
    }
    outcome
}

fn random_u32() -> u32 {
    let mut b = [0u8; 4];
    // A fixed start only makes extranonce1 values predictable, which costs nothing.
    getrandom::fill(&mut b).unwrap_or_default();
    u32::from_le_bytes(b)
}

fn job_event(job: &PoolJob) -> Event {
    Event::Job {
        job: job.job.notify.job_id.clone(),
        height: job.job.height,
        clean: job.job.notify.clean_jobs,
        block_difficulty: difficulty_of(job.job.target),
        shares_before: job.shares_before,
        payouts: job.job.payouts.clone(),
    }
}

/// The thread that owns the chain.
struct ChainThread {
    state: ChainState,
    writer: ChainWriter,
    keys: Vec<KeyPair>,
    tx_per_block: usize,
    operator: PubKey,
    serial: u64,
}

impl ChainThread {
    /// Makes the next job; the PPLNS split is taken from the books at this instant (the
    /// transfers are signed before the books are locked).
    fn make_job(&mut self, clean: bool, books: &Mutex<Books>, clock: &dyn Fn() -> u32) -> PoolJob {
        self.serial += 1;
        let height = self.state.next_height();
        let spec = JobSpec {
            id: format!("{:x}", self.serial),
            clean,
            now: clock(),
            txs: demo_transfers(&self.state, &self.keys, self.tx_per_block, height, &[]),
            operator: self.operator,
        };
        let books = lock(books);
        let job = Job::new(&self.state, spec, |reward| books.pplns.split(reward));
        PoolJob {
            space: header_space(&job.notify),
            job,
            serial: self.serial,
            shares_before: books.accepted,
        }
    }

    fn run(
        &mut self,
        shared: &Shared,
        jobs: &watch::Sender<Arc<PoolJob>>,
        found: &mpsc::Receiver<Found>,
        stop: &AtomicBool,
    ) -> Result<StopReason, PoolError> {
        let started = Instant::now();
        let mut last_job = Instant::now();
        let mut last_stats = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(StopReason::Interrupted);
            }
            if shared
                .config
                .lifetime
                .is_some_and(|l| started.elapsed() >= l)
            {
                return Ok(StopReason::Lifetime);
            }
            match found.recv_timeout(Duration::from_millis(100)) {
                Ok(f) => {
                    if self.take_block(shared, f)? {
                        let job = self.make_job(true, &shared.books, &*shared.clock);
                        shared.sink.event(&job_event(&job));
                        jobs.send_replace(Arc::new(job));
                        last_job = Instant::now();
                        if shared
                            .config
                            .blocks
                            .is_some_and(|n| shared.blocks.load(Ordering::Relaxed) >= n)
                        {
                            return Ok(StopReason::BlocksFound);
                        }
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(StopReason::Interrupted),
            }
            if last_job.elapsed() >= shared.config.job_interval {
                let job = self.make_job(false, &shared.books, &*shared.clock);
                shared.sink.event(&job_event(&job));
                jobs.send_replace(Arc::new(job));
                last_job = Instant::now();
            }
            if last_stats.elapsed() >= shared.config.stats_interval {
                shared.sink.event(&stats_event(shared));
                last_stats = Instant::now();
            }
        }
    }

    /// Checks, appends and syncs a solved block; answers the connection that found it.
    /// Returns whether the chain grew.
    fn take_block(&mut self, shared: &Shared, f: Found) -> Result<bool, PoolError> {
        let job = &f.job.job;
        let block = job.solved_block(&f.share);
        let hash = block.block_hash();
        let tip = self.state.tip().map(|t| t.hash);
        let verdict = if tip != Some(job.notify.prev_hash) {
            Err("stale: another block was found first".to_owned())
        } else {
            let record = BlockRecord::new(job.height, &block, None);
            match self.state.check(record.clone()) {
                Err(e) => Err(e.to_string()),
                Ok(checked) => match self.state.connect(&checked, (shared.clock)()) {
                    Err(e) => Err(e.to_string()),
                    Ok(()) => {
                        self.writer
                            .append(&record)
                            .map_err(|source| PoolError::Write {
                                height: job.height,
                                source,
                            })?;
                        Ok(())
                    }
                },
            }
        };
        let accepted = verdict.is_ok();
        if accepted {
            shared.blocks.fetch_add(1, Ordering::Relaxed);
            if let Some(w) = lock(&shared.books).workers.get_mut(&f.worker) {
                w.blocks += 1;
            }
        }
        shared.sink.event(&Event::Block {
            height: job.height,
            hash: hash.to_string(),
            job: job.notify.job_id.clone(),
            worker: f.worker,
            accepted,
            reason: verdict.as_ref().err().cloned(),
        });
        // The finder may have gone; its share counts either way.
        let _ = f.reply.send(verdict);
        Ok(accepted)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn stats_event(shared: &Shared) -> Event {
    let now = shared.now_s();
    let books = lock(&shared.books);
    let mut workers: Vec<WorkerReport> = books
        .workers
        .iter()
        .map(|(name, w)| w.report(name, now))
        .collect();
    workers.sort_by(|a, b| a.worker.cmp(&b.worker));
    Event::Stats {
        connections: shared.connections.load(Ordering::Relaxed),
        blocks: shared.blocks.load(Ordering::Relaxed),
        workers,
    }
}

async fn accept_loop(listener: std::net::TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else {
                    // Out of descriptors or a connection reset before it was taken: wait a
                    // little rather than spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let id = shared.next_connection.fetch_add(1, Ordering::Relaxed);
                let refused = if shared.connections.load(Ordering::Relaxed) >= shared.config.max_connections {
                    Some(format!("the pool serves {} connections at most", shared.config.max_connections))
                } else {
                    let mut per_ip = lock(&shared.per_ip);
                    let n = per_ip.entry(peer.ip()).or_insert(0);
                    if *n >= shared.config.max_connections_per_ip {
                        Some(format!("{} connections from {} at most", shared.config.max_connections_per_ip, peer.ip()))
                    } else {
                        *n += 1;
                        None
                    }
                };
                if let Some(reason) = refused {
                    shared.sink.event(&Event::Disconnected { connection: id, peer: peer.to_string(), reason });
                    continue;
                }
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let shared = Arc::clone(&shared);
                tokio::spawn(async move {
                    shared.sink.event(&Event::Connected { connection: id, peer: peer.to_string() });
                    let reason = Connection::new(id, &shared).serve(stream).await;
                    shared.connections.fetch_sub(1, Ordering::Relaxed);
                    {
                        let mut per_ip = lock(&shared.per_ip);
                        if let Some(n) = per_ip.get_mut(&peer.ip()) {
                            *n -= 1;
                            if *n == 0 {
                                per_ip.remove(&peer.ip());
                            }
                        }
                    }
                    shared.sink.event(&Event::Disconnected { connection: id, peer: peer.to_string(), reason });
                });
            }
            _ = poll.tick() => {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
        }
    }
}

/// A job as one connection was sent it: its own id and the difficulty in force.
struct SentJob {
    id: String,
    job: Arc<PoolJob>,
    difficulty: f64,
    target: Target,
}

/// One miner's connection.
struct Connection<'a> {
    id: u64,
    shared: &'a Shared,
    extranonce1: [u8; 4],
    subscribed: bool,
    workers: HashMap<String, PubKey>,
    version_mask: u32,
    difficulty: f64,
    vardiff: Option<Vardiff>,
    sent_difficulty: Option<f64>,
    sent: VecDeque<SentJob>,
    /// The shares seen, by header space ([`PoolJob::space`]) of the jobs kept: one header
    /// is one share whichever job id names it (a job resent after a retarget or a second
    /// subscribe, or refreshed with the same coinbase, has the same headers).
    seen: HashMap<[u8; 32], HashSet<u128>>,
    next_local: u64,
    tokens: f64,
    tokens_at: Instant,
    rejects_in_a_row: u32,
}

/// What a handled line asks of the connection loop.
enum After {
    Continue,
    Close(String),
}

impl<'a> Connection<'a> {
    fn new(id: u64, shared: &'a Shared) -> Self {
        let en1 = shared.next_extranonce1.fetch_add(1, Ordering::Relaxed);
        let start = shared.config.share_difficulty;
        Self {
            id,
            shared,
            extranonce1: en1.to_be_bytes(),
            subscribed: false,
            workers: HashMap::new(),
            version_mask: 0,
            difficulty: start,
            vardiff: shared
                .config
                .vardiff
                .map(|c| Vardiff::new(c, start, shared.now_s())),
            sent_difficulty: None,
            sent: VecDeque::new(),
            seen: HashMap::new(),
            next_local: 0,
            tokens: shared.config.max_submit_rate,
            tokens_at: Instant::now(),
            rejects_in_a_row: 0,
        }
    }

    /// Serves the connection; returns why it ended.
    async fn serve(mut self, stream: TcpStream) -> String {
        let reason = self.serve_lines(stream).await;
        let mut books = lock(&self.shared.books);
        for user in self.workers.keys() {
            if let Some(n) = books.live.get_mut(user) {
                *n -= 1;
                if *n == 0 {
                    books.live.remove(user);
                }
            }
        }
        reason
    }

    async fn serve_lines(&mut self, stream: TcpStream) -> String {
        let _ = stream.set_nodelay(true);
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        let mut line = Vec::new();
        let mut jobs = self.shared.jobs.clone();
        jobs.mark_unchanged();
        let connected = tokio::time::Instant::now();
        let mut last_heard = connected;
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            let deadline = if self.subscribed && !self.workers.is_empty() {
                last_heard + self.shared.config.idle_timeout
            } else {
                connected + self.shared.config.handshake_timeout
            };
            let mut out = String::new();
            let after = tokio::select! {
                read = read_line(&mut reader, &mut line, MAX_LINE) => match read {
                    Ok(Line::Complete) => {
                        last_heard = tokio::time::Instant::now();
                        let mut after = self.handle_line(&mut line, &mut out).await;
                        // Lines the peer sent together are answered together: one write.
                        while matches!(after, After::Continue)
                            && reader.buffer().contains(&b'\n')
                            && out.len() < MAX_LINE
                        {
                            after = match read_line(&mut reader, &mut line, MAX_LINE).await {
                                Ok(Line::Complete) => self.handle_line(&mut line, &mut out).await,
                                Ok(Line::TooLong) => After::Close(format!("a line longer than {MAX_LINE} bytes")),
                                Ok(Line::Eof) | Err(_) => After::Continue,
                            };
                        }
                        after
                    }
                    Ok(Line::Eof) => After::Close("the peer closed the connection".into()),
                    Ok(Line::TooLong) => After::Close(format!("a line longer than {MAX_LINE} bytes")),
                    Err(e) => After::Close(format!("read failed: {e}")),
                },
                changed = jobs.changed(), if self.subscribed => {
                    if changed.is_err() {
                        After::Close("the pool is stopping".into())
                    } else {
                        let job = Arc::clone(&jobs.borrow_and_update());
                        self.send_job(job, None, &mut out);
                        After::Continue
                    }
                }
                () = tokio::time::sleep_until(deadline) => After::Close(if self.workers.is_empty() || !self.subscribed {
                    "did not subscribe and authorize in time".into()
                } else {
                    "idle for too long".into()
                }),
                _ = tick.tick() => {
                    let now = self.shared.now_s();
                    if let Some(d) = self.vardiff.as_mut().and_then(|v| v.on_tick(now)) {
                        self.retarget(d, &mut out);
                    }
                    After::Continue
                }
            };
            if !out.is_empty()
                && let Err(e) = write_all(&mut write, out.as_bytes()).await
            {
                return e;
            }
            if let After::Close(reason) = after {
                let _ = write.shutdown().await;
                return reason;
            }
        }
    }

    async fn handle_line(&mut self, line: &mut Vec<u8>, out: &mut String) -> After {
        let text = String::from_utf8_lossy(line).into_owned();
        line.clear();
        self.handle(text.trim(), out).await
    }

    async fn handle(&mut self, text: &str, out: &mut String) -> After {
        if text.is_empty() {
            return After::Continue;
        }
        let msg = match Message::parse(text) {
            Ok(m) => m,
            Err(e) => {
                out.push_str(&response(&Value::Null, Err(&e)));
                return self.rejected();
            }
        };
        let Some(method) = msg.method.as_deref() else {
            // The pool sends no request that wants an answer: a response is noise, and noise
            // in a row ends the connection like any rejected message.
            return self.rejected();
        };
        let result = match method {
            "mining.subscribe" => self.subscribe(&msg.params),
            "mining.authorize" => self.authorize(&msg.params),
            "mining.configure" => Ok(self.configure(&msg.params)),
            "mining.extranonce.subscribe" => Ok(json!(true)),
            "mining.suggest_difficulty" => Ok(self.suggest_difficulty(&msg.params)),
            "mining.submit" => return self.submit(&msg, out).await,
            // A notification nobody knows: unanswered, but counted like a rejection.
            _ if msg.id.is_null() => return self.rejected(),
            other => Err(StratumError::other(format!(
                "unknown method {:?}",
                truncate(other)
            ))),
        };
        let subscribed = method == "mining.subscribe" && result.is_ok();
        match result {
            Ok(v) => out.push_str(&response(&msg.id, Ok(v))),
            Err(e) => {
                out.push_str(&response(&msg.id, Err(&e)));
                return self.rejected();
            }
        }
        if subscribed {
            let job = Arc::clone(&self.shared.jobs.borrow());
            self.send_job(job, None, out);
        }
        After::Continue
    }

    fn subscribe(&mut self, _params: &Value) -> Result<Value, StratumError> {
        self.subscribed = true;
        let sub = format!("{:016x}", self.id);
        Ok(json!([
            [["mining.set_difficulty", sub], ["mining.notify", sub]],
            hex::encode(self.extranonce1),
            EXTRANONCE2_SIZE
        ]))
    }

    fn authorize(&mut self, params: &Value) -> Result<Value, StratumError> {
        let user = params
            .get(0)
            .and_then(Value::as_str)
            .ok_or_else(|| StratumError::other("mining.authorize takes [user, password]"))?;
        if self.workers.len() >= MAX_WORKERS_PER_CONNECTION && !self.workers.contains_key(user) {
            return Err(StratumError::other(format!(
                "at most {MAX_WORKERS_PER_CONNECTION} workers per connection"
            )));
        }
        let payee = payee_of(user, &self.shared.spec_seed).map_err(StratumError::other)?;
        {
            let mut books = lock(&self.shared.books);
            if !books.workers.contains_key(user) {
                if books.workers.len() >= MAX_WORKERS {
                    // The books of a worker on no connection (the fewest shares first) make
                    // room: names that come and go must not lock out new miners.
                    let idle = books
                        .workers
                        .iter()
                        .filter(|(name, _)| !books.live.contains_key(*name))
                        .min_by(|a, b| a.1.accepted.cmp(&b.1.accepted).then(a.0.cmp(b.0)))
                        .map(|(name, _)| name.clone());
                    let Some(idle) = idle else {
                        return Err(StratumError::other("the pool keeps no more workers"));
                    };
                    books.workers.remove(&idle);
                }
                books
                    .workers
                    .insert(user.to_owned(), WorkerStats::new(self.shared.now_s()));
            }
            if !self.workers.contains_key(user) {
                *books.live.entry(user.to_owned()).or_default() += 1;
            }
        }
        self.workers.insert(user.to_owned(), payee);
        self.shared.sink.event(&Event::Authorized {
            connection: self.id,
            worker: user.to_owned(),
            payee,
        });
        Ok(json!(true))
    }

    /// BIP 310: version rolling within BIP 320's bits; other extensions are declined.
    fn configure(&mut self, params: &Value) -> Value {
        let mut result = serde_json::Map::new();
        let names = params
            .get(0)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let options = params.get(1).cloned().unwrap_or(Value::Null);
        for name in names.iter().filter_map(Value::as_str).take(8) {
            if name == "version-rolling" {
                let asked = options
                    .get("version-rolling.mask")
                    .and_then(Value::as_str)
                    .and_then(|m| u32::from_str_radix(m, 16).ok())
                    .unwrap_or(u32::MAX);
                self.version_mask = asked & VERSION_ROLLING_MASK;
                result.insert(name.to_owned(), json!(true));
                result.insert(
                    "version-rolling.mask".to_owned(),
                    json!(format!("{:08x}", self.version_mask)),
                );
            } else {
                result.insert(truncate(name), json!(false));
            }
        }
        Value::Object(result)
    }

    /// A miner's wish for its starting difficulty, heeded until the first share.
    fn suggest_difficulty(&mut self, params: &Value) -> Value {
        let Some(d) = params
            .get(0)
            .and_then(Value::as_f64)
            .filter(|d| d.is_finite() && *d > 0.0)
        else {
            return json!(false);
        };
        if self.seen.values().any(|s| !s.is_empty()) {
            return json!(false);
        }
        // More work per share than the pool's, never less: shares far easier than the pool's
        // would let one miner fill the PPLNS window (counted in shares) for almost no work.
        let d = d.clamp(
            self.shared.config.share_difficulty.max(MIN_DIFFICULTY),
            MAX_DIFFICULTY,
        );
        self.difficulty = d;
        if let Some(v) = &mut self.vardiff {
            *v = Vardiff::new(v.config(), d, self.shared.now_s());
            self.difficulty = v.difficulty();
        }
        json!(true)
    }

    /// Sends `job` under a new id of this connection, preceded by `mining.set_difficulty`
    /// when the difficulty in force changes. `clean` overrides the job's own flag.
    fn send_job(&mut self, job: Arc<PoolJob>, clean: Option<bool>, out: &mut String) {
        let clean = clean.unwrap_or(job.job.notify.clean_jobs) || self.sent.is_empty();
        if clean {
            self.sent.clear();
            self.seen.clear();
        }
        // Shares never need more work than a block; a share that is a block is a share.
        let difficulty = self
            .difficulty
            .min(difficulty_of(job.job.target).max(MIN_DIFFICULTY));
        if self.sent_difficulty != Some(difficulty) {
            out.push_str(&request(
                &Value::Null,
                "mining.set_difficulty",
                &json!([difficulty]),
            ));
            self.sent_difficulty = Some(difficulty);
        }
        self.next_local += 1;
        let id = format!("{:x}", self.next_local);
        let mut notify = job.job.notify.clone();
        notify.job_id.clone_from(&id);
        notify.clean_jobs = clean;
        out.push_str(&request(&Value::Null, "mining.notify", &notify.to_params()));
        if self.sent.len() == JOBS_KEPT {
            self.sent.pop_front();
        }
        self.sent.push_back(SentJob {
            id,
            job,
            difficulty,
            target: share_target(difficulty),
        });
        let sent = &self.sent;
        self.seen
            .retain(|space, _| sent.iter().any(|s| s.job.space == *space));
    }

    fn retarget(&mut self, difficulty: f64, out: &mut String) {
        self.difficulty = difficulty;
        self.shared.sink.event(&Event::Difficulty {
            connection: self.id,
            difficulty,
        });
        // The new difficulty applies to the jobs sent after it: resend the newest now.
        if let Some(last) = self.sent.back() {
            let job = Arc::clone(&last.job);
            self.send_job(job, Some(false), out);
        }
    }

    /// Counts a rejection; too many in a row end the connection.
    fn rejected(&mut self) -> After {
        self.rejects_in_a_row += 1;
        if self.rejects_in_a_row >= MAX_REJECTS_IN_A_ROW {
            After::Close(format!("{MAX_REJECTS_IN_A_ROW} rejected messages in a row"))
        } else {
            After::Continue
        }
    }

    async fn submit(&mut self, msg: &Message, out: &mut String) -> After {
        let worker = msg
            .params
            .get(0)
            .and_then(Value::as_str)
            .map(truncate)
            .unwrap_or_default();
        let checked = self.check(&msg.params).await;
        let now = self.shared.now_s();
        let (job_id, difficulty) = match &checked {
            Ok(c) => (Some(c.job_id.clone()), c.difficulty),
            Err((job, difficulty, _)) => (job.clone(), *difficulty),
        };
        {
            // Logged under the books' lock, so the log lists shares in their `seq` order.
            let mut books = lock(&self.shared.books);
            let (seq, work, reason) = match &checked {
                Ok(c) => {
                    let seq = books.accepted;
                    books.accepted += 1;
                    books.pplns.push(c.payee, c.work.clone());
                    if let Some(w) = books.workers.get_mut(&worker) {
                        w.accept(c.difficulty, now);
                    }
                    (Some(seq), Some(c.work.to_string()), None)
                }
                Err((_, _, e)) => {
                    if let Some(w) = books.workers.get_mut(&worker) {
                        w.reject(e.reason());
                    }
                    (None, None, Some(e.message.clone()))
                }
            };
            let event = Event::Share {
                connection: self.id,
                worker,
                job: job_id,
                difficulty,
                seq,
                work,
                reason,
            };
            self.shared.sink.event(&event);
        }
        match checked {
            Ok(_) => {
                self.rejects_in_a_row = 0;
                out.push_str(&response(&msg.id, Ok(json!(true))));
                if let Some(d) = self.vardiff.as_mut().and_then(|v| v.on_share(now)) {
                    self.retarget(d, out);
                }
                After::Continue
            }
            Err((_, _, e)) => {
                out.push_str(&response(&msg.id, Err(&e)));
                self.rejected()
            }
        }
    }

    /// Checks a submission; on success the share is remembered and, if it solved a block,
    /// the block is on the chain (or refused) before this returns.
    async fn check(
        &mut self,
        params: &Value,
    ) -> Result<Accepted, (Option<String>, f64, StratumError)> {
        let fail = |e: StratumError| (None, 0.0, e);
        if !self.subscribed {
            return Err(fail(StratumError::new(
                StratumError::NOT_SUBSCRIBED,
                "Not subscribed",
            )));
        }
        let submit = Submit::from_params(params).map_err(fail)?;
        let Some(&payee) = self.workers.get(&submit.worker) else {
            return Err(fail(StratumError::new(
                StratumError::UNAUTHORIZED,
                "Unauthorized worker",
            )));
        };
        let elapsed = self.tokens_at.elapsed().as_secs_f64();
        self.tokens_at = Instant::now();
        let rate = self.shared.config.max_submit_rate;
        self.tokens = (self.tokens + elapsed * rate).min(rate.max(1.0));
        if self.tokens < 1.0 {
            return Err(fail(StratumError::other("submitting too fast")));
        }
        self.tokens -= 1.0;
        let current = Arc::clone(&self.shared.jobs.borrow());
        let Some(sent) = self.sent.iter().find(|s| s.id == submit.job_id) else {
            // Ids are this connection's counter: one it reached was sent, and has gone stale.
            let sent_before = u64::from_str_radix(&submit.job_id, 16)
                .is_ok_and(|n| n >= 1 && n <= self.next_local);
            let message = if sent_before {
                "Job not found (stale)"
            } else {
                "Job not found"
            };
            return Err(fail(StratumError::new(
                StratumError::JOB_NOT_FOUND,
                message,
            )));
        };
        let job = Arc::clone(&sent.job);
        let pool_id = Some(job.job.notify.job_id.clone());
        let difficulty = sent.difficulty;
        let fail = |e: StratumError| (pool_id.clone(), difficulty, e);
        if job.job.notify.prev_hash != current.job.notify.prev_hash
            || job.serial + JOBS_KEPT as u64 <= current.serial
        {
            return Err(fail(StratumError::new(
                StratumError::JOB_NOT_FOUND,
                "Job not found (stale)",
            )));
        }
        let rules = ShareRules {
            version_mask: self.version_mask,
            target: sent.target,
            latest_time: (self.shared.clock)().saturating_add(self.shared.max_ahead_s),
        };
        let share = job
            .job
            .check_share(self.extranonce1, &submit, &rules)
            .map_err(&fail)?;
        let key = u128::from_le_bytes(
            share.hash.to_byte_array()[..16]
                .try_into()
                .unwrap_or_default(),
        );
        let work = sent.target.to_work().to_biguint();
        let seen = self.seen.entry(job.space).or_default();
        if seen.contains(&key) {
            return Err(fail(StratumError::new(
                StratumError::DUPLICATE,
                "Duplicate share",
            )));
        }
        if seen.len() >= MAX_SHARES_PER_JOB {
            return Err(fail(StratumError::other(
                "too many shares for one job: wait for the next",
            )));
        }
        seen.insert(key);
        if share.is_block {
            let (reply, answer) = oneshot::channel();
            let found = Found {
                job: Arc::clone(&job),
                share,
                worker: submit.worker.clone(),
                reply,
            };
            if self.shared.to_chain.send(found).is_ok() {
                // The share counts whether or not the block makes it (a race lost is not
                // the miner's fault); the block event tells which.
                let _ = answer.await;
            }
        }
        Ok(Accepted {
            job_id: job.job.notify.job_id.clone(),
            difficulty,
            payee,
            work,
        })
    }
}

/// An accepted share's accounting.
struct Accepted {
    job_id: String,
    difficulty: f64,
    payee: PubKey,
    work: num_bigint::BigUint,
}

/// The key a user's shares pay: `NAME` of `NAME[.WORKER]` is a public key (64 hex digits) or
/// a wallet name, whose key is derived from the chain's wallet seed like the spec's own
/// wallets (a demo: anyone with the spec can derive it).
///
/// # Errors
/// A message when the name is neither.
pub fn payee_of(user: &str, wallet_seed: &str) -> Result<PubKey, String> {
    let (name, worker) = user.split_once('.').unwrap_or((user, ""));
    let ok = |s: &str, max: usize, dots: bool| {
        s.len() <= max
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (dots && b == b'.'))
    };
    if name.is_empty() || !ok(name, 64, false) || !ok(worker, 64, true) {
        return Err(format!(
            "user {:?}: expected NAME[.WORKER] (letters, digits, '-', '_'; NAME a wallet name or a 64-hex-digit public key)",
            truncate(user)
        ));
    }
    if name.len() == 64
        && let Ok(bytes) = <[u8; 32]>::try_from(hex::decode(name).unwrap_or_default())
    {
        return Ok(PubKey::from_bytes(bytes));
    }
    Ok(KeyPair::derive(wallet_seed, name).pubkey())
}

/// At most 64 characters of a peer's string, for messages and logs.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

enum Line {
    Complete,
    Eof,
    TooLong,
}

/// Reads up to a newline into `buf` (without it), refusing lines over `max` bytes. Safe to
/// cancel: what was read stays in `buf`.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Line> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(Line::Eof);
        }
        let (take, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (i, true),
            None => (available.len(), false),
        };
        if buf.len() + take > max {
            return Ok(Line::TooLong);
        }
        buf.extend_from_slice(&available[..take]);
        reader.consume(if done { take + 1 } else { take });
        if done {
            return Ok(Line::Complete);
        }
    }
}

async fn write_all(write: &mut OwnedWriteHalf, bytes: &[u8]) -> Result<(), String> {
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(bytes)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err("did not read what the pool sent".into()),
    }
}
