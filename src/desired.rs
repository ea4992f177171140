//! What should be tailed, and what has to change to get there.
//!
//! Exists to keep the reconciliation logic out of thread loops: config.yaml and every etcd key are
//! *sources*, each wanting a set of `Selector`s (a path or glob pattern, a topic, excludes). The
//! `discover` module expands the selectors into concrete (file, topic) tails; `plan` compares the
//! tails that run with the tails found and says, as plain data, which to start, which to stop at
//! once (no source wants them any more), which to retire (their file vanished from a glob that is
//! still wanted: they stop once drained) and which to keep after all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::confine::Access;
use crate::envelope::Format;
use crate::selector::Selector;

/// One tail: a file, the topic its lines go to, and what its messages carry. The same file to
/// two topics is two tails; a tail whose `format` changes is stopped and another started (it
/// goes on from the first one's position).
///
/// Compared and hashed by the path's bytes, not its components: the file server keeps its tails
/// in sorted sets and maps, and comparing paths component by component was over half of the CPU
/// of its scan of a glob of 10,000 files (perf). Paths here are made the same way (a glob's
/// matches, a config entry made absolute), so the bytes say the same as the components.
#[derive(Debug, Clone)]
pub struct TailSpec {
    pub path: PathBuf,
    pub topic: String,
    pub format: Format,
    /// Lines joined into events (`multiline`); a change restarts the tail like `format`.
    pub multiline: Option<crate::multiline::Spec>,
    /// How every open of the file resolves its path (`confine`); a change restarts the tail.
    pub access: Access,
    /// Filters, labels and rate of its lines; a change restarts the tail.
    pub handling: crate::selector::Handling,
}

impl TailSpec {
    #[allow(clippy::type_complexity)] // the tuple is the spec's fields, compared in this order
    fn key(&self) -> (&[u8], &str, Format, &Option<crate::multiline::Spec>, &Access, &crate::selector::Handling) {
        (
            self.path.as_os_str().as_encoded_bytes(),
            &self.topic,
            self.format,
            &self.multiline,
            &self.access,
            &self.handling,
        )
    }

    /// A tail of `path` opened as config.yaml's default says (no symlink at the file name).
    pub fn new(path: PathBuf, topic: &str) -> TailSpec {
        let access = crate::selector::config_access(&path, false);
        TailSpec {
            path,
            topic: topic.to_string(),
            format: Format::Raw,
            multiline: None,
            access,
            handling: crate::selector::Handling::default(),
        }
    }

    pub fn with_format(mut self, format: Format) -> TailSpec {
        self.format = format;
        self
    }
}

impl PartialEq for TailSpec {
    fn eq(&self, other: &TailSpec) -> bool {
        self.key() == other.key()
    }
}

impl Eq for TailSpec {}

impl PartialOrd for TailSpec {
    fn partial_cmp(&self, other: &TailSpec) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TailSpec {
    fn cmp(&self, other: &TailSpec) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl std::hash::Hash for TailSpec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl std::fmt::Display for TailSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.path.display(), self.topic)?;
        if self.format != Format::Raw {
            write!(f, " ({})", self.format)?;
        }
        Ok(())
    }
}

/// Who wants a tail.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceId {
    /// The `collectlogs` list of config.yaml.
    ConfigFile,
    /// One of the `etcdkeys`.
    EtcdKey(String),
}

impl std::fmt::Display for SourceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceId::ConfigFile => write!(f, "config.yaml"),
            SourceId::EtcdKey(k) => write!(f, "etcd key {k:?}"),
        }
    }
}

/// Every source's selectors; a file runs while at least one selector of any source finds it.
///
/// Each selector is one allocation that config.yaml's resolved list and the file server's other
/// books (which selectors were scanned before) share: with an entry per file, a copy of each was
/// 0.3-0.6 KB a file (heap-profiled, 1,000 entries).
#[derive(Debug, Default)]
pub struct Desired {
    by_source: BTreeMap<SourceId, BTreeSet<Arc<Selector>>>,
}

impl Desired {
    /// Replaces what `source` wants (an empty set removes the source). True when it changed.
    pub fn set(&mut self, source: SourceId, wanted: BTreeSet<Arc<Selector>>) -> bool {
        let changed = match self.by_source.get(&source) {
            Some(old) => *old != wanted,
            None => !wanted.is_empty(),
        };
        if wanted.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.by_source.insert(source, wanted);
        }
        changed
    }

    /// Every (source, selector) pair.
    pub fn iter(&self) -> impl Iterator<Item = (&SourceId, &Selector)> {
        self.by_source.iter().flat_map(|(id, set)| set.iter().map(move |s| (id, &**s)))
    }

    /// Every selector, shared (a source's and another's alike are both given).
    pub fn selectors(&self) -> impl Iterator<Item = &Arc<Selector>> {
        self.by_source.values().flatten()
    }

    /// What `source` wants now.
    pub fn of(&self, source: &SourceId) -> BTreeSet<Arc<Selector>> {
        self.by_source.get(source).cloned().unwrap_or_default()
    }
}

