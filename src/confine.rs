//! The one confined open of a log file, and the rules of what etcd may name (issue 24).
//!
//! Exists because a path is only text: checked once and opened many times (the file appearing,
//! rotation, recreation, `close_inactive`, restarts), the name can be redirected by a symlink
//! planted between the check and the open by anyone who can write in the log directory, and a
//! glob or `..` applied after a symlink leaves the tree the text seemed to stay in. So every open
//! of a log file, whatever its source and reason, goes through `open`, which resolves the path
//! *beneath a root* on the kernel's side and checks the opened descriptor, never the name:
//!
//! - `Access::Beneath(root)`: the root directory is trusted as named (the operator wrote it in
//!   config.yaml); below it no symlink is followed at all and no `.` or `..` is accepted. On
//!   kernels with `openat2(2)` (5.6+) one call with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
//!   RESOLVE_NO_MAGICLINKS`; on the 3.10 and 4.x kernels of legacy hosts a component-by-component
//!   walk of `openat(O_PATH | O_DIRECTORY | O_NOFOLLOW)` from the root's descriptor, then
//!   `O_NOFOLLOW` on the file. Both refuse the same paths (the property test runs both).
//! - `Access::Follow`: the path as the kernel resolves it, for config.yaml entries whose author
//!   said `follow_symlinks: true`.
//!
//! Either way the file is opened `O_NONBLOCK` (a FIFO named as a log must not block the opening
//! thread until a writer comes) and refused unless `fstat` of the descriptor says regular file.
//!
//! `Allowlist` is the rule for etcd sources: a path must lie, by its text, under one of
//! `etcd_allowed_paths` and under none of `etcd_denied_paths`; its `Access` is then `Beneath` the
//! literal part of the allowed root it falls under, so the text that was checked is the file that
//! is opened. Not stopped here: a hard link to a secret planted in a log directory (the kernel's
//! `fs.protected_hardlinks`, on by default since 3.6, stops that for files the linker does not
//! own).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// Paths longer than this are refused (Linux's `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;

/// How a path may be resolved when it is opened.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Access {
    /// As the kernel resolves it, symlinks and all (`follow_symlinks: true`).
    Follow,
    /// Beneath this directory, no symlink followed below it, no `.` or `..`.
    Beneath(Arc<Path>),
}

impl Access {
    pub fn beneath(root: impl Into<PathBuf>) -> Access {
        Access::Beneath(Arc::from(root.into().as_path()))
    }
}

/// Why a confined open refused or failed. Callers branch on it: a missing file is waited for,
/// a refused one is reported and never retried with another rule.
#[derive(Debug)]
pub enum OpenError {
    /// The file, or a directory on the way, does not exist.
    NotFound,
    /// A symlink below the root: not followed.
    Symlink,
    /// The path is not below the root, or resolving it would leave it.
    Outside {
        root: PathBuf,
    },
    /// A `.` or `..` component.
    DotComponent,
    /// Longer than `MAX_PATH_BYTES`.
    TooLong(usize),
    /// Opened, but a directory, FIFO, socket or device.
    NotRegular,
    Io(io::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::NotFound => write!(f, "does not exist"),
            OpenError::Symlink => {
                write!(f, "a symlink on the way or at the end (not followed: follow_symlinks is off for this source)")
            }
            OpenError::Outside { root } => write!(f, "leaves {} (refused)", root.display()),
            OpenError::DotComponent => write!(f, "has a '.' or '..' component (refused)"),
            OpenError::TooLong(n) => write!(f, "is {n} bytes long, more than {MAX_PATH_BYTES} (refused)"),
            OpenError::NotRegular => write!(f, "not a regular file"),
            OpenError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl OpenError {
    /// Whether the rules refused the path (as opposed to the file missing or an I/O failure).
    pub fn is_refusal(&self) -> bool {
        matches!(self, OpenError::Symlink | OpenError::Outside { .. } | OpenError::DotComponent | OpenError::TooLong(_))
    }
}

/// Opens `path` for reading under `access`: never blocks, never follows what `access` forbids,
/// and returns only a regular file.
pub fn open(path: &Path, access: &Access) -> Result<File, OpenError> {
    let len = path.as_os_str().len();
    if len > MAX_PATH_BYTES {
        return Err(OpenError::TooLong(len));
    }
    let file = match access {
        Access::Follow => {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .map_err(from_io)?
        }
        Access::Beneath(root) => open_beneath(root, path)?,
    };
    match file.metadata() {
        Ok(m) if m.is_file() => {
            no_atime(&file);
            Ok(file)
        }
        Ok(_) => Err(OpenError::NotRegular),
        Err(e) => Err(OpenError::Io(e)),
    }
}

/// Reads of `file` leave its access time alone (`O_NOATIME`), where the kernel lets this process
/// ask (it owns the file, or runs as root): with `relatime`, the first read after each write
/// stamped the time and dirtied the inode, so tailing a file written a line at a time made a
/// journal write per line (perf of 1,000 files written 10 lines a second each: `touch_atime`
/// was 4.6% of the looker's samples). Elsewhere (EPERM) reads go on as before. Set after the
/// open, one `fcntl`, so that the three ways of opening share it.
fn no_atime(file: &File) {
    use std::os::fd::AsRawFd;
    let fd = file.as_raw_fd();
    // SAFETY: F_GETFL and F_SETFL on a descriptor `file` owns, alive across both calls; they
    // read and set its status flags only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NOATIME);
        }
    }
}

