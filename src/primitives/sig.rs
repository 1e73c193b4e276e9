//! The ed25519 verification rule, checked one signature at a time or many at once, and the
//! signature queue that lets verification check a window of blocks' signatures in batches.
//!
//! # The rule
//!
//! A signature `(R, s)` by key `A` over message `M` is valid when
//!
//! - `s` is a canonical scalar (`s < ℓ`), `R` is the canonical encoding of a curve point,
//!   `A` decodes to a curve point, and neither `R` nor `A` has small order;
//! - `[8]([s]B − [k]A − R)` is the identity, where `k = SHA-512(R ‖ A ‖ M) mod ℓ`.
//!
//! That is the *cofactored* equation (ZIP-215; Chalkias, Garillot and Nikolaenko, "Taming the
//! many EdDSAs", 2020) with the decoding checks of ed25519-dalek's `verify_strict`, which
//! this crate used before. It was chosen over `verify_strict`'s cofactorless equation
//! (`[s]B − [k]A = R` exactly) because only the cofactored equation has a batch form that
//! agrees with it on every input, hostile ones included: a batch checks
//! `[8]Σ zᵢ([sᵢ]B − [kᵢ]Aᵢ − Rᵢ) = O` with random 128-bit `zᵢ`, and multiplying by 8 removes
//! the small torsion part of each term *before* the coefficients are applied, so a term
//! whose difference is pure torsion passes alone and in a batch, and one with a part in the
//! prime-order group fails alone and (but with probability 2⁻¹²⁸) in a batch. The
//! cofactorless batch (ed25519-dalek's `verify_batch`) has no such agreement: a difference
//! of pure torsion `T` fails alone but passes a batch whenever `zᵢ` happens to kill `T`.
//! Every signature `verify_strict` accepts is accepted here (its difference is the identity,
//! and so is eight times it), so chain files written before keep verifying; the rule accepts
//! more only where a signer itself built `R` or `A` with a torsion component, which proves
//! nothing more than its signature does.
//!
//! The batch coefficients come from SHA-512 over every input of the batch (keys, signatures,
//! challenges), so a batch's outcome is reproducible; finding inputs whose coefficients
//! cancel a bad term is as hard as guessing a 128-bit value.
//!
//! # The queue
//!
//! Code that checks signatures takes a [`SigCheck`]: [`Strict`] checks each at once;
//! [`Recorder`] writes each into a [`SigLog`] and answers "valid" so that the caller goes on;
//! [`SigLog::verify`] then checks the log in batches on the rayon pool; and [`Verdicts`]
//! answers a second run of the same code from those results, checking anything the log does
//! not hold at once. Verification runs the checks twice this way (see
//! [`crate::chain::verify`]) so that every answer a block gets is the rule's answer for its
//! own signature, in the order the code asks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Range;

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rayon::prelude::*;
use sha2::{Digest, Sha512};

use crate::primitives::tx::{PubKey, SigBytes};

/// Signatures checked together in one multiscalar multiplication: at this size (with the keys
/// merged, some 300 points) curve25519-dalek switches from Straus's method to Pippenger's,
/// whose cost per point falls as batches grow; a failed batch costs that many single checks.
pub const BATCH: usize = 256;

/// A signature decoded and found well-formed: everything but the equation holds.
struct Decoded {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

/// Whether the 32 bytes encode a field element below `p = 2²⁵⁵ − 19` (the sign bit aside).
fn canonical_y(bytes: &[u8; 32]) -> bool {
    let top = bytes[31] & 0x7f;
    !(top == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed)
}

/// Decodes a key: a curve point of more than small order.
fn decode_key(key: &[u8; 32]) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*key)
        .decompress()
        .filter(|a| !a.is_small_order())
}

/// Decodes the signature part and computes its challenge; `None` if malformed.
fn decode_sig(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> Option<Decoded> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&sig[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&sig[32..]);
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    if !canonical_y(&r_bytes) {
        return None;
    }
    let r = CompressedEdwardsY(r_bytes)
        .decompress()
        .filter(|r| !r.is_small_order())?;
    let digest: [u8; 64] = Sha512::new()
        .chain_update(r_bytes)
        .chain_update(key)
        .chain_update(msg)
        .finalize()
        .into();
    Some(Decoded {
        r,
        s,
        k: Scalar::from_bytes_mod_order_wide(&digest),
    })
}

