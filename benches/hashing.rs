//! sha256d throughput per backend (elements = nonces, so the report reads as hash rate), and a
//! plain `sha256d(header)` per nonce for reference. Backends this CPU lacks are skipped.

use std::hint::black_box;

use chainsmith::hash::{Backend, PowJob};
use chainsmith::primitives::hash::sha256d;
use chainsmith::{Header, Target};
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

criterion_group!(benches, sha256d_nonces);
criterion_main!(benches);
