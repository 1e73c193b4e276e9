//! Proof-of-work units: 256-bit targets, their compact `nBits` form, and chain work.
//!
//! The compact encoding follows Bitcoin Core's `arith_uint256::SetCompact`/`GetCompact`
//! exactly, including the sign bit (0x0080_0000), the overflow rule and normalisation.

use std::fmt;

use num_bigint::BigUint;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::primitives::hash::BlockHash;

/// Why a hex string is not a target or compact target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseHexError {
    /// The wrong number of digits.
    #[error("expected {expected} hex digits, got {actual} characters")]
    Length {
        /// The digits expected.
        expected: &'static str,
        /// The characters found.
        actual: usize,
    },
    /// A character that is not a hex digit.
    #[error("not a hex string: {0:?}")]
    NotHex(String),
}

/// A 256-bit unsigned number used as a proof-of-work target: a header is valid when its hash,
/// read as a little-endian number, is at most the target.
///
/// Stored as four little-endian `u64` limbs so that the nonce loop compares machine words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target([u64; 4]);

impl Target {
    /// The zero target (no hash meets it).
    pub const ZERO: Self = Self([0; 4]);
    /// The largest 256-bit number.
    pub const MAX: Self = Self([u64::MAX; 4]);

    /// Builds a target from 32 little-endian bytes (the internal order of a hash).
    #[must_use]
    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            *limb = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8) yields 8 bytes"));
        }
        Self(limbs)
    }

    /// Builds a target from 32 big-endian bytes (the order it is written in hex).
    #[must_use]
    pub fn from_be_bytes(mut bytes: [u8; 32]) -> Self {
        bytes.reverse();
        Self::from_le_bytes(bytes)
    }

    /// Returns the 32 big-endian bytes.
    #[must_use]
    pub fn to_be_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (i, limb) in self.0.iter().rev().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&limb.to_be_bytes());
        }
        out
    }

    /// Parses 64 big-endian hex digits.
    ///
    /// # Errors
    /// [`ParseHexError`] when the string is not 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, ParseHexError> {
        let mut bytes = [0u8; 32];
        if s.len() != 64 {
            return Err(ParseHexError::Length {
                expected: "64",
                actual: s.len(),
            });
        }
        hex::decode_to_slice(s, &mut bytes).map_err(|_| ParseHexError::NotHex(s.to_owned()))?;
        Ok(Self::from_be_bytes(bytes))
    }

    /// Returns the four little-endian limbs (limb 3 is the most significant).
    #[must_use]
    pub const fn to_limbs(self) -> [u64; 4] {
        self.0
    }

    /// Converts to a big integer for arithmetic off the hot path.
    #[must_use]
    pub fn to_biguint(self) -> BigUint {
        BigUint::from_bytes_be(&self.to_be_bytes())
    }

    /// Converts from a big integer, saturating at [`Target::MAX`].
    #[must_use]
    pub fn from_biguint_saturating(n: &BigUint) -> Self {
        let bytes = n.to_bytes_be();
        if bytes.len() > 32 {
            return Self::MAX;
        }
        let mut be = [0u8; 32];
        be[32 - bytes.len()..].copy_from_slice(&bytes);
        Self::from_be_bytes(be)
    }

    /// Returns true if `hash`, read as a little-endian number, is at most this target.
    #[must_use]
    pub fn is_met_by(&self, hash: BlockHash) -> bool {
        Self::from_le_bytes(hash.to_byte_array()) <= *self
    }

    /// Returns the number of significant bits.
    #[must_use]
    pub fn bits(&self) -> u32 {
        for (i, limb) in self.0.iter().enumerate().rev() {
            if *limb != 0 {
                return 64 * i as u32 + (64 - limb.leading_zeros());
            }
        }
        0
    }

    /// Encodes as compact `nBits` (Bitcoin Core `GetCompact(false)`). Lossy: only the top
    /// 23 bits survive, and decoding gives a value at most `self`.
    #[must_use]
    pub fn to_compact_lossy(&self) -> CompactTarget {
        let mut size = self.bits().div_ceil(8);
        let mut compact: u32 = if size <= 3 {
            (self.0[0] << (8 * (3 - size))) as u32
        } else {
            let shifted = self.to_biguint() >> (8 * (size - 3));
            u32::try_from(&shifted).expect("shifted to at most three bytes")
        };
        // Never emit a mantissa with the sign bit set: move one byte into the exponent.
        if compact & 0x0080_0000 != 0 {
            compact >>= 8;
            size += 1;
        }
        CompactTarget(compact | (size << 24))
    }

    /// Returns the expected number of hashes to find a block at this target,
    /// `2^256 / (target + 1)` (Bitcoin Core `GetBlockProof`).
    #[must_use]
    pub fn to_work(&self) -> Work {
        let one = BigUint::from(1u8);
        Work((one.clone() << 256u32) / (self.to_biguint() + one))
    }
}

impl Ord for Target {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl PartialOrd for Target {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_be_bytes()))
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Why a compact target is not a usable proof-of-work target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    /// The sign bit is set on a non-zero mantissa.
    #[error("compact target {0} is negative")]
    Negative(CompactTarget),
    /// The value does not fit in 256 bits.
    #[error("compact target {0} overflows 256 bits")]
    Overflow(CompactTarget),
    /// The value is zero.
    #[error("compact target {0} is zero")]
    Zero(CompactTarget),
}

