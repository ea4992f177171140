//! How a tail opens the files of its path and where it reads them from.
//!
//! Exists to keep opening and resuming apart from the tail's state machine. `plan_start` decides
//! where a tail starts when it (re)opens its path (which earlier files to drain first and from
//! where, where a file never seen starts, since when to look for rotated generations nobody read)
//! as one pure function of one answer of the position store (`Checkpoints::lineage`) and of what
//! is on disk, seen through `Probe`: table-tested without a disk. The `Opener` does the I/O: the
//! confined open of the path (`open_path`), the store's and the claims' answer for it (`start`:
//! `resume::plan` decides), a copytruncate copy (`copy`), unseen generations (`unseen`); it hands
//! back readers, or why there are none (`NotOpen`), and the tail's state machine decides what
//! they become.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::generation::{head_begins_with, Generation};
use super::reader::{Lane, Reader};
use super::resume::{self, Resume};
use super::TailCtx;
use crate::ack::AckTracker;
use crate::budget::{out_of_descriptors, Permit};
use crate::checkpoint::{Known, Lineage, Past};
use crate::config::StartPosition;
use crate::confine::{self, OpenError};
use crate::desired::TailSpec;
use crate::fingerprint::{find_by_id, rotated_siblings, FileId, Fingerprint, Probe};

/// What to do before and around reading the file at the path.
#[derive(Debug, PartialEq, Eq)]
pub struct StartPlan {
    /// Earlier files to drain first: (index in `Lineage::past`, offset to read from).
    pub drains: Vec<(usize, u64)>,
    /// Where the file at the path starts if the store never saw it.
    pub unknown: u64,
    /// Look for rotated generations written since (unix seconds) that nobody read.
    pub adopt_since: Option<u64>,
}

/// `found[i]`: the file of `lineage.past[i]`, found by its identity at the path or a rotated
/// name, if it still exists. `current_size`: the file at the path now. `from_start`: the file is
/// new since its glob was first scanned.
pub fn plan_start(
    lineage: &Lineage,
    found: &[Option<&dyn Probe>],
    current_size: Option<u64>,
    from_start: bool,
    start: StartPosition,
) -> StartPlan {
    let drains = lineage
        .past
        .iter()
        .zip(found)
        .enumerate()
        .filter_map(|(i, (past, file))| {
            // A file recorded while empty is not told apart from an inode's next file: skipped.
            let file = (*file).filter(|f| f.identified_by(&past.fp))?;
            // The same bytes read further under the file it was copied from (checked where they
            // end: a file that only begins the same, a banner, goes on from its own position).
            let further = past.further.iter().filter(|(at, near)| {
                past.tracker.is_none() && *at > past.offset && near.len > 0 && file.holds_before(*at, near)
            });
            let from = further.map(|(at, _)| *at).max().unwrap_or(past.offset);
            file.holds_more_than(from).then_some((i, from))
        })
        .collect();
    let unknown = match (lineage.had_history || from_start, start) {
        (true, _) | (false, StartPosition::Beginning) => 0,
        (false, StartPosition::End) => current_size.unwrap_or(0),
    };
    StartPlan { drains, unknown, adopt_since: lineage.last_update }
}

/// Why the file at the path is not open now.
pub(super) enum NotOpen {
    /// It does not exist (yet): nothing to say.
    Missing,
    /// Every descriptor of `max_open_files` is taken: the tail waits its turn.
    NoDescriptor(String),
    /// Another tail reads it (a rotated file the same glob matches): the tail waits.
    Claimed(String),
    /// It cannot be read now, or may not be (refused by its source's rules): said once.
    Problem(String),
}

/// The file at the path, opened and not yet read.
pub(super) struct Opened {
    file: File,
    pub id: FileId,
    pub size: u64,
    permit: Permit,
}

/// Readers on the file at the path, from where the store says.
pub(super) struct Started {
    pub current: Reader,
    /// It no longer holds what was read of it: the copy of its old content beside it (left by
    /// copytruncate), to drain first from where that reading got to.
    pub copy: Option<Reader>,
}

