//! The fleet seen from etcd (issue 17): each agent keeps a key `<fleet_prefix>/<hostname>`,
//! bound to a lease of `TTL` seconds that it keeps alive, holding what it does.
//!
//! Exists so that an operator who changes an etcd key from a shell script can see which hosts
//! applied the new revision, which rejected it (and why), and which agents are gone: a dead
//! agent's key disappears with its lease, a stopped one revokes it. The value is JSON:
//! `version`, `pid`, `started`, `boot` (the kernel's boot id), `keys` (each watched key: the
//! `revision` applied, and `error` with the `rejected` revision when its value was refused),
//! `sources`, `files`, `lines_shipped`, `lag_bytes`, `broker_up`. It is rewritten when it changes, at most once a
//! second (the loop's tick). Two agents with the same host name: the second is refused the key
//! (a transaction creates it only if absent) and says so, naming the pid that holds it. A key
//! still held by this host's previous agent (the same boot id, its pid gone or this very process
//! before a restart in place), whose lease has not run out yet after a crash, is no second agent:
//! that is said once, at info level, and the key is taken when the lease ends.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, Credentials};
use crate::etcd::client::{Error, EtcdClient};
use crate::metrics::Metrics;
use crate::secret::TlsFiles;

/// The lease's time to live: an agent killed is gone from the fleet this long after.
pub const TTL: u64 = 30;
/// How often the lease is kept alive (a third of its life).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);
/// How often the report is compared with what was written.
const TICK: Duration = Duration::from_secs(1);

/// Where and how the report goes: `<fleet_prefix>/<hostname>`, over config.yaml's etcd
/// connection. None when there are no endpoints or the prefix is empty.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub key: String,
    pub endpoints: Vec<String>,
    pub creds: Option<Credentials>,
    pub tls: Option<TlsFiles>,
    /// What the TLS files held: a certificate renewed in place is a new target.
    pub tls_digest: u64,
}

impl Target {
    pub fn of(config: &Config) -> Option<Target> {
        let e = &config.etcd;
        (!e.endpoints.is_empty() && !e.fleet_prefix.is_empty()).then(|| Target {
            key: format!("{}/{}", e.fleet_prefix, config.hostname),
            endpoints: e.endpoints.clone(),
            creds: e.credentials.clone(),
            tls: e.tls.clone(),
            tls_digest: e.tls_digest,
        })
    }
}

/// What the fleet thread needs; shared with the file server, which retargets it on a reload.
pub struct Fleet {
    /// The target, and a count of its changes (the thread compares it each tick).
    target: Mutex<(u64, Option<Target>)>,
    pub metrics: std::sync::Arc<Metrics>,
    /// RFC 3339, UTC.
    pub started: String,
    /// `LOGCATCH_FLEET_TTL` (tests only: a kill shows in seconds, not 30 s).
    pub ttl: u64,
    /// This boot of this machine (`/proc/sys/kernel/random/boot_id`), when the kernel says.
    boot: Option<String>,
}

/// Who holds the key when this agent could not create it, as its report says (anyone who can
/// write in etcd can write that report: its text is logged escaped and cut short).
struct Holder {
    pid: Option<u64>,
    started: String,
    boot: Option<String>,
}

/// The longest text of another agent's report that goes into this agent's log.
const HOLDER_TEXT_MAX: usize = 64;

impl Holder {
    fn of(report: &serde_json::Value) -> Holder {
        // Escaped (a newline in it would forge a line of this log) and cut short.
        let text = |v: &serde_json::Value| {
            v.as_str().map(|s| s.chars().take(HOLDER_TEXT_MAX).flat_map(char::escape_debug).collect::<String>())
        };
        Holder {
            pid: report["pid"].as_u64(),
            started: text(&report["started"]).unwrap_or_else(|| "?".into()),
            boot: report["boot"].as_str().map(str::to_string),
        }
    }

