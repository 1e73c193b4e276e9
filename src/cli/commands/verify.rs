//! `chainsmith verify CHAIN [--repair]`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result};
use chainsmith::chain::store::truncate;
use chainsmith::chain::verify::Replay;
use serde_json::json;

use crate::cli::args::VerifyArgs;
use crate::cli::commands::{named, replay_file};
use crate::cli::format::producers_json;
use crate::cli::{EXIT_INVALID, thread_pool, unix_now};

pub(crate) fn run(args: &VerifyArgs) -> Result<ExitCode> {
    let pool = thread_pool(args.threads)?;
    let path = &args.chain;
    let replay = replay_file(path, &pool, args.quiet, unix_now(), &mut ())?;
    let mut repaired = None;
    if let Some(err) = replay.error.as_ref().filter(|_| args.repair)
        && replay.valid_bytes > 0
    {
        let size = std::fs::metadata(path)?.len();
        truncate(path, replay.valid_bytes)
            .with_context(|| format!("truncating {}", path.display()))?;
        repaired = Some((err.clone(), size - replay.valid_bytes));
    }
    let mut out = std::io::stdout().lock();
    let tip = tip_summary(&replay);
    let blocks = tip.as_ref().map_or(0, |t| t.blocks);
    if args.json {
        let mut v = json!({
            "valid": replay.error.is_none() || repaired.is_some(),
            "blocks": blocks,
            "height": tip.as_ref().map(|t| t.height),
            "tip": tip.as_ref().map(|t| t.hash.clone()),
            "total_work": tip.as_ref().map(|t| t.work.clone()),
        });
        if let Some(lib) = tip.as_ref().and_then(|t| t.irreversible) {
            v["irreversible_height"] = lib.into();
        }
        if let Some((key, rows)) = replay
            .state
            .as_ref()
            .and_then(|s| s.rule_state().report().producers)
        {
            v[key] = producers_json(&rows);
        }
        if let Some((err, removed)) = &repaired {
            v["repaired"] = json!({
                "from_line": err.line,
                "from_height": err.height,
                "removed_bytes": removed,
                "reason": named(&replay, &err.kind),
            });
        } else if let Some(err) = &replay.error {
            v["error"] = json!({
                "height": err.height,
                "line": err.line,
                "reason": named(&replay, &err.kind),
            });
        }
        writeln!(out, "{v}")?;
    } else if let Some((err, removed)) = &repaired {
        writeln!(
            out,
            "repaired {}: removed {removed} bytes from line {} (height {}): {}",
            path.display(),
            err.line,
            err.height,
            named(&replay, &err.kind)
        )?;
        if let Some(t) = &tip {
            writeln!(out, "{t}")?;
        }
    } else if let Some(err) = &replay.error {
        writeln!(out, "invalid: {}: {}", path.display(), named(&replay, err))?;
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

/// The valid prefix of a replayed chain.
struct TipSummary {
    blocks: u64,
    height: u32,
    hash: String,
    work: String,
    /// DPoS and proof of authority: the last irreversible height.
    irreversible: Option<u32>,
}

impl std::fmt::Display for TipSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "valid: {} blocks, height {}, tip {}, ",
            self.blocks, self.height, self.hash
        )?;
        match self.irreversible {
            Some(lib) => write!(f, "irreversible to height {lib}"),
            None => write!(f, "total work {}", self.work),
        }
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
    })
}
