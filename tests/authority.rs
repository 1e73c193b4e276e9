//! Delegated proof of stake and proof of authority on real chains: elections, schedules,
//! irreversibility, Clique turns and votes, and one rejected tamper per rule, each at its
//! height.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::ChainSpec;
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::spec::RuleSection;
use chainsmith::chain::state::{BlockError, ChainState};
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::consensus::ProducerStats;
use chainsmith::dpos::{DoubleSign, SlotClaim};
use chainsmith::dpos::{DposError, DposSpec, DposState, ScheduleOrder};
use chainsmith::poa::{PoaError, PoaState};
use chainsmith::primitives::tx::{KeyPair, PubKey, SigDomain, SignerVote, Transaction};
use common::{NOW, build_authority_chain, error_at, replay_records, test_dpos_spec};

/// What the transactions of chains built from `spec` sign: its genesis.
fn domain(spec: &ChainSpec) -> SigDomain {
    SigDomain::Chain(spec.genesis_block().block_hash())
}

fn key(spec: &ChainSpec, name: &str) -> KeyPair {
    KeyPair::derive(&spec.wallet_seed, name)
}

fn name_of(spec: &ChainSpec, pubkey: &PubKey) -> String {
    let mut names: Vec<&str> = spec.producer_names();
    names.extend(["frank", "grace"]);
    names
        .into_iter()
        .find(|n| key(spec, n).pubkey() == *pubkey)
        .unwrap()
        .to_owned()
}

/// (producer name, slot) of a DPoS block.
fn produced(spec: &ChainSpec, record: &BlockRecord) -> (String, u64) {
    let Transaction::Producer { producer, slot } = &record.txs[1] else {
        panic!("producer transaction second")
    };
    (name_of(spec, producer), *slot)
}

fn dpos(state: &ChainState) -> &DposState {
    let Some(d) = state.rule_state_as::<DposState>() else {
        panic!("a dpos chain")
    };
    d
}

fn schedule_names(state: &ChainState) -> Vec<String> {
    let d = dpos(state);
    d.schedule()
        .producers
        .iter()
        .map(|&i| d.candidate_names()[usize::from(i)].clone())
        .collect()
}

fn block_error(kind: LineErrorKind) -> BlockError {
    match kind {
        LineErrorKind::Block(e) => e,
        other => panic!("expected a block error, got {other}"),
    }
}

fn rule_error<E: std::error::Error + Clone + 'static>(kind: LineErrorKind) -> E {
    let e = block_error(kind);
    match e.rule_error::<E>() {
        Some(e) => e.clone(),
        None => panic!("expected a {} error, got {e}", std::any::type_name::<E>()),
    }
}

fn authority_error(kind: LineErrorKind) -> DposError {
    rule_error(kind)
}

/// A producer's name and what it did, from the rule's report.
struct Row {
    name: String,
    stats: ProducerStats,
}

fn producer_stats(state: &ChainState) -> Vec<Row> {
    let (_, rows) = state.rule_state().report().producers.unwrap();
    rows.into_iter()
        .map(|r| Row {
            name: r.name,
            stats: ProducerStats {
                blocks: r.blocks,
                missed: r.missed.unwrap(),
            },
        })
        .collect()
}

/// Re-signs a tampered block as `signer` would: merkle root, hash and block signature.
fn resign(record: &mut BlockRecord, signer: &KeyPair) {
    let mut block = record.to_block();
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut fresh = BlockRecord::new(record.height, &block, None);
    fresh.signature = Some(signer.sign(fresh.hash.as_bytes()));
    *record = fresh;
}

// ---------------------------------------------------------------------------------------------
// DPoS

/// Hand tally of test-dpos.json: a 100 (h1), b 100 + 60 = 160 (h1, h2), c 60 + 30 = 90,
/// d 50, e 50, f 30, g 10. Top 4: b, a, c, then d over e (tie, lower name). EOSIO order: by
/// name.
#[test]
fn genesis_election_matches_the_hand_tally() {
    let spec = test_dpos_spec();
    let (_, state) = build_authority_chain(&spec, 0, &[], None, |_, _| Vec::new());
    assert_eq!(schedule_names(&state), ["a", "b", "c", "d"]);
}

#[test]
fn each_producer_makes_its_turn_of_consecutive_slots_in_name_order() {
    let spec = test_dpos_spec();
    let (records, _) = build_authority_chain(&spec, 24, &[], None, |_, _| Vec::new());
    let got: Vec<(String, u64)> = records[1..].iter().map(|r| produced(&spec, r)).collect();
    let order = ["a", "b", "c", "d"];
    for (i, (name, slot)) in got.iter().enumerate() {
        assert_eq!(
            *slot,
            i as u64 + 1,
            "no slot is skipped with everyone online"
        );
        assert_eq!(name, order[i % 12 / 3], "slot {slot}");
    }
}

