//! `logcatch status`: a human table from the metrics file, and an exit code cron can act on.
//!
//! Exists for hosts without a monitoring server: `logcatch status || mail ...` in cron. It reads
//! only the metrics file the agent writes (`metrics.path`), so it works whatever state the
//! agent is in, including not running at all.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::metrics;

/// Exit codes of `status`.
pub const OK: u8 = 0;
pub const CONFIG: u8 = 1;
pub const DEAD: u8 = 2;
pub const STUCK: u8 = 3;

/// A source with unread bytes and no line shipped for this long (at least) is stuck.
const STUCK_AFTER_SECS: f64 = 60.0;

/// The report and the exit code.
pub fn status(config_path: &Path) -> (String, u8) {
    let cfg = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => return (format!("{e}\n"), CONFIG),
    };
    let Some(path) = cfg.metrics.path else {
        return (format!("{}: status needs metrics.path set (the agent writes it)\n", cfg.file.display()), CONFIG);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => return (format!("DEAD: no metrics file {} ({e}); is logcatch running?\n", path.display()), DEAD),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    report(&text, now, &path, crate::process::dead_holder(&cfg.data_dir))
}

/// Judges a metrics file's text as of `now` (Unix seconds).
///
/// Long on purpose: one block per section of the report, in the order printed.
/// `dead_pid`: the agent that wrote `data_dir`'s lock is gone (`process::dead_holder`): a
/// SIGKILLed agent is DEAD at once, not only once its metrics file is old.
pub fn report(text: &str, now: f64, path: &Path, dead_pid: Option<u32>) -> (String, u8) {
    let m = match metrics::parse(text) {
        Ok(m) => m,
        Err(e) => return (format!("DEAD: metrics file {} is unreadable: {e}\n", path.display()), DEAD),
    };
    let written = m.value("logcatch_metrics_timestamp_seconds").unwrap_or(0.0);
    let interval = m.value("logcatch_metrics_interval_seconds").unwrap_or(10.0);
    let age = (now - written).max(0.0);
    let up = m.value("logcatch_up") == Some(1.0);
    let broker_up = m.value("logcatch_producer_broker_up") != Some(0.0);
    let stuck_after = STUCK_AFTER_SECS.max(3.0 * interval);
    let lines = m.by_source("logcatch_source_lines_total");
    let lag = m.by_source("logcatch_source_lag_bytes");
    let stalled = m.by_source("logcatch_source_stalled_seconds");
    let errors: Vec<(String, String, String)> = m
        .samples
        .iter()
        .filter(|s| s.0 == "logcatch_source_error")
        .map(|s| {
            let l = |k: &str| s.1.get(k).cloned().unwrap_or_default();
            (l("path"), l("topic"), l("error"))
        })
        .collect();
    let stuck: Vec<&(String, String)> = stalled.iter().filter(|(_, &v)| v >= stuck_after).map(|(k, _)| k).collect();

    let (verdict, code) = if !up {
        ("STOPPED: the agent stopped cleanly (logcatch_up 0)".to_string(), DEAD)
    } else if let Some(pid) = dead_pid {
        (format!("DEAD: the agent (pid {pid}, from data_dir's lock) is not running: killed or crashed"), DEAD)
    } else if age > 3.0 * interval + 5.0 {
        (format!("DEAD: metrics not written for {age:.0} s (every {interval:.0} s expected)"), DEAD)
    } else if !stuck.is_empty() {
        (
            format!(
                "STUCK: {} sources have unread bytes and shipped nothing for {stuck_after:.0} s or more",
                stuck.len()
            ),
            STUCK,
        )
    } else if !broker_up {
        let why = m.samples.iter().find(|s| s.0 == "logcatch_producer_error").and_then(|s| s.1.get("error").cloned());
        (format!("STUCK: no Kafka broker reachable{}", why.map(|w| format!(": {w}")).unwrap_or_default()), STUCK)
    } else {
        ("RUNNING".to_string(), OK)
    };
    let mut out = format!("logcatch status: {verdict}\nmetrics: {} (written {age:.0} s ago)\n", path.display());
    if let Some(q) = m.value("logcatch_producer_queue_messages") {
        let _ = writeln!(
            out,
            "producer: {q:.0} in flight, {:.0} acknowledged, {:.0} delivery errors, broker {}",
            m.value("logcatch_producer_acked_total").unwrap_or(0.0),
            m.value("logcatch_producer_delivery_errors_total").unwrap_or(0.0),
            if broker_up { "up" } else { "DOWN" }
        );
    }
    let _ = writeln!(
        out,
        "\n{:<50} {:<20} {:>12} {:>12} {:>8}  LAST ERROR",
        "PATH", "TOPIC", "LINES", "LAG BYTES", "STALLED"
    );
    for (key, n) in &lines {
        let err = errors.iter().find(|e| e.0 == key.0 && e.1 == key.1).map(|e| e.2.as_str()).unwrap_or("-");
        let _ = writeln!(
            out,
            "{:<50} {:<20} {:>12.0} {:>12.0} {:>7.0}s  {}",
            key.0,
            key.1,
            n,
            lag.get(key).copied().unwrap_or(0.0),
            stalled.get(key).copied().unwrap_or(0.0),
            err.replace('\n', " ")
        );
    }
    let keys: Vec<_> = m.samples.iter().filter(|s| s.0 == "logcatch_etcd_revision").collect();
    if !keys.is_empty() {
        let _ = writeln!(out, "\netcd keys:");
        for k in keys {
            let _ = writeln!(out, "  {} at revision {:.0}", k.1.get("key").cloned().unwrap_or_default(), k.2);
        }
    }
    (out, code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{render, SinkSnap, Snapshot, SourceSnap};
    use std::time::Duration;

    fn text(up: bool, stalled: u64, broker_up: bool) -> String {
        let s = Snapshot {
            sources: vec![SourceSnap {
                filtered: 0,
                throttled_us: 0,
                undecodable: 0,
                path: "/var/log/a.log".into(),
                topic: "t".into(),
                lines: 5,
                bytes: 50,
                split: 0,
                rotations: 0,
                truncations: 0,
                generations_waiting: 0,
                restarts: 0,
                lag: 10,
                error: None,
                stalled_secs: stalled,
            }],
            etcd: vec![],
            sink: Some(SinkSnap {
                sent: 5,
                acked: 5,
                retried: 0,
                dropped: 0,
                delivery_errors: 0,
                broker_up,
                json_replaced: 0,
                txn_committed: 0,
                txn_aborted: 0,
                txn_renewed: 0,
                error: None,
                topics_waiting: 0,
                queue: 0,
            }),
            files: None,
        };
        render(&s, up, 1000.0, Duration::from_secs(10))
    }

    #[test]
    fn verdicts() {
        let p = Path::new("/m.prom");
        assert_eq!(report(&text(true, 0, true), 1005.0, p, None).1, OK);
        assert_eq!(report(&text(false, 0, true), 1005.0, p, None).1, DEAD);
        assert_eq!(report(&text(true, 0, true), 1100.0, p, None).1, DEAD, "stale file");
        assert_eq!(report(&text(true, 120, true), 1005.0, p, None).1, STUCK);
        assert_eq!(report(&text(true, 0, false), 1005.0, p, None).1, STUCK);
        assert_eq!(report("garbage here", 1005.0, p, None).1, DEAD);
        assert!(report(&text(true, 0, true), 1005.0, p, None).0.contains("/var/log/a.log"));
        let (out, code) = report(&text(true, 0, true), 1005.0, p, Some(4242));
        assert_eq!(code, DEAD, "a fresh metrics file, but its agent is gone");
        assert!(out.contains("pid 4242"), "{out}");
    }
}
