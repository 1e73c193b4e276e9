//! Raft as a chain rule: the seal each block carries (a `raft` transaction naming leader, term
//! and log index, and the leader's signature over the block hash), what a chain file proves by
//! itself, and the producer `mine raft` uses (a fault-free simulated cluster).
//!
//! From the file alone a verifier checks that every block is signed by a member, that terms
//! never go back and log indices always go forward, that one term has one leader, that block
//! times never go back, and that each client request is answered once (one transfer each).
//! What it cannot check is that a majority agreed: Raft trusts its leader, and a chain signed
//! by one lying member verifies. A Byzantine-fault-tolerant rule proves agreement with a
//! certificate of many signatures.

use std::collections::HashMap;
use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{ProduceError, ProduceOptions, Producer};
use crate::chain::spec::{ChainSpec, SectionDef, SpecError};
use crate::chain::state::BlockError;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, Rule, RuleError, RuleInfo, RuleReport,
    RuleState, SpecNames, TimeRule, check_miner_listed, check_no_puzzle,
};
use crate::primitives::block::Block;
use crate::primitives::tx::{ClientRequest, KeyPair, PubKey, Transaction};
use crate::raft::cluster::mine_cluster;
use crate::raft::spec::RaftSpec;
use crate::sim::cluster::ClusterProducer;

/// Why a block breaks the Raft chain rules. Leaders are named by their keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RaftError {
    /// The second transaction is not the `raft` seal.
    #[error("second transaction must be the `raft` transaction naming leader, term and index")]
    MissingSeal,
    /// The leader is not a member.
    #[error("{0} is not a member of the cluster")]
    NotMember(PubKey),
    /// The term went back.
    #[error("term {term} is below the previous block's term {previous}")]
    TermWentBack {
        /// The block's term.
        term: u64,
        /// The previous block's.
        previous: u64,
    },
    /// Two leaders signed blocks of one term.
    #[error("term {term} has two leaders: {first} and {second}")]
    TwoLeaders {
        /// The term.
        term: u64,
        /// The earlier block's leader.
        first: PubKey,
        /// This block's.
        second: PubKey,
    },
    /// The log index did not go forward.
    #[error("log index {index} does not follow the previous block's index {previous}")]
    IndexNotAfter {
        /// The block's index.
        index: u64,
        /// The previous block's.
        previous: u64,
    },
    /// The block time went back.
    #[error("time {time} is before the parent's time {parent}")]
    TimeWentBack {
        /// The block's time.
        time: u32,
        /// The parent's.
        parent: u32,
    },
    /// The requests do not match the transfers one to one.
    #[error("{requests} client requests for {transfers} transfers: each request is one transfer")]
    RequestsMismatch {
        /// Requests in the seal.
        requests: usize,
        /// Transfers in the block.
        transfers: usize,
    },
    /// A request answered twice.
    #[error("client {client} request {serial} was already answered")]
    DuplicateRequest {
        /// The client.
        client: u32,
        /// Its serial.
        serial: u64,
    },
    /// A term or log index beyond what a cluster could continue from.
    #[error("term {term} or log index {index} is above 2^62")]
    TooLarge {
        /// The block's term.
        term: u64,
        /// The block's index.
        index: u64,
    },
}

