//! A Stratum V1 mining client: connects to a pool, takes its jobs and submits the shares the
//! parallel nonce search finds.
//!
//! Two threads per connection, plus the rayon pool that hashes:
//!
//! * the **reader** (the caller's thread) owns the socket's read half. It subscribes and
//!   authorizes, then reads the pool's lines: `mining.set_difficulty` and `mining.set_extranonce`
//!   change what the next job is made with; `mining.notify` publishes a new job and raises the
//!   search's stop flag, so the search in progress returns within a few thousand hashes per
//!   thread; answers to `mining.submit` are matched to their share by the request id. It also
//!   notices Ctrl-C, the time limit, a silent pool, and reports the hash rate.
//! * the **miner** takes the newest job, builds the header for its extranonce2 (from 0 for
//!   each job) and searches the whole nonce range on every thread
//!   ([`crate::pow::miner::search_all`]): each share is submitted the moment a thread finds it,
//!   and the search goes on, so no nonce is hashed twice or skipped. When the range is used up
//!   it rolls extranonce2 (a new coinbase, so a new merkle root) and starts again at 0. The
//!   time field stays the job's `ntime`.
//!
//! The hashing loop only reads the stop flag and adds to the hash counter, both atomics; the
//! locks, allocations and JSON of a submission happen once per share, outside it.
//!
//! A broken connection is retried after a pause, as often as [`ClientOptions::retries`] says;
//! the session's search stops while there is no connection (its jobs are stale anyway).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::hash::search::{DEFAULT_CHUNK, SearchControl, SearchMode, SearchOptions};
use crate::hash::{Backend, PowJob, UnsupportedBackend};
use crate::pool::stratum::{
    EXTRANONCE2_SIZE, Message, Notify, StratumError, Submit, request, share_target,
};
use crate::pow::miner::{SearchOutcome, search_all};
use crate::primitives::pow_units::Target;

/// The longest line read from a pool; a longer one is a protocol error.
pub const MAX_LINE: usize = 64 * 1024;
/// Shares sent and not answered yet past which the pool is taken for broken: a pool that
/// never answers must not make the miner hold every share it sends.
pub const MAX_UNANSWERED: usize = 1024;
/// How often the reader looks at the stop flag, the time limit and the clock while it waits.
const TICK: Duration = Duration::from_millis(50);
/// The window of the hash rate shown with each answer.
const RATE_WINDOW: Duration = Duration::from_secs(5);
/// The scheme of a pool's address.
const SCHEME: &str = "stratum+tcp://";

/// How to reach a pool and mine on it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The pool's host name or address.
    pub host: String,
    /// The pool's port.
    pub port: u16,
    /// The worker name sent with `mining.authorize` and every share: `NAME[.WORKER]`.
    pub user: String,
    /// The password sent with `mining.authorize`.
    pub password: String,
    /// The hash backend.
    pub backend: Backend,
    /// Reconnections tried after a failed one before giving up (`None`: forever).
    pub retries: Option<u32>,
    /// The pause before each reconnection.
    pub retry_pause: Duration,
    /// Stop after this long.
    pub time_limit: Option<Duration>,
    /// The longest wait for a TCP connection.
    pub connect_timeout: Duration,
    /// The longest wait for the answers to subscribe and authorize.
    pub reply_timeout: Duration,
    /// A connection on which the pool sends nothing for this long is dropped and made again.
    pub silence_timeout: Duration,
    /// How often a [`Event::HashRate`] is reported.
    pub report_interval: Duration,
    /// The end of each header's nonce range (2^32: all of them); a smaller end makes the miner
    /// roll extranonce2 sooner.
    pub nonce_end: u64,
    /// Nonces per chunk handed to a search thread.
    pub chunk: u64,
}

impl ClientOptions {
    /// Options for mining at `host:port` as `user` with password "x", the fastest backend,
    /// retries forever with 5 s pauses, cpuminer's habits.
    #[must_use]
    pub fn new(host: impl Into<String>, port: u16, user: impl Into<String>) -> Self {
        Self {
            host: host.into(),
            port,
            user: user.into(),
            password: "x".to_owned(),
            backend: Backend::detect(),
            retries: None,
            retry_pause: Duration::from_secs(5),
            time_limit: None,
            connect_timeout: Duration::from_secs(10),
            reply_timeout: Duration::from_secs(30),
            silence_timeout: Duration::from_secs(300),
            report_interval: Duration::from_secs(30),
            nonce_end: 1 << 32,
            chunk: DEFAULT_CHUNK,
        }
    }

    /// The pool as a URL: `stratum+tcp://HOST:PORT`.
    #[must_use]
    pub fn url(&self) -> String {
        if self.host.contains(':') {
            format!("{SCHEME}[{}]:{}", self.host, self.port)
        } else {
            format!("{SCHEME}{}:{}", self.host, self.port)
        }
    }
}

