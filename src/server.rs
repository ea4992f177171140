//! The file server: turns what the sources want into running tails.
//!
//! Exists as the one place that owns the set of running tails. Config reloads and etcd updates
//! arrive as `Event`s on one channel and are folded into `Desired`; then a *scan* expands every
//! selector into files (`discover`), and `desired::plan` says which tails to start, stop, retire
//! or keep, which is applied by starting and stopping tail threads under the supervisor. Scans
//! also run when a directory a glob looks in (`discover::Found::dirs`, from the scan's own
//! walks) gains or loses a file or a directory (inotify, via `waker`) and every
//! `scan_frequency`. The server's own state lives
//! outside its thread, so the supervisor can restart it after a panic without losing track of
//! the tails.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::config::Config;
use crate::desired::{plan, Change, Desired, SourceId, TailSpec};
use crate::discover::{covers, expand, Input, Rules};
use crate::fingerprint::{FileId, Fingerprint};
use crate::selector::Selector;
use crate::supervisor::Supervisor;
use crate::tail::{Tail, TailCtx};
use crate::waker::Listener;

/// Messages of the server's channel.
pub enum Event {
    /// config.yaml changed and the new file is valid.
    Config(Box<Config>),
    /// An etcd key holds (a valid value naming) these selectors, as of `revision`; `watcher`
    /// identifies the reporting watcher (reports of retired watchers are ignored).
    EtcdValue { key: String, watcher: u64, revision: i64, tails: BTreeSet<Selector> },
    /// An etcd key was deleted: all of its tails stop.
    EtcdDeleted { key: String, watcher: u64, revision: i64 },
    /// A directory a glob looks in gained or lost a file: scan again.
    Rescan,
    /// Stop every tail, then report on `done`.
    Shutdown { done: Sender<()> },
    /// The bell of the parked tail of `spec` (of `generation`) rang: start its thread again.
    Wake { spec: Arc<TailSpec>, generation: u64 },
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

/// What a scan does when it finds more than `max_tails` tails.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cap {
    /// An etcd value made it: refuse the value whole.
    Refuse,
    /// Files appeared, or the trusted config.yaml asks: keep what runs, start what fits.
    Trim,
}

/// Why a scan made by an etcd value was refused.
enum Refused {
    /// It would make this many tails, more than `max_tails`.
    Tails(usize),
    /// Its globs took more than `WALK_LIMIT` to expand.
    Slow,
}

/// How long expanding the globs of a scan made by an etcd value may take before the value is
/// refused: the scan runs on the file server's one thread, and 10,000 entries of `**` over a
/// large tree (2 s each at most, `globwalk`) would hold it for hours.
const WALK_LIMIT: Duration = Duration::from_secs(10);

/// How long shutdown waits for tail threads to finish the line they are sending.
const STOP_WAIT: Duration = Duration::from_secs(10);
/// The waker's listener id of the server (tails use their generation, from 1).
const SERVER_LISTENER: u64 = 0;

/// What the scans remember between runs.
struct Scans {
    /// When the last scan ran.
    last: Instant,
    /// Selectors expanded at least once: files they find later are new (read from the start).
    /// `desired`'s own, shared.
    seen: HashSet<Arc<Selector>>,
    /// Problems of the last scan (a problem is logged when it first appears).
    problems: BTreeSet<String>,
    /// Directories whose changes trigger a scan.
    dirs: BTreeSet<PathBuf>,
    /// A `Rescan` is queued and not handled yet (directory events are coalesced).
    queued: Arc<AtomicBool>,
}

pub struct ServerState {
    ctx: Arc<TailCtx>,
    supervisor: Supervisor,
    /// The agent's main thread: asked to restart in place when a reload needs it.
    agent: Sender<crate::control::AgentMsg>,
    config: Config,
    desired: Desired,
    /// Running tails, retiring ones included. The key is the tail's own spec (one allocation,
    /// shared): the table keeps room for up to twice its tails, so its slots stay small.
    tails: HashMap<Arc<TailSpec>, Tail>,
    stopping: Vec<Tail>,
    generation: u64,
    etcd: Box<dyn EtcdControl>,
    /// The fleet report: moved when a reload changes where or how it goes.
    fleet: Arc<crate::fleet::Fleet>,
    applied_initial: bool,
    events: Sender<Event>,
    scans: Scans,
}

