//! Kafka's rules step by step (the controller's election rule, the leader's high watermark,
//! ISR changes and `min_insync_replicas`, leader epochs against high-watermark truncation),
//! KIP-101's loss reproduced and prevented, the loss an unclean election causes counted, the
//! planted high-watermark bugs caught, and a chain's certificates checked as `verify` does.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::{BlockError, ChainState};
use crate::chain::wallet::demo_transfers;
use crate::consensus::quorum::QuorumError;
use crate::kafka::batches::{Batch, Batches};
use crate::kafka::check::{build, check_schedule_with};
use crate::kafka::cluster::node_config;
use crate::kafka::controller::{ControllerApp, PartitionState, elect};
use crate::kafka::engine::{
    Bug, CUT, Durable, FetchResult, ISR_CHECK, KafkaConfig, KafkaNode, Msg, NodeSet, Note, Persist,
    Record, Role,
};
use crate::kafka::rule::{KafkaError, certify, sign_ack, unsealed_block};
use crate::kafka::spec::KafkaSpec;
use crate::primitives::tx::{ClientRequest, KeyPair};
use crate::raft::engine::{App as _, Entry};
use crate::sim::cluster::{CheckBounds, OrderedCluster, genesis_state, secs};
use crate::sim::report::Safety;
use crate::sim::scenario::{CrashSpec, Scenario};
use crate::sim::{Engine, MS, Micros, NodeId, Output, Request, SimRng};

type Node = KafkaNode<Batches>;
type Out = Vec<Output<Node>>;

fn spec() -> ChainSpec {
    ChainSpec::builtin("kafka-demo").unwrap()
}

fn config(id: NodeId, members: usize, min_insync: usize, epochs: bool) -> KafkaConfig {
    let mut kafka = spec().section::<KafkaSpec>().unwrap().clone();
    kafka.members = (1..=members).map(|i| format!("s{i}")).collect();
    kafka.min_insync_replicas = min_insync;
    kafka.leader_epochs = epochs;
    node_config(&kafka, id)
}

fn node(id: NodeId, min_insync: usize, disk: &Durable<Batch>, epochs: bool) -> Node {
    let mut n = KafkaNode::new(
        config(id, 3, min_insync, epochs),
        disk,
        SimRng::new(id as u64),
        Batches::default(),
    );
    n.start(0, &mut Vec::new());
    n
}

fn meta(leader: NodeId, epoch: u64, isr: &[NodeId], version: u64) -> PartitionState {
    PartitionState {
        leader: Some(leader),
        epoch,
        isr: isr.to_vec(),
        version,
        unclean: false,
    }
}

fn req(serial: u64) -> Request {
    ClientRequest { client: 1, serial }
}

/// A fetch from a follower: its LEO, last epoch and commit point.
fn fetch(epoch: u64, offset: u64, last_epoch: u64, committed: u64) -> Msg<Batch> {
    Msg::Fetch {
        epoch,
        offset,
        last_epoch,
        committed,
        sigs: Vec::new(),
    }
}

fn notes(out: &Out) -> Vec<Note> {
    out.iter()
        .filter_map(|o| match o {
            Output::Note(n) => Some(*n),
            _ => None,
        })
        .collect()
}

fn fetch_reply(out: &Out, to: NodeId) -> Option<(FetchResult, u64, usize)> {
    out.iter().find_map(|o| match o {
        Output::Send(
            t,
            Msg::FetchReply {
                result,
                hw,
                records,
                ..
            },
        ) if *t == to => Some((*result, *hw, records.len())),
        _ => None,
    })
}

/// A leader (ISR `isr`) holding records of the given epochs, leading the last of them.
fn leader_with(epochs: &[u64], isr: &[NodeId], min_insync: usize) -> Node {
    leader_on(epochs, isr, min_insync, true)
}

