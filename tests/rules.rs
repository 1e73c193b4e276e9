//! The rule interface used as a library: a block is connected only after the chain's own rule
//! checked it, and every registered rule keeps its seal.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::ChainSpec;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::state::{BlockError, ChainState};
use chainsmith::consensus::{Consensus, rule_names};
use chainsmith::pow::PowError;
use common::{NOW, build_chain, test_spec};

#[test]
fn a_block_checked_under_another_rule_is_refused() {
    let golden = include_str!("golden/poa-demo.jsonl");
    let records: Vec<BlockRecord> = golden
        .lines()
        .take(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spec = records[0].spec.clone().unwrap();
    let mut state = ChainState::new(spec);
    state
        .connect(&state.check(records[0].clone()).unwrap(), NOW)
        .unwrap();
    // Block 1 passes the context-free checks of DPoS too (zero nonce, no DPoS seal yet), but
    // checked as DPoS it may not reach a proof-of-authority chain.
    let dpos = Consensus::from_name("dpos").unwrap();
    let checked = dpos.check(records[1].clone()).unwrap();
    assert_eq!(
        state.connect(&checked, NOW),
        Err(BlockError::OtherRule {
            checked: "dpos",
            chain: "poa"
        })
    );
    assert_eq!(state.block_count(), 1, "the refused block changed nothing");
    state
        .connect(&state.check(records[1].clone()).unwrap(), NOW)
        .unwrap();
    assert_eq!(state.block_count(), 2);
}

#[test]
fn a_block_missing_its_proof_of_work_never_becomes_checked() {
    let spec = test_spec();
    let records = build_chain(&spec, 1, 0);
    let mut bad = records[1].to_block();
    // Find a nonce whose hash misses the (easy) target.
    let target = bad.header.bits.to_target().unwrap();
    while target.is_met_by(bad.block_hash()) {
        bad.header.nonce = bad.header.nonce.wrapping_add(1);
    }
    let record = BlockRecord::new(1, &bad, None);
    let err = spec.consensus.check(record.clone()).unwrap_err();
    assert!(
        matches!(err.rule_error(), Some(PowError::HighHash { .. })),
        "{err}"
    );
    // Under a signing rule the same block fails for its missing seal instead: no rule lets a
    // block through unchecked.
    for name in rule_names().into_iter().filter(|n| *n != "pow") {
        let rule = Consensus::from_name(name).unwrap();
        assert!(rule.check(record.clone()).is_err(), "{name} accepted it");
    }
}

#[test]
fn every_builtin_spec_names_a_registered_rule() {
    for name in chainsmith::chain::spec::builtin_names() {
        let spec = ChainSpec::builtin(name).unwrap();
        assert!(rule_names().contains(&spec.consensus.name()), "{name}");
    }
    let err = ChainSpec::from_json(
        &include_str!("../chains/pow-demo.json").replace("\"pow\"", "\"tendermint\""),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("unknown consensus rule \"tendermint\""),
        "{err}"
    );
}

/// The layering the registry depends on, checked in the source: the consensus-neutral core
/// (primitives, hashing, difficulty, metrics, chain) imports no rule module.
#[test]
fn the_core_names_no_rule() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for dir in ["chain", "primitives", "hash", "difficulty", "metrics"] {
        for entry in std::fs::read_dir(src.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for rule in ["pow", "pos", "dpos", "poa"] {
                let import = format!("crate::{rule}::");
                let group = format!("crate::{{{rule}");
                assert!(
                    !text.contains(&import) && !text.contains(&group),
                    "{} uses the {rule} rule module",
                    path.display()
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} core files found");
}

/// The genesis line is the spec's genesis and nothing more: no seal, and a proof-of-work
/// genesis meets its own target (the spec is refused otherwise).
#[test]
fn the_genesis_block_carries_no_seal_and_meets_its_target() {
    let golden = include_str!("golden/pow-demo.jsonl");
    let mut genesis: BlockRecord = serde_json::from_str(golden.lines().next().unwrap()).unwrap();
    genesis.signature = Some(chainsmith::primitives::tx::SigBytes::from_bytes([7; 64]));
    let err = genesis
        .spec
        .clone()
        .unwrap()
        .consensus
        .check(genesis)
        .unwrap_err();
    assert!(matches!(err, BlockError::UnexpectedSeal { .. }), "{err}");

    let text = include_str!("../chains/regtest.json");
    let mut value: serde_json::Value = serde_json::from_str(text).unwrap();
    let mut nonce = 0u32;
    let refused = loop {
        value["genesis"]["nonce"] = nonce.into();
        match ChainSpec::from_json(&value.to_string()) {
            Ok(_) => nonce += 1,
            Err(e) => break e.to_string(),
        }
    };
    assert!(refused.contains("genesis.nonce"), "{refused}");
    assert_ne!(nonce, 2, "regtest's own genesis nonce meets the target");
}

/// A spec's fields appear once: a repeated rule section is refused, not silently replaced.
#[test]
fn a_repeated_spec_section_is_refused() {
    let text = include_str!("../chains/poa-demo.json");
    let doubled = text.replacen(
        "\"poa\": {",
        "\"poa\": {\"signers\": [\"alice\"]},\n  \"poa\": {",
        1,
    );
    assert_ne!(doubled, text);
    let err = ChainSpec::from_json(&doubled).unwrap_err().to_string();
    assert!(err.contains("duplicate field `poa`"), "{err}");
    // Section errors stay typed: an unknown field is named by its variant.
    let unknown = text.replacen("\"poa\": {", "\"colour\": 1,\n  \"poa\": {", 1);
    assert_eq!(
        ChainSpec::from_json(&unknown).unwrap_err(),
        chainsmith::chain::spec::SpecError::UnknownField("colour".into())
    );
}
