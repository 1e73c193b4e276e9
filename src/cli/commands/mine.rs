//! `chainsmith mine pow|pos|dpos|poa`: create or continue a chain file and mine blocks onto it.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chainsmith::chain::produce::{Equivocation, ProduceOptions};
use chainsmith::chain::record::BlockRecord;
use chainsmith::consensus::{BlockWork, RuleReport, name_in};
use chainsmith::hash::Backend;
use chainsmith::hash::search::{SearchControl, SearchMode, SearchOptions};
use chainsmith::pool::stratum::difficulty_of;
use chainsmith::primitives::pow_units::CompactTarget;
use chainsmith::primitives::tx::{KeyPair, PubKey, SignerVote};
use chainsmith::{ChainSpec, ChainState};
use comfy_table::Cell;
use serde::Serialize;

use crate::cli::args::MineArgs;
use crate::cli::format::{self, ProducersJson, plural, producers_json};
use crate::cli::miner::{MineJob, MineOutcome, OpenChain, RateWindow, mine_blocks, open_chain};
use crate::cli::progress::{GREEN, Progress, paint};
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
    // The live bar only when no event stream shares the terminal's attention.
    let progress = Progress::new(Some(blocks), "blocks", args.run.quiet || args.json_log);
    let log = MineLog {
        progress: &progress,
        json: args.json_log,
        names: state.spec().names_by_key(),
        work: rule.info().work,
    };
    log.start(&state, &path, blocks, threads, backend);
    let started = Instant::now();
    let done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        if rule.info().work != BlockWork::Signatures {
            scope.spawn(|| log.rates(&control, &done));
        }
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
            &mut |state, record, hashes, took| log.block(state, record, hashes, took),
        );
        done.store(true, Ordering::Relaxed);
        outcome
    });
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

/// Progress as miners print it: a banner, one line per block and the hash rate every
/// [`RATE_EVERY`], as text on stderr (timestamped when not a terminal; above the bar when it
/// is) or, with `--json-log`, as JSON events on stdout.
struct MineLog<'a> {
    progress: &'a Progress,
    json: bool,
    names: HashMap<PubKey, String>,
    work: BlockWork,
}

/// How often the hash rate is logged.
const RATE_EVERY: Duration = Duration::from_secs(30);

/// `--json-log`'s `start` event.
#[derive(Serialize)]
struct StartEvent<'a> {
    event: &'static str,
    consensus: &'static str,
    spec: &'a str,
    spec_hash: String,
    chain: String,
    height: u32,
    blocks: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    difficulty: Option<f64>,
}

/// `--json-log`'s `block` event: one per block appended and synced.
#[derive(Serialize)]
struct BlockEvent {
    event: &'static str,
    height: u32,
    hash: String,
    time: u32,
    txs: usize,
    /// Seconds since the previous block was synced (or the run started).
    seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    difficulty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    producer: Option<String>,
}

/// `--json-log`'s `rate` event: hashes per second over the last 10 s and 60 s.
#[derive(Serialize)]
struct RateEvent {
    event: &'static str,
    hashes: u64,
    hash_rate_10s: f64,
    hash_rate_60s: f64,
}

