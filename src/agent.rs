//! The agent's life: start every thread in order, run until a signal, stop in the order the
//! delivery guarantee depends on.
//!
//! Exists so that `main.rs` only parses and wires, and so that the two policies a reader must
//! check together sit in one place: what exit code each start failure gets (`StartError`), and
//! the shutdown order (tails stop, then the producer is flushed, then checkpoints are saved: a
//! position is never saved past a line Kafka has not acknowledged).

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::budget::FileBudget;
use crate::checkpoint::{run_checkpointer, Checkpoints};
use crate::config::{Config, ConfigError, StartPosition};
use crate::config_watch::{run_config_watcher, ConfigMsg};
use crate::etcd::EtcdWatchers;
use crate::fingerprint::{FileId, Fingerprint};
use crate::metrics::{run_metrics, Metrics};
use crate::server::{run_server, Event, ServerState};
use crate::sink::{Sink, SinkError};
use crate::supervisor::Supervisor;
use crate::tail::{TailCtx, TailSettings};
use crate::waker::Waker;
use crate::{logging, process};

/// Why the agent could not start; each kind has the exit code `logcatch --help` documents.
#[derive(Debug)]
pub enum StartError {
    /// config.yaml is missing or invalid.
    Config(ConfigError),
    /// The agent's own log (`catsyslog.logpath`) cannot be opened.
    Log(String),
    /// Signal handlers could not be installed.
    Signals(std::io::Error),
    /// Another agent holds the data_dir (or the pid_file names a live one).
    Claimed(String),
    /// The state in data_dir cannot be used.
    State(String),
    /// The producer refused its settings.
    Kafka(SinkError),
    /// A restart in place (after a reload) could not exec the binary; the agent stopped in
    /// order. Exit code 6: supervisord, configured by the bundle, starts it again.
    Restart(String),
    /// `delivery: exactly_once`: another agent took this one's transactional id (or the broker
    /// failed the producer for good); it stopped in order without shipping more. Exit code 7.
    Fenced(String),
    /// A signal came before the agent was ready (exactly-once waits for the broker at start).
    Interrupted,
}

impl StartError {
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Config(_) | StartError::Log(_) | StartError::Signals(_) => 1,
            StartError::State(_) => 3,
            StartError::Kafka(_) => 4,
            StartError::Claimed(_) => 5,
            StartError::Restart(_) => 6,
            StartError::Fenced(_) => 7,
            StartError::Interrupted => 0,
        }
    }
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(e) => write!(f, "{e}"),
            StartError::Log(e)
            | StartError::Claimed(e)
            | StartError::State(e)
            | StartError::Restart(e)
            | StartError::Fenced(e) => write!(f, "{e}"),
            StartError::Interrupted => write!(f, "stopped by a signal before it was ready"),
            StartError::Signals(e) => write!(f, "cannot install signal handlers: {e}"),
            StartError::Kafka(e) => write!(f, "{e}"),
        }
    }
}

pub use crate::control::AgentMsg;
use crate::control::Stop;

/// Everything the running agent holds, built by `start`.
struct Running {
    config: Config,
    sink: Arc<Sink>,
    checkpoints: Arc<Checkpoints>,
    supervisor: Supervisor,
    events: crossbeam_channel::Sender<Event>,
    reload: crossbeam_channel::Sender<ConfigMsg>,
    /// Raised as shutdown begins: the config thread stops reading config.yaml.
    stopping: Stop,
    /// Raised once everything is flushed and saved: the checkpointer, fleet and metrics threads
    /// end (the metrics file then says "stopped").
    background: Stop,
    metrics_done: crossbeam_channel::Receiver<()>,
    /// Signals and restart requests for the main thread.
    agent_rx: crossbeam_channel::Receiver<AgentMsg>,
    _instance: process::Instance,
}

