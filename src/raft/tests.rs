//! Step-level tests of the Raft engine, after the scenarios of etcd-raft's `raft_paper_test.go`
//! (which follow the paper's §5): one input at a time, the outputs checked.

use std::sync::Arc;

use crate::raft::batches::{Batch, Batches};
use crate::raft::engine::{Durable, Entry, Msg, Persist, RaftConfig, RaftNode, Role};
use crate::sim::{Engine, MS, Micros, NodeId, Output, Request, SimRng};

type Node = RaftNode<Batches>;
type Out = Vec<Output<Node>>;

fn config(id: NodeId, members: usize) -> RaftConfig {
    RaftConfig {
        id,
        members,
        election: (150 * MS, 300 * MS),
        heartbeat: 50 * MS,
        cut_interval: 20 * MS,
        max_batch: 100,
        max_append: crate::raft::engine::MAX_APPEND,
        pre_vote: false,
        check_quorum: false,
        bug: None,
    }
}

fn entries(terms: &[u64]) -> Vec<Arc<Entry<Batch>>> {
    terms
        .iter()
        .enumerate()
        .map(|(i, t)| {
            Arc::new(Entry {
                term: *t,
                index: i as u64 + 1,
                command: Some(Batch(vec![Request {
                    client: 0,
                    serial: i as u64,
                }])),
            })
        })
        .collect()
}

fn node_with(id: NodeId, members: usize, term: u64, log: &[u64]) -> Node {
    let disk = Durable {
        term,
        voted_for: None,
        base: (0, 0),
        log: entries(log),
    };
    RaftNode::new(
        config(id, members),
        &disk,
        SimRng::new(id as u64),
        Batches::default(),
    )
}

fn node(id: NodeId, members: usize) -> Node {
    node_with(id, members, 0, &[])
}

fn sends(out: &Out) -> Vec<(NodeId, Msg<Batch>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, m) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn recv(n: &mut Node, from: NodeId, msg: Msg<Batch>) -> Out {
    let mut out = Vec::new();
    n.on_message(0, from, msg, &mut out);
    out
}

fn timeout(n: &mut Node, id: u8) -> Out {
    let mut out = Vec::new();
    n.on_timer(0, id, &mut out);
    out
}

/// Elects node 0 of `members` in term 1 and returns it with its outputs cleared.
fn leader(members: usize) -> Node {
    let mut n = node(0, members);
    timeout(&mut n, 0);
    for p in 1..members / 2 + 1 {
        recv(&mut n, p, vote_reply(1, true));
    }
    assert_eq!(n.role(), Role::Leader);
    n
}

fn vote_reply(term: u64, granted: bool) -> Msg<Batch> {
    Msg::VoteReply {
        pre: false,
        term,
        granted,
    }
}

fn append(term: u64, prev: (u64, u64), log: &[Arc<Entry<Batch>>], commit: u64) -> Msg<Batch> {
    Msg::Append {
        term,
        prev_index: prev.0,
        prev_term: prev.1,
        entries: log.to_vec(),
        commit,
    }
}

fn log_terms(n: &Node) -> Vec<u64> {
    (1..=n.last_index())
        .map(|i| n.entry(i).unwrap().term)
        .collect()
}

#[test]
fn a_node_starts_as_a_follower_and_arms_a_randomized_election_timer() {
    let mut seen = std::collections::HashSet::new();
    for id in 0..5 {
        let mut n = node(id, 5);
        assert_eq!(n.role(), Role::Follower);
        assert_eq!(n.term(), 0);
        let mut out = Vec::new();
        n.start(1_000, &mut out);
        let at: Vec<Micros> = out
            .iter()
            .filter_map(|o| match o {
                Output::Timer(0, at) => Some(*at),
                _ => None,
            })
            .collect();
        assert_eq!(at.len(), 1);
        assert!(
            (1_000 + 150 * MS..=1_000 + 300 * MS).contains(&at[0]),
            "{at:?}"
        );
        seen.insert(at[0]);
    }
    assert!(seen.len() > 1, "every node drew the same timeout");
}

#[test]
fn any_message_of_a_later_term_makes_a_node_follow_in_that_term() {
    for role in [Role::Follower, Role::Candidate, Role::Leader] {
        let mut n = match role {
            Role::Leader => leader(3),
            Role::Candidate => {
                let mut n = node(0, 3);
                timeout(&mut n, 0);
                n
            }
            _ => node(0, 3),
        };
        assert_eq!(n.role(), role);
        let out = recv(&mut n, 1, append(5, (0, 0), &[], 0));
        assert_eq!((n.role(), n.term()), (Role::Follower, 5), "{role:?}");
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Persist(Persist::Hard {
                term: 5,
                voted_for: None
            })
        )));
    }
}