/// Checks one signature under the rule of the module docs.
#[must_use]
pub fn verify(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    let (Some(a), Some(d)) = (decode_key(key), decode_sig(key, msg, sig)) else {
        return false;
    };
    let difference = EdwardsPoint::vartime_double_scalar_mul_basepoint(&d.k, &-a, &d.s) - d.r;
    difference.is_small_order()
}

/// One signature to check: a key, a message and a signature, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct SigRef<'a> {
    /// The signer's key.
    pub key: &'a [u8; 32],
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature.
    pub sig: &'a [u8; 64],
}

/// Checks many signatures at once, reusing its buffers from one batch to the next.
#[derive(Default)]
pub struct BatchVerifier {
    scalars: Vec<Scalar>,
    points: Vec<EdwardsPoint>,
    /// Each distinct key of the batch: its position among the points.
    keys: HashMap<[u8; 32], usize>,
    decoded: Vec<Decoded>,
}

impl BatchVerifier {
    /// Whether every signature of `batch` is valid: `true` exactly when [`verify`] accepts
    /// each (but with probability 2⁻¹²⁸ for a batch holding an invalid one). An empty batch
    /// is valid.
    pub fn verify(&mut self, batch: &[SigRef<'_>]) -> bool {
        self.scalars.clear();
        self.points.clear();
        self.keys.clear();
        // The basepoint's coefficient, summed as the batch is read.
        self.scalars.push(Scalar::ZERO);
        self.points.push(ED25519_BASEPOINT_POINT);
        let mut transcript = Sha512::new().chain_update(b"chainsmith/ed25519-batch/v1");
        self.decoded.clear();
        for item in batch {
            let Some(d) = decode_sig(item.key, item.msg, item.sig) else {
                return false;
            };
            transcript.update(item.key);
            transcript.update(item.sig);
            transcript.update(d.k.as_bytes());
            self.decoded.push(d);
        }
        let seed: [u8; 64] = transcript.finalize().into();
        let mut block = [0u8; 64];
        let mut b = Scalar::ZERO;
        for (i, (item, d)) in batch.iter().zip(&self.decoded).enumerate() {
            if i % 4 == 0 {
                block = Sha512::new()
                    .chain_update(seed)
                    .chain_update((i as u64).to_le_bytes())
                    .finalize()
                    .into();
            }
            let mut z_bytes = [0u8; 32];
            let at = (i % 4) * 16;
            z_bytes[..16].copy_from_slice(&block[at..at + 16]);
            let z = Scalar::from_bytes_mod_order(z_bytes);
            b += z * d.s;
            self.scalars.push(z);
            self.points.push(-d.r);
            let slot = match self.keys.get(item.key) {
                Some(&slot) => slot,
                None => {
                    let Some(a) = decode_key(item.key) else {
                        return false;
                    };
                    self.scalars.push(Scalar::ZERO);
                    self.points.push(-a);
                    self.keys.insert(*item.key, self.points.len() - 1);
                    self.points.len() - 1
                }
            };
            self.scalars[slot] += z * d.k;
        }
        self.scalars[0] = b;
        EdwardsPoint::vartime_multiscalar_mul(&self.scalars, &self.points).is_small_order()
    }
}

/// What checks a signature for code that must say whether one is valid. See the module docs.
pub trait SigCheck {
    /// Whether `sig` is `key`'s valid signature over `msg` (or, for a [`Recorder`], whether
    /// the caller should go on as if it were).
    fn check(&self, key: &PubKey, msg: &[u8], sig: &SigBytes) -> bool;
}

/// Checks each signature at once.
#[derive(Debug, Clone, Copy, Default)]
pub struct Strict;

impl SigCheck for Strict {
    fn check(&self, key: &PubKey, msg: &[u8], sig: &SigBytes) -> bool {
        key.verifies(msg, sig)
    }
}

/// One recorded signature: its key and signature, and where its message lies in the log.
#[derive(Debug, Clone)]
struct Job {
    key: [u8; 32],
    sig: [u8; 64],
    msg: Range<usize>,
}

/// Signatures recorded in the order they were asked about, their messages in one buffer.
#[derive(Debug, Clone, Default)]
pub struct SigLog {
    jobs: Vec<Job>,
    bytes: Vec<u8>,
}

impl SigLog {
    /// Signatures recorded.
    #[must_use]
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no signature is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Forgets every signature, keeping the buffers.
    pub fn clear(&mut self) {
        self.jobs.clear();
        self.bytes.clear();
    }

