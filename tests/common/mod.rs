//! Shared pieces of the integration tests: a real tansu broker, the real logcatch binary, and a
//! consumer that reads back exactly what reached a topic. Every process started here is killed by
//! PID when its guard drops; every test gets its own ports and temp dir.
#![allow(dead_code)]

pub mod proxy;

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

/// Polls `cond` every 20 ms until it holds or `limit` passes; panics with `what` on timeout.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port for a server a test starts. It lies below the kernel's ephemeral range, so no outgoing
/// connection (a client's, curl's, rdkafka's) can take it between this call and the server's bind,
/// and it is never one this process handed out before. (`bind(0)` ports, used before, come from
/// that range; the likely cause of a 3-member etcd that never formed in CI.)
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .filter(|low| *low > 12_000)
        .unwrap_or(32_768);
    let span = ephemeral_low - 10_000;
    let base = std::process::id().wrapping_mul(7_919) % span;
    for _ in 0..span {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (10_000 + (base + n) % span) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port between 10000 and {ephemeral_low}");
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// Kills a child by PID when dropped.
pub struct Proc {
    pub child: Option<Child>,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map(|c| c.id() as i32).unwrap_or(-1)
    }
    pub fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }
    /// Waits for the process to exit; its exit code (None when killed by a signal).
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.child = None;
                return st.code();
            }
            if Instant::now() > deadline {
                panic!("{} did not exit within {limit:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// SIGSTOP, then waits until every thread of the process is stopped (`kill` returns before
    /// they are: a thread may still read a line written just after it).
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.pid());
        wait_until(Duration::from_secs(10), "every thread stopped", || {
            std::fs::read_dir(&tasks).into_iter().flatten().flatten().all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the command name, which ends with the last ')'.
                stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
            })
        });
    }
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().unwrap().is_none(),
            None => false,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which broker the tests run against: `LOGCATCH_TEST_BROKER=tansu` (the default: starts in
/// milliseconds) or `kafka` (Apache Kafka 4.x in KRaft mode, through scripts/kafka.sh). The same
/// test code runs on both; the test command runs the core, delivery and stall tests on each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerKind {
    Tansu,
    Kafka,
}

pub fn broker_kind() -> BrokerKind {
    match std::env::var("LOGCATCH_TEST_BROKER").as_deref() {
        Ok("kafka") => BrokerKind::Kafka,
        Ok("tansu") | Err(_) => BrokerKind::Tansu,
        Ok(other) => panic!("LOGCATCH_TEST_BROKER={other:?}: tansu or kafka"),
    }
}

/// Apache Kafka nodes started by scripts/kafka.sh in `dir`, stopped by PID when dropped.
pub struct KafkaNodes {
    pub dir: PathBuf,
    pub bootstrap: String,
    mode: &'static str,
    /// What `start` printed besides BOOTSTRAP (`secure` mode: SSL=, SASL_SSL=, PKI=).
    pub printed: std::collections::HashMap<String, String>,
}

impl KafkaNodes {
    fn script() -> &'static str {
        concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/kafka.sh")
    }

    /// `mode`: "single", "cluster" (3 nodes, replication factor 3, min.insync.replicas=2) or
    /// "secure" (one node with TLS listeners too).
    pub fn start(dir: &Path, mode: &'static str) -> KafkaNodes {
        let printed = Self::run_start(dir, mode);
        KafkaNodes { dir: dir.to_path_buf(), bootstrap: printed["BOOTSTRAP"].clone(), mode, printed }
    }

    /// `scripts/kafka.sh start MODE DIR`: returns once every node accepts requests, with the
    /// KEY=VALUE lines it prints (BOOTSTRAP at least). On a DIR it formatted before, the stopped
    /// nodes come back.
    fn run_start(dir: &Path, mode: &str) -> std::collections::HashMap<String, String> {
        let out = Command::new("bash").arg(Self::script()).args(["start", mode]).arg(dir).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let printed: std::collections::HashMap<String, String> =
            stdout.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if !out.status.success() || !printed.contains_key("BOOTSTRAP") {
            panic!("scripts/kafka.sh start {mode}: {}{stdout}", String::from_utf8_lossy(&out.stderr));
        }
        printed
    }

    /// The PID of node `id` (1-based).
    pub fn pid(&self, id: u32) -> Option<i32> {
        std::fs::read_to_string(self.dir.join(format!("node-{id}.pid"))).ok()?.trim().parse().ok()
    }

    pub fn stop(&self) {
        let _ = Command::new("bash").arg(Self::script()).arg("stop").arg(&self.dir).status();
    }

    /// Starts every stopped node again, with its data, on its ports.
    pub fn restart(&self) {
        assert_eq!(Self::run_start(&self.dir, self.mode)["BOOTSTRAP"], self.bootstrap, "same ports after a restart");
    }
}