#[test]
fn a_stale_term_is_refused_with_the_current_term() {
    let mut n = node_with(0, 3, 3, &[]);
    let out = recv(&mut n, 1, append(2, (0, 0), &[], 0));
    assert_eq!(n.term(), 3);
    match &sends(&out)[..] {
        [
            (
                1,
                Msg::AppendReply {
                    term: 3,
                    success: false,
                    ..
                },
            ),
        ] => {}
        other => panic!("{other:?}"),
    }
    let out = recv(
        &mut n,
        2,
        Msg::Vote {
            pre: false,
            term: 2,
            last_index: 9,
            last_term: 2,
        },
    );
    assert!(matches!(
        &sends(&out)[..],
        [(
            2,
            Msg::VoteReply {
                term: 3,
                granted: false,
                ..
            }
        )]
    ));
}

#[test]
fn a_follower_that_times_out_campaigns_for_the_next_term() {
    let mut n = node_with(0, 3, 1, &[1, 1]);
    let out = timeout(&mut n, 0);
    assert_eq!(
        (n.role(), n.term(), n.voted_for()),
        (Role::Candidate, 2, Some(0))
    );
    // Its term and vote reach the disk before it asks anyone.
    assert!(matches!(
        out.iter().find(|o| matches!(o, Output::Persist(_))),
        Some(Output::Persist(Persist::Hard {
            term: 2,
            voted_for: Some(0)
        }))
    ));
    let asks = sends(&out);
    assert_eq!(asks.len(), 2);
    for (to, m) in asks {
        assert!(to == 1 || to == 2);
        assert!(matches!(
            m,
            Msg::Vote {
                pre: false,
                term: 2,
                last_index: 2,
                last_term: 1
            }
        ));
    }
}

#[test]
fn an_election_is_won_by_a_majority_and_lost_to_one_in_one_round() {
    // (cluster size, grants from others, refusals from others, resulting role), after etcd's
    // TestLeaderElectionInOneRoundRPC.
    let cases = [
        (1, 0, 0, Role::Leader),
        (3, 1, 0, Role::Leader),
        (3, 2, 0, Role::Leader),
        (5, 2, 0, Role::Leader),
        (5, 4, 0, Role::Leader),
        (3, 0, 0, Role::Candidate),
        (5, 1, 0, Role::Candidate),
        (3, 0, 2, Role::Follower),
        (5, 1, 3, Role::Follower),
        (5, 1, 2, Role::Candidate),
    ];
    for (size, grants, refusals, expected) in cases {
        let mut n = node(0, size);
        timeout(&mut n, 0);
        let mut from = 1;
        for _ in 0..grants {
            recv(&mut n, from, vote_reply(1, true));
            from += 1;
        }
        for _ in 0..refusals {
            recv(&mut n, from, vote_reply(1, false));
            from += 1;
        }
        assert_eq!(
            n.role(),
            expected,
            "size {size}, {grants} grants, {refusals} refusals"
        );
        assert_eq!(n.term(), 1);
    }
}