/// Reads `stratum+tcp://HOST:PORT` (an IPv6 host in brackets) into the host and the port.
///
/// # Errors
/// A sentence saying what is wrong with `url`.
pub fn parse_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix(SCHEME)
        .ok_or_else(|| format!("{url:?} is not a {SCHEME}HOST:PORT address"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| format!("{url:?} has no port ({SCHEME}HOST:PORT)"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() || host.contains(['/', '[', ']', '@']) || host.contains(char::is_whitespace)
    {
        return Err(format!("{url:?} has no usable host ({SCHEME}HOST:PORT)"));
    }
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{url:?}: the port must be a number from 1 to 65535"))?;
    Ok((host.to_owned(), port))
}

/// The stop flag of a client run and the search controls it shares with the hashing threads.
#[derive(Debug, Default)]
pub struct ClientControl {
    /// The search's stop flag and hash counter (every hash of the run).
    pub search: SearchControl,
    quit: AtomicBool,
}

impl ClientControl {
    /// Asks the run to end: the search stops within a few thousand hashes per thread and
    /// [`run`] returns soon after (safe from a signal handler's thread).
    pub fn stop(&self) {
        // The miner clears the search flag and then reads `quit`; setting them in this order
        // means it always sees one of the two.
        self.quit.store(true, Ordering::SeqCst);
        self.search.stop.store(true, Ordering::SeqCst);
    }

    /// Whether [`stop`](Self::stop) was called.
    #[must_use]
    pub fn is_stopped(&self) -> bool {
        self.quit.load(Ordering::SeqCst)
    }

    /// Hashes done so far.
    #[must_use]
    pub fn hashes(&self) -> u64 {
        self.search.hashes.load(Ordering::Relaxed)
    }
}

/// What happened, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Subscribed and authorized.
    Connected {
        /// The pool's extranonce1, hex.
        extranonce1: String,
    },
    /// `mining.set_difficulty`: the difficulty of the jobs that follow.
    Difficulty(f64),
    /// A new job replaced the one being mined.
    Job {
        /// Its id.
        job_id: String,
        /// Whether every earlier job is void.
        clean: bool,
        /// Its share difficulty.
        difficulty: f64,
    },
    /// The pool answered a share.
    Answer {
        /// The share's job.
        job_id: String,
        /// `Ok` accepted, or the pool's reason.
        result: Result<(), StratumError>,
        /// Shares accepted so far.
        accepted: u64,
        /// Shares rejected so far.
        rejected: u64,
        /// The recent hash rate (hashes per second).
        hash_rate: f64,
    },
    /// A share found on a job that a clean job has since voided: not sent.
    Stale {
        /// The voided job.
        job_id: String,
    },
    /// The periodic hash-rate report.
    HashRate {
        /// Hashes per second since the last report.
        hash_rate: f64,
        /// Hashes since the start.
        hashes: u64,
    },
    /// A working connection ended.
    Lost {
        /// Why.
        reason: String,
    },
    /// A connection attempt failed.
    Failed {
        /// Why.
        reason: String,
    },
    /// The next attempt comes after this pause.
    Retrying {
        /// The pause.
        pause: Duration,
    },
}

/// Shares the pool answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares.
    pub rejected: u64,
}

/// Why a client run ended without being asked to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// Every attempt to reach the pool failed.
    #[error("no working connection to {pool} after {attempts} attempt(s): {last}")]
    GaveUp {
        /// The pool's URL.
        pool: String,
        /// Attempts made in a row.
        attempts: u32,
        /// The last attempt's failure.
        last: String,
    },
    /// The pool wants an extranonce2 of another size than ours.
    #[error(
        "{pool} gives miners an extranonce2 of {size} bytes; chainsmith rolls exactly {EXTRANONCE2_SIZE}"
    )]
    Extranonce2Size {
        /// The pool's URL.
        pool: String,
        /// The size it asked for.
        size: u64,
    },
    /// The CPU cannot run the backend.
    #[error(transparent)]
    Unsupported(#[from] UnsupportedBackend),
}

/// Mines at the pool until `control` is stopped, the time limit passes or the pool cannot be
/// reached any more; `on_event` sees what happens (from the reader's and the miner's
/// threads). The search runs on `pool`.
///
/// # Errors
/// [`ClientError::GaveUp`] after the retries, [`ClientError::Extranonce2Size`] for a pool we
/// cannot mine for, [`ClientError::Unsupported`] for a backend this CPU lacks.
pub fn run(
    opts: &ClientOptions,
    pool: &rayon::ThreadPool,
    control: &ClientControl,
    on_event: &(dyn Fn(Event) + Sync),
) -> Result<Totals, ClientError> {
    if !opts.backend.is_supported() {
        return Err(UnsupportedBackend(opts.backend).into());
    }
    let client = Client {
        opts,
        pool,
        control,
        on_event,
        deadline: opts.time_limit.map(|t| Instant::now() + t),
        accepted: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        meter: Mutex::new(Meter::new(0)),
    };
    let mut failures: u32 = 0;
    while !client.should_stop() {
        let last = match client.connection() {
            End::Quit => break,
            End::Fatal(e) => return Err(e),
            End::Lost(reason) => {
                failures = 0;
                on_event(Event::Lost {
                    reason: reason.clone(),
                });
                reason
            }
            End::Failed(reason) => {
                failures += 1;
                on_event(Event::Failed {
                    reason: reason.clone(),
                });
                reason
            }
        };
        if opts.retries.is_some_and(|max| failures > max) {
            return Err(ClientError::GaveUp {
                pool: opts.url(),
                attempts: failures,
                last,
            });
        }
        if client.should_stop() {
            break;
        }
        on_event(Event::Retrying {
            pause: opts.retry_pause,
        });
        client.pause(opts.retry_pause);
    }
    Ok(client.totals())
}

/// How one connection ended.
enum End {
    /// Stopped, or the time limit passed.
    Quit,
    /// It worked for a while, then broke.
    Lost(String),
    /// It never worked.
    Failed(String),
    /// Retrying cannot help.
    Fatal(ClientError),
}

/// A job as the miner works on it: the pool's pieces with what they are mined with.
#[derive(Debug)]
struct Job {
    notify: Notify,
    extranonce1: Vec<u8>,
    target: Target,
}