    /// This host's previous agent: the same boot, and its pid gone (or this process itself,
    /// before a restart in place).
    fn is_predecessor(&self, boot: Option<&str>) -> bool {
        let same_boot = boot.is_some() && self.boot.as_deref() == boot;
        let gone = self.pid.is_some_and(|pid| {
            pid == u64::from(std::process::id()) || !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
        same_boot && gone
    }

    /// What this agent says of the holder of `key` (`boot`: this agent's), and how loud.
    fn said(&self, key: &str, boot: Option<&str>, ttl: u64) -> (log::Level, String) {
        if self.is_predecessor(boot) {
            let text = format!(
                "{key} still holds the report of this host's previous agent ({self}, gone); it is taken when that \
                 agent's lease ends (within {ttl} s)"
            );
            return (log::Level::Info, text);
        }
        let text =
            format!("{key} is held by another agent ({self}): two agents use this host name; set hostname: apart");
        (log::Level::Warn, text)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pid = self.pid.map_or("?".to_string(), |p| p.to_string());
        write!(f, "pid {pid}, started {}", self.started)
    }
}

/// The key held: its lease, the value last written, when the lease was last kept alive.
struct Held {
    lease: i64,
    value: Vec<u8>,
    kept: Instant,
}

impl Fleet {
    pub fn new(config: &Config, metrics: std::sync::Arc<Metrics>, started: String, ttl: u64) -> Fleet {
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok().map(|b| b.trim().to_string());
        Fleet { target: Mutex::new((0, Target::of(config))), metrics, started, ttl, boot }
    }

    /// A reloaded config: when where or how the report goes changed, the thread revokes its
    /// key and holds the new one at its next tick.
    pub fn retarget(&self, config: &Config) {
        let new = Target::of(config);
        let mut t = self.target.lock().unwrap_or_else(|p| p.into_inner());
        if t.1 != new {
            *t = (t.0 + 1, new);
        }
    }

    fn target(&self) -> (u64, Option<Target>) {
        self.target.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The report, as JSON bytes.
    fn value(&self) -> Vec<u8> {
        let snap = self.metrics.snapshot();
        let keys: serde_json::Map<String, serde_json::Value> = self
            .metrics
            .etcd_keys()
            .into_iter()
            .map(|(k, revision, rejection)| {
                let mut v = json!({"revision": revision});
                if let Some((rejected, why)) = rejection {
                    v["rejected"] = json!(rejected);
                    v["error"] = json!(why);
                }
                (k, v)
            })
            .collect();
        let report = json!({
            "version": crate::version::short(),
            "pid": std::process::id(),
            "started": self.started,
            "boot": self.boot,
            "keys": keys,
            "sources": snap.sources.len(),
            "files": snap.files.map_or(0, |f| f.0),
            "lines_shipped": snap.sources.iter().map(|s| s.lines).sum::<u64>(),
            "lag_bytes": snap.sources.iter().map(|s| s.lag).sum::<u64>(),
            "broker_up": snap.sink.as_ref().is_some_and(|s| s.broker_up),
        });
        serde_json::to_vec(&report).expect("a report serializes")
    }
}

/// The fleet thread's loop: hold the key, keep its lease alive, rewrite it when the report
/// changes, move it when the target changes; revoke the lease when `stop` is raised (the orderly
/// stop).
pub fn run_fleet(f: &Fleet, stop: &crate::control::Stop) {
    // The target in use: its generation, and the client for it (None: nowhere to report).
    let mut using: Option<(u64, Option<(Target, EtcdClient)>)> = None;
    let mut held: Option<Held> = None;
    // Each distinct problem is logged once.
    let mut last_problem = String::new();
    let mut say = |level: log::Level, text: String| {
        if text != last_problem {
            log::log!(level, "fleet: {text}");
            last_problem = text;
        }
    };
    while !stop.sleep(TICK) {
        let (generation, target) = f.target();
        if using.as_ref().is_none_or(|(g, _)| *g != generation) {
            if let (Some(h), Some((_, Some((_, client))))) = (held.take(), using.as_mut()) {
                let _ = client.lease_revoke(h.lease);
            }
            using = Some((generation, target.and_then(connect)));
        }
        let Some((_, Some((target, client)))) = using.as_mut() else { continue };
        let value = f.value();
        match held.as_mut() {
            None => match hold(client, &target.key, f.ttl, &value) {
                Ok(Ok(h)) => {
                    log::info!("fleet: reporting in etcd as {} (lease of {} s)", target.key, f.ttl);
                    held = Some(h);
                }
                Ok(Err(other)) => {
                    let (level, text) = other.said(&target.key, f.boot.as_deref(), f.ttl);
                    say(level, text);
                }
                Err(e) => say(log::Level::Warn, e.to_string()),
            },
            Some(h) => {
                if value != h.value {
                    match client.put_leased(&target.key, &value, h.lease) {
                        Ok(()) => h.value = value,
                        Err(e) => say(log::Level::Warn, e.to_string()),
                    }
                }
                if h.kept.elapsed() >= KEEPALIVE_EVERY {
                    match client.lease_keepalive(h.lease) {
                        Ok(ttl) if ttl > 0 => h.kept = Instant::now(),
                        // Expired (etcd unreachable longer than the TTL): hold the key again.
                        Ok(_) => held = None,
                        Err(e) => say(log::Level::Warn, e.to_string()),
                    }
                }
            }
        }
    }
    if let (Some(h), Some((_, Some((_, client))))) = (held, using.as_mut()) {
        let _ = client.lease_revoke(h.lease);
    }
}

/// A client for `target`, or None (said) when its settings cannot be used.
fn connect(target: Target) -> Option<(Target, EtcdClient)> {
    match EtcdClient::new(&target.endpoints, target.creds.clone(), target.tls.as_ref()) {
        Ok(c) => Some((target, c)),
        Err(e) => {
            log::error!("fleet: {e}; this agent is not reported in etcd");
            None
        }
    }
}

/// Grants a lease and creates the key with it. Ok(Err(who)) when another agent holds the key.
fn hold(client: &mut EtcdClient, key: &str, ttl: u64, value: &[u8]) -> Result<Result<Held, Holder>, Error> {
    let lease = client.lease_grant(ttl)?;
    match client.create_leased(key, value, lease)? {
        None => Ok(Ok(Held { lease, value: value.to_vec(), kept: Instant::now() })),
        Some(existing) => {
            let _ = client.lease_revoke(lease);
            let v: serde_json::Value = serde_json::from_slice(&existing).unwrap_or_default();
            Ok(Err(Holder::of(&v)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Another agent's report is written by whoever can write in etcd: what of it this agent
    /// logs cannot forge a line of its log, nor make it long.
    #[test]
    fn a_holders_report_is_logged_escaped_and_short() {
        let forged = format!("2026\n2026-12-07T00:00:00Z [ERROR] forged{}", "x".repeat(10_000));
        let h = Holder::of(&json!({"pid": 7, "started": forged, "boot": "b"}));
        let (_, text) = h.said("logcatch/agents/web-1", Some("other boot"), 30);
        assert!(!text.contains('\n') && text.contains("2026\\n2026-12-07"), "{text}");
        assert!(text.len() < 300, "{} bytes", text.len());
        let h = Holder::of(&json!({"pid": "not a number", "boot": 3}));
        assert_eq!((h.pid, h.started.as_str(), h.boot), (None, "?", None));
    }
}
