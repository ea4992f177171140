//! Hostile input (issue 7): whatever config.yaml, an etcd value or a watch stream holds, the
//! parsers answer with an error naming the problem, never a panic. Property tests (proptest) run
//! briefly in the test command; the fixed cases cover huge, deep, NUL-laden and cut-off input.

use std::path::Path;

use logcatch::config::Config;
use logcatch::confine::{self, Allowlist};
use logcatch::discover::{expand, Input, Rules};
use logcatch::etcd::gateway::{decode_watch_line, LineSplitter};
use logcatch::etcd::value;
use proptest::prelude::*;

fn allow() -> Allowlist {
    Allowlist { allowed: vec!["/var/log".to_string()], denied: Vec::new() }
}

/// A tree for the confinement property: an allowed root holding plain files, directories and
/// symlinks of every kind (to a secret file, to a directory outside, to `.` and `..`, relative
/// ones staying inside), and outside it files that hold `SECRET`.
struct Tree {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

fn tree() -> Tree {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let logs = root.join("logs");
    for d in ["logs/a/b", "logs/c", "secret/sub"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for f in ["secret/shadow", "secret/sub/key", "secret.log"] {
        std::fs::write(root.join(f), b"SECRET\n").unwrap();
    }
    for f in ["x.log", "a/x.log", "a/b/x.log", "c/y.log"] {
        std::fs::write(logs.join(f), b"ok\n").unwrap();
    }
    symlink(root.join("secret"), logs.join("a/conf")).unwrap();
    symlink(root.join("secret/shadow"), logs.join("shadow")).unwrap();
    symlink("../../secret.log", logs.join("c/up.log")).unwrap();
    symlink(".", logs.join("c/dot")).unwrap();
    symlink("..", logs.join("a/b/parent")).unwrap();
    symlink("x.log", logs.join("inside.log")).unwrap();
    Tree { _dir: dir, root }
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(".".to_string()),
        Just("..".to_string()),
        Just(".?".to_string()),
        Just("*".to_string()),
        Just("**".to_string()),
        Just("?".to_string()),
        Just("a".to_string()),
        Just("b".to_string()),
        Just("c".to_string()),
        Just("conf".to_string()),
        Just("dot".to_string()),
        Just("parent".to_string()),
        Just("shadow".to_string()),
        Just("sub".to_string()),
        Just("key".to_string()),
        Just("x.log".to_string()),
        Just("up.log".to_string()),
        Just("inside.log".to_string()),
        Just("*.log".to_string()),
        Just("secret".to_string()),
        "[a-z]{200,255}",
    ]
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
        let _ = value::parse(&bytes, &allow(), &logcatch::labels::Defaults::default());
    }

    #[test]
    fn etcd_entries_parse_or_are_named(entries in proptest::collection::vec(("[ -~]{0,30}", "[ -~]{0,20}"), 0..20)) {
        let json = serde_json::to_string(
            &entries.iter().map(|(p, t)| serde_json::json!({"path": p, "topic": t})).collect::<Vec<_>>()
        ).unwrap();
        match value::parse(json.as_bytes(), &allow(), &logcatch::labels::Defaults::default()) {
            Ok(parsed) => prop_assert!(parsed.tails.len() + parsed.refused.len() <= entries.len()),
            Err(e) => prop_assert!(e.starts_with("entry ") || e.contains("JSON")),
        }
    }

    /// Whatever an etcd writer puts (paths with `.`, `..`, `.?`, `**`, symlinks on the way, long
    /// and deep names), every file the agent would open lies under the allowed root and is not a
    /// secret: the value's check, the glob walk and the confined open together, with openat2 and
    /// with the legacy walk.
    #[test]
    fn no_etcd_path_opens_a_file_outside_the_allowed_root(
        paths in proptest::collection::vec(proptest::collection::vec(component(), 1..8), 1..6),
        from_root in any::<bool>(),
    ) {
        let t = tree();
        let logs = t.root.join("logs");
        let base = if from_root { t.root.clone() } else { logs.clone() };
        let entries: Vec<_> = paths
            .iter()
            .map(|parts| serde_json::json!({"path": format!("{}/{}", base.display(), parts.join("/")), "topic": "t"}))
            .collect();
        let allowed = Allowlist { allowed: vec![logs.to_string_lossy().into_owned()], denied: Vec::new() };
        let value = serde_json::to_vec(&entries).unwrap();
        let Ok(parsed) = value::parse(&value, &allowed, &logcatch::labels::Defaults::default()) else { return Ok(()) };
        let rules = Rules { ignore_older: None, own_log: None, now: std::time::SystemTime::now(), format: Default::default(), walk_limit: None };
        let inputs = parsed.tails.iter().map(|s| Input { selector: s, allowed: Some(&allowed), scanned_before: false });
        let found = expand(inputs, |_| false, &rules);
        for openat2 in [true, false] {
            confine::set_openat2(openat2);
            for spec in &found.tails {
                prop_assert!(spec.path.starts_with(&logs), "{:?}", spec.path);
                if let Ok(f) = confine::open(&spec.path, &spec.access) {
                    let mut text = String::new();
                    std::io::Read::read_to_string(&mut &f, &mut text).unwrap();
                    prop_assert_eq!(text, "ok\n", "{:?} (openat2: {})", spec.path, openat2);
                }
            }
        }
        confine::set_openat2(true);
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
    let r = value::parse(v.as_bytes(), &allow(), &logcatch::labels::Defaults::default());
    assert!(r.is_err(), "more than MAX_ENTRIES entries are refused");
    assert!(r.unwrap_err().contains("entries"));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let huge = vec![b'['; 17 * 1024 * 1024];
    assert!(value::parse(&huge, &allow(), &logcatch::labels::Defaults::default()).unwrap_err().contains("bytes"));
}

#[test]
fn thousands_of_entries_apply() {
    let v: Vec<_> =
        (0..5000).map(|i| serde_json::json!({"path": format!("/var/log/f{i}.log"), "topic": "t"})).collect();
    let parsed =
        value::parse(serde_json::to_string(&v).unwrap().as_bytes(), &allow(), &logcatch::labels::Defaults::default())
            .unwrap();
    assert_eq!(parsed.tails.len(), 5000);
}

#[test]
fn deep_nesting_and_nul_bytes_are_named() {
    let deep = format!("{}{}", "[".repeat(50_000), "]".repeat(50_000));
    assert!(value::parse(deep.as_bytes(), &allow(), &logcatch::labels::Defaults::default()).is_err());
    let e = value::parse(
        br#"[{"path":"/var/log/a\u0000b","topic":"t"}]"#,
        &allow(),
        &logcatch::labels::Defaults::default(),
    )
    .unwrap_err();
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