impl ServerState {
    /// `events` is the server's own channel (directory events queue `Rescan`s on it).
    pub fn new(
        ctx: Arc<TailCtx>,
        supervisor: Supervisor,
        config: Config,
        etcd: Box<dyn EtcdControl>,
        fleet: Arc<crate::fleet::Fleet>,
        events: Sender<Event>,
        agent: Sender<crate::control::AgentMsg>,
    ) -> ServerState {
        ServerState {
            ctx,
            supervisor,
            agent,
            config,
            desired: Desired::default(),
            tails: HashMap::new(),
            stopping: Vec::new(),
            generation: 0,
            etcd,
            fleet,
            applied_initial: false,
            events,
            scans: Scans {
                last: Instant::now(),
                seen: HashSet::new(),
                problems: BTreeSet::new(),
                dirs: BTreeSet::new(),
                queued: Arc::default(),
            },
        }
    }

    fn handle(&mut self, event: Event) -> Option<Sender<()>> {
        match event {
            Event::Config(new) => self.apply_config(*new),
            Event::EtcdValue { key, watcher, revision, tails } => {
                if !self.etcd.is_current(&key, watcher) {
                    return None;
                }
                let source = SourceId::EtcdKey(key.clone());
                let before = self.desired.of(&source);
                self.desired.set(source.clone(), tails.into_iter().map(Arc::new).collect());
                if let Err(refused) = self.scan(&format!("etcd key {key:?} at revision {revision}"), true, Cap::Refuse)
                {
                    self.desired.set(source, before);
                    let why = match refused {
                        Refused::Tails(n) => format!(
                            "the value would make {n} tails with the other sources, more than max_tails ({})",
                            self.config.max_tails
                        ),
                        Refused::Slow => format!("its globs take more than {WALK_LIMIT:?} to expand"),
                    };
                    let why = format!("{why}; refused whole, the key's tails keep running as they were");
                    log::error!("etcd key {key:?} at revision {revision}: {why}");
                    self.ctx.metrics.reject_etcd_value(&key, revision, why);
                }
            }
            Event::EtcdDeleted { key, watcher, revision } => {
                if !self.etcd.is_current(&key, watcher) {
                    return None;
                }
                self.desired.set(SourceId::EtcdKey(key.clone()), BTreeSet::new());
                self.scan_all(&format!("etcd key {key:?} gone at revision {revision}"), true);
            }
            Event::Rescan => {
                self.scans.queued.store(false, Ordering::SeqCst);
                self.scan_all("a watched directory changed", false);
            }
            Event::Shutdown { done } => return Some(done),
            Event::Wake { spec, generation } => {
                // A stopped tail is gone, or replaced by one of a later generation.
                if let Some(t) = self.tails.get(&spec).filter(|t| t.generation == generation) {
                    self.run_again(t);
                }
            }
        }
        None
    }

    /// Starts the thread of a parked tail again (nothing when it is not parked).
    fn run_again(&self, t: &Tail) {
        if t.unpark() {
            self.supervisor.spawn_counted(t.name(), t.worker(self.ctx.clone()), t.restarts.clone());
        }
    }

    /// Parked tails due for a look (their safety net every `PARKED_LOOK`, or `close_inactive`)
    /// are started again.
    fn look_at_parked(&self) {
        let now = crate::timestamp::now_millis();
        for t in self.tails.values() {
            if t.parked_until().is_some_and(|until| until <= now) {
                self.run_again(t);
            }
        }
    }

    /// A scan that starts what fits within `max_tails` (see `scan`).
    fn scan_all(&mut self, why: &str, always_log: bool) {
        let _ = self.scan(why, always_log, Cap::Trim);
    }

