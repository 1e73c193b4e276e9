//! Each ordering rule's engine as a node runs it ([`NodeEngine`]): built as the simulator
//! builds it, from the same spec.

use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::kafka::blocks::BlockApp as KafkaApp;
use crate::kafka::engine::{KafkaNode, Persist as KafkaPersist};
use crate::kafka::spec::KafkaSpec;
use crate::node::{BootContext, EngineStatus, NodeEngine};
use crate::paxos::blocks::BlockApp as PaxosApp;
use crate::paxos::engine::PaxosNode;
use crate::paxos::spec::PaxosSpec;
use crate::pbft::blocks::BlockApp as PbftApp;
use crate::pbft::byzantine::{Behaviour, Replica};
use crate::pbft::spec::PbftSpec;
use crate::primitives::tx::KeyPair;
use crate::raft::blocks::{BlockApp as RaftApp, RaftBlock};
use crate::raft::engine::{Durable as RaftDurable, Entry, Persist as RaftPersist, RaftNode};
use crate::raft::spec::RaftSpec;
use crate::sim::SimRng;
use crate::zab::blocks::BlockApp as ZabApp;
use crate::zab::engine::{Persist as ZabPersist, ZabNode};
use crate::zab::spec::ZabSpec;

/// The key a member seals blocks with: its wallet key from the spec's seed.
fn member_key(ctx: &BootContext, name: &str) -> KeyPair {
    KeyPair::derive(&ctx.spec.wallet_seed, name)
}

fn no_byzantine(ctx: &BootContext, rule: &str) -> Result<(), String> {
    match &ctx.byzantine {
        Some(kind) => Err(format!("{rule} has no Byzantine mode ({kind} given)")),
        None => Ok(()),
    }
}

/// Raft's engine over a chain.
pub type RaftEngine = RaftNode<RaftApp>;

impl NodeEngine for RaftEngine {
    fn boot(
        ctx: &BootContext,
        disk: &RaftDurable<Arc<RaftBlock>>,
        rng: SimRng,
    ) -> Result<Self, String> {
        no_byzantine(ctx, "raft")?;
        let raft = ctx
            .spec
            .section::<RaftSpec>()
            .ok_or("the spec has no raft section")?;
        let key = member_key(ctx, &raft.members[ctx.id]);
        let app = RaftApp::new(ctx.genesis.clone(), key, ctx.origin);
        Ok(Self::new(
            crate::raft::cluster::node_config(raft, ctx.id),
            disk,
            rng,
            app,
        ))
    }

    fn block(commit: &Arc<Entry<Arc<RaftBlock>>>) -> Option<BlockRecord> {
        commit.command.as_ref().map(|b| b.record.clone())
    }

    fn status(&self) -> EngineStatus {
        EngineStatus {
            role: self.role().to_string(),
            term_name: "term",
            term: self.term(),
            leader: self.leader(),
        }
    }

    fn describe_write(write: &RaftPersist<Arc<RaftBlock>>) -> Option<String> {
        match write {
            RaftPersist::Truncate(index) => Some(format!(
                "log truncated after index {index}: entries the leader does not hold are dropped"
            )),
            _ => None,
        }
    }
}

/// PBFT's engine over a chain: a replica, honest or as `--byzantine` names it.
pub type PbftEngine = Replica<PbftApp>;

/// The Byzantine modes one PBFT node process can run (`twins` needs two copies of a node).
const PBFT_BYZANTINE: &[&str] = &["silent", "equivocate", "forge", "slow-primary", "replay"];

impl NodeEngine for PbftEngine {
    const BYZANTINE: &'static [&'static str] = PBFT_BYZANTINE;

    fn boot(ctx: &BootContext, disk: &Self::Disk, rng: SimRng) -> Result<Self, String> {
        let behaviour = match ctx.byzantine.as_deref() {
            None => Behaviour::Honest,
            Some("twins") => {
                return Err(format!(
                    "the Byzantine mode twins runs two copies of a node, which one node process \
                     cannot: pick one of {}",
                    PBFT_BYZANTINE.join(", ")
                ));
            }
            Some(kind) if PBFT_BYZANTINE.contains(&kind) => kind.parse::<Behaviour>()?,
            Some(kind) => {
                return Err(format!(
                    "unknown Byzantine mode {kind} ({})",
                    PBFT_BYZANTINE.join(", ")
                ));
            }
        };
        let pbft = ctx
            .spec
            .section::<PbftSpec>()
            .ok_or("the spec has no pbft section")?;
        let base = crate::pbft::cluster::base_sequence(&ctx.genesis);
        let config = crate::pbft::cluster::node_config(&ctx.spec, pbft, ctx.id, base);
        let twins = vec![false; pbft.members.len()];
        Ok(crate::pbft::cluster::boot_replica(
            config,
            &ctx.genesis,
            ctx.origin,
            behaviour,
            &twins,
            disk,
            rng,
        ))
    }

    fn block(commit: &Self::Commit) -> Option<BlockRecord> {
        if !commit.applied {
            // A block that no longer fit the chain: executed as a no-op.
            return None;
        }
        commit.block.as_ref().map(|b| b.certified(commit))
    }

    fn status(&self) -> EngineStatus {
        let engine = self.engine();
        let view = engine.view();
        let primary = engine.config().primary(view);
        let role = if engine.changing() {
            "changing view"
        } else if primary == engine.config().id {
            "primary"
        } else {
            "backup"
        };
        let role = match self.behaviour() {
            Behaviour::Honest => role.to_string(),
            b => format!("{role} (byzantine: {b})"),
        };
        EngineStatus {
            role,
            term_name: "view",
            term: view,
            leader: Some(primary),
        }
    }
}

