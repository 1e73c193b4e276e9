//! `chainsmith compare`: what proof of work costs next to proof of stake, DPoS, proof of
//! authority and the ordering rules, measured.
//!
//! Live mode mines a chain of each consensus in the list (`Consensus::all`) with the same
//! number of blocks (DPoS: a round's worth unless `--blocks` is given), the same demo traffic
//! as `mine` and, with `--spacing`, the same target spacing, measuring per rule the hashes,
//! signatures, wall time, process CPU seconds, energy (RAPL when readable, else CPU seconds ×
//! watts per core, labelled an estimate) and, for the rules with finality, how long a block
//! takes to become irreversible. File mode reads two or more existing chains: hashes per block
//! are the expected work of each PoW target and the kernel attempts each PoS staker recorded;
//! authority chains are replayed for their finality. Text and `--json` come from one
//! [`Report`].

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chainsmith::chain::produce::ProduceOptions;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::ChainSpec;
use chainsmith::chain::store::ChainLock;
use chainsmith::chain::verify::ReplayObserver;
use chainsmith::consensus::CheckedBlock;
use chainsmith::consensus::{BlockWork, Consensus};
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::metrics::energy::{
    ASIC_J_PER_TH, EnergyMethod, estimate_joules, hashes_per_mainnet_block,
};
use chainsmith::metrics::finality::FinalityTracker;
use chainsmith::metrics::rapl::{POWERCAP_ROOT, RaplReader};
use chainsmith::{ChainState, Target};
use comfy_table::{CellAlignment, Table};
use serde::Serialize;

use crate::cli::args::CompareArgs;
use crate::cli::commands::{named, replay_file};
use crate::cli::format::{duration, energy, sig3};
use crate::cli::miner::{MineJob, create_chain, mine_blocks};
use crate::cli::phase::{Phase, Point};
use crate::cli::plot;
use crate::cli::progress::Progress;
use crate::cli::{
    EXIT_INTERRUPTED, EXIT_INVALID, choose_backend, resolve_spec, thread_pool, unix_now,
};

/// Demo transfers per block, as `mine` makes by default (`--tx-per-block`).
const TX_PER_BLOCK: usize = 2;

/// The spec given for `rule` with `--spec RULE=…`, if any (the last one wins).
fn spec_flag(args: &CompareArgs, rule: Consensus) -> Option<&str> {
    args.specs
        .iter()
        .rev()
        .find(|(r, _)| r.0 == rule)
        .map(|(_, spec)| spec.as_str())
}

/// CPU seconds (user + system, all threads, exited ones included) of this process, from
/// `CLOCK_PROCESS_CPUTIME_ID`: nanosecond resolution, where `/proc/self/stat`'s 10 ms ticks
/// would round a DPoS or PoA run of a few milliseconds to zero or one tick.
fn process_cpu_seconds() -> Option<f64> {
    cpu_time::ProcessTime::try_now()
        .ok()
        .map(|t| t.as_duration().as_secs_f64())
}

/// For a stake lottery (a kernel search): each stakeholder's share of the genesis stake and
/// of the blocks staked.
fn stake_shares(state: &ChainState) -> Vec<(String, f64, f64)> {
    let spec = state.spec();
    let rule = spec.consensus.rule();
    if rule.info().work != BlockWork::KernelSearch {
        return Vec::new();
    }
    let genesis = rule.names(spec).genesis;
    let total_stake: f64 = genesis.iter().flat_map(|(_, coins)| *coins).sum();
    let rows = state
        .rule_state()
        .report()
        .producers
        .map(|(_, r)| r)
        .unwrap_or_default();
    let total_blocks: u64 = rows.iter().map(|r| r.blocks).sum();
    genesis
        .iter()
        .map(|(name, coins)| {
            let blocks = rows
                .iter()
                .find(|r| r.name == *name)
                .map_or(0, |r| r.blocks);
            (
                (*name).to_owned(),
                coins.iter().sum::<f64>() / total_stake,
                blocks as f64 / total_blocks.max(1) as f64,
            )
        })
        .collect()
}