/// h1 (100 coins) re-votes for e and g in round 0: e 150, g 110, c 90, b 60, a 0 → the next
/// round is b, c, e, g; the current round is not disturbed.
#[test]
fn a_vote_changes_the_next_round_not_the_current_one() {
    let spec = test_dpos_spec();
    let h1 = key(&spec, "h1");
    let (records, state) = build_authority_chain(&spec, 24, &[], None, |state, height| {
        if height == 2 {
            let seq = dpos(state).next_vote_seq(&h1.pubkey());
            vec![Transaction::signed_vote(
                domain(&spec),
                &h1,
                seq,
                vec!["g".into(), "e".into()],
            )]
        } else {
            Vec::new()
        }
    });
    let names: Vec<String> = records[1..].iter().map(|r| produced(&spec, r).0).collect();
    assert_eq!(
        names[..12].iter().step_by(3).collect::<Vec<_>>(),
        ["a", "b", "c", "d"]
    );
    assert_eq!(
        names[12..].iter().step_by(3).collect::<Vec<_>>(),
        ["b", "c", "e", "g"]
    );
    assert_eq!(schedule_names(&state), ["b", "c", "e", "g"]);
    assert!(replay_records(&records).error.is_none());
}

/// Votes weigh the holder's coins when the round starts: h3 (50, votes d and e) sends 45 coins
/// to h5 (votes g): d and e fall to 5, g rises to 55 and replaces d.
#[test]
fn tallies_follow_the_holders_coins() {
    let spec = test_dpos_spec();
    let (h3, h5) = (key(&spec, "h3"), key(&spec, "h5"));
    let (records, state) = build_authority_chain(&spec, 13, &[], None, |state, height| {
        if height != 5 {
            return Vec::new();
        }
        let (op, utxo) = state
            .utxos()
            .iter()
            .find(|(_, u)| u.owner == h3.pubkey())
            .unwrap();
        let to_h5 = chainsmith::primitives::tx::Amount::from_base_units(45 * 100_000_000);
        let change = utxo.value.checked_sub(to_h5).unwrap();
        vec![Transaction::signed_transfer(
            domain(&spec),
            &[(*op, &h3)],
            vec![
                chainsmith::primitives::tx::TxOut {
                    value: to_h5,
                    to: h5.pubkey(),
                },
                chainsmith::primitives::tx::TxOut {
                    value: change,
                    to: h3.pubkey(),
                },
            ],
        )]
    });
    assert_eq!(dpos(&state).balance(&h5.pubkey()), 55 * 100_000_000);
    assert_eq!(schedule_names(&state), ["a", "b", "c", "g"]);
    assert!(replay_records(&records).error.is_none());
}

#[test]
fn offline_producers_miss_their_slots_and_the_chain_skips_them() {
    let spec = test_dpos_spec();
    let (records, state) = build_authority_chain(&spec, 18, &["b"], None, |_, _| Vec::new());
    let slots: Vec<u64> = records[1..].iter().map(|r| produced(&spec, r).1).collect();
    // b owns slots 4-6 and 16-18 of each 12-slot round.
    assert_eq!(&slots[..6], [1, 2, 3, 7, 8, 9]);
    assert!(records[1..].iter().all(|r| produced(&spec, r).0 != "b"));
    let stats = producer_stats(&state);
    let b = stats.iter().find(|r| r.name == "b").unwrap().stats;
    assert_eq!((b.blocks, b.missed), (0, 6), "two rounds of three slots");
    // Block times follow the slots: 0.5 s each, so a gap of 4 slots is 2 s.
    assert_eq!(records[4].time - records[3].time, 2);
    assert!(replay_records(&records).error.is_none());
}

/// With 21 producers, 15 must have produced on top of a block for it to be irreversible: with
/// 7 of the active set offline nothing ever is; with 6 offline blocks are.
#[test]
fn irreversibility_needs_two_thirds_plus_one_producers() {
    let spec = ChainSpec::builtin("dpos-demo").unwrap();
    let (_, genesis) = build_authority_chain(&spec, 0, &[], None, |_, _| Vec::new());
    let active = schedule_names(&genesis);
    assert_eq!(active.len(), 21);
    let down: Vec<&str> = active.iter().take(7).map(String::as_str).collect();
    let (records, state) =
        build_authority_chain(&spec, 2 * 14 * 12, &down, None, |_, _| Vec::new());
    assert_eq!(schedule_names(&state), active, "no votes, same set");
    assert_eq!(state.rule_state().irreversible_height().unwrap(), 0);
    assert!(replay_records(&records).error.is_none());

    let (records, state) =
        build_authority_chain(&spec, 2 * 15 * 12, &down[..6], None, |_, _| Vec::new());
    let lib = state.rule_state().irreversible_height().unwrap();
    assert!(lib > 0, "15 of 21 online: blocks become irreversible");
    // Every block at or below it has descendants (or itself) by at least 15 producers.
    let producers_from = |h: usize| {
        let mut set: Vec<String> = records[h..].iter().map(|r| produced(&spec, r).0).collect();
        set.sort();
        set.dedup();
        set.len()
    };
    assert!(producers_from(lib as usize) >= 15);
    assert!(
        producers_from(lib as usize + 1) < 15,
        "and it is the highest such block"
    );
}

#[test]
fn irreversible_height_never_decreases() {
    let spec = ChainSpec::builtin("dpos-demo").unwrap();
    let mut last = 0;
    let holders: Vec<KeyPair> = spec
        .section::<DposSpec>()
        .unwrap()
        .holders
        .iter()
        .map(|h| key(&spec, &h.name))
        .collect();
    build_authority_chain(&spec, 600, &["bp001"], None, |state, height| {
        let lib = state.rule_state().irreversible_height().unwrap();
        assert!(lib >= last && lib < height);
        last = lib;
        chainsmith::dpos::demo_votes(state, &holders, 3, height)
    });
    assert!(last > 0);
}