/// Unseen generations (`Opener::unseen`): readers on those opened, and how many wait for a
/// descriptor.
pub(super) struct Unseen {
    pub readers: Vec<Reader>,
    pub left: usize,
}

/// A tail's opener: opens the files of its path confined, asks the store and the claims where to
/// read them from, and hands back readers. It changes nothing of the tail's state: the tail
/// decides what each reader becomes (current, draining) and what a refusal means (waiting).
pub(super) struct Opener<'a> {
    pub ctx: &'a TailCtx,
    pub spec: &'a TailSpec,
    pub lane: &'a Lane,
    pub owner: u64,
}

impl Opener<'_> {
    /// Opens a reader on `file` at `offset`, registering its tracker with the checkpointer
    /// (which claims the file for this tail). None when another tail has the file open.
    pub(super) fn reader(
        &self,
        generation: Generation,
        opened_as: PathBuf,
        offset: u64,
        tracker: Option<Arc<AckTracker>>,
        permit: Permit,
    ) -> Option<Reader> {
        let (file, decoded) = generation.into_parts();
        let id = FileId::of(&file.metadata().expect("fstat of an open file"));
        let fp = match &decoded {
            Some(d) => d.fingerprint(),
            None => Fingerprint::of_file(&file).unwrap_or_default(),
        };
        let tracker = tracker.unwrap_or_else(|| Arc::new(AckTracker::new(offset)));
        let claim = self.ctx.claims.claim(&self.lane.topic, id, self.owner).ok()?;
        self.ctx.checkpoints.track(&self.spec.topic, id, &self.lane.path_text, fp, tracker.clone());
        Some(Reader::new(file, id, fp, tracker, decoded, opened_as, offset, permit, claim))
    }

    /// Readers on the opened file at the path, from where the store says (`resume::plan`
    /// decides; `unknown` is where a file never seen starts). A file that was truncated or
    /// replaced since it was read is read from 0, after the unread end of its old content if a
    /// copy of it lies next to it (not one of `busy`, the files the tail reads already).
    pub(super) fn start(&self, opened: Opened, unknown: u64, busy: &[FileId]) -> Result<Started, NotOpen> {
        let Opened { file, id, size, permit } = opened;
        let (offset, tracker, old) = match self.resume(&file, id, size, unknown) {
            Resume::Wait { owner } => {
                return Err(NotOpen::Claimed(format!(
                    "tail {}: the file (inode {}) is being read by tail #{owner} (a rotated file the same glob \
                     matches); waiting until that tail is done with it",
                    self.spec, id.ino
                )))
            }
            Resume::At { offset, tracker } => (offset, tracker, None),
            Resume::Replaced { fp, offset, tracker } => {
                log::info!(
                    "{}: the file no longer holds what was read up to offset {offset} (truncated or replaced); \
                     reading it from the start",
                    self.lane.path_text
                );
                (0, None, Some((fp, offset, tracker.filter(|t| t.sent() == offset))))
            }
        };
        // The file at the path is read as it is, compressed or not: only rotated generations are
        // decompressed.
        let Some(current) = self.reader(Generation::Plain(file), self.spec.path.clone(), offset, tracker, permit)
        else {
            return Err(NotOpen::Claimed(format!("tail {}: the file was claimed by another tail", self.spec)));
        };
        let copy = old.and_then(|(fp, offset, tracker)| self.copy(fp, offset, id, busy, tracker));
        Ok(Started { current, copy })
    }

    /// What the claims (another tail that reads it now) and the store know of `file`, found at
    /// `at`: the two questions asked of every file a tail opens.
    fn ask(&self, at: &Path, id: FileId, file: &dyn Probe, size: u64) -> (Option<u64>, Known) {
        let holder = self.ctx.claims.holder(&self.spec.topic, id).filter(|&h| h != self.owner);
        (holder, self.ctx.checkpoints.position(&self.spec.topic, at, id, file, size))
    }

    /// Where the claims and the store say the file at the path is read from.
    fn resume(&self, file: &File, id: FileId, size: u64, unknown: u64) -> Resume {
        let (holder, known) = self.ask(&self.spec.path, id, file, size);
        if let Known::CopyOf { offset, .. } = known {
            log::info!(
                "tail {}: the file begins as a file already read beside it (a copy left by copytruncate); \
                 starting at offset {offset}, where that reading got to",
                self.spec
            );
        }
        resume::plan(holder, known, size, unknown)
    }

    /// Opens the tail's path for reading, with a permit of the open-file budget. `Err` says why
    /// not: the file does not exist (yet), is not a regular file, or cannot be opened now.
    pub(super) fn open_path(&self) -> Result<Opened, NotOpen> {
        let Some(permit) = self.ctx.files.try_acquire() else {
            if std::fs::symlink_metadata(&self.spec.path).is_ok() {
                return Err(NotOpen::NoDescriptor(format!(
                    "tail {}: waiting for a file descriptor (max_open_files reached)",
                    self.spec
                )));
            }
            return Err(NotOpen::Missing);
        };
        // Confined (`confine`): beneath the source's root, no symlink it may not follow. Never
        // blocks: a FIFO named as a log path is refused as not a regular file (it blocked open()
        // until a writer came, and shutdown waited for the stuck tail).
        let file = match confine::open(&self.spec.path, &self.spec.access) {
            Ok(f) => f,
            Err(OpenError::NotFound) => return Err(NotOpen::Missing),
            Err(OpenError::NotRegular) => {
                return Err(NotOpen::Problem(format!("{}: not a regular file; waiting for one", self.lane.path_text)));
            }
            Err(e) if e.is_refusal() => {
                return Err(NotOpen::Problem(format!(
                    "{}: {e}; waiting for a file that may be read",
                    self.lane.path_text
                )));
            }
            Err(OpenError::Io(e)) if out_of_descriptors(&e) => {
                return Err(NotOpen::Problem(format!(
                    "{}: cannot open: {e} (ulimit -n is {}); lower max_open_files or close_inactive; retrying",
                    self.lane.path_text,
                    crate::budget::descriptor_limit()
                )));
            }
            Err(e) => {
                return Err(NotOpen::Problem(format!("{}: cannot open: {e}; retrying", self.lane.path_text)));
            }
        };
        match file.metadata() {
            Ok(meta) => Ok(Opened { id: FileId::of(&meta), size: meta.len(), file, permit }),
            Err(e) => Err(NotOpen::Problem(format!("{}: cannot stat: {e}; retrying", self.lane.path_text))),
        }
    }

    /// After a truncation: finds the copy of the old content (a sibling that begins with the same
    /// bytes and is at least `offset` long, not in `busy`) and a reader on it from `offset`. The copy
    /// holds the same bytes at the same offsets, so a running reader's `tracker` carries over:
    /// lines of the old content still in flight are checkpointed against the copy.
    pub(super) fn copy(
        &self,
        fp: Fingerprint,
        offset: u64,
        not: FileId,
        busy: &[FileId],
        tracker: Option<Arc<AckTracker>>,
    ) -> Option<Reader> {
        // (Nothing read yet, offset 0, still means a copy to read: all of it.)
        if fp.len == 0 {
            return None;
        }
        for path in rotated_siblings(&self.spec.path) {
            let Ok(file) = confine::open(&path, &self.spec.access) else { continue };
            let Ok(meta) = file.metadata() else { continue };
            let id = FileId::of(&meta);
            if id == not || busy.contains(&id) {
                continue;
            }
            // The copy may have been compressed since (copytruncate with `compress`).
            let Some(generation) = Generation::of(file) else { continue };
            if generation.size() < offset
                || self.ctx.checkpoints.is_known(&self.spec.topic, id, &generation)
                || !generation.begins_with(&fp)
            {
                continue;
            }
            log::info!(
                "{}: {} holds the old content; reading it on from offset {offset} first",
                self.lane.path_text,
                path.display(),
            );
            let permit = self.ctx.files.acquire_anyway();
            let Some(r) = self.reader(generation, path, offset, tracker.clone(), permit) else {
                continue; // another tail reads the copy (a glob matches it too)
            };
            return Some(r);
        }
        None
    }

    /// Reads rotated files next to the path that were never read and were written since `since`
    /// (unix seconds), not in `busy`: generations that rotated by while the agent was down or
    /// behind, compressed since or not (`generation`). Known files with nothing left and older
    /// ones are left alone. One that is a copy of content already read (copytruncate's, or
    /// logrotate's `compress` of a generation read before, found by its first bytes) is read from
    /// where that reading got to, not whole (which would send it all again). A compressed copy of
    /// a file still being read is left to that reading.
    ///
    /// Oldest first (by last write). Each reader takes a permit of the open-file budget; with
    /// `one_anyway`, the first one may go over it. Generations with none left are counted in
    /// `Unseen::left`, not opened.
    pub(super) fn unseen(&self, since: u64, busy: &[FileId], one_anyway: bool) -> Unseen {
        let mut out = Unseen { readers: Vec::new(), left: 0 };
        for (path, id) in self.rotated_since(since, busy) {
            if out.readers.iter().any(|r| r.id == id) {
                continue;
            }
            let Some(file) = self.open_again(&path, id) else { continue };
            let Some(generation) = Generation::of(file) else {
                log::debug!("{}: {} cannot be decompressed (yet); left alone", self.lane.path_text, path.display());
                continue;
            };
            // Asked like the current file: a generation read before goes on where its reading
            // stopped (a closed tracker carries on), a copy of read content from where that
            // reading got to, one cut and renamed (its old content remembered for its copy) and
            // one never seen from 0. One with nothing left, or another tail's, is left alone.
            let size = generation.size();
            let (holder, known) = self.ask(&path, id, &generation, size);
            let copy = matches!(known, Known::CopyOf { .. });
            if generation.is_compressed() && matches!(&known, Known::CopyOf { tracker: Some(t), .. } if !t.is_closed())
            {
                continue; // its original is open and being read
            }
            let (from, tracker) = match resume::plan(holder, known, size, 0) {
                Resume::Wait { .. } => continue, // another tail's (a glob matches it too)
                Resume::At { offset, .. } if !generation.holds_more_than(offset) => {
                    if copy {
                        log::info!(
                            "{}: {} is a copy of what was already read ({offset} bytes); nothing in it to send",
                            self.lane.path_text,
                            path.display(),
                        );
                    }
                    continue;
                }
                Resume::At { offset, tracker } => (offset, tracker),
                Resume::Replaced { .. } => (0, None),
            };
            let permit = match self.ctx.files.try_acquire() {
                Some(permit) => permit,
                None if one_anyway && out.readers.is_empty() => self.ctx.files.acquire_anyway(),
                None => {
                    out.left += 1;
                    continue;
                }
            };
            self.say_adopted(&path, &generation, from);
            if let Some(r) = self.reader(generation, path, from, tracker, permit) {
                out.readers.push(r);
            }
        }
        if out.left > 0 {
            log::warn!(
                "{}: {} unread rotated generation(s) wait for a file descriptor (max_open_files);                  they are read, oldest first, as the open ones are done",
                self.lane.path_text,
                out.left
            );
        }
        out
    }

    /// The regular files named as rotated generations of the path, written since `since` (unix
    /// seconds), not in `busy`, oldest first: their names and identities. Each is opened (confined)
    /// to be asked, and closed: a directory may hold more generations (or planted files) than the
    /// process may have descriptors, and holding them all made the opens past the limit fail, and
    /// those generations go unread.
    fn rotated_since(&self, since: u64, busy: &[FileId]) -> Vec<(PathBuf, FileId)> {
        let mut found = Vec::new();
        for path in rotated_siblings(&self.spec.path) {
            let Ok(meta) = confine::open(&path, &self.spec.access).and_then(|f| f.metadata().map_err(OpenError::Io))
            else {
                continue;
            };
            // logrotate gives a compressed generation the mtime of the file it compressed.
            let mtime = meta.mtime().max(0) as u64;
            if meta.is_file() && mtime + 1 >= since && !busy.contains(&FileId::of(&meta)) {
                found.push(((meta.mtime(), meta.mtime_nsec()), path, FileId::of(&meta)));
            }
        }
        found.sort_by_key(|(mtime, _, _)| *mtime);
        found.into_iter().map(|(_, path, id)| (path, id)).collect()
    }

    /// Opens `path` again (confined), if it still names the file `id`.
    fn open_again(&self, path: &Path, id: FileId) -> Option<File> {
        let file = confine::open(path, &self.spec.access).ok()?;
        (FileId::of(&file.metadata().ok()?) == id).then_some(file)
    }

    /// Logs why an unseen generation is read, and from where.
    fn say_adopted(&self, path: &Path, generation: &Generation, from: u64) {
        let what = match generation {
            Generation::Compressed(_, d) => format!("{}-compressed ", d.codec().name()),
            Generation::Plain(_) => String::new(),
        };
        let (path, tail) = (path.display(), &self.lane.path_text);
        if from == 0 {
            log::info!(
                "{tail}: {path} ({what}generation) was rotated by unread while logcatch was down or behind; reading all of it"
            );
        } else {
            log::info!(
                "{tail}: {path} ({what}generation) was read up to offset {from} (or is a copy of a file that was); reading on from there"
            );
        }
    }

    /// The files of `past` (earlier files under the path, from the store), where they are now: by
    /// identity at the path or a rotated name, or, for one gone, a compressed generation that
    /// begins with its first bytes (logrotate's `compress` made a new file of it). None for one
    /// found nowhere.
    pub(super) fn find_past(&self, past: &[Past]) -> Vec<Option<(PathBuf, Generation)>> {
        let mut compressed: Option<Vec<Compressed>> = None;
        // A compressed file that is itself a past entry's file (its own reading recorded) is not
        // taken for the copy of another entry's content: that reading went on from where the
        // other's stopped, further (the exactly_once soak read a `.gz` renamed `.backup` by
        // logrotate from the older position: 326 lines twice).
        let known: Vec<FileId> = past.iter().map(|p| p.id).collect();
        past.iter()
            .map(|p| {
                if let Some((path, file)) = find_by_id(&self.spec.path, &self.spec.access, p.id) {
                    return Generation::of(file).map(|g| (path, g));
                }
                if let Some((name, file)) = crate::inherit::take(&self.lane.path_text, p.id) {
                    log::info!(
                        "{}: {} (deleted) was handed over by the restart in place; reading it on",
                        self.lane.path_text,
                        name.display()
                    );
                    return Generation::of(file).map(|g| (name, g));
                }
                if p.fp.len == 0 {
                    return None;
                }
                // Listed (and their first bytes decompressed) once, when a file is missing.
                let candidates = compressed.get_or_insert_with(|| {
                    let mut all = self.compressed_siblings();
                    all.retain(|c| !known.contains(&c.id));
                    all
                });
                let i = candidates.iter().position(|c| head_begins_with(&c.head, &p.fp))?;
                let Compressed { path, id, .. } = candidates.swap_remove(i);
                let generation = Generation::of(self.open_again(&path, id)?)?;
                log::info!(
                    "{}: {} is the {} of a file read up to offset {} before it was compressed",
                    self.lane.path_text,
                    path.display(),
                    match &generation {
                        Generation::Compressed(_, d) => d.codec().name(),
                        Generation::Plain(_) => "copy",
                    },
                    p.offset
                );
                Some((path, generation))
            })
            .collect()
    }

    /// The compressed generations beside the path: each opened, its first bytes decompressed,
    /// and closed (kept open, a directory of thousands ran the process out of descriptors).
    fn compressed_siblings(&self) -> Vec<Compressed> {
        rotated_siblings(&self.spec.path)
            .into_iter()
            .filter_map(|path| {
                let file = confine::open(&path, &self.spec.access).ok()?;
                // One pread tells a plain sibling (most of them) apart; only a compressed one is
                // decompressed and asked its identity.
                let Generation::Compressed(file, decoded) = Generation::of(file)? else { return None };
                let id = FileId::of(&file.metadata().ok()?);
                Some(Compressed { path, id, head: decoded.head().to_vec() })
            })
            .collect()
    }
}

