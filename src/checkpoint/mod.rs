//! The checkpointer: for each (file, topic), the offset up to which Kafka acknowledged every line.
//!
//! Exists so that a restart, a crash or a kill -9 resends at most what was in flight and loses
//! nothing. Live tails register an `AckTracker` per open file; `save` folds their acknowledged
//! offsets into the entries (`fold`), forgets old ones (`forget`), chooses what to write (a whole
//! snapshot, or journal lines: `plan_write`) and hands it to `store`, which owns the disk format
//! (atomic writes, checksums, the previous generation, replay). This module answers the tails'
//! questions about what was read before.
//!
//! Which tail reads a file now is not kept here but in `claims`.

mod store;

use store::{append, journal_line, load, replay, write_atomically, Gone, Key, Record};
pub use store::{Entry, StoreError, JOURNAL_FILE, STORE_FILE};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::ack::{AckTracker, Changes};
use crate::fingerprint::{files_by_id, is_rotated_name, FileId, Fingerprint, Probe};
use crate::statefile::{self, Mode};

/// Entries of files no tail has had open for this long are forgotten, unless the file is still
/// there beside its path: a generation renamed by logrotate lives on as `app.log.1` for a whole
/// rotation period (a week, weekly), and `delaycompress` then compresses it into a new file that
/// is recognised only by the entry (forgotten, all of it would be sent again).
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How often (seconds) saves look for entries to forget.
const FORGET_EVERY: u64 = 60;

/// What the store knows under one path for one topic (`Checkpoints::lineage`).
pub struct Lineage {
    /// Anything was recorded under the path for the topic: a file never seen there is read from
    /// its start, not from `start_position`.
    pub had_history: bool,
    /// Unix seconds of the last recorded progress under the path (a file of this process counts
    /// from when it was registered): generations rotated by since are looked for.
    pub last_update: Option<u64>,
    /// Files read before under the path and not open now, oldest first.
    pub past: Vec<Past>,
}

/// A file read earlier under a path, and where its reading got to.
pub struct Past {
    pub id: FileId,
    pub fp: Fingerprint,
    /// Where to go on reading it.
    pub offset: u64,
    /// Its tracker, when lines of it may still be in flight.
    pub tracker: Option<Arc<AckTracker>>,
    /// The same content read further under another identity, as (offset, fingerprint of the
    /// bytes just before it): the file a copy was made of. With exactly_once, a copy's own
    /// position is the one checkpoints.json saved, while its lines went on being committed under
    /// the original's (the torture test: 100 lines twice after a kill). Whether the file holds
    /// those bytes there is for the planner to check (`plan_start`).
    pub further: Vec<(u64, Fingerprint)>,
    /// When it was last saved (a live one counts as newest).
    updated: u64,
}

impl Past {
    /// A file read up to `offset`, known only from disk (no tracker): for planners' tests.
    #[cfg(test)]
    pub fn new(id: FileId, fp: Fingerprint, offset: u64) -> Past {
        Past { id, fp, offset, tracker: None, further: Vec::new(), updated: 0 }
    }
}

/// What is known about a file a tail is about to read.
#[derive(Debug)]
pub enum Known {
    /// A tracker from this process (a tail that restarted or was stopped and started again).
    Live(Arc<AckTracker>),
    /// A position saved on disk.
    Saved(u64),
    /// Never seen.
    Unknown,
    /// Never seen, but it begins like content read before under a name it extends (a copy left by
    /// copytruncate): that content was read up to `offset`. The copy goes on with the tracker of
    /// that reading when lines of it may be in flight (their acknowledgements cover the copy's
    /// bytes too; a new tracker would count them acknowledged at once, and a kill lose them).
    CopyOf { offset: u64, tracker: Option<Arc<AckTracker>> },
    /// Seen, but it no longer holds what was read: truncated (copytruncate) or its inode reused.
    /// `fp` and `offset` describe the content that was read, to find a copy of it.
    /// `tracker`: the reading's, when lines of it may be in flight (its copy carries it on).
    Replaced { fp: Fingerprint, offset: u64, tracker: Option<Arc<AckTracker>> },
}

struct Live {
    tracker: Arc<AckTracker>,
    path: String,
    fp: Fingerprint,
    /// (offset, fingerprint) last folded into the saved entry: an idle tracker is
    /// skipped without touching the entry (1,000 idle files, five saves a second).
    folded: Option<(u64, Fingerprint)>,
    /// Unix seconds when it was registered.
    since: u64,
}

impl Live {
    /// The entry of this live file (`key`: its topic and identity) at `offset`.
    fn entry(&self, key: &Key, offset: u64, near: Fingerprint, now: u64) -> Entry {
        Entry::new(&self.path, &key.0, key.1, self.fp, offset, near, now)
    }
}

/// Content that was read and then cut from its file (copytruncate) or found replaced: a copy of
/// it beside the file is read on from `offset`, however late the copy is looked at.
struct Replaced {
    topic: String,
    path: String,
    fp: Fingerprint,
    offset: u64,
    tracker: Option<Arc<AckTracker>>,
}

/// Replaced contents remembered, at most (the newest; one per copytruncate).
const REPLACED_KEPT: usize = 256;
/// Retired entries kept per path and topic, at most (the newest): one per rotation that freed an
/// inode another file took, or per copytruncate. Without a bound, a local user who writes a
/// log file, lets it be read and cuts it, again and again, would grow the store for a day.
const RETIRED_KEPT: usize = 16;

struct State {
    /// Unix seconds when the store was loaded (entries count as seen then, for forgetting).
    loaded_at: u64,
    replaced: std::collections::VecDeque<Replaced>,
    saved: BTreeMap<Key, Entry>,
    live: HashMap<Key, Live>,
    /// Entries set or removed since the last write, which the files on disk do not have yet.
    changed: BTreeSet<Key>,
    removed: BTreeSet<Key>,
    /// The snapshot's generation; journal records of another are from before it (ignored).
    generation: u64,
    /// Records in the journal since the snapshot.
    journaled: usize,
    /// The last journal write failed (perhaps half done): the next save writes a snapshot.
    journal_broken: bool,
    /// Unix seconds of the last look for entries to forget.
    forgot_at: u64,
    /// The store's count of changes when the live trackers were last walked; None when a live entry was
    /// added or its fingerprint grew since (the walk must look).
    walked: Option<u64>,
    /// `saved` and `live` by path: what a tail asks about a path (its history, a copy's
    /// original) is looked up, not scanned for (issue 15: with 10,000 files known, scanning for
    /// each file a tail opened made an agent take 6 s to ship 10 lines of each).
    saved_paths: PathIndex,
    live_paths: PathIndex,
}

/// Keys by the path of their entry, each path's sorted.
///
/// A path has one or two keys (its file, and one rotated away): a `Vec` sized to them, not a
/// `BTreeSet`, whose first node is eleven keys' room (460 bytes for one 40-byte key; two indexes
/// of it were 1 KiB of every idle tail's 10, jemalloc's heap profile of 1,000 parked files).
#[derive(Default)]
struct PathIndex(HashMap<String, Vec<Key>>);

impl PathIndex {
    fn add(&mut self, path: &str, key: &Key) {
        let keys = self.0.entry(path.to_string()).or_insert_with(|| Vec::with_capacity(1));
        if let Err(at) = keys.binary_search(key) {
            keys.insert(at, key.clone());
        }
    }
    fn drop_key(&mut self, path: &str, key: &Key) {
        if let Some(keys) = self.0.get_mut(path) {
            if let Ok(at) = keys.binary_search(key) {
                keys.remove(at);
            }
            if keys.is_empty() {
                self.0.remove(path);
            }
        }
    }
    fn keys(&self, path: &str) -> impl Iterator<Item = &Key> {
        self.0.get(path).into_iter().flatten()
    }
}

