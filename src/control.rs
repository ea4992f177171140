//! The agent's control messages: what its main thread waits for.
//!
//! Exists apart from `agent` so that the threads below it (the file server asks for a restart in
//! place, the sending thread reports a fenced producer) send on a channel whose message type is
//! theirs to name, and no module imports the agent: the agent imports them, never the reverse.
//! And `Stop`, the one way every thread is asked to stop.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::waker::Doorbell;

/// What the agent's main thread waits for (one channel, one enum).
pub enum AgentMsg {
    /// SIGHUP, SIGINT or SIGTERM, forwarded by the supervised "signals" thread.
    Signal(i32),
    /// A reload changed settings a running agent cannot take (`kafkaconfig`, `data_dir`...): stop
    /// in order, then exec the same binary with the same arguments (same PID, so supervisord and
    /// systemd see no exit).
    Restart { why: String },
    /// The transactional producer was fenced: stop in order and exit 7.
    Fenced { why: String },
}

/// How a thread is asked to stop, the one way for every thread of the agent: a flag its loop
/// looks at between steps, and a wake-up for whatever it waits on. A thread that sleeps between
/// rounds sleeps in `sleep`; one that waits on channels adds `receiver()` to its `select!` (it
/// is disconnected when raised); a tail, which sleeps on its doorbell, has the doorbell rung
/// (`with_bell`). Raised once, it stays raised: a thread the supervisor restarts after a panic
/// sees it at once. Clones share one flag.
#[derive(Clone)]
pub struct Stop(Arc<StopInner>);

struct StopInner {
    raised: AtomicBool,
    /// Dropped when raised: every receiver's wait ends (`Disconnected`) at once.
    tx: Mutex<Option<Sender<()>>>,
    rx: Receiver<()>,
    bell: Option<Arc<Doorbell>>,
}

impl Default for Stop {
    fn default() -> Self {
        Stop::new()
    }
}

impl Stop {
    pub fn new() -> Stop {
        Stop::build(None)
    }

    /// A stop that also rings `bell` (a tail's, which it sleeps on) when raised.
    pub fn with_bell(bell: Arc<Doorbell>) -> Stop {
        Stop::build(Some(bell))
    }

    fn build(bell: Option<Arc<Doorbell>>) -> Stop {
        let (tx, rx) = bounded(0);
        Stop(Arc::new(StopInner { raised: AtomicBool::new(false), tx: Mutex::new(Some(tx)), rx, bell }))
    }

    pub fn raise(&self) {
        self.0.raised.store(true, Ordering::SeqCst);
        drop(self.0.tx.lock().unwrap_or_else(|p| p.into_inner()).take());
        if let Some(bell) = &self.0.bell {
            bell.ring();
        }
    }

    pub fn is_raised(&self) -> bool {
        self.0.raised.load(Ordering::SeqCst)
    }

    /// Sleeps `d`, or less when raised meanwhile; true when raised.
    pub fn sleep(&self, d: Duration) -> bool {
        if !self.is_raised() {
            let _ = self.0.rx.recv_timeout(d);
        }
        self.is_raised()
    }

    /// For a `select!`: disconnected once raised.
    pub fn receiver(&self) -> &Receiver<()> {
        &self.0.rx
    }

    /// The flag itself, for callees that only look at it (`sink::Sink::submit`).
    pub fn flag(&self) -> &AtomicBool {
        &self.0.raised
    }
}

/// Raises a stop when dropped: a test whose assertion fails inside `thread::scope` must not
/// leave the thread it started waiting for ever.
#[cfg(test)]
pub struct RaiseOnDrop<'a>(pub &'a Stop);

#[cfg(test)]
impl Drop for RaiseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.raise();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn raising_wakes_sleepers_selects_and_the_bell_and_stays_raised() {
        let stop = Stop::with_bell(Arc::default());
        assert!(!stop.sleep(Duration::from_millis(10)));
        let (a, b) = (stop.clone(), stop.clone());
        let sleeper = std::thread::spawn(move || a.sleep(Duration::from_secs(30)));
        let selector = std::thread::spawn(move || {
            crossbeam_channel::select! {
                recv(b.receiver()) -> _ => b.is_raised(),
                default(Duration::from_secs(30)) => false,
            }
        });
        let started = Instant::now();
        std::thread::sleep(Duration::from_millis(50));
        stop.raise();
        assert!(sleeper.join().unwrap() && selector.join().unwrap());
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(stop.0.bell.as_ref().unwrap().wait(Duration::ZERO), "the bell was rung");
        assert!(stop.sleep(Duration::from_secs(30)) && stop.flag().load(Ordering::SeqCst));
    }
}
