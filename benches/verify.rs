//! Chain verification throughput (elements = blocks): parse, hash, merkle and connect a
//! regtest chain held in memory.

use std::hint::black_box;
use std::io::Cursor;

use chainsmith::chain::record::BlockRecord;
use chainsmith::chain::store::LineReader;
use chainsmith::chain::verify::replay;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::pow::miner::solve_block;
use chainsmith::{ChainSpec, ChainState};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BLOCKS: u32 = 5000;

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
    group.finish();
}

criterion_group!(benches, verify_chain);
criterion_main!(benches);