/// Runs the agent on the config file at `path` until SIGINT or SIGTERM. A stop with lines still
/// owed is still a clean stop (they are read again at the next start); its last log line says so.
pub fn run(path: &Path) -> Result<(), StartError> {
    let config = Config::load(path).map_err(StartError::Config)?;
    crate::statefile::harden();
    logging::init(&config.log).map_err(|e| StartError::Log(format!("{}: {e}", config.file.display())))?;
    logging::log_panics();
    // Signals are caught from here on; SIGHUP before the config thread runs is kept for it.
    let signals = Signals::new([SIGINT, SIGTERM, SIGHUP]).map_err(StartError::Signals)?;
    let handle = signals.handle();
    let running = match start(config, signals) {
        Err(StartError::Interrupted) => return Ok(()),
        r => r?,
    };
    let end = loop {
        match running.agent_rx.recv() {
            Ok(AgentMsg::Signal(SIGHUP)) => {
                // First, so that what the reload logs goes to the file at the path (logrotate's
                // `postrotate` sends SIGHUP once it renamed the old one).
                if let Err(e) = logging::reopen() {
                    log::warn!("SIGHUP: {e}; logging on to the file open until now");
                }
                log::info!("SIGHUP: log file reopened; reloading {}", running.config.file.display());
                let _ = running.reload.send(ConfigMsg::Reload);
            }
            Ok(AgentMsg::Signal(_)) | Err(_) => break None,
            Ok(AgentMsg::Restart { why }) => break Some(Ok(why)),
            Ok(AgentMsg::Fenced { why }) => break Some(Err(why)),
        }
    };
    // A second SIGINT/SIGTERM while shutting down: stop now, without waiting for Kafka.
    let rx = running.agent_rx.clone();
    std::thread::spawn(move || {
        while let Ok(msg) = rx.recv() {
            if matches!(msg, AgentMsg::Signal(s) if s != SIGHUP) {
                std::process::exit(130);
            }
        }
    });
    let why = match &end {
        None => "signal received",
        Some(Ok(_)) => {
            crate::inherit::prepare(); // the tails keep their deleted files for the next process
            "restarting in place"
        }
        Some(Err(_)) => "the transactional producer failed for good",
    };
    stop(running, why);
    handle.close();
    match end {
        None => Ok(()),
        Some(Ok(why)) => Err(StartError::Restart(restart_in_place(&why))),
        Some(Err(why)) => Err(StartError::Fenced(why)),
    }
}

/// Replaces this process with a fresh run of the same binary and arguments (`exec`: the same
/// PID). Returns only when that fails, with why.
fn restart_in_place(why: &str) -> String {
    use std::os::unix::process::CommandExt;
    log::info!("restarting in place to apply: {why}");
    log::logger().flush();
    // /proc/self/exe is the binary even if its path was replaced since; a chroot may lack /proc.
    let exe = std::fs::read_link("/proc/self/exe").or_else(|_| std::env::current_exe());
    let exe = match exe {
        Ok(p) => p,
        Err(e) => return format!("cannot restart in place (the binary's path: {e}); start logcatch again"),
    };
    let mut command = std::process::Command::new(&exe);
    command.args(std::env::args_os().skip(1)).env_remove(crate::inherit::ENV);
    if let Some(handed) = crate::inherit::exec_env() {
        command.env(crate::inherit::ENV, handed);
    }
    // SIGHUP's default action is to end the process, and a handler does not survive the exec:
    // one sent between the exec and the new process's handlers (a HUP storm, logrotate's
    // postrotate) killed the agent (the 60-minute soak: after 8 of its 16 HUP storms). An
    // ignored signal stays ignored across it, until the new process installs its handler; a
    // reload is what the new process does anyway (it reads config.yaml as it starts).
    // SAFETY: `signal` with SIG_IGN only sets the disposition, no handler code; it replaces
    // signal-hook's handler for the few instructions before the exec (or the exit 6 when the
    // exec fails), when no thread is waiting for a SIGHUP any more.
    unsafe { libc::signal(libc::SIGHUP, libc::SIG_IGN) };
    let err = command.exec();
    format!("cannot restart in place ({} : {err}); start logcatch again", exe.display())
}

