//! Reading the user's files with bounds: only regular files, never more than the limits allow,
//! so a FIFO, a device, a huge file or an archive bomb gets a clear error instead of a hang or
//! an out-of-memory abort. Every file a build reads (spec, tensors, calibration and test inputs)
//! goes through a [`Reader`]; a reader over in-memory files serves tests and fuzzing.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Size limits for what one build reads. The defaults are far above any model that fits a
/// microcontroller (the largest bundled example's biggest file is 26 MB).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest spec file.
    pub spec_bytes: u64,
    /// Largest tensor file, and largest archive member once inflated.
    pub file_bytes: u64,
    /// All bytes read (and inflated) by one build together.
    pub total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            spec_bytes: 1 << 20,
            file_bytes: 256 << 20,
            total_bytes: 1 << 30,
        }
    }
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("file not found")]
    NotFound,
    #[error("is {0}, not a regular file: kpgen reads only regular files")]
    NotRegular(&'static str),
    #[error("is {size} bytes, more than the limit of {limit} bytes for {what}")]
    TooLarge {
        size: u64,
        limit: u64,
        what: &'static str,
    },
    #[error("reading it would pass the limit of {limit} bytes read by one build (already {read})")]
    TotalTooLarge { read: u64, limit: u64 },
    #[error("cannot read: {0}")]
    Io(std::io::Error),
}

/// Where files come from.
pub trait Source {
    /// The bytes of `path`, refusing (with [`ReadError::TooLarge`]) to read more than `limit`.
    fn read(&self, path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError>;

    /// At most the first `n` bytes of `path` (a header), whatever its size.
    fn prefix(&self, path: &Path, n: u64) -> Result<Vec<u8>, ReadError>;
}

/// The file system: regular files only (checked before opening, so a FIFO cannot block).
pub struct Disk;

impl Source for Disk {
    fn read(&self, path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e),
        })?;
        check_kind(&meta)?;
        if meta.len() > limit {
            return Err(ReadError::TooLarge {
                size: meta.len(),
                limit,
                what,
            });
        }
        let file = std::fs::File::open(path).map_err(ReadError::Io)?;
        // The file may have been swapped between the check and the open.
        check_kind(&file.metadata().map_err(ReadError::Io)?)?;
        read_bounded(file, limit, what)
    }

    fn prefix(&self, path: &Path, n: u64) -> Result<Vec<u8>, ReadError> {
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            _ => ReadError::Io(e),
        })?;
        check_kind(&meta)?;
        let file = std::fs::File::open(path).map_err(ReadError::Io)?;
        check_kind(&file.metadata().map_err(ReadError::Io)?)?;
        let mut buf = Vec::new();
        file.take(n).read_to_end(&mut buf).map_err(ReadError::Io)?;
        Ok(buf)
    }
}

fn check_kind(meta: &std::fs::Metadata) -> Result<(), ReadError> {
    let t = meta.file_type();
    if t.is_file() {
        return Ok(());
    }
    let kind = if t.is_dir() {
        "a directory"
    } else {
        special_kind(&t)
    };
    Err(ReadError::NotRegular(kind))
}

#[cfg(unix)]
fn special_kind(t: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "a named pipe (FIFO)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(not(unix))]
fn special_kind(_: &std::fs::FileType) -> &'static str {
    "a special file"
}

/// Reads at most `limit` bytes from `r`; more is an error, not a truncation.
pub fn read_bounded(r: impl Read, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
    let mut buf = Vec::new();
    r.take(limit.saturating_add(1))
        .read_to_end(&mut buf)
        .map_err(ReadError::Io)?;
    if buf.len() as u64 > limit {
        return Err(ReadError::TooLarge {
            size: buf.len() as u64,
            limit,
            what,
        });
    }
    Ok(buf)
}

/// Files held in memory, by path: for tests and fuzzing.
#[derive(Debug, Default, Clone)]
pub struct Memory(pub BTreeMap<PathBuf, Vec<u8>>);

impl Source for Memory {
    fn read(&self, path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
        let data = self.0.get(path).ok_or(ReadError::NotFound)?;
        if data.len() as u64 > limit {
            return Err(ReadError::TooLarge {
                size: data.len() as u64,
                limit,
                what,
            });
        }
        Ok(data.clone())
    }

