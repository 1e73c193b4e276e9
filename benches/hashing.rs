//! sha256d throughput per backend (elements = nonces, so the report reads as hash rate), and a
//! plain `sha256d(header)` per nonce for reference; the same for stake kernels (`pos-kernel`,
//! elements = timestamps) per backend, and the whole staking search of `pos-demo` on one and
//! on every thread. Backends this CPU lacks are skipped.

use std::hint::black_box;

use chainsmith::hash::search::SearchControl;
use chainsmith::hash::{Backend, KernelJob, PowJob};
use chainsmith::pos::stake::{StakeOutcome, earliest_stake_time, find_stake};
use chainsmith::primitives::hash::sha256d;
use chainsmith::sim::cluster::genesis_state;
use chainsmith::{ChainSpec, Header, Target};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BLOCK_125552: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";
const NONCES: u64 = 1 << 16;

fn sha256d_nonces(c: &mut Criterion) {
    let header = Header::from_hex(BLOCK_125552).expect("valid header");
    let mut group = c.benchmark_group("sha256d");
    group.throughput(Throughput::Elements(NONCES));
    for backend in Backend::ALL {
        // The zero target is never met, so every nonce is hashed.
        let Ok(job) = PowJob::new(&header, Target::ZERO).with_backend(backend) else {
            eprintln!("sha256d/{backend}: skipped, not supported by this CPU");
            continue;
        };
        group.bench_function(BenchmarkId::new(backend.name(), NONCES), |b| {
            b.iter(|| black_box(job.scan(black_box(0..NONCES), || false)));
        });
    }
    group.bench_function(BenchmarkId::new("plain-sha256d", NONCES), |b| {
        let mut bytes = header.to_bytes();
        b.iter(|| {
            for nonce in 0..NONCES as u32 {
                bytes[76..80].copy_from_slice(&nonce.to_le_bytes());
                black_box(sha256d(black_box(&bytes)));
            }
        });
    });
    group.finish();
}

fn pos_kernels(c: &mut Criterion) {
    let mut group = c.benchmark_group("pos-kernel");
    group.throughput(Throughput::Elements(NONCES));
    // Modifier, block time, position, transaction time and output index of a staked output.
    let mut prefix = [0u8; 24];
    prefix[..8].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    prefix[8..12].copy_from_slice(&1_577_836_800u32.to_le_bytes());
    for backend in Backend::ALL {
        let Ok(job) = KernelJob::new(&prefix, backend) else {
            eprintln!("pos-kernel/{backend}: skipped, not supported by this CPU");
            continue;
        };
        // A top word of zero: about one candidate in 2^32, so every timestamp is hashed.
        let times = 1_600_000_000..1_600_000_000 + NONCES;
        group.bench_function(BenchmarkId::new(backend.name(), NONCES), |b| {
            b.iter(|| black_box(job.find(black_box(times.clone()), 0, |_, _| true)));
        });
    }
    group.finish();

    // The staking search over pos-demo's genesis outputs until the next block, from one second
    // after the last block found: kernels scanned, candidates checked, the sequential count.
    let spec = ChainSpec::builtin("pos-demo").expect("a built-in spec");
    let state = genesis_state(&spec).expect("the genesis block connects");
    let keys = spec.wallet_keys();
    let mut group = c.benchmark_group("pos-search");
    group.sample_size(20);
    let all = std::thread::available_parallelism().map_or(1, usize::from);
    for threads in [1, all] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        let backend = Backend::detect();
        let mut from = earliest_stake_time(&state);
        group.bench_function(
            BenchmarkId::new(format!("pos-demo-{backend}"), threads),
            |b| {
                b.iter(|| {
                    let control = SearchControl::default();
                    match pool
                        .install(|| find_stake(&state, &keys, (from, u32::MAX), backend, &control))
                    {
                        StakeOutcome::Found(stake) => from = stake.time + 1,
                        other => panic!("the search ended without a block: {other:?}"),
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, sha256d_nonces, pos_kernels);
criterion_main!(benches);