/// As [`leader_with`], with leader epochs on or off.
fn leader_on(epochs: &[u64], isr: &[NodeId], min_insync: usize, leader_epochs: bool) -> Node {
    let log = epochs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Arc::new(Record {
                epoch: *e,
                offset: i as u64,
                data: Batch(vec![req(100 + i as u64)]),
                leader_sig: None,
            })
        })
        .collect();
    let disk = Durable {
        log,
        ..Durable::default()
    };
    let mut n = node(0, min_insync, &disk, leader_epochs);
    let epoch = epochs.last().copied().unwrap_or(1);
    n.set_metadata(0, &meta(0, epoch, isr, 1), &mut Vec::new());
    n
}

#[test]
fn the_controller_elects_from_the_live_isr_and_unclean_only_when_allowed() {
    let state = meta(0, 4, &[0, 1, 2], 9);
    // A live leader stays.
    assert_eq!(elect(&state, 3, |_| true, false), None);
    // A dead leader: the first live ISR member, the next epoch, the dead one out of the ISR.
    let next = elect(&state, 3, |r| r != 0, false).unwrap();
    assert_eq!(
        (next.leader, next.epoch, next.isr.clone(), next.unclean),
        (Some(1), 5, vec![1, 2], false)
    );
    // No live ISR member: offline, the ISR kept (its last member may come back)…
    let lonely = meta(0, 4, &[0], 9);
    let offline = elect(&lonely, 3, |r| r != 0, false).unwrap();
    assert_eq!(
        (offline.leader, offline.epoch, offline.isr),
        (None, 5, vec![0])
    );
    // … and nothing more to do while it stays offline.
    let still = PartitionState {
        leader: None,
        ..lonely.clone()
    };
    assert_eq!(elect(&still, 3, |r| r != 0, false), None);
    // Unclean: the first live replica leads alone.
    let unclean = elect(&lonely, 3, |r| r == 2, true).unwrap();
    assert_eq!(
        (unclean.leader, unclean.isr, unclean.unclean),
        (Some(2), vec![2], true)
    );
    // The first election, from the initial state.
    let first = elect(&PartitionState::initial(3, 0), 3, |r| r != 0, false).unwrap();
    assert_eq!((first.leader, first.epoch), (Some(1), 1));
}

#[test]
fn controller_commands_are_compare_and_set_on_the_version() {
    let mut app = ControllerApp::new(3, 0);
    app.propose(meta(1, 1, &[0, 1, 2], 0));
    app.propose(meta(2, 1, &[0, 1, 2], 0));
    let first = app.cut(0, 1, 1, &[], &[]).unwrap().0;
    let second = app.cut(0, 1, 2, &[], &[]).unwrap().0;
    assert!(app.is_idle());
    for (index, command) in [(1, first), (2, second)] {
        app.apply(&Entry {
            term: 1,
            index,
            command: Some(command),
        });
    }
    // Both were decided on version 0: only the first applies.
    assert_eq!(app.state().leader, Some(1));
    assert_eq!(app.state().version, 1);
}

#[test]
fn the_high_watermark_is_the_smallest_leo_over_the_isr() {
    // Reference: Kafka documentation, "Replication": a message is committed once every ISR
    // member has it; followers outside the ISR do not hold it back.
    let mut leader = leader_with(&[], &[0, 1], 2);
    let mut out = Vec::new();
    leader.on_client(MS, req(1), &mut out);
    leader.on_timer(100 * MS, CUT, &mut out);
    assert_eq!((leader.leo(), leader.hw()), (1, 0));
    // Node 2, outside the ISR, has it: nothing commits.
    out.clear();
    leader.on_message(110 * MS, 2, fetch(1, 1, 1, 0), &mut out);
    assert_eq!(leader.hw(), 0);
    // Node 1, in the ISR, has it: committed, the client answered, the HW sent back.
    out.clear();
    leader.on_message(111 * MS, 1, fetch(1, 1, 1, 0), &mut out);
    assert_eq!(leader.hw(), 1);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Reply(r) if *r == req(1)))
    );
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Commit(c) if c.record.offset == 0))
    );
    assert_eq!(fetch_reply(&out, 1), Some((FetchResult::Ok, 1, 0)));
    // Asking for the offset it stands at, with everything committed: the fetch waits.
    out.clear();
    leader.on_message(120 * MS, 1, fetch(1, 1, 1, 1), &mut out);
    assert_eq!(fetch_reply(&out, 1), None);
    // A new record answers it at once.
    leader.on_client(121 * MS, req(2), &mut out);
    leader.on_timer(200 * MS, CUT, &mut out);
    assert_eq!(fetch_reply(&out, 1), Some((FetchResult::Ok, 1, 1)));
}