impl State {
    fn set(&mut self, key: Key, entry: Entry) {
        self.removed.remove(&key);
        self.changed.insert(key.clone());
        self.saved_paths.add(&entry.path, &key);
        if let Some(old) = self.saved.insert(key.clone(), entry) {
            if old.path != self.saved[&key].path {
                self.saved_paths.drop_key(&old.path, &key);
            }
        }
    }
    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.saved.remove(key) {
            self.saved_paths.drop_key(&old.path, key);
            self.changed.remove(key);
            self.removed.insert(key.clone());
        }
    }
    /// Moves what is known under `key` (its saved entry, its live tracker) to the key's retired
    /// identity (`Entry::retired`): another file took the inode.
    fn retire(&mut self, key: &Key) {
        let live = self.live.get(key).map(|l| (l.path.clone(), l.fp));
        let Some((path, fp)) = live.or_else(|| self.saved.get(key).map(|e| (e.path.clone(), e.fingerprint()))) else {
            return;
        };
        let retired = (key.0.clone(), Entry::retired(key.1, &path, fp));
        if let Some(e) = self.saved.get(key).cloned() {
            self.remove(key);
            self.set_retired(&retired, e);
        }
        if let Some(mut l) = self.remove_live(key) {
            l.folded = None; // its entry is folded afresh under the retired key
            self.set_live(retired, l);
        }
        self.bound_retired(&key.0, &path);
    }

    /// Saves `e`, a position read under another identity, under `retired` (`Entry::retired`).
    fn set_retired(&mut self, retired: &Key, mut e: Entry) {
        (e.dev, e.ino) = (retired.1.dev, retired.1.ino);
        self.set(retired.clone(), e);
    }

    /// Drops the oldest retired entries of `path` for `topic` beyond `RETIRED_KEPT` (those with
    /// no live tracker: lines of them may still be in flight).
    fn bound_retired(&mut self, topic: &str, path: &str) {
        let mut retired: Vec<(u64, Key)> = self
            .saved_paths
            .keys(path)
            .filter(|k| k.0 == topic && !self.live.contains_key(*k))
            .filter_map(|k| self.saved.get(k).filter(|e| e.is_retired()).map(|e| (e.updated, k.clone())))
            .collect();
        if retired.len() > RETIRED_KEPT {
            retired.sort();
            for (_, key) in &retired[..retired.len() - RETIRED_KEPT] {
                self.remove(key);
            }
        }
    }

    fn set_live(&mut self, key: Key, live: Live) {
        self.walked = None;
        self.live_paths.add(&live.path, &key);
        if let Some(old) = self.live.insert(key.clone(), live) {
            if old.path != self.live[&key].path {
                self.live_paths.drop_key(&old.path, &key);
            }
        }
    }
    fn remove_live(&mut self, key: &Key) -> Option<Live> {
        let old = self.live.remove(key)?;
        self.live_paths.drop_key(&old.path, key);
        Some(old)
    }
    fn dirty(&self) -> bool {
        !self.changed.is_empty() || !self.removed.is_empty()
    }
}

pub struct Checkpoints {
    file: PathBuf,
    /// The changes since the snapshot in `file` (see `save`).
    journal: PathBuf,
    /// `SNAPSHOT_BELOW`, or another bound in tests (`with_snapshot_below`).
    snapshot_below: usize,
    state: Mutex<State>,
    /// Held for a whole save, so two savers (the thread, and shutdown) never share the temp file.
    writing: Mutex<()>,
    /// Bumped by the live trackers whenever what they would save may have changed; its bell
    /// wakes the checkpointer, rung by them and by every change to `state` (`Locked`).
    changes: Arc<Changes>,
}

/// The store's state, locked by a caller other than the saver: let go with something left to
/// write, it wakes the checkpointer. Every change goes through it, so none waits for the
/// checkpointer's idle look.
struct Locked<'a> {
    st: MutexGuard<'a, State>,
    changes: &'a Changes,
}

impl std::ops::Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.st
    }
}

impl std::ops::DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.st
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.st.dirty() {
            self.changes.wake();
        }
    }
}

impl State {
    fn note_replaced(
        &mut self,
        topic: &str,
        path: &str,
        fp: Fingerprint,
        offset: u64,
        tracker: Option<Arc<AckTracker>>,
    ) {
        if fp.len == 0 || offset == 0 {
            return; // nothing was read: a copy is read from its start anyway
        }
        if self.replaced.len() >= REPLACED_KEPT {
            self.replaced.pop_front();
        }
        self.replaced.push_back(Replaced { topic: topic.to_string(), path: path.to_string(), fp, offset, tracker });
    }
}

/// `Past::further` at most: the planner reads the bytes before each. A path whose every
/// generation begins alike (a banner, or a local user's doing) would otherwise give each past
/// file all the others' positions: a start in quadratic time and memory. Past the cap a copy
/// whose original is not among the furthest goes on from its own position: lines may come
/// twice, none is skipped.
const FURTHER_KEPT: usize = 4;

/// The positions saved under a path by first bytes, furthest first, with their identities:
/// where `further` looks (one pass over the path's entries, not one per entry).
type ByContent = std::collections::HashMap<Fingerprint, Vec<(u64, Fingerprint, FileId)>>;

fn by_content(saved: &[&Entry]) -> ByContent {
    let mut by: ByContent = Default::default();
    for e in saved.iter().filter(|e| !e.is_wanted() && e.fp_len > 0) {
        by.entry(e.fingerprint()).or_default().push((e.offset, e.near(), e.id()));
    }
    for positions in by.values_mut() {
        positions.sort_by_key(|p| std::cmp::Reverse(p.0));
    }
    by
}

/// `Past::further` of `e`: the furthest positions beyond its own saved under the path for the
/// same content (first bytes) under other identities, whatever file they name now.
fn further(by: &ByContent, e: &Entry) -> Vec<(u64, Fingerprint)> {
    let Some(positions) = by.get(&e.fingerprint()) else { return Vec::new() };
    positions
        .iter()
        .filter(|&&(offset, _, id)| id != e.id() && offset > e.offset)
        .take(FURTHER_KEPT)
        .map(|&(offset, near, _)| (offset, near))
        .collect()
}

