//! The config thread: notices changes to config.yaml and hands valid new versions to the server.
//!
//! Exists so hot reload is one loop, readable top to bottom. It hears of config.yaml through the
//! agent's own change notifications (`waker`): its *directory*'s name events (so editors that
//! write a new file and rename it over the old one are seen) and a one-shot watch on the file's
//! next write (an edit in place, `cp` over it), armed again after each look. It also compares the
//! file's (inode, size, mtime) every second as a fallback for missed events. A new version that
//! fails to parse or validate is logged with every reason, once, and the agent keeps running on
//! the last good one.
//!
//! Not the notify crate: its watch of the directory reports every write to every file in it, and
//! config.yaml may sit beside busy logs (1,000 files written 10 lines a second each: its thread
//! took 8.8% of the agent's samples, perf, for events it then threw away).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crossbeam_channel::{bounded, Receiver, Sender};

use crate::config::Config;
use crate::server::Event;
use crate::waker::{Doorbell, Waker};

/// Writers are given this long to finish before the file is read.
const SETTLE: Duration = Duration::from_millis(50);
/// How often the file is compared anyway: every second where notifications do not cover it (its
/// directory or the file could not be watched); every 5 s where they do, a safety net only (at
/// 1 s, 30 wakeups of 60 us in 30 s: a tenth of an idle agent's CPU, schedstat).
const FALLBACK_CHECK: Duration = Duration::from_secs(1);
const NOTIFIED_CHECK: Duration = Duration::from_secs(5);
/// The config thread's id with the waker (the file server's is 0, tails' their generation).
const WAKER_ID: u64 = u64::MAX;

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

/// The config thread's body. `last_good` survives restarts of this thread.
pub fn run_config_watcher(
    file: &Path,
    last_good: &Mutex<Config>,
    events: &Sender<Event>,
    requests: &Receiver<ConfigMsg>,
    stop: &crate::control::Stop,
    waker: &Waker,
) {
    watch(file, last_good, events, requests, stop, waker, NOTIFIED_CHECK)
}