impl From<RaftError> for BlockError {
    fn from(e: RaftError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// Raft: an elected leader orders blocks; crash-fault tolerant.
#[derive(Debug, Clone, Copy)]
pub struct Raft;

const RAFT_INFO: RuleInfo = RuleInfo {
    name: "raft",
    summary: "Raft: an elected leader orders blocks, committed by a majority; survives crashes (Ongaro & Ousterhout 2014)",
    work: BlockWork::Signatures,
    demo_blocks: 20,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<RaftSpec>()),
    detects_equivocation: false,
};

impl Rule for Raft {
    fn info(&self) -> &'static RuleInfo {
        &RAFT_INFO
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<RaftSpec>()
            .map_or(1000, |r| r.block_interval_ms)
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut out = spec.clone();
        if let Some(r) = spec.section::<RaftSpec>() {
            let mut r = r.clone();
            r.block_interval_ms = u64::from(seconds) * 1000;
            out.section = Some(crate::chain::spec::RuleSection::new(r));
        }
        out
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        spec.section::<RaftSpec>()
            .map_or_else(SpecNames::default, |r| {
                SpecNames::members(&r.members, &r.genesis_coins)
            })
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let r = spec
            .section::<RaftSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "raft",
                reason: "required when consensus is raft".into(),
            })?;
        r.validate()?;
        check_miner_listed(spec, "raft.members", &r.members)?;
        check_no_puzzle(spec)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Raft {
                leader,
                term,
                index,
                ..
            }) => Some(BlockProducer {
                key: *leader,
                note: Some(format!("term {term}, index {index}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, _tx: &Transaction) -> bool {
        index == 1
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(RaftState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(RAFT_INFO.name, &[])?;
        let interval = spec
            .section::<RaftSpec>()
            .map_or(100, |r| r.block_interval_ms);
        Ok(Box::new(ClusterProducer::new(
            spec,
            options.tx_per_block,
            interval,
            mine_cluster,
        )))
    }
}

/// The largest term or log index a block may carry: far beyond any real cluster, and far
/// enough below `u64::MAX` that a cluster continuing the chain never overflows.
const MAX_SEAL: u64 = 1 << 62;

/// The state of a Raft chain after its tip.
#[derive(Debug, Clone)]
pub struct RaftState {
    members: Arc<Vec<PubKey>>,
    names: Arc<HashMap<PubKey, String>>,
    last: Option<(u64, u64, PubKey)>,
    blocks: HashMap<PubKey, u64>,
    answered: imbl::HashSet<ClientRequest>,
    height: u32,
}

impl RaftState {
    fn genesis(spec: &ChainSpec) -> Self {
        let r = spec.section::<RaftSpec>().expect("a valid raft spec");
        Self {
            members: Arc::new(
                r.members
                    .iter()
                    .map(|m| KeyPair::derive(&spec.wallet_seed, m).pubkey())
                    .collect(),
            ),
            names: Arc::new(spec.names_by_key()),
            last: None,
            blocks: HashMap::new(),
            answered: imbl::HashSet::new(),
            height: 0,
        }
    }

    /// The (term, log index) of the last block, if any block follows genesis.
    #[must_use]
    pub fn last_seal(&self) -> Option<(u64, u64)> {
        self.last.map(|(t, i, _)| (t, i))
    }

    /// Checks the block at `height` and returns the state after it.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(
        &self,
        height: u32,
        time: u32,
        parent_time: u32,
        txs: &[Transaction],
    ) -> Result<Self, RaftError> {
        let Some(Transaction::Raft {
            leader,
            term,
            index,
            requests,
        }) = txs.get(1)
        else {
            return Err(RaftError::MissingSeal);
        };
        if !self.members.contains(leader) {
            return Err(RaftError::NotMember(*leader));
        }
        if *term > MAX_SEAL || *index > MAX_SEAL {
            return Err(RaftError::TooLarge {
                term: *term,
                index: *index,
            });
        }
        if let Some((last_term, last_index, last_leader)) = self.last {
            if *term < last_term {
                return Err(RaftError::TermWentBack {
                    term: *term,
                    previous: last_term,
                });
            }
            if *term == last_term && *leader != last_leader {
                return Err(RaftError::TwoLeaders {
                    term: *term,
                    first: last_leader,
                    second: *leader,
                });
            }
            if *index <= last_index {
                return Err(RaftError::IndexNotAfter {
                    index: *index,
                    previous: last_index,
                });
            }
        }
        if time < parent_time {
            return Err(RaftError::TimeWentBack {
                time,
                parent: parent_time,
            });
        }
        let transfers = txs.len() - 2;
        if requests.len() != transfers
            || txs[2..]
                .iter()
                .any(|t| !matches!(t, Transaction::Transfer { .. }))
        {
            return Err(RaftError::RequestsMismatch {
                requests: requests.len(),
                transfers,
            });
        }
        let mut next = self.clone();
        for r in requests {
            if next.answered.insert(*r).is_some() {
                return Err(RaftError::DuplicateRequest {
                    client: r.client,
                    serial: r.serial,
                });
            }
        }
        next.last = Some((*term, *index, *leader));
        *next.blocks.entry(*leader).or_default() += 1;
        next.height = height;
        Ok(next)
    }
}

impl RuleState for RaftState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        let next = Self::check(
            self,
            block.height,
            block.header.time,
            block.parent.header.time,
            block.txs,
        )?;
        Ok(Box::new(next))
    }

    fn connected(&mut self, block: &Connected<'_>) {
        self.height = block.height;
    }

    fn report(&self) -> RuleReport {
        RuleReport::blocks_by_member("leaders", &self.members, &self.names, &self.blocks)
    }

    fn irreversible_height(&self) -> Option<u32> {
        // A block reaches the chain only once a majority stores it: it is final at once.
        Some(self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::tx::{SigBytes, TxIn, TxOut};

    fn seal(leader: &str, term: u64, index: u64, requests: &[(u32, u64)]) -> Vec<Transaction> {
        let spec = ChainSpec::builtin("raft-demo").unwrap();
        let key = KeyPair::derive(&spec.wallet_seed, leader).pubkey();
        let mut txs = vec![
            Transaction::Coinbase {
                height: 1,
                extra_nonce: 0,
                outputs: Vec::new(),
            },
            Transaction::Raft {
                leader: key,
                term,
                index,
                requests: requests
                    .iter()
                    .map(|(client, serial)| ClientRequest {
                        client: *client,
                        serial: *serial,
                    })
                    .collect(),
            },
        ];
        for _ in requests {
            txs.push(Transaction::Transfer {
                inputs: vec![TxIn {
                    txid: crate::primitives::hash::Txid::ZERO,
                    vout: 0,
                    signature: SigBytes::from_bytes([0; 64]),
                }],
                outputs: vec![TxOut {
                    value: crate::primitives::tx::Amount::ZERO,
                    to: key,
                }],
            });
        }
        txs
    }

    fn genesis() -> RaftState {
        RaftState::genesis(&ChainSpec::builtin("raft-demo").unwrap())
    }

    #[test]
    fn a_chain_file_shows_one_leader_per_term_and_terms_and_indices_going_forward() {
        let s = genesis();
        let s = s.check(1, 10, 10, &seal("s1", 1, 2, &[(1, 1)])).unwrap();
        let s = s.check(2, 10, 10, &seal("s1", 1, 3, &[])).unwrap();
        // A new leader in a later term, after a no-op at index 4.
        let s = s.check(3, 11, 10, &seal("s3", 2, 5, &[(1, 2)])).unwrap();
        assert_eq!(s.last_seal(), Some((2, 5)));
        let err = |r: Result<RaftState, RaftError>| r.unwrap_err();
        assert!(matches!(
            err(s.check(4, 11, 11, &seal("s4", 2, 6, &[]))),
            RaftError::TwoLeaders { term: 2, .. }
        ));
        assert!(matches!(
            err(s.check(4, 11, 11, &seal("s1", 1, 6, &[]))),
            RaftError::TermWentBack {
                term: 1,
                previous: 2
            }
        ));
        assert!(matches!(
            err(s.check(4, 11, 11, &seal("s3", 2, 5, &[]))),
            RaftError::IndexNotAfter {
                index: 5,
                previous: 5
            }
        ));
        assert!(matches!(
            err(s.check(4, 9, 11, &seal("s3", 2, 6, &[]))),
            RaftError::TimeWentBack {
                time: 9,
                parent: 11
            }
        ));
        assert!(matches!(
            err(s.check(4, 11, 11, &seal("mallory", 3, 6, &[]))),
            RaftError::NotMember(_)
        ));
        assert!(matches!(
            err(s.check(4, 11, 11, &seal("s3", 2, 6, &[(1, 1)]))),
            RaftError::DuplicateRequest {
                client: 1,
                serial: 1
            }
        ));
        let mut short = seal("s3", 2, 6, &[(2, 1), (2, 2)]);
        short.pop();
        assert!(matches!(
            err(s.check(4, 11, 11, &short)),
            RaftError::RequestsMismatch {
                requests: 2,
                transfers: 1
            }
        ));
        let mut unsealed = seal("s3", 2, 6, &[]);
        unsealed.remove(1);
        assert!(matches!(
            err(s.check(4, 11, 11, &unsealed)),
            RaftError::MissingSeal
        ));
    }
}
