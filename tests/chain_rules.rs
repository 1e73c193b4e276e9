//! Each consensus rule on its own: a valid chain is tampered with at one block, the block is
//! made self-consistent again (merkle root, proof of work, hash field) as an attacker would,
//! and verification must reject exactly that block for exactly that rule.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::state::BlockError;
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::pow::PowError;
use chainsmith::primitives::hash::BlockHash;
use chainsmith::primitives::tx::{Amount, KeyPair, OutPoint, Transaction, TxOut};
use chainsmith::{ChainState, CompactTarget};
use common::{NOW, build_chain, error_at, remine, replay_records, test_spec};

fn chain() -> Vec<BlockRecord> {
    build_chain(&test_spec(), 12, 2)
}

fn block_error(kind: LineErrorKind) -> BlockError {
    match kind {
        LineErrorKind::Block(e) => e,
        other => panic!("expected a block error, got {other}"),
    }
}

fn first_transfer_height(records: &[BlockRecord]) -> usize {
    records
        .iter()
        .position(|r| r.txs.len() > 1)
        .expect("the test chain has transfers")
}

#[test]
fn valid_chain_verifies_with_transfers_and_retargets() {
    let records = chain();
    let r = replay_records(&records);
    assert!(r.error.is_none(), "{:?}", r.error);
    let state = r.state.unwrap();
    assert_eq!(state.tip().unwrap().height, 12);
    // Transfers were made and the Bitcoin rule changed the bits at height 4.
    assert!(first_transfer_height(&records) > 0);
    assert_ne!(records[4].bits, records[3].bits);
    assert_eq!(records[5].bits, records[4].bits);
}

#[test]
fn rejects_wrong_prev_hash() {
    let mut records = chain();
    records[5].prev_hash = BlockHash::from_byte_array([7; 32]);
    remine(&mut records[5]);
    let e = block_error(error_at(&replay_records(&records), 5));
    assert!(matches!(e, BlockError::PrevHashMismatch { .. }), "{e}");
}

#[test]
fn rejects_merkle_root_that_does_not_match_transactions() {
    let mut records = chain();
    let mut block = records[6].to_block();
    block.header.merkle_root = chainsmith::primitives::hash::MerkleRoot::from_byte_array([1; 32]);
    // Re-solve the header with the wrong root but keep the root wrong.
    let target = block.header.bits.to_target().unwrap();
    let job = chainsmith::hash::PowJob::new(&block.header, target);
    let opts = chainsmith::hash::search::SearchOptions::default();
    let control = chainsmith::hash::search::SearchControl::default();
    let chainsmith::pow::miner::SearchOutcome::Found(n) =
        chainsmith::pow::miner::search(&job, &opts, &control)
    else {
        panic!("regtest target solves at once")
    };
    block.header.nonce = n;
    records[6] = BlockRecord::new(6, &block, None);
    let e = block_error(error_at(&replay_records(&records), 6));
    assert!(matches!(e, BlockError::BadMerkleRoot { .. }), "{e}");
}

#[test]
fn rejects_duplicated_transaction_tail_cve_2012_2459() {
    let mut records = chain();
    let h = first_transfer_height(&records);
    // Two transactions (coinbase + one transfer) plus a copy of the last: 3 → 4 leaves
    // gives the same root as the honest list with the last duplicated on an odd level.
    records[h].txs.truncate(2);
    remine(&mut records[h]);
    let last = records[h].txs[1].clone();
    records[h].txs.push(last.clone());
    records[h].txs.push(last);
    remine(&mut records[h]);
    let e = block_error(error_at(&replay_records(&records), h as u64));
    assert!(matches!(e, BlockError::MutatedMerkle), "{e}");
}

#[test]
fn rejects_bits_other_than_the_retarget_rule_demands() {
    let mut records = chain();
    // Height 4 is a retarget height: keeping the old bits there is wrong.
    records[4].bits = records[3].bits;
    remine(&mut records[4]);
    let e = block_error(error_at(&replay_records(&records), 4));
    assert!(matches!(e, BlockError::WrongBits { .. }), "{e}");
}

#[test]
fn rejects_target_above_pow_limit() {
    let mut records = chain();
    records[2].bits = CompactTarget::from_consensus(0x2100_ffff);
    remine(&mut records[2]);
    let e = block_error(error_at(&replay_records(&records), 2));
    assert!(matches!(e, BlockError::TargetAboveLimit { .. }), "{e}");
}

#[test]
fn rejects_hash_above_target() {
    let mut records = chain();
    // Find a nonce whose hash does NOT meet the target and claim it.
    let mut block = records[3].to_block();
    let target = block.header.bits.to_target().unwrap();
    block.header.nonce = (0..)
        .find(|n| {
            let mut h = block.header;
            h.nonce = *n;
            !target.is_met_by(h.block_hash())
        })
        .unwrap();
    records[3] = BlockRecord::new(3, &block, None);
    let e = block_error(error_at(&replay_records(&records), 3));
    assert!(
        matches!(e.rule_error(), Some(PowError::HighHash { .. })),
        "{e}"
    );
}

