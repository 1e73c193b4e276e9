//! Simulator throughput (elements = events): a five-node Raft cluster over the request-batch
//! state machine, under a client load with message loss, the same cluster ordering blocks, and
//! a four-replica PBFT cluster ordering blocks (every message signed and checked).
//! The aim is at least a million events a second per core for the simulator itself.

use std::hint::black_box;
use std::sync::Arc;

use chainsmith::ChainSpec;
use chainsmith::raft::batches::{Batch, Batches};
use chainsmith::raft::check::build;
use chainsmith::raft::engine::{Durable, Entry, MAX_APPEND, Note, RaftConfig, RaftNode};
use chainsmith::raft::observer::RaftObserver;
use chainsmith::sim::cluster::run;
use chainsmith::sim::scenario::Scenario;
use chainsmith::sim::{Faults, Host, MS, Micros, NetModel, NodeId, Simulator};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

struct Quiet;

impl Host<RaftNode<Batches>> for Quiet {
    fn commit(&mut self, _: Micros, _: NodeId, _: &Arc<Entry<Batch>>) {}
    fn note(&mut self, _: Micros, _: NodeId, _: Note) {}
}

/// Runs 10 s of a five-node cluster; returns the events processed.
fn batches_run() -> u64 {
    let boot = Box::new(|id, disk: &Durable<Batch>, rng| {
        let config = RaftConfig {
            id,
            members: 5,
            election: (150 * MS, 300 * MS),
            heartbeat: 50 * MS,
            cut_interval: 20 * MS,
            max_batch: 100,
            max_append: MAX_APPEND,
            pre_vote: true,
            check_quorum: true,
        };
        RaftNode::new(config, disk, rng, Batches::default())
    });
    let net = NetModel {
        drop: 0.01,
        ..NetModel::default()
    };
    let faults = Faults {
        load_tps: 500.0,
        ..Faults::default()
    };
    let mut sim = Simulator::new(5, 7, net, faults, &Durable::default(), boot);
    let mut observer = RaftObserver::<Batches>::new(5, 0);
    sim.start(&mut observer, &mut Quiet);
    assert!(sim.run_until(10_000 * MS, &mut observer, &mut Quiet, &mut |_| false));
    sim.stats().events
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sim");
    g.sample_size(20);
    g.throughput(Throughput::Elements(batches_run()));
    g.bench_function("raft_batches_5_nodes_10s", |b| {
        b.iter(|| black_box(batches_run()))
    });
    let spec = ChainSpec::builtin("raft-demo").expect("built-in spec");
    let scenario = Scenario {
        duration_s: Some(5.0),
        load_tps: Some(50.0),
        ..Scenario::default()
    };
    let blocks_run = || {
        let mut cluster = build(&spec, &scenario, false).expect("valid scenario");
        assert!(run(&mut cluster, &scenario));
        cluster.stats().events
    };
    g.throughput(Throughput::Elements(blocks_run()));
    g.bench_function("raft_blocks_5_nodes_5s", |b| {
        b.iter(|| black_box(blocks_run()))
    });
    let spec = ChainSpec::builtin("pbft-demo").expect("built-in spec");
    let pbft_run = || {
        let mut cluster =
            chainsmith::pbft::check::build(&spec, &scenario, false).expect("valid scenario");
        assert!(run(&mut cluster, &scenario));
        cluster.stats().events
    };
    g.throughput(Throughput::Elements(pbft_run()));
    g.bench_function("pbft_blocks_4_nodes_5s", |b| {
        b.iter(|| black_box(pbft_run()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
