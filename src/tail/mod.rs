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
//! - a rotated file is kept open until its lines are acknowledged (logrotate may compress or
//!   delete it as soon as it is closed), and a generation compressed before it was read to its
//!   end (the agent down, or paused by a broker away) is read from the compressed file
//!   (`generation`);
//! - copytruncate: a file that shrinks below our offset is read again from 0, after the rest of
//!   its old content from the copy; a tail that cannot read its file (held back by a full sink,
//!   or behind on older generations) still looks at it (`look_at_current`, every `HOLD_LOOK`
//!   when held), so that the copy is open before a later rotation can rename over it;
//! - delete and recreate, and files that appear after start, are picked up;
//! - a tail with nothing to read arms a one-shot change notification on its file (`waker`) and
//!   sleeps until the next write, or at most 5 min (`poll_interval` where notifications cannot
//!   cover the file): no busy loop; a busy file (lines twice within `2 x batch_wait`) is read
//!   every `batch_wait` and costs no notification at all, a line after a quiet spell is read at
//!   once; a file with
//!   nothing new for `close_inactive` is closed (its descriptor freed), opened again when it
//!   changes;
//! - a tail quiet for `2 x batch_wait` with nothing pending *parks*: its thread ends, its state
//!   stays, and the next ring of its bell has the looker (`run_looker`, one thread for every
//!   parked file) read what was appended, or start a thread on it when more happened;
//! - a file is opened only with a permit of the open-file budget (`budget`), and only when no
//!   other tail has it open (a claim in `claims`, released when its reader is dropped): a rotated
//!   file that a glob also matches is read by one tail, never two;
//! - a tail *retired* by the file server (its file vanished from a glob) ends by itself once
//!   nothing is left to drain.
//!
//! Parts with one job each, after Vector's file source: `framer` (where the next line of the
//! buffer lies, pure, property-tested), `change` (what happened to the file: rotated, truncated,
//! vanished..., pure), `resume` (from which offset a file is read, pure, fed by one query to the
//! position store), `generation` (a rotated file compressed or not, read as the original), `open` (opening the path's files confined and asking the store where to read
//! them from: readers or the reason there are none), `reader` (one open file: reads its bytes and
//! ships its lines), the tail's states in one `enum` (`Current`, changed only by
//! `TailState::enter`), and `model`, a model-based test that runs random sequences of writes,
//! rotations, copytruncates, deletes, restarts and kills against this code. Which tail holds
//! which file is `crate::claims`; where reading got to is `crate::checkpoint`.
//!
//! The tail's state (`TailState`, with its open files and buffers) lives outside the thread so
//! that when the supervisor restarts a panicked tail, the new thread continues from the last line
//! handed to the producer: no line is lost or sent twice by the restart.

mod change;
mod framer;
mod generation;
#[cfg(test)]
mod model;
mod open;
mod reader;
mod resume;

use change::{classify, Change, Observed};
use generation::Generation;
use open::{NotOpen, Opener};
use reader::{Lane, Reader, BUDGET, HOLD_LOOK};

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::ack::AckTracker;
use crate::budget::FileBudget;
use crate::checkpoint::Checkpoints;
use crate::claims::Claims;
use crate::config::{MessageKey, StartPosition};
use crate::control::Stop;
use crate::desired::TailSpec;
use crate::fingerprint::{FileId, Probe, Stamp};
use crate::metrics::TailStats;
use crate::multiline;
use crate::sink::{Outlet, Stopped};
use crate::waker::Doorbell;

/// First wait after a poll that found nothing; doubles up to `poll_interval`.
const FIRST_IDLE: Duration = Duration::from_millis(5);
/// The longest wait of a tail whose file change notifications work (inotify rings it at once;
/// the poll is only a safety net: files on network filesystems, whose other hosts' writes raise
/// no event, are polled at `poll_interval` instead). As long as `close_inactive`'s default. Idle
/// files' main cost (schedstat of 1,000 idle files): at 10 s, 100 wakeups a second; at 60 s, a
/// round of 1,000 wakeups a minute, ~50 ms of CPU (0.08% of a core) against 0.095% for the
/// rest of the agent.
const NOTIFIED_IDLE: Duration = Duration::from_secs(300);
/// How often a parked tail is looked at anyway (its safety net, as a sleeping one's), or sooner
/// when its file is due to be closed by `close_inactive`.
pub const PARKED_LOOK: Duration = NOTIFIED_IDLE;

/// A tail whose file is covered by change notifications, with nothing to send, to drain or to
/// wait for, ends its thread after this long without a line (issue 29): its state stays, and the
/// next ring of its bell (a write, a rotation, a stop, the file server's safety-net look every
/// `PARKED_LOOK`) has the looker (`look`) read what was appended, on the looker's thread, or
/// start a thread on it again. A file quiet for `2 x batch_wait` is not busy (see `run_tail`):
/// its next line is read at once either way, and the looker reads it for no thread wakeup
/// (1,000 files written a line every 100 ms: a wakeup of a thread per line was ~40 us of CPU,
/// most of it the scheduler's).
pub fn park_after(settings: &TailSettings) -> Duration {
    settings.batch_wait.saturating_mul(2)
}

/// How a parked tail asks for a thread again: the file server's, called with the tail's spec
/// and generation (by the looker, when a look finds more than appended lines).
pub type Wake = Arc<dyn Fn(&Arc<TailSpec>, u64) + Send + Sync>;

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
    /// A current file with nothing new for this long is closed, and opened again when it changes.
    pub close_inactive: Duration,
    /// This host's name (`message_key: host`, `host_path`).
    pub hostname: Arc<str>,
}

impl TailSettings {
    /// The tail's share of the config.
    pub fn from_config(c: &crate::config::Config) -> TailSettings {
        TailSettings {
            max_line_bytes: c.max_line_bytes,
            rotate_wait: c.rotate_wait,
            poll_interval: c.poll_interval,
            batch_wait: c.batch_wait,
            start_position: c.start_position,
            message_key: c.kafka.message_key,
            close_inactive: c.close_inactive,
            hostname: c.hostname.as_str().into(),
        }
    }
}

/// What every tail needs from the rest of the agent.
pub struct TailCtx {
    /// Asks the file server to start the thread of parked tail `generation` again.
    pub wake: Wake,
    /// The looker's mailbox: the rings of parked tails.
    pub looks: Arc<Looks>,
    /// Where batches go: the Kafka sink, or an in-memory outlet in the model tests.
    pub sink: Arc<dyn Outlet>,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub waker: crate::waker::Waker,
    pub checkpoints: Arc<Checkpoints>,
    /// Which tail reads which file now.
    pub claims: Arc<Claims>,
    pub files: Arc<FileBudget>,
    /// `rate_limit`'s buckets: the agent's and each source's.
    pub rates: Arc<crate::rate::Rates>,
    pub settings: TailSettings,
}