/// Whether `saved` is the position of another file than `committed`'s, one that took the inode
/// after that position was committed: saved later, and of other first bytes. A file's
/// fingerprint only grows as it is read, so a saved one as long or shorter that differs is of
/// other content; a longer one may be the same file's, read further since, unless it was read
/// under another path (a file renamed to another path of a glob is read on from its position,
/// so its entry there is not behind). Seed 17's second hour most likely lost 299 lines of a copy
/// of medium.log this way, its inode a generation of slow.log's (a fingerprint of 14 to 84
/// bytes) before: the copy, never committed, known only to checkpoints.json, lost its position
/// to that record. Otherwise the committed record is taken (the store can only be behind it).
fn taken_since(saved: &Entry, committed: &Entry) -> bool {
    saved.updated > committed.updated
        && saved.fingerprint() != committed.fingerprint()
        && (saved.fp_len <= committed.fp_len || saved.path != committed.path)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Checkpoints {
    /// Opens (creating `data_dir` if needed) and loads the store.
    pub fn open(data_dir: &Path) -> Result<Checkpoints, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|error| StoreError::Io { file: data_dir.to_path_buf(), error })?;
        let file = data_dir.join(STORE_FILE);
        let journal = data_dir.join(JOURNAL_FILE);
        let (entries, generation) = load(&file)?;
        let mut saved: BTreeMap<Key, Entry> = entries.into_iter().map(|e| ((e.topic.clone(), e.id()), e)).collect();
        let journaled = replay(&journal, generation, &mut saved)?;
        let mut saved_paths = PathIndex::default();
        for (key, e) in &saved {
            saved_paths.add(&e.path, key);
        }
        Ok(Checkpoints {
            file,
            journal,
            snapshot_below: SNAPSHOT_BELOW,
            state: Mutex::new(State {
                loaded_at: now_secs(),
                replaced: Default::default(),
                saved,
                live: HashMap::new(),
                changed: BTreeSet::new(),
                removed: BTreeSet::new(),
                generation,
                journaled,
                journal_broken: false,
                forgot_at: 0,
                walked: None,
                saved_paths,
                live_paths: PathIndex::default(),
            }),
            writing: Mutex::new(()),
            changes: Arc::default(),
        })
    }

    /// Writes whole snapshots only below `n` entries (tests: 0 puts small stores through the
    /// journal too).
    pub fn with_snapshot_below(mut self, n: usize) -> Checkpoints {
        self.snapshot_below = n;
        self
    }

    fn lock(&self) -> Locked<'_> {
        Locked { st: self.lock_quietly(), changes: &self.changes }
    }

    /// The state, for the saver itself: what it leaves to write it knows of.
    fn lock_quietly(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known of the file `file` (identity `id`, `size` bytes) for `topic`. A file that
    /// is shorter than its position, or whose first bytes changed, is `Replaced`; its entry is
    /// retired (kept under `Entry::retired`, the content read, for a copy of it to be known by).
    pub fn resolve(&self, topic: &str, id: FileId, file: &dyn Probe, size: u64) -> Known {
        let key = (topic.to_string(), id);
        let mut st = self.lock();
        if let Some(live) = st.live.get(&key) {
            let sent = live.tracker.sent();
            if live.fp.len == 0 && sent == 0 {
                // Empty when seen and nothing read: it tells nothing about what the inode holds
                // now (inode reuse), and read from 0 either way.
                return Known::Unknown;
            }
            if file.begins_with(&live.fp) && sent <= size {
                return Known::Live(live.tracker.clone());
            }
            let (fp, path, tracker) = (live.fp, live.path.clone(), live.tracker.clone());
            st.retire(&key);
            st.note_replaced(topic, &path, fp, sent, Some(tracker.clone()));
            return Known::Replaced { fp, offset: sent, tracker: Some(tracker) };
        }
        match st.saved.get(&key) {
            Some(e) if e.fp_len == 0 && e.offset == 0 => Known::Unknown,
            Some(e)
                if file.begins_with(&e.fingerprint()) && e.offset <= size && file.holds_before(e.offset, &e.near()) =>
            {
                Known::Saved(e.offset)
            }
            Some(e) => {
                let (fp, offset, path) = (e.fingerprint(), e.offset, e.path.clone());
                st.retire(&key);
                st.note_replaced(topic, &path, fp, offset, None);
                Known::Replaced { fp, offset, tracker: None }
            }
            None => Known::Unknown,
        }
    }

    /// The one question a tail asks before it reads a file (`file`, found at `at`, identity `id`,
    /// `size` bytes) for `topic`: what is known of it. `resolve`, then, for a file never seen,
    /// whether it is a copy of one that was (`copy_of`).
    pub fn position(&self, topic: &str, at: &Path, id: FileId, file: &dyn Probe, size: u64) -> Known {
        // A known inode that holds other content now (reused) may hold a copy, too.
        match self.resolve(topic, id, file, size) {
            known @ (Known::Unknown | Known::Replaced { .. }) => match self.copy_of(topic, at, file) {
                Some((offset, tracker)) => Known::CopyOf { offset, tracker },
                None => known,
            },
            known => known,
        }
    }

    /// Records that the content `fp` of a file read under `path` was cut from it after being
    /// read up to `offset` (copytruncate): `copy_of` finds its copy later.
    pub fn note_replaced(&self, topic: &str, path: &str, fp: Fingerprint, offset: u64, tracker: Arc<AckTracker>) {
        self.lock().note_replaced(topic, path, fp, offset, Some(tracker));
    }

    /// A file cut (copytruncate) whose copy was not there to be found when the cut was seen (its
    /// directory shut, say): what was read of it moves to its retired identity, which is saved,
    /// so that its copy, found at a later look or after a restart, is read on from there
    /// (`copy_of`). `note_replaced` alone is forgotten by a restart, which then read the whole
    /// copy again (the exactly_once soak, seed 17: 1,516 lines twice).
    pub fn keep_cut(&self, topic: &str, id: FileId) {
        self.lock().retire(&(topic.to_string(), id));
    }

    /// Where to start in `file` (at `path`, never read for `topic`) if it is a copy of a file that
    /// was: a name that extends that file's name in the same directory (`app.log.1` beside
    /// `app.log`: what copytruncate leaves) and the same first bytes. The copy holds the same
    /// bytes at the same offsets, so it is read from where that file's reading got to (sent, for
    /// a file open now; acknowledged, for a saved one). None when it is no such copy.
    pub fn copy_of(&self, topic: &str, path: &Path, file: &dyn Probe) -> Option<(u64, Option<Arc<AckTracker>>)> {
        let is_original = |orig: &str| is_rotated_name(Path::new(orig), path);
        let size = file.size();
        let st = self.lock();
        // The originals a name like `path` can have: its proper prefixes within its file name
        // (`app.log.1` -> `app.log`, `app.lo`, ...), looked up in the path indexes.
        let text = path.to_str()?;
        let name_at = text.rfind('/').map_or(0, |i| i + 1);
        let originals: Vec<&str> =
            (name_at + 1..text.len()).filter(|&end| text.is_char_boundary(end)).map(|end| &text[..end]).collect();
        let live = originals
            .iter()
            .flat_map(|o| st.live_paths.keys(o))
            .filter(|(t, _)| t == topic)
            .filter_map(|k| st.live.get(k))
            .filter(|l| is_original(&l.path))
            .map(|l| (l.fp, l.tracker.sent(), Some(&l.tracker)));
        let saved = originals
            .iter()
            .flat_map(|o| st.saved_paths.keys(o))
            .filter(|(t, _)| t == topic)
            .filter_map(|k| st.saved.get(k))
            .filter(|e| is_original(&e.path))
            .map(|e| (e.fingerprint(), e.offset, None));
        let replaced = st
            .replaced
            .iter()
            .filter(|r| r.topic == topic && is_original(&r.path))
            .map(|r| (r.fp, r.offset, r.tracker.as_ref()));
        // The furthest reading of that content (a live one has sent more than was saved); its
        // tracker goes on only when the copy holds all it sent. A live reading wins a tie: it
        // says the original is open and being read (a file opened at its saved position has sent
        // no more than was saved). Were the saved entry to win, the copy would go without the
        // tracker, and a `.gz` that logrotate made of the file a tail has just opened would be
        // read beside it (the exactly_once soak, seed 11: 45 lines twice).
        let (_, offset, tracker) = live
            .chain(saved)
            .chain(replaced)
            .filter(|(fp, _, _)| file.identified_by(fp))
            .max_by_key(|(_, offset, tracker)| (*offset, tracker.is_some_and(|t| !t.is_closed())))?;
        let tracker = tracker.filter(|t| t.sent() <= size).cloned();
        Some((offset.min(size), tracker))
    }

    /// What the store knows under `path` for `topic`: the one question a tail asks when it
    /// (re)opens its path (`tail::open::plan_start` decides from the answer). `except`: the file
    /// at the path now, which is not history.
    pub fn lineage(&self, path: &str, topic: &str, except: Option<FileId>) -> Lineage {
        let st = self.lock();
        let saved: Vec<&Entry> =
            st.saved_paths.keys(path).filter(|(t, _)| t == topic).filter_map(|k| st.saved.get(k)).collect();
        let live: Vec<(&Key, &Live)> =
            st.live_paths.keys(path).filter(|(t, _)| t == topic).filter_map(|k| st.live.get_key_value(k)).collect();
        // The path's marker (`note_current`) says since when generations may be unread: when a
        // tail last opened the file at the path, every older generation was read or adopted.
        // Not the last position's time: a tail stuck on its file (the broker away) moves that
        // file's position on after a generation came and went unseen (the exactly_once soak lost
        // 5,732 lines of a generation compressed meanwhile). Stores without one: the newest time.
        // The marker is no file, so never a past one.
        let marker = saved.iter().filter(|e| e.is_wanted()).map(|e| e.updated).max();
        let last_update =
            marker.or_else(|| saved.iter().map(|e| e.updated).chain(live.iter().map(|(_, l)| l.since)).max());
        // Other files read under the path that no tail has open: rotated-away files, oldest
        // first. Saved entries, and also live trackers whose file was closed (by
        // `close_inactive`, a moment ago: not folded into the saved entries yet), which carry on.
        let by = by_content(&saved);
        let mut past: Vec<Past> = saved
            .iter()
            .filter(|e| !e.is_wanted())
            .filter(|e| e.path == path && Some(e.id()) != except && !st.live.contains_key(&(e.topic.clone(), e.id())))
            .map(|e| Past {
                id: e.id(),
                fp: e.fingerprint(),
                offset: e.offset,
                tracker: None,
                further: further(&by, e),
                updated: e.updated,
            })
            .chain(
                live.iter().filter(|((_, id), l)| l.path == path && Some(*id) != except && l.tracker.is_closed()).map(
                    |((_, id), l)| Past {
                        id: *id,
                        fp: l.fp,
                        offset: l.tracker.sent(),
                        tracker: Some(l.tracker.clone()),
                        further: Vec::new(),
                        updated: u64::MAX,
                    },
                ),
            )
            .collect();
        past.sort_by_key(|p| p.updated);
        Lineage { had_history: !saved.is_empty() || !live.is_empty(), last_update, past }
    }

    /// Records that the tail of `path` for `topic` looked at its generations at `since` (unix
    /// seconds: it opened the file at the path, and read or adopted every generation written
    /// before): after a restart, those written since are looked for (`lineage`).
    pub fn note_current(&self, topic: &str, path: &str, since: u64) {
        let marker = Entry::wanted(path, topic, since);
        let key = (topic.to_string(), marker.id());
        let mut st = self.lock();
        if st.saved.get(&key).is_none_or(|m| m.updated != since) {
            st.set(key, marker);
        }
    }

    /// Records that `path` is to be read for `topic` from now on, unless anything is known under
    /// it yet, with the file at the path now (`file`: its identity, first bytes, and where
    /// `start_position` starts it). A first start that is killed before it reads (exactly_once's
    /// start-up takes a second under load, and waits for the broker as long as it is away) then
    /// leaves the next start what it would have read: that file from there, any file that came
    /// after it whole, and the generations rotated away since. Returns whether anything was
    /// recorded (the caller saves).
    pub fn note_wanted(&self, topic: &str, path: &str, file: Option<(FileId, Fingerprint, u64)>) -> bool {
        let mut st = self.lock();
        let known = st.saved_paths.keys(path).chain(st.live_paths.keys(path)).any(|(t, _)| t == topic);
        if known {
            return false;
        }
        let now = now_secs();
        let marker = Entry::wanted(path, topic, now);
        st.set((topic.to_string(), marker.id()), marker);
        if let Some((id, fp, offset)) = file.filter(|(_, fp, _)| fp.len > 0) {
            // The bytes before `offset` are not known: the first bytes alone tell the file.
            st.set((topic.to_string(), id), Entry::new(path, topic, id, fp, offset, Fingerprint::default(), now));
        }
        true
    }

    /// Whether the file `id` was ever read for `topic` (saved or live), and still begins as it
    /// did then: the same inode with other first bytes is another file (inode reuse). A file
    /// recorded while empty (a fingerprint of no bytes) proves nothing: it is not known.
    pub fn is_known(&self, topic: &str, id: FileId, file: &dyn Probe) -> bool {
        let st = self.lock();
        let key = (topic.to_string(), id);
        let fp = st.live.get(&key).map(|l| l.fp).or_else(|| st.saved.get(&key).map(Entry::fingerprint));
        fp.is_some_and(|fp| file.identified_by(&fp))
    }

    /// Registers the tracker of a file a tail opens (its claim is the tail's, in `claims`). An
    /// entry of the same identity under another path is another file whose inode was reused
    /// (another tail's file, say, deleted when logrotate compressed it): what it knew is kept as
    /// replaced content, and moved under a retired identity (`Entry::retired`), live tracker and
    /// all, so that a copy of it (the `.gz`) is still known after a restart. Removed, it would
    /// be forgotten by the next start, which would read the whole `.gz` again (the exactly_once
    /// soak, seed 11: 1,310 lines, fast.log's new file having taken keyed.log's freed inode 0.1 s
    /// before a kill).
    pub fn track(&self, topic: &str, id: FileId, path: &str, fp: Fingerprint, tracker: Arc<AckTracker>) {
        tracker.count_changes_in(&self.changes);
        tracker.reopen();
        let key = (topic.to_string(), id);
        let mut st = self.lock();
        if let Some(old) = st.live.get(&key).filter(|l| l.path != path) {
            let (old_path, old_fp, old_tracker) = (old.path.clone(), old.fp, old.tracker.clone());
            st.note_replaced(topic, &old_path, old_fp, old_tracker.sent(), Some(old_tracker));
            st.retire(&key);
        } else if let Some(e) = st.saved.get(&key).filter(|e| e.path != path) {
            let (old_path, old_fp, offset) = (e.path.clone(), e.fingerprint(), e.offset);
            st.note_replaced(topic, &old_path, old_fp, offset, None);
            st.retire(&key);
        }
        let live = Live { tracker, path: path.to_string(), fp, folded: None, since: now_secs() };
        st.set_live(key, live);
    }

    /// Records a file left out for its age (`ignore_older`) as read up to `size`, unless it is
    /// known: if it is written to later, only what is new is shipped.
    pub fn skip_old(&self, topic: &str, id: FileId, path: &str, fp: Fingerprint, size: u64) {
        let mut st = self.lock();
        let key = (topic.to_string(), id);
        if st.live.contains_key(&key) || st.saved.contains_key(&key) {
            return;
        }
        st.set(key, Entry::new(path, topic, id, fp, size, Fingerprint::default(), now_secs()));
    }

    /// Records a longer fingerprint of a file whose first bytes were not all written yet.
    pub fn update_fingerprint(&self, topic: &str, id: FileId, fp: Fingerprint) {
        let mut st = self.lock();
        if let Some(l) = st.live.get_mut(&(topic.to_string(), id)) {
            l.fp = fp;
            st.walked = None;
        }
    }

    /// Exactly-once (src/sink/transaction.rs): the entries of the files read by `trackers`, each
    /// at the offset given with its tracker (the end of its last line in the transaction), to be
    /// committed with those lines. A tracker carried on by a copy (copytruncate) yields both.
    pub fn entries_at(&self, trackers: &[(Arc<AckTracker>, u64)]) -> Vec<Entry> {
        let now = now_secs();
        let at: HashMap<*const AckTracker, u64> = trackers.iter().map(|(t, o)| (Arc::as_ptr(t), *o)).collect();
        let st = self.lock();
        let mut out = Vec::new();
        for (key, live) in &st.live {
            let Some(offset) = at.get(&Arc::as_ptr(&live.tracker)) else {
                continue;
            };
            out.push(live.entry(key, *offset, live.tracker.near_of(*offset), now));
        }
        out
    }

    /// Exactly-once: the positions committed to Kafka with the lines are the authority; each
    /// replaces the saved entry of its file (which, acknowledged only after a commit, can only
    /// be behind). Returns how many entries changed.
    ///
    /// Unless the saved entry is of another file that took the inode since (`taken_since`): a
    /// copy logrotate made (copytruncate) into an inode just freed, read on from the carried
    /// position with no line of its own, so with no record in the topic. Replaced by the old
    /// file's record, the copy was read whole again after a kill (the exactly_once soak, seed
    /// 17: 1,466 lines twice). The old record is then kept as that content's, retired.
    pub fn adopt(&self, committed: Vec<Entry>) -> usize {
        let mut st = self.lock();
        let mut changed = 0;
        for e in committed {
            let key = (e.topic.clone(), e.id());
            match st.saved.get(&key) {
                Some(s) if *s == e => {}
                Some(s) if taken_since(s, &e) => {
                    let retired = (key.0.clone(), Entry::retired(key.1, &e.path, e.fingerprint()));
                    if !st.saved.contains_key(&retired) {
                        let path = e.path.clone();
                        st.set_retired(&retired, e);
                        st.bound_retired(&key.0, &path);
                        changed += 1;
                    }
                }
                _ => {
                    st.set(key, e);
                    changed += 1;
                }
            }
        }
        changed
    }

    /// Folds live trackers into the saved entries and writes what changed.
    ///
    /// Written in proportion to the files whose positions changed (issue 15: with 10,000 files
    /// the whole store was 2.3 MB, rewritten with fsync five times a second for one busy file):
    /// the changes are appended to `checkpoints.journal` (one checksummed line each, one
    /// fdatasync), and the whole store is written as a new snapshot (atomically, as before) only
    /// when it is small (under `SNAPSHOT_BELOW` entries: one small write either way) or the
    /// journal has grown past it. A journal line carries the snapshot's generation, so lines
    /// from before a snapshot are never replayed over it.
    pub fn save(&self) -> Result<bool, StoreError> {
        let _writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_secs();
        let write = {
            let mut st = self.lock_quietly();
            st.fold(now, self.changes.count());
            st.forget(now);
            if !st.dirty() {
                return Ok(false);
            }
            st.plan_write(self.snapshot_below)
        };
        let result = match &write {
            Pending::Snapshot { entries, generation, .. } => write_atomically(&self.file, entries, *generation)
                .and_then(|()| statefile::open(&self.journal, Mode::Truncate).and_then(|f| f.sync_all()))
                .map_err(|error| StoreError::Io { file: self.file.clone(), error }),
            Pending::Journal { lines, .. } => {
                append(&self.journal, lines).map_err(|error| StoreError::Io { file: self.journal.clone(), error })
            }
        };
        self.lock_quietly().settle(result, write)
    }

    /// Sleeps until something is left to save, or `timeout`.
    pub fn wait_for_changes(&self, timeout: std::time::Duration) {
        self.changes.wait(timeout);
    }

    /// The bell the checkpointer sleeps on: the stop that ends it must ring it
    /// (`control::Stop::with_bell`), or the thread ends only at its next idle look.
    pub fn saver_bell(&self) -> Arc<crate::waker::Doorbell> {
        self.changes.bell()
    }
}

