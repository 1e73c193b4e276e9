//! The engine's tests: the acceptance rules of each phase on one replica fed by hand, the
//! O set on hand-made view-changes, and whole clusters on the simulator — the paper's message
//! counts, Byzantine replicas up to `f` (safe and live) and `f + 1` (caught disagreeing), a
//! planted bug, and memory that stays bounded over 100 000 requests.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use crate::pbft::batches::{Batch, Batches};
use crate::pbft::byzantine::{BEHAVIOURS, Behaviour, Replica};
use crate::pbft::engine::{
    Body, Bug, Durable, Executed, LogSize, Msg, NULL, NewView, Note, PbftConfig, PbftNode,
    PrePrepare, Prepared, ViewChange, Vote, pre_prepare_bytes, vote_bytes,
};
use crate::pbft::observer::PbftObserver;
use crate::primitives::hash::BlockHash;
use crate::primitives::tx::{KeyPair, SigBytes};
use crate::sim::{
    Engine, Faults, Host, MS, Micros, NetModel, NodeId, Output, Request, SimRng, Simulator,
};

type Node = PbftNode<Batches>;
type Sim = Simulator<Replica<Batches>>;

fn keys(n: usize) -> Vec<KeyPair> {
    (0..n)
        .map(|i| KeyPair::derive("pbft-test", &format!("r{i}")))
        .collect()
}

fn config(keys: &[KeyPair], id: NodeId) -> PbftConfig {
    PbftConfig {
        id,
        keys: Arc::new(keys.iter().map(KeyPair::pubkey).collect()),
        key: keys[id].clone(),
        block_interval: 50 * MS,
        max_batch: 1,
        checkpoint_interval: 4,
        window: 8,
        view_timeout: 500 * MS,
        base: 0,
        bug: None,
    }
}

// ---- one replica fed by hand ----

fn signed_pre(
    keys: &[KeyPair],
    from: NodeId,
    view: u64,
    seq: u64,
    block: Option<Batch>,
) -> PrePrepare<Batch> {
    let digest = block
        .as_ref()
        .map_or(NULL, <Batches as crate::pbft::engine::App>::digest);
    let mut p = PrePrepare {
        view,
        seq,
        digest,
        block,
        from,
        sig: SigBytes::from_bytes([0; 64]),
    };
    p.sig = keys[from].sign(&pre_prepare_bytes(&p));
    p
}

fn signed_vote(
    keys: &[KeyPair],
    from: NodeId,
    view: u64,
    seq: u64,
    digest: BlockHash,
    commit: bool,
) -> Vote {
    let mut v = Vote {
        view,
        seq,
        digest,
        from,
        sig: SigBytes::from_bytes([0; 64]),
    };
    v.sig = keys[from].sign(&vote_bytes(&v, commit));
    v
}

fn batch(seq: u64, serial: u64) -> Batch {
    Batch {
        seq,
        requests: vec![Request { client: 1, serial }],
    }
}

fn feed(node: &mut Node, from: NodeId, body: Body<Batch>) -> Vec<Output<Node>> {
    let mut out = Vec::new();
    node.on_message(1_000, from, Msg { lane: 0, body }, &mut out);
    out
}

fn sends(out: &[Output<Node>], kind: &str) -> usize {
    out.iter()
        .filter(|o| {
            matches!(o, Output::Send(_, m) if crate::pbft::engine::MSG_KINDS[crate::sim::Message::kind(m)] == kind)
        })
        .count()
}

fn backup(keys: &[KeyPair]) -> Node {
    let mut n = Node::new(config(keys, 1), &Durable::default(), Batches::default());
    let mut out = Vec::new();
    n.start(0, &mut out);
    n
}