/// What one look at a tail's files (`poll`) found, in order: the larger wins when a look
/// covers several files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// Nothing new: the tail may arm its watch and sleep.
    Nothing,
    /// Lines were read, up to the end the file had at the look: the next writes may gather
    /// (`batch_wait`), or the tail arms its watch at once. Not looking again first saves a
    /// look per write of a busy file.
    CaughtUp,
    /// Look again at once: a read budget was spent, or the state changed (a file opened,
    /// rotated, cut).
    More,
}

impl Progress {
    /// What reading `n > 0` bytes of one file means.
    fn read(n: usize) -> Progress {
        if n >= BUDGET {
            Progress::More
        } else {
            Progress::CaughtUp
        }
    }

    /// Anything read or changed.
    pub fn any(self) -> bool {
        self != Progress::Nothing
    }
}

/// Everything a tail knows; survives a panic of its thread.
pub struct TailState {
    /// The file server's own: one allocation per tail, shared with its `Tail` and the metrics.
    spec: Arc<TailSpec>,
    /// The tail's generation: whose claim a file is.
    owner: u64,
    /// The file appeared after its glob was first scanned: with no checkpoint, read it all.
    from_start: bool,
    /// How its lines leave (topic, key, format, `multiline`, counters): every reader's.
    lane: Lane,
    /// The file the path names, and what the tail has of it.
    current: Current,
    /// Rotated-away files still being read to their end.
    draining: Vec<Reader>,
    /// Unread generations written since then (unix seconds) were left unopened for want of a
    /// descriptor (`max_open_files`): looked for again, by name, once `draining` is empty.
    unseen_left: Option<u64>,
    /// The last problem logged, so the same one is not logged on every poll.
    last_problem: Option<String>,
    /// When a look last found lines, by a thread or the looker: a file is busy when it had more
    /// within `2 x batch_wait`.
    last_read: Option<Instant>,
}

/// The tail's states: what it has of the file its path names. Every change of state goes through
/// `TailState::enter`; `poll` dispatches on the state.
///
/// ```text
/// Starting --open_at_start--> Open | Absent | Waiting   (again from Inactive, when the file changed)
/// Open --rotated, vanished--> Absent --a file appears--> Open   (generations rotated by meanwhile adopted)
/// Open --truncated--> Open (the same file from 0, after its copy)
/// Open --close_inactive--> Inactive
/// Absent | Waiting --the file can be opened--> Open
/// any --stop--> Starting
/// ```
// One per tail: the size of a Reader inline costs nothing a Box's allocation and indirection
// would save.
#[allow(clippy::large_enum_variant)]
enum Current {
    /// Not looked at yet (the tail starts, or starts again after a stop).
    Starting,
    /// The path names no file, since then (unix seconds): files rotated by meanwhile are read
    /// when it names one again.
    Absent { since: u64 },
    /// The path names a file that cannot be read now (claimed by another tail, no descriptor
    /// free, an open error): why, logged once; the tail polls at `poll_interval`.
    Waiting { why: String, absent_since: Option<u64> },
    /// Reading it.
    Open(Reader),
    /// Closed by `close_inactive`: its identity and stamp then. Opened again (as at start) when
    /// the path names another file or the file changes.
    Inactive { id: FileId, stamp: Stamp },
}

impl Current {
    fn reader(&self) -> Option<&Reader> {
        match self {
            Current::Open(r) => Some(r),
            _ => None,
        }
    }

    fn reader_mut(&mut self) -> Option<&mut Reader> {
        match self {
            Current::Open(r) => Some(r),
            _ => None,
        }
    }

    /// Since when the path named no file, if it names none now.
    fn absent_since(&self) -> Option<u64> {
        match self {
            Current::Absent { since } => Some(*since),
            Current::Waiting { absent_since, .. } => *absent_since,
            _ => None,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Current::Starting => "starting",
            Current::Absent { .. } => "absent",
            Current::Waiting { .. } => "waiting",
            Current::Open(_) => "open",
            Current::Inactive { .. } => "inactive",
        }
    }
}

/// What a tail's thread, the looker and the file server share.
struct Shared {
    state: Mutex<TailState>,
    /// Raised to stop the thread (rings its bell).
    stop: Stop,
    /// End once nothing is left to read (the file vanished from a glob).
    retire: AtomicBool,
    bell: Arc<Doorbell>,
    /// Change notifications cover this file (the poll can be rare).
    notified: AtomicBool,
    /// Threads running the tail, and the looker while it looks: 0 or 1, 2 for a moment when a
    /// parked tail is woken as its last thread ends (the new one waits for the state's lock).
    running: AtomicUsize,
    /// Until when (Unix ms) the tail is parked: no thread, its state kept; then the file server
    /// starts its thread for a look (the safety net, or `close_inactive` due). 0 when not.
    /// Whoever swaps it to 0 (`Shared::unpark`) runs the tail next: a thread, or the looker.
    parked: AtomicU64,
}

impl Shared {
    /// Takes the tail out of its park: true when it was parked.
    fn unpark(&self) -> bool {
        self.parked.swap(0, Ordering::SeqCst) != 0
    }
}

/// A parked tail whose bell rang, on its way to the looker. Weak: a tail dropped meanwhile is
/// not looked at (and its bell's hook holds no cycle back to it).
pub struct Parked(std::sync::Weak<Shared>);

/// The looker's messages.
pub enum Look {
    /// A parked tail's bell rang (a write, a name event, a stop).
    Rung(Parked),
}

/// The looker's mailbox: messages gathered under a lock, and a doorbell its thread sleeps on.
/// Not a channel: crossbeam's receive spins before it blocks (`waker::Doorbell`), and the
/// looker takes everything waiting at once (the event thread rings parked tails in batches).
#[derive(Default)]
pub struct Looks {
    waiting: Mutex<Vec<Look>>,
    bell: Doorbell,
}

impl Looks {
    fn send(&self, msg: Look) {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner).push(msg);
        self.bell.ring();
    }

    /// Everything waiting, after sleeping until something is.
    fn take(&self) -> Vec<Look> {
        loop {
            let got = std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner));
            if !got.is_empty() {
                return got;
            }
            self.bell.wait(Duration::from_secs(3600));
        }
    }
}

/// The coordinator's handle on a running tail.
///
/// Small (40 bytes): the file server's table keeps it inline, and everything a parked tail holds
/// is behind `shared`.
pub struct Tail {
    pub spec: Arc<TailSpec>,
    /// Unique among the tails of this process.
    pub generation: u64,
    shared: Arc<Shared>,
    pub stats: Arc<TailStats>,
    /// Restarts of its thread after a panic, across parks.
    pub restarts: Arc<AtomicU64>,
}

