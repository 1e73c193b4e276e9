//! A test-only rule, registered in [`super::RULES`] under `cfg(test)` by one line, that proves
//! what adding a rule takes — this module and that line — and runs quorum certificates end to
//! end: a fixed committee (the spec's `wallets`) seals every block with a majority of
//! signatures over its hash, and a block is final as soon as it is connected.

use std::sync::Arc;

use crate::chain::ledger::LedgerDelta;
use crate::chain::produce::{ProduceEnv, ProduceError, ProduceOptions, Producer, Step};
use crate::chain::record::BlockRecord;
use crate::chain::spec::{ChainSpec, SpecError};
use crate::chain::state::{BlockError, ChainState};
use crate::chain::wallet::demo_transfers;
use crate::consensus::quorum::{check_certificate, majority};
use crate::consensus::{
    BlockContext, BlockProducer, BlockWork, Connected, Rule, RuleInfo, RuleReport, RuleState,
    SpecNames, TimeRule, check_no_puzzle,
};
use crate::primitives::block::Block;
use crate::primitives::hash::BlockHash;
use crate::primitives::seal::{QuorumCertificate, QuorumSignature, Seal};
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::{KeyPair, PubKey, Transaction};

const INFO: RuleInfo = RuleInfo {
    name: "quorum-demo",
    summary: "Test rule: a fixed committee seals each block by majority",
    work: BlockWork::Signatures,
    demo_blocks: 5,
    time_rule: TimeRule::Scheduled,
    section: None,
    detects_equivocation: false,
};

/// The committee of a spec: its wallets' keys.
fn committee(spec: &ChainSpec) -> Vec<KeyPair> {
    spec.wallets
        .iter()
        .map(|n| KeyPair::derive(&spec.wallet_seed, n))
        .collect()
}

/// The test rule.
#[derive(Debug)]
pub(crate) struct QuorumDemo;

impl Rule for QuorumDemo {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn names<'s>(&self, spec: &'s ChainSpec) -> SpecNames<'s> {
        SpecNames {
            producers: spec.wallets.iter().map(String::as_str).collect(),
            ..SpecNames::default()
        }
    }

    fn validate_spec(&self, spec: &ChainSpec) -> Result<(), SpecError> {
        if spec.wallets.is_empty() {
            return Err(SpecError::BadField {
                field: "wallets",
                reason: "the committee is empty".into(),
            });
        }
        check_no_puzzle(spec)
    }

    fn check_seal(
        &self,
        block: &Block,
        _hash: BlockHash,
        seal: &Seal,
        _sigs: &dyn SigCheck,
    ) -> Result<(), BlockError> {
        if block.header.nonce != 0 {
            return Err(BlockError::NonzeroNonce(block.header.nonce));
        }
        // Who may sign is the state's business (the signer set in force): here only the kind.
        match seal {
            Seal::Quorum(_) => Ok(()),
            _ => Err(BlockError::UnexpectedSeal {
                expected: "a quorum certificate",
                found: seal.kind(),
            }),
        }
    }

    fn producer_of(&self, _block: &Block) -> Option<BlockProducer> {
        None
    }

    fn is_rule_tx(&self, _index: usize, _tx: &Transaction) -> bool {
        false
    }

    fn genesis_state(&self, spec: &ChainSpec) -> Box<dyn RuleState> {
        Box::new(QuorumState {
            members: committee(spec).iter().map(KeyPair::pubkey).collect(),
            final_height: 0,
        })
    }

    fn producer(
        &self,
        spec: &ChainSpec,
        options: &ProduceOptions,
    ) -> Result<Box<dyn Producer>, ProduceError> {
        options.refuse_others(INFO.name, &["--offline"])?;
        Ok(Box::new(QuorumProducer {
            committee: committee(spec),
            keys: spec.wallet_keys(),
            miner: spec.miner_key().pubkey(),
            offline: options.offline.clone(),
            tx_per_block: options.tx_per_block,
        }))
    }
}

/// The committee in force; blocks are final once connected.
#[derive(Debug, Clone)]
struct QuorumState {
    members: Arc<[PubKey]>,
    final_height: u32,
}