#[test]
fn a_backup_accepts_only_a_well_formed_pre_prepare() {
    let k = keys(4);
    let pre = |from, view, seq, block: Option<Batch>| {
        Body::PrePrepare(Arc::new(signed_pre(&k, from, view, seq, block)))
    };
    // The right one: from the primary of view 0, inside the watermarks, digest matching.
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, pre(0, 0, 1, Some(batch(1, 0)))),
            "prepare"
        ),
        3
    );
    // A wrong view, a sender that is not the view's primary, a sequence outside (h, h + L].
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, pre(0, 1, 1, Some(batch(1, 0)))),
            "prepare"
        ),
        0
    );
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 2, pre(2, 0, 1, Some(batch(1, 0)))),
            "prepare"
        ),
        0
    );
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, pre(0, 0, 9, Some(batch(9, 0)))),
            "prepare"
        ),
        0
    );
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, pre(0, 0, 0, Some(batch(0, 0)))),
            "prepare"
        ),
        0
    );
    // A digest that is not the block's.
    let mut bad = signed_pre(&k, 0, 0, 1, Some(batch(1, 0)));
    bad.digest = BlockHash::hash(b"another block");
    bad.sig = k[0].sign(&pre_prepare_bytes(&bad));
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, Body::PrePrepare(Arc::new(bad))),
            "prepare"
        ),
        0
    );
    // A bad signature, and a signature by someone other than the claimed primary.
    let mut forged = signed_pre(&k, 0, 0, 1, Some(batch(1, 0)));
    forged.sig = k[2].sign(&pre_prepare_bytes(&forged));
    assert_eq!(
        sends(
            &feed(&mut backup(&k), 0, Body::PrePrepare(Arc::new(forged))),
            "prepare"
        ),
        0
    );
    // A second pre-prepare for the same (view, sequence) with another digest.
    let mut b = backup(&k);
    assert_eq!(
        sends(&feed(&mut b, 0, pre(0, 0, 1, Some(batch(1, 0)))), "prepare"),
        3
    );
    assert_eq!(
        sends(&feed(&mut b, 0, pre(0, 0, 1, Some(batch(1, 7)))), "prepare"),
        0
    );
}

#[test]
fn prepared_needs_2f_backup_prepares_and_committed_2f_plus_1_commits() {
    let k = keys(4);
    let block = batch(1, 0);
    let d = <Batches as crate::pbft::engine::App>::digest(&block);
    let mut b = backup(&k);
    feed(
        &mut b,
        0,
        Body::PrePrepare(Arc::new(signed_pre(&k, 0, 0, 1, Some(block)))),
    );
    // Its own prepare is one of 2f = 2; the primary's prepare does not count, nor does a
    // second one from the same sender, a non-member, a bad signature or another digest.
    let p = |from, digest| Body::Prepare(signed_vote(&k, from, 0, 1, digest, false));
    assert_eq!(sends(&feed(&mut b, 0, p(0, d)), "commit"), 0);
    assert_eq!(
        sends(&feed(&mut b, 2, p(2, BlockHash::hash(b"x"))), "commit"),
        0
    );
    let mut bad_sig = signed_vote(&k, 2, 0, 1, d, false);
    bad_sig.sig = k[3].sign(&vote_bytes(&bad_sig, false));
    assert_eq!(sends(&feed(&mut b, 2, Body::Prepare(bad_sig)), "commit"), 0);
    let mut stranger = signed_vote(&k, 2, 0, 1, d, false);
    stranger.from = 9;
    assert_eq!(
        sends(&feed(&mut b, 2, Body::Prepare(stranger)), "commit"),
        0
    );
    assert_eq!(
        sends(&feed(&mut b, 3, p(3, d)), "commit"),
        3,
        "prepared: pre-prepare + 2f"
    );
    // Committed-local: 2f + 1 commits, its own included; then it executes and replies.
    let c = |from| Body::Commit(signed_vote(&k, from, 0, 1, d, true));
    let out = feed(&mut b, 2, c(2));
    assert!(!out.iter().any(|o| matches!(o, Output::Commit(_))));
    let out = feed(&mut b, 2, c(2));
    assert!(
        !out.iter().any(|o| matches!(o, Output::Commit(_))),
        "a duplicate sender counts once"
    );
    let out = feed(&mut b, 3, c(3));
    let executed: Vec<&Arc<Executed<Batch>>> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(executed.len(), 1);
    assert_eq!(executed[0].cert.signatures.len(), 3);
    assert_eq!(executed[0].cert.sequence, Some(1));
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Reply(r) if r.serial == 0))
    );
}

