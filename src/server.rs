//! The file server: turns what the sources want into running tails.
//!
//! Exists as the one place that owns the set of running tails. Config reloads and etcd updates
//! arrive as `Event`s on one channel; each is folded into `Desired`, and the resulting `Change`
//! (computed by plain functions in `desired`) is applied by stopping and starting tail threads
//! under the supervisor. The server's own state lives outside its thread, so the supervisor can
//! restart it after a panic without losing track of the tails.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::Config;
use crate::desired::{Change, Desired, SourceId, TailSpec};
use crate::supervisor::Supervisor;
use crate::tail::{Tail, TailCtx};

/// Messages of the server's channel.
pub enum Event {
    /// config.yaml changed and the new file is valid.
    Config(Box<Config>),
    /// An etcd key holds (a valid value naming) these tails, as of `revision`; `watcher`
    /// identifies the reporting watcher (reports of retired watchers are ignored).
    EtcdValue { key: String, watcher: u64, revision: i64, tails: BTreeSet<TailSpec> },
    /// An etcd key was deleted: all of its tails stop.
    EtcdDeleted { key: String, watcher: u64, revision: i64 },
    /// Stop every tail, then report on `done`.
    Shutdown { done: Sender<()> },
}

/// Hooks the server calls when config.yaml's etcd settings change (the etcd module's watchers).
pub trait EtcdControl: Send {
    /// Starts and stops watchers for `config`; returns the keys no longer watched.
    #[must_use]
    fn reconfigure(&mut self, config: &Config) -> Vec<String>;
    /// Whether `watcher` is the live watcher of `key` (reports of retired ones are ignored).
    fn is_current(&self, key: &str, watcher: u64) -> bool;
}

/// No etcd: nothing to reconfigure.
pub struct NoEtcd;
impl EtcdControl for NoEtcd {
    fn reconfigure(&mut self, _config: &Config) -> Vec<String> {
        Vec::new()
    }
    fn is_current(&self, _key: &str, _watcher: u64) -> bool {
        false
    }
}

/// How long shutdown waits for tail threads to finish the line they are sending.
const STOP_WAIT: Duration = Duration::from_secs(10);

pub struct ServerState {
    ctx: Arc<TailCtx>,
    supervisor: Supervisor,
    config: Config,
    desired: Desired,
    tails: HashMap<TailSpec, Tail>,
    stopping: Vec<Tail>,
    generation: u64,
    etcd: Box<dyn EtcdControl>,
    applied_initial: bool,
}

impl ServerState {
    pub fn new(ctx: Arc<TailCtx>, supervisor: Supervisor, config: Config, etcd: Box<dyn EtcdControl>) -> ServerState {
        ServerState {
            ctx,
            supervisor,
            config,
            desired: Desired::default(),
            tails: HashMap::new(),
            stopping: Vec::new(),
            generation: 0,
            etcd,
            applied_initial: false,
        }
    }

    fn handle(&mut self, event: Event) -> Option<Sender<()>> {
        match event {
            Event::Config(new) => self.apply_config(*new),
            Event::EtcdValue { key, watcher, revision, tails } => {
                if !self.etcd.is_current(&key, watcher) {
                    return None;
                }
                let change = self.desired.set(SourceId::EtcdKey(key.clone()), tails);
                log::info!("etcd key {key:?} at revision {revision}: {}", describe(&change));
                self.apply(change);
            }
            Event::EtcdDeleted { key, watcher, revision } => {
                if !self.etcd.is_current(&key, watcher) {
                    return None;
                }
                let change = self.desired.set(SourceId::EtcdKey(key.clone()), BTreeSet::new());
                log::info!("etcd key {key:?} gone at revision {revision}: {}", describe(&change));
                self.apply(change);
            }
            Event::Shutdown { done } => return Some(done),
        }
        None
    }

