//! Metrics without a server: counters written in Prometheus text format to a file, and one
//! summary line in the agent's log, every `metrics.interval`.
//!
//! Exists for hosts with node_exporter's textfile collector and cron, not Prometheus sidecars.
//! Components register their counters here (tails by (path, topic), watchers by etcd key, the
//! producer once); the metrics thread renders them atomically (temp file, rename). The same file
//! is what `logcatch status` reads.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::budget::FileBudget;
use crate::desired::TailSpec;
use crate::sink::SinkStats;

/// Counters of one tail, for logs and metrics: owned here, handed to the tail that counts them.
#[derive(Default, Debug)]
pub struct TailStats {
    pub lines: AtomicU64,
    /// Events dropped by `include_lines`/`exclude_lines`.
    pub filtered: AtomicU64,
    /// Time spent waiting for `rate_limit`, in microseconds.
    pub throttled_us: AtomicU64,
    /// Lines with a sequence their `encoding` could not decode (replaced by U+FFFD).
    pub undecodable: AtomicU64,
    pub bytes: AtomicU64,
    pub split: AtomicU64,
    pub rotations: AtomicU64,
    pub truncations: AtomicU64,
    /// Unread rotated generations waiting for a file descriptor (`max_open_files`).
    pub generations_waiting: AtomicU64,
    /// Size of the current file and the offset read in it (lag = size - offset).
    pub size: AtomicU64,
    pub offset: AtomicU64,
    /// The last problem (cannot open, read error), until it goes away.
    pub last_error: Mutex<Option<String>>,
}

/// A rejected revision of an etcd key, and why.
pub type Rejection = (i64, String);

/// Counters of one etcd key's watcher.
#[derive(Default, Debug)]
pub struct EtcdStats {
    pub revision: AtomicI64,
    pub reconnects: AtomicU64,
    pub rejected: AtomicU64,
    /// The revision whose value was rejected last, and why (until a later one is applied):
    /// for the fleet's report in etcd.
    pub rejection: Mutex<Option<Rejection>>,
}

struct Source {
    stats: Arc<TailStats>,
    restarts: Arc<AtomicU64>,
}

/// The registry of everything that is counted.
pub struct Metrics {
    /// Keyed by the tail's own spec (shared, not copied): a B-tree node holds eleven keys, and a
    /// `TailSpec` inline (288 bytes) made each node 3.3 KB (0.4 KiB per idle tail, heap-profiled).
    sources: Mutex<BTreeMap<Arc<TailSpec>, Source>>,
    etcd: Mutex<BTreeMap<String, Arc<EtcdStats>>>,
    sink: Mutex<Option<Arc<SinkStats>>>,
    queue: Mutex<Option<Box<dyn Fn() -> i64 + Send>>>,
    files: Mutex<Option<Arc<FileBudget>>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            sources: Mutex::default(),
            etcd: Mutex::default(),
            sink: Mutex::new(None),
            queue: Mutex::new(None),
            files: Mutex::new(None),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    pub fn add_source(&self, spec: &Arc<TailSpec>, stats: Arc<TailStats>, restarts: Arc<AtomicU64>) {
        lock(&self.sources).insert(spec.clone(), Source { stats, restarts });
    }
    pub fn remove_source(&self, spec: &TailSpec) {
        lock(&self.sources).remove(spec);
    }
    pub fn add_etcd_key(&self, key: &str, stats: Arc<EtcdStats>) {
        lock(&self.etcd).insert(key.to_string(), stats);
    }
    pub fn remove_etcd_key(&self, key: &str) {
        lock(&self.etcd).remove(key);
    }
    /// An etcd key's value at `revision` refused after it was understood (the file server's
    /// `max_tails`): counted and reported like a value that could not be parsed.
    pub fn reject_etcd_value(&self, key: &str, revision: i64, why: String) {
        if let Some(s) = lock(&self.etcd).get(key) {
            s.rejected.fetch_add(1, Ordering::Relaxed);
            *lock(&s.rejection) = Some((revision, why));
        }
    }
    pub fn set_sink(&self, stats: Arc<SinkStats>, queue: Box<dyn Fn() -> i64 + Send>) {
        *lock(&self.sink) = Some(stats);
        *lock(&self.queue) = Some(queue);
    }
    pub fn set_files(&self, budget: Arc<FileBudget>) {
        *lock(&self.files) = Some(budget);
    }

