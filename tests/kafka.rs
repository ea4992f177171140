//! Against Apache Kafka itself (issue 11), whatever LOGCATCH_TEST_BROKER says: what tansu cannot
//! show. A 3-node KRaft cluster (replication factor 3, min.insync.replicas=2) that loses the
//! leader of the partition being written; a topic of 6 partitions; a line the broker refuses.
//! The agent runs with its defaults: acks=all, idempotence.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use common::*;

const T: Duration = Duration::from_secs(60);

/// The node id leading partition `p` of `topic`.
fn leader(bootstrap: &str, topic: &str, p: i32) -> i32 {
    let c: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).create().unwrap();
    let md = c.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    md.topics()[0].partitions().iter().find(|x| x.id() == p).expect("partition").leader()
}

/// `files` files, each written at `rate` lines/s for `secs`, lines `f<i>-<n>`; returns what
/// was written per file.
fn write_live(paths: &[PathBuf], rate: usize, secs: u64, mut at_second: impl FnMut(u64)) -> Vec<Vec<String>> {
    let mut written = vec![Vec::new(); paths.len()];
    let mut handles: Vec<std::fs::File> =
        paths.iter().map(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).unwrap()).collect();
    let t0 = Instant::now();
    let per_tick = rate / 10;
    for tick in 0..(secs * 10) {
        if tick % 10 == 0 {
            at_second(tick / 10);
        }
        if let Some(w) = (t0 + Duration::from_millis(100) * tick as u32).checked_duration_since(Instant::now()) {
            std::thread::sleep(w);
        }
        for (i, h) in handles.iter_mut().enumerate() {
            let mut buf = String::new();
            for _ in 0..per_tick {
                let line = format!("f{i}-{:06}", written[i].len());
                buf.push_str(&line);
                buf.push('\n');
                written[i].push(line);
            }
            h.write_all(buf.as_bytes()).unwrap();
        }
    }
    written
}

#[test]
fn killing_the_partition_leader_under_load_loses_nothing_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start_kafka(d, "cluster");
    let k = broker.kafka.as_ref().unwrap();
    broker.create_topic("live");
    let metrics = d.join("metrics.prom");
    let paths: Vec<PathBuf> = (0..100).map(|i| d.join(format!("f{i}.log"))).collect();
    for p in &paths {
        std::fs::write(p, b"").unwrap();
    }
    let specs: Vec<(&std::path::Path, &str)> = paths.iter().map(|p| (p.as_path(), "live")).collect();
    let cfg = write_config(
        d,
        &broker.addr(),
        &specs,
        &format!("start_position: beginning\nmetrics: {{path: \"{}\", interval: 200ms}}\n", metrics.display()),
    );
    let mut agent = Agent::start(&cfg);
    let mut killed = None;
    let written = write_live(&paths, 200, 15, |second| {
        if second == 5 {
            let id = leader(&k.bootstrap, "live", 0);
            let pid = k.pid(id as u32).expect("the leader's pid");
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = Some(id);
        }
    });
    let killed = killed.expect("a leader was killed");
    let total: usize = written.iter().map(Vec::len).sum();
    let got = broker.read("live", total, Duration::from_secs(120));
    let by = by_file(&got);
    for (i, p) in paths.iter().enumerate() {
        let lines = by.get(&p.to_string_lossy().into_owned()).cloned().unwrap_or_default();
        assert_eq!(lines.len(), written[i].len(), "file {i}: every line, none twice (leader {killed} killed)");
        assert_eq!(lines, written[i], "file {i}: in order");
    }
    assert_ne!(leader(&k.bootstrap, "live", 0), killed, "a new leader was elected");
    wait_until(T, "logcatch_producer_broker_up 1", || metric(&metrics, "logcatch_producer_broker_up") == Some(1.0));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn six_partitions_keep_each_files_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start_kafka(d, "single");
    broker.create_topic_partitions("wide", 6);
    let paths: Vec<PathBuf> = (0..12).map(|i| d.join(format!("w{i}.log"))).collect();
    for (i, p) in paths.iter().enumerate() {
        append(p, &numbered(&format!("w{i}"), 0..500));
    }
    let specs: Vec<(&std::path::Path, &str)> = paths.iter().map(|p| (p.as_path(), "wide")).collect();
    let cfg = write_config(d, &broker.addr(), &specs, "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    let got = broker.read_partitions("wide", &[0, 1, 2, 3, 4, 5], 12 * 500, T);
    let by = by_file(&got);
    for (i, p) in paths.iter().enumerate() {
        let key = p.to_string_lossy().into_owned();
        assert_eq!(by.get(&key).cloned().unwrap_or_default(), numbered(&format!("w{i}"), 0..500), "file {i}");
    }
    assert_eq!(got.len(), 12 * 500, "nothing else, nothing twice");
    assert_eq!(agent.terminate(), Some(0));
}

/// Apache Kafka refuses a record over its `message.max.bytes` (1 MiB by default). With
/// `max_line_bytes: 4MiB` librdkafka lets a 1.5 MB line through and the broker refuses it in the
/// delivery report: it is given up with the documented error, and holds up neither the lines
/// after it nor another file.
#[test]
fn a_line_over_the_brokers_message_max_bytes_is_given_up_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_kafka(dir.path(), "single");
    a_huge_line_is_given_up_and_holds_nothing_up(dir.path(), &broker, "{}", "");
}
