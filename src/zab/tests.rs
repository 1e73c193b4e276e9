//! Step-level tests of the ZAB engine, phase by phase (election, discovery, synchronization,
//! broadcast), the TRUNC demonstration, the planted bug, the simulator's FIFO links, and the
//! chain rule's rejections.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use crate::sim::{Engine, MS, Micros, NodeId, Observer, Output, Request, SimRng, Violation};
use crate::zab::batches::{Batch, Batches};
use crate::zab::engine::{
    Bug, Durable, Msg, Persist, Phase, Role, SyncMode, Txn, Vote, ZabConfig, ZabNode, Zxid,
};
use crate::zab::observer::ZabObserver;

type Node = ZabNode<Batches>;
type Out = Vec<Output<Node>>;
type M = Msg<Batch, ()>;

const ELECTION: u8 = 0;
const CUT: u8 = 2;
const LIMIT: u8 = 3;
const FINALIZE: u8 = 4;

fn config(id: NodeId, members: usize) -> ZabConfig {
    ZabConfig {
        id,
        members,
        tick: 50 * MS,
        init_limit: 500 * MS,
        sync_limit: 250 * MS,
        election: (100 * MS, 200 * MS),
        cut_interval: 20 * MS,
        max_batch: 1,
        commit_log: 500,
        bug: None,
    }
}

fn request(serial: u64) -> Request {
    Request { client: 0, serial }
}

fn txns(zxids: &[(u64, u64)]) -> Vec<Arc<Txn<Batch>>> {
    zxids
        .iter()
        .map(|(e, c)| {
            Arc::new(Txn {
                zxid: Zxid::new(*e, *c),
                command: Batch(vec![Request {
                    client: u32::try_from(*e).unwrap(),
                    serial: *c,
                }]),
            })
        })
        .collect()
}

fn node_with(id: NodeId, members: usize, epoch: u64, history: &[(u64, u64)]) -> Node {
    let disk = Durable {
        accepted_epoch: epoch,
        current_epoch: epoch,
        history: txns(history),
        ..Durable::default()
    };
    ZabNode::new(
        config(id, members),
        &disk,
        SimRng::new(id as u64),
        Batches::default(),
    )
}

fn sends(out: &Out) -> Vec<(NodeId, M)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, m) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn persists(out: &Out) -> Vec<Persist<Batch, ()>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn recv(n: &mut Node, from: NodeId, msg: M) -> Out {
    let mut out = Vec::new();
    n.on_message(0, from, msg, &mut out);
    out
}

fn start(n: &mut Node) -> Out {
    let mut out = Vec::new();
    n.start(0, &mut out);
    out
}

fn notification(round: u64, leader: NodeId, epoch: u64, zxid: (u64, u64)) -> M {
    Msg::Notification {
        round,
        vote: Vote {
            leader,
            epoch,
            zxid: Zxid::new(zxid.0, zxid.1),
        },
        role: Role::Looking,
    }
}

#[test]
fn a_looking_server_votes_for_the_highest_epoch_zxid_and_id_and_follows_a_quorum() {
    let mut n = node_with(0, 5, 1, &[(1, 1), (1, 2)]);
    let out = start(&mut n);
    assert_eq!(n.role(), Role::Looking);
    // It votes for itself, to everyone.
    let votes = sends(&out);
    assert_eq!(votes.len(), 4);
    assert!(votes.iter().all(|(_, m)| matches!(
        m,
        Msg::Notification { round: 1, vote, role: Role::Looking }
            if vote.leader == 0 && vote.zxid == Zxid::new(1, 2)
    )));
    // A lower zxid does not move it, even from a higher id.
    let out = recv(&mut n, 4, notification(1, 4, 1, (1, 1)));
    assert!(sends(&out).is_empty());
    assert_eq!(n.vote().leader, 0);
    // Same epoch and zxid: the higher id wins; it re-broadcasts the better vote.
    let out = recv(&mut n, 3, notification(1, 3, 1, (1, 2)));
    assert_eq!(n.vote().leader, 3);
    assert_eq!(sends(&out).len(), 4);
    // A higher current epoch beats any zxid of an older one.
    let mut m = node_with(1, 5, 1, &[(1, 1), (1, 7)]);
    start(&mut m);
    recv(&mut m, 2, notification(1, 2, 2, (1, 1)));
    assert_eq!(m.vote().leader, 2);
    // A later round resets the tally and is joined.
    let out = recv(&mut n, 2, notification(3, 2, 1, (1, 1)));
    assert_eq!(sends(&out).len(), 4);
    assert_eq!(
        n.vote().leader,
        0,
        "its own vote beats the sender's in the new round"
    );
    // A quorum (3 of 5) of equal votes decides after a tick without a better vote.
    recv(&mut n, 1, notification(3, 0, 1, (1, 2)));
    let out = recv(&mut n, 2, notification(3, 0, 1, (1, 2)));
    assert_eq!(n.role(), Role::Looking);
    assert!(out.iter().any(|o| matches!(o, Output::Timer(FINALIZE, _))));
    n.on_timer(0, FINALIZE, &mut Vec::new());
    assert_eq!(n.role(), Role::Leading);
    assert_eq!(n.phase(), Phase::Discovery);
}

#[test]
fn a_server_out_of_the_election_answers_with_its_leader_and_a_quorum_of_them_is_joined() {
    let mut n = node_with(0, 3, 0, &[]);
    start(&mut n);
    let leads = |leader| Msg::Notification {
        round: 1,
        vote: Vote {
            leader,
            epoch: 1,
            zxid: Zxid::new(1, 4),
        },
        role: Role::Leading,
    };
    let follows = |leader| Msg::Notification {
        round: 1,
        vote: Vote {
            leader,
            epoch: 1,
            zxid: Zxid::new(1, 4),
        },
        role: Role::Following,
    };
    // One report is not a quorum.
    recv(&mut n, 1, follows(2));
    assert_eq!(n.role(), Role::Looking);
    // The leader itself says it leads: two of three back it.
    let out = recv(&mut n, 2, leads(2));
    assert_eq!(n.role(), Role::Following);
    assert_eq!(n.leader(), Some(2));
    assert!(sends(&out).iter().any(|(to, m)| *to == 2
        && matches!(
            m,
            Msg::FollowerInfo {
                accepted_epoch: 0,
                ..
            }
        )));
    // A following server tells a looking one whom it follows.
    let out = recv(&mut n, 1, notification(5, 1, 0, (0, 0)));
    assert!(matches!(
        sends(&out)[..],
        [(1, Msg::Notification { role: Role::Following, vote, .. })] if vote.leader == 2
    ));
}

