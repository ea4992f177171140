//! The packages (issue 27): `scripts/package.sh`'s .deb and .rpm, checked by the tools a
//! distribution checks packages with (lintian, rpmlint, systemd-analyze), and installed for
//! real: the .deb with dpkg inside a minimal Debian root (`scripts/debroot.sh`, debootstrap's
//! minbase), installed, upgraded, removed and purged, its agent started by the init script as
//! the `logcatch` user and shipping lines to the test broker across the upgrade; the .rpm with
//! `rpm --root` into an empty root, and with its scriptlets into another Debian root (it has the
//! /bin/sh, useradd and su an EL host has).
//!
//! Needs the static binary (LOGCATCH_STATIC_BIN, as tests/release.rs), dpkg-deb, rpmbuild,
//! lintian, rpmlint and chroot; without them the tests say SKIPPED, except in CI, where they fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);
const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// SKIPPED (or, in CI, a failure) with the reason.
fn skip(why: &str) {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success())
}

/// The packages of this build: the version of Cargo.toml and a later one to upgrade to.
struct Built {
    _dir: tempfile::TempDir,
    deb: PathBuf,
    rpm: PathBuf,
    deb_next: PathBuf,
    rpm_next: PathBuf,
}

/// Built once per test binary (about 10 s: two strips, two of each format).
fn built() -> Option<&'static Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    let made = BUILT.get_or_init(|| {
        let bin = std::env::var_os("LOGCATCH_STATIC_BIN")
            .filter(|p| Path::new(p).is_file())
            .ok_or("LOGCATCH_STATIC_BIN names no file; run scripts/test.sh")?;
        for tool in ["dpkg-deb", "rpmbuild", "lintian", "rpmlint", "chroot"] {
            if !have(tool) {
                return Err(format!("{tool} missing (scripts/install-deps.sh installs it)"));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let next = format!("{version}.1");
        let mut paths = Vec::new();
        for v in [version, next.as_str()] {
            let out = Command::new("bash")
                .arg(format!("{ROOT}/scripts/package.sh"))
                .args(["--version", v, "--out"])
                .arg(dir.path())
                .env("LOGCATCH_STATIC_BIN", &bin)
                .output()
                .unwrap();
            let said = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(out.status.success(), "package.sh: {said}{}", String::from_utf8_lossy(&out.stderr));
            paths.extend(said.lines().map(PathBuf::from));
        }
        let [deb, rpm, deb_next, rpm_next] = <[PathBuf; 4]>::try_from(paths).expect("two paths per run");
        Ok(Built { _dir: dir, deb, rpm, deb_next, rpm_next })
    });
    match made {
        Ok(b) => Some(b),
        Err(why) => {
            skip(why);
            None
        }
    }
}

/// The section of the README that lists what lintian and rpmlint say and why.
fn readme_explains(tag: &str) -> bool {
    let readme = std::fs::read_to_string(format!("{ROOT}/README.md")).unwrap();
    readme.contains(&format!("`{tag}`"))
}

#[test]
fn lintian_finds_no_error_and_the_readme_explains_each_warning_and_override() {
    let Some(b) = built() else { return };
    let out =
        Command::new("lintian").args(["--show-overrides", "--tag-display-limit", "0"]).arg(&b.deb).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let tags: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let (kind, rest) = l.split_once(": logcatch: ")?;
            Some((kind, rest.split_whitespace().next()?))
        })
        .collect();
    assert!(!tags.iter().any(|(k, _)| *k == "E"), "lintian errors:\n{text}");
    for (kind, tag) in &tags {
        if *kind == "W" || *kind == "O" {
            assert!(readme_explains(tag), "lintian's {kind}: {tag} is not explained in the README:\n{text}");
        }
    }
}

