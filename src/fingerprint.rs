//! File identity: which file a path points at, across renames and inode reuse.
//!
//! Exists because names lie: rotation renames files, and a deleted file's inode number is soon
//! given to a new one. A file is identified by (device, inode), and that identity is confirmed by a
//! fingerprint of its first bytes (up to `FP_BYTES`): a recorded file whose inode now holds
//! different first bytes is a new file (inode reuse), and is read from its start.

use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::confine::Access;

/// How many leading bytes the fingerprint covers, at most.
pub const FP_BYTES: u64 = 256;
/// How many bytes before a saved position its own fingerprint covers, at most: two files that
/// begin alike (a banner line) are told apart by what lies just before the position.
pub const NEAR_BYTES: usize = 64;

/// Device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &std::fs::Metadata) -> FileId {
        FileId { dev: meta.dev(), ino: meta.ino() }
    }
}

/// A hash of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct Fingerprint {
    pub len: u64,
    pub hash: u64,
}

impl Fingerprint {
    /// Fingerprints the first `min(size, FP_BYTES)` bytes of an open file.
    pub fn of_file(file: &File) -> io::Result<Fingerprint> {
        let size = file.metadata()?.len();
        Fingerprint::of_prefix(file, size.min(FP_BYTES))
    }

    /// Fingerprints exactly the first `len` bytes; fails when the file is shorter.
    pub fn of_prefix(file: &File, len: u64) -> io::Result<Fingerprint> {
        let mut buf = [0u8; FP_BYTES as usize];
        let len = len.min(FP_BYTES);
        file.read_exact_at(&mut buf[..len as usize], 0)?;
        Ok(Fingerprint { len, hash: fnv1a(&buf[..len as usize]) })
    }

    /// A fingerprint of `bytes` (the ones just before a position: `NEAR_BYTES` at most).
    pub fn of_bytes(bytes: &[u8]) -> Fingerprint {
        Fingerprint { len: bytes.len() as u64, hash: fnv1a(bytes) }
    }

    /// Whether the `len` bytes of `file` just before `offset` are the ones this fingerprint was
    /// taken of; one of no bytes (not known) says yes.
    pub fn matches_before(&self, file: &File, offset: u64) -> bool {
        if self.len == 0 {
            return true;
        }
        let Some(start) = offset.checked_sub(self.len) else { return false };
        let mut buf = vec![0u8; self.len as usize];
        file.read_exact_at(&mut buf, start).is_ok() && fnv1a(&buf) == self.hash
    }

    /// Whether `file` still begins with the bytes this fingerprint was taken of.
    pub fn matches(&self, file: &File) -> bool {
        match Fingerprint::of_prefix(file, self.len) {
            Ok(now) => now == *self,
            Err(_) => false, // shorter than it was: not the same file (or truncated)
        }
    }

    /// Whether this fingerprint tells that `file` is the file it was taken of: it matches and
    /// covers at least one byte. One of no bytes (a file seen while empty) matches any file, so
    /// it identifies none (an inode reused by another file would pass for it).
    pub fn identifies(&self, file: &File) -> bool {
        self.len > 0 && self.matches(file)
    }

    /// Whether a longer fingerprint can be taken once the file has `size` bytes.
    pub fn can_grow(&self, size: u64) -> bool {
        self.len < FP_BYTES && size > self.len
    }
}

/// What a plan may ask of a file it does not open itself: its size, and whether its bytes are
/// those a fingerprint was taken of. A `File` answers by reading; the planners' table tests
/// answer from a table, without a disk.
pub trait Probe {
    fn size(&self) -> u64;
    /// `Fingerprint::matches`: it begins with the bytes `fp` covers (any file, for none).
    fn begins_with(&self, fp: &Fingerprint) -> bool;
    /// `Fingerprint::matches_before`: the bytes before `offset` are those `near` covers.
    fn holds_before(&self, offset: u64, near: &Fingerprint) -> bool;
    /// `Fingerprint::identifies`: it begins with the bytes `fp` covers, at least one.
    fn identified_by(&self, fp: &Fingerprint) -> bool {
        fp.len > 0 && self.begins_with(fp)
    }
    /// Whether it holds bytes past `offset` (a compressed file answers without its size).
    fn holds_more_than(&self, offset: u64) -> bool {
        self.size() > offset
    }
}

