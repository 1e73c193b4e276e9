//! Byzantine replicas for the simulator: a [`Replica`] runs the honest engine and, unless it
//! is honest, bends what that engine sends. Each behaviour signs with the replica's own key,
//! as a real faulty replica would; none can sign for another.
//!
//! - `silent`: sends nothing.
//! - `equivocate`: as primary, sends half the backups a pre-prepare for a different digest (a
//!   no-op) at the same sequence number; as a backup, prepares and commits that other digest
//!   towards that half.
//! - `forge`: corrupts what it sends: a broken signature, a message claiming another sender,
//!   or a digest that does not match the block.
//! - `slow-primary`: as primary, holds every pre-prepare back for twice the view timeout, so
//!   backups change view; honest as a backup.
//! - `replay`: besides its honest messages, resends old ones (earlier views, sequence numbers
//!   below the watermark) to random replicas.
//! - `twins`: two honest engines sharing one identity and key, each talking to a different
//!   half of the honest replicas (Bano et al., "Twins: BFT Systems Made Robust", OPODIS 2021). With
//!   `f + 1` twins replicas the two halves can each gather a quorum and commit different
//!   blocks, which is how the tool shows that `n = 3f + 1` is tight.
//!
//! Byzantine replicas never reply to clients: a client counts only honest replies.

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::pbft::engine::{
    App, BlockSize, Body, Durable, Executed, Msg, NULL, Note, PbftNode, Persist, PrePrepare, Vote,
};
use crate::primitives::tx::{KeyPair, SigBytes};
use crate::sim::{Engine, Micros, NodeId, Output, Request, SimRng};

/// How a replica behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Behaviour {
    /// Follows the protocol.
    Honest,
    /// Sends nothing.
    Silent,
    /// Conflicting pre-prepares, prepares and commits to different replicas.
    Equivocate,
    /// Bad signatures, digests and claimed senders.
    Forge,
    /// As primary, proposes late.
    SlowPrimary,
    /// Resends old messages.
    Replay,
    /// Two engines with one identity, each with half the honest replicas.
    Twins,
}

/// Every Byzantine behaviour, by name.
pub const BEHAVIOURS: &[(&str, Behaviour)] = &[
    ("silent", Behaviour::Silent),
    ("equivocate", Behaviour::Equivocate),
    ("forge", Behaviour::Forge),
    ("slow-primary", Behaviour::SlowPrimary),
    ("replay", Behaviour::Replay),
    ("twins", Behaviour::Twins),
];

impl Behaviour {
    /// Its name.
    #[must_use]
    pub fn name(self) -> &'static str {
        BEHAVIOURS
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("honest", |(n, _)| n)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BEHAVIOURS
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, b)| *b)
            .ok_or_else(|| {
                let names: Vec<&str> = BEHAVIOURS.iter().map(|(n, _)| *n).collect();
                format!("unknown behaviour {s:?} (one of {})", names.join(", "))
            })
    }
}

/// The wrapper's own timer: held pre-prepares are due.
const RELEASE: u8 = 7;
/// The twin's timers are the engine's, shifted by this much.
const TWIN_TIMERS: u8 = 3;
/// Old messages a replaying replica remembers.
const REPLAY_MEMORY: usize = 256;

/// A replica as the simulator runs it. See the module docs.
pub struct Replica<A: App> {
    behaviour: Behaviour,
    id: NodeId,
    inner: PbftNode<A>,
    twin: Option<PbftNode<A>>,
    /// Twins: which half (0 or 1) each replica talks to, and which replicas are twins.
    side: Vec<u8>,
    twins: Vec<bool>,
    key: KeyPair,
    rng: SimRng,
    held: VecDeque<(Micros, NodeId, Msg<A::Block>)>,
    delay: Micros,
    sent: VecDeque<(NodeId, Msg<A::Block>)>,
}

impl<A: App> fmt::Debug for Replica<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("behaviour", &self.behaviour)
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

type Out<A> = Vec<Output<Replica<A>>>;

