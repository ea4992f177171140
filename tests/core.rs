//! Core agent behaviour against a real tansu broker and the real binary (issue 2): the exact
//! lines, in order, none missing, none doubled.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

fn setup() -> (tempfile::TempDir, Broker) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    (dir, broker)
}

#[test]
fn several_files_to_several_topics_from_the_beginning() {
    let (dir, broker) = setup();
    broker.create_topic("ta");
    broker.create_topic("tb");
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    append(&a, &numbered("a", 0..300));
    append(&b, &numbered("b", 0..200));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "ta"), (&b, "tb")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    append(&a, &numbered("a", 300..400));
    let got = broker.read("ta", 400, T);
    assert_eq!(
        got.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect::<Vec<_>>(),
        numbered("a", 0..400)
    );
    assert!(got.iter().all(|m| m.key.as_deref() == Some(a.to_str().unwrap().as_bytes())), "key is the file's path");
    assert_eq!(broker.lines("tb", 200, T), numbered("b", 0..200));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn start_position_end_skips_what_was_there() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("a.log");
    append(&a, &numbered("old", 0..50));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: end\n");
    let mut agent = Agent::start(&cfg);
    agent.wait_log("started at offset", T);
    append(&a, &numbered("new", 0..20));
    assert_eq!(broker.lines("t", 20, T), numbered("new", 0..20));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn file_created_after_start_and_partial_last_line() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("later.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "");
    let mut agent = Agent::start(&cfg);
    agent.wait_log("waiting for the file to appear", T);
    std::fs::write(&a, b"first\npart").unwrap();
    assert_eq!(broker.lines("t", 1, T), vec!["first"], "the unfinished line is held back");
    append(&a, &["ial".to_string(), "third".to_string()]);
    assert_eq!(broker.lines("t", 3, T), vec!["first", "partial", "third"]);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn rename_rotation_ships_late_writes_to_the_old_file() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    append(&a, &numbered("old", 0..100));
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 100, T).len(), 100);
    // The writer keeps its handle on the old file across the rename, as a real one does.
    let mut old = std::fs::OpenOptions::new().append(true).open(&a).unwrap();
    std::fs::rename(&a, dir.path().join("app.log.1")).unwrap();
    append(&a, &numbered("new", 0..50));
    agent.wait_log("draining", T);
    use std::io::Write;
    for l in numbered("old", 100..150) {
        writeln!(old, "{l}").unwrap();
    }
    drop(old);
    append(&a, &numbered("new", 50..100));
    let got = broker.lines("t", 250, T);
    assert_eq!(got.len(), 250, "every line once: {got:?}");
    let olds: Vec<String> = got.iter().filter(|l| l.starts_with("old")).cloned().collect();
    let news: Vec<String> = got.iter().filter(|l| l.starts_with("new")).cloned().collect();
    assert_eq!(olds, numbered("old", 0..150), "the old file in order, late writes included");
    assert_eq!(news, numbered("new", 0..100), "the new file in order");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn copytruncate_restarts_from_zero() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    append(&a, &numbered("before", 0..100));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 100, T).len(), 100);
    std::fs::copy(&a, dir.path().join("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    agent.wait_log("truncated", T);
    append(&a, &numbered("after", 0..30));
    let got = broker.lines("t", 130, T);
    let mut want = numbered("before", 0..100);
    want.extend(numbered("after", 0..30));
    assert_eq!(got, want);
    assert_eq!(agent.terminate(), Some(0));
}

/// Issue 18's deterministic repro, found with logrotate's copytruncate under load: the copy is
/// taken, then 10 more lines are written (and shipped) before the truncation. The copy is then
/// shorter than what was read, so it holds nothing new; it used to be taken for a generation
/// "rotated by unread" and all 1,000 of its lines were sent again.
#[test]
fn a_copy_taken_before_the_last_lines_is_not_sent_again() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    append(&a, &numbered("gen1", 0..1000));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 1000, T).len(), 1000);
    std::fs::copy(&a, dir.path().join("app.log.1")).unwrap();
    append(&a, &numbered("late", 0..10));
    assert_eq!(broker.lines("t", 1010, T).len(), 1010, "the 10 late lines ship before the truncation");
    std::fs::OpenOptions::new().write(true).open(&a).unwrap().set_len(0).unwrap();
    agent.wait_log("truncated", T);
    append(&a, &numbered("gen2", 0..30));
    let mut want = numbered("gen1", 0..1000);
    want.extend(numbered("late", 0..10));
    want.extend(numbered("gen2", 0..30));
    let got = broker.lines("t", want.len(), T);
    assert_eq!(got.len(), want.len(), "no line twice (gen1 was sent again: {} lines)", got.len());
    assert_eq!(got, want, "every line once, in order");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn delete_and_recreate_is_picked_up() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    append(&a, &numbered("one", 0..10));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T).len(), 10);
    std::fs::remove_file(&a).unwrap();
    agent.wait_log("removed or renamed away", T);
    append(&a, &numbered("two", 0..10));
    let mut want = numbered("one", 0..10);
    want.extend(numbered("two", 0..10));
    assert_eq!(broker.lines("t", 20, T), want);
    assert_eq!(agent.terminate(), Some(0));
}

