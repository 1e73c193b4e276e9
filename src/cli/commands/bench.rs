//! `chainsmith bench`: hash rate of each backend at 1 thread and at all threads, with the
//! portable reference measured in the same run.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::hash::{Backend, PowJob};
use chainsmith::pow::miner::{SearchOutcome, search};
use chainsmith::{Header, Target};
use serde_json::json;

use crate::cli::args::BenchArgs;
use crate::cli::format::si;
use crate::cli::progress::Progress;
use crate::cli::{choose_backend, thread_pool};

/// Bitcoin block 125552, the Bitcoin wiki's hashing example: a real header to hash.
const HEADER_HEX: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

/// One measurement.
struct Sample {
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

/// Hashes with `backend` on `threads` threads for `seconds`, against a target no hash meets.
fn measure(backend: Backend, threads: usize, seconds: f64) -> Result<Sample> {
    let header = Header::from_hex(HEADER_HEX)?;
    let job = PowJob::new(&header, Target::ZERO).with_backend(backend)?;
    let pool = thread_pool(Some(u16::try_from(threads)?))?;
    let control = SearchControl::default();
    let opts = SearchOptions::default();
    let started = Instant::now();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs_f64(seconds));
            control.stop.store(true, Ordering::Relaxed);
        });
        // Start over whenever all 2^32 nonces are done (a slow run never gets there).
        pool.install(|| while search(&job, &opts, &control) != SearchOutcome::Stopped {});
    });
    Ok(Sample {
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
    let skipped: Vec<Backend> = match args.backend {
        Some(_) => Vec::new(),
        None => Backend::ALL
            .into_iter()
            .filter(|b| !b.is_supported())
            .collect(),
    };

    let runs = (backends.len() * thread_counts.len()) as u64;
    let progress = Progress::new(Some(runs), "runs", args.run.quiet);
    let mut samples = Vec::new();
    // Thread count outermost, so each backend and its reference run close together in time
    // on a machine whose speed drifts.
    for &threads in &thread_counts {
        for backend in &backends {
            progress.set_message(format!("{backend} on {threads} thread(s)"));
            samples.push(measure(*backend, threads, args.seconds)?);
            progress.set_position(samples.len() as u64);
        }
    }
    progress.finish();

    let reference = |threads: usize| {
        samples
            .iter()
            .find(|s| s.backend == Backend::Soft && s.threads == threads)
            .map_or(f64::NAN, Sample::rate)
    };
    let best = samples
        .iter()
        .max_by(|a, b| a.rate().total_cmp(&b.rate()))
        .expect("at least one run");
    let single = samples
        .iter()
        .find(|s| s.backend == best.backend && s.threads == 1)
        .map_or(f64::NAN, Sample::rate);
    let ratio = best.rate() / reference(best.threads);
    let scaling = best.rate() / single;

    let mut out = std::io::stdout().lock();
    if args.run.json {
        let results: Vec<_> = samples
            .iter()
            .map(|s| {
                json!({
                    "backend": s.backend.name(),
                    "threads": s.threads,
                    "hashes": s.hashes,
                    "seconds": s.seconds,
                    "hash_rate": s.rate(),
                    "ratio_vs_reference": s.rate() / reference(s.threads),
                })
            })
            .collect();
        let v = json!({
            "results": results,
            "reference": Backend::Soft.name(),
            "skipped": skipped.iter().map(|b| b.name()).collect::<Vec<_>>(),
            "best": {
                "backend": best.backend.name(),
                "threads": best.threads,
                "hash_rate": best.rate(),
                "ratio_vs_reference": ratio,
                "thread_scaling": scaling,
            },
        });
        writeln!(out, "{v}")?;
        return Ok(ExitCode::SUCCESS);
    }
    writeln!(
        out,
        "{:<8} {:>7} {:>10} {:>8} {:>9} {:>8}",
        "backend", "threads", "hashes", "seconds", "MH/s", "vs soft"
    )?;
    for s in &samples {
        writeln!(
            out,
            "{:<8} {:>7} {:>10} {:>8.2} {:>9.2} {:>7.2}×",
            s.backend.name(),
            s.threads,
            si(s.hashes as f64),
            s.seconds,
            s.rate() / 1e6,
            s.rate() / reference(s.threads)
        )?;
    }
    for b in &skipped {
        writeln!(out, "{:<8} skipped: not supported by this CPU", b.name())?;
    }
    writeln!(
        out,
        "bench: backend={} threads={} hash_rate={:.0} ratio_vs_soft={ratio:.3} thread_scaling={scaling:.3}",
        best.backend,
        best.threads,
        best.rate()
    )?;
    Ok(ExitCode::SUCCESS)
}
