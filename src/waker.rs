//! Change notifications: wakes a tail the moment its file or its directory changes.
//!
//! Exists so that tails can sleep long when their files are quiet (CPU near zero with thousands
//! of files) and still react within milliseconds, without paying for every write of a busy one.
//! One inotify instance, read by one thread, holds two kinds of watches:
//! - a *directory* watch per directory of tailed files, for name events only (created, deleted,
//!   renamed): each wakes the tails of the names it mentions, and calls the directory's
//!   listeners (the file server, which rescans its globs);
//! - a *content* watch (`IN_MODIFY`) that a tail arms on its file just before it goes to sleep:
//!   the next write wakes it, once. The kernel's watch outlives the ring, so the looker arms it
//!   again after a look with no system call (`rearm`); the first write that finds nobody armed
//!   removes it, so a busy file, read every `batch_wait` and never armed, costs one event and
//!   then none (with a watch per write, the event thread took 27% of a core for 10,000 writes a
//!   second, measured with perf).
//!
//! Where inotify cannot watch (not available, or out of watches), tails fall back to their
//! backed-off stat poll (`poll_interval`), which always runs underneath. The `inotify` crate (the
//! one notify builds on) is used directly because notify cannot choose the event mask or ask for
//! one-shot watches.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask, Watches};

/// How a sleeping thread is woken: a flag, and the waiting thread parked until it is set.
/// Not a channel: crossbeam's `recv_timeout` spins (`sched_yield`) before it blocks, which cost
/// most of the CPU of thousands of mostly idle tails (measured with perf: 45% of all samples).
/// Not a mutex and condition variable either: with files written every 10 ms (`batch_wait: 0`,
/// 10,000 rings a second), their lock, relock and unconditional `futex` wake were 3.5 `futex`
/// calls per ring, where parking costs one wait, and a ring one wake only when the thread sleeps.
///
/// A thread that ends until the next ring (a tail that parks: issue 29) leaves a hook instead
/// (`on_next_ring`), which that ring runs once: it asks for the thread to be started again.
#[derive(Default)]
pub struct Doorbell {
    rung: AtomicBool,
    /// Rung for anything but a write to the armed file (a name event, a stop, a look due): the
    /// path may name another file now. Kept until taken (`take_moved`).
    moved: AtomicBool,
    /// The thread that waits (set by `wait`; a tail's thread changes when it is restarted).
    waiter: Mutex<Option<std::thread::Thread>>,
    /// What the next ring runs, once: set by a thread that ended until then.
    wake: Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl Doorbell {
    /// Rings for a change that may concern the path's name too (`take_moved`).
    pub fn ring(&self) {
        // Before the ring: whoever takes the ring sees it.
        self.moved.store(true, Ordering::SeqCst);
        self.ring_written();
    }

    /// Rings for a write to (or truncation of) the file armed (`Waker::arm`): its name is as
    /// it was.
    pub fn ring_written(&self) {
        if !self.rung.swap(true, Ordering::SeqCst) {
            // Unparking a thread that is not parked leaves it a token: its next park returns at
            // once, and it looks at the flag again.
            if let Some(t) = &*self.waiter.lock().unwrap_or_else(|p| p.into_inner()) {
                t.unpark();
            }
        }
        let wake = self.wake.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(wake) = wake {
            wake();
        }
    }

    /// The waiting thread is about to end: the next ring runs `wake`. False, with nothing
    /// left behind, when a ring came since the last `wait` (it would have woken the thread:
    /// it should look again rather than end). True when the hook is set, or when a ring that
    /// came meanwhile ran it already: either way the thread ends.
    pub fn on_next_ring(&self, wake: Box<dyn FnOnce() + Send>) -> bool {
        *self.wake.lock().unwrap_or_else(|p| p.into_inner()) = Some(wake);
        if self.rung.load(Ordering::SeqCst) {
            // Rung before or since the hook was set: take it back if that ring did not run it.
            if self.wake.lock().unwrap_or_else(|p| p.into_inner()).take().is_some() {
                return false;
            }
        }
        true
    }

    /// Rings, unless a ring is already waiting to be taken (a load, where `ring` takes a lock for
    /// its hook): for bells rung at every event of a busy path whose waiter uses no hook.
    pub fn ring_once(&self) {
        if !self.rung.load(Ordering::SeqCst) {
            self.ring();
        }
    }

    /// Takes a ring that came (true), as a wait would, without waiting: whoever acts on a ring
    /// without sleeping on the bell (the looker of parked tails) takes it, or `on_next_ring`
    /// would take it for a ring that came since.
    pub fn take_ring(&self) -> bool {
        self.rung.swap(false, Ordering::SeqCst)
    }

    /// Whether a ring since the last call was for more than a write (`ring`): the looker asks
    /// whether the path still names its file only then, taking this after `take_ring` (a `stat`
    /// of the path per look was a tenth of the looker's time with 100 busy files, perf).
    pub fn take_moved(&self) -> bool {
        self.moved.swap(false, Ordering::SeqCst)
    }

    /// Sleeps until rung or `timeout`; true when rung. A ring before the wait is not lost.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.rung.swap(false, Ordering::SeqCst) {
            return true;
        }
        {
            let mut w = self.waiter.lock().unwrap_or_else(|p| p.into_inner());
            if w.as_ref().is_none_or(|t| t.id() != std::thread::current().id()) {
                *w = Some(std::thread::current());
            }
        }
        // A ring between the first look and the waiter's registration set the flag: seen here.
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if self.rung.swap(false, Ordering::SeqCst) {
                return true;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            std::thread::park_timeout(left);
        }
    }
}

