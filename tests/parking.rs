//! A thread per active file (issue 29): a tail quiet for `2 x batch_wait`, its file covered by
//! change notifications and nothing of it pending, ends its thread and keeps its state; the next
//! write is read by the looker (one thread for every parked file), and a rotation, a cut or a
//! busy file starts a thread on it again. Against the real broker: the agent's threads fall when
//! its files go quiet and stay down while they are written slowly, and every line written to a
//! parked file (after a write, a rotation, a kill, writes racing the park, a line written in two
//! calls) arrives once, in order.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;

const T: Duration = Duration::from_secs(30);

/// The agent's threads, from /proc.
fn threads(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

fn files(dir: &Path, n: usize) -> Vec<PathBuf> {
    (0..n)
        .map(|i| {
            let p = dir.join(format!("f{i:03}.log"));
            std::fs::write(&p, "").unwrap();
            p
        })
        .collect()
}

/// Waits for the agent's `n` tails to start (logged) and its thread count to settle (the same
/// for half a second: the tails parked): that count.
fn settled_threads(agent: &Agent, n: usize) -> usize {
    let pid = agent.proc.pid();
    wait_until(T, "the tails to start", || agent.log_text().matches("started at offset").count() >= n);
    let mut last = (threads(pid), Instant::now());
    wait_until(T, "the agent's threads to settle", || {
        let now = threads(pid);
        if now != last.0 {
            last = (now, Instant::now());
        }
        last.1.elapsed() >= Duration::from_millis(500)
    });
    last.0
}

/// Each file's lines in `got` (keyed by path, files named `fNNN.log`): `lines_of(NNN)`, every
/// line once and in order.
fn assert_each_file(got: &[Msg], lines_of: impl Fn(usize) -> Vec<String>) {
    for (file, lines) in by_file(got) {
        let i: usize = file.rsplit('f').next().unwrap()[..3].parse().unwrap();
        assert_eq!(lines, lines_of(i), "{file}: every line once, in order");
    }
}

/// A broker with topic `park`, `n` empty files in `logs/`, and a config that tails them.
fn setup(n: usize) -> (tempfile::TempDir, Broker, Vec<PathBuf>, PathBuf) {
    setup_with(n, "")
}

/// `setup`, with `extra` top-level keys in the config.
fn setup_with(n: usize, extra: &str) -> (tempfile::TempDir, Broker, Vec<PathBuf>, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("park");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let paths = files(&logs, n);
    let specs: Vec<(&Path, &str)> = paths.iter().map(|p| (p.as_path(), "park")).collect();
    let cfg = write_config(dir.path(), &broker.addr(), &specs, &format!("start_position: beginning\n{extra}"));
    (dir, broker, paths, cfg)
}

#[test]
fn quiet_files_give_their_threads_back_and_every_later_line_arrives() {
    let (dir, broker, paths, cfg) = setup(100);
    let logs = dir.path().join("logs");
    let mut agent = Agent::start(&cfg);
    let pid = agent.proc.pid();
    let parked = settled_threads(&agent, 100);
    assert!(parked < 40, "100 quiet tails hold no thread each: {parked} threads");

    // A write to each of 20 parked files: each is read (in order), and parks again.
    for (i, p) in paths.iter().take(20).enumerate() {
        append(p, &numbered(&format!("w{i:02}"), 0..5));
    }
    let got = broker.read("park", 100, T);
    assert_eq!(got.len(), 100, "every line written to a parked file");
    assert_each_file(&got, |i| numbered(&format!("w{i:02}"), 0..5));
    wait_until(T, "the written tails to park again", || threads(pid) <= parked + 2);

    // Rotated while parked: the renamed file's last lines and the new file's arrive.
    let p = &paths[30];
    append(p, &numbered("before", 0..3));
    assert_eq!(broker.read("park", 103, T).len(), 103);
    wait_until(T, "that tail to park again", || threads(pid) <= parked + 2);
    std::fs::rename(p, logs.join("f030.log.1")).unwrap();
    append(&logs.join("f030.log.1"), &numbered("late", 0..2));
    append(p, &numbered("after", 0..4));
    let got = broker.lines("park", 109, T);
    let tail: Vec<&String> = got.iter().skip(103).collect();
    assert_eq!(tail.len(), 6, "{got:?}");
    for l in numbered("late", 0..2).iter().chain(&numbered("after", 0..4)) {
        assert!(tail.contains(&l), "{l} arrived");
    }

    // Stopped while parked: a clean stop, every line delivered.
    wait_until(T, "parked again", || threads(pid) <= parked + 2);
    assert_eq!(agent.terminate(), Some(0));
    assert!(agent.log_text().contains("stopped: every line was delivered"));
}

#[test]
fn lines_written_around_the_park_and_across_a_kill_arrive_once() {
    // `batch_wait: 20ms` (the default is 0): tails that park 40 ms after their last line, and
    // files busy enough to keep a thread, so that writes race both the park and the gathering.
    let (_dir, broker, paths, cfg) = setup_with(10, "batch_wait: 20ms\n");
    let mut agent = Agent::start(&cfg);
    let pid = agent.proc.pid();
    let base = settled_threads(&agent, 10);
    // Writes 10 to 70 ms apart, around `2 x batch_wait` (40 ms): some land as a tail decides to
    // park or the looker arms its watch, some just after, some while a thread gathers.
    let mut written = vec![0usize; paths.len()];
    for round in 0..40u64 {
        std::thread::sleep(Duration::from_millis(10 + (round * 37) % 61));
        for (i, p) in paths.iter().enumerate() {
            append(p, &numbered(&format!("r{i}"), written[i]..written[i] + 3));
            written[i] += 3;
        }
    }
    let total: usize = written.iter().sum();
    assert_eq!(broker.read("park", total, T).len(), total);

    // Killed while every tail is parked, written meanwhile, started again.
    wait_until(T, "the tails to park", || threads(pid) <= base);
    agent.proc.signal(libc::SIGKILL);
    agent.proc.wait_exit(Duration::from_secs(10));
    for (i, p) in paths.iter().enumerate() {
        append(p, &numbered(&format!("r{i}"), written[i]..written[i] + 2));
        written[i] += 2;
    }
    let mut agent = Agent::start(&cfg);
    let total: usize = written.iter().sum();
    let got = broker.read("park", total, T);
    assert_eq!(got.len(), total, "nothing lost, nothing twice");
    assert_each_file(&got, |i| numbered(&format!("r{i}"), 0..written[i]));
    assert_eq!(broker.read("park", total + 1, Duration::from_secs(2)).len(), total);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn slow_writers_are_read_by_the_looker_without_a_thread_each() {
    // Issue 29's many slow writers: a line to each of 20 files every 100 ms. Each line comes
    // after a quiet spell and is read by the looker: the agent's thread count stays where it was
    // with every tail parked (a thread per write would add up to 20).
    let (_dir, broker, paths, cfg) = setup(20);
    let mut agent = Agent::start(&cfg);
    let pid = agent.proc.pid();
    let base = settled_threads(&agent, 20);
    let mut most = base;
    for round in 0..30 {
        std::thread::sleep(Duration::from_millis(100));
        for (i, p) in paths.iter().enumerate() {
            append(p, &numbered(&format!("s{i:02}"), round..round + 1));
        }
        most = most.max(threads(pid));
    }
    let got = broker.read("park", 600, T);
    assert_eq!(got.len(), 600, "every line");
    assert_each_file(&got, |i| numbered(&format!("s{i:02}"), 0..30));
    assert!(most <= base + 3, "slow writes started threads: {base} parked, {most} at most while written");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn lines_written_in_two_calls_are_read_by_the_looker_whole() {
    // Many loggers write a line in two calls (the message, then its newline): the looker reads
    // the first half, keeps it parked, and the second write ends it. 20 files, a line each every
    // 100 ms, its halves 20 ms apart: no thread started per line, every line whole and in order.
    let (_dir, broker, paths, cfg) = setup(20);
    let mut agent = Agent::start(&cfg);
    let pid = agent.proc.pid();
    let base = settled_threads(&agent, 20);
    let mut most = base;
    let rounds = 30;
    for round in 0..rounds {
        std::thread::sleep(Duration::from_millis(80));
        let lines: Vec<String> =
            (0..paths.len()).map(|i| numbered(&format!("h{i:02}"), round..round + 1).remove(0)).collect();
        for (p, l) in paths.iter().zip(&lines) {
            write_raw(p, &l.as_bytes()[..5]);
        }
        most = most.max(threads(pid));
        std::thread::sleep(Duration::from_millis(20));
        for (p, l) in paths.iter().zip(&lines) {
            write_raw(p, format!("{}\n", &l[5..]).as_bytes());
        }
        most = most.max(threads(pid));
    }
    let total = paths.len() * rounds;
    let got = broker.read("park", total, T);
    assert_eq!(got.len(), total, "every line");
    assert_each_file(&got, |i| numbered(&format!("h{i:02}"), 0..rounds));
    assert!(most <= base + 3, "half-written lines started threads: {base} parked, {most} at most while written");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_parked_file_cut_and_written_past_its_old_end_is_read_again_from_its_start() {
    // The looker reads a parked file's appends in one `pread` that takes in the last bytes it
    // read: a file cut and written again past its old end before the look (a `>` redirection, a
    // copytruncate followed by a busy write) has other bytes there, and is read from its start
    // (by a thread), not from the old offset mid-line.
    let (_dir, broker, paths, cfg) = setup(10);
    let mut agent = Agent::start(&cfg);
    let pid = agent.proc.pid();
    let parked = settled_threads(&agent, 10);
    let first = |i: usize| numbered(&format!("c{i:02}"), 0..3);
    let again = |i: usize| numbered(&format!("d{i:02}"), 0..20);
    for (i, p) in paths.iter().enumerate() {
        append(p, &first(i));
    }
    assert_eq!(broker.read("park", 30, T).len(), 30);
    wait_until(T, "the tails to park again", || threads(pid) <= parked + 2);
    for (i, p) in paths.iter().enumerate() {
        // Cut and written in one `write`, more than the file held.
        let body: String = again(i).iter().map(|l| format!("{l}\n")).collect();
        std::fs::write(p, body).unwrap();
    }
    let got = broker.read("park", 230, T);
    assert_eq!(got.len(), 230, "every line of both contents");
    assert_each_file(&got, |i| [first(i), again(i)].concat());
    assert_eq!(broker.read("park", 231, Duration::from_secs(2)).len(), 230, "nothing more");
    assert!(agent.log_text().contains("truncated"), "the cut was seen as one");
    assert_eq!(agent.terminate(), Some(0));
}

/// Appends `bytes` as they are (no newline added).
fn write_raw(path: &Path, bytes: &[u8]) {
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(bytes).unwrap();
}