impl Tail {
    /// `from_start`: the file is new since its glob was first scanned (read all of it unless a
    /// checkpoint says otherwise).
    pub fn new(spec: Arc<TailSpec>, generation: u64, ctx: &TailCtx, from_start: bool) -> Tail {
        let stats = Arc::new(TailStats::default());
        let state = TailState::new(spec.clone(), generation, ctx, from_start, stats.clone());
        let bell: Arc<Doorbell> = Arc::default();
        Tail {
            generation,
            spec,
            shared: Arc::new(Shared {
                state: Mutex::new(state),
                stop: Stop::with_bell(bell.clone()),
                retire: AtomicBool::new(false),
                bell,
                notified: AtomicBool::new(false),
                running: AtomicUsize::new(0),
                parked: AtomicU64::new(0),
            }),
            stats,
            restarts: Arc::default(),
        }
    }

    /// Its worker's name with the supervisor (and its thread's, cut): made when a thread
    /// starts, not kept by every parked tail.
    pub fn name(&self) -> String {
        format!("tail#{}:{}", self.generation, self.spec.path.display())
    }

    /// The body the supervisor runs (again, after a panic).
    pub fn worker(&self, ctx: Arc<TailCtx>) -> crate::supervisor::WorkerFn {
        let shared = self.shared.clone();
        Arc::new(move || {
            shared.running.fetch_add(1, Ordering::SeqCst);
            let _flag = Running(&shared.running);
            run_tail(&ctx, &shared);
        })
    }

    /// Asks the thread to end once its files are drained (or at once when none is open).
    pub fn retire(&self) {
        self.shared.retire.store(true, Ordering::SeqCst);
        self.shared.bell.ring();
    }

    /// Takes a retirement back (the file is found again).
    pub fn keep(&self) {
        self.shared.retire.store(false, Ordering::SeqCst);
    }

    pub fn is_retiring(&self) -> bool {
        self.shared.retire.load(Ordering::SeqCst)
    }

    /// Asks the thread to stop; it finishes the line it is sending and exits.
    pub fn stop(&self) {
        self.shared.stop.raise();
    }

    /// Registers the tail with the change notifications.
    pub fn watch(&self, waker: &crate::waker::Waker) {
        let covered = waker.register(&self.spec.path, self.generation, self.shared.bell.clone());
        self.shared.notified.store(covered, Ordering::SeqCst);
    }

    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst) > 0
    }

    /// Parked: no thread, its state kept until the next ring.
    pub fn is_parked(&self) -> bool {
        self.shared.parked.load(Ordering::SeqCst) != 0
    }

    /// When (Unix ms) a parked tail is due for a look; None when it is not parked.
    pub fn parked_until(&self) -> Option<u64> {
        Some(self.shared.parked.load(Ordering::SeqCst)).filter(|&t| t != 0)
    }

    /// A stopped tail that is parked: what its thread would do as it ends (files finished or
    /// closed, claims given back), done by the caller. Nothing when it is not parked.
    pub fn release_if_parked(&self, ctx: &TailCtx) {
        if self.unpark() {
            let mut st = self.shared.state.lock().unwrap_or_else(PoisonError::into_inner);
            st.release(ctx, &AtomicBool::new(true));
        }
    }

    /// Takes the tail out of its park: true when it was parked (the caller starts its thread,
    /// once: a second wake finds it unparked).
    pub fn unpark(&self) -> bool {
        self.shared.unpark()
    }
}

/// Counts a thread of the tail while it runs.
struct Running<'a>(&'a AtomicUsize);
impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The tail thread's loop: read what is new, send it, wait a little when there is nothing.
/// Before it sleeps, the tail arms a one-shot watch on its file and looks once more.
///
/// Long on purpose: a thread's loop is one function (house style).
fn run_tail(ctx: &TailCtx, sh: &Arc<Shared>) {
    crate::alloc::no_thread_cache(); // a thread per file: see src/alloc.rs
    let mut st = sh.state.lock().unwrap_or_else(PoisonError::into_inner);
    let (stop, bell) = (sh.stop.flag(), &sh.bell);
    let mut idle = FIRST_IDLE;
    // Armed since the last read; and whether the next write will ring the bell.
    let (mut armed, mut content_covered) = (false, false);
    let started = Instant::now();

    while !stop.load(Ordering::SeqCst) {
        let no_file = matches!(st.current, Current::Absent { .. } | Current::Waiting { .. } | Current::Inactive { .. });
        if sh.retire.load(Ordering::SeqCst) && no_file && st.draining.is_empty() {
            log::info!("tail {}: its file is gone from the glob and drained", st.spec);
            break;
        }
        let progress = match st.poll(ctx, stop) {
            Ok(p) => p,
            Err(Stopped) => break,
        };
        // Busy: lines came twice within `2 x batch_wait` (a gathering look comes `batch_wait`
        // after the last, plus the reading), so waiting `batch_wait` gathers writes. A
        // line after a quiet spell is read at once and the tail sleeps on its watch again: with
        // 1,000 files written a line every 100 ms, gathering after each one was a second wakeup
        // and two more looks per line, for nothing.
        let busy = progress.any() && st.is_busy(ctx);
        if progress.any() {
            // Something was read or changed: back off from the start again, and arm afresh.
            st.last_read = Some(Instant::now());
            idle = FIRST_IDLE;
            armed = false;
        }
        match progress {
            Progress::More => {}
            Progress::CaughtUp if busy => {
                // Caught up on a busy file: let the next writes gather, whatever rings meanwhile.
                // A busy file is read every `batch_wait` and never arms its watch.
                std::thread::sleep(ctx.settings.batch_wait);
            }
            Progress::CaughtUp | Progress::Nothing if !armed => {
                // About to sleep: the next write to the file rings the bell. A write between the
                // last read and the arming has no event, so the next poll looks once more first.
                // A file closed by close_inactive is watched like an open one; with no file at
                // all, the directory's name events announce one (if the directory is there).
                armed = true;
                let has_file = matches!(st.current, Current::Open(_) | Current::Inactive { .. });
                content_covered = if has_file {
                    ctx.waker.arm(&st.spec.path, st.owner, bell)
                } else {
                    ctx.waker.names_covered(&st.spec.path)
                };
            }
            Progress::CaughtUp | Progress::Nothing => {
                // Rotated files being drained have names the waker does not know, and a file
                // waiting for a claim or a descriptor changes without an event: poll them.
                let covered = sh.notified.load(Ordering::Relaxed) && content_covered;
                let covered = covered && st.draining.is_empty() && !matches!(st.current, Current::Waiting { .. });
                let ceiling =
                    if covered { ctx.settings.poll_interval.max(NOTIFIED_IDLE) } else { ctx.settings.poll_interval };
                // A multiline event waiting for its timeout, and a file due to be closed by
                // close_inactive, are looked at again in time.
                let ceiling = st.event_wait().map_or(ceiling, |w| ceiling.min(w));
                let ceiling = st.inactive_wait(ctx).map_or(ceiling, |w| ceiling.min(w));
                let quiet = st.last_read.unwrap_or(started).elapsed();
                let park_after = park_after(&ctx.settings);
                if covered && quiet >= park_after && park(ctx, sh, &mut st) {
                    // Not released: its files, position and claims stay for the looker, or the
                    // next thread.
                    return;
                }
                // A tail that may park sleeps only until it may.
                let ceiling =
                    if covered { ceiling.min(park_after.saturating_sub(quiet).max(FIRST_IDLE)) } else { ceiling };
                // Notified of every change, the tail sleeps until one comes (or the safety-net
                // poll); otherwise it backs off from FIRST_IDLE. Backing off when notified too
                // cost a wakeup, a poll and an arming for nothing after each write of a file
                // written every 10 ms (`batch_wait: 0`, seen with strace).
                let rung = bell.wait(if covered { ceiling } else { idle.min(ceiling) });
                // A notified tail's wait that ran out heard nothing: its one-shot watch is still
                // armed, so the safety-net look is one look, not a look, an arming and another
                // look (1,000 idle files: about 0.085% of a core per minute for those three).
                armed = covered && !rung;
                idle = (idle * 2).min(ceiling);
            }
        }
    }
    st.release(ctx, stop);
}

