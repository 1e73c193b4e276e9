//! Quorum certificates checked against a signer set: the seal of rules whose blocks a
//! committee agrees on (PBFT's 2f+1 commits, a Paxos quorum of accepts).
//!
//! A certificate is valid for a block when at least `threshold` distinct members of the signer
//! set in force have signed the block's hash ([`check_certificate`]) or a message that binds it
//! (PBFT's COMMIT: view, sequence number and hash; [`check_signatures`]). Every pair is
//! checked: a non-member, a repeated signer or a signature over another message makes the
//! whole certificate invalid rather than being skipped, so a certificate is evidence of
//! exactly what it claims.

use crate::primitives::hash::BlockHash;
use crate::primitives::seal::QuorumCertificate;
use crate::primitives::sig::SigCheck;
use crate::primitives::tx::PubKey;

/// Why a quorum certificate is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum QuorumError {
    /// Fewer signatures than the threshold.
    #[error("quorum certificate has {signers} signatures; {threshold} are needed")]
    TooFewSigners {
        /// Signatures in the certificate.
        signers: usize,
        /// Signatures needed.
        threshold: usize,
    },
    /// A member signed twice.
    #[error("quorum certificate signature {index}: {signer} signed twice")]
    DuplicateSigner {
        /// Position of the second signature.
        index: usize,
        /// The signer.
        signer: PubKey,
    },
    /// A signer is not in the signer set.
    #[error("quorum certificate signature {index}: {signer} is not a member")]
    NotMember {
        /// Position of the signature.
        index: usize,
        /// The signer.
        signer: PubKey,
    },
    /// A signature does not verify over the signed message.
    #[error("quorum certificate signature {index}: not {signer}'s signature over {over}")]
    BadSignature {
        /// Position of the signature.
        index: usize,
        /// The signer.
        signer: PubKey,
        /// What the signatures must cover (`the block hash`).
        over: &'static str,
    },
}

/// The smallest quorum that tolerates `f = ⌊(n − 1)/3⌋` Byzantine members among `n`:
/// `2f + 1` when `n = 3f + 1` (PBFT, Castro & Liskov 1999 §4), and `⌈(n + f + 1)/2⌉` in
/// general, so that any two quorums share `f + 1` members, at least one of them correct
/// (with `2f + 1` out of 5 or 6, two quorums of 3 could meet only in a faulty member).
#[must_use]
pub const fn byzantine_quorum(n: usize) -> usize {
    let f = n.saturating_sub(1) / 3;
    (n + f + 1).div_ceil(2)
}

/// The smallest majority of `n`: `⌊n/2⌋ + 1` (Paxos, Raft).
#[must_use]
pub const fn majority(n: usize) -> usize {
    n / 2 + 1
}

/// Checks `qc` over `hash` against `members`, needing `threshold` distinct signers: every
/// signature must be over the block hash itself.
///
/// # Errors
/// As [`check_signatures`].
pub fn check_certificate(
    qc: &QuorumCertificate,
    hash: BlockHash,
    members: &[PubKey],
    threshold: usize,
    sigs: &dyn SigCheck,
) -> Result<(), QuorumError> {
    check_signatures(
        qc,
        hash.as_bytes(),
        "the block hash",
        members,
        threshold,
        sigs,
    )
}

