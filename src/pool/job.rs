//! A pool's job: the next block of the chain with its coinbase cut at the extra-nonce, and the
//! check of one share against it.
//!
//! The coinbase's consensus encoding is `tag ‖ height ‖ extra_nonce (8 bytes LE) ‖ outputs`,
//! so Stratum's `coinb1` is the 5 bytes before the extra-nonce and `coinb2` the outputs after
//! it. The 8 extra-nonce bytes are `extranonce1 (4, the pool's per connection) ‖
//! extranonce2 (4, the miner's)`: a block mined through the pool has
//! `extra_nonce = u64::from_le_bytes(extranonce1 ‖ extranonce2)`, and its coinbase's txid is
//! sha256d of exactly `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`.

use crate::chain::state::ChainState;
use crate::pool::stratum::{
    EXTRANONCE1_SIZE, EXTRANONCE2_SIZE, Notify, StratumError, Submit, first_leaf_branch,
};
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::header::Header;
use crate::primitives::pow_units::Target;
use crate::primitives::tx::{Amount, PubKey, Transaction, TxOut};

/// The next block of a chain, as every miner of the pool works on it.
#[derive(Debug, Clone)]
pub struct Job {
    /// What `mining.notify` sends.
    pub notify: Notify,
    /// The block's height.
    pub height: u32,
    /// The block with a zero extra-nonce; a solved share fills in the rest.
    pub block: Block,
    /// The chain's target for the block.
    pub target: Target,
    /// The coinbase's outputs (the PPLNS split).
    pub payouts: Vec<TxOut>,
}

/// What a job is made of.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// The job's id.
    pub id: String,
    /// Whether earlier jobs are void (a new block).
    pub clean: bool,
    /// The block time (the clock; raised to the median time past + 1 as the chain requires).
    pub now: u32,
    /// Transactions after the coinbase.
    pub txs: Vec<Transaction>,
    /// Who the coinbase pays when `split` pays no one.
    pub operator: PubKey,
}

/// A share that met its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The header the miner built.
    pub header: Header,
    /// Its hash.
    pub hash: BlockHash,
    /// The coinbase's extra-nonce (`extranonce1 ‖ extranonce2`, little-endian).
    pub extra_nonce: u64,
    /// Whether the hash also meets the chain's target: a block.
    pub is_block: bool,
}

/// The limits a share's header fields must keep.
#[derive(Debug, Clone, Copy)]
pub struct ShareRules {
    /// The version bits this connection may roll (0 when it negotiated none).
    pub version_mask: u32,
    /// The share target.
    pub target: Target,
    /// The latest header time accepted (the clock plus the chain's future limit).
    pub latest_time: u32,
}

impl Job {
    /// Makes the next block on `state`'s tip: the template's coinbase paid by `split(reward)`
    /// (its outputs; an empty list pays `spec.operator` everything).
    ///
    /// # Panics
    /// When `state` has no tip (a pool always starts from a chain with its genesis).
    #[must_use]
    pub fn new(
        state: &ChainState,
        spec: JobSpec,
        split: impl FnOnce(Amount) -> Vec<TxOut>,
    ) -> Self {
        let mut block = state.block_template(spec.now, spec.operator, spec.txs);
        let reward = match &block.txs[0] {
            Transaction::Coinbase { outputs, .. } => outputs
                .iter()
                .fold(Amount::ZERO, |a, o| a.checked_add(o.value).unwrap_or(a)),
            _ => Amount::ZERO,
        };
        let mut payouts = split(reward);
        if payouts.is_empty() && reward > Amount::ZERO {
            payouts = vec![TxOut {
                value: reward,
                to: spec.operator,
            }];
        }
        if let Some(Transaction::Coinbase { outputs, .. }) = block.txs.first_mut() {
            outputs.clone_from(&payouts);
        }
        block.header.merkle_root = block.compute_merkle_root().root;
        let leaves: Vec<[u8; 32]> = block.txids().iter().map(|t| t.to_byte_array()).collect();
        let (coinb1, coinb2) = block.txs[0]
            .split_at_extra_nonce()
            .expect("a template starts with its coinbase");
        let target = block
            .header
            .bits
            .to_target()
            .expect("the required bits of a valid chain decode");
        Self {
            notify: Notify {
                job_id: spec.id,
                prev_hash: block.header.prev_hash,
                coinb1,
                coinb2,
                merkle_branch: first_leaf_branch(&leaves),
                version: block.header.version.cast_unsigned(),
                bits: block.header.bits,
                time: block.header.time,
                clean_jobs: spec.clean,
            },
            height: state.next_height(),
            block,
            target,
            payouts,
        }
    }

