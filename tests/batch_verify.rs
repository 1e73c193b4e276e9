//! Signatures checked in batches during verification give the answers checking them one at a
//! time gives: a planted bad signature — a transfer's, a vote's, a block's, a coinstake
//! kernel's, one of a quorum certificate's — is reported at the height it was planted, with
//! the message the one-at-a-time check gives, and valid chains replay to the same state.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::chain::produce::ProduceOptions;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::primitives::tx::{KeyPair, PubKey, SigBytes, Transaction};
use chainsmith::{ChainSpec, ChainState};
use common::{
    NOW, build_pos_chain, produce_chain, replay_bytes, replay_records, test_dpos_spec,
    test_pos_spec, to_file_bytes,
};

/// The first invalid block of `records` when each is checked and connected on its own, every
/// signature checked where the code meets it: its height and message.
fn one_at_a_time(records: &[BlockRecord]) -> Option<(u64, String)> {
    let spec = records[0].spec.clone().unwrap();
    let mut state = ChainState::new(spec);
    for r in records {
        let height = u64::from(r.height);
        let checked = match state.check(r.clone()) {
            Ok(c) => c,
            Err(e) => return Some((height, e.to_string())),
        };
        if let Err(e) = state.connect(&checked, NOW) {
            return Some((height, e.to_string()));
        }
    }
    None
}

/// The first invalid line of `records` as verification reports it: height and message.
fn replayed(records: &[BlockRecord]) -> (u64, String) {
    let err = replay_records(records)
        .error
        .expect("the chain must be rejected");
    assert_eq!(err.line, err.height + 1);
    let LineErrorKind::Block(e) = err.kind else {
        panic!("expected a block error, got {}", err.kind)
    };
    (err.height, e.to_string())
}

/// Asserts that `records` is rejected at `height` with a message containing `says`, the
/// message the one-at-a-time check gives.
fn rejected_at(records: &[BlockRecord], height: u64, says: &str) {
    let (at, message) = replayed(records);
    assert_eq!(at, height, "{message}");
    assert!(message.contains(says), "{message}");
    assert_eq!(one_at_a_time(records), Some((at, message)));
}

fn key_of(spec: &ChainSpec, key: &PubKey) -> KeyPair {
    spec.wallet_keys()
        .into_iter()
        .chain(
            spec.producer_names()
                .into_iter()
                .map(|n| KeyPair::derive(&spec.wallet_seed, n)),
        )
        .find(|k| k.pubkey() == *key)
        .unwrap()
}

/// Makes a tampered block consistent again and signs it as `signer` would: merkle root,
/// hash, block signature.
fn resign(record: &mut BlockRecord, signer: &KeyPair) {
    let mut block = record.to_block();
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut fresh = BlockRecord::new(record.height, &block, None);
    fresh.signature = Some(signer.sign(fresh.hash.as_bytes()));
    *record = fresh;
}

fn flipped(sig: SigBytes) -> SigBytes {
    let mut bytes = sig.to_bytes();
    bytes[9] ^= 0x40;
    SigBytes::from_bytes(bytes)
}

/// A DPoS chain of more blocks than one verification batch (2048 lines) holds, with two
/// transfers and one vote in every block.
fn dpos_chain(blocks: u32) -> (ChainSpec, Vec<BlockRecord>) {
    let spec = test_dpos_spec();
    let options = ProduceOptions {
        tx_per_block: 2,
        votes_per_block: Some(1),
        ..ProduceOptions::default()
    };
    let (records, _) = produce_chain(
        &spec,
        blocks,
        &options,
        |_| NOW,
        |_, _| Vec::new(),
        |_, _| {},
    );
    (spec, records)
}

/// The position of the first transaction of `kind` in `record`.
fn first_of(record: &BlockRecord, kind: &str) -> usize {
    record.txs.iter().position(|t| t.kind() == kind).unwrap()
}

fn producer(spec: &ChainSpec, record: &BlockRecord) -> KeyPair {
    let Transaction::Producer { producer, .. } = &record.txs[1] else {
        panic!("producer transaction second")
    };
    key_of(spec, producer)
}

/// Breaks the signature of input 0 of the block's first transfer; returns its position.
fn break_transfer(spec: &ChainSpec, record: &mut BlockRecord) -> usize {
    let index = first_of(record, "transfer");
    let Transaction::Transfer { inputs, .. } = &mut record.txs[index] else {
        unreachable!()
    };
    inputs[0].signature = flipped(inputs[0].signature);
    let signer = producer(spec, record);
    resign(record, &signer);
    index
}

fn break_vote(spec: &ChainSpec, record: &mut BlockRecord) -> usize {
    let index = first_of(record, "vote");
    let Transaction::Vote { signature, .. } = &mut record.txs[index] else {
        unreachable!()
    };
    *signature = flipped(*signature);
    let signer = producer(spec, record);
    resign(record, &signer);
    index
}

