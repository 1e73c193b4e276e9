//! The delegated-proof-of-stake rule on chainsmith's chains: each block names its producer
//! and slot in its second transaction (`producer`) and carries the producer's signature over
//! the block hash; holders' approval votes travel as `vote` transactions. [`DposState`] keeps
//! the votes, the balances that weigh them, the round's schedule, counts and irreversibility.
//! A check returns the next state and leaves `self` untouched, so a rejected block changes
//! nothing.

use std::collections::HashMap;

use imbl::OrdMap;
use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{
    Equivocation, ProduceEnv, ProduceError, ProduceOptions, Producer, Step, seal_block,
};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, RuleSection, SectionDef, SpecError};
use crate::chain::state::{BlockError, ChainState};
use crate::chain::wallet::demo_transfers;
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, ProducerRow, ProducerStats, Rule, RuleError,
    RuleInfo, RuleReport, RuleState, SpecNames, TimeRule, check_miner_listed, check_no_puzzle,
};
use crate::dpos::spec::{DposSpec, ScheduleOrder};
use crate::dpos::{
    DoubleSign, Schedule, SlotClaim, bitshares_shuffle, elect, last_irreversible, round_of, tally,
};
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{KeyPair, PubKey, SigDomain, Transaction};

/// Why a block breaks the DPoS rules. Producers and voters are named by their keys (a report
/// puts names in their place with [`crate::consensus::with_names`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DposError {
    /// The second transaction is not the consensus rule's seal.
    #[error("second transaction must be the `{0}` transaction naming the producer")]
    MissingSeal(&'static str),
    /// The slot does not advance.
    #[error("slot {slot} is not after the parent's slot {parent}")]
    SlotNotAfterParent {
        /// The block's slot.
        slot: u64,
        /// The parent's slot.
        parent: u64,
    },
    /// The header time is not the slot's time.
    #[error("time {time} is not the time of slot {slot} ({expected})")]
    SlotTime {
        /// The header time.
        time: u32,
        /// The slot.
        slot: u64,
        /// The slot's time.
        expected: u64,
    },
    /// The block was produced outside its producer's slot.
    #[error("slot {slot} (round {round}) belongs to {expected}, but {actual} produced the block")]
    WrongProducer {
        /// The slot.
        slot: u64,
        /// Its round.
        round: u64,
        /// The scheduled producer.
        expected: PubKey,
        /// The block's producer.
        actual: PubKey,
    },
    /// A vote's signature is not the voter's.
    #[error("transaction {index}: vote signature is not valid for {voter}")]
    BadVoteSignature {
        /// Position in the block.
        index: usize,
        /// The voter.
        voter: PubKey,
    },
    /// A vote's sequence number is not the next one.
    #[error("transaction {index}: vote seq {actual} by {voter}, expected {expected}")]
    VoteSeq {
        /// Position in the block.
        index: usize,
        /// The voter.
        voter: PubKey,
        /// The next sequence number.
        expected: u32,
        /// The vote's.
        actual: u32,
    },
    /// A vote lists too many, unknown or unsorted candidates.
    #[error("transaction {index}: {reason}")]
    BadVote {
        /// Position in the block.
        index: usize,
        /// What is wrong.
        reason: String,
    },
}

impl From<DposError> for BlockError {
    fn from(e: DposError) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// The most votes one block may carry: every vote costs a signature check and a ballot.
pub const MAX_VOTES_PER_BLOCK: usize = 1_000;

/// Delegated proof of stake: elected producers in scheduled slots (EOSIO, BitShares).
#[derive(Debug, Clone, Copy)]
pub struct Dpos;

const DPOS_INFO: RuleInfo = RuleInfo {
    name: "dpos",
    summary: "Delegated proof of stake: elected producers in scheduled slots (EOSIO / BitShares)",
    work: BlockWork::Signatures,
    // A round of 252 slots and enough more for blocks to become irreversible.
    demo_blocks: 300,
    time_rule: TimeRule::Scheduled,
    section: Some(SectionDef::of::<DposSpec>()),
    detects_equivocation: true,
};

impl Rule for Dpos {
    fn info(&self) -> &'static RuleInfo {
        &DPOS_INFO
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        let Some(dpos) = spec.section::<DposSpec>() else {
            return SpecNames::default();
        };
        SpecNames {
            producers: dpos.candidates.iter().map(String::as_str).collect(),
            wallets: dpos.holders.iter().map(|h| h.name.as_str()).collect(),
            genesis: dpos
                .holders
                .iter()
                .map(|h| (h.name.as_str(), h.coins.as_slice()))
                .collect(),
        }
    }

