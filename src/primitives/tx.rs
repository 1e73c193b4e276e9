//! A small UTXO transaction model shared by every consensus rule.
//!
//! The kinds: the `genesis` transaction (opaque bytes, so that a Bitcoin genesis
//! coinbase hashes to its real txid; like Bitcoin's, its outputs are not spendable), the
//! `coinbase` (block height + extra-nonce + reward outputs) and the `transfer`, whose inputs are
//! each signed with ed25519 by the owner of the output they spend; then one per consensus rule
//! that needs block fields beyond the 80-byte header: `coinstake` (proof of stake), `clique`
//! (proof of authority), `producer` and `vote` (delegated proof of stake), `raft` and `pbft`
//! (the ordering rules' seals). Keeping those fields in transactions leaves the header
//! Bitcoin's while the merkle root still commits to them. Outputs pay to an ed25519 public key
//! (pay-to-pubkey, as Peercoin requires for block signatures).
//!
//! The consensus encoding (the bytes hashed into a txid) is fixed-width little-endian with
//! Bitcoin's CompactSize counts; amounts are integer base units (10^8 per coin).

use std::fmt;

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::primitives::hash::{Txid, sha256, sha256d};

/// Base units per coin.
pub const COIN: u64 = 100_000_000;
/// The largest amount any output or sum may reach: 21 million coins, as in Bitcoin.
pub const MAX_MONEY: u64 = 21_000_000 * COIN;

/// Why a decimal number is not an amount of coins.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AmountError {
    /// Negative or not a finite number.
    #[error("amount {0} is not a non-negative number")]
    Negative(f64),
    /// More than 21 million coins.
    #[error("amount {0} exceeds 21 million coins")]
    TooLarge(f64),
    /// More than 8 decimal places.
    #[error("amount {0} has more than 8 decimal places")]
    TooPrecise(f64),
}

/// An amount of coins in integer base units; shown and serialised as a decimal number of
/// coins with up to 8 decimal places.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(u64);

impl Amount {
    /// Zero coins.
    pub const ZERO: Self = Self(0);

    /// Wraps a number of base units.
    #[must_use]
    pub const fn from_base_units(units: u64) -> Self {
        Self(units)
    }

    /// Returns the number of base units.
    #[must_use]
    pub const fn to_base_units(self) -> u64 {
        self.0
    }

    /// Adds, returning `None` past [`MAX_MONEY`].
    #[must_use]
    pub fn checked_add(self, rhs: Self) -> Option<Self> {
        self.0
            .checked_add(rhs.0)
            .filter(|v| *v <= MAX_MONEY)
            .map(Self)
    }

    /// Subtracts, returning `None` below zero.
    #[must_use]
    pub fn checked_sub(self, rhs: Self) -> Option<Self> {
        self.0.checked_sub(rhs.0).map(Self)
    }

    /// Parses a decimal coin amount with at most 8 decimal places.
    ///
    /// # Errors
    /// [`AmountError`] for negative, non-finite, too precise or too large values.
    pub fn from_coins_f64(coins: f64) -> Result<Self, AmountError> {
        if !coins.is_finite() || coins < 0.0 {
            return Err(AmountError::Negative(coins));
        }
        let units = (coins * COIN as f64).round();
        if units > MAX_MONEY as f64 {
            return Err(AmountError::TooLarge(coins));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let units = units as u64;
        if (units as f64 / COIN as f64 - coins).abs() > f64::EPSILON * coins.max(1.0) {
            return Err(AmountError::TooPrecise(coins));
        }
        Ok(Self(units))
    }

    /// Returns the amount in coins as an `f64` (exact for every amount up to [`MAX_MONEY`]
    /// when printed with 8 decimals).
    #[must_use]
    pub fn to_coins_f64(self) -> f64 {
        self.0 as f64 / COIN as f64
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:08}", self.0 / COIN, self.0 % COIN)
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Amount({self})")
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.to_coins_f64())
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::from_coins_f64(f64::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a transaction signature is bound to.
///
/// Chain files written before signatures were bound to their chain sign a message any chain
/// would accept (`Legacy`): a vote or transfer signed on one chain verified on another with the
/// same keys. Chain files written since carry `format: 2` on their genesis line and sign with
/// their genesis hash in the message (`Chain`), as Ethereum's chain id does (EIP-155), so a
/// signature is valid on its own chain only. Block signatures sign the block hash, which the
/// parent links already bind to one chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigDomain {
    /// Unbound: the chain files of format 1.
    Legacy,
    /// Bound to the chain with this genesis block.
    Chain(crate::primitives::hash::BlockHash),
}

/// An ed25519 public key: the owner of an output. Shown as 64 hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PubKey([u8; 32]);

impl PubKey {
    /// Wraps 32 key bytes (not checked to be a curve point until a signature is verified).
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Returns the 32 key bytes.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Verifies `sig` over `msg` under the crate's ed25519 rule: canonical encodings, no
    /// small-order key or nonce point, the cofactored equation ([`crate::primitives::sig`]).
    #[must_use]
    pub fn verifies(&self, msg: &[u8], sig: &SigBytes) -> bool {
        crate::primitives::sig::verify(&self.0, msg, &sig.0)
    }
}

impl fmt::Display for PubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for PubKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PubKey({self})")
    }
}