impl MineLog<'_> {
    fn emit(&self, event: &impl Serialize) {
        // A closed stdout ends the run at its final report; an event line lost is no harm.
        if let Ok(line) = serde_json::to_string(event) {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{line}").and_then(|()| out.flush());
        }
    }

    fn start(
        &self,
        state: &ChainState,
        path: &Path,
        blocks: u64,
        threads: usize,
        backend: Backend,
    ) {
        let spec = state.spec();
        let height = state.tip().map_or(0, |t| t.height);
        let hashing = self.work != BlockWork::Signatures;
        let difficulty =
            (self.work == BlockWork::NonceSearch).then(|| bits_difficulty(state.required_bits()));
        if self.json {
            self.emit(&StartEvent {
                event: "start",
                consensus: spec.consensus.name(),
                spec: &spec.name,
                spec_hash: spec.spec_hash().to_string(),
                chain: path.display().to_string(),
                height,
                blocks,
                threads: hashing.then_some(threads),
                backend: hashing.then(|| backend.name()),
                difficulty,
            });
            return;
        }
        self.progress.log(&format!(
            "chainsmith {} · mine {} · spec {} · {} at height {height} · {} to mine",
            env!("CARGO_PKG_VERSION"),
            spec.consensus,
            spec.name,
            path.display(),
            plural(blocks, "block"),
        ));
        let cpu = crate::cli::cpu::Cpu::detect();
        match self.work {
            BlockWork::NonceSearch => self.progress.log(&format!(
                "nonce search: {} ({}; {}) on {} · difficulty {} (bits {})",
                backend,
                cpu.model,
                cpu.features.join(", "),
                plural(threads as u64, "thread"),
                difficulty.map_or_else(String::new, format::difficulty),
                state.required_bits()
            )),
            BlockWork::KernelSearch => self.progress.log(&format!(
                "stake kernel search: {} ({}; {}) on {} (kernels count as hashes)",
                backend,
                cpu.model,
                cpu.features.join(", "),
                plural(threads as u64, "thread"),
            )),
            BlockWork::Signatures => {}
        }
    }

    fn block(&self, state: &ChainState, record: &BlockRecord, hashes: u64, took: Duration) {
        let hashing = self.work != BlockWork::Signatures;
        let difficulty =
            (self.work == BlockWork::NonceSearch).then(|| bits_difficulty(record.bits));
        let producer = state
            .consensus()
            .rule()
            .producer_of(&record.to_block())
            .map(|p| {
                let name = name_in(&self.names, &p.key);
                p.note
                    .map_or_else(|| name.clone(), |n| format!("{name} ({n})"))
            });
        if self.json {
            self.emit(&BlockEvent {
                event: "block",
                height: record.height,
                hash: record.hash.to_string(),
                time: record.time,
                txs: record.txs.len(),
                seconds: took.as_secs_f64(),
                hashes: hashing.then_some(hashes),
                difficulty,
                producer,
            });
            return;
        }
        if !self.progress.logs() {
            return;
        }
        let hash = record.hash.to_string();
        let mut line = format!(
            "{} {} {}… in {}",
            paint("block", GREEN),
            record.height,
            &hash[..16],
            format::duration(took.as_secs_f64())
        );
        if hashing {
            let rate = hashes as f64 / took.as_secs_f64().max(1e-9);
            line += &format!(
                ", {} ({}H/s)",
                format::count(hashes, "hash", "hashes"),
                format::sig3(rate)
            );
        }
        if let Some(d) = difficulty {
            line += &format!(", diff {}", format::difficulty(d));
        }
        line += &format!(", {}", plural(record.txs.len() as u64, "tx"));
        if let Some(p) = producer {
            line += &format!(", by {p}");
        }
        self.progress.log(&line);
    }

    /// Logs the hash rate every [`RATE_EVERY`] until `done`.
    fn rates(&self, control: &SearchControl, done: &AtomicBool) {
        if !self.json && !self.progress.logs() {
            return;
        }
        let mut short = RateWindow::new(Duration::from_secs(10));
        let mut long = RateWindow::new(Duration::from_secs(60));
        let mut next = Instant::now() + RATE_EVERY;
        while !done.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200));
            let now = Instant::now();
            let hashes = control.hashes.load(Ordering::Relaxed);
            let (r10, r60) = (short.push(now, hashes), long.push(now, hashes));
            if now < next {
                continue;
            }
            next = now + RATE_EVERY;
            if self.json {
                self.emit(&RateEvent {
                    event: "rate",
                    hashes,
                    hash_rate_10s: r10,
                    hash_rate_60s: r60,
                });
            } else {
                self.progress.log(&format!(
                    "speed 10s/60s {}/{}H/s · {}hashes",
                    format::sig3(r10).trim_end(),
                    format::sig3(r60),
                    format::si(hashes as f64)
                ));
            }
        }
    }
}

/// The Bitcoin difficulty of compact bits (difficulty 1 = `0x1d00ffff`).
fn bits_difficulty(bits: CompactTarget) -> f64 {
    bits.to_target().map_or(0.0, difficulty_of)
}

