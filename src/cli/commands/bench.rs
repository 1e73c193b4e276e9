//! `chainsmith bench`: hash rate of each backend at 1 thread and at all threads, with the
//! portable reference measured in the same run, under a banner naming the CPU and the features
//! the backends need.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Result;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::hash::{Backend, PowJob};
use chainsmith::pow::miner::{SearchOutcome, search};
use chainsmith::{Header, Target};
use comfy_table::CellAlignment;
use serde::Serialize;

use crate::cli::args::BenchArgs;
use crate::cli::format::{duration, sig3};
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

/// The `--json` report.
#[derive(Serialize)]
struct Report {
    cpu: Cpu,
    results: Vec<Row>,
    skipped: Vec<&'static str>,
    best: Best,
}

/// The CPU the run measured.
#[derive(Serialize)]
pub(crate) struct Cpu {
    /// The model name (`/proc/cpuinfo`), or `unknown`.
    pub(crate) model: String,
    /// Physical cores (`/proc/cpuinfo`; the threads when it does not say).
    cores: usize,
    /// Hardware threads this process may run on.
    threads: usize,
    /// The features a vector backend needs that this CPU has, named as the backends are:
    /// `avx512` (AVX-512 F and BW), `sha-ni`, `avx2`.
    pub(crate) features: Vec<&'static str>,
    /// The backend `mine` uses without `--backend`: the fastest the CPU supports.
    backend: &'static str,
}

/// One measurement, as reported.
#[derive(Serialize)]
struct Row {
    backend: &'static str,
    threads: usize,
    hashes: u64,
    seconds: f64,
    hash_rate: f64,
    ratio_vs_soft: f64,
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

impl Cpu {
    pub(crate) fn detect() -> Self {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let field = |line: &str, key: &str| {
            line.split_once(':')
                .filter(|(k, _)| k.trim() == key)
                .map(|(_, v)| v.trim().to_owned())
        };
        let model = info
            .lines()
            .find_map(|l| field(l, "model name").or_else(|| field(l, "Model")))
            .unwrap_or_else(|| "unknown".to_owned());
        // A physical core is a (physical id, core id) pair.
        let mut cores = std::collections::BTreeSet::new();
        for block in info.split("\n\n") {
            let id = |key| block.lines().find_map(|l| field(l, key));
            if let (Some(package), Some(core)) = (id("physical id"), id("core id")) {
                cores.insert((package, core));
            }
        }
        Self {
            model,
            cores: if cores.is_empty() {
                threads
            } else {
                cores.len()
            },
            threads,
            features: Backend::ALL
                .into_iter()
                .filter(|b| *b != Backend::Soft && b.is_supported())
                .map(Backend::name)
                .collect(),
            backend: Backend::detect().name(),
        }
    }

    /// The banner's lines: the model and cores, each feature yes or no, the backend chosen.
    fn banner(&self) -> String {
        let features = [
            (Backend::ShaNi, "SHA-NI"),
            (Backend::Avx2, "AVX2"),
            (Backend::Avx512, "AVX-512"),
        ]
        .map(|(b, label)| {
            let has = if self.features.contains(&b.name()) {
                "yes"
            } else {
                "no"
            };
            format!("{label} {has}")
        })
        .join(", ");
        format!(
            "CPU       {}, {} cores, {} threads\n\
             features  {features}\n\
             backend   {} (the fastest this CPU runs; mine uses it)\n",
            self.model, self.cores, self.threads, self.backend
        )
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
    let skipped: Vec<&'static str> = match args.backend {
        Some(_) => Vec::new(),
        None => Backend::ALL
            .into_iter()
            .filter(|b| !b.is_supported())
            .map(Backend::name)
            .collect(),
    };
    let cpu = Cpu::detect();

    let runs = (backends.len() * thread_counts.len()) as u64;
    let progress = Progress::new(Some(runs), "runs", args.run.quiet);
    let mut samples = Vec::new();
    // Thread count outermost, so each backend and its reference run close together in time
    // on a machine whose speed drifts.
    for &threads in &thread_counts {
        for backend in &backends {
            let what = format!(
                "{backend} on {threads} thread{}",
                if threads == 1 { "" } else { "s" }
            );
            progress.set_message(what.clone());
            let sample = measure(*backend, threads, args.seconds)?;
            progress.log(&format!("{what}: {}H/s", sig3(sample.rate())));
            samples.push(sample);
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
    let report = Report {
        results: samples
            .iter()
            .map(|s| Row {
                backend: s.backend.name(),
                threads: s.threads,
                hashes: s.hashes,
                seconds: s.seconds,
                hash_rate: s.rate(),
                ratio_vs_soft: s.rate() / reference(s.threads),
            })
            .collect(),
        best: Best {
            backend: best.backend.name(),
            threads: best.threads,
            hash_rate: best.rate(),
            ratio_vs_soft: best.rate() / reference(best.threads),
            thread_scaling: best.rate() / single,
        },
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
        "backend",
        "threads",
        "hashes",
        "time",
        "hash rate",
        "× soft",
    ]);
    for r in &report.results {
        table.add_row([
            r.backend.to_owned(),
            r.threads.to_string(),
            sig3(r.hashes as f64).trim_end().to_owned(),
            duration(r.seconds),
            format!("{}H/s", sig3(r.hash_rate)),
            format!("{:.2}×", r.ratio_vs_soft),
        ]);
    }
    for column in table.column_iter_mut().skip(1) {
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
    let best = &report.best;
    text += &format!(
        "best: {} on {} thread{}, {}H/s, {:.2}× soft, thread scaling {:.2}×\n",
        best.backend,
        best.threads,
        if best.threads == 1 { "" } else { "s" },
        sig3(best.hash_rate),
        best.ratio_vs_soft,
        best.thread_scaling
    );
    text
}