/// A leader of `members` (id 0) in discovery, its own accepted epoch `epoch`.
fn prospective_leader(members: usize, epoch: u64, history: &[(u64, u64)]) -> Node {
    let mut n = node_with(0, members, epoch, history);
    start(&mut n);
    let me = n.vote();
    for p in 1..members / 2 + 1 {
        recv(
            &mut n,
            p,
            Msg::Notification {
                round: 1,
                vote: me,
                role: Role::Looking,
            },
        );
    }
    n.on_timer(0, FINALIZE, &mut Vec::new());
    assert_eq!(n.role(), Role::Leading);
    n
}

#[test]
fn discovery_proposes_an_epoch_above_a_quorums_accepted_epochs() {
    let mut l = prospective_leader(5, 2, &[(2, 1)]);
    let out = recv(
        &mut l,
        1,
        Msg::FollowerInfo {
            accepted_epoch: 4,
            session: 1,
        },
    );
    assert!(sends(&out).is_empty(), "two of five are not a quorum");
    let out = recv(
        &mut l,
        2,
        Msg::FollowerInfo {
            accepted_epoch: 3,
            session: 1,
        },
    );
    // max(2, 4, 3) + 1, persisted before LEADERINFO goes out.
    assert!(matches!(persists(&out)[..], [Persist::AcceptedEpoch(5)]));
    let first_send = out.iter().position(|o| matches!(o, Output::Send(..)));
    let persist = out.iter().position(|o| matches!(o, Output::Persist(..)));
    assert!(persist < first_send);
    let to: HashSet<NodeId> = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, Msg::LeaderInfo { epoch: 5 }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(to, HashSet::from([1, 2]));
    assert_eq!(l.accepted_epoch(), 5);
    // A latecomer gets the epoch already chosen.
    let out = recv(
        &mut l,
        3,
        Msg::FollowerInfo {
            accepted_epoch: 9,
            session: 1,
        },
    );
    assert!(matches!(
        sends(&out)[..],
        [(3, Msg::LeaderInfo { epoch: 5 })]
    ));
}

#[test]
fn a_follower_persists_the_new_epoch_before_acknowledging_and_refuses_an_older_one() {
    let mut f = node_with(1, 3, 2, &[(2, 1), (2, 2)]);
    start(&mut f);
    recv(
        &mut f,
        0,
        Msg::Notification {
            round: 1,
            vote: Vote {
                leader: 0,
                epoch: 2,
                zxid: Zxid::new(2, 2),
            },
            role: Role::Leading,
        },
    );
    recv(
        &mut f,
        2,
        Msg::Notification {
            round: 1,
            vote: Vote {
                leader: 0,
                epoch: 2,
                zxid: Zxid::new(2, 2),
            },
            role: Role::Following,
        },
    );
    assert_eq!(f.role(), Role::Following);
    let out = recv(&mut f, 0, Msg::LeaderInfo { epoch: 3 });
    assert!(matches!(persists(&out)[..], [Persist::AcceptedEpoch(3)]));
    assert!(matches!(
        sends(&out)[..],
        [(0, Msg::AckEpoch { epoch: 3, current_epoch: 2, last })] if last == Zxid::new(2, 2)
    ));
    assert_eq!(f.accepted_epoch(), 3);
    assert_eq!(
        f.current_epoch(),
        2,
        "the current epoch waits for NEWLEADER"
    );
    // A LEADERINFO from another server is ignored.
    assert!(recv(&mut f, 2, Msg::LeaderInfo { epoch: 7 }).is_empty());

    let mut g = node_with(1, 3, 4, &[]);
    start(&mut g);
    recv(
        &mut g,
        0,
        Msg::Notification {
            round: 1,
            vote: Vote {
                leader: 0,
                epoch: 4,
                zxid: Zxid::default(),
            },
            role: Role::Leading,
        },
    );
    recv(
        &mut g,
        2,
        Msg::Notification {
            round: 1,
            vote: Vote {
                leader: 0,
                epoch: 4,
                zxid: Zxid::default(),
            },
            role: Role::Following,
        },
    );
    let out = recv(&mut g, 0, Msg::LeaderInfo { epoch: 3 });
    assert_eq!(g.role(), Role::Looking, "an epoch below its accepted one");
    assert!(persists(&out).is_empty());
}

fn ack_epoch(epoch: u64, current: u64, last: (u64, u64)) -> M {
    Msg::AckEpoch {
        epoch,
        current_epoch: current,
        last: Zxid::new(last.0, last.1),
    }
}

/// A leader of five (id 0) whose history is `history`, in epoch 3 after FOLLOWERINFO from
/// 1 and 2.
fn leader_in_epoch_3(history: &[(u64, u64)], commit_log: usize) -> Node {
    let mut l = node_with(0, 5, 2, history);
    l = {
        let disk = Durable {
            accepted_epoch: 2,
            current_epoch: 2,
            history: txns(history),
            ..Durable::default()
        };
        let mut c = config(0, 5);
        c.commit_log = commit_log;
        let _ = l;
        ZabNode::new(c, &disk, SimRng::new(0), Batches::default())
    };
    start(&mut l);
    let me = l.vote();
    for p in [1, 2] {
        recv(
            &mut l,
            p,
            Msg::Notification {
                round: 1,
                vote: me,
                role: Role::Looking,
            },
        );
    }
    l.on_timer(0, FINALIZE, &mut Vec::new());
    for p in [1, 2] {
        recv(
            &mut l,
            p,
            Msg::FollowerInfo {
                accepted_epoch: 2,
                session: 1,
            },
        );
    }
    l
}

