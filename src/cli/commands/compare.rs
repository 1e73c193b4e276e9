//! `chainsmith compare`: what proof of work costs next to proof of stake, DPoS and proof of
//! authority, measured.
//!
//! Live mode mines a chain of each consensus in the list (`CONSENSUSES`) with the same number
//! of blocks (DPoS: a round's worth unless `--blocks` is given) and, with `--spacing`, the same
//! target spacing, measuring per phase the hashes, signatures, wall time, process CPU seconds,
//! energy (RAPL when readable, else CPU seconds × watts per core, labelled an estimate) and,
//! for the rules with finality, how long a block takes to become irreversible. File mode reads
//! existing chains: hashes per block are the expected work of each PoW target and the kernel
//! attempts each PoS staker recorded; authority chains are replayed for their finality.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail};
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
use serde_json::json;

use crate::cli::args::CompareArgs;
use crate::cli::commands::{named, replay_file};
use crate::cli::format::si;
use crate::cli::miner::{MineJob, create_chain, mine_blocks};
use crate::cli::phase::{Phase, Point};
use crate::cli::plot;
use crate::cli::progress::Progress;
use crate::cli::{
    EXIT_INTERRUPTED, EXIT_INVALID, choose_backend, resolve_spec, thread_pool, unix_now,
};
use chainsmith::chain::produce::ProduceOptions;

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
    let phases = if args.chains.is_empty() {
        let scratch =
            std::env::temp_dir().join(format!("chainsmith-compare-{}", std::process::id()));
        let dir = args.keep.clone().unwrap_or_else(|| scratch.clone());
        let result = live(args, &pool, &dir);
        if args.keep.is_none() {
            // Best effort: the mined chains were only scratch space.
            let _ = std::fs::remove_dir_all(&scratch);
        }
        match result? {
            Some(p) => p,
            None => return Ok(ExitCode::from(EXIT_INTERRUPTED)),
        }
    } else {
        if args.chains.len() != 2 {
            bail!("compare takes two chain files (or none, to mine one of each rule)");
        }
        let mut phases = Vec::new();
        for path in &args.chains {
            match from_file(path, &pool, args.run.quiet)? {
                Some(p) => phases.push(p),
                None => return Ok(ExitCode::from(EXIT_INVALID)),
            }
        }
        phases.sort_by_key(|p| Consensus::all().position(|c| c == p.consensus));
        phases
    };
    if let Some(dir) = &args.plot {
        plot::draw_all(dir, &phases)?;
    }
    report(args, &phases)?;
    Ok(ExitCode::SUCCESS)
}

/// Mines each consensus in turn; `None` when Ctrl-C stopped it.
fn live(args: &CompareArgs, pool: &rayon::ThreadPool, dir: &Path) -> Result<Option<Vec<Phase>>> {
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
    let mut phases = Vec::new();
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
        let started = Instant::now();
        let outcome = mine_blocks(
            &mut state,
            &mut writer,
            &MineJob {
                blocks,
                opts: &opts,
                pool,
                progress: &progress,
                // The same work for every rule: no demo transfers or re-votes.
                produce: &ProduceOptions {
                    votes_per_block: Some(0),
                    ..ProduceOptions::default()
                },
            },
            &control,
            &mut |state: &ChainState, record: &BlockRecord, hashes| {
                let point = Point {
                    height: record.height,
                    time: point_time(state.spec(), record),
                    hashes: hashes as f64,
                    expected_hashes: expected_hashes(state, record),
                };
                let lib = state.rule_state().irreversible_height().unwrap_or(0);
                finality.observe(point.height, point.time, lib);
                points.push(point);
            },
        )?;
        let interrupted = outcome.interrupted;
        let network = outcome.network;
        let wall = started.elapsed().as_secs_f64();
        progress.finish();
        if interrupted {
            return Ok(None);
        }
        let cpu = cpu_before.zip(process_cpu_seconds()).map(|(a, b)| b - a);
        let measured = rapl
            .as_ref()
            .zip(rapl_before)
            .and_then(|(r, before)| r.read().ok().map(|after| r.joules_between(&before, &after)));
        let (energy, method) = match (measured, cpu) {
            (Some(j), _) => (Some(j), EnergyMethod::Rapl),
            (None, Some(c)) => (
                Some(estimate_joules(c, args.watts_per_core)),
                EnergyMethod::Estimate,
            ),
            (None, None) => (None, EnergyMethod::None),
        };
        phases.push(Phase {
            consensus,
            spec,
            points,
            hashes_source: "measured",
            wall_s: Some(wall),
            cpu_s: cpu,
            energy_j: energy,
            method,
            stake_shares: stake_shares(&state),
            signatures: signatures(&state),
            irreversible_height: state.rule_state().irreversible_height(),
            finality: finality.into_waits(),
            network,
        });
    }
    Ok(Some(phases))
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
    }))
}

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    a.zip(b).filter(|(_, b)| *b > 0.0).map(|(a, b)| a / b)
}