    /// Expands every selector into files and applies the plan. `why` is logged with the change,
    /// and with no change too when `always_log` (a source changed: the operator wants to know).
    /// More tails than `max_tails`, or globs slower than `WALK_LIMIT` to expand: `Cap::Refuse`
    /// applies nothing and says why (`Err`); `Cap::Trim` keeps the running tails and starts new
    /// ones until the cap (and walks every glob).
    fn scan(&mut self, why: &str, always_log: bool, cap: Cap) -> Result<(), Refused> {
        let allowed = self.config.etcd.allowlist.clone();
        let inputs: Vec<Input> = self
            .desired
            .iter()
            .map(|(source, selector)| Input {
                selector,
                allowed: matches!(source, SourceId::EtcdKey(_)).then_some(&allowed),
                scanned_before: self.scans.seen.contains(selector),
            })
            .collect();
        let rules = Rules {
            ignore_older: self.config.ignore_older,
            own_log: self.config.log.path.as_deref(),
            now: SystemTime::now(),
            format: self.config.format,
            walk_limit: (cap == Cap::Refuse).then_some(WALK_LIMIT),
        };
        let mut found = expand(inputs, |spec| self.tails.contains_key(spec), &rules);
        if found.cut {
            return Err(Refused::Slow);
        }
        if found.tails.len() > self.config.max_tails {
            if cap == Cap::Refuse {
                return Err(Refused::Tails(found.tails.len()));
            }
            self.trim(&mut found);
        }
        let dirs = std::mem::take(&mut found.dirs);
        self.scans.last = Instant::now();
        self.scans.seen = self.desired.selectors().cloned().collect();
        let problems: BTreeSet<String> = found.problems.iter().cloned().collect();
        for p in problems.difference(&self.scans.problems) {
            log::warn!("{p}");
        }
        self.scans.problems = problems;
        for spec in &found.old {
            self.skip_old(spec);
        }
        let change = self.plan(&mut found);
        if always_log || !change.is_empty() {
            log::info!("{why}: {}", describe(&change));
        }
        self.apply(change, &found.appeared);
        self.listen_to_glob_dirs(dirs);
        Ok(())
    }

    /// What to start, stop and retire for what a scan found. A running tail of a file in a
    /// directory the scan could not list is taken as still there.
    fn plan(&self, found: &mut crate::discover::Found) -> Change {
        let running: BTreeMap<TailSpec, bool> =
            self.tails.iter().map(|(s, t)| (TailSpec::clone(s), t.is_retiring())).collect();
        let (desired, format) = (&self.desired, self.config.format);
        let still_matched = |spec: &TailSpec| {
            desired.iter().any(|(_, sel)| {
                sel.topic == spec.topic
                    && sel.format.unwrap_or(format) == spec.format
                    && sel.multiline == spec.multiline
                    && sel.access == spec.access
                    && sel.handling == spec.handling
                    && covers(sel, &spec.path)
            })
        };
        // A wanted file in a directory that could not be listed is taken as still there.
        let unknown: Vec<TailSpec> = running
            .iter()
            .filter(|(spec, retiring)| !**retiring && found.unlisted.iter().any(|d| spec.path.starts_with(d)))
            .map(|(spec, _)| spec.clone())
            .filter(|spec| still_matched(spec))
            .collect();
        found.tails.extend(unknown);
        plan(&running, &found.tails, still_matched)
    }

    /// Keeps the running tails of `found` and as many new ones as fit within `max_tails`.
    fn trim(&self, found: &mut crate::discover::Found) {
        let limit = self.config.max_tails;
        found.problems.push(format!(
            "{} files found, more than max_tails ({limit}): {} of them are not tailed",
            found.tails.len(),
            found.tails.len() - limit
        ));
        let (running, new): (BTreeSet<TailSpec>, BTreeSet<TailSpec>) =
            std::mem::take(&mut found.tails).into_iter().partition(|s| self.tails.contains_key(s));
        let room = limit.saturating_sub(running.len());
        found.tails = running.into_iter().chain(new.into_iter().take(room)).collect();
    }

