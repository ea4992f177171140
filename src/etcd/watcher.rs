//! One watcher thread per etcd key (the origin's goroutine "A").
//!
//! Exists to follow one key for as long as config.yaml lists it: read it, report its tails, then
//! watch it from the next revision, reporting every change in order. Its revision lives outside
//! the thread (`WatchState`), so after a panic, a dead stream or a lost member it resumes from the
//! last revision it applied and misses nothing; if that revision was compacted away it reads the
//! key afresh. A value it cannot understand is logged with the key and revision and reported as
//! nothing: the key's tails keep running unchanged.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use super::client::{Credentials, EtcdClient, StreamError};
use super::gateway::WatchMsg;
use super::value;
use crate::config::EtcdSettings;
use crate::control::Stop;
use crate::failpoint;
use crate::metrics::EtcdStats;
use crate::secret::TlsFiles;
use crate::server::Event;

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What a watcher knows; survives restarts of its thread.
pub struct WatchState {
    pub key: String,
    /// Identifies this watcher to the server, which ignores reports from retired ones.
    pub watcher: u64,
    endpoints: Vec<String>,
    creds: Option<Credentials>,
    tls: Option<TlsFiles>,
    allowed: crate::confine::Allowlist,
    /// This host's name (`{host}` in a value's topics) and the top-level `fields`.
    defaults: Arc<crate::labels::Defaults>,
    /// The last revision applied (0: the key has not been read yet).
    pub revision: i64,
    stats: Arc<EtcdStats>,
}

impl WatchState {
    /// The watcher of `key` with the connection and allowlist of `settings`.
    pub fn new(
        key: String,
        watcher: u64,
        settings: &EtcdSettings,
        defaults: Arc<crate::labels::Defaults>,
        stats: Arc<EtcdStats>,
    ) -> Self {
        WatchState {
            key,
            watcher,
            endpoints: settings.endpoints.clone(),
            creds: settings.credentials.clone(),
            tls: settings.tls.clone(),
            allowed: settings.allowlist.clone(),
            defaults,
            revision: 0,
            stats,
        }
    }

    /// Reports a value (or a delete, for `None`) at `revision` to the server.
    fn apply(&mut self, events: &Sender<Event>, revision: i64, value: Option<&[u8]>) {
        let key = self.key.clone();
        let event = match value {
            None => Some(Event::EtcdDeleted { key: key.clone(), watcher: self.watcher, revision }),
            Some(bytes) => match value::parse(bytes, &self.allowed, &self.defaults) {
                Ok(parsed) => {
                    for r in &parsed.refused {
                        log::error!("etcd key {key:?} at revision {revision}: {r}");
                    }
                    Some(Event::EtcdValue { key: key.clone(), watcher: self.watcher, revision, tails: parsed.tails })
                }
                Err(e) => {
                    log::error!("etcd key {key:?} at revision {revision}: {e}; the key's tails keep running unchanged");
                    self.stats.rejected.fetch_add(1, Ordering::Relaxed);
                    *self.stats.rejection.lock().unwrap_or_else(|p| p.into_inner()) = Some((revision, e.clone()));
                    None
                }
            },
        };
        if let Some(ev) = event {
            // Cleared before the server sees the value: it may refuse it (max_tails) and say so.
            *self.stats.rejection.lock().unwrap_or_else(|p| p.into_inner()) = None;
            let _ = events.send(ev);
        }
        self.revision = revision;
        self.stats.revision.store(revision, Ordering::Relaxed);
        failpoint::hit("etcd.applied", &key);
    }
}

