//! What operators do to lines on the way (issue 28), against the real broker (and etcd):
//! `include_lines`/`exclude_lines` (a dropped line still moves the position), `fields` (headers
//! with `raw`, the envelope's `labels` with `json`), topics from `{host}` and `{fields.NAME}`,
//! and `rate_limit` (reads slowed, nothing dropped, other sources at their pace).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// A config.yaml with `entries` (YAML list items, indented by two) and `extra` top-level keys.
fn config(dir: &Path, broker: &str, entries: &[String], extra: &str) -> PathBuf {
    let mut y = format!(
        "catsyslog: {{logpath: {d}/agent.log, loglevel: debug}}\ndata_dir: {d}/data\npoll_interval: 50ms\n\
         kafkaconfig: {{kafkaaddr: \"{broker}\"}}\nstart_position: beginning\n\
         metrics: {{path: {d}/logcatch.prom, interval: 200ms}}\ncollectlogs:{}\n",
        if entries.is_empty() { " []" } else { "" },
        d = dir.display()
    );
    for e in entries {
        y.push_str(&format!("  - {e}\n"));
    }
    y.push_str(extra);
    let (path, tmp) = (dir.join("config.yaml"), dir.join(".config.yaml.tmp"));
    std::fs::write(&tmp, y).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

/// The metrics file of `config`'s agent.
fn metrics(dir: &Path) -> logcatch::metrics::Parsed {
    logcatch::metrics::parse(&std::fs::read_to_string(dir.join("logcatch.prom")).unwrap_or_default())
        .unwrap_or_default()
}

fn per_source(dir: &Path, name: &str, path: &Path, topic: &str) -> Option<f64> {
    metrics(dir).by_source(name).get(&(path.to_string_lossy().into_owned(), topic.to_string())).copied()
}

#[test]
fn include_and_exclude_lines_drop_lines_and_a_file_of_dropped_lines_is_not_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(d);
    broker.create_topic("f");
    let (app, noise) = (d.join("app.log"), d.join("noise.log"));
    let mut lines = Vec::new();
    for i in 0..300 {
        lines.push(match i % 3 {
            0 => format!("ERROR {i:04} disk"),
            1 => format!("DEBUG {i:04} detail"),
            _ => format!("ERROR {i:04} GET /healthcheck"),
        });
    }
    append(&app, &lines);
    append(&noise, &numbered("DEBUG", 0..200));
    let entries = [
        format!("{{logpath: {}, logtopic: f, include_lines: ['^ERROR'], exclude_lines: [healthcheck]}}", app.display()),
        format!("{{logpath: {}, logtopic: f, exclude_lines: ['^DEBUG']}}", noise.display()),
    ];
    let cfg = config(d, &broker.addr(), &entries, "");
    let mut agent = Agent::start(&cfg);
    let want: Vec<String> = lines.iter().filter(|l| l.contains("disk")).cloned().collect();
    assert_eq!(broker.lines("f", 100, T), want, "only the included lines not excluded, in order");
    wait_until(T, "the filtered lines counted and both files read to their end", || {
        per_source(d, "logcatch_source_filtered_lines_total", &app, "f") == Some(200.0)
            && per_source(d, "logcatch_source_filtered_lines_total", &noise, "f") == Some(200.0)
            && per_source(d, "logcatch_source_lag_bytes", &noise, "f") == Some(0.0)
    });
    let out = Command::new(bin()).args(["status", "-c"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("RUNNING") && !said.contains("STUCK"), "{said}");
    assert_eq!(agent.terminate(), Some(0));

    // Restarted: both files go on from their ends; nothing is filtered (read) again.
    std::fs::remove_file(d.join("logcatch.prom")).unwrap();
    let mut agent = Agent::start(&cfg);
    append(&app, &["ERROR 9999 after".to_string(), "INFO after".to_string()]);
    assert_eq!(broker.lines("f", 101, T).last().map(String::as_str), Some("ERROR 9999 after"));
    wait_until(T, "the restarted agent's metrics", || {
        per_source(d, "logcatch_source_filtered_lines_total", &app, "f") == Some(1.0)
    });
    assert_eq!(per_source(d, "logcatch_source_filtered_lines_total", &noise, "f"), Some(0.0), "not read again");
    assert_eq!(broker.lines("f", 102, Duration::from_secs(2)).len(), 101, "nothing twice");
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn fields_go_as_headers_with_raw_and_as_labels_with_json_and_name_the_topic() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(d);
    broker.create_topic("raw");
    broker.create_topic("billing-web-7");
    let (a, b) = (d.join("a.log"), d.join("b.log"));
    append(&a, &numbered("a", 0..3));
    append(&b, &numbered("b", 0..3));
    let entries = [
        format!("{{logpath: {}, logtopic: raw, fields: {{app: billing, version: 2}}}}", a.display()),
        format!(
            "{{logpath: {}, logtopic: '{{fields.app}}-{{host}}', format: json, fields: {{app: billing, env: prod}}}}",
            b.display()
        ),
    ];
    // Top-level labels every entry has; an entry's own win.
    let cfg = config(d, &broker.addr(), &entries, "hostname: web-7\nfields: {dc: eu1, app: default}\n");
    let mut agent = Agent::start(&cfg);
    let raw = broker.read("raw", 3, T);
    assert_eq!(
        raw.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect::<Vec<_>>(),
        numbered("a", 0..3)
    );
    let names: Vec<&str> = raw[0].headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["host", "path", "offset", "app", "dc", "version"], "the labels after the built-in headers");
    assert_eq!(raw[0].headers[3].1, "billing", "the entry's label wins over the top level's");
    assert_eq!(raw[0].headers[4].1, "eu1");
    assert_eq!(raw[0].headers[5].1, "2");
    let json = broker.read("billing-web-7", 3, T);
    assert_eq!(json.len(), 3, "the topic named by a label and the host");
    let v: serde_json::Value = serde_json::from_slice(&json[0].value).unwrap();
    assert_eq!(v["labels"], serde_json::json!({"app": "billing", "dc": "eu1", "env": "prod"}));
    assert_eq!(v["message"], "b-000000");
    assert_eq!(agent.terminate(), Some(0));

    // Refused with the field named: a label taking a built-in header's name, a topic naming a
    // label the entry does not have.
    for (entry, named) in [
        (format!("{{logpath: {}, logtopic: t, fields: {{host: x}}}}", a.display()), "collectlogs[0].fields: \"host\""),
        (
            format!("{{logpath: {}, logtopic: '{{fields.team}}', fields: {{app: x}}}}", a.display()),
            "collectlogs[0].logtopic: \"{fields.team}\": {fields.team} names no label",
        ),
        (format!("{{logpath: {}, logtopic: t, include_lines: ['(']}}", a.display()), "collectlogs[0].include_lines[0]"),
        (format!("{{logpath: {}, logtopic: t, rate_limit: 10}}", a.display()), "collectlogs[0].rate_limit: 10 bytes"),
        (
            format!("{{logpath: {}, logtopic: t, encoding: ebcdic}}", a.display()),
            "collectlogs[0].encoding: \"ebcdic\" is not one of",
        ),
        (
            format!("{{logpath: {}, logtopic: t, encoding: utf-16le, multiline: java}}", a.display()),
            "collectlogs[0].encoding: utf-16 with multiline is not supported",
        ),
    ] {
        let bad = tempfile::tempdir().unwrap();
        let cfg = config(bad.path(), &broker.addr(), &[entry], "");
        let out = Command::new(bin()).arg("-c").arg(&cfg).arg("--check").output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(said.contains(named), "{named:?} not in:\n{said}");
    }
}