/// A deploy that recreates the log directory (`rm -rf logs/app; mkdir logs/app`): the file in
/// the new directory is read from its start, and writes to it keep arriving.
#[test]
fn a_log_directory_deleted_and_created_again_is_followed() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let app_dir = dir.path().join("app");
    std::fs::create_dir(&app_dir).unwrap();
    let a = app_dir.join("app.log");
    append(&a, &numbered("one", 0..10));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T), numbered("one", 0..10));
    std::fs::remove_dir_all(&app_dir).unwrap();
    // The deleted file drained and closed: the tail waits for a file in a directory that is gone.
    agent.wait_log(&format!("finished reading {}", a.display()), T);
    std::fs::create_dir(&app_dir).unwrap();
    append(&a, &numbered("two", 0..10));
    let mut want = numbered("one", 0..10);
    want.extend(numbered("two", 0..10));
    assert_eq!(broker.lines("t", 20, T), want);
    append(&a, &numbered("two", 10..20));
    want.extend(numbered("two", 10..20));
    assert_eq!(broker.lines("t", 30, T), want);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn over_long_lines_are_split_and_bytes_shipped_unchanged() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("app.log");
    let mut body = vec![b'x'; 2500];
    body.push(b'\n');
    body.extend_from_slice(b"\xff\xfe binary \x00 bytes\r\n");
    body.extend_from_slice(b"last\n");
    std::fs::write(&a, &body).unwrap();
    let cfg =
        write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\nmax_line_bytes: 1KiB\n");
    let mut agent = Agent::start(&cfg);
    let got = broker.read("t", 5, T);
    let values: Vec<&[u8]> = got.iter().map(|m| m.value.as_slice()).collect();
    assert_eq!(
        values,
        vec![&[b'x'; 1024][..], &[b'x'; 1024][..], &[b'x'; 452][..], &b"\xff\xfe binary \x00 bytes"[..], &b"last"[..]]
    );
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn hot_reload_adds_removes_and_changes_entries() {
    let (dir, broker) = setup();
    for t in ["ta", "tb", "tc"] {
        broker.create_topic(t);
    }
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let extra = "start_position: beginning\n";
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "ta")], extra);
    let mut agent = Agent::start(&cfg);
    append(&a, &numbered("a", 0..10));
    assert_eq!(broker.lines("ta", 10, T), numbered("a", 0..10));

    // Add b.
    append(&b, &numbered("b", 0..10));
    write_config(dir.path(), &broker.addr(), &[(&a, "ta"), (&b, "tb")], extra);
    assert_eq!(broker.lines("tb", 10, T), numbered("b", 0..10));

    // Change a's topic: the tail restarts, new lines go to tc.
    write_config(dir.path(), &broker.addr(), &[(&a, "tc"), (&b, "tb")], extra);
    agent.wait_log(&format!("tail {} -> ta stopped", a.display()), T);
    append(&a, &numbered("a", 10..20));
    let tc = broker.lines("tc", 20, T);
    assert!(tc.ends_with(&numbered("a", 10..20)), "{tc:?}");

    // Remove b: lines written afterwards are not shipped.
    write_config(dir.path(), &broker.addr(), &[(&a, "tc")], extra);
    agent.wait_log(&format!("tail {} -> tb stopped", b.display()), T);
    append(&b, &numbered("b", 10..20));
    append(&a, &numbered("a", 20..30));
    let tc = broker.lines("tc", tc.len() + 10, T);
    assert!(tc.ends_with(&numbered("a", 20..30)));
    assert_eq!(broker.lines("tb", 10, Duration::from_secs(2)), numbered("b", 0..10));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn broken_config_keeps_the_last_good_one_running() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("a.log");
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    append(&a, &numbered("x", 0..5));
    assert_eq!(broker.lines("t", 5, T).len(), 5);
    std::fs::write(&cfg, "collectlogs: [{logpath: /x, logtopik: oops}\n  ::: not yaml").unwrap();
    agent.wait_log("config.yaml rejected", T);
    // A typo'd key is named too.
    std::fs::write(
        &cfg,
        format!("kafkaconfig: {{kafkaaddr: \"{}\"}}\ncollectlogs: [{{logpath: /x, logtopik: oops}}]\n", broker.addr()),
    )
    .unwrap();
    agent.wait_log("logtopik", T);
    append(&a, &numbered("x", 5..10));
    assert_eq!(broker.lines("t", 10, T), numbered("x", 0..10));
    assert!(agent.proc.is_running());
    assert_eq!(agent.terminate(), Some(0));
}