#[test]
fn writes_are_refused_and_nothing_commits_below_min_insync_replicas() {
    let mut leader = leader_with(&[], &[0], 2);
    let mut out = Vec::new();
    leader.on_client(MS, req(1), &mut out);
    leader.on_timer(100 * MS, CUT, &mut out);
    assert_eq!(leader.leo(), 0, "nothing appended");
    assert!(notes(&out).contains(&Note::Refused { count: 1, isr: 1 }));
    // A log from before (appended while the ISR was larger) does not commit either …
    let mut leader = leader_with(&[1, 1], &[0], 2);
    assert_eq!(leader.hw(), 0);
    // … until a follower catches up: the leader asks to add it, and counts it at once
    // (KIP-497's maximal ISR: a pending addition only makes the HW stricter).
    let mut out = Vec::new();
    leader.on_message(110 * MS, 1, fetch(1, 2, 1, 0), &mut out);
    assert!(notes(&out).contains(&Note::AlterIsr {
        isr: NodeSet::of(&[0, 1])
    }));
    assert_eq!(leader.hw(), 2);
    // With min_insync_replicas 1 the leader alone commits.
    let alone = leader_with(&[1, 1], &[0], 1);
    assert_eq!(alone.hw(), 2);
}

#[test]
fn the_isr_shrinks_on_lag_and_grows_on_catching_up() {
    let lag = 500 * MS;
    let mut leader = leader_with(&[1, 1], &[0, 1, 2], 2);
    let mut out = Vec::new();
    // Node 1 keeps up, node 2 never fetches.
    leader.on_message(100 * MS, 1, fetch(1, 2, 1, 0), &mut out);
    leader.on_message(lag, 1, fetch(1, 2, 1, 2), &mut out);
    out.clear();
    leader.on_timer(lag + 10 * MS, ISR_CHECK, &mut out);
    assert!(
        notes(&out).contains(&Note::AlterIsr {
            isr: NodeSet::of(&[0, 1])
        }),
        "{out:?}"
    );
    // Until the controller commits it, the HW still waits for node 2 (a pending removal
    // does not count).
    assert_eq!(leader.hw(), 0);
    leader.set_metadata(lag + 20 * MS, &meta(0, 1, &[0, 1], 2), &mut Vec::new());
    assert_eq!(leader.hw(), 2, "committed without the lagging replica");
    // Node 2 comes back and catches up to the HW: the leader asks to add it back.
    out.clear();
    leader.on_message(lag + 30 * MS, 2, fetch(1, 2, 1, 0), &mut out);
    assert!(notes(&out).contains(&Note::AlterIsr {
        isr: NodeSet::of(&[0, 1, 2])
    }));
}