#[test]
fn etcd_entries_filter_label_and_route_like_config_yaml_and_a_change_applies_live() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().canonicalize().unwrap();
    let broker = Broker::start(&d);
    broker.create_topic("e-web-7");
    let etcd = Etcd::start(&d, 1);
    let logs = d.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let a = logs.join("a.log");
    append(&a, &["keep 1".to_string(), "drop 2".to_string(), "keep 3".to_string()]);
    let value = |exclude: &str| {
        format!(
            r#"[{{"path":"{}","topic":"e-{{host}}","exclude_lines":["{exclude}"],"fields":{{"team":"ops"}}}}]"#,
            a.display()
        )
    };
    etcd.put_raw("k", &value("^drop"));
    let extra = format!("hostname: web-7\nfields: {{dc: eu1}}\n{}", etcd_yaml(&etcd.endpoints(), &["k"], &logs));
    let cfg = config(&d, &broker.addr(), &[], &extra);
    let mut agent = Agent::start(&cfg);
    let got = broker.read("e-web-7", 2, T);
    assert_eq!(
        got.iter().map(|m| String::from_utf8_lossy(&m.value).into_owned()).collect::<Vec<_>>(),
        ["keep 1", "keep 3"]
    );
    assert!(got[0].headers.contains(&("team".to_string(), "ops".to_string())));
    assert!(got[0].headers.contains(&("dc".to_string(), "eu1".to_string())), "the top-level labels too");
    // A new value: the tail restarts with the new filter, from where it was.
    etcd.put_raw("k", &value("^keep"));
    agent.wait_log(&format!("tail {} -> e-web-7 stopped", a.display()), T);
    append(&a, &["keep 4".to_string(), "drop 5".to_string()]);
    assert_eq!(broker.lines("e-web-7", 3, T), ["keep 1", "keep 3", "drop 5"]);
    // A bad pattern in a value is refused whole, named; the tail goes on as it was.
    etcd.put_raw("k", &value("("));
    agent.wait_log("entry 0: exclude_lines[0]", T);
    append(&a, &["drop 6".to_string(), "keep 7".to_string()]);
    assert_eq!(broker.lines("e-web-7", 4, T), ["keep 1", "keep 3", "drop 5", "drop 6"]);
    assert_eq!(agent.terminate(), Some(0));
}