impl State {
    /// Folds the live trackers' acknowledged offsets into the entries (only when a tracker moved
    /// since the last walk: `changes` is the store's count of changes); a finished tracker is let go.
    fn fold(&mut self, now: u64, changes: u64) {
        let mut finished = Vec::new();
        let mut updates: Vec<(Key, Entry)> = Vec::new();
        // No tracker moved since the last walk: nothing to fold.
        let walk = self.walked != Some(changes);
        self.walked = Some(changes);
        let walked = if walk { self.live.iter_mut() } else { Default::default() };
        for (key, live) in walked {
            let (offset, near, done) = live.tracker.progress();
            if live.folded == Some((offset, live.fp)) && !done {
                continue;
            }
            live.folded = Some((offset, live.fp));
            let (mut entry, new) = match self.saved.get(key) {
                Some(e) => (e.clone(), false),
                None => (live.entry(key, offset, near, now), true),
            };
            // A tracker made at a saved position knows nothing of the bytes before it until a
            // line is acknowledged: the entry keeps what it knew for that same offset.
            if entry.offset != offset || near.len > 0 {
                (entry.near_len, entry.near_hash) = (near.len, near.hash);
            }
            // The whole fingerprint: a reused inode can hold as many bytes as the file it
            // replaced, whose hash must not be kept for its successor.
            let moved = entry.offset != offset || entry.fingerprint() != live.fp || entry.path != live.path;
            if moved {
                entry.offset = offset;
                entry.fp_len = live.fp.len;
                entry.fp_hash = live.fp.hash;
                entry.path = live.path.clone();
                entry.updated = now;
            }
            if done {
                entry.updated = now;
                finished.push(key.clone());
            }
            if new || moved || done {
                updates.push((key.clone(), entry));
            }
        }
        for (key, entry) in updates {
            self.set(key, entry);
        }
        for key in finished {
            self.remove_live(&key);
        }
    }

