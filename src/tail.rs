//! The per-file watcher: one thread follows one path and sends its lines to one topic.
//!
//! Exists to hold everything about reading a file that keeps changing under us:
//! - appends are read with `pread` from a remembered offset; only complete lines are sent (an
//!   unfinished last line waits for its newline);
//! - lines longer than `max_line_bytes` are split into pieces of that size (counted), so memory
//!   per file stays bounded; bytes are shipped as they are, UTF-8 or not;
//! - rename rotation: when the path points at a new file, the old one is first read to its end,
//!   then kept open and drained for `rotate_wait` (lines written to it after the rename are
//!   shipped too) while the new file is read from its start;
//! - copytruncate: a file that shrinks below our offset is read again from 0;
//! - delete and recreate, and files that appear after start, are picked up;
//! - quiet files cost a stat per `poll_interval`, no busy loop.
//!
//! The tail's state (`TailState`, with its open files and buffers) lives outside the thread so
//! that when the supervisor restarts a panicked tail, the new thread continues from the last line
//! handed to the producer: no line is lost or sent twice by the restart.

use std::fs::File;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ack::AckTracker;
use crate::checkpoint::{Checkpoints, Known};
use crate::config::{MessageKey, StartPosition};
use crate::desired::TailSpec;
use crate::failpoint;
use crate::fingerprint::{find_by_id, rotated_siblings, FileId, Fingerprint};
use crate::sink::{Batch, Sink, Stopped};
use crate::waker::Doorbell;

/// Bytes read from a file per `pread`.
const CHUNK: usize = 64 * 1024;
/// Bytes read from one file before the loop looks at its stop flag and other files again.
const BUDGET: usize = 4 * 1024 * 1024;
/// First wait after a poll that found nothing; doubles up to `poll_interval`.
const FIRST_IDLE: Duration = Duration::from_millis(5);
/// The longest wait of a tail whose file change notifications work (inotify rings it at once;
/// the poll is only a safety net).
const NOTIFIED_IDLE: Duration = Duration::from_secs(10);

/// Settings every tail shares.
#[derive(Debug, Clone)]
pub struct TailSettings {
    pub max_line_bytes: usize,
    pub rotate_wait: Duration,
    pub poll_interval: Duration,
    /// After reading data, a tail lets writes gather this long before it looks again: one read
    /// per burst instead of one wakeup per write, for at most this much added latency.
    pub batch_wait: Duration,
    pub start_position: StartPosition,
    pub message_key: MessageKey,
}

/// What every tail needs from the rest of the agent.
pub struct TailCtx {
    pub sink: Arc<Sink>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub waker: crate::waker::Waker,
    pub checkpoints: Arc<Checkpoints>,
    pub settings: TailSettings,
}

/// Counters of one tail, for logs and metrics.
#[derive(Default, Debug)]
pub struct TailStats {
    pub lines: AtomicU64,
    pub bytes: AtomicU64,
    pub split: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    /// Size of the current file and the offset read in it (lag = size - offset).
    pub size: AtomicU64,
    pub offset: AtomicU64,
    /// The last problem (cannot open, read error), until it goes away.
    pub last_error: Mutex<Option<String>>,
}