impl<A: App + Clone> Replica<A>
where
    A::Block: BlockSize,
{
    /// Replica `inner` behaving as `behaviour`; `twins` marks every replica that runs as
    /// twins (they route between their halves by lane).
    pub fn new(
        behaviour: Behaviour,
        inner: PbftNode<A>,
        disk: &Durable<A::Block>,
        app: &A,
        twins: &[bool],
        rng: SimRng,
    ) -> Self {
        let config = inner.config().clone();
        let id = config.id;
        let honest: Vec<NodeId> = (0..twins.len()).filter(|i| !twins[*i]).collect();
        let half = honest.len().div_ceil(2);
        let side = (0..twins.len())
            .map(|i| {
                u8::from(
                    honest
                        .iter()
                        .position(|h| *h == i)
                        .is_some_and(|p| p >= half),
                )
            })
            .collect();
        let twin = (behaviour == Behaviour::Twins)
            .then(|| PbftNode::new(config.clone(), disk, app.clone()));
        Self {
            behaviour,
            id,
            twin,
            side,
            twins: twins.to_vec(),
            key: config.key.clone(),
            rng,
            held: VecDeque::new(),
            delay: 2 * config.view_timeout,
            sent: VecDeque::new(),
            inner,
        }
    }

    /// The honest engine (for a twins replica, its first half).
    #[must_use]
    pub const fn engine(&self) -> &PbftNode<A> {
        &self.inner
    }

    /// How it behaves.
    #[must_use]
    pub const fn behaviour(&self) -> Behaviour {
        self.behaviour
    }

    /// Runs `input` on the engine of `half` and bends its outputs into `out`.
    fn drive(
        &mut self,
        now: Micros,
        half: u8,
        input: impl FnOnce(&mut PbftNode<A>, &mut Vec<Output<PbftNode<A>>>),
        out: &mut Out<A>,
    ) {
        let mut inner_out = Vec::new();
        let engine = match (&mut self.twin, half) {
            (Some(t), 1) => t,
            _ => &mut self.inner,
        };
        input(engine, &mut inner_out);
        let shift = if half == 1 { TWIN_TIMERS } else { 0 };
        for o in inner_out {
            match o {
                Output::Send(to, msg) => self.send(now, half, to, msg, out),
                Output::Timer(id, at) => out.push(Output::Timer(id + shift, at)),
                Output::Persist(p) => out.push(Output::Persist(p)),
                Output::Commit(c) => out.push(Output::Commit(c)),
                Output::Note(n) => out.push(Output::Note(n)),
                Output::Reply(r) => {
                    if self.behaviour == Behaviour::Honest {
                        out.push(Output::Reply(r));
                    }
                }
            }
        }
        if let Some((at, _, _)) = self.held.front() {
            out.push(Output::Timer(RELEASE, *at));
        }
    }

    fn send(
        &mut self,
        now: Micros,
        half: u8,
        to: NodeId,
        mut msg: Msg<A::Block>,
        out: &mut Out<A>,
    ) {
        let n = self.side.len();
        match self.behaviour {
            Behaviour::Honest => out.push(Output::Send(to, msg)),
            Behaviour::Silent => {}
            Behaviour::Twins => {
                if self.twins[to] {
                    msg.lane = half;
                    out.push(Output::Send(to, msg));
                } else if self.side[to] == half {
                    out.push(Output::Send(to, msg));
                }
            }
            Behaviour::Equivocate => {
                if self.side[to] == 1 {
                    msg.body = self.conflicting(msg.body);
                }
                out.push(Output::Send(to, msg));
            }
            Behaviour::Forge => {
                msg.body = self.forged(msg.body, n);
                out.push(Output::Send(to, msg));
            }
            Behaviour::SlowPrimary => {
                if matches!(msg.body, Body::PrePrepare(_) | Body::NewView(_)) {
                    self.held.push_back((now + self.delay, to, msg));
                } else {
                    out.push(Output::Send(to, msg));
                }
            }
            Behaviour::Replay => {
                if self.sent.len() >= REPLAY_MEMORY {
                    self.sent.pop_front();
                }
                self.sent.push_back((to, msg.clone()));
                out.push(Output::Send(to, msg));
                if self.rng.chance(0.2) {
                    let k = self.rng.range(0, self.sent.len() as u64 - 1) as usize;
                    let target = self.rng.range(0, n as u64 - 1) as NodeId;
                    if target != self.id {
                        out.push(Output::Send(target, self.sent[k].1.clone()));
                    }
                }
            }
        }
    }

    fn sign_pre(&self, mut p: PrePrepare<A::Block>) -> Body<A::Block> {
        p.sig = self.key.sign(&pre_bytes(&p));
        Body::PrePrepare(Arc::new(p))
    }

    fn sign_vote(&self, mut v: Vote, commit: bool) -> Vote {
        v.sig = self.key.sign(&vote_bytes(&v, commit));
        v
    }

    /// The same message for a no-op instead of the block, properly signed.
    fn conflicting(&self, body: Body<A::Block>) -> Body<A::Block> {
        match body {
            Body::PrePrepare(p) if p.block.is_some() => self.sign_pre(PrePrepare {
                digest: NULL,
                block: None,
                ..(*p).clone()
            }),
            Body::Prepare(v) if v.digest != NULL => {
                Body::Prepare(self.sign_vote(Vote { digest: NULL, ..v }, false))
            }
            Body::Commit(v) if v.digest != NULL => {
                Body::Commit(self.sign_vote(Vote { digest: NULL, ..v }, true))
            }
            other => other,
        }
    }

    /// A forgery: a broken signature, another sender's name, or a digest that does not match.
    fn forged(&mut self, body: Body<A::Block>, n: usize) -> Body<A::Block> {
        let how = self.rng.range(0, 2);
        let other = (self.id + 1) % n;
        let flip = |s: SigBytes| {
            let mut b = s.to_bytes();
            b[0] ^= 1;
            SigBytes::from_bytes(b)
        };
        match body {
            Body::PrePrepare(p) => {
                let mut p = (*p).clone();
                match how {
                    0 => p.sig = flip(p.sig),
                    1 => p.from = other,
                    _ => {
                        p.digest = crate::primitives::hash::BlockHash::hash(p.digest.as_bytes());
                        return self.sign_pre(p);
                    }
                }
                Body::PrePrepare(Arc::new(p))
            }
            Body::Prepare(mut v) | Body::Commit(mut v) if how < 2 => {
                let commit = matches!(body, Body::Commit(_));
                if how == 0 {
                    v.sig = flip(v.sig);
                } else {
                    v.from = other;
                }
                if commit {
                    Body::Commit(v)
                } else {
                    Body::Prepare(v)
                }
            }
            Body::Prepare(v) => Body::Prepare(self.sign_vote(
                Vote {
                    digest: crate::primitives::hash::BlockHash::hash(v.digest.as_bytes()),
                    ..v
                },
                false,
            )),
            Body::Commit(v) => Body::Commit(self.sign_vote(
                Vote {
                    digest: crate::primitives::hash::BlockHash::hash(v.digest.as_bytes()),
                    ..v
                },
                true,
            )),
            Body::Checkpoint(mut c) => {
                c.sig = flip(c.sig);
                Body::Checkpoint(c)
            }
            other => other,
        }
    }

    /// Which half a message from `from` goes to.
    fn half_for(&self, from: NodeId, lane: u8) -> u8 {
        if self.twin.is_none() {
            0
        } else if self.twins[from] {
            lane.min(1)
        } else {
            self.side[from]
        }
    }
}

