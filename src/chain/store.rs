//! Chain files: JSON Lines, one block a line, genesis first.
//!
//! Writing is append-only: each block is serialised to one line, written with a single
//! `write` call and synced to disk before the next block is mined, so a crash leaves every
//! completed block intact and at worst one torn last line. Reading streams the file line by
//! line, so memory does not grow with its length, and reports a last line without its newline
//! as torn (with its line number). Repair truncates the file; it never rewrites a block.
//!
//! A chain file has one writer at a time: [`ChainLock`] holds `<file>.lock` with the operating
//! system's advisory lock for as long as a run writes (or repairs) it, and a second writer is
//! refused with the holder's process id. A new chain's genesis line is written to a temporary
//! file, synced and renamed into place, so a crash at any moment leaves either no chain or a
//! whole genesis — never an empty or torn one.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use crate::chain::record::BlockRecord;

/// The longest line a chain file may have: 32 MiB, far above any block chainsmith writes (a
/// block of 10 000 transfers is about 4 MiB), so that a damaged or hostile file cannot make a
/// reader hold gigabytes.
pub const MAX_LINE_BYTES: usize = 32 << 20;

/// What makes a line unreadable as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineDamage {
    /// The bytes are not UTF-8.
    NotUtf8,
    /// The line is longer than [`MAX_LINE_BYTES`] (its first bytes were read).
    TooLong,
}

/// One line read from a chain file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: u64,
    /// Byte offset of the line's first byte.
    pub offset: u64,
    /// The text, without the newline.
    pub text: String,
    /// False when the file ended without a newline after this line (a torn write).
    pub complete: bool,
    /// Why the line is not text (its `text` is then empty).
    pub damage: Option<LineDamage>,
}

/// Streams the lines of a chain file.
#[derive(Debug)]
pub struct LineReader<R> {
    reader: R,
    number: u64,
    offset: u64,
    buf: Vec<u8>,
}

impl LineReader<BufReader<File>> {
    /// Opens `path` for reading.
    ///
    /// # Errors
    /// Any I/O error from opening the file.
    pub fn open(path: &Path) -> io::Result<Self> {
        Ok(Self::new(BufReader::with_capacity(
            1 << 20,
            File::open(path)?,
        )))
    }
}

impl<R: BufRead> LineReader<R> {
    /// Reads lines from `reader`.
    pub fn new(reader: R) -> Self {
        Self {
            reader,
            number: 0,
            offset: 0,
            buf: Vec::new(),
        }
    }

    /// Returns the next line, `Ok(None)` at the end. A line that is not UTF-8 or is longer
    /// than [`MAX_LINE_BYTES`] comes back with its [`LineDamage`]; reading should stop there.
    ///
    /// # Errors
    /// I/O errors.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let n = (&mut self.reader)
            .take(limit)
            .read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.number += 1;
        let offset = self.offset;
        self.offset += n as u64;
        let complete = self.buf.last() == Some(&b'\n');
        if complete {
            self.buf.pop();
        }
        let (text, damage) = if self.buf.len() > MAX_LINE_BYTES {
            (String::new(), Some(LineDamage::TooLong))
        } else {
            match String::from_utf8(std::mem::take(&mut self.buf)) {
                Ok(text) => (text, None),
                Err(_) => (String::new(), Some(LineDamage::NotUtf8)),
            }
        };
        Ok(Some(Line {
            number: self.number,
            offset,
            text,
            complete,
            damage,
        }))
    }
}

/// Why a chain file could not be locked for writing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error("{path} is being written by another process (pid {pid}); wait for it or stop it")]
    Held {
        /// The chain file.
        path: PathBuf,
        /// The holder's process id, as it wrote it in the lock file.
        pid: String,
    },
    /// The lock file could not be opened or locked.
    #[error("locking {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The exclusive right to write one chain file, held until dropped (or the process ends, when
/// the operating system releases it). See the module docs.
#[derive(Debug)]
pub struct ChainLock {
    _file: File,
}