    fn prefix(&self, path: &Path, n: u64) -> Result<Vec<u8>, ReadError> {
        let data = self.0.get(path).ok_or(ReadError::NotFound)?;
        Ok(data[..data.len().min(usize::try_from(n).unwrap_or(usize::MAX))].to_vec())
    }
}

/// One build's reader: a source, the limits, and the bytes read so far.
pub struct Reader<'a> {
    source: &'a dyn Source,
    pub limits: Limits,
    read: Cell<u64>,
}

impl<'a> Reader<'a> {
    pub fn new(source: &'a dyn Source, limits: Limits) -> Self {
        Reader {
            source,
            limits,
            read: Cell::new(0),
        }
    }

    /// The file system with the default limits.
    pub fn disk() -> Reader<'static> {
        Reader::new(&Disk, Limits::default())
    }

    /// A spec file (at most [`Limits::spec_bytes`]).
    pub fn spec(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        self.take(path, self.limits.spec_bytes, "a spec")
    }

    /// A tensor or input file (at most [`Limits::file_bytes`]).
    pub fn tensor(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        self.take(path, self.limits.file_bytes, "a tensor file")
    }

    /// At most the first `n` bytes of `path`, for reading a header before deciding to read the
    /// rest; counted against the build's total.
    pub fn prefix(&self, path: &Path, n: u64) -> Result<Vec<u8>, ReadError> {
        let n = n.min(self.limits.file_bytes);
        let data = self.source.prefix(path, n)?;
        self.count(data.len() as u64)?;
        Ok(data)
    }

    /// Accounts for `bytes` produced by inflating an archive member of a file already read.
    pub fn inflate(&self, mut r: impl Read, declared: u64) -> Result<Vec<u8>, ReadError> {
        let what = "an inflated archive member";
        let limit = self.limits.file_bytes.min(self.remaining());
        if declared > limit {
            return Err(ReadError::TooLarge {
                size: declared,
                limit,
                what,
            });
        }
        let data = read_bounded(&mut r, limit, what)?;
        self.count(data.len() as u64)?;
        Ok(data)
    }

    fn remaining(&self) -> u64 {
        self.limits.total_bytes.saturating_sub(self.read.get())
    }

    fn take(&self, path: &Path, limit: u64, what: &'static str) -> Result<Vec<u8>, ReadError> {
        let data = self.source.read(path, limit, what)?;
        self.count(data.len() as u64)?;
        Ok(data)
    }

    fn count(&self, n: u64) -> Result<(), ReadError> {
        let total = self.read.get().saturating_add(n);
        if total > self.limits.total_bytes {
            return Err(ReadError::TotalTooLarge {
                read: self.read.get(),
                limit: self.limits.total_bytes,
            });
        }
        self.read.set(total);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_for_files_members_and_the_total() {
        let mut m = Memory::default();
        m.0.insert("a".into(), vec![0; 10]);
        m.0.insert("b".into(), vec![0; 10]);
        let limits = Limits {
            spec_bytes: 5,
            file_bytes: 10,
            total_bytes: 15,
        };
        let r = Reader::new(&m, limits);
        assert!(matches!(
            r.spec(Path::new("a")),
            Err(ReadError::TooLarge { .. })
        ));
        assert_eq!(r.tensor(Path::new("a")).unwrap().len(), 10);
        assert!(matches!(
            r.tensor(Path::new("b")),
            Err(ReadError::TotalTooLarge { .. })
        ));
        assert!(matches!(r.tensor(Path::new("c")), Err(ReadError::NotFound)));
        let r = Reader::new(&m, limits);
        assert!(r.inflate(&[0u8; 11][..], 11).is_err());
        // A lying declared size is caught by the bounded read.
        assert!(r.inflate(&[0u8; 11][..], 1).is_err());
        assert_eq!(r.inflate(&[0u8; 4][..], 4).unwrap().len(), 4);
    }

    #[cfg(unix)]
    #[test]
    fn special_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.npy");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        let err = Reader::disk().tensor(&fifo).unwrap_err();
        assert!(err.to_string().contains("named pipe"), "{err}");
        let err = Reader::disk().tensor(Path::new("/dev/zero")).unwrap_err();
        assert!(err.to_string().contains("device"), "{err}");
        let err = Reader::disk().spec(dir.path()).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
    }
}