#[test]
fn leaders_answer_epoch_queries_and_fence_diverging_or_stale_fetches() {
    // Reference: KIP-101 (OffsetsForLeaderEpoch), KIP-279 (an epoch the leader lacks).
    let mut leader = leader_with(&[1, 1, 3], &[0, 1, 2], 2);
    let ask = |leader: &mut Node, last_epoch| {
        let mut out = Vec::new();
        leader.on_message(
            MS,
            1,
            Msg::EpochQuery {
                epoch: 3,
                last_epoch,
            },
            &mut out,
        );
        out.iter()
            .find_map(|o| match o {
                Output::Send(1, Msg::EpochReply { found, end, .. }) => Some((*found, *end)),
                _ => None,
            })
            .unwrap()
    };
    assert_eq!(ask(&mut leader, 3), (3, 3));
    assert_eq!(
        ask(&mut leader, 2),
        (1, 2),
        "epoch 2 is unknown: epoch 1 ends at 2"
    );
    assert_eq!(ask(&mut leader, 1), (1, 2));
    assert_eq!(ask(&mut leader, 0), (0, 0));
    let mut out = Vec::new();
    // Offset 2 after a record of epoch 2: that is not the leader's record 1.
    leader.on_message(MS, 1, fetch(3, 2, 2, 0), &mut out);
    assert_eq!(
        fetch_reply(&out, 1).map(|r| r.0),
        Some(FetchResult::Diverging)
    );
    out.clear();
    leader.on_message(MS, 1, fetch(3, 2, 1, 0), &mut out);
    assert_eq!(fetch_reply(&out, 1).map(|r| r.0), Some(FetchResult::Ok));
    out.clear();
    leader.on_message(MS, 1, fetch(2, 2, 1, 0), &mut out);
    assert_eq!(fetch_reply(&out, 1).map(|r| r.0), Some(FetchResult::Fenced));
}

fn follower_disk() -> Durable<Batch> {
    let log = [1, 1, 2, 2]
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Arc::new(Record {
                epoch: *e,
                offset: i as u64,
                data: Batch(vec![req(i as u64)]),
                leader_sig: None,
            })
        })
        .collect();
    Durable {
        log,
        hw: 1,
        ..Durable::default()
    }
}

fn truncations(out: &Out) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Persist(Persist::Truncate(to)) => Some(*to),
            _ => None,
        })
        .collect()
}

#[test]
fn kip101_divergence_goes_unseen_without_leader_epochs() {
    // Reference: KIP-101, "Scenario 2: Replica Divergence on Restart after Multiple
    // Hard Failures": the follower kept a record of epoch 1 at offset 1 (truncating to its
    // high watermark of 2), where the leader of epoch 2 wrote another. Old Kafka fetches on
    // from offset 2, the logs diverged for good; the last fetched epoch catches it.
    for (epochs, expected) in [(false, FetchResult::Ok), (true, FetchResult::Diverging)] {
        let mut leader = leader_on(&[1, 2], &[0, 1], 2, epochs);
        let mut out = Vec::new();
        leader.on_message(MS, 1, fetch(2, 2, 1, 0), &mut out);
        assert_eq!(
            fetch_reply(&out, 1).map(|r| r.0),
            Some(expected),
            "epochs {epochs}"
        );
        // Without epochs the diverged follower counts as caught up: the HW passes offset 1,
        // which the two replicas hold differently.
        assert_eq!(leader.hw(), if epochs { 0 } else { 2 }, "epochs {epochs}");
    }
}

#[test]
fn a_new_follower_truncates_to_the_leaders_epoch_end_or_with_epochs_off_to_its_hw() {
    // Reference: KIP-101: with leader epochs the follower asks the leader where its last
    // epoch ends and truncates there; before, it truncated to its own high watermark.
    let mut f = node(1, 2, &follower_disk(), true);
    let mut out = Vec::new();
    f.set_metadata(MS, &meta(0, 3, &[0, 1, 2], 5), &mut out);
    assert_eq!(f.role(), Role::Follower);
    assert!(truncations(&out).is_empty(), "it asks first");
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send(
            0,
            Msg::EpochQuery {
                epoch: 3,
                last_epoch: 2
            }
        )
    )));
    // The leader has epoch 1 (ending at 3), not epoch 2: the follower's epoch 1 ends at 2.
    out.clear();
    f.on_message(
        2 * MS,
        0,
        Msg::EpochReply {
            epoch: 3,
            found: 1,
            end: 3,
        },
        &mut out,
    );
    assert_eq!(truncations(&out), vec![2]);
    assert_eq!(f.leo(), 2);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Send(
            0,
            Msg::Fetch {
                offset: 2,
                last_epoch: 1,
                ..
            }
        )
    )));
    // Epochs off: straight back to the high-watermark checkpoint, then fetch.
    let mut old = node(1, 2, &follower_disk(), false);
    let mut out = Vec::new();
    old.set_metadata(MS, &meta(0, 3, &[0, 1, 2], 5), &mut out);
    assert_eq!(truncations(&out), vec![1]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Send(0, Msg::Fetch { offset: 1, .. })))
    );
}

