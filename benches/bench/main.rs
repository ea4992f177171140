//! The benchmark: logcatch next to the raw rdkafka producer, same machine, same broker, same run.
//!
//! `scripts/bench.sh [--quick]` runs it (`cargo bench --bench bench`). It starts its own tansu
//! broker (and etcd, for the reaction scenario), runs each scenario, and prints one table with
//! the targets of issue 6 marked PASS/FAIL. Times are judged by a consumer that reads the lines
//! back (tansu's watermarks are wrong). CPU time and peak RSS of both sides come from `wait4` on
//! the child process, so they are measured the same way.
//!
//! Modes (the binary re-runs itself as the baseline producer): `bench produce BROKER TOPIC FILE`.

#[path = "../../tests/common/mod.rs"]
mod common;

mod catch_up;
mod checkpoint;
mod codecs;
mod compressed;
mod confine;
mod encoding;
mod exactly_once;
mod filters;
mod fleet;
mod idle;
mod live;
mod many;
mod multiline;
mod rate_limit;
mod reaction;
mod rsyslog;
mod slow;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

const LINE_BYTES: usize = 120;
/// Live tail: lines written in the first second (producer and consumer connecting, the agent's
/// tails opening their files) are read back and counted but left out of the latency figures.
const WARMUP: Duration = Duration::from_secs(1);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    if args.first().map(String::as_str) == Some("produce") {
        return produce(&args[1], &args[2], Path::new(&args[3]));
    }
    if args.first().map(String::as_str) == Some("produce-live") {
        return produce_live(
            &args[1],
            &args[2],
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
        );
    }
    let quick = args.iter().any(|a| a == "--quick");
    // `--broker kafka`: Apache Kafka (scripts/kafka.sh, one KRaft node) instead of tansu.
    let kafka =
        args.iter().position(|a| a == "--broker").and_then(|i| args.get(i + 1)).map(String::as_str) == Some("kafka");
    let mut b = Bench::new(quick, kafka);
    // `--only NAME[,NAME]` runs some scenarios: catch-up, live, idle, reaction, codecs, fleet,
    // exactly-once (needs `--broker kafka`), multiline, checkpoint, many, slow, confine, compressed,
    // filters, encoding, rate-limit.
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).cloned().unwrap_or_default();
    let want = |name: &str| only.is_empty() || only.split(',').any(|o| o == name);
    let mut rows = Vec::new();
    if want("catch-up") {
        rows.extend(b.catch_up());
    }
    if want("live") {
        rows.extend(b.live_tail());
    }
    if want("idle") {
        rows.extend(b.idle_scale());
    }
    if want("reaction") {
        rows.extend(b.reaction());
    }
    if want("codecs") {
        rows.extend(b.codecs());
    }
    if want("fleet") {
        rows.extend(b.fleet());
    }
    if want("exactly-once") {
        rows.extend(b.exactly_once());
    }
    if want("multiline") {
        rows.extend(b.multiline());
    }
    if want("checkpoint") {
        rows.extend(b.checkpoint());
    }
    if want("slow") {
        rows.extend(b.slow_writers());
    }
    if want("many") {
        rows.extend(b.many_files());
    }
    if want("compressed") {
        rows.extend(b.compressed());
    }
    if want("filters") {
        rows.extend(b.filters());
    }
    if want("encoding") {
        rows.extend(b.encoding());
    }
    if want("rate-limit") {
        rows.extend(b.rate_limit());
    }
    if want("confine") {
        rows.extend(confine::confinement(b.quick));
    }
    let table = render(&rows, &b);
    print!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &table).unwrap();
    }
}

