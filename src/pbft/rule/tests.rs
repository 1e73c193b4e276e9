//! A PBFT chain built by hand — each block proposed by its view's primary, committed by
//! replicas' COMMIT signatures — and every way its seal can be wrong, judged as `verify`
//! judges a chain file.

use std::io::Cursor;

use super::*;
use crate::chain::store::LineReader;
use crate::chain::verify::{LineErrorKind, Replay, replay};
use crate::chain::wallet::demo_transfers;
use crate::consensus::quorum::QuorumError;
use crate::primitives::tx::SigBytes;

/// Far enough after the demo's genesis that no block time is in the future.
const NOW: u32 = 1_577_836_800 + 100_000;

/// A PBFT chain under construction on `pbft-demo`: its state, its file lines, the replicas'
/// keys (`s1`…`s4`, so the primary of view `v` is `keys[v % 4]`).
struct Chain {
    state: ChainState,
    records: Vec<BlockRecord>,
    keys: Vec<KeyPair>,
    wallets: Vec<KeyPair>,
}

impl Chain {
    fn new() -> Self {
        let spec = ChainSpec::builtin("pbft-demo").unwrap();
        let mut state = ChainState::new(spec.clone());
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        state
            .connect(&state.check(genesis.clone()).unwrap(), NOW)
            .unwrap();
        let keys = ["s1", "s2", "s3", "s4"]
            .map(|m| KeyPair::derive(&spec.wallet_seed, m))
            .to_vec();
        Self {
            wallets: spec.wallet_keys(),
            state,
            records: vec![genesis],
            keys,
        }
    }

    /// The next block as `primary` proposes it in `view` with `sequence`, answering
    /// `requests` with one transfer each; unsealed.
    fn propose_by(
        &self,
        primary: &KeyPair,
        view: u64,
        sequence: u64,
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
            primary,
            1_577_836_800 + height,
            view,
            sequence,
            requests,
            transfers,
        )
    }

    /// The next block as the primary of `view` proposes it.
    fn propose(&self, view: u64, sequence: u64, requests: &[(u32, u64)]) -> BlockRecord {
        self.propose_by(&self.keys[primary_index(view, 4)], view, sequence, requests)
    }

    /// The COMMIT signatures of replicas `signers` (indices into `keys`).
    fn commits(
        &self,
        signers: &[usize],
        view: u64,
        sequence: u64,
        hash: BlockHash,
    ) -> Vec<QuorumSignature> {
        signers
            .iter()
            .map(|&i| sign_commit(&self.keys[i], view, sequence, hash))
            .collect()
    }

    /// `record` committed in `view` by replicas `signers`.
    fn certified(&self, mut record: BlockRecord, view: u64, signers: &[usize]) -> BlockRecord {
        let sequence = sequence_of(&record);
        let signatures = self.commits(signers, view, sequence, record.hash);
        certify(&mut record, view, sequence, signatures);
        record
    }

    /// `block` as the next line, committed in `view` at `sequence` by replicas 0, 1 and 2.
    fn certified_block(&self, block: &Block, view: u64, sequence: u64) -> BlockRecord {
        let mut record = BlockRecord::new(self.state.next_height(), block, None);
        let signatures = self.commits(&[0, 1, 2], view, sequence, record.hash);
        certify(&mut record, view, sequence, signatures);
        record
    }

    /// Checks and connects `record` as the next block.
    fn push(&mut self, record: BlockRecord) {
        let checked = self.state.check(record.clone()).unwrap();
        self.state.connect(&checked, NOW).unwrap();
        self.records.push(record);
    }

    /// Proposes, commits (replicas 0, 1 and 2) and connects the next block.
    fn add(&mut self, view: u64, sequence: u64, requests: &[(u32, u64)]) {
        let record = self.propose(view, sequence, requests);
        let record = self.certified(record, view, &[0, 1, 2]);
        self.push(record);
    }

    /// The chain's lines followed by `next`, replayed as `verify` does.
    fn verify_with(&self, next: &BlockRecord) -> Replay {
        let mut records = self.records.clone();
        records.push(next.clone());
        verify(&records)
    }

    /// The error `verify` gives for `next` after this chain; asserts it is at `next`'s height.
    fn rejects(&self, next: &BlockRecord) -> BlockError {
        let err = self.verify_with(next).error.expect("rejected");
        assert_eq!(err.height, u64::from(self.state.next_height()), "{err}");
        match err.kind {
            LineErrorKind::Block(e) => e,
            other => panic!("expected a block error, got {other}"),
        }
    }
}