    /// A snapshot of every counter.
    /// Each watched etcd key: the revision applied, and the rejected one with why, if the last
    /// value seen was rejected.
    pub fn etcd_keys(&self) -> Vec<(String, i64, Option<Rejection>)> {
        lock(&self.etcd)
            .iter()
            .map(|(k, s)| (k.clone(), s.revision.load(Ordering::Relaxed), lock(&s.rejection).clone()))
            .collect()
    }

    pub fn snapshot(&self) -> Snapshot {
        let sources = lock(&self.sources)
            .iter()
            .map(|(spec, s)| {
                let st = &s.stats;
                let (size, offset) = (st.size.load(Ordering::Relaxed), st.offset.load(Ordering::Relaxed));
                SourceSnap {
                    path: spec.path.to_string_lossy().into_owned(),
                    topic: spec.topic.clone(),
                    lines: st.lines.load(Ordering::Relaxed),
                    filtered: st.filtered.load(Ordering::Relaxed),
                    throttled_us: st.throttled_us.load(Ordering::Relaxed),
                    undecodable: st.undecodable.load(Ordering::Relaxed),
                    bytes: st.bytes.load(Ordering::Relaxed),
                    split: st.split.load(Ordering::Relaxed),
                    rotations: st.rotations.load(Ordering::Relaxed),
                    truncations: st.truncations.load(Ordering::Relaxed),
                    generations_waiting: st.generations_waiting.load(Ordering::Relaxed),
                    restarts: s.restarts.load(Ordering::Relaxed),
                    lag: size.saturating_sub(offset),
                    error: lock(&st.last_error).clone(),
                    stalled_secs: 0,
                }
            })
            .collect();
        let etcd = lock(&self.etcd)
            .iter()
            .map(|(k, e)| {
                (
                    k.clone(),
                    e.revision.load(Ordering::Relaxed),
                    e.reconnects.load(Ordering::Relaxed),
                    e.rejected.load(Ordering::Relaxed),
                )
            })
            .collect();
        let sink = lock(&self.sink).as_ref().map(|s| SinkSnap {
            sent: s.sent.load(Ordering::Relaxed),
            acked: s.acked.load(Ordering::Relaxed),
            retried: s.retried.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            delivery_errors: s.delivery_errors.load(Ordering::Relaxed),
            json_replaced: s.json_replaced.load(Ordering::Relaxed),
            txn_committed: s.txn_committed.load(Ordering::Relaxed),
            txn_aborted: s.txn_aborted.load(Ordering::Relaxed),
            txn_renewed: s.txn_renewed.load(Ordering::Relaxed),
            broker_up: !s.brokers_down.load(Ordering::Relaxed),
            error: lock(&s.last_error).clone(),
            topics_waiting: s.topics_waiting.load(Ordering::Relaxed),
            queue: lock(&self.queue).as_ref().map(|q| q()).unwrap_or(0),
        });
        let files = lock(&self.files).as_ref().map(|b| (b.open(), b.limit()));
        Snapshot { sources, etcd, sink, files }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceSnap {
    pub path: String,
    pub topic: String,
    pub lines: u64,
    /// Events dropped by `include_lines`/`exclude_lines`.
    pub filtered: u64,
    /// Time spent waiting for `rate_limit`, in microseconds.
    pub throttled_us: u64,
    /// Lines their `encoding` could not decode whole.
    pub undecodable: u64,
    pub bytes: u64,
    pub split: u64,
    pub rotations: u64,
    pub truncations: u64,
    /// Unread rotated generations waiting for a file descriptor.
    pub generations_waiting: u64,
    pub restarts: u64,
    pub lag: u64,
    pub error: Option<String>,
    /// How long the source has had unread bytes and moved on neither by shipping a line, nor by
    /// filtering one out, nor by waiting for its `rate_limit`.
    pub stalled_secs: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SinkSnap {
    pub sent: u64,
    pub acked: u64,
    pub retried: u64,
    pub dropped: u64,
    pub delivery_errors: u64,
    /// Lines in the JSON envelope whose invalid UTF-8 was replaced.
    pub json_replaced: u64,
    /// `delivery: exactly_once`: transactions committed and aborted, and producers made anew.
    pub txn_committed: u64,
    pub txn_aborted: u64,
    pub txn_renewed: u64,
    pub broker_up: bool,
    /// The client's last error (TLS, authentication, connection), until a delivery succeeds.
    pub error: Option<String>,
    /// Topics whose messages wait because the broker refused one of them.
    pub topics_waiting: u64,
    pub queue: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub sources: Vec<SourceSnap>,
    pub etcd: Vec<(String, i64, u64, u64)>,
    pub sink: Option<SinkSnap>,
    /// Files open for reading, and `max_open_files`.
    pub files: Option<(usize, usize)>,
}

/// A label value escaped for the Prometheus text format.
fn esc(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Renders a snapshot in the Prometheus text exposition format.
///
/// Long on purpose: one block per metric family, in the order they are written.
pub fn render(s: &Snapshot, up: bool, now_unix: f64, interval: Duration) -> String {
    let mut o = String::new();
    let family = |o: &mut String, name: &str, kind: &str, help: &str| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
    };
    family(&mut o, "logcatch_up", "gauge", "1 while the agent runs, 0 once it stopped cleanly.");
    let _ = writeln!(o, "logcatch_up {}", u8::from(up));
    family(&mut o, "logcatch_metrics_timestamp_seconds", "gauge", "When this file was written (Unix time).");
    let _ = writeln!(o, "logcatch_metrics_timestamp_seconds {now_unix:.3}");
    family(&mut o, "logcatch_metrics_interval_seconds", "gauge", "How often this file is written.");
    let _ = writeln!(o, "logcatch_metrics_interval_seconds {}", interval.as_secs_f64());
    type Field = fn(&SourceSnap) -> f64;
    let per_source: [(&str, &str, &str, Field); 13] = [
        ("logcatch_source_lines_total", "counter", "Lines handed to the producer.", |x| x.lines as f64),
        (
            "logcatch_source_filtered_lines_total",
            "counter",
            "Events dropped by include_lines/exclude_lines (their position moves on).",
            |x| x.filtered as f64,
        ),
        ("logcatch_source_bytes_total", "counter", "Bytes read (shipped or filtered out).", |x| x.bytes as f64),
        (
            "logcatch_source_undecodable_lines_total",
            "counter",
            "Lines with bytes their encoding cannot decode (replaced by U+FFFD).",
            |x| x.undecodable as f64,
        ),
        ("logcatch_source_split_lines_total", "counter", "Pieces of lines longer than max_line_bytes.", |x| {
            x.split as f64
        }),
        ("logcatch_source_rotations_total", "counter", "Rotations seen (rename, delete).", |x| x.rotations as f64),
        ("logcatch_source_truncations_total", "counter", "Truncations seen (copytruncate).", |x| x.truncations as f64),
        (
            "logcatch_source_generations_waiting",
            "gauge",
            "Unread rotated generations waiting for a descriptor (max_open_files).",
            |x| x.generations_waiting as f64,
        ),
        ("logcatch_source_restarts_total", "counter", "Restarts of the tail's thread after a panic.", |x| {
            x.restarts as f64
        }),
        ("logcatch_source_lag_bytes", "gauge", "Bytes of the file not read yet.", |x| x.lag as f64),
        ("logcatch_source_throttled_seconds_total", "counter", "Time the source's reads waited for rate_limit.", |x| {
            x.throttled_us as f64 / 1e6
        }),
        (
            "logcatch_source_stalled_seconds",
            "gauge",
            "Time with unread bytes and no progress (no line shipped or filtered, no rate_limit wait).",
            |x| x.stalled_secs as f64,
        ),
        ("logcatch_source_error", "gauge", "1 with the last problem of the source as a label.", |x| {
            f64::from(u8::from(x.error.is_some()))
        }),
    ];
    for (name, kind, help, f) in per_source {
        family(&mut o, name, kind, help);
        for x in &s.sources {
            let extra = match (&x.error, name) {
                (Some(e), "logcatch_source_error") => format!(",error=\"{}\"", esc(e)),
                (None, "logcatch_source_error") => continue,
                _ => String::new(),
            };
            let _ = writeln!(o, "{name}{{path=\"{}\",topic=\"{}\"{extra}}} {}", esc(&x.path), esc(&x.topic), f(x));
        }
    }
    type EtcdField = fn(&(String, i64, u64, u64)) -> i64;
    let per_key: [(&str, &str, &str, EtcdField); 3] = [
        ("logcatch_etcd_revision", "gauge", "Last revision applied.", |k| k.1),
        ("logcatch_etcd_reconnects_total", "counter", "Watch streams opened again.", |k| k.2 as i64),
        ("logcatch_etcd_rejected_values_total", "counter", "Values not understood.", |k| k.3 as i64),
    ];
    for (name, kind, help, f) in per_key {
        family(&mut o, name, kind, help);
        for k in &s.etcd {
            let _ = writeln!(o, "{name}{{key=\"{}\"}} {}", esc(&k.0), f(k));
        }
    }
    if let Some(p) = &s.sink {
        let rows: [(&str, &str, &str, i64); 12] = [
            ("logcatch_producer_queue_messages", "gauge", "Messages in flight.", p.queue),
            ("logcatch_producer_sent_total", "counter", "Messages handed to the producer.", p.sent as i64),
            ("logcatch_producer_acked_total", "counter", "Messages acknowledged by Kafka.", p.acked as i64),
            ("logcatch_producer_retried_total", "counter", "Messages sent again after a failure.", p.retried as i64),
            ("logcatch_producer_dropped_total", "counter", "Messages Kafka can never accept.", p.dropped as i64),
            (
                "logcatch_producer_delivery_errors_total",
                "counter",
                "Failed delivery reports.",
                p.delivery_errors as i64,
            ),
            ("logcatch_producer_broker_up", "gauge", "0 while no broker is reachable.", i64::from(p.broker_up)),
            (
                "logcatch_json_replaced_lines_total",
                "counter",
                "Lines shipped in the JSON envelope with invalid UTF-8 replaced by U+FFFD.",
                p.json_replaced as i64,
            ),
            (
                "logcatch_transactions_committed_total",
                "counter",
                "delivery: exactly_once: transactions committed.",
                p.txn_committed as i64,
            ),
            (
                "logcatch_transactions_aborted_total",
                "counter",
                "delivery: exactly_once: transactions aborted (their lines sent again).",
                p.txn_aborted as i64,
            ),
            (
                "logcatch_transactional_producers_renewed_total",
                "counter",
                "delivery: exactly_once: producers made anew after the broker aborted a transaction for its timeout.",
                p.txn_renewed as i64,
            ),
            (
                "logcatch_producer_topics_waiting",
                "gauge",
                "Topics whose lines wait because the broker refused one (other topics go on).",
                p.topics_waiting as i64,
            ),
        ];
        for (name, kind, help, v) in rows {
            family(&mut o, name, kind, help);
            let _ = writeln!(o, "{name} {v}");
        }
        if let Some(e) = &p.error {
            family(&mut o, "logcatch_producer_error", "gauge", "1 with the client's last error as a label.");
            let _ = writeln!(o, "logcatch_producer_error{{error=\"{}\"}} 1", esc(e));
        }
    }
    if let Some((open, limit)) = s.files {
        family(&mut o, "logcatch_open_files", "gauge", "Files open for reading.");
        let _ = writeln!(o, "logcatch_open_files {open}");
        family(&mut o, "logcatch_open_files_limit", "gauge", "max_open_files.");
        let _ = writeln!(o, "logcatch_open_files_limit {limit}");
    }
    o
}

/// The one-line summary for the agent's log.
pub fn summary(s: &Snapshot) -> String {
    let lines: u64 = s.sources.iter().map(|x| x.lines).sum();
    let lag: u64 = s.sources.iter().map(|x| x.lag).sum();
    let errors = s.sources.iter().filter(|x| x.error.is_some()).count();
    let mut out = format!("metrics: {} sources, {lines} lines shipped, {lag} bytes behind", s.sources.len());
    if errors > 0 {
        let _ = write!(out, ", {errors} with problems");
    }
    if let Some(p) = &s.sink {
        let _ = write!(
            out,
            "; producer queue {}, {} acked, {} delivery errors, broker {}",
            p.queue,
            p.acked,
            p.delivery_errors,
            if p.broker_up { "up" } else { "DOWN" }
        );
    }
    if !s.etcd.is_empty() {
        let _ = write!(out, "; {} etcd keys", s.etcd.len());
    }
    if let Some((open, limit)) = s.files {
        let _ = write!(out, "; {open} of {limit} files open");
    }
    out
}

fn now_unix() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// Writes `text` to `path` atomically, through a temporary file nobody can redirect
/// (`statefile`: the textfile collector's directory may be writable by others). Readable by all:
/// node_exporter and `logcatch status` often run as other users, and it holds no secret.
pub fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    crate::statefile::replace(path, text.as_bytes(), 0o644, false, || Ok(()))
}

/// Tracks, per source, how long it has had unread bytes without shipping a line.
///
/// Only sources with unread bytes are kept: a caught-up source is not stalled, and its stall,
/// if one comes, starts at the first sample that finds it behind (10,000 idle files each kept
/// a record of two strings here, 170 bytes a file, heap-profiled).
#[derive(Default)]
pub struct Stalls {
    last: BTreeMap<(String, String), (u64, Instant)>,
}

impl Stalls {
    pub fn apply(&mut self, s: &mut Snapshot, now: Instant) {
        let mut seen = BTreeMap::new();
        for x in s.sources.iter_mut() {
            if x.lag == 0 {
                x.stalled_secs = 0; // caught up: neither stalled nor kept
                continue;
            }
            let key = (x.path.clone(), x.topic.clone());
            // Filtered lines and rate_limit waits are progress too: a file of dropped lines, or a
            // throttled catch-up, is not stuck.
            let progress = x.lines + x.filtered + x.throttled_us;
            let since = match self.last.get(&key) {
                Some(&(before, since)) if before == progress => since,
                _ => now,
            };
            x.stalled_secs = now.duration_since(since).as_secs();
            seen.insert(key, (progress, since));
        }
        self.last = seen;
    }
}

/// The metrics thread's loop: every `interval`, write the file (when configured) and log the
/// summary, until `stop` is disconnected; then write it once more with `logcatch_up 0`.
pub fn run_metrics(m: &Metrics, path: Option<&Path>, interval: Duration, stop: &crate::control::Stop) {
    let mut stalls = Stalls::default();
    let mut last_error: Option<String> = None;
    loop {
        let stopping = stop.sleep(interval);
        crate::alloc::decay_freed_pages();
        let mut snap = m.snapshot();
        stalls.apply(&mut snap, Instant::now());
        if !stopping {
            log::info!("{}", summary(&snap));
        }
        if let Some(p) = path {
            match write_file(p, &render(&snap, !stopping, now_unix(), interval)) {
                Ok(()) => last_error = None,
                Err(e) => {
                    let text = format!("metrics.path {}: {e}", p.display());
                    if last_error.as_ref() != Some(&text) {
                        log::error!("cannot write metrics: {text}");
                        last_error = Some(text);
                    }
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// One sample of a metrics file, as `status` reads it back.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    /// (metric name, labels, value).
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Parsed {
    pub fn value(&self, name: &str) -> Option<f64> {
        self.samples.iter().find(|s| s.0 == name).map(|s| s.2)
    }
    pub fn by_source(&self, name: &str) -> BTreeMap<(String, String), f64> {
        self.samples
            .iter()
            .filter(|s| s.0 == name)
            .map(|s| {
                ((s.1.get("path").cloned().unwrap_or_default(), s.1.get("topic").cloned().unwrap_or_default()), s.2)
            })
            .collect()
    }
}

/// Parses the Prometheus text format (as this module writes it). Err names the bad line.
pub fn parse(text: &str) -> Result<Parsed, String> {
    let mut out = Parsed::default();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || format!("line {}: not a Prometheus sample: {line:?}", n + 1);
        let (head, value) = line.rsplit_once(' ').ok_or_else(bad)?;
        let value: f64 = value.parse().map_err(|_| bad())?;
        let (name, labels) = match head.split_once('{') {
            None => (head.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                (name.to_string(), parse_labels(rest.strip_suffix('}').ok_or_else(bad)?).ok_or_else(bad)?)
            }
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            return Err(bad());
        }
        out.samples.push((name, labels, value));
    }
    Ok(out)
}

fn parse_labels(s: &str) -> Option<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let name: String = std::iter::from_fn(|| chars.next_if(|&c| c != '=')).collect();
        if name.is_empty() {
            return if chars.peek().is_none() { Some(out) } else { None };
        }
        if chars.next() != Some('=') || chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                c => value.push(c),
            }
        }
        out.insert(name.trim_start_matches(',').to_string(), value);
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot {
            sources: vec![SourceSnap {
                path: "/var/log/a \"q\".log".into(),
                topic: "t".into(),
                lines: 10,
                filtered: 4,
                throttled_us: 1_500_000,
                undecodable: 0,
                bytes: 100,
                split: 1,
                rotations: 2,
                truncations: 0,
                generations_waiting: 0,
                restarts: 1,
                lag: 5,
                error: Some("cannot open: denied\nsecond line".into()),
                stalled_secs: 0,
            }],
            etcd: vec![("k1".into(), 42, 3, 1)],
            sink: Some(SinkSnap {
                sent: 10,
                acked: 9,
                retried: 0,
                dropped: 0,
                topics_waiting: 0,
                delivery_errors: 0,
                json_replaced: 2,
                txn_committed: 0,
                txn_aborted: 0,
                txn_renewed: 0,
                broker_up: true,
                error: None,
                queue: 1,
            }),
            files: Some((3, 100)),
        }
    }

    #[test]
    fn render_parses_back() {
        let text = render(&snap(), true, 1_790_000_000.5, Duration::from_secs(10));
        let p = parse(&text).unwrap();
        assert_eq!(p.value("logcatch_up"), Some(1.0));
        assert_eq!(p.value("logcatch_producer_acked_total"), Some(9.0));
        assert_eq!(p.value("logcatch_json_replaced_lines_total"), Some(2.0));
        let lines = p.by_source("logcatch_source_lines_total");
        assert_eq!(lines[&("/var/log/a \"q\".log".to_string(), "t".to_string())], 10.0);
        let err = p.samples.iter().find(|s| s.0 == "logcatch_source_error").unwrap();
        assert_eq!(err.1["error"], "cannot open: denied\nsecond line");
        assert!(summary(&snap()).contains("10 lines shipped"));
    }

    #[test]
    fn bad_lines_are_named() {
        assert!(parse("metric_a 1\nbroken line here\n").unwrap_err().contains("line 2"));
        assert!(parse("m{a=\"x} 1").is_err());
        assert!(parse("m{a=\"x\"} one").is_err());
    }

    #[test]
    fn stalls_count_time_without_progress() {
        let mut st = Stalls::default();
        let t0 = Instant::now();
        let mut s = snap();
        st.apply(&mut s, t0);
        let mut s2 = snap();
        st.apply(&mut s2, t0 + Duration::from_secs(30));
        assert_eq!(s2.sources[0].stalled_secs, 30);
        let mut s3 = snap();
        s3.sources[0].lines = 11;
        st.apply(&mut s3, t0 + Duration::from_secs(40));
        assert_eq!(s3.sources[0].stalled_secs, 0);
        assert_eq!(st.last.len(), 1, "behind: kept");
    }

    #[test]
    fn a_caught_up_source_is_not_kept_and_its_stall_starts_when_it_is_found_behind() {
        let mut st = Stalls::default();
        let t0 = Instant::now();
        let mut s = snap();
        s.sources[0].lag = 0;
        st.apply(&mut s, t0);
        assert!(st.last.is_empty(), "an idle source costs no record");
        let mut s2 = snap();
        st.apply(&mut s2, t0 + Duration::from_secs(30));
        assert_eq!(s2.sources[0].stalled_secs, 0);
        let mut s3 = snap();
        st.apply(&mut s3, t0 + Duration::from_secs(45));
        assert_eq!(s3.sources[0].stalled_secs, 15);
    }
}