impl RuleState for QuorumState {
    fn check(
        &self,
        block: &BlockContext<'_>,
        _delta: &mut LedgerDelta,
    ) -> Result<Box<dyn RuleState>, BlockError> {
        let Seal::Quorum(qc) = block.seal else {
            return Err(BlockError::UnexpectedSeal {
                expected: "a quorum certificate",
                found: block.seal.kind(),
            });
        };
        check_certificate(
            qc,
            block.hash,
            &self.members,
            majority(self.members.len()),
            block.sigs,
        )?;
        Ok(Box::new(Self {
            members: Arc::clone(&self.members),
            final_height: block.height,
        }))
    }

    fn connected(&mut self, _block: &Connected<'_>) {}

    fn report(&self) -> RuleReport {
        RuleReport::default()
    }

    fn irreversible_height(&self) -> Option<u32> {
        Some(self.final_height)
    }
}

/// Every online member signs; the block is sealed when a majority did.
struct QuorumProducer {
    committee: Vec<KeyPair>,
    keys: Vec<KeyPair>,
    miner: PubKey,
    offline: Vec<PubKey>,
    tx_per_block: usize,
}

impl Producer for QuorumProducer {
    fn next_block(
        &mut self,
        state: &ChainState,
        env: &ProduceEnv<'_>,
    ) -> Result<Step, ProduceError> {
        let tip = state.tip().expect("genesis is connected");
        let height = tip.height + 1;
        let mut txs = demo_transfers(state, &self.keys, self.tx_per_block, height, &[]);
        txs.extend_from_slice(env.pending);
        let time = tip
            .header
            .time
            .saturating_add(state.spec().target_spacing_s);
        let block = state.block_template(time, self.miner, txs);
        let mut record = BlockRecord::new(height, &block, None);
        let signatures: Vec<QuorumSignature> = self
            .committee
            .iter()
            .filter(|k| !self.offline.contains(&k.pubkey()))
            .map(|k| QuorumSignature {
                signer: k.pubkey(),
                signature: k.sign(record.hash.as_bytes()),
            })
            .collect();
        if signatures.len() < majority(self.committee.len()) {
            return Err(ProduceError::Unsupported(format!(
                "height {height}: {} of {} members online, no majority",
                signatures.len(),
                self.committee.len()
            )));
        }
        record.certificate = Some(QuorumCertificate {
            signatures,
            view: None,
            sequence: None,
        });
        Ok(Step::Block(Box::new(record), Vec::new()))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::io::Cursor;
    use std::time::Duration;

    use super::*;
    use crate::chain::produce::{Run, TimeSource, produce_blocks};
    use crate::chain::store::LineReader;
    use crate::chain::verify::{LineErrorKind, replay};
    use crate::consensus::Consensus;
    use crate::consensus::quorum::QuorumError;
    use crate::hash::search::{SearchControl, SearchOptions};

    const NOW: u32 = 2_000_000_000;

    struct Fixed(Cell<u32>);

    impl TimeSource for Fixed {
        fn now(&self) -> u32 {
            self.0.get()
        }
        fn pause(&self, _: Duration) {}
    }

    fn spec() -> ChainSpec {
        let text = include_str!("../../chains/regtest.json")
            .replace("\"regtest\"", "\"quorum-test\"")
            .replace("\"pow\"", "\"quorum-demo\"")
            .replace(
                "\"alice\", \"bob\", \"carol\"",
                "\"m1\", \"m2\", \"m3\", \"m4\"",
            );
        ChainSpec::from_json(&text).unwrap()
    }

    /// A chain of `blocks` blocks with `offline` members down; its file lines.
    fn chain(blocks: u64, offline: &[&str]) -> Vec<BlockRecord> {
        let spec = spec();
        let mut state = ChainState::new(spec.clone());
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        state
            .connect(&state.check(genesis.clone()).unwrap(), NOW)
            .unwrap();
        let options = ProduceOptions {
            offline: offline
                .iter()
                .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
                .collect(),
            ..ProduceOptions::default()
        };
        let mut producer = spec.consensus.rule().producer(&spec, &options).unwrap();
        let run = Run {
            blocks,
            clock: &Fixed(Cell::new(NOW)),
            control: &SearchControl::default(),
            search: &SearchOptions::default(),
        };
        let mut records = vec![genesis];
        let outcome = produce_blocks(
            &mut state,
            producer.as_mut(),
            &run,
            &mut |_| Vec::new(),
            &mut |_, r, _| {
                records.push(r.clone());
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(outcome.produced, blocks);
        assert_eq!(
            state.rule_state().irreversible_height(),
            Some(blocks as u32)
        );
        records
    }

    fn verify(records: &[BlockRecord]) -> crate::chain::verify::Replay {
        let mut bytes = Vec::new();
        for r in records {
            bytes.extend_from_slice(r.to_json_line().as_bytes());
            bytes.push(b'\n');
        }
        replay(LineReader::new(Cursor::new(bytes)), NOW, &mut ()).unwrap()
    }

    fn qc(r: &mut BlockRecord) -> &mut QuorumCertificate {
        r.certificate.as_mut().unwrap()
    }

    fn quorum_error_at(records: &[BlockRecord], height: u64) -> QuorumError {
        let err = verify(records).error.expect("rejected");
        assert_eq!(err.height, height);
        match err.kind {
            LineErrorKind::Block(BlockError::Quorum(e)) => e,
            other => panic!("expected a quorum error, got {other}"),
        }
    }

    #[test]
    fn a_rule_is_a_module_and_one_registry_line() {
        assert!(Consensus::from_name("quorum-demo").is_ok());
        // Produced by the library loop, verified from the file alone, with one member down.
        let records = chain(5, &["m4"]);
        let replayed = verify(&records);
        assert_eq!(replayed.error, None);
        assert_eq!(replayed.state.unwrap().block_count(), 6);
        assert!(
            records[1..]
                .iter()
                .all(|r| r.certificate.as_ref().unwrap().signatures.len() == 3)
        );
    }

    #[test]
    fn bad_certificates_are_rejected_at_their_height() {
        let good = chain(4, &[]);

        let mut few = good.clone();
        qc(&mut few[2]).signatures.truncate(2);
        assert!(matches!(
            quorum_error_at(&few, 2),
            QuorumError::TooFewSigners {
                signers: 2,
                threshold: 3
            }
        ));

        let mut dup = good.clone();
        let first = qc(&mut dup[3]).signatures[0];
        qc(&mut dup[3]).signatures[1] = first;
        assert!(matches!(
            quorum_error_at(&dup, 3),
            QuorumError::DuplicateSigner { index: 1, .. }
        ));

        let mut outsider = good.clone();
        let stranger = KeyPair::derive("elsewhere", "mallory");
        qc(&mut outsider[1]).signatures[0] = QuorumSignature {
            signer: stranger.pubkey(),
            signature: stranger.sign(outsider[1].hash.as_bytes()),
        };
        assert!(matches!(
            quorum_error_at(&outsider, 1),
            QuorumError::NotMember { index: 0, .. }
        ));

        // A member's signature over another block's hash.
        let mut replayed = good.clone();
        let other = good[1].hash;
        let m1 = KeyPair::derive(&spec().wallet_seed, "m1");
        qc(&mut replayed[2]).signatures[0] = QuorumSignature {
            signer: m1.pubkey(),
            signature: m1.sign(other.as_bytes()),
        };
        assert!(matches!(
            quorum_error_at(&replayed, 2),
            QuorumError::BadSignature { index: 0, .. }
        ));

        // A certificate where the rule wants one, and nothing else.
        let mut signed = good.clone();
        signed[1].certificate = None;
        signed[1].signature = Some(m1.sign(signed[1].hash.as_bytes()));
        let err = verify(&signed).error.unwrap();
        assert!(
            matches!(
                err.kind,
                LineErrorKind::Block(BlockError::UnexpectedSeal { .. })
            ),
            "{err}"
        );
    }

    #[test]
    fn no_majority_no_block() {
        let spec = spec();
        let options = ProduceOptions {
            offline: ["m1", "m2"]
                .iter()
                .map(|n| KeyPair::derive(&spec.wallet_seed, n).pubkey())
                .collect(),
            ..ProduceOptions::default()
        };
        let mut state = ChainState::new(spec.clone());
        let genesis = BlockRecord::new(0, &spec.genesis_block(), Some(&spec));
        state.connect(&state.check(genesis).unwrap(), NOW).unwrap();
        let mut producer = spec.consensus.rule().producer(&spec, &options).unwrap();
        let env = ProduceEnv {
            now: NOW,
            pending: &[],
            control: &SearchControl::default(),
            search: &SearchOptions::default(),
        };
        assert!(producer.next_block(&state, &env).is_err());
    }
}