#[test]
fn a_follower_votes_once_per_term() {
    // (voted for, candidate, granted), after etcd's TestFollowerVote.
    let cases = [
        (None, 1, true),
        (None, 2, true),
        (Some(1), 1, true),
        (Some(2), 2, true),
        (Some(1), 2, false),
        (Some(2), 1, false),
    ];
    for (voted, candidate, granted) in cases {
        let disk = Durable {
            term: 1,
            voted_for: voted,
            base: (0, 0),
            log: Vec::new(),
        };
        let mut n = RaftNode::new(config(0, 3), &disk, SimRng::new(1), Batches::default());
        let out = recv(
            &mut n,
            candidate,
            Msg::Vote {
                pre: false,
                term: 1,
                last_index: 0,
                last_term: 0,
            },
        );
        match &sends(&out)[..] {
            [(to, Msg::VoteReply { granted: g, .. })] => {
                assert_eq!((*to, *g), (candidate, granted), "{voted:?} {candidate}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn votes_go_only_to_logs_at_least_as_up_to_date() {
    // The voter's log is terms [1, 1]; (candidate's last term, last index, granted), after
    // etcd's TestVoter.
    let cases = [
        (1, 1, false),
        (1, 2, true),
        (1, 3, true),
        (0, 5, false),
        (2, 1, true),
        (2, 2, true),
        (2, 3, true),
    ];
    for (last_term, last_index, granted) in cases {
        let mut n = node_with(0, 3, 2, &[1, 1]);
        let out = recv(
            &mut n,
            1,
            Msg::Vote {
                pre: false,
                term: 3,
                last_index,
                last_term,
            },
        );
        assert!(
            matches!(&sends(&out)[..], [(1, Msg::VoteReply { granted: g, .. })] if *g == granted),
            "last term {last_term}, index {last_index}"
        );
    }
}

#[test]
fn a_candidate_falls_back_when_a_leader_of_its_term_appears() {
    for term in [1, 2] {
        let mut n = node(0, 3);
        timeout(&mut n, 0);
        recv(&mut n, 2, append(term, (0, 0), &[], 0));
        assert_eq!(
            (n.role(), n.term(), n.leader()),
            (Role::Follower, term, Some(2))
        );
    }
}

#[test]
fn a_new_leader_appends_a_no_op_of_its_term_and_replicates_it() {
    let mut n = node_with(0, 3, 1, &[1]);
    timeout(&mut n, 0);
    let out = recv(&mut n, 1, vote_reply(2, true));
    assert_eq!(n.role(), Role::Leader);
    let no_op = n.entry(2).unwrap();
    assert_eq!((no_op.term, no_op.command.is_none()), (2, true));
    let appends = sends(&out);
    assert_eq!(appends.len(), 2);
    for (_, m) in appends {
        match m {
            Msg::Append {
                term: 2,
                prev_index: 1,
                prev_term: 1,
                entries,
                commit: 0,
            } => assert_eq!(entries.len(), 1),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_leader_replicates_client_requests_and_commits_on_a_majority() {
    let mut n = leader(3);
    let mut out = Vec::new();
    n.on_client(
        0,
        Request {
            client: 7,
            serial: 1,
        },
        &mut out,
    );
    let out = timeout(&mut n, 2);
    assert_eq!(n.last_index(), 2, "the no-op, then the batch");
    assert_eq!(sends(&out).len(), 2);
    assert_eq!(n.commit_index(), 0);
    // One follower (a majority with the leader) stores both entries.
    let out = recv(
        &mut n,
        1,
        Msg::AppendReply {
            term: 1,
            success: true,
            index: 2,
        },
    );
    assert_eq!(n.commit_index(), 2);
    let committed: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Commit(e) => Some(e.index),
            _ => None,
        })
        .collect();
    assert_eq!(committed, [1, 2]);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Reply(Request {
            client: 7,
            serial: 1
        })
    )));
    // The next heartbeat carries the commit index.
    let out = timeout(&mut n, 1);
    assert!(
        sends(&out)
            .iter()
            .all(|(_, m)| matches!(m, Msg::Append { commit: 2, .. }))
    );
}

#[test]
fn a_leader_commits_only_with_acknowledgements_from_a_majority() {
    // (cluster size, followers acknowledging, committed), after etcd's
    // TestLeaderAcknowledgeCommit.
    for (size, acks, committed) in [
        (1, 0, true),
        (3, 0, false),
        (3, 1, true),
        (5, 1, false),
        (5, 2, true),
        (5, 4, true),
    ] {
        let mut n = leader(size);
        for p in 1..=acks {
            recv(
                &mut n,
                p,
                Msg::AppendReply {
                    term: 1,
                    success: true,
                    index: 1,
                },
            );
        }
        assert_eq!(n.commit_index() == 1, committed, "size {size}, acks {acks}");
    }
}

#[test]
fn entries_of_earlier_terms_commit_only_with_one_of_the_current_term() {
    // The leader of term 3 holds [1, 2] from earlier terms plus its no-op at index 3; a
    // majority storing index 2 commits nothing (Figure 8), storing index 3 commits all.
    let mut n = node_with(0, 3, 2, &[1, 2]);
    timeout(&mut n, 0);
    recv(&mut n, 1, vote_reply(3, true));
    assert_eq!((n.role(), n.last_index()), (Role::Leader, 3));
    recv(
        &mut n,
        1,
        Msg::AppendReply {
            term: 3,
            success: true,
            index: 2,
        },
    );
    assert_eq!(
        n.commit_index(),
        0,
        "an old-term entry was committed by counting replicas"
    );
    recv(
        &mut n,
        1,
        Msg::AppendReply {
            term: 3,
            success: true,
            index: 3,
        },
    );
    assert_eq!(n.commit_index(), 3);
}

#[test]
fn a_follower_checks_the_previous_entry_and_hints_where_to_retry() {
    // The follower's log is terms [1, 2] (etcd's TestFollowerCheckMsgApp): (prev term, prev
    // index, success, hint).
    let cases = [
        (0, 0, true, 0),
        (1, 1, true, 1),
        (2, 2, true, 2),
        (1, 2, false, 2),
        (3, 3, false, 3),
    ];
    for (prev_term, prev_index, success, index) in cases {
        let mut n = node_with(0, 3, 2, &[1, 2]);
        let out = recv(&mut n, 1, append(2, (prev_index, prev_term), &[], 0));
        match &sends(&out)[..] {
            [
                (
                    1,
                    Msg::AppendReply {
                        success: s,
                        index: i,
                        ..
                    },
                ),
            ] => {
                assert_eq!((*s, *i), (success, index), "prev {prev_index}/{prev_term}");
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_follower_deletes_a_conflicting_entry_and_all_after_it() {
    // The follower's log is terms [1, 2]; (prev index, prev term, new entries' terms from
    // prev+1, resulting log), after etcd's TestFollowerAppendEntries.
    let cases: [(u64, u64, &[u64], &[u64]); 4] = [
        (2, 2, &[3], &[1, 2, 3]),
        (1, 1, &[3, 4], &[1, 3, 4]),
        (0, 0, &[1], &[1, 2]),
        (0, 0, &[3], &[3]),
    ];
    for (prev_index, prev_term, new, want) in cases {
        let mut n = node_with(0, 3, 2, &[1, 2]);
        let sent: Vec<Arc<Entry<Batch>>> = new
            .iter()
            .enumerate()
            .map(|(i, t)| {
                Arc::new(Entry {
                    term: *t,
                    index: prev_index + 1 + i as u64,
                    command: None,
                })
            })
            .collect();
        let out = recv(&mut n, 1, append(4, (prev_index, prev_term), &sent, 0));
        assert_eq!(log_terms(&n), want, "prev {prev_index}");
        let truncated = out
            .iter()
            .any(|o| matches!(o, Output::Persist(Persist::Truncate(_))));
        assert_eq!(
            truncated,
            want.len() < 2 || want[1] != 2,
            "prev {prev_index}"
        );
    }
}

#[test]
fn a_follower_commits_what_the_leader_committed_up_to_its_last_new_entry() {
    let mut n = node(0, 3);
    let log = entries(&[1, 1, 1]);
    let out = recv(&mut n, 1, append(1, (0, 0), &log[..2], 3));
    // The leader's commit index is 3, but only 2 entries are known to match.
    assert_eq!(n.commit_index(), 2);
    assert_eq!(
        out.iter()
            .filter(|o| matches!(o, Output::Commit(_)))
            .count(),
        2
    );
}

/// Passes messages between a leader and one follower (and a silent third member) until
/// neither has anything to say; returns the follower.
fn sync(mut leader: Node, mut follower: Node) -> (Node, Node) {
    let mut queue: Vec<(NodeId, NodeId, Msg<Batch>)> = Vec::new();
    let mut out = Vec::new();
    leader.on_timer(0, 1, &mut out);
    for (to, m) in sends(&out) {
        queue.push((0, to, m));
    }
    let mut steps = 0;
    while let Some((from, to, m)) = queue.pop() {
        steps += 1;
        assert!(steps < 1_000, "no convergence");
        let target = match to {
            0 => &mut leader,
            1 => &mut follower,
            _ => continue,
        };
        let mut out = Vec::new();
        target.on_message(0, from, m, &mut out);
        for (next, m) in sends(&out) {
            queue.push((to, next, m));
        }
    }
    (leader, follower)
}

#[test]
fn a_leader_brings_each_figure_7_follower_log_to_its_own() {
    // Raft paper Figure 7: the leader of term 8 holds terms
    // [1,1,1,4,4,5,5,6,6,6]; followers (a)–(f) hold the logs below.
    let leader_log = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    let followers: [&[u64]; 6] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],
        &[1, 1, 1, 4],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
        &[1, 1, 1, 4, 4, 4, 4],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    ];
    for (i, f) in followers.iter().enumerate() {
        let mut l = node_with(0, 3, 7, &leader_log);
        timeout(&mut l, 0);
        recv(&mut l, 2, vote_reply(8, true));
        assert_eq!(l.role(), Role::Leader);
        let follower = node_with(1, 3, 7, f);
        let (l, follower) = sync(l, follower);
        let mut want = leader_log.to_vec();
        want.push(8);
        assert_eq!(
            log_terms(&follower),
            want,
            "follower ({})",
            (b'a' + i as u8) as char
        );
        assert_eq!(log_terms(&l), want);
        assert_eq!(
            l.commit_index(),
            11,
            "the no-op of term 8 commits with the follower"
        );
    }
}

#[test]
fn pre_vote_leaves_terms_alone_and_check_quorum_steps_a_lonely_leader_down() {
    let mut c = config(0, 3);
    c.pre_vote = true;
    let mut n = RaftNode::new(c, &Durable::default(), SimRng::new(3), Batches::default());
    let out = timeout(&mut n, 0);
    assert_eq!((n.role(), n.term()), (Role::PreCandidate, 0));
    assert!(sends(&out).iter().all(|(_, m)| matches!(
        m,
        Msg::Vote {
            pre: true,
            term: 1,
            ..
        }
    )));
    recv(
        &mut n,
        1,
        Msg::VoteReply {
            pre: true,
            term: 1,
            granted: true,
        },
    );
    assert_eq!((n.role(), n.term()), (Role::Candidate, 1));

    let mut c = config(0, 3);
    c.check_quorum = true;
    let mut n = RaftNode::new(c, &Durable::default(), SimRng::new(3), Batches::default());
    timeout(&mut n, 0);
    recv(&mut n, 1, vote_reply(1, true));
    assert_eq!(n.role(), Role::Leader);
    // No follower answers within an election timeout.
    timeout(&mut n, 3);
    assert_eq!(n.role(), Role::Follower);
}

#[test]
fn a_follower_in_a_lease_ignores_a_disruptive_candidate() {
    let mut c = config(0, 3);
    c.check_quorum = true;
    let mut n = RaftNode::new(c, &Durable::default(), SimRng::new(3), Batches::default());
    let mut out = Vec::new();
    n.on_message(1_000, 1, append(1, (0, 0), &[], 0), &mut out);
    out.clear();
    n.on_message(
        2_000,
        2,
        Msg::Vote {
            pre: false,
            term: 9,
            last_index: 5,
            last_term: 5,
        },
        &mut out,
    );
    assert_eq!(
        n.term(),
        1,
        "a rejoining node with a high term disrupted a live leader"
    );
    assert!(sends(&out).is_empty());
}

#[test]
fn forwarded_and_retried_requests_are_applied_once() {
    let mut f = node(1, 3);
    recv(&mut f, 0, append(1, (0, 0), &[], 0));
    let mut out = Vec::new();
    let r = Request {
        client: 3,
        serial: 9,
    };
    f.on_client(0, r, &mut out);
    match &sends(&out)[..] {
        [(0, Msg::Forward(reqs))] => assert_eq!(reqs, &vec![r]),
        other => panic!("a follower must forward to its leader: {other:?}"),
    }
    let mut l = leader(3);
    let mut out = Vec::new();
    l.on_client(0, r, &mut out);
    l.on_client(0, r, &mut out);
    timeout(&mut l, 2);
    l.on_client(0, r, &mut out);
    timeout(&mut l, 2);
    assert_eq!(l.last_index(), 2, "a retried request was cut twice");
}

/// A hand-driven network of engines for scripted schedules: messages delivered in order,
/// timers fired by the script, writes applied at once, and every step, write and commit shown
/// to the safety observer.
struct Script {
    configs: Vec<RaftConfig>,
    nodes: Vec<Option<Node>>,
    disks: Vec<Durable<Batch>>,
    queue: std::collections::VecDeque<(NodeId, NodeId, Msg<Batch>)>,
    cut: std::collections::HashSet<(NodeId, NodeId)>,
    observer: crate::raft::observer::RaftObserver<Batches>,
    violation: Option<crate::sim::Violation>,
}

impl Script {
    fn new(configs: Vec<RaftConfig>) -> Self {
        let n = configs.len();
        let mut s = Self {
            nodes: (0..n).map(|_| None).collect(),
            disks: vec![Durable::default(); n],
            queue: std::collections::VecDeque::new(),
            cut: std::collections::HashSet::new(),
            observer: crate::raft::observer::RaftObserver::new(n, 0),
            violation: None,
            configs,
        };
        for id in 0..n {
            s.restart(id);
        }
        s
    }

    fn restart(&mut self, id: NodeId) {
        let node = RaftNode::new(
            self.configs[id].clone(),
            &self.disks[id],
            SimRng::new(id as u64),
            Batches::default(),
        );
        self.nodes[id] = Some(node);
    }

    fn crash(&mut self, id: NodeId) {
        self.nodes[id] = None;
        self.queue.retain(|(from, _, _)| *from != id);
    }

    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut Node, &mut Out)) {
        use crate::sim::Observer;
        let Some(node) = self.nodes[id].as_mut() else {
            return;
        };
        let mut out = Vec::new();
        input(node, &mut out);
        let check = |v: &mut Option<crate::sim::Violation>,
                     r: Result<(), crate::sim::Violation>| {
            if let Err(e) = r {
                v.get_or_insert(e);
            }
        };
        let r = self
            .observer
            .stepped(0, id, self.nodes[id].as_ref().unwrap());
        check(&mut self.violation, r);
        for o in out {
            match o {
                Output::Send(to, m) if !self.cut.contains(&(id, to)) => {
                    self.queue.push_back((id, to, m))
                }
                Output::Persist(w) => {
                    Node::persist(&mut self.disks[id], &w);
                    let r = self.observer.persisted(0, id, &w, &self.disks[id]);
                    check(&mut self.violation, r);
                }
                Output::Commit(e) => {
                    let r = self.observer.committed(0, id, &e);
                    check(&mut self.violation, r);
                }
                _ => {}
            }
        }
    }

    fn timeout(&mut self, id: NodeId, timer: u8) {
        self.step(id, |n, out| n.on_timer(0, timer, out));
    }

    /// Delivers messages until none is left (those to crashed nodes are lost).
    fn settle(&mut self) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            if self.nodes[to].is_some() {
                self.step(to, |n, out| n.on_message(0, from, m, out));
            }
        }
    }

    /// Delivers messages until `stop` holds after a delivery.
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

    fn isolate(&mut self, id: NodeId, from: &[NodeId]) {
        for p in from {
            self.cut.insert((id, *p));
            self.cut.insert((*p, id));
        }
    }
}

