//! Issue 24: whoever can write an etcd key (or plant a file in a log directory) must not make the
//! agent read any file of the host, multiply its threads, or write through a link. Each attack
//! the issue reproduced is a test of its own here, against the release-shaped binary, a real etcd
//! and the test broker, with a stand-in secret file (`SECRET` lines) beside the allowed tree.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    broker: Broker,
    etcd: Etcd,
}

/// A broker with `topics`, one etcd member, `<root>/logs` (the allowed tree) and
/// `<root>/secret/shadow` (the stand-in secret, outside it).
fn setup(topics: &[&str]) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let broker = Broker::start(&root);
    for t in topics {
        broker.create_topic(t);
    }
    let etcd = Etcd::start(&root, 1);
    std::fs::create_dir_all(root.join("logs")).unwrap();
    std::fs::create_dir_all(root.join("secret")).unwrap();
    append(&root.join("secret/shadow"), &["SECRET root:$6$hash".to_string()]);
    Env { _dir: dir, root, broker, etcd }
}

impl Env {
    fn logs(&self) -> PathBuf {
        self.root.join("logs")
    }
    fn secret(&self) -> PathBuf {
        self.root.join("secret/shadow")
    }
    /// config.yaml with its own `collectlogs:` list (YAML text) in place of write_config's.
    fn config_with(&self, collectlogs: &str, keys: &[&str], extra: &str) -> PathBuf {
        let path = self.config(&[], keys, extra);
        let text = std::fs::read_to_string(&path).unwrap().replace("collectlogs: []\n", collectlogs);
        std::fs::write(&path, text).unwrap();
        path
    }
    fn config(&self, files: &[(&Path, &str)], keys: &[&str], extra: &str) -> PathBuf {
        let extra = format!(
            "start_position: beginning\nhostname: attacked\n{extra}{}",
            etcd_yaml(&self.etcd.endpoints(), keys, &self.logs())
        );
        write_config(&self.root, &self.broker.addr(), files, &extra)
    }
    /// `etcdctl put key` with the value on standard input (a 600 KB value is too long for argv).
    fn put_stdin(&self, key: &str, value: &[u8]) {
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.etcd.endpoints()[0]))
            .args(["put", key])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("etcdctl (scripts/install-deps.sh)");
        child.stdin.take().unwrap().write_all(value).unwrap();
        assert!(child.wait().unwrap().success(), "etcdctl put {key}");
    }
}

/// Reads `topic` for a bounded while past `want` lines: exactly `want` arrive, no `SECRET`.
fn exactly(env: &Env, topic: &str, want: &[String]) {
    let got = env.broker.lines(topic, want.len() + 1, Duration::from_secs(3));
    assert!(got.iter().all(|l| !l.contains("SECRET")), "the secret was shipped: {got:?}");
    assert_eq!(got, want);
}

/// Attack 1: a symlinked directory inside the allowed tree and a `.?` glob component (the glob
/// crate made it `..`, applied by the kernel after the link): no file outside is read.
#[test]
fn a_glob_through_a_symlinked_directory_with_dot_components_reads_nothing_outside() {
    let env = setup(&["t1"]);
    let app = env.logs().join("app");
    std::fs::create_dir_all(app.join("sub")).unwrap();
    // `/var/log/app/conf -> /opt/app/conf`: the link leads out of the allowed tree.
    std::fs::create_dir_all(env.root.join("secret/inner")).unwrap();
    symlink(env.root.join("secret/inner"), app.join("conf")).unwrap();
    let ok = app.join("ok.log");
    append(&ok, &numbered("ok", 0..3));
    let value = format!(
        r#"[{{"path":"{logs}/*/conf/.?/shadow","topic":"t1"}},{{"path":"{logs}/*/conf/../../shadow","topic":"t1"}},
            {{"path":"{logs}/app/conf/*","topic":"t1"}},{{"path":"{logs}/*/ok.log","topic":"t1"}}]"#,
        logs = env.logs().display()
    );
    env.etcd.put_raw("k", &value);
    let mut agent = Agent::start(&env.config(&[], &["k"], ""));
    exactly(&env, "t1", &numbered("ok", 0..3));
    let log = agent.log_text();
    assert!(
        log.contains(&format!("{}/*/conf/../../shadow: has a '.' or '..' component; refused", env.logs().display())),
        "{log}"
    );
    assert!(log.contains(&format!("{}: matched by", app.join("conf").display())) && log.contains("symlink"), "{log}");
    assert!(
        log.contains(&format!(
            "{}/app/conf/*: {} is a symlink (not followed)",
            env.logs().display(),
            app.join("conf").display()
        )),
        "{log}"
    );
    assert_eq!(agent.terminate(), Some(0));
}