#[test]
fn rate_limit_slows_a_backlog_without_losing_a_line_while_another_source_flows() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(d);
    broker.create_topic("slow");
    broker.create_topic("live");
    let (backlog, live) = (d.join("backlog.log"), d.join("live.log"));
    // 2,000 lines of 1 KiB: 2 MiB, 32 s at 64 KiB/s.
    let pad = "x".repeat(1000);
    let lines: Vec<String> = (0..2000).map(|i| format!("{i:06} {pad}")).collect();
    append(&backlog, &lines);
    let entries = [
        format!("{{logpath: {}, logtopic: slow, rate_limit: 64KiB}}", backlog.display()),
        format!("{{logpath: {}, logtopic: live}}", live.display()),
    ];
    let cfg = config(d, &broker.addr(), &entries, "");
    let mut agent = Agent::start(&cfg);
    // While the backlog is read slowly, the other file's lines arrive at once.
    wait_until(T, "the backlog to be throttled", || {
        per_source(d, "logcatch_source_throttled_seconds_total", &backlog, "slow").is_some_and(|s| s > 0.0)
    });
    append(&live, &numbered("live", 0..10));
    assert_eq!(broker.lines("live", 10, T), numbered("live", 0..10));
    let lag = per_source(d, "logcatch_source_lag_bytes", &backlog, "slow").unwrap_or(0.0);
    assert!(
        lag > 0.0,
        "the backlog is still being read when the live lines arrived:\n{}",
        std::fs::read_to_string(d.join("logcatch.prom")).unwrap()
    );
    let out = Command::new(bin()).args(["status", "-c"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!said.contains("STUCK"), "a throttled catch-up is not stuck: {said}");

    // Raised live, the rest comes; every line once, in order.
    let entries = [
        format!("{{logpath: {}, logtopic: slow, rate_limit: 64MiB}}", backlog.display()),
        format!("{{logpath: {}, logtopic: live}}", live.display()),
    ];
    config(d, &broker.addr(), &entries, "");
    agent.proc.signal(libc::SIGHUP);
    assert_eq!(broker.lines("slow", 2000, T), lines);
    assert_eq!(agent.terminate(), Some(0));
}