    /// Records one signature.
    pub fn push(&mut self, key: &PubKey, msg: &[u8], sig: &SigBytes) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(msg);
        self.jobs.push(Job {
            key: key.to_bytes(),
            sig: sig.to_bytes(),
            msg: start..self.bytes.len(),
        });
    }

    /// Appends every signature of `other`, after this log's.
    pub fn append(&mut self, other: &Self) {
        let offset = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.jobs.extend(other.jobs.iter().map(|j| Job {
            msg: j.msg.start + offset..j.msg.end + offset,
            ..j.clone()
        }));
    }

    fn get(&self, index: usize) -> SigRef<'_> {
        let job = &self.jobs[index];
        SigRef {
            key: &job.key,
            msg: &self.bytes[job.msg.clone()],
            sig: &job.sig,
        }
    }

    /// Checks every recorded signature, [`BATCH`] at a time on the current rayon pool; a
    /// batch that fails is checked again one signature at a time. Returns each signature's
    /// validity, in recording order.
    #[must_use]
    pub fn verify(&self) -> Vec<bool> {
        let mut valid = vec![false; self.jobs.len()];
        valid.par_chunks_mut(BATCH).enumerate().for_each_init(
            || (BatchVerifier::default(), Vec::with_capacity(BATCH)),
            |(verifier, refs), (chunk, out)| {
                let start = chunk * BATCH;
                refs.clear();
                refs.extend((start..start + out.len()).map(|i| self.get(i)));
                if verifier.verify(refs) {
                    out.fill(true);
                } else {
                    for (slot, r) in out.iter_mut().zip(refs.iter()) {
                        *slot = verify(r.key, r.msg, r.sig);
                    }
                }
            },
        );
        valid
    }
}

/// Records every signature it is asked about into a [`SigLog`] and answers "valid".
#[derive(Debug, Default)]
pub struct Recorder {
    log: RefCell<SigLog>,
}

impl Recorder {
    /// A recorder writing into `log` (cleared first, its buffers kept).
    #[must_use]
    pub fn new(mut log: SigLog) -> Self {
        log.clear();
        Self {
            log: RefCell::new(log),
        }
    }

    /// The signatures recorded.
    #[must_use]
    pub fn into_log(self) -> SigLog {
        self.log.into_inner()
    }
}

impl SigCheck for Recorder {
    fn check(&self, key: &PubKey, msg: &[u8], sig: &SigBytes) -> bool {
        self.log.borrow_mut().push(key, msg, sig);
        true
    }
}

/// Answers from a checked [`SigLog`]: the `n`-th question gets the `n`-th recorded answer
/// when it asks about the same signature, and any other question is checked at once.
#[derive(Debug)]
pub struct Verdicts<'a> {
    log: &'a SigLog,
    valid: &'a [bool],
    next: Cell<usize>,
}

impl<'a> Verdicts<'a> {
    /// Answers from `log`, whose signatures `valid` says are valid (as [`SigLog::verify`]
    /// returned), starting at its signature `first`.
    #[must_use]
    pub fn new(log: &'a SigLog, valid: &'a [bool], first: usize) -> Self {
        Self {
            log,
            valid,
            next: Cell::new(first),
        }
    }
}

impl SigCheck for Verdicts<'_> {
    fn check(&self, key: &PubKey, msg: &[u8], sig: &SigBytes) -> bool {
        let n = self.next.get();
        if n < self.log.len() && n < self.valid.len() {
            let r = self.log.get(n);
            if *r.key == key.to_bytes() && r.msg == msg && *r.sig == sig.to_bytes() {
                self.next.set(n + 1);
                return self.valid[n];
            }
        }
        key.verifies(msg, sig)
    }
}

#[cfg(test)]
mod tests {
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
    use proptest::prelude::*;

    use super::*;
    use crate::primitives::hash::sha256;

    /// ed25519-dalek's `verify_strict`: the rule before this module.
    fn old_rule(key: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
        VerifyingKey::from_bytes(key)
            .is_ok_and(|vk| vk.verify_strict(msg, &Signature::from_bytes(sig)).is_ok())
    }

    fn batch_of(items: &[([u8; 32], Vec<u8>, [u8; 64])]) -> bool {
        let refs: Vec<SigRef<'_>> = items
            .iter()
            .map(|(key, msg, sig)| SigRef { key, msg, sig })
            .collect();
        BatchVerifier::default().verify(&refs)
    }