fn prepared_cert(k: &[KeyPair], view: u64, seq: u64, block: Batch) -> Arc<Prepared<Batch>> {
    let n = k.len();
    let primary = (view % n as u64) as usize;
    let pre = Arc::new(signed_pre(k, primary, view, seq, Some(block)));
    let prepares = (0..n)
        .filter(|i| *i != primary)
        .take(2 * ((n - 1) / 3))
        .map(|i| signed_vote(k, i, view, seq, pre.digest, false))
        .collect();
    Arc::new(Prepared { pre, prepares })
}

fn view_change(
    k: &[KeyPair],
    from: NodeId,
    view: u64,
    prepared: Vec<Arc<Prepared<Batch>>>,
) -> Arc<ViewChange<Batch>> {
    let mut c = ViewChange {
        view,
        stable: 0,
        stable_digest: NULL,
        proof: Arc::new(Vec::new()),
        prepared,
        from,
        sig: SigBytes::from_bytes([0; 64]),
    };
    c.sig = k[from].sign(&crate::pbft::engine::view_change_bytes(&c));
    Arc::new(c)
}

#[test]
fn the_o_set_takes_the_highest_view_and_fills_gaps_with_no_ops() {
    let k = keys(4);
    let a = batch(1, 10);
    let b = batch(3, 30);
    let c = batch(3, 31);
    let changes = vec![
        view_change(
            &k,
            1,
            2,
            vec![
                prepared_cert(&k, 0, 1, a.clone()),
                prepared_cert(&k, 0, 3, b),
            ],
        ),
        view_change(&k, 2, 2, vec![prepared_cert(&k, 1, 3, c.clone())]),
        view_change(&k, 3, 2, vec![]),
    ];
    let o = Node::compute_o(&changes);
    let digest = <Batches as crate::pbft::engine::App>::digest;
    let got: Vec<(u64, BlockHash)> = o.iter().map(|(s, d, _)| (*s, *d)).collect();
    assert_eq!(got, vec![(1, digest(&a)), (2, NULL), (3, digest(&c))]);

    // The new primary (replica 2) sends that NEW-VIEW; a backup recomputes it and accepts it,
    // and refuses one whose O set was altered.
    let pres = |o: &[(u64, BlockHash, Option<Batch>)]| -> Vec<Arc<PrePrepare<Batch>>> {
        o.iter()
            .map(|(s, _, blk)| Arc::new(signed_pre(&k, 2, 2, *s, blk.clone())))
            .collect()
    };
    let new_view = |pres: Vec<Arc<PrePrepare<Batch>>>| {
        let mut nv = NewView {
            view: 2,
            changes: changes.clone(),
            pres,
            from: 2,
            sig: SigBytes::from_bytes([0; 64]),
        };
        nv.sig = k[2].sign(&crate::pbft::engine::new_view_bytes(&nv));
        Body::NewView(Arc::new(nv))
    };
    let mut altered = o.clone();
    altered[1] = (2, BlockHash::hash(b"x"), Some(batch(2, 20)));
    let mut b = backup(&k);
    let out = feed(&mut b, 2, new_view(pres(&altered)));
    assert_eq!(b.view(), 0, "an O set that does not recompute is refused");
    assert_eq!(sends(&out, "prepare"), 0);
    let out = feed(&mut b, 2, new_view(pres(&o)));
    assert_eq!(b.view(), 2);
    assert!(!b.changing());
    assert_eq!(
        sends(&out, "prepare"),
        3 * 3,
        "a prepare for each of the three entries"
    );
}

// ---- clusters on the simulator ----

#[derive(Default)]
struct Count {
    proposals: u64,
    views: Vec<u64>,
    executed: Vec<u64>,
}

impl Host<Replica<Batches>> for Count {
    fn commit(&mut self, _: Micros, node: NodeId, e: &Arc<Executed<Batch>>) {
        self.executed[node] = e.seq;
    }

    fn note(&mut self, _: Micros, node: NodeId, note: Note) {
        match note {
            Note::Proposed { .. } => self.proposals += 1,
            Note::View { view } => self.views[node] = self.views[node].max(view),
            _ => {}
        }
    }
}

struct Run {
    sim: Sim,
    observer: PbftObserver,
    host: Count,
}

