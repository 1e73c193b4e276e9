//! Chain files: JSON Lines, one block a line, genesis first.
//!
//! Writing is append-only: each block is serialised to one line, written with a single
//! `write` call and synced to disk before the next block is mined, so a crash leaves every
//! completed block intact and at worst one torn last line. Reading streams the file line by
//! line, so memory does not grow with its length, and reports a last line without its newline
//! as torn (with its line number). Repair truncates the file; it never rewrites a block.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::chain::record::BlockRecord;

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

    /// Returns the next line, `Ok(None)` at the end.
    ///
    /// # Errors
    /// I/O errors, and [`io::ErrorKind::InvalidData`] for a line that is not UTF-8.
    pub fn next_line(&mut self) -> io::Result<Option<Line>> {
        self.buf.clear();
        let n = self.reader.read_until(b'\n', &mut self.buf)?;
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
        let text = String::from_utf8(std::mem::take(&mut self.buf)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("line {} is not UTF-8 text", self.number),
            )
        })?;
        Ok(Some(Line {
            number: self.number,
            offset,
            text,
            complete,
        }))
    }
}

/// An append-only chain file open for writing.
#[derive(Debug)]
pub struct ChainWriter {
    file: File,
    path: PathBuf,
}

impl ChainWriter {
    /// Creates a new chain file (failing if it exists) and syncs its directory entry.
    ///
    /// # Errors
    /// I/O errors, including `AlreadyExists`.
    pub fn create_new(path: &Path) -> io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(path)?;
        sync_parent_dir(path);
        Ok(Self {
            file,
            path: path.to_owned(),
        })
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
        let mut line = record.to_json_line().into_bytes();
        line.push(b'\n');
        self.file.write_all(&line)?;
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
}