#[test]
fn bitshares_order_is_a_fresh_permutation_each_round() {
    let mut spec = test_dpos_spec();
    let dpos = DposSpec {
        order: ScheduleOrder::Bitshares,
        ..spec.section::<DposSpec>().unwrap().clone()
    };
    spec.section = Some(RuleSection::new(dpos));
    let (records, _) = build_authority_chain(&spec, 12 * 6, &[], None, |_, _| Vec::new());
    let mut orders = Vec::new();
    for round in records[1..].chunks(12) {
        let order: Vec<String> = round
            .iter()
            .step_by(3)
            .map(|r| produced(&spec, r).0)
            .collect();
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, ["a", "b", "c", "d"], "each producer once per round");
        orders.push(order);
    }
    orders.dedup();
    assert!(orders.len() > 1, "the order changes between rounds");
    assert!(replay_records(&records).error.is_none());
}

#[test]
fn a_double_signing_producer_is_caught_with_evidence() {
    use chainsmith::dpos::{dpos_block, dpos_slot};
    let spec = test_dpos_spec();
    let (_, state) = build_authority_chain(&spec, 4, &[], None, |_, _| Vec::new());
    let (slot, producer) = dpos_slot(&state, dpos(&state), &[]).unwrap();
    let a = dpos_block(&state, slot, producer, Vec::new(), 0).unwrap();
    let b = dpos_block(&state, slot, producer, Vec::new(), 1).unwrap();
    // Both are valid blocks on their own: a producer really signed two.
    for r in [&a, &b] {
        let mut fork = state.clone();
        fork.connect(&spec.consensus.check(r.clone()).unwrap(), NOW)
            .unwrap();
    }
    let claim = |r: &BlockRecord| SlotClaim {
        producer,
        slot,
        hash: r.hash,
        height: r.height,
    };
    let evidence = DoubleSign::check(claim(&a), claim(&b)).unwrap();
    assert_eq!(evidence.first.hash, a.hash);
    assert_eq!(evidence.second.hash, b.hash);
    assert!(DoubleSign::check(claim(&a), claim(&a)).is_none());
}

fn dpos_chain() -> (ChainSpec, Vec<BlockRecord>) {
    let spec = test_dpos_spec();
    let h2 = key(&spec, "h2");
    let (records, _) = build_authority_chain(&spec, 14, &["c"], None, |state, height| {
        if height == 4 {
            let seq = dpos(state).next_vote_seq(&h2.pubkey());
            vec![Transaction::signed_vote(
                domain(&spec),
                &h2,
                seq,
                vec!["a".into(), "e".into()],
            )]
        } else {
            Vec::new()
        }
    });
    (spec, records)
}

/// A vote signed on one chain is not valid on another whose spec differs only in genesis
/// time, even with the block around it re-signed by that chain's own producer: signatures
/// name their chain (its genesis), as EIP-155's chain id does.
#[test]
fn a_vote_from_another_chain_is_not_valid_here() {
    let (spec, good) = dpos_chain();
    let vote = good[4].txs[2].clone();
    assert!(matches!(vote, Transaction::Vote { .. }));
    let mut v = serde_json::to_value(&spec).unwrap();
    v["genesis"]["time"] = (spec.genesis.time + 1).into();
    let other = ChainSpec::from_json(&v.to_string()).unwrap();
    let (mut records, _) = build_authority_chain(&other, 4, &["c"], None, |_, _| Vec::new());
    let producer = key(&other, &produced(&other, &records[4]).0);
    records[4].txs.push(vote.clone());
    resign(&mut records[4], &producer);
    let err = authority_error(error_at(&replay_records(&records), 4));
    assert!(
        matches!(err, DposError::BadVoteSignature { index: 2, .. }),
        "{err}"
    );
    // The same vote signed for this chain is fine: only the chain it names was wrong.
    let Transaction::Vote {
        seq, candidates, ..
    } = vote
    else {
        unreachable!()
    };
    let h2 = key(&other, "h2");
    records[4].txs[2] = Transaction::signed_vote(domain(&other), &h2, seq, candidates);
    resign(&mut records[4], &producer);
    assert!(replay_records(&records).error.is_none());
}