/// Raft paper Figure 8 on five servers S1–S5 (ids 0–4), one entry per message. Returns the
/// observer's verdict.
fn figure_8(bug: Option<crate::raft::engine::Bug>) -> Option<crate::sim::Violation> {
    let configs = (0..5)
        .map(|id| RaftConfig {
            max_append: 1,
            bug,
            ..config(id, 5)
        })
        .collect();
    let mut s = Script::new(configs);
    // S1 leads term 1; its no-op (index 1) commits everywhere.
    s.timeout(0, 0);
    s.settle();
    assert_eq!(s.node(0).role(), Role::Leader);
    s.timeout(0, 1);
    s.settle();
    // (a) S1 appends index 2 (term 1), which reaches S2 only.
    s.isolate(0, &[2, 3, 4]);
    s.step(0, |n, out| {
        n.on_client(
            0,
            Request {
                client: 1,
                serial: 1,
            },
            out,
        )
    });
    s.timeout(0, 2);
    s.settle();
    assert_eq!(log_terms(s.node(1)), [1, 1]);
    // (b) S1 crashes; S5 is elected in term 2 by S3, S4 and itself, and appends its no-op at
    // index 2, which reaches no one.
    s.crash(0);
    s.cut.clear();
    s.isolate(1, &[4]);
    s.timeout(4, 0);
    s.isolate(4, &[0, 1, 2, 3]);
    s.cut.remove(&(2, 4));
    s.cut.remove(&(3, 4));
    s.cut.remove(&(4, 2));
    s.cut.remove(&(4, 3));
    s.settle_until(|s| s.node(4).role() == Role::Leader);
    assert_eq!((s.node(4).role(), s.node(4).term()), (Role::Leader, 2));
    s.queue.clear();
    assert_eq!(log_terms(s.node(4)), [1, 2]);
    // (c) S5 crashes; S1 restarts and is elected in term 3 (S2, S3, S4 vote); it sends index 2
    // (term 1) to S3 one entry at a time. S2 and S3 store it: a majority, of an old term.
    s.crash(4);
    s.cut.clear();
    s.restart(0);
    s.timeout(0, 0);
    s.settle();
    if s.node(0).role() != Role::Leader {
        s.timeout(0, 0);
        s.settle_until(|s| s.node(0).role() == Role::Leader);
    }
    assert_eq!((s.node(0).role(), s.node(0).term()), (Role::Leader, 3));
    // Only S2 and S3 hear from S1 from here (S2 stores the no-op of term 3 at index 3), and S1
    // crashes as soon as it hears that S3 stores index 2.
    s.queue
        .retain(|(from, to, _)| *from != 0 || *to == 1 || *to == 2);
    s.isolate(0, &[3, 4]);
    s.settle_until(|s| s.node(2).last_index() >= 2);
    s.settle_until(|s| s.queue.iter().all(|(from, _, _)| *from != 2));
    s.crash(0);
    s.cut.clear();
    // (d) S5 restarts and is elected in term 4 by S3 and S4 (its last term 2 beats their logs),
    // overwriting index 2.
    s.restart(4);
    for _ in 0..3 {
        if s.node(4).role() == Role::Leader {
            break;
        }
        s.timeout(4, 0);
        s.settle_until(|s| s.node(4).role() == Role::Leader);
    }
    assert_eq!(s.node(4).role(), Role::Leader);
    s.settle();
    s.violation
}