/// Called when a listened-to directory gains, loses or renames a file.
pub type Listener = Arc<dyn Fn() + Send + Sync>;

/// Name events only: a directory watch must not report every write to the files in it.
const DIR_EVENTS: WatchMask = WatchMask::CREATE
    .union(WatchMask::DELETE)
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::MOVE_SELF);
/// Writes to (or truncation of) a file. Not `IN_ONESHOT`: a one-shot watch is gone after its
/// event (and says so in one more, `IN_IGNORED`), so every look at a file written every 10 ms
/// armed it again: `inotify_add_watch`'s path walk and mark were an eighth of the looker's
/// time with 100 such files (perf). Who waits is one-shot here, in `Registry::armed`.
const WRITES: WatchMask = WatchMask::MODIFY;

/// One watched directory.
struct Dir {
    /// None once the directory went away (deleted or moved): watched again, if it exists, at the
    /// next registration or listener for it.
    wd: Option<WatchDescriptor>,
    /// The network filesystem it is on (`network_fs`), looked up when it is watched: its files'
    /// tails poll.
    remote: Option<&'static str>,
    /// Per file name: the tails to wake.
    files: HashMap<OsString, Vec<(u64, Arc<Doorbell>)>>,
    /// Who wants to hear of files appearing and disappearing.
    listeners: Vec<(u64, Listener)>,
}

#[derive(Default)]
struct Registry {
    dirs: HashMap<PathBuf, Dir>,
    dir_of: HashMap<WatchDescriptor, PathBuf>,
    /// Content watches and the tails waiting for their next write (rung once, then taken off):
    /// a watch with nobody waiting stays until its next event, which removes it.
    armed: HashMap<WatchDescriptor, Vec<(u64, Arc<Doorbell>)>>,
    /// The content watch each tail armed last (`rearm`).
    armed_by: HashMap<u64, WatchDescriptor>,
}

impl Registry {
    fn ring_all(&self) {
        for d in self.dirs.values() {
            d.files.values().flatten().for_each(|(_, b)| b.ring());
            d.listeners.iter().for_each(|(_, l)| l());
        }
        self.armed.values().flatten().for_each(|(_, b)| b.ring());
    }
}

pub struct Waker {
    reg: Arc<Mutex<Registry>>,
    /// None when inotify could not start; tails then rely on polling alone.
    watches: Option<Mutex<Watches>>,
    /// The watch limit was reported already (once per run).
    limit_logged: AtomicBool,
    /// The instance its event thread reads, kept here so a restarted thread reads it again.
    inotify: Option<Arc<Mutex<Inotify>>>,
}

