//! Shared helpers for the integration tests: build valid chains in memory and re-mine
//! tampered blocks so that each consensus rule can be tested on its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::cell::Cell;
use std::io::Cursor;
use std::time::Duration;

use chainsmith::chain::produce::{ProduceOptions, Run, TimeSource, produce_blocks};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::{LineErrorKind, Replay, replay};
use chainsmith::hash::search::{SearchControl, SearchMode, SearchOptions};
use chainsmith::primitives::tx::Transaction;
use chainsmith::{ChainSpec, ChainState};

/// A spec for fast tests: regtest difficulty, Bitcoin's retarget rule every 4 blocks,
/// coinbase maturity 2, halving every 10 blocks.
pub(crate) fn test_spec() -> ChainSpec {
    ChainSpec::from_json(include_str!("../data/test-pow.json")).unwrap()
}

/// The clock the tests verify with: after every block time they build.
pub(crate) const NOW: u32 = 2_000_000_000;

fn lowest() -> SearchOptions {
    SearchOptions {
        mode: SearchMode::Lowest,
        ..SearchOptions::default()
    }
}

/// The genesis record of `spec` and the state after connecting it.
fn start_chain(spec: &ChainSpec) -> (Vec<BlockRecord>, ChainState) {
    let record = BlockRecord::new(0, &spec.genesis_block(), Some(spec));
    let mut state = ChainState::new(spec.clone());
    state
        .connect(&spec.consensus.check(record.clone()).unwrap(), NOW)
        .unwrap();
    (vec![record], state)
}

/// A clock that shows whatever time the chain builder sets.
struct TestClock(Cell<u32>);

impl TimeSource for TestClock {
    fn now(&self) -> u32 {
        self.0.get()
    }

    fn pause(&self, _wait: Duration) {
        panic!("a test chain never waits for the clock");
    }
}

