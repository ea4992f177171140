//! The open-file budget: how many files the tails may hold open for reading at once.
//!
//! Exists so that a glob matching thousands of files makes files wait their turn, with one clear
//! log line, instead of the agent failing on EMFILE everywhere (its sockets, its checkpoint store
//! and its own log need descriptors too). A tail takes a `Permit` before it opens its file and
//! gives it back when it closes it (a stop, `close_inactive`, a drained rotation); a file that
//! gets no permit is opened later, when one is free. A rotated-away file a tail already reads is
//! never refused (it is read to its end and closed after `rotate_wait`), so the count may pass
//! the limit for that long.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Descriptors left for everything that is not a tailed file, when the limit comes from
/// `ulimit -n`.
pub const RESERVED: usize = 64;
/// The log line about the limit is repeated at most this often.
const LOG_EVERY: Duration = Duration::from_secs(60);

pub struct FileBudget {
    limit: usize,
    open: AtomicUsize,
    /// When the limit was last logged, and how many opens were refused since.
    logged: Mutex<(Option<Instant>, u64)>,
}

/// One open file's share of the budget; given back when dropped.
pub struct Permit(Arc<FileBudget>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl FileBudget {
    pub fn new(limit: usize) -> Arc<FileBudget> {
        Arc::new(FileBudget { limit, open: AtomicUsize::new(0), logged: Mutex::new((None, 0)) })
    }

    /// `max_open_files` when set; else the soft `ulimit -n` less `RESERVED` (at least 16).
    pub fn from_config(max_open_files: Option<usize>) -> Arc<FileBudget> {
        FileBudget::new(max_open_files.unwrap_or_else(|| descriptor_limit().saturating_sub(RESERVED).max(16)))
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Files open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// A permit for a file a tail starts reading, unless the limit is reached (then logged, at
    /// most once a minute).
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let taken = self.open.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| (n < self.limit).then_some(n + 1));
        if taken.is_ok() {
            return Some(Permit(self.clone()));
        }
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        logged.1 += 1;
        if !matches!(logged.0, Some(at) if at.elapsed() < LOG_EVERY) {
            log::warn!(
                "max_open_files ({}) reached: {} file opens wait for a descriptor until a file is closed \
                 (close_inactive, a drained rotation, a stopped tail); raise max_open_files (and ulimit -n) to tail more files at once",
                self.limit,
                logged.1
            );
            *logged = (Some(Instant::now()), 0);
        }
        None
    }

    /// A permit for a file that must be read to its end whatever the count (a rotated-away file).
    pub fn acquire_anyway(self: &Arc<Self>) -> Permit {
        self.open.fetch_add(1, Ordering::SeqCst);
        Permit(self.clone())
    }
}

/// The soft limit on open descriptors (`ulimit -n`).
pub fn descriptor_limit() -> usize {
    let mut rl = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return 1024;
    }
    usize::try_from(rl.rlim_cur).unwrap_or(usize::MAX).min(1 << 20)
}

/// Whether an open failed for want of descriptors (the process's or the system's).
pub fn out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_up_to_the_limit_and_back() {
        let b = FileBudget::new(2);
        let p1 = b.try_acquire().unwrap();
        let _p2 = b.try_acquire().unwrap();
        assert!(b.try_acquire().is_none());
        let over = b.acquire_anyway();
        assert_eq!(b.open(), 3);
        drop(p1);
        assert!(b.try_acquire().is_none(), "still at 2 with the rotated file");
        drop(over);
        assert!(b.try_acquire().is_some());
    }

    #[test]
    fn default_comes_from_ulimit() {
        assert!(FileBudget::from_config(None).limit() >= 16);
        assert_eq!(FileBudget::from_config(Some(7)).limit(), 7);
    }
}