#[test]
fn dpos_bad_signatures_are_rejected_where_planted_with_the_one_at_a_time_message() {
    let (spec, records) = dpos_chain(2100);
    assert!(replay_records(&records).error.is_none());
    assert_eq!(one_at_a_time(&records), None);

    // A transfer's input signature, in the second batch and in the first.
    for height in [2070, 700] {
        let mut bad = records.clone();
        let index = break_transfer(&spec, &mut bad[height]);
        let owner_says = format!("transaction {index} input 0: signature is not valid for owner");
        rejected_at(&bad, height as u64, &owner_says);
    }
    // A vote's signature.
    let mut bad = records.clone();
    let index = break_vote(&spec, &mut bad[1500]);
    rejected_at(&bad, 1500, &format!("transaction {index}"));
    // The producer's block signature: signed over another message.
    let mut bad = records.clone();
    let signer = producer(&spec, &bad[30]);
    bad[30].signature = Some(signer.sign(b"not the block hash"));
    rejected_at(
        &bad,
        30,
        "block signature is missing or not valid for the block's producer",
    );
    // Several: the lowest height is reported, whatever kind each is.
    let mut bad = records.clone();
    break_vote(&spec, &mut bad[1200]);
    let index = break_transfer(&spec, &mut bad[1100]);
    let signer = producer(&spec, &bad[1300]);
    bad[1300].signature = Some(signer.sign(b"x"));
    rejected_at(&bad, 1100, &format!("transaction {index} input 0"));
}

#[test]
fn a_bad_signature_is_reported_before_a_later_error_in_its_block_and_after_an_earlier_one() {
    let (spec, records) = dpos_chain(40);
    // The block's first transfer has a bad signature and its coinbase pays too much, which
    // the ledger checks after every transfer: the signature is reported.
    let mut bad = records.clone();
    let Transaction::Coinbase { outputs, .. } = &mut bad[20].txs[0] else {
        panic!("coinbase first")
    };
    outputs[0].value = chainsmith::primitives::tx::Amount::from_base_units(
        outputs[0].value.to_base_units() * 1000,
    );
    let index = break_transfer(&spec, &mut bad[20]);
    rejected_at(&bad, 20, &format!("transaction {index} input 0"));
    // A vote checked before the transfers: its bad signature comes first.
    let index = break_vote(&spec, &mut bad[20]);
    rejected_at(&bad, 20, &format!("transaction {index}"));
    // An earlier block with an error that is not a signature's wins over both.
    let Transaction::Coinbase { outputs, .. } = &mut bad[12].txs[0] else {
        panic!("coinbase first")
    };
    outputs[0].value = chainsmith::primitives::tx::Amount::from_base_units(
        outputs[0].value.to_base_units() * 1000,
    );
    let signer = producer(&spec, &bad[12]);
    resign(&mut bad[12], &signer);
    rejected_at(&bad, 12, "coinbase pays");
}

#[test]
fn pos_bad_block_and_kernel_signatures_are_rejected_where_planted() {
    let spec = test_pos_spec();
    let records = build_pos_chain(&spec, 60, 2, |_, _| {});
    assert!(replay_records(&records).error.is_none());
    let staker = |r: &BlockRecord| {
        let Transaction::Coinstake { outputs, .. } = &r.txs[1] else {
            panic!("coinstake second")
        };
        key_of(&spec, &outputs[0].to)
    };
    let mut bad = records.clone();
    let key = staker(&bad[33]);
    bad[33].signature = Some(key.sign(b"another message"));
    rejected_at(
        &bad,
        33,
        "block signature is missing or not valid for the block's producer",
    );
    let mut bad = records.clone();
    let key = staker(&bad[41]);
    let Transaction::Coinstake { inputs, .. } = &mut bad[41].txs[1] else {
        unreachable!()
    };
    inputs[0].signature = flipped(inputs[0].signature);
    resign(&mut bad[41], &key);
    rejected_at(
        &bad,
        41,
        "transaction 1 input 0: signature is not valid for owner",
    );
}

/// A chain of `blocks` blocks mined by `chainsmith mine RULE` with its demo spec: the file's
/// bytes and its records.
fn mined(rule: &str, blocks: &str) -> (Vec<u8>, Vec<BlockRecord>) {
    let dir = tempfile::tempdir().unwrap();
    let chain = dir.path().join(format!("{rule}.jsonl"));
    let out = assert_cmd::cargo::cargo_bin_cmd!("chainsmith")
        .args(["mine", rule, "--quiet", "--blocks", blocks, "--chain"])
        .arg(&chain)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read(&chain).unwrap();
    let records = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    (text, records)
}

#[test]
fn a_pbft_certificate_with_one_bad_signature_is_rejected_at_its_height() {
    let (text, records) = mined("pbft", "40");
    assert!(replay_bytes(&text).error.is_none());
    for (height, index) in [(17, 1), (29, 2)] {
        let mut bad = records.clone();
        let qc = bad[height].certificate.as_mut().unwrap();
        qc.signatures[index].signature = flipped(qc.signatures[index].signature);
        let (at, message) = replayed(&bad);
        assert_eq!(at, height as u64);
        assert!(
            message.starts_with(&format!("quorum certificate signature {index}: not ")),
            "{message}"
        );
        assert_eq!(one_at_a_time(&bad), Some((at, message)));
        // The certificate is outside the block hash: the file is otherwise intact.
        assert_eq!(to_file_bytes(&records).len(), to_file_bytes(&bad).len());
    }
}

/// A certificate with two faults, a bad signature first and then a signer repeated: the seal
/// check in the parallel step meets the repeat (its signatures recorded, not yet checked), but
/// verification reports the bad signature, as checking one signature at a time does.
#[test]
fn a_bad_certificate_signature_is_reported_before_a_later_fault_in_the_same_seal() {
    let (_, records) = mined("zab", "3");
    let mut bad = records.clone();
    let qc = bad[1].certificate.as_mut().unwrap();
    qc.signatures[0].signature = flipped(qc.signatures[0].signature);
    let repeat = qc.signatures[1];
    qc.signatures.push(repeat);
    let (at, message) = replayed(&bad);
    assert_eq!(at, 1);
    assert!(
        message.starts_with("quorum certificate signature 0: not "),
        "{message}"
    );
    assert_eq!(one_at_a_time(&bad), Some((at, message)));
}
