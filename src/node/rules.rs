//! Each ordering rule's engine as a node runs it ([`NodeEngine`]): built as the simulator
//! builds it, from the same spec.

use std::sync::Arc;

use crate::chain::record::BlockRecord;
use crate::node::{BootContext, EngineStatus, NodeEngine};
use crate::primitives::tx::KeyPair;
use crate::raft::blocks::{BlockApp as RaftApp, RaftBlock};
use crate::raft::engine::{Durable as RaftDurable, Entry, Persist as RaftPersist, RaftNode};
use crate::raft::spec::RaftSpec;
use crate::sim::SimRng;

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
