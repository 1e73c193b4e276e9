//! Proof of authority, Clique style (EIP-225): a fixed, voted signer set.
//!
//! This module holds the consensus core as a sans-I/O state machine: [`Snapshot`] is the
//! signer set, the recent signers and the pending votes after some block, and
//! [`Snapshot::apply`] advances it by one block given who sealed it and what it voted for.
//! The rules, as go-ethereum's `consensus/clique/snapshot.go` implements EIP-225:
//!
//! * only a current signer may seal, and at most one of any `⌊N/2⌋ + 1` consecutive blocks;
//! * the in-turn signer for block `n` is `signers[n mod N]` (sorted), which seals with
//!   difficulty 2; anyone else seals out of turn with difficulty 1;
//! * a block may carry one vote, to authorize a non-signer or drop a signer; each signer has at
//!   most one live vote per target (a new one replaces it), and meaningless votes are ignored;
//! * a vote passes once more than half the current signers back it: it applies at once, every
//!   vote about that target is discarded, and a dropped signer's own votes are withdrawn;
//!   nothing cascades — only the target of the current block's vote can change;
//! * every `epoch` blocks all votes are cleared (a checkpoint); recent signers are not.

use std::collections::{BTreeMap, BTreeSet};

use imbl::OrdMap;
use std::fmt::Debug;

/// Block difficulty of a block sealed by the in-turn signer.
pub const DIFF_IN_TURN: u8 = 2;
/// Block difficulty of a block sealed out of turn.
pub const DIFF_NO_TURN: u8 = 1;

/// Why a block cannot extend a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError<K: Debug> {
    /// The sealer is not a current signer.
    #[error("block {number}: {signer:?} is not an authorized signer")]
    UnauthorizedSigner {
        /// Block number.
        number: u64,
        /// The sealer.
        signer: K,
    },
    /// The sealer sealed one of the last `⌊N/2⌋` blocks.
    #[error("block {number}: {signer:?} signed too recently (block {previous})")]
    RecentlySigned {
        /// Block number.
        number: u64,
        /// The sealer.
        signer: K,
        /// The recent block it sealed.
        previous: u64,
    },
}

/// A vote carried by a block: authorize (`true`) or drop (`false`) `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vote<K> {
    /// The account voted on.
    pub target: K,
    /// Authorize (add) or deauthorize (drop).
    pub authorize: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tally {
    authorize: bool,
    votes: usize,
}

/// The authority state after a block: signers, recent sealers and pending votes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<K: Ord + Clone + Debug> {
    epoch: u64,
    number: u64,
    signers: BTreeSet<K>,
    recents: BTreeMap<u64, K>,
    /// Pending votes, (signer, target) → authorize. Persistent maps: a snapshot is copied per
    /// block, and copying shares them instead of cloning every pending vote.
    votes: OrdMap<(K, K), bool>,
    tally: OrdMap<K, Tally>,
}

impl<K: Ord + Clone + Debug> Snapshot<K> {
    /// The state at the genesis block (number 0) with `signers` and checkpoints every `epoch`
    /// blocks (30 000 on Ethereum's Clique networks).
    ///
    /// # Panics
    /// If `epoch` is zero.
    #[must_use]
    pub fn genesis(signers: impl IntoIterator<Item = K>, epoch: u64) -> Self {
        assert!(epoch > 0, "a Clique epoch is at least one block");
        Self {
            epoch,
            number: 0,
            signers: signers.into_iter().collect(),
            recents: BTreeMap::new(),
            votes: OrdMap::new(),
            tally: OrdMap::new(),
        }
    }

    /// The current signers, sorted.
    #[must_use]
    pub fn signers(&self) -> Vec<K> {
        self.signers.iter().cloned().collect()
    }

    /// The number of the last block applied.
    #[must_use]
    pub const fn number(&self) -> u64 {
        self.number
    }

    /// Whether `signer` is in turn for block `number`: `signers[number mod N]`.
    #[must_use]
    pub fn in_turn(&self, number: u64, signer: &K) -> bool {
        let n = self.signers.len() as u64;
        n > 0
            && self
                .signers
                .iter()
                .position(|s| s == signer)
                .map(|i| i as u64)
                == Some(number % n)
    }