pub(crate) fn run(args: &CompareArgs) -> Result<ExitCode> {
    let pool = thread_pool(args.run.threads)?;
    let (phases, run) = if args.chains.is_empty() {
        let scratch =
            std::env::temp_dir().join(format!("chainsmith-compare-{}", std::process::id()));
        let dir = args.keep.clone().unwrap_or_else(|| scratch.clone());
        let result = live(args, &pool, &dir);
        if args.keep.is_none() {
            // Best effort: the mined chains were only scratch space.
            let _ = std::fs::remove_dir_all(&scratch);
        }
        result?
    } else {
        if args.chains.len() < 2 {
            bail!("compare takes two or more chain files (or none, to mine one of each rule)");
        }
        let mut phases: Vec<Phase> = Vec::new();
        for path in &args.chains {
            let Some(p) = from_file(path, &pool, args.run.quiet)? else {
                return Ok(ExitCode::from(EXIT_INVALID));
            };
            if let Some(twin) = phases
                .iter()
                .find(|q| q.consensus == p.consensus && q.spec.name == p.spec.name)
            {
                bail!(
                    "{} and {} are both {} chains of spec {:?}: compare chains of different \
                     rules or specs",
                    twin.file.as_deref().unwrap_or(Path::new("?")).display(),
                    path.display(),
                    p.consensus.name(),
                    p.spec.name
                );
            }
            phases.push(p);
        }
        phases.sort_by_key(|p| Consensus::all().position(|c| c == p.consensus));
        (phases, Run::Files)
    };
    if let Some(dir) = &args.plot {
        plot::draw_all(dir, &phases)?;
    }
    let report = Report::new(args, &phases, &run);
    let mut out = std::io::stdout().lock();
    if args.run.json {
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else {
        write_text(&mut out, args, &report)?;
    }
    Ok(if report.interrupted.is_some() {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// How the phases were obtained.
enum Run {
    /// Mined now, the hash searches on `threads` threads with `backend`; `stopped`: the rule
    /// Ctrl-C stopped and the blocks it had mined.
    Mined {
        threads: usize,
        backend: &'static str,
        stopped: Option<(Consensus, u64)>,
    },
    /// Read from chain files.
    Files,
}

/// Mines each consensus in turn, until Ctrl-C stops it.
fn live(args: &CompareArgs, pool: &rayon::ThreadPool, dir: &Path) -> Result<(Vec<Phase>, Run)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let control = Arc::new(SearchControl::default());
    let handler = Arc::clone(&control);
    ctrlc::set_handler(move || handler.stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;
    let opts = SearchOptions {
        backend: choose_backend(None)?,
        ..SearchOptions::default()
    };
    let rapl = RaplReader::open(Path::new(POWERCAP_ROOT));
    // Every spec is resolved before anything is mined, so a bad one fails at once.
    let mut specs = Vec::new();
    for consensus in Consensus::all() {
        let default = format!("{consensus}-demo");
        let mut spec = resolve_spec(spec_flag(args, consensus).unwrap_or(&default))?;
        if spec.consensus != consensus {
            bail!("spec {:?} is not a {} spec", spec.name, consensus.name());
        }
        if let Some(s) = args.spacing {
            spec = consensus.rule().with_spacing(&spec, s);
        }
        specs.push(spec);
    }
    // The same demo traffic as `mine` by default (transfers, DPoS re-votes), so both reach
    // the same irreversible height on the same spec and blocks.
    let produce = ProduceOptions {
        tx_per_block: TX_PER_BLOCK,
        ..ProduceOptions::default()
    };
    let mut phases = Vec::new();
    let mut stopped = None;
    for spec in specs {
        let consensus = spec.consensus;
        let blocks = args
            .blocks
            .unwrap_or_else(|| consensus.rule().info().demo_blocks);
        let path = dir.join(format!("{}.jsonl", consensus.name()));
        let _lock = ChainLock::acquire(&path)?;
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", path.display())),
        }
        let (mut state, mut writer) = create_chain(&path, spec.clone())?;
        let progress = Progress::new(Some(blocks), consensus.name(), args.run.quiet);
        control.hashes.store(0, Ordering::Relaxed);
        let mut points = Vec::new();
        let cpu_before = process_cpu_seconds();
        let rapl_before = rapl.as_ref().and_then(|r| r.read().ok());
        let mut finality = FinalityTracker::default();
        // A line to start each rule, and one per block for the rules that hash (slow ones):
        // a run off a terminal shows where it is.
        progress.log(&format!(
            "{consensus}: mining {blocks} blocks of {}",
            spec.name
        ));
        let hashing = consensus.rule().info().work != BlockWork::Signatures;
        let started = Instant::now();
        let outcome = mine_blocks(
            &mut state,
            &mut writer,
            &MineJob {
                blocks,
                opts: &opts,
                pool,
                progress: &progress,
                produce: &produce,
            },
            &control,
            &mut |state: &ChainState, record: &BlockRecord, hashes, took: Duration| {
                let point = Point {
                    height: record.height,
                    time: point_time(state.spec(), record),
                    hashes: hashes as f64,
                    expected_hashes: expected_hashes(state, record),
                };
                let lib = state.rule_state().irreversible_height().unwrap_or(0);
                finality.observe(point.height, point.time, lib);
                points.push(point);
                if hashing {
                    progress.log(&format!(
                        "{consensus}: block {} in {}, {} hashes",
                        record.height,
                        duration(took.as_secs_f64()),
                        crate::cli::format::si(hashes as f64).trim_end()
                    ));
                }
            },
        )?;
        let wall = started.elapsed().as_secs_f64();
        if outcome.interrupted {
            progress.log(&format!(
                "{consensus}: interrupted after {} of {blocks} blocks",
                outcome.mined
            ));
            progress.finish();
            stopped = Some((consensus, outcome.mined));
            break;
        }
        let cpu = cpu_before.zip(process_cpu_seconds()).map(|(a, b)| b - a);
        let measured = rapl
            .as_ref()
            .zip(rapl_before)
            .and_then(|(r, before)| r.read().ok().map(|after| r.joules_between(&before, &after)));
        let (energy_j, method) = match (measured, cpu) {
            (Some(j), _) => (Some(j), EnergyMethod::Rapl),
            (None, Some(c)) => (
                Some(estimate_joules(c, args.watts_per_core)),
                EnergyMethod::Estimate,
            ),
            (None, None) => (None, EnergyMethod::None),
        };
        progress.log(&format!(
            "{consensus}: {blocks} blocks in {}, {}",
            duration(wall),
            energy_j.map_or_else(|| "energy unknown".to_owned(), energy)
        ));
        progress.finish();
        phases.push(Phase {
            consensus,
            spec,
            points,
            hashes_source: match consensus.rule().info().work {
                BlockWork::Signatures => "none",
                BlockWork::NonceSearch | BlockWork::KernelSearch => "measured",
            },
            wall_s: Some(wall),
            cpu_s: cpu,
            energy_j,
            method,
            stake_shares: stake_shares(&state),
            signatures: signatures(&state),
            irreversible_height: state.rule_state().irreversible_height(),
            finality: finality.into_waits(),
            network: outcome.network,
            file: None,
        });
    }
    let run = Run::Mined {
        threads: pool.current_num_threads(),
        backend: opts.backend.name(),
        stopped,
    };
    Ok((phases, run))
}

/// A block's time in seconds, as exact as its rule knows it (DPoS: its slot's time).
fn point_time(spec: &ChainSpec, record: &BlockRecord) -> f64 {
    spec.consensus
        .rule()
        .block_time_ms(spec, &record.to_block()) as f64
        / 1000.0
}

/// PoW: the hashes a block's target takes on average, 2^256/(target+1), for the charts.
fn expected_hashes(state: &ChainState, record: &BlockRecord) -> Option<f64> {
    if state.consensus().rule().info().work != BlockWork::NonceSearch {
        return None;
    }
    record.bits.to_target().ok().map(|t| t.to_work().to_f64())
}

/// Block signatures on the chain: the seal's after genesis (one, or a committee's
/// certificate), none for proof of work.
fn signatures(state: &ChainState) -> u64 {
    let rule = state.consensus().rule();
    match rule.info().work {
        BlockWork::NonceSearch => 0,
        BlockWork::KernelSearch | BlockWork::Signatures => {
            state.block_count().saturating_sub(1) * rule.seal_signatures(state.spec())
        }
    }
}

/// Collects a chain file's points and finality while it is verified.
#[derive(Default)]
struct PointObserver {
    points: Vec<Point>,
    finality: FinalityTracker,
}

impl ReplayObserver for PointObserver {
    fn on_block(&mut self, state: &ChainState, block: &CheckedBlock) {
        let record = block.record();
        if record.height == 0 {
            return;
        }
        let hashes = match state.consensus().rule().info().work {
            BlockWork::NonceSearch => record
                .bits
                .to_target()
                .map_or(0.0, |t: Target| t.to_work().to_f64()),
            BlockWork::KernelSearch => record.stake_attempts.unwrap_or(0) as f64,
            BlockWork::Signatures => 0.0,
        };
        let point = Point {
            height: record.height,
            time: point_time(state.spec(), record),
            hashes,
            expected_hashes: expected_hashes(state, record),
        };
        if let Some(lib) = state.rule_state().irreversible_height() {
            self.finality.observe(point.height, point.time, lib);
        }
        self.points.push(point);
    }
}

/// Reads a chain file, verifying it in the same pass; `None` when it is invalid.
fn from_file(path: &Path, pool: &rayon::ThreadPool, quiet: bool) -> Result<Option<Phase>> {
    let mut seen = PointObserver::default();
    let replay = replay_file(path, pool, quiet, unix_now(), &mut seen)?;
    if let Some(err) = &replay.error {
        eprintln!("chainsmith: {}: {}", path.display(), named(&replay, err));
        return Ok(None);
    }
    let state = replay.state.context("a valid chain has a state")?;
    let consensus = state.consensus();
    Ok(Some(Phase {
        consensus,
        spec: state.spec().clone(),
        points: seen.points,
        hashes_source: match consensus.rule().info().work {
            BlockWork::NonceSearch => "expected_work",
            BlockWork::KernelSearch => "recorded_attempts",
            BlockWork::Signatures => "none",
        },
        wall_s: None,
        cpu_s: None,
        energy_j: None,
        method: EnergyMethod::None,
        stake_shares: stake_shares(&state),
        signatures: signatures(&state),
        irreversible_height: state.rule_state().irreversible_height(),
        finality: seen.finality.into_waits(),
        network: None,
        file: Some(path.to_path_buf()),
    }))
}

/// What `compare` reports, as text or (serialized as is) `--json`.
#[derive(Serialize)]
struct Report {
    /// `mined` (now, on this machine) or `files` (read from chain files).
    mode: &'static str,
    /// Mined: the worker threads of the nonce and stake kernel searches (the other rules run
    /// on one).
    threads: Option<usize>,
    /// Mined: the hash backend of the nonce and stake kernel searches.
    backend: Option<&'static str>,
    watts_per_core: f64,
    /// Ctrl-C stopped the run: the rule being mined then, not in `rules`.
    interrupted: Option<Interrupted>,
    rules: Vec<RuleReport>,
    extrapolation: Extrapolation,
}

/// Where Ctrl-C stopped a live run.
#[derive(Serialize)]
struct Interrupted {
    consensus: &'static str,
    blocks_mined: u64,
}

/// One rule's row.
#[derive(Serialize)]
struct RuleReport {
    consensus: &'static str,
    spec: String,
    /// File mode: the chain file.
    file: Option<String>,
    target_spacing_s: f64,
    /// Every block of the chain, genesis included (as in `verify`).
    blocks: u64,
    /// The blocks the rule produced; per-block figures divide by it.
    height: u64,
    hashes: u64,
    hashes_per_block: f64,
    /// `measured`, `expected_work` (PoW files), `recorded_attempts` (PoS files) or `none`.
    hashes_source: &'static str,
    /// Hashes per second of wall time, for the rules that hash and were mined now.
    hash_rate: Option<f64>,
    elapsed_s: Option<f64>,
    cpu_s: Option<f64>,
    energy_j: Option<f64>,
    energy_j_per_block: Option<f64>,
    energy_method: EnergyMethod,
    signatures: u64,
    irreversible_height: Option<u32>,
    time_to_irreversible_s: Option<f64>,
    blocks_to_irreversible: Option<u32>,
    messages_per_block: Option<f64>,
    bytes_per_block: Option<f64>,
    commit_latency_ms: Option<f64>,
    /// PoW's hashes per block over this rule's (both must hash).
    pow_hashes_ratio: Option<f64>,
    /// PoW's energy per block over this rule's.
    pow_energy_ratio: Option<f64>,
}

/// One Bitcoin mainnet block's energy, at this CPU's measured joules per hash and an ASIC's.
#[derive(Serialize)]
struct Extrapolation {
    mainnet_difficulty: f64,
    hashes_per_mainnet_block: f64,
    joules_per_hash_measured: Option<f64>,
    mainnet_block_j_at_measured: Option<f64>,
    asic_j_per_th: f64,
    mainnet_block_j_at_asic: f64,
    /// This CPU's joules per hash over the ASIC's.
    cpu_to_asic_ratio: Option<f64>,
}

/// `a / b` when both are known and `b` is positive.
fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

impl Report {
    fn new(args: &CompareArgs, phases: &[Phase], run: &Run) -> Self {
        let pow = phases
            .iter()
            .find(|p| p.consensus.rule().info().work == BlockWork::NonceSearch);
        let pow_hashes = pow.and_then(|p| p.per_block(Some(p.hashes())));
        let pow_energy = pow.and_then(|p| p.per_block(p.energy_j));
        let rules = phases
            .iter()
            .map(|p| {
                let hashes_per_block = p.per_block(Some(p.hashes())).unwrap_or(0.0);
                let hashes_here = (hashes_per_block > 0.0).then_some(hashes_per_block);
                let energy_per_block = p.per_block(p.energy_j);
                RuleReport {
                    consensus: p.consensus.name(),
                    spec: p.spec.name.clone(),
                    file: p.file.as_ref().map(|f| f.display().to_string()),
                    target_spacing_s: p.spec.spacing_s(),
                    blocks: p.produced() as u64 + 1,
                    height: p.produced() as u64,
                    // Measured and recorded counts are whole; expected work is rounded.
                    hashes: p.hashes().round() as u64,
                    hashes_per_block,
                    hashes_source: p.hashes_source,
                    hash_rate: hashes_here.and(p.hash_rate()),
                    elapsed_s: p.wall_s,
                    cpu_s: p.cpu_s,
                    energy_j: p.energy_j,
                    energy_j_per_block: energy_per_block,
                    energy_method: p.method,
                    signatures: p.signatures,
                    irreversible_height: p.irreversible_height,
                    time_to_irreversible_s: p.finality_s(),
                    blocks_to_irreversible: p.finality_blocks(),
                    messages_per_block: p.per_block(p.network.map(|n| n.messages as f64)),
                    bytes_per_block: p.per_block(p.network.map(|n| n.bytes as f64)),
                    commit_latency_ms: p.network.and_then(|n| n.commit_latency_ms),
                    pow_hashes_ratio: ratio(pow_hashes, hashes_here),
                    pow_energy_ratio: ratio(pow_energy, energy_per_block),
                }
            })
            .collect();
        let mainnet_hashes = hashes_per_mainnet_block(args.mainnet_difficulty);
        let asic_j_per_hash = ASIC_J_PER_TH * 1e-12;
        let j_per_hash = pow.and_then(|p| ratio(p.energy_j, Some(p.hashes())));
        let (mode, threads, backend, interrupted) = match run {
            Run::Mined {
                threads,
                backend,
                stopped,
            } => (
                "mined",
                Some(*threads),
                Some(*backend),
                stopped.map(|(c, mined)| Interrupted {
                    consensus: c.name(),
                    blocks_mined: mined,
                }),
            ),
            Run::Files => ("files", None, None, None),
        };
        Self {
            mode,
            threads,
            backend,
            watts_per_core: args.watts_per_core,
            interrupted,
            rules,
            extrapolation: Extrapolation {
                mainnet_difficulty: args.mainnet_difficulty,
                hashes_per_mainnet_block: mainnet_hashes,
                joules_per_hash_measured: j_per_hash,
                mainnet_block_j_at_measured: j_per_hash.map(|j| j * mainnet_hashes),
                asic_j_per_th: ASIC_J_PER_TH,
                mainnet_block_j_at_asic: mainnet_hashes * asic_j_per_hash,
                cpu_to_asic_ratio: j_per_hash.map(|j| j / asic_j_per_hash),
            },
        }
    }
}

/// A table that fits the terminal, or 80 columns when stdout is not one: no vertical rules,
/// the header underlined, numbers right-aligned (the columns in `text` left-aligned).
fn table(header: &[&str], text: &[usize]) -> Table {
    let mut t = crate::cli::format::table();
    t.set_header(header.to_vec());
    for (i, c) in t.column_iter_mut().enumerate() {
        if i != 0 && !text.contains(&i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// `v` in three significant digits and `unit`, or `–` when unknown.
fn cell(v: Option<f64>, unit: &str) -> String {
    v.map_or_else(
        || "–".to_owned(),
        |v| format!("{}{unit}", sig3(v)).trim_end().to_owned(),
    )
}

/// A ratio in three significant digits: `0.217×`, `169×`, `6.44 k×`, or `–`.
fn times(r: Option<f64>) -> String {
    match r {
        None => "–".to_owned(),
        Some(r) if r > 0.0 && r < 0.9995 => {
            let decimals = (2.0 - r.log10().floor()).clamp(0.0, 12.0) as usize;
            format!("{r:.decimals$}×")
        }
        Some(r) => format!("{}×", sig3(r).trim_end()),
    }
}

/// The rule's name, with its spec when another row has the same rule.
fn row_name(report: &Report, r: &RuleReport) -> String {
    if report
        .rules
        .iter()
        .filter(|o| o.consensus == r.consensus)
        .count()
        > 1
    {
        format!("{} ({})", r.consensus, r.spec)
    } else {
        r.consensus.to_owned()
    }
}

fn write_text(out: &mut impl Write, args: &CompareArgs, report: &Report) -> Result<()> {
    if report.rules.is_empty() {
        return write_interrupted(out, report);
    }
    if report.mode == "mined" {
        let mut t = table(
            &[
                "rule",
                "hashes/block",
                "hash rate",
                "CPU time",
                "energy/block",
                "pow/this\nhashes",
                "pow/this\nenergy",
            ],
            &[],
        );
        for r in &report.rules {
            t.add_row(vec![
                row_name(report, r),
                cell(r.hash_rate.and(Some(r.hashes_per_block)), ""),
                cell(r.hash_rate, "H/s"),
                r.cpu_s.map_or_else(|| "–".to_owned(), duration),
                r.energy_j_per_block.map_or_else(|| "–".to_owned(), energy),
                times(r.pow_hashes_ratio),
                times(r.pow_energy_ratio),
            ]);
        }
        writeln!(out, "{}\n", crate::cli::format::render(&mut t))?;
    } else {
        let mut t = table(
            &["rule", "file", "hashes/block", "counted as", "pow/this"],
            &[1, 3],
        );
        for r in &report.rules {
            let hashed = r.hashes_per_block > 0.0;
            t.add_row(vec![
                row_name(report, r),
                // The name alone keeps the row within 80 columns; JSON has the path.
                r.file
                    .as_deref()
                    .map(Path::new)
                    .and_then(Path::file_name)
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                cell(hashed.then_some(r.hashes_per_block), ""),
                match r.hashes_source {
                    "expected_work" => "expected work",
                    "recorded_attempts" => "recorded attempts",
                    _ => "no hashing",
                }
                .to_owned(),
                times(r.pow_hashes_ratio),
            ]);
        }
        writeln!(out, "{}\n", crate::cli::format::render(&mut t))?;
    }
    let mut finality = table(
        &[
            "rule",
            "height",
            "signatures",
            "irreversible height",
            "final after (median)",
        ],
        &[],
    );
    for r in &report.rules {
        let after = match (r.time_to_irreversible_s, r.blocks_to_irreversible) {
            (Some(_), Some(0)) => "at once".to_owned(),
            (Some(s), Some(b)) => format!("{} ({b} blocks)", duration(s)),
            _ => "–".to_owned(),
        };
        finality.add_row(vec![
            row_name(report, r),
            r.height.to_string(),
            r.signatures.to_string(),
            r.irreversible_height
                .map_or_else(|| "–".to_owned(), |h| h.to_string()),
            after,
        ]);
    }
    writeln!(out, "{}\n", crate::cli::format::render(&mut finality))?;
    let talking: Vec<&RuleReport> = report
        .rules
        .iter()
        .filter(|r| r.messages_per_block.is_some())
        .collect();
    if !talking.is_empty() {
        let mut t = table(
            &["rule", "messages/block", "bytes/block", "commit latency"],
            &[],
        );
        for r in talking {
            t.add_row(vec![
                row_name(report, r),
                cell(r.messages_per_block, ""),
                cell(r.bytes_per_block, "B"),
                r.commit_latency_ms
                    .map_or_else(|| "–".to_owned(), |ms| duration(ms / 1000.0)),
            ]);
        }
        writeln!(out, "{}\n", crate::cli::format::render(&mut t))?;
    }
    write_notes(out, args, report)
}

/// The lines under the tables: what ran, how energy was found, what the columns mean, and
/// one mainnet block's energy.
fn write_notes(out: &mut impl Write, args: &CompareArgs, report: &Report) -> Result<()> {
    if let (Some(threads), Some(backend)) = (report.threads, report.backend) {
        writeln!(
            out,
            "pow and pos searched nonces and stake kernels on {threads} thread{} ({backend} \
             backend);\nthe other rules ran on one.",
            if threads == 1 { "" } else { "s" }
        )?;
    }
    if report.mode == "mined" {
        let estimated = report
            .rules
            .iter()
            .any(|r| r.energy_method == EnergyMethod::Estimate);
        if estimated {
            writeln!(
                out,
                "Energy is an estimate: process CPU time × {} W per busy core (no RAPL \
                 counter\nreadable; --watts-per-core to change).",
                args.watts_per_core
            )?;
        } else {
            writeln!(out, "Energy read from the RAPL counters.")?;
        }
        writeln!(
            out,
            "pow/this: PoW's hashes or energy per block over this rule's."
        )?;
    } else {
        writeln!(
            out,
            "Nothing ran, so no time or energy. Expected work: 2^256/(target+1) per PoW\n\
             block; recorded attempts: the kernels a PoS staker tried (stake_attempts).\n\
             pow/this: PoW's hashes per block over this rule's."
        )?;
    }
    writeln!(
        out,
        "PoW and PoS finality is probabilistic (–); final after: chain time and blocks\n\
         until a block is irreversible."
    )?;
    let x = &report.extrapolation;
    writeln!(
        out,
        "\nOne Bitcoin mainnet block at difficulty {:.2e} takes {:.2e} hashes:",
        x.mainnet_difficulty, x.hashes_per_mainnet_block
    )?;
    if let (Some(j), Some(total)) = (x.joules_per_hash_measured, x.mainnet_block_j_at_measured) {
        writeln!(out, "  at this CPU's {}J/hash: {}", sig3(j), energy(total))?;
    }
    writeln!(
        out,
        "  at a modern ASIC's {ASIC_J_PER_TH} J/TH (Cambridge 2025): {}",
        energy(x.mainnet_block_j_at_asic)
    )?;
    if let Some(r) = x.cpu_to_asic_ratio {
        writeln!(
            out,
            "  this CPU spends {} the ASIC's energy per hash",
            times(Some(r))
        )?;
    }
    if let Some(dir) = &args.plot {
        writeln!(out, "\ncharts written to {}", dir.display())?;
    }
    write_interrupted(out, report)
}

/// Where Ctrl-C stopped a live run, and the rules that finished before.
fn write_interrupted(out: &mut impl Write, report: &Report) -> Result<()> {
    if let Some(i) = &report.interrupted {
        let done: Vec<&str> = report.rules.iter().map(|r| r.consensus).collect();
        writeln!(
            out,
            "\ninterrupted while mining {} ({} blocks in); finished: {}.",
            i.consensus,
            i.blocks_mined,
            if done.is_empty() {
                "none".to_owned()
            } else {
                done.join(", ")
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_read_in_human_units_or_a_dash() {
        assert_eq!(cell(Some(24_300_000.0), ""), "24.3 M");
        assert_eq!(cell(Some(40_700_000.0), "H/s"), "40.7 MH/s");
        assert_eq!(cell(Some(0.0), "B"), "0 B");
        assert_eq!(cell(None, "H/s"), "–");
        assert_eq!(times(Some(6_440.0)), "6.44 k×");
        assert_eq!(times(Some(169.0)), "169×");
        assert_eq!(times(Some(0.217)), "0.217×");
        assert_eq!(times(Some(0.009_23)), "0.00923×");
        assert_eq!(times(None), "–");
    }

    #[test]
    fn a_ratio_needs_a_positive_divisor() {
        assert_eq!(ratio(Some(6.0), Some(2.0)), Some(3.0));
        assert_eq!(ratio(Some(6.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(2.0)), None);
    }
}
