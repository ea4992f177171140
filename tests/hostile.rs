//! Hostile input (issue 7): whatever config.yaml, an etcd value or a watch stream holds, the
//! parsers answer with an error naming the problem, never a panic. Property tests (proptest) run
//! briefly in the test command; the fixed cases cover huge, deep, NUL-laden and cut-off input.

use std::path::Path;

use logcatch::config::Config;
use logcatch::etcd::gateway::{decode_watch_line, LineSplitter};
use logcatch::etcd::value;
use proptest::prelude::*;

fn allow() -> Vec<String> {
    vec!["/var/log".to_string()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn config_text_never_panics(text in ".{0,400}") {
        let _ = Config::parse(&text, Path::new("/etc/logcatch/config.yaml"));
    }

    #[test]
    fn config_shaped_yaml_never_panics(
        path in "[ -~]{0,40}", topic in "[ -~]{0,20}", level in "[a-z]{0,8}", n in 0u64..100000,
    ) {
        let y = format!(
            "catsyslog: {{loglevel: {level:?}}}\ncollectlogs:\n  - {{logpath: {path:?}, logtopic: {topic:?}}}\nkafkaconfig: {{kafkaaddr: \"h:1\", queue_max_messages: {n}}}\nmax_line_bytes: {n}\n"
        );
        let _ = Config::parse(&y, Path::new("/c.yaml"));
    }

    #[test]
    fn etcd_values_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = value::parse(&bytes, &allow());
    }

    #[test]
    fn etcd_entries_parse_or_are_named(entries in proptest::collection::vec(("[ -~]{0,30}", "[ -~]{0,20}"), 0..20)) {
        let json = serde_json::to_string(
            &entries.iter().map(|(p, t)| serde_json::json!({"path": p, "topic": t})).collect::<Vec<_>>()
        ).unwrap();
        match value::parse(json.as_bytes(), &allow()) {
            Ok(parsed) => prop_assert!(parsed.tails.len() + parsed.refused.len() <= entries.len()),
            Err(e) => prop_assert!(e.starts_with("entry ") || e.contains("JSON")),
        }
    }

    #[test]
    fn watch_streams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
        let mut s = LineSplitter::default();
        let cut = cut.min(bytes.len());
        for chunk in [&bytes[..cut], &bytes[cut..]] {
            if let Ok(lines) = s.push(chunk) {
                for l in lines {
                    let _ = decode_watch_line(&l);
                }
            }
        }
    }
}

#[test]
fn a_10_mib_value_is_an_error_with_its_size() {
    let entry = r#"{"path":"/var/log/x.log","topic":"t"},"#;
    let mut v = String::from("[");
    while v.len() < 10 * 1024 * 1024 {
        v.push_str(entry);
    }
    v.pop();
    v.push(']');
    // 10 MiB is under the 16 MiB limit: it parses (and refuses nothing), in bounded time.
    let started = std::time::Instant::now();
    let r = value::parse(v.as_bytes(), &allow());
    assert!(r.is_err(), "more than MAX_ENTRIES entries are refused");
    assert!(r.unwrap_err().contains("entries"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let huge = vec![b'['; 17 * 1024 * 1024];
    assert!(value::parse(&huge, &allow()).unwrap_err().contains("bytes"));
}

#[test]
fn thousands_of_entries_apply() {
    let v: Vec<_> =
        (0..5000).map(|i| serde_json::json!({"path": format!("/var/log/f{i}.log"), "topic": "t"})).collect();
    let parsed = value::parse(serde_json::to_string(&v).unwrap().as_bytes(), &allow()).unwrap();
    assert_eq!(parsed.tails.len(), 5000);
}

#[test]
fn deep_nesting_and_nul_bytes_are_named() {
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(value::parse(deep.as_bytes(), &allow()).is_err());
    let e = value::parse(br#"[{"path":"/var/log/a\u0000b","topic":"t"}]"#, &allow()).unwrap_err();
    assert!(e.contains("NUL"), "{e}");
    let yaml = "kafkaconfig: {kafkaaddr: \"h:1\"}\ncollectlogs: [{logpath: \"/a\\0b\", logtopic: t}]\n";
    assert!(Config::parse(yaml, Path::new("/c.yaml")).unwrap_err().to_string().contains("NUL"));
    let deep_yaml = format!("collectlogs: {}{}", "[".repeat(10_000), "]".repeat(10_000));
    assert!(Config::parse(&deep_yaml, Path::new("/c.yaml")).is_err());
}

#[test]
fn a_watch_stream_cut_mid_object_leaves_it_pending_not_decoded() {
    let mut s = LineSplitter::default();
    let lines = s
        .push(
            br#"{"result":{"header":{"revision":"5"},"created":true}}
{"result":{"header":{"revision":"6"},"events":[{"kv":{"value":"W10="#,
        )
        .unwrap();
    assert_eq!(lines.len(), 1);
    assert!(s.pending() > 0, "the cut object waits for the rest (or for the stream's end)");
}