#[test]
fn the_observer_catches_figure_8_commits_of_an_old_term_entry() {
    let v =
        figure_8(Some(crate::raft::engine::Bug::CommitOldTerm)).expect("the observer missed it");
    assert_eq!(v.property, "leader completeness", "{v}");
    assert_eq!(v.nodes, [4], "{v}");
    // The same schedule with the paper's rule: index 2 was never committed, so S5 may
    // overwrite it.
    assert_eq!(figure_8(None), None);
}

mod cluster {
    use crate::ChainSpec;
    use crate::raft::check::check_schedule_with;
    use crate::raft::cluster::node_config;
    use crate::raft::engine::{Bug, RaftConfig};
    use crate::raft::spec::RaftSpec;
    use crate::sim::cluster::CheckBounds;
    use crate::sim::scenario::{Scenario, push_crash};
    use crate::sim::{NodeId, SimRng};

    fn forget_vote(r: &RaftSpec, id: NodeId) -> RaftConfig {
        RaftConfig {
            bug: Some(Bug::ForgetVote),
            ..node_config(r, id)
        }
    }

    /// A crash storm: many crashes with quick restarts, long and uneven delays, no pre-vote
    /// or check-quorum, timeouts with little randomness — elections collide often.
    fn storm(seed: u64, nodes: usize) -> Scenario {
        let mut rng = SimRng::new(seed);
        let names: Vec<String> = (1..=nodes).map(|i| format!("s{i}")).collect();
        let mut sc = Scenario::random(&mut rng, &names, 4.0, 3.0, 20.0);
        for _ in 0..rng.range(6, 16) {
            let at = rng.range(0, 3_500);
            let back = if rng.chance(0.8) {
                rng.range(1, 30)
            } else {
                rng.range(100, 400)
            };
            let node = names[rng.range(0, nodes as u64 - 1) as usize].clone();
            push_crash(
                &mut sc.crashes,
                node,
                at as f64 / 1000.0,
                (at + back) as f64 / 1000.0,
            );
        }
        let hi = rng.range(10, 60) as f64;
        sc.network = Some(crate::sim::NetModel {
            delay_ms: (1.0, hi),
            drop: rng.range(0, 10) as f64 / 100.0,
            duplicate: 0.0,
            persist_ms: 1.0,
        });
        sc.params
            .insert("pre_vote".into(), serde_json::json!(false));
        sc.params
            .insert("check_quorum".into(), serde_json::json!(false));
        sc.params
            .insert("election_timeout_ms".into(), serde_json::json!([150, 160]));
        sc.params
            .insert("block_interval_ms".into(), serde_json::json!(20));
        sc
    }