#[test]
fn dpos_tampers_are_rejected_at_their_height() {
    let (spec, good) = dpos_chain();
    assert!(replay_records(&good).error.is_none());
    let producer_of = |r: &BlockRecord| key(&spec, &produced(&spec, r).0);

    // Another candidate signs a block in someone else's slot.
    let mut records = good.clone();
    let e = key(&spec, "e");
    let Transaction::Producer { slot, .. } = records[5].txs[1] else {
        panic!()
    };
    records[5].txs[1] = Transaction::Producer {
        producer: e.pubkey(),
        slot,
    };
    resign(&mut records[5], &e);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 5)),
        DposError::WrongProducer { expected, actual, .. }
            if expected == key(&spec, "b").pubkey() && actual == e.pubkey()
    ));

    // The producer claims a slot whose time is not the header's.
    let mut records = good.clone();
    let k = producer_of(&records[6]);
    records[6].txs[1] = Transaction::Producer {
        producer: k.pubkey(),
        slot: slot + 10,
    };
    resign(&mut records[6], &k);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 6)),
        DposError::SlotTime { .. }
    ));

    // A slot so far ahead that its time overflows: rejected, not a panic.
    let mut records = good.clone();
    let k = producer_of(&records[7]);
    records[7].txs[1] = Transaction::Producer {
        producer: k.pubkey(),
        slot: u64::MAX,
    };
    resign(&mut records[7], &k);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 7)),
        DposError::SlotTime { .. }
    ));

    // A block in the parent's slot.
    let mut records = good.clone();
    let k = producer_of(&records[2]);
    records[2].txs[1] = Transaction::Producer {
        producer: k.pubkey(),
        slot: 1,
    };
    records[2].time = records[1].time;
    resign(&mut records[2], &k);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 2)),
        DposError::SlotNotAfterParent { slot: 1, parent: 1 }
    ));

    // Produced outside its slot: the producer of slot 2 moves its block into c's empty slot 7.
    let mut records = good[..3].to_vec();
    let mut moved = good[3].clone();
    let k = producer_of(&moved);
    moved.txs[1] = Transaction::Producer {
        producer: k.pubkey(),
        slot: 7,
    };
    moved.time = spec.genesis.time + 3;
    resign(&mut moved, &k);
    records.push(moved);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 3)),
        DposError::WrongProducer { slot: 7, .. }
    ));

    // Block signature by someone else, or none.
    let mut records = good.clone();
    records[8].signature = Some(e.sign(records[8].hash.as_bytes()));
    assert!(matches!(
        block_error(error_at(&replay_records(&records), 8)),
        BlockError::BadBlockSignature(_)
    ));
    records[8].signature = None;
    assert!(matches!(
        block_error(error_at(&replay_records(&records), 8)),
        BlockError::BadBlockSignature(_)
    ));

    // The seal is missing.
    let mut records = good.clone();
    let k = producer_of(&records[9]);
    records[9].txs.remove(1);
    resign(&mut records[9], &k);
    assert!(matches!(
        authority_error(error_at(&replay_records(&records), 9)),
        DposError::MissingSeal("producer")
    ));

    // A nonce.
    let mut records = good.clone();
    let k = producer_of(&records[10]);
    records[10].nonce = 7;
    resign(&mut records[10], &k);
    assert!(matches!(
        block_error(error_at(&replay_records(&records), 10)),
        BlockError::NonzeroNonce(7)
    ));
}

#[test]
fn bad_votes_are_rejected_at_their_height() {
    let (spec, good) = dpos_chain();
    let h2 = key(&spec, "h2");
    let k = key(&spec, &produced(&spec, &good[4]).0);
    let with_vote = |tx: Transaction| {
        let mut records = good.clone();
        records[4].txs[2] = tx;
        resign(&mut records[4], &k);
        authority_error(error_at(&replay_records(&records), 4))
    };
    // A replayed vote: the same sequence number as the genesis vote.
    assert!(matches!(
        with_vote(Transaction::signed_vote(
            domain(&spec),
            &h2,
            0,
            vec!["a".into()]
        )),
        DposError::VoteSeq {
            expected: 1,
            actual: 0,
            ..
        }
    ));
    assert!(matches!(
        with_vote(Transaction::signed_vote(
            domain(&spec),
            &h2,
            1,
            vec!["a".into(), "zz".into()]
        )),
        DposError::BadVote { .. }
    ));
    assert!(matches!(
        with_vote(Transaction::signed_vote(
            domain(&spec),
            &h2,
            1,
            vec!["a".into(), "b".into(), "c".into(), "d".into()]
        )),
        DposError::BadVote { .. }
    ));
    // Unsorted, properly signed.
    let mut unsorted = Transaction::Vote {
        voter: h2.pubkey(),
        seq: 1,
        candidates: vec!["e".into(), "a".into()],
        signature: h2.sign(b"placeholder"),
    };
    let msg = unsorted.sighash(domain(&spec));
    if let Transaction::Vote { signature, .. } = &mut unsorted {
        *signature = h2.sign(&msg);
    }
    assert!(matches!(with_vote(unsorted), DposError::BadVote { .. }));
    // A signature over another list.
    let Transaction::Vote { signature, .. } =
        Transaction::signed_vote(domain(&spec), &h2, 1, vec!["a".into()])
    else {
        panic!()
    };
    assert!(matches!(
        with_vote(Transaction::Vote {
            voter: h2.pubkey(),
            seq: 1,
            candidates: vec!["a".into(), "e".into()],
            signature
        }),
        DposError::BadVoteSignature { .. }
    ));
}

/// Mutates one field of the block at `height` (numbers + 1, hex strings with one digit
/// changed), without re-signing, for every field of the header, the line and the seal.
fn every_field_tamper_is_rejected_at(records: &[BlockRecord], height: usize, paths: &[&str]) {
    for path in paths {
        let mut v = serde_json::to_value(&records[height]).unwrap();
        let field = v
            .pointer_mut(path)
            .unwrap_or_else(|| panic!("no field {path}"));
        *field = match field.take() {
            serde_json::Value::Number(n) => (n.as_u64().unwrap() + 1).into(),
            serde_json::Value::String(s) => {
                let mut chars: Vec<char> = s.chars().collect();
                let i = chars.len() / 2;
                chars[i] = if chars[i] == '1' { '2' } else { '1' };
                chars.into_iter().collect::<String>().into()
            }
            serde_json::Value::Bool(b) => (!b).into(),
            other => panic!("{path}: unexpected {other}"),
        };
        let mut tampered = records.to_vec();
        tampered[height] = serde_json::from_value(v).unwrap();
        let replay = replay_records(&tampered);
        let err = replay.error.unwrap_or_else(|| panic!("{path}: accepted"));
        assert_eq!(err.height, height as u64, "{path}: {err}");
    }
}