/// Starts every thread, under the supervisor.
///
/// Long on purpose: the start order the delivery guarantee depends on, read top to bottom in one place.
fn start(config: Config, signals: Signals) -> Result<Running, StartError> {
    let instance = process::claim(&config.data_dir, config.pid_file.as_deref()).map_err(StartError::Claimed)?;
    log::info!("{} starting with {}", crate::version::short(), config.file.display());
    log::info!("log files are opened confined, with {}", crate::confine::method());
    // Before any tail starts: the deleted files a restart in place handed over, for their tails.
    let handed = std::env::var(crate::inherit::ENV).map_or(0, |v| crate::inherit::adopt(&v));
    for w in &config.warnings {
        log::warn!("{}: {w}", config.file.display());
    }
    for w in crate::host::warnings(&config.kafka.brokers, &config.etcd.endpoints, Path::new("/")) {
        log::warn!("{w}");
    }
    let checkpoints = Arc::new(Checkpoints::open(&config.data_dir).map_err(|e| StartError::State(e.to_string()))?);
    note_wanted_paths(&config, &checkpoints);
    let sink = Arc::new(Sink::new(&config.kafka, &config.hostname).map_err(StartError::Kafka)?);
    let metrics = Arc::new(Metrics::default());
    {
        let s = sink.clone();
        metrics.set_sink(sink.stats.clone(), Box::new(move || i64::from(s.in_flight())));
    }
    let files = FileBudget::from_config(config.max_open_files);
    metrics.set_files(files.clone());
    let (supervisor, _supervisor_thread) = Supervisor::start();
    // Signals reach the main thread through the same channel as restart requests.
    let (agent_tx, agent_rx) = unbounded::<AgentMsg>();
    {
        let tx = agent_tx.clone();
        let signals = Arc::new(Mutex::new(signals));
        supervisor.spawn(
            "signals",
            Arc::new(move || {
                let mut signals = signals.lock().unwrap_or_else(|p| p.into_inner());
                for signal in signals.forever() {
                    let _ = tx.send(AgentMsg::Signal(signal));
                }
            }),
        );
    }
    let waker = Waker::new();
    if let Some(run) = waker.events_worker() {
        supervisor.spawn("inotify", run);
    }
    let (events_tx, events_rx) = unbounded::<Event>();
    let wake: crate::tail::Wake = {
        let tx = events_tx.clone();
        Arc::new(move |spec, generation| {
            let _ = tx.send(Event::Wake { spec: spec.clone(), generation });
        })
    };
    let ctx = Arc::new(TailCtx {
        wake,
        looks: Arc::default(),
        sink: sink.clone(),
        metrics: metrics.clone(),
        waker,
        checkpoints: checkpoints.clone(),
        claims: Arc::default(),
        files,
        rates: Arc::new(crate::rate::Rates::new(config.rate_limit)),
        settings: TailSettings::from_config(&config),
    });
    {
        let ctx = ctx.clone();
        supervisor.spawn("looker", Arc::new(move || crate::tail::run_looker(&ctx)));
    }
    supervisor.spawn("kafka-poll", sink.poll_worker());
    match &config.kafka.exactly_once {
        None => supervisor.spawn("kafka-sender", sink.sender_worker()),
        Some(eo) => {
            prepare_exactly_once(&sink, &config.kafka, eo, &checkpoints, &agent_rx)?;
            let tx = agent_tx.clone();
            let txn = crate::sink::transaction::Transactions {
                settings: eo.clone(),
                checkpoints: checkpoints.clone(),
                fatal: Box::new(move |why| {
                    let _ = tx.send(AgentMsg::Fenced { why });
                }),
            };
            supervisor.spawn("kafka-sender", sink.transactional_worker(Arc::new(txn)))
        }
    };
    // Raised first at shutdown (config.yaml is no longer read), and last (after the final save).
    // `background` rings the checkpointer's bell, which it sleeps on between saves.
    let (stopping, background) = (Stop::new(), Stop::with_bell(checkpoints.saver_bell()));
    if handed > 0 {
        let stop = background.clone();
        let run = move || {
            if !stop.sleep(crate::inherit::CLAIM_WITHIN) {
                crate::inherit::close_unclaimed();
            }
        };
        supervisor.spawn("inherited", Arc::new(run));
    }

    let etcd = Box::new(EtcdWatchers::new(supervisor.clone(), events_tx.clone(), metrics.clone()));
    let fleet = Arc::new(crate::fleet::Fleet::new(
        &config,
        metrics.clone(),
        crate::timestamp::now_rfc3339(),
        std::env::var("LOGCATCH_FLEET_TTL").ok().and_then(|v| v.parse().ok()).unwrap_or(crate::fleet::TTL),
    ));
    let server = Arc::new(Mutex::new(ServerState::new(
        ctx.clone(),
        supervisor.clone(),
        config.clone(),
        etcd,
        fleet.clone(),
        events_tx.clone(),
        agent_tx.clone(),
    )));
    supervisor.spawn("server", Arc::new(move || run_server(&server, &events_rx)));

    let (reload_tx, reload_rx) = unbounded();
    {
        let (file, last_good, events, stopping, ctx) = (
            config.file.clone(),
            Arc::new(Mutex::new(config.clone())),
            events_tx.clone(),
            stopping.clone(),
            ctx.clone(),
        );
        supervisor.spawn(
            "config",
            Arc::new(move || run_config_watcher(&file, &last_good, &events, &reload_rx, &stopping, &ctx.waker)),
        );
    }
    {
        let (cp, every, stop) = (checkpoints.clone(), config.checkpoint_interval, background.clone());
        supervisor.spawn("checkpointer", Arc::new(move || run_checkpointer(&cp, every, &stop)));
    }
    {
        // Always running: a reload may give it endpoints, or take them away.
        let (fleet, stop) = (fleet.clone(), background.clone());
        supervisor.spawn("fleet", Arc::new(move || crate::fleet::run_fleet(&fleet, &stop)));
    }
    let (metrics_done_tx, metrics_done) = bounded(1);
    {
        let (m, path, every, stop) =
            (metrics, config.metrics.path.clone(), config.metrics.interval, background.clone());
        supervisor.spawn(
            "metrics",
            Arc::new(move || {
                run_metrics(&m, path.as_deref(), every, &stop);
                let _ = metrics_done_tx.try_send(());
            }),
        );
    }
    Ok(Running {
        config,
        sink,
        checkpoints,
        supervisor,
        events: events_tx,
        reload: reload_tx,
        stopping,
        background,
        metrics_done,
        agent_rx,
        _instance: instance,
    })
}

