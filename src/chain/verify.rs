//! Streaming verification of a chain file.
//!
//! Lines are read in batches; each batch is parsed and given the context-free checks
//! ([`Consensus::check`]: hashing, merkle roots, the rule's seal) in parallel on the rayon pool, then
//! connected to the [`ChainState`] in order. Memory holds one batch and the chain state, never
//! the whole chain. The first invalid line stops the replay and is reported with its line
//! number, height and reason; everything before it is a valid chain that mining can extend.
//!
//! Signatures are checked in batches ([`crate::primitives::sig`]) rather than one by one
//! where the code meets them. The parallel step records its seals' signatures instead of
//! checking them; a first sequential pass connects the batch to a copy of the state,
//! recording every signature the connection asks about (transfer inputs, votes, coinstake
//! kernels, quorum certificates) and assuming each valid; all of them are then checked
//! together on the pool. The second pass is the replay proper: a line whose seal holds a bad
//! signature is checked again one signature at a time, and blocks are connected to the real
//! state with each signature answered from the batch results in the order the first pass
//! asked (anything else is checked at once). Both passes run the same code on the same
//! state, so every block gets the answer the one-at-a-time check would give, and the first
//! invalid line, its error and the state before it are what checking one signature at a time
//! gives.

use std::fmt;
use std::io::{self, BufRead};
use std::ops::Range;

use rayon::prelude::*;

use crate::chain::record::BlockRecord;
use crate::chain::state::{BlockError, ChainState};
use crate::chain::store::{Line, LineDamage, LineReader, MAX_LINE_BYTES};
use crate::consensus::{CheckedBlock, Consensus};
use crate::primitives::sig::{Recorder, SigCheck, SigLog, Strict, Verdicts};

/// Lines parsed and hashed in parallel per batch.
const BATCH_LINES: usize = 2048;

/// Bytes read ahead per batch at most, so that a file of huge lines is not read far past its
/// first bad one.
const BATCH_BYTES: usize = 64 << 20;

/// What is wrong with a line of a chain file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LineErrorKind {
    /// The file has no lines.
    Empty,
    /// The last line has no newline: the write was cut short.
    Torn,
    /// The last line is a whole valid block without its newline: only the newline was lost.
    MissingNewline,
    /// The line is not text, or too long to be a block (a damaged write or file).
    Damaged(LineDamage),
    /// The line is not a valid block record.
    Json(String),
    /// The block breaks a rule.
    Block(BlockError),
}

impl fmt::Display for LineErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("file is empty: no genesis line"),
            Self::Torn => f.write_str("torn last line (the write was cut short)"),
            Self::MissingNewline => {
                f.write_str("the last block is whole but its newline is missing")
            }
            Self::Damaged(LineDamage::NotUtf8) => {
                f.write_str("line is not UTF-8 text (a damaged write)")
            }
            Self::Damaged(LineDamage::TooLong) => write!(
                f,
                "line is longer than {MAX_LINE_BYTES} bytes, far beyond any block"
            ),
            Self::Json(e) => write!(f, "malformed block line: {e}"),
            Self::Block(e) => write!(f, "{e}"),
        }
    }
}

impl LineErrorKind {
    /// What `chainsmith verify --repair` does about this error on a line after `valid_bytes`
    /// bytes of valid blocks, for messages; `None` where it refuses (an empty file, a block
    /// ahead of the clock, an invalid genesis).
    pub fn repair_hint(&self, valid_bytes: u64) -> Option<&'static str> {
        match self {
            Self::Empty | Self::Block(BlockError::TimeTooNew { .. }) => None,
            Self::MissingNewline => Some("`chainsmith verify --repair` adds the newline"),
            Self::Torn | Self::Damaged(_) => Some("`chainsmith verify --repair` removes it"),
            Self::Json(_) | Self::Block(_) if valid_bytes > 0 => Some(
                "`chainsmith verify --repair` cuts the file after the last valid block \
                 (this line and every one after it are removed)",
            ),
            Self::Json(_) | Self::Block(_) => None,
        }
    }
}

