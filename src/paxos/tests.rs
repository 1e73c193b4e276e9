//! Step-level tests of the Paxos engine — each role's rules, one input at a time, the outputs
//! checked — then the planted bug the observer must catch, and the duel without back-off.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use crate::paxos::batches::{Batch, Batches};
use crate::paxos::engine::{
    App, Ballot, Bug, Carried, Chosen, Durable, Msg, NOOP, Note, PaxosConfig, PaxosNode, Persist,
    Role, Vote, accepted_bytes,
};
use crate::paxos::observer::PaxosObserver;
use crate::primitives::tx::KeyPair;
use crate::sim::{Engine, MS, Micros, NodeId, Observer, Output, Request, SimRng, Violation};

type Node = PaxosNode<Batches>;
type Out = Vec<Output<Node>>;

const ELECTION: u8 = 0;
const HEARTBEAT: u8 = 1;
const CUT: u8 = 2;

fn keys(n: usize) -> Vec<KeyPair> {
    (0..n)
        .map(|i| KeyPair::derive("paxos-test", &format!("s{i}")))
        .collect()
}

fn config(id: NodeId, n: usize) -> PaxosConfig {
    let keys = keys(n);
    PaxosConfig {
        id,
        keys: Arc::new(keys.iter().map(KeyPair::pubkey).collect()),
        key: keys[id].clone(),
        election: (150 * MS, 300 * MS),
        heartbeat: 50 * MS,
        cut_interval: 20 * MS,
        max_batch: 100,
        backoff: true,
        backoff_base: 100 * MS,
        base: 0,
        bug: None,
    }
}

fn node_from(config: PaxosConfig, disk: &Durable<Batch>) -> Node {
    let seed = config.id as u64;
    PaxosNode::new(config, disk, SimRng::new(seed), Batches::default())
}

fn node(id: NodeId, n: usize) -> Node {
    node_from(config(id, n), &Durable::default())
}

fn b(round: u64, node: u32) -> Ballot {
    Ballot { round, node }
}

fn req(serial: u64) -> Request {
    Request { client: 0, serial }
}

fn batch(serials: &[u64]) -> Batch {
    Batch(serials.iter().map(|s| req(*s)).collect())
}

fn sends(out: &Out) -> Vec<(NodeId, Msg<Batch>)> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send(to, m) => Some((*to, m.clone())),
            _ => None,
        })
        .collect()
}

fn persists(out: &Out) -> Vec<Persist<Batch>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn commits(out: &Out) -> Vec<Arc<Chosen<Batch>>> {
    out.iter()
        .filter_map(|o| match o {
            Output::Commit(c) => Some(c.clone()),
            _ => None,
        })
        .collect()
}

fn recv(n: &mut Node, from: NodeId, msg: Msg<Batch>) -> Out {
    let mut out = Vec::new();
    n.on_message(0, from, msg, &mut out);
    out
}

fn timer(n: &mut Node, id: u8) -> Out {
    let mut out = Vec::new();
    n.on_timer(0, id, &mut out);
    out
}

fn promise(ballot: Ballot, votes: &[(u64, Ballot, Option<Batch>)]) -> Msg<Batch> {
    Msg::Promise {
        ballot,
        votes: votes
            .iter()
            .map(|(s, vb, v)| {
                (
                    *s,
                    Vote {
                        ballot: *vb,
                        value: v.clone(),
                    },
                )
            })
            .collect(),
    }
}

fn accepted(
    from: NodeId,
    n: usize,
    ballot: Ballot,
    slot: u64,
    value: Option<&Batch>,
) -> Msg<Batch> {
    let digest = value.map_or(NOOP, Batches::digest);
    let key = &keys(n)[from];
    Msg::Accepted {
        ballot,
        slot,
        digest,
        signature: crate::paxos::rule::sign_accepted(key, ballot, slot, digest),
    }
}

/// Node 0 of `n`, elected in ballot (1, 0) with no votes reported.
fn leader(n: usize) -> Node {
    let mut l = node(0, n);
    timer(&mut l, ELECTION);
    for p in 1..n / 2 + 1 {
        recv(&mut l, p, promise(b(1, 0), &[]));
    }
    assert_eq!(l.role(), Role::Leader);
    l
}