/// Adds tail `id` to a watch's waiters, once.
fn wait_on(waiters: &mut Vec<(u64, Arc<Doorbell>)>, id: u64, bell: &Arc<Doorbell>) {
    if !waiters.iter().any(|(i, _)| *i == id) {
        waiters.push((id, bell.clone()));
    }
}

fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    Some((path.parent()?.to_path_buf(), path.file_name()?.to_os_string()))
}

impl Waker {
    /// Sets up inotify; the thread that reads its events is `events_worker`, run by the caller
    /// under the supervisor.
    #[allow(clippy::new_without_default)] // it sets up a kernel object: not a default value
    pub fn new() -> Waker {
        let reg: Arc<Mutex<Registry>> = Arc::default();
        let (watches, inotify) = match Inotify::init() {
            Ok(inotify) => (Some(Mutex::new(inotify.watches())), Some(Arc::new(Mutex::new(inotify)))),
            Err(e) => {
                log::warn!("file change notifications unavailable ({e}); tails poll every poll_interval");
                (None, None)
            }
        };
        Waker { reg, watches, limit_logged: AtomicBool::new(false), inotify }
    }

    /// A waker whose event thread runs unsupervised (unit tests).
    #[cfg(test)]
    pub(crate) fn start() -> Waker {
        let w = Waker::new();
        if let Some(run) = w.events_worker() {
            std::thread::spawn(move || run());
        }
        w
    }