fn sync_of(out: &Out, to: NodeId) -> (SyncMode, Vec<Zxid>) {
    sends(out)
        .into_iter()
        .find_map(|(t, m)| match m {
            Msg::Sync { mode, txns, .. } if t == to => {
                Some((mode, txns.iter().map(|(t, _)| t.zxid).collect()))
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("no sync to {to}: {out:?}"))
}

#[test]
fn synchronization_sends_a_diff_a_trunc_or_a_snap_then_newleader() {
    let history = [(1, 1), (1, 2), (2, 1), (2, 2)];
    let mut l = leader_in_epoch_3(&history, 500);
    assert!(
        recv(&mut l, 1, ack_epoch(3, 2, (1, 2))).is_empty(),
        "not a quorum yet"
    );
    let out = recv(&mut l, 2, ack_epoch(3, 1, (1, 3)));
    // The leader takes the epoch as current, then syncs each follower.
    assert!(matches!(persists(&out)[..], [Persist::CurrentEpoch(3)]));
    assert_eq!(l.phase(), Phase::Sync);
    // Behind: the missing proposals.
    assert_eq!(
        sync_of(&out, 1),
        (SyncMode::Diff, vec![Zxid::new(2, 1), Zxid::new(2, 2)])
    );
    // (1, 3) was never the leader's: truncate to (1, 2), then the rest.
    assert_eq!(
        sync_of(&out, 2),
        (
            SyncMode::Trunc(Zxid::new(1, 2)),
            vec![Zxid::new(2, 1), Zxid::new(2, 2)]
        )
    );
    // NEWLEADER follows each sync on the same link.
    for f in [1, 2] {
        let kinds: Vec<bool> = sends(&out)
            .iter()
            .filter(|(t, _)| *t == f)
            .map(|(_, m)| matches!(m, Msg::NewLeader { epoch: 3, .. }))
            .collect();
        assert_eq!(kinds, [false, true]);
    }
    // A follower ahead in an old epoch: truncated to the leader's last zxid.
    recv(
        &mut l,
        3,
        Msg::FollowerInfo {
            accepted_epoch: 2,
            session: 1,
        },
    );
    let out = recv(&mut l, 3, ack_epoch(3, 2, (2, 9)));
    assert_eq!(sync_of(&out, 3), (SyncMode::Trunc(Zxid::new(2, 2)), vec![]));

    // With a committed log of two, a follower further behind gets a snapshot.
    let mut l = leader_in_epoch_3(&history, 2);
    recv(&mut l, 1, ack_epoch(3, 1, (1, 1)));
    let out = recv(&mut l, 2, ack_epoch(3, 2, (2, 1)));
    assert_eq!(
        sync_of(&out, 1),
        (
            SyncMode::Snap,
            history.iter().map(|(e, c)| Zxid::new(*e, *c)).collect()
        )
    );
    assert_eq!(sync_of(&out, 2), (SyncMode::Diff, vec![Zxid::new(2, 2)]));
}

#[test]
fn a_leader_whose_follower_has_a_more_recent_history_gives_up() {
    let mut l = leader_in_epoch_3(&[(1, 1)], 500);
    let out = recv(&mut l, 1, ack_epoch(3, 2, (2, 5)));
    assert_eq!(l.role(), Role::Looking);
    assert!(
        sends(&out)
            .iter()
            .all(|(_, m)| matches!(m, Msg::Notification { .. }))
    );
}

#[test]
fn a_follower_applies_trunc_and_diff_and_takes_the_epoch_only_at_newleader() {
    let mut f = node_with(1, 3, 1, &[(1, 1), (1, 2), (1, 3)]);
    start(&mut f);
    let leads = Msg::Notification {
        round: 1,
        vote: Vote {
            leader: 0,
            epoch: 1,
            zxid: Zxid::new(1, 2),
        },
        role: Role::Leading,
    };
    recv(&mut f, 0, leads.clone());
    recv(
        &mut f,
        2,
        Msg::Notification {
            round: 1,
            vote: Vote {
                leader: 0,
                epoch: 1,
                zxid: Zxid::new(1, 2),
            },
            role: Role::Following,
        },
    );
    recv(&mut f, 0, Msg::LeaderInfo { epoch: 2 });
    let out = recv(
        &mut f,
        0,
        Msg::Sync {
            epoch: 2,
            mode: SyncMode::Trunc(Zxid::new(1, 2)),
            txns: txns(&[(2, 1)]).into_iter().map(|t| (t, None)).collect(),
            commit: Zxid::new(1, 1),
        },
    );
    let w = persists(&out);
    assert!(matches!(w[0], Persist::Truncate(z) if z == Zxid::new(1, 2)));
    assert!(matches!(&w[1], Persist::Append(t) if t.len() == 1 && t[0].zxid == Zxid::new(2, 1)));
    let zxids: Vec<Zxid> = f.history().iter().map(|t| t.zxid).collect();
    assert_eq!(zxids, [Zxid::new(1, 1), Zxid::new(1, 2), Zxid::new(2, 1)]);
    assert_eq!(f.current_epoch(), 1);
    let out = recv(
        &mut f,
        0,
        Msg::NewLeader {
            epoch: 2,
            endorse: vec![Zxid::new(1, 2), Zxid::new(2, 1)],
        },
    );
    assert!(matches!(persists(&out)[..], [Persist::CurrentEpoch(2)]));
    assert!(matches!(
        &sends(&out)[..],
        [(0, Msg::AckNewLeader { epoch: 2, endorsements })] if endorsements.len() == 2
    ));
    assert_eq!(f.current_epoch(), 2);
    // Nothing is delivered before UPTODATE, bar what the leader had committed.
    assert_eq!(f.delivered(), Zxid::default());
}

/// Runs a five-server leader (id 0) through discovery and synchronization with followers 1
/// and 2 and returns it with the NEWLEADER acknowledgements still to come.
fn synced_leader(bug: Option<Bug>) -> Node {
    let disk = Durable::<Batch, ()>::default();
    let mut c = config(0, 5);
    c.bug = bug;
    let mut l = ZabNode::new(c, &disk, SimRng::new(0), Batches::default());
    start(&mut l);
    let me = l.vote();
    for p in [1, 2] {
        recv(
            &mut l,
            p,
            Msg::Notification {
                round: 1,
                vote: me,
                role: Role::Looking,
            },
        );
    }
    l.on_timer(0, FINALIZE, &mut Vec::new());
    assert_eq!(l.role(), Role::Leading);
    for p in [1, 2] {
        recv(
            &mut l,
            p,
            Msg::FollowerInfo {
                accepted_epoch: 0,
                session: 1,
            },
        );
    }
    for p in [1, 2] {
        recv(&mut l, p, ack_epoch(1, 0, (0, 0)));
    }
    l
}

#[test]
fn the_leader_proposes_nothing_until_a_quorum_acknowledged_newleader() {
    let mut l = synced_leader(None);
    assert_eq!(l.established_epoch(), None);
    let mut out = Vec::new();
    l.on_client(0, request(1), &mut out);
    l.on_timer(0, CUT, &mut out);
    assert!(
        persists(&out).is_empty() && sends(&out).is_empty(),
        "no proposal before NEWLEADER is acknowledged: {out:?}"
    );
    let out = recv(
        &mut l,
        1,
        Msg::AckNewLeader {
            epoch: 1,
            endorsements: vec![],
        },
    );
    assert!(sends(&out).is_empty(), "two of five");
    let out = recv(
        &mut l,
        2,
        Msg::AckNewLeader {
            epoch: 1,
            endorsements: vec![],
        },
    );
    assert_eq!(l.established_epoch(), Some(1));
    let up: HashSet<NodeId> = sends(&out)
        .iter()
        .filter(|(_, m)| matches!(m, Msg::UpToDate { epoch: 1, .. }))
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(up, HashSet::from([1, 2]));
    let mut out = Vec::new();
    l.on_timer(0, CUT, &mut out);
    assert!(matches!(&persists(&out)[..], [Persist::Append(t)] if t[0].zxid == Zxid::new(1, 1)));

    // The planted bug proposes at once.
    let mut b = synced_leader(Some(Bug::EarlyBroadcast));
    assert_eq!(b.established_epoch(), Some(1));
    let mut out = Vec::new();
    b.on_client(0, request(1), &mut out);
    assert!(matches!(&persists(&out)[..], [Persist::Append(_)]));
}

#[test]
fn broadcast_commits_on_a_quorum_of_acks_and_delivers_in_zxid_order() {
    let mut l = synced_leader(None);
    for p in [1, 2] {
        recv(
            &mut l,
            p,
            Msg::AckNewLeader {
                epoch: 1,
                endorsements: vec![],
            },
        );
    }
    let mut out = Vec::new();
    l.on_client(0, request(1), &mut out);
    l.on_client(0, request(2), &mut out);
    let proposals: Vec<(NodeId, Zxid)> = sends(&out)
        .iter()
        .filter_map(|(t, m)| match m {
            Msg::Proposal { txn, .. } => Some((*t, txn.zxid)),
            _ => None,
        })
        .collect();
    assert_eq!(
        proposals,
        [
            (1, Zxid::new(1, 1)),
            (2, Zxid::new(1, 1)),
            (1, Zxid::new(1, 2)),
            (2, Zxid::new(1, 2))
        ]
    );
    let ack = |z| Msg::Ack {
        epoch: 1,
        zxid: z,
        endorsement: (),
    };
    // One ACK of (1, 2) with the leader's own: two of five, nothing commits.
    assert!(
        recv(&mut l, 1, ack(Zxid::new(1, 1)))
            .iter()
            .all(|o| !matches!(o, Output::Commit(_)))
    );
    // The second follower's ACKs make a quorum for both, committed in order.
    recv(&mut l, 1, ack(Zxid::new(1, 2)));
    let out = recv(&mut l, 2, ack(Zxid::new(1, 1)));
    let delivered: Vec<Zxid> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit(d) => Some(d.txn.zxid),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [Zxid::new(1, 1)]);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Reply(r) if *r == request(1)))
    );
    let out = recv(&mut l, 2, ack(Zxid::new(1, 2)));
    assert!(sends(&out).iter().any(|(_, m)| matches!(m, Msg::Commit { zxid, cert, .. } if *zxid == Zxid::new(1, 2) && cert.len() == 3)));
    assert_eq!(l.delivered(), Zxid::new(1, 2));
}

