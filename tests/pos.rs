//! Proof of stake: fairness of the kernel lottery, coin-age reset and aging, interest, and
//! every PoS rule broken on its own at one block.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::state::{BlockError, ChainState};
use chainsmith::chain::verify::LineErrorKind;
use chainsmith::pos::{InterestRule, interest, kernel_weight};
use chainsmith::pos::{PosError, PosSpec, PosState};
use chainsmith::primitives::tx::{Amount, KeyPair, SigBytes, Transaction, TxOut};
use common::{build_pos_chain, error_at, replay_records, test_pos_spec};
use num_bigint::BigUint;
use proptest::prelude::*;

fn holder_names() -> Vec<String> {
    let spec = test_pos_spec();
    spec.section::<PosSpec>()
        .unwrap()
        .stakeholders
        .iter()
        .map(|h| h.name.clone())
        .collect()
}

/// Each stakeholder's summed kernel weight over its eligible outputs at `time`.
fn weights_at(state: &ChainState, time: u32) -> Vec<f64> {
    let spec = state.spec();
    let pos = spec.section::<PosSpec>().unwrap();
    let height = state.next_height();
    holder_names()
        .iter()
        .map(|name| {
            let owner = KeyPair::derive(&spec.wallet_seed, name).pubkey();
            state
                .utxos()
                .values()
                .filter(|u| u.owner == owner)
                .filter(|u| !u.coinbase || height >= u.height + spec.coinbase_maturity)
                .map(|u| {
                    let age = u64::from(time.saturating_sub(u.time));
                    kernel_weight(u.value, age, pos.min_age_s(), pos.max_age_s()) as f64
                })
                .sum()
        })
        .collect()
}

/// Reference: PPCoin paper §3 — a staker's chance is proportional to its coin-age weight.
#[test]
fn block_shares_match_kernel_weight_shares() {
    let spec = test_pos_spec();
    let names = holder_names();
    let mut expected = vec![0.0; names.len()];
    let mut observed = vec![0u64; names.len()];
    let keys: Vec<_> = names
        .iter()
        .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
        .collect();
    build_pos_chain(&spec, 2000, 0, |state, record| {
        let w = weights_at(state, record.time);
        let total: f64 = w.iter().sum();
        for (e, wi) in expected.iter_mut().zip(&w) {
            *e += wi / total;
        }
        let Transaction::Coinstake { outputs, .. } = &record.txs[1] else {
            panic!("coinstake second")
        };
        observed[keys.iter().position(|k| *k == outputs[0].to).unwrap()] += 1;
    });
    let chi2: f64 = observed
        .iter()
        .zip(&expected)
        .map(|(o, e)| (*o as f64 - e).powi(2) / e)
        .sum();
    // 9 degrees of freedom: p = 0.001 at χ² = 27.88.
    eprintln!("χ² = {chi2:.2}, observed {observed:?}, expected {expected:.1?}");
    assert!(
        chi2 < 27.88,
        "χ² = {chi2:.2}, observed {observed:?}, expected {expected:.1?}"
    );
    // The lottery is not uniform: the largest holder wins several times the smallest.
    assert!(observed[0] > 3 * observed[9], "{observed:?}");
}

#[test]
fn staking_resets_only_the_staked_output_and_young_outputs_cannot_stake() {
    let spec = test_pos_spec();
    let pos = spec.section::<PosSpec>().unwrap().clone();
    let mut checked = 0;
    let records = build_pos_chain(&spec, 60, 0, |state, record| {
        let Transaction::Coinstake { inputs, .. } = &record.txs[1] else {
            panic!("coinstake second")
        };
        let staked = state.utxos()[&inputs[0].prevout()];
        // The kernel is at least the minimum age old.
        assert!(u64::from(record.time - staked.time) >= pos.min_age_s());
        checked += 1;
    });
    assert_eq!(checked, 60);
    let state = replay_records(&records).state.unwrap();
    let genesis_time = records[0].time;
    for w in records.windows(2) {
        assert!(w[1].time > w[0].time, "virtual time moves forward");
    }
    // Every output still unspent was either created at genesis (and kept its age) or by a
    // coinstake (age counted from its block).
    for u in state.utxos().values() {
        let origin = records[u.height as usize].time;
        assert_eq!(u.time, if u.height == 0 { genesis_time } else { origin });
    }
}