/// Paxos's engine over a chain.
pub type PaxosEngine = PaxosNode<PaxosApp>;

impl NodeEngine for PaxosEngine {
    fn boot(ctx: &BootContext, disk: &Self::Disk, rng: SimRng) -> Result<Self, String> {
        no_byzantine(ctx, "paxos")?;
        ctx.spec
            .section::<PaxosSpec>()
            .ok_or("the spec has no paxos section")?;
        let last = crate::paxos::cluster::last_slot(&ctx.genesis).unwrap_or(0);
        let config = crate::paxos::cluster::node_config(&ctx.spec, ctx.id, last);
        Ok(crate::paxos::cluster::boot_node(
            config,
            &ctx.genesis,
            ctx.origin,
            disk,
            rng,
        ))
    }

    fn block(commit: &Self::Commit) -> Option<BlockRecord> {
        commit.value.as_ref().map(|b| b.certified(commit))
    }

    fn status(&self) -> EngineStatus {
        EngineStatus {
            role: self.role().to_string(),
            // The round of the highest ballot it promised: durable, so a restart never
            // shows it going back (its own ballot is forgotten until it campaigns again).
            term_name: "ballot",
            term: self.promised().round,
            leader: self.leader(),
        }
    }
}

/// ZAB's engine over a chain.
pub type ZabEngine = ZabNode<ZabApp>;

impl NodeEngine for ZabEngine {
    const FIFO: bool = true;

    fn boot(ctx: &BootContext, disk: &Self::Disk, rng: SimRng) -> Result<Self, String> {
        no_byzantine(ctx, "zab")?;
        let zab = ctx
            .spec
            .section::<ZabSpec>()
            .ok_or("the spec has no zab section")?;
        let key = member_key(ctx, &zab.members[ctx.id]);
        Ok(crate::zab::cluster::boot_node(
            crate::zab::cluster::node_config(zab, ctx.id),
            &ctx.genesis,
            key,
            ctx.origin,
            disk,
            rng,
        ))
    }

    fn block(commit: &Self::Commit) -> Option<BlockRecord> {
        Some(crate::zab::blocks::certified(
            &commit.txn.command,
            &commit.cert,
        ))
    }

    fn status(&self) -> EngineStatus {
        EngineStatus {
            role: self.role().to_string(),
            term_name: "epoch",
            term: self.current_epoch(),
            leader: self.leader(),
        }
    }

    fn describe_write(write: &Self::Persist) -> Option<String> {
        match write {
            ZabPersist::Truncate(zxid) => Some(format!(
                "history truncated after zxid {zxid} (TRUNC): proposals the leader does not hold are dropped"
            )),
            ZabPersist::Snapshot(txns) => Some(format!(
                "history replaced by the leader's snapshot (SNAP) of {} transactions",
                txns.len()
            )),
            _ => None,
        }
    }
}

/// Kafka's engine over a chain: a broker of the partition and a member of its controller
/// quorum.
pub type KafkaEngine = KafkaNode<KafkaApp>;

impl NodeEngine for KafkaEngine {
    fn boot(ctx: &BootContext, disk: &Self::Disk, rng: SimRng) -> Result<Self, String> {
        no_byzantine(ctx, "kafka")?;
        let kafka = ctx
            .spec
            .section::<KafkaSpec>()
            .ok_or("the spec has no kafka section")?;
        let key = member_key(ctx, &kafka.members[ctx.id]);
        let start = crate::kafka::cluster::initial_disk(&ctx.genesis).base;
        Ok(crate::kafka::cluster::boot_node(
            crate::kafka::cluster::node_config(kafka, ctx.id),
            &ctx.genesis,
            key,
            ctx.origin,
            start,
            disk,
            rng,
        ))
    }

