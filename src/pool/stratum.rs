//! The Stratum V1 wire format: newline-delimited JSON-RPC, and the byte orders existing miners
//! (cpuminer, cgminer, bfgminer, ASIC firmware) build a header from.
//!
//! A `mining.notify` carries the header in pieces; a miner rebuilds it as follows (every value
//! below is hex in the message):
//!
//! * **coinbase** = `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`, the bytes in the order
//!   given; its txid is sha256d of exactly those bytes (internal byte order).
//! * **merkle root**: start from that txid and, for each branch entry `b` in order,
//!   `root = sha256d(root ‖ b)` (branch entries are hashes in internal byte order).
//! * **header** (80 bytes, Bitcoin's layout, integers little-endian):
//!   `version ‖ prevhash ‖ merkle root ‖ ntime ‖ nbits ‖ nonce`, where
//!   - `version`, `nbits`, `ntime` are sent as the big-endian hex of the 32-bit number
//!     (`"00000001"` is version 1), so the header holds their bytes reversed;
//!   - `prevhash` is sent as the header's 32 bytes cut into eight 4-byte words, each word's
//!     bytes reversed (the word order is kept): a leftover of getwork, whose miners swapped
//!     every 32-bit word of the header;
//!   - `mining.submit` sends `ntime` and `nonce` as big-endian hex of the number, like
//!     `nbits`, and `extranonce2` as raw bytes.
//! * **difficulty** `D` (from `mining.set_difficulty`) means the target
//!   `0x00000000ffff0000…0000 / D` (difficulty 1 is Bitcoin's highest target, "bdiff"); a
//!   share is a header whose hash, read as a little-endian number, is at most that target.
//!
//! `docs/POOL.md` works an example through with Bitcoin's block 1; the unit tests below check
//! it and one more (block 100 000, whose coinbase has a merkle branch of two hashes).

use num_bigint::BigUint;
use num_traits::{FromPrimitive, ToPrimitive, Zero};
use serde_json::{Value, json};

use crate::primitives::hash::{BlockHash, MerkleRoot, sha256d};
use crate::primitives::header::Header;
use crate::primitives::merkle::parent_level;
use crate::primitives::pow_units::{CompactTarget, Target};

/// Bytes of extranonce1, the pool's per-connection part of the coinbase's extra-nonce.
pub const EXTRANONCE1_SIZE: usize = 4;
/// Bytes of extranonce2, the miner's part, rolled when a job's nonces run out.
pub const EXTRANONCE2_SIZE: usize = 4;
/// The version bits a miner may roll after `mining.configure` (BIP 310), BIP 320's mask.
pub const VERSION_ROLLING_MASK: u32 = 0x1fff_e000;
/// The smallest share difficulty accepted anywhere (a target of about 2^256: every hash).
pub const MIN_DIFFICULTY: f64 = 1.0 / 4_294_967_296.0;
/// The largest share difficulty (far above any chain's).
pub const MAX_DIFFICULTY: f64 = 1e30;

/// A Stratum error: the code miners know and a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (code {code})")]
pub struct StratumError {
    /// 20 other, 21 job not found, 22 duplicate, 23 low difficulty, 24 unauthorized,
    /// 25 not subscribed.
    pub code: i32,
    /// What went wrong.
    pub message: String,
}

impl StratumError {
    /// Code 20: anything else (a malformed parameter, a rate limit).
    pub const OTHER: i32 = 20;
    /// Code 21: the job is unknown or stale.
    pub const JOB_NOT_FOUND: i32 = 21;
    /// Code 22: the share was submitted before.
    pub const DUPLICATE: i32 = 22;
    /// Code 23: the hash is above the share target.
    pub const LOW_DIFFICULTY: i32 = 23;
    /// Code 24: the worker did not authorize on this connection.
    pub const UNAUTHORIZED: i32 = 24;
    /// Code 25: the connection did not subscribe.
    pub const NOT_SUBSCRIBED: i32 = 25;

    /// An error with `code` and `message`.
    #[must_use]
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Code 20 with `message`.
    #[must_use]
    pub fn other(message: impl Into<String>) -> Self {
        Self::new(Self::OTHER, message)
    }