/// A 64-byte ed25519 signature. Shown as 128 hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct SigBytes([u8; 64]);

impl SigBytes {
    /// Wraps 64 signature bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 64]) -> Self {
        Self(bytes)
    }

    /// Returns the 64 signature bytes.
    #[must_use]
    pub const fn to_bytes(self) -> [u8; 64] {
        self.0
    }
}

impl fmt::Debug for SigBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigBytes({})", hex::encode(self.0))
    }
}

macro_rules! fixed_hex_serde {
    ($name:ident, $len:expr) => {
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&hex::encode(self.0))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                let mut bytes = [0u8; $len];
                hex::decode_to_slice(s.as_bytes(), &mut bytes).map_err(|_| {
                    serde::de::Error::custom(format!(
                        "expected {} hex digits, got {:?}",
                        2 * $len,
                        s
                    ))
                })?;
                Ok(Self(bytes))
            }
        }
    };
}
fixed_hex_serde!(PubKey, 32);
fixed_hex_serde!(SigBytes, 64);

/// A key pair derived deterministically from a seed and a wallet name, so that demo chains are
/// reproducible: `secret = sha256("chainsmith/wallet/v1" ‖ seed ‖ 0x00 ‖ name)`.
#[derive(Clone)]
pub struct KeyPair {
    name: String,
    signing: SigningKey,
}

impl KeyPair {
    /// Derives the key pair of wallet `name` from `seed`.
    #[must_use]
    pub fn derive(seed: &str, name: &str) -> Self {
        let mut preimage = b"chainsmith/wallet/v1".to_vec();
        preimage.extend_from_slice(seed.as_bytes());
        preimage.push(0);
        preimage.extend_from_slice(name.as_bytes());
        Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&sha256(&preimage)),
        }
    }

    /// The key pair of `name` whose secret key is `secret` (a node's identity key, read from
    /// its key file).
    #[must_use]
    pub fn from_secret(name: &str, secret: [u8; 32]) -> Self {
        Self {
            name: name.to_owned(),
            signing: SigningKey::from_bytes(&secret),
        }
    }

    /// Returns the wallet name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Returns the public key.
    #[must_use]
    pub fn pubkey(&self) -> PubKey {
        PubKey(self.signing.verifying_key().to_bytes())
    }

    /// Signs `msg`.
    #[must_use]
    pub fn sign(&self, msg: &[u8]) -> SigBytes {
        SigBytes(self.signing.sign(msg).to_bytes())
    }
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPair({}, {})", self.name, self.pubkey())
    }
}

/// Bytes shown as a hex string (the genesis transaction).
#[derive(Clone, PartialEq, Eq)]
pub struct HexBytes(pub Vec<u8>);

impl fmt::Debug for HexBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HexBytes({})", hex::encode(&self.0))
    }
}

impl Serialize for HexBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for HexBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(s.as_bytes())
            .map(HexBytes)
            .map_err(|e| serde::de::Error::custom(format!("bad hex: {e}")))
    }
}

/// A reference to an output: the transaction that created it and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutPoint {
    /// The creating transaction.
    pub txid: Txid,
    /// The output's index in that transaction.
    pub vout: u32,
}

/// An output: an amount paid to a public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxOut {
    /// The amount.
    pub value: Amount,
    /// The owner, who must sign to spend it.
    pub to: PubKey,
}