    fn block(commit: &Self::Commit) -> Option<BlockRecord> {
        Some(commit.record.data.certified(&commit.cert))
    }

    /// The partition's role in its leader epoch and its leader (what the data path
    /// follows); the term is the controller quorum's, which a restart keeps (the leader
    /// epoch is known again only once the restarted broker hears the metadata).
    fn status(&self) -> EngineStatus {
        let controller = self.controller();
        EngineStatus {
            role: format!(
                "{} in leader epoch {} (controller {})",
                self.role(),
                self.epoch(),
                controller.role()
            ),
            term_name: "controller term",
            term: controller.term(),
            leader: self.leader(),
        }
    }

    fn describe_write(write: &Self::Persist) -> Option<String> {
        match write {
            KafkaPersist::Truncate(offset) => Some(format!(
                "log truncated from offset {offset}: records the leader does not hold are dropped"
            )),
            KafkaPersist::Controller(RaftPersist::Truncate(index)) => Some(format!(
                "controller log truncated after index {index}: entries its leader does not hold are dropped"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each engine as a node runs it, over links and a disk that carry only its encodings:
    //! every message crosses as MessagePack and arrives decoded, every write reaches the disk
    //! decoded — real traffic round-trips, and a node restarts from what it wrote.

    use std::collections::{BTreeMap, VecDeque};

    use super::*;
    use crate::chain::spec::{ChainSpec, ClusterSection};
    use crate::node::wire::{decode, encode};
    use crate::sim::{Micros, NodeId, Output, Request};

    struct Node<E: NodeEngine> {
        engine: E,
        disk: E::Disk,
        timers: BTreeMap<u8, Micros>,
        blocks: Vec<BlockRecord>,
    }

    fn context(spec: &ChainSpec, id: NodeId) -> BootContext {
        BootContext {
            spec: spec.clone(),
            genesis: crate::sim::cluster::genesis_state(spec).unwrap(),
            id,
            origin: spec.genesis.time + 600,
            byzantine: None,
        }
    }

    /// The rule's demo spec with `nodes` members.
    fn spec_of<S: ClusterSection>(name: &str, nodes: usize) -> ChainSpec {
        let demo = ChainSpec::builtin(name).unwrap();
        crate::chain::spec::cluster_spec::<S>(&demo, Some(nodes), &BTreeMap::new()).unwrap()
    }

    struct Net<E: NodeEngine> {
        nodes: Vec<Node<E>>,
        links: VecDeque<(NodeId, NodeId, Vec<u8>)>,
        now: Micros,
        writes: usize,
        messages: usize,
    }

    impl<E: NodeEngine> Net<E> {
        fn apply(&mut self, id: NodeId, out: Vec<Output<E>>) {
            for o in out {
                match o {
                    Output::Send(to, msg) => {
                        self.messages += 1;
                        self.links.push_back((id, to, encode(&msg)));
                    }
                    Output::Timer(t, at) => {
                        self.nodes[id].timers.insert(t, at);
                    }
                    Output::Persist(w) => {
                        self.writes += 1;
                        let w: E::Persist = decode(&encode(&w)).expect("a write decodes");
                        E::persist(&mut self.nodes[id].disk, &w);
                    }
                    Output::Commit(c) => {
                        if let Some(record) = E::block(&c) {
                            self.nodes[id].blocks.push(record);
                        }
                    }
                    Output::Reply(_) | Output::Note(_) => {}
                }
            }
        }

        /// One step: the next message on the links, else the earliest timer.
        fn step(&mut self) {
            let mut out = Vec::new();
            if let Some((from, to, bytes)) = self.links.pop_front() {
                let msg: E::Msg = decode(&bytes).expect("a message decodes");
                self.nodes[to]
                    .engine
                    .on_message(self.now, from, msg, &mut out);
                self.apply(to, out);
                return;
            }
            let (id, t, at) = self
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.timers.iter().map(move |(t, at)| (i, *t, *at)))
                .min_by_key(|(i, t, at)| (*at, *i, *t))
                .expect("a timer is armed");
            self.nodes[id].timers.remove(&t);
            self.now = self.now.max(at);
            self.nodes[id].engine.on_timer(self.now, t, &mut out);
            self.apply(id, out);
        }

        fn answered(&self, id: NodeId, request: Request) -> bool {
            self.nodes[id]
                .blocks
                .iter()
                .any(|b| b.requests().contains(&request))
        }
    }

    /// Boots `n` nodes of `spec` through [`NodeEngine::boot`], has a client submit one
    /// request (again every 200 ms until it is in a block everywhere), and checks the blocks
    /// and a restart from node 0's disk.
    fn round_trip<E: NodeEngine>(spec: &ChainSpec, n: usize) {
        let nodes = (0..n)
            .map(|id| Node {
                engine: E::boot(
                    &context(spec, id),
                    &E::Disk::default(),
                    SimRng::new(id as u64 + 7),
                )
                .unwrap(),
                disk: E::Disk::default(),
                timers: BTreeMap::new(),
                blocks: Vec::new(),
            })
            .collect();
        let mut net = Net::<E> {
            nodes,
            links: VecDeque::new(),
            now: 0,
            writes: 0,
            messages: 0,
        };
        for id in 0..n {
            let mut out = Vec::new();
            net.nodes[id].engine.start(0, &mut out);
            net.apply(id, out);
        }
        let request = Request {
            client: 1,
            serial: 1,
        };
        let mut next_submit = 0;
        let mut steps = 0;
        while !(0..n).all(|id| net.answered(id, request)) {
            assert!(
                steps < 50_000,
                "no block with the request after {steps} steps"
            );
            assert!(net.now < 30_000 * crate::sim::MS, "no block after 30 s");
            if net.now >= next_submit && net.links.is_empty() {
                for id in 0..n {
                    let mut out = Vec::new();
                    net.nodes[id].engine.on_client(net.now, request, &mut out);
                    net.apply(id, out);
                }
                next_submit = net.now + 200 * crate::sim::MS;
            }
            net.step();
            steps += 1;
        }
        assert!(net.messages > 0 && net.writes > 0);
        for node in &net.nodes {
            assert!(!node.blocks.is_empty());
            let common = node.blocks.len().min(net.nodes[0].blocks.len());
            let hashes = |b: &[BlockRecord]| b[..common].iter().map(|r| r.hash).collect::<Vec<_>>();
            assert_eq!(hashes(&node.blocks), hashes(&net.nodes[0].blocks));
            for record in &node.blocks {
                assert!(
                    record.certificate.is_some() || record.txs.len() > 1,
                    "{record:?}"
                );
                assert!(
                    record.requests().contains(&request),
                    "a block without the only request: {record:?}"
                );
            }
        }
        // A fifth engine: node 0 restarted from the disk its decoded writes built.
        let before = net.nodes[0].engine.status();
        let mut restarted =
            E::boot(&context(spec, 0), &net.nodes[0].disk, SimRng::new(99)).unwrap();
        let mut out = Vec::new();
        restarted.start(net.now, &mut out);
        let after = restarted.status();
        assert_eq!(after.term_name, before.term_name);
        assert!(
            after.term >= before.term,
            "restarted at {} {} after {}",
            after.term_name,
            after.term,
            before.term
        );
    }

    #[test]
    fn raft_round_trips_real_traffic() {
        round_trip::<RaftEngine>(&spec_of::<RaftSpec>("raft-demo", 3), 3);
    }

    #[test]
    fn pbft_round_trips_real_traffic() {
        // Four replicas: the fewest that tolerate a fault (n = 3f + 1).
        round_trip::<PbftEngine>(&spec_of::<PbftSpec>("pbft-demo", 4), 4);
    }

    #[test]
    fn paxos_round_trips_real_traffic() {
        round_trip::<PaxosEngine>(&spec_of::<PaxosSpec>("paxos-demo", 3), 3);
    }

    #[test]
    fn zab_round_trips_real_traffic() {
        round_trip::<ZabEngine>(&spec_of::<ZabSpec>("zab-demo", 3), 3);
    }

    #[test]
    fn kafka_round_trips_real_traffic() {
        round_trip::<KafkaEngine>(&spec_of::<KafkaSpec>("kafka-demo", 3), 3);
    }

    #[test]
    fn pbft_boots_the_byzantine_modes_one_process_can_run() {
        let spec = spec_of::<PbftSpec>("pbft-demo", 4);
        let boot = |kind: &str| {
            let ctx = BootContext {
                byzantine: Some(kind.to_string()),
                ..context(&spec, 1)
            };
            PbftEngine::boot(&ctx, &Default::default(), SimRng::new(1)).map(|e| e.behaviour())
        };
        for kind in PbftEngine::BYZANTINE {
            assert_eq!(boot(kind).unwrap().name(), *kind);
        }
        assert!(boot("twins").unwrap_err().contains("two copies"));
        let unknown = boot("lazy").unwrap_err();
        assert!(unknown.contains("unknown Byzantine mode lazy"), "{unknown}");
        let ctx = BootContext {
            byzantine: Some("silent".into()),
            ..context(&spec_of::<ZabSpec>("zab-demo", 3), 0)
        };
        assert!(ZabEngine::boot(&ctx, &Default::default(), SimRng::new(1)).is_err());
    }
}
