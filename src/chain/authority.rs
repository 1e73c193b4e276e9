//! The block-producer state of authority chains — proof of authority (Clique) and delegated
//! proof of stake — as [`ChainState`](crate::chain::state::ChainState) keeps it.
//!
//! Each block names its producer in its second transaction (`clique` or `producer`), which the
//! merkle root commits to, and carries the producer's signature over the block hash (checked by
//! [`prepare`](crate::chain::state::prepare)). The states here check everything else a block
//! must satisfy — who may produce it, when, with which fields — and count blocks, missed turns
//! and irreversibility. A check returns the next state and leaves `self` untouched, so a
//! rejected block changes nothing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::chain::spec::{ChainSpec, ScheduleOrder};
use crate::dpos::{Schedule, bitshares_shuffle, elect, last_irreversible, round_of, tally};
use crate::poa::{PoaError, Snapshot, Vote};
use crate::primitives::hash::BlockHash;
use crate::primitives::header::Header;
use crate::primitives::tx::{KeyPair, PubKey, SignerVote, Transaction};

/// What one producer (signer) has done over a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProducerStats {
    /// Blocks produced.
    pub blocks: u64,
    /// Turns it owned but did not produce: DPoS slots without its block, Clique in-turn
    /// blocks sealed by someone else.
    pub missed: u64,
}

/// One producer's line in a report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRow {
    /// Its key.
    pub key: PubKey,
    /// Its spec name, or the start of its key's hex when the spec does not name it.
    pub name: String,
    /// What it did.
    pub stats: ProducerStats,
}