/// The compact `nBits` encoding of a target: one exponent byte (size in bytes) and a 24-bit
/// mantissa whose top bit is a sign bit. Displayed and serialised as 8 hex digits of the
/// big-endian number, as Bitcoin Core prints it (`1d00ffff`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CompactTarget(u32);

/// The result of decoding a compact target without rejecting anything, as Core's `SetCompact`
/// reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedCompact {
    /// The decoded value (truncated to 256 bits when it overflows).
    pub value: Target,
    /// The sign bit was set on a non-zero mantissa.
    pub negative: bool,
    /// The value does not fit in 256 bits.
    pub overflow: bool,
}

impl CompactTarget {
    /// Wraps the `nBits` field as it is stored in a header.
    #[must_use]
    pub const fn from_consensus(bits: u32) -> Self {
        Self(bits)
    }

    /// Returns the `nBits` field as it is stored in a header.
    #[must_use]
    pub const fn to_consensus(self) -> u32 {
        self.0
    }

    /// Decodes like Bitcoin Core `SetCompact`, reporting the negative and overflow flags.
    #[must_use]
    pub fn decode(self) -> DecodedCompact {
        let size = self.0 >> 24;
        let mut word = self.0 & 0x007f_ffff;
        // Core shifts a small mantissa before it sets the flags, so 0x01803456 is not negative.
        let value = if size <= 3 {
            word >>= 8 * (3 - size);
            Target([u64::from(word), 0, 0, 0])
        } else {
            let shift = 8 * (size - 3);
            if shift >= 256 {
                Target::ZERO
            } else {
                let n = BigUint::from(word) << shift;
                // Keep the low 256 bits, as Core's fixed-width arithmetic does.
                let mask = (BigUint::from(1u8) << 256u32) - 1u8;
                Target::from_biguint_saturating(&(n & mask))
            }
        };
        let negative = word != 0 && self.0 & 0x0080_0000 != 0;
        let overflow =
            word != 0 && (size > 34 || (word > 0xff && size > 33) || (word > 0xffff && size > 32));
        DecodedCompact {
            value,
            negative,
            overflow,
        }
    }

    /// Decodes to a usable target.
    ///
    /// # Errors
    /// Rejects negative, overflowing and zero targets, as `CheckProofOfWork` does.
    pub fn to_target(self) -> Result<Target, CompactError> {
        let d = self.decode();
        if d.negative {
            Err(CompactError::Negative(self))
        } else if d.overflow {
            Err(CompactError::Overflow(self))
        } else if d.value == Target::ZERO {
            Err(CompactError::Zero(self))
        } else {
            Ok(d.value)
        }
    }

    /// Parses 8 hex digits (an optional `0x` prefix is allowed).
    ///
    /// # Errors
    /// [`ParseHexError`] when the string is not 1 to 8 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, ParseHexError> {
        let digits = s.strip_prefix("0x").unwrap_or(s);
        if digits.is_empty() || digits.len() > 8 {
            return Err(ParseHexError::Length {
                expected: "1 to 8",
                actual: digits.len(),
            });
        }
        u32::from_str_radix(digits, 16)
            .map(Self)
            .map_err(|_| ParseHexError::NotHex(s.to_owned()))
    }
}

impl fmt::Display for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08x}", self.0)
    }
}

impl fmt::Debug for CompactTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompactTarget({:08x})", self.0)
    }
}

impl Serialize for CompactTarget {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CompactTarget {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Chain work: the expected number of hashes behind a block or a chain.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default, Debug)]
pub struct Work(BigUint);

impl Work {
    /// Returns the work as a big integer.
    #[must_use]
    pub fn to_biguint(&self) -> BigUint {
        self.0.clone()
    }

    /// Returns the work as an `f64` (for rates and estimates).
    #[must_use]
    pub fn to_f64(&self) -> f64 {
        num_traits::ToPrimitive::to_f64(&self.0).unwrap_or(f64::INFINITY)
    }
}

impl std::ops::AddAssign<&Work> for Work {
    fn add_assign(&mut self, rhs: &Work) {
        self.0 += &rhs.0;
    }
}

impl fmt::Display for Work {
    /// Formats as hex with a `0x` prefix, as Bitcoin Core prints `chainwork`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_core_examples() {
        let c = CompactTarget::from_consensus(0x1d00_ffff);
        assert_eq!(
            c.to_target().unwrap().to_string(),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        // Core: encoding 0x80 must not produce a mantissa with the sign bit set.
        let t = Target([0x80, 0, 0, 0]);
        assert_eq!(t.to_compact_lossy().to_consensus(), 0x0200_8000);
    }

    #[test]
    fn target_ordering_is_numeric() {
        let small = Target([u64::MAX, 0, 0, 0]);
        let big = Target([0, 0, 0, 1]);
        assert!(small < big);
        assert!(Target::MAX > big);
    }

    #[test]
    fn work_of_max_target_is_one() {
        assert_eq!(Target::MAX.to_work().to_biguint(), BigUint::from(1u8));
        let half = Target::from_hex(&format!("7f{}", "f".repeat(62))).unwrap();
        assert_eq!(half.to_work().to_biguint(), BigUint::from(2u8));
    }
}
