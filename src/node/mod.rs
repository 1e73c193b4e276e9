//! Real nodes: every ordering rule's engine, unchanged, under a real runtime — TCP links
//! between processes, a write-ahead log synced before anything that depends on it leaves the
//! node, the wall clock, and a chain file per node in the usual format.
//!
//! - [`config`]: the cluster file (`cluster.toml`) every node and client reads.
//! - [`wire`]: frames, the authenticated handshake, the client protocol.
//! - [`wal`]: the engine's durable state, as a log of its writes.
//! - [`run`]: one node process: an engine thread stepping the engine, and tokio tasks for
//!   the links, the listener and the clients.
//! - [`faults`]: the per-link fault layer (cut, drop, delay) tests and demos drive.
//! - [`client`]: `client submit|status|watch|fault`.
//! - [`local`]: `cluster up|down|kill|start`, node processes on 127.0.0.1.
//!
//! Each rule plugs in through [`NodeEngine`]: how to boot its engine from the spec, what
//! block a commit carries, and what to show as its role and term.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::chain::record::BlockRecord;
use crate::chain::spec::ChainSpec;
use crate::chain::state::ChainState;
use crate::sim::{Engine, NodeId, SimRng};

pub mod client;
pub mod config;
pub mod faults;
pub mod local;
pub mod rules;
pub mod run;
pub mod wal;
pub mod wire;

/// What a node's engine is built from.
#[derive(Debug, Clone)]
pub struct BootContext {
    /// The cluster's spec (its members are the cluster's nodes).
    pub spec: ChainSpec,
    /// The chain holding only the spec's genesis block.
    pub genesis: ChainState,
    /// This node.
    pub id: NodeId,
    /// Unix time of the engine's time 0 (block times count from it).
    pub origin: u32,
    /// A Byzantine mode (PBFT only), as `--byzantine` names it.
    pub byzantine: Option<String>,
}

/// What a node shows of its engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineStatus {
    /// Its role.
    pub role: String,
    /// The name of its term counter.
    pub term_name: &'static str,
    /// The counter.
    pub term: u64,
    /// The leader it knows.
    pub leader: Option<NodeId>,
}

/// An ordering rule's engine as a real node runs it.
pub trait NodeEngine:
    Engine<Msg: Serialize + DeserializeOwned, Persist: Serialize + DeserializeOwned> + Sized
{
    /// Whether its links must be FIFO streams that report a break
    /// ([`Engine::on_disconnect`]); a real TCP link always is, and a dropped message breaks it.
    const FIFO: bool = false;
    /// The Byzantine modes `--byzantine` accepts.
    const BYZANTINE: &'static [&'static str] = &[];

    /// The engine of node `ctx.id`, restarted from `disk` (empty: first boot).
    ///
    /// # Errors
    /// A Byzantine mode the rule does not know.
    fn boot(ctx: &BootContext, disk: &Self::Disk, rng: SimRng) -> Result<Self, String>;
    /// The block a commit adds to the node's chain, with its certificate, if it carries one
    /// this node can append (a no-op carries none).
    fn block(commit: &Self::Commit) -> Option<BlockRecord>;
    /// Its role, term and leader.
    fn status(&self) -> EngineStatus;
    /// A line for the log when a write does something an operator should see (a log
    /// truncated).
    fn describe_write(_write: &Self::Persist) -> Option<String> {
        None
    }
}