impl Drop for KafkaNodes {
    fn drop(&mut self) {
        self.stop();
    }
}

pub use logcatch::sink::positions::block_on;

/// The test broker: tansu, or Apache Kafka (see `broker_kind`).
pub struct Broker {
    pub port: u16,
    pub proc: Proc,
    storage: String,
    log: PathBuf,
    pub kafka: Option<KafkaNodes>,
}

impl Broker {
    /// In-memory storage (tansu); Apache Kafka always keeps its data on disk.
    pub fn start(dir: &Path) -> Broker {
        match broker_kind() {
            BrokerKind::Tansu => Broker::start_with(dir, "memory://tansu/".into(), free_port()),
            BrokerKind::Kafka => Broker::start_kafka(dir, "single"),
        }
    }

    /// On-disk storage (survives a restart of the broker).
    pub fn start_on_disk(dir: &Path) -> Broker {
        match broker_kind() {
            // tansu 0.6 takes the sqlite path relative to its working directory (an absolute
            // one is mangled), and runs in `dir`.
            BrokerKind::Tansu => Broker::start_with(dir, "sqlite://tansu.db".into(), free_port()),
            BrokerKind::Kafka => Broker::start_kafka(dir, "single"),
        }
    }

    /// Apache Kafka whatever `broker_kind` says: "single", or "cluster" (3 nodes).
    pub fn start_kafka(dir: &Path, mode: &'static str) -> Broker {
        let nodes = KafkaNodes::start(&dir.join("kafka"), mode);
        let port = nodes.bootstrap.split(',').next().and_then(|a| a.rsplit(':').next()).unwrap().parse().unwrap();
        Broker {
            port,
            proc: Proc { child: None, name: "kafka".into() },
            storage: String::new(),
            log: PathBuf::new(),
            kafka: Some(nodes),
        }
    }

    fn start_with(dir: &Path, storage: String, port: u16) -> Broker {
        let log = dir.join(format!("tansu-{port}.log"));
        let proc = spawn_tansu(&storage, port, &log);
        let b = Broker { port, proc, storage, log, kafka: None };
        b.wait_ready();
        b
    }

    fn wait_ready(&self) {
        let port = self.port;
        wait_until(Duration::from_secs(30), "the tansu broker to listen", || port_open(port));
    }

    pub fn addr(&self) -> String {
        match &self.kafka {
            Some(k) => k.bootstrap.clone(),
            None => format!("127.0.0.1:{}", self.port),
        }
    }

    pub fn stop(&mut self) {
        match &self.kafka {
            Some(k) => k.stop(),
            None => self.proc.kill(),
        }
    }

