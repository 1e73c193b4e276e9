//! A node's durable state as a write-ahead log of its engine's writes.
//!
//! Every [`crate::sim::Output::Persist`] an engine asks for is one record: a 4-byte
//! little-endian length, the first 4 bytes of the payload's SHA-256, and the payload
//! (MessagePack). Records are buffered while the engine steps and written with one `write`
//! and one `fdatasync` before any message, commit or reply of those steps leaves the node —
//! the order a real node owes its peers, and the one the simulator models. On start the
//! records are applied in order to an empty disk with the engine's own
//! [`crate::sim::Engine::persist`], which rebuilds exactly what the simulator's disk would
//! hold.
//!
//! A crash (`kill -9`, power loss) can tear only the last record, which nothing depended on
//! yet: it is cut off on open. A damaged record with more data after it is not a torn write
//! and stops the node rather than silently dropping state it acted on.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::primitives::hash::sha256;

/// The largest record a log may hold (a damaged length above it is damage, not a record).
const MAX_RECORD: usize = 64 << 20;

/// Why a log cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// I/O.
    #[error("{}: {source}", path.display())]
    Io {
        /// The log.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A record before the last is damaged.
    #[error("{}: record {record} at byte {offset} is damaged ({why}) and is not the last; the node's durable state cannot be trusted", path.display())]
    Damaged {
        /// The log.
        path: PathBuf,
        /// The record's number (1-based).
        record: u64,
        /// Its offset.
        offset: u64,
        /// What is wrong.
        why: &'static str,
    },
}

/// What opening a log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    /// Records applied.
    pub records: u64,
    /// Bytes of a torn last record cut off.
    pub torn_bytes: u64,
}

/// An open write-ahead log.
#[derive(Debug)]
pub struct Wal {
    file: File,
    path: PathBuf,
    pending: Vec<u8>,
}

fn checksum(payload: &[u8]) -> [u8; 4] {
    let h = sha256(payload);
    [h[0], h[1], h[2], h[3]]
}

impl Wal {
    /// Opens (or creates) the log at `path` and replays it: each record, decoded, is applied
    /// to `disk` by `apply`.
    ///
    /// # Errors
    /// [`WalError`]: I/O, or damage before the last record.
    pub fn open<P: DeserializeOwned, D>(
        path: &Path,
        disk: &mut D,
        mut apply: impl FnMut(&mut D, &P),
    ) -> Result<(Self, Recovered), WalError> {
        let io = |source| WalError::Io {
            path: path.to_owned(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let mut at = 0usize;
        let mut records = 0u64;
        let damaged = |why, at: usize, records: u64| WalError::Damaged {
            path: path.to_owned(),
            record: records + 1,
            offset: at as u64,
            why,
        };
        while at < bytes.len() {
            let rest = &bytes[at..];
            if rest.len() < 8 {
                break;
            }
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            if len > MAX_RECORD {
                return Err(damaged("its length is impossible", at, records));
            }
            if rest.len() < 8 + len {
                break;
            }
            let payload = &rest[8..8 + len];
            let last = rest.len() == 8 + len;
            if checksum(payload) != rest[4..8] {
                if last {
                    break;
                }
                return Err(damaged("its checksum does not match", at, records));
            }
            let Ok(write) = rmp_serde::from_slice::<P>(payload) else {
                return Err(damaged("it does not decode", at, records));
            };
            apply(disk, &write);
            records += 1;
            at += 8 + len;
        }
        let torn_bytes = (bytes.len() - at) as u64;
        if torn_bytes > 0 {
            file.set_len(at as u64).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        Ok((
            Self {
                file,
                path: path.to_owned(),
                pending: Vec::new(),
            },
            Recovered {
                records,
                torn_bytes,
            },
        ))
    }

    /// Buffers one write; it is durable after the next [`Wal::sync`].
    pub fn append<P: Serialize>(&mut self, write: &P) {
        let payload = crate::node::wire::encode(write);
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&checksum(&payload));
        self.pending.extend_from_slice(&payload);
    }

    /// Writes the buffered records and syncs them to disk.
    ///
    /// # Errors
    /// I/O errors: the node must stop, since what it promised is not durable.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let io = |source| WalError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.write_all(&self.pending).map_err(io)?;
        self.file.sync_data().map_err(io)?;
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(path: &Path) -> Result<(Vec<u64>, Recovered), WalError> {
        let mut disk = Vec::new();
        let (_, rec) = Wal::open(path, &mut disk, |d: &mut Vec<u64>, w: &u64| d.push(*w))?;
        Ok((disk, rec))
    }

    #[test]
    fn writes_survive_reopening_and_a_torn_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.wal");
        {
            let mut disk: Vec<u64> = Vec::new();
            let (mut wal, _) =
                Wal::open(&path, &mut disk, |d: &mut Vec<u64>, w: &u64| d.push(*w)).unwrap();
            for w in [1u64, 2, 3] {
                wal.append(&w);
            }
            // Not synced: not on disk.
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
            wal.sync().unwrap();
            wal.append(&4u64);
            wal.sync().unwrap();
        }
        let (disk, rec) = replay(&path).unwrap();
        assert_eq!(disk, vec![1, 2, 3, 4]);
        assert_eq!(rec.torn_bytes, 0);

        // A crash in the middle of the last write: its bytes are cut off, the rest stays.
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        let (disk, rec) = replay(&path).unwrap();
        assert_eq!(disk, vec![1, 2, 3]);
        assert!(rec.torn_bytes > 0);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len() as usize,
            full.len() - rec.torn_bytes as usize - 2
        );
    }

    #[test]
    fn damage_before_the_last_record_stops_the_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.wal");
        {
            let mut disk: Vec<u64> = Vec::new();
            let (mut wal, _) =
                Wal::open(&path, &mut disk, |d: &mut Vec<u64>, w: &u64| d.push(*w)).unwrap();
            wal.append(&1u64);
            wal.append(&2u64);
            wal.sync().unwrap();
        }
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[8] ^= 0xff; // the first record's payload
        std::fs::write(&path, &bytes).unwrap();
        let err = replay(&path).unwrap_err();
        assert!(err.to_string().contains("record 1 at byte 0"), "{err}");
    }
}