/// What to do with the running tails, each list sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// Found and not running: start.
    pub start: Vec<TailSpec>,
    /// Running, and no source wants it any more: stop now.
    pub stop: Vec<TailSpec>,
    /// Running, its file gone from a glob that is still wanted: stop once its file is drained.
    pub retire: Vec<TailSpec>,
    /// Retiring, and found again: keep running.
    pub keep: Vec<TailSpec>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty() && self.retire.is_empty() && self.keep.is_empty()
    }
}

/// Compares the running tails (with whether each is retiring already) with the tails found.
/// `still_matched` tells whether a wanted glob still covers a tail whose file was not found.
pub fn plan(
    running: &BTreeMap<TailSpec, bool>,
    found: &BTreeSet<TailSpec>,
    still_matched: impl Fn(&TailSpec) -> bool,
) -> Change {
    let mut change = Change::default();
    for spec in found {
        match running.get(spec) {
            None => change.start.push(spec.clone()),
            Some(true) => change.keep.push(spec.clone()),
            Some(false) => {}
        }
    }
    for (spec, retiring) in running {
        if found.contains(spec) {
            continue;
        }
        if !still_matched(spec) {
            change.stop.push(spec.clone());
        } else if !retiring {
            change.retire.push(spec.clone());
        }
    }
    change
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str, topic: &str) -> TailSpec {
        TailSpec::new(path.into(), topic)
    }
    fn found(items: &[TailSpec]) -> BTreeSet<TailSpec> {
        items.iter().cloned().collect()
    }
    fn running(items: &[(TailSpec, bool)]) -> BTreeMap<TailSpec, bool> {
        items.iter().cloned().collect()
    }

    #[test]
    fn add_remove_change() {
        let run = running(&[(t("/a", "x"), false), (t("/b", "y"), false)]);
        let c = plan(&run, &found(&[t("/a", "x"), t("/b2", "y"), t("/c", "z")]), |_| false);
        assert_eq!(c.start, vec![t("/b2", "y"), t("/c", "z")]);
        assert_eq!(c.stop, vec![t("/b", "y")]);
        assert!(plan(&run, &found(&[t("/a", "x"), t("/b", "y")]), |_| false).is_empty());
    }

    #[test]
    fn topic_change_restarts() {
        let c = plan(&running(&[(t("/a", "x"), false)]), &found(&[t("/a", "y")]), |_| false);
        assert_eq!(c.start, vec![t("/a", "y")]);
        assert_eq!(c.stop, vec![t("/a", "x")]);
    }

    #[test]
    fn a_file_gone_from_a_wanted_glob_retires_and_comes_back() {
        let run = running(&[(t("/l/a.log", "x"), false)]);
        let c = plan(&run, &BTreeSet::new(), |s| s.path.starts_with("/l"));
        assert_eq!((c.retire, c.stop), (vec![t("/l/a.log", "x")], vec![]));
        // Already retiring: nothing more to do; found again: kept.
        let run = running(&[(t("/l/a.log", "x"), true)]);
        assert!(plan(&run, &BTreeSet::new(), |_| true).is_empty());
        assert_eq!(plan(&run, &found(&[t("/l/a.log", "x")]), |_| true).keep, vec![t("/l/a.log", "x")]);
        // The glob itself is no longer wanted: stop at once, retiring or not.
        assert_eq!(plan(&run, &BTreeSet::new(), |_| false).stop, vec![t("/l/a.log", "x")]);
    }

    #[test]
    fn desired_tracks_each_source() {
        let mut d = Desired::default();
        let k = SourceId::EtcdKey("k".into());
        let s = |p: &str| Arc::new(Selector::file(p.into(), "t"));
        assert!(d.set(SourceId::ConfigFile, [s("/a")].into()));
        assert!(d.set(k.clone(), [s("/a"), s("/b")].into()));
        assert!(!d.set(k.clone(), [s("/a"), s("/b")].into()), "the same set again changes nothing");
        assert_eq!(d.iter().count(), 3);
        assert!(d.set(k.clone(), BTreeSet::new()), "key deleted");
        assert!(d.of(&k).is_empty());
        assert_eq!(d.iter().count(), 1);
    }
}
