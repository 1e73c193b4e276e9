//! One module per subcommand, and the chain replay they share.

pub(crate) mod bench;
pub(crate) mod compare;
pub(crate) mod header;
pub(crate) mod mine;
pub(crate) mod show;
pub(crate) mod verify;

use std::path::Path;

use anyhow::{Context, Result};
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::{Replay, ReplayObserver, replay};

use crate::cli::progress::Progress;

struct BarObserver<'a>(&'a Progress);

impl ReplayObserver for BarObserver<'_> {
    fn on_batch(&mut self, bytes: u64, blocks: u64) {
        self.0.set_position(bytes);
        self.0.set_message(format!("{blocks} blocks"));
    }
}

/// Verifies the chain file at `path` on `pool`, with a progress bar by bytes read.
pub(crate) fn replay_file(
    path: &Path,
    pool: &rayon::ThreadPool,
    quiet: bool,
    now: u32,
) -> Result<Replay> {
    let len = std::fs::metadata(path)
        .with_context(|| format!("reading chain {}", path.display()))?
        .len();
    let reader =
        LineReader::open(path).with_context(|| format!("reading chain {}", path.display()))?;
    // Small files verify in well under a second: no bar for them.
    let progress = Progress::new(Some(len), "bytes", quiet || len < 8 << 20);
    let result = pool
        .install(|| replay(reader, now, &mut BarObserver(&progress)))
        .with_context(|| format!("reading chain {}", path.display()));
    progress.finish();
    result
}