/// Records, before anything that can take long (exactly_once's start-up waits for the broker),
/// since when config.yaml's paths are wanted (`Checkpoints::note_wanted`): an agent killed or
/// stopped before it read them leaves the next one the time from which rotated generations are
/// unread. Globs are left to their tails (the files they will match are not known yet).
fn note_wanted_paths(config: &Config, checkpoints: &Checkpoints) {
    let marked = config
        .sources
        .iter()
        .filter(|s| !s.is_glob())
        .filter(|s| {
            // The file there now, and where start_position starts it (a glob's file is new).
            let file = crate::confine::open(&s.pattern, &s.access).ok().and_then(|f| {
                let meta = f.metadata().ok().filter(|m| m.is_file())?;
                let offset = match config.start_position {
                    StartPosition::Beginning => 0,
                    StartPosition::End => meta.len(),
                };
                Some((FileId::of(&meta), Fingerprint::of_file(&f).ok()?, offset))
            });
            checkpoints.note_wanted(&s.topic, &s.pattern.to_string_lossy(), file)
        })
        .count();
    if marked > 0 {
        if let Err(e) = checkpoints.save() {
            log::warn!("cannot save checkpoints: {e}; the paths read for the first time are marked at the next save");
        }
    }
}

/// `delivery: exactly_once`, before any tail starts: the transactional id is registered (which
/// fences a predecessor and settles its open transaction), the positions topic made if absent,
/// and the positions committed there adopted as the authority. Waits for the broker as long as
/// it takes (nothing may be read before the positions are known), logging why; a signal
/// meanwhile stops the agent.
fn prepare_exactly_once(
    sink: &Sink,
    kafka: &crate::config::KafkaSettings,
    eo: &crate::config::ExactlyOnce,
    checkpoints: &Checkpoints,
    agent_rx: &crossbeam_channel::Receiver<AgentMsg>,
) -> Result<(), StartError> {
    use crate::sink::positions;
    let timeout = Duration::from_secs(10);
    let id = &eo.transactional_id;
    until_ok(agent_rx, || {
        sink.init_transactions(timeout).map_err(|e| format!("registering transactional id {id}: {e}"))
    })?;
    until_ok(agent_rx, || positions::ensure_topic(kafka, eo, timeout).map_err(|e| e.to_string()))?;
    let entries =
        until_ok(agent_rx, || positions::load(kafka, eo, Duration::from_secs(60)).map_err(|e| e.to_string()))?;
    let n = entries.len();
    let changed = checkpoints.adopt(entries);
    log::info!(
        "exactly_once: transactional id {id}, {n} positions committed in {} ({changed} ahead of checkpoints.json)",
        eo.positions_topic
    );
    Ok(())
}

