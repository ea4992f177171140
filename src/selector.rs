//! What one entry of a source asks for (a path or glob, a topic, excludes), and the checks of
//! each piece.
//!
//! Exists because config.yaml's `collectlogs` and every etcd value describe the same thing and
//! were checked twice, in config.rs and etcd/value.rs, with config -> discover -> etcd/value ->
//! config as an import circle. Both sources now build their selectors here (`Selector::build`,
//! whose error names the piece that is wrong). Each selector carries the `Access` every open of
//! its files gets (`confine`): a config.yaml entry's by its `follow_symlinks`, an etcd entry's
//! from the allowlist (`confine::Allowlist`).

use std::fmt;
use std::path::{Path, PathBuf};

use glob::Pattern;

use crate::confine::Access;
use crate::envelope::Format;
use crate::filter::{self, FilterError};
use crate::labels::{self, Fields};
use crate::multiline;
pub use crate::pattern::{is_glob, literal_prefix};

/// What one entry of a source asks for: the files a path or glob pattern names (less those an
/// exclude pattern matches), shipped to one topic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Selector {
    /// An absolute path, or an absolute glob pattern (`*`, `?`, `[...]`, `**`).
    pub pattern: PathBuf,
    pub topic: String,
    /// Glob patterns; one with a `/` is matched against the whole path, one without against the
    /// file name.
    pub exclude: Vec<String>,
    /// The entry's own `format`; `None` follows the top-level one.
    pub format: Option<Format>,
    /// Lines joined into events (`multiline`).
    pub multiline: Option<multiline::Spec>,
    /// What is done to its lines on the way (filters, labels, rate).
    pub handling: Handling,
    /// How its files are opened: beneath which root, following symlinks or not.
    pub access: Access,
}

/// What is done to an entry's lines on their way (issue 28); every tail of the entry has the
/// same, and a change restarts them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Handling {
    /// `include_lines`, `exclude_lines`.
    pub filter: filter::Spec,
    /// `fields`: labels with every message.
    pub fields: Fields,
    /// `rate_limit`: bytes read per second, shared by the entry's files (None: no limit).
    pub rate_limit: Option<u64>,
    /// With a `rate_limit`, the entry's pattern and topic: its files share one bucket by it.
    pub source: String,
    /// `encoding`: the files' character set (messages are UTF-8).
    pub charset: crate::charset::Charset,
}

/// One entry of a source as written, before it is checked (`Selector::build`).
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub topic: &'a str,
    pub exclude: &'a [String],
    pub format: Option<&'a str>,
    pub multiline: Option<&'a multiline::Raw>,
    pub include_lines: &'a [String],
    pub exclude_lines: &'a [String],
    pub fields: Option<&'a std::collections::BTreeMap<String, labels::RawValue>>,
    pub rate_limit: Option<&'a crate::units::RawSize>,
    pub encoding: Option<&'a str>,
    /// Follow symlinks below the entry's literal directory (config.yaml's `follow_symlinks`).
    pub follow_symlinks: bool,
    /// This host's name (`{host}` in the topic) and the top-level `fields`.
    pub defaults: &'a labels::Defaults,
}

impl Selector {
    /// A selector of exactly one file, opened as config.yaml's default says (no symlink).
    pub fn file(path: PathBuf, topic: &str) -> Selector {
        let access = config_access(&path, false);
        Selector {
            pattern: path,
            topic: topic.to_string(),
            exclude: Vec::new(),
            format: None,
            multiline: None,
            handling: Handling::default(),
            access,
        }
    }

    /// Whether the pattern has glob characters (otherwise it names one file, present or not).
    /// Asked of every selector twice a second by the file server: on the bytes, with no copy
    /// (`to_string_lossy` allocated one per selector per look).
    pub fn is_glob(&self) -> bool {
        is_glob(&self.pattern)
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.pattern.display(), self.topic)?;
        if !self.exclude.is_empty() {
            write!(f, " (excluding {})", self.exclude.join(", "))?;
        }
        if let Some(format) = self.format {
            write!(f, " (format {format})")?;
        }
        if self.multiline.is_some() {
            write!(f, " (multiline)")?;
        }
        if !self.handling.filter.is_empty() {
            write!(f, " (filtered)")?;
        }
        if let Some(r) = self.handling.rate_limit {
            write!(f, " (at most {r} bytes/s)")?;
        }
        Ok(())
    }
}