#[test]
fn rejects_time_not_after_median_time_past() {
    let mut records = chain();
    records[9].time = records[3].time;
    remine(&mut records[9]);
    let e = block_error(error_at(&replay_records(&records), 9));
    assert!(matches!(e, BlockError::TimeTooOld { .. }), "{e}");
}

#[test]
fn rejects_time_too_far_in_the_future() {
    let mut records = chain();
    let tip = records.len() - 1;
    records[tip].time = NOW + 7201;
    remine(&mut records[tip]);
    let e = block_error(error_at(&replay_records(&records), tip as u64));
    assert!(matches!(e, BlockError::TimeTooNew { .. }), "{e}");
}

fn coinbase_outputs(record: &mut BlockRecord) -> &mut Vec<TxOut> {
    match &mut record.txs[0] {
        Transaction::Coinbase { outputs, .. } => outputs,
        _ => panic!("first transaction is a coinbase"),
    }
}

#[test]
fn rejects_coinbase_paying_more_than_subsidy_and_fees() {
    let mut records = chain();
    let out = &mut coinbase_outputs(&mut records[7])[0];
    out.value = out.value.checked_add(Amount::from_base_units(1)).unwrap();
    remine(&mut records[7]);
    let e = block_error(error_at(&replay_records(&records), 7));
    assert!(matches!(e, BlockError::CoinbaseTooLarge { .. }), "{e}");
}

#[test]
fn coinbase_subsidy_halves_on_schedule() {
    let records = chain();
    let spec = test_spec();
    // Blocks without transfers pay exactly the subsidy; it halves at height 10.
    let paid = |h: usize| match &records[h].txs[0] {
        Transaction::Coinbase { outputs, .. } if records[h].txs.len() == 1 => {
            Some(outputs[0].value)
        }
        _ => None,
    };
    assert_eq!(paid(1), Some(spec.subsidy(1)));
    assert_eq!(
        spec.subsidy(10).to_base_units(),
        spec.subsidy(9).to_base_units() / 2
    );
}

#[test]
fn rejects_wrong_coinbase_height() {
    let mut records = chain();
    if let Transaction::Coinbase { height, .. } = &mut records[8].txs[0] {
        *height = 7;
    }
    remine(&mut records[8]);
    let e = block_error(error_at(&replay_records(&records), 8));
    assert!(
        matches!(
            e,
            BlockError::CoinbaseHeight {
                expected: 8,
                actual: 7
            }
        ),
        "{e}"
    );
}

#[test]
fn rejects_a_second_coinbase() {
    let mut records = chain();
    let mut extra = records[5].txs[0].clone();
    if let Transaction::Coinbase { extra_nonce, .. } = &mut extra {
        *extra_nonce += 1;
    }
    records[5].txs.insert(1, extra);
    remine(&mut records[5]);
    let e = block_error(error_at(&replay_records(&records), 5));
    assert!(
        matches!(e, BlockError::MisplacedCoinbase { index: 1, .. }),
        "{e}"
    );
}

