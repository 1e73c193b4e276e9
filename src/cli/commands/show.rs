//! `chainsmith show CHAIN`: print blocks as a table, JSON lines or header hex.

use std::collections::HashMap;
use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::ChainSpec;
use chainsmith::chain::store::LineReader;
use chainsmith::consensus::Rule;
use chainsmith::primitives::tx::PubKey;

use crate::cli::EXIT_INVALID;
use crate::cli::args::ShowArgs;
use crate::cli::format::utc;

/// What the genesis line tells about every block: its rule and its keys' names.
type SpecNames = (Option<&'static dyn Rule>, HashMap<PubKey, String>);

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let path = &args.chain;
    let mut reader =
        LineReader::open(path).with_context(|| format!("reading chain {}", path.display()))?;
    let mut out = std::io::stdout().lock();
    let mut spec_names: Option<SpecNames> = None;
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
        // Genesis carries the spec: its rule says who made each block, its keys name them.
        let (rule, names) = spec_names.get_or_insert_with(|| {
            let spec = record.spec.as_ref();
            (
                spec.map(|s| s.consensus.rule()),
                spec.map(ChainSpec::names_by_key).unwrap_or_default(),
            )
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
                rule.map_or_else(String::new, |r| producer(r, &record, names))
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
/// in turn) or the DPoS producer (and its slot); empty where no one key made it.
fn producer(rule: &dyn Rule, record: &BlockRecord, names: &HashMap<PubKey, String>) -> String {
    let Some(p) = rule.producer_of(&record.to_block()) else {
        return String::new();
    };
    let name = names
        .get(&p.key)
        .cloned()
        .unwrap_or_else(|| format!("{}…", &p.key.to_string()[..12]));
    match p.note {
        Some(note) => format!("{name} ({note})"),
        None => name,
    }
}