/// The baseline: the same lines, from memory, through one rdkafka producer with logcatch's
/// producer settings.
fn produce(broker: &str, topic: &str, file: &Path) {
    let lines: Vec<Vec<u8>> =
        std::fs::read(file).unwrap().split(|&b| b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect();
    let p: ThreadedProducer<DefaultProducerContext> = producer_config(broker).create().unwrap();
    let key = file.to_string_lossy().into_owned();
    for l in &lines {
        let mut rec = BaseRecord::to(topic).payload(l).key(key.as_bytes());
        loop {
            match p.send(rec) {
                Ok(()) => break,
                Err((_, back)) => {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// `n` lines of LINE_BYTES: a counter, then padding (the catch-up scenarios' file).
fn numbered_file(file: &Path, n: usize) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    for i in 0..n {
        let head = format!("{i:010} ");
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&vec![b'x'; LINE_BYTES - head.len() - 1]).unwrap();
        w.write_all(b"\n").unwrap();
    }
}

/// Microseconds since the Unix epoch: the stamp written into live lines, comparable across
/// processes.
fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as u64
}

/// One live line: its write time, then padding to LINE_BYTES - 1.
fn live_line(buf: &mut Vec<u8>) {
    let stamp = format!("{:>16} ", now_us());
    buf.extend_from_slice(stamp.as_bytes());
    buf.extend_from_slice(&[b'y'; LINE_BYTES - 18]);
}

/// The live baseline: `files` keys at `rate` lines/s each for `secs`, stamped, produced
/// directly, with logcatch's producer settings.
fn produce_live(broker: &str, topic: &str, files: usize, rate: usize, secs: u64) {
    let p: ThreadedProducer<DefaultProducerContext> = producer_config(broker).create().unwrap();
    let keys: Vec<String> = (0..files).map(|i| format!("/bench/f{i}.log")).collect();
    let t0 = Instant::now();
    for t in 0..(secs as u32 * 100) {
        if let Some(w) = (t0 + Duration::from_millis(10) * t).checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        for (i, k) in keys.iter().enumerate() {
            for _ in 0..lines_at(t, i, rate) {
                let mut line = Vec::with_capacity(LINE_BYTES);
                live_line(&mut line);
                let mut rec = BaseRecord::to(topic).payload(&line).key(k.as_bytes());
                while let Err((_, back)) = p.send(rec) {
                    rec = back;
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
    }
    p.flush(Duration::from_secs(60)).unwrap();
}

/// Writers tick every 10 ms: how many lines file `i` gets at tick `t` for `rate` lines/s. Below
/// 100 lines/s a file gets one line every `100 / rate` ticks, the files' turns spread over the
/// ticks (many slow writers are not synchronised).
fn lines_at(t: u32, i: usize, rate: usize) -> usize {
    if rate >= 100 {
        return rate / 100;
    }
    usize::from((t as usize + i).is_multiple_of(100 / rate.max(1)))
}

/// logcatch's default producer settings (src/config.rs).
fn producer_config(broker: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "100000")
        .set("queue.buffering.max.kbytes", "65536")
        .set("enable.sparse.connections", "false");
    c
}

/// What one live run of an agent measured.
struct LiveRun {
    read_back: usize,
    /// Sorted latencies (ms) of the lines written after the warm-up.
    lat: Vec<f64>,
    cpu_pct: f64,
    rss: u64,
    peak_rss: u64,
}

struct Row {
    scenario: &'static str,
    metric: String,
    value: String,
    target: String,
    pass: Option<bool>,
}

fn row(scenario: &'static str, metric: &str, value: String, target: &str, pass: Option<bool>) -> Row {
    Row { scenario, metric: metric.into(), value, target: target.into(), pass }
}

fn render(rows: &[Row], b: &Bench) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "\nlogcatch benchmark ({}; {} cores; {} broker on loopback; median of {} runs where noted)\n\n",
        if b.quick { "quick: shortened scenarios" } else { "full" },
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if b.broker.kafka.is_some() { "Apache Kafka 4.1.1 (one KRaft node)" } else { "tansu" },
        b.runs
    ));
    s.push_str("| scenario | metric | value | target | result |\n|---|---|---|---|---|\n");
    for r in rows {
        let res = match r.pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "",
        };
        s.push_str(&format!("| {} | {} | {} | {} | {} |\n", r.scenario, r.metric, r.value, r.target, res));
    }
    s
}

// ------------------------------------------------------------------------------------------------

struct Bench {
    quick: bool,
    runs: usize,
    /// tansu, or Apache Kafka with `--broker kafka` (tests/common's, stopped by PID on drop;
    /// declared before `dir`, so they are dropped while their directory is still there).
    broker: Broker,
    etcd: Etcd,
    /// The etcd member's client port (the fleet and reaction scenarios call its gateway).
    etcd_port: u16,
    dir: tempfile::TempDir,
    topics: usize,
    /// The static release binary (LOGCATCH_STATIC_BIN, set by scripts/bench.sh), measured as a
    /// column beside the glibc build in the same run.
    static_bin: Option<PathBuf>,
    /// Top-level YAML added to every agent's config while it is set (`delivery: exactly_once` in
    /// scenario 7, `batch_wait: 0` in scenario 2).
    top_extra: &'static str,
    /// More keys of every `collectlogs` entry (`, multiline: java` in scenario 8).
    entry_extra: &'static str,
}

use common::{wait_until, Broker, Etcd};

/// CPU seconds (user+sys) and peak RSS (KiB) of a child, from wait4.
fn reap(child: &mut Child) -> (f64, u64) {
    let mut status = 0;
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut ru) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (t(ru.ru_utime) + t(ru.ru_stime), ru.ru_maxrss as u64)
}