/// Reads the key when its revision is unknown, then opens a watch from the next revision.
fn open(
    st: &mut WatchState,
    client: &mut EtcdClient,
    events: &Sender<Event>,
    opened_once: &mut bool,
) -> Result<super::client::WatchStream, super::client::Error> {
    if st.revision == 0 {
        let r = client.range(&st.key)?;
        if r.value.is_none() {
            log::info!("etcd key {:?} does not exist (revision {}); waiting for it", st.key, r.revision);
        }
        st.apply(events, r.revision, r.value.as_deref());
    }
    if *opened_once {
        st.stats.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    *opened_once = true;
    client.watch(&st.key, st.revision + 1)
}

/// Said once a minute at most per distinct failure: a broken endpoint must not fill the log
/// (5,604 reconnects and 668 KB of warnings in 10 s, before streams that ended with nothing
/// backed off).
const SAY_AGAIN_AFTER: Duration = Duration::from_secs(60);

/// Which failures were said, and when.
#[derive(Default)]
struct Said(std::collections::HashMap<String, Instant>);

impl Said {
    /// True when `what` was not said within the last minute (and notes it as said now).
    fn first(&mut self, what: &str) -> bool {
        let now = Instant::now();
        self.0.retain(|_, at| now.duration_since(*at) < SAY_AGAIN_AFTER);
        if self.0.contains_key(what) {
            return false;
        }
        self.0.insert(what.to_string(), now);
        true
    }
}

/// `d` less a random part of up to half of it: watchers of many hosts that lost the same
/// endpoint do not come back in step.
fn jitter(d: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let r = std::collections::hash_map::RandomState::new().build_hasher().finish();
    d.mul_f64(1.0 - (r % 1000) as f64 / 2000.0)
}

/// How one watch stream ended.
enum Ended {
    /// Stop was asked.
    Stop,
    /// Open again at once: the stream lived its time (a quiet key), or it brought changes.
    Again,
    /// Open again after the backoff: it ended without bringing a change.
    Backoff,
}

/// The watcher thread's loop.
///
/// Long on purpose: a thread's loop is one function (house style).
pub fn run_watcher(state: &Mutex<WatchState>, events: &Sender<Event>, stop: &Stop) {
    let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
    let mut said = Said::default();
    // The TLS files may be fixed while the agent runs: try again at the longest backoff.
    let mut client = loop {
        match EtcdClient::new(&st.endpoints, st.creds.clone(), st.tls.as_ref()) {
            Ok(c) => break c,
            Err(e) => {
                if said.first(&e.to_string()) {
                    log::error!("etcd key {:?}: {e}; trying again every {MAX_BACKOFF:?}", st.key);
                }
                if stop.sleep(MAX_BACKOFF) {
                    return;
                }
            }
        }
    };
    let mut backoff = FIRST_BACKOFF;
    let mut opened_once = false;
    while !stop.is_raised() {
        // 1. Read the key (the first time, and after a compaction); 2. watch from the next
        // revision.
        let mut stream = match open(&mut st, &mut client, events, &mut opened_once) {
            Ok(s) => s,
            Err(e) => {
                // Wrong credentials or a request etcd refuses: retrying soon will not help.
                let hopeless = e.is_hopeless();
                if said.first(&e.to_string()) {
                    if hopeless {
                        log::error!("etcd key {:?}: {e}; retrying every {MAX_BACKOFF:?}", st.key);
                    } else {
                        log::warn!("etcd key {:?}: {e}; retrying", st.key);
                    }
                }
                backoff = if hopeless { MAX_BACKOFF } else { backoff };
                if stop.sleep(jitter(backoff)) {
                    break;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        // 3. Apply changes as they come, until the stream ends.
        let mut changed = false;
        let ended = loop {
            if stop.is_raised() {
                break Ended::Stop;
            }
            match stream.next_msg() {
                Ok(WatchMsg::Created { .. }) => {
                    log::debug!(
                        "etcd key {:?}: watching from revision {} on {}",
                        st.key,
                        st.revision + 1,
                        stream.endpoint
                    );
                }
                Ok(WatchMsg::Change { revision, value }) => {
                    if stop.is_raised() {
                        break Ended::Stop;
                    }
                    changed = true;
                    st.apply(events, revision, value.as_deref());
                }
                Ok(WatchMsg::Progress { .. }) => {}
                Ok(WatchMsg::Compacted { compact_revision }) => {
                    log::warn!(
                        "etcd key {:?}: revision {} was compacted (now {compact_revision}); reading the key afresh",
                        st.key,
                        st.revision + 1
                    );
                    st.revision = 0;
                    // Backed off like any stream that brought nothing: an endpoint that says
                    // "compacted" every time must not be asked again at once, for ever.
                    break Ended::Backoff;
                }
                Ok(WatchMsg::Ended { reason, auth }) => {
                    if auth {
                        // The token expired: the next request authenticates again.
                        client.forget_token();
                    } else {
                        client.rotate();
                    }
                    if said.first(&reason) {
                        log::warn!("etcd key {:?}: {reason}; watching again", st.key);
                    }
                    break Ended::Backoff;
                }
                Err(StreamError::Idle) => {
                    log::debug!("etcd key {:?}: quiet; watching again from revision {}", st.key, st.revision + 1);
                    break Ended::Again; // a quiet key: reopen on the same endpoint
                }
                Err(e @ (StreamError::Broken(_) | StreamError::Garbage(_))) => {
                    // Which endpoint failed and why, which one is tried now, and from which
                    // revision.
                    client.rotate();
                    if said.first(&e.to_string()) {
                        log::warn!(
                            "etcd key {:?}: {e}; switching to {} from revision {}",
                            st.key,
                            client.endpoint(),
                            st.revision + 1
                        );
                    }
                    break Ended::Backoff;
                }
            }
        };
        match ended {
            Ended::Stop => return,
            _ if changed => backoff = FIRST_BACKOFF,
            Ended::Again => {}
            Ended::Backoff => {
                if stop.sleep(jitter(backoff)) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_said_once_a_minute_and_backoffs_are_jittered_down_to_half() {
        let mut said = Said::default();
        assert!(said.first("HTTP 503"));
        assert!(!said.first("HTTP 503"));
        assert!(said.first("connection refused"));
        said.0.insert("HTTP 503".into(), Instant::now() - SAY_AGAIN_AFTER);
        assert!(said.first("HTTP 503"), "said again after a minute");
        for _ in 0..100 {
            let j = jitter(Duration::from_secs(2));
            assert!(j <= Duration::from_secs(2) && j >= Duration::from_secs(1), "{j:?}");
        }
    }
}