#[cfg(feature = "failpoints")]
#[test]
fn a_panicking_tail_is_restarted_without_loss_or_duplicates() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("crashy.log");
    append(&a, &numbered("l", 0..200));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start_env(&cfg, &[("LOGCATCH_FAILPOINTS", "tail.sent=crashy.log@50")]);
    agent.wait_log("restarting worker tail", T);
    append(&a, &numbered("l", 200..300));
    assert_eq!(broker.lines("t", 300, T), numbered("l", 0..300));
    assert!(agent.log_text().contains("panicked"));
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn sigterm_delivers_what_is_in_flight_and_resumes_exactly() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let a = dir.path().join("a.log");
    let n = 50_000;
    append(&a, &numbered("l", 0..n));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    agent.wait_log("started at offset", T);
    assert_eq!(agent.terminate(), Some(0), "clean exit on SIGTERM");
    let log = agent.log_text();
    assert!(log.contains("every line was delivered"), "{log}");
    // What was sent before the stop is all there; a restart ships the rest, nothing twice.
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", n, Duration::from_secs(60)), numbered("l", 0..n));
    assert_eq!(agent.terminate(), Some(0));
}

/// Issue 25, as an operator met it: a file written anew on the same inode with the old one's
/// banner is read from its start (tests/common).
#[test]
fn a_new_file_with_the_old_ones_banner_on_the_same_inode_is_read_from_its_start() {
    let (dir, broker) = setup();
    a_new_file_with_the_old_banner_is_read_from_its_start(dir.path(), &broker, "");
}