/// CPU seconds so far and current RSS (KiB) and thread count of a running process.
fn sample(pid: u32) -> (f64, u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let cpu = (f.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0))
        / tick;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (cpu, field("VmRSS:"), field("Threads:"))
}

/// The CPU time of an idle process over `window`, in % of a core, to the nanosecond: the sum of
/// its threads' `schedstat` run times when the same threads lived through the window, else (a
/// thread came or went, and took its time with it) `/proc/PID/stat`'s clock ticks. The ticks
/// alone are 10 ms: over a quick run's 20 s, one tick is 0.05 %, the idle target itself, so a
/// row judged on them passed or failed on where a tick fell.
fn idle_cpu_pct(pid: u32, window: Duration) -> (f64, &'static str) {
    fn threads_ns(pid: u32) -> (BTreeMap<u32, u64>, bool) {
        let mut all = BTreeMap::new();
        let mut whole = true;
        for t in std::fs::read_dir(format!("/proc/{pid}/task")).into_iter().flatten().flatten() {
            let tid = t.file_name().to_string_lossy().parse::<u32>().unwrap_or(0);
            let ns = std::fs::read_to_string(t.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse::<u64>().ok()));
            match ns {
                Some(ns) => {
                    all.insert(tid, ns);
                }
                None => whole = false,
            }
        }
        (all, whole)
    }
    let (ticks0, (ns0, whole0)) = (sample(pid).0, threads_ns(pid));
    let t0 = Instant::now();
    std::thread::sleep(window);
    let (ticks1, (ns1, whole1)) = (sample(pid).0, threads_ns(pid));
    let secs = t0.elapsed().as_secs_f64();
    if whole0 && whole1 && !ns0.is_empty() && ns0.keys().eq(ns1.keys()) {
        let ran: u64 = ns1.iter().map(|(tid, ns)| ns.saturating_sub(ns0[tid])).sum();
        (ran as f64 / 1e9 / secs * 100.0, "schedstat")
    } else {
        ((ticks1 - ticks0) / secs * 100.0, "clock ticks: threads came or went")
    }
}

/// The median; of an even count, the mean of the middle two (not the upper one).
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let m = v.len() / 2;
    if v.len().is_multiple_of(2) {
        (v[m - 1] + v[m]) / 2.0
    } else {
        v[m]
    }
}

/// p50, p99 and max of sorted latencies.
fn quantiles(sorted: &[f64]) -> (f64, f64, f64) {
    (percentile(sorted, 0.5), percentile(sorted, 0.99), sorted.last().copied().unwrap_or(f64::NAN))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// A consumer of partition 0 of the new, empty `topic`, from its start, connected.
fn consumer(broker: &str, topic: &str) -> BaseConsumer {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker)
        .set("group.id", "bench")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .set("log_level", "3")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).unwrap();
    c.assign(&tpl).unwrap();
    // Connected, and the partition's leader known, before anything is timed. Every topic read
    // here is new and empty at this point: a message now would be lost to the count.
    let _ = c.fetch_watermarks(topic, 0, Duration::from_secs(10));
    assert!(!matches!(c.poll(Duration::from_millis(100)), Some(Ok(_))), "consumer() is for an empty topic");
    c
}

/// Reads `topic` until `n` messages arrived; calls `each` with each payload.
/// A reader of `n` lines of `topic`, started and connected before the clock starts (a consumer's
/// first fetch of a new topic waits for retries of half a second, which would otherwise be
/// counted, in steps, against whichever side it happened to hit). `join` gives the number of
/// lines read and when the last one was.
struct ReadyReader(std::thread::JoinHandle<(usize, Instant)>);