/// Checks that `qc` holds signatures over `message` by at least `threshold` distinct members
/// of `members`; `over` names the message in errors (`the block hash`). Signatures are
/// checked through `sigs`.
///
/// # Errors
/// The first problem found, in certificate order; too few signers is reported after every
/// pair has been checked.
pub fn check_signatures(
    qc: &QuorumCertificate,
    message: &[u8],
    over: &'static str,
    members: &[PubKey],
    threshold: usize,
    sigs: &dyn SigCheck,
) -> Result<(), QuorumError> {
    let mut seen: Vec<PubKey> = Vec::with_capacity(qc.signatures.len());
    for (index, s) in qc.signatures.iter().enumerate() {
        if !members.contains(&s.signer) {
            return Err(QuorumError::NotMember {
                index,
                signer: s.signer,
            });
        }
        if seen.contains(&s.signer) {
            return Err(QuorumError::DuplicateSigner {
                index,
                signer: s.signer,
            });
        }
        if !sigs.check(&s.signer, message, &s.signature) {
            return Err(QuorumError::BadSignature {
                index,
                signer: s.signer,
                over,
            });
        }
        seen.push(s.signer);
    }
    if seen.len() < threshold {
        return Err(QuorumError::TooFewSigners {
            signers: seen.len(),
            threshold,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::seal::QuorumSignature;
    use crate::primitives::sig::Strict;
    use crate::primitives::tx::KeyPair;

    fn keys(n: usize) -> Vec<KeyPair> {
        (0..n)
            .map(|i| KeyPair::derive("quorum-test", &format!("m{i}")))
            .collect()
    }

    fn sign(keys: &[&KeyPair], hash: BlockHash) -> QuorumCertificate {
        QuorumCertificate {
            signatures: keys
                .iter()
                .map(|k| QuorumSignature {
                    signer: k.pubkey(),
                    signature: k.sign(hash.as_bytes()),
                })
                .collect(),
            view: None,
            sequence: None,
        }
    }

    #[test]
    fn quorum_sizes() {
        // Reference: PBFT §4 — n = 3f + 1 members, quorums of 2f + 1; between those sizes
        // ⌈(n + f + 1)/2⌉, so two quorums meet in f + 1 members.
        assert_eq!(
            [1, 4, 5, 6, 7, 8, 9, 10].map(byzantine_quorum),
            [1, 3, 4, 4, 5, 6, 6, 7]
        );
        for n in 1..=100 {
            let (q, f) = (byzantine_quorum(n), (n - 1) / 3);
            assert!(2 * q > n + f && q <= n - f, "n = {n}: q = {q}");
        }
        assert_eq!([1, 2, 3, 4, 5].map(majority), [1, 2, 2, 3, 3]);
    }

    #[test]
    fn certificate_checks() {
        let k = keys(5);
        let members: Vec<PubKey> = k[..4].iter().map(KeyPair::pubkey).collect();
        let hash = BlockHash::from_byte_array([7; 32]);
        let other = BlockHash::from_byte_array([8; 32]);
        let t = byzantine_quorum(4);
        let ok = sign(&[&k[2], &k[0], &k[3]], hash);
        assert_eq!(check_certificate(&ok, hash, &members, t, &Strict), Ok(()));
        // More than the threshold is fine.
        let all = sign(&[&k[0], &k[1], &k[2], &k[3]], hash);
        assert_eq!(check_certificate(&all, hash, &members, t, &Strict), Ok(()));

        let few = sign(&[&k[0], &k[1]], hash);
        assert_eq!(
            check_certificate(&few, hash, &members, t, &Strict),
            Err(QuorumError::TooFewSigners {
                signers: 2,
                threshold: 3
            })
        );
        // A repeated signer does not count twice.
        let dup = sign(&[&k[0], &k[1], &k[0]], hash);
        assert_eq!(
            check_certificate(&dup, hash, &members, t, &Strict),
            Err(QuorumError::DuplicateSigner {
                index: 2,
                signer: k[0].pubkey()
            })
        );
        let outsider = sign(&[&k[0], &k[1], &k[4]], hash);
        assert_eq!(
            check_certificate(&outsider, hash, &members, t, &Strict),
            Err(QuorumError::NotMember {
                index: 2,
                signer: k[4].pubkey()
            })
        );
        // Signatures over another block's hash.
        let mut wrong = sign(&[&k[0], &k[1]], hash);
        wrong.signatures.extend(sign(&[&k[2]], other).signatures);
        assert_eq!(
            check_certificate(&wrong, hash, &members, t, &Strict),
            Err(QuorumError::BadSignature {
                index: 2,
                signer: k[2].pubkey(),
                over: "the block hash"
            })
        );
        // Signatures over a message that binds the hash, and only over that message.
        let commit = |seq: u8| [&b"commit"[..], &[seq], hash.as_bytes()].concat();
        let mut bound = ok.clone();
        for (s, key) in bound.signatures.iter_mut().zip([&k[2], &k[0], &k[3]]) {
            s.signature = key.sign(&commit(1));
        }
        assert_eq!(
            check_signatures(&bound, &commit(1), "the commit", &members, t, &Strict),
            Ok(())
        );
        let err =
            check_signatures(&bound, &commit(2), "the commit", &members, t, &Strict).unwrap_err();
        assert_eq!(
            err,
            QuorumError::BadSignature {
                index: 0,
                signer: k[2].pubkey(),
                over: "the commit"
            }
        );
        assert!(
            err.to_string().ends_with("signature over the commit"),
            "{err}"
        );
        assert!(matches!(
            check_certificate(&bound, hash, &members, t, &Strict),
            Err(QuorumError::BadSignature { index: 0, .. })
        ));
        // A signature moved to another member's name.
        let mut swapped = ok.clone();
        swapped.signatures[0].signer = k[1].pubkey();
        assert!(matches!(
            check_certificate(&swapped, hash, &members, t, &Strict),
            Err(QuorumError::BadSignature { index: 0, .. })
        ));
    }
}