/// The part of `path` below `root`, checked: every component a plain name.
fn below<'a>(root: &Path, path: &'a Path) -> Result<&'a Path, OpenError> {
    if has_dot_component(path) {
        return Err(OpenError::DotComponent);
    }
    let rest = path.strip_prefix(root).map_err(|_| OpenError::Outside { root: root.to_path_buf() })?;
    if rest.as_os_str().is_empty() || !rest.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(OpenError::Outside { root: root.to_path_buf() });
    }
    Ok(rest)
}

/// Whether the path's text has a `.` or `..` component (`Path::components` folds a `.` away, so
/// the bytes are looked at).
pub fn has_dot_component(path: &Path) -> bool {
    path.as_os_str().as_bytes().split(|&b| b == b'/').any(|c| c == b"." || c == b"..")
}

fn open_beneath(root: &Path, path: &Path) -> Result<File, OpenError> {
    let rest = below(root, path)?;
    // The root is the operator's: followed as named.
    let dir = open_fd(None, root.as_os_str().as_bytes(), libc::O_PATH | libc::O_DIRECTORY)?;
    if use_openat2() {
        match openat2_beneath(&dir, rest, root) {
            Err(OpenError::Io(e)) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                // No openat2 here (an old kernel, or a seccomp filter that refuses unknown calls):
                // the walk from now on.
                OPENAT2.store(NO, Ordering::Relaxed);
            }
            other => return other,
        }
    }
    walk_beneath(dir, rest)
}

const UNKNOWN: u8 = 0;
const YES: u8 = 1;
const NO: u8 = 2;
static OPENAT2: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Whether to try `openat2`: yes until the kernel says it lacks it, or `LOGCATCH_NO_OPENAT2` is
/// set (the tests force the legacy walk with it; an operator whose sandbox mishandles the call
/// can too).
fn use_openat2() -> bool {
    match OPENAT2.load(Ordering::Relaxed) {
        YES => true,
        NO => false,
        _ => {
            let v = if std::env::var_os("LOGCATCH_NO_OPENAT2").is_some() { NO } else { YES };
            OPENAT2.store(v, Ordering::Relaxed);
            v == YES
        }
    }
}

/// Forces the legacy walk (`false`) or lets `openat2` be tried again (`true`): for tests.
pub fn set_openat2(on: bool) {
    OPENAT2.store(if on { YES } else { NO }, Ordering::Relaxed);
}

/// Which of the two ways opens files here, asked of the kernel once (`openat2` of `/`): for the
/// start-up log line.
pub fn method() -> &'static str {
    if use_openat2() {
        // SAFETY: see `openat2_beneath`; the descriptor returned, if any, is closed at once.
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
        let root = c"/";
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                root.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: the kernel's new descriptor, owned here alone.
            drop(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) });
        } else if matches!(io::Error::last_os_error().raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) {
            OPENAT2.store(NO, Ordering::Relaxed);
        }
    }
    if use_openat2() {
        "openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)"
    } else {
        "a component-by-component O_NOFOLLOW walk (no openat2)"
    }
}