impl ReadyReader {
    fn start(broker: &str, topic: &str, n: usize, limit: Duration) -> ReadyReader {
        let (broker, topic) = (broker.to_string(), topic.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let h = std::thread::spawn(move || {
            let c = consumer(&broker, &topic);
            ready_tx.send(()).unwrap();
            let end = Instant::now() + limit;
            let (mut got, mut last) = (0, Instant::now());
            while got < n && Instant::now() < end {
                if let Some(Ok(_)) = c.poll(Duration::from_millis(100)) {
                    got += 1;
                    last = Instant::now();
                }
            }
            (got, last)
        });
        ready_rx.recv().expect("reader ready");
        ReadyReader(h)
    }

    fn join(self) -> (usize, Instant) {
        self.0.join().unwrap()
    }
}

impl Bench {
    fn new(quick: bool, kafka: bool) -> Bench {
        let dir = tempfile::tempdir().unwrap();
        let broker = if kafka { Broker::start_kafka(dir.path(), "single") } else { Broker::start(dir.path()) };
        let etcd = Etcd::start(dir.path(), 1);
        let etcd_port = etcd.endpoints()[0].rsplit(':').next().and_then(|p| p.parse().ok()).expect("an etcd port");
        let static_bin = std::env::var_os("LOGCATCH_STATIC_BIN").map(PathBuf::from).filter(|p| p.is_file());
        Bench { quick, runs: 3, broker, etcd, etcd_port, dir, topics: 0, static_bin, top_extra: "", entry_extra: "" }
    }

    fn addr(&self) -> String {
        self.broker.addr()
    }

    fn topic(&mut self, prefix: &str) -> String {
        self.topics += 1;
        let name = format!("{prefix}{}", self.topics);
        self.broker.create_topic(&name);
        name
    }

    fn config(&self, dir: &Path, files: &[(PathBuf, String)], extra: &str) -> PathBuf {
        self.config_kafka(dir, files, &format!("{extra}{}", self.top_extra), "")
    }

    /// `kafka`: more keys of kafkaconfig (`compression: zstd`).
    fn config_kafka(&self, dir: &Path, files: &[(PathBuf, String)], extra: &str, kafka: &str) -> PathBuf {
        // Without headers unless asked: the raw producer beside it sends the same bytes (the line
        // and its key), so the ratios compare like with like; scenario 5 prices the headers.
        let kafka = match (kafka.is_empty(), kafka.contains("headers")) {
            (_, true) => format!(", {kafka}"),
            (true, false) => ", headers: []".to_string(),
            (false, false) => format!(", {kafka}, headers: []"),
        };
        // LOGCATCH_BENCH_EXTRA: top-level keys added to every agent's config (`batch_wait: 0`), to
        // try a setting on every scenario without editing this file.
        let more = std::env::var("LOGCATCH_BENCH_EXTRA").map(|m| format!("{m}\n")).unwrap_or_default();
        let mut y = format!(
            "catsyslog: {{logpath: {}/agent.log, loglevel: warn}}\nkafkaconfig: {{kafkaaddr: \"{}\"{kafka}}}\ndata_dir: {}/data\n{extra}{more}",
            dir.display(),
            self.addr(),
            dir.display()
        );
        y.push_str("collectlogs:\n");
        for (p, t) in files {
            y.push_str(&format!("  - {{logpath: \"{}\", logtopic: {t}{}}}\n", p.display(), self.entry_extra));
        }
        if files.is_empty() {
            y.push_str("  []\n");
        }
        let path = dir.join("config.yaml");
        let tmp = dir.join("config.tmp");
        std::fs::write(&tmp, y).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path
    }

    fn spawn_agent(&self, cfg: &Path) -> Child {
        self.spawn_bin(Path::new(env!("CARGO_BIN_EXE_logcatch")), cfg)
    }

    fn spawn_bin(&self, bin: &Path, cfg: &Path) -> Child {
        Command::new(bin).arg("-c").arg(cfg).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    }

    fn run_dir(&self, name: &str) -> PathBuf {
        let d = self.dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