#[test]
fn a_follower_logs_and_acks_proposals_in_order_and_delivers_on_commit() {
    let mut s = Script::new(3, |_| None);
    s.settle();
    let leader = 2;
    assert_eq!(s.node(leader).established_epoch(), Some(1));
    s.step(0, |n, out| n.on_client(0, request(7), out));
    s.settle();
    for id in 0..3 {
        assert_eq!(s.node(id).delivered(), Zxid::new(1, 1), "node {id}");
    }
    // A proposal that skips one is a broken connection: the follower looks again.
    let skip = txns(&[(1, 3)]).remove(0);
    s.step(0, |n, out| {
        n.on_message(
            0,
            leader,
            Msg::Proposal {
                epoch: 1,
                txn: skip,
            },
            out,
        );
    });
    assert_eq!(s.node(0).role(), Role::Looking);
    assert!(s.violation.is_none(), "{:?}", s.violation);
}

/// Servers stepped by hand over FIFO links (one queue, in send order), judged by the
/// observer.
struct Script {
    configs: Vec<ZabConfig>,
    nodes: Vec<Option<Node>>,
    disks: Vec<Durable<Batch, ()>>,
    queue: VecDeque<(NodeId, NodeId, M)>,
    cut: HashSet<NodeId>,
    observer: ZabObserver<Batches>,
    violation: Option<Violation>,
    now: Micros,
}