/// Which piece of an entry is wrong, and why: each source names the entry its own way
/// (`collectlogs[2].logtopic`, `entry 2: topic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelectorError {
    Path(String),
    Topic(String),
    Exclude { index: usize, why: String },
    Format(String),
    Multiline(String),
    Filter(FilterError),
    Fields(String),
    RateLimit(String),
    Encoding(String),
}

impl Selector {
    /// Checks one entry's pieces and builds its selector: `path` made absolute against `base`,
    /// excludes checked, sorted and deduplicated. Every bad exclude is reported (`Err` holds the
    /// first problem of the path or topic, else every exclude problem).
    pub fn build(entry: &Entry<'_>, base: &Path) -> Result<Selector, Vec<SelectorError>> {
        let Entry {
            path,
            topic,
            exclude,
            format,
            multiline,
            include_lines,
            exclude_lines,
            fields,
            rate_limit,
            encoding,
            follow_symlinks,
            defaults,
        } = *entry;
        if path.is_empty() {
            return Err(vec![SelectorError::Path("missing or empty".into())]);
        }
        check_path_text(path).and_then(|()| check_glob(path)).map_err(|e| vec![SelectorError::Path(e)])?;
        if topic.is_empty() {
            return Err(vec![SelectorError::Topic("missing or empty".into())]);
        }
        let fields = fields
            .map(Fields::check)
            .transpose()
            .map_err(|e| vec![SelectorError::Fields(e)])?
            .unwrap_or_default()
            .over(&defaults.fields);
        let topic = labels::resolve_topic(topic, &defaults.host, &fields).map_err(|e| vec![SelectorError::Topic(e)])?;
        check_topic(&topic).map_err(|e| vec![SelectorError::Topic(e)])?;
        let format = format.map(Format::parse).transpose().map_err(|e| vec![SelectorError::Format(e)])?;
        let multiline =
            multiline.map(multiline::Raw::resolve).transpose().map_err(|e| vec![SelectorError::Multiline(e)])?;
        let filter = filter::Spec::check(include_lines, exclude_lines).map_err(|e| vec![SelectorError::Filter(e)])?;
        let rate_limit = rate_limit.map(check_rate_limit).transpose().map_err(|e| vec![SelectorError::RateLimit(e)])?;
        let charset = encoding
            .map(crate::charset::Charset::parse)
            .transpose()
            .map_err(|e| vec![SelectorError::Encoding(e)])?
            .unwrap_or_default();
        if charset.wide().is_some() && multiline.is_some() {
            // The multiline patterns are matched on the file's bytes, which for UTF-16 are not
            // the text they are written in.
            return Err(vec![SelectorError::Encoding("utf-16 with multiline is not supported".into())]);
        }
        let excludes = check_excludes(exclude, base)?;
        let pattern = absolute(Path::new(path), base);
        let source = rate_limit.map(|_| format!("{}\0{topic}", pattern.display())).unwrap_or_default();
        Ok(Selector {
            access: config_access(&pattern, follow_symlinks),
            pattern,
            topic,
            exclude: excludes,
            format,
            multiline,
            handling: Handling { filter, fields, rate_limit, source, charset },
        })
    }
}

