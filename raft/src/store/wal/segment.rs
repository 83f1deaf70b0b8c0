//! One segment file of the Raft log: its header, the record format, the scan
//! that recovers its valid records, and zero-filling ahead of the writer.
//!
//! A segment is named by the index of its first record (`{index:020}.seg`)
//! and starts with a 16-byte header: [`MAGIC`] and that index. Records
//! follow back to back:
//!
//! ```text
//! crc32 (u32 LE) | len (u32 LE) | index (u64 LE) | payload (len bytes)
//! ```
//!
//! The checksum covers `len`, `index` and the payload. The file is extended
//! with zeros in chunks ahead of the write position, so appending overwrites
//! blocks that already exist and an fdatasync flushes data only, with no
//! file-size update for the file system's journal. A zero length, a short
//! read or a checksum mismatch ends the scan: whatever follows is a torn or
//! never-written tail.

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::WalError;

/// Identifies a segment file of this format.
pub(super) const MAGIC: [u8; 8] = *b"shlwal01";
/// Bytes of the segment header: magic and first index.
pub(super) const HEADER_LEN: u64 = 16;
/// Bytes of a record header: checksum, length, index.
pub(super) const RECORD_HEADER_LEN: usize = 16;

/// The file name of the segment whose first record has `index`.
pub(super) fn file_name(index: u64) -> String {
    format!("{index:020}.seg")
}

/// The first index named by a segment file name, or `None` for other files.
pub(super) fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn checksum(len: u32, index: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(&index.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends the record of `payload` at `index` to `buf`.
pub(super) fn encode_record(buf: &mut Vec<u8>, index: u64, payload: &[u8]) -> Result<(), WalError> {
    let len = u32::try_from(payload.len()).map_err(|_| WalError::TooLarge {
        index,
        len: payload.len(),
    })?;
    buf.extend_from_slice(&checksum(len, index, payload).to_le_bytes());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&index.to_le_bytes());
    buf.extend_from_slice(payload);
    Ok(())
}

/// Checks one record read back whole (`bytes` = header and payload) and
/// returns its payload.
pub(super) fn decode_record<'a>(
    bytes: &'a [u8],
    index: u64,
    path: &Path,
    offset: u64,
) -> Result<&'a [u8], WalError> {
    let corrupt = |reason: String| WalError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    let (header, payload) = bytes
        .split_at_checked(RECORD_HEADER_LEN)
        .ok_or_else(|| corrupt("record shorter than its header".into()))?;
    let crc = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let len = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    let found = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if found != index || len as usize != payload.len() {
        return Err(corrupt(format!(
            "expected entry {index} of {} bytes, found entry {found} of {len}",
            payload.len()
        )));
    }
    if checksum(len, found, payload) != crc {
        return Err(corrupt(format!("checksum mismatch in entry {index}")));
    }
    Ok(payload)
}

/// A record found by [`scan`]: its index, where it starts, and its payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Found {
    pub index: u64,
    pub offset: u64,
    pub len: u32,
}

/// What [`scan`] read of a segment.
pub(super) struct Scan {
    /// Valid records, in file order, with consecutive indexes from the
    /// segment's first index.
    pub records: Vec<Found>,
    /// Offset just past the last valid record.
    pub end: u64,
    /// Whether a record (or a non-zero header) stood at `end`: a torn or
    /// corrupt tail rather than unwritten zeros.
    pub torn: bool,
}

/// Reads the valid prefix of the segment at `path`, whose name says it
/// starts at `first`. A bad segment header is an error (the file is not a
/// segment of this log); a bad record ends the scan.
pub(super) fn scan(path: &Path, first: u64) -> Result<Scan, WalError> {
    let io = WalError::io(path);
    let file = File::open(path).map_err(io)?;
    let size = file.metadata().map_err(io)?.len();
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut header = [0u8; HEADER_LEN as usize];
    if size < HEADER_LEN {
        // Created but its header never reached the disk.
        return Ok(Scan {
            records: Vec::new(),
            end: 0,
            torn: size > 0,
        });
    }
    reader.read_exact(&mut header).map_err(io)?;
    if header == [0u8; HEADER_LEN as usize] {
        // Created, but its header never reached the disk (a power loss
        // while the file grew): it holds nothing.
        return Ok(Scan {
            records: Vec::new(),
            end: 0,
            torn: true,
        });
    }
    let named = u64::from_le_bytes(header[8..16].try_into().expect("8 bytes"));
    if header[..8] != MAGIC || named != first {
        return Err(WalError::Corrupt {
            path: path.to_path_buf(),
            offset: 0,
            reason: format!("not a log segment starting at {first}"),
        });
    }
    let mut records = Vec::new();
    let mut offset = HEADER_LEN;
    let mut payload = Vec::new();
    let torn = loop {
        let mut rh = [0u8; RECORD_HEADER_LEN];
        if offset + RECORD_HEADER_LEN as u64 > size {
            break false;
        }
        reader.read_exact(&mut rh).map_err(io)?;
        if rh == [0u8; RECORD_HEADER_LEN] {
            break false;
        }
        let crc = u32::from_le_bytes(rh[0..4].try_into().expect("4 bytes"));
        let len = u32::from_le_bytes(rh[4..8].try_into().expect("4 bytes"));
        let index = u64::from_le_bytes(rh[8..16].try_into().expect("8 bytes"));
        let expected = first + records.len() as u64;
        let end = offset + RECORD_HEADER_LEN as u64 + u64::from(len);
        if len == 0 || index != expected || end > size {
            break true;
        }
        payload.resize(len as usize, 0);
        reader.read_exact(&mut payload).map_err(io)?;
        if checksum(len, index, &payload) != crc {
            break true;
        }
        records.push(Found { index, offset, len });
        offset = end;
    };
    Ok(Scan {
        records,
        end: offset,
        torn,
    })
}