/// The accepts a step sent: (to, slot, value).
fn accepts(out: &Out) -> Vec<(NodeId, u64, Option<Batch>)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, m)| match m {
            Msg::Accept { slot, value, .. } => Some((to, slot, value)),
            _ => None,
        })
        .collect()
}

#[test]
fn every_node_starts_as_a_proposer_and_prepares_after_the_shortest_timeout() {
    let mut n = node(2, 5);
    let mut out = Vec::new();
    n.start(1_000, &mut out);
    assert!(matches!(out[..], [Output::Timer(ELECTION, at)] if at == 1_000 + 150 * MS));
    let out = timer(&mut n, ELECTION);
    assert_eq!(n.role(), Role::Candidate);
    assert_eq!(n.ballot(), b(1, 2));
    // Its own promise is written before any Prepare leaves (the driver holds the step's
    // messages until its writes complete), so a restart never reuses the ballot.
    assert!(matches!(persists(&out)[..], [Persist::Promise(x)] if x == b(1, 2)));
    let prepares: Vec<NodeId> = sends(&out)
        .into_iter()
        .map(|(to, m)| {
            assert!(matches!(m, Msg::Prepare { ballot, from: 1 } if ballot == b(1, 2)));
            to
        })
        .collect();
    assert_eq!(prepares, [0, 1, 3, 4]);
}

#[test]
fn an_acceptor_promises_and_votes_only_at_or_above_its_promise_and_writes_first() {
    let mut a = node(1, 3);
    // 1a → 1b: promise (2, 0), no votes yet.
    let out = recv(
        &mut a,
        0,
        Msg::Prepare {
            ballot: b(2, 0),
            from: 1,
        },
    );
    assert!(matches!(persists(&out)[..], [Persist::Promise(x)] if x == b(2, 0)));
    assert!(
        matches!(&sends(&out)[..], [(0, Msg::Promise { ballot, votes })] if *ballot == b(2, 0) && votes.is_empty())
    );
    // A lower ballot is refused with the promise, in both phases.
    for msg in [
        Msg::Prepare {
            ballot: b(1, 2),
            from: 1,
        },
        Msg::Accept {
            ballot: b(1, 2),
            slot: 1,
            value: Some(batch(&[9])),
        },
    ] {
        let out = recv(&mut a, 2, msg);
        assert!(persists(&out).is_empty());
        assert!(
            matches!(&sends(&out)[..], [(2, Msg::Nack { ballot, promised })] if *ballot == b(1, 2) && *promised == b(2, 0))
        );
    }
    assert_eq!(a.vote(1), None);
    // 2a → 2b: votes (2, 0) in slot 1, writes the vote, answers with a signed 2b.
    let v = batch(&[1]);
    let out = recv(
        &mut a,
        0,
        Msg::Accept {
            ballot: b(2, 0),
            slot: 1,
            value: Some(v.clone()),
        },
    );
    assert!(
        matches!(&persists(&out)[..], [Persist::Vote(1, vote)] if vote.ballot == b(2, 0) && vote.value == Some(v.clone()))
    );
    let Some((
        0,
        Msg::Accepted {
            ballot,
            slot: 1,
            digest,
            signature,
        },
    )) = sends(&out).pop()
    else {
        panic!("no 2b: {out:?}");
    };
    assert_eq!((ballot, digest), (b(2, 0), Batches::digest(&v)));
    assert_eq!(signature.signer, keys(3)[1].pubkey());
    assert!(
        signature
            .signer
            .verifies(&accepted_bytes(ballot, 1, digest), &signature.signature)
    );
    assert_eq!(a.leader(), Some(0));
    // A later 1b reports the last vote, (maxVBal, maxVal), for the slots asked about.
    let out = recv(
        &mut a,
        2,
        Msg::Prepare {
            ballot: b(3, 2),
            from: 1,
        },
    );
    let Some((2, Msg::Promise { votes, .. })) = sends(&out).pop() else {
        panic!("no promise: {out:?}");
    };
    assert_eq!(
        votes,
        vec![(
            1,
            Vote {
                ballot: b(2, 0),
                value: Some(v)
            }
        )]
    );
    let out = recv(
        &mut a,
        2,
        Msg::Prepare {
            ballot: b(4, 2),
            from: 2,
        },
    );
    assert!(matches!(&sends(&out)[..], [(2, Msg::Promise { votes, .. })] if votes.is_empty()));
}