/// A compressed generation beside the path, as `find_past` compares it with past files.
struct Compressed {
    path: PathBuf,
    id: FileId,
    /// Its first decompressed bytes.
    head: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::{FileId, Fingerprint};

    /// A file as a table row: its size and the fingerprints it matches.
    struct Row {
        size: u64,
        matches: Vec<Fingerprint>,
    }
    impl Probe for Row {
        fn size(&self) -> u64 {
            self.size
        }
        fn begins_with(&self, fp: &Fingerprint) -> bool {
            fp.len == 0 || self.matches.contains(fp)
        }
        fn holds_before(&self, _offset: u64, near: &Fingerprint) -> bool {
            near.len == 0 || self.matches.contains(near)
        }
    }

    fn past(ino: u64, fp: Fingerprint, offset: u64) -> Past {
        Past::new(FileId { dev: 1, ino }, fp, offset)
    }

    #[test]
    fn every_case_of_a_start() {
        let (a, b, c) =
            (Fingerprint { len: 8, hash: 1 }, Fingerprint { len: 8, hash: 2 }, Fingerprint { len: 8, hash: 3 });
        let mut lineage = Lineage {
            had_history: true,
            last_update: Some(1000),
            past: vec![past(1, a, 50), past(2, b, 80), past(3, c, 10), past(4, Fingerprint::default(), 0)],
        };
        // 1: grew past its offset: drained. 2: read to its end. 3: another file on its inode
        // now. 4: recorded while empty: proves nothing. A fifth was not found at all.
        let rows = [
            Row { size: 90, matches: vec![a] },
            Row { size: 80, matches: vec![b] },
            Row { size: 99, matches: vec![] },
            Row { size: 40, matches: vec![Fingerprint::default()] },
        ];
        let found: Vec<Option<&dyn Probe>> = rows.iter().map(|r| Some(r as &dyn Probe)).collect();
        let plan = plan_start(&lineage, &found, Some(500), false, StartPosition::End);
        assert_eq!(plan, StartPlan { drains: vec![(0, 50)], unknown: 0, adopt_since: Some(1000) });
        // 1 again, a copy whose own position was saved behind its original's committed one: on
        // from there if it holds the same bytes before it, from its own if not (a banner).
        let (near, other) = (Fingerprint { len: 8, hash: 7 }, Fingerprint { len: 8, hash: 9 });
        let mut copy = lineage.past.remove(0);
        copy.further = vec![(70, near), (85, other)];
        let copied = Lineage { past: vec![copy], ..lineage };
        let holds = [Row { size: 90, matches: vec![a, near] }];
        let found: Vec<Option<&dyn Probe>> = holds.iter().map(|r| Some(r as &dyn Probe)).collect();
        assert_eq!(plan_start(&copied, &found, Some(500), false, StartPosition::End).drains, [(0, 70)]);
        let banner = [Row { size: 90, matches: vec![a] }];
        let found: Vec<Option<&dyn Probe>> = banner.iter().map(|r| Some(r as &dyn Probe)).collect();
        assert_eq!(plan_start(&copied, &found, Some(500), false, StartPosition::End).drains, [(0, 50)]);
        let lineage = Lineage { past: vec![past(1, a, 50), past(2, b, 80), past(3, c, 10)], ..copied };
        let gone: Vec<Option<&dyn Probe>> = vec![None; 4];
        assert!(plan_start(&lineage, &gone, None, false, StartPosition::End).drains.is_empty());
        // A path never seen: start_position decides, unless the file is new since its glob's
        // first scan.
        let fresh = Lineage { had_history: false, last_update: None, past: vec![] };
        assert_eq!(plan_start(&fresh, &[], Some(500), false, StartPosition::End).unknown, 500);
        assert_eq!(plan_start(&fresh, &[], Some(500), false, StartPosition::Beginning).unknown, 0);
        assert_eq!(plan_start(&fresh, &[], Some(500), true, StartPosition::End).unknown, 0);
        assert_eq!(plan_start(&fresh, &[], Some(500), true, StartPosition::End).adopt_since, None);
    }
}