    /// A file left out for its age is recorded as read to its end, so that if it is written to
    /// again only the new lines are shipped (as Filebeat does with `ignore_older`).
    fn skip_old(&self, spec: &TailSpec) {
        // A FIFO, a device or a refused path: nothing to record.
        let Ok(file) = crate::confine::open(&spec.path, &spec.access) else { return };
        let Ok(meta) = file.metadata() else { return };
        let fp = Fingerprint::of_file(&file).unwrap_or_default();
        let path = spec.path.to_string_lossy();
        self.ctx.checkpoints.skip_old(&spec.topic, FileId::of(&meta), &path, fp, meta.len());
    }

    /// Watches the directories globs look in (`discover::Found::dirs`, from the scan's own
    /// walks), so that a new file is found at once. Every scan listens to all of them again: a directory deleted and created between
    /// two scans is watched afresh. When a directory is new, one more scan follows: a file made in
    /// it before its watch began has no event.
    fn listen_to_glob_dirs(&mut self, dirs: BTreeSet<PathBuf>) {
        for gone in self.scans.dirs.difference(&dirs) {
            self.ctx.waker.unlisten_dir(gone, SERVER_LISTENER);
        }
        let (queued, events) = (self.scans.queued.clone(), self.events.clone());
        let rescan: Listener = Arc::new(move || {
            if !queued.swap(true, Ordering::SeqCst) {
                let _ = events.send(Event::Rescan);
            }
        });
        for dir in &dirs {
            self.ctx.waker.listen_dir(dir, SERVER_LISTENER, rescan.clone());
        }
        if dirs.difference(&self.scans.dirs).next().is_some() {
            rescan();
        }
        self.scans.dirs = dirs;
    }

    fn apply_config(&mut self, new: Config) {
        let old = std::mem::replace(&mut self.config, new);
        let new = &self.config;
        let plan = old.reload_plan(new);
        if !plan.live.is_empty() {
            log::info!("config.yaml: applied now: {}", plan.live.join(", "));
        }
        if !plan.at_restart.is_empty() {
            // Applied by the agent restarting itself in place (orderly stop, then exec): the
            // lines not yet acknowledged are read again from the checkpoints, none lost.
            let why = plan.at_restart.join(", ");
            log::warn!("config.yaml: changed, applied by restarting in place: {why}");
            let _ = self.agent.send(crate::control::AgentMsg::Restart { why });
            return;
        }
        if old.rate_limit != new.rate_limit {
            self.ctx.rates.set_agent(new.rate_limit);
            log::info!(
                "config.yaml: rate_limit is now {}",
                new.rate_limit.map_or("none".into(), |r| format!("{r} bytes/s"))
            );
        }
        if old.log.level != new.log.level {
            log::set_max_level(new.log.level);
            log::info!("config.yaml: log level is now {}", new.log.level);
        }
        let sources = new.sources.iter().cloned().collect();
        if old.etcd != new.etcd {
            let cfg = new.clone();
            self.forget_etcd_keys(&cfg);
            self.fleet.retarget(&cfg);
        }
        self.desired.set(SourceId::ConfigFile, sources);
        self.scan_all("config.yaml reloaded", true);
    }

    /// Reconfigures the etcd watchers; the tails of keys no longer watched stop.
    fn forget_etcd_keys(&mut self, config: &Config) {
        for key in self.etcd.reconfigure(config) {
            self.desired.set(SourceId::EtcdKey(key.clone()), BTreeSet::new());
            self.scan_all(&format!("etcd key {key:?} no longer watched"), true);
        }
    }

    /// Stops, retires, keeps, then starts what `change` says; `appeared` tails are read from
    /// their first byte.
    fn apply(&mut self, change: Change, appeared: &BTreeSet<TailSpec>) {
        for spec in &change.retire {
            if let Some(tail) = self.tails.get(spec) {
                tail.retire();
            }
        }
        for spec in &change.keep {
            if let Some(tail) = self.tails.get(spec) {
                tail.keep();
            }
        }
        for spec in change.stop {
            if let Some(tail) = self.forget(&spec) {
                tail.stop();
                // A parked tail has no thread to end: it is released here, before a successor
                // of the same file starts.
                tail.release_if_parked(&self.ctx);
                self.stopping.push(tail);
            }
        }
        for spec in change.start {
            // A tail of the same spec that is still finishing must be gone before its successor
            // reads the same file.
            self.wait_stopped(|t| *t.spec == spec, Duration::from_secs(2));
            self.generation += 1;
            let from_start = appeared.contains(&spec);
            let spec = Arc::new(spec);
            let tail = Tail::new(spec.clone(), self.generation, &self.ctx, from_start);
            tail.watch(&self.ctx.waker);
            self.supervisor.spawn_counted(tail.name(), tail.worker(self.ctx.clone()), tail.restarts.clone());
            self.ctx.metrics.add_source(&spec, tail.stats.clone(), tail.restarts.clone());
            self.tails.insert(spec, tail);
        }
        self.stopping.retain(Tail::is_running);
    }