#[test]
fn every_single_field_tamper_of_a_dpos_block_is_rejected_at_its_height() {
    let (_, records) = dpos_chain();
    every_field_tamper_is_rejected_at(
        &records,
        4,
        &[
            "/hash",
            "/version",
            "/prev_hash",
            "/merkle_root",
            "/time",
            "/bits",
            "/nonce",
            "/signature",
            "/txs/0/height",
            "/txs/1/producer",
            "/txs/1/slot",
            "/txs/2/seq",
            "/txs/2/voter",
            "/txs/2/signature",
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Proof of authority (Clique)

fn poa_spec() -> ChainSpec {
    ChainSpec::builtin("poa-demo").unwrap()
}

/// (signer name, difficulty, vote, checkpoint) of a Clique block.
fn sealed(spec: &ChainSpec, record: &BlockRecord) -> (String, u8, Option<SignerVote>, bool) {
    let Transaction::Clique {
        signer,
        difficulty,
        vote,
        checkpoint,
    } = &record.txs[1]
    else {
        panic!("clique transaction second")
    };
    (
        name_of(spec, signer),
        *difficulty,
        *vote,
        checkpoint.is_some(),
    )
}

fn poa_signers(state: &ChainState) -> Vec<PubKey> {
    let Some(p) = state.rule_state_as::<PoaState>() else {
        panic!("a poa chain")
    };
    p.snapshot().signers()
}

fn sorted_signer_names(spec: &ChainSpec, state: &ChainState) -> Vec<String> {
    poa_signers(state)
        .iter()
        .map(|k| name_of(spec, k))
        .collect()
}

#[test]
fn signers_take_turns_in_sorted_key_order_with_difficulty_two() {
    let spec = poa_spec();
    let (records, state) = build_authority_chain(&spec, 20, &[], None, |_, _| Vec::new());
    let order = sorted_signer_names(&spec, &state);
    for (h, r) in records.iter().enumerate().skip(1) {
        let (signer, difficulty, _, checkpoint) = sealed(&spec, r);
        assert_eq!(signer, order[h % 5], "height {h}");
        assert_eq!(difficulty, 2);
        assert_eq!(r.time - records[h - 1].time, spec.target_spacing_s);
        assert_eq!(checkpoint, h % 10 == 0, "epoch 10 checkpoints");
    }
    // Five signers: three distinct sealers make a block final, so it trails the tip by two.
    assert_eq!(state.rule_state().irreversible_height().unwrap(), 18);
    assert!(replay_records(&records).error.is_none());
}

#[test]
fn an_offline_signer_is_covered_out_of_turn_and_too_many_halt_the_chain() {
    let spec = poa_spec();
    let (records, state) = build_authority_chain(&spec, 30, &["bob"], None, |_, _| Vec::new());
    // Bob's six turns are sealed out of turn. With five signers and a window of three, whoever
    // covers a turn is due again within two blocks, so at most one more turn is displaced each
    // time: between 6 and 12 of 30 blocks are out of turn, not a cascade.
    let out_of_turn = records[1..]
        .iter()
        .filter(|r| sealed(&spec, r).1 == 1)
        .count();
    assert!((6..=12).contains(&out_of_turn), "{out_of_turn}");
    let stats = producer_stats(&state);
    let bob = stats.iter().find(|r| r.name == "bob").unwrap().stats;
    assert_eq!((bob.blocks, bob.missed), (0, 6));
    let missed: u64 = stats.iter().map(|r| r.stats.missed).sum();
    assert_eq!(
        missed as usize, out_of_turn,
        "each out-of-turn block is someone's missed turn"
    );
    assert!(replay_records(&records).error.is_none());

    // Three of five down: two signers cannot alternate under the one-in-three rule.
    let (_, state) =
        build_authority_chain(&spec, 2, &["bob", "carol", "dave"], None, |_, _| Vec::new());
    let Some(poa) = state.rule_state_as::<PoaState>() else {
        panic!()
    };
    let offline: Vec<PubKey> = ["bob", "carol", "dave"]
        .map(|n| key(&spec, n).pubkey())
        .to_vec();
    let err = chainsmith::poa::poa_sealer(poa, 3, &offline).unwrap_err();
    assert!(
        matches!(
            err.rule_error(),
            Some(chainsmith::poa::state::Halted {
                online: 2,
                needed: 3,
                ..
            })
        ),
        "{err}"
    );
}

#[test]
fn the_last_signer_is_never_voted_out_by_the_producer() {
    let mut v: serde_json::Value =
        serde_json::to_value(ChainSpec::builtin("poa-demo").unwrap()).unwrap();
    v["poa"]["signers"] = serde_json::json!(["alice"]);
    let spec = ChainSpec::from_json(&v.to_string()).unwrap();
    let drop = SignerVote {
        target: key(&spec, "alice").pubkey(),
        authorize: false,
    };
    // Clique would let alice drop herself and halt the chain; the producer casts no such vote.
    let (records, state) = build_authority_chain(&spec, 5, &[], Some(drop), |_, _| Vec::new());
    assert!(records[1..].iter().all(|r| sealed(&spec, r).2.is_none()));
    let poa = state.rule_state_as::<PoaState>().unwrap();
    assert_eq!(poa.snapshot().signers(), vec![drop.target]);
}

#[test]
fn a_proposal_passes_with_a_majority_and_the_new_signer_seals() {
    let spec = poa_spec();
    let frank = key(&spec, "frank").pubkey();
    let proposal = SignerVote {
        target: frank,
        authorize: true,
    };
    let (records, state) = build_authority_chain(&spec, 20, &[], Some(proposal), |_, _| Vec::new());
    // Votes in blocks 1, 2, 3 by three different signers: the third is a majority of five.
    let after = |h: usize| replay_records(&records[..=h]).state.unwrap();
    assert!(!poa_signers(&after(2)).contains(&frank));
    assert!(poa_signers(&after(3)).contains(&frank));
    assert!(
        sealed(&spec, &records[4]).2.is_none(),
        "a passed proposal is no longer voted"
    );
    assert!(records[4..].iter().any(|r| sealed(&spec, r).0 == "frank"));
    assert_eq!(poa_signers(&state).len(), 6);

    // Dropping needs a majority of the six: four votes.
    let drop = SignerVote {
        target: key(&spec, "erin").pubkey(),
        authorize: false,
    };
    let (records, state) = build_authority_chain(&spec, 9, &[], Some(drop), |_, _| Vec::new());
    assert_eq!(poa_signers(&state).len(), 4);
    assert!(records[4..].iter().all(|r| sealed(&spec, r).0 != "erin"));
}

#[test]
fn votes_do_not_survive_a_checkpoint() {
    let spec = poa_spec();
    let frank = key(&spec, "frank").pubkey();
    let proposal = SignerVote {
        target: frank,
        authorize: true,
    };
    // Two votes in blocks 8 and 9, then the checkpoint at 10 clears them: three more (11-13)
    // are needed.
    let (records, state) = {
        let spec = spec.clone();
        let mut records = Vec::new();
        let (mut r, _) = build_authority_chain(&spec, 7, &[], None, |_, _| Vec::new());
        records.append(&mut r);
        let mut state = replay_records(&records).state.unwrap();
        let keys = spec.wallet_keys();
        for h in 8..=13 {
            let rec =
                chainsmith::poa::poa_block(&state, &keys, &[], Some(proposal), Vec::new()).unwrap();
            state
                .connect(&spec.consensus.check(rec.clone()).unwrap(), NOW)
                .unwrap();
            assert_eq!(poa_signers(&state).contains(&frank), h == 13, "height {h}");
            records.push(rec);
        }
        (records, state)
    };
    assert!(sealed(&spec, &records[10]).3 && sealed(&spec, &records[10]).2.is_none());
    assert!(poa_signers(&state).contains(&frank));
}

fn poa_chain() -> (ChainSpec, Vec<BlockRecord>) {
    let spec = poa_spec();
    let (records, _) = build_authority_chain(&spec, 14, &[], None, |_, _| Vec::new());
    (spec, records)
}

fn with_seal(
    records: &[BlockRecord],
    height: usize,
    signer: &KeyPair,
    edit: impl FnOnce(&mut Transaction, &mut BlockRecord),
) -> PoaError {
    let mut records = records.to_vec();
    let mut tx = records[height].txs[1].clone();
    edit(&mut tx, &mut records[height]);
    records[height].txs[1] = tx;
    resign(&mut records[height], signer);
    rule_error(error_at(&replay_records(&records), height as u64))
}

#[test]
fn clique_tampers_are_rejected_at_their_height() {
    let (spec, good) = poa_chain();
    let signer_of = |h: usize| key(&spec, &sealed(&spec, &good[h]).0);
    let set_signer = |k: PubKey| {
        move |tx: &mut Transaction, _: &mut BlockRecord| {
            if let Transaction::Clique { signer, .. } = tx {
                *signer = k;
            }
        }
    };

    // Sealed by a non-signer (not a spec wallet either, so named by its key).
    let grace = key(&spec, "grace");
    let err = with_seal(&good, 6, &grace, set_signer(grace.pubkey()));
    assert_eq!(err, PoaError::Unauthorized(grace.pubkey()));

    // Sealed by the signer of the previous block: one of any three consecutive blocks only.
    let prev = signer_of(6);
    let err = with_seal(&good, 7, &prev, |tx, _| {
        if let Transaction::Clique {
            signer, difficulty, ..
        } = tx
        {
            *signer = prev.pubkey();
            *difficulty = 1;
        }
    });
    assert!(
        matches!(
            err,
            PoaError::RecentlySigned {
                previous: 6,
                window: 3,
                ..
            }
        ),
        "{err}"
    );

    // In turn but claiming difficulty 1; out of turn claiming 2.
    let k = signer_of(8);
    let err = with_seal(&good, 8, &k, |tx, _| {
        if let Transaction::Clique { difficulty, .. } = tx {
            *difficulty = 1;
        }
    });
    assert!(matches!(
        err,
        PoaError::WrongDifficulty {
            expected: 2,
            actual: 1,
            ..
        }
    ));

    // Less than a period after the parent.
    let k = signer_of(9);
    let err = with_seal(&good, 9, &k, |_, r| r.time -= 1);
    assert!(matches!(err, PoaError::TooSoon { period: 15, .. }));

    // The checkpoint's signer list dropped, or a wrong one; a list off the epoch; a vote on it.
    let k = signer_of(10);
    let err = with_seal(&good, 10, &k, |tx, _| {
        if let Transaction::Clique { checkpoint, .. } = tx {
            *checkpoint = None;
        }
    });
    assert!(matches!(
        err,
        PoaError::BadCheckpoint {
            epoch: 10,
            count: 5
        }
    ));
    let err = with_seal(&good, 10, &k, |tx, _| {
        if let Transaction::Clique {
            checkpoint: Some(list),
            ..
        } = tx
        {
            list.reverse();
        }
    });
    assert!(matches!(err, PoaError::BadCheckpoint { .. }));
    let err = with_seal(&good, 10, &k, |tx, _| {
        if let Transaction::Clique { vote, .. } = tx {
            *vote = Some(SignerVote {
                target: grace.pubkey(),
                authorize: true,
            });
        }
    });
    assert_eq!(err, PoaError::VoteOnCheckpoint);
    let k = signer_of(11);
    let list = poa_signers(&replay_records(&good).state.unwrap());
    let err = with_seal(&good, 11, &k, |tx, _| {
        if let Transaction::Clique { checkpoint, .. } = tx {
            *checkpoint = Some(list);
        }
    });
    assert_eq!(err, PoaError::UnexpectedCheckpoint(10));

    // A DPoS seal on a Clique chain.
    let k = signer_of(12);
    let err = with_seal(&good, 12, &k, |tx, _| {
        *tx = Transaction::Producer {
            producer: k.pubkey(),
            slot: 12,
        };
    });
    assert_eq!(err, PoaError::MissingSeal("clique"));
}

#[test]
fn every_single_field_tamper_of_a_clique_block_is_rejected_at_its_height() {
    let spec = poa_spec();
    let proposal = SignerVote {
        target: key(&spec, "frank").pubkey(),
        authorize: true,
    };
    let (records, _) = build_authority_chain(&spec, 6, &[], Some(proposal), |_, _| Vec::new());
    every_field_tamper_is_rejected_at(
        &records,
        2,
        &[
            "/hash",
            "/version",
            "/prev_hash",
            "/merkle_root",
            "/time",
            "/bits",
            "/nonce",
            "/signature",
            "/txs/0/height",
            "/txs/1/signer",
            "/txs/1/difficulty",
            "/txs/1/vote/target",
            "/txs/1/vote/authorize",
        ],
    );
}

/// Long gaps are counted round by round in bulk: a first block five rounds late and a second
/// three rounds after it, hand-counted per producer (rounds of 12 slots, a b c d × 3).
#[test]
fn missed_slots_over_whole_rounds_are_counted_exactly() {
    use chainsmith::dpos::dpos_block;
    let spec = test_dpos_spec();
    let (mut records, mut state) = build_authority_chain(&spec, 0, &[], None, |_, _| Vec::new());
    // Slot 61 opens round 5 (a's turn); slot 101 is round 8, position 4: b's turn (slots 4-6).
    for (slot, producer) in [(61, 0), (101, 1)] {
        let record = dpos_block(&state, slot, producer, Vec::new(), 0).unwrap();
        state
            .connect(&spec.consensus.check(record.clone()).unwrap(), NOW)
            .unwrap();
        records.push(record);
    }
    let missed: Vec<(String, u64, u64)> = producer_stats(&state)
        .into_iter()
        .filter(|r| r.stats.blocks > 0 || r.stats.missed > 0)
        .map(|r| (r.name, r.stats.blocks, r.stats.missed))
        .collect();
    // Before slot 61: 5 rounds × 3 each. Then a 62-63, b c d 64-72, rounds 6 and 7 in full,
    // a 97-99, b 100.
    let expect = [
        ("a", 1, 15 + 2 + 6 + 3),
        ("b", 1, 15 + 3 + 6 + 1),
        ("c", 0, 24),
        ("d", 0, 24),
    ];
    assert_eq!(
        missed,
        expect.map(|(n, b, m)| (n.to_owned(), b, m)).to_vec()
    );
    assert!(replay_records(&records).error.is_none());
}

#[test]
fn errors_carry_keys_and_reports_put_names_in() {
    let (spec, mut records) = poa_chain();
    let signer_of = |h: usize| key(&spec, &sealed(&spec, &records[h]).0);
    // The in-turn signer of block 8 claims difficulty 1.
    let k = signer_of(8);
    if let Transaction::Clique { difficulty, .. } = &mut records[8].txs[1] {
        *difficulty = 1;
    }
    resign(&mut records[8], &k);
    let err = rule_error::<PoaError>(error_at(&replay_records(&records), 8));
    assert!(matches!(err, PoaError::WrongDifficulty { signer, .. } if signer == k.pubkey()));
    assert!(err.to_string().contains(&k.pubkey().to_string()), "{err}");

    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("poa.jsonl");
    std::fs::write(&file, common::to_file_bytes(&records)).unwrap();
    let out = assert_cmd::cargo::cargo_bin_cmd!("chainsmith")
        .arg("verify")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("but {} is in turn", k.name())),
        "{text}"
    );
    assert!(!text.contains(&k.pubkey().to_string()), "{text}");
}

mod invariants {
    //! docs/PROTOCOLS.md §8's DPoS and Clique invariants on chains with random faults and votes.
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(common::cases(24)))]

        /// Irreversibility never decreases, and every block at or below it has blocks by at
        /// least ⌊2n/3⌋ + 1 distinct producers at or above it (n = 4 here: 3).
        #[test]
        fn dpos_irreversibility_is_monotone_and_backed(
            offline in proptest::sample::subsequence(vec!["a", "b", "c", "d", "e", "g"], 0..=2),
            votes in proptest::collection::vec((0usize..5, proptest::sample::subsequence(vec!["a", "b", "c", "d", "e", "f", "g"], 1..=3)), 40),
        ) {
            let spec = test_dpos_spec();
            let holders: Vec<KeyPair> = ["h1", "h2", "h3", "h4", "h5"].iter().map(|n| key(&spec, n)).collect();
            let mut libs = Vec::new();
            let (records, state) = build_authority_chain(&spec, 40, &offline, None, |state, height| {
                libs.push(state.rule_state().irreversible_height().unwrap());
                let (who, picks) = &votes[height as usize - 1];
                let voter = &holders[*who];
                let seq = dpos(state).next_vote_seq(&voter.pubkey());
                vec![Transaction::signed_vote(domain(&spec), voter, seq, picks.iter().map(|s| (*s).to_owned()).collect())]
            });
            libs.push(state.rule_state().irreversible_height().unwrap());
            prop_assert!(libs.windows(2).all(|w| w[0] <= w[1]), "{libs:?}");
            let lib = *libs.last().unwrap() as usize;
            if lib > 0 {
                let mut producers: Vec<String> = records[lib..].iter().map(|r| produced(&spec, r).0).collect();
                producers.sort();
                producers.dedup();
                prop_assert!(producers.len() >= 3, "{producers:?} above {lib}");
            }
            prop_assert!(replay_records(&records).error.is_none());
        }

        /// In any ⌊N/2⌋ + 1 consecutive blocks each signer seals at most once, and the
        /// difficulty is 2 exactly when the sealer is in turn.
        #[test]
        fn clique_windows_and_difficulties_hold(
            offline in proptest::sample::subsequence(vec!["alice", "bob", "carol", "dave", "erin"], 0..=2),
            add in any::<bool>(),
        ) {
            let spec = poa_spec();
            let proposal = SignerVote {
                target: key(&spec, if add { "frank" } else { "erin" }).pubkey(),
                authorize: add,
            };
            // Four signers left need three online to take turns: then at most one down.
            let down = if add { &offline[..] } else { &offline[..offline.len().min(1)] };
            let (records, _) = build_authority_chain(&spec, 40, down, Some(proposal), |_, _| Vec::new());
            for h in 1..records.len() {
                let state = replay_records(&records[..h]).state.unwrap();
                let signers = poa_signers(&state);
                let window = signers.len() / 2 + 1;
                let Transaction::Clique { signer, difficulty, .. } = &records[h].txs[1] else {
                    panic!("clique second")
                };
                let in_turn = signers[h % signers.len()] == *signer;
                prop_assert_eq!(*difficulty == 2, in_turn, "height {}", h);
                let recent = records[h.saturating_sub(window - 1).max(1)..h]
                    .iter()
                    .any(|r| matches!(&r.txs[1], Transaction::Clique { signer: s, .. } if s == signer));
                prop_assert!(!recent, "height {}: sealed within the last {} blocks", h, window - 1);
            }
        }
    }
}