    fn one_entry(r: &RaftSpec, id: NodeId) -> RaftConfig {
        RaftConfig {
            max_append: 1,
            ..node_config(r, id)
        }
    }

    fn forget_vote_1(r: &RaftSpec, id: NodeId) -> RaftConfig {
        RaftConfig {
            max_append: 1,
            ..forget_vote(r, id)
        }
    }

    /// Runs `storm(seed, 3)` with the planted bug and with the correct engine: the observer
    /// must name the bug's violation, and the same schedule must pass without it.
    fn caught(seed: u64, bugged: fn(&RaftSpec, NodeId) -> RaftConfig, property: &str) {
        let spec = ChainSpec::builtin("raft-demo").unwrap();
        let bounds = CheckBounds::default();
        let sc = storm(seed, 3);
        let bad = check_schedule_with(&spec, &sc, &bounds, bugged).unwrap();
        let v = bad.violation.expect("the observer missed the planted bug");
        assert!(v.starts_with(property), "{v}");
        let good = check_schedule_with(&spec, &sc, &bounds, one_entry).unwrap();
        assert_eq!(good.violation, None);
        assert!(good.recovery_s.is_some());
    }

    #[test]
    fn the_observer_catches_a_node_that_forgets_its_vote_across_a_restart() {
        // Found by running storms 0..1400 on three nodes: seed 62 elects two leaders in one
        // term with the bug; none of the 1400 breaks anything without it.
        caught(62, forget_vote_1, "election safety");
    }
}