#[test]
fn the_value_choice_rule_takes_the_highest_ballot_vote_and_fills_gaps_with_no_ops() {
    let mut l = node(0, 5);
    timer(&mut l, ELECTION);
    timer(&mut l, ELECTION);
    assert_eq!(l.ballot(), b(2, 0));
    let (a, bb, c) = (batch(&[1]), batch(&[2]), batch(&[3]));
    recv(
        &mut l,
        1,
        promise(
            b(2, 0),
            &[(1, b(1, 1), Some(a)), (3, b(1, 1), Some(c.clone()))],
        ),
    );
    assert_eq!(
        l.role(),
        Role::Candidate,
        "two promises of five are not a majority"
    );
    let out = recv(
        &mut l,
        2,
        promise(b(2, 0), &[(1, b(1, 2), Some(bb.clone()))]),
    );
    assert_eq!(l.role(), Role::Leader);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Note(Note::Leads {
            reproposed: 2,
            noops: 1,
            ..
        })
    )));
    let mut by_slot: BTreeMap<u64, Option<Batch>> = BTreeMap::new();
    for (_, slot, value) in accepts(&out) {
        by_slot.insert(slot, value);
    }
    // Slot 1: the vote of ballot (1, 2) beats that of (1, 1); slot 2 had none: a no-op;
    // slot 3: the only vote.
    assert_eq!(
        by_slot,
        BTreeMap::from([(1, Some(bb)), (2, None), (3, Some(c))])
    );
    assert_eq!(accepts(&out).len(), 3 * 4);
    // The leader votes for its own proposals, written before they leave.
    assert_eq!(
        persists(&out)
            .iter()
            .filter(|p| matches!(p, Persist::Vote(..)))
            .count(),
        3
    );
}

#[test]
fn with_no_vote_reported_the_leader_proposes_its_own_value_once_the_previous_executed() {
    let mut l = leader(3);
    let mut out = Vec::new();
    l.on_client(0, req(7), &mut out);
    l.on_client(0, req(8), &mut out);
    let out = timer(&mut l, CUT);
    assert_eq!(
        accepts(&out),
        [(1, 1, Some(batch(&[7, 8]))), (2, 1, Some(batch(&[7, 8])))]
    );
    // Slot 1 is open: no new block until it executed.
    let mut o = Vec::new();
    l.on_client(0, req(9), &mut o);
    assert!(accepts(&timer(&mut l, CUT)).is_empty());
    recv(&mut l, 1, accepted(1, 3, b(1, 0), 1, Some(&batch(&[7, 8]))));
    assert_eq!(l.executed(), 1);
    assert_eq!(
        accepts(&timer(&mut l, CUT)),
        [(1, 2, Some(batch(&[9]))), (2, 2, Some(batch(&[9])))]
    );
}

