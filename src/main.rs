//! The `logcatch` binary: parses the command line and wires the threads. No logic lives here.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crossbeam_channel::{bounded, unbounded};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use logcatch::budget::FileBudget;
use logcatch::checkpoint::{run_checkpointer, Checkpoints};
use logcatch::cli::{self, Command};
use logcatch::config::Config;
use logcatch::config_watch::{run_config_watcher, ConfigMsg};
use logcatch::etcd::EtcdWatchers;
use logcatch::logging;
use logcatch::metrics::{run_metrics, Metrics};
use logcatch::server::{run_server, Event, ServerState};
use logcatch::sink::Sink;
use logcatch::supervisor::Supervisor;
use logcatch::tail::{TailCtx, TailSettings};
use logcatch::waker::Waker;
use logcatch::{process, status};

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logcatch: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            println!("logcatch {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                println!(
                    "{}: OK ({} entries in collectlogs, {} etcd keys)",
                    c.file.display(),
                    c.sources.len(),
                    c.etcd.keys.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Status { config } => {
            let (text, code) = status::status(&config);
            print!("{text}");
            ExitCode::from(code)
        }
        Command::Run { config } => run_agent(&config),
    }
}

fn run_agent(path: &std::path::Path) -> ExitCode {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = logging::init(&config.log) {
        eprintln!("{}: {e}", config.file.display());
        return ExitCode::from(1);
    }
    logging::log_panics();
    // Signals are caught from here on; SIGHUP before the config thread runs is kept for it.
    let mut signals = match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot install signal handlers: {e}");
            return ExitCode::from(1);
        }
    };
    let _instance = match process::claim(&config.data_dir, config.pid_file.as_deref()) {
        Ok(i) => i,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(5);
        }
    };
    log::info!("logcatch {} starting with {}", env!("CARGO_PKG_VERSION"), config.file.display());

    let checkpoints = match Checkpoints::open(&config.data_dir) {
        Ok(c) => Arc::new(c),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(3);
        }
    };
    let sink = match Sink::new(&config.kafka) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(4);
        }
    };
    let metrics = Arc::new(Metrics::default());
    {
        let s = sink.clone();
        metrics.set_sink(sink.stats.clone(), Box::new(move || i64::from(s.in_flight())));
    }
    let files = FileBudget::from_config(config.max_open_files);
    metrics.set_files(files.clone());
    let ctx = Arc::new(TailCtx {
        sink: sink.clone(),
        metrics: metrics.clone(),
        waker: Waker::start(),
        checkpoints: checkpoints.clone(),
        files,
        settings: TailSettings {
            max_line_bytes: config.max_line_bytes,
            rotate_wait: config.rotate_wait,
            poll_interval: config.poll_interval,
            batch_wait: config.batch_wait,
            start_position: config.start_position,
            message_key: config.kafka.message_key,
            close_inactive: config.close_inactive,
        },
    });

    let (supervisor, _supervisor_thread) = Supervisor::start();
    supervisor.spawn("kafka-sender", sink.sender_worker());
    supervisor.spawn("kafka-poll", sink.poll_worker());
    let (events_tx, events_rx) = unbounded::<Event>();
    // Dropped at shutdown: the checkpointer and metrics threads see it disconnect.
    let (stop_tx, stop_rx) = bounded::<()>(0);
    let stopping = Arc::new(AtomicBool::new(false));

    let etcd = Box::new(EtcdWatchers::new(supervisor.clone(), events_tx.clone(), metrics.clone()));
    let server = Arc::new(Mutex::new(ServerState::new(
        ctx.clone(),
        supervisor.clone(),
        config.clone(),
        etcd,
        events_tx.clone(),
    )));
    supervisor.spawn("server", Arc::new(move || run_server(&server, &events_rx)));

    let (reload_tx, reload_rx) = unbounded();
    {
        let (file, last_good, events, stopping) =
            (config.file.clone(), Arc::new(Mutex::new(config.clone())), events_tx.clone(), stopping.clone());
        supervisor
            .spawn("config", Arc::new(move || run_config_watcher(&file, &last_good, &events, &reload_rx, &stopping)));
    }
    {
        let (cp, every, stop) = (checkpoints.clone(), config.checkpoint_interval, stop_rx.clone());
        supervisor.spawn("checkpointer", Arc::new(move || run_checkpointer(&cp, every, &stop)));
    }
    let metrics_thread = {
        let (m, path, every, stop) = (metrics.clone(), config.metrics.path.clone(), config.metrics.interval, stop_rx);
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || run_metrics(&m, path.as_deref(), every, &stop))
            .expect("spawn the metrics thread")
    };

    for signal in signals.forever() {
        if signal == SIGHUP {
            log::info!("SIGHUP: reloading {}", config.file.display());
            let _ = reload_tx.send(ConfigMsg::Reload);
        } else {
            break;
        }
    }
    // A second SIGINT/SIGTERM while shutting down: stop now, without waiting for Kafka.
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if signal != SIGHUP {
                std::process::exit(130);
            }
        }
    });

    log::info!("signal received: stopping tails, then flushing what is in flight");
    stopping.store(true, Ordering::SeqCst);
    let (done_tx, done_rx) = bounded(1);
    let _ = events_tx.send(Event::Shutdown { done: done_tx });
    if done_rx.recv_timeout(Duration::from_secs(15)).is_err() {
        log::warn!("tails did not all stop in time");
    }
    let delivered = sink.flush(config.kafka.flush_timeout);
    if let Err(e) = checkpoints.save() {
        log::error!("cannot save checkpoints at shutdown: {e}");
    }
    drop(stop_tx);
    let _ = metrics_thread.join();
    supervisor.shutdown();
    if delivered {
        log::info!("stopped: every line was delivered and checkpointed");
    } else {
        log::warn!(
            "stopped with {} lines not acknowledged within {:?}; they are read again at the next start",
            sink.pending(),
            config.kafka.flush_timeout
        );
    }
    ExitCode::SUCCESS
}