/// Parks a tail whose file is covered by change notifications and whose watch is armed, if it
/// may (`can_park`, not retiring): true when it is parked, and whoever holds its state (a thread
/// or the looker) lets go of it without releasing anything. The next ring of its bell sends it to
/// the looker; the file server looks at it by `PARKED_LOOK` anyway, or when close_inactive is due.
fn park(ctx: &TailCtx, sh: &Arc<Shared>, st: &mut TailState) -> bool {
    if sh.retire.load(Ordering::SeqCst) || !st.can_park() {
        return false;
    }
    // Parked before the hook is set, so that a ring running it finds the tail parked; taken
    // back when a ring came first (there is something to look at).
    let look = st.inactive_wait(ctx).map_or(PARKED_LOOK, |w| w.min(PARKED_LOOK));
    let until = crate::timestamp::now_millis() + look.as_millis() as u64;
    sh.parked.store(until.max(1), Ordering::SeqCst);
    let (looks, parked) = (ctx.looks.clone(), Arc::downgrade(sh));
    if sh.bell.on_next_ring(Box::new(move || {
        looks.send(Look::Rung(Parked(parked)));
    })) {
        log::trace!("tail {}: parked", st.spec);
        return true;
    }
    sh.parked.store(0, Ordering::SeqCst);
    false
}

/// The looker's loop: reads what was appended to parked files whose bells rang, on this one
/// thread, and starts a thread for a file only when there is more to it (a rotation, a cut, a
/// busy file, a sink without room, a read budget spent).
///
/// Why it exists (issue 29): with a thread per file, each line after a quiet spell woke that
/// file's thread (1,000 files written a line every 100 ms: 10,000 wakeups a second, ~40 us of CPU
/// a line, most of it the scheduler's). The event thread hands rings over in batches (it gathers
/// its events for a millisecond), so this thread wakes once for many lines.
pub fn run_looker(ctx: &TailCtx) {
    crate::alloc::no_thread_cache();
    // What every look reads into (`Reader::read_appended`): allocated and zeroed once, not per look.
    let mut scratch = Vec::new();
    loop {
        for msg in ctx.looks.take() {
            match msg {
                Look::Rung(Parked(weak)) => {
                    if let Some(sh) = weak.upgrade() {
                        look(ctx, &sh, &mut scratch);
                    }
                }
            }
        }
    }
}

/// What a look at a parked tail found, and what follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looked {
    /// Lines appended were read (`busy`: a thread gathers its next writes).
    Read { busy: bool },
    /// Nothing changed (a ring for writes read already, or for another name in the directory).
    Nothing,
    /// Something only a thread handles (or that a thread should check): hand the tail over.
    Thread,
}

/// One look at a parked tail, on the looker's thread: read what was appended, arm the watch,
/// park again; or hand the tail to a thread of its own.
fn look(ctx: &TailCtx, sh: &Arc<Shared>, scratch: &mut Vec<u8>) {
    // Counted before it is unparked: the file server waits for a stopped tail that is neither
    // parked nor running no longer than it takes.
    sh.running.fetch_add(1, Ordering::SeqCst);
    let _flag = Running(&sh.running);
    if !sh.unpark() {
        return; // a thread runs it, or a look did already
    }
    let mut st = sh.state.lock().unwrap_or_else(PoisonError::into_inner);
    // The ring that sent the tail here is this look's: left set, it would make every `park`
    // below take its hook back (a ring "since"), and hand every look to a thread (1,000 slow
    // writers: 324 threads, 43% of the CPU creating them, measured with perf).
    sh.bell.take_ring();
    let stop = sh.stop.flag();
    if stop.load(Ordering::SeqCst) {
        st.release(ctx, stop);
        return;
    }
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // A write between a read and the arming rings nothing: it is read by the look after
        // the arming. Files written faster than that are busy and go to a thread: a few rounds.
        for _ in 0..3 {
            // Taken after the ring: a name event rang both (`Doorbell::ring`).
            let moved = sh.bell.take_moved();
            match st.quick_look(ctx, stop, moved, scratch) {
                Ok(Looked::Thread) | Ok(Looked::Read { busy: true }) | Err(Stopped) => return false,
                Ok(Looked::Read { busy: false }) | Ok(Looked::Nothing) => {}
            }
            // The path names the file it armed last (no name event since): its watch, when
            // still there, has every write since the read to come (`Waker::rearm`).
            if !moved && ctx.waker.rearm(st.owner, &sh.bell) {
                return park(ctx, sh, &mut st);
            }
            if !ctx.waker.arm(&st.spec.path, st.owner, &sh.bell) {
                return false;
            }
            if !st.grew() {
                return park(ctx, sh, &mut st);
            }
        }
        false
    }));
    if let Err(panic) = &outcome {
        let why = crate::supervisor::panic_message(&**panic);
        log::error!("tail {}: a look on the looker's thread panicked ({why}); a thread takes over", st.spec);
    }
    if !matches!(outcome, Ok(true)) {
        // Due at once: the file server starts its thread (at this wake, or its next sweep). A
        // stop raised meanwhile finds it parked (`release_if_parked`), or is seen here: the file
        // server starts no thread for a stopped tail, so whoever unparks it releases it.
        sh.parked.store(1, Ordering::SeqCst);
        if !stop.load(Ordering::SeqCst) {
            (ctx.wake)(&st.spec, st.owner);
        } else if sh.unpark() {
            st.release(ctx, stop);
        }
    }
}