#[test]
fn rpmlint_finds_no_error_and_the_readme_explains_each_warning_and_filter() {
    let Some(b) = built() else { return };
    let rc = format!("{ROOT}/scripts/package/logcatch.rpmlintrc");
    let out = Command::new("rpmlint").arg("-r").arg(&rc).arg(&b.rpm).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains(" 0 errors,"), "rpmlint errors:\n{text}");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("logcatch.x86_64: W: ") {
            let tag = rest.split_whitespace().next().unwrap();
            assert!(readme_explains(tag), "rpmlint's warning {tag} is not explained in the README:\n{text}");
        }
    }
    let filters = std::fs::read_to_string(&rc).unwrap();
    for f in filters.lines().filter_map(|l| l.strip_prefix("addFilter(\"")) {
        let tag = f.split([' ', '"']).next().unwrap();
        assert!(readme_explains(tag), "the filter of {tag} is not explained in the README");
    }
}

/// A throwaway copy of the minimal Debian root. Dropped, it kills (by pid) every process whose
/// root is inside it, then deletes it.
struct DebRoot {
    dir: tempfile::TempDir,
}

impl DebRoot {
    fn new() -> Option<DebRoot> {
        static TARBALL: OnceLock<Result<PathBuf, String>> = OnceLock::new();
        let tarball = TARBALL.get_or_init(|| {
            let out = Command::new("bash").arg(format!("{ROOT}/scripts/debroot.sh")).output().unwrap();
            let said = String::from_utf8_lossy(&out.stdout);
            match said.lines().last() {
                Some(p) if out.status.success() => Ok(PathBuf::from(p)),
                _ => Err(format!("scripts/debroot.sh failed: {}", String::from_utf8_lossy(&out.stderr))),
            }
        });
        let tarball = match tarball {
            Ok(t) => t,
            Err(why) => {
                skip(why);
                return None;
            }
        };
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("tar").arg("-xzf").arg(tarball).arg("-C").arg(dir.path()).status().unwrap();
        assert!(ok.success(), "unpacking {}", tarball.display());
        // A host's invoke-rc.d asks its init system; a chroot has none, and Debian's invoke-rc.d
        // then asks policy-rc.d (missing: "Defaulting to block"). This one allows every action,
        // as a host's init would, so that the maintainer scripts start and stop the agent here.
        let policy = dir.path().join("usr/sbin/policy-rc.d");
        std::fs::write(&policy, "#!/bin/sh\nexit 0\n").unwrap();
        std::fs::set_permissions(
            &policy,
            <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o755),
        )
        .unwrap();
        Some(DebRoot { dir })
    }

    /// A path inside the root, as seen from outside.
    fn at(&self, inside: &str) -> PathBuf {
        self.dir.path().join(inside.trim_start_matches('/'))
    }

    /// Runs a command inside the root: its exit code and what it printed.
    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = Command::new("chroot")
            .arg(self.dir.path())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
    }

    /// `run`, which must succeed.
    fn ok(&self, args: &[&str]) -> String {
        let (code, text) = self.run(args);
        assert_eq!(code, Some(0), "{args:?} in the root:\n{text}");
        text
    }

    /// Copies a file into the root's /tmp; its path inside.
    fn put(&self, file: &Path) -> String {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(file, self.at("/tmp").join(&name)).unwrap();
        format!("/tmp/{name}")
    }

    /// The agent's pid, from the init script's pid file (under /run: /var/run is a symlink).
    fn agent_pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.at("/run/logcatch/logcatch.pid")).ok()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// The uid and gid of a user of the root's /etc/passwd.
    fn user(&self, name: &str) -> Option<(u32, u32)> {
        let passwd = std::fs::read_to_string(self.at("/etc/passwd")).unwrap();
        passwd.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| (f[2].parse().unwrap(), f[3].parse().unwrap()))
        })
    }

    /// The gid of a group of the root's /etc/group, and its members.
    fn group(&self, name: &str) -> Option<(u32, Vec<String>)> {
        let group = std::fs::read_to_string(self.at("/etc/group")).unwrap();
        group.lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f[0] == name).then(|| (f[2].parse().unwrap(), f[3].split(',').map(String::from).collect()))
        })
    }

    /// Writes the agent's config: the test broker, one file of the root's /var/log to `topic`.
    fn configure(&self, broker: &str, topic: &str) {
        std::fs::write(
            self.at("/etc/logcatch/config.yaml"),
            format!(
                "catsyslog: {{logpath: /var/log/logcatch/logcatch.log, loglevel: info}}\n\
                 collectlogs:\n  - {{logpath: /var/log/app/app.log, logtopic: {topic}}}\n\
                 kafkaconfig: {{kafkaaddr: \"{broker}\"}}\n\
                 data_dir: /var/lib/logcatch\nstart_position: beginning\n"
            ),
        )
        .unwrap();
    }
}