    /// The event thread's body, for the supervisor (None when inotify is unavailable).
    pub fn events_worker(&self) -> Option<crate::supervisor::WorkerFn> {
        let (inotify, reg) = (self.inotify.clone()?, self.reg.clone());
        Some(Arc::new(move || {
            let mut inotify = inotify.lock().unwrap_or_else(|p| p.into_inner());
            run_events(&mut inotify, &reg);
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rings `bell` whenever `path` is created, deleted or renamed, until `unregister(path, id)`.
    /// True when notifications cover the path's name (its directory is watched and it is not a
    /// symlink, whose target may change elsewhere); its content is covered by `arm`.
    pub fn register(&self, path: &Path, id: u64, bell: Arc<Doorbell>) -> bool {
        let Some((dir, name)) = split(path) else { return false };
        let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        let mut reg = self.lock();
        let Some(d) = self.dir(&mut reg, &dir) else { return false };
        d.files.entry(name).or_default().push((id, bell));
        !symlink && d.remote.is_none()
    }

    pub fn unregister(&self, path: &Path, id: u64) {
        let Some((dir, name)) = split(path) else { return };
        let mut reg = self.lock();
        // The watch it armed last goes too when nobody else waits on it: a file never written
        // again would keep it (and one of the host's inotify watches) otherwise. A tail waits on
        // that watch only (`arm` takes it off the one before).
        if let Some(wd) = reg.armed_by.remove(&id) {
            self.forget(&mut reg, wd, id);
        }
        if let Some(d) = reg.dirs.get_mut(&dir) {
            if let Some(list) = d.files.get_mut(&name) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    d.files.remove(&name);
                }
            }
        }
        self.drop_dir_if_unused(&mut reg, &dir);
    }

    /// Rings `bell` once, at the next write to (or truncation of) the file `path` names now.
    /// A tail calls it before it sleeps, then looks at its file once more (a write between its
    /// last read and the arming has no event). False when the file cannot be watched.
    pub fn arm(&self, path: &Path, id: u64, bell: &Arc<Doorbell>) -> bool {
        let Some(watches) = &self.watches else { return false };
        let mut reg = self.lock();
        let wd = match watches.lock().unwrap_or_else(|p| p.into_inner()).add(path, WRITES) {
            Ok(wd) => wd,
            Err(e) => {
                self.watch_failed(path, &e);
                return false;
            }
        };
        wait_on(reg.armed.entry(wd.clone()).or_default(), id, bell);
        if let Some(old) = reg.armed_by.insert(id, wd.clone()).filter(|old| *old != wd) {
            // The path names another file now (rotated): the old one's watch would stay until
            // that file is written or freed, and logrotate keeps generations for weeks (one
            // watch each, against the host's fs.inotify.max_user_watches).
            self.forget(&mut reg, old, id);
        }
        true
    }

    /// Takes tail `id` off watch `wd`, and the watch away when nobody else waits on it.
    fn forget(&self, reg: &mut Registry, wd: WatchDescriptor, id: u64) {
        if let Some(waiters) = reg.armed.get_mut(&wd) {
            waiters.retain(|(i, _)| *i != id);
            if waiters.is_empty() {
                reg.armed.remove(&wd);
                self.unwatch(wd);
            }
        }
    }

    /// `arm` again, on the file the tail `id` armed last, without a system call: true when its
    /// watch is still there, and then a write since it rang (whose event is not handled yet)
    /// rings `bell`. False when that watch is gone (a write found nobody waiting, and removed
    /// it): the caller arms the path (`arm`) and looks for a write before the arming.
    /// The caller knows that the path still names that file (no name event since: `take_moved`).
    pub fn rearm(&self, id: u64, bell: &Arc<Doorbell>) -> bool {
        let reg = &mut *self.lock();
        // Borrowed, not cloned: a look's only cost here is two lookups.
        let Some(waiters) = reg.armed_by.get(&id).and_then(|wd| reg.armed.get_mut(wd)) else { return false };
        wait_on(waiters, id, bell);
        true
    }

    /// Whether name events in the directory of `path` (registered with `register`) reach its tail
    /// now: watching the directory again when it was deleted and created since. A tail whose file
    /// is missing asks before it sleeps long; false (poll instead) while the directory is missing.
    pub fn names_covered(&self, path: &Path) -> bool {
        let Some((dir, _)) = split(path) else { return false };
        let mut reg = self.lock();
        match reg.dirs.get(&dir) {
            None => false,
            Some(d) if d.wd.is_some() => true,
            Some(_) => dir.is_dir() && self.dir(&mut reg, &dir).is_some(),
        }
    }

    /// Calls `listener` whenever a file is created, removed or renamed in `dir`, until
    /// `unlisten_dir(dir, id)`; it replaces an earlier listener of `id` on `dir`. Listening again
    /// watches a directory that was deleted and created again. True when change notifications
    /// cover the directory.
    pub fn listen_dir(&self, dir: &Path, id: u64, listener: Listener) -> bool {
        let mut reg = self.lock();
        let Some(d) = self.dir(&mut reg, dir) else { return false };
        d.listeners.retain(|(i, _)| *i != id);
        d.listeners.push((id, listener));
        true
    }

    pub fn unlisten_dir(&self, dir: &Path, id: u64) {
        let mut reg = self.lock();
        if let Some(d) = reg.dirs.get_mut(dir) {
            d.listeners.retain(|(i, _)| *i != id);
        }
        self.drop_dir_if_unused(&mut reg, dir);
    }

    /// The watched directory `dir`, watching it first if needed. None when it cannot be watched.
    fn dir<'r>(&self, reg: &'r mut Registry, dir: &Path) -> Option<&'r mut Dir> {
        if reg.dirs.get(dir).is_none_or(|d| d.wd.is_none()) {
            let watches = self.watches.as_ref()?;
            let wd = match watches.lock().unwrap_or_else(|p| p.into_inner()).add(dir, DIR_EVENTS) {
                Ok(wd) => wd,
                Err(e) => {
                    self.watch_failed(dir, &e);
                    return None;
                }
            };
            reg.dir_of.insert(wd.clone(), dir.to_path_buf());
            // Once per directory watched, not per file in it (10,000 files: one statfs, one line).
            let remote = network_fs(dir);
            if let Some(kind) = remote {
                log::info!(
                    "{}: on a network filesystem ({kind}), whose other hosts' writes raise no inotify \
                     event; its files are polled every poll_interval",
                    dir.display()
                );
            }
            let d = reg.dirs.entry(dir.to_path_buf()).or_insert_with(|| Dir {
                wd: None,
                remote: None,
                files: HashMap::new(),
                listeners: Vec::new(),
            });
            d.wd = Some(wd);
            d.remote = remote;
        }
        reg.dirs.get_mut(dir)
    }

