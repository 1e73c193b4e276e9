//! Shared helpers for the integration tests: build valid chains in memory and re-mine
//! tampered blocks so that each consensus rule can be tested on its own.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Cursor;

use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::{LineErrorKind, Replay, replay};
use chainsmith::chain::wallet::demo_transfers;
use chainsmith::pow::miner::{SearchControl, SearchMode, SearchOptions, solve_block};
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

/// Builds a valid chain of `blocks` blocks after genesis, with up to `tx_per_block` demo
/// transfers per block and block times exactly on schedule.
pub(crate) fn build_chain(spec: &ChainSpec, blocks: u32, tx_per_block: usize) -> Vec<BlockRecord> {
    let (mut records, mut state) = start_chain(spec);
    let keys = spec.wallet_keys();
    let miner = spec.miner_key().pubkey();
    for height in 1..=blocks {
        let transfers = demo_transfers(&state, &keys, tx_per_block, height, &[]);
        let time = spec.genesis.time + height * spec.target_spacing_s;
        let template = state.block_template(time, miner, transfers);
        let target = template.header.bits.to_target().unwrap();
        let block = solve_block(template, target, &lowest(), &SearchControl::default()).unwrap();
        let record = BlockRecord::new(height, &block, None);
        state
            .connect(&spec.consensus.check(record.clone()).unwrap(), NOW)
            .unwrap();
        records.push(record);
    }
    records
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
    mut observe: impl FnMut(&ChainState, &BlockRecord),
) -> Vec<BlockRecord> {
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use chainsmith::pos::stake::{StakeOutcome, earliest_stake_time, find_stake, stake_block};

    let (mut records, mut state) = start_chain(spec);
    let keys = spec.wallet_keys();
    let (hashes, stop) = (AtomicU64::new(0), AtomicBool::new(false));
    for height in 1..=blocks {
        let from = earliest_stake_time(&state);
        let StakeOutcome::Found(stake) = find_stake(&state, &keys, from, NOW, &hashes, &stop)
        else {
            panic!("no stake found for height {height}")
        };
        let transfers = demo_transfers(&state, &keys, tx_per_block, height, &[stake.outpoint]);
        let record = stake_block(&state, &keys, &stake, transfers);
        observe(&state, &record);
        state
            .connect(&spec.consensus.check(record.clone()).unwrap(), NOW)
            .unwrap();
        records.push(record);
    }
    records
}

/// A small DPoS spec with hand-computable elections: candidates a–g, 4 producers, 3 blocks per
/// turn, five holders (see the file).
pub(crate) fn test_dpos_spec() -> ChainSpec {
    ChainSpec::from_json(include_str!("../data/test-dpos.json")).unwrap()
}

/// Builds a DPoS or proof-of-authority chain of `blocks` blocks with the library's producers:
/// `offline` names miss their turns, `proposal` is the PoA vote every signer casts, and
/// `extra(state, height)` adds transactions (votes, transfers) to each block. Returns the
/// records and the final state.
pub(crate) fn build_authority_chain(
    spec: &ChainSpec,
    blocks: u32,
    offline: &[&str],
    proposal: Option<chainsmith::primitives::tx::SignerVote>,
    mut extra: impl FnMut(&ChainState, u32) -> Vec<chainsmith::primitives::tx::Transaction>,
) -> (Vec<BlockRecord>, ChainState) {
    use chainsmith::dpos::{DposState, dpos_block, dpos_slot};
    use chainsmith::poa::poa_block;
    use chainsmith::primitives::tx::KeyPair;

    let (mut records, mut state) = start_chain(spec);
    let offline: Vec<_> = offline
        .iter()
        .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
        .collect();
    let mut keys = spec.wallet_keys();
    keys.extend(["frank", "grace"].map(|n| KeyPair::derive(&spec.wallet_seed, n)));
    for height in 1..=blocks {
        let txs = extra(&state, height);
        let record = match state.rule_state_as::<DposState>() {
            Some(d) => {
                let (slot, producer) = dpos_slot(&state, d, &offline).unwrap();
                dpos_block(&state, slot, producer, txs, 0).unwrap()
            }
            None => poa_block(&state, &keys, &offline, proposal, txs).unwrap(),
        };
        state
            .connect(&spec.consensus.check(record.clone()).unwrap(), NOW)
            .unwrap();
        records.push(record);
    }
    (records, state)
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