fn pre_bytes<B>(p: &PrePrepare<B>) -> Vec<u8> {
    crate::pbft::engine::pre_prepare_bytes(p)
}

fn vote_bytes(v: &Vote, commit: bool) -> Vec<u8> {
    crate::pbft::engine::vote_bytes(v, commit)
}

impl<A: App + Clone> Engine for Replica<A>
where
    A::Block: BlockSize,
{
    type Msg = Msg<A::Block>;
    type Persist = Persist<A::Block>;
    type Disk = Durable<A::Block>;
    type Commit = Arc<Executed<A::Block>>;
    type Note = Note;
    const MSG_KINDS: &'static [&'static str] = crate::pbft::engine::MSG_KINDS;

    fn start(&mut self, now: Micros, out: &mut Vec<Output<Self>>) {
        self.drive(now, 0, |e, o| e.start(now, o), out);
        if self.twin.is_some() {
            self.drive(now, 1, |e, o| e.start(now, o), out);
        }
    }

    fn on_message(
        &mut self,
        now: Micros,
        from: NodeId,
        msg: Self::Msg,
        out: &mut Vec<Output<Self>>,
    ) {
        if self.behaviour == Behaviour::Silent {
            return;
        }
        let half = self.half_for(from, msg.lane);
        self.drive(now, half, |e, o| e.on_message(now, from, msg, o), out);
    }

    fn on_timer(&mut self, now: Micros, id: u8, out: &mut Vec<Output<Self>>) {
        if id == RELEASE {
            while self.held.front().is_some_and(|(at, _, _)| *at <= now) {
                if let Some((_, to, msg)) = self.held.pop_front() {
                    out.push(Output::Send(to, msg));
                }
            }
            if let Some((at, _, _)) = self.held.front() {
                out.push(Output::Timer(RELEASE, *at));
            }
        } else if id >= TWIN_TIMERS && self.twin.is_some() {
            self.drive(now, 1, |e, o| e.on_timer(now, id - TWIN_TIMERS, o), out);
        } else {
            self.drive(now, 0, |e, o| e.on_timer(now, id, o), out);
        }
    }

    fn on_client(&mut self, now: Micros, request: Request, out: &mut Vec<Output<Self>>) {
        let half = u8::from(self.twin.is_some() && request.client % 2 == 1);
        self.drive(now, half, |e, o| e.on_client(now, request, o), out);
    }

    fn is_leader(&self) -> bool {
        self.behaviour == Behaviour::Honest && self.inner.is_leader()
    }

    fn persist(disk: &mut Self::Disk, write: &Self::Persist) {
        <PbftNode<A> as Engine>::persist(disk, write);
    }
}