#[test]
fn interest_and_stats_add_up() {
    let spec = test_pos_spec();
    let records = build_pos_chain(&spec, 40, 0, |_, _| {});
    let state = replay_records(&records).state.unwrap();
    let total_blocks: u64 = state
        .rule_state_as::<PosState>()
        .unwrap()
        .stake_stats()
        .values()
        .map(|s| s.blocks)
        .sum();
    assert_eq!(total_blocks, 40);
    let paid: u64 = state
        .rule_state_as::<PosState>()
        .unwrap()
        .stake_stats()
        .values()
        .map(|s| s.interest.to_base_units())
        .sum();
    let genesis: u64 = spec
        .genesis_allocations()
        .iter()
        .map(|o| o.value.to_base_units())
        .sum();
    let now: u64 = state
        .utxos()
        .values()
        .map(|u| u.value.to_base_units())
        .sum();
    // No subsidy and no transfers: the money supply grows by exactly the interest paid.
    assert_eq!(now, genesis + paid);
    assert!(paid > 0);
}

proptest! {
    /// Interest is the documented floor, exactly: interest × D ≤ value × age × rate < (interest + 1) × D.
    #[test]
    fn exact_interest_is_the_documented_floor(value in 0u64..2_100_000_000_000_000, age in 0u64..400_000_000, rate in 0u64..1_000_000) {
        let i = interest(InterestRule::Exact { rate_ppm: rate }, Amount::from_base_units(value), age);
        let d = BigUint::from(1_000_000u64 * 365 * 86_400);
        let n = BigUint::from(value) * age * rate;
        prop_assert!(BigUint::from(i.to_base_units()) * &d <= n);
        prop_assert!(n < (BigUint::from(i.to_base_units()) + 1u8) * d);
    }

    #[test]
    fn weight_is_zero_below_min_age_monotone_and_capped(value in 0u64..2_100_000_000_000_000, a in 0u64..10_000_000, b in 0u64..10_000_000) {
        let (min, max) = (2_592_000, 7_776_000);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let v = Amount::from_base_units(value);
        prop_assert!(kernel_weight(v, lo, min, max) <= kernel_weight(v, hi, min, max));
        if lo < min { prop_assert_eq!(kernel_weight(v, lo, min, max), 0); }
        prop_assert!(kernel_weight(v, hi, min, max) <= kernel_weight(v, max, min, max));
    }
}

/// The chain used by the tamper tests, with the key of each block's staker.
fn chain() -> Vec<BlockRecord> {
    build_pos_chain(&test_pos_spec(), 30, 1, |_, _| {})
}

fn staker(record: &BlockRecord) -> KeyPair {
    let spec = test_pos_spec();
    let Transaction::Coinstake { outputs, .. } = &record.txs[1] else {
        panic!("coinstake second")
    };
    spec.wallet_keys()
        .into_iter()
        .find(|k| k.pubkey() == outputs[0].to)
        .unwrap()
}

/// Re-signs a tampered block as its staker would: merkle root, hash and block signature.
fn resign(record: &mut BlockRecord, key: &KeyPair) {
    let mut block = record.to_block();
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut fresh = BlockRecord::new(record.height, &block, None);
    fresh.signature = Some(key.sign(fresh.hash.as_bytes()));
    *record = fresh;
}

/// Puts `tx` in place of a block's coinstake and re-signs the block with `key`.
fn replace_coinstake(record: &mut BlockRecord, key: &KeyPair, tx: Transaction) {
    record.txs[1] = tx;
    resign(record, key);
}

fn block_error(kind: LineErrorKind) -> BlockError {
    match kind {
        LineErrorKind::Block(e) => e,
        other => panic!("expected a block error, got {other}"),
    }
}

#[test]
fn pos_chain_verifies() {
    let records = chain();
    let r = replay_records(&records);
    assert!(r.error.is_none(), "{:?}", r.error);
}