/// Attack 2: a literal allowed path that does not exist yet passes the value's check; a symlink
/// planted there later (and at a config.yaml path, and as a rotated sibling) is never followed,
/// and the tail reads the real file that replaces it. `follow_symlinks: true` on a config.yaml
/// entry follows, as its author asked.
#[test]
fn a_symlink_planted_after_the_check_is_never_followed() {
    let env = setup(&["t1", "cfg", "followed"]);
    let logs = env.logs();
    let new = logs.join("new.log");
    let cfg_log = logs.join("cfg.log");
    let linked = logs.join("linked.log");
    let target = env.root.join("elsewhere.log");
    append(&target, &numbered("target", 0..2));
    symlink(&target, &linked).unwrap();
    env.etcd.put("k", &[(&new, "t1")]);
    let collect = format!(
        "collectlogs:\n  - {{logpath: \"{}\", logtopic: cfg}}\n  - {{logpath: \"{}\", logtopic: followed, follow_symlinks: true}}\n",
        cfg_log.display(),
        linked.display()
    );
    let cfg_path = env.config_with(&collect, &["k"], "");
    let mut agent = Agent::start(&cfg_path);
    assert_eq!(env.broker.lines("followed", 2, T), numbered("target", 0..2), "followed as asked");
    agent.wait_log(&format!("starting {} -> t1", new.display()), T);
    // The attacker's links, after the agent checked the names.
    symlink(env.secret(), &new).unwrap();
    symlink(env.secret(), &cfg_log).unwrap();
    symlink(env.secret(), logs.join("new.log.1")).unwrap();
    agent.wait_log(&format!("{}: a symlink on the way or at the end (not followed", new.display()), T);
    agent.wait_log(&format!("{}: a symlink on the way or at the end (not followed", cfg_log.display()), T);
    // The link replaced by a real log: it is read.
    std::fs::remove_file(&new).unwrap();
    append(&new, &numbered("new", 0..3));
    std::fs::remove_file(&cfg_log).unwrap();
    append(&cfg_log, &numbered("cfg", 0..2));
    assert_eq!(env.broker.lines("t1", 3, T), numbered("new", 0..3));
    exactly(&env, "t1", &numbered("new", 0..3));
    exactly(&env, "cfg", &numbered("cfg", 0..2));
    // The same with the legacy kernels' walk instead of openat2.
    assert_eq!(agent.terminate(), Some(0));
    std::fs::remove_file(&new).unwrap();
    symlink(env.secret(), &new).unwrap();
    let agent = Agent::start_env(&cfg_path, &[("LOGCATCH_NO_OPENAT2", "1")]);
    agent.wait_log("no openat2", T);
    agent.wait_log(&format!("{}: a symlink on the way or at the end (not followed", new.display()), T);
    exactly(&env, "t1", &numbered("new", 0..3));
}

