//! The benchmark: logcatch next to the raw rdkafka producer, same machine, same broker, same run.
//!
//! `scripts/bench.sh [--quick]` runs it (`cargo bench --bench bench`). It starts its own tansu
//! broker (and etcd, for the reaction scenario), runs each scenario, and prints one table with
//! the targets of issue 6 marked PASS/FAIL. Times are judged by a consumer that reads the lines
//! back (tansu's watermarks are wrong). CPU time and peak RSS of both sides come from `wait4` on
//! the child process, so they are measured the same way.
//!
//! Modes (the binary re-runs itself as the baseline producer): `bench produce BROKER TOPIC FILE`.

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
    // exactly-once (needs `--broker kafka`), multiline, checkpoint, many, slow, confine.
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
    if want("confine") {
        rows.extend(confinement(b.quick));
    }
    let table = render(&rows, &b);
    print!("{table}");
    if let Ok(out) = std::env::var("BENCH_OUT") {
        std::fs::write(out, &table).unwrap();
    }
}

/// Scenario 12 (issue 24): what confinement costs, in this process. Opens of a file three
/// directories below its root: a plain `open(2)` (what every open was), the confined open with
/// `openat2`, and with the legacy kernels' walk; and one scan of a glob over 10,000 files: the
/// `glob` crate's walk plus a `stat` of each match (what a scan was) against `globwalk`. Each
/// the best of 3 rounds (wall time of one thread: nothing else runs).
fn confinement(quick: bool) -> Vec<Row> {
    use logcatch::confine::{self, Access};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let file = root.join("a/b/c/app.log");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"x\n").unwrap();
    let n: u32 = if quick { 50_000 } else { 200_000 };
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let plain = per(best(&|| {
        for _ in 0..n {
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&file).unwrap();
        }
    }));
    let access = Access::beneath(&root);
    let mut rows = Vec::new();
    for (openat2, name) in [(true, "openat2"), (false, "O_NOFOLLOW walk")] {
        confine::set_openat2(openat2);
        let us = per(best(&|| {
            for _ in 0..n {
                confine::open(&file, &access).unwrap();
            }
        }));
        rows.push(row(
            "12 confined open",
            &format!("{name}: per open (plain open {plain:.2} us)"),
            format!("{us:.2} us ({:.2}x)", us / plain),
            "(reported)",
            None,
        ));
    }
    confine::set_openat2(true);
    let logs = root.join("logs");
    std::fs::create_dir(&logs).unwrap();
    for i in 0..10_000 {
        std::fs::write(logs.join(format!("f{i:05}.log")), b"").unwrap();
    }
    let pattern = logs.join("*.log");
    let text = pattern.to_string_lossy().into_owned();
    let old = best(&|| {
        let n = glob::glob_with(&text, logcatch::discover::MATCH)
            .unwrap()
            .flatten()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
            .count();
        assert_eq!(n, 10_000);
    });
    let new = best(&|| {
        let w = logcatch::globwalk::walk(&pattern, &Access::beneath(&logs));
        assert_eq!(w.files.len(), 10_000);
    });
    let ratio = new.as_secs_f64() / old.as_secs_f64();
    rows.push(row(
        "12 confined open",
        &format!("scan of a glob of 10,000 files (glob crate + stat: {:.1} ms)", old.as_secs_f64() * 1e3),
        format!("{:.1} ms ({ratio:.2}x)", new.as_secs_f64() * 1e3),
        "<= 1.05x",
        Some(ratio <= 1.05),
    ));
    rows
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
        if b.kafka.is_some() { "Apache Kafka 4.1.1 (one KRaft node)" } else { "tansu" },
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
    /// Apache Kafka's node directory when `--broker kafka` (stopped by scripts/kafka.sh on drop;
    /// declared before `dir`, so it is dropped while its directory is still there).
    kafka: Option<KafkaNode>,
    dir: tempfile::TempDir,
    _broker: Proc,
    port: u16,
    _etcd: Proc,
    etcd_port: u16,
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

/// An Apache Kafka node started by scripts/kafka.sh, stopped (by PID) when dropped.
struct KafkaNode {
    dir: PathBuf,
    bootstrap: String,
}

impl KafkaNode {
    fn script() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh")
    }

    fn start(dir: &Path) -> KafkaNode {
        let out = Command::new("bash").arg(Self::script()).args(["start", "single"]).arg(dir).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let bootstrap = text.lines().find_map(|l| l.strip_prefix("BOOTSTRAP=")).map(str::to_string);
        let bootstrap = bootstrap.unwrap_or_else(|| panic!("kafka.sh start: {}", String::from_utf8_lossy(&out.stderr)));
        KafkaNode { dir: dir.to_path_buf(), bootstrap }
    }

    fn topic(&self, name: &str) {
        let st = Command::new("bash").arg(Self::script()).arg("topic").arg(&self.dir).arg(name).output().unwrap();
        assert!(st.status.success(), "kafka.sh topic {name}: {}", String::from_utf8_lossy(&st.stderr));
    }
}

impl Drop for KafkaNode {
    fn drop(&mut self) {
        let _ = Command::new("bash").arg(Self::script()).arg("stop").arg(&self.dir).status();
    }
}