fn cluster(
    n: usize,
    seed: u64,
    behaviours: &[(NodeId, Behaviour)],
    faults: Faults,
    tweak: fn(&mut PbftConfig),
) -> Run {
    let k = keys(n);
    let mut b = vec![Behaviour::Honest; n];
    for (i, x) in behaviours {
        b[*i] = *x;
    }
    let twins: Vec<bool> = b.iter().map(|x| *x == Behaviour::Twins).collect();
    let honest: Vec<bool> = b.iter().map(|x| *x == Behaviour::Honest).collect();
    let kk = k.clone();
    let boot = Box::new(move |id: NodeId, disk: &Durable<Batch>, rng: SimRng| {
        let mut c = config(&kk, id);
        tweak(&mut c);
        let app = Batches::default();
        let node = PbftNode::new(c, disk, app.clone());
        Replica::new(b[id], node, disk, &app, &twins, rng)
    });
    let mut sim = Simulator::new(
        n,
        seed,
        NetModel::default(),
        faults,
        &Durable::default(),
        boot,
    );
    sim.byzantine_clients(((n - 1) / 3 + 1) as u32);
    let observer = PbftObserver::new(k.iter().map(KeyPair::pubkey).collect(), honest, 0, true);
    let mut run = Run {
        sim,
        observer,
        host: Count {
            views: vec![0; n],
            executed: vec![0; n],
            ..Count::default()
        },
    };
    run.sim.start(&mut run.observer, &mut run.host);
    run
}

impl Run {
    fn until(&mut self, t: Micros) -> bool {
        self.sim
            .run_until(t, &mut self.observer, &mut self.host, &mut |_| false)
    }

    fn sent(&self, kind: &str) -> u64 {
        let i = crate::pbft::engine::MSG_KINDS
            .iter()
            .position(|k| *k == kind)
            .unwrap();
        self.sim.stats().sent[i]
    }
}

fn load(tps: f64) -> Faults {
    Faults {
        load_tps: tps,
        ..Faults::default()
    }
}

#[test]
fn the_papers_message_counts_per_request() {
    for (n, per_request) in [(4, 24), (7, 84), (10, 180)] {
        let mut run = cluster(n, 7, &[], Faults::default(), |c| c.checkpoint_interval = 5);
        let requests = 10;
        for serial in 0..requests {
            run.sim.submit_to(0, Request { client: 0, serial });
            assert!(run.until((serial + 1) * 200 * MS));
        }
        assert!(run.until(requests * 200 * MS + 500 * MS));
        let n64 = n as u64;
        assert_eq!(
            run.host.proposals, requests,
            "n = {n}: one block per request"
        );
        assert!(
            run.host.executed.iter().all(|e| *e == requests),
            "n = {n}: {:?}",
            run.host.executed
        );
        assert_eq!(run.sent("pre-prepare"), (n64 - 1) * requests);
        assert_eq!(run.sent("prepare"), (n64 - 1) * (n64 - 1) * requests);
        assert_eq!(run.sent("commit"), n64 * (n64 - 1) * requests);
        let normal = run.sent("pre-prepare") + run.sent("prepare") + run.sent("commit");
        assert_eq!(normal, per_request * requests, "n = {n}");
        // With the client's request and the n replies: 2n² − n + 1.
        assert_eq!(run.sim.stats().replies, n64 * requests);
        assert_eq!(normal / requests + 1 + n64, 2 * n64 * n64 - n64 + 1);
        // Two checkpoints (sequence 5 and 10), each all-to-all.
        assert_eq!(run.sent("checkpoint"), 2 * n64 * (n64 - 1));
        assert_eq!(run.sent("view-change") + run.sent("new-view"), 0);
    }
}

#[test]
fn a_view_change_costs_n_times_n_minus_1_view_changes_and_n_minus_1_new_views() {
    for n in [4_u64, 7] {
        // A slow primary: the request reaches every replica (as a client's broadcast does);
        // the backups time out and ask for view 1, the primary joins when f + 1 ask.
        let mut run = cluster(
            n as usize,
            3,
            &[(0, Behaviour::SlowPrimary)],
            Faults::default(),
            |_| {},
        );
        for serial in 0..3 {
            for node in 0..n as usize {
                run.sim.submit_to(node, Request { client: 0, serial });
            }
        }
        assert!(run.until(1_400 * MS), "{}", run.sim.violation().unwrap());
        assert!(
            run.host.views.iter().all(|v| *v == 1),
            "{:?}",
            run.host.views
        );
        assert_eq!(run.sent("view-change"), n * (n - 1));
        assert_eq!(run.sent("new-view"), n - 1);
        assert!(
            run.host.executed[1..].iter().all(|e| *e == 3),
            "{:?}",
            run.host.executed
        );
    }
}