/// The config thread's loop, looking at the file every `notified` when notifications cover it
/// (the tests make it long, to see what the notifications alone find), every `FALLBACK_CHECK`
/// when they do not.
///
/// Long on purpose: a thread's loop is one function (house style).
fn watch(
    file: &Path,
    last_good: &Mutex<Config>,
    events: &Sender<Event>,
    requests: &Receiver<ConfigMsg>,
    stop: &crate::control::Stop,
    waker: &Waker,
    notified: Duration,
) {
    // Every notification is a message on one channel: a name event in the directory (the
    // waker's listener) or the file's next write (its armed watch rings `bell`, whose hook
    // sends). One waiting is enough: the loop looks at the file whatever woke it.
    let (tx, rx) = bounded::<()>(1);
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
    let names = tx.clone();
    let listened = waker.listen_dir(
        &dir,
        WAKER_ID,
        Arc::new(move || {
            let _ = names.try_send(());
        }),
    );
    if !listened {
        log::warn!("cannot watch {}; checking config.yaml every second instead", dir.display());
    }
    let _unlisten = Unlisten { waker, dir: &dir, file };
    let bell = Arc::new(Doorbell::default());
    // Arms the watch on the file's next write (again after each change: the watch is one-shot,
    // and a file renamed over config.yaml is another inode); false when it cannot be watched.
    let arm = || {
        bell.take_ring();
        let armed = waker.arm(file, WAKER_ID, &bell);
        let hook = tx.clone();
        if !bell.on_next_ring(Box::new(move || {
            let _ = hook.try_send(());
        })) {
            let _ = tx.try_send(()); // rang between the arming and the hook: look again
        }
        armed
    };
    let mut seen = signature(file);
    let mut last_error: Option<String> = None;
    let mut armed = arm();
    while !stop.is_raised() {
        let fallback = if listened && armed { notified } else { FALLBACK_CHECK };
        // A notification only says where to look: the file changed when its signature did (a
        // name event in the directory may be another file's).
        let mut changed = crossbeam_channel::select! {
            recv(stop.receiver()) -> _ => false,
            recv(rx) -> _ => false,
            recv(requests) -> msg => match msg {
                Ok(ConfigMsg::Reload) => { log::info!("reloading {} on request", file.display()); true }
                Err(_) => false,
            },
            default(fallback) => false,
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
        armed = arm();
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

/// Takes the config thread's listener off its directory, and its armed watch off config.yaml,
/// when the thread ends: a restart after a panic listens and arms again with its own bell (the
/// waker keeps one waiter per id, so the dead thread's would have kept the new one's out until
/// the next write).
struct Unlisten<'a> {
    waker: &'a Waker,
    dir: &'a Path,
    file: &'a Path,
}

impl Drop for Unlisten<'_> {
    fn drop(&mut self) {
        self.waker.unregister(self.file, WAKER_ID);
        self.waker.unlisten_dir(self.dir, WAKER_ID);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn yaml(topic: &str) -> String {
        format!("kafkaconfig: {{kafkaaddr: \"127.0.0.1:1\"}}\ncollectlogs: [{{logpath: /var/log/a.log, logtopic: {topic}}}]\n")
    }

    /// A config thread's surroundings: config.yaml in a directory of its own, a real inotify
    /// waker, the file server's channel.
    struct Fixture {
        dir: tempfile::TempDir,
        file: PathBuf,
        good: Mutex<Config>,
        waker: Waker,
        events: Sender<Event>,
        rx: Receiver<Event>,
        _requests_tx: Sender<ConfigMsg>,
        requests: Receiver<ConfigMsg>,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("config.yaml");
            std::fs::write(&file, yaml("first")).unwrap();
            let good = Mutex::new(Config::load(&file).unwrap());
            let (events, rx) = crossbeam_channel::unbounded();
            let (_requests_tx, requests) = crossbeam_channel::unbounded();
            Fixture { dir, file, good, waker: Waker::start(), events, rx, _requests_tx, requests }
        }

        /// The thread's loop until `stop`, by notifications alone (the fallback look is an hour
        /// away).
        fn watch(&self, stop: &crate::control::Stop) {
            watch(&self.file, &self.good, &self.events, &self.requests, stop, &self.waker, Duration::from_secs(3600));
        }

        /// The next config the thread hands over within `limit`, by its one entry's topic.
        fn next_topic(&self, limit: Duration) -> Option<String> {
            match self.rx.recv_timeout(limit) {
                Ok(Event::Config(c)) => Some(c.sources[0].topic.clone()),
                Ok(_) => panic!("only configs are sent"),
                Err(_) => None,
            }
        }
    }

    /// A config thread started again (after a panic) hears of an edit in place at once: the
    /// thread before it took its armed watch away when it ended.
    #[test]
    fn a_restarted_config_thread_hears_of_the_next_edit() {
        let fx = Fixture::new();
        let (first, second) = (crate::control::Stop::new(), crate::control::Stop::new());
        std::thread::scope(|s| {
            let ended = s.spawn(|| fx.watch(&first));
            std::thread::sleep(Duration::from_millis(200)); // listening and armed
            first.raise();
            ended.join().unwrap();
            s.spawn(|| fx.watch(&second));
            let _stop = crate::control::RaiseOnDrop(&second);
            std::thread::sleep(Duration::from_millis(200));
            std::fs::write(&fx.file, yaml("second")).unwrap();
            assert_eq!(fx.next_topic(Duration::from_secs(10)).as_deref(), Some("second"));
        });
    }

    /// Edits in place and renames over config.yaml are each handed over once, by notifications
    /// alone; writes, creations and renames of the log files beside it hand over nothing.
    #[test]
    fn config_yaml_changes_are_seen_and_its_busy_neighbours_are_not() {
        let fx = Fixture::new();
        let (dir, file) = (fx.dir.path(), &fx.file);
        let stop = crate::control::Stop::new();
        std::thread::scope(|s| {
            s.spawn(|| fx.watch(&stop));
            let _stop = crate::control::RaiseOnDrop(&stop);
            // Neighbours: a busy log, a rotation, a new file.
            let log = dir.join("app.log");
            let t0 = Instant::now();
            while t0.elapsed() < Duration::from_millis(1500) {
                use std::io::Write;
                let mut f = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
                writeln!(f, "a line").unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
            std::fs::rename(&log, dir.join("app.log.1")).unwrap();
            std::fs::write(dir.join("other.yaml"), yaml("not-ours")).unwrap();
            assert_eq!(fx.next_topic(Duration::from_millis(1500)), None, "nothing of config.yaml changed");

            // Written in place (as `cp` does).
            std::fs::write(file, yaml("second")).unwrap();
            assert_eq!(fx.next_topic(Duration::from_secs(10)).as_deref(), Some("second"));
            // A new file renamed over it (as editors do).
            let tmp = dir.join(".config.yaml.tmp");
            std::fs::write(&tmp, yaml("third")).unwrap();
            std::fs::rename(&tmp, file).unwrap();
            assert_eq!(fx.next_topic(Duration::from_secs(10)).as_deref(), Some("third"));
            // And in place again: the watch was armed on the new file.
            std::fs::write(file, yaml("fourth")).unwrap();
            assert_eq!(fx.next_topic(Duration::from_secs(10)).as_deref(), Some("fourth"));
            assert_eq!(fx.next_topic(Duration::from_millis(1500)), None, "each change handed over once");
        });
    }
}
