//! `chainsmith verify CHAIN [--repair]`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chainsmith::chain::state::BlockError;
use chainsmith::chain::store::{ChainLock, truncate};
use chainsmith::chain::verify::{LineError, LineErrorKind, Replay};
use serde::Serialize;

use crate::cli::args::VerifyArgs;
use crate::cli::commands::{ChainSummary, builtin_lookalike, named, replay_file, with_file};
use crate::cli::format::{ProducersJson, producers_json};
use crate::cli::{EXIT_INVALID, thread_pool, unix_now};

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let pool = thread_pool(args.run.threads)?;
    let path = &args.chain;
    // Repair writes: it waits for no miner and lets none start until it is done.
    let _lock = (args.repair && path.is_file())
        .then(|| ChainLock::acquire(path))
        .transpose()?;
    let replay = replay_file(path, &pool, args.run.quiet, unix_now(), &mut ())?;
    let mut repaired = None;
    let mut refused = None;
    if let Some(err) = replay.error.as_ref().filter(|_| args.repair) {
        match repair(path, err, replay.valid_bytes)? {
            Ok(done) => repaired = Some((err.clone(), done)),
            Err(why) => refused = Some(why),
        }
    }
    let mut out = std::io::stdout().lock();
    let tip = tip_summary(&replay);
    let warnings: Vec<String> = replay
        .state
        .as_ref()
        .and_then(|s| builtin_lookalike(s.spec()))
        .into_iter()
        .collect();
    if !args.run.json {
        for w in &warnings {
            eprintln!("chainsmith: warning: {}: {w}", path.display());
        }
    }
    if args.run.json {
        let state = replay.state.as_ref();
        let report = VerifyReport {
            valid: replay.error.is_none() || repaired.is_some(),
            chain: ChainSummary::of(&replay),
            total_work: tip.as_ref().map(|t| t.work.clone()),
            irreversible_height: tip.as_ref().and_then(|t| t.irreversible),
            producers: state
                .map(|s| producers_json(&s.rule_state().report()))
                .unwrap_or_default(),
            warnings,
            repaired: repaired.as_ref().map(|(err, done)| RepairJson {
                action: done.action(),
                from_line: err.line,
                from_height: err.height,
                removed_bytes: done.removed(),
                reason: named(&replay, &err.kind),
            }),
            error: replay
                .error
                .as_ref()
                .filter(|_| repaired.is_none())
                .map(|err| ErrorJson {
                    height: err.height,
                    line: err.line,
                    reason: named(&replay, &err.kind),
                    repair: err
                        .kind
                        .repair_hint(replay.valid_bytes)
                        .map(|h| with_file(h, path)),
                    not_repaired: refused,
                }),
        };
        serde_json::to_writer(&mut out, &report)?;
        writeln!(out)?;
    } else if let Some((err, done)) = &repaired {
        let what = match done {
            Repaired::Truncated(removed) => format!("removed {removed} bytes from"),
            Repaired::NewlineAdded => "added the missing newline to".to_owned(),
            Repaired::Emptied(removed) => {
                format!("no complete genesis: removed its {removed} bytes at")
            }
        };
        writeln!(
            out,
            "repaired {}: {what} line {} (height {}): {}",
            path.display(),
            err.line,
            err.height,
            named(&replay, &err.kind)
        )?;
        if matches!(done, Repaired::Emptied(_)) {
            writeln!(
                out,
                "the file holds no chain now; `chainsmith mine` starts it anew"
            )?;
        }
        if let Some(t) = &tip {
            writeln!(out, "{t}")?;
        }
    } else if let Some(err) = &replay.error {
        writeln!(out, "invalid: {}: {}", path.display(), named(&replay, err))?;
        if let Some(why) = refused {
            writeln!(out, "not repaired: {why}")?;
        } else if let Some(hint) = err.kind.repair_hint(replay.valid_bytes) {
            writeln!(out, "to repair: {}", with_file(hint, path))?;
        }
        if let Some(t) = &tip {
            writeln!(
                out,
                "the first {} blocks (to height {}) are valid",
                t.blocks, t.height
            )?;
        }
    } else if let Some(t) = &tip {
        writeln!(out, "{t}")?;
    }
    let valid = replay.error.is_none() || repaired.is_some();
    Ok(if valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_INVALID)
    })
}

