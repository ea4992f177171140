//! The position store on disk: a snapshot (`checkpoints.json`, with its previous generation kept
//! as `.prev`) and a journal of the changes since (`checkpoints.journal`).
//!
//! Exists apart from the live trackers and the save policy (`super`) because the disk format has
//! its own job: every write atomic and durable (temp file, fsync, rename, fsync of the
//! directory; journal lines appended with one fdatasync), every read checked (a checksum over the
//! snapshot, one per journal line), and a torn or corrupt file told apart and reported: the
//! previous generation is used when it is sound (older offsets mean a few lines sent twice, never
//! lost); when neither is, the agent refuses to start rather than silently start over.

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fingerprint::{fnv1a, FileId, Fingerprint};
use crate::statefile::{self, Mode};

pub const STORE_FILE: &str = "checkpoints.json";
/// The changes written since the last snapshot of `STORE_FILE` (see `Checkpoints::save`).
pub const JOURNAL_FILE: &str = "checkpoints.journal";
const STORE_VERSION: u32 = 1;

/// One file's saved position for one topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The configured path the file was read under (the tail's path, even after a rename).
    pub path: String,
    pub topic: String,
    pub dev: u64,
    pub ino: u64,
    pub fp_len: u64,
    pub fp_hash: u64,
    /// Every byte before this offset was acknowledged by Kafka.
    pub offset: u64,
    /// The fingerprint of the bytes just before `offset` (`near_len` 0: not known, as in
    /// stores written before it was kept): a file that begins like this one but holds other
    /// bytes there is another file.
    #[serde(default)]
    pub near_len: u64,
    #[serde(default)]
    pub near_hash: u64,
    /// Unix seconds of the last change.
    pub updated: u64,
}

/// The device number of the `wanted` markers: no file has it (`dev_t` is 32 bits on Linux).
const WANTED_DEV: u64 = u64::MAX;
/// The device number of retired entries: content whose inode another file took (`Entry::retired`).
const RETIRED_DEV: u64 = u64::MAX - 1;

impl Entry {
    /// The position `offset` of file `id`, first bytes `fp`, read under `path` for `topic`; `near`:
    /// the bytes just before `offset` (none: not known).
    pub fn new(
        path: &str,
        topic: &str,
        id: FileId,
        fp: Fingerprint,
        offset: u64,
        near: Fingerprint,
        updated: u64,
    ) -> Entry {
        Entry {
            path: path.to_string(),
            topic: topic.to_string(),
            dev: id.dev,
            ino: id.ino,
            fp_len: fp.len,
            fp_hash: fp.hash,
            offset,
            near_len: near.len,
            near_hash: near.hash,
            updated,
        }
    }

    /// A marker that `path` is to be read for `topic` since `now` (unix seconds), before any file
    /// of it was: not a file's position (its identity is no file's), only the time from which
    /// generations rotated away count as unread. Kept in the store's own format so that older
    /// agents load it (as an entry no file matches) and it expires like any entry.
    pub fn wanted(path: &str, topic: &str, now: u64) -> Entry {
        let id = FileId { dev: WANTED_DEV, ino: fnv1a(path.as_bytes()) };
        Entry::new(path, topic, id, Fingerprint::default(), 0, Fingerprint::default(), now)
    }

    /// The identity under which the reading of a file is kept once its inode was taken by
    /// another file (logrotate's `compress` deleted it, and a file of another path was created
    /// in its inode): no file has it, so the entry stays only as content read under its path,
    /// which is what recognises a compressed copy of it (by its first bytes) after a restart. One
    /// per file and content (its old identity, path and first bytes).
    pub fn retired(id: FileId, path: &str, fp: Fingerprint) -> FileId {
        let mut text = format!("{}:{}:{}:{}:", id.dev, id.ino, fp.len, fp.hash).into_bytes();
        text.extend_from_slice(path.as_bytes());
        FileId { dev: RETIRED_DEV, ino: fnv1a(&text) }
    }