    /// The difficulty `signer` must seal block `number` with.
    #[must_use]
    pub fn difficulty(&self, number: u64, signer: &K) -> u8 {
        if self.in_turn(number, signer) {
            DIFF_IN_TURN
        } else {
            DIFF_NO_TURN
        }
    }

    /// Whether `signer` may seal the next block (authorized and not sealed recently).
    #[must_use]
    pub fn may_seal(&self, signer: &K) -> bool {
        let next = self.number + 1;
        let limit = self.signers.len() as u64 / 2 + 1;
        self.signers.contains(signer)
            && !self
                .recents
                .iter()
                .any(|(n, s)| s == signer && *n + limit > next)
    }

    fn cast(&mut self, target: &K, authorize: bool) -> bool {
        if self
            .tally
            .get(target)
            .is_some_and(|t| t.authorize != authorize)
        {
            return false;
        }
        // Only meaningful votes count: add a non-signer, drop a signer.
        if self.signers.contains(target) == authorize {
            return false;
        }
        let votes = self.tally.get(target).map_or(0, |t| t.votes);
        self.tally.insert(
            target.clone(),
            Tally {
                authorize,
                votes: votes + 1,
            },
        );
        true
    }

    fn uncast(&mut self, target: &K, authorize: bool) {
        if let Some(t) = self.tally.get(target).copied()
            && t.authorize == authorize
        {
            if t.votes > 1 {
                self.tally.insert(
                    target.clone(),
                    Tally {
                        votes: t.votes - 1,
                        ..t
                    },
                );
            } else {
                self.tally.remove(target);
            }
        }
    }

