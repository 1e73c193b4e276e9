//! Mining end to end: template, parallel nonce search and validation of one regtest-like block
//! at a fixed easy target (about 2^16 expected hashes).

use std::hint::black_box;

use chainsmith::chain::record::BlockRecord;
use chainsmith::hash::search::{SearchControl, SearchOptions};
use chainsmith::pow::miner::solve_block;
use chainsmith::{ChainSpec, ChainState, Target};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn mine_block(c: &mut Criterion) {
    let spec = ChainSpec::builtin("regtest").expect("built-in spec");
    let genesis = spec.genesis_block();
    let mut state = ChainState::new(spec.clone());
    let prepared = spec
        .consensus
        .check(BlockRecord::new(0, &genesis, Some(&spec)))
        .expect("genesis");
    state
        .connect(&prepared, u32::MAX)
        .expect("genesis connects");
    let miner = spec.miner_key().pubkey();
    // 2^240: one block in ~65 536 hashes on average.
    let target = Target::from_hex(&format!("0000{}", "f".repeat(60))).expect("hex");
    let mut group = c.benchmark_group("mine");
    group.throughput(Throughput::Elements(1 << 16));
    group.sample_size(20);
    group.bench_function(
        BenchmarkId::new("solve-block", "2^16 expected hashes"),
        |b| {
            let mut time = 1_800_000_000;
            b.iter(|| {
                time += 1;
                let template = state.block_template(time, miner, Vec::new());
                let control = SearchControl::default();
                black_box(solve_block(
                    template,
                    target,
                    &SearchOptions::default(),
                    &control,
                ))
            });
        },
    );
    group.finish();
}

criterion_group!(benches, mine_block);
criterion_main!(benches);