impl TailState {
    fn new(spec: Arc<TailSpec>, owner: u64, ctx: &TailCtx, from_start: bool, stats: Arc<TailStats>) -> TailState {
        let settings = &ctx.settings;
        let host = settings.hostname.as_bytes();
        // The spec was checked when resolved: its patterns compile.
        let multiline = spec.multiline.as_ref().and_then(|m| multiline::Rule::new(m).ok()).map(Box::new);
        let h = &spec.handling;
        let limiter = ctx.rates.limiter(&h.source, h.rate_limit);
        let key: Option<Arc<[u8]>> = match settings.message_key {
            MessageKey::Path => Some(spec.path.as_os_str().as_bytes().into()),
            MessageKey::Topic => Some(spec.topic.as_bytes().into()),
            MessageKey::None => None,
            MessageKey::Host => Some(host.into()),
            MessageKey::HostPath => Some([host, b":", spec.path.as_os_str().as_bytes()].concat().into()),
        };
        let lane = Lane {
            topic: spec.topic.as_str().into(),
            key,
            format: spec.format,
            multiline,
            filter: h.filter.rule(),
            fields: (!h.fields.is_empty()).then(|| Arc::new(h.fields.clone())),
            limiter,
            charset: h.charset,
            path_text: spec.path.to_string_lossy().into_owned(),
            stats,
        };
        TailState {
            owner,
            from_start,
            spec,
            lane,
            current: Current::Starting,
            draining: Vec::new(),
            unseen_left: None,
            last_problem: None,
            last_read: None,
        }
    }

    /// Lines came within `park_after` (`2 x batch_wait`) of the last ones: the next writes are
    /// let gather.
    fn is_busy(&self, ctx: &TailCtx) -> bool {
        self.last_read.is_some_and(|t| t.elapsed() < park_after(&ctx.settings))
    }

    /// The looker's look at a parked tail (`look`): reads what was appended to its open file,
    /// when that is all that happened. Anything else (the path names another file, the file was
    /// cut, the sink has no room, a read budget spent, a rate limit or a multiline rule to
    /// keep) is left to a thread, whose full look (`poll`) acts on it. An unfinished last line
    /// is kept (`can_park`). `moved`: a ring since the last look was for more than a write to
    /// the open file (a name event in its directory, a stop, the safety net's look).
    /// `scratch`: the looker's read buffer.
    fn quick_look(
        &mut self,
        ctx: &TailCtx,
        stop: &AtomicBool,
        moved: bool,
        scratch: &mut Vec<u8>,
    ) -> Result<Looked, Stopped> {
        if self.lane.multiline.is_some() || self.lane.limiter.limits() || !self.can_park() {
            return Ok(Looked::Thread);
        }
        let busy = self.is_busy(ctx);
        let Current::Open(r) = &mut self.current else { return Ok(Looked::Thread) };
        let look = match r.read_appended(ctx, &self.lane, stop, scratch)? {
            Some(look) => look,
            None => r.read_some(ctx, &self.lane, stop, Duration::ZERO)?,
        };
        self.lane.stats.size.store(look.stamp.size, Ordering::Relaxed);
        self.lane.stats.offset.store(r.read_offset, Ordering::Relaxed);
        if look.held || look.more || look.error.is_some() {
            return Ok(Looked::Thread);
        }
        // Whether the path still names the open file, asked after the read and after the ring
        // was taken, when a ring since the last look was not a write's: a rename before it is
        // seen here, one after it rings again (and `park` refuses). Asked when lines were read
        // too: the ring taken may have been the directory's for the new file, and a look that
        // only read the renamed file's last lines would park on it, deaf to the new one. Rings
        // for writes alone leave the name as the last look (or the thread before it) found it.
        let same_path = !moved || std::fs::metadata(&self.spec.path).is_ok_and(|m| FileId::of(&m) == r.id);
        if look.read > 0 {
            r.idle_since = None;
            self.last_read = Some(Instant::now());
            return Ok(if same_path { Looked::Read { busy } } else { Looked::Thread });
        }
        // Nothing appended: a ring for writes read already, or for another name in the directory;
        // or the file changed otherwise (rotated, cut, written over), which a thread sorts out.
        let unchanged = look.stamp == r.checked && look.stamp.size == r.read_offset && same_path;
        if !unchanged {
            return Ok(Looked::Thread);
        }
        r.idle_since.get_or_insert_with(Instant::now);
        Ok(Looked::Nothing)
    }

    /// Whether the open file holds more than was read (one `fstat`): the looker's look after
    /// arming, for a write that came before the arming (its name is the directory watch's job).
    fn grew(&self) -> bool {
        self.current.reader().is_some_and(|r| r.stamp().size > r.read_offset)
    }

    /// Whether the thread may end with the state kept (park): nothing to drain, to send, to
    /// time out or to wait for that only a running thread would see. Its file (or, when it has
    /// none, its directory) must be covered by change notifications: the caller checks that.
    fn can_park(&self) -> bool {
        if !self.draining.is_empty() || self.unseen_left.is_some() || self.event_wait().is_some() {
            return false;
        }
        match &self.current {
            // An unfinished last line is kept (writers that write a line in two calls would
            // otherwise start a thread for each line); lines the sink did not take are not.
            Current::Open(r) => !r.has_unsent() || (self.lane.multiline.is_none() && r.holds_only_a_partial_line()),
            Current::Inactive { .. } | Current::Absent { .. } => true,
            Current::Waiting { .. } | Current::Starting => false,
        }
    }

    /// With `multiline`, how long the tail may sleep while an event waits for its timeout.
    fn event_wait(&self) -> Option<Duration> {
        let rule = self.lane.multiline.as_ref()?;
        let waiting = self.current.reader().is_some_and(|r| r.event_since.is_some())
            || self.draining.iter().any(|r| r.event_since.is_some());
        waiting.then_some(rule.timeout / 2)
    }

    /// How long until the current file may be closed by `close_inactive` (what `poll` checks),
    /// so that a tail whose safety-net poll is minutes away still closes it in time.
    fn inactive_wait(&self, ctx: &TailCtx) -> Option<Duration> {
        let r = self.current.reader()?;
        if !self.draining.is_empty() || r.has_unsent() {
            return None; // poll would not close it now (see close_inactive)
        }
        let idle_for = r.idle_since?.elapsed();
        Some(ctx.settings.close_inactive.saturating_sub(idle_for).max(Duration::from_millis(10)))
    }

