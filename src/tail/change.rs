//! What happened to the file a tail reads, decided from what was observed, without I/O.
//!
//! Exists so the rules for rotation, truncation and removal live in one pure function with a
//! table of tests, instead of inside the tail's loop beside what it does about them. The tail
//! asks when its current file is at its end; it then acts on the answer (drain the old file,
//! find the copy, wait for a new file...).

use std::io;

use crate::fingerprint::FileId;

/// What the tail observed: the identity the path names now (or why it could not be had), the
/// identity of the file it reads, that file's size, how far it has read, and whether the size
/// moved since the last look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub path: Result<FileId, io::ErrorKind>,
    pub reading: FileId,
    pub size: u64,
    pub read_offset: u64,
    pub size_changed: bool,
}

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Nothing the tail must act on (the file may have grown: the next read takes it).
    Unchanged,
    /// The path names another file now (renamed away and replaced): drain the old one.
    Rotated,
    /// The same file holds less than was read (`rewritten`: or other first bytes, at a size that
    /// moved): copytruncate, or a rewrite in place. Read it again from the start.
    Truncated { rewritten: bool },
    /// The path names nothing: the file was removed or renamed away, and no new one is there yet.
    Vanished,
    /// The path cannot be looked at (permissions, I/O error): report it, keep the reader.
    Unreadable(io::ErrorKind),
}

/// Classifies `o`. `same_start` reads the file's first bytes and compares them with those that
/// were read; it is asked only when the answer matters (the size moved, the file is no shorter),
/// because it costs a read.
pub fn classify(o: Observed, same_start: impl FnOnce() -> bool) -> Change {
    match o.path {
        Err(io::ErrorKind::NotFound) => Change::Vanished,
        // The file read is open: whether it was cut is known from it, whatever the path says. A
        // directory shut (mode 000) while copytruncate cut the file must not leave the cut
        // unseen: the file's new content would be read from the old offset, and once its rename
        // and compression are seen, again from the start, as a generation nobody read.
        Err(kind) => cut(&o, same_start).unwrap_or(Change::Unreadable(kind)),
        Ok(id) if id != o.reading => Change::Rotated,
        Ok(_) => cut(&o, same_start).unwrap_or(Change::Unchanged),
    }
}

/// Whether the file read holds less than was read of it, or other first bytes.
fn cut(o: &Observed, same_start: impl FnOnce() -> bool) -> Option<Change> {
    if o.size < o.read_offset {
        Some(Change::Truncated { rewritten: false })
    } else if o.size_changed && !same_start() {
        Some(Change::Truncated { rewritten: true })
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: FileId = FileId { dev: 1, ino: 10 };
    const B: FileId = FileId { dev: 1, ino: 11 };

    fn obs(path: Result<FileId, io::ErrorKind>, size: u64, read_offset: u64, size_changed: bool) -> Observed {
        Observed { path, reading: A, size, read_offset, size_changed }
    }

    #[test]
    fn every_case_in_one_table() {
        let cases: [(Observed, bool, Change); 11] = [
            (obs(Ok(A), 100, 100, false), true, Change::Unchanged),
            (obs(Ok(A), 150, 100, true), true, Change::Unchanged),
            (obs(Ok(B), 150, 100, true), true, Change::Rotated),
            (obs(Ok(B), 0, 100, false), false, Change::Rotated),
            (obs(Ok(A), 10, 100, true), true, Change::Truncated { rewritten: false }),
            (obs(Ok(A), 0, 100, true), false, Change::Truncated { rewritten: false }),
            (obs(Ok(A), 150, 100, true), false, Change::Truncated { rewritten: true }),
            (obs(Err(io::ErrorKind::NotFound), 100, 100, false), true, Change::Vanished),
            (
                obs(Err(io::ErrorKind::PermissionDenied), 100, 100, false),
                true,
                Change::Unreadable(io::ErrorKind::PermissionDenied),
            ),
            // Cut while its directory could not be looked in: the cut is seen through the file.
            (obs(Err(io::ErrorKind::PermissionDenied), 10, 100, true), true, Change::Truncated { rewritten: false }),
            (obs(Err(io::ErrorKind::PermissionDenied), 150, 100, true), false, Change::Truncated { rewritten: true }),
        ];
        for (o, same, want) in cases {
            assert_eq!(classify(o, || same), want, "{o:?}, same start {same}");
        }
    }

    #[test]
    fn the_first_bytes_are_read_only_when_the_answer_depends_on_them() {
        let unread = |o: Observed| classify(o, || panic!("read the file's start needlessly for {o:?}"));
        unread(obs(Ok(A), 100, 100, false)); // size did not move
        unread(obs(Ok(B), 150, 100, true)); // another file
        unread(obs(Ok(A), 10, 100, true)); // shorter than read
        unread(obs(Err(io::ErrorKind::NotFound), 0, 0, true));
    }
}
