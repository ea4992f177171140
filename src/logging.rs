//! The agent's own log: `catsyslog.logpath` (appended to) and stderr, at `catsyslog.loglevel`.
//!
//! Exists to keep simplelog's setup in one place. Loggers are built at `trace` and the level is
//! applied with `log::set_max_level`, so a reload of config.yaml can change it live. The file is
//! reopened by SIGHUP (`reopen`): logrotate renames it and signals the agent in `postrotate`,
//! and a descriptor kept open went on writing into the renamed file.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use simplelog::{CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, WriteLogger};

use crate::config::LogSettings;

/// The log file and the path it is reopened from.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// Set once, by `init`, when `catsyslog.logpath` is.
static LOG_FILE: OnceLock<Arc<LogFile>> = OnceLock::new();

fn lock(file: &Mutex<File>) -> MutexGuard<'_, File> {
    // A write that panicked leaves at worst a partial line.
    file.lock().unwrap_or_else(|p| p.into_inner())
}

/// What simplelog writes to: whichever file `LogFile` holds now.
struct Reopening(Arc<LogFile>);

impl Write for Reopening {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(&self.0.file).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        lock(&self.0.file).flush()
    }
}

/// Opens the log at `path` for appending (created if absent, never through a symlink).
fn open(path: &Path) -> Result<File, String> {
    crate::statefile::open(path, crate::statefile::Mode::Append)
        .map_err(|e| format!("catsyslog.logpath: cannot open {}: {e}", path.display()))
}

/// Opens `catsyslog.logpath` again (SIGHUP): the file at the path now, created if logrotate moved
/// it away without `create`. When it cannot be opened the old file is kept, and the error says
/// why. Without a log file, nothing to do.
pub fn reopen() -> Result<(), String> {
    let Some(log) = LOG_FILE.get() else { return Ok(()) };
    let file = open(&log.path)?;
    *lock(&log.file) = file;
    Ok(())
}

pub fn init(settings: &LogSettings) -> Result<(), String> {
    let cfg = ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        // The HTTP client's per-request debug lines drown the agent's own.
        .add_filter_ignore_str("ureq")
        .add_filter_ignore_str("rustls")
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> =
        vec![WriteLogger::new(LevelFilter::Trace, cfg.clone(), std::io::stderr())];
    if let Some(path) = &settings.path {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("catsyslog.logpath: cannot create {}: {e}", dir.display()))?;
        }
        let log = Arc::new(LogFile { path: path.clone(), file: Mutex::new(open(path)?) });
        loggers.push(WriteLogger::new(LevelFilter::Trace, cfg, Reopening(log.clone())));
        let _ = LOG_FILE.set(log);
    }
    CombinedLogger::init(loggers).map_err(|e| format!("cannot set up logging: {e}"))?;
    log::set_max_level(settings.level);
    Ok(())
}

/// Panics are logged (with their thread) before the supervisor restarts the thread.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        log::error!("thread {thread} panicked: {info}");
        default(info);
    }));
}