    fn spacing_ms(&self, spec: &ChainSpec) -> u64 {
        spec.section::<DposSpec>()
            .map_or(0, |d| u64::from(d.slot_ms))
    }

    fn with_spacing(&self, spec: &ChainSpec, seconds: u32) -> ChainSpec {
        let mut spec = ChainSpec {
            target_spacing_s: seconds,
            ..spec.clone()
        };
        if let Some(d) = spec.section::<DposSpec>() {
            let d = DposSpec {
                slot_ms: seconds.saturating_mul(1000),
                ..d.clone()
            };
            spec.section = Some(RuleSection::new(d));
        }
        spec
    }

    /// The exact time of the block's slot (slots are shorter than the header's seconds).
    fn block_time_ms(&self, spec: &ChainSpec, block: &Block) -> u64 {
        match (spec.section::<DposSpec>(), block.txs.get(1)) {
            (Some(d), Some(Transaction::Producer { slot, .. })) => {
                u64::from(spec.genesis.time) * 1000 + slot.saturating_mul(u64::from(d.slot_ms))
            }
            _ => u64::from(block.header.time) * 1000,
        }
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        let dpos = spec
            .section::<DposSpec>()
            .ok_or_else(|| SpecError::BadField {
                field: "dpos",
                reason: "required when consensus is dpos".into(),
            })?;
        dpos.validate()?;
        check_miner_listed(spec, "dpos.candidates", &dpos.candidates)?;
        check_no_puzzle(spec)
    }

    fn producer_of(&self, block: &Block) -> Option<BlockProducer> {
        match block.txs.get(1) {
            Some(Transaction::Producer { producer, slot }) => Some(BlockProducer {
                key: *producer,
                note: Some(format!("slot {slot}")),
            }),
            _ => None,
        }
    }

    fn is_rule_tx(&self, index: usize, tx: &Transaction) -> bool {
        index == 1 || matches!(tx, Transaction::Vote { .. })
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(DposState::genesis(spec))
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(
            DPOS_INFO.name,
            &["--offline", "--double-sign", "--votes-per-block"],
        )?;
        let holders = self
            .names(spec)
            .wallets
            .into_iter()
            .map(|n| KeyPair::derive(&spec.wallet_seed, n))
            .collect();
        Ok(Box::new(DposProducer {
            keys: spec.wallet_keys(),
            holders,
            tx_per_block: options.tx_per_block,
            votes_per_block: options.votes_per_block.unwrap_or(1),
            offline: options.offline.clone(),
            double_sign: options.double_sign,
        }))
    }
}

/// Produces every elected producer's blocks in its slots, with demo transfers and holders'
/// re-votes; offline producers miss their slots, a double-signing one signs a second block
/// for each of its slots (caught as evidence; the first is kept).
struct DposProducer {
    keys: Vec<KeyPair>,
    holders: Vec<KeyPair>,
    tx_per_block: usize,
    votes_per_block: usize,
    offline: Vec<PubKey>,
    double_sign: Option<PubKey>,
}

impl Producer for DposProducer {
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let Some(dpos) = state.rule_state_as::<DposState>() else {
            return Err(ProduceError::Unsupported("not a DPoS chain".into()));
        };
        let height = state.next_height();
        let (slot, producer) = dpos_slot(state, dpos, &self.offline)?;
        let mut txs = demo_transfers(state, &self.keys, self.tx_per_block, height, &[]);
        txs.extend(demo_votes(
            state,
            &self.holders,
            self.votes_per_block,
            height,
        ));
        txs.extend_from_slice(env.pending);
        let record = dpos_block(state, slot, producer, txs.clone(), 0)?;
        let mut evidence = Vec::new();
        let key = dpos.candidate_key(producer);
        if self.double_sign == Some(key) {
            // The faulty producer also signs a sibling block for the same slot; everyone else
            // sees both and keeps the first.
            let sibling = dpos_block(state, slot, producer, txs, 1)?;
            let claim = |r: &BlockRecord| SlotClaim {
                producer,
                slot,
                hash: r.hash,
                height,
            };
            evidence.extend(DoubleSign::check(claim(&record), claim(&sibling)).map(|d| {
                Equivocation {
                    producer: key,
                    turn: d.first.slot,
                    height,
                    hashes: [d.first.hash, d.second.hash],
                }
            }));
        }
        Ok(Step::Block(Box::new(record), evidence))
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
    /// The votes in force and the coins that weigh them: persistent maps, so that the copy of
    /// the state each block makes shares them instead of cloning every voter and holder.
    ballots: OrdMap<PubKey, Ballot>,
    schedule: Schedule,
    last_slot: u64,
    last_produced: Vec<Option<u32>>,
    stats: Vec<ProducerStats>,
    lib: u32,
    balances: OrdMap<PubKey, u64>,
}