    fn scalar(seed: &[u8]) -> Scalar {
        let mut wide = [0u8; 64];
        wide[..32].copy_from_slice(&sha256(seed));
        wide[32..].copy_from_slice(&sha256(&sha256(seed)));
        Scalar::from_bytes_mod_order_wide(&wide)
    }

    /// A signature built from secret scalar `a` and nonce `r`, with torsion point number `ta`
    /// added to the key and `tr` to the nonce point (0: none): what a signer can make.
    fn forged(seed: &[u8], msg: &[u8], ta: usize, tr: usize) -> ([u8; 32], [u8; 64]) {
        let a = scalar(&[seed, b"a"].concat());
        let r = scalar(&[seed, b"r"].concat());
        let key = (ED25519_BASEPOINT_POINT * a + EIGHT_TORSION[ta])
            .compress()
            .to_bytes();
        let big_r = (ED25519_BASEPOINT_POINT * r + EIGHT_TORSION[tr])
            .compress()
            .to_bytes();
        let digest: [u8; 64] = Sha512::new()
            .chain_update(big_r)
            .chain_update(key)
            .chain_update(msg)
            .finalize()
            .into();
        let k = Scalar::from_bytes_mod_order_wide(&digest);
        let s = r + k * a;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(&big_r);
        sig[32..].copy_from_slice(s.as_bytes());
        (key, sig)
    }

