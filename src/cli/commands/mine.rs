//! `chainsmith mine pow`: create or continue a chain file and mine blocks onto it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chainsmith::ChainState;
use chainsmith::chain::spec::Consensus;
use chainsmith::chain::store::ChainWriter;
use chainsmith::hash::Backend;
use chainsmith::pow::miner::{SearchControl, SearchMode, SearchOptions};
use serde_json::json;

use crate::cli::args::{MineArgs, MineConsensus};
use crate::cli::commands::replay_file;
use crate::cli::format::si;
use crate::cli::miner::{MineJob, create_chain, mine_blocks};
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
    let progress = Progress::new(Some(args.blocks), "blocks", args.quiet);
    let started = Instant::now();
    let outcome = mine_blocks(
        &mut state,
        &mut writer,
        &MineJob {
            blocks: args.blocks,
            tx_per_block: args.tx_per_block,
            opts: &opts,
            pool: &pool,
            progress: &progress,
        },
        &control,
        &mut |_, _| {},
    );
    progress.finish();
    let (mined, interrupted) = outcome?;

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