/// `kafka-demo` with `params` merged into its section.
fn spec_with(nodes: usize, params: &[(&str, serde_json::Value)]) -> ChainSpec {
    let params: BTreeMap<String, serde_json::Value> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    crate::kafka::spec::cluster_spec(&spec(), Some(nodes), &params).unwrap()
}

fn scenario(seconds: f64, crashes: Vec<CrashSpec>) -> Scenario {
    Scenario {
        seed: 3,
        duration_s: Some(seconds),
        load_tps: Some(30.0),
        crashes,
        ..Scenario::default()
    }
}

fn crash(node: &str, at: Micros, restart: Option<Micros>) -> CrashSpec {
    CrashSpec {
        node: node.into(),
        at_s: at as f64 / 1e6,
        restart_s: restart.map(|r| r as f64 / 1e6),
    }
}

/// KIP-101's first scenario on a partition of two replicas (s1 leads, s2 follows; s3 only
/// votes in the controller quorum): s2 stores the last committed block but has not yet
/// heard the new high watermark when it restarts; s1 crashes before s2 fetches the block
/// again; s2 is elected. Returns the run's safety verdict and whether s2 led holding the
/// block.
fn kip101_scenario_one(epochs: bool) -> (Safety, bool) {
    let spec = spec_with(
        3,
        &[
            ("replication_factor", 2.into()),
            ("min_insync_replicas", 1.into()),
            ("leader_epochs", epochs.into()),
        ],
    );
    // The moment s2 holds the block s1 just committed, without knowing it committed.
    let mut probe = build(&spec, &scenario(3.0, Vec::new()), false).unwrap();
    let mut t0 = 0;
    probe.run_until_with(secs(3.0), &mut |sim| {
        let (Some(l), Some(f)) = (sim.engine(0), sim.engine(1)) else {
            return false;
        };
        let hit = l.role() == Role::Leader
            && l.hw() >= 3
            && l.hw() == l.leo()
            && f.leo() == l.leo()
            && f.hw() < f.leo();
        if hit {
            t0 = sim.now();
        }
        hit
    });
    assert!(t0 > 0, "the window occurs");
    let committed = probe.engine(0).unwrap().hw();
    // s2 restarts at once; the moment it has rejoined as a follower (with epochs off: after
    // truncating to its high watermark), s1 crashes for good.
    let restart = vec![crash("s2", t0 + 1, Some(t0 + 2 * MS))];
    let mut probe = build(&spec, &scenario(3.0, restart.clone()), false).unwrap();
    let mut t1 = 0;
    probe.run_until_with(secs(3.0), &mut |sim| {
        let hit =
            sim.now() > t0 + 2 * MS && sim.engine(1).is_some_and(|f| f.role() == Role::Follower);
        if hit {
            t1 = sim.now();
        }
        hit
    });
    assert!(t1 > 0, "s2 rejoins");
    let mut crashes = restart;
    crashes.push(crash("s1", t1 + 1, None));
    let mut run = build(&spec, &scenario(3.0, crashes), false).unwrap();
    let mut led_with_block = false;
    run.run_until_with(secs(3.0), &mut |sim| {
        if let Some(f) = sim.engine(1)
            && f.role() == Role::Leader
        {
            led_with_block |= f.leo() >= committed;
        }
        false
    });
    (run.report().safety, led_with_block)
}

