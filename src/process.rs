//! Process hygiene: one agent per `data_dir`, and an optional pid file.
//!
//! Exists because two agents on one `data_dir` would overwrite each other's checkpoints and ship
//! every line twice. The guard is an exclusive lock (flock) on `data_dir/logcatch.lock`, which
//! the kernel releases when the process dies however it dies, so a stale lock cannot exist. The
//! optional `pid_file` is for supervisors and scripts; a pid file naming a process that is not a
//! running logcatch is stale and replaced.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::statefile::{self, Mode};

pub const LOCK_FILE: &str = "logcatch.lock";

/// Held for the life of the agent.
pub struct Instance {
    _lock: File,
    pid_file: Option<PathBuf>,
}

/// Whether `pid` is a running process whose command line mentions logcatch.
fn is_logcatch(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains("logcatch"))
        .unwrap_or(false)
}

fn read_pid(path: &Path) -> Option<u32> {
    let mut s = String::new();
    File::open(path).ok()?.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// For `status`: the pid written in `data_dir`'s lock file when that process is gone (killed,
/// crashed), which the metrics file cannot say until it is old. None while it runs, when no
/// agent ever ran there, or where `/proc` cannot tell (a chroot).
pub fn dead_holder(data_dir: &Path) -> Option<u32> {
    let pid = read_pid(&data_dir.join(LOCK_FILE))?;
    (Path::new("/proc/self").exists() && !is_logcatch(pid)).then_some(pid)
}

/// Takes the `data_dir` lock and writes the pid file. Err says who holds it.
pub fn claim(data_dir: &Path, pid_file: Option<&Path>) -> Result<Instance, String> {
    std::fs::create_dir_all(data_dir).map_err(|e| format!("data_dir {}: {e}", data_dir.display()))?;
    let lock_path = data_dir.join(LOCK_FILE);
    let mut lock = statefile::open(&lock_path, Mode::ReadWrite).map_err(|e| format!("{}: {e}", lock_path.display()))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let who = read_pid(&lock_path).map(|p| format!(" (pid {p})")).unwrap_or_default();
            return Err(format!(
                "another logcatch{who} is running on data_dir {}; refusing to start a second one",
                data_dir.display()
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(format!("{}: cannot lock: {e}", lock_path.display())),
    }
    let me = std::process::id();
    let _ = lock.set_len(0);
    let _ = writeln!(lock, "{me}");
    if let Some(p) = pid_file {
        if let Some(other) = read_pid(p) {
            if other != me && is_logcatch(other) {
                return Err(format!("pid file {} names a running logcatch (pid {other})", p.display()));
            }
            log::warn!("pid file {} named pid {other}, which is not a running logcatch; replacing it", p.display());
        }
        if let Some(dir) = p.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        // Readable by all, as pid files are: scripts and supervisors read it as other users.
        statefile::open(p, Mode::Truncate)
            .and_then(|f| f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644)).map(|()| f))
            .and_then(|mut f| writeln!(f, "{me}"))
            .map_err(|e| format!("pid_file {}: {e}", p.display()))?;
    }
    Ok(Instance { _lock: lock, pid_file: pid_file.map(Path::to_path_buf) })
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some(p) = &self.pid_file {
            if read_pid(p) == Some(std::process::id()) {
                let _ = std::fs::remove_file(p);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_claim_on_the_same_data_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = claim(dir.path(), None).unwrap();
        let err = claim(dir.path(), None).err().expect("refused");
        assert!(err.contains("another logcatch") && err.contains(&std::process::id().to_string()), "{err}");
        drop(first);
        assert!(claim(dir.path(), None).is_ok(), "free again once released");
    }

    #[test]
    fn a_stale_pid_file_is_replaced_and_removed_at_exit() {
        let dir = tempfile::tempdir().unwrap();
        let pid = dir.path().join("run/logcatch.pid");
        std::fs::create_dir_all(pid.parent().unwrap()).unwrap();
        std::fs::write(&pid, "999999999\n").unwrap();
        let inst = claim(&dir.path().join("data"), Some(&pid)).unwrap();
        assert_eq!(read_pid(&pid), Some(std::process::id()));
        drop(inst);
        assert!(!pid.exists());
    }
}