impl Script {
    fn new(n: usize, bug: impl Fn(NodeId) -> Option<Bug>) -> Self {
        let configs: Vec<ZabConfig> = (0..n)
            .map(|id| ZabConfig {
                bug: bug(id),
                commit_log: 2,
                ..config(id, n)
            })
            .collect();
        let mut s = Self {
            nodes: (0..n).map(|_| None).collect(),
            disks: vec![Durable::default(); n],
            queue: VecDeque::new(),
            cut: HashSet::new(),
            observer: ZabObserver::new(n, Zxid::default()),
            violation: None,
            now: 0,
            configs,
        };
        for id in 0..n {
            s.restart(id);
        }
        s
    }

    fn restart(&mut self, id: NodeId) {
        self.nodes[id] = Some(ZabNode::new(
            self.configs[id].clone(),
            &self.disks[id],
            SimRng::new(id as u64),
            Batches::default(),
        ));
        self.step(id, |n, out| n.start(0, out));
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes[id] = None;
        self.queue.retain(|(from, to, _)| *from != id && *to != id);
    }

    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut Node, &mut Out)) {
        let Some(node) = self.nodes[id].as_mut() else {
            return;
        };
        let mut out = Vec::new();
        input(node, &mut out);
        let now = self.now;
        let mut note = |r: Result<(), Violation>| {
            if let Err(e) = r {
                self.violation.get_or_insert(e);
            }
        };
        note(
            self.observer
                .stepped(now, id, self.nodes[id].as_ref().unwrap()),
        );
        for o in out {
            match o {
                Output::Send(to, m) if !self.cut.contains(&id) && !self.cut.contains(&to) => {
                    self.queue.push_back((id, to, m));
                }
                Output::Persist(w) => {
                    Node::persist(&mut self.disks[id], &w);
                    let r = self.observer.persisted(now, id, &w, &self.disks[id]);
                    if let Err(e) = r {
                        self.violation.get_or_insert(e);
                    }
                }
                Output::Commit(d) => {
                    let r = self.observer.committed(now, id, &d);
                    if let Err(e) = r {
                        self.violation.get_or_insert(e);
                    }
                }
                _ => {}
            }
        }
    }

    /// Delivers messages until none is left (those to crashed servers are lost), firing the
    /// election's finalize timers whenever the links fall quiet.
    fn settle(&mut self) {
        loop {
            self.settle_until(|_| false);
            let looking: Vec<NodeId> = (0..self.nodes.len())
                .filter(|id| {
                    self.nodes[*id]
                        .as_ref()
                        .is_some_and(|n| n.role() == Role::Looking)
                })
                .collect();
            for id in &looking {
                self.step(*id, |n, out| n.on_timer(0, FINALIZE, out));
            }
            if self.queue.is_empty() {
                return;
            }
        }
    }

    fn settle_until(&mut self, stop: impl Fn(&Self) -> bool) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            if self.nodes[to].is_some() {
                self.step(to, |n, out| n.on_message(0, from, m, out));
            }
            if stop(self) {
                return;
            }
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        self.nodes[id].as_ref().unwrap()
    }

    fn zxids(&self, id: NodeId) -> Vec<Zxid> {
        self.disks[id].history.iter().map(|t| t.zxid).collect()
    }

    /// Cuts `id` off from everyone; its connections break at both ends.
    fn isolate(&mut self, id: NodeId) {
        self.cut.insert(id);
        self.queue.retain(|(f, t, _)| *f != id && *t != id);
        for p in 0..self.nodes.len() {
            if p != id {
                self.step(p, |n, out| n.on_disconnect(0, id, out));
                self.step(id, |n, out| n.on_disconnect(0, p, out));
            }
        }
    }

    fn heal(&mut self, id: NodeId) {
        self.cut.remove(&id);
    }
}

#[test]
fn trunc_discards_a_proposal_only_a_minority_saw_and_it_is_never_delivered() {
    // Five servers; s4 (the highest id) leads epoch 1.
    let mut s = Script::new(5, |_| None);
    s.settle();
    assert_eq!(s.node(4).established_epoch(), Some(1));
    s.step(4, |n, out| n.on_client(0, request(1), out));
    s.settle();
    assert!(s.observer.was_delivered(Zxid::new(1, 1)));
    // The leader proposes (1, 2), which reaches only s3 before the leader crashes.
    s.step(4, |n, out| n.on_client(0, request(2), out));
    s.queue
        .retain(|(_, to, m)| *to == 3 && matches!(m, Msg::Proposal { .. }));
    s.settle();
    s.crash(4);
    assert_eq!(s.zxids(3), [Zxid::new(1, 1), Zxid::new(1, 2)]);
    // s3 is cut off while the other three elect a leader and go on: s2 leads epoch 2.
    s.isolate(3);
    for f in 0..3 {
        s.step(f, |n, out| n.on_disconnect(0, 4, out));
    }
    s.settle();
    assert_eq!(s.node(2).established_epoch(), Some(2));
    s.step(2, |n, out| n.on_client(0, request(3), out));
    s.settle();
    assert!(s.observer.was_delivered(Zxid::new(2, 1)));
    // s3 comes back: the leader truncates (1, 2) and sends (2, 1).
    s.heal(3);
    s.step(3, |n, out| n.on_timer(0, ELECTION, out));
    let mut syncs = Vec::new();
    while let Some((from, to, m)) = s.queue.pop_front() {
        if let Msg::Sync { mode, .. } = &m {
            syncs.push((to, *mode));
        }
        if s.nodes[to].is_some() {
            s.step(to, |n, out| n.on_message(0, from, m, out));
        }
    }
    assert_eq!(syncs, [(3, SyncMode::Trunc(Zxid::new(1, 1)))]);
    assert_eq!(s.zxids(3), [Zxid::new(1, 1), Zxid::new(2, 1)]);
    assert_eq!(s.node(3).delivered(), Zxid::new(2, 1));
    // The old leader restarts from its disk, still holding (1, 2): truncated too.
    assert_eq!(s.zxids(4), [Zxid::new(1, 1), Zxid::new(1, 2)]);
    s.restart(4);
    s.settle();
    assert_eq!(s.zxids(4), [Zxid::new(1, 1), Zxid::new(2, 1)]);
    assert_eq!(s.node(4).delivered(), Zxid::new(2, 1));
    // (1, 2) was delivered nowhere, and every server delivered the same sequence.
    assert!(!s.observer.was_delivered(Zxid::new(1, 2)));
    assert_eq!(s.observer.sequence(), [Zxid::new(1, 1), Zxid::new(2, 1)]);
    assert!(s.violation.is_none(), "{:?}", s.violation);
}

