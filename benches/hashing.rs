//! sha256d throughput: the midstate nonce loop against a plain `sha256d(header)` per nonce.
//! Reads as hash rate (elements = nonces).

use std::hint::black_box;

use chainsmith::Header;
use chainsmith::Target;
use chainsmith::hash::PowJob;
use chainsmith::primitives::hash::sha256d;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const BLOCK_125552: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";

fn sha256d_nonces(c: &mut Criterion) {
    let header = Header::from_hex(BLOCK_125552).expect("valid header");
    const NONCES: u64 = 1 << 16;
    let mut group = c.benchmark_group("sha256d");
    group.throughput(Throughput::Elements(NONCES));
    group.bench_function(BenchmarkId::new("midstate-scan", NONCES), |b| {
        // The zero target is never met, so every nonce is hashed.
        let job = PowJob::new(&header, Target::ZERO);
        b.iter(|| black_box(job.scan(black_box(0..NONCES), || false)));
    });
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

criterion_group!(benches, sha256d_nonces);
criterion_main!(benches);