/// The first invalid line of a chain file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// The height a block on this line must have (line − 1).
    pub height: u64,
    /// Byte offset of the line: the length of the valid prefix.
    pub offset: u64,
    /// What is wrong.
    pub kind: LineErrorKind,
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}: height {}: {}",
            self.line, self.height, self.kind
        )
    }
}

/// The result of replaying a chain file.
#[derive(Debug)]
pub struct Replay {
    /// The state after the last valid block (`None` if not even genesis was valid).
    pub state: Option<ChainState>,
    /// The first invalid line, if any.
    pub error: Option<LineError>,
    /// Bytes of the file that hold valid blocks.
    pub valid_bytes: u64,
}

/// Tells a caller how far a replay got, and each block as it is connected.
pub trait ReplayObserver {
    /// Called after each batch: bytes read and blocks connected so far.
    fn on_batch(&mut self, _bytes: u64, _blocks: u64) {}

    /// Called after each block is connected, with the state it leads to.
    fn on_block(&mut self, _state: &ChainState, _block: &CheckedBlock) {}
}

impl ReplayObserver for () {}

fn json_error(e: &serde_json::Error) -> String {
    // Each line is parsed on its own, so serde's "line 1" would mislead: keep the column.
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => format!("{} (column {})", &text[..i], e.column()),
        None => text,
    }
}

fn check_line(
    line: &Line,
    consensus: Consensus,
    sigs: &dyn SigCheck,
) -> Result<CheckedBlock, LineErrorKind> {
    let result = match line.damage {
        Some(damage) => Err(LineErrorKind::Damaged(damage)),
        None => serde_json::from_str::<BlockRecord>(&line.text)
            .map_err(|e| LineErrorKind::Json(json_error(&e)))
            .and_then(|r| consensus.check_with(r, sigs).map_err(LineErrorKind::Block)),
    };
    // A last line cut short is torn, unless it is a whole block that only lost its newline
    // (which is known once it connects).
    match result {
        Err(_) if !line.complete && line.damage.is_none() => Err(LineErrorKind::Torn),
        other => other,
    }
}

/// A line after the parallel step: its result and the seal signatures it recorded.
struct Checked {
    line: Line,
    result: Result<CheckedBlock, LineErrorKind>,
    seal: SigLog,
}

/// Connects the batch's valid prefix to a copy of `state`, recording every signature the
/// connection asks about into `log` (each assumed valid), and stops at the first failure.
/// Skipped where no block carries a transaction besides its coinbase, so that no connection
/// can ask about a signature.
fn record_connect_signatures(
    state: Option<&ChainState>,
    batch: &[Checked],
    now: u32,
    log: &mut SigLog,
) {
    let signing = batch
        .iter()
        .any(|c| c.result.as_ref().is_ok_and(|b| b.block().txs.len() > 1));
    if !signing {
        return;
    }
    let recorder = Recorder::new(SigLog::default());
    let mut scratch = state.cloned();
    for c in batch {
        let Ok(block) = &c.result else { break };
        let chain = match &mut scratch {
            Some(s) => s,
            None => match genesis_state(block) {
                Ok(s) => scratch.insert(s),
                Err(_) => break,
            },
        };
        if chain.connect_with(block, now, &recorder).is_err() {
            break;
        }
    }
    log.append(&recorder.into_log());
}