/// Every behaviour on `bad` of `n` replicas: the honest ones agree (the observer), keep
/// executing, and answer nine requests in ten.
fn byzantine_of_every_kind(n: usize, bad: &[NodeId]) {
    for (name, behaviour) in BEHAVIOURS {
        let behaviours: Vec<(NodeId, Behaviour)> = bad.iter().map(|b| (*b, *behaviour)).collect();
        let mut run = cluster(n, 11, &behaviours, load(40.0), |c| c.max_batch = 16);
        let ok = run.until(12_000 * MS);
        assert!(ok, "{name}, n = {n}: {}", run.sim.violation().unwrap());
        let honest_min = (0..n)
            .filter(|i| !bad.contains(i))
            .map(|i| run.host.executed[i])
            .min()
            .unwrap();
        assert!(
            honest_min >= 20,
            "{name}, n = {n}: honest replicas executed {:?}",
            run.host.executed
        );
        let stats = run.sim.stats();
        assert!(
            stats.latencies.len() as u64 * 10 >= stats.submitted * 9,
            "{name}, n = {n}: {} of {} answered",
            stats.latencies.len(),
            stats.submitted
        );
    }
}

#[test]
fn one_byzantine_replica_of_every_kind_in_4_keeps_honest_replicas_agreeing_and_live() {
    byzantine_of_every_kind(4, &[0]);
}

#[test]
fn two_byzantine_replicas_of_every_kind_in_7_keep_honest_replicas_agreeing_and_live() {
    byzantine_of_every_kind(7, &[0, 4]);
}

#[test]
fn an_equivocating_primary_is_replaced_and_commits_go_on() {
    let mut run = cluster(4, 5, &[(0, Behaviour::Equivocate)], load(40.0), |c| {
        c.max_batch = 16
    });
    assert!(run.until(3_000 * MS), "{}", run.sim.violation().unwrap());
    assert!(
        run.host.views[1..].iter().all(|v| *v >= 1),
        "{:?}",
        run.host.views
    );
    let before = run.host.executed[1];
    assert!(run.until(8_000 * MS));
    assert!(
        run.host.executed[1] > before + 20,
        "{before} → {}",
        run.host.executed[1]
    );
}

#[test]
fn f_plus_1_twins_make_honest_replicas_disagree_and_the_observer_says_so() {
    for (n, bad) in [(4, vec![0, 1]), (7, vec![0, 1, 2])] {
        let behaviours: Vec<(NodeId, Behaviour)> =
            bad.iter().map(|b| (*b, Behaviour::Twins)).collect();
        let mut run = cluster(n, 2, &behaviours, load(40.0), |c| c.max_batch = 16);
        assert!(!run.until(10_000 * MS), "n = {n}: {:?}", run.host.executed);
        let v = run.sim.violation().unwrap();
        assert_eq!(v.property, "agreement", "{v}");
        assert_eq!(v.nodes.len(), 2);
        assert!(v.nodes.iter().all(|x| !bad.contains(x)), "{v}");
    }
    // f twins: safe.
    let mut run = cluster(
        7,
        2,
        &[(0, Behaviour::Twins), (1, Behaviour::Twins)],
        load(40.0),
        |c| c.max_batch = 16,
    );
    assert!(run.until(10_000 * MS), "{}", run.sim.violation().unwrap());
}

#[test]
fn the_observer_catches_commits_after_2f_commits() {
    let mut caught = 0;
    for seed in 0..5 {
        let mut run = cluster(4, seed, &[(3, Behaviour::Silent)], load(40.0), |c| {
            c.bug = Some(Bug::CommitWith2f);
        });
        if !run.until(5_000 * MS) {
            let v = run.sim.violation().unwrap();
            assert_eq!(v.property, "certificate", "{v}");
            caught += 1;
        }
    }
    assert_eq!(caught, 5);
}