/// Attack 3: one put of 10,000 entries, each a glob over the same 5 files to its own topic (about
/// 600 KB): refused whole by `max_tails`, named in the log and in the agent's fleet report; the
/// agent's threads stay few, and its config.yaml file ships on, every line in order.
#[test]
fn a_value_that_would_pass_max_tails_is_refused_whole_and_config_yaml_ships_on() {
    let env = setup(&["own", "t0"]);
    let logs = env.logs();
    for i in 0..5 {
        append(&logs.join(format!("f{i}.log")), &numbered("f", 0..1));
    }
    let own = env.root.join("own.log");
    append(&own, &numbered("own", 0..100));
    let mut agent = Agent::start(&env.config(&[(&own, "own")], &["k"], ""));
    assert_eq!(env.broker.lines("own", 100, T).len(), 100);
    let entries: Vec<String> =
        (0..10_000).map(|i| format!(r#"{{"path":"{}/*.log","topic":"t{i}"}}"#, logs.display())).collect();
    let value = format!("[{}]", entries.join(","));
    assert!(value.len() > 500_000, "{}", value.len());
    env.put_stdin("k", value.as_bytes());
    agent.wait_log("more than max_tails (10000); refused whole", T);
    append(&own, &numbered("own", 100..200));
    assert_eq!(env.broker.lines("own", 200, T), numbered("own", 0..200));
    let threads = std::fs::read_to_string(format!("/proc/{}/status", agent.proc.pid()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Threads:").map(|n| n.trim().parse::<usize>().unwrap()))
        .unwrap();
    assert!(threads < 100, "{threads} threads");
    wait_until(T, "the refusal in the fleet report", || {
        env.etcd.get("logcatch/agents/attacked").is_some_and(|v| v.contains("\"error\":") && v.contains("max_tails"))
    });
    // A value within the cap still applies.
    env.etcd.put("k", &[(&logs.join("f0.log"), "t0")]);
    assert_eq!(env.broker.lines("t0", 1, T), numbered("f", 0..1));
    assert_eq!(agent.terminate(), Some(0));
}

/// Attack 4: the agent's state files, with symlinks planted at the names it writes (the metrics
/// file's temporary, the checkpoints' temporary, the pid file, its own log): nothing is written
/// through them; a planted pid file or log refuses the start with the name said. What it creates
/// is its own (umask 077), the metrics file readable by all.
#[test]
fn state_files_are_never_written_through_a_symlink() {
    let env = setup(&["t"]);
    let a = env.logs().join("a.log");
    append(&a, &numbered("a", 0..10));
    let victim = env.root.join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let textdir = env.root.join("textfile");
    let data = env.root.join("data");
    std::fs::create_dir_all(&textdir).unwrap();
    std::fs::create_dir_all(&data).unwrap();
    for planted in [textdir.join("logcatch.prom.tmp"), data.join("checkpoints.json.tmp")] {
        symlink(&victim, planted).unwrap();
    }
    let prom = textdir.join("logcatch.prom");
    let extra = format!("metrics: {{path: \"{}\", interval: 200ms}}\n", prom.display());
    let cfg = env.config(&[(&a, "t")], &[], &extra);
    let mut agent = Agent::start(&cfg);
    assert_eq!(env.broker.lines("t", 10, T), numbered("a", 0..10));
    wait_until(T, "the metrics file", || metric(&prom, "logcatch_up") == Some(1.0));
    wait_until(T, "checkpoints saved", || data.join("checkpoints.json").exists());
    assert_eq!(agent.terminate(), Some(0));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&prom), 0o644, "node_exporter reads it as another user");
    assert_eq!(mode(&data.join("checkpoints.json")), 0o600);
    assert_eq!(mode(&env.root.join("agent.log")), 0o600);

    // A planted pid file, then a planted log: refused, named, nothing written through them.
    let pid = env.root.join("logcatch.pid");
    symlink(&victim, &pid).unwrap();
    let cfg = env.config(&[(&a, "t")], &[], &format!("pid_file: \"{}\"\n", pid.display()));
    let mut agent = Agent::start(&cfg);
    assert_ne!(agent.proc.wait_exit(T), Some(0));
    assert!(
        agent.log_text().contains(&format!("{} is a symlink; refusing to write through it", pid.display())),
        "{}",
        agent.log_text()
    );
    std::fs::remove_file(&pid).unwrap();
    std::fs::remove_file(env.root.join("agent.log")).unwrap();
    symlink(&victim, env.root.join("agent.log")).unwrap();
    let cfg = env.config(&[(&a, "t")], &[], "");
    let mut agent = Agent::start(&cfg);
    assert_ne!(agent.proc.wait_exit(T), Some(0));
    assert!(agent.log_text().contains("is a symlink; refusing to write through it"), "{}", agent.log_text());
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

/// Attack 5: an etcd endpoint that answers every watch with an in-stream error. The watcher backs
/// off (with jitter) instead of reconnecting thousands of times, and says the failure once.
#[test]
fn a_broken_etcd_endpoint_is_not_hammered() {
    let env = setup(&[]);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let watches = Arc::new(AtomicUsize::new(0));
    let counted = watches.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(conn.try_clone().unwrap());
                let (mut first, mut len) = (String::new(), 0usize);
                reader.read_line(&mut first).unwrap_or(0);
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; len];
                let _ = reader.read_exact(&mut body);
                let answer = if first.contains("/v3/watch") {
                    counted.fetch_add(1, Ordering::SeqCst);
                    r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader (lying endpoint)"}}"#
                } else {
                    r#"{"header":{"revision":"7"},"kvs":[]}"#
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{answer}\n"
                );
            });
        }
    });
    let extra = format!("etcdconfig: [\"http://{addr}\"]\netcdkeys: [\"k\"]\nfleet_prefix: \"\"\n");
    let cfg = write_config(&env.root, &env.broker.addr(), &[], &format!("start_position: beginning\n{extra}"));
    let mut agent = Agent::start(&cfg);
    agent.wait_log("lying endpoint", T);
    std::thread::sleep(Duration::from_secs(10));
    let n = watches.load(Ordering::SeqCst);
    eprintln!("watch requests in 10 s: {n}");
    // 200 ms doubling to 5 s, each less up to half: at most ~20 in 10 s (5,604 without backoff).
    assert!((2..=25).contains(&n), "{n} watch requests in 10 s");
    let said = agent.log_text().matches("lying endpoint").count();
    assert_eq!(said, 1, "said once a minute:\n{}", agent.log_text());
    assert_eq!(agent.terminate(), Some(0));
}