#[test]
fn a_proposal_a_quorum_logged_outlives_its_leader_and_every_follower_delivers_it() {
    let mut s = Script::new(5, |_| None);
    s.settle();
    s.step(4, |n, out| n.on_client(0, request(1), out));
    s.settle();
    // (1, 2) reaches every follower, but the leader crashes before any ACK arrives.
    s.step(4, |n, out| n.on_client(0, request(2), out));
    s.queue
        .retain(|(_, _, m)| matches!(m, Msg::Proposal { .. }));
    s.settle_until(|s| s.queue.iter().all(|(_, to, _)| *to == 4));
    s.crash(4);
    assert!(!s.observer.was_delivered(Zxid::new(1, 2)));
    for f in 0..4 {
        s.step(f, |n, out| n.on_disconnect(0, 4, out));
    }
    s.settle();
    // s4 leads epoch 2; its history ends with (1, 2), which it commits once a quorum has
    // acknowledged NEWLEADER; the follower that acknowledged later gets the certificate with
    // its UPTODATE.
    assert_eq!(s.node(3).established_epoch(), Some(2));
    for id in 0..4 {
        assert_eq!(s.node(id).delivered(), Zxid::new(1, 2), "node {id}");
    }
    assert_eq!(s.observer.sequence(), [Zxid::new(1, 1), Zxid::new(1, 2)]);
    assert!(s.violation.is_none(), "{:?}", s.violation);
}

#[test]
fn a_follower_beyond_the_committed_log_is_synchronized_by_snap() {
    let mut s = Script::new(3, |_| None);
    s.settle();
    s.isolate(0);
    for r in 1..=4 {
        s.step(2, |n, out| n.on_client(0, request(r), out));
        s.settle();
    }
    assert_eq!(s.node(2).delivered(), Zxid::new(1, 4));
    s.heal(0);
    s.step(0, |n, out| n.on_timer(0, ELECTION, out));
    let mut snapped = false;
    while let Some((from, to, m)) = s.queue.pop_front() {
        snapped |= matches!(
            m,
            Msg::Sync {
                mode: SyncMode::Snap,
                ..
            }
        );
        s.step(to, |n, out| n.on_message(0, from, m, out));
    }
    assert!(snapped, "four behind with a committed log of two");
    assert_eq!(s.node(0).delivered(), Zxid::new(1, 4));
    assert!(s.violation.is_none(), "{:?}", s.violation);
}

#[test]
fn the_observer_catches_a_leader_that_proposes_before_newleader_is_acknowledged() {
    let run = |bug: Option<Bug>| {
        let mut s = Script::new(3, |_| bug);
        // Stop as soon as the leader thinks it may broadcast.
        s.settle_until(|s| {
            s.node(2).established_epoch().is_some() || s.node(2).phase() == Phase::Sync
        });
        s.step(2, |n, out| {
            n.on_client(0, request(1), out);
            n.on_timer(0, CUT, out);
        });
        s.settle();
        s.violation
    };
    let v = run(Some(Bug::EarlyBroadcast)).expect("caught");
    assert_eq!(v.property, "established before broadcast", "{v}");
    assert!(run(None).is_none());
}

#[test]
fn the_planted_bug_is_caught_by_check_on_the_block_ensemble() {
    use crate::sim::cluster::CheckBounds;
    let spec = crate::chain::spec::ChainSpec::builtin("zab-demo").unwrap();
    fn early(z: &crate::zab::spec::ZabSpec, id: NodeId) -> ZabConfig {
        ZabConfig {
            bug: Some(Bug::EarlyBroadcast),
            ..crate::zab::cluster::node_config(z, id)
        }
    }
    let bounds = CheckBounds {
        faulty_s: 1.0,
        calm_s: 0.5,
        ..CheckBounds::default()
    };
    let scenario = crate::sim::scenario::Scenario {
        seed: 3,
        ..crate::sim::scenario::Scenario::default()
    };
    let outcome = crate::zab::check::check_schedule_with(&spec, &scenario, &bounds, early).unwrap();
    let v = outcome.violation.expect("caught");
    assert!(v.starts_with("established before broadcast"), "{v}");
    let fine = crate::zab::check::check_schedule(&spec, &scenario, &bounds).unwrap();
    assert_eq!(fine.violation, None);
    assert!(fine.blocks > 5, "{}", fine.blocks);
}

#[test]
fn a_silent_leader_is_left_after_sync_limit_and_a_lonely_one_steps_down() {
    let mut s = Script::new(3, |_| None);
    s.settle();
    // Followers heard their leader at 0; at syncLimit they give up on it.
    s.now = 250 * MS;
    s.step(0, |n, out| n.on_timer(250 * MS, LIMIT, out));
    assert_eq!(s.node(0).role(), Role::Looking);
    // The leader heard its followers' NEWLEADER acknowledgements in its first syncLimit,
    // then from no one in the next: it steps down.
    s.step(2, |n, out| n.on_timer(250 * MS, LIMIT, out));
    assert_eq!(s.node(2).role(), Role::Leading);
    s.step(2, |n, out| n.on_timer(500 * MS, LIMIT, out));
    assert_eq!(s.node(2).role(), Role::Looking);
}

