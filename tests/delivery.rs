//! At-least-once delivery (issue 3) against the real broker: kills, restarts, outages and
//! rotations while the agent is down. Counts what is lost (must be 0) and duplicated.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::*;

/// The torture's files: rotated by rename, by copytruncate, not rotated.
const FILES: [&str; 3] = ["renamed", "copied", "plain"];

const T: Duration = Duration::from_secs(60);

fn setup(on_disk: bool) -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = if on_disk { Broker::start_on_disk(dir.path()) } else { Broker::start(dir.path()) };
    (dir, broker)
}

/// Reads `topic` until every one of `want` is there (or the limit passes); returns
/// (missing, duplicates).
fn lost_and_doubled(broker: &Broker, topic: &str, want: &[String], limit: Duration) -> (Vec<String>, usize) {
    let deadline = Instant::now() + limit;
    loop {
        let got = broker.lines(topic, want.len(), Duration::from_secs(10));
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for l in &got {
            *counts.entry(l.as_str()).or_default() += 1;
        }
        let missing: Vec<String> = want.iter().filter(|w| !counts.contains_key(w.as_str())).cloned().collect();
        let doubled = got.len() - counts.len();
        if missing.is_empty() || Instant::now() > deadline {
            return (missing, doubled);
        }
    }
}

