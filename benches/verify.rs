//! Chain verification throughput (elements = blocks): parse, hash, merkle and connect a
//! regtest chain and a DPoS chain (four signatures a block) held in memory, the DPoS one on one
//! and two threads; and ed25519 throughput (elements = signatures): ed25519-dalek's
//! `verify_strict` (the rule before batching), this crate's rule one signature at a time,
//! and in batches of 256.

use std::cell::Cell;
use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use chainsmith::chain::produce::{ProduceOptions, Run, TimeSource, produce_blocks};
use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::replay;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::pow::miner::solve_block;
use chainsmith::primitives::sig::{BATCH, BatchVerifier, SigRef, verify};
use chainsmith::primitives::tx::KeyPair;
use chainsmith::{ChainSpec, ChainState};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BLOCKS: u32 = 5000;

/// Blocks of the DPoS chain: two transfers and a vote each, besides the block signature.
const DPOS_BLOCKS: u64 = 2000;

/// A clock far past genesis, so that every DPoS slot is due at once; a pause moves it on.
struct Still(Cell<u32>);

impl TimeSource for Still {
    fn now(&self) -> u32 {
        self.0.get()
    }

    fn pause(&self, _wait: Duration) {
        self.0.set(self.0.get() + 1);
    }
}

fn dpos_chain(blocks: u64) -> Vec<u8> {
    let spec = ChainSpec::builtin("dpos-demo").expect("built-in spec");
    let record = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
    let mut out = record.to_json_line().into_bytes();
    out.push(b'\n');
    let mut state = ChainState::new(spec.clone());
    state
        .connect(&spec.consensus.check(record).expect("genesis"), u32::MAX)
        .expect("genesis");
    let options = ProduceOptions {
        tx_per_block: 2,
        votes_per_block: Some(1),
        ..ProduceOptions::default()
    };
    let mut producer = spec
        .consensus
        .rule()
        .producer(&spec, &options)
        .expect("a DPoS producer");
    let run = Run {
        blocks,
        clock: &Still(Cell::new(2_000_000_000)),
        control: &SearchControl::default(),
        search: &SearchOptions::default(),
    };
    produce_blocks(
        &mut state,
        producer.as_mut(),
        &run,
        &mut |_| Vec::new(),
        &mut |_, record, _| {
            out.extend_from_slice(record.to_json_line().as_bytes());
            out.push(b'\n');
            Ok(())
        },
    )
    .expect("the demo producer makes valid blocks");
    out
}

fn regtest_chain(blocks: u32) -> Vec<u8> {
    let spec = ChainSpec::builtin("regtest").expect("built-in spec");
    let genesis = spec.genesis_block();
    let record = BlockRecord::new(0, &genesis, Some(&spec));
    let mut out = record.to_json_line().into_bytes();
    out.push(b'\n');
    let mut state = ChainState::new(spec.clone());
    state
        .connect(&spec.consensus.check(record).expect("genesis"), u32::MAX)
        .expect("genesis");
    let miner = spec.miner_key().pubkey();
    for height in 1..=blocks {
        let template = state.block_template(1_800_000_000 + height, miner, Vec::new());
        let target = template.header.bits.to_target().expect("regtest bits");
        let block = solve_block(
            template,
            target,
            &SearchOptions::default(),
            &SearchControl::default(),
        )
        .expect("regtest blocks solve at once");
        let record = BlockRecord::new(height, &block, None);
        state
            .connect(
                &spec.consensus.check(record.clone()).expect("valid"),
                u32::MAX,
            )
            .expect("valid");
        out.extend_from_slice(record.to_json_line().as_bytes());
        out.push(b'\n');
    }
    out
}

fn verify_chain(c: &mut Criterion) {
    let chain = regtest_chain(BLOCKS);
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(u64::from(BLOCKS) + 1));
    group.sample_size(10);
    group.bench_function(BenchmarkId::new("replay", BLOCKS), |b| {
        b.iter(|| {
            let r = replay(LineReader::new(Cursor::new(&chain)), u32::MAX, &mut ())
                .expect("in-memory read");
            assert!(r.error.is_none());
            black_box(r.valid_bytes)
        });
    });
    let dpos = dpos_chain(DPOS_BLOCKS);
    group.throughput(Throughput::Elements(DPOS_BLOCKS + 1));
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        group.bench_function(format!("dpos-{DPOS_BLOCKS}-{threads}t"), |b| {
            b.iter(|| {
                let r = pool.install(|| {
                    replay(LineReader::new(Cursor::new(&dpos)), u32::MAX, &mut ())
                        .expect("in-memory read")
                });
                assert!(r.error.is_none());
                black_box(r.valid_bytes)
            });
        });
    }
    group.finish();
}

/// `BATCH` signatures by 16 keys over distinct messages.
fn signatures() -> Vec<([u8; 32], Vec<u8>, [u8; 64])> {
    (0..BATCH)
        .map(|i| {
            let key = KeyPair::derive("bench", &format!("k{}", i % 16));
            let msg = format!("message {i}").into_bytes();
            let sig = key.sign(&msg).to_bytes();
            (key.pubkey().to_bytes(), msg, sig)
        })
        .collect()
}

fn ed25519(c: &mut Criterion) {
    let sigs = signatures();
    let mut group = c.benchmark_group("verify");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("ed25519-strict", |b| {
        b.iter(|| {
            sigs.iter().all(|(key, msg, sig)| {
                ed25519_dalek::VerifyingKey::from_bytes(key).is_ok_and(|vk| {
                    vk.verify_strict(msg, &ed25519_dalek::Signature::from_bytes(sig))
                        .is_ok()
                })
            })
        });
    });
    group.bench_function("ed25519-single", |b| {
        b.iter(|| sigs.iter().all(|(key, msg, sig)| verify(key, msg, sig)));
    });
    let refs: Vec<SigRef<'_>> = sigs
        .iter()
        .map(|(key, msg, sig)| SigRef { key, msg, sig })
        .collect();
    let mut verifier = BatchVerifier::default();
    group.bench_function(format!("ed25519-batch{BATCH}"), |b| {
        b.iter(|| assert!(verifier.verify(black_box(&refs))));
    });
    group.finish();
}

criterion_group!(benches, verify_chain, ed25519);
criterion_main!(benches);