#[test]
fn rejects_a_moved_kernel_time() {
    let mut records = chain();
    let key = staker(&records[12]);
    records[12].time += 7;
    resign(&mut records[12], &key);
    let e = block_error(error_at(&replay_records(&records), 12));
    assert!(
        matches!(e.rule_error(), Some(PosError::KernelAboveTarget { .. })),
        "{e}"
    );
}

#[test]
fn rejects_a_forged_or_missing_block_signature() {
    let mut records = chain();
    let mut sig = records[9].signature.unwrap().to_bytes();
    sig[0] ^= 1;
    records[9].signature = Some(SigBytes::from_bytes(sig));
    let e = block_error(error_at(&replay_records(&records), 9));
    assert!(matches!(e, BlockError::BadBlockSignature(_)), "{e}");

    let mut records = chain();
    records[9].signature = None;
    let e = block_error(error_at(&replay_records(&records), 9));
    assert!(matches!(e, BlockError::BadBlockSignature(_)), "{e}");
}

#[test]
fn rejects_more_interest_than_earned() {
    let mut records = chain();
    let key = staker(&records[7]);
    let Transaction::Coinstake { inputs, outputs } = records[7].txs[1].clone() else {
        panic!("coinstake second")
    };
    let mut outputs = outputs;
    outputs[0].value = outputs[0]
        .value
        .checked_add(Amount::from_base_units(1))
        .unwrap();
    let tx = Transaction::signed_coinstake(
        common::sig_domain(&records),
        inputs[0].prevout(),
        &key,
        outputs,
    );
    replace_coinstake(&mut records[7], &key, tx);
    let e = block_error(error_at(&replay_records(&records), 7));
    assert!(
        matches!(e.rule_error(), Some(PosError::CoinstakeTooLarge { .. })),
        "{e}"
    );
}

#[test]
fn rejects_a_coinstake_paying_someone_else() {
    let mut records = chain();
    let key = staker(&records[8]);
    let thief = KeyPair::derive("x", "thief");
    let Transaction::Coinstake { inputs, outputs } = records[8].txs[1].clone() else {
        panic!("coinstake second")
    };
    let stolen = vec![TxOut {
        value: outputs[0].value,
        to: thief.pubkey(),
    }];
    let tx = Transaction::signed_coinstake(
        common::sig_domain(&records),
        inputs[0].prevout(),
        &key,
        stolen,
    );
    replace_coinstake(&mut records[8], &thief, tx);
    let e = block_error(error_at(&replay_records(&records), 8));
    assert!(
        matches!(e.rule_error(), Some(PosError::CoinstakeNotToStaker { .. })),
        "{e}"
    );
}

#[test]
fn rejects_another_staked_outpoint() {
    let mut records = chain();
    let h = 15;
    let key = staker(&records[h]);
    let state = replay_records(&records[..h]).state.unwrap();
    let Transaction::Coinstake { inputs, .. } = records[h].txs[1].clone() else {
        panic!("coinstake second")
    };
    // Another output of the same staker, old enough to be eligible.
    let (other, utxo) = state
        .utxos()
        .iter()
        .find(|(op, u)| **op != inputs[0].prevout() && u.owner == key.pubkey() && !u.coinbase)
        .map(|(o, u)| (*o, *u))
        .unwrap();
    let tx = Transaction::signed_coinstake(
        common::sig_domain(&records),
        other,
        &key,
        vec![TxOut {
            value: utxo.value,
            to: key.pubkey(),
        }],
    );
    replace_coinstake(&mut records[h], &key, tx);
    let e = block_error(error_at(&replay_records(&records), h as u64));
    assert!(
        matches!(
            e.rule_error(),
            Some(PosError::KernelAboveTarget { .. } | PosError::StakeTooYoung { .. })
        ),
        "{e}"
    );
}