impl ChainLock {
    /// Takes the write lock of the chain file at `chain` (`<chain>.lock`, created if needed),
    /// recording this process's id in it.
    ///
    /// # Errors
    /// [`LockError::Held`] naming the holder's pid when another process holds it.
    pub fn acquire(chain: &Path) -> Result<Self, LockError> {
        if std::fs::metadata(chain).is_ok_and(|m| !m.is_file()) {
            return Err(LockError::Io {
                path: chain.to_owned(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "is not a regular file"),
            });
        }
        let mut name = chain.as_os_str().to_owned();
        name.push(".lock");
        let path = PathBuf::from(name);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut pid = String::new();
                // The holder wrote its pid; a bounded read, in case the file is not ours.
                let _ = (&file).take(32).read_to_string(&mut pid);
                return Err(LockError::Held {
                    path: chain.to_owned(),
                    pid: pid.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        Ok(Self { _file: file })
    }
}

/// An append-only chain file open for writing.
#[derive(Debug)]
pub struct ChainWriter {
    file: File,
    path: PathBuf,
}

impl ChainWriter {
    /// Creates the chain file at `path` holding `genesis`: the line is written to
    /// `<path>.tmp`, synced, and renamed into place (replacing an empty file a crash may have
    /// left), then the directory is synced. The caller holds the [`ChainLock`]; a non-empty
    /// file at `path` is never replaced.
    ///
    /// # Errors
    /// I/O errors; `AlreadyExists` when `path` holds data, `InvalidInput` when it is not a
    /// regular file (a device, a directory, a symbolic link).
    pub fn create(path: &Path, genesis: &BlockRecord) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let refuse = |kind, why: &str| Err(io::Error::new(kind, why.to_owned()));
        match std::fs::symlink_metadata(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
            Ok(m) if m.file_type().is_symlink() => {
                return refuse(
                    io::ErrorKind::InvalidInput,
                    "is a symbolic link to no chain (broken, looping or empty); give a file's own path",
                );
            }
            Ok(m) if !m.is_file() => {
                return refuse(io::ErrorKind::InvalidInput, "is not a regular file");
            }
            Ok(m) if m.len() > 0 => {
                return refuse(io::ErrorKind::AlreadyExists, "already holds data");
            }
            Ok(_) => {}
        }
        let mut tmp_name = path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        {
            let mut file = File::create(&tmp)?;
            let mut line = genesis.to_json_line().into_bytes();
            line.push(b'\n');
            file.write_all(&line)?;
            file.sync_all()?;
        }
        std::fs::rename(&tmp, path)?;
        sync_parent_dir(path);
        Self::open_append(path)
    }

    /// Opens an existing chain file for appending.
    ///
    /// # Errors
    /// I/O errors.
    pub fn open_append(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().append(true).open(path)?;
        Ok(Self {
            file,
            path: path.to_owned(),
        })
    }

    /// Returns the file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `record` as one line and syncs it to disk before returning.
    ///
    /// # Errors
    /// I/O errors from the write or the sync.
    pub fn append(&mut self, record: &BlockRecord) -> io::Result<()> {
        self.append_unsynced(record)?;
        self.sync()
    }

    /// Appends `record` as one line (one `write`) without syncing: a writer that appends
    /// several blocks at once syncs them together with [`ChainWriter::sync`] before it
    /// reports any of them.
    ///
    /// # Errors
    /// I/O errors from the write.
    pub fn append_unsynced(&mut self, record: &BlockRecord) -> io::Result<()> {
        let mut line = record.to_json_line().into_bytes();
        line.push(b'\n');
        self.file.write_all(&line)
    }

    /// Syncs what was appended to disk.
    ///
    /// # Errors
    /// I/O errors from the sync.
    pub fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// Truncates the chain file at `path` to `len` bytes and syncs it.
///
/// # Errors
/// I/O errors.
pub fn truncate(path: &Path, len: u64) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    file.set_len(len)?;
    file.sync_all()
}

fn sync_parent_dir(path: &Path) {
    // Best effort: make the new file's directory entry durable too. Some filesystems do not
    // allow syncing a directory; the data itself is still synced per block.
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_offsets_and_torn_last_line() {
        let data = b"{\"a\":1}\n{\"b\":2}\n{\"c\"";
        let mut r = LineReader::new(&data[..]);
        let l1 = r.next_line().unwrap().unwrap();
        assert_eq!((l1.number, l1.offset, l1.complete), (1, 0, true));
        assert_eq!(l1.text, "{\"a\":1}");
        let l2 = r.next_line().unwrap().unwrap();
        assert_eq!((l2.number, l2.offset), (2, 8));
        let l3 = r.next_line().unwrap().unwrap();
        assert_eq!((l3.number, l3.offset, l3.complete), (3, 16, false));
        assert_eq!(r.next_line().unwrap(), None);
    }

    #[test]
    fn damaged_lines_come_back_marked_and_bounded() {
        let data = b"ok\n\xff\xfe\n";
        let mut r = LineReader::new(&data[..]);
        assert_eq!(r.next_line().unwrap().unwrap().damage, None);
        let bad = r.next_line().unwrap().unwrap();
        assert_eq!((bad.number, bad.damage), (2, Some(LineDamage::NotUtf8)));
        // A line with no end is read only to the limit.
        let endless = std::io::repeat(b'x').take(3 * MAX_LINE_BYTES as u64);
        let mut r = LineReader::new(std::io::BufReader::new(endless));
        let long = r.next_line().unwrap().unwrap();
        assert_eq!(long.damage, Some(LineDamage::TooLong));
        assert!(long.text.is_empty() && r.offset == MAX_LINE_BYTES as u64 + 1);
    }
}