/// A small xorshift generator; the seed is printed so a failing run can be replayed.
struct Rng(u64);
impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("TORTURE_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("torture seed: {seed} (TORTURE_SEED={seed} replays it)");
        Rng(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn torture_sigkill_while_files_rotate() {
    let (dir, broker) = setup(false);
    let files = FILES;
    for f in files {
        broker.create_topic(f);
    }
    let paths: Vec<_> = files.iter().map(|f| dir.path().join(format!("{f}.log"))).collect();
    let specs: Vec<(&Path, &str)> = paths.iter().zip(files).map(|(p, f)| (p.as_path(), f)).collect();
    let interval = std::env::var("TORTURE_CHECKPOINT_INTERVAL").unwrap_or_else(|_| "200ms".into());
    let cfg = write_config(
        dir.path(),
        &broker.addr(),
        &specs,
        &format!("start_position: beginning\ncheckpoint_interval: {interval}\n"),
    );
    let per_file = 15_000;

    // The writer (see rotating_writer): renamed.log is rotated by rename
    // every 4,000 lines, copied.log by copytruncate every 3,000.
    let (writer, done) = rotating_writer(paths.clone(), &FILES, per_file);

    let mut rng = Rng::new();
    let mut agent = Agent::start(&cfg);
    let mut kills = 0;
    while !done.load(Ordering::SeqCst) || kills < 5 {
        std::thread::sleep(Duration::from_millis(500 + rng.below(1500)));
        agent.proc.signal(libc::SIGKILL);
        agent.proc.wait_exit(Duration::from_secs(10));
        kills += 1;
        std::thread::sleep(Duration::from_millis(rng.below(500)));
        agent = Agent::start(&cfg);
    }
    writer.join().unwrap();

    let mut total_doubled = 0;
    for f in files {
        let want = numbered(f, 0..per_file);
        let (missing, doubled) = lost_and_doubled(&broker, f, &want, T);
        eprintln!("{f}: {kills} kills, {} lost, {doubled} duplicates of {per_file} lines", missing.len());
        assert!(missing.is_empty(), "{f}: {} lines lost, first: {:?}", missing.len(), &missing[..missing.len().min(5)]);
        total_doubled += doubled;
    }
    eprintln!("torture: {kills} SIGKILLs, 0 lost, {total_doubled} duplicates in all");
    assert_eq!(agent.terminate(), Some(0));
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn broker_down_for_20_seconds_loses_and_doubles_nothing() {
    let (dir, mut broker) = setup(true);
    broker.create_topic("t");
    let a = dir.path().join("a.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    let n = 3_000;
    let writer = steady_writer(&a, n); // 100 lines/s for 30 s
    std::thread::sleep(Duration::from_secs(5));
    broker.stop();
    std::thread::sleep(Duration::from_secs(20));
    broker.restart();
    writer.join().unwrap();
    let got = broker.lines("t", n, T);
    let peak = peak_rss_kib(agent.proc.pid());
    eprintln!("broker outage: {} of {n} lines, agent peak RSS {} KiB", got.len(), peak);
    assert_eq!(got, numbered("l", 0..n), "every line once, in order");
    assert!(peak < 128 * 1024, "peak RSS {peak} KiB is over the documented 128 MiB bound");
    assert_eq!(agent.terminate(), Some(0));
}

/// Ships `n` lines of `a`, stops the agent cleanly.
fn ship_and_stop(broker: &Broker, cfg: &Path, a: &Path, n: usize) {
    append(a, &[]);
    let mut agent = Agent::start(cfg);
    agent.wait_log("started at offset", T);
    append(a, &numbered("first", 0..n));
    assert_eq!(broker.lines("t", n, T).len(), n);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn rename_rotation_while_down_reads_the_old_file_first() {
    let (dir, broker) = setup(false);
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: end\n");
    ship_and_stop(&broker, &cfg, &a, 100);
    append(&a, &numbered("unread", 0..50));
    std::fs::rename(&a, dir.path().join("app.log-20261123")).unwrap();
    append(&a, &numbered("new", 0..30));
    let mut agent = Agent::start(&cfg);
    let mut want = numbered("first", 0..100);
    want.extend(numbered("unread", 0..50));
    want.extend(numbered("new", 0..30));
    assert_eq!(broker.lines("t", 180, T), want, "the rest of the old file, then the new one from its start");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn copytruncate_while_down_reads_the_copy_first() {
    let (dir, broker) = setup(false);
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    ship_and_stop(&broker, &cfg, &a, 100);
    append(&a, &numbered("unread", 0..50));
    std::fs::copy(&a, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    append(&a, &numbered("new", 0..30));
    let mut agent = Agent::start(&cfg);
    let mut want = numbered("first", 0..100);
    want.extend(numbered("unread", 0..50));
    want.extend(numbered("new", 0..30));
    let mut got = broker.lines("t", 180, T);
    assert_eq!(got.len(), 180, "{got:?}");
    // The copy's end and the new file are read side by side; each in order.
    got[100..].sort();
    want[100..].sort();
    assert_eq!(got, want);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn inode_reuse_is_read_from_the_start() {
    let (dir, broker) = setup(false);
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: end\n");
    ship_and_stop(&broker, &cfg, &a, 20);
    // Same inode, other content, longer than the saved offset: a different file.
    let body: String = numbered("reused", 0..40).iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&a, body).unwrap();
    let mut agent = Agent::start(&cfg);
    let mut want = numbered("first", 0..20);
    want.extend(numbered("reused", 0..40));
    assert_eq!(broker.lines("t", 60, T), want);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn corrupt_checkpoint_store_is_reported_not_ignored() {
    let (dir, broker) = setup(false);
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    ship_and_stop(&broker, &cfg, &a, 10);
    let store = dir.path().join("data/checkpoints.json");
    let prev = dir.path().join("data/checkpoints.json.prev");
    // Torn current generation: the previous one is used, with an error in the log.
    let text = std::fs::read(&store).unwrap();
    std::fs::write(&store, &text[..text.len() / 2]).unwrap();
    append(&a, &numbered("second", 0..5));
    let mut agent = Agent::start(&cfg);
    agent.wait_log("is corrupt", T);
    let got = broker.lines("t", 15, T);
    assert!(got.ends_with(&numbered("second", 0..5)), "{got:?}");
    assert_eq!(agent.terminate(), Some(0));
    // Both generations corrupt: refuse to start, naming the file.
    std::fs::write(&store, b"{\"version\":1,\"checksum\":\"x\",\"entries\":[]}").unwrap();
    std::fs::write(&prev, b"garbage").unwrap();
    let out = std::process::Command::new(bin()).arg("-c").arg(&cfg).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("checkpoints.json") && err.contains("corrupt"), "{err}");
}