#[test]
fn kip101_high_watermark_truncation_loses_a_committed_block_and_leader_epochs_keep_it() {
    // Reference: KIP-101, "Scenario 1: High Watermark Truncation followed by Immediate
    // Leader Election".
    let (safety, _) = kip101_scenario_one(false);
    match safety {
        Safety::Violated {
            property, detail, ..
        } => {
            assert_eq!(property, "no committed record lost", "{detail}");
            assert!(detail.contains("s2 leads epoch 2"), "{detail}");
        }
        Safety::Ok => panic!("high-watermark truncation lost nothing"),
    }
    let (safety, led_with_block) = kip101_scenario_one(true);
    assert!(matches!(safety, Safety::Ok), "{safety:?}");
    assert!(led_with_block, "s2 kept the committed block and led");
}

/// Five brokers, the partition on s1–s3: s3 falls out of the ISR, s1 and s2 commit blocks
/// without it, then both die and s3 returns alone.
fn unclean_run(unclean: bool) -> (Safety, u64, u64, String) {
    let spec = spec_with(
        5,
        &[
            ("replication_factor", 3.into()),
            ("unclean_leader_election", unclean.into()),
        ],
    );
    let crashes = vec![
        crash("s3", secs(1.0), Some(secs(3.5))),
        crash("s1", secs(3.0), None),
        crash("s2", secs(3.0), None),
    ];
    let mut run = build(&spec, &scenario(5.0, crashes), false).unwrap();
    run.run_until(secs(5.0));
    let report = run.report();
    let leaders = match &report.protocol {
        crate::sim::report::ProtocolReport::Kafka {
            leaders,
            unclean_elections,
            ..
        } => format!(
            "{} {unclean_elections}",
            leaders.last().map_or("-", |l| l.leader.as_str())
        ),
        _ => unreachable!("a kafka report"),
    };
    (report.safety, run.lost_committed(), report.blocks, leaders)
}

#[test]
fn an_unclean_election_loses_committed_blocks_and_counts_them() {
    let (safety, lost, blocks, last) = unclean_run(true);
    assert!(matches!(safety, Safety::Ok), "{safety:?}");
    assert_eq!(last, "s3 1", "s3 elected uncleanly");
    // s1 and s2 committed blocks for 1.5 s without s3 (a block per 100 ms).
    assert!((10..=30).contains(&lost), "lost {lost} of {blocks}");
    // Without the switch the partition stays offline: nothing lost.
    let (safety, lost, _, last) = unclean_run(false);
    assert!(matches!(safety, Safety::Ok), "{safety:?}");
    assert_eq!(lost, 0);
    assert_eq!(last, "s1 0", "no leader after s1");
}

fn hw_over_all_replicas(kafka: &KafkaSpec, id: NodeId) -> KafkaConfig {
    KafkaConfig {
        bug: Some(Bug::HwOverAllReplicas),
        ..node_config(kafka, id)
    }
}

fn hw_leader_only(kafka: &KafkaSpec, id: NodeId) -> KafkaConfig {
    KafkaConfig {
        bug: Some(Bug::HwLeaderOnly),
        ..node_config(kafka, id)
    }
}

#[test]
fn planted_bug_hw_over_all_replicas_stalls_commits_while_one_is_down() {
    // Stricter than the ISR, so never unsafe: but a replica down for good stops the
    // partition, which `check` reports as not live once the faults have healed.
    let spec = spec();
    let sc = scenario(7.0, vec![crash("s3", secs(1.0), None)]);
    let bounds = CheckBounds::default();
    let ok = check_schedule_with(&spec, &sc, &bounds, node_config).unwrap();
    assert!(ok.violation.is_none() && ok.recovery_s.is_some(), "{ok:?}");
    let bug = check_schedule_with(&spec, &sc, &bounds, hw_over_all_replicas).unwrap();
    assert!(bug.violation.is_none(), "{bug:?}");
    assert_eq!(bug.recovery_s, None, "commits stalled: not live");
}

