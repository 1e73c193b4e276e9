//! A Paxos chain built by hand — each block proposed by a member in a ballot and certified by
//! a majority's 2b signatures — and every way its seal can be wrong, judged as `verify`
//! judges a chain file.

use std::io::Cursor;

use super::*;
use crate::chain::store::LineReader;
use crate::chain::verify::{LineErrorKind, Replay, replay};
use crate::chain::wallet::demo_transfers;
use crate::consensus::quorum::QuorumError;

/// Far enough after the demo's genesis that no block time is in the future.
const NOW: u32 = 1_577_836_800 + 100_000;

/// A Paxos chain under construction on `paxos-demo` (members `s1`…`s5`, majority 3).
struct Chain {
    state: ChainState,
    records: Vec<BlockRecord>,
    keys: Vec<KeyPair>,
    wallets: Vec<KeyPair>,
}

fn ballot(round: u64, node: u32) -> Ballot {
    Ballot { round, node }
}

impl Chain {
    fn new() -> Self {
        let spec = ChainSpec::builtin("paxos-demo").unwrap();
        let mut state = ChainState::new(spec.clone());
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        state
            .connect(&state.check(genesis.clone()).unwrap(), NOW)
            .unwrap();
        let keys = ["s1", "s2", "s3", "s4", "s5"]
            .map(|m| KeyPair::derive(&spec.wallet_seed, m))
            .to_vec();
        Self {
            wallets: spec.wallet_keys(),
            state,
            records: vec![genesis],
            keys,
        }
    }

    /// The next block as member `leader` proposes it in a ballot of `round` for `slot`.
    fn propose(
        &self,
        leader: usize,
        round: u64,
        slot: u64,
        requests: &[(u32, u64)],
    ) -> BlockRecord {
        let height = self.state.next_height();
        let transfers = demo_transfers(&self.state, &self.wallets, requests.len(), height, &[]);
        assert_eq!(transfers.len(), requests.len(), "the demo wallets can pay");
        let requests = requests
            .iter()
            .map(|&(client, serial)| ClientRequest { client, serial })
            .collect();
        unsealed_block(
            &self.state,
            &self.keys[leader],
            1_577_836_800 + height,
            round,
            slot,
            requests,
            transfers,
        )
    }

    /// `record` accepted in `ballot` by members `signers`, for the slot it names.
    fn certified(&self, mut record: BlockRecord, b: Ballot, signers: &[usize]) -> BlockRecord {
        let slot = slot_of(&record);
        let signatures = signers
            .iter()
            .map(|&i| sign_accepted(&self.keys[i], b, slot, record.hash))
            .collect();
        certify(&mut record, b, slot, signatures);
        record
    }

    fn push(&mut self, record: BlockRecord) {
        let checked = self.state.check(record.clone()).unwrap();
        self.state.connect(&checked, NOW).unwrap();
        self.records.push(record);
    }

    fn verify_with(&self, next: &BlockRecord) -> Replay {
        let mut records = self.records.clone();
        records.push(next.clone());
        verify(&records)
    }

    /// The error `verify` gives for `next`; asserts it is at `next`'s height.
    fn rejects(&self, next: &BlockRecord) -> BlockError {
        let err = self.verify_with(next).error.expect("rejected");
        assert_eq!(err.height, u64::from(self.state.next_height()), "{err}");
        match err.kind {
            LineErrorKind::Block(e) => e,
            other => panic!("expected a block error, got {other}"),
        }
    }
}

fn slot_of(record: &BlockRecord) -> u64 {
    match &record.txs[1] {
        Transaction::Paxos { slot, .. } => *slot,
        other => panic!("not a paxos block: {other:?}"),
    }
}

fn verify(records: &[BlockRecord]) -> Replay {
    let mut bytes = Vec::new();
    for r in records {
        bytes.extend_from_slice(r.to_json_line().as_bytes());
        bytes.push(b'\n');
    }
    replay(LineReader::new(Cursor::new(bytes)), NOW, &mut ()).unwrap()
}

fn paxos_error(e: &BlockError) -> &PaxosError {
    e.rule_error::<PaxosError>()
        .unwrap_or_else(|| panic!("expected a paxos error, got {e}"))
}

fn quorum_error(e: BlockError) -> QuorumError {
    match e {
        BlockError::Quorum(q) => q,
        other => panic!("expected a quorum error, got {other}"),
    }
}

