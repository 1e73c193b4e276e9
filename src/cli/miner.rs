//! Mining as `mine` and `compare` run it: the library's producer loop
//! ([`produce_blocks`]) with the chain's rule's producer, each block appended and synced to
//! the chain file before the next, the wall clock, and a live progress bar.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chainsmith::ChainSpec;
use chainsmith::ChainState;
use chainsmith::chain::produce::{
    Equivocation, NetworkCost, ProduceOptions, Run, RunOutcome, TimeSource, produce_blocks,
};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::state::BlockError;
use chainsmith::chain::store::ChainLock;
use chainsmith::chain::store::ChainWriter;
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::consensus::BlockWork;
use chainsmith::hash::search::{SearchControl, SearchOptions};

use crate::cli::commands::{builtin_lookalike, named, replay_file, with_file};
use crate::cli::format::{si, sig3};
use crate::cli::progress::Progress;
use crate::cli::unix_now;

/// What to mine and how.
pub(crate) struct MineJob<'a> {
    /// Blocks to add.
    pub(crate) blocks: u64,
    /// Nonce-search options (proof of work).
    pub(crate) opts: &'a SearchOptions,
    /// The worker pool.
    pub(crate) pool: &'a rayon::ThreadPool,
    /// The progress bar (hidden or not).
    pub(crate) progress: &'a Progress,
    /// Demo traffic, proposals and faults for the rule's producer.
    pub(crate) produce: &'a ProduceOptions,
}

/// How a mining run ended.
#[derive(Debug, Default)]
pub(crate) struct MineOutcome {
    /// Blocks mined.
    pub(crate) mined: u64,
    /// Whether Ctrl-C ended it early.
    pub(crate) interrupted: bool,
    /// Double signs caught.
    pub(crate) evidence: Vec<Equivocation>,
    /// Ordering rules: the messages the blocks cost.
    pub(crate) network: Option<NetworkCost>,
}

/// The system clock.
struct WallClock;

impl TimeSource for WallClock {
    fn now(&self) -> u32 {
        unix_now()
    }

    fn pause(&self, wait: Duration) {
        std::thread::sleep(wait);
    }
}

/// Mines `job.blocks` blocks onto `state` and `writer` with the rule's producer, calling
/// `on_block(state, record, hashes, took)` after each block is synced (`hashes`: nonces or
/// kernels tried for it; `took`: the time since the previous block was synced, or since the
/// start).
pub(crate) fn mine_blocks(
    state: &mut ChainState,
    writer: &mut ChainWriter,
    job: &MineJob<'_>,
    control: &SearchControl,
    on_block: &mut (dyn FnMut(&ChainState, &BlockRecord, u64, Duration) + Send),
) -> Result<MineOutcome> {
    let mut producer = state
        .consensus()
        .rule()
        .producer(state.spec(), job.produce)?;
    let ticker_done = AtomicBool::new(false);
    let outcome = std::thread::scope(|scope| {
        // Rules that sign rather than hash have no rate to show.
        let hashing = state.consensus().rule().info().work != BlockWork::Signatures;
        if job.progress.is_visible() && hashing {
            scope.spawn(|| tick(job.progress, control, &ticker_done));
        }
        let mut mined = 0;
        let mut last_block = Instant::now();
        let mut sink = |state: &ChainState, record: &BlockRecord, hashes: u64| {
            writer.append(record)?;
            mined += 1;
            let now = Instant::now();
            on_block(state, record, hashes, now.duration_since(last_block));
            last_block = now;
            job.progress.set_position(mined);
            Ok(())
        };
        let outcome = job.pool.install(|| {
            let run = Run {
                blocks: job.blocks,
                clock: &WallClock,
                control,
                search: job.opts,
            };
            produce_blocks(
                state,
                producer.as_mut(),
                &run,
                &mut |_| Vec::new(),
                &mut sink,
            )
        });
        ticker_done.store(true, Ordering::Relaxed);
        outcome
    })
    .with_context(|| format!("mining onto {}", writer.path().display()))?;
    let RunOutcome {
        produced,
        stopped,
        equivocations,
    } = outcome;
    Ok(MineOutcome {
        mined: produced,
        interrupted: stopped,
        evidence: equivocations,
        network: producer.network(),
    })
}