/// Why a block breaks the producer rules. Messages name producers by their spec names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthorityError {
    /// The second transaction is not the consensus rule's seal.
    #[error("second transaction must be the `{0}` transaction naming the producer")]
    MissingSeal(&'static str),
    /// Clique: the sealer is not a signer.
    #[error("{0} is not an authorized signer")]
    Unauthorized(String),
    /// Clique: the sealer sealed one of the last ⌊N/2⌋ blocks.
    #[error(
        "{signer} already sealed block {previous}: a signer may seal one of any {window} consecutive blocks"
    )]
    RecentlySigned {
        /// The sealer.
        signer: String,
        /// Its recent block.
        previous: u64,
        /// ⌊N/2⌋ + 1.
        window: u64,
    },
    /// Clique: the difficulty does not match the signer's turn.
    #[error("difficulty {actual}, but {signer} is {turn} and must seal with difficulty {expected}")]
    WrongDifficulty {
        /// The sealer.
        signer: String,
        /// "in turn" or "out of turn".
        turn: &'static str,
        /// 2 or 1.
        expected: u8,
        /// The block's.
        actual: u8,
    },
    /// Clique: the block comes less than one period after its parent.
    #[error("time {time} is less than the period {period} s after the parent's time {parent}")]
    TooSoon {
        /// The block's time.
        time: u32,
        /// The parent's time.
        parent: u32,
        /// The block period.
        period: u32,
    },
    /// Clique: a checkpoint block's signer list is missing or wrong.
    #[error(
        "checkpoint block (height a multiple of the epoch {epoch}) must list the {count} current signers, sorted"
    )]
    BadCheckpoint {
        /// The epoch.
        epoch: u32,
        /// The number of signers.
        count: usize,
    },
    /// Clique: a signer list on a block that is not a checkpoint.
    #[error("only checkpoint blocks (height a multiple of the epoch {0}) carry a signer list")]
    UnexpectedCheckpoint(u32),
    /// Clique: a vote on a checkpoint block.
    #[error("checkpoint blocks carry no vote")]
    VoteOnCheckpoint,
    /// DPoS: the slot does not advance.
    #[error("slot {slot} is not after the parent's slot {parent}")]
    SlotNotAfterParent {
        /// The block's slot.
        slot: u64,
        /// The parent's slot.
        parent: u64,
    },
    /// DPoS: the header time is not the slot's time.
    #[error("time {time} is not the time of slot {slot} ({expected})")]
    SlotTime {
        /// The header time.
        time: u32,
        /// The slot.
        slot: u64,
        /// The slot's time.
        expected: u64,
    },
    /// DPoS: the block was produced outside its producer's slot.
    #[error("slot {slot} (round {round}) belongs to {expected}, but {actual} produced the block")]
    WrongProducer {
        /// The slot.
        slot: u64,
        /// Its round.
        round: u64,
        /// The scheduled producer.
        expected: String,
        /// The block's producer.
        actual: String,
    },
    /// DPoS: a vote's signature is not the voter's.
    #[error("transaction {index}: vote signature is not valid for {voter}")]
    BadVoteSignature {
        /// Position in the block.
        index: usize,
        /// The voter.
        voter: String,
    },
    /// DPoS: a vote's sequence number is not the next one.
    #[error("transaction {index}: vote seq {actual} by {voter}, expected {expected}")]
    VoteSeq {
        /// Position in the block.
        index: usize,
        /// The voter.
        voter: String,
        /// The next sequence number.
        expected: u32,
        /// The vote's.
        actual: u32,
    },
    /// DPoS: a vote lists too many, unknown or unsorted candidates.
    #[error("transaction {index}: {reason}")]
    BadVote {
        /// Position in the block.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

/// The authority state of a chain, by consensus rule.
#[derive(Debug, Clone)]
pub enum Authority {
    /// Proof of authority.
    Poa(PoaState),
    /// Delegated proof of stake.
    Dpos(DposState),
}

impl Authority {
    /// The genesis state of `spec`, or `None` for a chain without producers.
    #[must_use]
    pub fn genesis(spec: &ChainSpec) -> Option<Self> {
        if spec.poa.is_some() {
            Some(Self::Poa(PoaState::genesis(spec)))
        } else if spec.dpos.is_some() {
            Some(Self::Dpos(DposState::genesis(spec)))
        } else {
            None
        }
    }

    /// Producers by name with what they did, in spec order (PoA: then signers voted in).
    #[must_use]
    pub fn producer_stats(&self) -> Vec<ProducerRow> {
        match self {
            Self::Poa(p) => p.producer_stats(),
            Self::Dpos(d) => d.producer_stats(),
        }
    }

    /// The last irreversible height.
    #[must_use]
    pub const fn irreversible_height(&self) -> u32 {
        match self {
            Self::Poa(p) => p.lib,
            Self::Dpos(d) => d.lib,
        }
    }
}

/// `key`'s name in `names`, or the start of its hex for a key the spec does not name.
fn name_in(names: &HashMap<PubKey, String>, key: &PubKey) -> String {
    names.get(key).cloned().unwrap_or_else(|| {
        let hex = key.to_string();
        format!("key {}…", &hex[..16])
    })
}

/// Proof-of-authority state: the Clique snapshot plus counts and the irreversible height.
#[derive(Debug, Clone)]
pub struct PoaState {
    snapshot: Snapshot<PubKey>,
    period: u32,
    epoch: u32,
    names: Arc<HashMap<PubKey, String>>,
    order: Vec<PubKey>,
    stats: HashMap<PubKey, ProducerStats>,
    sealers: VecDeque<PubKey>,
    lib: u32,
}

impl PoaState {
    fn genesis(spec: &ChainSpec) -> Self {
        let poa = spec.poa.as_ref().expect("a proof-of-authority spec");
        let keys: Vec<PubKey> = poa
            .signers
            .iter()
            .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
            .collect();
        Self {
            snapshot: Snapshot::genesis(keys.iter().copied(), u64::from(poa.epoch)),
            period: spec.target_spacing_s,
            epoch: poa.epoch,
            names: Arc::new(spec.names_by_key()),
            order: keys,
            stats: HashMap::new(),
            sealers: VecDeque::new(),
            lib: 0,
        }
    }

    /// The name of `key`: its spec wallet name, or the start of its hex.
    #[must_use]
    pub fn name_of(&self, key: &PubKey) -> String {
        name_in(&self.names, key)
    }

    /// The Clique snapshot after the tip.
    #[must_use]
    pub const fn snapshot(&self) -> &Snapshot<PubKey> {
        &self.snapshot
    }

    /// The block period in seconds.
    #[must_use]
    pub const fn period(&self) -> u32 {
        self.period
    }

    /// Whether blocks at `height` are checkpoints.
    #[must_use]
    pub const fn is_checkpoint(&self, height: u32) -> bool {
        height.is_multiple_of(self.epoch)
    }

    fn producer_stats(&self) -> Vec<ProducerRow> {
        self.order
            .iter()
            .map(|k| ProducerRow {
                key: *k,
                name: self.name_of(k),
                stats: self.stats.get(k).copied().unwrap_or_default(),
            })
            .collect()
    }

    /// Checks the block at `height` (header, parent header, transactions) against the Clique
    /// rules and returns the state after it.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(
        &self,
        height: u32,
        header: &Header,
        parent: &Header,
        txs: &[Transaction],
    ) -> Result<Self, AuthorityError> {
        let Some(Transaction::Clique {
            signer,
            difficulty,
            vote,
            checkpoint,
        }) = txs.get(1)
        else {
            return Err(AuthorityError::MissingSeal("clique"));
        };
        let min_time = u64::from(parent.time) + u64::from(self.period);
        if u64::from(header.time) < min_time {
            return Err(AuthorityError::TooSoon {
                time: header.time,
                parent: parent.time,
                period: self.period,
            });
        }
        let signers = self.snapshot.signers();
        if self.is_checkpoint(height) {
            if vote.is_some() {
                return Err(AuthorityError::VoteOnCheckpoint);
            }
            if checkpoint.as_ref() != Some(&signers) {
                return Err(AuthorityError::BadCheckpoint {
                    epoch: self.epoch,
                    count: signers.len(),
                });
            }
        } else if checkpoint.is_some() {
            return Err(AuthorityError::UnexpectedCheckpoint(self.epoch));
        }
        let number = u64::from(height);
        let in_turn = self.snapshot.in_turn(number, signer);
        let expected = self.snapshot.difficulty(number, signer);
        if self.snapshot.signers().contains(signer) && *difficulty != expected {
            return Err(AuthorityError::WrongDifficulty {
                signer: self.name_of(signer),
                turn: if in_turn { "in turn" } else { "out of turn" },
                expected,
                actual: *difficulty,
            });
        }
        let mut next = self.clone();
        let vote = vote.map(|SignerVote { target, authorize }| Vote { target, authorize });
        next.snapshot.apply(signer, vote).map_err(|e| match e {
            PoaError::UnauthorizedSigner { signer, .. } => {
                AuthorityError::Unauthorized(self.name_of(&signer))
            }
            PoaError::RecentlySigned {
                signer, previous, ..
            } => AuthorityError::RecentlySigned {
                signer: self.name_of(&signer),
                previous,
                window: signers.len() as u64 / 2 + 1,
            },
        })?;
        next.stats.entry(*signer).or_default().blocks += 1;
        if !in_turn {
            let owner = signers[(number % signers.len() as u64) as usize];
            next.stats.entry(owner).or_default().missed += 1;
        }
        for k in next.snapshot.signers() {
            if !next.order.contains(&k) {
                next.order.push(k);
            }
        }
        next.sealers.push_front(*signer);
        next.sealers
            .truncate(2 * signers.len().max(next.snapshot.signers().len()));
        next.lib = next.lib.max(next.majority_sealed(height));
        Ok(next)
    }

    /// Aura-style finality (Clique itself has none): the highest block that, with the blocks
    /// on top of it, was sealed by more than half of the current signers — reverting it would
    /// take a majority of signers sealing a conflicting chain.
    fn majority_sealed(&self, tip: u32) -> u32 {
        let needed = self.snapshot.signers().len() / 2 + 1;
        let mut seen: Vec<PubKey> = Vec::with_capacity(needed);
        for (back, s) in (0u32..).zip(&self.sealers) {
            if !seen.contains(s) {
                seen.push(*s);
            }
            if seen.len() >= needed {
                return tip.saturating_sub(back);
            }
        }
        0
    }
}

