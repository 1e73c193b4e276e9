//! `chainsmith mine pow`: create or continue a chain file and mine blocks onto it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chainsmith::ChainState;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::{Clock, Consensus};
use chainsmith::chain::state::prepare;
use chainsmith::chain::store::ChainWriter;
use chainsmith::chain::wallet::demo_transfers;
use chainsmith::hash::Backend;
use chainsmith::pos::stake::{StakeOutcome, find_stake, stake_block};
use chainsmith::pow::miner::{SearchControl, SearchMode, SearchOptions, SolveError, solve_block};
use serde_json::json;

use crate::cli::args::{MineArgs, MineConsensus};
use crate::cli::commands::replay_file;
use crate::cli::format::si;
use crate::cli::progress::Progress;
use crate::cli::{
    EXIT_INTERRUPTED, EXIT_INVALID, choose_backend, resolve_spec, thread_pool, unix_now,
};

pub(crate) fn run(args: &MineArgs) -> Result<ExitCode> {
    let (default_spec, consensus) = match args.consensus {
        MineConsensus::Pow => ("pow-demo", Consensus::Pow),
        MineConsensus::Pos => ("pos-demo", Consensus::Pos),
    };
    let spec = resolve_spec(args.spec.as_deref().unwrap_or(default_spec))?;
    if spec.consensus != consensus {
        bail!(
            "spec {:?} is a {} chain: mine it with `chainsmith mine {}`",
            spec.name,
            spec.consensus.as_str(),
            spec.consensus.as_str()
        );
    }
    let path = args
        .chain
        .clone()
        .unwrap_or_else(|| PathBuf::from("chains").join(format!("{}.jsonl", spec.name)));
    let pool = thread_pool(args.threads)?;
    let threads = pool.current_num_threads();
    let backend = choose_backend(args.backend)?;

    let existing = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
    let (mut state, mut writer) = if existing {
        let replay = replay_file(&path, &pool, args.quiet, unix_now())?;
        if let Some(err) = replay.error {
            eprintln!("chainsmith: {}: {err}", path.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        let state = replay.state.context("a valid chain has a state")?;
        if args.spec.is_some() && state.spec() != &spec {
            bail!(
                "{} was made with spec {:?} ({}), not the spec given with --spec ({})",
                path.display(),
                state.spec().name,
                state.spec().spec_hash(),
                spec.spec_hash()
            );
        }
        let writer = ChainWriter::open_append(&path)
            .with_context(|| format!("opening {} for appending", path.display()))?;
        (state, writer)
    } else {
        create_chain(&path, spec)?
    };

    let control = Arc::new(SearchControl::default());
    let handler_control = Arc::clone(&control);
    ctrlc::set_handler(move || handler_control.stop.store(true, Ordering::Relaxed))
        .context("installing the Ctrl-C handler")?;

    let opts = SearchOptions {
        mode: if args.deterministic {
            SearchMode::Lowest
        } else {
            SearchMode::Any
        },
        backend,
        ..SearchOptions::default()
    };
    let keys = state.spec().wallet_keys();
    let miner = state.spec().miner_key().pubkey();
    let progress = Progress::new(Some(args.blocks), "blocks", args.quiet);
    let started = Instant::now();
    let mut mined = 0u64;
    let mut interrupted = false;
    let ticker_done = AtomicBool::new(false);

    let result: Result<()> = std::thread::scope(|scope| {
        if progress.is_visible() {
            scope.spawn(|| tick(&progress, &control, &ticker_done, started));
        }
        let outcome = pool.install(|| -> Result<()> {
            let mut stake_from = 0;
            while mined < args.blocks {
                if !wait_for_clock(&state, &control) {
                    interrupted = true;
                    break;
                }
                let height = state.next_height();
                let record = match consensus {
                    Consensus::Pow => {
                        let transfers =
                            demo_transfers(&state, &keys, args.tx_per_block, height, &[]);
                        let template = state.block_template(unix_now(), miner, transfers);
                        let target = template.header.bits.to_target()?;
                        match solve_block(template, target, &opts, &control) {
                            Ok(b) => BlockRecord::new(height, &b, None),
                            Err(SolveError::Stopped) => {
                                interrupted = true;
                                break;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Consensus::Pos => {
                        // Virtual chain time only moves forward: search from after the tip.
                        let tip_time = state.tip().map_or(0, |t| t.header.time);
                        let from = stake_from
                            .max(state.median_time_past() + 1)
                            .max(tip_time.saturating_add(1));
                        let until = match state.spec().pos.as_ref().map(|p| p.clock) {
                            Some(Clock::Wall) => unix_now(),
                            _ => unix_now().saturating_add(state.spec().max_future_s),
                        };
                        match find_stake(&state, &keys, from, until, &control.hashes, &control.stop)
                        {
                            StakeOutcome::Found(stake) => {
                                let transfers = demo_transfers(
                                    &state,
                                    &keys,
                                    args.tx_per_block,
                                    height,
                                    &[stake.outpoint],
                                );
                                stake_block(&state, &keys, &stake, transfers)
                            }
                            StakeOutcome::Exhausted { next } => {
                                // Chain time has reached the clock: wait for it to move on.
                                stake_from = next;
                                std::thread::sleep(Duration::from_millis(250));
                                continue;
                            }
                            StakeOutcome::Stopped => {
                                interrupted = true;
                                break;
                            }
                        }
                    }
                };
                let prepared = prepare(record.clone(), consensus)
                    .with_context(|| format!("mined block {height} failed its own checks"))?;
                state
                    .connect(&prepared, unix_now())
                    .with_context(|| format!("mined block {height} failed validation"))?;
                writer
                    .append(&record)
                    .with_context(|| format!("writing block {height} to {}", path.display()))?;
                mined += 1;
                progress.set_position(mined);
                progress.set_message(format!("height {height}"));
            }
            Ok(())
        });
        ticker_done.store(true, Ordering::Relaxed);
        outcome
    });
    progress.finish();
    result?;

    let run = RunStats {
        mined,
        hashes: control.hashes.load(Ordering::Relaxed),
        elapsed: started.elapsed().as_secs_f64(),
        threads,
        backend,
        interrupted,
    };
    report(args, &path, &state, &run)?;
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Creates `path` with the genesis block of `spec`.
fn create_chain(path: &Path, spec: chainsmith::ChainSpec) -> Result<(ChainState, ChainWriter)> {
    let genesis = spec.genesis_block();
    let record = BlockRecord::new(0, &genesis, Some(&spec));
    let consensus = spec.consensus;
    let mut state = ChainState::new(spec);
    let prepared =
        prepare(record.clone(), consensus).context("the spec's genesis block is invalid")?;
    state
        .connect(&prepared, unix_now())
        .context("the spec's genesis block is invalid")?;
    let mut writer = ChainWriter::create_new(path)
        .with_context(|| format!("creating chain {}", path.display()))?;
    writer
        .append(&record)
        .with_context(|| format!("writing genesis to {}", path.display()))?;
    Ok((state, writer))
}

/// Blocks must be later than the median of the previous 11, so a chain mined faster than one
/// block per second runs ahead of the clock (one second per six blocks). Waits while the next
/// block's earliest time is past the future limit that verification allows, so every block
/// mined stays valid. Returns false if Ctrl-C stopped the wait.
fn wait_for_clock(state: &ChainState, control: &SearchControl) -> bool {
    let earliest = u64::from(state.median_time_past()) + 1;
    let limit = u64::from(state.spec().max_future_s);
    while earliest > u64::from(unix_now()) + limit {
        if control.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Updates the bar's live hash rate until `done`.
fn tick(progress: &Progress, control: &SearchControl, done: &AtomicBool, started: Instant) {
    let mut last = (Instant::now(), 0u64);
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let hashes = control.hashes.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt > 0.0 {
            let rate = (hashes - last.1) as f64 / dt;
            progress.set_message(format!(
                "{}H/s · {}hashes · {:.0} s",
                si(rate),
                si(hashes as f64),
                started.elapsed().as_secs_f64()
            ));
        }
        last = (now, hashes);
    }
}

/// A stakeholder's holdings now and what it has staked over the whole chain.
struct Holder {
    name: String,
    coins: chainsmith::primitives::tx::Amount,
    stats: chainsmith::chain::state::StakeStats,
}

/// Every stakeholder of a proof-of-stake spec, in spec order.
fn stakeholders(state: &ChainState) -> Vec<Holder> {
    let spec = state.spec();
    let Some(pos) = &spec.pos else {
        return Vec::new();
    };
    pos.stakeholders
        .iter()
        .map(|h| {
            let key = chainsmith::primitives::tx::KeyPair::derive(&spec.wallet_seed, &h.name);
            let owner = key.pubkey();
            let coins = state
                .utxos()
                .values()
                .filter(|u| u.owner == owner)
                .fold(chainsmith::primitives::tx::Amount::ZERO, |a, u| {
                    a.checked_add(u.value).unwrap_or(a)
                });
            Holder {
                name: h.name.clone(),
                coins,
                stats: state.stake_stats().get(&owner).copied().unwrap_or_default(),
            }
        })
        .collect()
}

/// What a mining run did.
struct RunStats {
    mined: u64,
    hashes: u64,
    elapsed: f64,
    threads: usize,
    backend: Backend,
    interrupted: bool,
}

fn report(args: &MineArgs, path: &Path, state: &ChainState, run: &RunStats) -> Result<()> {
    let height = state.tip().map_or(0, |t| t.height);
    let rate = if run.elapsed > 0.0 {
        run.hashes as f64 / run.elapsed
    } else {
        0.0
    };
    let mut out = std::io::stdout().lock();
    let spec = state.spec();
    if args.json {
        let v = json!({
            "consensus": spec.consensus.as_str(),
            "spec": spec.name,
            "blocks_mined": run.mined,
            "height": height,
            "hashes": run.hashes,
            "elapsed_s": run.elapsed,
            "hash_rate": rate,
            "threads": run.threads,
            "backend": run.backend.name(),
            "chain": path.display().to_string(),
            "interrupted": run.interrupted,
        });
        let mut v = v;
        if spec.consensus == Consensus::Pos {
            v["stakeholders"] = stakeholders(state)
                .iter()
                .map(|h| {
                    json!({
                        "name": h.name,
                        "coins": h.coins.to_coins_f64(),
                        "blocks": h.stats.blocks,
                        "coin_days_consumed": h.stats.coin_days,
                        "interest": h.stats.interest.to_coins_f64(),
                    })
                })
                .collect();
        }
        writeln!(out, "{v}")?;
    } else {
        let note = if run.interrupted {
            " (interrupted)"
        } else {
            ""
        };
        writeln!(
            out,
            "mined {} blocks on {} (tip height {height}) in {:.2} s{note}",
            run.mined, spec.name, run.elapsed
        )?;
        writeln!(out, "  hashes      {}", si(run.hashes as f64))?;
        writeln!(
            out,
            "  hash rate   {}H/s on {} threads ({})",
            si(rate),
            run.threads,
            run.backend
        )?;
        writeln!(out, "  chain       {}", path.display())?;
        if spec.consensus == Consensus::Pos {
            writeln!(
                out,
                "\n  {:<12} {:>14} {:>7} {:>18} {:>14}",
                "stakeholder", "coins", "blocks", "coin-days consumed", "interest"
            )?;
            for h in stakeholders(state) {
                writeln!(
                    out,
                    "  {:<12} {:>14} {:>7} {:>18} {:>14}",
                    h.name, h.coins, h.stats.blocks, h.stats.coin_days, h.stats.interest
                )?;
            }
        }
    }
    Ok(())
}
