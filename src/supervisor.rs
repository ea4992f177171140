//! The supervisor: runs every worker thread under `catch_unwind` and respawns the ones that panic.
//!
//! Exists so that a bug in one tail or watcher costs a restart, not the agent. Workers keep their
//! state outside the thread (see `tail::TailState`), so a respawned worker resumes where the
//! panicked one stopped. Restarts back off exponentially (100 ms doubling to 30 s), and the
//! backoff resets once a worker has run for `STABLE_AFTER` without panicking.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, RecvTimeoutError, Sender};

/// The body of a worker; called again on every restart.
pub type WorkerFn = Arc<dyn Fn() + Send + Sync>;

pub const FIRST_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
pub const STABLE_AFTER: Duration = Duration::from_secs(10);

/// Messages of the supervisor's channel.
pub enum SupervisorMsg {
    /// Run a new worker under this (unique) name.
    Spawn { name: String, run: WorkerFn, restarts: Arc<AtomicU64> },
    /// Do not restart this worker any more; it is being stopped by its own stop flag.
    Retire { name: String },
    /// A worker's thread ended; `panic` holds the panic message when it panicked.
    Exited { name: String, generation: u64, panic: Option<String> },
    /// Stop restarting anything and end the supervisor thread.
    Shutdown,
}

/// The handle other threads use to ask the supervisor for things.
#[derive(Clone)]
pub struct Supervisor {
    tx: Sender<SupervisorMsg>,
}

impl Supervisor {
    /// Starts the supervisor thread.
    pub fn start() -> (Supervisor, thread::JoinHandle<()>) {
        let (tx, rx) = unbounded();
        let own_tx = tx.clone();
        let handle = thread::Builder::new()
            .name("supervisor".into())
            .spawn(move || run_supervisor(rx, own_tx))
            .expect("spawn the supervisor thread");
        (Supervisor { tx }, handle)
    }

    /// Runs `run` on its own thread, restarting it when it panics. Returns the restart counter.
    pub fn spawn(&self, name: impl Into<String>, run: WorkerFn) -> Arc<AtomicU64> {
        let restarts = Arc::new(AtomicU64::new(0));
        self.spawn_counted(name, run, restarts.clone());
        restarts
    }

    /// `spawn`, counting restarts in `restarts` (a worker that ended and is started again, a
    /// parked tail, keeps its count).
    pub fn spawn_counted(&self, name: impl Into<String>, run: WorkerFn, restarts: Arc<AtomicU64>) {
        let _ = self.tx.send(SupervisorMsg::Spawn { name: name.into(), run, restarts });
    }

    pub fn retire(&self, name: impl Into<String>) {
        let _ = self.tx.send(SupervisorMsg::Retire { name: name.into() });
    }

    pub fn shutdown(&self) {
        let _ = self.tx.send(SupervisorMsg::Shutdown);
    }
}

/// Exponential backoff between restarts of one worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST_BACKOFF }
    }
}

impl Backoff {
    /// The delay before the next restart of a worker that ran for `ran_for` before panicking.
    pub fn after_panic(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= STABLE_AFTER {
            self.next = FIRST_BACKOFF;
        }
        let delay = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        delay
    }
}

struct Worker {
    run: WorkerFn,
    restarts: Arc<AtomicU64>,
    backoff: Backoff,
    generation: u64,
    started: Instant,
    running: bool,
    restart_at: Option<Instant>,
    retired: bool,
}

/// The supervisor thread's loop.
///
/// Long on purpose: a thread's loop is one function (house style).
fn run_supervisor(rx: Receiver<SupervisorMsg>, tx: Sender<SupervisorMsg>) {
    let mut workers: HashMap<String, Worker> = HashMap::new();
    loop {
        let next_restart = workers.values().filter_map(|w| w.restart_at).min();
        let msg = match next_restart {
            Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            },
            None => match rx.recv() {
                Ok(m) => Some(m),
                Err(_) => return,
            },
        };
        match msg {
            Some(SupervisorMsg::Spawn { name, run, restarts }) => {
                let mut w = Worker {
                    run,
                    restarts,
                    backoff: Backoff::default(),
                    // Started again under a name whose last thread has not been reported ended
                    // yet (a parked tail woken as its thread ends): that thread's exit is told
                    // apart by its older generation.
                    generation: workers.get(&name).map_or(0, |w| w.generation),
                    started: Instant::now(),
                    running: false,
                    restart_at: None,
                    retired: false,
                };
                launch(&name, &mut w, &tx);
                workers.insert(name, w);
            }
            Some(SupervisorMsg::Retire { name }) => {
                if let Some(w) = workers.get_mut(&name) {
                    w.retired = true;
                    w.restart_at = None;
                    if !w.running {
                        forget(&mut workers, &name);
                    }
                }
            }
            Some(SupervisorMsg::Exited { name, generation, panic }) => {
                let Some(w) = workers.get_mut(&name) else {
                    continue;
                };
                if w.generation != generation {
                    continue;
                }
                w.running = false;
                match panic {
                    Some(msg) if !w.retired => {
                        let delay = w.backoff.after_panic(w.started.elapsed());
                        log::error!("worker {name} panicked: {msg}; restarting in {delay:?}");
                        w.restart_at = Some(Instant::now() + delay);
                    }
                    Some(msg) => {
                        log::error!("worker {name} panicked while stopping: {msg}");
                        forget(&mut workers, &name);
                    }
                    None => {
                        forget(&mut workers, &name);
                    }
                }
            }
            Some(SupervisorMsg::Shutdown) => return,
            None => {
                let now = Instant::now();
                let due: Vec<String> = workers
                    .iter()
                    .filter(|(_, w)| w.restart_at.is_some_and(|at| at <= now))
                    .map(|(n, _)| n.clone())
                    .collect();
                for name in due {
                    let w = workers.get_mut(&name).expect("due worker exists");
                    w.restart_at = None;
                    w.restarts.fetch_add(1, Ordering::Relaxed);
                    log::info!("restarting worker {name}");
                    launch(&name, w, &tx);
                }
            }
        }
    }
}