    /// Applies the next block, sealed by `signer` and carrying `vote`.
    ///
    /// # Errors
    /// [`SnapshotError::UnauthorizedSigner`] or [`SnapshotError::RecentlySigned`]; the snapshot is then
    /// unchanged.
    pub fn apply(&mut self, signer: &K, vote: Option<Vote<K>>) -> Result<(), SnapshotError<K>> {
        let number = self.number + 1;
        if !self.signers.contains(signer) {
            return Err(SnapshotError::UnauthorizedSigner {
                number,
                signer: signer.clone(),
            });
        }
        let limit = self.signers.len() as u64 / 2 + 1;
        if let Some((previous, _)) = self
            .recents
            .iter()
            .find(|(n, s)| *s == signer && **n + limit > number)
        {
            return Err(SnapshotError::RecentlySigned {
                number,
                signer: signer.clone(),
                previous: *previous,
            });
        }
        self.number = number;
        if number.is_multiple_of(self.epoch) {
            self.votes.clear();
            self.tally.clear();
        }
        if number >= limit {
            self.recents.remove(&(number - limit));
        }
        self.recents.insert(number, signer.clone());
        let Some(Vote { target, authorize }) = vote else {
            return Ok(());
        };
        // A signer's new vote on a target replaces its previous one.
        let key = (signer.clone(), target.clone());
        if let Some(old) = self.votes.remove(&key) {
            self.uncast(&target, old);
        }
        if self.cast(&target, authorize) {
            self.votes.insert(key, authorize);
        }
        // Any vote touching the target re-checks its tally, whichever way that tally goes: a
        // tally can reach a majority "out of bounds" when the signer set shrinks.
        let passed = self
            .tally
            .get(&target)
            .filter(|t| t.votes > self.signers.len() / 2)
            .map(|t| t.authorize);
        if let Some(add) = passed {
            if add {
                self.signers.insert(target.clone());
            } else {
                self.signers.remove(&target);
                // The set shrank: forget the sealer that just left the recency window, and
                // withdraw every vote the dropped signer cast.
                let limit = self.signers.len() as u64 / 2 + 1;
                if number >= limit {
                    self.recents.remove(&(number - limit));
                }
                let gone: Vec<((K, K), bool)> = self
                    .votes
                    .iter()
                    .filter(|((s, _), _)| *s == target)
                    .map(|(k, a)| (k.clone(), *a))
                    .collect();
                for ((s, t), a) in gone {
                    self.votes.remove(&(s, t.clone()));
                    self.uncast(&t, a);
                }
            }
            let on_target: Vec<(K, K)> = self
                .votes
                .keys()
                .filter(|(_, t)| *t == target)
                .cloned()
                .collect();
            for k in on_target {
                self.votes.remove(&k);
            }
            self.tally.remove(&target);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One block of a scenario: who seals it and its vote (`voted` empty: no vote).
    struct Block {
        signer: char,
        voted: Option<(char, bool)>,
    }

    fn b(signer: char) -> Block {
        Block {
            signer,
            voted: None,
        }
    }

    fn v(signer: char, target: char, authorize: bool) -> Block {
        Block {
            signer,
            voted: Some((target, authorize)),
        }
    }

    fn run(epoch: u64, signers: &str, blocks: &[Block]) -> Result<String, SnapshotError<char>> {
        let mut snap = Snapshot::genesis(signers.chars(), epoch);
        for blk in blocks {
            let vote = blk
                .voted
                .map(|(target, authorize)| Vote { target, authorize });
            snap.apply(&blk.signer, vote)?;
        }
        Ok(snap.signers().into_iter().collect())
    }

    /// Reference: EIP-225 test cases, as in go-ethereum `consensus/clique/snapshot_test.go`.
    #[test]
    fn eip_225_voting_scenarios() {
        const E: u64 = 30_000;
        let cases: Vec<(&str, u64, &str, Vec<Block>, &str)> = vec![
            ("single signer, no votes cast", E, "A", vec![b('A')], "A"),
            (
                "single signer, voting to add two others (only the first passes)",
                E,
                "A",
                vec![v('A', 'B', true), b('B'), v('A', 'C', true)],
                "AB",
            ),
            (
                "two signers, voting to add three others (only the first two pass)",
                E,
                "AB",
                vec![
                    v('A', 'C', true),
                    v('B', 'C', true),
                    v('A', 'D', true),
                    v('B', 'D', true),
                    b('C'),
                    v('A', 'E', true),
                    v('B', 'E', true),
                ],
                "ABCD",
            ),
            (
                "single signer, dropping itself",
                E,
                "A",
                vec![v('A', 'A', false)],
                "",
            ),
            (
                "two signers, mutual consent to drop needed (not fulfilled)",
                E,
                "AB",
                vec![v('A', 'B', false)],
                "AB",
            ),
            (
                "two signers, mutual consent to drop needed (fulfilled)",
                E,
                "AB",
                vec![v('A', 'B', false), v('B', 'B', false)],
                "A",
            ),
            (
                "three signers, two of them dropping the third",
                E,
                "ABC",
                vec![v('A', 'C', false), v('B', 'C', false)],
                "AB",
            ),
            (
                "four signers, two are not enough to drop anyone",
                E,
                "ABCD",
                vec![v('A', 'C', false), v('B', 'C', false)],
                "ABCD",
            ),
            (
                "four signers, three are enough to drop someone",
                E,
                "ABCD",
                vec![v('A', 'D', false), v('B', 'D', false), v('C', 'D', false)],
                "ABC",
            ),
            (
                "authorizations are counted once per signer per target",
                E,
                "AB",
                vec![
                    v('A', 'C', true),
                    b('B'),
                    v('A', 'C', true),
                    b('B'),
                    v('A', 'C', true),
                ],
                "AB",
            ),
            (
                "authorizing multiple accounts concurrently is permitted",
                E,
                "AB",
                vec![
                    v('A', 'C', true),
                    b('B'),
                    v('A', 'D', true),
                    b('B'),
                    b('A'),
                    v('B', 'D', true),
                    b('A'),
                    v('B', 'C', true),
                ],
                "ABCD",
            ),
            (
                "deauthorizations are counted once per signer per target",
                E,
                "AB",
                vec![
                    v('A', 'B', false),
                    b('B'),
                    v('A', 'B', false),
                    b('B'),
                    v('A', 'B', false),
                ],
                "AB",
            ),
            (
                "deauthorizing multiple accounts concurrently is permitted",
                E,
                "ABCD",
                vec![
                    v('A', 'C', false),
                    b('B'),
                    b('C'),
                    v('A', 'D', false),
                    b('B'),
                    b('C'),
                    b('A'),
                    v('B', 'D', false),
                    v('C', 'D', false),
                    b('A'),
                    v('B', 'C', false),
                ],
                "AB",
            ),
            (
                "votes from deauthorized signers are discarded immediately (deauth votes)",
                E,
                "ABC",
                vec![
                    v('C', 'B', false),
                    v('A', 'C', false),
                    v('B', 'C', false),
                    v('A', 'B', false),
                ],
                "AB",
            ),
            (
                "votes from deauthorized signers are discarded immediately (auth votes)",
                E,
                "ABC",
                vec![
                    v('C', 'D', true),
                    v('A', 'C', false),
                    v('B', 'C', false),
                    v('A', 'D', true),
                ],
                "AB",
            ),
            (
                "cascading changes are not allowed, only the account voted on may change",
                E,
                "ABCD",
                vec![
                    v('A', 'C', false),
                    b('B'),
                    b('C'),
                    v('A', 'D', false),
                    v('B', 'C', false),
                    b('C'),
                    b('A'),
                    v('B', 'D', false),
                    v('C', 'D', false),
                ],
                "ABC",
            ),
            (
                "changes reaching consensus out of bounds (via a deauth) execute on touch",
                E,
                "ABCD",
                vec![
                    v('A', 'C', false),
                    b('B'),
                    b('C'),
                    v('A', 'D', false),
                    v('B', 'C', false),
                    b('C'),
                    b('A'),
                    v('B', 'D', false),
                    v('C', 'D', false),
                    b('A'),
                    v('C', 'C', true),
                ],
                "AB",
            ),
            (
                "changes reaching consensus out of bounds may go out of consensus on first touch",
                E,
                "ABCD",
                vec![
                    v('A', 'C', false),
                    b('B'),
                    b('C'),
                    v('A', 'D', false),
                    v('B', 'C', false),
                    b('C'),
                    b('A'),
                    v('B', 'D', false),
                    v('C', 'D', false),
                    b('A'),
                    v('B', 'C', true),
                ],
                "ABC",
            ),
            (
                "pending votes do not survive authorization status changes",
                E,
                "ABCDE",
                vec![
                    v('A', 'F', true),
                    v('B', 'F', true),
                    v('C', 'F', true),
                    v('D', 'F', false),
                    v('E', 'F', false),
                    v('B', 'F', false),
                    v('C', 'F', false),
                    v('D', 'F', true),
                    v('E', 'F', true),
                    v('B', 'A', false),
                    v('C', 'A', false),
                    v('D', 'A', false),
                    v('B', 'F', true),
                ],
                "BCDEF",
            ),
            (
                "epoch transitions reset all votes",
                3,
                "AB",
                vec![v('A', 'C', true), b('B'), b('A'), v('B', 'C', true)],
                "AB",
            ),
        ];
        for (name, epoch, signers, blocks, want) in cases {
            assert_eq!(run(epoch, signers, &blocks).as_deref(), Ok(want), "{name}");
        }
    }

    /// Reference: EIP-225 failure cases (go-ethereum snapshot_test.go).
    #[test]
    fn eip_225_failure_scenarios() {
        assert!(matches!(
            run(30_000, "A", &[b('B')]),
            Err(SnapshotError::UnauthorizedSigner {
                number: 1,
                signer: 'B'
            })
        ));
        assert!(matches!(
            run(30_000, "AB", &[b('A'), b('A')]),
            Err(SnapshotError::RecentlySigned {
                number: 2,
                signer: 'A',
                previous: 1
            })
        ));
        // Recent signatures are not reset by a checkpoint block (a Rinkeby consensus split).
        assert!(matches!(
            run(3, "ABC", &[b('A'), b('B'), b('A'), b('A')]),
            Err(SnapshotError::RecentlySigned {
                number: 4,
                signer: 'A',
                previous: 3
            })
        ));
    }

    #[test]
    fn in_turn_signer_rotates_through_the_sorted_set() {
        let snap = Snapshot::genesis("CAB".chars(), 30_000);
        assert_eq!(snap.signers(), vec!['A', 'B', 'C']);
        assert!(snap.in_turn(3, &'A') && snap.in_turn(4, &'B') && snap.in_turn(5, &'C'));
        assert_eq!(snap.difficulty(4, &'B'), DIFF_IN_TURN);
        assert_eq!(snap.difficulty(4, &'A'), DIFF_NO_TURN);
        let mut s = snap;
        s.apply(&'A', None).unwrap();
        assert!(!s.may_seal(&'A'));
        assert!(s.may_seal(&'B'));
        s.apply(&'B', None).unwrap();
        // With 3 signers a signer may seal one of any 2 consecutive blocks.
        assert!(s.may_seal(&'A'));
    }
}
pub mod spec;
pub mod state;

pub use spec::PoaSpec;
pub use state::{Poa, PoaError, PoaState, poa_block, poa_sealer};
