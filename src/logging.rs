//! The agent's own log: `catsyslog.logpath` (appended to) and stderr, at `catsyslog.loglevel`.
//!
//! Exists to keep simplelog's setup in one place. Loggers are built at `trace` and the level is
//! applied with `log::set_max_level`, so a reload of config.yaml can change it live.

use simplelog::{CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, WriteLogger};

use crate::config::LogSettings;

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
        let file = crate::statefile::open(path, crate::statefile::Mode::Append)
            .map_err(|e| format!("catsyslog.logpath: cannot open {}: {e}", path.display()))?;
        loggers.push(WriteLogger::new(LevelFilter::Trace, cfg, file));
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
