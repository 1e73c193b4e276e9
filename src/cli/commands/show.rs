//! `chainsmith show CHAIN`: print blocks as a table, JSON lines or header hex.

use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::ChainSpec;
use chainsmith::chain::store::{Line, LineReader};
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::consensus::{BlockWork, Rule};
use chainsmith::primitives::tx::{PubKey, Transaction};
use comfy_table::{CellAlignment, ColumnConstraint, ContentArrangement, Table, presets};

use crate::cli::EXIT_INVALID;
use crate::cli::args::ShowArgs;

/// The width of the table when stdout is not a terminal (a pipe, a file, a test).
const PIPE_WIDTH: u16 = 80;

/// Hex digits of a hash or key shown without `--wide`.
const SHORT_HASH: usize = 16;
const SHORT_KEY: usize = 8;

/// The heights asked for.
enum Range {
    /// `--from`/`--to`/`--height` (inclusive; `to` is the tip when absent).
    Heights { from: u64, to: u64 },
    /// `--tail N`, optionally up to `--to`.
    Tail { count: usize, to: u64 },
}

impl Range {
    fn from_args(args: &ShowArgs) -> Result<Self> {
        let to = args.height.or(args.to).unwrap_or(u64::MAX);
        if let Some(count) = args.tail {
            let count = usize::try_from(count).unwrap_or(usize::MAX);
            return Ok(Self::Tail { count, to });
        }
        let from = args.height.or(args.from).unwrap_or(0);
        if from > to {
            bail!("--from {from} is after --to {to}: no heights to show");
        }
        Ok(Self::Heights { from, to })
    }
}

/// What the genesis line tells about every block: its spec's name, its rule and its keys'
/// names.
struct ChainInfo {
    spec: Option<String>,
    rule: Option<&'static dyn Rule>,
    names: HashMap<PubKey, String>,
}

impl ChainInfo {
    fn new(genesis: &BlockRecord) -> Self {
        let spec = genesis.spec.as_ref();
        Self {
            spec: spec.map(|s| s.name.clone()),
            rule: spec.map(|s| s.consensus.rule()),
            names: spec.map(ChainSpec::names_by_key).unwrap_or_default(),
        }
    }

    /// What making a block took: a nonce search (also when the genesis line names no rule),
    /// a kernel search (bits are the stake target, the nonce is unused) or signatures only
    /// (bits and nonce fixed).
    fn work(&self) -> BlockWork {
        self.rule.map_or(BlockWork::NonceSearch, |r| r.info().work)
    }
}

/// A line that is not a block: where it is and why.
struct Malformed {
    line: u64,
    kind: LineErrorKind,
}

/// Where the blocks go: stdout as they come (`--hex`, `--json`) or table rows.
enum Sink<W> {
    Hex(W),
    Json(W),
    Table(Vec<[String; 7]>),
}