    /// Forgets entries of files no tail had open for `FORGET_AFTER`. A long downtime does not
    /// expire entries: they count as seen when loaded. Looked for once a minute (entries live a
    /// day): every save, it was half the CPU of an idle agent with 10,000 files (a hash lookup
    /// per entry, five times a second).
    fn forget(&mut self, now: u64) {
        if now < self.forgot_at + FORGET_EVERY {
            return;
        }
        let (live, loaded_at) = (&self.live, self.loaded_at);
        let expired = |k: &Key, e: &Entry| {
            !live.contains_key(k) && now.saturating_sub(e.updated.max(loaded_at)) >= FORGET_AFTER.as_secs()
        };
        let expired: Vec<Key> = self.saved.iter().filter(|(k, e)| expired(k, e)).map(|(k, _)| k.clone()).collect();
        self.forgot_at = now;
        // The files still there, at their path or a rotated name of it, count as seen now (looked
        // for once a day each). One listing per directory, not per path: this runs under the
        // store's lock, and 10,000 expired files of one directory were 10,000 listings of it.
        let mut dirs: HashMap<PathBuf, HashMap<FileId, Vec<PathBuf>>> = HashMap::new();
        for key in &expired {
            if self.saved[key].is_wanted() {
                // A path's marker lasts as long as anything else is known under the path.
                let (topic, path) = (&key.0, self.saved[key].path.clone());
                let others = self.saved_paths.keys(&path).chain(self.live_paths.keys(&path));
                if !others.filter(|k| k.0 == *topic).any(|k| k != key) {
                    self.remove(key);
                }
                continue;
            }
            let path = PathBuf::from(&self.saved[key].path);
            let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
            let files = dirs.entry(dir).or_insert_with_key(|dir| files_by_id(dir));
            let there =
                files.get(&key.1).is_some_and(|names| names.iter().any(|n| *n == path || is_rotated_name(&path, n)));
            if there {
                let mut entry = self.saved[key].clone();
                entry.updated = now;
                self.set(key.clone(), entry);
            } else {
                self.remove(key);
            }
        }
    }

    /// What to write for the changes: the whole store when it is small (below `snapshot_below`
    /// entries), when the journal would outgrow it, or after a failed write; else journal lines.
    fn plan_write(&mut self, snapshot_below: usize) -> Pending {
        let (changed, removed) = (std::mem::take(&mut self.changed), std::mem::take(&mut self.removed));
        let records = changed.len() + removed.len();
        if self.journal_broken || self.saved.len() < snapshot_below || self.journaled + records >= self.saved.len() {
            return Pending::Snapshot {
                entries: self.saved.values().cloned().collect(),
                generation: self.generation + 1,
                changed,
                removed,
            };
        }
        let mut lines = Vec::new();
        for key in &changed {
            journal_line(&mut lines, &Record { g: self.generation, set: self.saved.get(key).cloned(), del: None });
        }
        for key in &removed {
            let del = Some(Gone { topic: key.0.clone(), dev: key.1.dev, ino: key.1.ino });
            journal_line(&mut lines, &Record { g: self.generation, set: None, del });
        }
        Pending::Journal { lines, records, changed, removed }
    }

    /// Takes the outcome of a write: a failed one leaves its changes to be written again.
    fn settle(&mut self, result: Result<(), StoreError>, write: Pending) -> Result<bool, StoreError> {
        match (result, write) {
            (Ok(()), Pending::Snapshot { generation, .. }) => {
                self.generation = generation;
                self.journaled = 0;
                self.journal_broken = false;
                Ok(true)
            }
            (Ok(()), Pending::Journal { records, .. }) => {
                self.journaled += records;
                Ok(true)
            }
            (Err(e), Pending::Snapshot { changed, removed, .. } | Pending::Journal { changed, removed, .. }) => {
                // Still to be written: the next save (or the one at shutdown) tries again, as a
                // snapshot (a journal write may have been torn), and a failure then is reported
                // as such, not as "checkpointed" (issue 15: a full disk).
                for key in changed {
                    if !self.removed.contains(&key) {
                        self.changed.insert(key);
                    }
                }
                for key in removed {
                    if !self.changed.contains(&key) {
                        self.removed.insert(key);
                    }
                }
                self.journal_broken = true;
                Err(e)
            }
        }
    }
}

/// Below this many entries every save writes the whole store (a few tens of KB: one small write
/// with fsync either way); above, changes go to the journal.
const SNAPSHOT_BELOW: usize = 256;

/// What one save writes.
enum Pending {
    Snapshot { entries: Vec<Entry>, generation: u64, changed: BTreeSet<Key>, removed: BTreeSet<Key> },
    Journal { lines: Vec<u8>, records: usize, changed: BTreeSet<Key>, removed: BTreeSet<Key> },
}

/// The checkpointer thread's loop: once something changed (an acknowledgement, a file tracked
/// or rotated, a failed write to try again), let more changes gather for `every`, then save;
/// until `stop` is raised.
pub fn run_checkpointer(cp: &Checkpoints, every: std::time::Duration, stop: &crate::control::Stop) {
    let mut last_error: Option<String> = None;
    loop {
        // Every change rings; the look after IDLE_LOOK is a safety net, and the clock of
        // forgetting old entries. A stop made with `saver_bell` rings too.
        cp.wait_for_changes(IDLE_LOOK);
        if stop.sleep(every) {
            return;
        }
        match cp.save() {
            Ok(_) => {
                if let Some(cause) = last_error.take() {
                    log::info!("checkpoints saved again (the last failure: {cause})");
                }
            }
            Err(e) => {
                cp.changes.wake(); // tried again after `every`
                let cause = e.cause();
                if last_error.as_ref() != Some(&cause) {
                    log::error!(
                        "cannot save checkpoints: {e}; retrying every {every:?}, logged again if the cause changes"
                    );
                    last_error = Some(cause);
                }
            }
        }
    }
}

