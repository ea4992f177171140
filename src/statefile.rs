//! Files the agent writes (checkpoints, journal, metrics, lock, pid file, its own log), created
//! so that nobody can redirect them.
//!
//! Exists because the agent runs as root on many hosts and writes in directories others may
//! write in too (a textfile collector's directory, `/var/log`): a fixed name such as
//! `logcatch.prom.tmp` planted as a symlink made the agent overwrite the file it pointed to.
//! So a temporary file gets a random name and is created `O_CREAT | O_EXCL` (never through an
//! existing name, link or not; the `tempfile` crate), then renamed over the target (a rename
//! replaces a symlink, it does not follow it); a file opened by its own name is opened
//! `O_NOFOLLOW`, and a symlink there is refused with a clear error. `harden` sets the process's
//! umask to 077 and turns core dumps off: what the agent creates is its own, and a crash does
//! not write the lines and secrets it held in memory to disk.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// How a file opened by name is opened.
#[derive(Clone, Copy)]
pub enum Mode {
    /// Appended to, created if missing (journal, own log).
    Append,
    /// Read and written, created if missing, not truncated (lock file).
    ReadWrite,
    /// Written from its start, created if missing, truncated (pid file, a new journal).
    Truncate,
}

/// Opens `path` without following a symlink at its last component; one there is refused with an
/// error naming it.
pub fn open(path: &Path, mode: Mode) -> io::Result<File> {
    let mut o = std::fs::OpenOptions::new();
    match mode {
        Mode::Append => o.append(true).create(true),
        Mode::ReadWrite => o.read(true).write(true).create(true).truncate(false),
        Mode::Truncate => o.write(true).create(true).truncate(true),
    };
    o.custom_flags(libc::O_NOFOLLOW | libc::O_NOCTTY).open(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ELOOP) {
            io::Error::other(format!("{} is a symlink; refusing to write through it", path.display()))
        } else {
            e
        }
    })
}

/// Replaces `path` with `bytes` atomically: a new file of a random name beside it, of
/// permissions `mode`, written (and made durable when `durable`), renamed over `path`. `before`
/// runs between the write and the rename (the checkpoint store keeps the previous snapshot).
pub fn replace(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    durable: bool,
    before: impl FnOnce() -> io::Result<()>,
) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let mut tmp = tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".tmp").tempfile_in(dir)?;
    tmp.as_file().set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    tmp.write_all(bytes)?;
    if durable {
        tmp.as_file().sync_all()?;
    }
    before()?;
    tmp.persist(path).map_err(|e| e.error)?;
    if durable {
        File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// umask 077 and no core dumps, for the whole process (see the module's doc).
pub fn harden() {
    // SAFETY: umask and setrlimit only change this process's attributes; `limit` is a valid
    // rlimit for the call's duration.
    unsafe {
        libc::umask(0o077);
        let limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        libc::setrlimit(libc::RLIMIT_CORE, &limit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_planted_symlink_is_never_written_through() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"precious\n").unwrap();
        for name in ["logcatch.prom.tmp", ".checkpoints.json.tmp"] {
            symlink(&victim, d.path().join(name)).unwrap();
        }
        let target = d.path().join("logcatch.prom");
        replace(&target, b"metrics\n", 0o644, true, || Ok(())).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"metrics\n");
        // A symlink at the target itself is replaced, not followed.
        let linked = d.path().join("linked.prom");
        symlink(&victim, &linked).unwrap();
        replace(&linked, b"m\n", 0o600, false, || Ok(())).unwrap();
        assert!(!std::fs::symlink_metadata(&linked).unwrap().file_type().is_symlink());
        for mode in [Mode::Append, Mode::ReadWrite, Mode::Truncate] {
            let planted = d.path().join("journal");
            let _ = std::fs::remove_file(&planted);
            symlink(&victim, &planted).unwrap();
            let e = open(&planted, mode).unwrap_err();
            assert!(e.to_string().contains("is a symlink"), "{e}");
        }
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious\n");
    }
}