/// A chain file opened for writing, with the lock that makes this run its only writer.
pub(crate) struct OpenChain {
    /// The chain's state after every block in the file.
    pub(crate) state: ChainState,
    /// The appender.
    pub(crate) writer: ChainWriter,
    /// Held for the whole run.
    pub(crate) lock: ChainLock,
}

/// Locks `path` and continues it (replayed and verified; with `spec_given`, its spec must be
/// `spec`) or creates it with `spec`'s genesis block. `None` when the file is invalid: the
/// reason is printed, and the caller exits 1.
pub(crate) fn open_chain(
    path: &Path,
    spec: ChainSpec,
    spec_given: bool,
    pool: &rayon::ThreadPool,
    quiet: bool,
) -> Result<Option<OpenChain>> {
    let lock = ChainLock::acquire(path)?;
    if !std::fs::metadata(path).is_ok_and(|m| m.len() > 0) {
        let (state, writer) = create_chain(path, spec)?;
        return Ok(Some(OpenChain {
            state,
            writer,
            lock,
        }));
    }
    let replay = replay_file(path, pool, quiet, unix_now(), &mut ())?;
    if let Some(err) = &replay.error {
        eprintln!("chainsmith: {}: {}", path.display(), named(&replay, err));
        if let Some(hint) = err.kind.repair_hint(replay.valid_bytes) {
            eprintln!("chainsmith: nothing was mined; {}", with_file(hint, path));
        }
        if matches!(
            err.kind,
            LineErrorKind::Block(BlockError::TimeTooNew { .. })
        ) {
            eprintln!(
                "chainsmith: the chain is ahead of this machine's clock; check the clock (nothing was changed)"
            );
        }
        return Ok(None);
    }
    let state = replay.state.context("a valid chain has a state")?;
    if let Some(w) = builtin_lookalike(state.spec()) {
        eprintln!("chainsmith: warning: {}: {w}", path.display());
    }
    if spec_given && state.spec() != &spec {
        bail!(
            "{} was made with spec {:?} ({}), not the spec given with --spec ({})",
            path.display(),
            state.spec().name,
            state.spec().spec_hash(),
            spec.spec_hash()
        );
    }
    let writer = ChainWriter::open_append(path)
        .with_context(|| format!("opening {} for appending", path.display()))?;
    Ok(Some(OpenChain {
        state,
        writer,
        lock,
    }))
}

/// Creates `path` with the genesis block of `spec` (the caller holds its lock).
pub(crate) fn create_chain(path: &Path, spec: ChainSpec) -> Result<(ChainState, ChainWriter)> {
    let genesis = spec.genesis_block();
    let record = BlockRecord::new(0, &genesis, Some(&spec));
    let mut state = ChainState::new(spec);
    let checked = state
        .check(record.clone())
        .context("the spec's genesis block is invalid")?;
    state
        .connect(&checked, unix_now())
        .context("the spec's genesis block is invalid")?;
    let writer = ChainWriter::create(path, &record)
        .with_context(|| format!("creating chain {}", path.display()))?;
    Ok((state, writer))
}

/// Hashes per second over a sliding window of samples: steady even where hashes are counted in
/// lumps (proof of stake counts a block's kernels when it is found).
pub(crate) struct RateWindow {
    span: Duration,
    samples: std::collections::VecDeque<(Instant, u64)>,
}

impl RateWindow {
    pub(crate) fn new(span: Duration) -> Self {
        Self {
            span,
            samples: std::collections::VecDeque::new(),
        }
    }

    /// Adds the count `hashes` seen at `now`; returns the rate over the window.
    pub(crate) fn push(&mut self, now: Instant, hashes: u64) -> f64 {
        self.samples.push_back((now, hashes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.span)
        {
            self.samples.pop_front();
        }
        let (t0, h0) = self.samples.front().copied().unwrap_or((now, hashes));
        let dt = now.duration_since(t0).as_secs_f64();
        if dt > 0.0 {
            hashes.saturating_sub(h0) as f64 / dt
        } else {
            0.0
        }
    }
}

/// Updates the bar's live hash rate (over the last 5 s) until `done`.
fn tick(progress: &Progress, control: &SearchControl, done: &AtomicBool) {
    let mut window = RateWindow::new(Duration::from_secs(5));
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let hashes = control.hashes.load(Ordering::Relaxed);
        let rate = window.push(Instant::now(), hashes);
        progress.set_message(format!("{}H/s {}hashes", sig3(rate), si(hashes as f64)));
    }
}
