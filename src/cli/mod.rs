//! The command-line interface: argument parsing, commands, progress bars and reports.
//! Only this module touches the terminal, the clock and the process environment.

pub(crate) mod args;
mod commands;
mod format;
mod miner;
mod phase;
mod plot;
mod progress;

use std::io;
use std::path::Path;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use chainsmith::ChainSpec;
use chainsmith::hash::Backend;

use args::{Cli, Command};

/// Exit status for an invalid chain (or another negative domain result).
pub(crate) const EXIT_INVALID: u8 = 1;
/// Exit status for usage and I/O errors (clap uses it too).
pub(crate) const EXIT_USAGE: u8 = 2;
/// Exit status after Ctrl-C (128 + SIGINT, the shell convention).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Runs one command.
pub(crate) fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Mine(a) => commands::mine::run(&a),
        Command::Verify(a) => commands::verify::run(&a),
        Command::Info(a) => commands::info::run(&a),
        Command::Header(a) => commands::header::run(&a),
        Command::Show(a) => commands::show::run(&a),
        Command::Bench(a) => commands::bench::run(&a),
        Command::Compare(a) => commands::compare::run(&a),
        Command::Sim(a) => commands::sim::run(&a),
        Command::Check(a) => commands::check::run(&a),
        Command::Elections(a) => commands::elections::run(&a),
        Command::Node(a) => commands::node::run(&a),
        Command::Client(a) => commands::client::run(&a),
        Command::Cluster(a) => commands::cluster::run(&a),
        Command::Pool(a) => commands::pool::run(&a),
    }
}

/// True if the error is a closed stdout (e.g. piped into `head`), which is not a failure.
pub(crate) fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Seconds since the Unix epoch, saturated to `u32` (block times are `u32`).
pub(crate) fn unix_now() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Resolves `--spec`: a built-in name, else a JSON file.
pub(crate) fn resolve_spec(arg: &str) -> Result<ChainSpec> {
    if let Ok(spec) = ChainSpec::builtin(arg) {
        return Ok(spec);
    }
    let path = Path::new(arg);
    if !path.exists() {
        anyhow::bail!("--spec {arg:?}: no built-in spec (pow-demo, regtest) or file of that name");
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading spec {}", path.display()))?;
    ChainSpec::from_json(&text).with_context(|| format!("spec {}", path.display()))
}

/// Checks that this CPU runs `backend` (the fastest supported when `None`).
pub(crate) fn choose_backend(backend: Option<Backend>) -> Result<Backend> {
    let backend = backend.unwrap_or_else(Backend::detect);
    if !backend.is_supported() {
        anyhow::bail!(
            "--backend {backend}: not supported by this CPU (supported: {})",
            Backend::supported()
                .iter()
                .map(|b| b.name())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(backend)
}

/// Builds the rayon pool for `--threads` (all cores when `None`).
pub(crate) fn thread_pool(threads: Option<u16>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        builder = builder.num_threads(usize::from(n));
    }
    builder.build().context("starting worker threads")
}