/// An open segment the writer appends to.
pub(super) struct Active {
    pub first: u64,
    pub path: PathBuf,
    pub file: std::sync::Arc<File>,
    /// Where the next record goes.
    pub end: u64,
    /// Bytes of the file that exist (zeros past `end`).
    pub allocated: u64,
}

impl Active {
    /// Creates the segment whose first record will have `first`, with its
    /// header and the first chunk of zeros, durably (file and directory).
    pub fn create(dir: &Path, first: u64, chunk: u64) -> Result<Self, WalError> {
        let path = dir.join(file_name(first));
        let io = WalError::io(&path);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(&MAGIC);
        header.extend_from_slice(&first.to_le_bytes());
        file.write_all_at(&header, 0).map_err(io)?;
        let mut active = Active {
            first,
            path: path.clone(),
            file: std::sync::Arc::new(file),
            end: HEADER_LEN,
            allocated: HEADER_LEN,
        };
        active.reserve(0, chunk)?;
        active.file.sync_all().map_err(io)?;
        sync_dir(dir)?;
        Ok(active)
    }

    /// Reopens a recovered segment to append at `end`.
    pub fn reopen(path: PathBuf, first: u64, end: u64) -> Result<Self, WalError> {
        let io = WalError::io(&path);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let allocated = file.metadata().map_err(io)?.len();
        Ok(Active {
            first,
            path: path.clone(),
            file: std::sync::Arc::new(file),
            end,
            allocated,
        })
    }

    /// Makes sure `extra` bytes past `end` exist, zero-filling whole chunks
    /// ahead so most appends overwrite existing blocks.
    pub fn reserve(&mut self, extra: u64, chunk: u64) -> Result<(), WalError> {
        let needed = self.end + extra;
        if needed <= self.allocated && self.allocated - needed >= chunk / 2 {
            return Ok(());
        }
        let target = (needed + chunk).div_ceil(chunk) * chunk;
        self.zero(self.allocated, target)?;
        self.allocated = target;
        Ok(())
    }

    /// Whether any byte of `[from, to)` is not zero.
    pub fn dirty_between(&self, from: u64, to: u64) -> Result<bool, WalError> {
        let mut buf = vec![0u8; 1 << 20];
        let mut at = from;
        while at < to {
            let n = (to - at).min(buf.len() as u64) as usize;
            self.file
                .read_exact_at(&mut buf[..n], at)
                .map_err(WalError::io(&self.path))?;
            if buf[..n].iter().any(|b| *b != 0) {
                return Ok(true);
            }
            at += n as u64;
        }
        Ok(false)
    }

    /// Writes zeros over `[from, to)`, last bytes first: a truncation
    /// interrupted part-way leaves a prefix of the old records followed by
    /// zeros, never zeros followed by old records.
    pub fn zero(&self, from: u64, to: u64) -> Result<(), WalError> {
        static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
        let mut at = to;
        while at > from {
            let n = (at - from).min(ZEROS.len() as u64);
            at -= n;
            self.file
                .write_all_at(&ZEROS[..n as usize], at)
                .map_err(WalError::io(&self.path))?;
        }
        Ok(())
    }

    /// Writes `bytes` at `end` and moves `end` past them.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), WalError> {
        self.file
            .write_all_at(bytes, self.end)
            .map_err(WalError::io(&self.path))?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    pub fn sync(&self) -> Result<(), WalError> {
        self.file.sync_data().map_err(WalError::io(&self.path))
    }
}

/// Makes the creation or removal of files in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), WalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(WalError::io(dir))
}