    /// kill -9 of the broker (every node of Apache Kafka); `restart` brings it back.
    pub fn kill9(&mut self) {
        match &self.kafka {
            Some(k) => {
                for id in 1..=3 {
                    if let Some(pid) = k.pid(id) {
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                }
            }
            None => self.proc.kill(),
        }
    }

    /// Starts it again on the same port and storage.
    pub fn restart(&mut self) {
        if let Some(k) = &self.kafka {
            k.stop();
            k.restart();
            return;
        }
        self.proc.kill();
        self.proc = spawn_tansu(&self.storage, self.port, &self.log);
        self.wait_ready();
    }

    pub fn create_topic(&self, name: &str) {
        self.create_topic_partitions(name, 1);
    }

    pub fn create_topic_partitions(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// A topic with topic-level settings (Apache Kafka's, such as `max.message.bytes`; tansu
    /// has none of these limits, and gets a plain topic).
    pub fn create_topic_with(&self, name: &str, partitions: i32, settings: &[(&str, &str)]) {
        if let Some(k) = &self.kafka {
            use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
            use rdkafka::client::DefaultClientContext;
            let admin: AdminClient<DefaultClientContext> =
                ClientConfig::new().set("bootstrap.servers", &k.bootstrap).create().expect("admin client");
            let replicas = k.bootstrap.split(',').count() as i32;
            let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
            for (key, value) in settings {
                topic = topic.set(key, value);
            }
            let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
            let res = block_on(admin.create_topics(&[topic], &opts)).expect("create_topics");
            for r in res {
                r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e}"));
            }
            return;
        }
        let out = Command::new("tansu")
            .args([
                "topic",
                "create",
                name,
                "--broker",
                &format!("tcp://{}", self.addr()),
                "--partitions",
                &partitions.to_string(),
            ])
            .output()
            .expect("run tansu topic create");
        assert!(out.status.success(), "tansu topic create {name}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// Every message in partition 0 of `topic`, read until `want` arrived (then a little longer
    /// to catch extras) or `limit` passed.
    pub fn read(&self, topic: &str, want: usize, limit: Duration) -> Vec<Msg> {
        self.read_partitions(topic, &[0], want, limit)
    }

    /// Every message in the given partitions of `topic` (read_committed: at-least-once lines
    /// are not in transactions, so this is every message), until `want` arrived (then 500 ms
    /// more to catch extras) or `limit` passed. Order is kept within each partition.
    pub fn read_partitions(&self, topic: &str, partitions: &[i32], want: usize, limit: Duration) -> Vec<Msg> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.addr())
            .set("group.id", "logcatch-tests")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("log_level", "3")
            .create()
            .expect("consumer");
        let mut tpl = TopicPartitionList::new();
        for p in partitions {
            tpl.add_partition_offset(topic, *p, Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = Instant::now() + limit;
        let mut extra_until: Option<Instant> = None;
        loop {
            let now = Instant::now();
            if now > deadline || extra_until.is_some_and(|t| now > t) {
                break;
            }
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                use rdkafka::message::Headers;
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| {
                                (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned())
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push(Msg {
                    key: m.key().map(|k| k.to_vec()),
                    value: m.payload().unwrap_or_default().to_vec(),
                    headers,
                });
            }
            if out.len() >= want && extra_until.is_none() {
                extra_until = Some(Instant::now() + Duration::from_millis(500));
            }
        }
        out
    }

    /// The values in `topic` as strings, waiting for `want` of them.
    pub fn lines(&self, topic: &str, want: usize, limit: Duration) -> Vec<String> {
        self.read(topic, want, limit).into_iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect()
    }
}

fn spawn_tansu(storage: &str, port: u16, log: &Path) -> Proc {
    let url = format!("tcp://127.0.0.1:{port}");
    let logf = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    let child = Command::new("tansu")
        .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", storage])
        .current_dir(log.parent().unwrap())
        .stdout(Stdio::null())
        .stderr(logf)
        .spawn()
        .expect("start tansu (run scripts/install-deps.sh)");
    Proc { child: Some(child), name: format!("tansu:{port}") }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Msg {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    /// The message's headers, as text, in order.
    pub headers: Vec<(String, String)>,
}

/// Messages grouped by key (the configured path of the file they came from), in topic order.
pub fn by_file(msgs: &[Msg]) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for m in msgs {
        let key = String::from_utf8_lossy(m.key.as_deref().unwrap_or_default()).into_owned();
        out.entry(key).or_default().push(String::from_utf8_lossy(&m.value).into_owned());
    }
    out
}

/// The logcatch binary under test.
pub struct Agent {
    pub proc: Proc,
    pub log: PathBuf,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_logcatch")
}

impl Agent {
    pub fn start(config: &Path) -> Agent {
        Agent::start_env(config, &[])
    }

    pub fn start_env(config: &Path, env: &[(&str, &str)]) -> Agent {
        Agent::spawn(Command::new(bin()), config, env)
    }

    /// The agent with a soft limit of `n` open descriptors (`ulimit -n`).
    pub fn start_with_fd_limit(config: &Path, n: u32) -> Agent {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(format!("ulimit -n {n} && exec \"$0\" \"$@\"")).arg(bin());
        Agent::spawn(cmd, config, &[])
    }

    /// The agent in a user namespace of its own whose inotify watch limit is `watches` (the
    /// host's limit, reached without changing the machine's sysctl). None where the host allows
    /// no user namespaces, or no per-namespace limit to set.
    pub fn start_with_inotify_limit(config: &Path, watches: u32) -> Option<Agent> {
        let set_limit = format!("echo {watches} > /proc/sys/user/max_inotify_watches");
        let probe = Command::new("unshare").args(["-Ur", "sh", "-c", &set_limit]).stderr(Stdio::null()).status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        let mut cmd = Command::new("unshare");
        cmd.args(["-Ur", "sh", "-c"]).arg(format!("{set_limit} && exec \"$0\" \"$@\"")).arg(bin());
        Some(Agent::spawn(cmd, config, &[]))
    }

    /// The agent as root without the capabilities that let root read past a file's mode
    /// (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, dropped by util-linux's `setpriv` from the bounding
    /// and inheritable sets, so a restart in place keeps them dropped): a directory made mode 000
    /// stops it as it stops an unprivileged agent. None where `setpriv` is missing or refuses.
    pub fn start_without_dac(config: &Path) -> Option<Agent> {
        const DROP: &str = "-dac_override,-dac_read_search";
        let args = [format!("--inh-caps={DROP}"), format!("--bounding-set={DROP}"), "--".into()];
        let probe = Command::new("setpriv").args(&args).arg("true").stderr(Stdio::null()).status();
        if !probe.is_ok_and(|s| s.success()) {
            return None;
        }
        let mut cmd = Command::new("setpriv");
        cmd.args(&args).arg(bin());
        Some(Agent::spawn(cmd, config, &[]))
    }

    fn spawn(mut cmd: Command, config: &Path, env: &[(&str, &str)]) -> Agent {
        let log = config.with_extension("stderr.log");
        let logf = std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap();
        cmd.arg("-c").arg(config).stdout(Stdio::null()).stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start logcatch");
        Agent { proc: Proc { child: Some(child), name: "logcatch".into() }, log }
    }

    /// SIGTERM, then the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        self.proc.signal(libc::SIGTERM);
        self.proc.wait_exit(Duration::from_secs(30))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the agent's log contains `needle` (bounded).
    pub fn wait_log(&self, needle: &str, limit: Duration) {
        wait_until(limit, &format!("{needle:?} in the agent's log"), || self.log_text().contains(needle));
    }
}

impl Drop for Agent {
    /// A failing test shows the end of the agent's log.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = self.log_text();
            // The periodic metrics lines would fill the window.
            let lines: Vec<&str> = text.lines().filter(|l| !l.contains("] metrics: ")).collect();
            eprintln!("---- last lines of the agent's log ({}):", self.log.display());
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Appends lines (each gets a newline).
pub fn append(path: &Path, lines: &[String]) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let mut buf = Vec::new();
    for l in lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
    }
    f.write_all(&buf).unwrap();
}

pub fn numbered(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}-{i:06}")).collect()
}

/// A config.yaml in `dir` shipping `files` (path, topic) to `broker`, with extra YAML appended
/// (which may hold a whole `kafkaconfig:` of its own).
pub fn write_config(dir: &Path, broker: &str, files: &[(&Path, &str)], extra: &str) -> PathBuf {
    let mut y = format!(
        "catsyslog: {{logpath: {}/agent.log, loglevel: debug}}\ndata_dir: {}/data\npoll_interval: 50ms\nrotate_wait: 1s\n",
        dir.display(),
        dir.display()
    );
    // `extra` may bring its own kafkaconfig (with properties); otherwise the broker alone.
    if !extra.contains("kafkaconfig:") {
        y.push_str(&format!("kafkaconfig: {{kafkaaddr: \"{broker}\"}}\n"));
    }
    if files.is_empty() {
        y.push_str("collectlogs: []\n");
    } else {
        y.push_str("collectlogs:\n");
        for (p, t) in files {
            y.push_str(&format!("  - {{logpath: \"{}\", logtopic: {t}}}\n", p.display()));
        }
    }
    y.push_str(extra);
    let path = dir.join("config.yaml");
    // Write then rename, as an editor would, so the agent never reads half a file.
    let tmp = dir.join(".config.yaml.tmp");
    std::fs::write(&tmp, y).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// One etcd member (or one of a cluster) on its own ports.
pub struct EtcdMember {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    pub proc: Proc,
    data: PathBuf,
    cluster: String,
    log: PathBuf,
}

impl EtcdMember {
    fn spawn(&mut self, state: &str) {
        let logf = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let c = format!("http://127.0.0.1:{}", self.client_port);
        let p = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", &self.name, "--data-dir"])
            .arg(&self.data)
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
            .args(["--initial-cluster", &self.cluster, "--initial-cluster-state", state])
            .args(["--initial-cluster-token", "logcatch-test"])
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("start etcd (run scripts/install-deps.sh)");
        self.proc = Proc { child: Some(child), name: self.name.clone() };
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn kill(&mut self) {
        self.proc.kill();
    }

    /// Starts the member again with its data (rejoins its cluster).
    pub fn restart(&mut self) {
        self.spawn("existing");
        self.wait_ready(Duration::from_secs(30));
    }

    /// Waits until the member answers a range request; if it exits first, or never answers,
    /// panics with the end of its own log (the reason is there, not in a timeout).
    fn wait_ready(&mut self, limit: Duration) {
        let ep = self.endpoint();
        let deadline = Instant::now() + limit;
        while !etcd_ready(&ep) {
            let why = if !self.proc.is_running() {
                "exited"
            } else if Instant::now() > deadline {
                "did not answer in time"
            } else {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            };
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
            panic!("etcd member {} on {ep} {why} (limit {limit:?}); its log ends:\n{}", self.name, tail.join("\n"));
        }
    }
}

fn etcd_ready(endpoint: &str) -> bool {
    Command::new("curl")
        .args(["-fs", "-m", "1", "-X", "POST", &format!("http://{endpoint}/v3/kv/range"), "-d", "{\"key\":\"AA==\"}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// An etcd cluster of `n` members (1 or 3).
pub struct Etcd {
    pub members: Vec<EtcdMember>,
    /// The members' data, on tmpfs when the host has one: the tests check the agent, not etcd's
    /// durability, and every etcd write waits for an fsync, which on a freshly booted VM's disk
    /// took long enough that puts failed for 20 s and a 3-member cluster never formed.
    _data: Option<tempfile::TempDir>,
}

impl Etcd {
    pub fn start(dir: &Path, n: usize) -> Etcd {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let cluster = ports
            .iter()
            .enumerate()
            .map(|(i, (_, p))| format!("m{i}=http://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let data = tempfile::Builder::new().prefix("logcatch-etcd-").tempdir_in("/dev/shm").ok();
        let data_dir = data.as_ref().map_or(dir, |d| d.path()).to_path_buf();
        let mut members: Vec<EtcdMember> = ports
            .iter()
            .enumerate()
            .map(|(i, (c, p))| EtcdMember {
                name: format!("m{i}"),
                client_port: *c,
                peer_port: *p,
                proc: Proc { child: None, name: String::new() },
                data: data_dir.join(format!("etcd-m{i}")),
                cluster: cluster.clone(),
                log: dir.join(format!("etcd-m{i}.log")),
            })
            .collect();
        for m in members.iter_mut() {
            m.spawn("new");
        }
        for m in members.iter_mut() {
            m.wait_ready(Duration::from_secs(60));
        }
        Etcd { members, _data: data }
    }

    /// Starts every member again (a lone member cannot answer without quorum), then waits.
    pub fn restart_all(&mut self) {
        for m in self.members.iter_mut() {
            m.proc.kill();
            m.spawn("existing");
        }
        for m in self.members.iter_mut() {
            m.wait_ready(Duration::from_secs(60));
        }
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.endpoint()).collect()
    }

    /// Runs scripts/etcd-logconf against member `via` (a live one).
    pub fn logconf(&self, via: usize, args: &[&str]) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/etcd-logconf");
        // Right after a member dies etcd may answer 503 while it elects a leader: retry (bounded).
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = Command::new("bash")
                .arg(script)
                .args(args)
                .env("ETCD_ENDPOINT", self.members[via].endpoint())
                .output()
                .expect("run etcd-logconf");
            if out.status.success() {
                return;
            }
            assert!(Instant::now() < deadline, "etcd-logconf {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn put(&self, key: &str, pairs: &[(&Path, &str)]) {
        let pairs: Vec<String> = pairs.iter().map(|(p, t)| format!("{}={t}", p.display())).collect();
        let mut args = vec!["put", key];
        args.extend(pairs.iter().map(String::as_str));
        self.logconf(self.live(), &args);
    }

    /// `etcdctl get` of one key: its value, or None.
    pub fn get(&self, key: &str) -> Option<String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoints()[self.live()]))
            .args(["get", key, "--print-value-only"])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !text.is_empty()).then_some(text)
    }

    pub fn put_raw(&self, key: &str, text: &str) {
        self.logconf(self.live(), &["raw", key, text]);
    }

    pub fn delete(&self, key: &str) {
        self.logconf(self.live(), &["del", key]);
    }

    /// Compacts the store up to its current revision (`etcdctl compact`): watches from an older
    /// revision are answered "compacted".
    pub fn compact(&self) {
        let endpoint = format!("--endpoints={}", self.endpoints()[self.live()]);
        let etcdctl =
            |args: &[&str]| Command::new("etcdctl").env("ETCDCTL_API", "3").arg(&endpoint).args(args).output().ok();
        let Some(out) = etcdctl(&["get", "/", "--prefix", "--keys-only", "-w", "fields"]) else { return };
        let text = String::from_utf8_lossy(&out.stdout);
        let revision = text.lines().find_map(|l| l.strip_prefix("\"Revision\" : ")?.trim().parse::<u64>().ok());
        if let Some(rev) = revision {
            etcdctl(&["compact", &rev.to_string()]);
        }
    }

    fn live(&self) -> usize {
        self.members.iter().position(|m| m.proc.child.is_some()).expect("a live etcd member")
    }
}

/// YAML for etcd settings.
pub fn etcd_yaml(endpoints: &[String], keys: &[&str], allowed: &Path) -> String {
    format!(
        "etcdconfig: [{}]\netcdkeys: [{}]\netcd_allowed_paths: [\"{}\"]\n",
        endpoints.iter().map(|e| format!("\"{e}\"")).collect::<Vec<_>>().join(", "),
        keys.iter().map(|k| format!("\"{k}\"")).collect::<Vec<_>>().join(", "),
        allowed.display()
    )
}

/// The value of metric `name` (no labels) in the metrics file at `path`, if written yet.
pub fn metric(path: &Path, name: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The "a line Kafka can never take" scenario (issue 18), for whichever limit refuses it:
/// `kafka_properties` is the YAML map of `kafkaconfig.properties` ("{}" for none). With
/// `max_line_bytes: 4MiB`, a 1.5 MB line between 5 lines before and 5 after, and another file
/// written meanwhile: the line is given up with the documented error and counted; the lines
/// after it, and the other file's, ship; nothing is left owed at the stop. `extra`: more config
/// (`delivery: exactly_once`).
pub fn a_huge_line_is_given_up_and_holds_nothing_up(dir: &Path, broker: &Broker, kafka_properties: &str, extra: &str) {
    let t = Duration::from_secs(60);
    broker.create_topic("w1");
    broker.create_topic("w2");
    let (big, other) = (dir.join("big.log"), dir.join("other.log"));
    let metrics = dir.join("metrics.prom");
    append(&big, &numbered("before", 0..5));
    append(&big, &["y".repeat(1_500_000)]);
    append(&big, &numbered("after", 0..5));
    let cfg = write_config(
        dir,
        &broker.addr(),
        &[(&big, "w1"), (&other, "w2")],
        &format!(
            "start_position: beginning\nmax_line_bytes: 4MiB\nkafkaconfig: {{kafkaaddr: \"{}\", properties: {kafka_properties}}}\nmetrics: {{path: \"{}\", interval: 200ms}}\n{extra}",
            broker.addr(),
            metrics.display()
        ),
    );
    let mut agent = Agent::start(&cfg);
    append(&other, &numbered("o", 0..100));
    assert_eq!(broker.lines("w2", 100, t), numbered("o", 0..100));
    let mut want = numbered("before", 0..5);
    want.extend(numbered("after", 0..5));
    assert_eq!(broker.lines("w1", 10, t), want);
    agent.wait_log("a 1500000-byte message to topic w1 can never be delivered", t);
    wait_until(t, "logcatch_producer_dropped_total 1", || {
        metric(&metrics, "logcatch_producer_dropped_total") == Some(1.0)
    });
    assert_eq!(agent.terminate(), Some(0));
    assert!(agent.log_text().contains("stopped: every line was delivered"), "nothing is left owed");
}

/// The torture tests' writer: `per_file` numbered lines into each of `paths` (prefixed with its
/// `names` entry), 1,000 lines/s per file in batches of 50; the first file is rotated by rename
/// every 4,000 lines (`x.log.1`, `x.log.2`, ...), the second by copytruncate every 3,000
/// (`x.log.3000`, ...). The flag is raised when every line is written.
pub fn rotating_writer(
    paths: Vec<PathBuf>,
    names: &'static [&'static str],
    per_file: usize,
) -> (std::thread::JoinHandle<()>, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    let handle = std::thread::spawn(move || {
        let mut gen = 0;
        for start in (0..per_file).step_by(50) {
            for (i, p) in paths.iter().enumerate() {
                append(p, &numbered(names[i], start..start + 50));
            }
            let written = start + 50;
            if written % 4000 == 0 {
                gen += 1;
                std::fs::rename(&paths[0], paths[0].with_extension(format!("log.{gen}"))).unwrap();
            }
            if written % 3000 == 0 {
                std::fs::copy(&paths[1], paths[1].with_extension(format!("log.{written}"))).unwrap();
                std::fs::OpenOptions::new().write(true).open(&paths[1]).unwrap().set_len(0).unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
    });
    (handle, done)
}

/// The outage tests' writer: `n` numbered lines ("l0000"...) into `path`, 10 every 100 ms
/// (100 lines/s).
pub fn steady_writer(path: &Path, n: usize) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for start in (0..n).step_by(10) {
            append(&path, &numbered("l", start..start + 10));
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Issue 25, as an operator met it: a log of a 300-byte banner and 1,000 lines shipped, the
/// agent stopped, the file deleted and written anew with the same banner and 2,000 new lines
/// (ext4 gives the new file the old inode): all 2,000 arrive, the new file read from its start.
/// `extra`: more config (`delivery: exactly_once`).
pub fn a_new_file_with_the_old_banner_is_read_from_its_start(dir: &Path, broker: &Broker, extra: &str) {
    const T: Duration = Duration::from_secs(60);
    broker.create_topic("t");
    let a = dir.join("a.log");
    let banner = "=".repeat(300);
    let mut first = vec![banner.clone()];
    first.extend(numbered("old", 0..1000));
    append(&a, &first);
    let cfg = write_config(dir, &broker.addr(), &[(&a, "t")], &format!("start_position: beginning\n{extra}"));
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 1001, T), first);
    assert_eq!(agent.terminate(), Some(0));
    let ino = |p: &Path| std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(p).unwrap());
    let old_ino = ino(&a);
    std::fs::remove_file(&a).unwrap();
    let mut second = vec![banner];
    second.extend(numbered("new", 0..2000));
    append(&a, &second);
    if ino(&a) != old_ino {
        eprintln!("note: this filesystem gave the new file another inode; the test then proves less");
    }
    let mut agent = Agent::start(&cfg);
    let mut want = first.clone();
    want.extend(second);
    let got = broker.lines("t", 3002, T);
    assert!(
        got == want,
        "{} lines, {} expected; the first that differs: {:?}",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(g, w)| g != w)
    );
    assert_eq!(agent.terminate(), Some(0));
}

/// The real `systemd-analyze` on a unit file: `verify` says nothing about it, and `security
/// --offline=yes` rates its exposure 2.0 or less ("OK"). Its ExecStart binary must exist.
pub fn assert_unit_verified_and_hardened(path: &Path) {
    let out = Command::new("systemd-analyze").arg("verify").arg(path).output().unwrap();
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains("logcatch.service:"), "systemd-analyze verify:\n{said}");
    let out = Command::new("systemd-analyze").args(["security", "--offline=yes"]).arg(path).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for logcatch.service: ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}{}", String::from_utf8_lossy(&out.stderr)));
    assert!(score <= 2.0, "exposure {score}:\n{text}");
}