    /// Whether this is the reading of a file whose inode another file took (`retired`).
    pub fn is_retired(&self) -> bool {
        self.dev == RETIRED_DEV
    }

    /// Whether this is a `wanted` marker, not a file's position.
    pub fn is_wanted(&self) -> bool {
        self.dev == WANTED_DEV
    }

    pub fn id(&self) -> FileId {
        FileId { dev: self.dev, ino: self.ino }
    }
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint { len: self.fp_len, hash: self.fp_hash }
    }
    pub fn near(&self) -> Fingerprint {
        Fingerprint { len: self.near_len, hash: self.near_hash }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoreFile {
    version: u32,
    /// FNV-1a of the JSON of `entries`, in hex: catches torn and bit-rotted files.
    checksum: String,
    entries: Vec<Entry>,
    /// The snapshot's generation: journal lines of another one are not replayed over it (0 in
    /// stores written before the journal).
    #[serde(default)]
    generation: u64,
}

#[derive(Debug)]
pub enum StoreError {
    Corrupt { file: PathBuf, reason: String },
    Io { file: PathBuf, error: io::Error },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Corrupt { file, reason } => write!(
                f,
                "checkpoint store {} is corrupt ({reason}) and no sound previous generation exists; \
                 move it away to start over (files are then read from start_position, so lines may be \
                 sent again or skipped)",
                file.display()
            ),
            StoreError::Io { file, error } => write!(f, "checkpoint store {}: {error}", file.display()),
        }
    }
}

impl std::error::Error for StoreError {}

impl StoreError {
    /// What went wrong, without the parts that change from one try to the next (the random name
    /// of a temporary file in an I/O error's text): the same cause is logged once, not at every
    /// save (a full disk gave a line every 200 ms).
    pub fn cause(&self) -> String {
        match self {
            StoreError::Corrupt { file, reason } => format!("{}: {reason}", file.display()),
            StoreError::Io { file, error } => {
                format!("{}: {:?} {:?}", file.display(), error.kind(), error.raw_os_error())
            }
        }
    }
}

/// A file's key in the store: its topic and identity.
pub(super) type Key = (String, FileId);

/// One journal line's content: an entry set, or one removed, in snapshot generation `g`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Record {
    pub(super) g: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) set: Option<Entry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) del: Option<Gone>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Gone {
    pub(super) topic: String,
    pub(super) dev: u64,
    pub(super) ino: u64,
}

/// `<FNV-1a of the JSON, 16 hex digits> <JSON>\n`: a torn or bit-rotted line is told apart.
pub(super) fn journal_line(out: &mut Vec<u8>, record: &Record) {
    let json = serde_json::to_vec(record).expect("a record serializes");
    out.extend_from_slice(format!("{:016x} ", fnv1a(&json)).as_bytes());
    out.extend_from_slice(&json);
    out.push(b'\n');
}

/// Appends `lines` to the journal and makes them durable (one write, one fdatasync).
pub(super) fn append(journal: &Path, lines: &[u8]) -> io::Result<()> {
    let mut f = statefile::open(journal, Mode::Append)?;
    f.write_all(lines)?;
    f.sync_data()
}