    /// Moves the tail to state `next` (the one place its state changes); gives back the reader
    /// it had open, if any.
    fn enter(&mut self, next: Current) -> Option<Reader> {
        log::debug!("tail {}: {} -> {}", self.spec, self.current.name(), next.name());
        match std::mem::replace(&mut self.current, next) {
            Current::Open(r) => Some(r),
            _ => None,
        }
    }

    fn problem(&mut self, text: String) {
        if self.last_problem.as_ref() != Some(&text) {
            log::warn!("{text}");
            *self.lane.stats.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(text.clone());
            self.last_problem = Some(text);
        }
    }

    fn clear_problem(&mut self) {
        if self.last_problem.take().is_some() {
            *self.lane.stats.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// The files this tail has open now (its current file and the draining ones).
    fn busy(&self) -> Vec<FileId> {
        self.current.reader().map(|r| r.id).into_iter().chain(self.draining.iter().map(|r| r.id)).collect()
    }

    /// Drains the rotated generations written since `since` that nobody read
    /// (`Opener::unseen`), as many as `max_open_files` leaves room for (one at least, when the
    /// tail drains none: read oldest first, one open at a time is enough to go on). Those left
    /// are counted (`logcatch_source_generations_waiting`) and looked for again by name once the
    /// open ones are done.
    fn adopt_unseen(&mut self, ctx: &TailCtx, since: u64) {
        let busy = self.busy();
        let unseen = self.opener(ctx).unseen(since, &busy, self.draining.is_empty());
        self.draining.extend(unseen.readers);
        self.order_draining();
        self.lane.stats.generations_waiting.store(unseen.left as u64, Ordering::Relaxed);
        self.unseen_left = (unseen.left > 0).then_some(since);
    }

    /// Orders the draining generations oldest first (by their last write; logrotate gives a
    /// compressed one its original's): they are read in that order.
    fn order_draining(&mut self) {
        self.draining.sort_by_cached_key(|r| r.stamp().mtime);
    }

    /// Notes why the file at the path is not open.
    fn not_open(&mut self, why: NotOpen) {
        match why {
            NotOpen::Missing => {}
            NotOpen::NoDescriptor(why) => self.wait_for(why, log::Level::Debug),
            NotOpen::Claimed(why) => self.wait_for(why, log::Level::Info),
            NotOpen::Problem(text) => self.problem(text),
        }
    }

    fn opener<'a>(&'a self, ctx: &'a TailCtx) -> Opener<'a> {
        Opener { ctx, spec: &self.spec, lane: &self.lane, owner: self.owner }
    }

    /// Notes why the current file is not open although it exists (logged when the reason changes).
    fn wait_for(&mut self, why: String, level: log::Level) {
        match &self.current {
            Current::Waiting { why: w, .. } if *w == why => {}
            Current::Open(_) => debug_assert!(false, "wait_for with the file open"),
            _ => {
                log::log!(level, "{why}");
                let absent_since = self.current.absent_since();
                self.enter(Current::Waiting { why, absent_since });
            }
        }
    }

    /// First open (and again after `close_inactive`): resume from checkpoints, first draining
    /// files rotated away while we were down or had the file closed; a file never seen starts at
    /// `start_position` (a path with history, or a file new since its glob was scanned: at its
    /// start).
    fn open_at_start(&mut self, ctx: &TailCtx) {
        let current = self.opener(ctx).open_path().map_err(|e| self.not_open(e)).ok();
        let current_id = current.as_ref().map(|o| o.id);
        let mut lineage = ctx.checkpoints.lineage(&self.lane.path_text, &self.spec.topic, current_id);
        let mut found = self.opener(ctx).find_past(&lineage.past);
        let probes: Vec<Option<&dyn Probe>> = found.iter().map(|f| f.as_ref().map(|(_, g)| g as &dyn Probe)).collect();
        let current_size = current.as_ref().map(|o| o.size);
        let plan = open::plan_start(&lineage, &probes, current_size, self.from_start, ctx.settings.start_position);
        for &(i, from) in &plan.drains {
            let (path, generation) = found[i].take().expect("a drained file was found");
            log::info!(
                "{}: {} was rotated away while it was not being read (logcatch down, or the file \
                 closed by close_inactive); reading it on from offset {from} first",
                self.lane.path_text,
                path.display(),
            );
            let permit = ctx.files.acquire_anyway();
            let tracker = lineage.past[i].tracker.take();
            if let Some(r) = self.opener(ctx).reader(generation, path, from, tracker, permit) {
                self.draining.push(r);
            }
        }
        if let Some(opened) = current {
            let size = opened.size;
            match self.opener(ctx).start(opened, plan.unknown, &self.busy()) {
                Ok(started) => {
                    log::info!("tail {} started at offset {} of {size}", self.spec, started.current.read_offset);
                    self.draining.extend(started.copy);
                    self.enter(Current::Open(started.current));
                }
                Err(why) => self.not_open(why),
            }
        } else if !self.spec.path.exists() {
            log::info!("tail {} waiting for the file to appear", self.spec);
            self.enter(Current::Absent { since: unix_now() });
        }
        if matches!(self.current, Current::Starting | Current::Inactive { .. }) {
            let why = format!("tail {}: the file cannot be opened yet", self.spec);
            self.enter(Current::Waiting { why, absent_since: None });
        }
        if let Some(since) = plan.adopt_since {
            self.adopt_unseen(ctx, since);
        }
        self.order_draining();
        self.note_current(ctx);
    }

    /// One pass over the draining files and the current one: what it found.
    ///
    /// Long on purpose: the dispatch on the tail's state (`Current`), every state in one place.
    fn poll(&mut self, ctx: &TailCtx, stop: &AtomicBool) -> Result<Progress, Stopped> {
        if let Current::Starting = self.current {
            self.open_at_start(ctx);
            return Ok(Progress::More);
        }
        let mut progressed = Progress::Nothing;

        let mut i = 0;
        while i < self.draining.len() {
            if self.draining[i].is_cut() {
                // Cut after it was rotated away (or before the rotation was seen): its old
                // content is in a copy, what it holds now is new.
                let old = self.draining.remove(i);
                log::info!(
                    "{}: {} was cut (copytruncate?); reading it again from the start",
                    self.lane.path_text,
                    old.opened_as.display()
                );
                self.lane.stats.truncations.fetch_add(1, Ordering::Relaxed);
                if let Some(again) = self.reread_from_start(ctx, old, stop)? {
                    self.draining.insert(i, again);
                }
                progressed = Progress::More;
                continue;
            }
            let look = self.draining[i].read_some(ctx, &self.lane, stop, HOLD_LOOK)?;
            if look.held {
                return self.held(ctx, stop);
            }
            if let Some(e) = &look.error {
                self.problem(format!("{}: read error: {e}", self.draining[i].opened_as.display()));
            }
            let (n, r) = (look.read, &mut self.draining[i]);
            r.caught_up |= !look.more;
            if n > 0 {
                progressed = progressed.max(Progress::read(n));
                r.idle_since = None;
                if !r.caught_up {
                    // Oldest first: the newer generations and the current file wait until this
                    // one is read to its end, so that one topic gets a file's lines in the order
                    // they were written, across rotations (a generation still written to after
                    // that is read beside the others).
                    self.look_at_current(ctx, stop)?;
                    return Ok(progressed);
                }
            } else if r.idle_since.get_or_insert_with(Instant::now).elapsed() >= ctx.settings.rotate_wait || r.ended() {
                if !r.has_unsent() && r.tracker.in_flight() > 0 {
                    // Kept open until its lines are acknowledged: logrotate may delete or compress
                    // it as soon as it is closed, and were the agent killed meanwhile, the next
                    // one would read them again from it. (A rest with no newline is shipped and
                    // the reader closed: what it holds then is the file's last line.)
                    i += 1;
                    continue;
                }
                let r = self.draining.remove(i);
                self.finish(ctx, r, stop)?;
                continue;
            }
            i += 1;
        }
        if let Some(since) = self.unseen_left {
            // Generations wait for a descriptor: the next one is opened once the open ones are
            // done, and the current file waits behind them (its lines are newer).
            if self.draining.is_empty() {
                self.unseen_left = None;
                self.adopt_unseen(ctx, since);
                return Ok(Progress::More);
            }
            return Ok(progressed);
        }

        match self.current {
            Current::Open(_) => {}
            Current::Inactive { id, stamp } => {
                // Closed for inactivity: open again (as at start) once the path changed (its
                // time too: a file cut and written again to the same size has changed).
                if std::fs::metadata(&self.spec.path).is_ok_and(|m| FileId::of(&m) == id && Stamp::of(&m) == stamp) {
                    return Ok(progressed);
                }
                self.open_at_start(ctx);
                return Ok(Progress::More);
            }
            Current::Absent { .. } | Current::Waiting { .. } => {
                return Ok(if self.try_open_current(ctx) { Progress::More } else { progressed });
            }
            Current::Starting => unreachable!("a started tail is never Starting"),
        }
        let r = self.current.reader_mut().expect("current reader");
        let look = r.read_some(ctx, &self.lane, stop, HOLD_LOOK)?;
        self.lane.stats.size.store(look.stamp.size, Ordering::Relaxed);
        self.lane.stats.offset.store(r.read_offset, Ordering::Relaxed);
        let (n, stamp) = (look.read, look.stamp);
        if look.held {
            return self.held(ctx, stop);
        }
        if let Some(e) = &look.error {
            self.problem(format!("{}: read error: {e}", self.lane.path_text));
        }
        let r = self.current.reader_mut().expect("current reader");
        if n > 0 {
            r.idle_since = None;
            return Ok(progressed.max(Progress::read(n)));
        }
        let idle_for = r.idle_since.get_or_insert_with(Instant::now).elapsed();
        if self.check_current(ctx, stop, stamp)? {
            return Ok(Progress::More);
        }
        if idle_for >= ctx.settings.close_inactive && self.draining.is_empty() {
            self.close_inactive(ctx);
        }
        Ok(progressed)
    }

    /// The sink had no room for a batch for `HOLD_LOOK` (a broker away): the current file is
    /// looked at before the lines are offered again.
    fn held(&mut self, ctx: &TailCtx, stop: &AtomicBool) -> Result<Progress, Stopped> {
        self.look_at_current(ctx, stop)?;
        Ok(Progress::More)
    }

    /// A look at the current file while the tail cannot read it (held back by the sink, or
    /// behind on older generations): a cut is acted on at once, and a fingerprint that can grow
    /// grows. After copytruncate the copy holds the lines not read yet, and the next rotation may
    /// rename over it (logrotate's `compress`; seen in the soak, 306 lines lost): opened now, it
    /// is read whatever becomes of its name; and it is known by the first bytes of the file,
    /// which a file opened empty and not read since has none of yet.
    fn look_at_current(&mut self, ctx: &TailCtx, stop: &AtomicBool) -> Result<(), Stopped> {
        let Some(r) = self.current.reader_mut() else { return Ok(()) };
        let stamp = r.stamp();
        if r.is_cut_at(stamp) {
            self.check_current(ctx, stop, stamp)?;
        } else {
            r.grow_fingerprint(ctx, &self.lane, stamp.size);
        }
        Ok(())
    }

    /// The current file had nothing new for `close_inactive`: close it (its descriptor and
    /// permit go back), remember what it was, and open it again when the path changes. A file
    /// ending in an unfinished line stays open: were it deleted while closed, that line could
    /// never be sent.
    fn close_inactive(&mut self, ctx: &TailCtx) {
        let Some(r) = self.current.reader() else { return };
        if r.has_unsent() {
            return;
        }
        let (id, stamp) = (r.id, r.stamp());
        log::info!(
            "tail {}: nothing new for {:?} (close_inactive); file closed, opened again when it changes",
            self.spec,
            ctx.settings.close_inactive
        );
        self.enter(Current::Inactive { id, stamp });
    }

    /// The current file is at its end: has the path moved on to another file, or did it shrink?
    /// `change::classify` decides; this acts.
    ///
    /// Long on purpose: one arm per `Change`, what the tail does about each.
    /// `stamp`: the file as `read_some` found it at this look (one `fstat` per look, not two).
    fn check_current(&mut self, ctx: &TailCtx, stop: &AtomicBool, stamp: Stamp) -> Result<bool, Stopped> {
        let r = self.current.reader_mut().expect("current reader");
        let size = stamp.size;
        let observed = Observed {
            path: std::fs::metadata(&self.spec.path).map(|m| FileId::of(&m)).map_err(|e| e.kind()),
            reading: r.id,
            size,
            read_offset: r.read_offset,
            size_changed: stamp != r.checked,
        };
        let change = classify(observed, || r.fp.matches(&r.file));
        match change {
            Change::Rotated => {
                // Renamed away (or deleted) and a new file took the path: keep draining the old
                // one, read the new one from its start.
                // Generations rotated by since it was opened are adopted when the new file is.
                let since = self.current.reader().map_or(0, |r| r.opened_at);
                let mut old = self.enter(Current::Absent { since }).expect("current reader");
                // Its rotate_wait starts now, not when it last went quiet as the current file.
                old.idle_since = None;
                log::info!(
                    "{}: rotated (the path now names another file); draining the old file for up to {:?}",
                    self.lane.path_text,
                    ctx.settings.rotate_wait
                );
                self.lane.stats.rotations.fetch_add(1, Ordering::Relaxed);
                self.draining.push(old);
                self.try_open_current(ctx);
                Ok(true)
            }
            Change::Truncated { .. } => {
                log::info!(
                    "{}: truncated ({} -> {size} bytes; copytruncate?); reading again from the start",
                    self.lane.path_text,
                    r.read_offset
                );
                self.lane.stats.truncations.fetch_add(1, Ordering::Relaxed);
                let old = self.enter(Current::Starting).expect("current reader");
                let since = old.opened_at;
                let again = self.reread_from_start(ctx, old, stop)?;
                self.adopt_unseen(ctx, since);
                match again {
                    Some(r) => self.enter(Current::Open(r)),
                    None => self.enter(Current::Waiting { why: "cannot reopen".into(), absent_since: None }),
                };
                self.note_current(ctx);
                Ok(true)
            }
            Change::Unchanged => {
                r.checked = stamp;
                self.clear_problem();
                Ok(false)
            }
            Change::Vanished => {
                log::info!("{}: removed or renamed away; draining it and waiting for a new file", self.lane.path_text);
                self.lane.stats.rotations.fetch_add(1, Ordering::Relaxed);
                let since = self.current.reader().map_or(0, |r| r.opened_at);
                let mut old = self.enter(Current::Absent { since }).expect("current reader");
                old.idle_since = None;
                self.draining.push(old);
                Ok(true)
            }
            Change::Unreadable(kind) => {
                self.problem(format!("{}: cannot stat: {}", self.lane.path_text, io::Error::from(kind)));
                Ok(false)
            }
        }
    }

    /// The path has no open reader: open the file if it (now) exists.
    fn try_open_current(&mut self, ctx: &TailCtx) -> bool {
        let opened = match self.opener(ctx).open_path() {
            Ok(opened) => opened,
            Err(why) => {
                self.not_open(why);
                return false;
            }
        };
        // The same file came back under the path (renamed back): it is current again.
        if let Some(i) = self.draining.iter().position(|r| r.id == opened.id) {
            let mut r = self.draining.remove(i);
            r.idle_since = None;
            self.enter(Current::Open(r));
            return true;
        }
        self.clear_problem();
        // A file that appears while we watch is new: all of it is read.
        let ino = opened.id.ino;
        let started = match self.opener(ctx).start(opened, 0, &self.busy()) {
            Ok(started) => started,
            Err(why) => {
                self.not_open(why);
                return false;
            }
        };
        let r = started.current;
        log::info!("tail {}: new file (inode {ino}), reading from offset {}", self.spec, r.read_offset);
        self.draining.extend(started.copy);
        let absent_since = self.current.absent_since();
        self.enter(Current::Open(r));
        // While the path named nothing, a file may have come and been rotated away unseen.
        if let Some(since) = absent_since {
            self.adopt_unseen(ctx, since);
        }
        self.note_current(ctx);
        true
    }

    /// Tells the store since when generations of the path may be unread (`note_current`): the
    /// file at the path was just opened and those before it read or adopted; those waiting for a
    /// descriptor count from when they were looked for.
    fn note_current(&self, ctx: &TailCtx) {
        if let Some(r) = self.current.reader() {
            let since = self.unseen_left.unwrap_or(r.opened_at);
            ctx.checkpoints.note_current(&self.spec.topic, &self.lane.path_text, since);
        }
    }

    /// `old`'s file no longer holds what was read (cut by copytruncate, or written over): its
    /// old content is remembered for its copy and the copy drained from where reading got to
    /// (carrying the reader's tracker: lines in flight are credited to the copy), or, with no
    /// copy, the reader is finished. The file itself is read again from 0, by the reader returned.
    fn reread_from_start(&mut self, ctx: &TailCtx, old: Reader, stop: &AtomicBool) -> Result<Option<Reader>, Stopped> {
        let file = old.file.try_clone();
        let opened_as = old.opened_as.clone();
        // The unsent end of the old content (a partial line) is in the copy, if any.
        let (unsent, old_fp) = (old.unsent_offset(), old.fp);
        ctx.checkpoints.note_replaced(&self.spec.topic, &self.lane.path_text, old_fp, unsent, old.tracker.clone());
        let busy = self.busy();
        match self.opener(ctx).copy(old_fp, unsent, old.id, &busy, Some(old.tracker.clone())) {
            Some(copy) => self.draining.push(copy),
            None => {
                ctx.checkpoints.keep_cut(&self.spec.topic, old.id);
                self.finish(ctx, old, stop)?
            }
        }
        let Ok(file) = file else { return Ok(None) };
        let tracker = Some(Arc::new(AckTracker::new(0)));
        // The same file, claimed by this tail: the reader is always had.
        let permit = ctx.files.acquire_anyway();
        Ok(self.opener(ctx).reader(Generation::Plain(file), opened_as, 0, tracker, permit))
    }

    /// Closes a reader whose file is done: an unfinished last line is sent as it is (nothing
    /// more will complete it), and its tracker is released to the checkpointer.
    fn finish(&mut self, ctx: &TailCtx, mut r: Reader, stop: &AtomicBool) -> Result<(), Stopped> {
        if r.has_unsent() && r.is_cut() {
            // The file was cut after it was read (copytruncate, then renamed): the unfinished
            // line is in its copy, which is read from here.
            let unsent = r.unsent_offset();
            ctx.checkpoints.note_replaced(&self.spec.topic, &self.lane.path_text, r.fp, unsent, r.tracker.clone());
        } else if let Err(s) = r.ship_rest(ctx, &self.lane, stop) {
            self.draining.push(r);
            return Err(s);
        }
        log::info!("{}: finished reading {} at offset {}", self.lane.path_text, r.opened_as.display(), r.read_offset);
        Ok(()) // dropping `r` closes its tracker and releases its claim
    }

    /// The tail is stopping: its files are closed, their trackers handed to the checkpointer. A
    /// deleted file's unfinished last line is sent as it is (no successor can read it again);
    /// any other file's waits in the file for the next tail.
    fn release(&mut self, ctx: &TailCtx, stop: &AtomicBool) {
        let readers: Vec<Reader> = self.enter(Current::Starting).into_iter().chain(self.draining.drain(..)).collect();
        for r in readers {
            // Stopping for a restart in place: kept, in case it has no name left by the exec.
            crate::inherit::keep(&r.file, &self.lane.path_text, &r.opened_as);
            let deleted = r.file.metadata().is_ok_and(|m| m.nlink() == 0);
            if deleted && r.has_unsent() {
                // One it could not hand over is back in `draining`, dropped below.
                let _ = self.finish(ctx, r, stop);
            }
        }
        self.draining.clear(); // dropped readers close their trackers
        log::info!("tail {} stopped", self.spec);
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