/// Calls `attempt` until it succeeds, logging why it did not, once a second; a SIGINT or
/// SIGTERM meanwhile ends the wait (`Interrupted`).
fn until_ok<T>(
    agent_rx: &crossbeam_channel::Receiver<AgentMsg>,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> Result<T, StartError> {
    loop {
        match attempt() {
            Ok(v) => return Ok(v),
            Err(e) => {
                log::warn!("exactly_once: waiting for Kafka before any file is read: {e}");
                if let Ok(AgentMsg::Signal(s)) = agent_rx.recv_timeout(Duration::from_secs(1)) {
                    if s != SIGHUP {
                        return Err(StartError::Interrupted);
                    }
                }
            }
        }
    }
}

/// The orderly shutdown: tails stop, the producer is flushed (bounded), positions are saved,
/// the metrics file says "stopped", and the last line says what is true.
fn stop(r: Running, why: &str) {
    log::info!("{why}: stopping tails, then flushing what is in flight");
    r.stopping.raise();
    let (done_tx, done_rx) = bounded(1);
    let _ = r.events.send(Event::Shutdown { done: done_tx });
    if done_rx.recv_timeout(Duration::from_secs(15)).is_err() {
        log::warn!("tails did not all stop in time");
    }
    let delivered = r.sink.flush(r.config.kafka.flush_timeout);
    let saved = match r.checkpoints.save() {
        Ok(_) => true,
        Err(e) => {
            log::error!("cannot save checkpoints at shutdown: {e}");
            false
        }
    };
    r.background.raise();
    let _ = r.metrics_done.recv_timeout(Duration::from_secs(5));
    r.supervisor.shutdown();
    match (delivered, saved) {
        (true, true) => log::info!("stopped: every line was delivered and checkpointed"),
        (true, false) => log::warn!(
            "stopped: every line was delivered, but positions could not be saved; lines since the last save are sent again at the next start"
        ),
        (false, _) => log::warn!(
            "stopped with {} lines not acknowledged within {:?}; they are read again at the next start",
            r.sink.pending(),
            r.config.kafka.flush_timeout
        ),
    }
}
