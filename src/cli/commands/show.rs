//! `chainsmith show CHAIN`: print blocks as a table, JSON lines or header hex.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::LineReader;

use crate::cli::EXIT_INVALID;
use crate::cli::args::ShowArgs;
use crate::cli::format::utc;

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let path = &args.chain;
    let mut reader =
        LineReader::open(path).with_context(|| format!("reading chain {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    if !args.hex && !args.json {
        writeln!(
            out,
            "{:>7}  {:<64}  {:<23}  {:<8}  {:>10}  {:>3}",
            "height", "hash", "time", "bits", "nonce", "txs"
        )?;
    }
    let mut shown = 0u64;
    while let Some(line) = reader
        .next_line()
        .with_context(|| format!("reading chain {}", path.display()))?
    {
        let height = line.number - 1;
        if args.height.is_some_and(|h| h != height) {
            continue;
        }
        let record: BlockRecord = match serde_json::from_str(&line.text) {
            Ok(r) => r,
            Err(e) => {
                eprintln!(
                    "chainsmith: {}: line {}: height {height}: malformed block line: {e}",
                    path.display(),
                    line.number
                );
                return Ok(ExitCode::from(EXIT_INVALID));
            }
        };
        if args.hex {
            writeln!(out, "{}", hex::encode(record.header().to_bytes()))?;
        } else if args.json {
            writeln!(out, "{}", line.text)?;
        } else {
            writeln!(
                out,
                "{:>7}  {}  {}  {}  {:>10}  {:>3}",
                record.height,
                record.hash,
                utc(record.time),
                record.bits,
                record.nonce,
                record.txs.len()
            )?;
        }
        shown += 1;
        if args.height.is_some() {
            break;
        }
    }
    if let Some(h) = args.height.filter(|_| shown == 0) {
        bail!("{}: no block at height {h}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