mod leader_crash {
    use crate::ChainSpec;
    use crate::sim::cluster::{OrderedCluster, secs};
    use crate::sim::report::ProtocolReport;
    use crate::sim::scenario::{CrashSpec, Scenario};

    fn run(crash: Option<&str>, until_s: f64) -> crate::sim::report::SimReport {
        run_at(crash, 2.0, until_s)
    }

    fn run_at(crash: Option<&str>, at_s: f64, until_s: f64) -> crate::sim::report::SimReport {
        let spec = ChainSpec::builtin("raft-demo").unwrap();
        let scenario = Scenario {
            load_tps: Some(50.0),
            crashes: crash
                .map(|node| CrashSpec {
                    node: node.into(),
                    at_s,
                    restart_s: Some(at_s + 3.0),
                })
                .into_iter()
                .collect(),
            ..Scenario::default()
        };
        let mut cluster = crate::raft::check::build(&spec, &scenario, false).unwrap();
        cluster.run_until(secs(until_s));
        cluster.report()
    }

    fn leaders(r: &crate::sim::report::SimReport) -> Vec<String> {
        match &r.protocol {
            ProtocolReport::Raft { leaders, .. } => {
                leaders.iter().map(|l| l.leader.clone()).collect()
            }
            other => panic!("not a raft report: {other:?}"),
        }
    }