    /// Forgets retired tails whose threads ended (their files were drained).
    fn reap_retired(&mut self) {
        let done: Vec<TailSpec> = self
            .tails
            .iter()
            .filter(|(_, t)| t.is_retiring() && !t.is_running() && !t.is_parked())
            .map(|(s, _)| TailSpec::clone(s))
            .collect();
        for spec in done {
            self.forget(&spec);
        }
    }

    /// Takes a tail out of the server's books: no more wakeups, metrics or restarts for it.
    fn forget(&mut self, spec: &TailSpec) -> Option<Tail> {
        let tail = self.tails.remove(spec)?;
        self.ctx.waker.unregister(&spec.path, tail.generation);
        self.ctx.metrics.remove_source(spec);
        self.supervisor.retire(tail.name());
        Some(tail)
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
        let all: Vec<TailSpec> = self.tails.keys().map(|s| TailSpec::clone(s)).collect();
        self.apply(Change { stop: all, ..Change::default() }, &BTreeSet::new());
        if !self.wait_stopped(|_| true, STOP_WAIT) {
            log::warn!("{} tails did not stop within {STOP_WAIT:?}", self.stopping.len());
        }
    }
}

fn describe(change: &Change) -> String {
    if change.is_empty() {
        return "no tail starts or stops".into();
    }
    let mut parts = Vec::new();
    for (what, specs) in [
        ("starting", &change.start),
        ("stopping", &change.stop),
        ("draining then stopping (gone from its glob)", &change.retire),
        ("keeping (found again)", &change.keep),
    ] {
        if specs.is_empty() {
            continue;
        }
        // Hundreds of files from one glob make one line, not a screenful.
        let shown: Vec<String> = specs.iter().take(20).map(|s| s.to_string()).collect();
        let more = if specs.len() > 20 { format!(" and {} more", specs.len() - 20) } else { String::new() };
        parts.push(format!("{what} {}{more}", shown.join(", ")));
    }
    parts.join("; ")
}

/// Events taken off the channel at once, at most (then the loop looks at its timers again).
const MAX_BATCH: usize = 1024;
/// How often parked tails are walked for the looks that are due (their safety net, or
/// `close_inactive`): a due look comes up to this late, a tenth of `close_inactive` between 1 s
/// and 5 s. Each walk wakes the file server and touches every tail: at 1 s, with 1,000 idle
/// files, 3.2 ms of CPU in 30 s, a fifth of the idle agent's (schedstat).
fn parked_sweep(close_inactive: Duration) -> Duration {
    (close_inactive / 10).clamp(Duration::from_secs(1), Duration::from_secs(5))
}

/// The events to handle of those waiting, in their order: of an etcd key's reports only the
/// latest (a script putting a key in a loop costs one scan, not one a put; each value is already
/// checked and logged by its watcher), and one rescan for many.
fn coalesce(batch: Vec<Event>) -> Vec<Event> {
    let mut later_keys = HashSet::new();
    let mut rescan_later = false;
    let mut out: Vec<Event> = batch
        .into_iter()
        .rev()
        .filter(|e| match e {
            Event::EtcdValue { key, .. } | Event::EtcdDeleted { key, .. } => later_keys.insert(key.clone()),
            Event::Rescan => !std::mem::replace(&mut rescan_later, true),
            Event::Config(_) | Event::Shutdown { .. } | Event::Wake { .. } => true,
        })
        .collect();
    out.reverse();
    out
}

