//! `chainsmith info CHAIN`: what a chain file is, as `bitcoin-cli getblockchaininfo` answers
//! for a node — rule, spec, height, tip, difficulty, median time past, total work or the
//! irreversible height, size on disk — after verifying every block.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chainsmith::ChainState;
use chainsmith::chain::verify::ReplayObserver;
use chainsmith::consensus::{BlockWork, CheckedBlock};
use chainsmith::pool::stratum::difficulty_of;
use serde::Serialize;

use crate::cli::args::InfoArgs;
use crate::cli::commands::{ChainSummary, named, replay_file};
use crate::cli::format;
use crate::cli::{EXIT_INVALID, thread_pool, unix_now};

/// Counts what the replay passes: transactions, and block 1's time (genesis times are fixed
/// by specs, often years before the first block).
#[derive(Default)]
struct Tally {
    txs: u64,
    first_time: Option<u32>,
}

impl ReplayObserver for Tally {
    fn on_block(&mut self, _state: &ChainState, block: &CheckedBlock) {
        self.txs += block.block().txs.len() as u64;
        if block.record().height == 1 {
            self.first_time = Some(block.record().time);
        }
    }
}

/// `info --json`: one object, keys stable.
#[derive(Serialize)]
struct InfoReport {
    chain: String,
    size_bytes: u64,
    valid: bool,
    #[serde(flatten)]
    summary: ChainSummary,
    tip_time: Option<u32>,
    median_time_past: Option<u32>,
    /// Mean seconds between blocks from block 1 to the tip.
    mean_block_interval_s: Option<f64>,
    transactions: u64,
    /// Proof of work: the tip's difficulty and the next block's (difficulty 1 = bits
    /// `1d00ffff`).
    #[serde(skip_serializing_if = "Option::is_none")]
    difficulty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_difficulty: Option<f64>,
    /// Expected hashes to redo the chain, as hex (Bitcoin Core's `chainwork`).
    #[serde(skip_serializing_if = "Option::is_none")]
    total_work: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    irreversible_height: Option<u32>,
    /// How many stakeholders, producers or signers the rule reports.
    #[serde(skip_serializing_if = "Option::is_none")]
    producer_count: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub(crate) fn run(args: &InfoArgs) -> Result<ExitCode> {
    let InfoArgs { chain: path, run } = args;
    let pool = thread_pool(run.threads)?;
    let size_bytes = std::fs::metadata(path)
        .with_context(|| format!("reading chain {}", path.display()))?
        .len();
    let mut tally = Tally::default();
    let now = unix_now();
    let replay = replay_file(path, &pool, run.quiet, now, &mut tally)?;
    let state = replay.state.as_ref();
    let tip = state.and_then(ChainState::tip);
    let work = state.map(|s| s.consensus().rule().info().work);
    let hashing = work == Some(BlockWork::NonceSearch);
    let report = InfoReport {
        chain: path.display().to_string(),
        size_bytes,
        valid: replay.error.is_none(),
        summary: ChainSummary::of(&replay),
        tip_time: tip.map(|t| t.header.time),
        median_time_past: state.map(ChainState::median_time_past),
        mean_block_interval_s: tip.zip(tally.first_time).and_then(|(t, first)| {
            (t.height > 1)
                .then(|| f64::from(t.header.time.saturating_sub(first)) / f64::from(t.height - 1))
        }),
        transactions: tally.txs,
        difficulty: tip
            .filter(|_| hashing)
            .and_then(|t| t.header.bits.to_target().ok())
            .map(difficulty_of),
        next_difficulty: state
            .filter(|_| hashing)
            .and_then(|s| s.required_bits().to_target().ok())
            .map(difficulty_of),
        total_work: state
            .filter(|_| work != Some(BlockWork::Signatures))
            .map(|s| s.total_work().to_string()),
        irreversible_height: state.and_then(|s| s.rule_state().irreversible_height()),
        producer_count: state
            .and_then(|s| s.rule_state().report().producers)
            .map(|(_, rows)| rows.len()),
        error: replay.error.as_ref().map(|e| named(&replay, e)),
    };
    let mut out = std::io::stdout().lock();
    if run.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        print(&mut out, &report, state, now)?;
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// The report as a two-column table of short lines.
fn print(out: &mut impl Write, r: &InfoReport, state: Option<&ChainState>, now: u32) -> Result<()> {
    // Keys of at most 14 characters: a 64-digit hash still fits 80 columns.
    let mut lines = Vec::new();
    let mut row = |k: &str, v: String| lines.push(format!("{k:<15}{v}"));
    row(
        "chain",
        format!("{} ({})", r.chain, format::bytes(r.size_bytes)),
    );
    if let Some(state) = state {
        let rule = state.consensus().rule();
        let summary = rule.info().summary;
        let kind = summary.split_once(':').map_or(summary, |(kind, _)| kind);
        row("rule", format!("{} — {kind}", rule.name()));
        row(
            "spec",
            format!(
                "{} ({}…)",
                state.spec().name,
                &r.summary.spec_hash.as_deref().unwrap_or_default()[..16]
            ),
        );
    }
    row(
        "status",
        match &r.error {
            None => "valid".to_owned(),
            Some(e) => format!("invalid from {e}"),
        },
    );
    if let (Some(height), Some(tip), Some(time)) = (r.summary.height, &r.summary.tip, r.tip_time) {
        row(
            "blocks",
            format!(
                "{} (height {height}), {} transactions",
                r.summary.blocks, r.transactions
            ),
        );
        row("tip", tip.clone());
        let age = f64::from(now) - f64::from(time);
        let when = if age >= 0.0 {
            format!("{} ago", format::duration(age))
        } else {
            format!("{} ahead of this clock", format::duration(-age))
        };
        row("tip time", format!("{} ({when})", format::utc(time)));
    }
    if let Some(mtp) = r.median_time_past {
        row(
            "median time",
            format!("{} (median of the last 11)", format::utc(mtp)),
        );
    }
    if let Some(s) = r.mean_block_interval_s {
        row(
            "block interval",
            format!("{} (mean after block 1)", format::duration(s)),
        );
    }
    if let (Some(d), Some(next)) = (r.difficulty, r.next_difficulty) {
        row(
            "difficulty",
            format!(
                "{} (next block: {})",
                format::difficulty(d),
                format::difficulty(next)
            ),
        );
    }
    if let Some(state) = state.filter(|_| r.total_work.is_some()) {
        row(
            "total work",
            format!("{}hashes expected", format::si(state.total_work().to_f64())),
        );
    }
    if let (Some(lib), Some(h)) = (r.irreversible_height, r.summary.height) {
        row(
            "irreversible",
            format!(
                "height {lib} ({} behind the tip)",
                format::plural(u64::from(h - lib), "block")
            ),
        );
    }
    if let (Some(n), Some(state)) = (r.producer_count, state) {
        let what = state
            .rule_state()
            .report()
            .producers
            .map_or("producers", |(what, _)| what);
        row(what, n.to_string());
    }
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(())
}