    /// The reason's short name for accounting and logs.
    #[must_use]
    pub const fn reason(&self) -> &'static str {
        match self.code {
            Self::JOB_NOT_FOUND => "stale",
            Self::DUPLICATE => "duplicate",
            Self::LOW_DIFFICULTY => "low-difficulty",
            Self::UNAUTHORIZED => "unauthorized",
            Self::NOT_SUBSCRIBED => "not-subscribed",
            _ => "other",
        }
    }

    /// The JSON-RPC `error` member: `[code, message, null]`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        json!([self.code, self.message, null])
    }
}

/// Difficulty 1's target, `0xffff · 2^208`.
#[must_use]
pub fn diff1_target() -> BigUint {
    BigUint::from(0xffffu32) << 208u32
}

/// The share target of difficulty `difficulty` (clamped to
/// [`MIN_DIFFICULTY`]..=[`MAX_DIFFICULTY`]): `diff1 / difficulty`, at most [`Target::MAX`].
#[must_use]
pub fn share_target(difficulty: f64) -> Target {
    let d = if difficulty.is_nan() {
        MIN_DIFFICULTY
    } else {
        difficulty.clamp(MIN_DIFFICULTY, MAX_DIFFICULTY)
    };
    // diff1 · 2^64 / (d · 2^64): exact for every difficulty a 64-bit fraction can hold.
    let scaled = BigUint::from_f64(d * 18_446_744_073_709_551_616.0)
        .filter(|s| !s.is_zero())
        .unwrap_or_else(|| BigUint::from(1u8));
    Target::from_biguint_saturating(&((diff1_target() << 64u32) / scaled))
}

/// The difficulty of `target`: `diff1 / target` (0 for the zero target).
#[must_use]
pub fn difficulty_of(target: Target) -> f64 {
    let t = target.to_biguint();
    if t.is_zero() {
        return 0.0;
    }
    let (d1, t) = (diff1_target(), t);
    d1.to_f64().unwrap_or(f64::MAX) / t.to_f64().unwrap_or(f64::MAX)
}

/// `prevhash` as `mining.notify` sends it: each 4-byte word of the header's bytes reversed.
#[must_use]
pub fn prevhash_to_hex(hash: &BlockHash) -> String {
    let mut bytes = hash.to_byte_array();
    for word in bytes.chunks_exact_mut(4) {
        word.reverse();
    }
    hex::encode(bytes)
}

/// The header bytes of a `mining.notify` prevhash (see [`prevhash_to_hex`]).
///
/// # Errors
/// A [`StratumError`] naming the field when it is not 64 hex digits.
pub fn prevhash_from_hex(s: &str) -> Result<BlockHash, StratumError> {
    let mut bytes: [u8; 32] = fixed_hex(s, "prevhash")?;
    for word in bytes.chunks_exact_mut(4) {
        word.reverse();
    }
    Ok(BlockHash::from_byte_array(bytes))
}

/// A 32-bit number as Stratum writes `version`, `nbits`, `ntime` and `nonce`: 8 hex digits,
/// big-endian.
#[must_use]
pub fn u32_to_hex(n: u32) -> String {
    format!("{n:08x}")
}

/// Parses 8 big-endian hex digits (see [`u32_to_hex`]).
///
/// # Errors
/// A [`StratumError`] naming `field`.
pub fn u32_from_hex(s: &str, field: &str) -> Result<u32, StratumError> {
    Ok(u32::from_be_bytes(fixed_hex(s, field)?))
}

/// Parses exactly `N` bytes of hex.
///
/// # Errors
/// A [`StratumError`] naming `field`.
pub fn fixed_hex<const N: usize>(s: &str, field: &str) -> Result<[u8; N], StratumError> {
    let mut out = [0u8; N];
    if s.len() != 2 * N {
        return Err(StratumError::other(format!(
            "{field} must be {} hex digits, got {}",
            2 * N,
            s.len()
        )));
    }
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| StratumError::other(format!("{field} is not hex")))?;
    Ok(out)
}