/// Builds a chain of `blocks` blocks after genesis with the library's producer for the spec's
/// rule and `options`, the clock at `time(height)` for each block, `pending(state, height)`
/// offered as waiting transactions, and `observe(state, record)` called with the state before
/// each block. Returns the records (genesis first) and the final state.
pub(crate) fn produce_chain(
    spec: &ChainSpec,
    blocks: u32,
    options: &ProduceOptions,
    time: impl Fn(u32) -> u32,
    mut pending: impl FnMut(&ChainState, u32) -> Vec<Transaction>,
    mut observe: impl FnMut(&ChainState, &BlockRecord),
) -> (Vec<BlockRecord>, ChainState) {
    let (mut records, mut state) = start_chain(spec);
    let mut producer = spec.consensus.rule().producer(spec, options).unwrap();
    let clock = TestClock(Cell::new(time(1)));
    let control = SearchControl::default();
    let search = lowest();
    let run = Run {
        blocks: blocks.into(),
        clock: &clock,
        control: &control,
        search: &search,
    };
    let mut before = state.clone();
    let outcome = produce_blocks(
        &mut state,
        producer.as_mut(),
        &run,
        &mut |s| pending(s, s.next_height()),
        &mut |s, record, _| {
            observe(&before, record);
            before = s.clone();
            records.push(record.clone());
            clock.0.set(time(record.height + 1));
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(outcome.produced, u64::from(blocks));
    (records, state)
}

/// Builds a valid proof-of-work chain of `blocks` blocks after genesis, with up to
/// `tx_per_block` demo transfers per block and block times exactly on schedule.
pub(crate) fn build_chain(spec: &ChainSpec, blocks: u32, tx_per_block: usize) -> Vec<BlockRecord> {
    let options = ProduceOptions {
        tx_per_block,
        ..ProduceOptions::default()
    };
    let on_schedule = |height| spec.genesis.time + height * spec.target_spacing_s;
    let no_extra = |_: &ChainState, _| Vec::new();
    produce_chain(spec, blocks, &options, on_schedule, no_extra, |_, _| {}).0
}

/// What the transactions of the chain `records` sign, as its genesis line says.
pub(crate) fn sig_domain(records: &[BlockRecord]) -> chainsmith::primitives::tx::SigDomain {
    use chainsmith::primitives::tx::SigDomain;
    if records[0].format.is_some() {
        SigDomain::Chain(records[0].hash)
    } else {
        SigDomain::Legacy
    }
}

/// Serialises records as a chain file.
pub(crate) fn to_file_bytes(records: &[BlockRecord]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(r.to_json_line().as_bytes());
        out.push(b'\n');
    }
    out
}

/// Verifies a chain file held in memory.
pub(crate) fn replay_bytes(bytes: &[u8]) -> Replay {
    replay(LineReader::new(Cursor::new(bytes)), NOW, &mut ()).unwrap()
}

/// Verifies records.
pub(crate) fn replay_records(records: &[BlockRecord]) -> Replay {
    replay_bytes(&to_file_bytes(records))
}

/// Makes a tampered record self-consistent again, as an attacker would: recomputes the merkle
/// root, finds a nonce meeting the record's own bits and rewrites the `hash` field.
pub(crate) fn remine(record: &mut BlockRecord) {
    let mut block = record.to_block();
    block.header.merkle_root = block.compute_merkle_root().root;
    let target = block.header.bits.to_target().unwrap();
    let job = chainsmith::hash::PowJob::new(&block.header, target);
    let found = chainsmith::pow::miner::search(&job, &lowest(), &SearchControl::default());
    let chainsmith::pow::miner::SearchOutcome::Found(nonce) = found else {
        panic!("no nonce for the tampered header")
    };
    block.header.nonce = nonce;
    let spec = record.spec.take();
    *record = BlockRecord::new(record.height, &block, spec.as_ref());
}

/// Returns the error of a replay, asserting there is one at `height`.
pub(crate) fn error_at(replay: &Replay, height: u64) -> LineErrorKind {
    let err = replay.error.clone().expect("the chain must be rejected");
    assert_eq!(err.height, height, "rejected at the wrong height: {err}");
    assert_eq!(err.line, height + 1);
    err.kind
}

/// A proof-of-stake spec for fast tests: minimum age 864 s, maximum 2592 s, 60 s spacing,
/// ten stakeholders with uneven holdings over 35 outputs.
pub(crate) fn test_pos_spec() -> ChainSpec {
    ChainSpec::from_json(include_str!("../data/test-pos.json")).unwrap()
}

/// Calls `observe(state, record)` before connecting each new block of a proof-of-stake chain
/// built in virtual time; returns the records.
pub(crate) fn build_pos_chain(
    spec: &ChainSpec,
    blocks: u32,
    tx_per_block: usize,
    observe: impl FnMut(&ChainState, &BlockRecord),
) -> Vec<BlockRecord> {
    let options = ProduceOptions {
        tx_per_block,
        ..ProduceOptions::default()
    };
    produce_chain(spec, blocks, &options, |_| NOW, |_, _| Vec::new(), observe).0
}

/// A small DPoS spec with hand-computable elections: candidates a–g, 4 producers, 3 blocks per
/// turn, five holders (see the file).
pub(crate) fn test_dpos_spec() -> ChainSpec {
    ChainSpec::from_json(include_str!("../data/test-dpos.json")).unwrap()
}

/// Builds a DPoS or proof-of-authority chain of `blocks` blocks with the library's producers:
/// `offline` names miss their turns, `proposal` is the PoA vote every signer casts, and
/// `extra(state, height)` adds transactions (votes, transfers) to each block (no demo
/// traffic). Returns the records and the final state.
pub(crate) fn build_authority_chain(
    spec: &ChainSpec,
    blocks: u32,
    offline: &[&str],
    proposal: Option<chainsmith::primitives::tx::SignerVote>,
    extra: impl FnMut(&ChainState, u32) -> Vec<Transaction>,
) -> (Vec<BlockRecord>, ChainState) {
    use chainsmith::primitives::tx::KeyPair;

    let key = |n: &str| KeyPair::derive(&spec.wallet_seed, n);
    let options = ProduceOptions {
        offline: offline.iter().map(|n| key(n).pubkey()).collect(),
        proposal,
        // Signers a proposal may vote in.
        extra_keys: proposal.map_or_else(Vec::new, |_| vec![key("frank"), key("grace")]),
        votes_per_block: Some(0),
        ..ProduceOptions::default()
    };
    produce_chain(spec, blocks, &options, |_| NOW, extra, |_, _| {})
}

/// Proptest cases for an expensive property: `PROPTEST_CASES` when set, else `default`.
pub(crate) fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs a chainsmith command that must succeed and returns its one JSON object.
pub(crate) fn json_output(cmd: &mut assert_cmd::Command) -> serde_json::Value {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