/// One holder's vote in force.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ballot {
    seq: u32,
    candidates: Vec<u16>,
}

/// What a DPoS chain's state never changes, shared between the states of successive blocks
/// rather than copied into each.
#[derive(Debug)]
struct Roster {
    /// Candidate names, in spec order.
    names: Vec<String>,
    /// Candidate keys, in spec order.
    keys: Vec<PubKey>,
    /// Candidate index by name.
    by_name: HashMap<String, u16>,
    /// Every name the spec knows, by key (for messages about voters).
    key_names: HashMap<PubKey, String>,
}

/// Delegated-proof-of-stake state: votes, the round's schedule, counts and irreversibility.
#[derive(Debug, Clone)]
pub struct DposState {
    producers: usize,
    blocks_per_turn: u32,
    slot_ms: u32,
    max_votes: usize,
    order: ScheduleOrder,
    genesis_time: u32,
    roster: Arc<Roster>,
    ballots: BTreeMap<PubKey, Ballot>,
    schedule: Schedule,
    last_slot: u64,
    last_produced: Vec<Option<u32>>,
    stats: Vec<ProducerStats>,
    lib: u32,
}

impl DposState {
    fn genesis(spec: &ChainSpec) -> Self {
        let dpos = spec.dpos.as_ref().expect("a dpos spec");
        let names = dpos.candidates.clone();
        let keys: Vec<PubKey> = names
            .iter()
            .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
            .collect();
        let roster = Roster {
            by_name: (0u16..).zip(&names).map(|(i, n)| (n.clone(), i)).collect(),
            key_names: spec.names_by_key(),
            names,
            keys,
        };
        let mut ballots = BTreeMap::new();
        for h in &dpos.holders {
            let key = KeyPair::derive(&spec.wallet_seed, &h.name).pubkey();
            let mut candidates: Vec<u16> = h
                .votes
                .iter()
                .filter_map(|v| roster.by_name.get(v).copied())
                .collect();
            candidates.sort_unstable();
            ballots.insert(key, Ballot { seq: 0, candidates });
        }
        let mut stakes: HashMap<PubKey, u64> = HashMap::new();
        for out in spec.genesis_allocations() {
            *stakes.entry(out.to).or_default() += out.value.to_base_units();
        }
        let mut state = Self {
            producers: dpos.producers as usize,
            blocks_per_turn: dpos.blocks_per_turn,
            slot_ms: dpos.slot_ms,
            max_votes: dpos.max_votes as usize,
            order: dpos.order,
            genesis_time: spec.genesis.time,
            last_produced: vec![None; roster.names.len()],
            stats: vec![ProducerStats::default(); roster.names.len()],
            roster: Arc::new(roster),
            ballots,
            schedule: Schedule {
                round: 0,
                producers: Vec::new(),
            },
            last_slot: 0,
            lib: 0,
        };
        let genesis_hash = spec.genesis_block().block_hash();
        state.schedule =
            state.schedule_for(0, &genesis_hash, &|k| stakes.get(k).copied().unwrap_or(0));
        state
    }