/// Applies the journal's records of snapshot generation `generation` to `saved`; returns how
/// many. A line whose checksum fails ends the replay (a torn last write: the positions before
/// it stand, older ones mean lines sent again, never lost).
pub(super) fn replay(journal: &Path, generation: u64, saved: &mut BTreeMap<Key, Entry>) -> Result<usize, StoreError> {
    let bytes = match std::fs::read(journal) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(error) => return Err(StoreError::Io { file: journal.to_path_buf(), error }),
    };
    let mut applied = 0;
    for (n, line) in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).enumerate() {
        let record = line
            .split_at_checked(17)
            .filter(|(sum, json)| sum[16] == b' ' && sum[..16] == *format!("{:016x}", fnv1a(json)).as_bytes())
            .and_then(|(_, json)| serde_json::from_slice::<Record>(json).ok());
        let Some(record) = record else {
            log::warn!(
                "checkpoint journal {}: line {} is torn or corrupt; the positions before it are used \
                 (some lines may be sent again)",
                journal.display(),
                n + 1
            );
            break;
        };
        if record.g != generation {
            continue; // written before the snapshot that replaced it
        }
        match (record.set, record.del) {
            (Some(e), _) => {
                saved.insert((e.topic.clone(), e.id()), e);
            }
            (None, Some(g)) => {
                saved.remove(&(g.topic, FileId { dev: g.dev, ino: g.ino }));
            }
            (None, None) => {}
        }
        applied += 1;
    }
    Ok(applied)
}

pub(super) fn checksum(entries: &[Entry]) -> String {
    let json = serde_json::to_vec(entries).expect("entries serialize");
    format!("{:016x}", fnv1a(&json))
}

pub(super) fn parse_store(bytes: &[u8]) -> Result<(Vec<Entry>, u64), String> {
    let store: StoreFile = serde_json::from_slice(bytes).map_err(|e| format!("not valid JSON of the store: {e}"))?;
    if store.version != STORE_VERSION {
        return Err(format!("version {} is not {STORE_VERSION}", store.version));
    }
    let want = checksum(&store.entries);
    if want != store.checksum {
        return Err(format!("checksum {} does not match the entries ({want})", store.checksum));
    }
    Ok((store.entries, store.generation))
}

pub(super) fn prev_path(file: &Path) -> PathBuf {
    let mut s = file.as_os_str().to_owned();
    s.push(".prev");
    PathBuf::from(s)
}

/// Loads the store: the current generation, else the previous one, else nothing (first start).
pub(super) fn load(file: &Path) -> Result<(Vec<Entry>, u64), StoreError> {
    let prev = prev_path(file);
    let read = |p: &Path| -> Result<Option<Vec<u8>>, StoreError> {
        match std::fs::read(p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(StoreError::Io { file: p.to_path_buf(), error }),
        }
    };
    let current_problem = match read(file)? {
        Some(bytes) => match parse_store(&bytes) {
            Ok(entries) => return Ok(entries),
            Err(reason) => Some(reason),
        },
        None => None,
    };
    match (read(&prev)?, current_problem) {
        (Some(bytes), problem) => match parse_store(&bytes) {
            Ok(entries) => {
                match problem {
                    Some(reason) => log::error!(
                        "checkpoint store {} is corrupt ({reason}); using the previous generation {} \
                         (some lines may be sent again)",
                        file.display(),
                        prev.display()
                    ),
                    None => log::warn!(
                        "checkpoint store {} is missing; using the previous generation {}",
                        file.display(),
                        prev.display()
                    ),
                }
                Ok(entries)
            }
            Err(prev_reason) => Err(StoreError::Corrupt {
                file: file.to_path_buf(),
                reason: match problem {
                    Some(r) => format!("{r}; previous generation: {prev_reason}"),
                    None => format!("missing; previous generation: {prev_reason}"),
                },
            }),
        },
        (None, Some(reason)) => Err(StoreError::Corrupt { file: file.to_path_buf(), reason }),
        (None, None) => Ok((Vec::new(), 0)),
    }
}

pub(super) fn write_atomically(file: &Path, entries: &[Entry], generation: u64) -> io::Result<()> {
    let store =
        StoreFile { version: STORE_VERSION, checksum: checksum(entries), entries: entries.to_vec(), generation };
    let mut json = serde_json::to_vec_pretty(&store).expect("store serializes");
    json.push(b'\n');
    // The snapshot before is kept as `.prev` (read when this one is torn).
    statefile::replace(file, &json, 0o600, true, || match std::fs::rename(file, prev_path(file)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    })
}