#[test]
fn check_flag_reports_problems_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = write_config(dir.path(), "127.0.0.1:1", &[(Path::new("/tmp/x.log"), "t")], "");
    let out = std::process::Command::new(bin()).args(["--check", "-c"]).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "kafkaconfig: {kafkaaddr: \"h:1\"}\ncollectlogs: [{logpath: /a, logtopic: \"no spaces\"}]\nstart_position: middle\n").unwrap();
    let out = std::process::Command::new(bin()).args(["--check", "-c"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("start_position"), "{err}");
    let out = std::process::Command::new(bin()).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

/// Issue 17: every message says where it came from, in Kafka headers (the payload stays the
/// raw line): `host` (the `hostname` key), `path` (the file actually read: here a glob's
/// matches) and `offset` (the decimal byte offset of the line's first byte in that file).
#[test]
fn every_message_says_where_it_came_from_in_headers() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    broker.create_topic("bare");
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let (a, b) = (logs.join("a.log"), logs.join("b.log"));
    append(&a, &numbered("a", 0..20));
    append(&b, &numbered("bb", 0..30));
    let bare = dir.path().join("bare.log");
    append(&bare, &numbered("c", 0..5));
    let glob = logs.join("*.log");
    let extra = format!(
        "start_position: beginning\nhostname: web-7\n\
         kafkaconfig: {{kafkaaddr: \"{}\", message_key: host_path}}\n", // headers: all three by default
        broker.addr()
    );
    let cfg = write_config(dir.path(), &broker.addr(), &[(&glob, "t")], &extra);
    let mut agent = Agent::start(&cfg);
    let msgs = broker.read("t", 50, T);
    assert_eq!(msgs.len(), 50);
    for (file, prefix, n) in [(&a, "a", 20), (&b, "bb", 30)] {
        let path = file.to_str().unwrap();
        let mine: Vec<&Msg> = msgs.iter().filter(|m| m.headers.iter().any(|(k, v)| k == "path" && v == path)).collect();
        let values: Vec<String> = mine.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect();
        assert_eq!(values, numbered(prefix, 0..n), "{path}: its lines, in order, with its path header");
        // Each line's offset is where its first byte lies in the file.
        let text = std::fs::read_to_string(file).unwrap();
        let mut at = 0;
        for (m, line) in mine.iter().zip(text.lines()) {
            let headers: Vec<(&str, &str)> = m.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            assert_eq!(headers, [("host", "web-7"), ("path", path), ("offset", at.to_string().as_str())]);
            assert_eq!(m.key.as_deref(), Some(format!("web-7:{path}").as_bytes()), "message_key: host_path");
            at += line.len() + 1;
        }
    }
    assert_eq!(agent.terminate(), Some(0));

    // `headers: []` turns them off; `message_key: host` keys by host alone.
    let d2 = dir.path().join("second");
    std::fs::create_dir_all(&d2).unwrap();
    let extra = format!(
        "start_position: beginning\nhostname: web-8\nkafkaconfig: {{kafkaaddr: \"{}\", headers: [], message_key: host}}\n",
        broker.addr()
    );
    let cfg = write_config(&d2, &broker.addr(), &[(&bare, "bare")], &extra);
    let mut agent = Agent::start(&cfg);
    let msgs = broker.read("bare", 5, T);
    assert!(msgs.iter().all(|m| m.headers.is_empty() && m.key.as_deref() == Some(&b"web-8"[..])));
    assert_eq!(agent.terminate(), Some(0));
}