#[test]
fn planted_bug_hw_of_the_leader_alone_loses_committed_blocks() {
    // With min_insync_replicas 1 a one-signature certificate is valid, so only the observer
    // can tell the block was committed before any follower stored it.
    let spec = spec_with(3, &[("min_insync_replicas", 1.into())]);
    let run = |config: fn(&KafkaSpec, NodeId) -> KafkaConfig| {
        let mut c =
            crate::kafka::check::build_with(&spec, &scenario(4.0, Vec::new()), false, config)
                .unwrap();
        let mut crashed = false;
        c.run_until_with(secs(4.0), &mut |sim| {
            // The leader committed a block no follower stores yet.
            let (Some(l), Some(a), Some(b)) = (sim.engine(0), sim.engine(1), sim.engine(2)) else {
                return false;
            };
            let hit = l.role() == Role::Leader && l.committed() > a.leo().max(b.leo());
            crashed |= hit;
            hit
        });
        if crashed {
            // Its messages are lost from now on; once its write (and so the commit) is
            // done, it crashes.
            let t = c.now();
            c.cut_link(0, 1, secs(4.0));
            c.cut_link(0, 2, secs(4.0));
            c.run_until(t + 2 * MS);
            c.crash_now(0);
        }
        c.run_until(secs(4.0));
        (crashed, c.report().safety)
    };
    let (crashed, safety) = run(node_config);
    assert!(
        !crashed,
        "the correct leader never commits ahead of its ISR"
    );
    assert!(matches!(safety, Safety::Ok));
    let (crashed, safety) = run(hw_leader_only);
    assert!(crashed);
    assert!(
        matches!(
            safety,
            Safety::Violated {
                property: "no committed record lost",
                ..
            }
        ),
        "{safety:?}"
    );
}

/// A Kafka chain built by hand on `kafka-demo` (replicas s1–s3, min_insync_replicas 2).
struct Chain {
    state: ChainState,
    keys: Vec<KeyPair>,
}

impl Chain {
    fn new() -> Self {
        let spec = spec();
        let keys = ["s1", "s2", "s3", "mallory"]
            .map(|m| KeyPair::derive(&spec.wallet_seed, m))
            .to_vec();
        Self {
            state: genesis_state(&spec).unwrap(),
            keys,
        }
    }

    /// The next block as `leader` appends it at `offset` in `epoch`, acked by `signers`
    /// (over `signed` = (epoch, offset) when given, else the block's own).
    fn block(
        &self,
        leader: usize,
        (epoch, offset): (u64, u64),
        signers: &[usize],
        signed: Option<(u64, u64)>,
    ) -> BlockRecord {
        let wallets = self.state.spec().wallet_keys();
        let height = self.state.next_height();
        let txs = demo_transfers(&self.state, &wallets, 1, height, &[]);
        let mut record = unsealed_block(
            &self.state,
            &self.keys[leader],
            1_577_836_800 + height,
            (epoch, offset),
            vec![ClientRequest {
                client: 1,
                serial: u64::from(height),
            }],
            txs,
        );
        let (e, o) = signed.unwrap_or((epoch, offset));
        let sigs = signers
            .iter()
            .map(|s| sign_ack(&self.keys[*s], e, o, record.hash))
            .collect();
        certify(&mut record, sigs);
        record
    }

    fn add(&mut self, record: BlockRecord) -> Result<(), BlockError> {
        let time = record.time;
        let checked = self.state.check(record)?;
        self.state.connect(&checked, time)
    }
}

