//! `chainsmith show CHAIN`: print blocks as a table, JSON lines or header hex.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::ChainSpec;
use chainsmith::chain::store::LineReader;
use chainsmith::primitives::tx::{PubKey, Transaction};

use crate::cli::EXIT_INVALID;
use crate::cli::args::ShowArgs;
use crate::cli::format::utc;

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let path = &args.chain;
    let mut reader =
        LineReader::open(path).with_context(|| format!("reading chain {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut names: Option<HashMap<PubKey, String>> = None;
    let mut shown = 0u64;
    while let Some(line) = reader
        .next_line()
        .with_context(|| format!("reading chain {}", path.display()))?
    {
        let height = line.number - 1;
        // Genesis is always read: its spec names the producers.
        if height != 0 && args.height.is_some_and(|h| h != height) {
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
        // Genesis carries the spec, whose keys name the producers.
        let names = names.get_or_insert_with(|| {
            record
                .spec
                .as_ref()
                .map(ChainSpec::names_by_key)
                .unwrap_or_default()
        });
        if args.height.is_some_and(|h| h != height) {
            continue;
        }
        if args.hex {
            writeln!(out, "{}", hex::encode(record.header().to_bytes()))?;
        } else if args.json {
            writeln!(out, "{}", line.text)?;
        } else {
            if shown == 0 {
                writeln!(
                    out,
                    "{:>7}  {:<64}  {:<23}  {:<8}  {:>10}  {:>3}  producer",
                    "height", "hash", "time", "bits", "nonce", "txs"
                )?;
            }
            writeln!(
                out,
                "{:>7}  {}  {}  {}  {:>10}  {:>3}  {}",
                record.height,
                record.hash,
                utc(record.time),
                record.bits,
                record.nonce,
                record.txs.len(),
                producer(&record, names)
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

/// Who made the block, as its consensus rule says: the staker, the Clique signer (and whether
/// in turn) or the DPoS producer (and its slot); empty for proof of work.
fn producer(record: &BlockRecord, names: &HashMap<PubKey, String>) -> String {
    let name = |k: &PubKey| {
        names
            .get(k)
            .cloned()
            .unwrap_or_else(|| format!("{}…", &k.to_string()[..12]))
    };
    match record.txs.get(1) {
        Some(Transaction::Coinstake { outputs, .. }) => {
            outputs.first().map_or_else(String::new, |o| name(&o.to))
        }
        Some(Transaction::Clique {
            signer, difficulty, ..
        }) => {
            let turn = if *difficulty == chainsmith::poa::DIFF_IN_TURN {
                "in turn"
            } else {
                "out of turn"
            };
            format!("{} ({turn})", name(signer))
        }
        Some(Transaction::Producer { producer, slot }) => {
            format!("{} (slot {slot})", name(producer))
        }
        _ => String::new(),
    }
}