fn sequence_of(record: &BlockRecord) -> u64 {
    match &record.txs[1] {
        Transaction::Pbft { sequence, .. } => *sequence,
        other => panic!("not a pbft block: {other:?}"),
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

fn pbft_error(e: &BlockError) -> &PbftError {
    e.rule_error::<PbftError>()
        .unwrap_or_else(|| panic!("expected a pbft error, got {e}"))
}

fn quorum_error(e: BlockError) -> QuorumError {
    match e {
        BlockError::Quorum(q) => q,
        other => panic!("expected a quorum error, got {other}"),
    }
}

/// Three blocks: sequence numbers 1, 2 and (after a no-op at 3) 4, the last proposed in view
/// 0 and committed in view 1 after a view change.
fn three_blocks() -> Chain {
    let mut chain = Chain::new();
    chain.add(0, 1, &[(1, 1)]);
    chain.add(0, 2, &[(1, 2), (2, 1)]);
    let record = chain.propose(0, 4, &[]);
    let record = chain.certified(record, 1, &[1, 2, 3]);
    chain.push(record);
    chain
}

#[test]
fn commit_bytes_are_the_tag_view_sequence_and_hash() {
    let hash = BlockHash::from_byte_array([0xab; 32]);
    let bytes = commit_bytes(0x0102, 0x0a0b0c, hash);
    assert_eq!(bytes.len(), 70);
    assert_eq!(&bytes[..22], b"chainsmith/pbft/commit");
    assert_eq!(bytes[22..30], [2, 1, 0, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[30..38], [0x0c, 0x0b, 0x0a, 0, 0, 0, 0, 0]);
    assert_eq!(bytes[38..], [0xab; 32]);
    assert_ne!(commit_bytes(1, 2, hash), commit_bytes(2, 1, hash));
    assert_eq!(
        [0, 1, 4, 5, 7].map(|v| primary_index(v, 4)),
        [0, 1, 0, 1, 3]
    );
}

#[test]
fn the_pbft_transaction_has_its_own_tag_and_encoding() {
    let key = KeyPair::derive("s", "p").pubkey();
    let requests = vec![ClientRequest {
        client: 3,
        serial: 9,
    }];
    let pbft = Transaction::Pbft {
        primary: key,
        view: 5,
        sequence: 7,
        requests: requests.clone(),
    };
    let raft = Transaction::Raft {
        leader: key,
        term: 5,
        index: 7,
        requests,
    };
    let bytes = pbft.to_bytes();
    assert_eq!(bytes[0], 8);
    assert_eq!(bytes[1..33], key.to_bytes());
    assert_eq!(bytes[33..41], 5u64.to_le_bytes());
    assert_eq!(bytes[41..49], 7u64.to_le_bytes());
    assert_eq!(bytes[49], 1);
    assert_eq!(bytes.len(), 49 + 1 + 4 + 8);
    assert_eq!(bytes[1..], raft.to_bytes()[1..]);
    assert_ne!(pbft.txid(), raft.txid());
    assert_eq!(pbft.kind(), "pbft");
    assert!(pbft.outputs().is_empty());
    let json = serde_json::to_string(&pbft).unwrap();
    assert!(
        json.starts_with("{\"type\":\"pbft\",\"primary\":"),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), pbft);
}

#[test]
fn a_certified_chain_verifies_from_its_file_and_is_final_at_its_tip() {
    let chain = three_blocks();
    let replayed = verify(&chain.records);
    assert_eq!(replayed.error, None);
    let state = replayed.state.unwrap();
    assert_eq!(state.block_count(), 4);
    assert_eq!(state.rule_state().irreversible_height(), Some(3));
    let pbft = state.rule_state_as::<PbftState>().unwrap();
    assert_eq!(pbft.last_sequence(), Some(4));
    let (what, rows) = state.rule_state().report().producers.unwrap();
    assert_eq!(what, "primaries");
    let blocks: Vec<(String, u64)> = rows.into_iter().map(|r| (r.name, r.blocks)).collect();
    assert_eq!(
        blocks,
        [("s1", 3), ("s2", 0), ("s3", 0), ("s4", 0)].map(|(n, b)| (n.to_owned(), b))
    );
    let block = chain.records[3].to_block();
    assert_eq!(
        Pbft.producer_of(&block),
        Some(BlockProducer {
            key: chain.keys[0].pubkey(),
            note: Some("view 0, sequence 4".into())
        })
    );
}

#[test]
fn three_or_four_commits_and_a_new_view_are_accepted() {
    let mut chain = three_blocks();
    // All four replicas, in any order.
    let record = chain.propose(1, 5, &[(3, 1)]);
    let record = chain.certified(record, 1, &[3, 0, 2, 1]);
    assert_eq!(chain.verify_with(&record).error, None);
    chain.push(record);
    // A gap (no-ops at 6 to 9) and the primary of view 2 committing in view 2.
    let record = chain.propose(2, 10, &[]);
    let record = chain.certified(record, 2, &[2, 3, 1]);
    assert_eq!(chain.verify_with(&record).error, None);
    chain.push(record);
    assert_eq!(verify(&chain.records).state.unwrap().block_count(), 6);
}

#[test]
fn too_few_repeated_or_foreign_commits_are_rejected_at_their_height() {
    let chain = three_blocks();
    let next = chain.propose(1, 5, &[(3, 1)]);

    let two = chain.certified(next.clone(), 1, &[0, 1]);
    assert_eq!(
        quorum_error(chain.rejects(&two)),
        QuorumError::TooFewSigners {
            signers: 2,
            threshold: 3
        }
    );

    let dup = chain.certified(next.clone(), 1, &[0, 1, 0]);
    assert_eq!(
        quorum_error(chain.rejects(&dup)),
        QuorumError::DuplicateSigner {
            index: 2,
            signer: chain.keys[0].pubkey()
        }
    );

    let mallory = KeyPair::derive(&chain.state.spec().wallet_seed, "mallory");
    let mut outsider = chain.certified(next.clone(), 1, &[0, 1]);
    if let Some(qc) = &mut outsider.certificate {
        qc.signatures
            .push(sign_commit(&mallory, 1, 5, outsider.hash));
    }
    assert_eq!(
        quorum_error(chain.rejects(&outsider)),
        QuorumError::NotMember {
            index: 2,
            signer: mallory.pubkey()
        }
    );
}

#[test]
fn commits_over_another_block_view_or_sequence_are_rejected() {
    let chain = three_blocks();
    let next = chain.propose(1, 5, &[(3, 1)]);
    let other = chain.records[3].hash;
    for (view, sequence, hash) in [(1, 5, other), (2, 5, next.hash), (1, 6, next.hash)] {
        let mut bad = chain.certified(next.clone(), 1, &[0, 1]);
        if let Some(qc) = &mut bad.certificate {
            qc.signatures
                .push(sign_commit(&chain.keys[3], view, sequence, hash));
        }
        let err = chain.rejects(&bad);
        assert!(
            err.to_string()
                .ends_with("signature over the commit (view, sequence, block hash)"),
            "{err}"
        );
        assert_eq!(
            quorum_error(err),
            QuorumError::BadSignature {
                index: 2,
                signer: chain.keys[3].pubkey(),
                over: "the commit (view, sequence, block hash)"
            }
        );
    }
    // A certificate claiming another view than its commits were signed in.
    let mut relabelled = chain.certified(next, 1, &[0, 1, 2]);
    if let Some(qc) = &mut relabelled.certificate {
        qc.view = Some(2);
    }
    assert!(matches!(
        quorum_error(chain.rejects(&relabelled)),
        QuorumError::BadSignature { index: 0, .. }
    ));
}

#[test]
fn certificates_must_commit_the_blocks_own_sequence_in_its_view_or_later() {
    let chain = three_blocks();
    let next = chain.propose(1, 5, &[(3, 1)]);

    // Validly signed commits, but for sequence number 6.
    let mut other_sequence = next.clone();
    let signatures = chain.commits(&[0, 1, 2], 1, 6, next.hash);
    certify(&mut other_sequence, 1, 6, signatures);
    assert_eq!(
        pbft_error(&chain.rejects(&other_sequence)),
        &PbftError::SequenceMismatch {
            certificate: 6,
            block: 5
        }
    );

    // Committed in view 0, before the view 1 it was proposed in.
    let early = chain.certified(next.clone(), 0, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&early)),
        &PbftError::CommitBeforeProposal {
            certificate: 0,
            block: 1
        }
    );

    // A certificate that does not say what its commits were for.
    let mut unbound = chain.certified(next, 1, &[0, 1, 2]);
    if let Some(qc) = &mut unbound.certificate {
        qc.sequence = None;
    }
    assert_eq!(
        pbft_error(&chain.rejects(&unbound)),
        &PbftError::UnboundCertificate
    );
}