#[test]
fn rejects_forged_signature() {
    let mut records = chain();
    let h = first_transfer_height(&records);
    if let Transaction::Transfer { inputs, .. } = &mut records[h].txs[1] {
        let mut sig = inputs[0].signature.to_bytes();
        sig[5] ^= 1;
        inputs[0].signature = chainsmith::primitives::tx::SigBytes::from_bytes(sig);
    }
    remine(&mut records[h]);
    let e = block_error(error_at(&replay_records(&records), h as u64));
    assert!(
        matches!(
            e,
            BlockError::BadSignature {
                index: 1,
                input: 0,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn rejects_outputs_changed_after_signing() {
    let mut records = chain();
    let h = first_transfer_height(&records);
    if let Transaction::Transfer { outputs, .. } = &mut records[h].txs[1] {
        outputs[0].to = KeyPair::derive("thief", "thief").pubkey();
    }
    remine(&mut records[h]);
    let e = block_error(error_at(&replay_records(&records), h as u64));
    assert!(matches!(e, BlockError::BadSignature { .. }), "{e}");
}

/// Replaces transfer `index` of block `h` with a transfer the real owner signs.
fn resign(
    records: &mut [BlockRecord],
    h: usize,
    spends: &[OutPoint],
    owner: &KeyPair,
    outputs: Vec<TxOut>,
) {
    let pairs: Vec<_> = spends.iter().map(|op| (*op, owner)).collect();
    records[h].txs[1] = Transaction::signed_transfer(common::sig_domain(records), &pairs, outputs);
    records[h].txs.truncate(2);
    remine(&mut records[h]);
}

fn state_before(records: &[BlockRecord], h: usize) -> ChainState {
    common::replay_records(&records[..h]).state.unwrap()
}

#[test]
fn rejects_inflation_and_double_spends_and_immature_spends() {
    let spec = test_spec();
    let miner = spec.miner_key();
    let records = chain();
    let h = first_transfer_height(&records);
    let state = state_before(&records, h);
    let (op, utxo) = state
        .utxos()
        .iter()
        .find(|(_, u)| u.owner == miner.pubkey() && u.coinbase && u.height + 2 <= h as u32)
        .map(|(o, u)| (*o, *u))
        .unwrap();

    // Inflation: create one base unit more than is spent.
    let mut inflated = records.clone();
    let more = utxo.value.checked_add(Amount::from_base_units(1)).unwrap();
    resign(
        &mut inflated,
        h,
        &[op],
        &miner,
        vec![TxOut {
            value: more,
            to: miner.pubkey(),
        }],
    );
    let e = block_error(error_at(&replay_records(&inflated), h as u64));
    assert!(matches!(e, BlockError::Inflation { index: 1, .. }), "{e}");

    // Double spend inside one transaction.
    let mut double = records.clone();
    let half = Amount::from_base_units(utxo.value.to_base_units() / 2);
    resign(
        &mut double,
        h,
        &[op, op],
        &miner,
        vec![TxOut {
            value: half,
            to: miner.pubkey(),
        }],
    );
    let e = block_error(error_at(&replay_records(&double), h as u64));
    assert!(
        matches!(
            e,
            BlockError::MissingInput {
                index: 1,
                input: 1,
                ..
            }
        ),
        "{e}"
    );

    // Spending an output that does not exist.
    let mut missing = records.clone();
    let ghost = OutPoint {
        txid: chainsmith::primitives::hash::Txid::hash(b"ghost"),
        vout: 0,
    };
    resign(
        &mut missing,
        h,
        &[ghost],
        &miner,
        vec![TxOut {
            value: half,
            to: miner.pubkey(),
        }],
    );
    let e = block_error(error_at(&replay_records(&missing), h as u64));
    assert!(
        matches!(e, BlockError::MissingInput { input: 0, .. }),
        "{e}"
    );

    // Spending the previous block's coinbase before maturity (2 blocks).
    let (young, young_utxo) = state
        .utxos()
        .iter()
        .find(|(_, u)| u.coinbase && u.height + 1 == h as u32)
        .map(|(o, u)| (*o, *u))
        .unwrap();
    let mut immature = records.clone();
    resign(
        &mut immature,
        h,
        &[young],
        &miner,
        vec![TxOut {
            value: young_utxo.value,
            to: miner.pubkey(),
        }],
    );
    let e = block_error(error_at(&replay_records(&immature), h as u64));
    assert!(matches!(e, BlockError::ImmatureCoinbase { .. }), "{e}");
}

#[test]
fn rejects_genesis_that_differs_from_its_spec() {
    let mut records = chain();
    records[0].time += 1;
    remine(&mut records[0]);
    let e = block_error(error_at(&replay_records(&records), 0));
    assert!(matches!(e, BlockError::GenesisMismatch { .. }), "{e}");

    let mut records = chain();
    let mut spec = records[0].spec.clone().unwrap();
    spec.reward.initial = Amount::from_base_units(1);
    records[0].spec = Some(spec);
    let e = block_error(error_at(&replay_records(&records), 0));
    assert!(matches!(e, BlockError::SpecHashMismatch { .. }), "{e}");
}

#[test]
fn rejects_wrong_height_field_and_spec_after_genesis() {
    let mut records = chain();
    records[3].height = 4;
    let e = block_error(error_at(&replay_records(&records), 3));
    assert!(
        matches!(
            e,
            BlockError::WrongHeight {
                expected: 3,
                actual: 4
            }
        ),
        "{e}"
    );

    let mut records = chain();
    records[2].spec = records[0].spec.clone();
    let e = block_error(error_at(&replay_records(&records), 2));
    assert!(matches!(e, BlockError::UnexpectedSpec), "{e}");
}

#[test]
fn valid_prefix_length_points_at_the_bad_line() {
    let mut records = chain();
    records[6].nonce ^= 1;
    let bytes = common::to_file_bytes(&records);
    let r = common::replay_bytes(&bytes);
    let err = r.error.clone().unwrap();
    let prefix = common::to_file_bytes(&records[..6]);
    assert_eq!(r.valid_bytes, prefix.len() as u64);
    assert_eq!(err.offset, prefix.len() as u64);
    assert_eq!(r.state.unwrap().tip().unwrap().height, 5);
}

#[test]
fn chain_continues_after_the_subsidy_runs_out() {
    // Halving every 10 blocks: after 64 halvings (height 640) blocks pay nothing. Fixed
    // difficulty, so that 660 blocks mine at once.
    let mut spec = test_spec();
    spec.retarget = chainsmith::difficulty::RetargetRule::None;
    let records = build_chain(&spec, 660, 0);
    assert_eq!(spec.subsidy(650), Amount::ZERO);
    assert!(records[650].txs.len() == 1);
    let Transaction::Coinbase { outputs, .. } = &records[650].txs[0] else {
        panic!("coinbase first")
    };
    assert!(outputs.is_empty());
    assert!(replay_records(&records).error.is_none());
}