impl DposState {
    fn genesis(spec: &ChainSpec) -> Self {
        let dpos = spec.section::<DposSpec>().expect("a valid dpos spec");
        let names = dpos.candidates.clone();
        let keys: Vec<PubKey> = names
            .iter()
            .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
            .collect();
        let roster = Roster {
            by_name: (0u16..).zip(&names).map(|(i, n)| (n.clone(), i)).collect(),
            names,
            keys,
        };
        let mut ballots = OrdMap::new();
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
            balances: OrdMap::new(),
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

    fn producer_rows(&self) -> Vec<ProducerRow> {
        self.roster
            .names
            .iter()
            .zip(&self.roster.keys)
            .zip(&self.stats)
            .map(|((name, key), stats)| ProducerRow::with_turns(*key, name.clone(), *stats))
            .collect()
    }

    /// The last irreversible height.
    #[must_use]
    pub const fn irreversible_height(&self) -> u32 {
        self.lib
    }

    /// Returns the coins `owner` holds in unspent outputs, in base units: the weight of its
    /// votes.
    #[must_use]
    pub fn balance(&self, owner: &PubKey) -> u64 {
        self.balances.get(owner).copied().unwrap_or(0)
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

    /// Checks `block` — its slot, time and producer, and its votes (their signatures through
    /// the block's [`SigCheck`]) — and returns the state after it. `stake_of` gives a
    /// holder's coins (base units) as of the parent.
    ///
    /// # Errors
    /// The first rule broken.
    pub fn check(
        &self,
        block: &BlockContext<'_>,
        stake_of: &dyn Fn(&PubKey) -> u64,
    ) -> Result<Self, DposError> {
        let (height, header, parent, txs) =
            (block.height, block.header, &block.parent.hash, block.txs);
        let Some(Transaction::Producer { producer, slot }) = txs.get(1) else {
            return Err(DposError::MissingSeal("producer"));
        };
        let slot = *slot;
        if slot <= self.last_slot {
            return Err(DposError::SlotNotAfterParent {
                slot,
                parent: self.last_slot,
            });
        }
        let expected_time = self.slot_time(slot);
        if u64::from(header.time) != expected_time {
            return Err(DposError::SlotTime {
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
            return Err(DposError::WrongProducer {
                slot,
                round,
                expected: self.roster.keys[usize::from(owner)],
                actual: *producer,
            });
        }
        let votes = txs
            .iter()
            .filter(|t| matches!(t, Transaction::Vote { .. }))
            .count();
        if votes > MAX_VOTES_PER_BLOCK {
            return Err(DposError::BadVote {
                index: 2,
                reason: format!("{votes} votes in one block, more than {MAX_VOTES_PER_BLOCK}"),
            });
        }
        for (index, tx) in txs.iter().enumerate().skip(2) {
            if let Transaction::Vote { .. } = tx {
                next.apply_vote(index, tx, block.domain, block.sigs)?;
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

    fn apply_vote(
        &mut self,
        index: usize,
        tx: &Transaction,
        domain: SigDomain,
        sigs: &dyn SigCheck,
    ) -> Result<(), DposError> {
        let Transaction::Vote {
            voter,
            seq,
            candidates,
            signature,
        } = tx
        else {
            return Ok(());
        };
        if !sigs.check(voter, &tx.sighash(domain), signature) {
            return Err(DposError::BadVoteSignature {
                index,
                voter: *voter,
            });
        }
        if self.balance(voter) == 0 {
            return Err(DposError::BadVote {
                index,
                reason: "the voter holds no coins: its vote would weigh nothing".into(),
            });
        }
        let expected = self.next_vote_seq(voter);
        if *seq != expected {
            return Err(DposError::VoteSeq {
                index,
                voter: *voter,
                expected,
                actual: *seq,
            });
        }
        if candidates.len() > self.max_votes {
            return Err(DposError::BadVote {
                index,
                reason: format!(
                    "{} candidates, more than max_votes {}",
                    candidates.len(),
                    self.max_votes
                ),
            });
        }
        if candidates.windows(2).any(|w| w[0] >= w[1]) {
            return Err(DposError::BadVote {
                index,
                reason: "candidates must be strictly ascending (sorted, no repeats)".into(),
            });
        }
        let mut approved = Vec::with_capacity(candidates.len());
        for name in candidates {
            let Some(&i) = self.roster.by_name.get(name) else {
                return Err(DposError::BadVote {
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

impl RuleState for DposState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        let stake_of = |k: &PubKey| self.balance(k);
        let next = DposState::check(self, block, &stake_of)?;
        Ok(Box::new(next))
    }

    fn connected(&mut self, block: &Connected<'_>) {
        for u in block.created {
            let b = self.balance(&u.owner);
            self.balances.insert(u.owner, b + u.value.to_base_units());
        }
        for u in block.spent {
            let b = self
                .balance(&u.owner)
                .saturating_sub(u.value.to_base_units());
            if b == 0 {
                self.balances.remove(&u.owner);
            } else {
                self.balances.insert(u.owner, b);
            }
        }
    }

    fn report(&self) -> RuleReport {
        RuleReport {
            producers: Some(("producers", self.producer_rows())),
        }
    }

    fn irreversible_height(&self) -> Option<u32> {
        Some(self.lib)
    }
}

/// Builds up to `count` demo re-votes for the block at `height`: holders taken in turn from
/// `holders` each approve a fresh pseudo-random set of 1 to `max_votes` candidates, seeded by
/// the height, with the sequence number the chain expects. Deterministic like
/// [`demo_transfers`](crate::chain::wallet::demo_transfers).
#[must_use]
pub fn demo_votes(
    state: &ChainState,
    holders: &[KeyPair],
    count: usize,
    height: u32,
) -> Vec<Transaction> {
    let (Some(dpos), Some(dstate)) = (
        state.spec().section::<DposSpec>(),
        state.rule_state_as::<DposState>(),
    ) else {
        return Vec::new();
    };
    if holders.is_empty() {
        return Vec::new();
    }
    let mut seed = u64::from(height).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let candidates = &dpos.candidates;
    (0..count.min(holders.len()))
        .map(|i| {
            let voter = &holders[(height as usize + i) % holders.len()];
            let want = 1 + (next() % u64::from(dpos.max_votes)) as usize;
            let mut picks: Vec<String> = Vec::with_capacity(want);
            while picks.len() < want.min(candidates.len()) {
                let c = &candidates[(next() % candidates.len() as u64) as usize];
                if !picks.contains(c) {
                    picks.push(c.clone());
                }
            }
            let seq = dstate.next_vote_seq(&voter.pubkey());
            Transaction::signed_vote(state.sig_domain(), voter, seq, picks)
        })
        .collect()
}

/// Every scheduled producer is offline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no online producer is scheduled in the {slots} slots after the tip")]
pub struct NoProducer {
    /// The slots searched.
    pub slots: u64,
}

impl From<NoProducer> for ProduceError {
    fn from(e: NoProducer) -> Self {
        Self::Rule(RuleError::new(e))
    }
}

/// The next slot after the tip whose scheduled producer is online, with that producer.
///
/// # Errors
/// [`NoProducer`] when two rounds pass without one.
pub fn dpos_slot(
    state: &ChainState,
    dpos: &DposState,
    offline: &[PubKey],
) -> Result<(u64, u16), ProduceError> {
    let tip = state.tip().expect("genesis is connected");
    let stake_of = |k: &PubKey| dpos.balance(k);
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
    Err(NoProducer {
        slots: 2 * round_slots,
    }
    .into())
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
    let Some(dpos) = state.rule_state_as::<DposState>() else {
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
    Ok(seal_block(state, &key, time, tx, txs, extra_nonce))
}