#[test]
fn sequence_numbers_go_forward_and_primaries_follow_the_view() {
    let chain = three_blocks();
    for sequence in [4, 3] {
        let again = chain.certified(chain.propose(1, sequence, &[]), 1, &[0, 1, 2]);
        assert_eq!(
            pbft_error(&chain.rejects(&again)),
            &PbftError::SequenceNotAfter {
                sequence,
                previous: 4
            }
        );
    }

    // s3 proposing in view 1, whose primary is s2: committed by a quorum, still refused.
    let usurped = chain.propose_by(&chain.keys[2], 1, 5, &[]);
    let usurped = chain.certified(usurped, 1, &[0, 1, 2, 3]);
    assert_eq!(
        pbft_error(&chain.rejects(&usurped)),
        &PbftError::NotPrimary {
            view: 1,
            expected: chain.keys[1].pubkey(),
            found: chain.keys[2].pubkey()
        }
    );
    assert_eq!(
        pbft_error(&chain.rejects(&usurped)).to_string(),
        format!(
            "{} is not the primary of view 1 ({} is)",
            chain.keys[2].pubkey(),
            chain.keys[1].pubkey()
        )
    );
}

#[test]
fn times_go_forward_and_requests_match_the_transfers() {
    let chain = three_blocks();
    let primary = &chain.keys[1];
    let parent = chain.records[3].time;
    let request = ClientRequest {
        client: 5,
        serial: 1,
    };
    let early = unsealed_block(
        &chain.state,
        primary,
        parent - 1,
        1,
        5,
        Vec::new(),
        Vec::new(),
    );
    let early = chain.certified(early, 1, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&early)),
        &PbftError::TimeWentBack {
            time: parent - 1,
            parent
        }
    );
    let unanswered = unsealed_block(
        &chain.state,
        primary,
        parent,
        1,
        5,
        vec![request],
        Vec::new(),
    );
    let unanswered = chain.certified(unanswered, 1, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&unanswered)),
        &PbftError::RequestsMismatch {
            requests: 1,
            transfers: 0
        }
    );
    // Views and sequence numbers a cluster could not continue from.
    let huge = MAX_SEAL + 1;
    let far = chain.certified(chain.propose(huge, 5, &[]), huge, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&far)),
        &PbftError::TooLarge {
            view: huge,
            sequence: 5
        }
    );
    let far = chain.certified(chain.propose(1, huge, &[]), 1, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&far)),
        &PbftError::TooLarge {
            view: 1,
            sequence: huge
        }
    );
}