/// Three blocks: slots 1 and 2 led by s5 in ballot (1, 4); after a no-op in slot 3, slot 4
/// proposed by s5 in round 1 and chosen in s2's ballot (2, 1), which re-proposed it.
fn three_blocks() -> Chain {
    let mut chain = Chain::new();
    for (slot, requests) in [(1, &[(1, 1)][..]), (2, &[(1, 2), (2, 1)][..])] {
        let r = chain.propose(4, 1, slot, requests);
        let r = chain.certified(r, ballot(1, 4), &[4, 0, 2]);
        chain.push(r);
    }
    let r = chain.propose(4, 1, 4, &[]);
    let r = chain.certified(r, ballot(2, 1), &[1, 2, 3]);
    chain.push(r);
    chain
}

#[test]
fn the_2b_signature_covers_tag_ballot_slot_and_hash() {
    let hash = BlockHash::from_byte_array([9; 32]);
    let b = ballot(3, 2);
    let bytes = accepted_bytes(b, 7, hash);
    assert_eq!(&bytes[..25], b"chainsmith/paxos/accepted");
    assert_eq!(bytes[25..33], ((3u64 << 16) | 2).to_le_bytes());
    assert_eq!(bytes[33..41], 7u64.to_le_bytes());
    assert_eq!(&bytes[41..], hash.as_bytes());
    // Packing keeps the order of ballots: round first, then the proposer.
    let ballots = [
        ballot(1, 0),
        ballot(1, 4),
        ballot(2, 0),
        ballot(2, 3),
        ballot(10, 1),
    ];
    for w in ballots.windows(2) {
        assert!(w[0] < w[1] && w[0].pack() < w[1].pack());
        assert_eq!(Ballot::unpack(w[1].pack()), w[1]);
    }
}

#[test]
fn a_certified_chain_verifies_and_is_final_at_its_tip() {
    let chain = three_blocks();
    let replayed = verify(&chain.records);
    assert!(replayed.error.is_none(), "{:?}", replayed.error);
    assert_eq!(chain.state.rule_state().irreversible_height(), Some(3));
    let s = chain.state.rule_state_as::<PaxosState>().unwrap();
    assert_eq!(s.last_slot(), Some(4));
}

#[test]
fn too_few_repeated_or_foreign_signers_are_rejected_at_their_height() {
    let chain = three_blocks();
    let next = chain.propose(1, 2, 5, &[(3, 1)]);
    let b = ballot(2, 1);
    let two = chain.certified(next.clone(), b, &[1, 2]);
    assert_eq!(
        quorum_error(chain.rejects(&two)),
        QuorumError::TooFewSigners {
            signers: 2,
            threshold: 3
        }
    );
    let dup = chain.certified(next.clone(), b, &[1, 2, 1]);
    assert_eq!(
        quorum_error(chain.rejects(&dup)),
        QuorumError::DuplicateSigner {
            index: 2,
            signer: chain.keys[1].pubkey()
        }
    );
    let mallory = KeyPair::derive(&chain.state.spec().wallet_seed, "mallory");
    let mut outsider = chain.certified(next.clone(), b, &[1, 2]);
    if let Some(qc) = &mut outsider.certificate {
        qc.signatures
            .push(sign_accepted(&mallory, b, 5, outsider.hash));
    }
    assert_eq!(
        quorum_error(chain.rejects(&outsider)),
        QuorumError::NotMember {
            index: 2,
            signer: mallory.pubkey()
        }
    );
    // A majority of distinct members is enough.
    assert!(
        chain
            .verify_with(&chain.certified(next, b, &[3, 1, 2]))
            .error
            .is_none()
    );
}

#[test]
fn signatures_over_another_hash_ballot_or_slot_are_rejected() {
    let chain = three_blocks();
    let next = chain.propose(1, 2, 5, &[(3, 1)]);
    let b = ballot(2, 1);
    let other = chain.records[3].hash;
    for (sb, slot, hash) in [
        (b, 5, other),
        (ballot(3, 1), 5, next.hash),
        (b, 6, next.hash),
    ] {
        let mut bad = chain.certified(next.clone(), b, &[1, 2]);
        if let Some(qc) = &mut bad.certificate {
            qc.signatures
                .push(sign_accepted(&chain.keys[3], sb, slot, hash));
        }
        let err = chain.rejects(&bad);
        assert!(
            err.to_string()
                .ends_with("signature over the 2b (ballot, slot, block hash)"),
            "{err}"
        );
        assert!(matches!(
            quorum_error(err),
            QuorumError::BadSignature { index: 2, .. }
        ));
    }
    // A certificate relabelled with another ballot than its 2b messages were signed in.
    let mut relabelled = chain.certified(next, b, &[1, 2, 3]);
    if let Some(qc) = &mut relabelled.certificate {
        qc.view = Some(ballot(3, 1).pack());
    }
    assert!(matches!(
        quorum_error(chain.rejects(&relabelled)),
        QuorumError::BadSignature { index: 0, .. }
    ));
}

