//! Deleted generations handed over across a restart in place.
//!
//! Exists because a restart in place (a reload of settings a running agent cannot take:
//! `kafkaconfig`, `batch_wait`, a renewed certificate...) stops every tail and `exec`s the binary
//! again, and a rotated generation a tail still held open but that logrotate has since deleted
//! (its `rotate` count, `maxage`, a rename over it) has no name left: the new process could not
//! open it, and its unread lines would be lost. The soak's SIGHUP storms edit `batch_wait` while
//! the broker is away, when tails hold such files longest. So their descriptors are handed over:
//! - while the agent stops for a restart in place (`prepare`), each tail keeps (`keep`) a
//!   descriptor of every file it had open (a `dup`, as its own is closed: no more descriptors
//!   than before);
//! - just before the `exec`, once in-flight lines were waited for (up to `flush_timeout`, during
//!   which logrotate may delete more), `exec_env` picks those that have no link left, clears
//!   their close-on-exec flag and names them, with their identity and the tail's path, in
//!   `LOGCATCH_INHERITED_FDS` for the new process; the others close with the exec;
//! - at its start, `adopt` takes back the descriptors whose identity still matches (close-on-exec
//!   again), and a tail that finds no file under any name for a position of its path asks `take`;
//! - those no tail asked for within `CLAIM_WITHIN` are closed (`close_unclaimed`), with a log line.
//!
//! A descriptor only ever goes back to a tail of the path it was kept for, found by the identity
//! the position store holds for it: nothing here opens a file.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use crate::fingerprint::FileId;

/// The environment variable that carries the descriptors to the new process.
pub const ENV: &str = "LOGCATCH_INHERITED_FDS";
/// How long a handed-over descriptor waits for its tail (one whose source comes from an etcd key
/// starts once etcd answers).
pub const CLAIM_WITHIN: Duration = Duration::from_secs(600);
/// Descriptors handed over at most (the rest are let go, logged): each is a file's inode kept.
const MAX_HANDED: usize = 256;
/// Descriptors kept while stopping at most (one per file the tails had open).
const MAX_KEPT: usize = 16_384;

/// Set once the agent stops for a restart in place: tails then keep their deleted files.
static PREPARING: AtomicBool = AtomicBool::new(false);

/// A descriptor kept or adopted: the file, its identity, the path of the tail it is for, and the
/// name it was read under (its lines' `path` header).
struct Handed {
    file: File,
    id: FileId,
    path: String,
    name: PathBuf,
}

/// Kept for the next process (while stopping), or adopted from the last one (after the start).
static HANDED: Mutex<Vec<Handed>> = Mutex::new(Vec::new());

fn handed() -> std::sync::MutexGuard<'static, Vec<Handed>> {
    // Every change is a push or a removal: a panic cannot leave it half-made.
    HANDED.lock().unwrap_or_else(|p| p.into_inner())
}

/// The agent is about to stop for a restart in place.
pub fn prepare() {
    PREPARING.store(true, Ordering::SeqCst);
}

/// Whether tails stopping now should keep their deleted files (`keep`).
pub fn preparing() -> bool {
    PREPARING.load(Ordering::SeqCst)
}

/// Keeps a descriptor of `file` (open by the tail of `path`, read as `name`), in case it has no
/// link left when the process is replaced. Nothing when not preparing a restart in place.
pub fn keep(file: &File, path: &str, name: &Path) {
    if !preparing() {
        return;
    }
    let Ok(meta) = file.metadata() else { return };
    let mut kept = handed();
    if kept.len() >= MAX_KEPT {
        return;
    }
    match file.try_clone() {
        Ok(file) => kept.push(Handed { file, id: FileId::of(&meta), path: path.to_string(), name: name.to_path_buf() }),
        Err(e) => log::warn!("{path}: {} cannot be kept for the restart in place ({e})", name.display()),
    }
}

/// Just before `exec`: leaves the kept descriptors of files with no link left open across it
/// and says which they are (the value of `ENV`); None when there are none. A file still linked
/// is found again by its name.
pub fn exec_env() -> Option<String> {
    let kept = handed();
    let mut parts = Vec::new();
    for h in kept.iter().filter(|h| h.file.metadata().is_ok_and(|m| m.nlink() == 0)) {
        if parts.len() >= MAX_HANDED {
            log::warn!(
                "{}: more than {MAX_HANDED} deleted files held open; {} is not handed over",
                h.path,
                h.name.display()
            );
            continue;
        }
        let fd = h.file.as_raw_fd();
        // SAFETY: fcntl on a descriptor this process owns (held by `h.file` until the exec
        // replaces the process), changing only its close-on-exec flag.
        if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == 0 {
            let (path, name) = (hex(h.path.as_bytes()), hex(h.name.as_os_str().as_bytes()));
            parts.push(format!("{fd}:{}:{}:{path}:{name}", h.id.dev, h.id.ino));
        }
    }
    (!parts.is_empty()).then(|| parts.join(","))
}

