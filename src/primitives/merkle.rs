//! Bitcoin's transaction merkle tree.
//!
//! Leaves are txids in internal byte order; on each level with an odd number of nodes the last
//! one is paired with itself; a parent is sha256d(left ‖ right). The duplicate-last rule lets two
//! different transaction lists share a root (CVE-2012-2459): appending a copy of the last txid
//! of an odd level changes nothing. Like Bitcoin Core's `ComputeMerkleRoot`, [`merkle_root`]
//! reports such a list as *mutated* so verification can reject it.

use crate::primitives::hash::{MerkleRoot, Txid, sha256d};

/// The root of a transaction list and whether the list is mutated (two identical hashes paired
/// at some level, Bitcoin Core's `mutated` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MerkleResult {
    /// The merkle root; all-zero for an empty list.
    pub root: MerkleRoot,
    /// True when two identical sibling hashes were found at some level.
    pub mutated: bool,
}

/// Computes the merkle root of `txids` (in block order).
#[must_use]
pub fn merkle_root(txids: &[Txid]) -> MerkleResult {
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.to_byte_array()).collect();
    let mut mutated = false;
    if level.is_empty() {
        return MerkleResult {
            root: MerkleRoot::ZERO,
            mutated,
        };
    }
    while level.len() > 1 {
        // Core flags identical siblings before padding: only real pairs count.
        for pair in level.chunks_exact(2) {
            mutated |= pair[0] == pair[1];
        }
        level = parent_level(level);
    }
    MerkleResult {
        root: MerkleRoot::from_byte_array(level[0]),
        mutated,
    }
}

/// The level above `level` (at least two nodes): an odd level's last node is paired with
/// itself, and each parent is sha256d(left ‖ right).
#[must_use]
pub fn parent_level(mut level: Vec<[u8; 32]>) -> Vec<[u8; 32]> {
    if level.len() % 2 == 1 {
        let last = level[level.len() - 1];
        level.push(last);
    }
    let mut buf = [0u8; 64];
    level
        .chunks_exact(2)
        .map(|pair| {
            buf[..32].copy_from_slice(&pair[0]);
            buf[32..].copy_from_slice(&pair[1]);
            sha256d(&buf)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txid(n: u8) -> Txid {
        Txid::from_byte_array([n; 32])
    }

    #[test]
    fn single_transaction_root_is_its_txid() {
        let r = merkle_root(&[txid(7)]);
        assert_eq!(r.root.to_byte_array(), [7; 32]);
        assert!(!r.mutated);
    }

    #[test]
    fn duplicated_tail_keeps_root_but_is_flagged() {
        let three = merkle_root(&[txid(1), txid(2), txid(3)]);
        let four = merkle_root(&[txid(1), txid(2), txid(3), txid(3)]);
        assert_eq!(three.root, four.root);
        assert!(!three.mutated);
        assert!(four.mutated);
    }
}
