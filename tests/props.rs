//! Property tests: wire round-trips, compact-target laws, target monotonicity, retarget bounds,
//! and that any single-field mutation of a mined chain is rejected at that block's height.
#![allow(clippy::unwrap_used)]

mod common;

use chainsmith::chain::record::BlockRecord;
use chainsmith::difficulty::bitcoin_next_bits;
use chainsmith::primitives::hash::{BlockHash, MerkleRoot};
use chainsmith::primitives::tx::{Amount, Transaction};
use chainsmith::{CompactTarget, Header, Target};
use num_bigint::BigUint;
use proptest::prelude::*;

fn any_header() -> impl Strategy<Value = Header> {
    (
        any::<i32>(),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
    )
        .prop_map(|(version, prev, merkle, time, bits, nonce)| Header {
            version,
            prev_hash: BlockHash::from_byte_array(prev),
            merkle_root: MerkleRoot::from_byte_array(merkle),
            time,
            bits: CompactTarget::from_consensus(bits),
            nonce,
        })
}

fn any_target() -> impl Strategy<Value = Target> {
    (any::<[u8; 32]>(), 0u32..256).prop_map(|(bytes, shift)| {
        let n = BigUint::from_bytes_le(&bytes) >> shift;
        Target::from_biguint_saturating(&n)
    })
}

proptest! {
    #[test]
    fn header_bytes_roundtrip(h in any_header()) {
        prop_assert_eq!(Header::from_bytes(&h.to_bytes()).unwrap(), h);
        prop_assert_eq!(Header::from_hex(&hex::encode(h.to_bytes())).unwrap(), h);
    }

    #[test]
    fn header_json_roundtrip(h in any_header()) {
        let json = serde_json::to_string(&h).unwrap();
        prop_assert_eq!(serde_json::from_str::<Header>(&json).unwrap(), h);
    }

    #[test]
    fn hash_display_roundtrip(bytes in any::<[u8; 32]>()) {
        let h = BlockHash::from_byte_array(bytes);
        prop_assert_eq!(h.to_string().parse::<BlockHash>().unwrap(), h);
    }

    /// Reference: docs/PROTOCOLS.md §8 — SetCompact(GetCompact(x)) keeps the top bytes of x.
    #[test]
    fn compact_encoding_rounds_down_and_is_idempotent(t in any_target()) {
        let c = t.to_compact_lossy();
        let d = c.decode();
        prop_assert!(!d.negative && !d.overflow);
        prop_assert!(d.value <= t);
        prop_assert_eq!(c.to_consensus() & 0x0080_0000, 0);
        prop_assert_eq!(d.value.to_compact_lossy(), c);
        // Only the bits below the top 3 (or 2) bytes are lost.
        let lost = t.to_biguint() - d.value.to_biguint();
        let size = c.to_consensus() >> 24;
        let keep = if size > 3 { 8 * (size - 3) } else { 0 };
        prop_assert!(lost < (BigUint::from(1u8) << keep));
    }

    #[test]
    fn is_met_by_is_monotone_in_the_target(a in any_target(), b in any_target(), h in any::<[u8; 32]>()) {
        let hash = BlockHash::from_byte_array(h);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(!lo.is_met_by(hash) || hi.is_met_by(hash));
        prop_assert_eq!(Target::from_le_bytes(h).is_met_by(hash), true);
    }

    /// Reference: docs/PROTOCOLS.md §8 — the Bitcoin retarget stays within ×4 / ÷4 and the limit.
    #[test]
    fn bitcoin_retarget_is_clamped(old_exp in 4u32..0x1d, mantissa in 0x8000u32..0x7f_ffff,
                                   first in 0u32..2_000_000_000, span in 0u32..20_000_000) {
        let old = CompactTarget::from_consensus(old_exp << 24 | mantissa);
        let limit = Target::from_hex(&format!("00000000{}", "f".repeat(56))).unwrap();
        let new = bitcoin_next_bits(old, first, first.saturating_add(span), 1_209_600, limit);
        let old_t = old.to_target().unwrap().to_biguint();
        let new_t = new.to_target().unwrap().to_biguint();
        prop_assert!(new_t <= &old_t * 4u32);
        // Compact encoding rounds down by less than one part in 2^15.
        prop_assert!(new_t >= &old_t / 4u32 - &old_t / 1000u32);
        prop_assert!(new.to_target().unwrap() <= limit);
    }
}

/// A single field of one block line, changed to a different value.
#[derive(Debug, Clone, Copy)]
enum Field {
    Version,
    PrevHash,
    MerkleRoot,
    Time,
    Bits,
    Nonce,
    CoinbaseValue,
    CoinbaseExtraNonce,
    TransferSignature,
}

const FIELDS: [Field; 9] = [
    Field::Version,
    Field::PrevHash,
    Field::MerkleRoot,
    Field::Time,
    Field::Bits,
    Field::Nonce,
    Field::CoinbaseValue,
    Field::CoinbaseExtraNonce,
    Field::TransferSignature,
];

fn mutate(record: &mut BlockRecord, field: Field, x: u32) -> bool {
    let x = x | 1; // never zero: every change is a real change
    match field {
        Field::Version => record.version ^= x as i32,
        Field::PrevHash => {
            let mut b = record.prev_hash.to_byte_array();
            b[(x % 32) as usize] ^= 0x40;
            record.prev_hash = BlockHash::from_byte_array(b);
        }
        Field::MerkleRoot => {
            let mut b = record.merkle_root.to_byte_array();
            b[(x % 32) as usize] ^= 0x01;
            record.merkle_root = MerkleRoot::from_byte_array(b);
        }
        Field::Time => record.time ^= x,
        Field::Bits => record.bits = CompactTarget::from_consensus(record.bits.to_consensus() ^ x),
        Field::Nonce => record.nonce ^= x,
        Field::CoinbaseValue | Field::CoinbaseExtraNonce => match &mut record.txs[0] {
            Transaction::Coinbase { outputs, .. } if matches!(field, Field::CoinbaseValue) => {
                let v = outputs[0].value.to_base_units();
                outputs[0].value = Amount::from_base_units(v ^ u64::from(x));
            }
            Transaction::Coinbase { extra_nonce, .. } => *extra_nonce ^= u64::from(x),
            _ => return false,
        },
        Field::TransferSignature => {
            let Some(Transaction::Transfer { inputs, .. }) = record.txs.get_mut(1) else {
                return false;
            };
            let mut sig = inputs[0].signature.to_bytes();
            sig[(x % 64) as usize] ^= 0x10;
            inputs[0].signature = chainsmith::primitives::tx::SigBytes::from_bytes(sig);
        }
    }
    true
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(common::cases(48)))]

    /// Any single-field change to any mined block is rejected at that block's height.
    #[test]
    fn any_single_field_mutation_is_rejected_at_its_height(
        height in 1usize..=12, field in 0usize..FIELDS.len(), x in any::<u32>()
    ) {
        let mut records = common::build_chain(&common::test_spec(), 12, 2);
        prop_assume!(mutate(&mut records[height], FIELDS[field], x));
        let r = common::replay_records(&records);
        let err = r.error.expect("a mutated chain must be rejected");
        prop_assert_eq!(err.height, height as u64, "{}", err);
    }
}
