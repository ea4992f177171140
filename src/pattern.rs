//! Glob pattern text: which paths have wildcards, where they begin, how a pattern matches.
//!
//! Exists at the bottom of the house so that every module that reads patterns (the selectors,
//! the discoverer, the glob walk, the etcd allowlist in `confine`) shares one rule without
//! importing each other.

use std::path::{Path, PathBuf};

use glob::MatchOptions;

/// `*` and `?` stay within one path component; `**` crosses directories; a leading dot needs no
/// literal `.` (as in shells with dotglob).
pub const MATCH: MatchOptions =
    MatchOptions { case_sensitive: true, require_literal_separator: true, require_literal_leading_dot: false };

/// Whether `text` has glob characters (tested on its bytes: no copy as text).
pub fn is_glob(text: impl AsRef<std::ffi::OsStr>) -> bool {
    text.as_ref().as_encoded_bytes().iter().any(|b| matches!(b, b'*' | b'?' | b'['))
}

/// The part of a pattern before its first glob component: the directory a scan starts from.
pub fn literal_prefix(pattern: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in pattern.components() {
        if is_glob(c) {
            break;
        }
        out.push(c);
    }
    out
}
