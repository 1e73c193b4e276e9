//! `chainsmith mine pow --pool stratum+tcp://HOST:PORT --user NAME[.WORKER]`: mine for a
//! Stratum V1 pool, with cpuminer's log lines on stderr.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chainsmith::pool::client::{self, ClientControl, ClientOptions, Event, parse_url};
use clap::CommandFactory;
use clap::parser::ValueSource;

use crate::cli::args::{Cli, MineArgs};
use crate::cli::format::{difficulty, si, utc};
use crate::cli::{EXIT_INTERRUPTED, choose_backend, thread_pool, unix_now};

/// Whether `mine` was given any pool option: then this module runs it.
pub(crate) const fn wanted(args: &MineArgs) -> bool {
    args.pool.is_some()
        || args.user.is_some()
        || args.password.is_some()
        || args.time_limit.is_some()
        || args.retries.is_some()
        || args.retry_pause.is_some()
}

/// `mine pow --pool … --json`: the run's totals.
#[derive(serde::Serialize)]
struct PoolMiningReport<'a> {
    pool: &'a str,
    user: &'a str,
    accepted: u64,
    rejected: u64,
    hashes: u64,
    elapsed_s: f64,
    hash_rate: f64,
    threads: usize,
    backend: &'static str,
    interrupted: bool,
}

/// Whether `--tx-per-block` was typed (its default cannot tell).
fn tx_per_block_given() -> bool {
    Cli::command()
        .try_get_matches_from(std::env::args_os())
        .ok()
        .and_then(|m| {
            m.subcommand_matches("mine")
                .map(|m| m.value_source("tx_per_block") == Some(ValueSource::CommandLine))
        })
        .unwrap_or(false)
}

/// Checks the pool options and refuses the chain-file options.
fn options(args: &MineArgs, tx_per_block_given: bool) -> Result<ClientOptions> {
    let Some(url) = &args.pool else {
        let flag = [
            (args.user.is_some(), "--user"),
            (args.password.is_some(), "--password"),
            (args.time_limit.is_some(), "--time-limit"),
            (args.retries.is_some(), "--retries"),
        ]
        .into_iter()
        .find_map(|(given, flag)| given.then_some(flag))
        .unwrap_or("--retry-pause");
        bail!("{flag} needs --pool stratum+tcp://HOST:PORT");
    };
    let rule = args.consensus.0.name();
    if rule != "pow" {
        bail!("--pool mines proof of work: use `chainsmith mine pow --pool …`, not {rule}");
    }
    for (given, flag) in [
        (args.spec.is_some(), "--spec"),
        (args.chain.is_some(), "--chain"),
        (args.blocks.is_some(), "--blocks"),
        (args.deterministic, "--deterministic"),
        (tx_per_block_given, "--tx-per-block"),
        (!args.offline.is_empty(), "--offline"),
        (args.vote.is_some(), "--vote"),
        (args.votes_per_block.is_some(), "--votes-per-block"),
        (args.double_sign.is_some(), "--double-sign"),
        (args.json_log, "--json-log"),
    ] {
        if given {
            bail!("{flag} has no meaning with --pool: the pool decides what is mined");
        }
    }
    let (host, port) = parse_url(url).map_err(|e| anyhow::anyhow!("--pool {e}"))?;
    let user = args
        .user
        .clone()
        .filter(|u| !u.trim().is_empty())
        .context("--pool needs --user NAME[.WORKER]")?;
    let mut opts = ClientOptions::new(host, port, user);
    if let Some(p) = &args.password {
        opts.password.clone_from(p);
    }
    opts.retries = match args.retries {
        None | Some(-1) => None,
        Some(n) => Some(
            u32::try_from(n)
                .map_err(|_| anyhow::anyhow!("--retries {n}: expected -1 (forever) or 0 and up"))?,
        ),
    };
    if let Some(s) = args.retry_pause {
        opts.retry_pause = Duration::from_secs(s);
    }
    opts.time_limit = match args.time_limit {
        Some(0) => bail!("--time-limit 0: expected a number of seconds from 1 up"),
        t => t.map(Duration::from_secs),
    };
    Ok(opts)
}