#[test]
fn a_request_is_answered_once() {
    let chain = three_blocks();
    let repeated = chain.certified(chain.propose(1, 5, &[(2, 1)]), 1, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&repeated)),
        &PbftError::DuplicateRequest {
            client: 2,
            serial: 1
        }
    );
    let twice = chain.certified(chain.propose(1, 5, &[(4, 1), (4, 1)]), 1, &[0, 1, 2]);
    assert_eq!(
        pbft_error(&chain.rejects(&twice)),
        &PbftError::DuplicateRequest {
            client: 4,
            serial: 1
        }
    );
}

#[test]
fn the_certificate_is_the_only_seal() {
    let chain = three_blocks();
    let next = chain.propose(1, 5, &[(3, 1)]);
    let primary = &chain.keys[1];

    let unsealed = next.clone();
    assert_eq!(
        chain.rejects(&unsealed),
        BlockError::UnexpectedSeal {
            expected: "a quorum certificate",
            found: "no seal"
        }
    );

    let mut signed = next.clone();
    signed.signature = Some(primary.sign(signed.hash.as_bytes()));
    assert_eq!(
        chain.rejects(&signed),
        BlockError::UnexpectedSeal {
            expected: "a quorum certificate",
            found: "a signature"
        }
    );

    let mut both = chain.certified(next.clone(), 1, &[0, 1, 2]);
    both.signature = Some(primary.sign(both.hash.as_bytes()));
    assert!(matches!(
        chain.rejects(&both),
        BlockError::UnexpectedSeal {
            expected: "one seal",
            ..
        }
    ));

    // A block whose second transaction is not the `pbft` one.
    let mut raft = next.to_block();
    raft.txs[1] = Transaction::Raft {
        leader: primary.pubkey(),
        term: 1,
        index: 5,
        requests: vec![ClientRequest {
            client: 3,
            serial: 1,
        }],
    };
    raft.header.merkle_root = raft.compute_merkle_root().root;
    let raft = chain.certified_block(&raft, 1, 5);
    assert_eq!(pbft_error(&chain.rejects(&raft)), &PbftError::MissingSeal);
}

