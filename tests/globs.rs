//! Globs and many files (issue 4), against a real tansu broker and the real binary: files that
//! appear after start, excludes, a rotated file matched by the same glob shipped once, descriptors
//! freed (deleted files, close_inactive, max_open_files), ignore_older, 500 files from one glob.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;

const T: Duration = Duration::from_secs(60);

/// A temp dir with a broker and a topic, and `logs/` in it (away from the agent's own logs).
fn setup(topic: &str) -> (tempfile::TempDir, Broker, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic(topic);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    (dir, broker, logs)
}

/// Rename rotation as a real writer does it: `path` is renamed to `path.1`, the writer still
/// holding the old file adds `late` to it, then writes `new` to a new file at `path`.
fn rotate_with_late_writes(path: &Path, late: &[String], new: &[String]) {
    use std::io::Write;
    let mut old = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(".1");
    std::fs::rename(path, rotated).unwrap();
    for l in late {
        writeln!(old, "{l}").unwrap();
    }
    append(path, new);
}

/// config.yaml with one glob entry (and YAML `extra`).
fn glob_config(dir: &Path, broker: &Broker, pattern: &Path, exclude: &[&str], extra: &str) -> std::path::PathBuf {
    let ex: Vec<String> = exclude.iter().map(|e| format!("\"{e}\"")).collect();
    let entry = format!(
        "collectlogs:\n  - {{logpath: \"{}\", logtopic: t, exclude: [{}]}}\nscan_frequency: 500ms\n",
        pattern.display(),
        ex.join(", ")
    );
    let cfg = write_config(dir, &broker.addr(), &[], extra);
    // write_config wrote `collectlogs: []`; put the glob entry in its place.
    let text = std::fs::read_to_string(&cfg).unwrap().replace("collectlogs: []\n", &entry);
    std::fs::write(&cfg, text).unwrap();
    cfg
}

/// An agent on the glob `app.log*` in `dir`, whose app.log's first 100 lines (`gen0-…`) have
/// arrived.
fn agent_on_app_log_glob(dir: &Path, broker: &Broker) -> (std::path::PathBuf, std::path::PathBuf, Agent) {
    let app = dir.join("app.log");
    append(&app, &numbered("gen0", 0..100));
    let cfg = glob_config(dir, broker, &dir.join("app.log*"), &[], "start_position: beginning\n");
    let agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 100, T), numbered("gen0", 0..100));
    (app, cfg, agent)
}

fn values(msgs: &[Msg]) -> Vec<String> {
    msgs.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect()
}

/// The descriptors of process `pid` that point at `path` (deleted ones included).
fn fds_on(pid: i32, path: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().trim_end_matches(" (deleted)") == path.to_string_lossy())
        .count()
}