#[test]
fn a_value_is_chosen_by_a_majority_of_2b_in_one_ballot() {
    let mut l = leader(5);
    let mut o = Vec::new();
    l.on_client(0, req(1), &mut o);
    timer(&mut l, CUT);
    let v = batch(&[1]);
    // The leader's own vote and one more are two of five.
    let out = recv(&mut l, 3, accepted(3, 5, b(1, 0), 1, Some(&v)));
    assert!(commits(&out).is_empty());
    // A 2b for another value or ballot does not count.
    assert!(
        commits(&recv(
            &mut l,
            1,
            accepted(1, 5, b(1, 0), 1, Some(&batch(&[2])))
        ))
        .is_empty()
    );
    assert!(commits(&recv(&mut l, 1, accepted(1, 5, b(1, 3), 1, Some(&v)))).is_empty());
    let out = recv(&mut l, 4, accepted(4, 5, b(1, 0), 1, Some(&v)));
    let c = commits(&out);
    assert_eq!(c.len(), 1);
    assert_eq!(
        (c[0].slot, c[0].ballot, c[0].value.clone()),
        (1, b(1, 0), Some(v.clone()))
    );
    let mut signers: Vec<_> = c[0].signatures.iter().map(|s| s.signer).collect();
    signers.sort();
    let mut expect: Vec<_> = [0, 3, 4].map(|i| keys(5)[i].pubkey()).to_vec();
    expect.sort();
    assert_eq!(signers, expect);
    assert!(
        out.iter()
            .any(|o| matches!(o, Output::Reply(r) if *r == req(1)))
    );
    // The learners hear it: those that voted by digest, the others with the value.
    for (to, m) in sends(&out) {
        let Msg::Chosen {
            slot: 1,
            value,
            signatures,
            ..
        } = m
        else {
            panic!("{m:?}");
        };
        assert_eq!(signatures.len(), 3);
        match (to, value) {
            (3 | 4, Carried::Voted(d)) => assert_eq!(d, Batches::digest(&v)),
            (1 | 2, Carried::Value(x)) => assert_eq!(x, Some(v.clone())),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn a_learner_executes_chosen_slots_in_order_and_asks_for_what_it_misses() {
    let mut f = node(1, 3);
    let chosen = |slot: u64, value: Carried<Batch>| Msg::Chosen {
        slot,
        ballot: b(1, 0),
        value,
        signatures: Vec::new(),
    };
    let out = recv(&mut f, 0, chosen(2, Carried::Value(Some(batch(&[2])))));
    assert!(matches!(persists(&out)[..], [Persist::Chosen(_)]));
    assert!(commits(&out).is_empty(), "slot 1 is not known yet");
    let out = recv(&mut f, 0, chosen(1, Carried::Value(None)));
    let slots: Vec<u64> = commits(&out).iter().map(|c| c.slot).collect();
    assert_eq!(slots, [1, 2]);
    assert_eq!(f.app().executed, 1);
    // Chosen by digest, without its vote: it asks the leader.
    let out = recv(
        &mut f,
        0,
        chosen(3, Carried::Voted(Batches::digest(&batch(&[3])))),
    );
    assert!(matches!(&sends(&out)[..], [(0, Msg::CatchUp { from: 3 })]));
    // A heartbeat naming later chosen slots does the same.
    let out = recv(
        &mut f,
        0,
        Msg::Heartbeat {
            ballot: b(1, 0),
            chosen_through: 5,
        },
    );
    assert!(matches!(&sends(&out)[..], [(0, Msg::CatchUp { from: 3 })]));
}

#[test]
fn a_preempted_proposer_backs_off_or_without_back_off_retries_at_once() {
    let mut p = node(0, 3);
    timer(&mut p, ELECTION);
    let out = recv(
        &mut p,
        1,
        Msg::Nack {
            ballot: b(1, 0),
            promised: b(4, 2),
        },
    );
    assert_eq!(p.role(), Role::Follower);
    assert!(sends(&out).is_empty());
    let Some(Output::Timer(ELECTION, at)) = out.iter().find(|o| matches!(o, Output::Timer(..)))
    else {
        panic!("no back-off timer: {out:?}");
    };
    assert!((150 * MS..=250 * MS).contains(at), "{at}");
    // When it tries again its ballot is above the one that preempted it.
    timer(&mut p, ELECTION);
    assert_eq!(p.ballot(), b(5, 0));

    let mut q = node_from(
        PaxosConfig {
            backoff: false,
            ..config(0, 3)
        },
        &Durable::default(),
    );
    timer(&mut q, ELECTION);
    let out = recv(
        &mut q,
        1,
        Msg::Nack {
            ballot: b(1, 0),
            promised: b(4, 2),
        },
    );
    assert_eq!(q.role(), Role::Candidate);
    assert_eq!(q.ballot(), b(5, 0));
    assert_eq!(sends(&out).len(), 2, "prepares again at once");
    // A competitor's higher Prepare preempts it too, and it outbids it rather than promise.
    let out = recv(
        &mut q,
        2,
        Msg::Prepare {
            ballot: b(6, 2),
            from: 1,
        },
    );
    assert_eq!(q.ballot(), b(7, 0));
    assert!(
        sends(&out)
            .iter()
            .any(|(to, m)| *to == 2
                && matches!(m, Msg::Nack { promised, .. } if *promised == b(7, 0)))
    );
}

#[test]
fn a_stale_leader_is_refused_and_steps_down_and_followers_forward_to_the_leader() {
    let mut l = leader(3);
    // A higher Prepare preempts the leader: it promises and follows.
    let out = recv(
        &mut l,
        1,
        Msg::Prepare {
            ballot: b(2, 1),
            from: 1,
        },
    );
    assert_eq!(l.role(), Role::Follower);
    assert!(matches!(&sends(&out)[..], [(1, Msg::Promise { .. })]));
    // A heartbeat of a ballot below the promise is refused, so its sender steps down.
    let out = recv(
        &mut l,
        2,
        Msg::Heartbeat {
            ballot: b(1, 2),
            chosen_through: 0,
        },
    );
    assert!(matches!(&sends(&out)[..], [(2, Msg::Nack { promised, .. })] if *promised == b(2, 1)));
    let mut stale = leader(3);
    recv(
        &mut stale,
        1,
        Msg::Nack {
            ballot: b(1, 0),
            promised: b(2, 1),
        },
    );
    assert_eq!(stale.role(), Role::Follower);
    // The new leader's heartbeat is followed, and clients' requests go to it.
    recv(
        &mut l,
        1,
        Msg::Heartbeat {
            ballot: b(2, 1),
            chosen_through: 0,
        },
    );
    assert_eq!(l.leader(), Some(1));
    let mut out = Vec::new();
    l.on_client(0, req(5), &mut out);
    assert!(matches!(&sends(&out)[..], [(1, Msg::Forward(r))] if r == &[req(5)]));
}

#[test]
fn a_restarted_node_keeps_its_promise_votes_and_chosen_slots() {
    let chosen = Arc::new(Chosen {
        slot: 1,
        ballot: b(5, 1),
        value: Some(batch(&[1])),
        signatures: Vec::new(),
    });
    let disk = Durable {
        promised: b(5, 1),
        votes: BTreeMap::from([(
            2,
            Vote {
                ballot: b(5, 1),
                value: Some(batch(&[2])),
            },
        )]),
        chosen: BTreeMap::from([(1, chosen)]),
    };
    let mut n = node_from(config(0, 3), &disk);
    let mut out = Vec::new();
    n.start(0, &mut out);
    assert_eq!(commits(&out).len(), 1, "executes what it learned again");
    assert_eq!(n.executed(), 1);
    let out = recv(
        &mut n,
        2,
        Msg::Prepare {
            ballot: b(4, 2),
            from: 2,
        },
    );
    assert!(matches!(&sends(&out)[..], [(2, Msg::Nack { .. })]));
    let out = recv(
        &mut n,
        2,
        Msg::Prepare {
            ballot: b(6, 2),
            from: 2,
        },
    );
    assert!(matches!(&sends(&out)[..], [(2, Msg::Promise { votes, .. })] if votes.len() == 1));
    timer(&mut n, ELECTION);
    assert_eq!(
        n.ballot(),
        b(7, 0),
        "never a ballot it could have used before"
    );
}

/// A hand-driven network of engines: messages queued in order, links that can be blocked,
/// writes applied at once, and the safety observer watching.
struct Net {
    nodes: Vec<Option<Node>>,
    disks: Vec<Durable<Batch>>,
    queue: VecDeque<(NodeId, NodeId, Msg<Batch>)>,
    blocked: Vec<(NodeId, NodeId)>,
    observer: PaxosObserver<Batches>,
    violation: Option<Violation>,
    now: Micros,
}

impl Net {
    fn new(configs: Vec<PaxosConfig>) -> Self {
        let keys = configs[0].keys.as_ref().clone();
        Self {
            disks: vec![Durable::default(); configs.len()],
            nodes: configs
                .into_iter()
                .map(|c| Some(node_from(c, &Durable::default())))
                .collect(),
            queue: VecDeque::new(),
            blocked: Vec::new(),
            observer: PaxosObserver::new(keys, 0),
            violation: None,
            now: 0,
        }
    }

    fn step(&mut self, id: NodeId, input: impl FnOnce(&mut Node, &mut Out)) {
        self.now += MS;
        let Some(node) = self.nodes[id].as_mut() else {
            return;
        };
        let mut out = Vec::new();
        input(node, &mut out);
        for o in out {
            let r = match o {
                Output::Send(to, m) => {
                    if !self.blocked.contains(&(id, to)) {
                        self.queue.push_back((id, to, m));
                    }
                    Ok(())
                }
                Output::Persist(p) => {
                    Node::persist(&mut self.disks[id], &p);
                    self.observer.persisted(self.now, id, &p, &self.disks[id])
                }
                Output::Commit(c) => self.observer.committed(self.now, id, &c),
                _ => Ok(()),
            };
            if let Err(v) = r {
                self.violation.get_or_insert(v);
            }
        }
    }

    fn timer(&mut self, id: NodeId, t: u8) {
        let now = self.now;
        self.step(id, |n, out| n.on_timer(now, t, out));
    }

    fn client(&mut self, id: NodeId, r: Request) {
        self.observer.requested(r);
        let now = self.now;
        self.step(id, |n, out| n.on_client(now, r, out));
    }

    fn settle(&mut self) {
        while let Some((from, to, m)) = self.queue.pop_front() {
            let now = self.now;
            self.step(to, |n, out| n.on_message(now, from, m, out));
        }
    }

    fn node(&self, id: NodeId) -> &Node {
        self.nodes[id].as_ref().expect("up")
    }
}

/// Lamport's duel (§2.4 of the paper), in lockstep: nodes 0 and 1 of three start phase 1 at
/// once and every message is delivered in the order sent.
fn two_proposers(backoff: bool) -> Net {
    let configs = (0..3)
        .map(|i| PaxosConfig {
            backoff,
            ..config(i, 3)
        })
        .collect();
    let mut net = Net::new(configs);
    net.timer(0, ELECTION);
    net.timer(1, ELECTION);
    net
}

#[test]
fn two_proposers_without_back_off_preempt_each_other_for_ever() {
    let mut net = two_proposers(false);
    // Each one, preempted, at once prepares a ballot above the other's, which preempts that
    // one in turn: 3 000 deliveries later the duel goes on and nothing is chosen.
    for _ in 0..3_000 {
        let (from, to, m) = net.queue.pop_front().expect("the duel never stops");
        let now = net.now;
        net.step(to, |n, out| n.on_message(now, from, m, out));
    }
    let (a, b) = (net.node(0), net.node(1));
    assert_eq!((a.role(), b.role()), (Role::Candidate, Role::Candidate));
    assert!(a.ballot().round > 300 && b.ballot().round > 300);
    assert!(a.preemptions() > 300 && b.preemptions() > 300);
    assert!((0..3).all(|i| net.node(i).executed() == 0 && net.node(i).chosen(1).is_none()));
    assert_eq!(net.violation, None);
}

#[test]
fn two_proposers_with_back_off_elect_one_leader_that_gets_values_chosen() {
    let mut net = two_proposers(true);
    net.settle();
    // Node 1's ballot (1, 1) beat node 0's (1, 0); node 0 backs off and follows.
    assert_eq!(net.node(1).role(), Role::Leader);
    assert_eq!(net.node(0).role(), Role::Follower);
    assert_eq!(net.node(0).preemptions(), 1);
    net.client(1, req(1));
    net.timer(1, CUT);
    net.settle();
    net.timer(1, HEARTBEAT);
    net.settle();
    assert!((0..3).all(|i| net.node(i).executed() == 1));
    assert_eq!(net.violation, None);
}

/// Three nodes; node 0 leads and gets request 1 chosen in slot 1 but its news of it is lost,
/// and it crashes; node 1 takes over. Returns the observer's verdict.
fn lost_news(bug: Option<Bug>) -> (Option<Violation>, Option<Arc<Chosen<Batch>>>) {
    let configs = (0..3)
        .map(|i| PaxosConfig {
            bug,
            ..config(i, 3)
        })
        .collect();
    let mut net = Net::new(configs);
    net.timer(0, ELECTION);
    net.settle();
    assert_eq!(net.node(0).role(), Role::Leader);
    net.client(0, req(1));
    net.timer(0, CUT);
    // The 2a messages reach nodes 1 and 2 (they vote); from then on nothing node 0 sends
    // arrives: its Chosen messages are lost.
    let accepts: Vec<_> = net.queue.drain(..).collect();
    net.blocked = vec![(0, 1), (0, 2)];
    for (from, to, m) in accepts {
        net.step(to, |n, out| n.on_message(0, from, m, out));
    }
    net.settle();
    assert_eq!(net.node(0).executed(), 1, "node 0 learned slot 1 chosen");
    assert_eq!(net.node(1).executed(), 0);
    net.nodes[0] = None;
    // Node 1 campaigns; node 2 reports its vote for slot 1.
    net.timer(1, ELECTION);
    net.settle();
    net.timer(1, CUT);
    net.settle();
    net.timer(1, HEARTBEAT);
    net.settle();
    let chosen = net.node(2).chosen(1).cloned();
    (net.violation, chosen)
}

#[test]
fn the_observer_catches_a_leader_that_ignores_the_votes_in_its_promises() {
    // The paper's rule: node 1 re-proposes the reported vote; slot 1 stays request 1.
    let (ok, chosen) = lost_news(None);
    assert_eq!(ok, None);
    assert_eq!(chosen.unwrap().value, Some(batch(&[1])));
    // The planted bug: node 1 proposes its own value in slot 1 instead — with no request
    // waiting, a no-op — and it is chosen, against the request node 0 executed there.
    let (v, chosen) = lost_news(Some(Bug::IgnoreVotes));
    let v = v.expect("the observer missed the planted bug");
    assert_eq!(v.property, "agreement", "{v}");
    assert_eq!(v.nodes, [0, 1], "{v}");
    assert_eq!(chosen.unwrap().value, None);
}

#[test]
fn the_observer_checks_certificates_order_validity_and_exactly_once() {
    let k = keys(3);
    let mut o: PaxosObserver<Batches> =
        PaxosObserver::new(k.iter().map(KeyPair::pubkey).collect(), 0);
    let cert = |slot: u64, v: &Batch, signers: &[usize]| {
        let d = Batches::digest(v);
        signers
            .iter()
            .map(|&i| crate::paxos::rule::sign_accepted(&k[i], b(1, 0), slot, d))
            .collect::<Vec<_>>()
    };
    let chosen = |slot: u64, v: &Batch, signers: &[usize]| {
        Arc::new(Chosen {
            slot,
            ballot: b(1, 0),
            value: Some(v.clone()),
            signatures: cert(slot, v, signers),
        })
    };
    o.requested(req(1));
    assert_eq!(o.committed(0, 0, &chosen(1, &batch(&[1]), &[0, 1])), Ok(()));
    let e = o
        .committed(0, 1, &chosen(2, &batch(&[]), &[0]))
        .unwrap_err();
    assert_eq!(e.property, "order");
    let e = o
        .committed(0, 0, &chosen(2, &batch(&[]), &[0]))
        .unwrap_err();
    assert_eq!(e.property, "certificates");
    let e = o
        .committed(0, 0, &chosen(3, &batch(&[7]), &[0, 2]))
        .unwrap_err();
    assert_eq!(e.property, "validity");
    let e = o
        .committed(0, 0, &chosen(4, &batch(&[1]), &[1, 2]))
        .unwrap_err();
    assert_eq!(e.property, "exactly-once");
    // A vote written below the node's promise breaks the acceptor's rule.
    let disk = Durable::default();
    assert_eq!(o.persisted(0, 2, &Persist::Promise(b(3, 1)), &disk), Ok(()));
    let vote = Persist::Vote(
        4,
        Vote {
            ballot: b(2, 0),
            value: None,
        },
    );
    assert_eq!(
        o.persisted(0, 2, &vote, &disk).unwrap_err().property,
        "acceptor rules"
    );
}

mod cluster {
    use crate::ChainSpec;
    use crate::paxos::check::build;
    use crate::sim::cluster::{CheckBounds, OrderedCluster, secs};
    use crate::sim::report::{ProtocolReport, Safety};
    use crate::sim::scenario::Scenario;

    fn duel(backoff: bool) -> crate::sim::report::SimReport {
        let spec = ChainSpec::builtin("paxos-demo").unwrap();
        let mut sc = Scenario {
            load_tps: Some(20.0),
            ..Scenario::default()
        };
        sc.params
            .insert("backoff".into(), serde_json::json!(backoff));
        let mut cluster = build(&spec, &sc, false).unwrap();
        cluster.run_until(secs(2.0));
        cluster.report()
    }

    #[test]
    fn without_back_off_the_proposers_duel_and_nothing_is_chosen_with_it_they_converge() {
        let r = duel(false);
        assert!(matches!(r.safety, Safety::Ok));
        assert_eq!((r.blocks, r.entries), (0, 0));
        let ProtocolReport::Paxos {
            preemptions,
            livelock,
            ballots,
            ..
        } = &r.protocol
        else {
            panic!("not a paxos report");
        };
        assert!(
            *livelock && *preemptions > 100 && ballots.is_empty(),
            "{}",
            r.to_text()
        );
        assert!(r.to_text().contains("LIVELOCK"));
        // The same start — every node a proposer at once — with back-off: one leads.
        let r = duel(true);
        assert!(matches!(r.safety, Safety::Ok));
        assert!(r.blocks >= 15, "{}", r.to_text());
        let ProtocolReport::Paxos {
            livelock, ballots, ..
        } = &r.protocol
        else {
            panic!("not a paxos report");
        };
        assert!(!livelock && ballots.len() == 1, "{}", r.to_text());
    }

    #[test]
    fn random_fault_schedules_keep_safety_and_recover() {
        let spec = ChainSpec::builtin("paxos-demo").unwrap();
        let bounds = CheckBounds::default();
        let names: Vec<String> = (1..=5).map(|i| format!("s{i}")).collect();
        for i in 0..3 {
            let sc = crate::sim::cluster::random_schedule(7, i, &names, &bounds);
            let o = crate::paxos::check::check_schedule(&spec, &sc, &bounds).unwrap();
            assert_eq!(o.violation, None, "schedule {i}");
            assert!(o.recovery_s.is_some(), "schedule {i}");
        }
    }
}

/// `check paxos` finds the planted bug among random fault schedules, on its own.
mod check_catches {
    use crate::ChainSpec;
    use crate::paxos::check::{check_schedule, check_schedule_with};
    use crate::paxos::cluster::node_config;
    use crate::paxos::engine::{Bug, PaxosConfig};
    use crate::sim::NodeId;
    use crate::sim::cluster::CheckBounds;
    use crate::sim::cluster::random_schedule as schedule;

    fn ignore_votes(spec: &ChainSpec, id: NodeId, base: u64) -> PaxosConfig {
        PaxosConfig {
            bug: Some(Bug::IgnoreVotes),
            ..node_config(spec, id, base)
        }
    }

    #[test]
    fn check_catches_a_leader_that_ignores_the_votes_in_its_promises() {
        // Found by scanning `check paxos --nodes 3 --seed 1`: with the bug, schedules 5, 8
        // and 10 of the first 12 break agreement; schedule 8 in slot 1.
        let spec = ChainSpec::builtin("paxos-demo").unwrap();
        let bounds = CheckBounds::default();
        let names: Vec<String> = (1..=3).map(|i| format!("s{i}")).collect();
        let mut sc = schedule(1, 8, &names, &bounds);
        sc.nodes = Some(3);
        let bad = check_schedule_with(&spec, &sc, &bounds, ignore_votes).unwrap();
        let v = bad.violation.expect("check missed the planted bug");
        assert!(
            v.starts_with("agreement") && v.ends_with("executed different values in slot 1"),
            "{v}"
        );
        let good = check_schedule(&spec, &sc, &bounds).unwrap();
        assert_eq!(good.violation, None);
        assert!(good.recovery_s.is_some());
    }
}