    fn apply_config(&mut self, new: Config) {
        let old = std::mem::replace(&mut self.config, new);
        let new = &self.config;
        for (what, changed) in [
            ("kafkaconfig", old.kafka != new.kafka),
            ("data_dir", old.data_dir != new.data_dir),
            ("catsyslog.logpath", old.log.path != new.log.path),
            ("start_position", old.start_position != new.start_position),
            ("max_line_bytes", old.max_line_bytes != new.max_line_bytes),
            ("rotate_wait", old.rotate_wait != new.rotate_wait),
            ("poll_interval", old.poll_interval != new.poll_interval),
            ("batch_wait", old.batch_wait != new.batch_wait),
        ] {
            if changed {
                log::warn!("config.yaml: a change of {what} takes effect at the next restart");
            }
        }
        if old.log.level != new.log.level {
            log::set_max_level(new.log.level);
            log::info!("config.yaml: log level is now {}", new.log.level);
        }
        let sources = new.sources.iter().cloned().collect();
        if old.etcd != new.etcd {
            let cfg = new.clone();
            self.forget_etcd_keys(&cfg);
        }
        let change = self.desired.set(SourceId::ConfigFile, sources);
        log::info!("config.yaml reloaded: {}", describe(&change));
        self.apply(change);
    }

    /// Reconfigures the etcd watchers; the tails of keys no longer watched stop.
    fn forget_etcd_keys(&mut self, config: &Config) {
        for key in self.etcd.reconfigure(config) {
            let change = self.desired.set(SourceId::EtcdKey(key.clone()), BTreeSet::new());
            log::info!("etcd key {key:?} no longer watched: {}", describe(&change));
            self.apply(change);
        }
    }

    /// Stops, then starts, what `change` says.
    fn apply(&mut self, change: Change) {
        for spec in change.stop {
            if let Some(tail) = self.tails.remove(&spec) {
                self.ctx.waker.unregister(&spec.path, tail.generation);
                self.ctx.metrics.remove_source(&spec);
                tail.stop();
                self.supervisor.retire(tail.name.clone());
                self.stopping.push(tail);
            }
        }
        for spec in change.start {
            // A tail of the same spec that is still finishing must be gone before its successor
            // reads the same file.
            self.wait_stopped(|t| t.spec == spec, Duration::from_secs(2));
            self.generation += 1;
            let tail = Tail::new(spec.clone(), self.generation, self.ctx.settings.message_key);
            tail.watch(&self.ctx.waker);
            let restarts = self.supervisor.spawn(tail.name.clone(), tail.worker(self.ctx.clone()));
            self.ctx.metrics.add_source(&spec, tail.stats.clone(), restarts);
            self.tails.insert(spec, tail);
        }
        self.stopping.retain(Tail::is_running);
    }

    fn wait_stopped(&mut self, which: impl Fn(&Tail) -> bool, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            self.stopping.retain(Tail::is_running);
            if !self.stopping.iter().any(&which) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops every tail and waits (bounded) for their threads to end.
    fn stop_all(&mut self) {
        let all: Vec<TailSpec> = self.tails.keys().cloned().collect();
        self.apply(Change { start: Vec::new(), stop: all });
        if !self.wait_stopped(|_| true, STOP_WAIT) {
            log::warn!("{} tails did not stop within {STOP_WAIT:?}", self.stopping.len());
        }
    }
}

fn describe(change: &Change) -> String {
    if change.is_empty() {
        return "no tail starts or stops".into();
    }
    let list = |v: &[TailSpec]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ");
    match (change.start.is_empty(), change.stop.is_empty()) {
        (false, true) => format!("starting {}", list(&change.start)),
        (true, false) => format!("stopping {}", list(&change.stop)),
        _ => format!("starting {}; stopping {}", list(&change.start), list(&change.stop)),
    }
}

/// The server thread's loop: apply config.yaml's sources once, then every event as it comes.
pub fn run_server(state: &Mutex<ServerState>, events: &Receiver<Event>) {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    if !st.applied_initial {
        let cfg = st.config.clone();
        st.forget_etcd_keys(&cfg);
        let change = st.desired.set(SourceId::ConfigFile, cfg.sources.iter().cloned().collect());
        log::info!("config.yaml: {}", describe(&change));
        st.apply(change);
        st.applied_initial = true;
    }
    loop {
        match events.recv_timeout(Duration::from_millis(500)) {
            Ok(event) => {
                if let Some(done) = st.handle(event) {
                    st.stop_all();
                    let _ = done.send(());
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => st.stopping.retain(Tail::is_running),
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}