/// A transfer input: the output it spends and the owner's signature over the transfer's
/// signature hash ([`Transaction::sighash`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxIn {
    /// The transaction whose output is spent.
    pub txid: Txid,
    /// The index of the spent output.
    pub vout: u32,
    /// ed25519 signature by the spent output's owner.
    pub signature: SigBytes,
}

impl TxIn {
    /// Returns the output this input spends.
    #[must_use]
    pub const fn prevout(&self) -> OutPoint {
        OutPoint {
            txid: self.txid,
            vout: self.vout,
        }
    }
}

/// A transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Transaction {
    /// The genesis block's transaction: raw bytes whose sha256d is the txid; creates nothing
    /// spendable.
    Genesis {
        /// The raw serialised transaction.
        raw: HexBytes,
    },
    /// The first transaction of every later block: mints the reward.
    Coinbase {
        /// The block height, which makes every coinbase unique (BIP34).
        height: u32,
        /// Rolled when all 2^32 header nonces fail, to give a new merkle root.
        extra_nonce: u64,
        /// Reward outputs.
        outputs: Vec<TxOut>,
    },
    /// Moves coins: spends outputs, each signed by its owner, and creates new ones.
    Transfer {
        /// Inputs.
        inputs: Vec<TxIn>,
        /// Outputs.
        outputs: Vec<TxOut>,
    },
    /// Proof of stake: spends the staked output (the kernel, its only input, signed by its
    /// owner) and pays its value plus interest back to the owner, at age zero.
    Coinstake {
        /// The kernel input (exactly one).
        inputs: Vec<TxIn>,
        /// Value plus interest, paid to the staker.
        outputs: Vec<TxOut>,
    },
    /// Proof of authority (Clique): the second transaction of every block, naming its sealer
    /// and carrying the header fields Clique adds — difficulty, a vote, the epoch checkpoint.
    /// The merkle root commits to it, so the block hash and the sealer's signature cover it.
    Clique {
        /// The sealer.
        signer: PubKey,
        /// 2 when the signer is in turn, else 1.
        difficulty: u8,
        /// A vote to authorize or drop a signer (never on a checkpoint block).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        vote: Option<SignerVote>,
        /// Checkpoint blocks (height a multiple of the epoch): the signer list, sorted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        checkpoint: Option<Vec<PubKey>>,
    },
    /// Delegated proof of stake: the second transaction of every block, naming the scheduled
    /// producer and the slot it produced in.
    Producer {
        /// The producer.
        producer: PubKey,
        /// Slots of `slot_ms` since genesis (genesis is slot 0).
        slot: u64,
    },
    /// Delegated proof of stake: a token holder's approval vote, replacing its previous one.
    /// Every listed candidate gets the holder's full stake.
    Vote {
        /// The holder.
        voter: PubKey,
        /// One more than the holder's previous vote (genesis votes are 0), so an old vote
        /// cannot be replayed.
        seq: u32,
        /// Candidate names, strictly ascending.
        candidates: Vec<String>,
        /// The holder's signature over [`Transaction::sighash`].
        signature: SigBytes,
    },
    /// Raft: the second transaction of every block, naming the leader that ordered it, its term
    /// and its log index, and the client requests its transfers answer (one transfer each, in
    /// order).
    Raft {
        /// The leader.
        leader: PubKey,
        /// The leader's term.
        term: u64,
        /// The block's index in the replicated log.
        index: u64,
        /// The client requests the block's transfers answer.
        requests: Vec<ClientRequest>,
    },
    /// PBFT: the second transaction of every block, naming the primary that proposed it, the
    /// view it was proposed in, the sequence number the primary assigned it, and the client
    /// requests its transfers answer (one transfer each, in order).
    Pbft {
        /// The primary of `view`.
        primary: PubKey,
        /// The view the block was proposed in.
        view: u64,
        /// The sequence number the primary assigned it.
        sequence: u64,
        /// The client requests the block's transfers answer.
        requests: Vec<ClientRequest>,
    },
    /// Paxos: the second transaction of every block, naming the leader that first proposed
    /// it, the round of that leader's ballot (the ballot is (round, the leader's member
    /// index)), the slot the block fills, and the client requests its transfers answer (one
    /// transfer each, in order).
    Paxos {
        /// The proposer.
        leader: PubKey,
        /// The round of the ballot it was proposed in.
        round: u64,
        /// The Multi-Paxos slot.
        slot: u64,
        /// The client requests the block's transfers answer.
        requests: Vec<ClientRequest>,
    },
    /// ZAB: the second transaction of every block, naming the leader that proposed it and its
    /// zxid (the leader's epoch and the proposal's counter in it), and the client requests
    /// its transfers answer (one transfer each, in order).
    Zab {
        /// The leader of `epoch`.
        leader: PubKey,
        /// The zxid's epoch.
        epoch: u64,
        /// The zxid's counter within the epoch.
        counter: u64,
        /// The client requests the block's transfers answer.
        requests: Vec<ClientRequest>,
    },
    /// Kafka: the second transaction of every block, naming the partition leader that
    /// appended it, the leader epoch it was appended in, its offset in the partition's log,
    /// and the client requests its transfers answer (one transfer each, in order).
    Kafka {
        /// The partition leader.
        leader: PubKey,
        /// The leader epoch (KIP-101).
        epoch: u64,
        /// The block's offset in the partition's log.
        offset: u64,
        /// The client requests the block's transfers answer.
        requests: Vec<ClientRequest>,
    },
}