/// How long the checkpointer sleeps with nothing changed before it looks anyway.
const IDLE_LOOK: std::time::Duration = std::time::Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint::fnv1a;
    use std::fs::File;

    fn tracked(cp: &Checkpoints, dir: &Path, name: &str, body: &[u8]) -> (Arc<AckTracker>, FileId, File) {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        let f = File::open(&p).unwrap();
        let id = FileId::of(&f.metadata().unwrap());
        let t = Arc::new(AckTracker::new(0));
        cp.track("t", id, p.to_str().unwrap(), Fingerprint::of_file(&f).unwrap(), t.clone());
        (t, id, f)
    }

    #[test]
    fn saves_acked_offsets_and_reloads_them() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, f) = tracked(&cp, dir.path(), "a.log", b"one\ntwo\n");
        let s1 = t.register(4);
        let _s2 = t.register(8);
        t.ack(s1);
        assert!(cp.save().unwrap());
        assert!(!cp.save().unwrap(), "nothing changed, nothing written");
        let again = Checkpoints::open(dir.path()).unwrap();
        match again.resolve("t", id, &f, 8) {
            Known::Saved(off) => assert_eq!(off, 4, "only the acknowledged prefix is saved"),
            _ => panic!("expected a saved entry"),
        }
        assert!(matches!(again.resolve("other", id, &f, 8), Known::Unknown));
    }

    /// The checkpointer sleeps until something changes, and a change wakes it: a file tracked,
    /// an acknowledgement after a quiet spell, and a change of the store's own (a file left out
    /// by `ignore_older`) are each saved well before its idle look (`IDLE_LOOK`, 5 s) would come.
    #[test]
    fn the_checkpointer_saves_as_soon_as_something_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let stop = crate::control::Stop::with_bell(cp.saver_bell());
        let saved_at = |id: FileId, f: &File| match Checkpoints::open(dir.path()).unwrap().resolve("t", id, f, 8) {
            Known::Saved(off) => Some(off),
            _ => None,
        };
        let within = |limit: Duration, what: &str, ok: &dyn Fn() -> bool| {
            let t0 = std::time::Instant::now();
            while !ok() {
                assert!(t0.elapsed() < limit, "{what} not saved within {limit:?}");
                std::thread::sleep(Duration::from_millis(10));
            }
        };
        std::thread::scope(|s| {
            s.spawn(|| run_checkpointer(&cp, Duration::from_millis(20), &stop));
            let _stop = crate::control::RaiseOnDrop(&stop);
            let (t, id, f) = tracked(&cp, dir.path(), "a.log", b"one\ntwo\n");
            within(Duration::from_secs(2), "a tracked file", &|| saved_at(id, &f).is_some());
            std::thread::sleep(Duration::from_millis(300)); // quiet: the checkpointer sleeps
            let s1 = t.register(4);
            t.ack(s1);
            within(Duration::from_secs(2), "an acknowledgement", &|| saved_at(id, &f) == Some(4));
            // A change of the store's own, no tracker in it: a file left out for its age.
            std::thread::sleep(Duration::from_millis(300));
            let old = dir.path().join("old.log");
            std::fs::write(&old, b"one\ntwo\n").unwrap();
            let g = File::open(&old).unwrap();
            let gid = FileId::of(&g.metadata().unwrap());
            cp.skip_old("t", gid, old.to_str().unwrap(), Fingerprint::of_file(&g).unwrap(), 8);
            within(Duration::from_secs(2), "a file left out for its age", &|| saved_at(gid, &g) == Some(8));
        });
    }

    #[test]
    fn corrupt_store_falls_back_to_previous_generation() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, f) = tracked(&cp, dir.path(), "a.log", b"one\ntwo\n");
        let s = t.register(4);
        t.ack(s);
        cp.save().unwrap();
        let s = t.register(8);
        t.ack(s);
        cp.save().unwrap();
        // Tear the current generation.
        let file = dir.path().join(STORE_FILE);
        let text = std::fs::read(&file).unwrap();
        std::fs::write(&file, &text[..text.len() / 2]).unwrap();
        let again = Checkpoints::open(dir.path()).unwrap();
        assert!(matches!(again.resolve("t", id, &f, 8), Known::Saved(4)));
    }

    #[test]
    fn corrupt_store_without_a_sound_previous_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(STORE_FILE), b"{\"version\":1,\"checksum\":\"0\",\"entries\":[]}").unwrap();
        let err = Checkpoints::open(dir.path()).err().expect("refused");
        let msg = err.to_string();
        assert!(msg.contains("corrupt") && msg.contains("checksum"), "{msg}");
        std::fs::write(dir.path().join(STORE_FILE), b"\x00\x01garbage").unwrap();
        assert!(Checkpoints::open(dir.path()).is_err());
    }

    #[test]
    fn a_copy_beside_a_known_file_starts_where_its_reading_got_to() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, _, _) = tracked(&cp, dir.path(), "app.log", b"one\ntwo\nthree\n");
        t.register(8);
        // copytruncate's copy: same bytes, a name that extends the original's.
        let copy = dir.path().join("app.log.1");
        std::fs::write(&copy, b"one\ntwo\nthree\n").unwrap();
        assert_eq!(cp.copy_of("t", &copy, &File::open(&copy).unwrap()).map(|c| c.0), Some(8));
        assert!(cp.copy_of("other", &copy, &File::open(&copy).unwrap()).is_none(), "per topic");
        // Other bytes, or a name that does not extend the original's: not a copy.
        let other = dir.path().join("app.log.2");
        std::fs::write(&other, b"ONE\ntwo\nthree\n").unwrap();
        assert!(cp.copy_of("t", &other, &File::open(&other).unwrap()).is_none());
        let unrelated = dir.path().join("zapp.log");
        std::fs::write(&unrelated, b"one\ntwo\nthree\n").unwrap();
        assert!(cp.copy_of("t", &unrelated, &File::open(&unrelated).unwrap()).is_none());
    }

    /// Issue 15: a store of many files writes only what changed (journal lines), and a reopened
    /// store has every position; a torn last line and lines of an older generation are not
    /// applied.
    #[test]
    fn many_files_write_only_their_changes() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        // 300 files known (more than SNAPSHOT_BELOW), one of them being read.
        for i in 0..300u64 {
            let fp = Fingerprint { len: 8, hash: i };
            cp.skip_old("t", FileId { dev: 1, ino: 1000 + i }, &format!("/var/log/f{i}.log"), fp, 8);
        }
        assert!(cp.save().unwrap());
        let snapshot = std::fs::metadata(dir.path().join(STORE_FILE)).unwrap().len();
        let (t, id, f) = tracked(&cp, dir.path(), "a.log", b"one\ntwo\nthree\n");
        for end in [4, 8, 14] {
            let seq = t.register(end);
            t.ack(seq);
            assert!(cp.save().unwrap());
        }
        let journal = std::fs::read_to_string(dir.path().join(JOURNAL_FILE)).unwrap();
        assert_eq!(journal.lines().count(), 3, "one line per change: {journal}");
        assert_eq!(std::fs::metadata(dir.path().join(STORE_FILE)).unwrap().len(), snapshot, "the snapshot stays");
        let again = Checkpoints::open(dir.path()).unwrap();
        assert!(matches!(again.resolve("t", id, &f, 14), Known::Saved(14)));
        assert!(matches!(
            again.resolve("t", FileId { dev: 1, ino: 1299 }, &f, 14),
            Known::Replaced { .. } | Known::Saved(_)
        ));
        drop(again);

        // A torn last write: the positions before it stand.
        let mut torn = journal.clone();
        torn.push_str("0123456789abcdef {\"g\":0,\"set\":{\"pa");
        std::fs::write(dir.path().join(JOURNAL_FILE), &torn).unwrap();
        let again = Checkpoints::open(dir.path()).unwrap();
        assert!(matches!(again.resolve("t", id, &f, 14), Known::Saved(14)));
        drop(again);
        // Lines of a generation the snapshot replaced (a crash between the snapshot and the
        // journal's truncation) are not replayed over it.
        assert!(journal.contains("\"g\":1"), "the first snapshot is generation 1");
        let stale = journal.replace("\"g\":1", "\"g\":7");
        let fixed: String = stale
            .lines()
            .map(|l| {
                let json = &l[17..];
                format!("{:016x} {json}\n", fnv1a(json.as_bytes()))
            })
            .collect();
        std::fs::write(dir.path().join(JOURNAL_FILE), fixed).unwrap();
        let again = Checkpoints::open(dir.path()).unwrap();
        assert!(!matches!(again.resolve("t", id, &f, 14), Known::Saved(14)), "generation 7 is not the snapshot's");
    }

    #[test]
    fn old_files_are_recorded_as_read_to_their_end() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let p = dir.path().join("old.log");
        std::fs::write(&p, b"ancient\n").unwrap();
        let f = File::open(&p).unwrap();
        let id = FileId::of(&f.metadata().unwrap());
        cp.skip_old("t", id, p.to_str().unwrap(), Fingerprint::of_file(&f).unwrap(), 8);
        assert!(matches!(cp.resolve("t", id, &f, 8), Known::Saved(8)));
        cp.skip_old("t", id, p.to_str().unwrap(), Fingerprint::of_file(&f).unwrap(), 20);
        assert!(matches!(cp.resolve("t", id, &f, 8), Known::Saved(8)), "a known file keeps its position");
    }

    #[test]
    fn inode_reuse_is_detected_by_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, _f) = tracked(&cp, dir.path(), "a.log", b"first file\n");
        let s = t.register(11);
        t.ack(s);
        t.close();
        cp.save().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        // Same inode, other content: simulate by rewriting the file in place.
        std::fs::write(dir.path().join("a.log"), b"second file, longer\n").unwrap();
        let f = File::open(dir.path().join("a.log")).unwrap();
        assert_eq!(FileId::of(&f.metadata().unwrap()), id);
        assert!(matches!(cp.resolve("t", id, &f, 20), Known::Replaced { offset: 11, .. }));
    }

    /// A file as a table row: its size, and which fingerprints its first bytes and the bytes
    /// before a position match.
    struct Row {
        size: u64,
        first: Fingerprint,
        near: Fingerprint,
    }
    impl Probe for Row {
        fn size(&self) -> u64 {
            self.size
        }
        fn begins_with(&self, fp: &Fingerprint) -> bool {
            fp.len == 0 || *fp == self.first
        }
        fn holds_before(&self, _offset: u64, near: &Fingerprint) -> bool {
            near.len == 0 || *near == self.near
        }
    }

    /// The store's answer for a saved file, for every way the file on disk can differ from what
    /// was read, without a disk.
    #[test]
    fn what_the_store_answers_for_a_saved_file() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (first, near, other) =
            (Fingerprint { len: 8, hash: 1 }, Fingerprint { len: 8, hash: 2 }, Fingerprint { len: 8, hash: 3 });
        let id = FileId { dev: 1, ino: 7 };
        let entry = |offset| Entry {
            path: "/l/a.log".into(),
            topic: "t".into(),
            dev: 1,
            ino: 7,
            fp_len: first.len,
            fp_hash: first.hash,
            offset,
            near_len: near.len,
            near_hash: near.hash,
            updated: 0,
        };
        for (row, want) in [
            (Row { size: 100, first, near }, "saved"),
            (Row { size: 50, first, near }, "saved"),
            (Row { size: 49, first, near }, "replaced"), // shorter than what was read
            (Row { size: 100, first: other, near }, "replaced"), // other first bytes
            (Row { size: 100, first, near: other }, "replaced"), // same banner, other content
        ] {
            cp.lock().set((String::from("t"), id), entry(50));
            let got = match cp.resolve("t", id, &row, row.size) {
                Known::Saved(50) => "saved",
                Known::Replaced { offset: 50, .. } => "replaced",
                k => panic!("{k:?}"),
            };
            assert_eq!(got, want, "size {}", row.size);
        }
        assert!(matches!(cp.resolve("other", id, &Row { size: 9, first, near }, 9), Known::Unknown));
    }

    /// Issue 25: a file deleted and written anew on the same inode, beginning with the same
    /// banner (longer than the first-bytes fingerprint), is told apart by the bytes just before
    /// the saved position, and read from its start.
    #[test]
    fn a_new_file_with_the_old_ones_banner_is_not_taken_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let banner = format!("{}\n", "=".repeat(300));
        let old = format!("{banner}line-000001\nline-000002\n");
        let (t, id, f) = tracked(&cp, dir.path(), "a.log", old.as_bytes());
        let end = old.len() as u64;
        let near = Fingerprint::of_bytes(&old.as_bytes()[old.len() - crate::fingerprint::NEAR_BYTES..]);
        let s = t.register_near(end, near);
        t.ack(s);
        t.close();
        cp.save().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        assert!(matches!(cp.resolve("t", id, &f, end), Known::Saved(o) if o == end), "the same file resumes");
        let new = format!("{banner}fresh-00001\nfresh-00002\nfresh-00003\n");
        std::fs::write(dir.path().join("a.log"), &new).unwrap();
        let f = File::open(dir.path().join("a.log")).unwrap();
        assert_eq!(FileId::of(&f.metadata().unwrap()), id);
        assert!(matches!(cp.resolve("t", id, &f, new.len() as u64), Known::Replaced { .. }));
    }

    #[test]
    fn the_lineage_of_a_path_lists_its_rotated_files_and_its_last_update() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let path = dir.path().join("a.log");
        let path = path.to_str().unwrap();
        let none = cp.lineage(path, "t", None);
        assert!(!none.had_history && none.last_update.is_none() && none.past.is_empty());
        let (t, id, _f) = tracked(&cp, dir.path(), "a.log", b"x\n");
        t.close();
        cp.save().unwrap();
        let l = cp.lineage(path, "t", None);
        assert!(l.had_history && l.last_update.is_some() && l.past.len() == 1);
        let l = cp.lineage(path, "t", Some(id));
        assert!(l.had_history && l.past.is_empty(), "the file at the path now is not history");
        assert!(!cp.lineage(path, "other", None).had_history, "per topic");
    }

    #[test]
    fn a_wanted_path_dates_its_history_but_is_no_file_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let path = path.to_str().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let b = dir.path().join("b.log");
        std::fs::write(&b, "old\nlines\n").unwrap();
        let f = File::open(&b).unwrap();
        let (b_id, b_fp) = (FileId::of(&f.metadata().unwrap()), Fingerprint::of_file(&f).unwrap());
        assert!(cp.note_wanted("t", path, None));
        assert!(!cp.note_wanted("t", path, None), "recorded once");
        assert!(cp.note_wanted("t", b.to_str().unwrap(), Some((b_id, b_fp, 10))));
        cp.save().unwrap();
        // Survives a restart: history (a file not there then is new), generations rotated
        // since are looked for, and no past file is drained for the marker itself.
        let cp = Checkpoints::open(dir.path()).unwrap();
        let l = cp.lineage(path, "t", None);
        assert!(l.had_history && l.last_update.is_some() && l.past.is_empty());
        assert!(cp.lineage(path, "other", None).last_update.is_none(), "per topic");
        // The file there then starts where start_position put it (at its end here), and is a
        // past file once rotated away.
        assert!(matches!(cp.resolve("t", b_id, &f, 10), Known::Saved(10)));
        assert_eq!(cp.lineage(b.to_str().unwrap(), "t", None).past.len(), 1);
        // Once a file was read under a path, nothing more is marked.
        let (t, _, _f) = tracked(&cp, dir.path(), "c.log", b"x\n");
        let c = dir.path().join("c.log");
        assert!(!cp.note_wanted("t", c.to_str().unwrap(), None));
        t.close();
    }

    /// Since when generations count as unread is when the tail last opened the path's file, not
    /// when a position last moved (a tail stuck on its file moves it on after a generation came
    /// and went unseen).
    #[test]
    fn generations_count_from_the_last_open_not_the_last_position() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, _, _f) = tracked(&cp, dir.path(), "a.log", b"x\n");
        let path = dir.path().join("a.log");
        let path = path.to_str().unwrap();
        cp.note_current("t", path, 1000);
        t.ack(t.register(2));
        cp.save().unwrap();
        assert_eq!(cp.lineage(path, "t", None).last_update, Some(1000));
        cp.note_current("t", path, 2000);
        assert_eq!(cp.lineage(path, "t", None).last_update, Some(2000));
        let cp = Checkpoints::open(dir.path()).unwrap();
        assert_eq!(cp.lineage(path, "t", None).last_update, Some(1000), "saved at the next save only");
    }

    #[test]
    fn a_file_closed_a_moment_ago_is_history_before_it_is_saved() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, _f) = tracked(&cp, dir.path(), "a.log", b"one\ntwo\n");
        let path = dir.path().join("a.log");
        let path = path.to_str().unwrap();
        t.register(4);
        assert!(cp.lineage(path, "t", None).past.is_empty(), "open: not history");
        // Closed by close_inactive, and the checkpointer has not run since.
        t.close();
        let h = cp.lineage(path, "t", None).past;
        assert_eq!((h.len(), h[0].id, h[0].offset), (1, id, 4));
        assert!(h[0].tracker.as_ref().is_some_and(|x| Arc::ptr_eq(x, &t)), "its tracker carries on");
    }

    #[test]
    fn a_file_cut_again_and_again_keeps_a_bounded_number_of_retired_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, _f) = tracked(&cp, dir.path(), "app.log", b"line 0\n");
        t.register(7);
        t.ack(0);
        t.close();
        cp.save().unwrap();
        let path = dir.path().join("app.log");
        for i in 1..=RETIRED_KEPT + 10 {
            // Other first bytes each time: the content read before is retired.
            let body = format!("line {i}\n");
            let now = Row { size: 0, first: Fingerprint::of_bytes(body.as_bytes()), near: Fingerprint::default() };
            assert!(matches!(cp.resolve("t", id, &now, 0), Known::Replaced { .. }));
            let t = Arc::new(AckTracker::new(0));
            cp.track("t", id, path.to_str().unwrap(), Fingerprint::of_bytes(body.as_bytes()), t.clone());
            t.register(body.len() as u64);
            t.ack(0);
            t.close();
            cp.save().unwrap();
        }
        let st = cp.lock();
        let retired = st.saved.values().filter(|e| e.is_retired()).count();
        assert_eq!(retired, RETIRED_KEPT, "the newest {RETIRED_KEPT}, not one per cut");
    }

    #[test]
    fn a_copy_of_a_file_open_at_its_saved_position_carries_the_live_tracker() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, f) = tracked(&cp, dir.path(), "app.log", b"first file's lines\n");
        t.register(19);
        t.ack(0);
        t.close();
        cp.save().unwrap();
        // The next start opens app.log at its saved position; logrotate compresses it at once.
        let again = Checkpoints::open(dir.path()).unwrap();
        let a = dir.path().join("app.log");
        let live = Arc::new(AckTracker::new(19));
        again.track("t", id, a.to_str().unwrap(), Fingerprint::of_file(&f).unwrap(), live.clone());
        let gz =
            Row { size: u64::MAX, first: Fingerprint::of_bytes(b"first file's lines\n"), near: Fingerprint::default() };
        let (offset, tracker) = again.copy_of("t", &a.with_file_name("app.log.1.gz"), &gz).expect("a copy");
        assert_eq!(offset, 19);
        assert!(tracker.is_some_and(|t| Arc::ptr_eq(&t, &live)), "the open reading, not the saved position");
    }

    #[test]
    fn an_inode_reused_by_another_paths_file_keeps_what_was_known_of_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, _f) = tracked(&cp, dir.path(), "a.log", b"first file's lines\n");
        let a = dir.path().join("a.log");
        t.register(19);
        t.close();
        // a.log's file is compressed and deleted; b.log's copy gets its inode.
        let b = dir.path().join("b.log");
        cp.track("t", id, b.to_str().unwrap(), Fingerprint { len: 5, hash: 9 }, Arc::new(AckTracker::new(0)));
        let gz =
            Row { size: u64::MAX, first: Fingerprint::of_bytes(b"first file's lines\n"), near: Fingerprint::default() };
        let copy = cp.copy_of("t", &a.with_file_name("a.log.1.gz"), &gz);
        assert_eq!(copy.map(|(offset, _)| offset), Some(19), "the .gz is known as a.log's content, read to its end");
        // And after a restart (the soak's seed 11 was killed 1.6 s later): a.log's lineage still
        // has the content, under a retired identity, for the `.gz` to be found as its copy.
        t.ack(0);
        cp.save().unwrap();
        let again = Checkpoints::open(dir.path()).unwrap();
        let lineage = again.lineage(a.to_str().unwrap(), "t", None);
        let past: Vec<(u64, Fingerprint)> = lineage.past.iter().map(|p| (p.offset, p.fp)).collect();
        assert_eq!(past, [(19, Fingerprint::of_bytes(b"first file's lines\n"))]);
        assert_ne!(lineage.past[0].id, id, "not under the inode b.log has now");
        let b_lineage = again.lineage(b.to_str().unwrap(), "t", None);
        assert_eq!(b_lineage.past.iter().map(|p| p.id).collect::<Vec<_>>(), [id]);
    }

    #[test]
    fn a_cut_whose_copy_was_not_found_is_known_to_its_copy_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (t, id, f) = tracked(&cp, dir.path(), "app.log", b"one\ntwo\n");
        let a = dir.path().join("app.log");
        t.register(8);
        t.ack(0);
        // Cut (copytruncate) with no copy to be found: the same file goes on with new content.
        cp.keep_cut("t", id);
        t.close();
        let fresh = Arc::new(AckTracker::new(0));
        cp.track("t", id, a.to_str().unwrap(), Fingerprint { len: 4, hash: 7 }, fresh.clone());
        fresh.register(4);
        fresh.ack(0);
        cp.save().unwrap();
        drop(f);
        let again = Checkpoints::open(dir.path()).unwrap();
        let copy = dir.path().join("app.log.1");
        std::fs::write(&copy, b"one\ntwo\nlate\n").unwrap();
        let found = again.copy_of("t", &copy, &File::open(&copy).unwrap());
        assert_eq!(found.map(|c| c.0), Some(8), "read on from what was read before the cut");
    }

    #[test]
    fn a_committed_position_gives_way_to_a_file_that_took_its_inode_since() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let id = FileId { dev: 1, ino: 7 };
        let fp = |n: u64, h: u64| Fingerprint { len: n, hash: h };
        let at = |f: Fingerprint, offset: u64, updated: u64| {
            Entry::new("/l/app.log", "t", id, f, offset, Fingerprint::default(), updated)
        };
        let adopted = |saved: Entry, committed: Entry| {
            let mut st = cp.lock();
            st.saved.clear();
            st.set(("t".into(), id), saved);
            drop(st);
            cp.adopt(vec![committed]);
            cp.lock().saved[&("t".to_string(), id)].clone()
        };
        // The same file: the committed position is the authority, behind or ahead.
        assert_eq!(adopted(at(fp(256, 1), 100, 50), at(fp(256, 1), 900, 40)).offset, 900);
        // Its fingerprint grew since the commit: still the same file, maybe.
        assert_eq!(adopted(at(fp(256, 2), 100, 50), at(fp(20, 1), 900, 40)).offset, 900);
        // Another file took the inode after the commit (a copy, nothing of its own committed).
        let copy = adopted(at(fp(256, 2), 100, 50), at(fp(256, 1), 900, 40));
        assert_eq!((copy.fp_hash, copy.offset), (2, 100), "the copy's own position");
        let retired = cp.lock().saved.values().filter(|e| e.is_retired()).map(|e| e.offset).collect::<Vec<_>>();
        assert_eq!(retired, [900], "the old content still known, retired");
        // Committed after the store's entry was saved: the committed one is the newer file's.
        assert_eq!(adopted(at(fp(256, 2), 100, 40), at(fp(256, 1), 900, 50)).fp_hash, 1);
        // A small file of another path had the inode (a fingerprint of a few bytes): the copy's.
        let mut small = at(fp(3, 1), 3, 40);
        small.path = "/l/small.log".into();
        assert_eq!(adopted(at(fp(220, 2), 0, 50), small).fp_hash, 2, "the longer fingerprint is another path's file");
    }

    #[test]
    fn a_copy_saved_behind_its_originals_committed_position_is_told_of_it() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let (old, near, banner) =
            (Fingerprint { len: 8, hash: 1 }, Fingerprint { len: 8, hash: 5 }, Fingerprint { len: 8, hash: 6 });
        let (original, copy, other) = (FileId { dev: 1, ino: 1 }, FileId { dev: 1, ino: 2 }, FileId { dev: 1, ino: 3 });
        let entry = |id, fp, offset, near| Entry::new("/l/app.log", "t", id, fp, offset, near, 10);
        {
            let mut st = cp.lock();
            // The original, cut and holding other bytes now: its committed position, adopted.
            st.set(("t".into(), original), entry(original, old, 41_300, near));
            // The copy, saved by checkpoints.json before that commit was acknowledged.
            st.set(("t".into(), copy), entry(copy, old, 39_900, banner));
            // Another generation, other first bytes.
            st.set(("t".into(), other), entry(other, banner, 90_000, near));
        }
        let lineage = cp.lineage("/l/app.log", "t", Some(original));
        let of = |id| lineage.past.iter().find(|p| p.id == id).unwrap();
        assert_eq!(of(copy).further, [(41_300, near)]);
        assert!(of(other).further.is_empty(), "other content");
        // A path of many generations that all begin alike: each is told of the furthest few.
        {
            let mut st = cp.lock();
            for ino in 10..110 {
                let id = FileId { dev: 1, ino };
                st.set(("t".into(), id), entry(id, banner, ino * 10, near));
            }
        }
        let lineage = cp.lineage("/l/app.log", "t", Some(original));
        let first = lineage.past.iter().find(|p| p.id.ino == 10).unwrap();
        assert_eq!(first.further.iter().map(|f| f.0).collect::<Vec<_>>(), [90_000, 1_090, 1_080, 1_070]);
    }

    #[test]
    fn an_entry_is_forgotten_after_a_day_unless_its_file_is_still_there() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpoints::open(dir.path()).unwrap();
        let path = dir.path().join("app.log");
        let text = path.to_str().unwrap();
        // Renamed by logrotate: app.log.1 waits a rotation period for delaycompress.
        std::fs::write(dir.path().join("app.log.1"), b"old\n").unwrap();
        let kept = FileId::of(&std::fs::metadata(dir.path().join("app.log.1")).unwrap());
        let gone = FileId { dev: kept.dev, ino: kept.ino + 1_000_000 };
        let fp = Fingerprint { len: 4, hash: 1 };
        cp.skip_old("t", kept, text, fp, 4);
        cp.skip_old("t", gone, text, fp, 4);
        let later = now_secs() + FORGET_AFTER.as_secs() + 1;
        cp.lock().forget(later);
        let keys: Vec<FileId> = cp.lock().saved.keys().map(|k| k.1).collect();
        assert_eq!(keys, vec![kept]);
        assert_eq!(cp.lock().saved[&("t".to_string(), kept)].updated, later, "counts as seen now");
        // Once it is gone (compressed into a new file, or deleted), a day later it is forgotten;
        // the same inode under a name that is no generation of the path does not keep it.
        std::fs::rename(dir.path().join("app.log.1"), dir.path().join("unrelated.txt")).unwrap();
        cp.lock().forget(later + FORGET_AFTER.as_secs());
        assert!(cp.lock().saved.is_empty());
    }

    #[test]
    fn a_failed_write_is_tried_again_not_forgotten() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        let cp = Checkpoints::open(&dir).unwrap();
        let (t, _, _) = tracked(&cp, root.path(), "a.log", b"one\n");
        let s = t.register(4);
        t.ack(s);
        // The store's directory cannot be written (here: it is a file now; on a host, ENOSPC).
        std::fs::remove_dir_all(&dir).unwrap();
        std::fs::write(&dir, b"").unwrap();
        assert!(cp.save().is_err());
        assert!(cp.save().is_err(), "still owed, so still an error");
        std::fs::remove_file(&dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        assert!(cp.save().unwrap(), "written once the disk takes it");
    }
}