/// Read flags of every log file: never blocks on a FIFO, never becomes a controlling terminal.
const READ: libc::c_int = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;

fn openat2_beneath(dir: &OwnedFd, rest: &Path, root: &Path) -> Result<File, OpenError> {
    use std::os::fd::AsRawFd;
    let name = cstring(rest.as_os_str().as_bytes())?;
    // SAFETY: `open_how` is plain data, zeroed then filled; the kernel reads `size_of` bytes of
    // it. `name` is a NUL-terminated string alive across the call.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (READ | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    for _ in 0..8 {
        // SAFETY: a raw syscall with valid pointers (see above); its result is a new descriptor
        // owned by nobody else, or -1.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                name.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by the kernel and is owned here alone.
            return Ok(unsafe { File::from_raw_fd(fd as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A rename elsewhere raced the lookup: the kernel asks to try again.
            Some(libc::EAGAIN) => continue,
            Some(libc::ELOOP) => return Err(OpenError::Symlink),
            Some(libc::EXDEV) => return Err(OpenError::Outside { root: root.to_path_buf() }),
            _ => return Err(from_io(e)),
        }
    }
    Err(OpenError::Io(io::Error::from_raw_os_error(libc::EAGAIN)))
}

/// The legacy kernels' way: each directory opened `O_PATH | O_NOFOLLOW` relative to the one
/// before, so nothing is resolved by name from the root again and a symlink swapped in at any
/// step is seen (`O_DIRECTORY | O_NOFOLLOW` on a symlink fails with `ENOTDIR`).
fn walk_beneath(mut dir: OwnedFd, rest: &Path) -> Result<File, OpenError> {
    let parts: Vec<&[u8]> = rest.iter().map(|c| c.as_bytes()).collect();
    let (last, dirs) = parts.split_last().expect("below() returns a non-empty path");
    for part in dirs {
        dir = match open_fd(Some(&dir), part, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Err(OpenError::Io(e)) if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink(&dir, part) => {
                return Err(OpenError::Symlink)
            }
            other => other?,
        };
    }
    match open_fd(Some(&dir), last, READ | libc::O_NOFOLLOW) {
        Ok(fd) => Ok(File::from(fd)),
        Err(OpenError::Io(e)) if e.raw_os_error() == Some(libc::ELOOP) => Err(OpenError::Symlink),
        Err(e) => Err(e),
    }
}

fn is_symlink(dir: &OwnedFd, name: &[u8]) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(name) = cstring(name) else { return false };
    // SAFETY: `st` is written by the kernel before it is read; `name` is NUL-terminated.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::fstatat(dir.as_raw_fd(), name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
    r == 0 && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
}