    /// Out of inotify watches is worth one warning (the host's limit, not a file's problem);
    /// anything else is a file's own matter (gone, not permitted).
    fn watch_failed(&self, path: &Path, e: &std::io::Error) {
        if e.raw_os_error() == Some(libc::ENOSPC) && !self.limit_logged.swap(true, Ordering::Relaxed) {
            log::warn!(
                "inotify watch limit reached (sysctl fs.inotify.max_user_watches); files beyond it are \
                 polled every poll_interval instead of being woken at once"
            );
        }
        log::debug!("cannot watch {} ({e}); it is polled every poll_interval", path.display());
    }

    fn drop_dir_if_unused(&self, reg: &mut Registry, dir: &Path) {
        if reg.dirs.get(dir).is_some_and(|d| d.files.is_empty() && d.listeners.is_empty()) {
            if let Some(wd) = reg.dirs.remove(dir).expect("present").wd {
                reg.dir_of.remove(&wd);
                self.unwatch(wd);
            }
        }
    }

    fn unwatch(&self, wd: WatchDescriptor) {
        if let Some(w) = &self.watches {
            // Fails harmlessly when the watch is gone already (a one-shot that fired, a deleted
            // directory).
            let _ = w.lock().unwrap_or_else(|p| p.into_inner()).remove(wd);
        }
    }
}

/// The inotify thread's loop: reads events and wakes whoever they concern.
///
/// Long on purpose: a thread's loop is one function (house style).
fn run_events(inotify: &mut Inotify, reg: &Mutex<Registry>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        // Wait, then read without blocking: the crate's blocking read switches the descriptor to
        // blocking and back around every read, two `fcntl`s each way (2,712 of them in 3 s at
        // 10,000 events a second, seen with strace).
        if let Err(e) = wait_readable(inotify) {
            log::warn!("waiting for change notifications failed ({e}); tails poll every poll_interval");
            return;
        }
        let events = match inotify.read_events(&mut buf) {
            Ok(events) => events,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::Interrupted | std::io::ErrorKind::WouldBlock) => continue,
            Err(e) => {
                log::warn!("reading change notifications failed ({e}); tails poll every poll_interval");
                return;
            }
        };
        // The bells of armed files are rung after the registry is unlocked: a ring can be a
        // `futex` wake, and tails arming their files wait for the lock (seen with strace).
        let mut armed_rung: Vec<(Arc<Doorbell>, bool)> = Vec::new();
        let mut reg = reg.lock().unwrap_or_else(|p| p.into_inner());
        for ev in events {
            if ev.mask.contains(EventMask::Q_OVERFLOW) {
                // Events were lost: everyone looks.
                reg.ring_all();
                continue;
            }
            if let Some(waiters) = reg.armed.get_mut(&ev.wd) {
                // A write, or the watch gone (its file's inode freed, its filesystem unmounted).
                let written = ev.mask.contains(EventMask::MODIFY) && !ev.mask.contains(EventMask::IGNORED);
                if written && !waiters.is_empty() {
                    armed_rung.extend(std::mem::take(waiters).into_iter().map(|(_, b)| (b, true)));
                } else {
                    // Nobody waits (a busy file read by its thread): its writes cost no more
                    // events. Or the kernel dropped the watch.
                    let waiters = reg.armed.remove(&ev.wd).unwrap_or_default();
                    armed_rung.extend(waiters.into_iter().map(|(_, b)| (b, false)));
                    if written {
                        let _ = inotify.watches().remove(ev.wd.clone());
                    }
                }
                continue;
            }
            let Some(dir) = reg.dir_of.get(&ev.wd).cloned() else { continue };
            let Some(d) = reg.dirs.get_mut(&dir) else { continue };
            match ev.name {
                Some(name) => {
                    if let Some(list) = d.files.get(name) {
                        list.iter().for_each(|(_, b)| b.ring());
                    }
                }
                // The directory itself went away or moved: its tails and listeners look.
                None => d.files.values().flatten().for_each(|(_, b)| b.ring()),
            }
            d.listeners.iter().for_each(|(_, l)| l());
            if ev.mask.intersects(EventMask::IGNORED | EventMask::MOVE_SELF) {
                // The directory is gone from its path (the kernel dropped the watch, or it
                // would follow the directory elsewhere): one created under the same name later
                // is watched afresh.
                d.wd = None;
                reg.dir_of.remove(&ev.wd);
                if ev.mask.contains(EventMask::MOVE_SELF) {
                    let _ = inotify.watches().remove(ev.wd.clone());
                }
            }
        }
        drop(reg);
        for (bell, written) in armed_rung {
            if written {
                bell.ring_written();
            } else {
                bell.ring();
            }
        }
        // Let events gather: one read for many. With 1,000 files written a line every 100 ms,
        // each read found one or two events (10,000 wakeups of this thread a second); at most
        // this much latency more.
        std::thread::sleep(EVENT_GATHER);
    }
}