/// A hostile Clique chain whose every block votes for a new account that never gets a
/// majority, with an epoch so long that the votes are never cleared: the pending votes grow
/// with the chain. Verification time must grow with the chain's length, not its square
/// (measured on 1×, 2× and 4× the length; asserted loosely, as the machine is shared).
#[test]
fn pending_votes_do_not_make_verification_quadratic() {
    let mut v = serde_json::to_value(poa_spec()).unwrap();
    v["poa"]["epoch"] = u32::MAX.into();
    let spec = ChainSpec::from_json(&v.to_string()).unwrap();
    let keys = spec.wallet_keys();
    let chain = |blocks: u32| {
        let mut records = vec![BlockRecord::new(0, &spec.genesis_block(), Some(&spec))];
        let mut state = ChainState::new(spec.clone());
        state
            .connect(&state.check(records[0].clone()).unwrap(), NOW)
            .unwrap();
        for h in 1..=blocks {
            let stranger = KeyPair::derive("strangers", &h.to_string()).pubkey();
            let vote = SignerVote {
                target: stranger,
                authorize: true,
            };
            let r = chainsmith::poa::poa_block(&state, &keys, &[], Some(vote), Vec::new()).unwrap();
            state
                .connect(&state.check(r.clone()).unwrap(), NOW)
                .unwrap();
            records.push(r);
        }
        common::to_file_bytes(&records)
    };
    let time = |bytes: &[u8]| {
        let mut best = f64::MAX;
        for _ in 0..3 {
            let started = std::time::Instant::now();
            assert!(common::replay_bytes(bytes).error.is_none());
            best = best.min(started.elapsed().as_secs_f64());
        }
        best
    };
    let (one, four) = (chain(1_500), chain(6_000));
    let (t1, t4) = (time(&one), time(&four));
    eprintln!(
        "1 500 blocks: {t1:.3} s, 6 000 blocks: {t4:.3} s, ratio {:.2}",
        t4 / t1
    );
    // Linear work gives about 4; quadratic about 16.
    assert!(t4 / t1 < 9.0, "{t1:.3} s → {t4:.3} s");
}
