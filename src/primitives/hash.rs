//! 256-bit hashes and the SHA-256d function.
//!
//! Bitcoin stores a sha256d digest as 32 raw bytes ("internal byte order") and treats it as a
//! little-endian 256-bit number; explorers and Bitcoin Core's RPC print the bytes reversed
//! ("display order"). The newtypes here keep the internal bytes and reverse only when they are
//! shown or parsed, so that real Bitcoin data round-trips unchanged.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Returns SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Returns SHA-256(SHA-256(`data`)), Bitcoin's hash for headers, transactions and merkle nodes.
#[must_use]
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}

/// Why a hash string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashParseError {
    /// The string is not 64 characters long.
    #[error("expected 64 hex digits, got {0} characters")]
    BadLength(usize),
    /// The string contains a character that is not a hex digit.
    #[error("not a hex string")]
    BadHex,
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        ///
        /// Holds the 32 bytes in internal order; `Display`, `FromStr` and serde use display
        /// order (bytes reversed), as Bitcoin Core prints them.
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name([u8; 32]);

        impl $name {
            /// The all-zero hash (the `prev_hash` of a genesis block).
            pub const ZERO: Self = Self([0; 32]);

            /// Wraps 32 bytes given in internal byte order.
            #[must_use]
            pub const fn from_byte_array(bytes: [u8; 32]) -> Self {
                Self(bytes)
            }

            /// Returns the 32 bytes in internal byte order.
            #[must_use]
            pub const fn to_byte_array(self) -> [u8; 32] {
                self.0
            }

            /// Borrows the 32 bytes in internal byte order.
            #[must_use]
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Returns the sha256d of `data` as this hash type.
            #[must_use]
            pub fn hash(data: &[u8]) -> Self {
                Self(sha256d(data))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut rev = self.0;
                rev.reverse();
                f.write_str(&hex::encode(rev))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({self})", stringify!($name))
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 64 {
                    return Err(HashParseError::BadLength(s.chars().count()));
                }
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(s, &mut bytes).map_err(|_| HashParseError::BadHex)?;
                bytes.reverse();
                Ok(Self(bytes))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

hash_newtype!(
    /// The hash of a block: sha256d of its 80-byte header.
    BlockHash
);
hash_newtype!(
    /// A transaction id: sha256d of the transaction's consensus encoding.
    Txid
);
hash_newtype!(
    /// The root of a block's transaction merkle tree.
    MerkleRoot
);
hash_newtype!(
    /// A generic 256-bit hash (spec hashes, signature digests).
    Hash256
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_byte_reversed_and_parses_back() {
        let mut bytes = [0u8; 32];
        bytes[0] = 0x6f;
        bytes[31] = 0x01;
        let h = BlockHash::from_byte_array(bytes);
        let s = h.to_string();
        assert!(s.starts_with("01"));
        assert!(s.ends_with("6f"));
        assert_eq!(s.parse::<BlockHash>(), Ok(h));
    }

    #[test]
    fn rejects_bad_hash_strings() {
        assert_eq!("abc".parse::<Txid>(), Err(HashParseError::BadLength(3)));
        let bad = "g".repeat(64);
        assert_eq!(bad.parse::<Txid>(), Err(HashParseError::BadHex));
    }
}