/// One open file being read.
struct Reader {
    file: File,
    id: FileId,
    fp: Fingerprint,
    tracker: Arc<AckTracker>,
    /// Where it was opened (a rotated file keeps the name it had then).
    opened_as: PathBuf,
    /// File offset just past `buf`.
    read_offset: u64,
    /// Bytes read and not yet sent start at `buf[pos]`.
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` is known to hold no newline.
    scanned: usize,
    /// Unix seconds when it was opened.
    opened_at: u64,
    /// The file's size at the last end-of-file check (its first bytes are compared only when
    /// it changed).
    checked_size: u64,
    /// When the reader last reached its end with nothing new (draining readers close after
    /// `rotate_wait` of this).
    idle_since: Option<Instant>,
}

impl Reader {
    fn offset_of(&self, idx: usize) -> u64 {
        self.read_offset - (self.buf.len() - idx) as u64
    }
}

/// Everything a tail knows; survives a panic of its thread.
pub struct TailState {
    spec: TailSpec,
    path_text: String,
    topic: Arc<str>,
    key: Option<Arc<[u8]>>,
    started: bool,
    current: Option<Reader>,
    /// Rotated-away files still being read to their end.
    draining: Vec<Reader>,
    /// The last problem logged, so the same one is not logged on every poll.
    last_problem: Option<String>,
    pub stats: Arc<TailStats>,
}

/// The coordinator's handle on a running tail.
pub struct Tail {
    pub spec: TailSpec,
    pub name: String,
    /// Unique among the tails of this process.
    pub generation: u64,
    stop: Arc<AtomicBool>,
    bell: Arc<Doorbell>,
    /// Change notifications cover this file (the poll can be rare).
    notified: Arc<AtomicBool>,
    state: Arc<Mutex<TailState>>,
    running: Arc<AtomicBool>,
    pub stats: Arc<TailStats>,
}

impl Tail {
    pub fn new(spec: TailSpec, generation: u64, message_key: MessageKey) -> Tail {
        let key: Option<Arc<[u8]>> = match message_key {
            MessageKey::Path => Some(spec.path.as_os_str().as_bytes().into()),
            MessageKey::Topic => Some(spec.topic.as_bytes().into()),
            MessageKey::None => None,
        };
        let stats = Arc::new(TailStats::default());
        let state = TailState {
            path_text: spec.path.to_string_lossy().into_owned(),
            topic: spec.topic.as_str().into(),
            spec: spec.clone(),
            key,
            started: false,
            current: None,
            draining: Vec::new(),
            last_problem: None,
            stats: stats.clone(),
        };
        Tail {
            name: format!("tail#{generation}:{}", spec.path.display()),
            generation,
            spec,
            stop: Arc::new(AtomicBool::new(false)),
            bell: Arc::default(),
            notified: Arc::default(),
            state: Arc::new(Mutex::new(state)),
            running: Arc::new(AtomicBool::new(false)),
            stats,
        }
    }

    /// The body the supervisor runs (again, after a panic).
    pub fn worker(&self, ctx: Arc<TailCtx>) -> crate::supervisor::WorkerFn {
        let (state, stop, bell, running, notified) =
            (self.state.clone(), self.stop.clone(), self.bell.clone(), self.running.clone(), self.notified.clone());
        Arc::new(move || {
            running.store(true, Ordering::SeqCst);
            let _flag = ClearOnDrop(&running);
            run_tail(&ctx, &state, &stop, &bell, &notified);
        })
    }

    /// Asks the thread to stop; it finishes the line it is sending and exits.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.bell.ring();
    }

    /// Registers the tail with the change notifications.
    pub fn watch(&self, waker: &crate::waker::Waker) {
        let covered = waker.register(&self.spec.path, self.generation, self.bell.clone());
        self.notified.store(covered, Ordering::SeqCst);
    }

    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }
}

struct ClearOnDrop<'a>(&'a AtomicBool);
impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// The tail thread's loop: read what is new, send it, wait a little when there is nothing.
pub fn run_tail(ctx: &TailCtx, state: &Mutex<TailState>, stop: &AtomicBool, bell: &Doorbell, notified: &AtomicBool) {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    if !st.started {
        st.open_at_start(ctx);
        st.started = true;
    }
    let mut idle = FIRST_IDLE;
    let mut read_data = false;
    while !stop.load(Ordering::SeqCst) {
        match st.poll(ctx, stop) {
            Ok(true) => {
                idle = FIRST_IDLE;
                read_data = true;
            }
            Ok(false) if read_data => {
                // Caught up after reading: let the next writes gather, whatever rings meanwhile.
                read_data = false;
                if !ctx.settings.batch_wait.is_zero() {
                    std::thread::sleep(ctx.settings.batch_wait);
                }
            }
            Ok(false) => {
                bell.wait(idle);
                // Rotated files being drained have names the waker does not know: poll them.
                let ceiling = if notified.load(Ordering::Relaxed) && st.draining.is_empty() {
                    ctx.settings.poll_interval.max(NOTIFIED_IDLE)
                } else {
                    ctx.settings.poll_interval
                };
                idle = (idle * 2).min(ceiling);
            }
            Err(Stopped) => break,
        }
    }
    st.release(ctx);
}

/// A batch's registrations with the tracker, taken back unless the batch was handed over (also
/// when the thread panics first), so a checkpoint never waits for a line that was never sent.
struct Pending {
    tracker: Arc<AckTracker>,
    first: u64,
    armed: bool,
}
impl Drop for Pending {
    fn drop(&mut self) {
        if self.armed {
            self.tracker.cancel_from(self.first);
        }
    }
}

/// Hands a batch over; on `Stopped` its registrations are taken back.
fn submit(ctx: &TailCtx, batch: Batch, stop: &AtomicBool) -> Result<(), Stopped> {
    let Some(&(_, _, first)) = batch.lines.first() else { return Ok(()) };
    let mut pending = Pending { tracker: batch.tracker.clone(), first, armed: true };
    ctx.sink.submit(batch, stop).map_err(|(stopped, _)| stopped)?;
    pending.armed = false;
    Ok(())
}

impl TailState {
    fn problem(&mut self, text: String) {
        if self.last_problem.as_ref() != Some(&text) {
            log::warn!("{text}");
            *self.stats.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
            self.last_problem = Some(text);
        }
    }

    fn clear_problem(&mut self) {
        if self.last_problem.take().is_some() {
            *self.stats.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Opens a reader on `file` at `offset`, registering its tracker with the checkpointer.
    fn reader(
        &self,
        ctx: &TailCtx,
        file: File,
        opened_as: PathBuf,
        offset: u64,
        tracker: Option<Arc<AckTracker>>,
    ) -> Reader {
        let id = FileId::of(&file.metadata().expect("fstat of an open file"));
        let fp = Fingerprint::of_file(&file).unwrap_or_default();
        let tracker = tracker.unwrap_or_else(|| Arc::new(AckTracker::new(offset)));
        ctx.checkpoints.track(&self.spec.topic, id, &self.path_text, fp, tracker.clone());
        Reader {
            file,
            id,
            fp,
            tracker,
            opened_as,
            read_offset: offset,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            opened_at: unix_now(),
            checked_size: offset,
            idle_since: None,
        }
    }

    /// Where to read `file` from, given what the checkpointer knows; `unknown` when nothing is.
    /// A file that was truncated or replaced since it was read is read from 0, after the unread
    /// end of its old content, if a copy of it lies next to it (copytruncate).
    fn resume_point(&mut self, ctx: &TailCtx, file: &File, unknown: u64) -> (u64, Option<Arc<AckTracker>>) {
        let Ok(meta) = file.metadata() else { return (unknown, None) };
        let id = FileId::of(&meta);
        match ctx.checkpoints.resolve(&self.spec.topic, id, file, meta.len()) {
            Known::Live(t) => (t.sent(), Some(t)),
            Known::Saved(off) => (off, None),
            Known::Replaced { fp, offset } => {
                log::info!(
                    "{}: the file no longer holds what was read up to offset {offset} (truncated or replaced); \
                     reading it from the start",
                    self.path_text
                );
                self.drain_copy(ctx, fp, offset, id, None);
                (0, None)
            }
            Known::Unknown => (unknown, None),
        }
    }

    /// After a truncation: finds the copy of the old content (a sibling that begins with the same
    /// bytes and is at least `offset` long) and drains it from `offset`. True when found. The copy
    /// holds the same bytes at the same offsets, so a running reader's `tracker` carries over:
    /// lines of the old content still in flight are checkpointed against the copy.
    fn drain_copy(
        &mut self,
        ctx: &TailCtx,
        fp: Fingerprint,
        offset: u64,
        not: FileId,
        tracker: Option<Arc<AckTracker>>,
    ) -> bool {
        if fp.len == 0 || offset == 0 {
            return false;
        }
        for path in rotated_siblings(&self.spec.path) {
            let Ok(file) = File::open(&path) else { continue };
            let Ok(meta) = file.metadata() else { continue };
            let id = FileId::of(&meta);
            if id == not || meta.len() < offset || self.draining.iter().any(|r| r.id == id) || !fp.matches(&file) {
                continue;
            }
            log::info!(
                "{}: {} holds the old content; reading its last {} bytes first",
                self.path_text,
                path.display(),
                meta.len() - offset
            );
            let r = self.reader(ctx, file, path, offset, tracker);
            self.draining.push(r);
            return true;
        }
        false
    }

    /// Reads, from their start, rotated files next to the path that were never read and were
    /// written since `since` (unix seconds): generations that rotated by while the agent was
    /// down or behind. Known files, compressed ones and older ones are left alone.
    fn adopt_unseen(&mut self, ctx: &TailCtx, since: u64) {
        let current = self.current.as_ref().map(|r| r.id);
        for path in rotated_siblings(&self.spec.path) {
            if compressed(&path) {
                continue;
            }
            let Ok(file) = File::open(&path) else { continue };
            let Ok(meta) = file.metadata() else { continue };
            let id = FileId::of(&meta);
            let mtime = meta.mtime().max(0) as u64;
            if !meta.is_file()
                || Some(id) == current
                || self.draining.iter().any(|r| r.id == id)
                || ctx.checkpoints.is_known(&self.spec.topic, id)
                || mtime + 1 < since
            {
                continue;
            }
            log::info!(
                "{}: {} was rotated by unread while logcatch was down or behind; reading all {} bytes",
                self.path_text,
                path.display(),
                meta.len()
            );
            let r = self.reader(ctx, file, path, 0, None);
            self.draining.push(r);
        }
    }

    /// First open: resume from checkpoints, first draining files rotated away while we were
    /// down; a file never seen starts at `start_position` (a path with history: at its start).
    fn open_at_start(&mut self, ctx: &TailCtx) {
        let current = match File::open(&self.spec.path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_file()) => Some(f),
            Ok(_) => {
                self.problem(format!("{}: not a regular file; waiting for one", self.path_text));
                None
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                self.problem(format!("{}: cannot open: {e}; retrying", self.path_text));
                None
            }
        };
        let current_id = current.as_ref().and_then(|f| f.metadata().ok()).map(|m| FileId::of(&m));
        let had_history = ctx.checkpoints.knows_path(&self.path_text, &self.spec.topic);
        let last_update = ctx.checkpoints.last_update(&self.path_text, &self.spec.topic);
        for entry in ctx.checkpoints.history(&self.path_text, &self.spec.topic, current_id) {
            let Some((found, file)) = find_by_id(&self.spec.path, entry.id()) else {
                continue;
            };
            if !entry.fingerprint().matches(&file) {
                continue;
            }
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            if size > entry.offset {
                log::info!(
                    "{}: {} was rotated away while logcatch was down; reading its last {} bytes first",
                    self.path_text,
                    found.display(),
                    size - entry.offset
                );
                let r = self.reader(ctx, file, found, entry.offset, None);
                self.draining.push(r);
            }
        }
        if let Some(file) = current {
            let size = file.metadata().map(|m| m.len()).unwrap_or(0);
            let unknown = match (had_history, ctx.settings.start_position) {
                (true, _) | (false, StartPosition::Beginning) => 0,
                (false, StartPosition::End) => size,
            };
            let (offset, tracker) = self.resume_point(ctx, &file, unknown);
            log::info!("tail {} started at offset {offset} of {size}", self.spec);
            let r = self.reader(ctx, file, self.spec.path.clone(), offset, tracker);
            self.current = Some(r);
        } else {
            log::info!("tail {} waiting for the file to appear", self.spec);
        }
        if let Some(since) = last_update {
            self.adopt_unseen(ctx, since);
        }
    }

    /// One pass over the draining files and the current one. Ok(true) when anything was read
    /// or changed.
    fn poll(&mut self, ctx: &TailCtx, stop: &AtomicBool) -> Result<bool, Stopped> {
        let mut progressed = false;

        let mut i = 0;
        while i < self.draining.len() {
            let n = self.read_some(ctx, Slot::Draining(i), stop)?;
            let r = &mut self.draining[i];
            if n > 0 {
                progressed = true;
                r.idle_since = None;
            } else if r.idle_since.get_or_insert_with(Instant::now).elapsed() >= ctx.settings.rotate_wait {
                let r = self.draining.remove(i);
                self.finish(ctx, r, stop)?;
                continue;
            }
            i += 1;
        }

        if self.current.is_none() {
            return Ok(self.try_open_current(ctx) || progressed);
        }
        let n = self.read_some(ctx, Slot::Current, stop)?;
        if n > 0 {
            return Ok(true);
        }
        Ok(self.check_current(ctx, stop)? || progressed)
    }

    /// The current file is at its end: has the path moved on to another file, or did it shrink?
    fn check_current(&mut self, ctx: &TailCtx, stop: &AtomicBool) -> Result<bool, Stopped> {
        let r = self.current.as_mut().expect("current reader");
        match std::fs::metadata(&self.spec.path) {
            Ok(meta) if FileId::of(&meta) != r.id => {
                // Renamed away (or deleted) and a new file took the path: keep draining the old
                // one, read the new one from its start.
                let old = self.current.take().expect("current reader");
                log::info!(
                    "{}: rotated (the path now names another file); draining the old file for up to {:?}",
                    self.path_text,
                    ctx.settings.rotate_wait
                );
                self.stats.rotations.fetch_add(1, Ordering::Relaxed);
                let since = old.opened_at;
                self.draining.push(old);
                self.try_open_current(ctx);
                self.adopt_unseen(ctx, since);
                Ok(true)
            }
            Ok(_) => {
                let size = r.file.metadata().map(|m| m.len()).unwrap_or(r.read_offset);
                let changed = size != r.checked_size;
                r.checked_size = size;
                if size < r.read_offset || (changed && !r.fp.matches(&r.file)) {
                    log::info!(
                        "{}: truncated ({} -> {size} bytes; copytruncate?); reading again from the start",
                        self.path_text,
                        r.read_offset
                    );
                    self.stats.truncations.fetch_add(1, Ordering::Relaxed);
                    let old = self.current.take().expect("current reader");
                    let file = old.file.try_clone();
                    // The unsent end of the old content (a partial line) is in the copy, if any.
                    let (unsent, since) = (old.offset_of(old.pos), old.opened_at);
                    if !self.drain_copy(ctx, old.fp, unsent, old.id, Some(old.tracker.clone())) {
                        self.finish(ctx, old, stop)?;
                    }
                    self.adopt_unseen(ctx, since);
                    if let Ok(file) = file {
                        let r = self.reader(ctx, file, self.spec.path.clone(), 0, Some(Arc::new(AckTracker::new(0))));
                        self.current = Some(r);
                    }
                    return Ok(true);
                }
                if r.fp.can_grow(size) {
                    if let Ok(fp) = Fingerprint::of_file(&r.file) {
                        r.fp = fp;
                        ctx.checkpoints.update_fingerprint(&self.spec.topic, r.id, fp);
                    }
                }
                self.clear_problem();
                Ok(false)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log::info!("{}: removed or renamed away; draining it and waiting for a new file", self.path_text);
                self.stats.rotations.fetch_add(1, Ordering::Relaxed);
                let old = self.current.take().expect("current reader");
                self.draining.push(old);
                Ok(true)
            }
            Err(e) => {
                self.problem(format!("{}: cannot stat: {e}", self.path_text));
                Ok(false)
            }
        }
    }

    /// The path has no open reader: open the file if it (now) exists.
    fn try_open_current(&mut self, ctx: &TailCtx) -> bool {
        let file = match File::open(&self.spec.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return false,
            Err(e) => {
                self.problem(format!("{}: cannot open: {e}; retrying", self.path_text));
                return false;
            }
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if !meta.is_file() {
            self.problem(format!("{}: not a regular file; waiting for one", self.path_text));
            return false;
        }
        let id = FileId::of(&meta);
        // The same file came back under the path (renamed back): it is current again.
        if let Some(i) = self.draining.iter().position(|r| r.id == id) {
            self.current = Some(self.draining.remove(i));
            return true;
        }
        self.clear_problem();
        // A file that appears while we watch is new: all of it is read.
        let (offset, tracker) = self.resume_point(ctx, &file, 0);
        log::info!("tail {}: new file (inode {}), reading from offset {offset}", self.spec, meta.ino());
        let r = self.reader(ctx, file, self.spec.path.clone(), offset, tracker);
        self.current = Some(r);
        true
    }

    /// Reads up to `BUDGET` bytes of one reader and sends every complete line. Returns the
    /// number of bytes read.
    fn read_some(&mut self, ctx: &TailCtx, slot: Slot, stop: &AtomicBool) -> Result<usize, Stopped> {
        let max = ctx.settings.max_line_bytes;
        let stats = self.stats.clone();
        let current = matches!(slot, Slot::Current);
        let mut total = 0;
        loop {
            // Send what is buffered first (there may be lines left from a stopped send).
            self.send_lines(ctx, slot, stop)?;
            let r = self.slot(slot);
            if r.pos > 0 {
                r.buf.drain(..r.pos);
                r.scanned -= r.pos;
                r.pos = 0;
            }
            if total >= BUDGET {
                return Ok(total);
            }
            // Read only what is there: a quiet file costs one fstat, and no buffer.
            let size = r.file.metadata().map(|m| m.len()).unwrap_or(r.read_offset);
            if current {
                stats.size.store(size, Ordering::Relaxed);
                stats.offset.store(r.read_offset, Ordering::Relaxed);
            }
            if size <= r.read_offset {
                if r.buf.is_empty() && r.buf.capacity() > 0 {
                    r.buf = Vec::new();
                }
                return Ok(total);
            }
            let len = r.buf.len();
            let want = (size - r.read_offset).min(CHUNK.min(max + 1) as u64) as usize;
            r.buf.resize(len + want, 0);
            let n = match r.file.read_at(&mut r.buf[len..], r.read_offset) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    r.buf.truncate(len);
                    let text = format!("{}: read error: {e}", r.opened_as.display());
                    self.problem(text);
                    return Ok(total);
                }
            };
            r.buf.truncate(len + n);
            r.read_offset += n as u64;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    fn slot(&mut self, slot: Slot) -> &mut Reader {
        match slot {
            Slot::Current => self.current.as_mut().expect("current reader"),
            Slot::Draining(i) => &mut self.draining[i],
        }
    }

    /// Sends every complete line in the reader's buffer (and pieces of over-long ones), in
    /// batches handed to the sending thread. The reader's position moves only once a batch is
    /// handed over, so a stop or a panic never skips or repeats a line.
    fn send_lines(&mut self, ctx: &TailCtx, slot: Slot, stop: &AtomicBool) -> Result<(), Stopped> {
        let max = ctx.settings.max_line_bytes;
        let (topic, key, stats) = (self.topic.clone(), self.key.clone(), self.stats.clone());
        loop {
            let r = match slot {
                Slot::Current => self.current.as_mut().expect("current reader"),
                Slot::Draining(i) => &mut self.draining[i],
            };
            let mut batch = Batch::new(topic.clone(), key.clone(), r.tracker.clone());
            let (mut pos, mut scanned, mut split_lines, mut bytes) = (r.pos, r.scanned, 0u64, 0u64);
            while !batch.full() {
                let newline = r.buf[scanned..].iter().position(|&b| b == b'\n').map(|i| scanned + i);
                let (end, consumed, split) = match newline {
                    Some(nl) if nl - pos <= max => (nl, nl + 1, false),
                    _ if r.buf.len() - pos > max || newline.is_some() => (pos + max, pos + max, true),
                    _ => {
                        scanned = r.buf.len();
                        break;
                    }
                };
                let mut line = &r.buf[pos..end];
                if !split && line.last() == Some(&b'\r') {
                    line = &line[..line.len() - 1];
                }
                let seq = r.tracker.register(r.offset_of(consumed));
                batch.push(line, seq);
                bytes += line.len() as u64;
                split_lines += u64::from(split);
                pos = consumed;
                scanned = scanned.max(pos);
            }
            let n = batch.lines.len() as u64;
            if n == 0 {
                r.scanned = scanned;
                return Ok(());
            }
            submit(ctx, batch, stop)?;
            r.pos = pos;
            r.scanned = scanned;
            stats.lines.fetch_add(n, Ordering::Relaxed);
            stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            stats.split.fetch_add(split_lines, Ordering::Relaxed);
            for _ in 0..n {
                failpoint::hit("tail.sent", &self.path_text);
            }
        }
    }

    /// Closes a reader whose file is done: an unfinished last line is sent as it is (nothing
    /// more will complete it), and its tracker is released to the checkpointer.
    fn finish(&mut self, ctx: &TailCtx, mut r: Reader, stop: &AtomicBool) -> Result<(), Stopped> {
        if r.pos < r.buf.len() {
            let mut batch = Batch::new(self.topic.clone(), self.key.clone(), r.tracker.clone());
            batch.push(&r.buf[r.pos..], r.tracker.register(r.read_offset));
            if let Err(s) = submit(ctx, batch, stop) {
                self.draining.push(r);
                return Err(s);
            }
            self.stats.lines.fetch_add(1, Ordering::Relaxed);
            r.pos = r.buf.len();
        }
        log::info!("{}: finished reading {} at offset {}", self.path_text, r.opened_as.display(), r.read_offset);
        r.tracker.close();
        Ok(())
    }

    /// The tail is stopping: its files are closed, their trackers handed to the checkpointer.
    fn release(&mut self, _ctx: &TailCtx) {
        for r in self.current.take().into_iter().chain(self.draining.drain(..)) {
            r.tracker.close();
        }
        self.started = false;
        log::info!("tail {} stopped", self.spec);
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Current,
    Draining(usize),
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Rotated copies that are compressed are not logs to ship.
fn compressed(path: &Path) -> bool {
    let name = path.to_string_lossy();
    [".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4"].iter().any(|ext| name.ends_with(ext))
}