/// Every exclude pattern checked (each problem named by its index), sorted and deduplicated.
fn check_excludes(exclude: &[String], base: &Path) -> Result<Vec<String>, Vec<SelectorError>> {
    let mut problems = Vec::new();
    let mut excludes = Vec::new();
    for (index, ex) in exclude.iter().enumerate() {
        match check_exclude(ex, base) {
            Ok(ex) => excludes.push(ex),
            Err(why) => problems.push(SelectorError::Exclude { index, why }),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    excludes.sort();
    excludes.dedup();
    Ok(excludes)
}

/// The access of a config.yaml entry: its directory as written is the operator's and trusted
/// (`/var/log/app -> /opt/app/logs` named there is meant); below it, where a glob's wildcards
/// begin or at a literal path's file name, a symlink is followed only with `follow_symlinks`,
/// since anyone who can write in a log directory could plant one.
pub fn config_access(pattern: &Path, follow_symlinks: bool) -> Access {
    if follow_symlinks {
        return Access::Follow;
    }
    let root =
        if is_glob(pattern) { literal_prefix(pattern) } else { pattern.parent().unwrap_or(Path::new("/")).into() };
    Access::beneath(root)
}

/// `rate_limit`: a size per second (`5MiB`), at least 1 KiB (a lower rate could not move a
/// 64 KiB read in under a minute).
pub fn check_rate_limit(raw: &crate::units::RawSize) -> Result<u64, String> {
    let bytes = crate::units::parse_size_raw(raw)?;
    if bytes < 1024 {
        return Err(format!("{bytes} bytes per second: at least 1KiB"));
    }
    Ok(bytes)
}

/// Kafka's rule for topic names.
pub fn check_topic(topic: &str) -> Result<(), String> {
    if topic.is_empty() {
        return Err("empty topic".into());
    }
    if topic.len() > 249 {
        return Err(format!("topic is {} characters long; Kafka allows 249", topic.len()));
    }
    if topic == "." || topic == ".." {
        return Err(format!("{topic:?} is not a valid topic name"));
    }
    if let Some(c) = topic.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))) {
        return Err(format!("{topic:?} has {c:?}; topic names allow only a-z A-Z 0-9 . _ -"));
    }
    Ok(())
}

/// Rejects path text no file can have.
pub fn check_path_text(path: &str) -> Result<(), String> {
    if path.contains('\0') {
        return Err(format!("{:?} contains a NUL byte", path.replace('\0', "\\0")));
    }
    if path.ends_with('/') {
        return Err(format!("{path:?} names a directory; name a file"));
    }
    Ok(())
}

/// Rejects a glob pattern that cannot be compiled (a literal path passes).
pub fn check_glob(path: &str) -> Result<(), String> {
    if is_glob(path) {
        check_pattern(path)?;
    }
    Ok(())
}

/// Checks an exclude pattern; one with a `/` (matched against the whole path) is made absolute
/// against `base`, one without (matched against the file name) is kept as written.
pub fn check_exclude(pattern: &str, base: &Path) -> Result<String, String> {
    if pattern.is_empty() {
        return Err("empty pattern".into());
    }
    check_path_text(pattern)?;
    check_pattern(pattern)?;
    Ok(if pattern.contains('/') {
        absolute(Path::new(pattern), base).to_string_lossy().into_owned()
    } else {
        pattern.to_string()
    })
}

/// `path` made absolute against `base`, with `.` and `..` folded lexically (no symlinks resolved).
pub fn absolute(path: &Path, base: &Path) -> PathBuf {
    let joined = if path.is_absolute() { path.to_path_buf() } else { base.join(path) };
    let mut out = PathBuf::from("/");
    for c in joined.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::Normal(s) => out.push(s),
            _ => {}
        }
    }
    out
}

/// Checks a pattern (and its excludes) before anything uses it: `Err` names what is wrong.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    Pattern::new(pattern).map(|_| ()).map_err(|e| format!("{pattern:?} is not a valid glob pattern: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics() {
        assert!(check_topic("app.log_1-x").is_ok());
        assert!(check_topic("a b").is_err());
        assert!(check_topic("..").is_err());
        assert!(check_topic(&"x".repeat(250)).is_err());
    }

    #[test]
    fn globs_and_their_literal_prefix() {
        assert!(Selector::file("/var/log/*.log".into(), "t").is_glob());
        assert!(!Selector::file("/var/log/app.log".into(), "t").is_glob());
        assert_eq!(literal_prefix(Path::new("/var/log/*/app-?.log")), Path::new("/var/log"));
        assert_eq!(literal_prefix(Path::new("/var/log/**/x.log")), Path::new("/var/log"));
    }
}