/// `verify --json`: one object, keys stable.
#[derive(Serialize)]
struct VerifyReport {
    valid: bool,
    #[serde(flatten)]
    chain: ChainSummary,
    total_work: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    irreversible_height: Option<u32>,
    #[serde(flatten)]
    producers: ProducersJson,
    warnings: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    repaired: Option<RepairJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorJson>,
}

#[derive(Serialize)]
struct RepairJson {
    action: &'static str,
    from_line: u64,
    from_height: u64,
    removed_bytes: u64,
    reason: String,
}

#[derive(Serialize)]
struct ErrorJson {
    height: u64,
    line: u64,
    reason: String,
    /// What `--repair` would do, where it would.
    #[serde(skip_serializing_if = "Option::is_none")]
    repair: Option<String>,
    /// Why `--repair` was refused, when it was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    not_repaired: Option<&'static str>,
}

/// What `--repair` did.
enum Repaired {
    /// Cut the file after its valid blocks, removing this many bytes.
    Truncated(u64),
    /// Added the newline a whole last block had lost.
    NewlineAdded,
    /// Emptied a file whose genesis line was torn or damaged (this many bytes).
    Emptied(u64),
}

impl Repaired {
    const fn action(&self) -> &'static str {
        match self {
            Self::Truncated(_) => "truncated",
            Self::NewlineAdded => "newline_added",
            Self::Emptied(_) => "emptied",
        }
    }

    const fn removed(&self) -> u64 {
        match self {
            Self::Truncated(n) | Self::Emptied(n) => *n,
            Self::NewlineAdded => 0,
        }
    }
}

/// Repairs what a crash or a damaged write can leave, and nothing else: a torn, damaged or
/// invalid tail is cut after the last valid block; a whole last block that lost its newline
/// gets it back; a file whose genesis line is torn or damaged is emptied (it holds no block). A
/// block ahead of this machine's clock is not damage — the clock may be wrong — and an invalid
/// genesis is a different chain, not a torn one: both are refused (the inner `Err`).
fn repair(
    path: &std::path::Path,
    err: &LineError,
    valid_bytes: u64,
) -> Result<Result<Repaired, &'static str>> {
    use std::io::Write as _;

    let size = std::fs::metadata(path)?.len();
    let damage = matches!(
        err.kind,
        LineErrorKind::Torn | LineErrorKind::Damaged(_) | LineErrorKind::Empty
    );
    let cut =
        |len: u64| truncate(path, len).with_context(|| format!("truncating {}", path.display()));
    match &err.kind {
        LineErrorKind::MissingNewline => {
            let mut file = std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            file.write_all(b"\n")?;
            file.sync_data()?;
            Ok(Ok(Repaired::NewlineAdded))
        }
        LineErrorKind::Block(BlockError::TimeTooNew { .. }) => Ok(Err(
            "a block ahead of this machine's clock is not damage (is the clock behind?); nothing removed",
        )),
        _ if valid_bytes > 0 => {
            cut(valid_bytes)?;
            Ok(Ok(Repaired::Truncated(size - valid_bytes)))
        }
        LineErrorKind::Empty => Ok(Err("the file is empty: there is nothing to repair")),
        _ if damage => {
            cut(0)?;
            Ok(Ok(Repaired::Emptied(size)))
        }
        _ => Ok(Err(
            "the genesis line is invalid, not torn: it belongs to another chain; nothing removed",
        )),
    }
}

/// The valid prefix of a replayed chain.
struct TipSummary {
    blocks: u64,
    height: u32,
    hash: String,
    work: String,
    /// DPoS and proof of authority: the last irreversible height.
    irreversible: Option<u32>,
    /// The spec's name and hash: the rules the chain was checked under.
    spec: String,
    spec_hash: String,
}

impl std::fmt::Display for TipSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "valid: {}, height {}, tip {}, ",
            crate::cli::format::plural(self.blocks, "block"),
            self.height,
            self.hash
        )?;
        match self.irreversible {
            Some(lib) => write!(f, "irreversible height {lib}")?,
            None => write!(f, "total work {}", self.work)?,
        }
        write!(f, ", spec {} ({})", self.spec, self.spec_hash)
    }
}

fn tip_summary(replay: &Replay) -> Option<TipSummary> {
    let state = replay.state.as_ref()?;
    let tip = state.tip()?;
    Some(TipSummary {
        blocks: state.block_count(),
        height: tip.height,
        hash: tip.hash.to_string(),
        work: state.total_work().to_string(),
        irreversible: state.rule_state().irreversible_height(),
        spec: state.spec().name.clone(),
        spec_hash: state.spec().spec_hash().to_string(),
    })
}