/// `openat(dir, name, flags | O_CLOEXEC)` (plain `open` without `dir`).
fn open_fd(dir: Option<&OwnedFd>, name: &[u8], flags: libc::c_int) -> Result<OwnedFd, OpenError> {
    use std::os::fd::AsRawFd;
    let c = cstring(name)?;
    let at = dir.map_or(libc::AT_FDCWD, |d| d.as_raw_fd());
    // SAFETY: `c` is NUL-terminated and alive across the call; the result is a new descriptor or -1.
    let fd = unsafe { libc::openat(at, c.as_ptr(), flags | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(from_io(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by the kernel and is owned here alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn cstring(bytes: &[u8]) -> Result<CString, OpenError> {
    CString::new(bytes).map_err(|_| OpenError::Io(io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in path")))
}

fn from_io(e: io::Error) -> OpenError {
    match e.raw_os_error() {
        Some(libc::ENOENT) => OpenError::NotFound,
        _ => OpenError::Io(e),
    }
}

/// What an etcd writer may name: paths under `allowed` (directory prefixes, `*` and `?` allowed
/// within a component) and under none of `denied` (glob patterns matched against the path and
/// each of its directories), judged on the text alone, which `Access::Beneath` then makes the
/// truth.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Allowlist {
    pub allowed: Vec<String>,
    pub denied: Vec<String>,
}

/// The security logs of the usual distributions: an etcd writer reads none of them unless
/// config.yaml says `etcd_denied_paths` itself (`[]` for none). Login records, authentication and
/// audit trails tell an attacker who logs in, from where, and what failed.
pub const DEFAULT_DENIED: &[&str] = &[
    "/var/log/auth.log*",
    "/var/log/secure*",
    "/var/log/audit",
    "/var/log/btmp*",
    "/var/log/wtmp*",
    "/var/log/lastlog",
    "/var/log/faillog",
    "/var/log/tallylog",
    "/var/log/sudo.log*",
    "/var/log/sssd",
];

impl Allowlist {
    /// Whether an etcd writer may name `path` (a file, or a glob's literal directory), and the
    /// access its opens get.
    pub fn check(&self, path: &Path) -> Result<Access, String> {
        let len = path.as_os_str().len();
        if len > MAX_PATH_BYTES {
            return Err(format!("is {len} bytes long, more than {MAX_PATH_BYTES}; refused"));
        }
        if has_dot_component(path) {
            return Err("has a '.' or '..' component; refused".into());
        }
        let Some(root) = self.allowed.iter().find(|a| under(path, Path::new(a))) else {
            return Err("outside etcd_allowed_paths; refused".into());
        };
        if let Some(d) = self.denied.iter().find(|d| denied(path, d)) {
            return Err(format!("matches etcd_denied_paths entry {d:?}; refused"));
        }
        Ok(Access::beneath(crate::pattern::literal_prefix(Path::new(root))))
    }
}

/// Whether the denylist pattern `pattern` matches `path` or one of its directories.
fn denied(path: &Path, pattern: &str) -> bool {
    let Ok(p) = glob::Pattern::new(pattern) else { return false };
    path.ancestors().any(|a| p.matches_path_with(a, crate::pattern::MATCH))
}

/// Whether `path` lies under `prefix`, comparing whole components (`/var/logs` is not under
/// `/var/log`); a prefix component may use `*` and `?` wildcards.
fn under(path: &Path, prefix: &Path) -> bool {
    let mut p = path.components();
    for want in prefix.components() {
        match p.next() {
            Some(got) if component_matches(want.as_os_str().as_bytes(), got.as_os_str().as_bytes()) => {}
            _ => return false,
        }
    }
    true
}

fn component_matches(p: &[u8], t: &[u8]) -> bool {
    match (p.first(), t.first()) {
        (None, None) => true,
        (Some(b'*'), _) => component_matches(&p[1..], t) || (!t.is_empty() && component_matches(p, &t[1..])),
        (Some(b'?'), Some(_)) => component_matches(&p[1..], &t[1..]),
        (Some(a), Some(b)) if a == b => component_matches(&p[1..], &t[1..]),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::Mutex;

    /// The openat2 switch is process-wide: tests that flip it run one at a time.
    static SWITCH: Mutex<()> = Mutex::new(());

    /// A file the agent owns is read without touching its access time, however it is opened
    /// (a read after a write would stamp it under `relatime`).
    #[test]
    fn reads_leave_the_access_time_alone() {
        use std::io::Read;
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let p = root.join("a.log");
        std::fs::write(&p, b"a line\n").unwrap();
        // Accessed long before it was last written: relatime would stamp the next read.
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        let times =
            [libc::timespec { tv_sec: 1_000_000, tv_nsec: 0 }, libc::timespec { tv_sec: 0, tv_nsec: libc::UTIME_OMIT }];
        // SAFETY: `c` is NUL-terminated and `times` two timespecs, both alive across the call.
        assert_eq!(unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), times.as_ptr(), 0) }, 0);
        both(|how| {
            for access in [Access::Follow, Access::beneath(root.clone())] {
                let mut f = open(&p, &access).unwrap();
                let mut text = String::new();
                f.read_to_string(&mut text).unwrap();
                assert_eq!(text, "a line\n");
                assert_eq!(std::fs::metadata(&p).unwrap().atime(), 1_000_000, "{how}, {access:?}");
            }
        });
    }

    fn both(f: impl Fn(&str)) {
        let _g = SWITCH.lock().unwrap_or_else(|p| p.into_inner());
        for (on, name) in [(true, "openat2"), (false, "walk")] {
            set_openat2(on);
            f(name);
        }
        set_openat2(true);
    }

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().canonicalize().unwrap();
        for dir in ["logs/app", "secret", "logs/deep/er"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join("secret/shadow"), b"SECRET\n").unwrap();
        std::fs::write(root.join("logs/app/a.log"), b"a\n").unwrap();
        std::fs::write(root.join("logs/deep/er/d.log"), b"d\n").unwrap();
        symlink(root.join("secret"), root.join("logs/conf")).unwrap();
        symlink(root.join("secret/shadow"), root.join("logs/new.log")).unwrap();
        symlink("app/a.log", root.join("logs/rel.log")).unwrap();
        (d, root)
    }

    #[test]
    fn opens_beneath_and_refuses_every_symlink_and_dot() {
        let (_d, root) = tree();
        let access = Access::beneath(root.join("logs"));
        both(|how| {
            let ok = |p: &str| open(&root.join(p), &access).map(|_| ()).map_err(|e| e.to_string());
            assert_eq!(ok("logs/app/a.log"), Ok(()), "{how}");
            assert_eq!(ok("logs/deep/er/d.log"), Ok(()), "{how}");
            for bad in ["logs/conf/shadow", "logs/new.log", "logs/rel.log"] {
                assert!(matches!(open(&root.join(bad), &access), Err(OpenError::Symlink)), "{how}: {bad}");
            }
            assert!(matches!(open(&root.join("logs/app/../../secret/shadow"), &access), Err(OpenError::DotComponent)));
            assert!(matches!(open(&root.join("secret/shadow"), &access), Err(OpenError::Outside { .. })));
            assert!(matches!(open(&root.join("logs/nope.log"), &access), Err(OpenError::NotFound)), "{how}");
            assert!(matches!(open(&root.join("logs/app"), &access), Err(OpenError::NotRegular)), "{how}");
        });
        // Following, as config.yaml's follow_symlinks: true asks.
        assert!(open(&root.join("logs/conf/shadow"), &Access::Follow).is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let (_d, root) = tree();
        let fifo = root.join("logs/pipe.log");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        both(|how| {
            assert!(matches!(open(&fifo, &Access::beneath(root.join("logs"))), Err(OpenError::NotRegular)), "{how}");
        });
        assert!(matches!(open(&fifo, &Access::Follow), Err(OpenError::NotRegular)));
    }

    #[test]
    fn long_paths_are_refused() {
        let long = PathBuf::from(format!("/{}", "a/".repeat(MAX_PATH_BYTES)));
        assert!(matches!(open(&long, &Access::Follow), Err(OpenError::TooLong(_))));
        assert!(Allowlist { allowed: vec!["/".into()], denied: vec![] }.check(&long).is_err());
    }

    #[test]
    fn allowlist_by_text_with_wildcards_and_a_denylist() {
        let a = Allowlist {
            allowed: vec!["/var/log".into(), "/srv/*/logs".into()],
            denied: DEFAULT_DENIED.iter().map(|s| s.to_string()).collect(),
        };
        assert_eq!(a.check(Path::new("/var/log/app.log")), Ok(Access::beneath("/var/log")));
        assert_eq!(a.check(Path::new("/srv/web/logs/x.log")), Ok(Access::beneath("/srv")));
        for (p, why) in [
            ("/var/log/auth.log", "etcd_denied_paths"),
            ("/var/log/auth.log.1", "etcd_denied_paths"),
            ("/var/log/audit/audit.log", "etcd_denied_paths"),
            ("/var/log/secure-20261206", "etcd_denied_paths"),
            ("/var/logs/a.log", "outside"),
            ("/var/log/../../etc/shadow", "'..'"),
            ("/var/log/./a.log", "'.'"),
            ("/srv/web/data/x", "outside"),
        ] {
            let e = a.check(Path::new(p)).unwrap_err();
            assert!(e.contains(why), "{p}: {e}");
        }
    }
}