#[test]
fn slots_must_rise_and_match_the_certificate_accepted_no_earlier_than_proposed() {
    let chain = three_blocks();
    let same = chain.propose(1, 2, 4, &[]);
    let same = chain.certified(same, ballot(2, 1), &[1, 2, 3]);
    assert_eq!(
        paxos_error(&chain.rejects(&same)),
        &PaxosError::SlotNotAfter {
            slot: 4,
            previous: 4
        }
    );
    let back = chain.propose(1, 2, 2, &[]);
    let back = chain.certified(back, ballot(2, 1), &[1, 2, 3]);
    assert!(matches!(
        paxos_error(&chain.rejects(&back)),
        PaxosError::SlotNotAfter { slot: 2, .. }
    ));
    // The certificate names another slot than the block.
    let next = chain.propose(1, 2, 5, &[]);
    let mut moved = next.clone();
    let signatures = [1, 2, 3]
        .map(|i| sign_accepted(&chain.keys[i], ballot(2, 1), 6, next.hash))
        .to_vec();
    certify(&mut moved, ballot(2, 1), 6, signatures);
    assert_eq!(
        paxos_error(&chain.rejects(&moved)),
        &PaxosError::SlotMismatch {
            certificate: 6,
            block: 5
        }
    );
    // Proposed in s2's ballot (2, 1), certified in the lower (2, 0).
    let early = chain.certified(next, ballot(2, 0), &[0, 2, 3]);
    assert_eq!(
        paxos_error(&chain.rejects(&early)),
        &PaxosError::AcceptedBeforeProposed {
            certificate: ballot(2, 0),
            block: ballot(2, 1)
        }
    );
}

#[test]
fn a_certificate_is_the_only_seal_and_must_name_ballot_and_slot() {
    let chain = three_blocks();
    let next = chain.propose(1, 2, 5, &[]);
    let mut unbound = chain.certified(next.clone(), ballot(2, 1), &[1, 2, 3]);
    if let Some(qc) = &mut unbound.certificate {
        qc.view = None;
    }
    assert_eq!(
        paxos_error(&chain.rejects(&unbound)),
        &PaxosError::UnboundCertificate
    );
    let mut signed = next;
    signed.signature = Some(chain.keys[1].sign(signed.hash.as_bytes()));
    assert!(matches!(
        chain.rejects(&signed),
        BlockError::UnexpectedSeal { .. }
    ));
}

#[test]
fn requests_are_answered_once_and_proposers_are_members() {
    let chain = three_blocks();
    let again = chain.propose(1, 2, 5, &[(1, 1)]);
    let again = chain.certified(again, ballot(2, 1), &[1, 2, 3]);
    assert_eq!(
        paxos_error(&chain.rejects(&again)),
        &PaxosError::DuplicateRequest {
            client: 1,
            serial: 1
        }
    );
    let mallory = KeyPair::derive(&chain.state.spec().wallet_seed, "mallory");
    let height = chain.state.next_height();
    let foreign = unsealed_block(
        &chain.state,
        &mallory,
        1_577_836_800 + height,
        2,
        5,
        vec![],
        vec![],
    );
    let foreign = chain.certified(foreign, ballot(2, 1), &[1, 2, 3]);
    assert_eq!(
        paxos_error(&chain.rejects(&foreign)),
        &PaxosError::NotMember(mallory.pubkey())
    );
}

#[test]
fn the_paxos_transaction_has_its_own_tag() {
    let tx = Transaction::Paxos {
        leader: KeyPair::derive("x", "y").pubkey(),
        round: 2,
        slot: 3,
        requests: vec![ClientRequest {
            client: 1,
            serial: 4,
        }],
    };
    let bytes = tx.to_bytes();
    assert_eq!(bytes[0], 9);
    assert_eq!(bytes[33..41], 2u64.to_le_bytes());
    assert_eq!(bytes[41..49], 3u64.to_le_bytes());
    assert_eq!(tx.kind(), "paxos");
    let json = serde_json::to_string(&tx).unwrap();
    assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), tx);
}