#[test]
fn forwarded_and_retried_requests_are_delivered_once() {
    let mut s = Script::new(3, |_| None);
    s.settle();
    for node in [0, 1, 0] {
        s.step(node, |n, out| n.on_client(0, request(5), out));
        s.settle();
    }
    assert_eq!(s.observer.sequence().len(), 1);
    for id in 0..3 {
        assert_eq!(s.node(id).app().delivered, 1);
    }
    assert!(s.violation.is_none(), "{:?}", s.violation);
}

/// An engine that sends numbered messages to node 1, for the simulator's link semantics.
#[derive(Debug, Default)]
struct Counter {
    id: NodeId,
    next: u64,
    got: Vec<u64>,
    disconnects: u64,
}

#[derive(Debug, Clone)]
struct Numbered(u64);

impl crate::sim::Message for Numbered {
    fn kind(&self) -> usize {
        0
    }
    fn wire_bytes(&self) -> usize {
        8
    }
}

impl Engine for Counter {
    type Msg = Numbered;
    type Persist = ();
    type Disk = ();
    type Commit = u64;
    type Note = u8;
    const MSG_KINDS: &'static [&'static str] = &["numbered"];

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        if self.id == 0 {
            out.push(Output::Timer(0, now + 100));
        }
    }
    fn on_message(&mut self, _: Micros, _: NodeId, msg: Numbered, out: &mut Vec<Output<Self>>) {
        self.got.push(msg.0);
        out.push(Output::Commit(msg.0));
    }
    fn on_timer(&mut self, now: Micros, _: u8, out: &mut Vec<Output<Self>>) {
        self.next += 1;
        out.push(Output::Send(1, Numbered(self.next)));
        out.push(Output::Timer(0, now + 100));
    }
    fn on_client(&mut self, _: Micros, _: Request, _: &mut Vec<Output<Self>>) {}
    fn is_leader(&self) -> bool {
        false
    }
    fn persist((): &mut (), (): &()) {}
    fn on_disconnect(&mut self, _: Micros, _: NodeId, _: &mut Vec<Output<Self>>) {
        self.disconnects += 1;
    }
}

struct Order(Vec<u64>);

impl Observer<Counter> for Order {
    fn stepped(&mut self, _: Micros, _: NodeId, _: &Counter) -> Result<(), Violation> {
        Ok(())
    }
    fn persisted(&mut self, _: Micros, _: NodeId, (): &(), (): &()) -> Result<(), Violation> {
        Ok(())
    }
    fn committed(&mut self, _: Micros, _: NodeId, n: &u64) -> Result<(), Violation> {
        self.0.push(*n);
        Ok(())
    }
}

struct NoHost;

impl crate::sim::Host<Counter> for NoHost {
    fn commit(&mut self, _: Micros, _: NodeId, _: &u64) {}
    fn note(&mut self, _: Micros, _: NodeId, _: u8) {}
}

fn counter_run(
    fifo: bool,
    net: crate::sim::NetModel,
    faults: crate::sim::Faults,
) -> (Vec<u64>, u64) {
    let boot = Box::new(|id: NodeId, (): &(), _: SimRng| Counter {
        id,
        ..Counter::default()
    });
    let mut sim = crate::sim::Simulator::new(2, 7, net, faults, &(), boot);
    if fifo {
        sim.fifo_links();
    }
    let mut order = Order(Vec::new());
    sim.start(&mut order, &mut NoHost);
    sim.run_until(200 * MS, &mut order, &mut NoHost, &mut |_| false);
    let d = sim.engine(0).unwrap().disconnects + sim.engine(1).unwrap().disconnects;
    (order.0, d)
}

#[test]
fn fifo_links_deliver_in_send_order_retransmit_losses_and_report_broken_connections() {
    let net = crate::sim::NetModel {
        delay_ms: (1.0, 10.0),
        drop: 0.1,
        duplicate: 0.1,
        persist_ms: 0.0,
    };
    // Datagrams: reordered, lost and duplicated.
    let (plain, d) = counter_run(false, net, crate::sim::Faults::default());
    assert!(
        plain.windows(2).any(|w| w[0] >= w[1]),
        "jitter reorders datagrams"
    );
    assert_eq!(d, 0);
    // FIFO: every message, once, in order (losses are retransmitted).
    let (fifo, d) = counter_run(true, net, crate::sim::Faults::default());
    assert_eq!(d, 0);
    assert_eq!(fifo, (1..=fifo.len() as u64).collect::<Vec<_>>());
    assert!(fifo.len() > 1000, "{}", fifo.len());
    // A cut breaks the connection: both ends hear of it, what was sent meanwhile is lost,
    // and what follows the new connection arrives in order.
    let faults = crate::sim::Faults {
        cuts: vec![crate::sim::LinkCut {
            from: 0,
            to: 1,
            start: 50 * MS,
            end: 60 * MS,
        }],
        ..crate::sim::Faults::default()
    };
    let (cut, d) = counter_run(true, crate::sim::NetModel { drop: 0.0, ..net }, faults);
    assert!(d >= 2, "{d}");
    assert!(cut.windows(2).all(|w| w[0] < w[1]), "still in order");
    let gap = cut.windows(2).filter(|w| w[1] != w[0] + 1).count();
    assert!(
        gap >= 1,
        "the messages sent while the link was cut are lost"
    );
}

mod chain {
    use crate::chain::record::BlockRecord;
    use crate::chain::spec::ChainSpec;
    use crate::chain::state::ChainState;
    use crate::primitives::hash::BlockHash;
    use crate::primitives::seal::QuorumSignature;
    use crate::primitives::tx::{KeyPair, Transaction};
    use crate::sim::cluster::genesis_state;
    use crate::zab::cluster::mine_cluster;
    use crate::zab::engine::Zxid;
    use crate::zab::rule::sign_ack;

