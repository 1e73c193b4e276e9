//! `chainsmith mine pow|pos|dpos|poa`: create or continue a chain file and mine blocks onto it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use chainsmith::chain::authority::{Authority, ProducerRow};
use chainsmith::chain::spec::Consensus;
use chainsmith::chain::store::ChainWriter;
use chainsmith::dpos::DoubleSign;
use chainsmith::hash::Backend;
use chainsmith::pow::miner::{SearchControl, SearchMode, SearchOptions};
use chainsmith::primitives::tx::{KeyPair, SignerVote};
use chainsmith::{ChainSpec, ChainState};
use serde_json::json;

use crate::cli::args::{MineArgs, MineConsensus};
use crate::cli::commands::replay_file;
use crate::cli::format::{producers_json, si};
use crate::cli::miner::{AuthorityOptions, MineJob, MineOutcome, create_chain, mine_blocks};
use crate::cli::progress::Progress;
use crate::cli::{
    EXIT_INTERRUPTED, EXIT_INVALID, choose_backend, resolve_spec, thread_pool, unix_now,
};

pub(crate) fn run(args: &MineArgs) -> Result<ExitCode> {
    let (default_spec, consensus) = match args.consensus {
        MineConsensus::Pow => ("pow-demo", Consensus::Pow),
        MineConsensus::Pos => ("pos-demo", Consensus::Pos),
        MineConsensus::Dpos => ("dpos-demo", Consensus::Dpos),
        MineConsensus::Poa => ("poa-demo", Consensus::Poa),
    };
    let blocks = args.blocks.unwrap_or(if consensus == Consensus::Dpos {
        300
    } else {
        20
    });
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

    // Checked before a new chain file is created; an existing chain's own spec decides below.
    authority_options(args, &spec)?;
    let existing = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
    let (mut state, mut writer) = if existing {
        let replay = replay_file(&path, &pool, args.quiet, unix_now())?;
        if let Some(err) = replay.error {
            eprintln!("chainsmith: {}: {err}", path.display());
            return Ok(ExitCode::from(EXIT_INVALID));
        }
        let state = replay.state.context("a valid chain has a state")?;
        if state.consensus() != consensus {
            bail!(
                "{} is a {} chain: continue it with `chainsmith mine {}`",
                path.display(),
                state.consensus().as_str(),
                state.consensus().as_str()
            );
        }
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

    let authority = authority_options(args, state.spec())?;
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
    let progress = Progress::new(Some(blocks), "blocks", args.quiet);
    let started = Instant::now();
    let outcome = mine_blocks(
        &mut state,
        &mut writer,
        &MineJob {
            blocks,
            tx_per_block: args.tx_per_block,
            opts: &opts,
            pool: &pool,
            progress: &progress,
            authority: &authority,
        },
        &control,
        &mut |_, _, _| {},
    );
    progress.finish();
    let MineOutcome {
        mined,
        interrupted,
        evidence,
    } = outcome?;

    let run = RunStats {
        mined,
        hashes: control.hashes.load(Ordering::Relaxed),
        elapsed: started.elapsed().as_secs_f64(),
        threads,
        backend,
        interrupted,
        evidence,
        names: authority.extra_keys.clone(),
    };
    report(args, &path, &state, &run)?;
    Ok(if interrupted {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// Turns `--offline`, `--vote`, `--votes-per-block` and `--double-sign` into keys, checking
/// each name against the spec and each option against the consensus rule.
fn authority_options(args: &MineArgs, spec: &ChainSpec) -> Result<AuthorityOptions> {
    let consensus = spec.consensus;
    let known = spec.producer_names();
    let key = |name: &str| KeyPair::derive(&spec.wallet_seed, name);
    let mut opts = AuthorityOptions {
        votes_per_block: args.votes_per_block,
        ..AuthorityOptions::default()
    };
    if !args.offline.is_empty() && !consensus.is_authority() {
        bail!("--offline applies to dpos and poa chains");
    }
    for name in &args.offline {
        if !known.contains(&name.as_str()) {
            bail!("--offline {name}: not a producer of spec {:?}", spec.name);
        }
        opts.offline.push(key(name).pubkey());
    }
    if let Some(vote) = &args.vote {
        if consensus != Consensus::Poa {
            bail!("--vote applies to poa chains");
        }
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
        if consensus != Consensus::Dpos {
            bail!("--double-sign applies to dpos chains");
        }
        if !known.contains(&name.as_str()) {
            bail!(
                "--double-sign {name}: not a candidate of spec {:?}",
                spec.name
            );
        }
        opts.double_sign = Some(key(name).pubkey());
    }
    Ok(opts)
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
    evidence: Vec<DoubleSign>,
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
        if let Some(auth) = state.authority() {
            let (key, list) = producers_json(spec.consensus, &producer_rows(auth, &run.names));
            v[key] = list;
            v["irreversible_height"] = auth.irreversible_height().into();
            v["signatures"] = run.mined.into();
            if spec.consensus == Consensus::Dpos {
                v["evidence"] = run
                    .evidence
                    .iter()
                    .map(|e| evidence_json(state, e))
                    .collect();
            }
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
        if spec.consensus.is_authority() {
            writeln!(
                out,
                "  signatures  {} (one per block; no hashing puzzle)",
                run.mined
            )?;
        } else {
            writeln!(out, "  hashes      {}", si(run.hashes as f64))?;
            writeln!(
                out,
                "  hash rate   {}H/s on {} threads ({})",
                si(rate),
                run.threads,
                run.backend
            )?;
        }
        writeln!(out, "  chain       {}", path.display())?;
        if let Some(auth) = state.authority() {
            print_producers(&mut out, state, auth, run)?;
        }
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

/// The producer table's rows, naming keys the chain's spec does not know (signers voted in
/// with `--vote`) by the names given on the command line.
fn producer_rows(auth: &Authority, names: &[KeyPair]) -> Vec<ProducerRow> {
    let mut rows = auth.producer_stats();
    for r in &mut rows {
        if let Some(k) = names.iter().find(|k| k.pubkey() == r.key) {
            k.name().clone_into(&mut r.name);
        }
    }
    rows
}

fn producer_name(state: &ChainState, producer: u16) -> String {
    match state.authority() {
        Some(Authority::Dpos(d)) => d.candidate_names()[usize::from(producer)].clone(),
        _ => producer.to_string(),
    }
}

fn evidence_json(state: &ChainState, e: &DoubleSign) -> serde_json::Value {
    json!({
        "producer": producer_name(state, e.first.producer),
        "slot": e.first.slot,
        "height": e.first.height,
        "hashes": [e.first.hash.to_string(), e.second.hash.to_string()],
    })
}

/// The producer table of an authority chain: blocks and missed turns (only producers that did
/// either), the irreversible height and any double-sign evidence.
fn print_producers(
    out: &mut impl Write,
    state: &ChainState,
    auth: &Authority,
    run: &RunStats,
) -> Result<()> {
    let (what, turns) = match auth {
        Authority::Dpos(_) => ("producer", "missed slots"),
        Authority::Poa(_) => ("signer", "missed in-turn"),
    };
    let height = state.tip().map_or(0, |t| t.height);
    let lib = auth.irreversible_height();
    writeln!(
        out,
        "  irreversible height {lib} ({} blocks behind the tip)",
        height - lib
    )?;
    writeln!(out, "\n  {what:<12} {:>7} {turns:>15}", "blocks")?;
    for r in producer_rows(auth, &run.names) {
        if r.stats.blocks > 0 || r.stats.missed > 0 {
            writeln!(
                out,
                "  {:<12} {:>7} {:>15}",
                r.name, r.stats.blocks, r.stats.missed
            )?;
        }
    }
    for e in &run.evidence {
        writeln!(
            out,
            "  double sign: {} signed {} and {} for slot {} (height {})",
            producer_name(state, e.first.producer),
            e.first.hash,
            e.second.hash,
            e.first.slot,
            e.first.height
        )?;
    }
    Ok(())
}
