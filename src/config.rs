//! The configuration model: `config.yaml` parsed, validated and resolved into plain data.
//!
//! Exists so that every other module works on checked values (absolute paths, parsed durations,
//! valid topic names) and so that a bad file is rejected as a whole, with every problem named by
//! its field, before anything acts on it. The keys of the origin system (`catsyslog`,
//! `collectlogs`, `kafkaconfig.kafkaaddr`, `etcdconfig`, `etcdkeys`) keep their meaning.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::confine::{Allowlist, DEFAULT_DENIED};
use crate::envelope::Format;
use crate::secret::{check_file, read_secret, Secret, TlsFiles};
use crate::selector::{absolute, check_pattern, Entry, Selector, SelectorError};
use crate::units::{duration_text, parse_size_raw, RawSize};
pub use crate::units::{parse_duration, parse_size};

/// Where a file that has no saved position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    Beginning,
    End,
}

/// What becomes the Kafka message key of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKey {
    /// The file's configured path: one file's lines stay in one partition, in order.
    Path,
    /// The topic name (what the origin system sent).
    Topic,
    /// No key.
    None,
    /// The host name (`hostname`): one host's lines of a topic stay in one partition.
    Host,
    /// The host name, `:`, and the file's configured path.
    #[serde(rename = "host_path")]
    HostPath,
}

/// Which Kafka headers every message carries (`kafkaconfig.headers`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Headers {
    /// `host`: the agent's `hostname`.
    pub host: bool,
    /// `path`: the file actually read (a glob's match, a rotated file's name then).
    pub path: bool,
    /// `offset`: the decimal byte offset of the line's first byte in that file.
    pub offset: bool,
}

impl Headers {
    pub fn any(&self) -> bool {
        self.host || self.path || self.offset
    }
}

/// The validated, resolved configuration the agent runs on.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from (absolute).
    pub file: PathBuf,
    pub log: LogSettings,
    /// What config.yaml itself asks for (files and glob patterns), deduplicated, in file order.
    /// Shared: the agent, the file server and the config thread each keep the config, and the
    /// file server's wanted selectors are these; with an entry per file (1,000 entries) each
    /// copy of the list was 0.3 MiB (heap-profiled).
    pub sources: Arc<[Arc<Selector>]>,
    pub kafka: KafkaSettings,
    pub etcd: EtcdSettings,
    pub data_dir: PathBuf,
    pub start_position: StartPosition,
    pub max_line_bytes: usize,
    pub rotate_wait: Duration,
    pub poll_interval: Duration,
    pub batch_wait: Duration,
    pub checkpoint_interval: Duration,
    /// Files not modified for this long are not picked up (a tail that has them keeps them).
    pub ignore_older: Option<Duration>,
    /// The payload of every message whose source entry says no `format` of its own.
    pub format: Format,
    /// A file with nothing new for this long is closed (its descriptor freed), and opened again
    /// when it changes.
    pub close_inactive: Duration,
    /// How many files may be open for reading at once; None: from the process's descriptor limit.
    pub max_open_files: Option<usize>,
    /// How many tails (file, topic) may run at once, every source together: an etcd value that
    /// would pass it is refused whole.
    pub max_tails: usize,
    /// How often glob patterns are expanded again (directory change notifications also do it).
    pub scan_frequency: Duration,
    pub metrics: MetricsSettings,
    /// Optional pid file (a second instance on the same data_dir is refused in any case).
    pub pid_file: Option<PathBuf>,
    /// This host's name (`hostname`, default the system's): the `host` header, `{host}` in
    /// `etcdkeys` and in topics.
    pub hostname: String,
    /// `rate_limit` at the top level: bytes read per second by every tail together.
    pub rate_limit: Option<u64>,
    /// The host name and the top-level `fields`, which every entry (of config.yaml or etcd)
    /// has; config.yaml's `sources` have them already.
    pub defaults: crate::labels::Defaults,
    /// What is allowed but unwise (a password file others can read), each naming its field:
    /// logged at start and printed by `--check`.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSettings {
    /// Prometheus text file, rewritten every `interval` (for node_exporter's textfile collector).
    pub path: Option<PathBuf>,
    pub interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub path: Option<PathBuf>,
    pub level: log::LevelFilter,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KafkaSettings {
    /// Comma-separated `host:port` list, as librdkafka's `bootstrap.servers`.
    pub brokers: String,
    pub message_key: MessageKey,
    /// librdkafka properties, defaults merged with the user's (the user's win).
    pub properties: BTreeMap<String, String>,
    /// How long shutdown waits for in-flight lines to be acknowledged.
    pub flush_timeout: Duration,
    /// Headers on every message.
    pub headers: Headers,
    /// librdkafka properties that hold secrets (`sasl.password`, `ssl.key.password`, any key
    /// with "password" in `properties`): apart, so that no print of the config shows them.
    pub secrets: BTreeMap<String, Secret>,
    /// `delivery: exactly_once`: lines and positions go in Kafka transactions (issue 13).
    pub exactly_once: Option<ExactlyOnce>,
    /// What the files the properties name (`ssl.*.location`: CA, certificate, key) held when the
    /// config was read: a certificate renewed in place is a change of the config (SIGHUP
    /// applies it), though config.yaml's text is the same.
    pub files_digest: u64,
}

/// What `delivery: exactly_once` needs (see src/sink/transaction.rs).
#[derive(Debug, Clone, PartialEq)]
pub struct ExactlyOnce {
    /// `kafkaconfig.transactional_id`: by default `logcatch-<hostname>-<hash of data_dir>`, the
    /// same for every run of one agent, so that a restarted agent fences its predecessor.
    pub transactional_id: String,
    /// `kafkaconfig.transaction_interval`: how often a transaction is committed.
    pub interval: Duration,
    /// `kafkaconfig.positions_topic`: the compacted topic the positions are committed to.
    pub positions_topic: String,
    /// librdkafka's `transaction.timeout.ms`: a transaction open longer is aborted by the broker.
    pub timeout: Duration,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    pub credentials: Option<Credentials>,
    pub keys: Vec<String>,
    /// What paths coming from etcd may name (`etcd_allowed_paths`, `etcd_denied_paths`).
    pub allowlist: Allowlist,
    /// `etcd_tls`: the CA for `https://` endpoints and the client certificate for mutual TLS.
    pub tls: Option<TlsFiles>,
    /// `fleet_prefix`: where this agent reports itself (`<prefix>/<hostname>`); empty: nowhere.
    pub fleet_prefix: String,
    /// What the `etcd_tls` files held when the config was read (see `KafkaSettings::files_digest`).
    pub tls_digest: u64,
}

/// Adds `name` to `list` when `changed`.
fn note(list: &mut Vec<&'static str>, name: &'static str, changed: bool) {
    if changed {
        list.push(name);
    }
}

/// What a reload of config.yaml does with each changed setting.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Changed and applied at once.
    pub live: Vec<&'static str>,
    /// Changed, and applied only when the agent restarts.
    pub at_restart: Vec<&'static str>,
}

impl Config {
    /// Classes every changed setting between `self` (running) and `new` as live or
    /// restart-only. The destructuring is exhaustive on purpose: a field added to `Config`
    /// does not compile until it is classed here, so the list cannot drift from the type
    /// (the hand-kept list it replaces had missed checkpoint_interval, metrics and pid_file).
    pub fn reload_plan(&self, new: &Config) -> ReloadPlan {
        let Config {
            file: _,
            log,
            sources,
            kafka,
            etcd,
            data_dir,
            start_position,
            max_line_bytes,
            rotate_wait,
            poll_interval,
            batch_wait,
            checkpoint_interval,
            ignore_older,
            format,
            close_inactive,
            max_open_files,
            max_tails,
            scan_frequency,
            metrics,
            pid_file,
            hostname,
            rate_limit,
            defaults,
            warnings: _,
        } = self;
        let mut plan = ReloadPlan::default();
        let (live, restart) = (&mut plan.live, &mut plan.at_restart);
        note(live, "catsyslog.loglevel", log.level != new.log.level);
        note(live, "collectlogs", *sources != new.sources);
        note(live, "etcdconfig/etcdkeys/etcd_*", *etcd != new.etcd);
        note(live, "ignore_older", *ignore_older != new.ignore_older);
        note(live, "format", *format != new.format);
        note(live, "scan_frequency", *scan_frequency != new.scan_frequency);
        note(live, "max_tails", *max_tails != new.max_tails);
        note(live, "rate_limit", *rate_limit != new.rate_limit);
        note(live, "fields", defaults.fields != new.defaults.fields);
        note(restart, "catsyslog.logpath", log.path != new.log.path);
        note(restart, "kafkaconfig", *kafka != new.kafka);
        note(restart, "data_dir", *data_dir != new.data_dir);
        note(restart, "start_position", *start_position != new.start_position);
        note(restart, "max_line_bytes", *max_line_bytes != new.max_line_bytes);
        note(restart, "rotate_wait", *rotate_wait != new.rotate_wait);
        note(restart, "poll_interval", *poll_interval != new.poll_interval);
        note(restart, "batch_wait", *batch_wait != new.batch_wait);
        note(restart, "checkpoint_interval", *checkpoint_interval != new.checkpoint_interval);
        note(restart, "close_inactive", *close_inactive != new.close_inactive);
        note(restart, "max_open_files", *max_open_files != new.max_open_files);
        note(restart, "metrics", *metrics != new.metrics);
        note(restart, "pid_file", *pid_file != new.pid_file);
        note(restart, "hostname", *hostname != new.hostname);
        plan
    }
}

