//! Real-world vectors (tests/vectors/, copied from the project's shared vector set): Bitcoin
//! headers, Bitcoin Core's compact-target and retarget cases, real merkle trees, and the
//! FIPS 180-4 SHA-256 vectors. Sources are named in each JSON entry.
#![allow(clippy::unwrap_used)]

use chainsmith::difficulty::bitcoin_next_bits;
use chainsmith::hash::PowJob;
use chainsmith::primitives::hash::{BlockHash, Txid, sha256, sha256d};
use chainsmith::primitives::merkle::merkle_root;
use chainsmith::{CompactTarget, Header, Target};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = format!("{}/tests/vectors/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing"))
        .to_owned()
}

fn bits(v: &Value, key: &str) -> CompactTarget {
    CompactTarget::from_hex(&s(v, key)).unwrap()
}

#[test]
fn real_headers_decode_hash_and_meet_their_targets() {
    let data = load("headers.json");
    let headers = data["headers"].as_array().unwrap();
    assert_eq!(headers.len(), 11);
    for v in headers {
        let label = format!("{} {}", s(v, "chain"), v["height"]);
        let header = Header::from_hex(&s(v, "header_hex")).unwrap();
        assert_eq!(
            i64::from(header.version),
            v["version"].as_i64().unwrap(),
            "{label}"
        );
        assert_eq!(header.prev_hash.to_string(), s(v, "prev_hash"), "{label}");
        assert_eq!(
            header.merkle_root.to_string(),
            s(v, "merkle_root"),
            "{label}"
        );
        assert_eq!(
            u64::from(header.time),
            v["time"].as_u64().unwrap(),
            "{label}"
        );
        assert_eq!(header.bits, bits(v, "bits"), "{label}");
        assert_eq!(
            u64::from(header.nonce),
            v["nonce"].as_u64().unwrap(),
            "{label}"
        );
        assert_eq!(
            hex::encode(header.to_bytes()),
            s(v, "header_hex"),
            "{label}"
        );

        let hash = header.block_hash();
        assert_eq!(hash.to_string(), s(v, "hash"), "{label}");
        assert_eq!(
            hex::encode(hash.to_byte_array()),
            s(v, "hash_internal_byte_order")
        );
        let target = header.bits.to_target().unwrap();
        assert_eq!(target.to_string(), s(v, "target_hex"), "{label}");
        assert!(target.is_met_by(hash), "{label}");
        // The midstate nonce loop agrees and finds the real nonce.
        let job = PowJob::new(&header, target);
        assert_eq!(
            job.hash_nonce(header.nonce),
            hash.to_byte_array(),
            "{label}"
        );
        let n = u64::from(header.nonce);
        let scan = job.scan(n..n + 50, || false);
        assert_eq!(scan.found, Some(header.nonce), "{label}");
        // The hash is exactly at the edge of a target equal to it, and fails one below.
        let exact = Target::from_le_bytes(hash.to_byte_array());
        assert!(exact.is_met_by(hash));
        let mut below = hash.to_byte_array();
        let i = below.iter().position(|b| *b != 0).unwrap();
        below[i] -= 1;
        assert!(!Target::from_le_bytes(below).is_met_by(hash), "{label}");
    }
}

#[test]
fn pow_limits_encode_as_published() {
    let data = load("headers.json");
    for (chain, v) in data["pow_limits"].as_object().unwrap() {
        if chain == "source" {
            continue;
        }
        let limit = Target::from_hex(&s(v, "pow_limit_hex")).unwrap();
        assert_eq!(
            limit.to_compact_lossy(),
            bits(v, "pow_limit_compact"),
            "{chain}"
        );
    }
}

#[test]
fn set_compact_matches_bitcoin_core() {
    let data = load("compact.json");
    let cases = data["setcompact_cases"].as_array().unwrap();
    assert!(cases.len() >= 20);
    for v in cases {
        let c = bits(v, "bits");
        let d = c.decode();
        assert_eq!(d.negative, v["negative"].as_bool().unwrap(), "{c}");
        assert_eq!(d.overflow, v["overflow"].as_bool().unwrap(), "{c}");
        if v["target_hex"].is_null() {
            // Core asserts only the flags for an overflowing value.
            assert!(c.to_target().is_err(), "{c}");
            continue;
        }
        assert_eq!(d.value.to_string(), s(v, "target_hex"), "{c}");
        if v["recompact_called_with_negative"].as_bool() == Some(false) {
            assert_eq!(d.value.to_compact_lossy(), bits(v, "recompact"), "{c}");
        } else {
            // Core re-applies the sign: the mantissa is the same, with bit 23 set.
            let expect = bits(v, "recompact").to_consensus();
            let got = d.value.to_compact_lossy().to_consensus();
            assert_eq!(got | 0x0080_0000, expect, "{c}");
        }
    }
}

