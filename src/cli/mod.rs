//! The command-line interface: argument parsing, commands, progress bars and reports.
//! Only this module touches the terminal, the clock and the process environment.

pub(crate) mod args;
mod commands;
mod cpu;
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
use chainsmith::chain::produce::RunError;
use chainsmith::chain::spec::builtin_names;
use chainsmith::dpos::state::NoProducer;
use chainsmith::hash::Backend;
use chainsmith::poa::state::Halted;

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

/// The exit status for an error that ends a command: [`EXIT_INVALID`] when the chain cannot
/// go on (a Clique chain with too few online signers halts, a DPoS schedule has no online
/// producer: domain results, reached after the blocks before them are written), else
/// [`EXIT_USAGE`].
pub(crate) fn exit_status(err: &anyhow::Error) -> u8 {
    let halted = err.chain().any(|e| {
        matches!(e.downcast_ref::<RunError>(), Some(RunError::Produce(p))
            if p.rule_error::<Halted>().is_some() || p.rule_error::<NoProducer>().is_some())
    });
    if halted { EXIT_INVALID } else { EXIT_USAGE }
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
        let names = builtin_names();
        let hint =
            nearest(arg, &names).map_or_else(String::new, |n| format!("; did you mean {n}?"));
        anyhow::bail!(
            "--spec {arg:?}: no built-in spec or file of that name{hint} (built-in: {})",
            names.join(", ")
        );
    }
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading spec {}", path.display()))?;
    ChainSpec::from_json(&text).with_context(|| format!("spec {}", path.display()))
}

/// The built-in name `arg` most likely misspells: the nearest by edit distance (at most a
/// third of the name's length, and at least 2), or the one it begins (`pos` for `pos-demo`).
/// `None` for a path.
fn nearest<'a>(arg: &str, names: &[&'a str]) -> Option<&'a str> {
    if arg.contains(['/', '.']) {
        return None;
    }
    let (distance, name) = names
        .iter()
        .map(|n| (edit_distance(arg, n), *n))
        .min_by_key(|(d, _)| *d)?;
    if distance <= (name.chars().count() / 3).max(2) {
        return Some(name);
    }
    names
        .iter()
        .copied()
        .find(|n| arg.chars().count() >= 3 && n.starts_with(arg))
}

/// Levenshtein distance: the fewest one-character insertions, deletions and substitutions
/// that turn `a` into `b`.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (diagonal + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("pos-dmeo", "pos-demo"), 2);
        assert_eq!(edit_distance("regtest", "regtest"), 0);
    }

    #[test]
    fn suggests_the_builtin_spec_a_typo_misspells() {
        let names = builtin_names();
        assert_eq!(nearest("pos-dmeo", &names), Some("pos-demo"));
        assert_eq!(nearest("regtst", &names), Some("regtest"));
        assert_eq!(nearest("kafka", &names), Some("kafka-demo"));
        assert_eq!(nearest("bitcoin-mainnet", &names), None);
        assert_eq!(nearest("chains/pos-dmeo.json", &names), None);
    }
}