/// Every problem found in a config file, each naming its field.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.file.display())?;
        if self.problems.len() == 1 {
            return write!(f, "{}", self.problems[0]);
        }
        write!(f, "{} problems:", self.problems.len())?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

// ---------------------------------------------------------------------------------------------
// The file as written. `deny_unknown_fields` everywhere: a typo must not silently disable a source.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    catsyslog: Option<RawSysLog>,
    #[serde(default)]
    collectlogs: Vec<RawCollectLog>,
    kafkaconfig: Option<RawKafka>,
    #[serde(default)]
    etcdconfig: Vec<String>,
    #[serde(default)]
    etcdkeys: Vec<String>,
    etcd_allowed_paths: Option<Vec<String>>,
    etcd_denied_paths: Option<Vec<String>>,
    etcd_auth: Option<RawEtcdAuth>,
    etcd_tls: Option<RawTls>,
    fleet_prefix: Option<String>,
    hostname: Option<String>,
    rate_limit: Option<RawSize>,
    fields: Option<std::collections::BTreeMap<String, crate::labels::RawValue>>,
    data_dir: Option<String>,
    start_position: Option<StartPosition>,
    max_line_bytes: Option<RawSize>,
    #[serde(default, deserialize_with = "duration_text")]
    rotate_wait: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    poll_interval: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    batch_wait: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    checkpoint_interval: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    ignore_older: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    close_inactive: Option<String>,
    max_open_files: Option<u64>,
    max_tails: Option<u64>,
    follow_symlinks: Option<bool>,
    #[serde(default, deserialize_with = "duration_text")]
    scan_frequency: Option<String>,
    metrics: Option<RawMetrics>,
    pid_file: Option<String>,
    format: Option<String>,
    delivery: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetrics {
    path: Option<String>,
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEtcdAuth {
    username: String,
    /// In config.yaml (the origin's way), or better in a file of its own.
    password: Option<String>,
    password_file: Option<String>,
}

/// `kafkaconfig.tls` and `etcd_tls`: each file optional (`tls: {}` is TLS with the system's CAs).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    ca_file: Option<String>,
    cert_file: Option<String>,
    key_file: Option<String>,
    verify_hostname: Option<bool>,
}

/// `kafkaconfig.sasl`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSasl {
    mechanism: Option<String>,
    username: Option<String>,
    password_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSysLog {
    logpath: Option<String>,
    loglevel: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCollectLog {
    logpath: Option<String>,
    logtopic: Option<String>,
    #[serde(default)]
    exclude: Vec<String>,
    format: Option<String>,
    multiline: Option<crate::multiline::Raw>,
    follow_symlinks: Option<bool>,
    #[serde(default)]
    include_lines: Vec<String>,
    #[serde(default)]
    exclude_lines: Vec<String>,
    fields: Option<std::collections::BTreeMap<String, crate::labels::RawValue>>,
    rate_limit: Option<RawSize>,
    encoding: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKafka {
    kafkaaddr: Option<String>,
    acks: Option<RawScalar>,
    compression: Option<String>,
    linger: Option<String>,
    batch_size: Option<RawSize>,
    message_key: Option<MessageKey>,
    queue_max_messages: Option<u64>,
    queue_max_bytes: Option<RawSize>,
    flush_timeout: Option<String>,
    tls: Option<RawTls>,
    sasl: Option<RawSasl>,
    headers: Option<Vec<String>>,
    transactional_id: Option<String>,
    #[serde(default, deserialize_with = "duration_text")]
    transaction_interval: Option<String>,
    positions_topic: Option<String>,
    #[serde(default)]
    properties: BTreeMap<String, RawScalar>,
}

/// A YAML scalar that librdkafka wants as a string (`acks: 1`, `linger.ms: 5`, `x: true`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawScalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl RawScalar {
    fn to_property(&self) -> String {
        match self {
            RawScalar::Bool(b) => b.to_string(),
            RawScalar::Int(i) => i.to_string(),
            RawScalar::Float(x) => x.to_string(),
            RawScalar::Text(s) => s.clone(),
        }
    }
}

/// Default `max_tails`.
pub const DEFAULT_MAX_TAILS: usize = 10_000;
/// Default cap on one line: longer lines are split into pieces of at most this many bytes.
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
/// Default bound of the producer's queue, in messages and in bytes (see README, "Memory").
pub const DEFAULT_QUEUE_MAX_MESSAGES: u64 = 100_000;
pub const DEFAULT_QUEUE_MAX_BYTES: u64 = 64 * 1024 * 1024;

impl Config {
    /// Reads and validates `path`. Relative paths inside it resolve against its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = absolute(path, &std::env::current_dir().unwrap_or_else(|_| "/".into()));
        let text = std::fs::read_to_string(&file)
            .map_err(|e| ConfigError { file: file.clone(), problems: vec![format!("cannot read the file: {e}")] })?;
        Config::parse(&text, &file)
    }

    /// Parses `text` as the contents of `file` (used for relative-path resolution and messages).
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let fail = |problems: Vec<String>| ConfigError { file: file.to_path_buf(), problems };
        if text.trim().is_empty() {
            return Err(fail(vec!["the file is empty".into()]));
        }
        let raw: RawConfig = serde_yaml::from_str(text).map_err(|e| fail(vec![e.to_string()]))?;
        let base = file.parent().unwrap_or(Path::new("/")).to_path_buf();
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let mut cfg = resolve(raw, file, &base, &mut problems, &mut warnings);
        cfg.warnings = warnings;
        if problems.is_empty() {
            Ok(cfg)
        } else {
            Err(fail(problems))
        }
    }
}