impl Probe for File {
    fn size(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
    fn begins_with(&self, fp: &Fingerprint) -> bool {
        fp.matches(self)
    }
    fn holds_before(&self, offset: u64, near: &Fingerprint) -> bool {
        near.matches_before(self, offset)
    }
}

/// FNV-1a, 64 bits: small, fast, and enough to tell files (and torn store files) apart.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Whether `candidate` is named as a rotated generation of `original`: in the same directory,
/// with a longer name that begins with `original`'s (`app.log.1`, `app.log-20261123`).
pub fn is_rotated_name(original: &Path, candidate: &Path) -> bool {
    // The bytes first: the store asks this of every file it knows for each file a tail opens,
    // and parsing both paths into components every time was 35% of the CPU of an agent starting
    // on 10,000 files (perf). A candidate is the original's path and more, with no `/` after.
    let (o, c) = (original.as_os_str().as_encoded_bytes(), candidate.as_os_str().as_encoded_bytes());
    if c.len() <= o.len() || !c.starts_with(o) || c[o.len()..].contains(&b'/') {
        return false;
    }
    let (Some(name), Some(cand)) = (original.file_name(), candidate.file_name()) else { return false };
    let (name, cand) = (name.as_encoded_bytes(), cand.as_encoded_bytes());
    original.parent() == candidate.parent() && cand.len() > name.len() && cand.starts_with(name)
}

/// Files next to `path` named as its rotated generations (`is_rotated_name`): where a rename
/// rotation puts the old file. Sorted by name.
pub fn rotated_siblings(path: &Path) -> Vec<PathBuf> {
    let Some(dir) = path.parent() else {
        return Vec::new();
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> =
        rd.filter_map(|e| e.ok()).map(|e| e.path()).filter(|p| is_rotated_name(path, p)).collect();
    out.sort();
    out
}

/// The regular files of directory `dir` by identity (symlinks not followed: nothing is opened),
/// from one listing of it.
pub fn files_by_id(dir: &Path) -> std::collections::HashMap<FileId, Vec<PathBuf>> {
    let mut out: std::collections::HashMap<FileId, Vec<PathBuf>> = Default::default();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for path in rd.filter_map(|e| e.ok()).map(|e| e.path()) {
        if let Ok(m) = std::fs::symlink_metadata(&path).map(|m| (m.is_file(), FileId::of(&m))) {
            if m.0 {
                out.entry(m.1).or_default().push(path);
            }
        }
    }
    out
}

/// Finds the file with identity `id` among `path` itself and its rotated siblings, each opened
/// confined by `access`.
pub fn find_by_id(path: &Path, access: &Access, id: FileId) -> Option<(PathBuf, File)> {
    std::iter::once(path.to_path_buf()).chain(rotated_siblings(path)).find_map(|p| {
        let f = crate::confine::open(&p, access).ok()?;
        let meta = f.metadata().ok()?;
        (FileId::of(&meta) == id).then_some((p, f))
    })
}

/// A file's size and modification time at a look: when neither moved, a file's first bytes are
/// not read again. The time catches a file cut and written again to the same size, which the size
/// alone misses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub size: u64,
    pub mtime: (i64, i64),
}

impl Stamp {
    pub fn of(m: &std::fs::Metadata) -> Stamp {
        Stamp { size: m.len(), mtime: (m.mtime(), m.mtime_nsec()) }
    }

    /// The stamp of a file whose end at `size` was checked by its last bytes rather than by
    /// `fstat`: no stamp `fstat` gives equals it, so the next look that takes one compares the
    /// file's first bytes again.
    pub fn by_content(size: u64) -> Stamp {
        Stamp { size, mtime: (i64::MIN, i64::MIN) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn fingerprint_tells_files_apart() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"hello\n").unwrap();
        let f = File::open(&p).unwrap();
        let fp = Fingerprint::of_file(&f).unwrap();
        assert_eq!(fp.len, 6);
        assert!(fp.matches(&f));
        // Appending keeps the prefix.
        std::fs::OpenOptions::new().append(true).open(&p).unwrap().write_all(b"more\n").unwrap();
        assert!(fp.matches(&f));
        assert!(fp.can_grow(11));
        // Rewritten content does not match; nor does a shorter file.
        std::fs::write(&p, b"HELLO\n").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()));
        std::fs::write(&p, b"he").unwrap();
        assert!(!fp.matches(&File::open(&p).unwrap()));
    }

    #[test]
    fn siblings_and_find_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("app.log");
        std::fs::write(&p, b"x").unwrap();
        let id = FileId::of(&std::fs::metadata(&p).unwrap());
        std::fs::rename(&p, dir.path().join("app.log.1")).unwrap();
        std::fs::write(&p, b"y").unwrap();
        std::fs::write(dir.path().join("other.log"), b"z").unwrap();
        std::fs::write(dir.path().join("app.log-20261123"), b"w").unwrap();
        let sibs = rotated_siblings(&p);
        assert_eq!(sibs.len(), 2);
        let (found, _) = find_by_id(&p, &Access::Follow, id).unwrap();
        assert_eq!(found, dir.path().join("app.log.1"));
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf29ce484222325);
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
    }
}
