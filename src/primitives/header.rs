//! The 80-byte block header, byte-compatible with Bitcoin's.
//!
//! Layout (all integers little-endian): `version i32 | prev_hash 32 | merkle_root 32 |
//! time u32 | bits u32 | nonce u32`. The block hash is sha256d of these 80 bytes.

use serde::{Deserialize, Serialize};

use crate::primitives::hash::{BlockHash, MerkleRoot};
use crate::primitives::pow_units::CompactTarget;

/// Size of a serialised header in bytes.
pub const HEADER_LEN: usize = 80;

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input has the wrong length.
    #[error("expected {expected} bytes, got {actual}")]
    WrongLength {
        /// Bytes required.
        expected: usize,
        /// Bytes given.
        actual: usize,
    },
    /// The input is not valid hex.
    #[error("not a hex string: {0}")]
    BadHex(String),
}

/// A block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Block version (BIP9 version bits on Bitcoin).
    pub version: i32,
    /// Hash of the previous block's header.
    pub prev_hash: BlockHash,
    /// Merkle root of the block's transactions.
    pub merkle_root: MerkleRoot,
    /// Block time, seconds since the Unix epoch.
    pub time: u32,
    /// Proof-of-work target in compact form.
    pub bits: CompactTarget,
    /// The proof-of-work nonce.
    pub nonce: u32,
}

impl Header {
    /// Serialises the header to its 80 consensus bytes.
    #[must_use]
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0..4].copy_from_slice(&self.version.to_le_bytes());
        out[4..36].copy_from_slice(self.prev_hash.as_bytes());
        out[36..68].copy_from_slice(self.merkle_root.as_bytes());
        out[68..72].copy_from_slice(&self.time.to_le_bytes());
        out[72..76].copy_from_slice(&self.bits.to_consensus().to_le_bytes());
        out[76..80].copy_from_slice(&self.nonce.to_le_bytes());
        out
    }

    /// Decodes a header from exactly 80 bytes.
    ///
    /// # Errors
    /// [`DecodeError::WrongLength`] when `bytes` is not 80 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; HEADER_LEN] = bytes.try_into().map_err(|_| DecodeError::WrongLength {
            expected: HEADER_LEN,
            actual: bytes.len(),
        })?;
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let hash_at = |i: usize| -> [u8; 32] { b[i..i + 32].try_into().expect("32-byte slice") };
        Ok(Self {
            version: i32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            prev_hash: BlockHash::from_byte_array(hash_at(4)),
            merkle_root: MerkleRoot::from_byte_array(hash_at(36)),
            time: u32_at(68),
            bits: CompactTarget::from_consensus(u32_at(72)),
            nonce: u32_at(76),
        })
    }

    /// Decodes a header from 160 hex digits (surrounding whitespace is ignored).
    ///
    /// # Errors
    /// [`DecodeError::BadHex`] for non-hex input, [`DecodeError::WrongLength`] for a length
    /// other than 80 bytes.
    pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
        let s = s.trim();
        // Name the first character that is not a hex digit as the user typed it (hex's own
        // message shows a byte of a multi-byte character as a character).
        if let Some((i, c)) = s.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(DecodeError::BadHex(format!(
                "{c:?} at character {} is not a hex digit",
                s[..i].chars().count() + 1
            )));
        }
        if !s.len().is_multiple_of(2) {
            return Err(DecodeError::BadHex(format!(
                "odd number of digits ({})",
                s.len()
            )));
        }
        let bytes = hex::decode(s).map_err(|e| DecodeError::BadHex(e.to_string()))?;
        Self::from_bytes(&bytes)
    }

    /// Returns the block hash, sha256d of the 80 header bytes.
    #[must_use]
    pub fn block_hash(&self) -> BlockHash {
        BlockHash::hash(&self.to_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GENESIS_HEX: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";

    #[test]
    fn genesis_block_hash_regression() {
        let h = Header::from_hex(GENESIS_HEX).unwrap();
        assert_eq!(h.time, 1_231_006_505);
        assert_eq!(h.nonce, 2_083_236_893);
        assert_eq!(
            h.block_hash().to_string(),
            "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
        );
        assert_eq!(hex::encode(h.to_bytes()), GENESIS_HEX);
    }

    #[test]
    fn rejects_wrong_length_and_bad_hex() {
        assert_eq!(
            Header::from_hex(&GENESIS_HEX[..158]),
            Err(DecodeError::WrongLength {
                expected: 80,
                actual: 79
            })
        );
        assert!(matches!(
            Header::from_hex("zz"),
            Err(DecodeError::BadHex(_))
        ));
        // A non-ASCII character is named as typed, not as one of its bytes.
        let err = Header::from_hex("0é").unwrap_err().to_string();
        assert!(err.contains("'é' at character 2"), "{err}");
        assert!(matches!(
            Header::from_hex("abc"),
            Err(DecodeError::BadHex(_))
        ));
    }
}