    /// Slots per round.
    #[must_use]
    pub fn round_slots(&self) -> u64 {
        self.producers as u64 * u64::from(self.blocks_per_turn)
    }

    /// Consecutive slots per producer turn.
    #[must_use]
    pub const fn blocks_per_turn(&self) -> u32 {
        self.blocks_per_turn
    }

    /// The slot of the tip (0 at genesis).
    #[must_use]
    pub const fn last_slot(&self) -> u64 {
        self.last_slot
    }

    /// The candidates' names, in spec order.
    #[must_use]
    pub fn candidate_names(&self) -> &[String] {
        &self.roster.names
    }

    /// Candidate `i`'s key.
    #[must_use]
    pub fn candidate_key(&self, i: u16) -> PubKey {
        self.roster.keys[usize::from(i)]
    }

    /// The current round's schedule.
    #[must_use]
    pub const fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The vote sequence number a new vote by `voter` must carry.
    #[must_use]
    pub fn next_vote_seq(&self, voter: &PubKey) -> u32 {
        self.ballots.get(voter).map_or(1, |b| b.seq + 1)
    }

    /// The header time of `slot`: genesis time plus the slot's whole seconds.
    #[must_use]
    pub fn slot_time(&self, slot: u64) -> u64 {
        let since_genesis = u128::from(slot) * u128::from(self.slot_ms) / 1000;
        u64::try_from(since_genesis)
            .unwrap_or(u64::MAX)
            .saturating_add(u64::from(self.genesis_time))
    }

