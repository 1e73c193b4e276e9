//! The mining loop shared by `mine` and `compare`: proof of work (the parallel nonce search),
//! proof of stake (the kernel search), or an authority chain's scheduled producer (DPoS, PoA),
//! each block validated, appended and synced before the next, with a live progress bar.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chainsmith::ChainState;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::Clock;
use chainsmith::chain::store::ChainWriter;
use chainsmith::chain::wallet::{demo_transfers, demo_votes};
use chainsmith::consensus::BlockWork;
use chainsmith::dpos::{DoubleSign, DposState, SlotClaim, dpos_block, dpos_slot};
use chainsmith::poa::poa_block;
use chainsmith::pos::stake::{StakeOutcome, earliest_stake_time, find_stake, stake_block};
use chainsmith::pow::miner::{SearchControl, SearchOptions, SolveError, solve_block};
use chainsmith::primitives::tx::{KeyPair, PubKey, SignerVote};

use crate::cli::format::si;
use crate::cli::progress::Progress;
use crate::cli::unix_now;

/// What to mine and how.
pub(crate) struct MineJob<'a> {
    /// Blocks to add.
    pub(crate) blocks: u64,
    /// Demo transfers per block.
    pub(crate) tx_per_block: usize,
    /// Nonce-search options (proof of work).
    pub(crate) opts: &'a SearchOptions,
    /// The worker pool.
    pub(crate) pool: &'a rayon::ThreadPool,
    /// The progress bar (hidden or not).
    pub(crate) progress: &'a Progress,
    /// Faults and proposals of authority chains.
    pub(crate) authority: &'a AuthorityOptions,
}

/// What producers of an authority chain do beyond producing in turn.
#[derive(Debug, Default)]
pub(crate) struct AuthorityOptions {
    /// Producers (signers) that are down.
    pub(crate) offline: Vec<PubKey>,
    /// PoA: the proposal every signer votes for until it passes.
    pub(crate) proposal: Option<SignerVote>,
    /// DPoS: holders' re-votes per block.
    pub(crate) votes_per_block: usize,
    /// DPoS: the producer that signs two blocks per slot.
    pub(crate) double_sign: Option<PubKey>,
    /// Keys of signers voted in that the spec does not list.
    pub(crate) extra_keys: Vec<KeyPair>,
}

/// How a mining run ended.
#[derive(Debug, Default)]
pub(crate) struct MineOutcome {
    /// Blocks mined.
    pub(crate) mined: u64,
    /// Whether Ctrl-C ended it early.
    pub(crate) interrupted: bool,
    /// DPoS double signs caught.
    pub(crate) evidence: Vec<DoubleSign>,
}