/// A job as `mining.notify` carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The job's id.
    pub job_id: String,
    /// The previous block's hash.
    pub prev_hash: BlockHash,
    /// The coinbase bytes before the extra-nonce.
    pub coinb1: Vec<u8>,
    /// The coinbase bytes after the extra-nonce.
    pub coinb2: Vec<u8>,
    /// The hashes that fold the coinbase txid into the merkle root, leaf level first.
    pub merkle_branch: Vec<[u8; 32]>,
    /// Header version.
    pub version: u32,
    /// Header bits.
    pub bits: CompactTarget,
    /// Header time the job was made with.
    pub time: u32,
    /// Whether every earlier job is void.
    pub clean_jobs: bool,
}

impl Notify {
    /// The `params` of a `mining.notify`.
    #[must_use]
    pub fn to_params(&self) -> Value {
        json!([
            self.job_id,
            prevhash_to_hex(&self.prev_hash),
            hex::encode(&self.coinb1),
            hex::encode(&self.coinb2),
            self.merkle_branch
                .iter()
                .map(hex::encode)
                .collect::<Vec<_>>(),
            u32_to_hex(self.version),
            u32_to_hex(self.bits.to_consensus()),
            u32_to_hex(self.time),
            self.clean_jobs,
        ])
    }

    /// Reads the `params` of a `mining.notify`.
    ///
    /// # Errors
    /// A [`StratumError`] naming the first malformed field.
    pub fn from_params(params: &Value) -> Result<Self, StratumError> {
        let p = params
            .as_array()
            .filter(|p| p.len() >= 9)
            .ok_or_else(|| StratumError::other("mining.notify needs 9 params"))?;
        let text = |i: usize, field: &str| {
            p[i].as_str()
                .ok_or_else(|| StratumError::other(format!("{field} must be a string")))
        };
        let bytes = |i: usize, field: &str| {
            hex::decode(text(i, field)?)
                .map_err(|_| StratumError::other(format!("{field} is not hex")))
        };
        let branch = p[4]
            .as_array()
            .ok_or_else(|| StratumError::other("merkle_branch must be an array"))?
            .iter()
            .map(|b| fixed_hex(b.as_str().unwrap_or_default(), "merkle_branch entry"))
            .collect::<Result<Vec<[u8; 32]>, _>>()?;
        Ok(Self {
            job_id: text(0, "job_id")?.to_owned(),
            prev_hash: prevhash_from_hex(text(1, "prevhash")?)?,
            coinb1: bytes(2, "coinb1")?,
            coinb2: bytes(3, "coinb2")?,
            merkle_branch: branch,
            version: u32_from_hex(text(5, "version")?, "version")?,
            bits: CompactTarget::from_consensus(u32_from_hex(text(6, "nbits")?, "nbits")?),
            time: u32_from_hex(text(7, "ntime")?, "ntime")?,
            clean_jobs: p[8]
                .as_bool()
                .ok_or_else(|| StratumError::other("clean_jobs must be true or false"))?,
        })
    }

    /// The merkle root of the coinbase `coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`.
    #[must_use]
    pub fn merkle_root(&self, extranonce1: &[u8], extranonce2: &[u8]) -> MerkleRoot {
        let mut coinbase = Vec::with_capacity(
            self.coinb1.len() + extranonce1.len() + extranonce2.len() + self.coinb2.len(),
        );
        coinbase.extend_from_slice(&self.coinb1);
        coinbase.extend_from_slice(extranonce1);
        coinbase.extend_from_slice(extranonce2);
        coinbase.extend_from_slice(&self.coinb2);
        fold_branch(sha256d(&coinbase), &self.merkle_branch)
    }

    /// The header a miner builds with `merkle_root`, `time`, `nonce` and `version`.
    #[must_use]
    pub const fn header(
        &self,
        merkle_root: MerkleRoot,
        time: u32,
        nonce: u32,
        version: u32,
    ) -> Header {
        Header {
            version: version.cast_signed(),
            prev_hash: self.prev_hash,
            merkle_root,
            time,
            bits: self.bits,
            nonce,
        }
    }
}

