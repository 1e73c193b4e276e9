//! One module per subcommand, and the chain replay they share.

pub(crate) mod bench;
pub(crate) mod check;
pub(crate) mod client;
pub(crate) mod cluster;
pub(crate) mod compare;
pub(crate) mod elections;
pub(crate) mod header;
pub(crate) mod info;
pub(crate) mod mine;
pub(crate) mod node;
pub(crate) mod pool;
pub(crate) mod pool_client;
pub(crate) mod show;
pub(crate) mod sim;
pub(crate) mod verify;

use std::path::Path;

use anyhow::{Context, Result};
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::{Replay, ReplayObserver, replay};
use chainsmith::consensus::{CheckedBlock, with_names};
use chainsmith::{ChainSpec, ChainState};

use crate::cli::progress::Progress;

/// `text` (an error about the replayed chain) with the keys its spec names replaced by their
/// names.
pub(crate) fn named(replay: &Replay, text: &impl std::fmt::Display) -> String {
    let text = text.to_string();
    match &replay.state {
        Some(state) => with_names(&text, &state.spec().names_by_key()),
        None => text,
    }
}

/// A warning when `spec` is named like a built-in spec but is not it: a chain's embedded spec
/// is what it is checked under, and a look-alike name must not pass for the built-in rules.
pub(crate) fn builtin_lookalike(spec: &ChainSpec) -> Option<String> {
    let builtin = ChainSpec::builtin(&spec.name).ok()?;
    (builtin != *spec).then(|| {
        format!(
            "its spec is named {:?} like a built-in spec but differs from it (spec_hash {}, built-in {})",
            spec.name,
            spec.spec_hash(),
            builtin.spec_hash()
        )
    })
}

/// A repair hint with the chain file named in its command, ready to paste.
pub(crate) fn with_file(hint: &str, path: &Path) -> String {
    hint.replace(
        "`chainsmith verify --repair`",
        &format!("`chainsmith verify --repair {}`", path.display()),
    )
}

/// What `verify --json` and `info --json` both say of a replayed chain: its rule and spec and
/// its valid prefix (`None`s when not even genesis is valid).
#[derive(serde::Serialize)]
pub(crate) struct ChainSummary {
    pub(crate) consensus: Option<&'static str>,
    pub(crate) spec: Option<String>,
    pub(crate) spec_hash: Option<String>,
    /// Valid blocks, genesis included.
    pub(crate) blocks: u64,
    pub(crate) height: Option<u32>,
    pub(crate) tip: Option<String>,
}

impl ChainSummary {
    pub(crate) fn of(replay: &Replay) -> Self {
        let state = replay.state.as_ref();
        let tip = state.and_then(ChainState::tip);
        Self {
            consensus: state.map(|s| s.consensus().name()),
            spec: state.map(|s| s.spec().name.clone()),
            spec_hash: state.map(|s| s.spec().spec_hash().to_string()),
            blocks: state.map_or(0, ChainState::block_count),
            height: tip.map(|t| t.height),
            tip: tip.map(|t| t.hash.to_string()),
        }
    }
}

/// Moves the bar by batches and passes each block on.
struct BarObserver<'a> {
    bar: &'a Progress,
    inner: &'a mut (dyn ReplayObserver + Send),
}

impl ReplayObserver for BarObserver<'_> {
    fn on_batch(&mut self, bytes: u64, blocks: u64) {
        self.bar.set_position(bytes);
        self.bar.set_message(format!("{blocks} blocks"));
    }

    fn on_block(&mut self, state: &ChainState, block: &CheckedBlock) {
        self.inner.on_block(state, block);
    }
}

/// Verifies the chain file at `path` on `pool`, with a progress bar by bytes read; `observer`
/// sees each block as it is connected.
pub(crate) fn replay_file(
    path: &Path,
    pool: &rayon::ThreadPool,
    quiet: bool,
    now: u32,
    observer: &mut (dyn ReplayObserver + Send),
) -> Result<Replay> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading chain {}", path.display()))?
        .len();
    let reader =
        LineReader::open(path).with_context(|| format!("reading chain {}", path.display()))?;
    // Small files verify in well under a second: no bar for them.
    let progress = Progress::new(Some(len), "bytes", quiet || len < 8 << 20);
    let result = pool
        .install(|| {
            let mut bar = BarObserver {
                bar: &progress,
                inner: observer,
            };
            replay(reader, now, &mut bar)
        })
        .with_context(|| format!("reading chain {}", path.display()));
    progress.finish();
    result
}