#[test]
fn rejects_restaking_a_spent_kernel_and_a_young_output() {
    let mut records = chain();
    let key = staker(&records[10]);
    let Transaction::Coinstake { inputs, outputs } = records[10].txs[1].clone() else {
        panic!("coinstake second")
    };
    // Block 11 re-uses block 10's kernel: already spent.
    let tx = Transaction::signed_coinstake(
        common::sig_domain(&records),
        inputs[0].prevout(),
        &key,
        outputs.clone(),
    );
    replace_coinstake(&mut records[11], &key, tx);
    let e = block_error(error_at(&replay_records(&records), 11));
    assert!(
        matches!(e, BlockError::MissingInput { index: 1, .. }),
        "{e}"
    );

    // Block 13 stakes block 10's fresh coinstake output: too young (and immature).
    let mut records = chain();
    let young = chainsmith::primitives::tx::OutPoint {
        txid: records[10].txs[1].txid(),
        vout: 0,
    };
    let tx = Transaction::signed_coinstake(common::sig_domain(&records), young, &key, outputs);
    replace_coinstake(&mut records[13], &key, tx);
    let e = block_error(error_at(&replay_records(&records), 13));
    assert!(
        matches!(e, BlockError::ImmatureCoinbase { .. })
            || matches!(e.rule_error(), Some(PosError::StakeTooYoung { .. })),
        "{e}"
    );
}

#[test]
fn rejects_wrong_bits_and_a_nonce() {
    let mut records = chain();
    let key = staker(&records[6]);
    records[6].bits = chainsmith::CompactTarget::from_consensus(records[6].bits.to_consensus() + 1);
    resign(&mut records[6], &key);
    let e = block_error(error_at(&replay_records(&records), 6));
    assert!(matches!(e, BlockError::WrongBits { .. }), "{e}");

    let mut records = chain();
    let key = staker(&records[5]);
    records[5].nonce = 1;
    resign(&mut records[5], &key);
    let e = block_error(error_at(&replay_records(&records), 5));
    assert!(matches!(e, BlockError::NonzeroNonce(1)), "{e}");
}

/// A coinstake's outputs mature like a coinbase's and are never spendable in their own block,
/// even on a chain whose maturity is zero.
#[test]
fn a_coinstake_output_is_not_spendable_in_its_own_block() {
    let text = include_str!("data/test-pos.json")
        .replace("\"coinbase_maturity\": 2", "\"coinbase_maturity\": 0");
    let spec = chainsmith::ChainSpec::from_json(&text).unwrap();
    let mut records = build_pos_chain(&spec, 6, 0, |_, _| {});
    assert!(replay_records(&records).error.is_none());
    let key = staker(&records[5]);
    let Transaction::Coinstake { outputs, .. } = &records[5].txs[1] else {
        panic!("coinstake second")
    };
    let staked = outputs[0].value;
    let coinstake = chainsmith::primitives::tx::OutPoint {
        txid: records[5].txs[1].txid(),
        vout: 0,
    };
    let half = Amount::from_base_units(staked.to_base_units() / 2);
    let spend = Transaction::signed_transfer(
        common::sig_domain(&records),
        &[(coinstake, &key)],
        vec![TxOut {
            value: half,
            to: key.pubkey(),
        }],
    );
    records[5].txs.push(spend);
    resign(&mut records[5], &key);
    let e = block_error(error_at(&replay_records(&records), 5));
    assert!(
        matches!(
            e,
            BlockError::MissingInput {
                index: 2,
                input: 0,
                ..
            }
        ),
        "{e}"
    );
}

/// An output of the whole money supply stakes: its interest stops at the 21-million cap
/// instead of failing the block (it used to fail at block 1 with "amounts exceed 21 million").
#[test]
fn a_stake_of_the_whole_supply_still_stakes() {
    let mut v: serde_json::Value =
        serde_json::from_str(include_str!("data/test-pos.json")).unwrap();
    v["pos"]["stakeholders"] = serde_json::json!([{"name": "alice", "coins": [21000000.0]}]);
    v["miner"] = "alice".into();
    let spec = chainsmith::ChainSpec::from_json(&v.to_string()).unwrap();
    let records = build_pos_chain(&spec, 1, 0, |_, _| {});
    assert!(replay_records(&records).error.is_none());
    let Transaction::Coinstake { outputs, .. } = &records[1].txs[1] else {
        panic!("coinstake second")
    };
    assert_eq!(
        outputs[0].value.to_base_units(),
        chainsmith::primitives::tx::MAX_MONEY
    );
}