/// What the reader hands the miner.
#[derive(Debug, Default)]
struct Work {
    job: Option<Arc<Job>>,
    /// Counts the jobs published on this connection.
    generation: u64,
    /// The generation of the newest clean job: shares of older ones are void.
    clean_generation: u64,
    /// The connection is ending: the miner returns.
    over: bool,
}

/// The shares sent and not answered yet, by request id.
#[derive(Debug)]
struct Pending {
    next_id: u64,
    job_ids: HashMap<u64, Arc<Job>>,
}

/// What the two threads of one connection share.
#[derive(Debug)]
struct Shared {
    work: Mutex<Work>,
    changed: Condvar,
    pending: Mutex<Pending>,
    /// Set by the miner when sending fails.
    broken: Mutex<Option<String>>,
}

/// The hash rate over a window.
#[derive(Debug, Clone, Copy)]
struct Meter {
    since: Instant,
    base: u64,
    last_rate: f64,
}

impl Meter {
    fn new(hashes: u64) -> Self {
        Self {
            since: Instant::now(),
            base: hashes,
            last_rate: 0.0,
        }
    }

    /// The rate since the window began.
    fn rate(&self, hashes: u64) -> f64 {
        let secs = self.since.elapsed().as_secs_f64();
        if secs > 0.0 {
            hashes.saturating_sub(self.base) as f64 / secs
        } else {
            0.0
        }
    }

    /// The rate of the last full window (of the current one before the first ends), starting
    /// a new window when this one is `window` old.
    fn recent(&mut self, hashes: u64, window: Duration) -> f64 {
        if self.since.elapsed() >= window {
            self.last_rate = self.rate(hashes);
            self.since = Instant::now();
            self.base = hashes;
        }
        if self.last_rate > 0.0 {
            self.last_rate
        } else {
            self.rate(hashes)
        }
    }
}

struct Client<'a> {
    opts: &'a ClientOptions,
    pool: &'a rayon::ThreadPool,
    control: &'a ClientControl,
    on_event: &'a (dyn Fn(Event) + Sync),
    deadline: Option<Instant>,
    accepted: AtomicU64,
    rejected: AtomicU64,
    /// The window of the rate shown with answers.
    meter: Mutex<Meter>,
}

/// Locks `m`, also after a thread panicked while holding it (the data stay consistent: every
/// update is a single assignment).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The pool's lines, read with a short timeout so the reader can look around between them.
struct Lines {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Lines {
    /// The next non-empty line; `Ok(None)` when none came within the read timeout.
    fn next(&mut self) -> Result<Option<String>, String> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=end).collect();
                if line.len() > MAX_LINE {
                    return Err(too_long());
                }
                let text = String::from_utf8(line)
                    .map_err(|_| "the pool sent a line that is not UTF-8".to_owned())?;
                if text.trim().is_empty() {
                    continue;
                }
                return Ok(Some(text));
            }
            if self.buf.len() > MAX_LINE {
                return Err(too_long());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("the pool closed the connection".to_owned()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(None);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("reading from the pool: {e}")),
            }
        }
    }
}

fn too_long() -> String {
    format!("the pool sent a line longer than {} KiB", MAX_LINE / 1024)
}

/// The pool's error in an answer, in any of the shapes pools send: `[code, message, …]`,
/// `{code, message}`, or anything else (code 20 with its JSON).
fn pool_error(error: &Value) -> Option<StratumError> {
    let code = |v: Option<&Value>| {
        v.and_then(Value::as_i64)
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(StratumError::OTHER)
    };
    match error {
        Value::Null => None,
        Value::Array(a) => Some(StratumError::new(
            code(a.first()),
            a.get(1).and_then(Value::as_str).unwrap_or_default(),
        )),
        Value::Object(o) => Some(StratumError::new(
            code(o.get("code")),
            o.get("message").and_then(Value::as_str).unwrap_or_default(),
        )),
        other => Some(StratumError::other(other.to_string())),
    }
}

/// A pool's yes-or-no answer (to authorize or submit): `Ok` for a `true` result.
fn answer(msg: &Message) -> Result<(), StratumError> {
    match pool_error(&msg.error) {
        Some(e) => Err(e),
        None if msg.result == Value::Bool(true) => Ok(()),
        None => Err(StratumError::other(format!("answered {}", msg.result))),
    }
}

/// What the reader knows of the connection.
struct Conn {
    lines: Lines,
    extranonce1: Option<Vec<u8>>,
    difficulty: f64,
    last_heard: Instant,
}

