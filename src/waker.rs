//! Change notifications: wakes a tail the moment its file or its directory changes.
//!
//! Exists so that tails can sleep long when their files are quiet (CPU near zero with thousands
//! of files) and still react within milliseconds. One notify watcher (inotify on Linux) watches
//! the *directories* of the tailed files, one watch per directory, so appends, renames, creates
//! and deletes are all seen; each event wakes the tails of the file names it mentions. Where
//! notify cannot watch (no inotify, or its limits reached) tails fall back to their backed-off
//! stat poll (`poll_interval`), which always runs underneath.
//!
//! The file server also listens to whole directories (those its glob patterns look in): a file
//! created, removed or renamed there calls its listener, which queues a rescan.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// How a sleeping thread is woken. A condition variable, not a channel: crossbeam's
/// `recv_timeout` spins (`sched_yield`) before it blocks, which cost most of the CPU of
/// thousands of mostly idle tails (measured with perf: 45% of all samples).
#[derive(Default)]
pub struct Doorbell {
    rung: Mutex<bool>,
    cv: Condvar,
}

impl Doorbell {
    pub fn ring(&self) {
        *self.rung.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_one();
    }

    /// Sleeps until rung or `timeout`; true when rung. A ring before the wait is not lost.
    pub fn wait(&self, timeout: Duration) -> bool {
        let g = self.rung.lock().unwrap_or_else(|p| p.into_inner());
        let (mut g, _) = self.cv.wait_timeout_while(g, timeout, |rung| !*rung).unwrap_or_else(|p| p.into_inner());
        std::mem::replace(&mut *g, false)
    }
}

/// Called when a listened-to directory gains, loses or renames a file.
pub type Listener = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Registry {
    /// Per directory, per file name: the tails to wake.
    files: HashMap<PathBuf, HashMap<OsString, Vec<(u64, Arc<Doorbell>)>>>,
    /// Per directory: who wants to hear of files appearing and disappearing.
    dirs: HashMap<PathBuf, Vec<(u64, Listener)>>,
}

impl Registry {
    fn in_use(&self, dir: &Path) -> bool {
        self.files.contains_key(dir) || self.dirs.contains_key(dir)
    }
}

pub struct Waker {
    tails: Arc<Mutex<Registry>>,
    /// None when notify could not start; tails then rely on polling alone.
    watcher: Mutex<Option<RecommendedWatcher>>,
}

fn split(path: &Path) -> Option<(PathBuf, OsString)> {
    Some((path.parent()?.to_path_buf(), path.file_name()?.to_os_string()))
}