impl Drop for DebRoot {
    fn drop(&mut self) {
        let root = self.dir.path().canonicalize().unwrap();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            if std::fs::read_link(entry.path().join("root")).is_ok_and(|r| r.starts_with(&root)) {
                // SAFETY: kill(2) on a pid read from /proc; a pid gone meanwhile is ESRCH.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
}

fn mode_owner(path: &Path) -> (u32, u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (m.mode() & 0o7777, m.uid(), m.gid())
}

/// A log of the root's /var/log/app, root:adm 0640 as Debian's own logs are: the agent reads it
/// through its group.
fn app_log(root: &DebRoot) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let app = root.at("/var/log/app");
    std::fs::create_dir_all(&app).unwrap();
    let log = app.join("app.log");
    std::fs::write(&log, "").unwrap();
    let adm = root.group("adm").expect("group adm").0;
    std::os::unix::fs::chown(&log, Some(0), Some(adm)).unwrap();
    std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o640)).unwrap();
    log
}

/// The uid a process runs as.
fn uid_of(pid: i32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn the_deb_installs_upgrades_removes_and_purges_and_its_agent_ships_lines_across_the_upgrade() {
    let Some(b) = built() else { return };
    let Some(root) = DebRoot::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("pkg");

    // Install: the user (in group adm), the directories it owns, the conffiles; not started.
    let deb = root.put(&b.deb);
    root.ok(&["dpkg", "-i", &deb]);
    let (uid, gid) = root.user("logcatch").expect("the logcatch user");
    assert!(uid < 1000, "a system user: uid {uid}");
    assert!(root.group("adm").unwrap().1.contains(&"logcatch".to_string()), "logcatch is in group adm");
    assert_eq!(mode_owner(&root.at("/var/lib/logcatch")), (0o700, uid, gid));
    assert_eq!(mode_owner(&root.at("/var/log/logcatch")).0, 0o750);
    assert_eq!(mode_owner(&root.at("/etc/logcatch")), (0o750, 0, gid));
    assert_eq!(mode_owner(&root.at("/usr/bin/logcatch")), (0o755, 0, 0));
    let conffiles = root.ok(&["dpkg-query", "-W", "-f", "${Conffiles}", "logcatch"]);
    for f in ["/etc/logcatch/config.yaml", "/etc/init.d/logcatch", "/etc/logrotate.d/logcatch"] {
        assert!(conffiles.contains(f), "{f} is a conffile: {conffiles}");
    }
    for f in [
        "/lib/systemd/system/logcatch.service",
        "/usr/share/doc/logcatch/examples/supervisord-logcatch.conf",
        "/usr/share/man/man1/logcatch.1.gz",
    ] {
        assert!(root.at(f).is_file(), "{f} installed");
    }
    assert!(root.at("/etc/rc2.d/S01logcatch").exists(), "the init script is registered (update-rc.d)");
    assert_eq!(root.agent_pid(), None, "a first install does not start the agent");
    assert!(root.ok(&["logcatch", "--version"]).contains(env!("CARGO_PKG_VERSION")));

    // The operator's config, then the init script starts the agent as logcatch.
    root.configure(&broker.addr(), "pkg");
    let edited = std::fs::read(root.at("/etc/logcatch/config.yaml")).unwrap();
    let log = app_log(&root);
    append(&log, &numbered("a", 0..5));
    root.ok(&["/etc/init.d/logcatch", "start"]);
    let first = root.agent_pid().expect("the agent runs");
    assert_eq!(uid_of(first), uid, "the agent runs as logcatch");
    assert_eq!(broker.lines("pkg", 5, T), numbered("a", 0..5));

    // Upgrade: the agent is restarted on the new binary, the edited config kept, no line lost or
    // sent twice.
    let next = root.put(&b.deb_next);
    root.ok(&["dpkg", "-i", &next]);
    wait_until(T, "the agent to be restarted", || root.agent_pid().is_some_and(|p| p != first));
    let second = root.agent_pid().unwrap();
    assert_eq!(uid_of(second), uid);
    assert_eq!(std::fs::read(root.at("/etc/logcatch/config.yaml")).unwrap(), edited, "the edited conffile is kept");
    append(&log, &numbered("a", 5..10));
    assert_eq!(broker.lines("pkg", 10, T), numbered("a", 0..10), "every line once, in order, across the upgrade");
    let (code, text) = root.run(&["/etc/init.d/logcatch", "status"]);
    assert_eq!(code, Some(0), "{text}");

    // Remove: the agent stops (cleanly: it said so), config and positions stay.
    root.ok(&["dpkg", "-r", "logcatch"]);
    assert_eq!(root.agent_pid(), None, "removal stops the agent");
    assert!(!Path::new(&format!("/proc/{second}")).exists());
    let agent_log = std::fs::read_to_string(root.at("/var/log/logcatch/logcatch.log")).unwrap();
    assert!(agent_log.contains("stopped: every line was delivered"), "{agent_log}");
    assert!(!root.at("/usr/bin/logcatch").exists());
    assert_eq!(std::fs::read(root.at("/etc/logcatch/config.yaml")).unwrap(), edited, "remove keeps the config");
    assert!(root.at("/var/lib/logcatch/checkpoints.json").is_file(), "remove keeps the positions");

    // Reinstalled, it goes on from its positions.
    root.ok(&["dpkg", "-i", &next]);
    append(&log, &numbered("a", 10..12));
    root.ok(&["/etc/init.d/logcatch", "start"]);
    assert_eq!(broker.lines("pkg", 12, T), numbered("a", 0..12), "nothing read twice after a reinstall");
    root.ok(&["/etc/init.d/logcatch", "stop"]);

    // Purge: config, positions and log gone; the user stays.
    root.ok(&["dpkg", "-P", "logcatch"]);
    for gone in ["/etc/logcatch", "/var/lib/logcatch", "/var/log/logcatch", "/etc/init.d/logcatch"] {
        assert!(!root.at(gone).exists(), "{gone} is purged");
    }
    assert!(!root.at("/etc/rc2.d/S01logcatch").exists(), "unregistered");
    assert!(root.user("logcatch").is_some(), "the user is kept");
}

#[test]
fn the_rpm_installs_into_an_empty_root_with_its_files_owned_and_marked() {
    let Some(b) = built() else { return };
    let root = tempfile::tempdir().unwrap();
    let r = root.path().to_str().unwrap();
    let rpm = |args: &[&str]| {
        let out = Command::new("rpm").args(["--root", r]).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rpm {args:?}: {text}");
        text
    };
    rpm(&["--initdb"]);
    // No shell, no useradd in an empty root: the scriptlets are run in the next test.
    rpm(&["-i", "--nodeps", "--noscripts", b.rpm.to_str().unwrap()]);
    let listed = rpm(&[
        "-q",
        "--qf",
        "[%{FILEMODES:perms} %{FILEUSERNAME}:%{FILEGROUPNAME} %{FILEFLAGS:fflags} %{FILENAMES}\n]",
        "logcatch",
    ]);
    for want in [
        "-rwxr-xr-x root:root  /usr/bin/logcatch",
        "drwxr-x--- root:logcatch  /etc/logcatch",
        "-rw-r----- root:logcatch cn /etc/logcatch/config.yaml",
        "-rw-r--r-- root:root cn /etc/logrotate.d/logcatch",
        "-rwxr-xr-x root:root  /etc/rc.d/init.d/logcatch",
        "-rw-r--r-- root:root  /usr/lib/systemd/system/logcatch.service",
        "drwx------ logcatch:logcatch  /var/lib/logcatch",
        "drwxr-x--- logcatch:adm  /var/log/logcatch",
    ] {
        assert!(listed.lines().any(|l| l == want), "{want:?} not in:\n{listed}");
    }
    assert!(root.path().join("usr/bin/logcatch").is_file());
    let unit = std::fs::read_to_string(root.path().join("usr/lib/systemd/system/logcatch.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/logcatch -c /etc/logcatch/config.yaml"), "{unit}");
}

#[test]
fn the_rpm_scriptlets_make_the_user_and_an_upgrade_restarts_the_agent_and_erase_stops_it() {
    let Some(b) = built() else { return };
    let Some(root) = DebRoot::new() else { return };
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("rpm");
    let r = root.dir.path().to_str().unwrap().to_string();
    let rpm = |args: &[&str]| {
        let out = Command::new("rpm").args(["--root", &r]).args(args).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "rpm {args:?}: {text}");
        text
    };
    rpm(&["--initdb"]);
    // The Debian root's packages are not in its rpm database: --nodeps.
    rpm(&["-i", "--nodeps", b.rpm.to_str().unwrap()]);
    let (uid, gid) = root.user("logcatch").expect("%pre made the user");
    assert!(uid < 1000);
    assert_eq!(mode_owner(&root.at("/var/lib/logcatch")), (0o700, uid, gid));
    assert_eq!(mode_owner(&root.at("/etc/logcatch/config.yaml")), (0o640, 0, gid));
    assert_eq!(root.agent_pid(), None, "a first install does not start the agent");

    root.configure(&broker.addr(), "rpm");
    let log = app_log(&root);
    append(&log, &numbered("r", 0..5));
    root.ok(&["/etc/rc.d/init.d/logcatch", "start"]);
    let first = root.agent_pid().expect("the agent runs");
    assert_eq!(uid_of(first), uid);
    assert_eq!(broker.lines("rpm", 5, T), numbered("r", 0..5));

    rpm(&["-U", "--nodeps", b.rpm_next.to_str().unwrap()]);
    wait_until(T, "the agent to be restarted", || root.agent_pid().is_some_and(|p| p != first));
    append(&log, &numbered("r", 5..10));
    assert_eq!(broker.lines("rpm", 10, T), numbered("r", 0..10), "every line once, in order, across the upgrade");
    assert!(std::fs::read_to_string(root.at("/etc/logcatch/config.yaml")).unwrap().contains("logtopic: rpm"));

    rpm(&["-e", "--nodeps", "logcatch"]);
    assert_eq!(root.agent_pid(), None, "erase stops the agent");
    assert!(!root.at("/usr/bin/logcatch").exists());
    // An edited %config(noreplace) is kept as .rpmsave; the positions stay.
    assert!(root.at("/etc/logcatch/config.yaml.rpmsave").is_file());
    assert!(root.at("/var/lib/logcatch/checkpoints.json").is_file());
}

/// The unit the packages install (ExecStart at /usr/bin) passes `systemd-analyze verify` and
/// keeps an exposure of 2.0 or less; tests/confinement.rs checks the source unit the same way.
#[test]
fn the_packaged_unit_verifies_and_is_hardened() {
    let Some(b) = built() else { return };
    let root = tempfile::tempdir().unwrap();
    let ok = Command::new("dpkg-deb").arg("-x").arg(&b.deb).arg(root.path()).status().unwrap();
    assert!(ok.success());
    let unit = std::fs::read_to_string(root.path().join("lib/systemd/system/logcatch.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/bin/logcatch "), "{unit}");
    // verify checks that ExecStart's binary exists on this host: the packaged one, where it was
    // unpacked (systemd-analyze's --root wants a root with systemd's own units in it).
    let path = root.path().join("logcatch.service");
    let packaged = root.path().join("usr/bin/logcatch");
    std::fs::write(&path, unit.replace("/usr/bin/logcatch", &packaged.to_string_lossy())).unwrap();
    assert_unit_verified_and_hardened(&path);
}