/// `encoding`: files in Latin-1, Windows-1252, Shift-JIS, GBK, UTF-16LE (with a BOM and CRLF,
/// as SQL Server's ERRORLOG) and UTF-16BE arrive as UTF-8, each line's `offset` header its
/// offset in the file's own bytes; filters match the decoded text; a restart goes on from the
/// position in the file's bytes, nothing lost or twice.
#[test]
fn files_in_other_charsets_arrive_as_utf8_with_offsets_in_their_own_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let broker = Broker::start(d);
    let enc = |e: &'static encoding_rs::Encoding, text: &str| e.encode(text).0.into_owned();
    let utf16 = |text: &str, big: bool| -> Vec<u8> {
        text.encode_utf16().flat_map(|u| if big { u.to_be_bytes() } else { u.to_le_bytes() }).collect()
    };
    let latin1 = |text: &str| -> Vec<u8> { text.chars().map(|c| c as u32 as u8).collect() };
    type Encode = Box<dyn Fn(&str) -> Vec<u8>>;
    let cases: Vec<(&str, &str, Vec<&str>, Encode, &str)> = vec![
        ("latin1", "latin1", vec!["café au lait", "naïve ½"], Box::new(latin1), "\n"),
        (
            "windows-1252",
            "cp",
            vec!["price 5 €", "“quoted”"],
            Box::new(move |t| enc(encoding_rs::WINDOWS_1252, t)),
            "\n",
        ),
        (
            "shift_jis",
            "sjis",
            vec!["エラー: ディスク", "情報: 起動", "エラー: 接続"],
            Box::new(move |t| enc(encoding_rs::SHIFT_JIS, t)),
            "\n",
        ),
        ("gbk", "gbk", vec!["错误 磁盘", "信息 启动"], Box::new(move |t| enc(encoding_rs::GBK, t)), "\n"),
        (
            "utf-16le",
            "u16le",
            vec!["2026-12-07 Server started", "Ошибка 17806"],
            Box::new(move |t| utf16(t, false)),
            "\r\n",
        ),
        ("utf-16be", "u16be", vec!["ψ line one", "line two"], Box::new(move |t| utf16(t, true)), "\n"),
    ];
    let mut entries = Vec::new();
    let mut expected = Vec::new();
    for (encoding, topic, lines, encode, newline) in &cases {
        broker.create_topic(topic);
        let path = d.join(format!("{topic}.log"));
        let mut bytes = if *topic == "u16le" { vec![0xff, 0xfe] } else { Vec::new() };
        let mut offsets = Vec::new();
        for l in lines {
            // A line's offset is where its bytes begin: the first, with the BOM before its text, at 0.
            offsets.push(if offsets.is_empty() { "0".to_string() } else { bytes.len().to_string() });
            bytes.extend(encode(l));
            bytes.extend(encode(newline));
        }
        std::fs::write(&path, &bytes).unwrap();
        let filter = if *topic == "sjis" { ", exclude_lines: ['^情報']" } else { "" };
        entries.push(format!("{{logpath: {}, logtopic: {topic}, encoding: {encoding}{filter}}}", path.display()));
        let kept: Vec<(String, String)> = lines
            .iter()
            .zip(offsets)
            .filter(|(l, _)| !l.starts_with("情報"))
            .map(|(l, o)| (l.to_string(), o))
            .collect();
        expected.push((*topic, path, kept, encode, *newline));
    }
    let cfg = config(d, &broker.addr(), &entries, "");
    let mut agent = Agent::start(&cfg);
    for (topic, _, kept, _, _) in &expected {
        let got = broker.read(topic, kept.len(), T);
        let got: Vec<(String, String)> = got
            .iter()
            .map(|m| {
                let text = String::from_utf8(m.value.clone()).expect("a UTF-8 message");
                let offset = m.headers.iter().find(|(k, _)| k == "offset").unwrap().1.clone();
                (text, offset)
            })
            .collect();
        assert_eq!(&got, kept, "{topic}: the text as UTF-8, offsets in the file's bytes");
    }
    assert_eq!(agent.terminate(), Some(0));

    // Restarted, each goes on from its position in its own bytes.
    let mut agent = Agent::start(&cfg);
    for (topic, path, kept, encode, newline) in &expected {
        let mut more = encode("after the restart");
        more.extend(encode(newline));
        std::fs::OpenOptions::new().append(true).open(path).unwrap().write_all(&more).unwrap();
        let got = broker.lines(topic, kept.len() + 1, T);
        assert_eq!(got.len(), kept.len() + 1, "{topic}: nothing twice or lost");
        assert_eq!(got.last().map(String::as_str), Some("after the restart"), "{topic}");
    }
    assert_eq!(agent.terminate(), Some(0));
}