#[test]
fn checkpoints_keep_memory_bounded_over_100_000_requests() {
    let mut run = cluster(4, 9, &[], load(2_000.0), |c| {
        c.max_batch = 400;
        c.checkpoint_interval = 16;
        c.window = 32;
    });
    let mut peak = LogSize::default();
    let mut t = 0;
    while run.sim.stats().submitted < 100_000 {
        t += 1_000 * MS;
        assert!(run.until(t), "{}", run.sim.violation().unwrap());
        for i in 0..4 {
            let s = run.sim.engine(i).unwrap().engine().log_size();
            peak.slots = peak.slots.max(s.slots);
            peak.votes = peak.votes.max(s.votes);
            peak.checkpoints = peak.checkpoints.max(s.checkpoints);
            peak.prepared = peak.prepared.max(s.prepared);
            peak.done = peak.done.max(s.done);
        }
    }
    assert!(run.until(t + 2_000 * MS));
    let stats = run.sim.stats();
    assert!(
        stats.latencies.len() >= 100_000,
        "{} answered",
        stats.latencies.len()
    );
    assert_eq!(stats.retries, 0, "no request waited a second");
    // Bounded by the window, not by the run: slots and prepared certificates within L, two
    // votes per replica each, checkpoints for at most a window and the next per sender.
    assert!(peak.slots <= 32 + 1, "{peak:?}");
    assert!(peak.prepared <= 32, "{peak:?}");
    assert!(peak.votes <= (32 + 1) * 2 * 4, "{peak:?}");
    assert!(peak.checkpoints <= 4 * (2 * 32 / 16 + 2), "{peak:?}");
    assert!(peak.done < 2_000, "{peak:?}");
    let engine = run.sim.engine(0).unwrap().engine();
    assert!(
        engine.low_watermark() > 50,
        "checkpoints became stable: h = {}",
        engine.low_watermark()
    );
}

#[test]
fn a_restarted_replica_catches_up_through_state_transfer() {
    let faults = Faults {
        crashes: vec![crate::sim::Crash {
            node: 2,
            at: 1_000 * MS,
            restart: Some(4_000 * MS),
        }],
        ..load(40.0)
    };
    let mut run = cluster(4, 4, &[], faults, |c| c.max_batch = 16);
    assert!(run.until(9_000 * MS), "{}", run.sim.violation().unwrap());
    let e = &run.host.executed;
    assert!(e[2] + 8 >= e[0], "the restarted replica caught up: {e:?}");
    assert!(e[2] > 50, "{e:?}");
}

#[test]
fn check_pbft_catches_the_planted_bug_on_byzantine_schedules_and_passes_without_it() {
    use crate::pbft::check::{bounds, check_schedule_with, schedule};
    let spec = crate::chain::spec::ChainSpec::builtin("pbft-demo").unwrap();
    let names: Vec<String> = (1..=4).map(|i| format!("s{i}")).collect();
    let bounds = bounds();
    let (mut caught, mut byzantine) = (0, 0);
    for i in 0..12 {
        let sc = schedule(1, i, &names, &bounds);
        byzantine += usize::from(!sc.byzantine.is_empty());
        let good = check_schedule_with(&spec, &sc, &bounds, |_| {}).unwrap();
        assert_eq!(good.violation, None, "schedule {i}: {sc:?}");
        let bad =
            check_schedule_with(&spec, &sc, &bounds, |c| c.bug = Some(Bug::CommitWith2f)).unwrap();
        if let Some(v) = bad.violation {
            assert!(
                v.starts_with("certificate") || v.starts_with("agreement"),
                "{v}"
            );
            caught += 1;
        }
    }
    assert!(
        byzantine >= 3,
        "the schedules include Byzantine replicas: {byzantine}"
    );
    assert!(caught >= 6, "caught on {caught} of 12 schedules");
}