/// Folds a leaf (the coinbase txid, internal order) up a merkle branch.
#[must_use]
pub fn fold_branch(leaf: [u8; 32], branch: &[[u8; 32]]) -> MerkleRoot {
    let mut node = leaf;
    let mut pair = [0u8; 64];
    for sibling in branch {
        pair[..32].copy_from_slice(&node);
        pair[32..].copy_from_slice(sibling);
        node = sha256d(&pair);
    }
    MerkleRoot::from_byte_array(node)
}

/// The merkle branch of the first leaf of `leaves` (Bitcoin's tree: an odd level's last node
/// is paired with itself): the sibling on each level, leaf level first. Leaf 0 never
/// influences its own branch, so any placeholder may stand for it.
#[must_use]
pub fn first_leaf_branch(leaves: &[[u8; 32]]) -> Vec<[u8; 32]> {
    let mut level = leaves.to_vec();
    let mut branch = Vec::new();
    while level.len() > 1 {
        branch.push(level[1]);
        level = parent_level(level);
    }
    branch
}

/// The `params` of a `mining.submit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The worker, as it authorized.
    pub worker: String,
    /// The job.
    pub job_id: String,
    /// The miner's part of the extra-nonce.
    pub extranonce2: [u8; EXTRANONCE2_SIZE],
    /// Header time.
    pub time: u32,
    /// Header nonce.
    pub nonce: u32,
    /// The rolled version bits (BIP 310), when the miner rolls them.
    pub version_bits: Option<u32>,
}

impl Submit {
    /// Reads the `params` of a `mining.submit`:
    /// `[worker, job_id, extranonce2, ntime, nonce, (version_bits)]`.
    ///
    /// # Errors
    /// A [`StratumError`] (code 20) naming the first malformed field.
    pub fn from_params(params: &Value) -> Result<Self, StratumError> {
        let p = params
            .as_array()
            .filter(|p| (5..=6).contains(&p.len()))
            .ok_or_else(|| {
                StratumError::other(
                    "mining.submit takes [worker, job_id, extranonce2, ntime, nonce, (version_bits)]",
                )
            })?;
        let text = |i: usize, field: &str| {
            p[i].as_str()
                .ok_or_else(|| StratumError::other(format!("{field} must be a string")))
        };
        Ok(Self {
            worker: text(0, "worker")?.to_owned(),
            job_id: text(1, "job_id")?.to_owned(),
            extranonce2: fixed_hex(text(2, "extranonce2")?, "extranonce2")?,
            time: u32_from_hex(text(3, "ntime")?, "ntime")?,
            nonce: u32_from_hex(text(4, "nonce")?, "nonce")?,
            version_bits: match p.get(5) {
                Some(v) => Some(u32_from_hex(
                    v.as_str()
                        .ok_or_else(|| StratumError::other("version_bits must be a string"))?,
                    "version_bits",
                )?),
                None => None,
            },
        })
    }

    /// The `params` a miner sends.
    #[must_use]
    pub fn to_params(&self) -> Value {
        let mut p = vec![
            json!(self.worker),
            json!(self.job_id),
            json!(hex::encode(self.extranonce2)),
            json!(u32_to_hex(self.time)),
            json!(u32_to_hex(self.nonce)),
        ];
        if let Some(v) = self.version_bits {
            p.push(json!(u32_to_hex(v)));
        }
        Value::Array(p)
    }
}

/// A JSON-RPC message read from a Stratum peer.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The id (a number, a string, or null for notifications).
    pub id: Value,
    /// The method of a request or notification; `None` for a response.
    pub method: Option<String>,
    /// The params of a request (an empty array when absent).
    pub params: Value,
    /// The result of a response.
    pub result: Value,
    /// The error of a response.
    pub error: Value,
}

impl Message {
    /// Parses one line.
    ///
    /// # Errors
    /// A [`StratumError`] (code 20) when it is not a JSON object with a string `method` or a
    /// response.
    pub fn parse(line: &str) -> Result<Self, StratumError> {
        let Value::Object(mut map) = serde_json::from_str::<Value>(line)
            .map_err(|e| StratumError::other(format!("not JSON: {e}")))?
        else {
            return Err(StratumError::other("not a JSON-RPC object"));
        };
        let method = match map.remove("method") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) => Some(m),
            Some(_) => return Err(StratumError::other("method must be a string")),
        };
        let mut take = |k: &str| map.remove(k).unwrap_or(Value::Null);
        let (id, params, result, error) =
            (take("id"), take("params"), take("result"), take("error"));
        let params = match params {
            Value::Null => Value::Array(Vec::new()),
            p @ Value::Array(_) => p,
            _ => return Err(StratumError::other("params must be an array")),
        };
        Ok(Self {
            id,
            method,
            params,
            result,
            error,
        })
    }
}