/// At the start: takes back the descriptors the last process handed over (`value`: `ENV`'s).
/// One whose number does not name a file of that identity any more is left alone. Returns how
/// many were adopted.
pub fn adopt(value: &str) -> usize {
    let mut adopted = handed();
    for part in value.split(',') {
        let Some((fd, id, path, name)) = parse(part) else {
            log::warn!("{ENV}: {part:?} is not a handed-over descriptor; ignored");
            continue;
        };
        if adopted.iter().any(|h| h.file.as_raw_fd() == fd) {
            log::warn!("{ENV}: descriptor {fd} is named twice; ignored the second time");
            continue;
        }
        // SAFETY: libc::stat is plain old data (all zeroes is a value of it), and fstat writes
        // into this one of our own; a number that is not an open descriptor fails.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        if unsafe { libc::fstat(fd, &mut st) } != 0 || st.st_dev != id.dev || st.st_ino != id.ino {
            log::warn!("{ENV}: descriptor {fd} is not the file handed over for {path}; ignored");
            continue;
        }
        // SAFETY: the descriptor was left open across exec for this process by the last one,
        // and nothing else in this process knows its number: it is owned from here on.
        let file = unsafe { File::from_raw_fd(fd) };
        // SAFETY: fcntl on the descriptor just taken, setting its close-on-exec flag back.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        log::info!("{path}: a deleted file held open before the restart in place is kept (inode {})", id.ino);
        adopted.push(Handed { file, id, path, name });
    }
    adopted.len()
}

/// The handed-over file of identity `id` kept for the tail of `path`, and the name it was read
/// under, if any (given once).
pub fn take(path: &str, id: FileId) -> Option<(PathBuf, File)> {
    let mut all = handed();
    let i = all.iter().position(|h| h.id == id && h.path == path)?;
    let h = all.swap_remove(i);
    Some((h.name, h.file))
}

/// Closes the handed-over files no tail took (their path is no longer tailed, or its position
/// moved past them); logs each.
pub fn close_unclaimed() {
    for h in handed().drain(..) {
        log::warn!(
            "{}: a deleted file handed over at the restart in place (inode {}) was not claimed by a tail within {:?}; closed",
            h.path,
            h.id.ino,
            CLAIM_WITHIN
        );
    }
}

/// One descriptor of `ENV`'s value: `fd:dev:ino:path:name`, the two names in hex.
fn parse(part: &str) -> Option<(i32, FileId, String, PathBuf)> {
    let mut it = part.split(':');
    let fd: i32 = it.next()?.parse().ok()?;
    let dev: u64 = it.next()?.parse().ok()?;
    let ino: u64 = it.next()?.parse().ok()?;
    let path = String::from_utf8(unhex(it.next()?)?).ok()?;
    let name = PathBuf::from(std::ffi::OsStr::from_bytes(&unhex(it.next()?)?));
    (fd > 2 && it.next().is_none()).then_some((fd, FileId { dev, ino }, path, name))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_names_descriptors_and_their_paths() {
        let path = "/var/log/app, the one:with colons.log";
        let v = format!("7:12:34:{}:{}", hex(path.as_bytes()), hex(b"/var/log/x.1"));
        let want = (7, FileId { dev: 12, ino: 34 }, path.to_string(), PathBuf::from("/var/log/x.1"));
        assert_eq!(parse(&v), Some(want));
        for bad in ["", "x:1:2:61:61", "7:1:2:6:61", "7:1:2:zz:61", "2:1:2:61:61", "7:1", "7:1:2:61", "7:1:2:61:61:61"]
        {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    /// Across a fork and exec the kernel does the handing; here the same process: a deleted file
    /// kept while preparing is adopted back from the value and given only to its own path.
    #[test]
    fn a_deleted_file_is_kept_handed_over_and_taken_once_by_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gone.log");
        std::fs::write(&p, b"unread\n").unwrap();
        let file = File::open(&p).unwrap();
        let other = dir.path().join("kept.log");
        std::fs::write(&other, b"x\n").unwrap();
        let linked = File::open(&other).unwrap();
        keep(&file, "/l/a.log", &p); // not preparing: nothing kept
        assert!(exec_env().is_none());
        prepare();
        keep(&file, "/l/a.log", &p);
        keep(&linked, "/l/a.log", &other);
        std::fs::remove_file(&p).unwrap(); // deleted after the tail let go, before the exec
        let value = exec_env().expect("one handed over");
        assert_eq!(value.split(',').count(), 1, "the file still linked is found by its name: {value}");
        let id = FileId::of(&file.metadata().unwrap());
        // What the new process does with it (here: the same descriptors, already ours).
        let kept: Vec<Handed> = handed().drain(..).collect();
        for h in kept {
            if h.file.metadata().unwrap().nlink() == 0 {
                std::mem::forget(h.file); // ownership passes to `adopt`
            }
        }
        assert_eq!(adopt(&value), 1);
        assert!(take("/l/other.log", id).is_none(), "only its own path");
        let (name, mut back) = take("/l/a.log", id).expect("taken back");
        assert_eq!(name, p);
        assert!(take("/l/a.log", id).is_none(), "once");
        let mut text = String::new();
        std::io::Read::read_to_string(&mut back, &mut text).unwrap();
        assert_eq!(text, "unread\n");
        PREPARING.store(false, Ordering::SeqCst);
    }
}
