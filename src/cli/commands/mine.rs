//! `chainsmith mine pow|pos|dpos|poa`: create or continue a chain file and mine blocks onto it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chainsmith::chain::produce::{Equivocation, ProduceOptions};
use chainsmith::consensus::{BlockWork, RuleReport, name_in};
use chainsmith::hash::Backend;
use chainsmith::hash::search::{SearchControl, SearchMode, SearchOptions};
use chainsmith::primitives::tx::{KeyPair, PubKey, SignerVote};
use chainsmith::{ChainSpec, ChainState};
use serde_json::json;

use crate::cli::args::MineArgs;
use crate::cli::format::{producers_json, si};
use crate::cli::miner::{MineJob, MineOutcome, OpenChain, mine_blocks, open_chain};
use crate::cli::progress::Progress;
use crate::cli::{EXIT_INTERRUPTED, EXIT_INVALID, choose_backend, resolve_spec, thread_pool};

pub(crate) fn run(args: &MineArgs) -> Result<ExitCode> {
    if crate::cli::commands::pool_client::wanted(args) {
        return crate::cli::commands::pool_client::run(args);
    }
    let consensus = args.consensus.0;
    let rule = consensus.rule();
    let blocks = args.blocks.unwrap_or_else(|| rule.info().demo_blocks);
    let default_spec = format!("{consensus}-demo");
    let spec = resolve_spec(args.spec.as_deref().unwrap_or(&default_spec))?;
    if spec.consensus != consensus {
        bail!(
            "spec {:?} is a {} chain: mine it with `chainsmith mine {}`",
            spec.name,
            spec.consensus,
            spec.consensus
        );
    }
    let path = args
        .chain
        .clone()
        .unwrap_or_else(|| PathBuf::from("chains").join(format!("{}.jsonl", spec.name)));
    let pool = thread_pool(args.run.threads)?;
    let threads = pool.current_num_threads();
    let backend = choose_backend(args.backend)?;

    // Checked before a new chain file is created; an existing chain's own spec decides below.
    produce_options(args, &spec)?;
    let Some(OpenChain {
        mut state,
        mut writer,
        lock: _lock,
    }) = open_chain(&path, spec, args.spec.is_some(), &pool, args.run.quiet)?
    else {
        return Ok(ExitCode::from(EXIT_INVALID));
    };
    if state.consensus() != consensus {
        bail!(
            "{} is a {} chain: continue it with `chainsmith mine {}`",
            path.display(),
            state.consensus(),
            state.consensus()
        );
    }

    let produce = produce_options(args, state.spec())?;
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
    let progress = Progress::new(Some(blocks), "blocks", args.run.quiet);
    let started = Instant::now();
    let outcome = mine_blocks(
        &mut state,
        &mut writer,
        &MineJob {
            blocks,
            opts: &opts,
            pool: &pool,
            progress: &progress,
            produce: &produce,
        },
        &control,
        &mut |_, _, _| {},
    );
    progress.finish();
    let MineOutcome {
        mined,
        interrupted,
        evidence,
        ..
    } = outcome?;

    let run = RunStats {
        mined,
        hashes: control.hashes.load(Ordering::Relaxed),
        elapsed: started.elapsed().as_secs_f64(),
        threads,
        backend,
        interrupted,
        evidence,
        names: produce.extra_keys.clone(),
    };
    report(args, &path, &state, &run)?;
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Turns `--tx-per-block`, `--offline`, `--vote`, `--votes-per-block` and `--double-sign`
/// into the producer's options, checking each name against the spec; the rule's producer
/// refuses the options it does not have. The nonce-search options are refused for rules that
/// run no nonce search.
fn produce_options(args: &MineArgs, spec: &ChainSpec) -> Result<ProduceOptions> {
    let rule = spec.consensus.rule();
    let known = spec.producer_names();
    let key = |name: &str| KeyPair::derive(&spec.wallet_seed, name);
    if rule.info().work != BlockWork::NonceSearch {
        for (given, flag) in [
            (args.deterministic, "--deterministic"),
            (args.backend.is_some(), "--backend"),
            (args.run.threads.is_some(), "--threads"),
        ] {
            if given {
                bail!(
                    "{flag} applies to the nonce search of pow chains, not to {} chains",
                    rule.name()
                );
            }
        }
    }
    let mut opts = ProduceOptions {
        tx_per_block: args.tx_per_block,
        votes_per_block: args.votes_per_block,
        ..ProduceOptions::default()
    };
    for name in &args.offline {
        if !known.contains(&name.as_str()) {
            bail!("--offline {name}: not a producer of spec {:?}", spec.name);
        }
        opts.offline.push(key(name).pubkey());
    }
    if let Some(vote) = &args.vote {
        let (authorize, name) = match vote.split_at_checked(1) {
            Some(("+", n)) if !n.is_empty() => (true, n),
            Some(("-", n)) if !n.is_empty() => (false, n),
            _ => bail!("--vote {vote:?}: expected +NAME (authorize) or -NAME (drop)"),
        };
        let k = key(name);
        opts.proposal = Some(SignerVote {
            target: k.pubkey(),
            authorize,
        });
        opts.extra_keys.push(k);
    }
    if let Some(name) = &args.double_sign {
        if !known.contains(&name.as_str()) {
            bail!(
                "--double-sign {name}: not a producer of spec {:?}",
                spec.name
            );
        }
        opts.double_sign = Some(key(name).pubkey());
    }
    // The rule refuses what it does not have before anything is written.
    rule.producer(spec, &opts)?;
    Ok(opts)
}

/// What a mining run did.
struct RunStats {
    mined: u64,
    hashes: u64,
    elapsed: f64,
    threads: usize,
    backend: Backend,
    interrupted: bool,
    evidence: Vec<Equivocation>,
    names: Vec<KeyPair>,
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
    let rule = spec.consensus.rule();
    let report = named_report(state.rule_state().report(), &run.names);
    if args.run.json {
        let mut v = json!({
            "consensus": rule.name(),
            "spec": spec.name,
            "blocks_mined": run.mined,
            "height": height,
            "elapsed_s": run.elapsed,
            "chain": path.display().to_string(),
            "interrupted": run.interrupted,
        });
        match rule.info().work {
            BlockWork::NonceSearch => {
                v["hashes"] = run.hashes.into();
                v["hash_rate"] = rate.into();
                v["threads"] = run.threads.into();
                v["backend"] = run.backend.name().into();
            }
            BlockWork::KernelSearch => {
                v["hashes"] = run.hashes.into();
                v["hash_rate"] = rate.into();
            }
            BlockWork::Signatures => {
                let per_block = state.spec().consensus.rule().seal_signatures(state.spec());
                v["signatures"] = (run.mined * per_block).into();
            }
        }
        if let Some((key, rows)) = &report.producers {
            v[*key] = producers_json(rows);
        }
        if let Some(lib) = state.rule_state().irreversible_height() {
            v["irreversible_height"] = lib.into();
        }
        if rule.info().detects_equivocation {
            v["evidence"] = run
                .evidence
                .iter()
                .map(|e| evidence_json(state, e))
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
        match rule.info().work {
            BlockWork::NonceSearch => {
                writeln!(out, "  hashes      {}", si(run.hashes as f64))?;
                writeln!(
                    out,
                    "  hash rate   {}H/s on {} threads ({})",
                    si(rate),
                    run.threads,
                    run.backend
                )?;
            }
            BlockWork::KernelSearch => {
                writeln!(
                    out,
                    "  hashes      {} (stake kernels)",
                    si(run.hashes as f64)
                )?;
                writeln!(out, "  hash rate   {}H/s on one thread", si(rate))?;
            }
            BlockWork::Signatures => {
                let per_block = state.spec().consensus.rule().seal_signatures(state.spec());
                writeln!(
                    out,
                    "  signatures  {} ({} per block; no hashing puzzle)",
                    run.mined * per_block,
                    if per_block == 1 {
                        "one".to_owned()
                    } else {
                        format!("a commit certificate of {per_block}")
                    }
                )?;
            }
        }
        writeln!(out, "  chain       {}", path.display())?;
        print_producers(&mut out, state, &report, run)?;
    }
    Ok(())
}

/// The rule's report, naming keys the chain's spec does not know (signers voted in with
/// `--vote`) by the names given on the command line.
fn named_report(mut report: RuleReport, names: &[KeyPair]) -> RuleReport {
    if let Some((_, rows)) = &mut report.producers {
        for r in rows {
            if let Some(k) = names.iter().find(|k| k.pubkey() == r.key) {
                k.name().clone_into(&mut r.name);
            }
        }
    }
    report
}

fn producer_name(state: &ChainState, producer: &PubKey) -> String {
    name_in(&state.spec().names_by_key(), producer)
}

fn evidence_json(state: &ChainState, e: &Equivocation) -> serde_json::Value {
    json!({
        "producer": producer_name(state, &e.producer),
        "slot": e.turn,
        "height": e.height,
        "hashes": [e.hashes[0].to_string(), e.hashes[1].to_string()],
    })
}

/// The producer table: stakeholders with coins and coin-age consumed, or producers and
/// signers with blocks and missed turns (only those that did either), the irreversible height
/// and any double-sign evidence.
fn print_producers(
    out: &mut impl Write,
    state: &ChainState,
    report: &RuleReport,
    run: &RunStats,
) -> Result<()> {
    let height = state.tip().map_or(0, |t| t.height);
    if let Some(lib) = state.rule_state().irreversible_height() {
        writeln!(
            out,
            "  irreversible height {lib} ({} blocks behind the tip)",
            height - lib
        )?;
    }
    let Some((what, rows)) = &report.producers else {
        return Ok(());
    };
    let staking = rows.iter().any(|r| r.coin_days.is_some());
    if staking {
        writeln!(
            out,
            "\n  {:<12} {:>14} {:>7} {:>18} {:>14}",
            "stakeholder", "coins", "blocks", "coin-days consumed", "interest"
        )?;
        for r in rows {
            writeln!(
                out,
                "  {:<12} {:>14.8} {:>7} {:>18} {:>14.8}",
                r.name,
                r.coins.unwrap_or(0.0),
                r.blocks,
                r.coin_days.unwrap_or(0),
                r.interest.unwrap_or(0.0)
            )?;
        }
        return Ok(());
    }
    let turns = rows.iter().any(|r| r.missed.is_some());
    if !turns {
        // Leaders elected for a term have no turns to miss.
        writeln!(
            out,
            "\n  {:<12} {:>7}",
            what.strip_suffix("ies").map_or_else(
                || what.trim_end_matches('s').to_owned(),
                |w| format!("{w}y")
            ),
            "blocks"
        )?;
        for r in rows.iter().filter(|r| r.blocks > 0) {
            writeln!(out, "  {:<12} {:>7}", r.name, r.blocks)?;
        }
        return Ok(());
    }
    let (one, turns) = if *what == "producers" {
        ("producer", "missed slots")
    } else {
        ("signer", "missed in-turn")
    };
    writeln!(out, "\n  {one:<12} {:>7} {turns:>15}", "blocks")?;
    for r in rows {
        let missed = r.missed.unwrap_or(0);
        if r.blocks > 0 || missed > 0 {
            writeln!(out, "  {:<12} {:>7} {:>15}", r.name, r.blocks, missed)?;
        }
    }
    for e in &run.evidence {
        writeln!(
            out,
            "  double sign: {} signed {} and {} for slot {} (height {})",
            producer_name(state, &e.producer),
            e.hashes[0],
            e.hashes[1],
            e.turn,
            e.height
        )?;
    }
    Ok(())
}