/// A response line (with its newline).
#[must_use]
pub fn response(id: &Value, result: Result<Value, &StratumError>) -> String {
    let v = match result {
        Ok(r) => json!({"id": id, "result": r, "error": null}),
        Err(e) => json!({"id": id, "result": null, "error": e.to_json()}),
    };
    format!("{v}\n")
}

/// A notification or request line (with its newline).
#[must_use]
pub fn request(id: &Value, method: &str, params: &Value) -> String {
    format!(
        "{}\n",
        json!({"id": id, "method": method, "params": params})
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn display(h: [u8; 32]) -> String {
        let mut r = h;
        r.reverse();
        hex::encode(r)
    }

    /// Bitcoin's block 1 as a pool would have sent it: its coinbase's script is
    /// `04 ffff001d 01 04`; we cut the coinbase so that `ffff001d` is extranonce1 and `0104`
    /// extranonce2 (any cut gives the same bytes). The miner's header must be block 1's.
    #[test]
    fn block_one_worked_example() {
        let params = json!([
            "1",
            // Genesis 000000000019d668…e26f: header bytes 6fe28c0a b6f1b372 …, each word reversed.
            "0a8ce26f72b3f1b646a2a6c14ff763ae65831e939c085ae10019d66800000000",
            "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff0704",
            "ffffffff0100f2052a0100000043410496b538e853519c726a2c91e61ec11600ae1390813a627c66fb8be7947be63c52da7589379515d4e0a604f8141781e62294721166bf621e73a82cbf2342c858eeac00000000",
            [],
            "00000001",
            "1d00ffff",
            "4966bc61",
            true
        ]);
        let notify = Notify::from_params(&params).unwrap();
        assert_eq!(
            notify.prev_hash.to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(notify.to_params(), params, "the encoding round-trips");
        let en1 = hex::decode("ffff001d").unwrap();
        let en2 = hex::decode("0104").unwrap();
        let root = notify.merkle_root(&en1, &en2);
        assert_eq!(
            root.to_string(),
            "0e3e2357e806b6cdb1f70b54c3a3a17b6714ee1f0e68bebb44a74b1efd512098"
        );
        // The nonce as mining.submit sends it.
        let nonce = u32_from_hex("9962e301", "nonce").unwrap();
        let header = notify.header(root, notify.time, nonce, notify.version);
        assert_eq!(
            hex::encode(header.to_bytes()),
            "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299"
        );
        let hash = header.block_hash();
        assert_eq!(
            hash.to_string(),
            "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
        );
        assert!(share_target(1.0).is_met_by(hash), "a difficulty-1 share");
        assert!(
            !share_target(2.0).is_met_by(hash),
            "block 1 is a difficulty-1.3 hash"
        );
        assert!(
            !notify.bits.to_target().unwrap().is_met_by(
                Header {
                    nonce: nonce + 1,
                    ..header
                }
                .block_hash()
            )
        );
    }

    /// Block 100 000 (four transactions): the branch of its coinbase is the second txid and
    /// the hash of the last two; folded from the coinbase txid it gives the block's root.
    #[test]
    fn block_100000_merkle_branch() {
        let txid = |display: &str| {
            let mut b: [u8; 32] = fixed_hex(display, "txid").unwrap();
            b.reverse();
            b
        };
        let leaves = [
            txid("8c14f0db3df150123e6f3dbbf30f8b955a8249b62ac1d1ff16284aefa3d06d87"),
            txid("fff2525b8931402dd09222c50775608f75787bd2b87e56995a7bdd30f79702c4"),
            txid("6359f0868171b1d194cbee1af2f16ea598ae8fad666d9b012c8ed2b79a236ec4"),
            txid("e9a66845e05d5abc0ad04ec80f774a7e585c6e8db975962d069a522137b80c1d"),
        ];
        let mut placeholder = leaves;
        placeholder[0] = [0xaa; 32];
        let branch = first_leaf_branch(&placeholder);
        assert_eq!(branch.len(), 2);
        assert_eq!(branch[0], leaves[1]);
        let root = fold_branch(leaves[0], &branch);
        assert_eq!(
            root.to_string(),
            "f3e94742aca4b5ef85488dc37c06c3282295ffec960994b2c0d5ac2a25a95766"
        );
        let notify = Notify {
            job_id: "2".into(),
            prev_hash: "000000000002d01c1fccc21636b607dfd930d31d01c3a62104612a1719011250"
                .parse()
                .unwrap(),
            coinb1: Vec::new(),
            coinb2: Vec::new(),
            merkle_branch: branch,
            version: 1,
            bits: CompactTarget::from_consensus(0x1b04_864c),
            time: 1_293_623_863,
            clean_jobs: false,
        };
        let header = notify.header(root, notify.time, 274_148_111, 1);
        assert_eq!(
            header.block_hash().to_string(),
            "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506"
        );
        assert_eq!(
            display(header.block_hash().to_byte_array()),
            header.block_hash().to_string()
        );
    }

    #[test]
    fn odd_levels_pair_the_last_node_with_itself() {
        let leaves: Vec<[u8; 32]> = (0..5u8).map(|i| [i; 32]).collect();
        let txids: Vec<_> = leaves
            .iter()
            .map(|l| crate::primitives::hash::Txid::from_byte_array(*l))
            .collect();
        let want = crate::primitives::merkle::merkle_root(&txids).root;
        assert_eq!(fold_branch(leaves[0], &first_leaf_branch(&leaves)), want);
        assert!(first_leaf_branch(&leaves[..1]).is_empty());
    }

    #[test]
    fn difficulty_one_is_bitcoins_highest_target() {
        assert_eq!(
            share_target(1.0).to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            share_target(32.0).to_string(),
            "0000000007fff800000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            share_target(0.5).to_string(),
            "00000001fffe0000000000000000000000000000000000000000000000000000"
        );
        assert!((difficulty_of(share_target(1234.5)) - 1234.5).abs() < 1e-9);
        let block_one = CompactTarget::from_consensus(0x1d00_ffff)
            .to_target()
            .unwrap();
        assert!((difficulty_of(block_one) - 1.0).abs() < 1e-12);
        assert_eq!(share_target(0.0), share_target(MIN_DIFFICULTY));
        assert_eq!(share_target(f64::NAN), share_target(MIN_DIFFICULTY));
        assert_eq!(
            share_target(MIN_DIFFICULTY / 2.0),
            share_target(MIN_DIFFICULTY)
        );
    }

    #[test]
    fn malformed_messages_name_what_is_wrong() {
        for (line, want) in [
            ("{", "not JSON"),
            ("[1,2]", "not a JSON-RPC object"),
            (r#"{"id":1,"method":5}"#, "method must be a string"),
            (
                r#"{"id":1,"method":"a","params":{}}"#,
                "params must be an array",
            ),
        ] {
            let err = Message::parse(line).unwrap_err();
            assert_eq!(err.code, StratumError::OTHER);
            assert!(err.message.contains(want), "{line}: {err}");
        }
        let m = Message::parse(r#"{"id":7,"method":"mining.subscribe"}"#).unwrap();
        assert_eq!(m.params, json!([]));
        assert!(
            u32_from_hex("123", "ntime")
                .unwrap_err()
                .message
                .contains("ntime must be 8 hex digits")
        );
        assert!(
            u32_from_hex("zzzzzzzz", "nonce")
                .unwrap_err()
                .message
                .contains("nonce is not hex")
        );
        let bad = json!([
            "1",
            "00",
            "",
            "",
            [],
            "00000001",
            "1d00ffff",
            "4966bc61",
            true
        ]);
        assert!(
            Notify::from_params(&bad)
                .unwrap_err()
                .message
                .contains("prevhash")
        );
    }
}