    #[test]
    fn crashing_the_leader_crashes_whoever_leads_then() {
        let calm = run(None, 2.0);
        let first = leaders(&calm).last().cloned().expect("a leader by 2 s");
        let by_role = run(Some("leader"), 6.0);
        let by_name = run(Some(&first), 6.0);
        // The same run as naming the node that led at 2 s …
        assert_eq!(by_role.trace_hash, by_name.trace_hash);
        // … which is not the node a calm run has leading then.
        assert_ne!(by_role.trace_hash, run(None, 6.0).trace_hash);
        let after = leaders(&by_role);
        assert_eq!(after[0], first);
        assert!(after.len() >= 2 && after[1] != first, "{after:?}");
        assert!(by_role.leaderless_s >= 0.1, "{}", by_role.leaderless_s);
    }

    #[test]
    fn of_two_nodes_that_believe_they_lead_the_crash_takes_the_newer() {
        let first = leaders(&run(None, 1.0))
            .last()
            .cloned()
            .expect("a leader by 1 s");
        let names: Vec<String> = (1..=5).map(|i| format!("s{i}")).collect();
        let spec = ChainSpec::builtin("raft-demo").unwrap();
        // Without check-quorum the cut-off leader keeps believing it leads.
        let scenario = Scenario {
            load_tps: Some(50.0),
            partitions: vec![crate::sim::scenario::PartitionSpec {
                groups: vec![
                    vec![first.clone()],
                    names.iter().filter(|n| **n != first).cloned().collect(),
                ],
                from_s: 1.0,
                to_s: 5.0,
            }],
            crashes: vec![CrashSpec {
                node: "leader".into(),
                at_s: 3.0,
                restart_s: None,
            }],
            params: [("check_quorum".to_owned(), serde_json::json!(false))].into(),
            ..Scenario::default()
        };
        let mut cluster = crate::raft::check::build(&spec, &scenario, false).unwrap();
        cluster.run_until(secs(3.5));
        let report = cluster.report();
        let after = leaders(&report);
        assert_eq!(after[0], first);
        assert!(after.len() >= 2, "{after:?}");
        let crashed = report.leader_crashes[0].node.clone();
        assert_eq!(crashed.as_ref(), Some(&after[1]), "{after:?}");
    }

    #[test]
    fn a_cluster_of_one_answers_its_clients() {
        // Its one wallet pays itself: every request gets a transfer, and a reply.
        let spec = ChainSpec::builtin("raft-demo").unwrap();
        let scenario = Scenario {
            nodes: Some(1),
            load_tps: Some(50.0),
            ..Scenario::default()
        };
        let mut cluster = crate::raft::check::build(&spec, &scenario, false).unwrap();
        cluster.run_until(secs(3.0));
        let r = cluster.report();
        assert!(
            r.answered * 10 >= r.requests * 9,
            "{} of {}",
            r.answered,
            r.requests
        );
        assert!(r.blocks <= 30, "{} blocks in 3 s", r.blocks);
    }

    #[test]
    fn crashing_the_leader_before_any_is_elected_crashes_nobody() {
        let calm = run(None, 2.0);
        let early = run_at(Some("leader"), 0.001, 2.0);
        assert_eq!(early.trace_hash, calm.trace_hash);
    }
}