pub(crate) fn run(args: &ShowArgs) -> Result<ExitCode> {
    let range = Range::from_args(args)?;
    let path = &args.chain;
    let mut sink = if args.hex {
        Sink::Hex(std::io::stdout().lock())
    } else if args.json {
        Sink::Json(std::io::stdout().lock())
    } else {
        Sink::Table(Vec::new())
    };
    match show(path, &range, args.wide, &mut sink)? {
        Ok(Shown::Blocks {
            info,
            tip,
            first,
            last,
        }) => {
            if let Sink::Table(rows) = sink {
                print_table(&info, tip, (first, last), &rows, args.wide)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Ok(Shown::Empty) => {
            eprintln!("chainsmith: {}: {}", path.display(), LineErrorKind::Empty);
            Ok(ExitCode::from(EXIT_INVALID))
        }
        Ok(Shown::Nothing { from, tip }) => bail!(
            "{}: no block at height {from}: the tip is at height {tip}",
            path.display()
        ),
        Err(m) => {
            eprintln!(
                "chainsmith: {}: line {}: height {}: {}",
                path.display(),
                m.line,
                m.line - 1,
                m.kind
            );
            Ok(ExitCode::from(EXIT_INVALID))
        }
    }
}

/// What reading the file found.
enum Shown {
    /// Blocks `first..=last` went to the sink; the last block read is at `tip` (the file's
    /// tip for a table, which reads the whole file).
    Blocks {
        info: ChainInfo,
        tip: u64,
        first: u64,
        last: u64,
    },
    /// The file has no lines.
    Empty,
    /// No block from height `from` on: the tip is at `tip`.
    Nothing { from: u64, tip: u64 },
}

/// Reads `path` and sends the blocks in `range` to `sink`. Only the genesis line and the lines
/// in the range are parsed.
fn show<W: Write>(
    path: &Path,
    range: &Range,
    wide: bool,
    sink: &mut Sink<W>,
) -> Result<Result<Shown, Malformed>> {
    let reading = || format!("reading chain {}", path.display());
    let mut reader = LineReader::open(path).with_context(reading)?;
    let Some(first_line) = reader.next_line().with_context(reading)? else {
        return Ok(Ok(Shown::Empty));
    };
    let genesis = match parse(&first_line) {
        Ok(record) => record,
        Err(m) => return Ok(Err(m)),
    };
    let info = ChainInfo::new(&genesis);
    // A table names the tip, so it reads the whole file; hex and JSON stop after the range.
    let read_to_end = matches!(sink, Sink::Table(_));
    let mut tail: VecDeque<Line> = VecDeque::new();
    let mut shown: Option<(u64, u64)> = None;
    let mut tip = 0;
    let mut next = Some(first_line);
    while let Some(line) = next {
        let height = line.number - 1;
        // Past a damaged line the file cannot be read line by line, in the range or not.
        if let Some(m) = damaged(&line) {
            return Ok(Err(m));
        }
        tip = height;
        match *range {
            Range::Tail { count, to } => {
                if height <= to {
                    if tail.len() == count {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                } else if !read_to_end {
                    break;
                }
            }
            Range::Heights { from, to } => {
                if (from..=to).contains(&height) {
                    let record = if height == 0 {
                        genesis.clone()
                    } else {
                        match parse(&line) {
                            Ok(r) => r,
                            Err(m) => return Ok(Err(m)),
                        }
                    };
                    emit(sink, &info, &record, wide)?;
                    shown = Some((shown.map_or(height, |s| s.0), height));
                } else if height > to && !read_to_end {
                    break;
                }
            }
        }
        next = reader.next_line().with_context(reading)?;
    }
    for line in tail {
        let height = line.number - 1;
        match parse(&line) {
            Ok(record) => emit(sink, &info, &record, wide)?,
            Err(m) => return Ok(Err(m)),
        }
        shown = Some((shown.map_or(height, |s| s.0), height));
    }
    Ok(Ok(match shown {
        Some((first, last)) => Shown::Blocks {
            info,
            tip,
            first,
            last,
        },
        None => Shown::Nothing {
            from: match *range {
                Range::Heights { from, .. } => from,
                Range::Tail { .. } => 0,
            },
            tip,
        },
    }))
}

/// Why `line` is not text, if it is not.
fn damaged(line: &Line) -> Option<Malformed> {
    line.damage.map(|damage| Malformed {
        line: line.number,
        kind: LineErrorKind::Damaged(damage),
    })
}

fn parse(line: &Line) -> Result<BlockRecord, Malformed> {
    if let Some(m) = damaged(line) {
        return Err(m);
    }
    serde_json::from_str(&line.text).map_err(|e| Malformed {
        line: line.number,
        kind: LineErrorKind::Json(e.to_string()),
    })
}

fn emit<W: Write>(
    sink: &mut Sink<W>,
    info: &ChainInfo,
    record: &BlockRecord,
    wide: bool,
) -> Result<()> {
    match sink {
        Sink::Hex(out) => writeln!(out, "{}", hex::encode(record.header().to_bytes()))?,
        Sink::Json(out) => {
            serde_json::to_writer(&mut *out, record)?;
            writeln!(out)?;
        }
        Sink::Table(rows) => rows.push(row(info, record, wide)),
    }
    Ok(())
}

/// One table row: height, hash, time, txs, bits, nonce, producer.
fn row(info: &ChainInfo, record: &BlockRecord, wide: bool) -> [String; 7] {
    let hash = record.hash.to_string();
    let hash = if wide {
        hash
    } else {
        format!("{}…", &hash[..SHORT_HASH])
    };
    let producer = if info.work() == BlockWork::NonceSearch {
        payee(record, &info.names, wide)
    } else {
        info.rule
            .map_or_else(String::new, |r| producer(r, record, &info.names, wide))
    };
    [
        record.height.to_string(),
        hash,
        time(record.time),
        record.txs.len().to_string(),
        record.bits.to_string(),
        record.nonce.to_string(),
        producer,
    ]
}

/// `YYYY-MM-DD HH:MM:SS` (the table's header says UTC).
fn time(secs: u32) -> String {
    jiff::Timestamp::from_second(i64::from(secs)).map_or_else(
        |_| secs.to_string(),
        |t| t.strftime("%Y-%m-%d %H:%M:%S").to_string(),
    )
}

/// A key by its spec name, else its first hex digits (all of them with `--wide`).
fn key_name(key: &PubKey, names: &HashMap<PubKey, String>, wide: bool) -> String {
    names.get(key).cloned().unwrap_or_else(|| {
        let hex = key.to_string();
        if wide {
            hex
        } else {
            format!("{}…", &hex[..SHORT_KEY])
        }
    })
}

/// Who a mined block pays: the coinbase's first output (`+N` more outputs); empty for genesis.
fn payee(record: &BlockRecord, names: &HashMap<PubKey, String>, wide: bool) -> String {
    let Some(Transaction::Coinbase { outputs, .. }) = record.txs.first() else {
        return String::new();
    };
    match outputs.as_slice() {
        [] => String::new(),
        [one] => key_name(&one.to, names, wide),
        [first, rest @ ..] => format!("{} +{}", key_name(&first.to, names, wide), rest.len()),
    }
}

/// Who made the block, as its consensus rule says: the staker, the Clique signer (and whether
/// in turn) or the DPoS producer (and its slot); empty where no one key made it.
fn producer(
    rule: &dyn Rule,
    record: &BlockRecord,
    names: &HashMap<PubKey, String>,
    wide: bool,
) -> String {
    let Some(p) = rule.producer_of(&record.to_block()) else {
        return String::new();
    };
    let name = key_name(&p.key, names, wide);
    match p.note {
        Some(note) => format!("{name} ({note})"),
        None => name,
    }
}

/// Prints the line that names the chain, then the rows as a table that fits the terminal (80
/// columns when stdout is not one), full width with `--wide`.
fn print_table(
    info: &ChainInfo,
    tip: u64,
    (first, last): (u64, u64),
    rows: &[[String; 7]],
    wide: bool,
) -> Result<()> {
    let work = info.work();
    let nonce_search = work == BlockWork::NonceSearch;
    let mut table = Table::new();
    table.load_style(presets::NOTHING);
    if wide {
        table.set_content_arrangement(ContentArrangement::Disabled);
    } else {
        table.set_content_arrangement(ContentArrangement::Dynamic);
        if !std::io::stdout().is_terminal() {
            table.set_width(PIPE_WIDTH);
        }
    }
    let who = if nonce_search { "payee" } else { "producer" };
    let header = ["height", "hash", "time (UTC)", "txs", "bits", "nonce", who];
    // Bits only where blocks meet a target, the nonce only where it was searched.
    let kept: Vec<usize> = (0..header.len())
        .filter(|&i| match i {
            4 => work != BlockWork::Signatures,
            5 => nonce_search,
            _ => true,
        })
        .collect();
    table.set_header(kept.iter().map(|&i| header[i]));
    for r in rows {
        table.add_row(kept.iter().map(|&i| r[i].as_str()));
    }
    // Two spaces between columns, one where two would not fit (a mined chain's ten-digit
    // nonces); only the last column (who made the block) wraps, and only if one would not do.
    let widths = table.column_max_content_widths();
    let natural: usize = widths.iter().map(|&w| usize::from(w) + 2).sum::<usize>() - 2;
    let gap = if table.width().is_some_and(|w| natural > usize::from(w)) {
        1
    } else {
        2
    };
    for (column, &i) in table.column_iter_mut().zip(&kept) {
        let is_last = i == header.len() - 1;
        column.set_padding((0, if is_last { 0 } else { gap }));
        if !is_last {
            column.set_constraint(ColumnConstraint::ContentWidth);
        }
        // Height, txs and nonce are numbers.
        if matches!(i, 0 | 3 | 5) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut out = std::io::stdout().lock();
    let chain = match (&info.spec, info.rule) {
        (Some(spec), Some(rule)) => format!("{spec} ({})", rule.name()),
        _ => "a chain with no spec on its genesis line".to_owned(),
    };
    let range = if first == last {
        format!("height {first}")
    } else {
        format!("heights {first} to {last}")
    };
    if first == 0 && last == tip {
        writeln!(out, "{chain}: {} blocks, tip at height {tip}", tip + 1)?;
    } else {
        writeln!(out, "{chain}: tip at height {tip}, showing {range}")?;
    }
    for line in table.lines() {
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
