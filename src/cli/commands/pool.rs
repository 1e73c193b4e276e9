//! `chainsmith pool`: a Stratum V1 pool over a proof-of-work chain file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chainsmith::consensus::BlockWork;
use chainsmith::pool::server::{Event, EventSink, PoolConfig, StopReason, payee_of, serve};
use chainsmith::pool::stratum::difficulty_of;
use chainsmith::pool::vardiff::VardiffConfig;
use chainsmith::primitives::tx::PubKey;

use crate::cli::args::PoolArgs;
use crate::cli::format::{difficulty as fmt_difficulty, si, utc};
use crate::cli::miner::{OpenChain, open_chain};
use crate::cli::{EXIT_INTERRUPTED, EXIT_INVALID, resolve_spec, thread_pool, unix_now};

pub(crate) fn run(a: &PoolArgs) -> Result<ExitCode> {
    let spec = resolve_spec(a.spec.as_deref().unwrap_or("pow-demo"))?;
    if spec.consensus.info().work != BlockWork::NonceSearch {
        bail!(
            "--spec {:?}: a {} chain; the pool serves proof-of-work chains",
            spec.name,
            spec.consensus
        );
    }
    let path = a
        .chain
        .clone()
        .unwrap_or_else(|| PathBuf::from("chains").join(format!("{}.jsonl", spec.name)));
    if let Some(name) = &a.operator {
        // Checked before a chain file is created; the chain's own seed derives the key below.
        payee_of(name, &spec.wallet_seed).map_err(|e| anyhow::anyhow!("--operator: {e}"))?;
    }
    let listener = std::net::TcpListener::bind(a.listen)
        .with_context(|| format!("--listen {}: cannot listen there", a.listen))?;
    let workers = thread_pool(None)?;
    let Some(OpenChain {
        state,
        writer,
        lock: _lock,
    }) = open_chain(&path, spec, a.spec.is_some(), &workers, a.quiet)?
    else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    if state.consensus().info().work != BlockWork::NonceSearch {
        bail!(
            "{} is a {} chain; the pool serves proof-of-work chains",
            path.display(),
            state.consensus()
        );
    }
    let seed = state.spec().wallet_seed.clone();
    let operator: PubKey = match &a.operator {
        Some(name) => payee_of(name, &seed).map_err(|e| anyhow::anyhow!("--operator: {e}"))?,
        None => state.spec().miner_key().pubkey(),
    };
    let chain_difficulty = state
        .required_bits()
        .to_target()
        .map(difficulty_of)
        .unwrap_or(1.0);
    let share_difficulty = a
        .share_difficulty
        .unwrap_or_else(|| (chain_difficulty / 4.0).min(1.0));
    let config = PoolConfig {
        share_difficulty,
        vardiff: a.vardiff.then_some(VardiffConfig {
            shares_per_minute: a.shares_per_minute,
            retarget_s: 30.0,
            min: chainsmith::pool::stratum::MIN_DIFFICULTY,
            max: chainsmith::pool::stratum::MAX_DIFFICULTY,
        }),
        pplns_window: a.pplns_window as usize,
        operator,
        tx_per_block: a.tx_per_block,
        job_interval: Duration::from_secs_f64(a.job_interval.max(0.1)),
        stats_interval: Duration::from_secs_f64(a.stats_interval.max(0.1)),
        max_connections: a.max_connections as usize,
        max_connections_per_ip: a.max_connections_per_ip as usize,
        handshake_timeout: Duration::from_secs_f64(a.handshake_timeout),
        idle_timeout: Duration::from_secs_f64(a.idle_timeout),
        max_submit_rate: a.max_submit_rate,
        blocks: a.blocks,
        lifetime: a.lifetime.map(Duration::from_secs_f64),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    ctrlc::set_handler(move || flag.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let json = a.json_log.then(|| Arc::new(JsonLog::start()));
    let sink: Arc<dyn EventSink> = match &json {
        Some(j) => Arc::clone(j) as Arc<dyn EventSink>,
        None => Arc::new(TextLog {
            quiet: a.quiet,
            chain: path.display().to_string(),
        }),
    };
    let served = serve(
        state,
        writer,
        listener,
        config,
        Arc::new(unix_now),
        sink,
        &stop,
    );
    if let Some(j) = &json {
        j.finish();
    }
    let reason = served?;
    Ok(match reason {
        StopReason::Interrupted => ExitCode::from(EXIT_INTERRUPTED),
        StopReason::BlocksFound | StopReason::Lifetime => ExitCode::SUCCESS,
    })
}

/// Events as JSON lines on stdout, each with its Unix time. A writer thread batches them:
/// under load many lines go out in one write, and whenever it catches up it flushes, so an
/// idle pool's log is never behind. The queue holds [`JSON_LOG_QUEUE`] lines: if stdout
/// stalls, later lines are dropped (never the pool) and a `log_overflow` line counts them.
struct JsonLog {
    lines: Mutex<Option<mpsc::SyncSender<String>>>,
    dropped: Arc<AtomicU64>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Lines the JSON log holds while stdout is slow.
const JSON_LOG_QUEUE: usize = 65_536;

/// The event that says the JSON log's queue was full and lines were dropped.
#[derive(serde::Serialize)]
struct Overflow {
    time: u32,
    event: &'static str,
    dropped: u64,
}

impl JsonLog {
    fn start() -> Self {
        let (tx, rx) = mpsc::sync_channel::<String>(JSON_LOG_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::clone(&dropped);
        let writer = std::thread::spawn(move || {
            let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout());
            // A closed stdout (the reader went away) must not stop the pool.
            while let Ok(line) = rx.recv() {
                let _ = out.write_all(line.as_bytes());
                while let Ok(more) = rx.try_recv() {
                    let _ = out.write_all(more.as_bytes());
                }
                let n = lost.swap(0, Ordering::Relaxed);
                if n > 0 {
                    let note = Overflow {
                        time: unix_now(),
                        event: "log_overflow",
                        dropped: n,
                    };
                    if let Ok(line) = serde_json::to_string(&note) {
                        let _ = writeln!(out, "{line}");
                    }
                }
                let _ = out.flush();
            }
        });
        Self {
            lines: Mutex::new(Some(tx)),
            dropped,
            writer: Mutex::new(Some(writer)),
        }
    }

    /// Writes out every line logged so far.
    fn finish(&self) {
        drop(self.lines.lock().map(|mut l| l.take()));
        if let Some(w) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = w.join();
        }
    }
}

impl EventSink for JsonLog {
    fn event(&self, event: &Event) {
        let Ok(serde_json::Value::Object(fields)) = serde_json::to_value(event) else {
            return;
        };
        let mut line = serde_json::Map::new();
        line.insert("time".into(), unix_now().into());
        line.extend(fields);
        let text = format!("{}\n", serde_json::Value::Object(line));
        if let Ok(Some(tx)) = self.lines.lock().as_deref()
            && tx.try_send(text).is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Events as timestamped text lines on stderr.
struct TextLog {
    quiet: bool,
    chain: String,
}

impl EventSink for TextLog {
    fn event(&self, event: &Event) {
        let lines = self.lines(event);
        if lines.is_empty() {
            return;
        }
        let stamp = utc(unix_now());
        let mut err = std::io::stderr().lock();
        for l in lines {
            let _ = writeln!(err, "[{stamp}] {l}");
        }
    }
}

impl TextLog {
    fn lines(&self, event: &Event) -> Vec<String> {
        let verbose = !self.quiet;
        match event {
            Event::Listening {
                address,
                spec,
                height,
                share_difficulty,
                vardiff,
                pplns_window,
            } => vec![format!(
                "pool listening on stratum+tcp://{address}: {spec} at height {height} ({}), share difficulty {} ({}), PPLNS over the last {pplns_window} shares",
                self.chain,
                fmt_difficulty(*share_difficulty),
                if *vardiff { "vardiff" } else { "fixed" }
            )],
            Event::Connected { connection, peer } if verbose => {
                vec![format!("connection {connection} from {peer}")]
            }
            Event::Disconnected {
                connection,
                peer,
                reason,
            } if verbose => vec![format!("connection {connection} ({peer}) closed: {reason}")],
            Event::Authorized {
                connection,
                worker,
                payee,
            } if verbose => vec![format!(
                "worker {worker} authorized on connection {connection}, pays {}…",
                &payee.to_string()[..16]
            )],
            Event::Job {
                job,
                height,
                clean,
                block_difficulty,
                payouts,
                ..
            } if verbose => vec![format!(
                "job {job}: block {height}, difficulty {}, {} payee{}{}",
                fmt_difficulty(*block_difficulty),
                payouts.len(),
                if payouts.len() == 1 { "" } else { "s" },
                if *clean { ", clean" } else { "" }
            )],
            Event::Difficulty {
                connection,
                difficulty,
            } if verbose => vec![format!(
                "connection {connection}: share difficulty {}",
                fmt_difficulty(*difficulty)
            )],
            Event::Share {
                connection,
                worker,
                reason: Some(reason),
                ..
            } if verbose => vec![format!(
                "connection {connection} {worker}: share rejected: {reason}"
            )],
            Event::Block {
                height,
                hash,
                worker,
                accepted,
                reason,
                ..
            } => vec![if *accepted {
                format!("BLOCK {height} {hash} found by {worker}")
            } else {
                format!(
                    "block {height} {hash} by {worker} not taken: {}",
                    reason.as_deref().unwrap_or("?")
                )
            }],
            Event::Stats {
                connections,
                blocks,
                workers,
            } => std::iter::once(format!(
                "{connections} connections, {} workers, {blocks} blocks",
                workers.len()
            ))
            .chain(workers.iter().map(|w| {
                format!(
                    "  {}: accepted {}, rejected {} (stale {}), {}H/s, blocks {}",
                    w.worker,
                    w.accepted,
                    w.rejected,
                    w.stale,
                    si(w.hash_rate),
                    w.blocks
                )
            }))
            .collect(),
            Event::Stopped {
                blocks,
                shares,
                reason,
            } => vec![format!(
                "pool stopped ({reason}): {blocks} blocks, {shares} shares accepted"
            )],
            _ => Vec::new(),
        }
    }
}