    /// Checks a submitted share from the connection with `extranonce1`.
    ///
    /// # Errors
    /// Code 20 for a time outside the job's window or version bits outside the negotiated
    /// mask, 23 for a hash above the share target.
    pub fn check_share(
        &self,
        extranonce1: [u8; EXTRANONCE1_SIZE],
        submit: &Submit,
        rules: &ShareRules,
    ) -> Result<Share, StratumError> {
        if submit.time < self.notify.time || submit.time > rules.latest_time.max(self.notify.time) {
            return Err(StratumError::other(format!(
                "ntime {:08x} outside the job's window {:08x}..={:08x}",
                submit.time,
                self.notify.time,
                rules.latest_time.max(self.notify.time)
            )));
        }
        let version = match submit.version_bits {
            None => self.notify.version,
            Some(bits) if bits & !rules.version_mask != 0 => {
                return Err(StratumError::other(format!(
                    "version bits {bits:08x} outside the negotiated mask {:08x}",
                    rules.version_mask
                )));
            }
            Some(bits) => (self.notify.version & !rules.version_mask) | bits,
        };
        let root = self.notify.merkle_root(&extranonce1, &submit.extranonce2);
        let header = self.notify.header(root, submit.time, submit.nonce, version);
        let hash = header.block_hash();
        if !rules.target.is_met_by(hash) {
            return Err(StratumError::new(
                StratumError::LOW_DIFFICULTY,
                "Low difficulty share",
            ));
        }
        let mut en = [0u8; EXTRANONCE1_SIZE + EXTRANONCE2_SIZE];
        en[..EXTRANONCE1_SIZE].copy_from_slice(&extranonce1);
        en[EXTRANONCE1_SIZE..].copy_from_slice(&submit.extranonce2);
        Ok(Share {
            header,
            hash,
            extra_nonce: u64::from_le_bytes(en),
            is_block: self.target.is_met_by(hash),
        })
    }