impl Waker {
    pub fn start() -> Waker {
        let tails: Arc<Mutex<Registry>> = Arc::default();
        let t2 = tails.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            let names_changed = matches!(
                event.kind,
                EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
            );
            let reg = t2.lock().unwrap_or_else(|p| p.into_inner());
            for p in &event.paths {
                let Some((dir, name)) = split(p) else { continue };
                if let Some(list) = reg.files.get(&dir).and_then(|files| files.get(&name)) {
                    for (_, bell) in list {
                        bell.ring();
                    }
                }
                if names_changed {
                    for (_, listener) in reg.dirs.get(&dir).into_iter().flatten() {
                        listener();
                    }
                }
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                log::warn!("file change notifications unavailable ({e}); tails poll every poll_interval");
                None
            }
        };
        Waker { tails, watcher: Mutex::new(watcher) }
    }

    /// Rings `bell` whenever `path` changes, until `unregister(path, id)`. True when change
    /// notifications cover the path (its directory is watched and it is not a symlink, whose
    /// target may change elsewhere), so the tail may poll rarely.
    pub fn register(&self, path: &Path, id: u64, bell: Arc<Doorbell>) -> bool {
        let Some((dir, name)) = split(path) else { return false };
        let first_in_dir = {
            let mut reg = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            let first = !reg.in_use(&dir);
            reg.files.entry(dir.clone()).or_default().entry(name).or_default().push((id, bell));
            first
        };
        let symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        self.watch(&dir, first_in_dir) && !symlink
    }

    pub fn unregister(&self, path: &Path, id: u64) {
        let Some((dir, name)) = split(path) else { return };
        let last_in_dir = {
            let mut reg = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            let Some(files) = reg.files.get_mut(&dir) else { return };
            if let Some(list) = files.get_mut(&name) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    files.remove(&name);
                }
            }
            if files.is_empty() {
                reg.files.remove(&dir);
            }
            !reg.in_use(&dir)
        };
        self.unwatch(&dir, last_in_dir);
    }

    /// Calls `listener` whenever a file is created, removed or renamed in `dir`, until
    /// `unlisten_dir(dir, id)`. True when change notifications cover the directory.
    pub fn listen_dir(&self, dir: &Path, id: u64, listener: Listener) -> bool {
        let first = {
            let mut reg = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            let first = !reg.in_use(dir);
            reg.dirs.entry(dir.to_path_buf()).or_default().push((id, listener));
            first
        };
        self.watch(dir, first)
    }

    pub fn unlisten_dir(&self, dir: &Path, id: u64) {
        let last = {
            let mut reg = self.tails.lock().unwrap_or_else(|p| p.into_inner());
            let Some(list) = reg.dirs.get_mut(dir) else { return };
            list.retain(|(i, _)| *i != id);
            if list.is_empty() {
                reg.dirs.remove(dir);
            }
            !reg.in_use(dir)
        };
        self.unwatch(dir, last);
    }

    /// Starts watching `dir` when `first` (its first user); true when it is watched. Not under the
    /// registry lock: notify's event thread takes that lock in the handler.
    fn watch(&self, dir: &Path, first: bool) -> bool {
        let mut guard = self.watcher.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = guard.as_mut() else { return false };
        if !first {
            return true;
        }
        match w.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("cannot watch {} ({e}); it is polled instead", dir.display());
                false
            }
        }
    }

    fn unwatch(&self, dir: &Path, last: bool) {
        if last {
            if let Some(w) = self.watcher.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
                let _ = w.unwatch(dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_write_wakes_the_tail_of_that_file_only() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
        std::fs::write(&a, b"").unwrap();
        std::fs::write(&b, b"").unwrap();
        let w = Waker::start();
        let (ba, bb) = (Arc::new(Doorbell::default()), Arc::new(Doorbell::default()));
        w.register(&a, 1, ba.clone());
        w.register(&b, 2, bb.clone());
        std::fs::write(&a, b"x\n").unwrap();
        assert!(ba.wait(Duration::from_secs(5)), "a woken");
        assert!(!bb.wait(Duration::from_millis(200)), "b not woken");
        w.unregister(&a, 1);
        std::thread::sleep(Duration::from_millis(100));
        ba.wait(Duration::ZERO);
        std::fs::write(&a, b"y\n").unwrap();
        assert!(!ba.wait(Duration::from_millis(300)), "unregistered");
        w.unregister(&b, 2);
    }

    #[test]
    fn a_new_file_calls_the_directory_listener() {
        let dir = tempfile::tempdir().unwrap();
        let w = Waker::start();
        let (tx, rx) = crossbeam_channel::unbounded();
        assert!(w.listen_dir(
            dir.path(),
            0,
            Arc::new(move || {
                let _ = tx.send(());
            })
        ));
        std::fs::write(dir.path().join("new.log"), b"x\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_secs(5)).is_ok(), "listener called");
        w.unlisten_dir(dir.path(), 0);
        while rx.try_recv().is_ok() {}
        std::thread::sleep(Duration::from_millis(100));
        std::fs::write(dir.path().join("other.log"), b"x\n").unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(300)).is_err(), "no longer listening");
    }

    #[test]
    fn a_ring_before_the_wait_is_kept() {
        let d = Doorbell::default();
        d.ring();
        assert!(d.wait(Duration::from_secs(5)));
        assert!(!d.wait(Duration::from_millis(10)));
    }
}