/// Replays the chain read by `reader`, verifying every block (see the module docs); `now` is
/// the verifier's clock for the future-time rule.
///
/// # Errors
/// I/O errors only; an invalid chain is reported in [`Replay::error`].
pub fn replay<R: BufRead>(
    mut reader: LineReader<R>,
    now: u32,
    observer: &mut dyn ReplayObserver,
) -> io::Result<Replay> {
    let mut state: Option<ChainState> = None;
    let mut valid_bytes = 0;
    let mut batch = Vec::with_capacity(BATCH_LINES);
    // The genesis line names the consensus rule every line is checked under; a line whose
    // rule cannot be read is checked as proof of work and fails against its spec.
    let first = reader.next_line()?;
    let consensus = first
        .as_ref()
        .and_then(|l| serde_json::from_str::<GenesisConsensus>(&l.text).ok())
        .and_then(|g| g.spec)
        .map_or_else(default_rule, |s| s.consensus);
    let any_line = first.is_some();
    batch.extend(first);
    loop {
        let mut batch_bytes: usize = batch.iter().map(|l: &Line| l.text.len()).sum();
        while batch.len() < BATCH_LINES && batch_bytes < BATCH_BYTES {
            match reader.next_line()? {
                // Damage ends the batch: nothing after it can be valid.
                Some(line) if line.damage.is_some() || !line.complete => {
                    batch.push(line);
                    break;
                }
                Some(line) => {
                    batch_bytes += line.text.len();
                    batch.push(line);
                }
                None => break,
            }
        }
        if batch.is_empty() {
            break;
        }
        let checked: Vec<Checked> = std::mem::take(&mut batch)
            .into_par_iter()
            .map(|line| {
                let recorder = Recorder::new(SigLog::default());
                let result = check_line(&line, consensus, &recorder);
                Checked {
                    line,
                    result,
                    seal: recorder.into_log(),
                }
            })
            .collect();
        let mut log = SigLog::default();
        let seal_ranges: Vec<Range<usize>> = checked
            .iter()
            .map(|c| {
                let start = log.len();
                log.append(&c.seal);
                start..log.len()
            })
            .collect();
        let connect_start = log.len();
        record_connect_signatures(state.as_ref(), &checked, now, &mut log);
        let valid = log.verify();
        let verdicts = Verdicts::new(&log, &valid, connect_start);
        for (c, seal) in checked.into_iter().zip(seal_ranges) {
            let Checked { line, result, .. } = c;
            let result = match result {
                // A seal check that failed for another reason may have met the bad signature
                // first when checking one at a time.
                _ if valid[seal].contains(&false) => check_line(&line, consensus, &Strict),
                other => other,
            };
            let fail = |kind| LineError {
                line: line.number,
                height: line.number - 1,
                offset: line.offset,
                kind,
            };
            let checked = match result {
                Ok(p) => p,
                Err(kind) => return Ok(done(state, Some(fail(kind)), valid_bytes)),
            };
            let chain = match &mut state {
                Some(s) => s,
                None => match genesis_state(&checked) {
                    Ok(s) => state.insert(s),
                    Err(e) => return Ok(done(None, Some(fail(LineErrorKind::Block(e))), 0)),
                },
            };
            if let Err(e) = chain.connect_with(&checked, now, &verdicts) {
                return Ok(done(
                    state,
                    Some(fail(LineErrorKind::Block(e))),
                    valid_bytes,
                ));
            }
            observer.on_block(chain, &checked);
            if !line.complete {
                let missing = fail(LineErrorKind::MissingNewline);
                let whole = line.offset + line.text.len() as u64;
                return Ok(done(state, Some(missing), whole));
            }
            valid_bytes = line.offset + line.text.len() as u64 + 1;
        }
        observer.on_batch(
            valid_bytes,
            state.as_ref().map_or(0, ChainState::block_count),
        );
    }
    let error = (!any_line).then_some(LineError {
        line: 1,
        height: 0,
        offset: 0,
        kind: LineErrorKind::Empty,
    });
    Ok(done(state, error, valid_bytes))
}

/// Just enough of a genesis line to learn its consensus rule.
#[derive(serde::Deserialize)]
struct GenesisConsensus {
    spec: Option<ConsensusOnly>,
}

#[derive(serde::Deserialize)]
struct ConsensusOnly {
    consensus: Consensus,
}

fn default_rule() -> Consensus {
    Consensus::all().next().expect("the registry is not empty")
}

fn genesis_state(checked: &CheckedBlock) -> Result<ChainState, BlockError> {
    let spec = checked
        .record()
        .spec
        .clone()
        .ok_or(BlockError::MissingSpec)?;
    spec.validate().map_err(BlockError::BadSpec)?;
    Ok(ChainState::new(spec))
}

fn done(state: Option<ChainState>, error: Option<LineError>, valid_bytes: u64) -> Replay {
    Replay {
        state,
        error,
        valid_bytes,
    }
}