#[test]
fn get_compact_matches_bitcoin_core_and_rust_bitcoin() {
    let data = load("compact.json");
    for v in data["getcompact_cases"].as_array().unwrap() {
        let t = Target::from_hex(&s(v, "target_hex")).unwrap();
        assert_eq!(t.to_compact_lossy(), bits(v, "compact"), "{t}");
    }
    for v in data["chain_limits"].as_array().unwrap() {
        let c = bits(v, "bits");
        assert_eq!(c.to_target().unwrap().to_string(), s(v, "target_hex"));
        let limit = Target::from_hex(&s(v, "pow_limit_hex")).unwrap();
        assert_eq!(limit.to_compact_lossy(), bits(v, "getcompact_of_pow_limit"));
    }
}

#[test]
fn check_proof_of_work_rejections_match_core() {
    let data = load("compact.json");
    let limit = Target::from_hex(&format!("00000000{}", "f".repeat(56))).unwrap();
    for v in data["check_proof_of_work_cases"].as_array().unwrap() {
        let c = bits(v, "bits");
        let mut hash_bytes = hex::decode(s(v, "hash_hex")).unwrap();
        hash_bytes.reverse();
        let hash = BlockHash::from_byte_array(hash_bytes.try_into().unwrap());
        let valid = c.to_target().is_ok_and(|t| t <= limit && t.is_met_by(hash));
        assert_eq!(
            valid,
            v["expected_valid"].as_bool().unwrap(),
            "{}",
            s(v, "case")
        );
    }
}

#[test]
fn retarget_matches_core_calculate_next_work_required() {
    let data = load("retarget.json");
    let cases = data["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 6);
    for v in cases {
        let limit = Target::from_hex(&s(v, "pow_limit_hex")).unwrap();
        let got = bitcoin_next_bits(
            bits(v, "bits_in"),
            u32::try_from(v["last_retarget_time"].as_u64().unwrap()).unwrap(),
            u32::try_from(v["last_block_time"].as_u64().unwrap()).unwrap(),
            u32::try_from(v["pow_target_timespan"].as_u64().unwrap()).unwrap(),
            limit,
        );
        assert_eq!(got, bits(v, "expected_bits_out"), "{}", s(v, "case"));
    }
}

fn txids(v: &Value, key: &str) -> Vec<Txid> {
    v[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn real_blocks_reproduce_their_merkle_roots() {
    let data = load("merkle.json");
    let blocks = data["blocks"].as_array().unwrap();
    assert_eq!(blocks.len(), 6);
    for v in blocks {
        let ids = txids(v, "txids");
        assert_eq!(ids.len() as u64, v["tx_count"].as_u64().unwrap());
        let r = merkle_root(&ids);
        assert_eq!(
            r.root.to_string(),
            s(v, "merkle_root"),
            "height {}",
            v["height"]
        );
        assert!(!r.mutated);
    }
}

#[test]
fn merkle_negative_cases_and_cve_2012_2459() {
    let data = load("merkle.json");
    for v in data["negative_cases"].as_array().unwrap() {
        let r = merkle_root(&txids(v, "txids"));
        assert_eq!(
            r.root.to_string(),
            s(v, "merkle_root_of_txids"),
            "{}",
            s(v, "name")
        );
        assert_ne!(
            r.root.to_string(),
            s(v, "header_merkle_root"),
            "{}",
            s(v, "name")
        );
    }
    let m = &data["derived_mutation_example"];
    let honest = merkle_root(&txids(m, "txids"));
    let mutated = merkle_root(&txids(m, "txids_mutated"));
    assert_eq!(honest.root.to_string(), s(m, "merkle_root_original"));
    assert_eq!(mutated.root, honest.root);
    assert!(!honest.mutated);
    assert!(mutated.mutated, "the duplicated tail must be flagged");
}

#[test]
fn sha256_fips_vectors() {
    let data = load("sha256.json");
    let mut checked = 0;
    for v in data["sha256"].as_array().unwrap() {
        let msg = match v["message_hex"].as_str() {
            Some(h) => hex::decode(h).unwrap(),
            None if s(v, "message_description").starts_with("one million") => vec![b'a'; 1_000_000],
            None => (0u32..200_000)
                .flat_map(|i| [i, i >> 4, i >> 8, i >> 12, i >> 16].map(|x| x as u8))
                .collect(),
        };
        assert_eq!(msg.len() as u64, v["length_bytes"].as_u64().unwrap());
        assert_eq!(hex::encode(sha256(&msg)), s(v, "sha256"));
        checked += 1;
    }
    assert_eq!(checked, 11);
    for v in data["sha256d"].as_array().unwrap() {
        let msg = hex::decode(s(v, "message_hex")).unwrap();
        assert_eq!(hex::encode(sha256d(&msg)), s(v, "sha256d"));
    }
    for v in data["derived_midstates"].as_array().unwrap() {
        let header = Header::from_hex(&s(v, "header_hex")).unwrap();
        let job = PowJob::new(&header, Target::MAX);
        assert_eq!(
            hex::encode(job.hash_nonce(header.nonce)),
            s(v, "sha256d_of_header")
        );
    }
}