/// Three significant digits, with an SI prefix from 1000 up.
fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        None => "-".to_owned(),
        // Zero of either sign (an empty chain's sums) reads 0, never -0.
        Some(0.0) => format!("0 {unit}"),
        Some(x) if x.fract() == 0.0 && x.abs() < 1000.0 => format!("{x:.0} {unit}"),
        Some(x) if x.abs() >= 1000.0 => format!("{}{unit}", si(x)),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0} {unit}"),
        Some(x) if x.abs() >= 10.0 => format!("{x:.1} {unit}"),
        Some(x) if x.abs() >= 0.001 => format!("{x:.3} {unit}"),
        Some(x) => format!("{x:.2e} {unit}"),
    }
}

fn fmt_ratio(r: f64) -> String {
    if r == 0.0 {
        "0×".to_owned()
    } else if (0.01..10_000.0).contains(&r.abs()) {
        format!("{r:.2}×")
    } else {
        format!("{r:.2e}×")
    }
}

fn report(args: &CompareArgs, phases: &[Phase]) -> Result<()> {
    let pow = phases
        .iter()
        .find(|p| p.consensus.rule().info().work == BlockWork::NonceSearch);
    let pos = phases
        .iter()
        .find(|p| p.consensus.rule().info().work == BlockWork::KernelSearch);
    let j_per_hash = pow.and_then(|p| ratio(p.energy_j, Some(p.hashes())));
    let mainnet_hashes = hashes_per_mainnet_block(args.mainnet_difficulty);
    let extrapolation = json!({
        "mainnet_difficulty": args.mainnet_difficulty,
        "hashes_per_mainnet_block": mainnet_hashes,
        "joules_per_hash_measured": j_per_hash,
        "mainnet_block_j_at_measured": j_per_hash.map(|j| j * mainnet_hashes),
        "asic_j_per_th": ASIC_J_PER_TH,
        "mainnet_block_j_at_asic": mainnet_hashes * ASIC_J_PER_TH * 1e-12,
    });
    let mut out = std::io::stdout().lock();
    if args.run.json {
        let mut v = json!({
            "watts_per_core": args.watts_per_core,
            "extrapolation": extrapolation,
        });
        for p in phases {
            v[p.consensus.name()] = p.to_json();
        }
        if let (Some(a), Some(b)) = (pow, pos) {
            v["ratio_pow_to_pos"] = json!({
                "hashes_per_block": ratio(a.per_block(Some(a.hashes())), b.per_block(Some(b.hashes()))),
                "energy_j_per_block": ratio(a.per_block(a.energy_j), b.per_block(b.energy_j)),
            });
        }
        writeln!(out, "{v}")?;
        return Ok(());
    }
    let names: Vec<&str> = phases.iter().map(|p| p.consensus.name()).collect();
    write!(out, "{:<16}", "")?;
    for n in &names {
        write!(out, "{n:>14}")?;
    }
    writeln!(
        out,
        "{:>12}",
        if pow.is_some() && pos.is_some() {
            "pow/pos"
        } else {
            ""
        }
    )?;
    type Row<'a> = (&'a str, &'a dyn Fn(&Phase) -> Option<f64>, &'a str);
    let rows: [Row<'_>; 16] = [
        ("blocks produced", &|p| Some(p.produced() as f64), ""),
        ("spacing", &|p| Some(p.spec.spacing_s()), "s"),
        ("hashes", &|p| Some(p.hashes()), ""),
        ("hashes/block", &|p| p.per_block(Some(p.hashes())), ""),
        ("hash rate", &Phase::hash_rate, "H/s"),
        ("wall time", &|p| p.wall_s, "s"),
        ("CPU time", &|p| p.cpu_s, "s"),
        ("energy", &|p| p.energy_j, "J"),
        ("energy/block", &|p| p.per_block(p.energy_j), "J"),
        ("signatures", &|p| Some(p.signatures as f64), ""),
        (
            "messages/block",
            &|p| p.per_block(p.network.map(|n| n.messages as f64)),
            "",
        ),
        (
            "bytes/block",
            &|p| p.per_block(p.network.map(|n| n.bytes as f64)),
            "B",
        ),
        (
            "commit latency",
            &|p| {
                p.network
                    .and_then(|n| n.commit_latency_ms)
                    .map(|ms| ms / 1000.0)
            },
            "s",
        ),
        (
            "irreversible at",
            &|p| p.irreversible_height.map(f64::from),
            "",
        ),
        ("to finality", &Phase::finality_s, "s"),
        ("  in blocks", &Phase::finality_blocks, ""),
    ];
    for (label, f, unit) in rows {
        write!(out, "{label:<16}")?;
        for p in phases {
            write!(out, "{:>14}", fmt_opt(f(p), unit))?;
        }
        let r = pow.zip(pos).and_then(|(a, b)| ratio(f(a), f(b)));
        writeln!(out, "{:>12}", r.map_or_else(String::new, fmt_ratio))?;
    }
    let methods: Vec<String> = phases
        .iter()
        .map(|p| format!("{} {}", p.consensus.name(), p.method.as_str()))
        .collect();
    writeln!(out, "energy method: {}", methods.join(", "))?;
    if phases.iter().any(|p| p.method == EnergyMethod::Estimate) {
        writeln!(
            out,
            "  estimate = process CPU seconds × {} W per busy core (no RAPL counters readable; \
             --watts-per-core to change)",
            args.watts_per_core
        )?;
    }
    writeln!(
        out,
        "\nOne Bitcoin mainnet block at difficulty {:.3e} takes {:.3e} hashes:",
        args.mainnet_difficulty, mainnet_hashes
    )?;
    if let Some(j) = j_per_hash {
        writeln!(
            out,
            "  at this CPU's {j:.3e} J/hash: {:.3e} J ({:.3e} kWh)",
            j * mainnet_hashes,
            j * mainnet_hashes / 3.6e6
        )?;
    }
    writeln!(
        out,
        "  at a modern ASIC's {ASIC_J_PER_TH} J/TH (Cambridge 2025): {:.3e} J ({:.3e} kWh)",
        mainnet_hashes * ASIC_J_PER_TH * 1e-12,
        mainnet_hashes * ASIC_J_PER_TH * 1e-12 / 3.6e6
    )?;
    if let Some(dir) = &args.plot {
        writeln!(out, "\ncharts written to {}", dir.display())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_reads_minus_zero() {
        assert_eq!(fmt_opt(Some(-0.0), "H"), "0 H");
        assert_eq!(fmt_opt(Some(0.0), ""), "0 ");
        assert_eq!(fmt_opt(Some(-2.0), "J"), "-2 J");
    }
}
