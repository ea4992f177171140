//! etcd as a source of files to tail: one watcher thread per key in `etcdkeys`.
//!
//! Exists to own the watchers: `EtcdWatchers` starts one (under the supervisor) for each key
//! config.yaml lists, stops the ones it no longer lists, and restarts all of them when the
//! endpoints, credentials, TLS files (or what they hold) or allowlist change. Each watcher
//! reports to the file server, which ignores reports from watchers it has retired.

pub mod client;
pub mod gateway;
pub mod value;
pub mod watcher;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use crossbeam_channel::Sender;

use crate::config::{Config, EtcdSettings};
use crate::control::Stop;
use crate::metrics::{EtcdStats, Metrics};
use crate::server::{EtcdControl, Event};
use crate::supervisor::Supervisor;
use watcher::{run_watcher, WatchState};

struct Running {
    watcher: u64,
    name: String,
    stop: Stop,
}

pub struct EtcdWatchers {
    supervisor: Supervisor,
    metrics: Arc<Metrics>,
    events: Sender<Event>,
    settings: EtcdSettings,
    /// This host's name and the top-level `fields`: every value's entries have them.
    defaults: Arc<crate::labels::Defaults>,
    running: BTreeMap<String, Running>,
    next_id: u64,
}

impl EtcdWatchers {
    pub fn new(supervisor: Supervisor, events: Sender<Event>, metrics: Arc<Metrics>) -> EtcdWatchers {
        EtcdWatchers {
            supervisor,
            metrics,
            events,
            settings: EtcdSettings::default(),
            defaults: Arc::default(),
            running: BTreeMap::new(),
            next_id: 0,
        }
    }

    fn stop(&mut self, key: &str) {
        if let Some(r) = self.running.remove(key) {
            self.metrics.remove_etcd_key(key);
            r.stop.raise();
            self.supervisor.retire(r.name);
        }
    }

    fn start(&mut self, key: &str) {
        self.next_id += 1;
        let id = self.next_id;
        let stats = Arc::new(EtcdStats::default());
        self.metrics.add_etcd_key(key, stats.clone());
        let state = WatchState::new(key.to_string(), id, &self.settings, self.defaults.clone(), stats);
        let state = Arc::new(Mutex::new(state));
        let stop = Stop::new();
        let name = format!("etcd#{id}:{key}");
        let (events, stop2) = (self.events.clone(), stop.clone());
        self.supervisor.spawn(name.clone(), Arc::new(move || run_watcher(&state, &events, &stop2)));
        self.running.insert(key.to_string(), Running { watcher: id, name, stop });
    }
}

impl EtcdControl for EtcdWatchers {
    fn reconfigure(&mut self, config: &Config) -> Vec<String> {
        let new = &config.etcd;
        // Everything a watcher connects or filters with; the TLS files' digest too, so that a
        // certificate renewed in place (same path) is applied by SIGHUP.
        let restart_all = new.endpoints != self.settings.endpoints
            || new.allowlist != self.settings.allowlist
            || new.credentials != self.settings.credentials
            || new.tls != self.settings.tls
            || new.tls_digest != self.settings.tls_digest
            // Values are parsed again with the new top-level fields (the host name changes
            // only with a restart).
            || config.defaults != *self.defaults;
        let gone: Vec<String> = self.running.keys().filter(|k| !new.keys.contains(k)).cloned().collect();
        for k in &gone {
            log::info!("etcd key {k:?} is no longer in etcdkeys: its tails stop");
            self.stop(k);
        }
        self.settings = new.clone();
        self.defaults = Arc::new(config.defaults.clone());
        for k in &new.keys {
            if restart_all && self.running.contains_key(k) {
                self.stop(k);
            }
            if !self.running.contains_key(k) {
                log::info!("watching etcd key {k:?} on {}", new.endpoints.join(", "));
                self.start(k);
            }
        }
        gone
    }

    fn is_current(&self, key: &str, watcher: u64) -> bool {
        self.running.get(key).is_some_and(|r| r.watcher == watcher)
    }
}