struct Proc(Option<Child>);
impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port below the kernel's ephemeral range (32768 up), never handed out twice: no outgoing
/// connection can take it before the server binds it.
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::process::id() % 20_000;
    loop {
        let port = (10_000 + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 22_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

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
        let kafka = kafka.then(|| KafkaNode::start(&dir.path().join("kafka")));
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let broker = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu on PATH (scripts/install-deps.sh)");
        wait_until(Duration::from_secs(30), "tansu", || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
        let etcd_port = free_port();
        let peer = free_port();
        let c = format!("http://127.0.0.1:{etcd_port}");
        let p = format!("http://127.0.0.1:{peer}");
        let etcd = Command::new("etcd")
            .args(["--name", "bench", "--data-dir"])
            .arg(dir.path().join("etcd"))
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c, "--listen-peer-urls", &p])
            .args(["--initial-advertise-peer-urls", &p, "--initial-cluster", &format!("bench={p}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd on PATH (scripts/install-deps.sh)");
        wait_until(Duration::from_secs(30), "etcd", || std::net::TcpStream::connect(("127.0.0.1", etcd_port)).is_ok());
        let static_bin = std::env::var_os("LOGCATCH_STATIC_BIN").map(PathBuf::from).filter(|p| p.is_file());
        Bench {
            quick,
            runs: 3,
            dir,
            _broker: Proc(Some(broker)),
            port,
            kafka,
            _etcd: Proc(Some(etcd)),
            etcd_port,
            topics: 0,
            static_bin,
            top_extra: "",
            entry_extra: "",
        }
    }

    fn addr(&self) -> String {
        if let Some(k) = &self.kafka {
            return k.bootstrap.clone();
        }
        format!("127.0.0.1:{}", self.port)
    }

    fn topic(&mut self, prefix: &str) -> String {
        self.topics += 1;
        let name = format!("{prefix}{}", self.topics);
        if let Some(k) = &self.kafka {
            k.topic(&name);
            return name;
        }
        let st = Command::new("tansu")
            .args(["topic", "create", &name, "--broker", &format!("tcp://{}", self.addr()), "--partitions", "1"])
            .output()
            .unwrap();
        assert!(st.status.success(), "topic create {name}");
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

    // --- 1. catch-up --------------------------------------------------------------------------

    fn catch_up(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("catchup.log");
        numbered_file(&file, n);
        let mut base = (Vec::new(), Vec::new(), Vec::new());
        let mut lc = (Vec::new(), Vec::new(), Vec::new());
        let mut st: (Vec<f64>, Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..self.runs {
            // Baseline: the raw producer, from memory.
            let topic = self.topic("base");
            let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
            let start = Instant::now();
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["produce", &self.addr(), &topic])
                .arg(&file)
                .spawn()
                .unwrap();
            let (got, last) = reader.join();
            let secs = last.duration_since(start).as_secs_f64();
            let (cpu, rss) = reap(&mut child);
            assert_eq!(got, n, "baseline delivered every line");
            base.0.push(secs);
            base.1.push(cpu);
            base.2.push(rss as f64);
            // logcatch: the same lines from the file; then the static build, interleaved.
            // Which of the two goes first alternates, so neither always meets a broker holding
            // one more run's lines.
            let glibc = Path::new(env!("CARGO_BIN_EXE_logcatch"));
            let static_first = run % 2 == 1;
            if let (true, Some(bin)) = (static_first, self.static_bin.clone()) {
                let (secs, cpu, rss) = self.catch_up_agent(&bin, &file, n, run, "st");
                st.0.push(secs);
                st.1.push(cpu);
                st.2.push(rss);
            }
            let (secs, cpu, rss) = self.catch_up_agent(glibc, &file, n, run, "lc");
            lc.0.push(secs);
            lc.1.push(cpu);
            lc.2.push(rss);
            if let (false, Some(bin)) = (static_first, self.static_bin.clone()) {
                let (secs, cpu, rss) = self.catch_up_agent(&bin, &file, n, run, "st");
                st.0.push(secs);
                st.1.push(cpu);
                st.2.push(rss);
            }
            eprintln!("catch-up run {run}: baseline {:.2}s, logcatch {:.2}s", base.0[run], lc.0[run]);
        }
        let (bs, bc, br) = (median(base.0), median(base.1), median(base.2));
        let (ls, lcpu, lr) = (median(lc.0), median(lc.1), median(lc.2));
        let mb = (n * LINE_BYTES) as f64 / 1e6;
        let per_m = |cpu: f64| cpu / (n as f64 / 1e6);
        let ratio = bs / ls;
        let cpu_ratio = per_m(lcpu) / per_m(bc);
        let s = "1. catch-up";
        let mut rows = vec![
            row(
                s,
                &format!("lines/s ({} lines of {LINE_BYTES} B)", n),
                format!("logcatch {:.0} / raw {:.0}", n as f64 / ls, n as f64 / bs),
                "",
                None,
            ),
            row(s, "MB/s", format!("logcatch {:.1} / raw {:.1}", mb / ls, mb / bs), "", None),
            row(s, "throughput ratio", format!("{ratio:.2}x"), ">= 0.9x", Some(ratio >= 0.9)),
            row(s, "CPU s per million lines", format!("logcatch {:.2} / raw {:.2}", per_m(lcpu), per_m(bc)), "", None),
            row(s, "CPU per line ratio", format!("{cpu_ratio:.2}x"), "<= 1.5x", Some(cpu_ratio <= 1.5)),
            row(s, "peak RSS", format!("logcatch {:.1} MiB / raw {:.1} MiB", lr / 1024.0, br / 1024.0), "", None),
        ];
        if !st.0.is_empty() {
            let (ss, scpu, sr) = (median(st.0), median(st.1), median(st.2));
            let vs_glibc = per_m(scpu) / per_m(lcpu);
            rows.push(row(
                s,
                "static (musl) build: lines/s, CPU s per million, peak RSS",
                format!("{:.0}, {:.2}, {:.1} MiB", n as f64 / ss, per_m(scpu), sr / 1024.0),
                "",
                None,
            ));
            rows.push(row(
                s,
                "static / glibc CPU per line",
                format!("{vs_glibc:.2}x"),
                "<= 1.1x",
                Some(vs_glibc <= 1.1),
            ));
        }
        rows
    }

    /// One catch-up of `file` by the agent binary `bin`: (seconds to the last line read back,
    /// CPU seconds, peak RSS KiB).
    fn catch_up_agent(&mut self, bin: &Path, file: &Path, n: usize, run: usize, name: &str) -> (f64, f64, f64) {
        let topic = self.topic(name);
        let d = self.run_dir(&format!("catchup-{name}{run}"));
        let cfg = self.config(&d, &[(file.to_path_buf(), topic.clone())], "start_position: beginning\n");
        let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
        let start = Instant::now();
        let mut child = self.spawn_bin(bin, &cfg);
        let (got, last) = reader.join();
        let secs = last.duration_since(start).as_secs_f64();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (cpu, rss) = reap(&mut child);
        assert_eq!(got, n, "{} delivered every line", bin.display());
        (secs, cpu, rss as f64)
    }

    // --- 6. the fleet in etcd ----------------------------------------------------------------------

    /// The agents' reports under logcatch/agents: (count, how many report `key` at `revision` or
    /// later). Read with curl from the JSON gateway, as an operator's script would.
    fn fleet_reports(&self, key: &str, revision: i64) -> (usize, usize) {
        use base64::Engine as _;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let body = format!("{{\"key\":\"{}\",\"range_end\":\"{}\"}}", b64("logcatch/agents/"), b64("logcatch/agents0"));
        let out = Command::new("curl")
            .args(["-fs", "-X", "POST", &format!("http://127.0.0.1:{}/v3/kv/range", self.etcd_port), "-d", &body])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        let applied = kvs
            .iter()
            .filter_map(|kv| base64::engine::general_purpose::STANDARD.decode(kv["value"].as_str()?).ok())
            .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(|r| r["keys"][key]["revision"].as_i64().is_some_and(|x| x >= revision))
            .count();
        (kvs.len(), applied)
    }

    /// 200 idle agents (each its own data_dir, one file, `hostname: fleet-N`), all watching one
    /// etcd key and reporting in logcatch/agents: etcd's CPU and the agents' (leases kept alive,
    /// reports checked every second) over a quiet window, and the time from one put to the
    /// last of the 200 reporting it applied.
    fn fleet(&mut self) -> Vec<Row> {
        let n = 200;
        let secs: u64 = if self.quick { 15 } else { 30 };
        let topic = self.topic("fleet");
        let mut kids = Vec::new();
        for i in 0..n {
            let d = self.run_dir(&format!("fleet{i}"));
            let file = d.join("a.log");
            std::fs::write(&file, "one line\n").unwrap();
            let extra = format!(
                "hostname: fleet-{i}\netcdconfig: [\"127.0.0.1:{}\"]\netcdkeys: [\"bench-fleet\"]\netcd_allowed_paths: [\"{}\"]\n",
                self.etcd_port,
                d.display()
            );
            let cfg = self.config(&d, &[(file, topic.clone())], &extra);
            kids.push(self.spawn_agent(&cfg));
        }
        wait_until(Duration::from_secs(180), "200 agents in the fleet", || self.fleet_reports("", 0).0 == n);
        // Let the start-up settle: 200 agents starting at once keep 2 cores busy for several
        // seconds after the last one registered (perf: the machine is idle after that).
        std::thread::sleep(Duration::from_secs(20));
        let etcd_pid = self._etcd.0.as_ref().map(|c| c.id()).unwrap();
        let agents_cpu = |kids: &Vec<Child>| kids.iter().map(|k| sample(k.id()).0).sum::<f64>();
        let (e0, a0, t0) = (sample(etcd_pid).0, agents_cpu(&kids), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let wall = t0.elapsed().as_secs_f64();
        let (e1, a1) = (sample(etcd_pid).0, agents_cpu(&kids));
        let rss: u64 = kids.iter().map(|k| sample(k.id()).1).sum();
        let (etcd_pct, agents_pct) = ((e1 - e0) / wall * 100.0, (a1 - a0) / wall * 100.0);
        // One put, until every report has it.
        let out = Command::new("curl")
            .args([
                "-fs",
                "-X",
                "POST",
                &format!("http://127.0.0.1:{}/v3/kv/put", self.etcd_port),
                "-d",
                "{\"key\":\"YmVuY2gtZmxlZXQ=\",\"value\":\"W10=\"}",
            ])
            .output()
            .unwrap();
        let put_at = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let revision: i64 = v["header"]["revision"].as_str().and_then(|r| r.parse().ok()).unwrap_or(i64::MAX);
        wait_until(Duration::from_secs(60), "every agent to report the put", || {
            self.fleet_reports("bench-fleet", revision).1 == n
        });
        let all_ms = put_at.elapsed().as_secs_f64() * 1000.0;
        for k in kids.iter_mut() {
            unsafe { libc::kill(k.id() as i32, libc::SIGTERM) };
        }
        for k in kids.iter_mut() {
            reap(k);
        }
        let s = "6. fleet";
        vec![
            row(
                s,
                &format!("{n} idle agents, {secs} s: etcd CPU"),
                format!("{etcd_pct:.2} % of a core"),
                "small",
                None,
            ),
            row(
                s,
                "the agents' CPU (all / each)",
                format!("{agents_pct:.1} % / {:.3} % of a core", agents_pct / n as f64),
                "",
                None,
            ),
            row(
                s,
                "the agents' RSS (all / each)",
                format!("{:.0} / {:.1} MiB", rss as f64 / 1024.0, rss as f64 / 1024.0 / n as f64),
                "",
                None,
            ),
            row(s, &format!("one put -> applied in all {n} reports"), format!("{all_ms:.0} ms"), "", None),
        ]
    }

    // --- 5. compression codecs ------------------------------------------------------------------

    /// Catch-up of the same file with each `kafkaconfig.compression`: CPU seconds per million
    /// lines (median of the runs), against `none` in the same run. Lines are the catch-up
    /// scenario's (a counter, then padding: very compressible, as many logs are).
    fn codecs(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("codecs.log");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..n {
                let head = format!("{i:010} level=info msg=\"request served\" path=/api/v1/items/{} ", i % 977);
                w.write_all(head.as_bytes()).unwrap();
                w.write_all(&vec![b'x'; LINE_BYTES.saturating_sub(head.len() + 1)]).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        // (name, kafkaconfig extra, top-level extra). Every codec without headers; then what the
        // `host`, `path` and `offset` headers (the default) and the JSON envelope cost (issue 17).
        let variants: [(&str, &str, &str); 7] = [
            ("none", "compression: none, headers: []", ""),
            ("gzip", "compression: gzip, headers: []", ""),
            ("snappy", "compression: snappy, headers: []", ""),
            ("lz4", "compression: lz4, headers: []", ""),
            ("zstd", "compression: zstd, headers: []", ""),
            ("headers", "compression: none, headers: [host, path, offset]", ""),
            ("json", "compression: none, headers: []", "format: json\n"),
        ];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for run in 0..self.runs {
            for (i, (name, kafka, top)) in variants.iter().enumerate() {
                let topic = self.topic(&format!("codec-{name}"));
                let d = self.run_dir(&format!("codec-{name}{run}"));
                let cfg = self.config_kafka(
                    &d,
                    &[(file.clone(), topic.clone())],
                    &format!("start_position: beginning\n{top}"),
                    kafka,
                );
                let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
                let mut child = self.spawn_agent(&cfg);
                let (got, _) = reader.join();
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let (c, _) = reap(&mut child);
                assert_eq!(got, n, "{name}: every line delivered");
                cpu[i].push(c);
            }
            eprintln!("codecs run {run} done");
        }
        let per_m: Vec<f64> = cpu.into_iter().map(|v| median(v) / (n as f64 / 1e6)).collect();
        let s = "5. compression, headers, JSON";
        let none = per_m[0];
        let mut rows: Vec<Row> = variants[..5]
            .iter()
            .zip(&per_m)
            .map(|((codec, _, _), c)| {
                row(
                    s,
                    &format!("{codec}: CPU s per million lines"),
                    format!("{c:.2} ({:.2}x none)", c / none),
                    "",
                    None,
                )
            })
            .collect();
        let cost = per_m[5] / none;
        rows.push(row(
            s,
            "headers host, path, offset (the default): CPU per line, with / without",
            format!("{cost:.2}x ({:.2} / {none:.2})", per_m[5]),
            "<= 1.1x",
            Some(cost <= 1.1),
        ));
        rows.push(row(
            s,
            "format: json (no headers): CPU per line, against raw",
            format!("{:.2}x ({:.2} / {none:.2})", per_m[6] / none, per_m[6]),
            "",
            None,
        ));
        rows
    }

    // --- 7. exactly once ----------------------------------------------------------------------

    /// `delivery: exactly_once` beside `at_least_once`, same run, same broker (Apache Kafka: tansu
    /// has no transactions): catch-up throughput and CPU per line, and the live tail's latency
    /// (read back with read_committed: a line counts when its transaction committed).
    fn exactly_once(&mut self) -> Vec<Row> {
        let s = "7. exactly once";
        if self.kafka.is_none() {
            return vec![row(s, "needs --broker kafka (tansu has no transactions)", "skipped".into(), "", None)];
        }
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("eo.log");
        numbered_file(&file, n);
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_logcatch"));
        let (mut alo, mut eo) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for run in 0..self.runs {
            for (mode, out) in [("", &mut alo), ("delivery: exactly_once\n", &mut eo)] {
                self.top_extra = mode;
                let name = if mode.is_empty() { "alo" } else { "eo" };
                let (secs, cpu, _) = self.catch_up_agent(&bin, &file, n, run, name);
                out.0.push(n as f64 / secs);
                out.1.push(cpu / (n as f64 / 1e6));
            }
            eprintln!(
                "exactly-once catch-up run {run}: lines/s {alo0:?} / {eo0:?}",
                alo0 = alo.0.last(),
                eo0 = eo.0.last()
            );
        }
        let (files, rate, secs) = (20, 1000, if self.quick { 15 } else { 60 });
        self.top_extra = "";
        let live_alo = self.live_agent(&bin, "live-alo", files, rate, secs);
        self.top_extra = "delivery: exactly_once\n";
        let live_eo = self.live_agent(&bin, "live-eo", files, rate, secs);
        self.top_extra = "";
        let (tp, cpu) = (median(eo.0.clone()) / median(alo.0.clone()), median(eo.1.clone()) / median(alo.1.clone()));
        let p99 = |l: &LiveRun| percentile(&l.lat, 0.99);
        vec![
            row(
                s,
                "catch-up throughput, exactly / at least once",
                format!("{tp:.2}x ({:.0} / {:.0} lines/s)", median(eo.0), median(alo.0)),
                ">= 0.8x",
                Some(tp >= 0.8),
            ),
            row(
                s,
                "catch-up CPU per line, exactly / at least once",
                format!("{cpu:.2}x ({:.2} / {:.2} CPU s per million)", median(eo.1), median(alo.1)),
                "<= 1.3x",
                Some(cpu <= 1.3),
            ),
            row(
                s,
                &format!("live, {files} files x {rate} lines/s: p50 / p99, exactly once"),
                format!("{:.1} / {:.1} ms, CPU {:.1}%", percentile(&live_eo.lat, 0.5), p99(&live_eo), live_eo.cpu_pct),
                "p99 < 250 ms",
                Some(p99(&live_eo) < 250.0 && live_eo.read_back == files * rate * secs as usize),
            ),
            row(
                s,
                &format!("live, {files} files x {rate} lines/s: p50 / p99, at least once"),
                format!(
                    "{:.1} / {:.1} ms, CPU {:.1}%",
                    percentile(&live_alo.lat, 0.5),
                    p99(&live_alo),
                    live_alo.cpu_pct
                ),
                "",
                None,
            ),
        ]
    }

    // --- 9. checkpoint saves ----------------------------------------------------------------------

    /// What one save of positions costs with 10,000 files known of which 10 are being read
    /// (issue 15): the store's own code (no agent), saves of the journal against whole snapshots
    /// (the way before), same run: wall time per save (each ends with an fsync) and bytes written.
    fn checkpoint(&mut self) -> Vec<Row> {
        use logcatch::ack::AckTracker;
        use logcatch::checkpoint::{Checkpoints, JOURNAL_FILE, STORE_FILE};
        use logcatch::fingerprint::{FileId, Fingerprint};
        let s = "9. checkpoint saves";
        let (known, active, saves) = (10_000u64, 10u64, if self.quick { 100 } else { 500 });
        let mut out = Vec::new();
        for (mode, below) in [("journal", 256), ("whole snapshot", usize::MAX)] {
            let dir = self.run_dir(&format!("checkpoint-{}", mode.replace(' ', "-")));
            let cp = Checkpoints::open(&dir).unwrap().with_snapshot_below(below);
            for i in 0..known {
                let fp = Fingerprint { len: 256, hash: i };
                cp.skip_old("app", FileId { dev: 1, ino: i }, &format!("/var/log/app/host-{i:05}.log"), fp, 4096);
            }
            let trackers: Vec<Arc<AckTracker>> = (0..active)
                .map(|i| {
                    let t = Arc::new(AckTracker::new(0));
                    let fp = Fingerprint { len: 256, hash: 1_000_000 + i };
                    cp.track("app", FileId { dev: 2, ino: i }, &format!("/var/log/app/busy-{i}.log"), fp, t.clone());
                    t
                })
                .collect();
            cp.save().unwrap();
            let size = |d: &Path| -> u64 {
                [STORE_FILE, JOURNAL_FILE]
                    .iter()
                    .map(|f| std::fs::metadata(d.join(f)).map(|m| m.len()).unwrap_or(0))
                    .sum()
            };
            let (mut written, mut spent) = (0u64, Duration::ZERO);
            for round in 1..=saves {
                for t in &trackers {
                    let seq = t.register(round as u64 * 120);
                    t.ack(seq);
                }
                let before = size(&dir);
                let t0 = Instant::now();
                assert!(cp.save().unwrap());
                spent += t0.elapsed();
                // A snapshot rewrites the whole file (its size is what was written, the journal
                // is emptied); a journal write adds its lines.
                let after = size(&dir);
                let snapshot = below == usize::MAX || after < before;
                written += if snapshot { after } else { after - before };
            }
            let (ms, kb) = (spent.as_secs_f64() * 1000.0 / saves as f64, written as f64 / saves as f64 / 1024.0);
            eprintln!("checkpoint {mode}: {ms:.2} ms and {kb:.1} KiB per save");
            out.push((mode, ms, kb));
        }
        let (j, w) = (&out[0], &out[1]);
        vec![
            row(
                s,
                &format!("per save, {known} files known, {active} read: journal"),
                format!("{:.2} ms, {:.1} KiB written", j.1, j.2),
                "",
                None,
            ),
            row(s, "per save: whole snapshot (before)", format!("{:.2} ms, {:.1} KiB written", w.1, w.2), "", None),
            row(
                s,
                "bytes written per save, journal / whole snapshot",
                format!("{:.4}x ({:.2}x the time)", j.2 / w.2, j.1 / w.1),
                "in proportion to the files changed",
                Some(j.2 * 100.0 < w.2),
            ),
        ]
    }

    // --- 8. multiline ---------------------------------------------------------------------------

    /// Catch-up of a Java-style log (timestamped single lines, and every fifth record a stack
    /// trace of 12 lines with a "Caused by:") with `multiline: java`, against the same file
    /// shipped line by line, same run: CPU seconds per million *lines* of the file.
    fn multiline(&mut self) -> Vec<Row> {
        let s = "8. multiline";
        let records: usize = if self.quick { 40_000 } else { 200_000 };
        let file = self.dir.path().join("java.log");
        let mut lines = 0;
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..records {
                writeln!(
                    w,
                    "2026-11-29 01:{:02}:{:02},{:03} INFO  [worker-{}] request {i} served in 12 ms",
                    i / 60 % 60,
                    i % 60,
                    i % 1000,
                    i % 8
                )
                .unwrap();
                lines += 1;
                if i % 5 == 4 {
                    writeln!(w, "java.lang.IllegalStateException: request {i} failed").unwrap();
                    for f in 0..8 {
                        writeln!(w, "\tat com.example.service.Handler.step{f}(Handler.java:{})", 100 + f).unwrap();
                    }
                    writeln!(w, "Caused by: java.io.IOException: disk unreadable").unwrap();
                    writeln!(w, "\t... 8 more").unwrap();
                    lines += 11;
                }
            }
        }
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_logcatch"));
        let (mut plain, mut joined) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            self.entry_extra = "";
            let (_, cpu, _) = self.catch_up_agent(&bin, &file, lines, run, "ml-plain");
            plain.push(cpu / (lines as f64 / 1e6));
            self.entry_extra = ", multiline: java";
            let (_, cpu, _) = self.catch_up_agent(&bin, &file, records, run, "ml-java");
            joined.push(cpu / (lines as f64 / 1e6));
            eprintln!("multiline run {run}: {:.2} / {:.2} CPU s per million lines", plain[run], joined[run]);
        }
        self.entry_extra = "";
        let (p, j) = (median(plain), median(joined));
        vec![row(
            s,
            &format!("catch-up CPU per line, java preset / line by line ({lines} lines, {records} events)"),
            format!("{:.2}x ({j:.2} / {p:.2} CPU s per million lines)", j / p),
            "<= 1.5x",
            Some(j / p <= 1.5),
        )]
    }

    // --- 2. live tail -------------------------------------------------------------------------

    /// Reads `total` stamped lines of `topic` and returns (lines read, sorted latencies in ms of
    /// the lines written WARMUP or more after the reader was ready). Returns once its consumer is
    /// connected, so that its start-up is not counted as latency of the first lines.
    fn latency_reader(&self, topic: &str, total: usize, secs: u64) -> std::thread::JoinHandle<(usize, Vec<f64>)> {
        let (broker, topic) = (self.addr(), topic.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let c = consumer(&broker, &topic);
            let measure_from = now_us() + WARMUP.as_micros() as u64;
            ready_tx.send(()).unwrap();
            let mut lat = Vec::with_capacity(total);
            let end = Instant::now() + Duration::from_secs(secs + 120);
            let mut got = 0;
            while got < total && Instant::now() < end {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    got += 1;
                    let p = m.payload().unwrap_or_default();
                    let now = now_us();
                    let w: u64 = std::str::from_utf8(&p[..16.min(p.len())])
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(now);
                    if w >= measure_from {
                        lat.push(now.saturating_sub(w) as f64 / 1000.0);
                    }
                }
            }
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (got, lat)
        });
        ready_rx.recv().expect("latency reader ready");
        handle
    }

    /// The raw producer sending `files` keys' stamped lines at `rate` lines/s each for `secs`
    /// (as `live_agent`'s writers do): its CPU (% of a core) and sorted latencies.
    fn raw_live(&mut self, prefix: &str, files: usize, rate: usize, secs: u64) -> (f64, Vec<f64>) {
        let topic = self.topic(prefix);
        let reader = self.latency_reader(&topic, files * rate * secs as usize, secs);
        let t0 = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["produce-live", &self.addr(), &topic, &files.to_string(), &rate.to_string(), &secs.to_string()])
            .spawn()
            .unwrap();
        let (raw_cpu, _) = reap(&mut child);
        let raw_cpu_pct = raw_cpu / t0.elapsed().as_secs_f64() * 100.0;
        let (_, raw_lat) = reader.join().unwrap();
        (raw_cpu_pct, raw_lat)
    }

    fn live_tail(&mut self) -> Vec<Row> {
        let files = 100;
        let rate = 1000; // lines/s per file
        let secs: u64 = if self.quick { 15 } else { 60 };
        let total = files * rate * secs as usize;

        // Baseline: the raw producer sends the same stamped lines at the same rate.
        let (raw_cpu_pct, raw_lat) = self.raw_live("rawlive", files, rate, secs);

        // logcatch: 100 files appended by this process; then with `batch_wait: 0` (every write
        // read at once: the latency floor and what it costs); then the static build.
        let lc = self.live_agent(Path::new(env!("CARGO_BIN_EXE_logcatch")), "live", files, rate, secs);
        self.top_extra = "batch_wait: 0\n";
        let zero = self.live_agent(Path::new(env!("CARGO_BIN_EXE_logcatch")), "live0_", files, rate, secs);
        self.top_extra = "";
        // The static build in 3 pairs with the glibc one, each pair back to back and the order
        // alternating (glibc first, then static first, then glibc first), so that the drift
        // between runs (seen here: the second of two runs of one binary costing 1.1-1.3x the
        // first, as the broker holds more) falls on both sides; the ratio is the median of the
        // pairs' ratios.
        let mut pairs = Vec::new();
        if let Some(bin) = self.static_bin.clone() {
            let glibc = Path::new(env!("CARGO_BIN_EXE_logcatch"));
            // Pair 0's glibc run is the one above (glibc first); pair 1 runs static first; pair 2
            // glibc first.
            let st = self.live_agent(&bin, "stlive0_", files, rate, secs);
            pairs.push((st, None));
            let st = self.live_agent(&bin, "stlive1_", files, rate, secs);
            let gl = self.live_agent(glibc, "gllive1_", files, rate, secs);
            pairs.push((st, Some(gl)));
            let gl = self.live_agent(glibc, "gllive2_", files, rate, secs);
            let st = self.live_agent(&bin, "stlive2_", files, rate, secs);
            pairs.push((st, Some(gl)));
        }
        let LiveRun { read_back, lat, cpu_pct, rss, peak_rss } = lc;
        let ((p50, p99, max), (r50, r99, rmax)) = (quantiles(&lat), quantiles(&raw_lat));
        let s = "2. live tail";
        let mut rows = vec![
            row(
                s,
                &format!("{files} files x {rate} lines/s for {secs} s"),
                format!("{read_back} of {total} lines read back"),
                "all",
                Some(read_back == total),
            ),
            row(
                s,
                &format!("write -> consumer latency p50 / p99 / max (after {}s warm-up)", WARMUP.as_secs()),
                format!("logcatch {p50:.1} / {p99:.1} / {max:.1} ms; raw producer {r50:.1} / {r99:.1} / {rmax:.1} ms"),
                "p99 < 100 ms",
                Some(p99 < 100.0),
            ),
            row(
                s,
                "CPU",
                format!("logcatch {cpu_pct:.1} % of a core; raw producer {raw_cpu_pct:.1} %"),
                "<= 20 % (issue 15)",
                Some(cpu_pct <= 20.0),
            ),
            row(s, "p99 (issue 15: rsyslog's latency)", format!("{p99:.1} ms"), "<= 35 ms", Some(p99 <= 35.0)),
            {
                let (z50, z99, zmax) = quantiles(&zero.lat);
                row(
                    s,
                    "with batch_wait: 0 (read at every write): lines, p50 / p99 / max, CPU",
                    format!(
                        "{} of {total}, {z50:.1} / {z99:.1} / {zmax:.1} ms, {:.1} % of a core",
                        zero.read_back, zero.cpu_pct
                    ),
                    "all",
                    Some(zero.read_back == total),
                )
            },
            row(
                s,
                "logcatch RSS (end / peak sampled)",
                format!("{:.1} / {:.1} MiB", rss as f64 / 1024.0, peak_rss.max(rss) as f64 / 1024.0),
                "",
                None,
            ),
        ];
        if let Some((st, _)) = pairs.first() {
            let (s50, s99, _) = quantiles(&st.lat);
            let ratios: Vec<f64> =
                pairs.iter().map(|(s, g)| s.cpu_pct / g.as_ref().map_or(cpu_pct, |g| g.cpu_pct)).collect();
            let shown: Vec<String> = pairs
                .iter()
                .zip(&ratios)
                .map(|((s, g), r)| {
                    let g = g.as_ref().map_or(cpu_pct, |g| g.cpu_pct);
                    format!("{r:.2} = {:.1}/{g:.1} %", s.cpu_pct)
                })
                .collect();
            let vs_glibc = median(ratios.clone());
            rows.push(row(
                s,
                "static (musl) build: lines read back, p50 / p99, CPU, peak RSS",
                format!(
                    "{} of {total}, {s50:.1} / {s99:.1} ms, {:.1} % of a core, {:.1} MiB",
                    st.read_back,
                    st.cpu_pct,
                    st.peak_rss.max(st.rss) as f64 / 1024.0
                ),
                "all",
                Some(st.read_back == total),
            ));
            rows.push(row(
                s,
                "static / glibc live CPU (median of back-to-back pairs)",
                format!("{vs_glibc:.2}x (pairs: {})", shown.join(", ")),
                "<= 1.1x",
                Some(vs_glibc <= 1.1),
            ));
        }
        rows
    }

    // --- 11. many slow writers -----------------------------------------------------------------

    /// 1,000 files each written 10 lines/s (a line every 100 ms, the files' turns spread over the
    /// ticks): the common case on a busy host (issue 15). Every line comes after a quiet spell,
    /// so every line is a wakeup of its tail: this prices one wakeup, against the raw producer
    /// sending the same stamped lines at the same rate.
    fn slow_writers(&mut self) -> Vec<Row> {
        let (files, rate) = (1000, 10);
        let secs: u64 = if self.quick { 15 } else { 60 };
        let total = files * rate * secs as usize;
        let (raw_cpu_pct, raw_lat) = self.raw_live("rawslow", files, rate, secs);
        let lc = self.live_agent(Path::new(env!("CARGO_BIN_EXE_logcatch")), "slow", files, rate, secs);
        let ((p50, p99, max), (r50, r99, rmax)) = (quantiles(&lc.lat), quantiles(&raw_lat));
        let s = "11. many slow writers";
        vec![
            row(
                s,
                &format!("{files} files x {rate} lines/s for {secs} s"),
                format!("{} of {total} lines read back", lc.read_back),
                "all",
                Some(lc.read_back == total),
            ),
            row(
                s,
                "write -> consumer latency p50 / p99 / max",
                format!("logcatch {p50:.1} / {p99:.1} / {max:.1} ms; raw producer {r50:.1} / {r99:.1} / {rmax:.1} ms"),
                "report",
                None,
            ),
            row(
                s,
                "CPU",
                format!(
                    "logcatch {:.1} % of a core; raw producer {raw_cpu_pct:.1} %; RSS {:.1} MiB",
                    lc.cpu_pct,
                    lc.peak_rss.max(lc.rss) as f64 / 1024.0
                ),
                "report",
                None,
            ),
        ]
    }

    /// One live run of the agent binary `bin` on `files` new files written at `rate` lines/s
    /// each for `secs`.
    fn live_agent(&mut self, bin: &Path, name: &str, files: usize, rate: usize, secs: u64) -> LiveRun {
        let total = files * rate * secs as usize;
        // `files` files appended by this process.
        let topic = self.topic(name);
        let d = self.run_dir(name);
        let paths: Vec<PathBuf> = (0..files).map(|i| d.join(format!("f{i}.log"))).collect();
        for p in &paths {
            std::fs::write(p, b"").unwrap();
        }
        let specs: Vec<(PathBuf, String)> = paths.iter().map(|p| (p.clone(), topic.clone())).collect();
        let cfg = self.config(&d, &specs, "start_position: beginning\n");
        let mut child = self.spawn_bin(bin, &cfg);
        std::thread::sleep(Duration::from_secs(1));
        let reader = self.latency_reader(&topic, total, secs);
        let (cpu0, _, _) = sample(child.id());
        let t0 = Instant::now();
        let mut handles: Vec<std::fs::File> =
            paths.iter().map(|p| std::fs::OpenOptions::new().append(true).open(p).unwrap()).collect();
        let mut peak_rss = 0;
        for t in 0..(secs as u32 * 100) {
            if let Some(w) = (t0 + Duration::from_millis(10) * t).checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            for (i, h) in handles.iter_mut().enumerate() {
                let n = lines_at(t, i, rate);
                if n == 0 {
                    continue;
                }
                let mut buf = Vec::with_capacity(n * LINE_BYTES);
                for _ in 0..n {
                    live_line(&mut buf);
                    buf.push(b'\n');
                }
                h.write_all(&buf).unwrap();
            }
            if t % 100 == 0 {
                peak_rss = peak_rss.max(sample(child.id()).1);
            }
        }
        let wall = t0.elapsed().as_secs_f64();
        let (cpu1, rss, _) = sample(child.id());
        let (read_back, lat) = reader.join().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
        LiveRun { read_back, lat, cpu_pct, rss, peak_rss }
    }

    // --- 3. idle scale ------------------------------------------------------------------------

    fn idle_scale(&mut self) -> Vec<Row> {
        let files = 1000;
        let secs = if self.quick { 20 } else { 60 };
        let topic = self.topic("idle");
        let d = self.run_dir("idle");
        let specs: Vec<(PathBuf, String)> = (0..files)
            .map(|i| {
                let p = d.join(format!("idle{i}.log"));
                std::fs::write(&p, b"").unwrap();
                (p, topic.clone())
            })
            .collect();
        let cfg = self.config(&d, &specs, "");
        let mut child = self.spawn_agent(&cfg);
        std::thread::sleep(Duration::from_secs(3)); // let every tail start
        let (cpu0, _, _) = sample(child.id());
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(secs));
        let (cpu1, rss, threads) = sample(child.id());
        let cpu_pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let rss_mib = rss as f64 / 1024.0;
        let s = "3. idle scale";
        vec![
            row(
                s,
                &format!("{files} files, no writes, {secs} s: CPU"),
                format!("{cpu_pct:.2} % of a core"),
                "< 0.1 % (issue 15)",
                Some(cpu_pct < 0.1),
            ),
            row(s, "RSS", format!("{rss_mib:.1} MiB"), "< 24 MiB (issue 15)", Some(rss_mib < 24.0)),
            row(s, "threads", format!("{threads}"), "", None),
        ]
    }

    // --- 10. ten thousand files ----------------------------------------------------------------

    /// Issue 15, as a new user tries it: one glob matching 10,000 files of 10 lines each; the
    /// time from start until every line is in Kafka (read back), then the idle agent's CPU, RSS
    /// and threads.
    fn many_files(&mut self) -> Vec<Row> {
        let (files, per_file, idle_secs) = (10_000usize, 10usize, if self.quick { 10 } else { 30 });
        let topic = self.topic("many");
        let d = self.run_dir("many");
        let logs = d.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for i in 0..files {
            let mut text = String::new();
            for j in 0..per_file {
                text.push_str(&format!("file {i:05} line {j} {}\n", "x".repeat(80)));
            }
            std::fs::write(logs.join(format!("f{i:05}.log")), text).unwrap();
        }
        let cfg = self.config(&d, &[(logs.join("*.log"), topic.clone())], "start_position: beginning\n");
        let total = files * per_file;
        let reader = ReadyReader::start(&self.addr(), &topic, total, Duration::from_secs(300));
        let start = Instant::now();
        let mut child = self.spawn_agent(&cfg);
        let (got, last) = reader.join();
        let shipped = last.duration_since(start).as_secs_f64();
        std::thread::sleep(Duration::from_secs(3));
        let (cpu0, _, _) = sample(child.id());
        let t0 = Instant::now();
        std::thread::sleep(Duration::from_secs(idle_secs));
        let (cpu1, rss, threads) = sample(child.id());
        let cpu_pct = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        assert_eq!(got, total, "every line of the 10,000 files");
        let rss_mib = rss as f64 / 1024.0;
        let s = "10. ten thousand files";
        vec![
            row(
                s,
                &format!("{files} files x {per_file} lines: all in Kafka after"),
                format!("{shipped:.2} s"),
                "< 3 s",
                Some(shipped < 3.0),
            ),
            row(
                s,
                &format!("then idle {idle_secs} s: CPU"),
                format!("{cpu_pct:.2} % of a core"),
                "< 0.5 %",
                Some(cpu_pct < 0.5),
            ),
            row(s, "idle RSS, threads", format!("{rss_mib:.0} MiB, {threads}"), "< 128 MiB", Some(rss_mib < 128.0)),
        ]
    }

    // --- 4. reaction --------------------------------------------------------------------------

    fn reaction(&mut self) -> Vec<Row> {
        let changes = 10;
        let topic = self.topic("react");
        let d = self.run_dir("react");
        let cfg_extra = format!(
            "start_position: beginning\netcdconfig: [\"127.0.0.1:{}\"]\netcdkeys: [\"bench\"]\netcd_allowed_paths: [\"{}\"]\n",
            self.etcd_port,
            d.display()
        );
        let cfg = self.config(&d, &[], &cfg_extra);
        let mut child = self.spawn_agent(&cfg);
        let c = consumer(&self.addr(), &topic);
        let wait_for = |c: &BaseConsumer, want: &str| -> f64 {
            let start = Instant::now();
            loop {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(5)) {
                    if m.payload() == Some(want.as_bytes()) {
                        return start.elapsed().as_secs_f64() * 1000.0;
                    }
                }
                assert!(start.elapsed() < Duration::from_secs(30), "no reaction to {want}");
            }
        };
        std::thread::sleep(Duration::from_secs(1));
        let mut etcd_ms = Vec::new();
        let mut entries = Vec::new();
        for i in 0..changes {
            let p = d.join(format!("etcd{i}.log"));
            std::fs::write(&p, format!("etcd-{i}\n")).unwrap();
            entries.push(format!("{{\"path\":\"{}\",\"topic\":\"{topic}\"}}", p.display()));
            let value = format!("[{}]", entries.join(","));
            let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", b64("bench"), b64(&value));
            let out = Command::new("curl")
                .args(["-fs", "-X", "POST", &format!("http://127.0.0.1:{}/v3/kv/put", self.etcd_port), "-d", &body])
                .output()
                .unwrap();
            assert!(out.status.success());
            etcd_ms.push(wait_for(&c, &format!("etcd-{i}")));
        }
        let mut yaml_ms = Vec::new();
        let mut files = Vec::new();
        for i in 0..changes {
            let p = d.join(format!("yaml{i}.log"));
            std::fs::write(&p, format!("yaml-{i}\n")).unwrap();
            files.push((p, topic.clone()));
            self.config(&d, &files, &cfg_extra);
            yaml_ms.push(wait_for(&c, &format!("yaml-{i}")));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let (e, y) = (median(etcd_ms), median(yaml_ms));
        let s = "4. reaction";
        vec![
            row(
                s,
                &format!("etcd put -> first line in topic (median of {changes})"),
                format!("{e:.0} ms"),
                "< 1 s",
                Some(e < 1000.0),
            ),
            row(
                s,
                &format!("config.yaml edit -> first line (median of {changes})"),
                format!("{y:.0} ms"),
                "< 1 s",
                Some(y < 1000.0),
            ),
        ]
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}