#[test]
fn a_glob_picks_up_files_created_after_start_and_skips_excluded_ones() {
    let (dir, broker, logs) = setup("t");
    let a = logs.join("a.log");
    append(&a, &numbered("a", 0..50));
    // start_position: end (the default) applies to files there at start; files that appear later
    // are new and read from their first line.
    let cfg = glob_config(dir.path(), &broker, &logs.join("*.log"), &["debug-*"], "");
    let mut agent = Agent::start(&cfg);
    agent.wait_log("started at offset", T);
    append(&a, &numbered("a", 50..60));
    let (b, c, debug) = (logs.join("b.log"), logs.join("c.log"), logs.join("debug-x.log"));
    append(&b, &numbered("b", 0..100));
    append(&debug, &numbered("debug", 0..100));
    append(&c, &numbered("c", 0..70));
    append(&b, &numbered("b", 100..130));
    std::fs::write(logs.join("notes.txt"), "not matched\n").unwrap();
    let got = by_file(&broker.read("t", 10 + 130 + 70, T));
    assert_eq!(got.get(a.to_str().unwrap()), Some(&numbered("a", 50..60)), "a: only what came after start");
    assert_eq!(got.get(b.to_str().unwrap()), Some(&numbered("b", 0..130)));
    assert_eq!(got.get(c.to_str().unwrap()), Some(&numbered("c", 0..70)));
    assert_eq!(got.len(), 3, "nothing from the excluded file or notes.txt: {:?}", got.keys());
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn new_directories_under_a_wildcard_directory_are_watched_at_once() {
    let (dir, broker, logs) = setup("t");
    let a = logs.join("a/app.log");
    std::fs::create_dir(logs.join("a")).unwrap();
    append(&a, &numbered("a", 0..3));
    // With scans an hour apart, only the directory watches can find what follows.
    let cfg = glob_config(
        dir.path(),
        &broker,
        &logs.join("*/app.log"),
        &[],
        "start_position: beginning
",
    );
    std::fs::write(&cfg, std::fs::read_to_string(&cfg).unwrap().replace("scan_frequency: 500ms", "scan_frequency: 1h"))
        .unwrap();
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 3, T), numbered("a", 0..3));
    // A new directory with a file made at once (before any watch on it could exist), and an
    // empty one that gets its file later.
    let (b, c) = (logs.join("b/app.log"), logs.join("c/app.log"));
    std::fs::create_dir(logs.join("c")).unwrap();
    std::fs::create_dir(logs.join("b")).unwrap();
    append(&b, &numbered("b", 0..3));
    assert_eq!(broker.lines("t", 6, T)[3..], numbered("b", 0..3));
    append(&c, &numbered("c", 0..3));
    append(&a, &numbered("a", 3..5));
    let got = by_file(&broker.read("t", 11, T));
    assert_eq!(got.get(a.to_str().unwrap()), Some(&numbered("a", 0..5)));
    assert_eq!(got.get(b.to_str().unwrap()), Some(&numbered("b", 0..3)));
    assert_eq!(got.get(c.to_str().unwrap()), Some(&numbered("c", 0..3)));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_rotated_file_matched_by_the_same_glob_is_shipped_once() {
    let (dir, broker, _) = setup("t");
    let (app, cfg, mut agent) = agent_on_app_log_glob(dir.path(), &broker);
    rotate_with_late_writes(&app, &numbered("gen0", 100..150), &numbered("gen1", 0..50));
    let want_total = 200;
    let got = values(&broker.read("t", want_total, T));
    let old_lines: Vec<String> = got.iter().filter(|l| l.starts_with("gen0")).cloned().collect();
    let new_lines: Vec<String> = got.iter().filter(|l| l.starts_with("gen1")).cloned().collect();
    assert_eq!(old_lines, numbered("gen0", 0..150), "the rotated file: every line once, in order");
    assert_eq!(new_lines, numbered("gen1", 0..50));
    assert_eq!(got.len(), want_total, "no line twice");
    // The tail of app.log.1 waited for the tail of app.log to finish the file: one reader.
    agent.wait_log("is being read by tail", T);
    // After a restart, identity (not the name) still decides: nothing is read again.
    assert_eq!(agent.terminate(), Some(0));
    let mut agent = Agent::start(&cfg);
    agent.wait_log("started at offset", T);
    append(&app, &numbered("gen1", 50..60));
    let got = values(&broker.read("t", want_total + 10, T));
    assert_eq!(got.len(), want_total + 10, "nothing sent again after the restart");
    assert_eq!(got[want_total..], numbered("gen1", 50..60)[..]);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_copytruncate_copy_matched_by_the_same_glob_is_not_shipped_again() {
    let (dir, broker, _) = setup("t");
    let (app, _, mut agent) = agent_on_app_log_glob(dir.path(), &broker);
    // copytruncate: the copy is a new file (another inode) holding the same bytes.
    let copy = dir.path().join("app.log.1");
    std::fs::copy(&app, &copy).unwrap();
    // The glob finds the copy before the truncation (the other order is the claim's case).
    agent.wait_log(&format!("tail {} -> t started at offset", copy.display()), T);
    agent.wait_log("a copy left by copytruncate", T);
    std::fs::OpenOptions::new().write(true).open(&app).unwrap().set_len(0).unwrap();
    append(&app, &numbered("gen1", 0..50));
    let got = values(&broker.read("t", 150, T));
    assert_eq!(got.len(), 150, "the copy's lines are not shipped again");
    assert_eq!(got[..100], numbered("gen0", 0..100)[..]);
    assert_eq!(got[100..], numbered("gen1", 0..50)[..]);
    // Lines a writer adds to the copy later are new, and shipped.
    append(&copy, &numbered("late", 0..3));
    let got = values(&broker.read("t", 153, T));
    assert_eq!(got[150..], numbered("late", 0..3)[..]);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_deleted_file_and_an_idle_file_give_their_descriptors_back() {
    let (dir, broker, logs) = setup("t");
    let (gone, idle) = (logs.join("gone.log"), logs.join("idle.log"));
    append(&gone, &numbered("gone", 0..20));
    append(&idle, &numbered("idle", 0..20));
    let cfg =
        glob_config(dir.path(), &broker, &logs.join("*.log"), &[], "start_position: beginning\nclose_inactive: 2s\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.read("t", 40, T).len(), 40);
    let pid = agent.proc.pid();
    assert_eq!(fds_on(pid, &gone), 1, "the file is open while it is tailed");
    // Deleted: drained (rotate_wait 1s), then closed, so its disk space is freed.
    std::fs::remove_file(&gone).unwrap();
    wait_until(T, "the deleted file's descriptor to be closed", || fds_on(pid, &gone) == 0);
    agent.wait_log("is gone from the glob and drained", T);
    // Idle for close_inactive: closed, and opened again when it grows.
    wait_until(T, "the idle file's descriptor to be closed", || fds_on(pid, &idle) == 0);
    agent.wait_log("(close_inactive)", T);
    append(&idle, &numbered("idle", 20..30));
    let got = by_file(&broker.read("t", 50, T));
    assert_eq!(got[idle.to_str().unwrap()], numbered("idle", 0..30), "reopened, nothing lost or doubled");
    assert_eq!(got[gone.to_str().unwrap()], numbered("gone", 0..20));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn max_open_files_makes_files_wait_their_turn() {
    let (dir, broker, _) = setup("t");
    let files: Vec<_> = (0..6).map(|i| dir.path().join(format!("f{i}.log"))).collect();
    for (i, f) in files.iter().enumerate() {
        append(f, &numbered(&format!("f{i}"), 0..50));
    }
    let cfg = glob_config(
        dir.path(),
        &broker,
        &dir.path().join("f*.log"),
        &[],
        "start_position: beginning\nmax_open_files: 2\nclose_inactive: 1s\n",
    );
    let mut agent = Agent::start(&cfg);
    agent.wait_log("max_open_files (2) reached", T);
    let got = by_file(&broker.read("t", 300, T));
    for (i, f) in files.iter().enumerate() {
        assert_eq!(got.get(f.to_str().unwrap()), Some(&numbered(&format!("f{i}"), 0..50)), "{}", f.display());
    }
    let pid = agent.proc.pid();
    assert!(files.iter().map(|f| fds_on(pid, f)).sum::<usize>() <= 2, "never more than 2 open");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn ignore_older_skips_quiet_files_until_they_are_written_to() {
    let (dir, broker, logs) = setup("t");
    let (old, fresh) = (logs.join("old.log"), logs.join("fresh.log"));
    append(&old, &numbered("ancient", 0..30));
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options().write(true).open(&old).unwrap().set_modified(hour_ago).unwrap();
    append(&fresh, &numbered("fresh", 0..10));
    let cfg =
        glob_config(dir.path(), &broker, &logs.join("*.log"), &[], "start_position: beginning\nignore_older: 10m\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T), numbered("fresh", 0..10), "the old file is left out");
    // Written to again: only its new lines are shipped (it counts as read to where it was).
    append(&old, &numbered("new", 0..5));
    let got = by_file(&broker.read("t", 15, T));
    assert_eq!(got[old.to_str().unwrap()], numbered("new", 0..5));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_glob_never_matches_the_agents_own_log() {
    let (dir, broker, _) = setup("t");
    let app = dir.path().join("app.log");
    append(&app, &numbered("app", 0..10));
    // The agent logs to dir/agent.log, which this glob matches too.
    let cfg = glob_config(dir.path(), &broker, &dir.path().join("a*.log"), &[], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T), numbered("app", 0..10), "only app.log, not the agent's own log");
    agent.wait_log("the agent's own log; left out", T);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn five_hundred_files_from_one_glob() {
    let (dir, broker, logs) = setup("t");
    let n = 500;
    for i in 0..n {
        append(&logs.join(format!("s{i:03}.log")), &numbered(&format!("s{i:03}"), 0..20));
    }
    let cfg = glob_config(dir.path(), &broker, &logs.join("s*.log"), &[], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    // Half of them get more lines while the agent runs.
    for i in (0..n).step_by(2) {
        append(&logs.join(format!("s{i:03}.log")), &numbered(&format!("s{i:03}"), 20..25));
    }
    let want = n * 20 + (n / 2) * 5;
    let got = by_file(&broker.read("t", want, Duration::from_secs(120)));
    assert_eq!(got.len(), n, "every file shipped");
    for i in 0..n {
        let path = logs.join(format!("s{i:03}.log"));
        let end = if i % 2 == 0 { 25 } else { 20 };
        assert_eq!(got[path.to_str().unwrap()], numbered(&format!("s{i:03}"), 0..end), "{}", path.display());
    }
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn a_file_closed_for_inactivity_then_rotated_loses_nothing() {
    let (dir, broker, _) = setup("t");
    let app = dir.path().join("app.log");
    append(&app, &numbered("old", 0..10));
    let cfg =
        write_config(dir.path(), &broker.addr(), &[(&app, "t")], "start_position: beginning\nclose_inactive: 1s\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T), numbered("old", 0..10));
    agent.wait_log("(close_inactive)", T);
    // logrotate at midnight: the quiet file is renamed; its writer still adds a few lines to it
    // before reopening, then writes to a new file.
    rotate_with_late_writes(&app, &numbered("old", 10..15), &numbered("new", 0..5));
    let got = broker.lines("t", 20, T);
    let olds: Vec<String> = got.iter().filter(|l| l.starts_with("old")).cloned().collect();
    let news: Vec<String> = got.iter().filter(|l| l.starts_with("new")).cloned().collect();
    assert_eq!(olds, numbered("old", 0..15), "late lines of the closed, rotated file");
    assert_eq!(news, numbered("new", 0..5));
    assert_eq!(got.len(), 20);
    assert_eq!(agent.terminate(), Some(0));
}

/// A log directory made unreadable (mode 000: a deploy script's chmod, a wrong umask) while the
/// agent reads from it, as an agent without root's override of file modes sees it: what is open
/// is read on, what cannot be opened is named in the log with the reason, and when the mode
/// comes back everything written meanwhile arrives (a rotation inside the window, a file the
/// glob had not seen yet), each line once, in order.
#[test]
fn a_log_directory_made_unreadable_is_named_and_read_again_when_it_opens() {
    use std::os::unix::fs::PermissionsExt;
    let (dir, broker, logs) = setup("t");
    let (app_dir, glob_dir) = (logs.join("app"), logs.join("g"));
    for d in [&app_dir, &glob_dir] {
        std::fs::create_dir(d).unwrap();
    }
    let (a, g1, g2) = (app_dir.join("a.log"), glob_dir.join("g1.log"), glob_dir.join("g2.log"));
    append(&a, &numbered("a", 0..3));
    append(&g1, &numbered("g1", 0..3));
    let cfg =
        write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\nscan_frequency: 500ms\n");
    let glob = format!("  - {{logpath: \"{}/*.log\", logtopic: t}}\n", glob_dir.display());
    let text = std::fs::read_to_string(&cfg).unwrap();
    let text = text.replacen("collectlogs:\n", &format!("collectlogs:\n{glob}"), 1);
    std::fs::write(&cfg, text).unwrap();
    let mut agent = Agent::start_without_dac(&cfg).expect("util-linux's setpriv (scripts/install-deps.sh)");
    // Each file's lines, in the topic's order.
    let by_prefix = |n: usize| {
        let mut out: std::collections::BTreeMap<String, Vec<String>> = Default::default();
        for l in broker.lines("t", n, T) {
            out.entry(l.split('-').next().unwrap().to_string()).or_default().push(l);
        }
        out
    };
    assert_eq!(by_prefix(6)["a"], numbered("a", 0..3));

    let mode = |d: &Path, m: u32| std::fs::set_permissions(d, std::fs::Permissions::from_mode(m)).unwrap();
    mode(&app_dir, 0o000);
    mode(&glob_dir, 0o000);
    append(&a, &numbered("a", 3..6));
    std::fs::rename(&a, app_dir.join("a.log.1")).unwrap();
    append(&a, &numbered("a", 6..9));
    append(&g1, &numbered("g1", 3..6));
    append(&g2, &numbered("g2", 0..3));
    // Both named while shut: the file by its tail, the directory by the glob's next scan.
    agent.wait_log(&format!("{}: cannot stat: permission denied", a.display()), T);
    agent.wait_log(&format!("{}/*.log: cannot read", glob_dir.display()), T);
    mode(&app_dir, 0o755);
    mode(&glob_dir, 0o755);

    let got = by_prefix(18);
    assert_eq!(got["a"], numbered("a", 0..9), "{got:?}");
    assert_eq!(got["g1"], numbered("g1", 0..6), "{got:?}");
    assert_eq!(got["g2"], numbered("g2", 0..3), "{got:?}");
    assert_eq!(broker.lines("t", 19, Duration::from_secs(3)).len(), 18, "each line once");
    let log = agent.log_text();
    assert!(!log.contains("gone from its glob"), "a file in a shut directory is not taken as gone: {log}");
    assert_eq!(agent.terminate(), Some(0));
}

/// A local user who can write in a log directory names a file with a newline and a forged line
/// of the agent's own (`[ERROR]`, a terminal escape): the glob matches it and its lines ship,
/// and wherever the agent's log names it the name is escaped, never a line of its own.
#[test]
fn a_file_name_with_a_newline_cannot_forge_a_line_of_the_agents_log() {
    let (dir, broker, logs) = setup("t");
    let forged = "2026-12-07T00:00:00.000000000Z [ERROR] forged by a file name";
    let evil = logs.join(format!("x\n{forged}\r\u{1b}c.log"));
    append(&evil, &numbered("e", 0..3));
    let cfg = glob_config(dir.path(), &broker, &logs.join("*.log"), &[], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 3, T), numbered("e", 0..3), "the file is read all the same");
    agent.wait_log("\\r\\u{1b}c.log", T);
    let log = agent.log_text();
    assert!(log.contains(&format!("x\\n{forged}")), "named escaped: {log}");
    for line in log.lines() {
        assert!(line.starts_with("20") && line.contains("Z ["), "a line of the agent's own: {line:?}\n{log}");
        assert!(!line.starts_with(forged) && !line.contains(['\r', '\u{1b}']), "{line:?}");
    }
    assert_eq!(agent.terminate(), Some(0));
}