/// The raw file resolved into a `Config`, every problem named by its field.
///
/// Long on purpose: one short block per top-level key (the sections have functions of their
/// own), read top to bottom against the README's table.
fn resolve(raw: RawConfig, file: &Path, base: &Path, problems: &mut Vec<String>, warnings: &mut Vec<String>) -> Config {
    let log = resolve_log(raw.catsyslog, base, problems);
    let hostname = resolve_hostname(raw.hostname.as_deref(), problems);
    let fields = raw.fields.as_ref().map(crate::labels::Fields::check).transpose().unwrap_or_else(|why| {
        problems.push(format!("fields: {why}"));
        None
    });
    let defaults = crate::labels::Defaults { host: hostname.clone(), fields: fields.unwrap_or_default() };
    let sources = resolve_sources(&raw.collectlogs, raw.follow_symlinks.unwrap_or(false), &defaults, base, problems);
    let rate_limit = raw
        .rate_limit
        .as_ref()
        .and_then(|r| crate::selector::check_rate_limit(r).map_err(|e| problems.push(format!("rate_limit: {e}"))).ok());

    let max_line_bytes = resolve_max_line_bytes(raw.max_line_bytes, problems);
    let transactions = raw.kafkaconfig.as_ref().map(|k| RawTransactions {
        transactional_id: k.transactional_id.clone(),
        interval: k.transaction_interval.clone(),
        positions_topic: k.positions_topic.clone(),
    });
    let mut kafka = resolve_kafka(raw.kafkaconfig, max_line_bytes, base, problems, warnings);

    let etcd = resolve_etcd(
        EtcdRaw {
            fleet_prefix: raw.fleet_prefix,
            endpoints: raw.etcdconfig,
            // One config.yaml for a fleet: `{host}` in a key is this host's name.
            keys: raw.etcdkeys.iter().map(|k| k.replace("{host}", &hostname)).collect(),
            allowed: raw.etcd_allowed_paths,
            denied: raw.etcd_denied_paths,
            auth: raw.etcd_auth,
            tls: raw.etcd_tls,
        },
        base,
        problems,
        warnings,
    );

    let data_dir = absolute(Path::new(raw.data_dir.as_deref().unwrap_or("./data")), base);
    if let Some(t) = transactions {
        resolve_delivery(raw.delivery.as_deref(), t, &mut kafka, &hostname, &data_dir, problems);
    }
    let rotate_wait = duration_field("rotate_wait", raw.rotate_wait.as_deref(), "5s", problems);
    let poll_interval = duration_field("poll_interval", raw.poll_interval.as_deref(), "1s", problems);
    let checkpoint_interval =
        duration_field("checkpoint_interval", raw.checkpoint_interval.as_deref(), "200ms", problems);
    // 0, measured (BENCHMARKS.md, issue 29, one run beside a soak): with the looker reading
    // parked files, 100 files at 1,000 lines/s each cost 28.7% of a core at a p99 of 1.00x the
    // raw producer's, where 20ms cost 31.8% at 1.55x; 1,000 files at 10 lines/s 30.9% and 29.3%.
    let batch_wait = duration_field("batch_wait", raw.batch_wait.as_deref(), "0", problems);
    if batch_wait > Duration::from_secs(1) {
        problems.push("batch_wait: at most 1s (it adds up to that much latency)".into());
    }
    if poll_interval.is_zero() {
        problems.push("poll_interval: must be more than 0".into());
    }
    let ignore_older = raw.ignore_older.as_deref().map(|v| duration_field("ignore_older", Some(v), "0s", problems));
    let close_inactive = duration_field("close_inactive", raw.close_inactive.as_deref(), "5m", problems);
    if close_inactive < Duration::from_secs(1) {
        problems.push("close_inactive: must be at least 1s".into());
    }
    // 60s, as Fluent Bit's refresh_interval: directory events find new files at once, so the scan
    // is a safety net, and it costs in proportion to the files (10,000 files: ~55 ms a scan,
    // 0.55% of a core every 10 s, the whole of the idle agent's cost; issue 15).
    let scan_frequency = duration_field("scan_frequency", raw.scan_frequency.as_deref(), "60s", problems);
    if scan_frequency < Duration::from_millis(100) {
        problems.push("scan_frequency: must be at least 100ms".into());
    }
    // 10,000: the 10,000-file benchmark (scenario 10) runs at the default, and it stays below what
    // took the agent down: a value of 10,000 globs made 13,414 threads, and it aborted.
    let max_tails = raw.max_tails.unwrap_or(DEFAULT_MAX_TAILS as u64) as usize;
    if max_tails == 0 {
        problems.push("max_tails: must be at least 1".into());
    }
    if raw.max_open_files == Some(0) {
        problems.push("max_open_files: must be at least 1 (leave the key out to derive it from ulimit -n)".into());
    }
    let metrics = resolve_metrics(raw.metrics, base, problems);
    let pid_file = optional_path("pid_file", raw.pid_file.as_deref(), base, "for none", problems);
    let format = raw.format.as_deref().map_or(Ok(Format::Raw), Format::parse).unwrap_or_else(|why| {
        problems.push(format!("format: {why}"));
        Format::Raw
    });

    Config {
        file: file.to_path_buf(),
        log,
        sources: sources.into_iter().map(Arc::new).collect(),
        kafka,
        etcd,
        data_dir,
        start_position: raw.start_position.unwrap_or(StartPosition::End),
        max_line_bytes,
        rotate_wait,
        poll_interval,
        batch_wait,
        checkpoint_interval,
        ignore_older: ignore_older.filter(|d| !d.is_zero()),
        format,
        close_inactive,
        max_open_files: raw.max_open_files.map(|n| n as usize),
        max_tails,
        scan_frequency,
        metrics,
        pid_file,
        hostname,
        rate_limit,
        defaults,
        warnings: Vec::new(),
    }
}

/// `kafkaconfig.headers`: a list of `host`, `path`, `offset`; all three when absent (issue 17:
/// a fleet's consumers must tell hosts apart), `[]` for none. They cost about 1.7x the CPU per
/// line of a catch-up of 120-byte lines (librdkafka allocates, encodes and frees every header of
/// every message, and each line carries ~60 more bytes; BENCHMARKS.md); `[]` takes that back.
fn kafka_headers(list: Option<&[String]>, problems: &mut Vec<String>) -> Headers {
    let Some(list) = list else {
        return Headers { host: true, path: true, offset: true };
    };
    let mut h = Headers::default();
    for (i, name) in list.iter().enumerate() {
        match name.as_str() {
            "host" => h.host = true,
            "path" => h.path = true,
            "offset" => h.offset = true,
            other => problems.push(format!("kafkaconfig.headers[{i}]: {other:?} is not one of host, path, offset")),
        }
    }
    h
}

/// `hostname`, or the system's host name; checked, since it goes into etcd keys and headers.
fn resolve_hostname(raw: Option<&str>, problems: &mut Vec<String>) -> String {
    let name = match raw {
        Some(n) => n.to_string(),
        None => crate::host::system_hostname().unwrap_or_else(|| "localhost".to_string()),
    };
    if name.is_empty()
        || name.len() > 253
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
    {
        problems.push(format!("hostname: {name:?} is not a host name (letters, digits, '.', '-', '_')"));
    }
    name
}

/// `catsyslog`: where the agent logs, and how much.
fn resolve_log(raw: Option<RawSysLog>, base: &Path, problems: &mut Vec<String>) -> LogSettings {
    let sys = raw.unwrap_or(RawSysLog { logpath: None, loglevel: None });
    let level = match sys.loglevel.as_deref().unwrap_or("info").to_ascii_lowercase().as_str() {
        "off" => log::LevelFilter::Off,
        "error" => log::LevelFilter::Error,
        "warn" | "warning" => log::LevelFilter::Warn,
        "info" => log::LevelFilter::Info,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        other => {
            problems.push(format!("catsyslog.loglevel: {other:?} is not one of off, error, warn, info, debug, trace"));
            log::LevelFilter::Info
        }
    };
    let path = optional_path("catsyslog.logpath", sys.logpath.as_deref(), base, "to log to stderr only", problems);
    LogSettings { path, level }
}

/// `max_line_bytes`: 16 bytes .. 64 MiB.
fn resolve_max_line_bytes(raw: Option<RawSize>, problems: &mut Vec<String>) -> usize {
    match raw {
        None => DEFAULT_MAX_LINE_BYTES,
        Some(s) => match parse_size_raw(&s) {
            Ok(n) if (16..=64 * 1024 * 1024).contains(&n) => n as usize,
            Ok(n) => {
                problems.push(format!("max_line_bytes: {n} is outside 16 bytes .. 64MiB"));
                DEFAULT_MAX_LINE_BYTES
            }
            Err(e) => {
                problems.push(format!("max_line_bytes: {e}"));
                DEFAULT_MAX_LINE_BYTES
            }
        },
    }
}

/// The etcd keys of config.yaml, as written.
struct EtcdRaw {
    fleet_prefix: Option<String>,
    endpoints: Vec<String>,
    keys: Vec<String>,
    allowed: Option<Vec<String>>,
    denied: Option<Vec<String>>,
    auth: Option<RawEtcdAuth>,
    tls: Option<RawTls>,
}

/// A list of paths or patterns (`etcd_allowed_paths`, `etcd_denied_paths`), each made absolute;
/// an empty or invalid one is named by its index.
fn pattern_list(field: &str, list: Vec<String>, base: &Path, problems: &mut Vec<String>) -> Vec<String> {
    let mut out = Vec::new();
    for (i, p) in list.iter().enumerate() {
        if p.trim().is_empty() {
            problems.push(format!("{field}[{i}]: empty path"));
        } else if let Err(e) = check_pattern(p) {
            problems.push(format!("{field}[{i}]: {e}"));
        } else {
            out.push(absolute(Path::new(p), base).to_string_lossy().into_owned());
        }
    }
    out
}

/// An allowed path of `/` or a top-level directory gives etcd's writers nearly every file.
fn warn_if_broad(allowlist: &Allowlist, warnings: &mut Vec<String>) {
    if let Some(i) = allowlist.allowed.iter().position(|a| Path::new(a).parent().is_none_or(|p| p == Path::new("/"))) {
        warnings.push(format!(
            "etcd_allowed_paths[{i}]: {:?} lets whoever can write the etcd keys read every file under it that the agent \
             can read; name the log directories instead",
            allowlist.allowed[i]
        ));
    }
}