#[test]
fn clusters_of_5_and_6_replicas_stay_safe_with_one_equivocating_primary() {
    // Between 3f + 1 sizes the quorum is ⌈(n + f + 1)/2⌉ (4 of 5, 4 of 6): with 2f + 1 = 3,
    // two quorums could meet only in the equivocator.
    for n in [5, 6] {
        for seed in 0..4 {
            let mut run = cluster(n, seed, &[(0, Behaviour::Equivocate)], load(40.0), |c| {
                c.max_batch = 16;
            });
            assert!(
                run.until(4_000 * MS),
                "n = {n}, seed {seed}: {}",
                run.sim.violation().unwrap()
            );
            assert!(
                run.host.executed[1] > 10,
                "n = {n}: {:?}",
                run.host.executed
            );
        }
    }
}

#[test]
fn a_block_that_is_not_what_its_digest_says_is_neither_voted_for_nor_executed() {
    use crate::chain::record::BlockRecord;
    use crate::chain::spec::ChainSpec;
    use crate::chain::state::ChainState;
    use crate::pbft::blocks::{BlockApp, PbftBlock};
    use crate::pbft::cluster::node_config;
    use crate::pbft::engine::{App, commit_bytes};
    use crate::pbft::spec::PbftSpec;
    use crate::primitives::seal::{QuorumCertificate, QuorumSignature};
    let spec = ChainSpec::builtin("pbft-demo").unwrap();
    let pbft = spec.section::<PbftSpec>().unwrap().clone();
    let mut base = ChainState::new(spec.clone());
    let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
    let checked = base.check(genesis).unwrap();
    base.connect(&checked, spec.genesis.time).unwrap();
    let k: Vec<KeyPair> = pbft
        .members
        .iter()
        .map(|m| KeyPair::derive(&spec.wallet_seed, m))
        .collect();
    let origin = spec.genesis.time;
    let (good, _) = BlockApp::new(base.clone(), origin)
        .propose(0, &k[0], 0, 1, &[])
        .unwrap();
    let h = BlockApp::digest(&good);
    // Another header (and so another block) claiming the same hash.
    let mut other = (*good).clone();
    other.record.time += 1;
    let other: Arc<PbftBlock> = Arc::new(other);
    assert_eq!(BlockApp::digest(&other), h);
    let replica = |id| {
        let mut n = PbftNode::new(
            node_config(&spec, &pbft, id, 0),
            &Durable::default(),
            BlockApp::new(base.clone(), origin),
        );
        n.start(0, &mut Vec::new());
        n
    };
    let pre = |block: Arc<PbftBlock>| {
        let mut p = PrePrepare {
            view: 0,
            seq: 1,
            digest: h,
            block: Some(block),
            from: 0,
            sig: SigBytes::from_bytes([0; 64]),
        };
        p.sig = k[0].sign(&pre_prepare_bytes(&p));
        Msg {
            lane: 0,
            body: Body::PrePrepare(Arc::new(p)),
        }
    };
    let prepares = |node: &mut PbftNode<BlockApp>, block| {
        let mut out = Vec::new();
        node.on_message(1_000, 0, pre(block), &mut out);
        out.iter()
            .filter(|o| matches!(o, Output::Send(_, m) if matches!(m.body, Body::Prepare(_))))
            .count()
    };
    assert_eq!(prepares(&mut replica(1), Arc::clone(&good)), 3);
    assert_eq!(prepares(&mut replica(2), Arc::clone(&other)), 0);
    // State transfer: a genuine certificate for the hash, shipped with the other block.
    let cert = QuorumCertificate {
        view: Some(0),
        sequence: Some(1),
        signatures: (0..3)
            .map(|i| QuorumSignature {
                signer: k[i].pubkey(),
                signature: k[i].sign(&commit_bytes(0, 1, h)),
            })
            .collect(),
    };
    let entry = |block| {
        Arc::new(Executed {
            seq: 1,
            block: Some(block),
            cert: cert.clone(),
            applied: true,
            state: NULL,
        })
    };
    let mut r3 = replica(3);
    let state = |e| Msg {
        lane: 0,
        body: Body::State(Arc::new(vec![e])),
    };
    r3.on_message(1_000, 0, state(entry(other)), &mut Vec::new());
    assert_eq!(r3.last_executed(), 0, "the other block is refused");
    r3.on_message(1_000, 0, state(entry(good)), &mut Vec::new());
    assert_eq!(r3.last_executed(), 1, "the certified block is executed");
    assert_eq!(r3.app().state().tip().unwrap().hash, h);
}
