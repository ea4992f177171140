//! The fleet seen from etcd (issue 17): each agent keeps a key `<fleet_prefix>/<hostname>`,
//! bound to a lease of `TTL` seconds that it keeps alive, holding what it does.
//!
//! Exists so that an operator who changes an etcd key from a shell script can see which hosts
//! applied the new revision, which rejected it (and why), and which agents are gone: a dead
//! agent's key disappears with its lease, a stopped one revokes it. The value is JSON:
//! `version`, `pid`, `started`, `keys` (each watched key: the `revision` applied, and `error`
//! with the `rejected` revision when its value was refused), `sources`, `files`,
//! `lines_shipped`, `lag_bytes`, `broker_up`. It is rewritten when it changes, at most once a
//! second (the loop's tick). Two agents with the same host name: the second is refused the key
//! (a transaction creates it only if absent) and says so, naming the pid that holds it.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::Credentials;
use crate::etcd::client::{Error, EtcdClient};
use crate::metrics::Metrics;
use crate::secret::TlsFiles;

/// The lease's time to live: an agent killed is gone from the fleet this long after.
pub const TTL: u64 = 30;
/// How often the lease is kept alive (a third of its life).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);
/// How often the report is compared with what was written.
const TICK: Duration = Duration::from_secs(1);

/// What the fleet thread needs.
pub struct Fleet {
    /// `<fleet_prefix>/<hostname>`.
    pub key: String,
    pub endpoints: Vec<String>,
    pub creds: Option<Credentials>,
    pub tls: Option<TlsFiles>,
    pub metrics: std::sync::Arc<Metrics>,
    /// RFC 3339, UTC.
    pub started: String,
    /// `LOGCATCH_FLEET_TTL` (tests only: a kill shows in seconds, not 30 s).
    pub ttl: u64,
}

/// The key held: its lease, the value last written, when the lease was last kept alive.
struct Held {
    lease: i64,
    value: Vec<u8>,
    kept: Instant,
}

impl Fleet {
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
/// changes; revoke the lease when `stop` is raised (the orderly stop).
pub fn run_fleet(f: &Fleet, stop: &crate::control::Stop) {
    let mut client = match EtcdClient::new(&f.endpoints, f.creds.clone(), f.tls.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            log::error!("fleet: {e}; this agent is not reported in etcd");
            return;
        }
    };
    let mut held: Option<Held> = None;
    // Each distinct problem is logged once.
    let mut last_problem = String::new();
    let mut problem = |text: String| {
        if text != last_problem {
            log::warn!("fleet: {text}");
            last_problem = text;
        }
    };
    while !stop.sleep(TICK) {
        let value = f.value();
        match held.as_mut() {
            None => match hold(&mut client, f, &value) {
                Ok(Ok(h)) => {
                    log::info!("fleet: reporting in etcd as {} (lease of {} s)", f.key, f.ttl);
                    held = Some(h);
                }
                Ok(Err(other)) => problem(format!(
                    "{} is held by another agent ({other}): two agents use this host name; set hostname: apart",
                    f.key
                )),
                Err(e) => problem(e.to_string()),
            },
            Some(h) => {
                if value != h.value {
                    match client.put_leased(&f.key, &value, h.lease) {
                        Ok(()) => h.value = value,
                        Err(e) => problem(e.to_string()),
                    }
                }
                if h.kept.elapsed() >= KEEPALIVE_EVERY {
                    match client.lease_keepalive(h.lease) {
                        Ok(ttl) if ttl > 0 => h.kept = Instant::now(),
                        // Expired (etcd unreachable longer than the TTL): hold the key again.
                        Ok(_) => held = None,
                        Err(e) => problem(e.to_string()),
                    }
                }
            }
        }
    }
    if let Some(h) = held {
        let _ = client.lease_revoke(h.lease);
    }
}

/// Grants a lease and creates the key with it. Ok(Err(who)) when another agent holds the key.
fn hold(client: &mut EtcdClient, f: &Fleet, value: &[u8]) -> Result<Result<Held, String>, Error> {
    let lease = client.lease_grant(f.ttl)?;
    match client.create_leased(&f.key, value, lease)? {
        None => Ok(Ok(Held { lease, value: value.to_vec(), kept: Instant::now() })),
        Some(existing) => {
            let _ = client.lease_revoke(lease);
            let v: serde_json::Value = serde_json::from_slice(&existing).unwrap_or_default();
            Ok(Err(format!("pid {}, started {}", v["pid"], v["started"].as_str().unwrap_or("?"))))
        }
    }
}
