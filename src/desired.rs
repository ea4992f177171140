//! What should be tailed, and what has to change to get there.
//!
//! Exists to keep the reconciliation logic out of thread loops: config.yaml and every etcd key are
//! *sources*, each wanting a set of (path, topic) tails. A tail runs while at least one source
//! wants it. Applying a source's new set yields the tails to start and to stop, as plain data.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// One tail: a file and the topic its lines go to. The same file to two topics is two tails.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TailSpec {
    pub path: PathBuf,
    pub topic: String,
}

impl TailSpec {
    pub fn new(path: PathBuf, topic: &str) -> TailSpec {
        TailSpec { path, topic: topic.to_string() }
    }
}

impl std::fmt::Display for TailSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {}", self.path.display(), self.topic)
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

/// The tails to start and to stop, each sorted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub start: Vec<TailSpec>,
    pub stop: Vec<TailSpec>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty()
    }
}

/// The set of tails that `new` wants and `old` does not (start), and the reverse (stop).
pub fn diff(old: &BTreeSet<TailSpec>, new: &BTreeSet<TailSpec>) -> Change {
    Change { start: new.difference(old).cloned().collect(), stop: old.difference(new).cloned().collect() }
}

/// Every source's wanted set; the union is what runs.
#[derive(Debug, Default)]
pub struct Desired {
    by_source: BTreeMap<SourceId, BTreeSet<TailSpec>>,
}

impl Desired {
    /// The union of all sources' sets.
    pub fn all(&self) -> BTreeSet<TailSpec> {
        self.by_source.values().flatten().cloned().collect()
    }

    /// Replaces what `source` wants (an empty set removes the source) and returns what changes
    /// in the union.
    pub fn set(&mut self, source: SourceId, wanted: BTreeSet<TailSpec>) -> Change {
        let before = self.all();
        if wanted.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.by_source.insert(source, wanted);
        }
        diff(&before, &self.all())
    }

    /// The sources that want `spec` (for log lines).
    pub fn wanted_by(&self, spec: &TailSpec) -> Vec<&SourceId> {
        self.by_source.iter().filter(|(_, s)| s.contains(spec)).map(|(id, _)| id).collect()
    }

    /// What `source` wants now.
    pub fn of(&self, source: &SourceId) -> BTreeSet<TailSpec> {
        self.by_source.get(source).cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(path: &str, topic: &str) -> TailSpec {
        TailSpec::new(path.into(), topic)
    }
    fn set(items: &[TailSpec]) -> BTreeSet<TailSpec> {
        items.iter().cloned().collect()
    }

    #[test]
    fn diff_add_remove_change() {
        let old = set(&[t("/a", "x"), t("/b", "y")]);
        let new = set(&[t("/a", "x"), t("/b2", "y"), t("/c", "z")]);
        let c = diff(&old, &new);
        assert_eq!(c.start, vec![t("/b2", "y"), t("/c", "z")]);
        assert_eq!(c.stop, vec![t("/b", "y")]);
        assert!(diff(&new, &new).is_empty());
    }

    #[test]
    fn topic_change_restarts() {
        let c = diff(&set(&[t("/a", "x")]), &set(&[t("/a", "y")]));
        assert_eq!(c.start, vec![t("/a", "y")]);
        assert_eq!(c.stop, vec![t("/a", "x")]);
    }

    #[test]
    fn shared_tail_runs_until_no_source_wants_it() {
        let mut d = Desired::default();
        let k1 = SourceId::EtcdKey("k1".into());
        let k2 = SourceId::EtcdKey("k2".into());
        assert_eq!(d.set(SourceId::ConfigFile, set(&[t("/a", "x")])).start, vec![t("/a", "x")]);
        // Another source wanting the same tail starts nothing.
        assert!(d.set(k1.clone(), set(&[t("/a", "x"), t("/b", "y")])).start == vec![t("/b", "y")]);
        assert!(d.set(k2.clone(), set(&[t("/a", "x")])).is_empty());
        assert_eq!(d.wanted_by(&t("/a", "x")).len(), 3);
        // Removing it from two of three sources stops nothing.
        assert!(d.set(SourceId::ConfigFile, BTreeSet::new()).is_empty());
        assert_eq!(d.set(k1.clone(), BTreeSet::new()).stop, vec![t("/b", "y")]);
        // The last one stops it.
        assert_eq!(d.set(k2, BTreeSet::new()).stop, vec![t("/a", "x")]);
        assert!(d.all().is_empty());
    }

    #[test]
    fn key_deleted_stops_all_its_tails() {
        let mut d = Desired::default();
        let k = SourceId::EtcdKey("k".into());
        d.set(k.clone(), set(&[t("/a", "x"), t("/b", "y")]));
        let c = d.set(k.clone(), BTreeSet::new());
        assert_eq!(c.stop, vec![t("/a", "x"), t("/b", "y")]);
        assert!(d.of(&k).is_empty());
    }
}