    fn key(spec: &ChainSpec, name: &str) -> KeyPair {
        KeyPair::derive(&spec.wallet_seed, name)
    }

    /// The first `n` blocks a fault-free zab-demo ensemble delivers at its first server.
    fn blocks(spec: &ChainSpec, n: usize) -> Vec<BlockRecord> {
        let genesis = genesis_state(spec).unwrap();
        let mut cluster = mine_cluster(
            spec,
            &genesis,
            spec.genesis.time,
            crate::sim::Faults {
                load_tps: 20.0,
                ..crate::sim::Faults::default()
            },
        );
        cluster.follow_first_correct();
        let mut out = Vec::new();
        while out.len() < n {
            assert!(cluster.run_until(cluster.now() + 10 * crate::sim::MS));
            while let Some(b) = cluster.next_followed_block() {
                out.push(b);
            }
        }
        out.truncate(n);
        out
    }

    fn connect(state: &mut ChainState, record: BlockRecord) -> Result<(), String> {
        let time = record.time;
        let checked = state.check(record).map_err(|e| e.to_string())?;
        state.connect(&checked, time).map_err(|e| e.to_string())
    }

    /// `record` with its `zab` transaction's zxid set to `zxid`, its hash recomputed, and
    /// signed by `signers`.
    fn resealed(
        spec: &ChainSpec,
        record: &BlockRecord,
        zxid: Zxid,
        signers: &[&str],
    ) -> BlockRecord {
        let mut block = record.to_block();
        if let Some(Transaction::Zab { epoch, counter, .. }) = block.txs.get_mut(1) {
            (*epoch, *counter) = (zxid.epoch, zxid.counter);
        }
        block.header.merkle_root = block.compute_merkle_root().root;
        let mut out = BlockRecord::new(record.height, &block, None);
        let mut cert = record.certificate.clone().unwrap();
        cert.signatures = signers
            .iter()
            .map(|s| sign_ack(&key(spec, s), zxid, out.hash))
            .collect();
        out.certificate = Some(cert);
        out
    }

    #[test]
    fn verify_rejects_bad_certificates_and_zxids_that_do_not_rise() {
        let spec = ChainSpec::builtin("zab-demo").unwrap();
        let chain = blocks(&spec, 3);
        let mut state = genesis_state(&spec).unwrap();
        for b in &chain[..2] {
            connect(&mut state, b.clone()).unwrap();
        }
        let good = chain[2].clone();
        let zxid = crate::zab::cluster::seal_of(&good).unwrap().1;
        let leader_name = spec
            .section::<crate::zab::spec::ZabSpec>()
            .unwrap()
            .members
            .iter()
            .find(|m| key(&spec, m).pubkey() == crate::zab::cluster::seal_of(&good).unwrap().0)
            .unwrap()
            .clone();
        let others: Vec<&str> = ["s1", "s2", "s3", "s4", "s5"]
            .into_iter()
            .filter(|m| *m != leader_name)
            .collect();
        let certificate = good.certificate.clone().unwrap();
        assert!(certificate.signatures.len() >= 3);
        assert!(
            certificate
                .signatures
                .iter()
                .any(|s| s.signer == key(&spec, &leader_name).pubkey()),
            "the leader signs its own blocks"
        );
        let with = |sigs: Vec<QuorumSignature>| {
            let mut r = good.clone();
            r.certificate.as_mut().unwrap().signatures = sigs;
            r
        };
        let leader_sig = sign_ack(&key(&spec, &leader_name), zxid, good.hash);
        let sig = |name: &str| sign_ack(&key(&spec, name), zxid, good.hash);
        let cases: Vec<(BlockRecord, &str)> = vec![
            (
                with(vec![leader_sig, sig(others[0])]),
                "2 signatures; 3 are needed",
            ),
            (
                with(vec![leader_sig, sig(others[0]), sig(others[0])]),
                "signed twice",
            ),
            (
                with(vec![leader_sig, sig(others[0]), sig("mallory")]),
                "is not a member",
            ),
            (
                with(vec![
                    leader_sig,
                    sig(others[0]),
                    sign_ack(
                        &key(&spec, others[1]),
                        zxid,
                        BlockHash::from_byte_array([9; 32]),
                    ),
                ]),
                "signature over the ack (zxid, block hash)",
            ),
            (
                with(vec![
                    leader_sig,
                    sig(others[0]),
                    sign_ack(
                        &key(&spec, others[1]),
                        Zxid::new(zxid.epoch, zxid.counter + 1),
                        good.hash,
                    ),
                ]),
                "signature over the ack (zxid, block hash)",
            ),
            (
                with(vec![sig(others[0]), sig(others[1]), sig(others[2])]),
                "lacks the leader's signature",
            ),
            (
                resealed(
                    &spec,
                    &good,
                    Zxid::new(zxid.epoch, zxid.counter - 1),
                    &[&leader_name, others[0], others[1]],
                ),
                "does not follow the previous block's zxid",
            ),
            (
                resealed(
                    &spec,
                    &good,
                    Zxid::new(zxid.epoch, zxid.counter + 1),
                    &[&leader_name, others[0], others[1]],
                ),
                "does not follow the previous block's zxid",
            ),
        ];
        for (record, why) in cases {
            let err = connect(&mut state.clone(), record).unwrap_err();
            assert!(err.contains(why), "{why}: {err}");
        }
        // A new epoch starts from counter 1, and a quorum with its leader certifies it.
        let next = resealed(
            &spec,
            &good,
            Zxid::new(zxid.epoch + 1, 1),
            &[&leader_name, others[0], others[1]],
        );
        connect(&mut state.clone(), next).unwrap();
        connect(&mut state, good).unwrap();
    }
}