#[test]
fn a_certified_line_round_trips_and_other_certificates_keep_their_bytes() {
    let chain = three_blocks();
    let record = &chain.records[3];
    let line = record.to_json_line();
    assert!(line.contains("\"view\":1,\"sequence\":4}"), "{line}");
    let back: BlockRecord = serde_json::from_str(&line).unwrap();
    assert_eq!(&back, record);
    assert_eq!(back.to_json_line(), line);
    let qc = back.certificate.unwrap();
    assert_eq!(
        (qc.view, qc.sequence, qc.signatures.len()),
        (Some(1), Some(4), 3)
    );

    // A certificate over the block hash alone (the test rule's) is written as before.
    let unbound = QuorumCertificate {
        signatures: vec![QuorumSignature {
            signer: chain.keys[0].pubkey(),
            signature: SigBytes::from_bytes([1; 64]),
        }],
        view: None,
        sequence: None,
    };
    let json = serde_json::to_string(&unbound).unwrap();
    assert_eq!(
        json,
        format!(
            "{{\"signatures\":[{{\"signer\":\"{}\",\"signature\":\"{}\"}}]}}",
            chain.keys[0].pubkey(),
            hex::encode([1; 64])
        )
    );
    assert_eq!(
        serde_json::from_str::<QuorumCertificate>(&json).unwrap(),
        unbound
    );
}

#[test]
fn the_demo_spec_is_a_pbft_spec_mined_by_a_replica() {
    let spec = ChainSpec::builtin("pbft-demo").unwrap();
    assert_eq!(spec.consensus.name(), "pbft");
    assert_eq!(Pbft.spacing_ms(&spec), 200);
    let slower = Pbft.with_spacing(&spec, 2);
    slower.validate().unwrap();
    assert_eq!(Pbft.spacing_ms(&slower), 2000);
    let mut stranger = spec.clone();
    stranger.miner = "mallory".into();
    let err = stranger.validate().unwrap_err().to_string();
    assert!(err.contains("pbft.members"), "{err}");
    assert!(Pbft.is_rule_tx(1, &chain_tx()));
    assert!(!Pbft.is_rule_tx(2, &chain_tx()));
}

fn chain_tx() -> Transaction {
    Transaction::Pbft {
        primary: KeyPair::derive("s", "p").pubkey(),
        view: 0,
        sequence: 1,
        requests: Vec::new(),
    }
}