/// Issue 17: `format: json` ships each line in an Elastic Common Schema envelope: when it was
/// read, the host, the file and the offset, the line as `message` (invalid UTF-8 replaced and
/// counted). Per entry, or top level; a top level change applies live, and the file's tail goes
/// on from where it was (no line lost or shipped twice).
#[test]
fn a_json_source_ships_each_line_in_an_ecs_envelope() {
    let (dir, broker) = setup();
    broker.create_topic("j");
    broker.create_topic("r");
    let (j, r) = (dir.path().join("j.log"), dir.path().join("r.log"));
    let mut lines = numbered("j", 0..3);
    lines.push("quote \" backslash \\ tab \t end".into());
    append(&j, &lines);
    std::fs::OpenOptions::new().append(true).open(&j).unwrap().write_all(b"caf\xe9 latin-1\n").unwrap();
    append(&r, &numbered("r", 0..2));
    let config = |top: &str| {
        let y = format!(
            "catsyslog: {{logpath: {d}/agent.log, loglevel: debug}}\ndata_dir: {d}/data\npoll_interval: 50ms\n\
             start_position: beginning\nhostname: web-9\nmetrics: {{path: {d}/m.prom, interval: 200ms}}\n{top}\
             kafkaconfig: {{kafkaaddr: \"{}\"}}\ncollectlogs:\n\
             - {{logpath: \"{}\", logtopic: j, format: json}}\n- {{logpath: \"{}\", logtopic: r}}\n",
            broker.addr(),
            j.display(),
            r.display(),
            d = dir.path().display()
        );
        let tmp = dir.path().join(".config.tmp");
        std::fs::write(&tmp, y).unwrap();
        std::fs::rename(&tmp, dir.path().join("config.yaml")).unwrap();
        dir.path().join("config.yaml")
    };
    let before = std::time::SystemTime::now();
    let mut agent = Agent::start(&config(""));
    let msgs = broker.read("j", 5, T);
    let text = std::fs::read(&j).unwrap();
    let mut at = 0u64;
    let mut expect: Vec<String> = lines.clone();
    expect.push("caf\u{fffd} latin-1".into());
    assert_eq!(msgs.len(), 5);
    for (m, want) in msgs.iter().zip(&expect) {
        let v: serde_json::Value = serde_json::from_slice(&m.value).expect("the payload is JSON");
        assert_eq!(v["message"], want.as_str());
        assert_eq!(v["host"]["name"], "web-9");
        assert_eq!(v["log"]["file"]["path"], j.to_str().unwrap());
        assert_eq!(v["log"]["offset"], at, "{v}");
        let stamp = v["@timestamp"].as_str().unwrap();
        assert!(stamp.len() == 24 && stamp.ends_with('Z') && stamp.as_bytes()[19] == b'.', "{stamp}");
        assert!(stamp >= &rfc3339_of(before)[..], "read after the test began: {stamp}");
        at += text[at as usize..].iter().position(|&b| b == b'\n').unwrap() as u64 + 1;
    }
    let raw = broker.lines("r", 2, T);
    assert_eq!(raw, numbered("r", 0..2), "an entry with no format ships raw lines");
    let metrics = dir.path().join("m.prom");
    wait_until(T, "the replaced line counted", || metric(&metrics, "logcatch_json_replaced_lines_total") == Some(1.0));

    // Top level `format: json`, applied live: r.log's tail is replaced by a JSON one, which goes
    // on from where the raw one was.
    config("format: json\n");
    agent.wait_log("applied now: format", T);
    append(&r, &numbered("r", 2..4));
    let msgs = broker.read("r", 4, T);
    let values: Vec<String> = msgs.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect();
    assert_eq!(&values[..2], &numbered("r", 0..2)[..]);
    for (m, want) in msgs[2..].iter().zip(numbered("r", 2..4)) {
        let v: serde_json::Value = serde_json::from_slice(&m.value).expect("now JSON");
        assert_eq!(v["message"], want.as_str());
    }
    assert_eq!(broker.read("r", 5, Duration::from_secs(2)).len(), 4, "nothing shipped twice");
    assert_eq!(agent.terminate(), Some(0));
}

/// `t` as RFC 3339 UTC to the second, the way the envelope starts its `@timestamp`.
fn rfc3339_of(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let out = Command::new("date").args(["-u", "-d", &format!("@{secs}"), "+%Y-%m-%dT%H:%M:%S"]).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Issue 15: a FIFO named as a log path blocked its tail inside open() (and shutdown waited for
/// it). It is refused as not a regular file, without blocking; the other file ships.
#[test]
fn a_fifo_named_as_a_log_is_refused_without_blocking_anything() {
    let (dir, broker) = setup();
    broker.create_topic("t");
    let fifo = dir.path().join("pipe.log");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let a = dir.path().join("a.log");
    append(&a, &numbered("a", 0..10));
    let cfg = write_config(dir.path(), &broker.addr(), &[(&fifo, "t"), (&a, "t")], "start_position: beginning\n");
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("t", 10, T), numbered("a", 0..10));
    agent.wait_log("not a regular file", T);
    let t0 = std::time::Instant::now();
    assert_eq!(agent.terminate(), Some(0));
    assert!(t0.elapsed() < Duration::from_secs(5), "shutdown held up for {:?}", t0.elapsed());
    assert!(!agent.log_text().contains("did not"), "every tail stopped in time");
}
