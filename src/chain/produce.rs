//! Producing blocks on authority chains: who produces the next block and when, and the signed
//! block itself. The CLI's miner simulates every producer of the spec in one process, with
//! chain time running ahead of the wall clock (like proof of stake's virtual clock), so a
//! demo chain of hundreds of blocks takes seconds.

use crate::chain::authority::{Authority, DposState, PoaState};
use crate::chain::record::BlockRecord;
use crate::chain::state::ChainState;
use crate::dpos::round_of;
use crate::primitives::tx::{KeyPair, PubKey, SignerVote, Transaction};

/// Why no block can be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// Clique: too few signers are online to satisfy the recency rule.
    #[error(
        "the chain halts at height {height}: no online signer may seal (online {online} of \
         {signers}; Clique needs ⌊N/2⌋+1 = {needed} to take turns)"
    )]
    Halted {
        /// The height that cannot be sealed.
        height: u32,
        /// Online signers.
        online: usize,
        /// Current signers.
        signers: usize,
        /// ⌊N/2⌋ + 1.
        needed: usize,
    },
    /// DPoS: a whole round passed with every scheduled producer offline.
    #[error("no online producer is scheduled in the {0} slots after the tip")]
    NoProducer(u64),
    /// The chain's rule is not an authority rule, or the key of a producer is not known.
    #[error("{0}")]
    Unsupported(String),
}

fn key_for<'a>(keys: &'a [KeyPair], pubkey: &PubKey) -> Result<&'a KeyPair, ProduceError> {
    keys.iter()
        .find(|k| k.pubkey() == *pubkey)
        .ok_or_else(|| ProduceError::Unsupported(format!("no key for producer {pubkey}")))
}

fn seal(
    state: &ChainState,
    key: &KeyPair,
    time: u32,
    seal: Transaction,
    txs: Vec<Transaction>,
    extra_nonce: u64,
) -> BlockRecord {
    let mut block = state.block_template(time, key.pubkey(), txs);
    if let Some(Transaction::Coinbase { extra_nonce: n, .. }) = block.txs.first_mut() {
        *n = extra_nonce;
    }
    block.txs.insert(1, seal);
    block.header.merkle_root = block.compute_merkle_root().root;
    let mut record = BlockRecord::new(state.next_height(), &block, None);
    record.signature = Some(key.sign(record.hash.as_bytes()));
    record
}

/// The Clique signer for the next block, one period after the tip: the in-turn signer if it
/// is online and may seal, else — out of turn — the online signer furthest back in the rotation
/// that the recency rule allows (the one that sealed longest ago, which leaves the coming
/// in-turn signers free). Returns the signer and whether it is in turn.
///
/// # Errors
/// [`ProduceError::Halted`] when no online signer may seal.
pub fn poa_sealer(
    poa: &PoaState,
    height: u32,
    offline: &[PubKey],
) -> Result<(PubKey, bool), ProduceError> {
    let snap = poa.snapshot();
    let signers = snap.signers();
    let n = signers.len();
    if n == 0 {
        return Err(ProduceError::Halted {
            height,
            online: 0,
            signers: 0,
            needed: 1,
        });
    }
    let first = (u64::from(height) % n as u64) as usize;
    std::iter::once(first)
        .chain((1..n).map(|back| (first + n - back) % n))
        .map(|i| signers[i])
        .find(|s| !offline.contains(s) && snap.may_seal(s))
        .map(|s| (s, s == signers[first]))
        .ok_or(ProduceError::Halted {
            height,
            online: signers.iter().filter(|s| !offline.contains(s)).count(),
            signers: n,
            needed: n / 2 + 1,
        })
}

/// Builds and seals the next proof-of-authority block, one period after the tip, carrying
/// `proposal` if it is still meaningful and the block is not a checkpoint.
///
/// # Errors
/// [`ProduceError`] when no online signer may seal.
pub fn poa_block(
    state: &ChainState,
    keys: &[KeyPair],
    offline: &[PubKey],
    proposal: Option<SignerVote>,
    transfers: Vec<Transaction>,
) -> Result<BlockRecord, ProduceError> {
    let Some(Authority::Poa(poa)) = state.authority() else {
        return Err(ProduceError::Unsupported(
            "not a proof-of-authority chain".into(),
        ));
    };
    let tip = state.tip().expect("genesis is connected");
    let height = tip.height + 1;
    let (signer, in_turn) = poa_sealer(poa, height, offline)?;
    let checkpoint = poa.is_checkpoint(height);
    let signers = poa.snapshot().signers();
    let vote = proposal.filter(|v| !checkpoint && signers.contains(&v.target) != v.authorize);
    let tx = Transaction::Clique {
        signer,
        difficulty: if in_turn {
            crate::poa::DIFF_IN_TURN
        } else {
            crate::poa::DIFF_NO_TURN
        },
        vote,
        checkpoint: checkpoint.then_some(signers),
    };
    let time = tip.header.time.saturating_add(poa.period());
    Ok(seal(state, key_for(keys, &signer)?, time, tx, transfers, 0))
}

/// The next slot after the tip whose scheduled producer is online, with that producer.
///
/// # Errors
/// [`ProduceError::NoProducer`] when two rounds pass without one.
pub fn dpos_slot(
    state: &ChainState,
    dpos: &DposState,
    offline: &[PubKey],
) -> Result<(u64, u16), ProduceError> {
    let tip = state.tip().expect("genesis is connected");
    let stake_of = |k: &PubKey| state.balance(k);
    let round_slots = dpos.round_slots();
    let mut schedule = dpos.schedule().clone();
    let first = dpos.last_slot() + 1;
    for slot in first..first + 2 * round_slots {
        let round = round_of(slot, round_slots);
        if round != schedule.round {
            schedule = dpos.schedule_for(round, &tip.hash, &stake_of);
        }
        let owner = schedule.producer_at(slot, dpos.blocks_per_turn());
        if !offline.contains(&dpos.candidate_key(owner)) {
            return Ok((slot, owner));
        }
    }
    Err(ProduceError::NoProducer(2 * round_slots))
}

/// Builds and signs the DPoS block for `slot` by candidate `producer` (its key derived from
/// the spec's seed), carrying `txs` (transfers and votes); `extra_nonce` goes in the coinbase
/// (0 normally; a producer that varies it makes a different block for the same slot).
///
/// # Errors
/// [`ProduceError::Unsupported`] if the chain is not DPoS.
pub fn dpos_block(
    state: &ChainState,
    slot: u64,
    producer: u16,
    txs: Vec<Transaction>,
    extra_nonce: u64,
) -> Result<BlockRecord, ProduceError> {
    let Some(Authority::Dpos(dpos)) = state.authority() else {
        return Err(ProduceError::Unsupported("not a DPoS chain".into()));
    };
    let name = &dpos.candidate_names()[usize::from(producer)];
    let key = KeyPair::derive(&state.spec().wallet_seed, name);
    let time = u32::try_from(dpos.slot_time(slot))
        .map_err(|_| ProduceError::Unsupported(format!("slot {slot} is past the year 2106")))?;
    let tx = Transaction::Producer {
        producer: key.pubkey(),
        slot,
    };
    Ok(seal(state, &key, time, tx, txs, extra_nonce))
}