/// How long the event thread lets events gather after handling some.
const EVENT_GATHER: Duration = Duration::from_millis(1);

/// The kind of network filesystem `dir` is on, if it is on one: inotify reports the writes made
/// on this host only, so a file there is polled (`poll_interval`) rather than left to sleep until
/// the safety-net poll. Filebeat and Fluent Bit document the same limit; they leave it to the user.
fn network_fs(dir: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: `statfs` writes one `struct statfs` into `st`, which is a zeroed value of that
    // type (all-zero is a valid bit pattern for it); `c` is a NUL-terminated path that outlives
    // the call.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    network_kind(st.f_type as u64)
}

/// A filesystem's `f_type` (statfs(2)'s magic numbers), if it is a network one.
fn network_kind(f_type: u64) -> Option<&'static str> {
    match f_type {
        0x6969 => Some("nfs"),
        0xFF53_4D42 => Some("cifs"),
        0xFE53_4D42 => Some("smb2"),
        0x517B => Some("smb"),
        0x0102_1997 => Some("9p"),
        0x00C3_6400 => Some("ceph"),
        0x6573_5546 => Some("fuse"),
        0x0BD0_0BD0 => Some("lustre"),
        0x4750_4653 => Some("gpfs"),
        _ => None,
    }
}

/// Blocks until the inotify descriptor has events to read (it is non-blocking: the crate opens
/// it so).
fn wait_readable(inotify: &Inotify) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut pfd = libc::pollfd { fd: inotify.as_raw_fd(), events: libc::POLLIN, revents: 0 };
    loop {
        // SAFETY: `pfd` is one valid, initialised pollfd that lives across the call, and the
        // count passed is 1; the descriptor stays open (borrowed from `inotify`) meanwhile.
        let rc = unsafe { libc::poll(&mut pfd, 1, -1) };
        if rc >= 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn append(path: &Path, text: &[u8]) {
        std::fs::OpenOptions::new().append(true).create(true).open(path).unwrap().write_all(text).unwrap();
    }

    /// Two empty files, `a.log` and `b.log`, a started waker and a bell for each.
    struct TwoFiles {
        _dir: tempfile::TempDir,
        a: PathBuf,
        b: PathBuf,
        w: Waker,
        ba: Arc<Doorbell>,
        bb: Arc<Doorbell>,
    }

    fn two_files() -> TwoFiles {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, b"").unwrap();
        std::fs::write(&b, b"").unwrap();
        let (ba, bb) = (Arc::new(Doorbell::default()), Arc::new(Doorbell::default()));
        TwoFiles { _dir: dir, a, b, w: Waker::start(), ba, bb }
    }

    #[test]
    fn an_armed_file_wakes_its_tail_once() {
        let TwoFiles { _dir, a, b, w, ba, bb } = two_files();
        assert!(w.register(&a, 1, ba.clone()));
        assert!(w.register(&b, 2, bb.clone()));
        // Not armed: a write wakes nobody (busy files cost no event).
        append(&a, b"x\n");
        assert!(!ba.wait(Duration::from_millis(200)), "a write to an unarmed file rings nothing");
        assert!(w.arm(&a, 1, &ba));
        assert!(w.arm(&a, 1, &ba), "arming twice is one waiter");
        append(&a, b"y\n");
        assert!(ba.wait(Duration::from_secs(5)), "a woken");
        assert!(!ba.take_moved(), "a write leaves the name as it was");
        assert!(!bb.wait(Duration::from_millis(200)), "b not woken");
        append(&a, b"z\n");
        assert!(!ba.wait(Duration::from_millis(200)), "one-shot: the second write rings nothing");
        w.unregister(&a, 1);
        w.unregister(&b, 2);
    }

    #[test]
    fn a_watch_is_armed_again_without_a_system_call_until_a_write_finds_nobody_waiting() {
        let TwoFiles { _dir, a, b, w, ba, bb } = two_files();
        assert!(!w.rearm(1, &ba), "nothing armed yet");
        assert!(w.arm(&a, 1, &ba));
        append(&a, b"x\n");
        assert!(ba.wait(Duration::from_secs(5)), "the write rings");
        for n in 0..3 {
            assert!(w.rearm(1, &ba), "the watch is still there ({n})");
            append(&a, b"y\n");
            assert!(ba.wait(Duration::from_secs(5)), "armed again, the next write rings ({n})");
        }
        // A write with nobody waiting (a busy file read by its thread) removes the watch: the
        // event thread handles events in order, so once b's write rang, a's was handled.
        append(&a, b"z\n");
        assert!(w.arm(&b, 2, &bb));
        append(&b, b"x\n");
        assert!(bb.wait(Duration::from_secs(5)), "b rings");
        assert!(!ba.wait(Duration::from_millis(100)), "nobody was waiting on a");
        assert!(!w.rearm(1, &ba), "a's watch is gone: the tail arms its path again");
        append(&a, b"w\n");
        assert!(!ba.wait(Duration::from_millis(200)), "and until then a write rings nothing");
        assert!(w.arm(&a, 1, &ba));
        append(&a, b"v\n");
        assert!(ba.wait(Duration::from_secs(5)), "armed on its path again");
        w.unregister(&a, 1);
        w.unregister(&b, 2);
        assert!(w.lock().armed.is_empty(), "unregistered tails leave no watch behind");
    }

    #[test]
    fn a_tail_arming_its_path_after_a_rotation_leaves_no_watch_on_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let old = |n: u32| dir.path().join(format!("a.log.{n}"));
        std::fs::write(&a, b"").unwrap();
        let w = Waker::start();
        let bell = Arc::new(Doorbell::default());
        assert!(w.register(&a, 1, bell.clone()));
        for round in 0..3 {
            assert!(w.arm(&a, 1, &bell));
            append(&a, b"x\n");
            assert!(bell.wait(Duration::from_secs(5)), "a write rings ({round})");
            // Rotated: the generation stays on disk, unwritten (logrotate keeps it for weeks).
            std::fs::rename(&a, old(round)).unwrap();
            std::fs::write(&a, b"").unwrap();
        }
        assert!(w.arm(&a, 1, &bell));
        assert_eq!(w.lock().armed.len(), 1, "one watch: the file the path names");
        append(&old(0), b"late\n");
        append(&a, b"y\n");
        assert!(bell.wait(Duration::from_secs(5)), "the current file rings");
        w.unregister(&a, 1);
        assert!(w.lock().armed.is_empty());
    }

    #[test]
    fn names_appearing_and_vanishing_wake_tails_and_listeners() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        let w = Waker::start();
        let bell = Arc::new(Doorbell::default());
        assert!(w.register(&a, 1, bell.clone()));
        let (tx, rx) = crossbeam_channel::unbounded();
        assert!(w.listen_dir(
            dir.path(),
            0,
            Arc::new(move || {
                let _ = tx.send(());
            })
        ));
        std::fs::write(&a, b"x\n").unwrap();
        assert!(bell.wait(Duration::from_secs(5)), "created");
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "listener called");
        assert!(bell.take_moved(), "a name event says the name may have moved");
        std::fs::rename(&a, dir.path().join("a.log.1")).unwrap();
        assert!(bell.wait(Duration::from_secs(5)), "renamed away");
        assert!(bell.take_moved(), "renamed: the looker asks what the path names");
        assert!(!bell.take_moved(), "taken once");
        w.unlisten_dir(dir.path(), 0);
        w.unregister(&a, 1);
        while rx.try_recv().is_ok() {}
        std::fs::write(dir.path().join("other.log"), b"x\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "no longer listening");
    }

    #[test]
    fn a_directory_deleted_and_created_again_is_watched_again_when_listened_to() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("svc");
        std::fs::create_dir(&dir).unwrap();
        let w = Waker::start();
        let (tx, rx) = crossbeam_channel::unbounded();
        let listener: Listener = Arc::new(move || {
            let _ = tx.send(());
        });
        assert!(w.listen_dir(&dir, 0, listener.clone()));
        std::fs::remove_dir(&dir).unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "the deletion is heard");
        // The kernel's IN_IGNORED follows the deletion; wait until the registry has seen it.
        let gone = std::time::Instant::now() + Duration::from_secs(5);
        while w.lock().dirs.get(&dir).is_some_and(|d| d.wd.is_some()) {
            assert!(std::time::Instant::now() < gone, "the dead watch is noticed");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::create_dir(&dir).unwrap();
        assert!(w.listen_dir(&dir, 0, listener), "listening again re-watches the new directory");
        while rx.try_recv().is_ok() {}
        std::fs::write(dir.join("a.log"), b"x\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "a file in the new directory is heard");
        assert_eq!(w.lock().dirs[&dir].listeners.len(), 1, "one listener per id");
        w.unlisten_dir(&dir, 0);
        assert!(!w.lock().dirs.contains_key(&dir));
    }

    #[test]
    fn a_tail_in_a_directory_deleted_and_created_again_is_covered_again() {
        let top = tempfile::tempdir().unwrap();
        let dir = top.path().join("app");
        let path = dir.join("app.log");
        std::fs::create_dir(&dir).unwrap();
        let w = Waker::start();
        let bell = Arc::new(Doorbell::default());
        assert!(w.register(&path, 1, bell.clone()));
        assert!(w.names_covered(&path));
        std::fs::remove_dir(&dir).unwrap();
        assert!(bell.wait(Duration::from_secs(5)), "the tail hears its directory go");
        let gone = std::time::Instant::now() + Duration::from_secs(5);
        while w.names_covered(&path) {
            assert!(std::time::Instant::now() < gone, "not covered once the directory is gone");
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::create_dir(&dir).unwrap();
        assert!(w.names_covered(&path), "covered again: the new directory is watched");
        std::fs::write(&path, b"x\n").unwrap();
        assert!(bell.wait(Duration::from_secs(5)), "the file made in the new directory rings the tail");
        w.unregister(&path, 1);
        assert!(!w.names_covered(&path), "nobody registered");
    }

    #[test]
    fn network_filesystems_are_told_from_local_ones() {
        assert_eq!(network_kind(0x6969), Some("nfs"));
        assert_eq!(network_kind(0xFF53_4D42), Some("cifs"));
        assert_eq!(network_kind(0xEF53), None, "ext4");
        assert_eq!(network_kind(0x0102_1994), None, "tmpfs");
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(network_fs(dir.path()), None, "this machine has no network filesystem mounted");
    }

    #[test]
    fn a_ring_before_the_wait_is_kept() {
        let d = Doorbell::default();
        d.ring();
        assert!(d.wait(Duration::from_secs(5)));
        assert!(!d.wait(Duration::from_millis(10)));
    }
}