#[test]
fn a_chain_proves_each_block_reached_min_insync_replicas() {
    let mut chain = Chain::new();
    chain.add(chain.block(0, (1, 0), &[0, 1, 2], None)).unwrap();
    chain.add(chain.block(0, (1, 1), &[1, 0], None)).unwrap();
    // A new leader in a later epoch, certifying with the old leader's ack too.
    chain.add(chain.block(1, (2, 2), &[1, 2], None)).unwrap();
    let quorum = |e: BlockError| match e {
        BlockError::Quorum(q) => q,
        other => panic!("{other}"),
    };
    let rule = |e: BlockError| e.rule_error::<KafkaError>().cloned().unwrap();
    let too_few = chain.add(chain.block(1, (2, 3), &[1], None)).unwrap_err();
    assert!(matches!(
        quorum(too_few),
        QuorumError::TooFewSigners {
            signers: 1,
            threshold: 2
        }
    ));
    let twice = chain
        .add(chain.block(1, (2, 3), &[1, 1], None))
        .unwrap_err();
    assert!(matches!(
        quorum(twice),
        QuorumError::DuplicateSigner { index: 1, .. }
    ));
    let outsider = chain
        .add(chain.block(1, (2, 3), &[1, 3], None))
        .unwrap_err();
    assert!(matches!(
        quorum(outsider),
        QuorumError::NotMember { index: 1, .. }
    ));
    let other_epoch = chain
        .add(chain.block(1, (2, 3), &[1, 2], Some((1, 3))))
        .unwrap_err();
    assert!(matches!(
        quorum(other_epoch),
        QuorumError::BadSignature { index: 0, .. }
    ));
    let mut other_hash = chain.block(1, (2, 3), &[1, 2], None);
    let foreign = chain.block(1, (2, 4), &[1, 2], None);
    other_hash.certificate = foreign.certificate;
    assert!(matches!(
        quorum(chain.add(other_hash).unwrap_err()),
        QuorumError::BadSignature { .. }
    ));
    let unsigned_leader = chain
        .add(chain.block(1, (2, 3), &[0, 2], None))
        .unwrap_err();
    assert!(matches!(
        rule(unsigned_leader),
        KafkaError::LeaderNotSigned(_)
    ));
    let back = chain
        .add(chain.block(1, (2, 2), &[1, 2], None))
        .unwrap_err();
    assert_eq!(
        rule(back),
        KafkaError::OffsetNotAfter {
            offset: 2,
            previous: 2
        }
    );
    let old_epoch = chain
        .add(chain.block(0, (1, 3), &[0, 1], None))
        .unwrap_err();
    assert_eq!(
        rule(old_epoch),
        KafkaError::EpochWentBack {
            epoch: 1,
            previous: 2
        }
    );
    let rival = chain
        .add(chain.block(2, (2, 3), &[2, 1], None))
        .unwrap_err();
    assert!(matches!(
        rule(rival),
        KafkaError::TwoLeaders { epoch: 2, .. }
    ));
    let stranger = chain
        .add(chain.block(3, (3, 3), &[3, 1, 2], None))
        .unwrap_err();
    assert!(matches!(rule(stranger), KafkaError::NotReplica(_)));
    chain.add(chain.block(1, (2, 3), &[2, 1, 0], None)).unwrap();
}

#[test]
fn a_simulated_cluster_with_a_crashed_leader_stays_safe_and_elects_from_the_isr() {
    let sc = scenario(4.0, vec![crash("s1", secs(1.0), Some(secs(2.5)))]);
    let mut c = build(&spec(), &sc, false).unwrap();
    c.run_until(secs(4.0));
    let r = c.report();
    assert!(matches!(r.safety, Safety::Ok), "{:?}", r.safety);
    assert!(r.blocks > 20, "{}", r.blocks);
    let crate::sim::report::ProtocolReport::Kafka {
        leaders,
        isr_expands,
        ..
    } = &r.protocol
    else {
        unreachable!("a kafka report")
    };
    assert!(leaders.len() >= 2 && leaders[0].leader == "s1" && leaders[1].leader != "s1");
    assert!(*isr_expands >= 1, "s1 rejoins the ISR");
    // Every replica ends with the same committed chain.
    let tips: Vec<_> = (0..3)
        .map(|n| c.engine(n).unwrap().app().state().tip().map(|t| t.hash))
        .collect();
    assert!(tips.windows(2).all(|w| w[0] == w[1]), "{tips:?}");
}