    /// The whole block a share solved.
    #[must_use]
    pub fn solved_block(&self, share: &Share) -> Block {
        let mut block = self.block.clone();
        if let Some(Transaction::Coinbase { extra_nonce, .. }) = block.txs.first_mut() {
            *extra_nonce = share.extra_nonce;
        }
        block.header = share.header;
        block
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::record::BlockRecord;
    use crate::chain::wallet::demo_transfers;
    use crate::pool::stratum::share_target;
    use crate::primitives::tx::KeyPair;

    fn regtest_with_blocks(n: u32) -> ChainState {
        let mut state = ChainState::started("regtest");
        let spec = state.spec().clone();
        for i in 0..n {
            let mut block =
                state.block_template(1_800_000_000 + i, spec.miner_key().pubkey(), Vec::new());
            while !block
                .header
                .bits
                .to_target()
                .unwrap()
                .is_met_by(block.block_hash())
            {
                block.header.nonce += 1;
            }
            let record = BlockRecord::new(state.next_height(), &block, None);
            state
                .connect(&state.check(record).unwrap(), u32::MAX)
                .unwrap();
        }
        state
    }

    fn submit(job: &Job, en2: [u8; 4], nonce: u32) -> Submit {
        Submit {
            worker: "w".into(),
            job_id: job.notify.job_id.clone(),
            extranonce2: en2,
            time: job.notify.time,
            nonce,
            version_bits: None,
        }
    }

    /// A share found through the notify's pieces is a block the chain's own check accepts,
    /// with the transfers after the coinbase (a real merkle branch) and the split outputs.
    #[test]
    fn a_solved_share_is_a_valid_block() {
        let state = regtest_with_blocks(101);
        let spec = state.spec().clone();
        let keys = spec.wallet_keys();
        let txs = demo_transfers(&state, &keys, 2, state.next_height(), &[]);
        assert_eq!(txs.len(), 2, "the first coinbase has matured");
        let alice = KeyPair::derive("x", "alice").pubkey();
        let bob = KeyPair::derive("x", "bob").pubkey();
        let job = Job::new(
            &state,
            JobSpec {
                id: "7".into(),
                clean: true,
                now: 1_800_001_000,
                txs,
                operator: spec.miner_key().pubkey(),
            },
            |reward| {
                let half = Amount::from_base_units(reward.to_base_units() / 2);
                vec![
                    TxOut {
                        value: half,
                        to: alice,
                    },
                    TxOut {
                        value: reward.checked_sub(half).unwrap(),
                        to: bob,
                    },
                ]
            },
        );
        assert_eq!(
            job.notify.merkle_branch.len(),
            2,
            "three transactions: two levels"
        );
        let rules = ShareRules {
            version_mask: 0,
            target: share_target(1e-9),
            latest_time: job.notify.time + 60,
        };
        let en1 = [1, 2, 3, 4];
        let share = (0..)
            .find_map(|n| {
                job.check_share(en1, &submit(&job, [9, 8, 7, 6], n), &rules)
                    .ok()
                    .filter(|s| s.is_block)
            })
            .unwrap();
        assert_eq!(
            share.extra_nonce,
            u64::from_le_bytes([1, 2, 3, 4, 9, 8, 7, 6])
        );
        let block = job.solved_block(&share);
        assert_eq!(block.compute_merkle_root().root, share.header.merkle_root);
        let record = BlockRecord::new(job.height, &block, None);
        state
            .check(record)
            .expect("the chain accepts the pool's block");
    }

    #[test]
    fn share_errors() {
        let state = regtest_with_blocks(1);
        let job = Job::new(
            &state,
            JobSpec {
                id: "1".into(),
                clean: true,
                now: 1_800_000_100,
                txs: Vec::new(),
                operator: state.spec().miner_key().pubkey(),
            },
            |_| Vec::new(),
        );
        assert_eq!(job.payouts.len(), 1, "an empty split pays the operator");
        assert!(job.notify.merkle_branch.is_empty());
        let rules = ShareRules {
            version_mask: 0x1fff_e000,
            target: Target::ZERO,
            latest_time: job.notify.time + 10,
        };
        let s = submit(&job, [0; 4], 0);
        assert_eq!(
            job.check_share([0; 4], &s, &rules).unwrap_err().code,
            StratumError::LOW_DIFFICULTY
        );
        let early = Submit {
            time: job.notify.time - 1,
            ..s.clone()
        };
        assert!(
            job.check_share([0; 4], &early, &rules)
                .unwrap_err()
                .message
                .contains("ntime")
        );
        let late = Submit {
            time: job.notify.time + 11,
            ..s.clone()
        };
        assert!(
            job.check_share([0; 4], &late, &rules)
                .unwrap_err()
                .message
                .contains("ntime")
        );
        let outside = Submit {
            version_bits: Some(0x0000_0001),
            ..s.clone()
        };
        assert!(
            job.check_share([0; 4], &outside, &rules)
                .unwrap_err()
                .message
                .contains("mask")
        );
        // Rolled version bits reach the header.
        let easy = ShareRules {
            target: Target::MAX,
            ..rules
        };
        let rolled = Submit {
            version_bits: Some(0x0000_2000),
            ..s
        };
        let share = job.check_share([0; 4], &rolled, &easy).unwrap();
        assert_eq!(share.header.version, 0x2001);
    }
}