/// Drops an ended worker. The table gives its room back once it is mostly empty: 10,000 files
/// caught up at start ran 10,000 tail threads at once, then parked, and the table kept their
/// room (0.9 MB, heap-profiled) for as long as the agent ran.
fn forget(workers: &mut HashMap<String, Worker>, name: &str) {
    workers.remove(name);
    if workers.capacity() > 64 && workers.len() * 4 < workers.capacity() {
        workers.shrink_to_fit();
    }
}

fn launch(name: &str, w: &mut Worker, tx: &Sender<SupervisorMsg>) {
    w.generation += 1;
    w.started = Instant::now();
    w.running = true;
    let (run, tx2, name2, generation) = (w.run.clone(), tx.clone(), name.to_string(), w.generation);
    let spawned = thread::Builder::new().name(thread_name(name)).spawn(move || {
        let result = catch_unwind(AssertUnwindSafe(|| run()));
        let panic = result.err().map(|p| panic_message(p.as_ref()));
        let _ = tx2.send(SupervisorMsg::Exited { name: name2, generation, panic });
    });
    if let Err(e) = spawned {
        // Out of threads or memory: treat like a panic so it is retried with backoff.
        let _ = tx.send(SupervisorMsg::Exited {
            name: name.to_string(),
            generation,
            panic: Some(format!("could not start a thread: {e}")),
        });
    }
}

/// Thread names are cut to what Linux shows (15 bytes) from the end, the informative part.
fn thread_name(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let start = chars.len().saturating_sub(15);
    chars[start..].iter().collect()
}

/// The text of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        s.to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let short = Duration::from_millis(1);
        assert_eq!(b.after_panic(short), Duration::from_millis(100));
        assert_eq!(b.after_panic(short), Duration::from_millis(200));
        assert_eq!(b.after_panic(short), Duration::from_millis(400));
        for _ in 0..20 {
            b.after_panic(short);
        }
        assert_eq!(b.after_panic(short), MAX_BACKOFF);
        assert_eq!(b.after_panic(STABLE_AFTER), FIRST_BACKOFF);
    }

    #[test]
    fn a_panicking_worker_is_restarted_until_it_succeeds() {
        let (sup, _h) = Supervisor::start();
        let calls = Arc::new(AtomicUsize::new(0));
        let (done_tx, done_rx) = unbounded();
        let c = calls.clone();
        let restarts = sup.spawn(
            "flaky",
            Arc::new(move || {
                if c.fetch_add(1, Ordering::SeqCst) < 2 {
                    panic!("deliberate");
                }
                let _ = done_tx.send(());
            }),
        );
        done_rx.recv_timeout(Duration::from_secs(5)).expect("worker succeeded after restarts");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert_eq!(restarts.load(Ordering::SeqCst), 2);
        sup.shutdown();
    }

    #[test]
    fn a_retired_worker_is_not_restarted() {
        let (sup, _h) = Supervisor::start();
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        sup.spawn(
            "doomed",
            Arc::new(move || {
                c.fetch_add(1, Ordering::SeqCst);
                panic!("deliberate");
            }),
        );
        sup.retire("doomed");
        thread::sleep(Duration::from_millis(400));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        sup.shutdown();
    }

    #[test]
    fn thread_names_keep_the_end() {
        assert_eq!(thread_name("tail:/var/log/app.log"), "/var/log/app.log"[1..].to_string());
        assert_eq!(thread_name("cfg"), "cfg");
    }
}