    /// The schedule of `round` as it will be if a block on `parent` opens it: the round in
    /// force if it is the same, else the producers elected by the votes in force now (the old
    /// ones if too few candidates have votes), in EOSIO or BitShares order.
    #[must_use]
    pub fn schedule_for(
        &self,
        round: u64,
        parent: &BlockHash,
        stake_of: &dyn Fn(&PubKey) -> u64,
    ) -> Schedule {
        if round == self.schedule.round && !self.schedule.producers.is_empty() {
            return self.schedule.clone();
        }
        let votes = tally(
            self.roster.names.len(),
            self.ballots
                .iter()
                .map(|(k, b)| (stake_of(k), b.candidates.as_slice())),
        );
        let mut producers = elect(&votes, &self.roster.names, self.producers)
            .unwrap_or_else(|| self.schedule.producers.clone());
        match self.order {
            ScheduleOrder::Eosio => {
                producers.sort_by(|a, b| {
                    self.roster.names[usize::from(*a)].cmp(&self.roster.names[usize::from(*b)])
                });
            }
            ScheduleOrder::Bitshares => {
                let bytes = parent.to_byte_array();
                let seed = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) ^ round;
                producers.sort_unstable();
                bitshares_shuffle(&mut producers, seed);
            }
        }
        Schedule { round, producers }
    }

    fn producer_stats(&self) -> Vec<ProducerRow> {
        self.roster
            .names
            .iter()
            .zip(&self.roster.keys)
            .zip(&self.stats)
            .map(|((name, key), stats)| ProducerRow {
                key: *key,
                name: name.clone(),
                stats: *stats,
            })
            .collect()
    }

    fn name_of(&self, key: &PubKey) -> String {
        name_in(&self.roster.key_names, key)
    }

    /// Counts the slots `from..to` as missed by their owners, moving `self.schedule` along the
    /// rounds they span. Whole rounds are counted at once, so a long gap costs nothing.
    fn count_missed(
        &mut self,
        from: u64,
        to: u64,
        parent: &BlockHash,
        stake_of: &dyn Fn(&PubKey) -> u64,
    ) {
        let round_slots = self.round_slots();
        let bpt = u64::from(self.blocks_per_turn);
        let mut s = from;
        while s < to {
            let round = round_of(s, round_slots);
            if round != self.schedule.round {
                self.schedule = self.schedule_for(round, parent, stake_of);
            }
            let round_start = round * round_slots + 1;
            if s == round_start && to - s >= 2 * round_slots {
                // Nothing changes between blocks: every skipped whole round has the same set.
                let full = (to - s) / round_slots - 1;
                for &p in &self.schedule.producers {
                    self.stats[usize::from(p)].missed += full * bpt;
                }
                s += full * round_slots;
                continue;
            }
            let owner = self.schedule.producer_at(s, self.blocks_per_turn);
            let turn_end = (round_start + ((s - round_start) / bpt + 1) * bpt).min(to);
            self.stats[usize::from(owner)].missed += turn_end - s;
            s = turn_end;
        }
    }

    /// Checks the block at `height` with parent `parent` — its slot, time and producer, and
    /// its votes — and returns the state after it. `stake_of` gives a holder's coins (base
    /// units) as of the parent.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(
        &self,
        height: u32,
        header: &Header,
        parent: &BlockHash,
        txs: &[Transaction],
        stake_of: &dyn Fn(&PubKey) -> u64,
    ) -> Result<Self, AuthorityError> {
        let Some(Transaction::Producer { producer, slot }) = txs.get(1) else {
            return Err(AuthorityError::MissingSeal("producer"));
        };
        let slot = *slot;
        if slot <= self.last_slot {
            return Err(AuthorityError::SlotNotAfterParent {
                slot,
                parent: self.last_slot,
            });
        }
        let expected_time = self.slot_time(slot);
        if u64::from(header.time) != expected_time {
            return Err(AuthorityError::SlotTime {
                time: header.time,
                slot,
                expected: expected_time,
            });
        }
        let mut next = self.clone();
        next.count_missed(self.last_slot + 1, slot, parent, stake_of);
        let round = round_of(slot, self.round_slots());
        if round != next.schedule.round {
            next.schedule = next.schedule_for(round, parent, stake_of);
        }
        let owner = next.schedule.producer_at(slot, self.blocks_per_turn);
        if next.roster.keys[usize::from(owner)] != *producer {
            return Err(AuthorityError::WrongProducer {
                slot,
                round,
                expected: self.roster.names[usize::from(owner)].clone(),
                actual: self.name_of(producer),
            });
        }
        for (index, tx) in txs.iter().enumerate().skip(2) {
            if let Transaction::Vote { .. } = tx {
                next.apply_vote(index, tx)?;
            }
        }
        next.last_slot = slot;
        next.stats[usize::from(owner)].blocks += 1;
        next.last_produced[usize::from(owner)] = Some(height);
        let active: Vec<Option<u32>> = next
            .schedule
            .producers
            .iter()
            .map(|&p| next.last_produced[usize::from(p)])
            .collect();
        if let Some(lib) = last_irreversible(&active) {
            next.lib = next.lib.max(lib);
        }
        Ok(next)
    }

    fn apply_vote(&mut self, index: usize, tx: &Transaction) -> Result<(), AuthorityError> {
        let Transaction::Vote {
            voter,
            seq,
            candidates,
            signature,
        } = tx
        else {
            return Ok(());
        };
        if !voter.verifies(&tx.sighash(), signature) {
            return Err(AuthorityError::BadVoteSignature {
                index,
                voter: self.name_of(voter),
            });
        }
        let expected = self.next_vote_seq(voter);
        if *seq != expected {
            return Err(AuthorityError::VoteSeq {
                index,
                voter: self.name_of(voter),
                expected,
                actual: *seq,
            });
        }
        if candidates.len() > self.max_votes {
            return Err(AuthorityError::BadVote {
                index,
                reason: format!(
                    "{} candidates, more than max_votes {}",
                    candidates.len(),
                    self.max_votes
                ),
            });
        }
        if candidates.windows(2).any(|w| w[0] >= w[1]) {
            return Err(AuthorityError::BadVote {
                index,
                reason: "candidates must be strictly ascending (sorted, no repeats)".into(),
            });
        }
        let mut approved = Vec::with_capacity(candidates.len());
        for name in candidates {
            let Some(&i) = self.roster.by_name.get(name) else {
                return Err(AuthorityError::BadVote {
                    index,
                    reason: format!("{name:?} is not a candidate"),
                });
            };
            approved.push(i);
        }
        approved.sort_unstable();
        self.ballots.insert(
            *voter,
            Ballot {
                seq: *seq,
                candidates: approved,
            },
        );
        Ok(())
    }
}