/// The sequential search, written out here from the rule's definition: second by second from
/// `from`, every output the keys own that is mature and weighs at least a coin-day, in
/// outpoint order, one kernel each, `sha256d(kernel) ≤ target × weight` in big integers. The
/// winner (time, outpoint, weight) and the kernels tried up to it, or `None` by `until`.
fn sequential_stake(
    state: &ChainState,
    keys: &[KeyPair],
    from: u32,
    until: u32,
) -> Option<(u32, chainsmith::primitives::tx::OutPoint, u64, u64)> {
    use chainsmith::pos::{KernelInput, kernel_meets_target};
    let pos_state: &PosState = state.rule_state_as().unwrap();
    let pos = pos_state.params();
    let height = state.next_height();
    let target = state.required_bits().to_target().unwrap();
    let modifier = pos_state.stake_modifier(height);
    let maturity = state.spec().coinbase_maturity;
    let mine: Vec<_> = state
        .utxos()
        .iter()
        .filter(|(_, u)| keys.iter().any(|k| k.pubkey() == u.owner))
        .filter(|(_, u)| !u.coinbase || height >= u.height + maturity)
        .collect();
    let mut tried = 0;
    for t in from..=until {
        for (op, u) in &mine {
            let age = u64::from(t.saturating_sub(u.time));
            let weight = kernel_weight(u.value, age, pos.min_age_s(), pos.max_age_s());
            if t < u.time || weight == 0 {
                continue;
            }
            tried += 1;
            let kernel = KernelInput {
                modifier,
                block_time_from: u.time,
                tx_offset: u.tx_index,
                tx_time: u.time,
                vout: op.vout,
                time: t,
            };
            if kernel_meets_target(&kernel.hash(), weight, target) {
                return Some((t, **op, weight, tried));
            }
        }
    }
    None
}

/// The parallel search on every backend and on one and two threads finds what the sequential
/// search finds — the same second, output, weight and count of kernels tried — at every height
/// of a chain, from the earliest second and from later ones, and runs out where it finds
/// nothing.
#[test]
fn the_parallel_stake_search_is_the_sequential_one() {
    use chainsmith::hash::Backend;
    use chainsmith::hash::search::SearchControl;
    use chainsmith::pos::stake::{StakeOutcome, earliest_stake_time, find_stake};

    let spec = test_pos_spec();
    let keys = spec.wallet_keys();
    let pools: Vec<_> = [1, 2]
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .into();
    let (mut found, mut exhausted) = (0, 0);
    build_pos_chain(&spec, 24, 2, |state, _| {
        let earliest = earliest_stake_time(state);
        for (from, span) in [(earliest, 50_000), (earliest + 777, 50_000), (earliest, 3)] {
            let until = from + span;
            let want = sequential_stake(state, &keys, from, until);
            for backend in Backend::supported() {
                for pool in &pools {
                    let control = SearchControl::default();
                    let got =
                        pool.install(|| find_stake(state, &keys, (from, until), backend, &control));
                    match (got, want) {
                        (StakeOutcome::Found(s), Some((time, outpoint, weight, tried))) => {
                            assert_eq!(
                                (s.time, s.outpoint, s.weight, s.attempts),
                                (time, outpoint, weight, tried),
                                "{backend} on {} threads",
                                pool.current_num_threads()
                            );
                            // Every kernel a sequential search tries was hashed, and more only
                            // past the winner.
                            assert!(control.hashes.into_inner() >= tried);
                            found += 1;
                        }
                        (StakeOutcome::Exhausted { next, .. }, None) => {
                            assert_eq!(next, until + 1);
                            exhausted += 1;
                        }
                        (got, want) => panic!("{backend}: {got:?} but sequentially {want:?}"),
                    }
                }
            }
        }
    });
    // Both outcomes were compared, at every height.
    assert!(found >= 24 * 2 * 2 && exhausted > 0, "{found} {exhausted}");
}