/// `etcdconfig`, `etcdkeys`, `etcd_allowed_paths`, `etcd_denied_paths`, `etcd_auth` and
/// `etcd_tls`.
/// `etcd_auth`: the user, and the password given inline or read from its file.
fn etcd_credentials(
    a: RawEtcdAuth,
    base: &Path,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Credentials> {
    let password = match (a.password, a.password_file) {
        (Some(p), None) => Secret::new(p),
        (None, Some(f)) => {
            let path = absolute(Path::new(&f), base);
            read_secret("etcd_auth.password_file", &path, warnings).map_err(|e| problems.push(e)).ok()?
        }
        _ => {
            problems.push("etcd_auth: give one of password, password_file".into());
            return None;
        }
    };
    Some(Credentials { user: a.username, password })
}

fn resolve_etcd(raw: EtcdRaw, base: &Path, problems: &mut Vec<String>, warnings: &mut Vec<String>) -> EtcdSettings {
    let allowlist = Allowlist {
        allowed: pattern_list(
            "etcd_allowed_paths",
            raw.allowed.unwrap_or_else(|| vec!["/var/log".into()]),
            base,
            problems,
        ),
        denied: pattern_list(
            "etcd_denied_paths",
            raw.denied.unwrap_or_else(|| DEFAULT_DENIED.iter().map(|s| s.to_string()).collect()),
            base,
            problems,
        ),
    };
    warn_if_broad(&allowlist, warnings);
    let credentials = raw.auth.and_then(|a| etcd_credentials(a, base, problems, warnings));
    if raw.tls.as_ref().is_some_and(|t| t.verify_hostname.is_some()) {
        problems.push("etcd_tls.verify_hostname: not supported (etcd's certificates are always checked)".into());
    }
    let tls = raw.tls.map(|t| tls_files("etcd_tls", t, base, problems, warnings));
    let fleet_prefix = raw.fleet_prefix.unwrap_or_else(|| "logcatch/agents".into()).trim_end_matches('/').to_string();
    let tls_digest = tls.as_ref().map_or(0, |t| {
        files_digest([&t.ca_file, &t.cert_file, &t.key_file].into_iter().flatten().map(PathBuf::as_path))
    });
    let mut etcd = EtcdSettings {
        endpoints: raw.endpoints.clone(),
        credentials,
        keys: Vec::new(),
        allowlist,
        tls,
        fleet_prefix,
        tls_digest,
    };
    for (i, e) in raw.endpoints.iter().enumerate() {
        if e.trim().is_empty() {
            problems.push(format!("etcdconfig[{i}]: empty endpoint"));
        } else if etcd.tls.is_some() && !e.trim().starts_with("https://") {
            warnings.push(format!("etcdconfig[{i}]: {e:?} is not https://, so etcd_tls does not apply to it"));
        }
    }
    for (i, k) in raw.keys.iter().enumerate() {
        if k.is_empty() {
            problems.push(format!("etcdkeys[{i}]: empty key"));
        } else if !etcd.keys.contains(k) {
            etcd.keys.push(k.clone());
        }
    }
    if !etcd.keys.is_empty() && etcd.endpoints.is_empty() {
        problems.push("etcdconfig: etcdkeys are set but no etcd endpoint is listed".into());
    }
    etcd
}

/// The files of a `tls` section, made absolute and checked (`field` names the section).
fn tls_files(
    field: &str,
    raw: RawTls,
    base: &Path,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> TlsFiles {
    let mut file = |key: &str, value: Option<String>, private: bool| {
        let path = absolute(Path::new(&value?), base);
        check_file(&format!("{field}.{key}"), &path, private, warnings).map_err(|e| problems.push(e)).ok()?;
        Some(path)
    };
    let files = TlsFiles {
        ca_file: file("ca_file", raw.ca_file, false),
        cert_file: file("cert_file", raw.cert_file, false),
        key_file: file("key_file", raw.key_file, true),
    };
    if files.cert_file.is_some() != files.key_file.is_some() {
        problems.push(format!("{field}: cert_file and key_file go together (a client certificate and its key)"));
    }
    files
}

/// `kafkaconfig.tls` and `kafkaconfig.sasl`, as librdkafka settings (the secrets apart).
///
/// Long on purpose: TLS, then SASL, each key checked where its librdkafka property is set.
fn kafka_security(
    tls: Option<RawTls>,
    sasl: Option<RawSasl>,
    base: &Path,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> (BTreeMap<String, String>, BTreeMap<String, Secret>) {
    let (mut props, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    let protocol = match (&tls, &sasl) {
        (None, None) => return (props, secrets),
        (Some(_), None) => "ssl",
        (None, Some(_)) => "sasl_plaintext",
        (Some(_), Some(_)) => "sasl_ssl",
    };
    props.insert("security.protocol".to_string(), protocol.to_string());
    if let Some(t) = tls {
        let verify = t.verify_hostname.unwrap_or(true);
        let files = tls_files("kafkaconfig.tls", t, base, problems, warnings);
        let location = |p: Option<PathBuf>| p.map(|p| p.to_string_lossy().into_owned());
        // No ca_file: the system's store, which librdkafka's bundled OpenSSL finds by probing
        // the usual places (/etc/ssl/certs, /etc/pki/tls...): the static binary has none built in.
        props.insert("ssl.ca.location".into(), location(files.ca_file).unwrap_or_else(|| "probe".into()));
        if let (Some(cert), Some(key)) = (location(files.cert_file), location(files.key_file)) {
            props.insert("ssl.certificate.location".into(), cert);
            props.insert("ssl.key.location".into(), key);
        }
        props.insert("ssl.endpoint.identification.algorithm".into(), if verify { "https" } else { "none" }.into());
    }
    if let Some(s) = sasl {
        let mechanism = s.mechanism.as_deref().unwrap_or("").to_ascii_uppercase();
        match mechanism.as_str() {
            "PLAIN" | "SCRAM-SHA-256" | "SCRAM-SHA-512" => {
                props.insert("sasl.mechanism".into(), mechanism);
            }
            "GSSAPI" => problems.push(
                "kafkaconfig.sasl.mechanism: GSSAPI (Kerberos) is not built in (see README, \"Secured Kafka and etcd\")".into(),
            ),
            "" => problems.push("kafkaconfig.sasl.mechanism: missing (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)".into()),
            other => problems.push(format!(
                "kafkaconfig.sasl.mechanism: {other:?} is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"
            )),
        }
        match s.username.as_deref() {
            Some(u) if !u.is_empty() => {
                props.insert("sasl.username".into(), u.to_string());
            }
            _ => problems.push("kafkaconfig.sasl.username: missing".into()),
        }
        match s.password_file {
            Some(f) => {
                let path = absolute(Path::new(&f), base);
                match read_secret("kafkaconfig.sasl.password_file", &path, warnings) {
                    Ok(secret) => {
                        secrets.insert("sasl.password".to_string(), secret);
                    }
                    Err(e) => problems.push(e),
                }
            }
            None => problems.push("kafkaconfig.sasl.password_file: missing (the password is read from a file)".into()),
        }
    }
    (props, secrets)
}

/// `metrics`: the Prometheus text file and how often it is written.
fn resolve_metrics(raw: Option<RawMetrics>, base: &Path, problems: &mut Vec<String>) -> MetricsSettings {
    let raw = raw.unwrap_or(RawMetrics { path: None, interval: None });
    let interval = duration_field("metrics.interval", raw.interval.as_deref(), "10s", problems);
    if interval < Duration::from_millis(100) {
        problems.push("metrics.interval: must be at least 100ms".into());
    }
    let path = optional_path("metrics.path", raw.path.as_deref(), base, "for no metrics file", problems);
    MetricsSettings { path, interval }
}

/// etcd's user and password (`etcd_auth`): owned by the config, used by the etcd client.
#[derive(Debug, Clone, PartialEq)]
pub struct Credentials {
    pub user: String,
    pub password: Secret,
}

/// `collectlogs`, each entry checked by `Selector::build` and its problems named by field.
fn resolve_sources(
    entries: &[RawCollectLog],
    follow_symlinks: bool,
    defaults: &crate::labels::Defaults,
    base: &Path,
    problems: &mut Vec<String>,
) -> Vec<Selector> {
    let mut sources: Vec<Selector> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let (path, topic) = (entry.logpath.as_deref().unwrap_or(""), entry.logtopic.as_deref().unwrap_or(""));
        let entry = Entry {
            path,
            topic,
            exclude: &entry.exclude,
            format: entry.format.as_deref(),
            multiline: entry.multiline.as_ref(),
            include_lines: &entry.include_lines,
            exclude_lines: &entry.exclude_lines,
            fields: entry.fields.as_ref(),
            rate_limit: entry.rate_limit.as_ref(),
            encoding: entry.encoding.as_deref(),
            follow_symlinks: entry.follow_symlinks.unwrap_or(follow_symlinks),
            defaults,
        };
        match Selector::build(&entry, base) {
            Ok(sel) if !sources.contains(&sel) => sources.push(sel),
            Ok(_) => {}
            Err(errors) => problems.extend(errors.into_iter().map(|e| match e {
                SelectorError::Path(why) => format!("collectlogs[{i}].logpath: {why}"),
                SelectorError::Topic(why) => format!("collectlogs[{i}].logtopic: {why}"),
                SelectorError::Exclude { index, why } => format!("collectlogs[{i}].exclude[{index}]: {why}"),
                SelectorError::Format(why) => format!("collectlogs[{i}].format: {why}"),
                SelectorError::Multiline(why) => format!("collectlogs[{i}].multiline: {why}"),
                SelectorError::Filter(why) => format!("collectlogs[{i}].{why}"),
                SelectorError::Fields(why) => format!("collectlogs[{i}].fields: {why}"),
                SelectorError::RateLimit(why) => format!("collectlogs[{i}].rate_limit: {why}"),
                SelectorError::Encoding(why) => format!("collectlogs[{i}].encoding: {why}"),
            })),
        }
    }
    sources
}

/// Room around a line in librdkafka's `message.max.bytes`: the record's key, headers and
/// framing (a key is a path: at most 4 KiB).
const MESSAGE_OVERHEAD: usize = 64 * 1024;

/// Long on purpose: one short block per `kafkaconfig` key, in the README table's order.
fn resolve_kafka(
    raw: Option<RawKafka>,
    max_line_bytes: usize,
    base: &Path,
    problems: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> KafkaSettings {
    let Some(mut raw) = raw else {
        problems.push("kafkaconfig: missing (kafkaconfig.kafkaaddr names the brokers)".into());
        return KafkaSettings {
            brokers: String::new(),
            message_key: MessageKey::Path,
            properties: BTreeMap::new(),
            flush_timeout: Duration::from_secs(10),
            headers: Headers::default(),
            secrets: BTreeMap::new(),
            exactly_once: None,
            files_digest: 0,
        };
    };
    let brokers = kafka_brokers(raw.kafkaaddr.as_deref(), problems);
    let mut props = kafka_defaults(&brokers, max_line_bytes);
    let (security, mut secrets) = kafka_security(raw.tls.take(), raw.sasl.take(), base, problems, warnings);
    props.extend(security);
    let mut set = |k: &str, v: String| {
        props.insert(k.to_string(), v);
    };
    if let Some(a) = &raw.acks {
        let v = a.to_property();
        match v.as_str() {
            "all" | "-1" | "0" | "1" => set("acks", v),
            _ => problems.push(format!("kafkaconfig.acks: {v:?} is not one of all, 1, 0")),
        }
    }
    if let Some(c) = &raw.compression {
        match c.as_str() {
            // All built in (zstd statically, with rdkafka's `zstd` feature).
            "none" | "gzip" | "snappy" | "lz4" | "zstd" => set("compression.type", c.clone()),
            _ => problems.push(format!("kafkaconfig.compression: {c:?} is not one of none, gzip, snappy, lz4, zstd")),
        }
    }
    if let Some(l) = &raw.linger {
        match parse_duration(l) {
            Ok(d) => set("linger.ms", d.as_millis().to_string()),
            Err(e) => problems.push(format!("kafkaconfig.linger: {e}")),
        }
    }
    if let Some(b) = &raw.batch_size {
        match parse_size_raw(b) {
            Ok(n) => set("batch.size", n.to_string()),
            Err(e) => problems.push(format!("kafkaconfig.batch_size: {e}")),
        }
    }
    if let Some(n) = raw.queue_max_messages {
        if n == 0 {
            problems.push("kafkaconfig.queue_max_messages: must be more than 0".into());
        }
        set("queue.buffering.max.messages", n.to_string());
    }
    if let Some(b) = &raw.queue_max_bytes {
        match parse_size_raw(b) {
            Ok(n) if n >= 1024 => set("queue.buffering.max.kbytes", (n / 1024).to_string()),
            Ok(_) => problems.push("kafkaconfig.queue_max_bytes: must be at least 1KiB".into()),
            Err(e) => problems.push(format!("kafkaconfig.queue_max_bytes: {e}")),
        }
    }
    let flush_timeout = duration_field("kafkaconfig.flush_timeout", raw.flush_timeout.as_deref(), "10s", problems);
    for (k, v) in &raw.properties {
        if k == "bootstrap.servers" {
            problems.push("kafkaconfig.properties.bootstrap.servers: set kafkaconfig.kafkaaddr instead".into());
            continue;
        }
        if k.contains("password") || k.contains("secret") {
            // The escape hatch may carry a secret too: kept apart like the others.
            secrets.insert(k.clone(), Secret::new(v.to_property()));
            continue;
        }
        set(k, v.to_property());
    }
    KafkaSettings {
        brokers,
        message_key: raw.message_key.unwrap_or(MessageKey::Path),
        flush_timeout,
        headers: kafka_headers(raw.headers.as_deref(), problems),
        secrets,
        exactly_once: None, // set by resolve_delivery, which knows the host and the data_dir
        files_digest: files_digest(
            props
                .iter()
                .filter(|(k, v)| k.starts_with("ssl.") && k.ends_with(".location") && *v != "probe")
                .map(|(_, v)| Path::new(v)),
        ),
        properties: props,
    }
}

/// A digest of what the files at `paths` hold now (an unreadable one counts as its error): tells
/// a file renewed in place from the one read before. Compared within one process only.
fn files_digest<'a>(paths: impl Iterator<Item = &'a Path>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for path in paths {
        path.hash(&mut h);
        match std::fs::read(path) {
            Ok(bytes) => bytes.hash(&mut h),
            Err(e) => e.kind().to_string().hash(&mut h),
        }
    }
    h.finish()
}

/// The exactly-once keys of `kafkaconfig`, kept for `resolve_delivery`.
struct RawTransactions {
    transactional_id: Option<String>,
    interval: Option<String>,
    positions_topic: Option<String>,
}

/// `delivery`: `at_least_once` (the default) or `exactly_once`, which makes the producer
/// transactional (librdkafka's `transactional.id`, `transaction.timeout.ms`).
fn resolve_delivery(
    delivery: Option<&str>,
    raw: RawTransactions,
    kafka: &mut KafkaSettings,
    hostname: &str,
    data_dir: &Path,
    problems: &mut Vec<String>,
) {
    let asked = raw.transactional_id.is_some() || raw.interval.is_some() || raw.positions_topic.is_some();
    match delivery.unwrap_or("at_least_once") {
        "at_least_once" => {
            if asked {
                problems.push(
                    "kafkaconfig.transactional_id/transaction_interval/positions_topic: only with delivery: exactly_once"
                        .into(),
                );
            }
            return;
        }
        "exactly_once" => {}
        other => {
            problems.push(format!("delivery: {other:?} is not one of at_least_once, exactly_once"));
            return;
        }
    }
    let transactional_id = match raw.transactional_id {
        Some(id) if id.trim().is_empty() => {
            problems.push("kafkaconfig.transactional_id: empty".into());
            return;
        }
        Some(id) => id,
        None => format!(
            "logcatch-{hostname}-{:08x}",
            crate::fingerprint::fnv1a(data_dir.as_os_str().as_encoded_bytes()) as u32
        ),
    };
    let interval = duration_field("kafkaconfig.transaction_interval", raw.interval.as_deref(), "100ms", problems);
    if interval < Duration::from_millis(10) || interval > Duration::from_secs(60) {
        problems.push("kafkaconfig.transaction_interval: between 10ms and 60s".into());
    }
    let positions_topic = raw.positions_topic.unwrap_or_else(|| "logcatch-positions".into());
    if let Err(why) = crate::selector::check_topic(&positions_topic) {
        problems.push(format!("kafkaconfig.positions_topic: {why}"));
    }
    let props = &mut kafka.properties;
    props.insert("transactional.id".into(), transactional_id.clone());
    // A transaction left open by a long broker outage is aborted by the broker after this long;
    // the agent then aborts too and sends the same lines again in a new one.
    let timeout = props.entry("transaction.timeout.ms".into()).or_insert_with(|| "60000".into());
    let timeout = transaction_timeout(timeout, interval, problems);
    if props.get("acks").is_some_and(|a| a != "all" && a != "-1") {
        problems.push("kafkaconfig.acks: exactly_once needs acks: all".into());
    }
    kafka.exactly_once = Some(ExactlyOnce { transactional_id, interval, positions_topic, timeout });
}

/// librdkafka's `transaction.timeout.ms` (`text`), which must be longer than the transaction
/// interval: the broker aborts a transaction open longer, and would abort every one.
fn transaction_timeout(text: &str, interval: Duration, problems: &mut Vec<String>) -> Duration {
    match text.parse::<u64>() {
        Ok(ms) if Duration::from_millis(ms) > interval => Duration::from_millis(ms),
        Ok(_) => {
            problems.push(format!(
                "kafkaconfig.properties.transaction.timeout.ms: must be longer than transaction_interval ({interval:?}): \
                 the broker would abort every transaction"
            ));
            Duration::from_secs(60)
        }
        Err(_) => {
            problems.push(format!("kafkaconfig.properties.transaction.timeout.ms: {text:?} is not a number of ms"));
            Duration::from_secs(60)
        }
    }
}

/// `kafkaconfig.kafkaaddr`: a comma-separated list of host:port.
fn kafka_brokers(list: Option<&str>, problems: &mut Vec<String>) -> String {
    match list.map(str::trim) {
        None | Some("") => {
            problems.push("kafkaconfig.kafkaaddr: missing or empty".into());
            String::new()
        }
        Some(list) => {
            let parts: Vec<&str> = list.split(',').map(str::trim).collect();
            for p in &parts {
                if p.is_empty() || !p.contains(':') {
                    problems.push(format!("kafkaconfig.kafkaaddr: {p:?} is not host:port"));
                }
            }
            parts.join(",")
        }
    }
}

/// librdkafka's settings before the config's own keys and `properties` apply.
fn kafka_defaults(brokers: &str, max_line_bytes: usize) -> BTreeMap<String, String> {
    let mut props: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        props.insert(k.to_string(), v);
    };
    // Defaults: every replica acknowledges, idempotent (no duplicates from librdkafka's own
    // retries, order kept per partition), and no local message timeout: a line waits for the
    // broker for as long as it takes instead of being failed after 5 minutes.
    set("bootstrap.servers", brokers.to_string());
    set("acks", "all".into());
    set("enable.idempotence", "true".into());
    set("message.timeout.ms", "0".into());
    set("linger.ms", "5".into());
    set("compression.type", "none".into());
    set("queue.buffering.max.messages", DEFAULT_QUEUE_MAX_MESSAGES.to_string());
    set("queue.buffering.max.kbytes", (DEFAULT_QUEUE_MAX_BYTES / 1024).to_string());
    // Follows max_line_bytes, so the longest piece a tail hands over fits librdkafka's own limit
    // (at librdkafka's default, a 2 MB line under `max_line_bytes: 4MiB` is refused at `send` for
    // ever). A broker with a smaller limit refuses it in the delivery report: given
    // up with an error, nothing else held up (README, "Lines Kafka refuses").
    set("message.max.bytes", (max_line_bytes + MESSAGE_OVERHEAD).to_string());
    set("allow.auto.create.topics", "false".into());
    // Connect to the brokers as soon as they are known: with lazy ("sparse") connections, the
    // idempotent producer waits for its 500 ms timer to pick a broker for its producer id, and
    // no line is sent for 0.5 to 1 s after every start (measured against tansu: 10 ms instead).
    set("enable.sparse.connections", "false".into());
    props
}

/// An optional path key: absent is None, empty is a problem, anything else resolves against
/// `base`. `absent` says what leaving the key out means.
fn optional_path(
    field: &str,
    value: Option<&str>,
    base: &Path,
    absent: &str,
    problems: &mut Vec<String>,
) -> Option<PathBuf> {
    match value {
        Some("") => {
            problems.push(format!("{field}: empty (leave the key out {absent})"));
            None
        }
        Some(p) => Some(absolute(Path::new(p), base)),
        None => None,
    }
}

fn duration_field(name: &str, value: Option<&str>, default: &str, problems: &mut Vec<String>) -> Duration {
    match parse_duration(value.unwrap_or(default)) {
        Ok(d) => d,
        Err(e) => {
            problems.push(format!("{name}: {e}"));
            parse_duration(default).expect("default durations parse")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/logcatch/config.yaml"))
    }

    const MINIMAL: &str = "kafkaconfig: {kafkaaddr: \"127.0.0.1:9092\"}\n";

    #[test]
    fn origin_keys_parse() {
        let cfg = parse(
            r#"
catsyslog: {logpath: ./logs/logcatch.log, loglevel: debug}
collectlogs:
  - {logpath: /var/log/app/app.log, logtopic: app}
  - {logpath: rel/b.log, logtopic: b_topic}
kafkaconfig: {kafkaaddr: "127.0.0.1:9092, 127.0.0.1:9093"}
etcdkeys: ["collectlogkey1"]
etcdconfig: ["localhost:2379", "localhost:3379"]
"#,
        )
        .unwrap();
        assert_eq!(cfg.log.path.as_deref(), Some(Path::new("/etc/logcatch/logs/logcatch.log")));
        assert_eq!(cfg.log.level, log::LevelFilter::Debug);
        assert_eq!(
            cfg.sources.iter().map(|s| Selector::clone(s)).collect::<Vec<_>>(),
            [
                Selector::file("/var/log/app/app.log".into(), "app"),
                Selector::file("/etc/logcatch/rel/b.log".into(), "b_topic")
            ]
        );
        assert_eq!(cfg.kafka.brokers, "127.0.0.1:9092,127.0.0.1:9093");
        assert_eq!(cfg.kafka.properties["acks"], "all");
        assert_eq!(cfg.kafka.properties["enable.idempotence"], "true");
        assert_eq!(cfg.kafka.properties["enable.sparse.connections"], "false");
        assert_eq!(cfg.etcd.keys, vec!["collectlogkey1"]);
        assert_eq!(cfg.etcd.allowlist.allowed, vec!["/var/log"]);
        assert!(cfg.etcd.allowlist.denied.contains(&"/var/log/auth.log*".to_string()));
        assert_eq!(cfg.data_dir, Path::new("/etc/logcatch/data"));
        assert_eq!(cfg.start_position, StartPosition::End);
        assert_eq!(cfg.max_line_bytes, DEFAULT_MAX_LINE_BYTES);
    }

    #[test]
    fn a_reload_plan_names_what_applies_now_and_what_waits_for_a_restart() {
        let base = "kafkaconfig: {kafkaaddr: \"h:1\"}\ncollectlogs: [{logpath: /a, logtopic: t}]\n";
        let old = parse(base).unwrap();
        assert_eq!(old.reload_plan(&old), ReloadPlan::default(), "nothing changed, nothing said");
        let new = parse(&format!(
            "{base}catsyslog: {{loglevel: debug}}\ncheckpoint_interval: 1s\nmetrics: {{path: /m.prom}}\nmax_line_bytes: 2MiB\n"
        ))
        .unwrap();
        let plan = old.reload_plan(&new);
        assert_eq!(plan.live, vec!["catsyslog.loglevel"]);
        // max_line_bytes also moves message.max.bytes: kafkaconfig changes with it.
        assert_eq!(plan.at_restart, vec!["kafkaconfig", "max_line_bytes", "checkpoint_interval", "metrics"]);
    }

    #[test]
    fn message_max_bytes_follows_max_line_bytes_unless_set() {
        let c = parse("kafkaconfig: {kafkaaddr: \"h:1\"}\nmax_line_bytes: 4MiB\n").unwrap();
        assert_eq!(c.kafka.properties["message.max.bytes"], (4 * 1024 * 1024 + 64 * 1024).to_string());
        let c = parse(
            "kafkaconfig: {kafkaaddr: \"h:1\", properties: {message.max.bytes: 1000000}}\nmax_line_bytes: 4MiB\n",
        )
        .unwrap();
        assert_eq!(c.kafka.properties["message.max.bytes"], "1000000", "the user's property wins");
    }

    #[test]
    fn unknown_key_is_named() {
        let err =
            parse("kafkaconfig: {kafkaaddr: \"h:1\"}\ncollectlogs:\n  - {logpath: /a, logtopik: x}\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("logtopik"), "{msg}");
        assert!(msg.contains("collectlogs[0]"), "{msg}");
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let err = parse(
            r#"
catsyslog: {loglevel: loud}
collectlogs:
  - {logpath: /a.log, logtopic: "bad topic"}
  - {logtopic: t}
kafkaconfig: {kafkaaddr: "nohost", compression: brotli, linger: soon}
max_line_bytes: 2
rotate_wait: 5 parsecs
etcdkeys: [k]
"#,
        )
        .unwrap_err();
        let all = err.problems.join("\n");
        for field in [
            "catsyslog.loglevel",
            "collectlogs[0].logtopic",
            "collectlogs[1].logpath",
            "kafkaconfig.kafkaaddr",
            "kafkaconfig.compression",
            "kafkaconfig.linger",
            "max_line_bytes",
            "rotate_wait",
            "etcdconfig",
        ] {
            assert!(all.contains(field), "{field} missing from:\n{all}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for text in ["", "   \n", "[1,2", "collectlogs: 5", ":::", "\0\0", "kafkaconfig: []", "- a\n- b"] {
            assert!(parse(text).is_err(), "{text:?} was accepted");
        }
    }

    #[test]
    fn kafka_properties_and_settings() {
        let cfg = parse(
            r#"
kafkaconfig:
  kafkaaddr: "h:1"
  acks: 1
  compression: gzip
  linger: 20ms
  message_key: topic
  queue_max_bytes: 8MiB
  properties: {client.id: agent7, socket.keepalive.enable: true}
"#,
        )
        .unwrap();
        let p = &cfg.kafka.properties;
        assert_eq!(p["acks"], "1");
        assert_eq!(p["compression.type"], "gzip");
        assert_eq!(p["linger.ms"], "20");
        assert_eq!(p["queue.buffering.max.kbytes"], "8192");
        assert_eq!(p["client.id"], "agent7");
        assert_eq!(p["socket.keepalive.enable"], "true");
        assert_eq!(cfg.kafka.message_key, MessageKey::Topic);
    }

    #[test]
    fn duplicate_entries_collapse() {
        let cfg = parse(&format!(
            "{MINIMAL}collectlogs:\n  - {{logpath: /a, logtopic: t}}\n  - {{logpath: /x/../a, logtopic: t}}\n"
        ))
        .unwrap();
        assert_eq!(cfg.sources.len(), 1);
    }

    #[test]
    fn globs_excludes_and_file_limits() {
        let cfg = parse(&format!(
            "{MINIMAL}collectlogs:\n  - {{logpath: app/*.log, logtopic: t, exclude: [\"debug-*\", old/*.log]}}\n\
             ignore_older: 24h\nclose_inactive: 1m\nmax_open_files: 200\nscan_frequency: 2s\n"
        ))
        .unwrap();
        let s = &cfg.sources[0];
        assert_eq!(s.pattern, Path::new("/etc/logcatch/app/*.log"));
        assert_eq!(s.exclude, vec!["/etc/logcatch/old/*.log", "debug-*"]);
        assert_eq!(cfg.ignore_older, Some(Duration::from_secs(86400)));
        assert_eq!(cfg.close_inactive, Duration::from_secs(60));
        assert_eq!(cfg.max_open_files, Some(200));
        assert_eq!(cfg.scan_frequency, Duration::from_secs(2));
        let defaults = parse(MINIMAL).unwrap();
        assert_eq!(
            (defaults.ignore_older, defaults.close_inactive, defaults.max_open_files),
            (None, Duration::from_secs(300), None)
        );
        let err = parse(&format!(
            "{MINIMAL}collectlogs:\n  - {{logpath: \"/l/[x.log\", logtopic: t}}\n  - {{logpath: /l/a.log, logtopic: t, exclude: [\"\"]}}\n\
             close_inactive: 10ms\nmax_open_files: 0\n"
        ))
        .unwrap_err();
        let all = err.problems.join("\n");
        for field in ["collectlogs[0].logpath", "collectlogs[1].exclude[0]", "close_inactive", "max_open_files"] {
            assert!(all.contains(field), "{field} missing from:\n{all}");
        }
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("24h").unwrap(), Duration::from_secs(86400));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert_eq!(parse_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("100").unwrap(), 100);
        assert!(parse_size("1 furlong").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn nul_in_path_is_rejected() {
        let err = parse(&format!("{MINIMAL}collectlogs:\n  - {{logpath: \"/a\\0b\", logtopic: t}}\n")).unwrap_err();
        assert!(err.to_string().contains("NUL"), "{err}");
    }

    #[test]
    fn absolute_folds_dots() {
        assert_eq!(absolute(Path::new("../x/./y"), Path::new("/a/b")), Path::new("/a/x/y"));
        assert_eq!(absolute(Path::new("/../../z"), Path::new("/a")), Path::new("/z"));
    }

    /// Issue 27: certificates renewed in place (config.yaml unchanged) are a change of the config,
    /// for Kafka (restart in place) and for etcd (live).
    #[test]
    fn a_certificate_renewed_in_place_is_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("ca.pem"), "the old CA").unwrap();
        std::fs::write(d.join("etcd-ca.pem"), "the old etcd CA").unwrap();
        let file = d.join("config.yaml");
        std::fs::write(
            &file,
            "kafkaconfig:\n  kafkaaddr: h:9093\n  tls: {ca_file: ca.pem}\ncollectlogs: []\n\
             etcdconfig: [\"https://e:2379\"]\netcdkeys: [k]\netcd_tls: {ca_file: etcd-ca.pem}\n",
        )
        .unwrap();
        let before = Config::load(&file).unwrap();
        assert_eq!(Config::load(&file).unwrap(), before, "the same files: no change");
        std::fs::write(d.join("ca.pem"), "the renewed CA").unwrap();
        let after = Config::load(&file).unwrap();
        assert!(before.reload_plan(&after).at_restart.contains(&"kafkaconfig"));
        std::fs::write(d.join("etcd-ca.pem"), "the renewed etcd CA").unwrap();
        let etcd = Config::load(&file).unwrap();
        assert_eq!(after.reload_plan(&etcd).live, vec!["etcdconfig/etcdkeys/etcd_*"]);
    }

    #[test]
    fn tls_and_sasl_map_onto_librdkafka_and_the_password_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        use std::os::unix::fs::PermissionsExt;
        for (name, mode) in [("ca.pem", 0o644), ("client.pem", 0o644), ("client.key", 0o640), ("kafka.pass", 0o600)] {
            std::fs::write(d.join(name), if name.ends_with("pass") { "hunter2\n" } else { "x" }).unwrap();
            std::fs::set_permissions(d.join(name), std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let text = format!(
            "kafkaconfig:\n  kafkaaddr: h:9093\n  tls: {{ca_file: ca.pem, cert_file: client.pem, key_file: client.key}}\n  \
             sasl: {{mechanism: scram-sha-512, username: lc, password_file: {}}}\n  compression: zstd\n",
            d.join("kafka.pass").display()
        );
        let c = Config::parse(&text, &d.join("config.yaml")).unwrap();
        let p = &c.kafka.properties;
        assert_eq!(p["security.protocol"], "sasl_ssl");
        assert_eq!(p["ssl.ca.location"], d.join("ca.pem").to_string_lossy());
        assert_eq!(p["ssl.key.location"], d.join("client.key").to_string_lossy());
        assert_eq!(p["ssl.endpoint.identification.algorithm"], "https");
        assert_eq!((p["sasl.mechanism"].as_str(), p["sasl.username"].as_str()), ("SCRAM-SHA-512", "lc"));
        assert_eq!(p["compression.type"], "zstd");
        assert_eq!(c.kafka.secrets["sasl.password"].expose(), "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"), "the config's Debug shows no password");
        assert!(c.warnings.len() == 1 && c.warnings[0].contains("kafkaconfig.tls.key_file"), "{:?}", c.warnings);

        let bad = "kafkaconfig:\n  kafkaaddr: h:9093\n  tls: {ca_file: /no/ca.pem, cert_file: client.pem}\n  \
                   sasl: {mechanism: GSSAPI}\netcd_auth: {username: u}\n";
        let e = Config::parse(bad, &d.join("config.yaml")).unwrap_err().to_string();
        for needle in [
            "kafkaconfig.tls.ca_file: cannot read /no/ca.pem",
            "kafkaconfig.tls: cert_file and key_file go together",
            "kafkaconfig.sasl.mechanism: GSSAPI (Kerberos) is not built in",
            "kafkaconfig.sasl.username: missing",
            "kafkaconfig.sasl.password_file: missing",
            "etcd_auth: give one of password, password_file",
        ] {
            assert!(e.contains(needle), "{needle} missing from:\n{e}");
        }
        let plain = Config::parse("kafkaconfig: {kafkaaddr: h:1, tls: {}}\n", &d.join("c.yaml")).unwrap();
        assert_eq!(plain.kafka.properties["security.protocol"], "ssl");
        assert_eq!(plain.kafka.properties["ssl.ca.location"], "probe", "tls: {{}} is the system's CAs");
        let hatch =
            Config::parse("kafkaconfig: {kafkaaddr: h:1, properties: {ssl.key.password: pw}}\n", &d.join("c.yaml"))
                .unwrap();
        assert!(
            !hatch.kafka.properties.contains_key("ssl.key.password")
                && hatch.kafka.secrets.contains_key("ssl.key.password")
        );
    }

    #[test]
    fn multiline_per_entry() {
        let ok = "kafkaconfig: {kafkaaddr: h:1}\ncollectlogs:\n\
                  - {logpath: /a.log, logtopic: t, multiline: java}\n\
                  - {logpath: /b.log, logtopic: t, multiline: {condition_pattern: '\\\\$', mode: continue_past, max_lines: 50, max_bytes: 64KiB, timeout: 2s}}\n";
        let c = parse(ok).unwrap();
        assert_eq!(c.sources[0].multiline, crate::multiline::preset("java"));
        let b = c.sources[1].multiline.as_ref().unwrap();
        assert_eq!(
            (b.mode, b.max_lines, b.max_bytes, b.timeout),
            (crate::multiline::Mode::ContinuePast, 50, 65536, Duration::from_secs(2))
        );
        for (entry, needle) in [
            ("multiline: cobol", "collectlogs[0].multiline: \"cobol\" is not one of java, python, go"),
            ("multiline: {condition_pattern: '(', mode: halt_before}", "collectlogs[0].multiline: condition_pattern: "),
            ("multiline: {condition_pattern: x, mode: halt}", "collectlogs[0].multiline: mode: \"halt\""),
            ("multiline: {condition_pattern: x, mode: halt_with, timeout: 0}", "timeout: between 10ms and 1h"),
            ("multiline: {mode: halt_with}", "condition_pattern: missing"),
        ] {
            let text =
                format!("kafkaconfig: {{kafkaaddr: h:1}}\ncollectlogs:\n- {{logpath: /a.log, logtopic: t, {entry}}}\n");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{entry}: {e}");
        }
    }

    #[test]
    fn delivery_exactly_once() {
        let base = "kafkaconfig: {kafkaaddr: h:1}\nhostname: web-3\ndata_dir: /var/lib/logcatch\n";
        assert_eq!(parse(base).unwrap().kafka.exactly_once, None, "at least once by default");
        let c = parse(&format!("{base}delivery: exactly_once\n")).unwrap();
        let eo = c.kafka.exactly_once.expect("exactly once");
        assert!(eo.transactional_id.starts_with("logcatch-web-3-"), "{}", eo.transactional_id);
        assert_eq!(eo.interval, Duration::from_millis(100));
        assert_eq!(eo.positions_topic, "logcatch-positions");
        assert_eq!(c.kafka.properties["transactional.id"], eo.transactional_id);
        assert_eq!(c.kafka.properties["transaction.timeout.ms"], "60000");
        assert_eq!(eo.timeout, Duration::from_secs(60));
        // The id follows the data_dir: two agents of one host differ, a restarted one is the same.
        let other = parse(
            &format!("{base}delivery: exactly_once\ndata_dir: /srv/two\n").replace("data_dir: /var/lib/logcatch\n", ""),
        );
        assert_ne!(other.unwrap().kafka.exactly_once.unwrap().transactional_id, eo.transactional_id);
        let own =
            "kafkaconfig: {kafkaaddr: h:1, transactional_id: app-7, transaction_interval: 1s, positions_topic: pos}\n\
                   delivery: exactly_once\n";
        let eo = parse(own).unwrap().kafka.exactly_once.unwrap();
        assert_eq!(
            (eo.transactional_id.as_str(), eo.interval, eo.positions_topic.as_str()),
            ("app-7", Duration::from_secs(1), "pos")
        );
        for (text, needle) in [
            ("delivery: twice\n", "delivery: \"twice\" is not one of at_least_once, exactly_once"),
            ("kafkaconfig: {kafkaaddr: h:1, transactional_id: x}\n", "only with delivery: exactly_once"),
            ("delivery: exactly_once\nkafkaconfig: {kafkaaddr: h:1, acks: 1}\n", "exactly_once needs acks: all"),
            (
                "delivery: exactly_once\nkafkaconfig: {kafkaaddr: h:1, transaction_interval: 5ms}\n",
                "between 10ms and 60s",
            ),
            (
                "delivery: exactly_once\nkafkaconfig: {kafkaaddr: h:1, transaction_interval: 5s, \
                 properties: {transaction.timeout.ms: \"5000\"}}\n",
                "transaction.timeout.ms: must be longer than transaction_interval",
            ),
            (
                "delivery: exactly_once\nkafkaconfig: {kafkaaddr: h:1, positions_topic: \"a b\"}\n",
                "kafkaconfig.positions_topic",
            ),
        ] {
            let text = if text.contains("kafkaconfig") {
                text.to_string()
            } else {
                format!("kafkaconfig: {{kafkaaddr: h:1}}\n{text}")
            };
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn hostname_headers_and_host_in_etcd_keys() {
        let text = "kafkaconfig: {kafkaaddr: h:1, headers: [host, offset], message_key: host_path}\n\
                    hostname: web-7\netcdconfig: [e:2379]\netcdkeys: [logcatch/all, \"logcatch/host/{host}\"]\n";
        let c = parse(text).unwrap();
        assert_eq!(c.hostname, "web-7");
        assert_eq!(c.etcd.keys, ["logcatch/all", "logcatch/host/web-7"]);
        assert_eq!(c.kafka.headers, Headers { host: true, path: false, offset: true });
        assert_eq!(c.kafka.message_key, MessageKey::HostPath);
        let d = parse("kafkaconfig: {kafkaaddr: h:1}\n").unwrap();
        assert_eq!(d.kafka.headers, Headers { host: true, path: true, offset: true }, "all three by default");
        assert!(!d.hostname.is_empty(), "the system's host name by default");
        let off = parse("kafkaconfig: {kafkaaddr: h:1, headers: []}\n").unwrap();
        assert!(!off.kafka.headers.any());
        let e =
            parse("kafkaconfig: {kafkaaddr: h:1, headers: [host, user]}\nhostname: \"a b\"\n").unwrap_err().to_string();
        assert!(e.contains("kafkaconfig.headers[1]: \"user\" is not one of host, path, offset"), "{e}");
        assert!(e.contains("hostname: \"a b\" is not a host name"), "{e}");
    }

    #[test]
    fn a_bare_zero_is_a_duration_and_other_bare_numbers_are_not() {
        let c = parse("kafkaconfig: {kafkaaddr: h:1}\nbatch_wait: 0\n").unwrap();
        assert_eq!(c.batch_wait, Duration::ZERO);
        let e = parse("kafkaconfig: {kafkaaddr: h:1}\nrotate_wait: 5\n").unwrap_err().to_string();
        assert!(e.contains("rotate_wait: \"5\" is not a duration"), "{e}");
    }

    #[test]
    fn etcd_paths_are_checked_and_a_broad_allowlist_warned_about() {
        let base = "kafkaconfig: {kafkaaddr: \"h:1\"}\n";
        let c = parse(&format!("{base}etcd_allowed_paths: [\"/\"]\n")).unwrap();
        assert!(
            c.warnings.iter().any(|w| w.starts_with("etcd_allowed_paths[0]") && w.contains("every file")),
            "{:?}",
            c.warnings
        );
        let c =
            parse(&format!("{base}etcd_allowed_paths: [/var/log/app]\netcd_denied_paths: []\nmax_tails: 5\n")).unwrap();
        assert!(c.warnings.is_empty() && c.etcd.allowlist.denied.is_empty() && c.max_tails == 5, "{:?}", c.warnings);
        let e = parse(&format!("{base}etcd_denied_paths: [\"\", \"/var/log/[x\"]\nmax_tails: 0\n")).unwrap_err();
        let text = e.to_string();
        for needle in ["etcd_denied_paths[0]: empty path", "etcd_denied_paths[1]:", "max_tails: must be at least 1"] {
            assert!(text.contains(needle), "{needle}: {text}");
        }
        let e = parse(&format!("{base}collectlogs: [{{logpath: /a.log, logtopic: t, follow_symlinks: maybe}}]\n"))
            .unwrap_err();
        assert!(e.to_string().contains("follow_symlinks"), "{e}");
    }
}