/// Mines `job.blocks` blocks onto `state` and `writer`, calling `on_block(state, record,
/// hashes)` after each block is synced (`hashes`: nonces or kernels tried for it).
pub(crate) fn mine_blocks(
    state: &mut ChainState,
    writer: &mut ChainWriter,
    job: &MineJob<'_>,
    control: &SearchControl,
    on_block: &mut (dyn FnMut(&ChainState, &BlockRecord, u64) + Send),
) -> Result<MineOutcome> {
    let rule = state.consensus().rule();
    let mut keys = state.spec().wallet_keys();
    keys.extend(job.authority.extra_keys.iter().cloned());
    let holders: Vec<KeyPair> = state
        .spec()
        .dpos
        .iter()
        .flat_map(|d| &d.holders)
        .map(|h| KeyPair::derive(&state.spec().wallet_seed, &h.name))
        .collect();
    let miner = state.spec().miner_key().pubkey();
    let mut evidence = Vec::new();
    let started = Instant::now();
    let ticker_done = AtomicBool::new(false);
    let mut mined = 0u64;
    let mut interrupted = false;
    std::thread::scope(|scope| {
        if job.progress.is_visible() {
            scope.spawn(|| tick(job.progress, control, &ticker_done, started));
        }
        let outcome = job.pool.install(|| -> Result<()> {
            let mut stake_from = 0;
            while mined < job.blocks {
                // Authority blocks take no search that could notice Ctrl-C: look here.
                if control.stop.load(Ordering::Relaxed) || !wait_for_clock(state, control) {
                    interrupted = true;
                    break;
                }
                let height = state.next_height();
                let before = control.hashes.load(Ordering::Relaxed);
                let record = match rule.info().work {
                    BlockWork::NonceSearch => {
                        let transfers = demo_transfers(state, &keys, job.tx_per_block, height, &[]);
                        let template = state.block_template(unix_now(), miner, transfers);
                        let target = template.header.bits.to_target()?;
                        match solve_block(template, target, job.opts, control) {
                            Ok(b) => BlockRecord::new(height, &b, None),
                            Err(SolveError::Stopped) => {
                                interrupted = true;
                                break;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    BlockWork::Signatures => match state.rule_state_as::<DposState>() {
                        None => {
                            let transfers =
                                demo_transfers(state, &keys, job.tx_per_block, height, &[]);
                            let opts = job.authority;
                            poa_block(state, &keys, &opts.offline, opts.proposal, transfers)?
                        }
                        Some(dpos) => {
                            let offline = &job.authority.offline;
                            let (slot, producer) = dpos_slot(state, dpos, offline)?;
                            let mut txs =
                                demo_transfers(state, &keys, job.tx_per_block, height, &[]);
                            let votes = job.authority.votes_per_block;
                            txs.extend(demo_votes(state, &holders, votes, height));
                            let record = dpos_block(state, slot, producer, txs.clone(), 0)?;
                            if job.authority.double_sign == Some(dpos.candidate_key(producer)) {
                                // The faulty producer also signs a sibling block for the same
                                // slot; everyone else sees both and keeps the first.
                                let sibling = dpos_block(state, slot, producer, txs, 1)?;
                                let claim = |r: &BlockRecord| SlotClaim {
                                    producer,
                                    slot,
                                    hash: r.hash,
                                    height,
                                };
                                evidence.extend(DoubleSign::check(claim(&record), claim(&sibling)));
                            }
                            record
                        }
                    },
                    BlockWork::KernelSearch => {
                        let from = stake_from.max(earliest_stake_time(state));
                        let until = match state.spec().pos.as_ref().map(|p| p.clock) {
                            Some(Clock::Wall) => unix_now(),
                            _ => unix_now().saturating_add(state.spec().max_future_s),
                        };
                        match find_stake(state, &keys, from, until, &control.hashes, &control.stop)
                        {
                            StakeOutcome::Found(stake) => {
                                let transfers = demo_transfers(
                                    state,
                                    &keys,
                                    job.tx_per_block,
                                    height,
                                    &[stake.outpoint],
                                );
                                let mut record = stake_block(state, &keys, &stake, transfers);
                                record.stake_attempts =
                                    Some(control.hashes.load(Ordering::Relaxed) - before);
                                record
                            }
                            StakeOutcome::Exhausted { next } => {
                                // Chain time has reached the clock: wait for it to move on.
                                stake_from = next;
                                std::thread::sleep(Duration::from_millis(250));
                                continue;
                            }
                            StakeOutcome::Stopped => {
                                interrupted = true;
                                break;
                            }
                        }
                    }
                };
                let checked = state
                    .check(record.clone())
                    .with_context(|| format!("mined block {height} failed its own checks"))?;
                state
                    .connect(&checked, unix_now())
                    .with_context(|| format!("mined block {height} failed validation"))?;
                writer.append(&record).with_context(|| {
                    format!("writing block {height} to {}", writer.path().display())
                })?;
                mined += 1;
                on_block(
                    state,
                    &record,
                    control.hashes.load(Ordering::Relaxed) - before,
                );
                job.progress.set_position(mined);
            }
            Ok(())
        });
        ticker_done.store(true, Ordering::Relaxed);
        outcome
    })?;
    Ok(MineOutcome {
        mined,
        interrupted,
        evidence,
    })
}

/// Creates `path` with the genesis block of `spec`.
pub(crate) fn create_chain(
    path: &Path,
    spec: chainsmith::ChainSpec,
) -> Result<(ChainState, ChainWriter)> {
    let genesis = spec.genesis_block();
    let record = BlockRecord::new(0, &genesis, Some(&spec));
    let mut state = ChainState::new(spec);
    let checked = state
        .check(record.clone())
        .context("the spec's genesis block is invalid")?;
    state
        .connect(&checked, unix_now())
        .context("the spec's genesis block is invalid")?;
    let mut writer = ChainWriter::create_new(path)
        .with_context(|| format!("creating chain {}", path.display()))?;
    writer
        .append(&record)
        .with_context(|| format!("writing genesis to {}", path.display()))?;
    Ok((state, writer))
}

/// Blocks must be later than the median of the previous 11, so a chain mined faster than one
/// block per second runs ahead of the clock (one second per six blocks). Waits while the next
/// block's earliest time is past the future limit that verification allows, so every block
/// mined stays valid. Returns false if Ctrl-C stopped the wait.
fn wait_for_clock(state: &ChainState, control: &SearchControl) -> bool {
    let earliest = u64::from(state.median_time_past()) + 1;
    let limit = u64::from(state.spec().max_future_s);
    while earliest > u64::from(unix_now()) + limit {
        if control.stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

/// Updates the bar's live hash rate until `done`.
fn tick(progress: &Progress, control: &SearchControl, done: &AtomicBool, started: Instant) {
    let mut last = (Instant::now(), control.hashes.load(Ordering::Relaxed));
    while !done.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(250));
        let now = Instant::now();
        let hashes = control.hashes.load(Ordering::Relaxed);
        let dt = now.duration_since(last.0).as_secs_f64();
        if dt > 0.0 {
            let rate = hashes.saturating_sub(last.1) as f64 / dt;
            progress.set_message(format!(
                "{}H/s · {}hashes · {:.0} s",
                si(rate),
                si(hashes as f64),
                started.elapsed().as_secs_f64()
            ));
        }
        last = (now, hashes);
    }
}