/// Attack 6 (the walk): two `ln -s . x` loops in a globbed directory, and a `**` pattern that
/// matches nothing: the walk ends at once (no symlinked directory is entered, even with
/// `follow_symlinks: true`), and the glob's real files ship.
#[test]
fn double_star_does_not_walk_symlink_loops() {
    let env = setup(&["t"]);
    let logs = env.logs();
    std::fs::create_dir_all(logs.join("a/b")).unwrap();
    symlink(".", logs.join("loop1")).unwrap();
    symlink(".", logs.join("a/loop2")).unwrap();
    symlink("..", logs.join("a/b/up")).unwrap();
    let deep = logs.join("a/b/deep.log");
    append(&deep, &numbered("deep", 0..3));
    let collect = format!(
        "collectlogs:\n  - {{logpath: \"{l}/**/nomatch.log\", logtopic: t}}\n  - {{logpath: \"{l}/**/*.log\", logtopic: t}}\n",
        l = logs.display()
    );
    let cfg = env.config_with(&collect, &[], "follow_symlinks: true\n");
    let mut agent = Agent::start(&cfg);
    exactly(&env, "t", &numbered("deep", 0..3));
    assert!(!agent.log_text().contains("walk stopped"), "{}", agent.log_text());
    assert_eq!(agent.terminate(), Some(0));
}

/// Attack 6 (what we ship): the systemd unit runs as the `logcatch` user, hardened, checked with
/// the real `systemd-analyze` (`verify`, and an exposure of 2.0 or less, "OK"); the supervisord
/// section runs it as `logcatch` too (tests/operations.rs runs it under the real supervisord).
#[test]
fn the_shipped_units_run_the_agent_unprivileged_and_hardened() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/logcatch.service")).unwrap();
    for line in [
        "User=logcatch",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "UMask=0077",
        "LimitCORE=0",
        "CapabilityBoundingSet=\n",
    ] {
        assert!(unit.contains(line), "{line:?} missing from the unit");
    }
    let conf =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/supervisord-logcatch.conf")).unwrap();
    assert!(conf.contains("\nuser=logcatch\n") && conf.contains("\numask=077\n"));
    if Command::new("systemd-analyze").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "systemd-analyze missing (scripts/install-deps.sh)");
        eprintln!("SKIPPED: no systemd-analyze");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("logcatch.service");
    // verify checks that ExecStart's binary exists: the one under test.
    std::fs::write(&path, unit.replace("/usr/local/bin/logcatch", bin())).unwrap();
    assert_unit_verified_and_hardened(&path);
}
