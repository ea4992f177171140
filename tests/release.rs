//! The static release binary needs nothing from the host (issue 16): alone in an empty
//! directory, run under `chroot` with no /lib, /etc, /usr, /proc or shell inside, it ships a
//! file's lines to the real test broker, and `--check`, `status` and `--version` work there.
//!
//! The binary is built by `scripts/static-build.sh` (the test command runs it first) and named by
//! LOGCATCH_STATIC_BIN. Without it the tests say SKIPPED, except in CI, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// The static binary, or None (with the reason printed) when this run cannot test it.
fn static_bin() -> Option<PathBuf> {
    match std::env::var_os("LOGCATCH_STATIC_BIN") {
        Some(p) if Path::new(&p).is_file() => Some(p.into()),
        other => {
            let why = format!("LOGCATCH_STATIC_BIN ({other:?}) names no file; run scripts/test.sh");
            assert!(std::env::var_os("CI").is_none(), "{why}");
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// An empty root holding only the binary (as /logcatch) and the directories named.
fn bare_root(bin: &Path, dirs: &[&str]) -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::copy(bin, root.path().join("logcatch")).unwrap();
    for d in dirs {
        std::fs::create_dir_all(root.path().join(d)).unwrap();
    }
    root
}

/// `chroot ROOT /logcatch ARGS...`, or None (SKIPPED, with the reason) where chroot is refused.
fn chroot_cmd(root: &Path, args: &[&str]) -> Option<Command> {
    let probe = Command::new("chroot").arg(root).args(["/logcatch", "--help"]).output();
    match probe {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            eprintln!("SKIPPED: chroot refused here: {}", String::from_utf8_lossy(&o.stderr).trim());
            return None;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run chroot: {e}");
            return None;
        }
    }
    let mut c = Command::new("chroot");
    c.arg(root).arg("/logcatch").args(args);
    Some(c)
}

#[test]
fn the_static_binary_has_no_dynamic_section() {
    let Some(bin) = static_bin() else { return };
    let out = Command::new("readelf").arg("-d").arg(&bin).output().expect("readelf (binutils)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("NEEDED"), "the static binary names shared libraries:\n{text}");
    assert!(!text.contains("INTERP"), "no program interpreter");
    let file = Command::new("file").arg(&bin).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
    if let Ok(f) = file {
        assert!(f.contains("statically linked") || f.contains("static-pie linked"), "file says: {f}");
    }
}

#[test]
fn alone_in_a_chroot_it_ships_lines_and_answers_check_status_and_version() {
    let Some(bin) = static_bin() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("bare");
    let root = bare_root(&bin, &["logs", "data"]);
    let r = root.path();
    std::fs::write(
        r.join("config.yaml"),
        format!(
            "catsyslog: {{logpath: /agent.log, loglevel: info}}\n\
             kafkaconfig: {{kafkaaddr: \"{}\"}}\n\
             collectlogs: [{{logpath: /logs/app.log, logtopic: bare}}]\n\
             data_dir: /data\nstart_position: beginning\npoll_interval: 50ms\n\
             metrics: {{path: /metrics.prom, interval: 200ms}}\n",
            broker.addr()
        ),
    )
    .unwrap();
    append(&r.join("logs/app.log"), &numbered("bare", 0..200));

    let Some(mut check) = chroot_cmd(r, &["-c", "/config.yaml", "--check"]) else { return };
    let out = check.output().unwrap();
    assert!(out.status.success(), "--check in the chroot: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK"));

    let out = chroot_cmd(r, &["--version"]).unwrap().output().unwrap();
    let v = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && v.contains("x86_64-unknown-linux-musl") && v.contains("librdkafka"), "{v}");

    let mut run = chroot_cmd(r, &["-c", "/config.yaml"]).unwrap();
    let stderr = std::fs::File::create(dir.path().join("chroot-agent.stderr")).unwrap();
    let child = run.stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
    let mut agent = Proc { child: Some(child), name: "logcatch (static, chroot)".into() };
    assert_eq!(broker.lines("bare", 200, T), numbered("bare", 0..200));
    append(&r.join("logs/app.log"), &numbered("more", 0..50));
    let mut want = numbered("bare", 0..200);
    want.extend(numbered("more", 0..50));
    assert_eq!(broker.lines("bare", 250, T), want);

    wait_until(T, "the metrics file", || r.join("metrics.prom").exists());
    let out = chroot_cmd(r, &["status", "-c", "/config.yaml"]).unwrap().output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "status in the chroot says RUNNING:\n{text}");
    assert!(text.contains("RUNNING"), "{text}");

    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(T), Some(0));
    let log = std::fs::read_to_string(r.join("agent.log")).unwrap();
    assert!(log.contains("stopped: every line was delivered"), "{log}");
    assert!(!log.contains("panicked"), "{log}");
}

#[test]
fn in_a_bare_root_a_broker_name_that_cannot_resolve_is_named() {
    let Some(bin) = static_bin() else { return };
    let root = bare_root(&bin, &["logs", "data"]);
    let r = root.path();
    std::fs::write(
        r.join("config.yaml"),
        "catsyslog: {logpath: /agent.log}\nkafkaconfig: {kafkaaddr: \"kafka-nowhere:9092\"}\n\
         collectlogs: [{logpath: /logs/app.log, logtopic: t}]\ndata_dir: /data\n",
    )
    .unwrap();
    let Some(mut run) = chroot_cmd(r, &["-c", "/config.yaml"]) else { return };
    let child = run.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut agent = Proc { child: Some(child), name: "logcatch (static, chroot)".into() };
    let log = || std::fs::read_to_string(r.join("agent.log")).unwrap_or_default();
    wait_until(T, "the warning about /etc/hosts and /etc/resolv.conf", || {
        log().contains("neither /etc/hosts nor /etc/resolv.conf exists, so the host names kafka-nowhere")
    });
    wait_until(T, "librdkafka's error naming the broker", || log().contains("kafka-nowhere:9092"));
    assert!(agent.is_running(), "it keeps running and retrying");
    agent.signal(libc::SIGTERM);
    assert_eq!(agent.wait_exit(T), Some(0));
}

/// `scripts/release.sh` writes the bundle the README's install section uses: the static binary
/// and the operator's files, with checksums that verify, and a config.yaml that `--check` accepts.
#[test]
fn the_release_bundle_holds_what_the_install_section_uses() {
    let Some(_) = static_bin() else { return };
    let root = env!("CARGO_MANIFEST_DIR");
    let out = Command::new("bash").arg(format!("{root}/scripts/release.sh")).output().unwrap();
    assert!(out.status.success(), "release.sh: {}", String::from_utf8_lossy(&out.stderr));
    let tarball = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_string();
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar").arg("xzf").arg(Path::new(root).join(&tarball)).arg("-C").arg(dir.path()).status();
    assert!(st.unwrap().success(), "tar xzf {tarball}");
    let name = Path::new(&tarball).file_name().unwrap().to_string_lossy().trim_end_matches(".tar.gz").to_string();
    let top = dir.path().join(&name);
    for f in ["logcatch", "config.yaml", "logcatch.service", "supervisord-logcatch.conf", "cron-status.sh", "README.md"]
    {
        assert!(top.join(f).is_file(), "{f} in the bundle");
    }
    let sums = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(&top).output().unwrap();
    assert!(sums.status.success(), "{}", String::from_utf8_lossy(&sums.stdout));
    let check =
        Command::new(top.join("logcatch")).args(["--check", "-c"]).arg(top.join("config.yaml")).output().unwrap();
    assert!(check.status.success(), "the sample config: {}", String::from_utf8_lossy(&check.stderr));
}
