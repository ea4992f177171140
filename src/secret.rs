//! Secrets and key files: read once, checked, and never printed.
//!
//! Exists so that a password has one type that cannot leak by accident: `Secret` prints as
//! `<redacted>` in every `Debug` and `Display` (the config's own `Debug`, a log line, `--check`),
//! and the only way to its text is `expose()`, called where it is handed to librdkafka or etcd.
//! Passwords come from files (`password_file`), as Filebeat's keystore and Vector's secrets do,
//! so config.yaml itself can be world-readable; a password file or a private key that its group
//! or others can read gets a warning naming it.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A password or other secret text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: String) -> Secret {
        Secret(text)
    }

    /// The text itself: only to hand it to the client that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Reads the secret in `path` (the config key `field` names it): the file's text without its
/// trailing newline. `Err` names the field, the file and the cause; a file others can read adds
/// a warning.
pub fn read_secret(field: &str, path: &Path, warnings: &mut Vec<String>) -> Result<Secret, String> {
    let mut file = open(field, path)?;
    let mut text = String::new();
    std::io::Read::read_to_string(&mut file, &mut text)
        .map_err(|e| format!("{field}: cannot read {}: {e}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    if text.is_empty() {
        return Err(format!("{field}: {} is empty", path.display()));
    }
    warn_if_shared(field, path, warnings);
    Ok(Secret(text.to_string()))
}

/// Checks that a certificate or key file can be read; a private key others can read adds a
/// warning (`private`).
pub fn check_file(field: &str, path: &Path, private: bool, warnings: &mut Vec<String>) -> Result<(), String> {
    open(field, path)?;
    if private {
        warn_if_shared(field, path, warnings);
    }
    Ok(())
}

/// Opens a file config.yaml names (the operator's: symlinks followed), refusing what is not a
/// regular file without blocking on it.
fn open(field: &str, path: &Path) -> Result<std::fs::File, String> {
    use crate::confine::{Access, OpenError};
    crate::confine::open(path, &Access::Follow).map_err(|e| match e {
        OpenError::NotRegular => format!("{field}: {} is not a regular file", path.display()),
        e => format!("{field}: cannot read {}: {e}", path.display()),
    })
}

fn warn_if_shared(field: &str, path: &Path, warnings: &mut Vec<String>) {
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warnings.push(format!(
                "{field}: {} can be read by its group or others (mode {mode:03o}); chmod 600 it",
                path.display()
            ));
        }
    }
}

/// Files for a TLS client: the CA to trust (None: the system's store, or the bundled Mozilla
/// roots for etcd), and the client's own certificate and key for mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "<redacted> <redacted> Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn password_files_are_read_checked_and_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let mut w = Vec::new();
        assert_eq!(read_secret("x.password_file", &p, &mut w).unwrap().expose(), "s3cret");
        assert!(w.is_empty());
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        read_secret("x.password_file", &p, &mut w).unwrap();
        assert!(w[0].contains("x.password_file") && w[0].contains("644") && !w[0].contains("s3cret"), "{w:?}");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_secret("x.password_file", &p, &mut w).unwrap_err().contains("empty"));
        let e = read_secret("x.password_file", &dir.path().join("none"), &mut w).unwrap_err();
        assert!(e.starts_with("x.password_file: cannot read") && e.contains("none"), "{e}");
    }
}