/// Turns `--tx-per-block`, `--offline`, `--vote`, `--votes-per-block` and `--double-sign`
/// into the producer's options, checking each name against the spec; the rule's producer
/// refuses the options it does not have. The nonce-search options are refused for rules that
/// run no nonce search.
fn produce_options(args: &MineArgs, spec: &ChainSpec) -> Result<ProduceOptions> {
    let rule = spec.consensus.rule();
    let known = spec.producer_names();
    let key = |name: &str| KeyPair::derive(&spec.wallet_seed, name);
    let work = rule.info().work;
    if work != BlockWork::NonceSearch && args.deterministic {
        bail!(
            "--deterministic applies to the nonce search of pow chains, not to {} chains{}",
            rule.name(),
            if work == BlockWork::KernelSearch {
                " (the stake search always finds the same block)"
            } else {
                ""
            }
        );
    }
    if work == BlockWork::Signatures {
        for (given, flag) in [
            (args.backend.is_some(), "--backend"),
            (args.run.threads.is_some(), "--threads"),
        ] {
            if given {
                bail!(
                    "{flag} applies to the hash searches of pow and pos chains, not to {} \
                     chains",
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

/// `mine --json` (and `--json-log`'s last event, `done`): one object, keys stable.
#[derive(Serialize)]
struct MineReport {
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    consensus: &'static str,
    spec: String,
    spec_hash: String,
    chain: String,
    blocks_mined: u64,
    height: u32,
    elapsed_s: f64,
    interrupted: bool,
    /// Nonces (pow) or stake kernels (pos) tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    hashes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hash_rate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threads: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    backend: Option<&'static str>,
    /// Signature rules: the signatures the mined blocks' seals carry.
    #[serde(skip_serializing_if = "Option::is_none")]
    signatures: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    irreversible_height: Option<u32>,
    #[serde(flatten)]
    producers: ProducersJson,
    #[serde(skip_serializing_if = "Option::is_none")]
    evidence: Option<Vec<EvidenceJson>>,
}

/// A double sign caught while mining.
#[derive(Serialize)]
struct EvidenceJson {
    producer: String,
    slot: u64,
    height: u32,
    hashes: [String; 2],
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
    let work = rule.info().work;
    let report = named_report(state.rule_state().report(), &run.names);
    let per_block = rule.seal_signatures(spec);
    if args.run.json || args.json_log {
        let hashing = work != BlockWork::Signatures;
        let v = MineReport {
            event: args.json_log.then_some("done"),
            consensus: rule.name(),
            spec: spec.name.clone(),
            spec_hash: spec.spec_hash().to_string(),
            chain: path.display().to_string(),
            blocks_mined: run.mined,
            height,
            elapsed_s: run.elapsed,
            interrupted: run.interrupted,
            hashes: hashing.then_some(run.hashes),
            hash_rate: hashing.then_some(rate),
            threads: hashing.then_some(run.threads),
            backend: hashing.then(|| run.backend.name()),
            signatures: (!hashing).then_some(run.mined * per_block),
            irreversible_height: state.rule_state().irreversible_height(),
            producers: producers_json(&report),
            evidence: rule.info().detects_equivocation.then(|| {
                run.evidence
                    .iter()
                    .map(|e| EvidenceJson {
                        producer: producer_name(state, &e.producer),
                        slot: e.turn,
                        height: e.height,
                        hashes: [e.hashes[0].to_string(), e.hashes[1].to_string()],
                    })
                    .collect()
            }),
        };
        serde_json::to_writer(&mut out, &v)?;
        writeln!(out)?;
        return Ok(());
    }
    let note = if run.interrupted {
        " (interrupted)"
    } else {
        ""
    };
    writeln!(
        out,
        "mined {} on {} (tip height {height}) in {}{note}",
        plural(run.mined, "block"),
        spec.name,
        format::duration(run.elapsed)
    )?;
    let rate_line = |label: &str| {
        format!(
            "  {label:<11} {}H/s on {} ({})",
            format::sig3(rate),
            plural(run.threads as u64, "thread"),
            run.backend
        )
    };
    match work {
        BlockWork::NonceSearch => {
            writeln!(
                out,
                "  hashes      {}",
                format::si(run.hashes as f64).trim_end()
            )?;
            writeln!(out, "{}", rate_line("hash rate"))?;
        }
        BlockWork::KernelSearch => {
            writeln!(
                out,
                "  kernels     {} tried",
                format::count(run.hashes, "stake kernel", "stake kernels")
            )?;
            writeln!(out, "{}", rate_line("kernel rate"))?;
        }
        BlockWork::Signatures => {
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
            "  irreversible height {lib} ({} behind the tip)",
            plural(u64::from(height - lib), "block")
        )?;
    }
    let Some((what, rows)) = &report.producers else {
        return Ok(());
    };
    let staking = rows.iter().any(|r| r.coin_days.is_some());
    let turns = rows.iter().any(|r| r.missed.is_some());
    let mut table = format::table();
    if staking {
        table.set_header([
            "stakeholder",
            "coins",
            "blocks",
            "coin-days consumed",
            "interest",
        ]);
        for r in rows {
            table.add_row([
                Cell::new(&r.name),
                format::number_cell(format::coins(r.coins.unwrap_or(0.0))),
                format::number_cell(r.blocks.to_string()),
                format::number_cell(r.coin_days.unwrap_or(0).to_string()),
                format::number_cell(format::coins(r.interest.unwrap_or(0.0))),
            ]);
        }
    } else if turns {
        let (one, turns) = if *what == "producers" {
            ("producer", "missed slots")
        } else {
            ("signer", "missed in turn")
        };
        table.set_header([one, "blocks", turns]);
        for r in rows {
            let missed = r.missed.unwrap_or(0);
            if r.blocks > 0 || missed > 0 {
                table.add_row([
                    Cell::new(&r.name),
                    format::number_cell(r.blocks.to_string()),
                    format::number_cell(missed.to_string()),
                ]);
            }
        }
    } else {
        // Leaders elected for a term have no turns to miss.
        let one = what.strip_suffix("ies").map_or_else(
            || what.trim_end_matches('s').to_owned(),
            |w| format!("{w}y"),
        );
        table.set_header([one.as_str(), "blocks"]);
        for r in rows.iter().filter(|r| r.blocks > 0) {
            table.add_row([
                Cell::new(&r.name),
                format::number_cell(r.blocks.to_string()),
            ]);
        }
    }
    writeln!(out)?;
    writeln!(out, "{}", crate::cli::format::render(&mut table))?;
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