/// A client request's identity in an ordered log: the client and its serial number. A
/// request is applied once however often the client retries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientRequest {
    /// The client.
    pub client: u32,
    /// The client's serial number for it.
    pub serial: u64,
}

/// A Clique vote carried by a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignerVote {
    /// The key voted on.
    pub target: PubKey,
    /// Authorize (add) it, or drop it.
    pub authorize: bool,
}

fn push_compact_size(out: &mut Vec<u8>, n: usize) {
    let n = n as u64;
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

fn push_outputs(out: &mut Vec<u8>, outputs: &[TxOut]) {
    push_compact_size(out, outputs.len());
    for o in outputs {
        out.extend_from_slice(&o.value.to_base_units().to_le_bytes());
        out.extend_from_slice(&o.to.to_bytes());
    }
}

const TAG_COINBASE: u8 = 1;
const TAG_TRANSFER: u8 = 2;
const TAG_COINSTAKE: u8 = 3;
const TAG_CLIQUE: u8 = 4;
const TAG_PRODUCER: u8 = 5;
const TAG_VOTE: u8 = 6;
const TAG_RAFT: u8 = 7;
const TAG_PBFT: u8 = 8;
const TAG_PAXOS: u8 = 9;
const TAG_ZAB: u8 = 10;
const TAG_KAFKA: u8 = 11;

impl Transaction {
    /// Returns the consensus encoding, the bytes hashed into the txid.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        self.encode(true)
    }

    /// A coinbase's encoding cut around its 8-byte extra-nonce: the bytes before it and the
    /// bytes after it (Stratum's coinb1 and coinb2), so that
    /// `before ‖ extra_nonce.to_le_bytes() ‖ after` is [`Transaction::to_bytes`]. `None` for
    /// every other kind.
    #[must_use]
    pub fn split_at_extra_nonce(&self) -> Option<(Vec<u8>, Vec<u8>)> {
        let Self::Coinbase { .. } = self else {
            return None;
        };
        // tag (1) ‖ height (4) ‖ extra_nonce (8) ‖ outputs
        let mut bytes = self.to_bytes();
        let after = bytes.split_off(1 + 4 + 8);
        bytes.truncate(1 + 4);
        Some((bytes, after))
    }

    fn encode(&self, with_signatures: bool) -> Vec<u8> {
        match self {
            Self::Genesis { raw } => raw.0.clone(),
            Self::Coinbase {
                height,
                extra_nonce,
                outputs,
            } => {
                let mut out = vec![TAG_COINBASE];
                out.extend_from_slice(&height.to_le_bytes());
                out.extend_from_slice(&extra_nonce.to_le_bytes());
                push_outputs(&mut out, outputs);
                out
            }
            Self::Transfer { inputs, outputs } | Self::Coinstake { inputs, outputs } => {
                let tag = if matches!(self, Self::Transfer { .. }) {
                    TAG_TRANSFER
                } else {
                    TAG_COINSTAKE
                };
                let mut out = vec![tag];
                push_compact_size(&mut out, inputs.len());
                for i in inputs {
                    out.extend_from_slice(i.txid.as_bytes());
                    out.extend_from_slice(&i.vout.to_le_bytes());
                    if with_signatures {
                        out.extend_from_slice(&i.signature.to_bytes());
                    }
                }
                push_outputs(&mut out, outputs);
                out
            }
            Self::Clique {
                signer,
                difficulty,
                vote,
                checkpoint,
            } => {
                let mut out = vec![TAG_CLIQUE];
                out.extend_from_slice(&signer.to_bytes());
                out.push(*difficulty);
                match vote {
                    None => out.push(0),
                    Some(v) => {
                        out.push(if v.authorize { 1 } else { 2 });
                        out.extend_from_slice(&v.target.to_bytes());
                    }
                }
                match checkpoint {
                    None => out.push(0),
                    Some(list) => {
                        out.push(1);
                        push_compact_size(&mut out, list.len());
                        for k in list {
                            out.extend_from_slice(&k.to_bytes());
                        }
                    }
                }
                out
            }
            Self::Producer { producer, slot } => {
                let mut out = vec![TAG_PRODUCER];
                out.extend_from_slice(&producer.to_bytes());
                out.extend_from_slice(&slot.to_le_bytes());
                out
            }
            Self::Raft {
                leader: key,
                term: first,
                index: second,
                requests,
            }
            | Self::Pbft {
                primary: key,
                view: first,
                sequence: second,
                requests,
            } => {
                let tag = if matches!(self, Self::Raft { .. }) {
                    TAG_RAFT
                } else {
                    TAG_PBFT
                };
                let mut out = vec![tag];
                out.extend_from_slice(&key.to_bytes());
                out.extend_from_slice(&first.to_le_bytes());
                out.extend_from_slice(&second.to_le_bytes());
                push_compact_size(&mut out, requests.len());
                for r in requests {
                    out.extend_from_slice(&r.client.to_le_bytes());
                    out.extend_from_slice(&r.serial.to_le_bytes());
                }
                out
            }
            Self::Paxos {
                leader,
                round,
                slot,
                requests,
            } => {
                let mut out = vec![TAG_PAXOS];
                out.extend_from_slice(&leader.to_bytes());
                out.extend_from_slice(&round.to_le_bytes());
                out.extend_from_slice(&slot.to_le_bytes());
                push_compact_size(&mut out, requests.len());
                for r in requests {
                    out.extend_from_slice(&r.client.to_le_bytes());
                    out.extend_from_slice(&r.serial.to_le_bytes());
                }
                out
            }
            Self::Zab {
                leader,
                epoch,
                counter,
                requests,
            } => {
                let mut out = vec![TAG_ZAB];
                out.extend_from_slice(&leader.to_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
                out.extend_from_slice(&counter.to_le_bytes());
                push_compact_size(&mut out, requests.len());
                for r in requests {
                    out.extend_from_slice(&r.client.to_le_bytes());
                    out.extend_from_slice(&r.serial.to_le_bytes());
                }
                out
            }
            Self::Kafka {
                leader,
                epoch,
                offset,
                requests,
            } => {
                let mut out = vec![TAG_KAFKA];
                out.extend_from_slice(&leader.to_bytes());
                out.extend_from_slice(&epoch.to_le_bytes());
                out.extend_from_slice(&offset.to_le_bytes());
                push_compact_size(&mut out, requests.len());
                for r in requests {
                    out.extend_from_slice(&r.client.to_le_bytes());
                    out.extend_from_slice(&r.serial.to_le_bytes());
                }
                out
            }
            Self::Vote {
                voter,
                seq,
                candidates,
                signature,
            } => {
                let mut out = vec![TAG_VOTE];
                out.extend_from_slice(&voter.to_bytes());
                out.extend_from_slice(&seq.to_le_bytes());
                push_compact_size(&mut out, candidates.len());
                for c in candidates {
                    push_compact_size(&mut out, c.len());
                    out.extend_from_slice(c.as_bytes());
                }
                if with_signatures {
                    out.extend_from_slice(&signature.to_bytes());
                }
                out
            }
        }
    }

    /// Returns the txid: sha256d of [`Transaction::to_bytes`].
    #[must_use]
    pub fn txid(&self) -> Txid {
        Txid::hash(&self.to_bytes())
    }

    /// Returns the message every input of a transfer (and a vote's voter) signs: sha256d of a
    /// domain tag, the chain's genesis hash for chain-bound signatures, and the encoding
    /// without signatures (inputs' outpoints and all outputs).
    #[must_use]
    pub fn sighash(&self, domain: SigDomain) -> [u8; 32] {
        let mut msg = match domain {
            SigDomain::Legacy => b"chainsmith/sighash/v1".to_vec(),
            SigDomain::Chain(genesis) => {
                let mut tag = b"chainsmith/sighash/v2".to_vec();
                tag.extend_from_slice(genesis.as_bytes());
                tag
            }
        };
        msg.extend_from_slice(&self.encode(false));
        sha256d(&msg)
    }

    /// Returns the outputs this transaction creates (none for genesis).
    #[must_use]
    pub fn outputs(&self) -> &[TxOut] {
        match self {
            Self::Genesis { .. }
            | Self::Clique { .. }
            | Self::Producer { .. }
            | Self::Vote { .. }
            | Self::Raft { .. }
            | Self::Pbft { .. }
            | Self::Paxos { .. } => &[],
            Self::Zab { .. } => &[],
            Self::Kafka { .. } => &[],
            Self::Coinbase { outputs, .. }
            | Self::Transfer { outputs, .. }
            | Self::Coinstake { outputs, .. } => outputs,
        }
    }

    /// Builds a transfer spending `spends` (each with the key that owns it) and creating
    /// `outputs`, signing every input.
    #[must_use]
    pub fn signed_transfer(
        domain: SigDomain,
        spends: &[(OutPoint, &KeyPair)],
        outputs: Vec<TxOut>,
    ) -> Self {
        Self::signed(domain, false, spends, outputs)
    }

    /// Builds a coinstake spending the kernel `stake` (with its owner's key) into `outputs`.
    #[must_use]
    pub fn signed_coinstake(
        domain: SigDomain,
        stake: OutPoint,
        owner: &KeyPair,
        outputs: Vec<TxOut>,
    ) -> Self {
        Self::signed(domain, true, &[(stake, owner)], outputs)
    }

    /// Builds `voter`'s signed approval vote number `seq` for `candidates` (sorted here).
    #[must_use]
    pub fn signed_vote(
        domain: SigDomain,
        voter: &KeyPair,
        seq: u32,
        mut candidates: Vec<String>,
    ) -> Self {
        candidates.sort();
        let mut tx = Self::Vote {
            voter: voter.pubkey(),
            seq,
            candidates,
            signature: SigBytes([0; 64]),
        };
        let msg = tx.sighash(domain);
        if let Self::Vote { signature, .. } = &mut tx {
            *signature = voter.sign(&msg);
        }
        tx
    }

    /// Returns the kind's name as it appears in JSON (`coinbase`, `transfer`, ...).
    #[must_use]
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Genesis { .. } => "genesis",
            Self::Coinbase { .. } => "coinbase",
            Self::Transfer { .. } => "transfer",
            Self::Coinstake { .. } => "coinstake",
            Self::Clique { .. } => "clique",
            Self::Producer { .. } => "producer",
            Self::Raft { .. } => "raft",
            Self::Pbft { .. } => "pbft",
            Self::Paxos { .. } => "paxos",
            Self::Zab { .. } => "zab",
            Self::Kafka { .. } => "kafka",
            Self::Vote { .. } => "vote",
        }
    }

    fn signed(
        domain: SigDomain,
        coinstake: bool,
        spends: &[(OutPoint, &KeyPair)],
        outputs: Vec<TxOut>,
    ) -> Self {
        let mut inputs: Vec<TxIn> = spends
            .iter()
            .map(|(prevout, _)| TxIn {
                txid: prevout.txid,
                vout: prevout.vout,
                signature: SigBytes([0; 64]),
            })
            .collect();
        let build = |inputs, outputs| {
            if coinstake {
                Self::Coinstake { inputs, outputs }
            } else {
                Self::Transfer { inputs, outputs }
            }
        };
        let msg = build(inputs.clone(), outputs.clone()).sighash(domain);
        for (input, (_, key)) in inputs.iter_mut().zip(spends) {
            input.signature = key.sign(&msg);
        }
        build(inputs, outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_decimal_roundtrip() {
        for units in [0, 1, 12_345_678, 50 * COIN, MAX_MONEY] {
            let a = Amount::from_base_units(units);
            let back = Amount::from_coins_f64(a.to_coins_f64()).unwrap();
            assert_eq!(back, a);
        }
        assert_eq!(
            Amount::from_base_units(150_000_001).to_string(),
            "1.50000001"
        );
        assert!(Amount::from_coins_f64(-1.0).is_err());
        assert!(Amount::from_coins_f64(0.123_456_789).is_err());
        assert!(Amount::from_coins_f64(21_000_001.0).is_err());
    }

    #[test]
    fn coinbase_splits_around_its_extra_nonce() {
        let coinbase = Transaction::Coinbase {
            height: 0x0102_0304,
            extra_nonce: 0x1122_3344_5566_7788,
            outputs: vec![TxOut {
                value: Amount::from_base_units(7),
                to: KeyPair::derive("seed", "alice").pubkey(),
            }],
        };
        let (before, after) = coinbase.split_at_extra_nonce().unwrap();
        assert_eq!(before, [TAG_COINBASE, 4, 3, 2, 1]);
        let mut whole = before;
        whole.extend_from_slice(&0x1122_3344_5566_7788u64.to_le_bytes());
        whole.extend_from_slice(&after);
        assert_eq!(whole, coinbase.to_bytes());
        let transfer = Transaction::Transfer {
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        assert_eq!(transfer.split_at_extra_nonce(), None);
    }

    #[test]
    fn signatures_cover_outputs_and_their_chain() {
        let alice = KeyPair::derive("seed", "alice");
        let bob = KeyPair::derive("seed", "bob");
        let prevout = OutPoint {
            txid: Txid::hash(b"x"),
            vout: 0,
        };
        let here = SigDomain::Chain(crate::primitives::hash::BlockHash::from_byte_array([1; 32]));
        let there = SigDomain::Chain(crate::primitives::hash::BlockHash::from_byte_array([2; 32]));
        let tx = Transaction::signed_transfer(
            here,
            &[(prevout, &alice)],
            vec![TxOut {
                value: Amount::from_base_units(5),
                to: bob.pubkey(),
            }],
        );
        let Transaction::Transfer { inputs, outputs } = &tx else {
            panic!("not a transfer")
        };
        let sig = &inputs[0].signature;
        assert!(alice.pubkey().verifies(&tx.sighash(here), sig));
        assert!(!bob.pubkey().verifies(&tx.sighash(here), sig));
        // Bound to its chain: not valid on another chain, nor as an unbound signature.
        assert!(!alice.pubkey().verifies(&tx.sighash(there), sig));
        assert!(!alice.pubkey().verifies(&tx.sighash(SigDomain::Legacy), sig));
        let mut changed = outputs.clone();
        changed[0].value = Amount::from_base_units(6);
        let tampered = Transaction::Transfer {
            inputs: inputs.clone(),
            outputs: changed,
        };
        assert!(!alice.pubkey().verifies(&tampered.sighash(here), sig));
        assert_ne!(tx.txid(), tampered.txid());
    }

    #[test]
    fn wallets_are_deterministic_and_distinct() {
        assert_eq!(
            KeyPair::derive("s", "a").pubkey(),
            KeyPair::derive("s", "a").pubkey()
        );
        assert_ne!(
            KeyPair::derive("s", "a").pubkey(),
            KeyPair::derive("s", "b").pubkey()
        );
        assert_ne!(
            KeyPair::derive("s", "a").pubkey(),
            KeyPair::derive("t", "a").pubkey()
        );
    }

    #[test]
    fn transaction_json_roundtrip_and_unknown_fields() {
        let tx = Transaction::Coinbase {
            height: 3,
            extra_nonce: 9,
            outputs: vec![TxOut {
                value: Amount::from_base_units(50 * COIN),
                to: KeyPair::derive("s", "m").pubkey(),
            }],
        };
        let json = serde_json::to_string(&tx).unwrap();
        assert_eq!(serde_json::from_str::<Transaction>(&json).unwrap(), tx);
        let bad = json.replacen("\"height\"", "\"bogus\":1,\"height\"", 1);
        let err = serde_json::from_str::<Transaction>(&bad).unwrap_err();
        assert!(err.to_string().contains("bogus"), "{err}");
    }
}
