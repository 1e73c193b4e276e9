//! `chainsmith bench`: hash rate of each backend at 1 thread and at all threads, for the nonce
//! search (proof of work) and the stake kernel search (proof of stake), with the portable
//! reference measured in the same run, under a banner naming the CPU and the features the
//! backends need.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::hash::{Backend, PowJob};
use chainsmith::pos::stake::{StakeOutcome, earliest_stake_time, find_stake};
use chainsmith::pow::miner::{SearchOutcome, search};
use chainsmith::primitives::tx::KeyPair;
use chainsmith::sim::cluster::genesis_state;
use chainsmith::{ChainSpec, ChainState, Header, Target};
use comfy_table::CellAlignment;
use serde::Serialize;

use crate::cli::args::BenchArgs;
use crate::cli::cpu::Cpu;
use crate::cli::format::{duration, sig3};
use crate::cli::progress::Progress;
use crate::cli::{choose_backend, thread_pool};

/// Bitcoin block 125552, the Bitcoin wiki's hashing example: a real header to hash.
const HEADER_HEX: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

/// The two hash searches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Search {
    /// Proof of work: nonces of a header.
    Nonce,
    /// Proof of stake: timestamps of stake kernels.
    Kernel,
}

/// One measurement.
struct Sample {
    search: Search,
    backend: Backend,
    threads: usize,
    hashes: u64,
    seconds: f64,
}

impl Sample {
    fn rate(&self) -> f64 {
        self.hashes as f64 / self.seconds
    }
}

/// The `--json` report.
#[derive(Serialize)]
struct Report {
    cpu: Cpu,
    results: Vec<Row>,
    skipped: Vec<&'static str>,
    /// The fastest nonce search (what `mine pow` runs).
    best: Best,
    /// The fastest stake kernel search (what `mine pos` runs).
    best_kernel: Best,
}

/// One measurement, as reported.
#[derive(Serialize)]
struct Row {
    search: Search,
    backend: &'static str,
    threads: usize,
    hashes: u64,
    seconds: f64,
    hash_rate: f64,
    ratio_vs_soft: f64,
    /// Kernel rows: the rate over the nonce search's with the same backend and threads.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_vs_nonce: Option<f64>,
}

/// The fastest measurement.
#[derive(Serialize)]
struct Best {
    backend: &'static str,
    threads: usize,
    hash_rate: f64,
    ratio_vs_soft: f64,
    /// Its rate over the same backend's on one thread.
    thread_scaling: f64,
}

/// Hashes with `backend` on `threads` threads for `seconds`: nonces of a real header against
/// a target no hash meets, or the stake kernels of `pos-demo`'s genesis outputs with the real
/// staking search (each block it finds, it searches on from the next second).
fn measure(search_kind: Search, backend: Backend, threads: usize, seconds: f64) -> Result<Sample> {
    let pool = thread_pool(Some(u16::try_from(threads)?))?;
    let control = SearchControl::default();
    let run_nonces = |job: &PowJob| {
        let opts = SearchOptions::default();
        // Start over whenever all 2^32 nonces are done (a slow run never gets there).
        while search(job, &opts, &control) != SearchOutcome::Stopped {}
    };
    let run_kernels = |state: &ChainState, keys: &[KeyPair]| {
        let mut from = earliest_stake_time(state);
        loop {
            match find_stake(state, keys, (from, u32::MAX), backend, &control) {
                StakeOutcome::Found(stake) => from = stake.time.saturating_add(1),
                StakeOutcome::Exhausted { .. } => from = earliest_stake_time(state),
                StakeOutcome::Stopped => break,
            }
        }
    };
    let work: Box<dyn Fn() + Sync + '_> = match search_kind {
        Search::Nonce => {
            let job =
                PowJob::new(&Header::from_hex(HEADER_HEX)?, Target::ZERO).with_backend(backend)?;
            Box::new(move || run_nonces(&job))
        }
        Search::Kernel => {
            choose_backend(Some(backend))?;
            let spec = ChainSpec::builtin("pos-demo")?;
            let state = genesis_state(&spec)?;
            let keys = spec.wallet_keys();
            Box::new(move || run_kernels(&state, &keys))
        }
    };
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            control.stop.store(true, Ordering::Relaxed);
        });
        pool.install(&work);
    });
    Ok(Sample {
        search: search_kind,
        backend,
        threads,
        hashes: control.hashes.load(Ordering::Relaxed),
        seconds: started.elapsed().as_secs_f64(),
    })
}

pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode> {
    let all_threads =
        usize::from(args.run.threads.unwrap_or(0)).max(if args.run.threads.is_some() {
            1
        } else {
            std::thread::available_parallelism().map_or(1, usize::from)
        });
    let mut thread_counts = vec![1];
    if all_threads > 1 {
        thread_counts.push(all_threads);
    }
    let backends: Vec<Backend> = match args.backend {
        Some(b) => {
            choose_backend(Some(b))?;
            if b == Backend::Soft {
                vec![b]
            } else {
                vec![b, Backend::Soft]
            }
        }
        None => Backend::supported(),
    };
    let skipped: Vec<&'static str> = match args.backend {
        Some(_) => Vec::new(),
        None => Backend::ALL
            .into_iter()
            .filter(|b| !b.is_supported())
            .map(Backend::name)
            .collect(),
    };
    let cpu = Cpu::detect();

    let searches = [Search::Nonce, Search::Kernel];
    let runs = (searches.len() * backends.len() * thread_counts.len()) as u64;
    let progress = Progress::new(Some(runs), "runs", args.run.quiet);
    let mut samples = Vec::new();
    // Thread count outermost, then each backend's two searches, so that the runs compared
    // (a backend and its reference; a kernel search and the nonce search) run close together
    // in time on a machine whose speed drifts.
    for &threads in &thread_counts {
        for backend in &backends {
            for search_kind in searches {
                let what = format!(
                    "{} search, {backend} on {threads} thread{}",
                    search_name(search_kind),
                    if threads == 1 { "" } else { "s" }
                );
                progress.set_message(what.clone());
                let sample = measure(search_kind, *backend, threads, args.seconds)?;
                progress.log(&format!("{what}: {}H/s", sig3(sample.rate())));
                samples.push(sample);
                progress.set_position(samples.len() as u64);
            }
        }
    }
    progress.finish();

    let rate_of = |search_kind: Search, backend: Backend, threads: usize| {
        samples
            .iter()
            .find(|s| s.search == search_kind && s.backend == backend && s.threads == threads)
            .map_or(f64::NAN, Sample::rate)
    };
    let best_of = |search_kind: Search| {
        let best = samples
            .iter()
            .filter(|s| s.search == search_kind)
            .max_by(|a, b| a.rate().total_cmp(&b.rate()))
            .expect("at least one run of each search");
        Best {
            backend: best.backend.name(),
            threads: best.threads,
            hash_rate: best.rate(),
            ratio_vs_soft: best.rate() / rate_of(search_kind, Backend::Soft, best.threads),
            thread_scaling: best.rate() / rate_of(search_kind, best.backend, 1),
        }
    };
    let report = Report {
        results: samples
            .iter()
            .map(|s| Row {
                search: s.search,
                backend: s.backend.name(),
                threads: s.threads,
                hashes: s.hashes,
                seconds: s.seconds,
                hash_rate: s.rate(),
                ratio_vs_soft: s.rate() / rate_of(s.search, Backend::Soft, s.threads),
                ratio_vs_nonce: (s.search == Search::Kernel)
                    .then(|| s.rate() / rate_of(Search::Nonce, s.backend, s.threads)),
            })
            .collect(),
        best: best_of(Search::Nonce),
        best_kernel: best_of(Search::Kernel),
        cpu,
        skipped,
    };

    let mut out = std::io::stdout().lock();
    if args.run.json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
    } else {
        write!(out, "{}", text(&report))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The text report: the banner, a table of the measurements (80 columns wide at most off a
/// terminal), the skipped backends and the best run (`--json` is for scripts).
fn text(report: &Report) -> String {
    let mut table = crate::cli::format::table();
    table.set_header([
        "search",
        "backend",
        "threads",
        "hashes",
        "time",
        "hash rate",
        "× soft",
        "× nonce",
    ]);
    for r in &report.results {
        table.add_row([
            search_name(r.search).to_owned(),
            r.backend.to_owned(),
            r.threads.to_string(),
            sig3(r.hashes as f64).trim_end().to_owned(),
            duration(r.seconds),
            format!("{}H/s", sig3(r.hash_rate)),
            format!("{:.2}×", r.ratio_vs_soft),
            r.ratio_vs_nonce
                .map_or_else(String::new, |x| format!("{x:.2}×")),
        ]);
    }
    for column in table.column_iter_mut().skip(2) {
        column.set_cell_alignment(CellAlignment::Right);
    }
    let mut text = format!(
        "{}\n{}\n",
        report.cpu.banner(),
        crate::cli::format::render(&mut table)
    );
    for b in &report.skipped {
        text += &format!("{b:<8} skipped: not supported by this CPU\n");
    }
    for (label, best) in [("nonce", &report.best), ("kernel", &report.best_kernel)] {
        text += &format!(
            "best {label}: {} on {} thread{}, {}H/s, {:.2}× soft, thread scaling {:.2}×\n",
            best.backend,
            best.threads,
            if best.threads == 1 { "" } else { "s" },
            sig3(best.hash_rate),
            best.ratio_vs_soft,
            best.thread_scaling
        );
    }
    text
}

/// The name a search has in the table and the progress lines.
const fn search_name(search_kind: Search) -> &'static str {
    match search_kind {
        Search::Nonce => "nonce",
        Search::Kernel => "kernel",
    }
}