impl Client<'_> {
    fn emit(&self, e: Event) {
        (self.on_event)(e);
    }

    /// Whether to end: stopped, or past the time limit (which stops).
    fn should_stop(&self) -> bool {
        if self.deadline.is_some_and(|d| Instant::now() >= d) {
            self.control.stop();
        }
        self.control.is_stopped()
    }

    fn totals(&self) -> Totals {
        Totals {
            accepted: self.accepted.load(Ordering::SeqCst),
            rejected: self.rejected.load(Ordering::SeqCst),
        }
    }

    /// Sleeps `pause`, waking early when stopped.
    fn pause(&self, pause: Duration) {
        let until = Instant::now() + pause;
        while !self.should_stop() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(TICK));
        }
    }

    fn connect(&self) -> Result<TcpStream, String> {
        let target = format!("{}:{}", self.opts.host, self.opts.port);
        let addrs = (self.opts.host.as_str(), self.opts.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {target}: {e}"))?;
        let mut last = format!("{target} has no address");
        for addr in addrs {
            match TcpStream::connect_timeout(&addr, self.opts.connect_timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = format!("connecting to {addr}: {e}"),
            }
        }
        Err(last)
    }

    /// One connection: connect, subscribe, authorize, mine until it ends.
    fn connection(&self) -> End {
        let stream = match self.connect() {
            Ok(s) => s,
            Err(reason) => return End::Failed(reason),
        };
        let setup = stream
            .set_read_timeout(Some(TICK))
            .and_then(|()| stream.set_write_timeout(Some(self.opts.reply_timeout)))
            .and_then(|()| stream.set_nodelay(true))
            .and_then(|()| stream.try_clone());
        let writer = match setup {
            Ok(w) => w,
            Err(e) => return End::Failed(format!("setting up the connection: {e}")),
        };
        let shared = Shared {
            work: Mutex::new(Work::default()),
            changed: Condvar::new(),
            pending: Mutex::new(Pending {
                next_id: 3,
                job_ids: HashMap::new(),
            }),
            broken: Mutex::new(None),
        };
        let mut conn = Conn {
            lines: Lines {
                stream,
                buf: Vec::new(),
            },
            extranonce1: None,
            difficulty: 1.0,
            last_heard: Instant::now(),
        };
        let end = match self.handshake(&mut conn, &shared, &writer) {
            Err(end) => end,
            Ok(()) => {
                self.emit(Event::Connected {
                    extranonce1: hex::encode(conn.extranonce1.as_deref().unwrap_or_default()),
                });
                std::thread::scope(|s| {
                    s.spawn(|| self.mine(&shared, &writer));
                    let end = self.read_loop(&mut conn, &shared);
                    {
                        let mut work = lock(&shared.work);
                        work.over = true;
                        self.control.search.stop.store(true, Ordering::SeqCst);
                    }
                    shared.changed.notify_all();
                    // Unblocks a miner stuck sending to a pool that stopped reading.
                    let _ = writer.shutdown(Shutdown::Both);
                    end
                })
            }
        };
        let _ = conn.lines.stream.shutdown(Shutdown::Both);
        end
    }

    fn send(writer: &TcpStream, line: &str) -> Result<(), String> {
        let mut w = writer;
        w.write_all(line.as_bytes())
            .map_err(|e| format!("sending to the pool: {e}"))
    }

    /// Subscribes and authorizes; the notifications that come meanwhile are handled.
    fn handshake(&self, conn: &mut Conn, shared: &Shared, writer: &TcpStream) -> Result<(), End> {
        let version = format!("chainsmith/{}", env!("CARGO_PKG_VERSION"));
        Self::send(
            writer,
            &request(&json!(1), "mining.subscribe", &json!([version])),
        )
        .map_err(End::Failed)?;
        let until = Instant::now() + self.opts.reply_timeout;
        let (mut subscribed_yet, mut authorized) = (false, false);
        while !authorized {
            if self.should_stop() {
                return Err(End::Quit);
            }
            if Instant::now() >= until {
                return Err(End::Failed(format!(
                    "no answer to {} within {} s",
                    if subscribed_yet {
                        "mining.authorize"
                    } else {
                        "mining.subscribe"
                    },
                    self.opts.reply_timeout.as_secs_f64()
                )));
            }
            let Some(msg) = self.next_message(conn, shared).map_err(End::Failed)? else {
                continue;
            };
            match msg.id.as_u64() {
                Some(1) if !subscribed_yet => {
                    let (en1, size) = subscribed(&msg).map_err(End::Failed)?;
                    if size != EXTRANONCE2_SIZE as u64 {
                        return Err(End::Fatal(ClientError::Extranonce2Size {
                            pool: self.opts.url(),
                            size,
                        }));
                    }
                    conn.extranonce1 = Some(en1);
                    subscribed_yet = true;
                    let params = json!([self.opts.user, self.opts.password]);
                    Self::send(writer, &request(&json!(2), "mining.authorize", &params))
                        .map_err(End::Failed)?;
                }
                Some(2) if subscribed_yet => {
                    answer(&msg).map_err(|e| {
                        End::Failed(format!(
                            "the pool refused worker {:?}: {}",
                            self.opts.user, e.message
                        ))
                    })?;
                    authorized = true;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Reads and handles one line: notifications are acted on here, an answer to a share is
    /// counted; any other answer is returned. `Ok(None)` when no line came within a tick.
    fn next_message(&self, conn: &mut Conn, shared: &Shared) -> Result<Option<Message>, String> {
        let Some(line) = conn.lines.next()? else {
            return Ok(None);
        };
        conn.last_heard = Instant::now();
        let msg =
            Message::parse(&line).map_err(|e| format!("bad line from the pool: {}", e.message))?;
        match msg.method.as_deref() {
            None => {
                let share = msg
                    .id
                    .as_u64()
                    .and_then(|id| lock(&shared.pending).job_ids.remove(&id));
                match share {
                    Some(job) => {
                        self.answered(job.notify.job_id.clone(), answer(&msg));
                        Ok(None)
                    }
                    None => Ok(Some(msg)),
                }
            }
            Some("mining.notify") => {
                self.notified(conn, shared, &msg.params)?;
                Ok(None)
            }
            Some("mining.set_difficulty") => {
                let d = msg
                    .params
                    .get(0)
                    .and_then(Value::as_f64)
                    .filter(|d| d.is_finite() && *d > 0.0)
                    .ok_or_else(|| format!("the pool sent a bad difficulty {}", msg.params))?;
                conn.difficulty = d;
                self.emit(Event::Difficulty(d));
                Ok(None)
            }
            Some("mining.set_extranonce") => {
                let en1 = msg
                    .params
                    .get(0)
                    .and_then(Value::as_str)
                    .and_then(|h| hex::decode(h).ok())
                    .ok_or_else(|| format!("the pool sent a bad extranonce1 {}", msg.params))?;
                match msg.params.get(1).and_then(Value::as_u64) {
                    Some(size) if size == EXTRANONCE2_SIZE as u64 => {
                        conn.extranonce1 = Some(en1);
                        Ok(None)
                    }
                    _ => Err(format!(
                        "the pool changed the extranonce2 size: {}",
                        msg.params
                    )),
                }
            }
            Some("client.reconnect") => Err("the pool asked to reconnect".to_owned()),
            Some(_) => Ok(None),
        }
    }

    /// A new job: published for the miner, whose search stops to take it.
    fn notified(&self, conn: &Conn, shared: &Shared, params: &Value) -> Result<(), String> {
        let notify = Notify::from_params(params)
            .map_err(|e| format!("the pool sent a bad job: {}", e.message))?;
        let Some(extranonce1) = conn.extranonce1.clone() else {
            // A job before the subscription's answer cannot be mined yet.
            return Ok(());
        };
        self.emit(Event::Job {
            job_id: notify.job_id.clone(),
            clean: notify.clean_jobs,
            difficulty: conn.difficulty,
        });
        let clean = notify.clean_jobs;
        let job = Arc::new(Job {
            notify,
            extranonce1,
            target: share_target(conn.difficulty),
        });
        {
            let mut work = lock(&shared.work);
            work.generation += 1;
            if clean {
                work.clean_generation = work.generation;
            }
            work.job = Some(job);
            // Raised under the lock: see `mine`.
            self.control.search.stop.store(true, Ordering::SeqCst);
        }
        shared.changed.notify_all();
        Ok(())
    }

    fn answered(&self, job_id: String, result: Result<(), StratumError>) {
        let counter = if result.is_ok() {
            &self.accepted
        } else {
            &self.rejected
        };
        counter.fetch_add(1, Ordering::SeqCst);
        let Totals { accepted, rejected } = self.totals();
        let hash_rate = lock(&self.meter).recent(self.control.hashes(), RATE_WINDOW);
        self.emit(Event::Answer {
            job_id,
            result,
            accepted,
            rejected,
            hash_rate,
        });
    }

    /// Reads the pool's lines until the connection ends.
    fn read_loop(&self, conn: &mut Conn, shared: &Shared) -> End {
        let mut report = Meter::new(self.control.hashes());
        loop {
            if self.should_stop() {
                return End::Quit;
            }
            if let Some(reason) = lock(&shared.broken).take() {
                return End::Lost(reason);
            }
            if report.since.elapsed() >= self.opts.report_interval {
                let hashes = self.control.hashes();
                self.emit(Event::HashRate {
                    hash_rate: report.rate(hashes),
                    hashes,
                });
                report = Meter::new(hashes);
            }
            if conn.last_heard.elapsed() >= self.opts.silence_timeout {
                return End::Lost(format!(
                    "nothing from the pool for {} s",
                    self.opts.silence_timeout.as_secs()
                ));
            }
            if let Err(reason) = self.next_message(conn, shared) {
                // A miner that broke the connection shut the socket: its reason, not the
                // end of the stream that followed.
                return End::Lost(lock(&shared.broken).take().unwrap_or(reason));
            }
        }
    }

    /// Reports a failure to send; the reader ends the connection.
    fn broke(shared: &Shared, writer: &TcpStream, reason: String) {
        *lock(&shared.broken) = Some(reason);
        let _ = writer.shutdown(Shutdown::Both);
    }

    /// The miner thread: searches the newest job until the connection ends.
    fn mine(&self, shared: &Shared, writer: &TcpStream) {
        let mut current: Option<Arc<Job>> = None;
        let mut generation = 0;
        // `None` once every extranonce2 of the job is used: wait for the next job.
        let mut extranonce2: Option<u32> = Some(0);
        loop {
            let (job, en2) = {
                let mut work = lock(&shared.work);
                loop {
                    // Cleared under the lock, where the reader publishes a job and raises the
                    // flag together: the stop for a job taken here is dropped, the stop for a
                    // later one is not. A Ctrl-C raises `quit` before the flag, so if this
                    // store wiped its flag, the check below sees `quit`.
                    self.control.search.stop.store(false, Ordering::SeqCst);
                    if work.over || self.control.is_stopped() {
                        return;
                    }
                    if let Some(job) = work.job.as_ref().filter(|_| work.generation != generation) {
                        current = Some(Arc::clone(job));
                        generation = work.generation;
                        extranonce2 = Some(0);
                    }
                    if let (Some(job), Some(en2)) = (&current, extranonce2) {
                        break (Arc::clone(job), en2);
                    }
                    work = shared
                        .changed
                        .wait_timeout(work, TICK)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
            };
            let en2_bytes = en2.to_le_bytes();
            let root = job.notify.merkle_root(&job.extranonce1, &en2_bytes);
            let header = job
                .notify
                .header(root, job.notify.time, 0, job.notify.version);
            let pow = match PowJob::new(&header, job.target).with_backend(self.opts.backend) {
                Ok(p) => p,
                Err(e) => return Self::broke(shared, writer, e.to_string()),
            };
            let opts = SearchOptions {
                mode: SearchMode::Any,
                chunk: self.opts.chunk,
                nonces: 0..self.opts.nonce_end,
                backend: self.opts.backend,
            };
            // Every share in the range is submitted as it is found, from whichever thread.
            let submit = |nonce| self.submit(shared, writer, &job, generation, en2_bytes, nonce);
            let outcome = self
                .pool
                .install(|| search_all(&pow, &opts, &self.control.search, &submit));
            if outcome == SearchOutcome::Exhausted {
                extranonce2 = en2.checked_add(1);
            }
        }
    }

    /// Sends a share, unless a clean job has voided its job.
    fn submit(
        &self,
        shared: &Shared,
        writer: &TcpStream,
        job: &Arc<Job>,
        generation: u64,
        extranonce2: [u8; EXTRANONCE2_SIZE],
        nonce: u32,
    ) {
        if lock(&shared.work).clean_generation > generation {
            self.emit(Event::Stale {
                job_id: job.notify.job_id.clone(),
            });
            return;
        }
        let params = Submit {
            worker: self.opts.user.clone(),
            job_id: job.notify.job_id.clone(),
            extranonce2,
            time: job.notify.time,
            nonce,
            version_bits: None,
        }
        .to_params();
        let id = {
            let mut pending = lock(&shared.pending);
            if pending.job_ids.len() >= MAX_UNANSWERED {
                drop(pending);
                return Self::broke(
                    shared,
                    writer,
                    format!("the pool left {MAX_UNANSWERED} shares unanswered"),
                );
            }
            let id = pending.next_id;
            pending.next_id += 1;
            pending.job_ids.insert(id, Arc::clone(job));
            id
        };
        if let Err(reason) = Self::send(writer, &request(&json!(id), "mining.submit", &params)) {
            Self::broke(shared, writer, reason);
        }
    }
}

/// The extranonce1 and extranonce2 size of a `mining.subscribe` answer:
/// `[subscriptions, extranonce1, extranonce2_size]`.
fn subscribed(msg: &Message) -> Result<(Vec<u8>, u64), String> {
    if let Some(e) = pool_error(&msg.error) {
        return Err(format!("the pool refused mining.subscribe: {}", e.message));
    }
    let en1 = msg
        .result
        .get(1)
        .and_then(Value::as_str)
        .and_then(|h| hex::decode(h).ok());
    let size = msg.result.get(2).and_then(Value::as_u64);
    match (en1, size) {
        (Some(en1), Some(size)) => Ok((en1, size)),
        _ => Err(format!(
            "the pool's mining.subscribe answer {} lacks extranonce1 and its extranonce2 size",
            msg.result
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    use super::*;
    use crate::chain::state::ChainState;
    use crate::pool::job::{self, JobSpec, ShareRules};

    /// Every wait in these tests ends by this long.
    const PATIENCE: Duration = Duration::from_secs(5);
    const EN1: [u8; 4] = [1, 2, 3, 4];

    /// A regtest chain with its genesis block, to cut pool jobs from.
    fn chain() -> ChainState {
        ChainState::started("regtest")
    }

    /// A pool job as the server side builds it; `now` makes jobs differ.
    fn pool_job(state: &ChainState, id: &str, clean: bool, now: u32) -> job::Job {
        let spec = JobSpec {
            id: id.into(),
            clean,
            now,
            txs: Vec::new(),
            operator: state.spec().miner_key().pubkey(),
        };
        job::Job::new(state, spec, |_| Vec::new())
    }

    /// Checks a share the way the pool does, independently of the client's own header.
    fn check(job: &job::Job, en1: [u8; 4], submit: &Submit, difficulty: f64) {
        let rules = ShareRules {
            version_mask: 0,
            target: share_target(difficulty),
            latest_time: job.notify.time,
        };
        job.check_share(en1, submit, &rules)
            .unwrap_or_else(|e| panic!("share {submit:?} is invalid: {e}"));
        assert_eq!(submit.time, job.notify.time, "ntime is the job's");
        assert_eq!(submit.worker, "alice.rig1");
    }

    /// One connection of the fake pool, every read bounded by [`PATIENCE`].
    struct Peer {
        reader: BufReader<TcpStream>,
        writer: TcpStream,
    }

    impl Peer {
        fn accept(listener: &TcpListener) -> Self {
            listener.set_nonblocking(true).unwrap();
            let until = Instant::now() + PATIENCE;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < until, "the client did not connect");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            stream.set_read_timeout(Some(PATIENCE)).unwrap();
            Self {
                reader: BufReader::new(stream.try_clone().unwrap()),
                writer: stream,
            }
        }

        fn recv(&mut self) -> Message {
            let mut line = String::new();
            let n = self
                .reader
                .read_line(&mut line)
                .expect("the client went quiet");
            assert!(n > 0, "the client hung up");
            Message::parse(&line).unwrap()
        }

        fn send(&mut self, v: &Value) {
            self.writer.write_all(format!("{v}\n").as_bytes()).unwrap();
        }

        fn notify(&mut self, method: &str, params: Value) {
            self.send(&json!({"id": null, "method": method, "params": params}));
        }

        /// Answers subscribe (extranonce1 `EN1`, extranonce2 of `en2_size` bytes) and
        /// authorize.
        fn handshake(&mut self, en2_size: u64) {
            let m = self.recv();
            assert_eq!(m.method.as_deref(), Some("mining.subscribe"));
            assert!(m.params[0].as_str().unwrap().starts_with("chainsmith/"));
            self.send(&json!({"id": m.id, "error": null, "result": [
                [["mining.set_difficulty", "s1"], ["mining.notify", "s1"]],
                hex::encode(EN1),
                en2_size,
            ]}));
            if en2_size != 4 {
                return;
            }
            let m = self.recv();
            assert_eq!(m.method.as_deref(), Some("mining.authorize"));
            assert_eq!(m.params, json!(["alice.rig1", "x"]));
            self.send(&json!({"id": m.id, "error": null, "result": true}));
        }

        fn job(&mut self, job: &job::Job, difficulty: f64) {
            self.notify("mining.set_difficulty", json!([difficulty]));
            self.notify("mining.notify", job.notify.to_params());
        }

        /// The next share and its request id.
        fn submit(&mut self) -> (Value, Submit) {
            loop {
                let m = self.recv();
                if m.method.as_deref() == Some("mining.submit") {
                    return (m.id, Submit::from_params(&m.params).unwrap());
                }
            }
        }

        fn accept_share(&mut self, id: Value) {
            self.send(&json!({"id": id, "error": null, "result": true}));
        }
    }

    /// Stops the client when the test body ends, also by a failed assertion.
    struct StopOnDrop<'a>(&'a ClientControl);

    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.stop();
        }
    }

    fn options(port: u16) -> ClientOptions {
        ClientOptions {
            backend: Backend::Soft,
            retries: Some(3),
            retry_pause: Duration::from_millis(10),
            reply_timeout: PATIENCE,
            chunk: 1024,
            ..ClientOptions::new("127.0.0.1", port, "alice.rig1")
        }
    }

    /// Runs the client against `pool` (the fake server's script, on this thread); returns
    /// the client's result and every event it reported.
    fn with_client(
        opts: ClientOptions,
        listener: &TcpListener,
        pool: impl FnOnce(&TcpListener, &Mutex<Vec<Event>>),
    ) -> (Result<Totals, ClientError>, Vec<Event>) {
        let threads = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let control = ClientControl::default();
        let events = Mutex::new(Vec::new());
        let result = std::thread::scope(|s| {
            let client = s.spawn(|| {
                run(&opts, &threads, &control, &|e| {
                    events.lock().unwrap().push(e)
                })
            });
            let stop = StopOnDrop(&control);
            pool(listener, &events);
            drop(stop);
            client.join().unwrap()
        });
        (result, events.into_inner().unwrap())
    }

    /// Waits until the events satisfy `done`.
    fn wait_for(events: &Mutex<Vec<Event>>, done: impl Fn(&[Event]) -> bool) {
        let until = Instant::now() + PATIENCE;
        while !done(&events.lock().unwrap()) {
            assert!(
                Instant::now() < until,
                "timed out: {:?}",
                events.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn listen() -> (TcpListener, u16) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    fn answers(events: &[Event]) -> Vec<&Result<(), StratumError>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Answer { result, .. } => Some(result),
                _ => None,
            })
            .collect()
    }

    /// A pool that takes shares and never answers them (here at a difficulty that makes
    /// every hash a share) is dropped once [`MAX_UNANSWERED`] are waiting, rather than the
    /// miner holding every share it sent.
    #[test]
    fn a_pool_that_never_answers_is_dropped() {
        let state = chain();
        let job = pool_job(&state, "j1", true, 1_800_000_000);
        let (listener, port) = listen();
        let (_, events) = with_client(options(port), &listener, |l, events| {
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.job(&job, 1e-300);
            let mut shares = 0;
            // The client cuts the connection: the reads end (hang-up or a reset).
            loop {
                let mut line = String::new();
                match peer.reader.read_line(&mut line) {
                    Ok(n) if n > 0 => shares += 1,
                    _ => break,
                }
                assert!(shares <= MAX_UNANSWERED + 8, "the client kept sending");
            }
            wait_for(events, |e| {
                e.iter()
                    .any(|e| matches!(e, Event::Lost { reason } if reason.contains("unanswered")))
            });
        });
        assert!(answers(&events).is_empty());
    }

    /// Shares are valid and each is sent once, and every answer is counted; an error answer is
    /// a rejection with the pool's code. An unknown notification changes nothing.
    #[test]
    fn shares_are_valid_and_answers_are_counted() {
        let state = chain();
        let job = pool_job(&state, "j1", true, 1_800_000_000);
        let difficulty = 1.0 / 65_536.0;
        let (listener, port) = listen();
        let (result, events) = with_client(options(port), &listener, |l, events| {
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.notify("client.show_message", json!(["hello"]));
            peer.job(&job, difficulty);
            let mut seen = std::collections::HashSet::new();
            for i in 0..4 {
                let (id, share) = peer.submit();
                check(&job, EN1, &share, difficulty);
                assert_eq!(share.job_id, "j1");
                assert_eq!(share.extranonce2, [0; 4]);
                assert!(seen.insert(share.nonce), "each share sent once");
                if i == 0 {
                    peer.send(&json!({"id": id, "result": null,
                        "error": [23, "Low difficulty share", null]}));
                } else {
                    peer.accept_share(id);
                }
            }
            wait_for(events, |e| answers(e).len() == 4);
        });
        assert_eq!(
            result.unwrap(),
            Totals {
                accepted: 3,
                rejected: 1
            }
        );
        let answers = answers(&events);
        assert_eq!(answers[0].as_ref().unwrap_err().code, 23);
        assert!(answers[1..].iter().all(|a| a.is_ok()));
        assert!(events.contains(&Event::Connected {
            extranonce1: "01020304".into()
        }));
        assert!(events.contains(&Event::Job {
            job_id: "j1".into(),
            clean: true,
            difficulty
        }));
    }

    /// A clean notify switches the search to the new job at once, and an extranonce1 set
    /// before it is the one the new job is mined with.
    #[test]
    fn a_clean_job_replaces_the_search_and_takes_the_new_extranonce1() {
        let state = chain();
        let first = pool_job(&state, "a", true, 1_800_000_000);
        let second = pool_job(&state, "b", true, 1_800_000_100);
        let difficulty = 1.0 / 65_536.0;
        let (listener, port) = listen();
        let (result, _) = with_client(options(port), &listener, |l, _| {
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.job(&first, difficulty);
            let (id, share) = peer.submit();
            check(&first, EN1, &share, difficulty);
            assert_eq!(share.job_id, "a");
            peer.accept_share(id);
            peer.notify("mining.set_extranonce", json!(["09090909", 4]));
            peer.job(&second, difficulty);
            let mut seen_b = 0;
            while seen_b < 3 {
                let (id, share) = peer.submit();
                if share.job_id == "a" {
                    assert_eq!(seen_b, 0, "a share of the old job after the new one's");
                    check(&first, EN1, &share, difficulty);
                } else {
                    assert_eq!(share.job_id, "b");
                    check(&second, [9; 4], &share, difficulty);
                    seen_b += 1;
                }
                peer.accept_share(id);
            }
        });
        assert!(result.unwrap().accepted >= 1);
    }

    /// With a nonce range of 256, extranonce2 goes 0, 1, 2, …, and in each range every
    /// solving nonce is submitted once, and no other.
    #[test]
    fn extranonce2_rolls_when_the_nonce_range_is_used_up() {
        let state = chain();
        let job = pool_job(&state, "r", true, 1_800_000_000);
        let difficulty = 1.0 / 268_435_456.0; // one hash in 16
        let mut opts = options(0);
        let (listener, port) = listen();
        opts.port = port;
        opts.nonce_end = 256;
        opts.chunk = 16;
        let mut got: Vec<Vec<u32>> = vec![Vec::new(); 3];
        let (result, _) = with_client(opts, &listener, |l, _| {
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.job(&job, difficulty);
            loop {
                let (id, share) = peer.submit();
                check(&job, EN1, &share, difficulty);
                assert!(share.nonce < 256);
                peer.accept_share(id);
                let en2 = u32::from_le_bytes(share.extranonce2) as usize;
                if en2 > 2 {
                    break;
                }
                got[en2].push(share.nonce);
            }
        });
        result.unwrap();
        let target = share_target(difficulty);
        for (en2, nonces) in got.iter().enumerate() {
            let root = job.notify.merkle_root(&EN1, &(en2 as u32).to_le_bytes());
            let want: Vec<u32> = (0..256)
                .filter(|n| {
                    let h = job
                        .notify
                        .header(root, job.notify.time, *n, job.notify.version);
                    target.is_met_by(h.block_hash())
                })
                .collect();
            assert!(!want.is_empty());
            let mut nonces = nonces.clone();
            nonces.sort_unstable();
            assert_eq!(nonces, want, "extranonce2 {en2}");
        }
    }

    /// A pool that hangs up, and one that asks to reconnect, are connected to again; a job
    /// on the new connection is mined.
    #[test]
    fn a_closed_connection_is_made_again() {
        let state = chain();
        let job = pool_job(&state, "k", true, 1_800_000_000);
        let difficulty = 1.0 / 65_536.0;
        let (listener, port) = listen();
        let (result, events) = with_client(options(port), &listener, |l, _| {
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.job(&job, difficulty);
            drop(peer);
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.notify("client.reconnect", json!([]));
            let mut peer = Peer::accept(l);
            peer.handshake(4);
            peer.job(&job, difficulty);
            let (_, share) = peer.submit();
            check(&job, EN1, &share, difficulty);
        });
        result.unwrap();
        let lost: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Lost { reason } => Some(reason.as_str()),
                _ => None,
            })
            .collect();
        // (The last connection closes too, when the test ends.)
        assert_eq!(
            lost[..2],
            [
                "the pool closed the connection",
                "the pool asked to reconnect"
            ]
        );
    }

    #[test]
    fn a_pool_with_another_extranonce2_size_is_refused() {
        let (listener, port) = listen();
        let (result, _) = with_client(options(port), &listener, |l, _| {
            Peer::accept(l).handshake(8);
        });
        assert_eq!(
            result.unwrap_err(),
            ClientError::Extranonce2Size {
                pool: format!("stratum+tcp://127.0.0.1:{port}"),
                size: 8
            }
        );
    }

    /// A pool that never answers, or sends an endless line, fails each attempt; after the
    /// retries the run gives up with the last reason.
    #[test]
    fn silent_and_flooding_pools_are_given_up_on() {
        let (listener, port) = listen();
        let mut opts = options(port);
        opts.retries = Some(1);
        opts.reply_timeout = Duration::from_millis(200);
        let (result, events) = with_client(opts, &listener, |l, _| {
            let mut silent = Peer::accept(l);
            silent.recv();
            let mut flood = Peer::accept(l);
            flood.recv();
            let line = vec![b'x'; MAX_LINE + 10];
            // The client hangs up part way; what it did not read is no matter.
            let _ = flood.writer.write_all(&line);
            // Keeps the connection open until the client gives up.
            let _ = flood.reader.read_line(&mut String::new());
        });
        let ClientError::GaveUp { attempts, last, .. } = result.unwrap_err() else {
            panic!("gave up")
        };
        assert_eq!(attempts, 2);
        assert_eq!(last, "the pool sent a line longer than 64 KiB");
        assert!(events.contains(&Event::Failed {
            reason: "no answer to mining.subscribe within 0.2 s".into()
        }));
    }

    #[test]
    fn pool_urls() {
        assert_eq!(
            parse_url("stratum+tcp://pool.example:3333"),
            Ok(("pool.example".into(), 3333))
        );
        assert_eq!(
            parse_url("stratum+tcp://[::1]:3333/"),
            Ok(("::1".into(), 3333))
        );
        for bad in [
            "http://pool:3333",
            "stratum+tcp://pool",
            "stratum+tcp://:3333",
            "stratum+tcp://pool:0",
            "stratum+tcp://pool:99999",
            "stratum+tcp://u@pool:1",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        let o = ClientOptions::new("::1", 1, "u");
        assert_eq!(o.url(), "stratum+tcp://[::1]:1");
    }
}