    fn unhex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        hex::decode_to_slice(s, &mut out).unwrap();
        out
    }

    /// The twelve edge cases of Chalkias, Garillot and Nikolaenko, "Taming the many EdDSAs"
    /// (2020), as github.com/novifinancial/ed25519-speccheck publishes them: message, key,
    /// signature.
    const SPECCHECK: [(&str, &str, &str); 12] = [
        (
            "8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000",
        ),
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
        (
            "aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e",
        ),
        (
            "9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009",
        ),
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09",
        ),
        (
            "e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c",
            "cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d",
            "21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405",
        ),
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514",
        ),
        (
            "85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40",
            "442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623",
            "8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22",
        ),
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f",
        ),
        (
            "9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41",
            "f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908",
        ),
        (
            "e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
        (
            "39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04",
        ),
    ];

    #[test]
    fn speccheck_edge_cases() {
        // Cases 0–2 have a small-order key or nonce point, 6–7 a scalar s ≥ ℓ, 8–9 a
        // non-canonical small-order R, 10–11 a non-canonical small-order key: all refused.
        // 3 passes both equations; 4 and 5 pass only the cofactored one, so the old rule
        // refuses them and this one accepts them.
        let new = [
            false, false, false, true, true, true, false, false, false, false, false, false,
        ];
        let old = [
            false, false, false, true, false, false, false, false, false, false, false, false,
        ];
        let valid = forged(b"speccheck", b"m", 0, 0);
        for (i, (msg, key, sig)) in SPECCHECK.iter().enumerate() {
            let msg = hex::decode(msg).unwrap();
            let (key, sig) = (unhex::<32>(key), unhex::<64>(sig));
            assert_eq!(verify(&key, &msg, &sig), new[i], "case {i}: this rule");
            assert_eq!(
                old_rule(&key, &msg, &sig),
                old[i],
                "case {i}: verify_strict"
            );
            let alone = [(key, msg.clone(), sig)];
            assert_eq!(batch_of(&alone), new[i], "case {i}: alone in a batch");
            let mixed = [(valid.0, b"m".to_vec(), valid.1), (key, msg, sig)];
            assert_eq!(batch_of(&mixed), new[i], "case {i}: in a batch");
        }
    }

    #[test]
    fn rfc8032_vectors() {
        // RFC 8032 §7.1, tests 1–3: secret key, message, signature.
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        let mut items = Vec::new();
        for (secret, msg, sig) in vectors {
            let signing = SigningKey::from_bytes(&unhex::<32>(secret));
            let msg = hex::decode(msg).unwrap();
            let sig = unhex::<64>(sig);
            assert_eq!(signing.sign(&msg).to_bytes(), sig);
            let key = signing.verifying_key().to_bytes();
            assert!(verify(&key, &msg, &sig));
            items.push((key, msg, sig));
        }
        assert!(batch_of(&items));
    }

    #[test]
    fn torsion_on_the_nonce_or_key_gets_one_answer() {
        // R + T for an order-8 T: the cofactorless equation (verify_strict) refuses it, the
        // cofactored one accepts it, and so does every batch holding it.
        let (key, sig) = forged(b"nonce", b"msg", 0, 1);
        assert!(!old_rule(&key, b"msg", &sig));
        assert!(verify(&key, b"msg", &sig));
        // A + T: accepted here whatever the challenge.
        let mixed_key = forged(b"key", b"msg", 1, 0);
        assert!(verify(&mixed_key.0, b"msg", &mixed_key.1));
        let mut items = vec![
            (key, b"msg".to_vec(), sig),
            (mixed_key.0, b"msg".to_vec(), mixed_key.1),
        ];
        for i in 0..40u8 {
            let (k, s) = forged(&[i], &[i], 0, 0);
            items.push((k, vec![i], s));
        }
        assert!(batch_of(&items));
        // The torsion nonce under a wrong scalar is refused alone and in the batch.
        let mut bad = sig;
        bad[32] ^= 1;
        assert!(!verify(&key, b"msg", &bad));
        items[0].2 = bad;
        assert!(!batch_of(&items));
    }

    #[test]
    fn a_log_checks_each_signature_and_answers_in_order() {
        let mut log = SigLog::default();
        let mut expected = Vec::new();
        for i in 0..200u32 {
            let (key, mut sig) = forged(&i.to_le_bytes(), b"job", 0, (i % 8) as usize);
            if i % 37 == 5 {
                sig[40] ^= 0x10;
            }
            let (key, sig) = (PubKey::from_bytes(key), SigBytes::from_bytes(sig));
            expected.push(key.verifies(b"job", &sig));
            log.push(&key, b"job", &sig);
        }
        let valid = log.verify();
        assert_eq!(valid, expected);
        assert!(valid.contains(&false));
        // The answers come in recording order; a question the log does not hold is checked.
        let verdicts = Verdicts::new(&log, &valid, 0);
        for (i, answer) in expected.iter().enumerate() {
            let r = log.get(i);
            let (key, sig) = (PubKey::from_bytes(*r.key), SigBytes::from_bytes(*r.sig));
            assert_eq!(verdicts.check(&key, r.msg, &sig), *answer);
        }
        let (key, sig) = forged(b"other", b"job", 0, 0);
        let (key, sig) = (PubKey::from_bytes(key), SigBytes::from_bytes(sig));
        assert!(verdicts.check(&key, b"job", &sig));
        assert!(!verdicts.check(&key, b"other job", &sig));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Valid, torsion-carrying and corrupted signatures: a batch is valid exactly when
        /// each is; every signature the old rule accepts is accepted; corruptions are refused
        /// by both rules.
        #[test]
        fn batches_agree_with_single_checks(
            kinds in proptest::collection::vec((0u8..6, 0usize..8, 0usize..96), 1..24),
            seed in any::<u64>(),
        ) {
            let mut items = Vec::new();
            for (i, (kind, torsion, byte)) in kinds.iter().enumerate() {
                let id = [seed.to_le_bytes(), (i as u64).to_le_bytes()].concat();
                let msg = sha256(&id).to_vec();
                let (mut key, mut sig) = match kind {
                    0 | 1 => {
                        let signing = SigningKey::from_bytes(&sha256(&id));
                        (signing.verifying_key().to_bytes(), signing.sign(&msg).to_bytes())
                    }
                    2 => forged(&id, &msg, 0, *torsion),
                    3 => forged(&id, &msg, *torsion, 0),
                    _ => forged(&id, &msg, 0, 0),
                };
                if *kind >= 4 {
                    // Flip one bit of the signature or the key.
                    if *byte < 64 {
                        sig[*byte] ^= 1 << (byte % 8);
                    } else {
                        key[byte - 64] ^= 1 << (byte % 8);
                    }
                    prop_assert!(!old_rule(&key, &msg, &sig));
                    prop_assert!(!verify(&key, &msg, &sig));
                }
                if old_rule(&key, &msg, &sig) {
                    prop_assert!(verify(&key, &msg, &sig));
                }
                items.push((key, msg, sig));
            }
            let each: Vec<bool> = items.iter().map(|(k, m, s)| verify(k, m, s)).collect();
            prop_assert_eq!(batch_of(&items), each.iter().all(|v| *v));
            let mut log = SigLog::default();
            for (k, m, s) in &items {
                log.push(&PubKey::from_bytes(*k), m, &SigBytes::from_bytes(*s));
            }
            prop_assert_eq!(log.verify(), each);
        }
    }
}