/// The server thread's loop: apply config.yaml's sources once, then every event as it comes.
pub fn run_server(state: &Mutex<ServerState>, events: &Receiver<Event>) {
    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    if !st.applied_initial {
        let cfg = st.config.clone();
        st.forget_etcd_keys(&cfg);
        st.desired.set(SourceId::ConfigFile, cfg.sources.iter().cloned().collect());
        st.scan_all("config.yaml", true);
        st.applied_initial = true;
    }
    // Literal paths need no periodic scan (their tails wait for their files), unless a file left
    // out by ignore_older may have been written to since. Known again after every event.
    let needs_scans =
        |st: &ServerState| st.config.ignore_older.is_some() || st.desired.iter().any(|(_, s)| s.is_glob());
    let mut scans = needs_scans(&st);
    // Parked tails are walked for their due looks at most once a `parked_sweep`, not at every
    // event: wakes of parked tails make events frequent, and a walk is O(tails).
    let mut swept = Instant::now();
    loop {
        // Looked at twice a second while tails are stopping or draining; otherwise woken for the
        // next scan or by an event. A fixed 500 ms tick walked every tail and selector each time:
        // with 1,000 idle files, 0.03% of a core for nothing (schedstat).
        let busy = !st.stopping.is_empty() || st.tails.values().any(|t| t.is_retiring());
        let tick = if busy {
            Duration::from_millis(500)
        } else if scans {
            st.config.scan_frequency.saturating_sub(st.scans.last.elapsed()).max(Duration::from_millis(10))
        } else {
            Duration::from_secs(3600)
        };
        let sweep = parked_sweep(st.config.close_inactive);
        if swept.elapsed() >= sweep {
            st.look_at_parked();
            swept = Instant::now();
        }
        let tick = if st.tails.is_empty() { tick } else { tick.min(sweep.saturating_sub(swept.elapsed())) };
        match events.recv_timeout(tick) {
            Ok(event) => {
                let mut batch = vec![event];
                batch.extend(events.try_iter().take(MAX_BATCH));
                for event in coalesce(batch) {
                    if let Some(done) = st.handle(event) {
                        st.stop_all();
                        let _ = done.send(());
                        return;
                    }
                }
                scans = needs_scans(&st);
            }
            Err(RecvTimeoutError::Timeout) => st.stopping.retain(Tail::is_running),
            Err(RecvTimeoutError::Disconnected) => return,
        }
        st.reap_retired();
        if scans && st.scans.last.elapsed() >= st.config.scan_frequency {
            let every = format!("scan_frequency ({:?})", st.config.scan_frequency);
            st.scan_all(&every, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_tails_are_swept_at_a_tenth_of_close_inactive_within_1_to_5_s() {
        let s = Duration::from_secs;
        assert_eq!(parked_sweep(s(300)), s(5), "the default 5m");
        assert_eq!(parked_sweep(s(30)), s(3));
        assert_eq!(parked_sweep(s(2)), s(1), "the tests' short ones stay at 1 s");
    }

    fn value(key: &str, revision: i64) -> Event {
        Event::EtcdValue { key: key.into(), watcher: 1, revision, tails: BTreeSet::new() }
    }

    fn shape(e: &Event) -> String {
        match e {
            Event::EtcdValue { key, revision, .. } => format!("{key}@{revision}"),
            Event::EtcdDeleted { key, revision, .. } => format!("{key}-@{revision}"),
            Event::Rescan => "rescan".into(),
            Event::Config(_) => "config".into(),
            Event::Shutdown { .. } => "shutdown".into(),
            Event::Wake { .. } => "wake".into(),
        }
    }

    #[test]
    fn only_the_latest_report_of_each_key_is_handled() {
        let (done, _rx) = crossbeam_channel::bounded(1);
        let batch = vec![
            value("a", 1),
            Event::Rescan,
            value("b", 2),
            value("a", 3),
            Event::EtcdDeleted { key: "b".into(), watcher: 1, revision: 4 },
            Event::Rescan,
            value("a", 5),
            Event::Shutdown { done },
        ];
        let got: Vec<String> = coalesce(batch).iter().map(shape).collect();
        assert_eq!(got, ["b-@4", "rescan", "a@5", "shutdown"]);
    }
}