/// A log line on stderr, cpuminer's way: the time, then the message. Lines carry the pool's
/// strings (job ids, error messages): control characters are shown as `?` so that a pool
/// cannot drive the terminal, and a line stops at 300 characters.
fn log(msg: &str) {
    let shown: String = msg
        .chars()
        .take(300)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    eprintln!("[{}] {shown}", utc(unix_now()));
}

fn mhs(rate: f64) -> String {
    format!("{:.2} MH/s", rate / 1e6)
}

/// The log line of an event (`None`: silenced by --quiet).
fn line(event: Event, quiet: bool) -> Option<String> {
    let loud = match event {
        Event::Connected { extranonce1 } => {
            return Some(format!(
                "connected: subscribed with extranonce1 {extranonce1}, authorized"
            ));
        }
        Event::Lost { reason } => return Some(format!("connection lost: {reason}")),
        Event::Failed { reason } => return Some(format!("connection failed: {reason}")),
        Event::Retrying { pause } => {
            return Some(format!("reconnecting in {} s", pause.as_secs_f64()));
        }
        Event::Difficulty(d) => format!("stratum difficulty set to {}", difficulty(d)),
        Event::Job {
            job_id,
            clean,
            difficulty,
        } => format!(
            "new job {job_id}{}, difficulty {}",
            if clean { " (clean)" } else { "" },
            self::difficulty(difficulty)
        ),
        Event::Answer {
            result,
            accepted,
            rejected,
            hash_rate,
            ..
        } => {
            let total = accepted + rejected;
            let head = format!(
                "{accepted}/{total} ({:.2}%), {}",
                100.0 * accepted as f64 / total.max(1) as f64,
                mhs(hash_rate)
            );
            match result {
                Ok(()) => format!("accepted: {head} yes!"),
                Err(e) => format!("rejected: {head} ({} {})", e.code, e.message),
            }
        }
        Event::Stale { job_id } => {
            format!("share of job {job_id} dropped: a clean job replaced it")
        }
        Event::HashRate { hash_rate, hashes } => {
            format!(
                "hash rate {} ({}hashes in all)",
                mhs(hash_rate),
                si(hashes as f64)
            )
        }
    };
    (!quiet).then_some(loud)
}

pub(crate) fn run(args: &MineArgs) -> Result<ExitCode> {
    let mut opts = options(args, tx_per_block_given())?;
    let pool = thread_pool(args.run.threads)?;
    let threads = pool.current_num_threads();
    opts.backend = choose_backend(args.backend)?;
    let control = Arc::new(ClientControl::default());
    let interrupted = Arc::new(AtomicBool::new(false));
    let (c, i) = (Arc::clone(&control), Arc::clone(&interrupted));
    ctrlc::set_handler(move || {
        i.store(true, Ordering::SeqCst);
        c.stop();
    })
    .context("installing the Ctrl-C handler")?;

    let url = opts.url();
    log(&format!(
        "chainsmith {} mining for {url} as {}: {threads} thread{}, backend {}",
        env!("CARGO_PKG_VERSION"),
        opts.user,
        if threads == 1 { "" } else { "s" },
        opts.backend
    ));
    let started = Instant::now();
    let totals = client::run(&opts, &pool, &control, &|e| {
        if let Some(l) = line(e, args.run.quiet) {
            log(&l);
        }
    })?;
    let elapsed = started.elapsed().as_secs_f64();
    let hashes = control.hashes();
    let rate = if elapsed > 0.0 {
        hashes as f64 / elapsed
    } else {
        0.0
    };
    let interrupted = interrupted.load(Ordering::SeqCst);
    log(&format!(
        "done{} after {elapsed:.1} s: {} accepted, {} rejected, {}hashes, {} on {threads} thread{} ({})",
        if interrupted { " (interrupted)" } else { "" },
        totals.accepted,
        totals.rejected,
        si(hashes as f64),
        mhs(rate),
        if threads == 1 { "" } else { "s" },
        opts.backend
    ));
    if args.run.json {
        let report = PoolMiningReport {
            pool: &url,
            user: &opts.user,
            accepted: totals.accepted,
            rejected: totals.rejected,
            hashes,
            elapsed_s: elapsed,
            hash_rate: rate,
            threads,
            backend: opts.backend.name(),
            interrupted,
        };
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}
