//! Where a tail starts when it (re)opens its path: which earlier files of the path to drain
//! first and from where, where a file never seen starts, and since when to look for rotated
//! generations nobody read.
//!
//! Exists so that the decision is one pure function of one answer of the position store
//! (`Checkpoints::lineage`) and of what is on disk, seen through `Probe`: table-tested without a
//! disk, where it was spread over three questions to the store and the tail's I/O. The tail then
//! carries the plan out (opens readers, claims files); `resume` decides the current file's
//! offset the same way.

use crate::checkpoint::Lineage;
use crate::config::StartPosition;
use crate::fingerprint::Probe;

/// What to do before and around reading the file at the path.
#[derive(Debug, PartialEq, Eq)]
pub struct StartPlan {
    /// Earlier files to drain first: (index in `Lineage::past`, offset to read from).
    pub drains: Vec<(usize, u64)>,
    /// Where the file at the path starts if the store never saw it.
    pub unknown: u64,
    /// Look for rotated generations written since (unix seconds) that nobody read.
    pub adopt_since: Option<u64>,
}

/// `found[i]`: the file of `lineage.past[i]`, found by its identity at the path or a rotated
/// name, if it still exists. `current_size`: the file at the path now. `from_start`: the file is
/// new since its glob was first scanned.
pub fn plan_start(
    lineage: &Lineage,
    found: &[Option<&dyn Probe>],
    current_size: Option<u64>,
    from_start: bool,
    start: StartPosition,
) -> StartPlan {
    let drains = lineage
        .past
        .iter()
        .zip(found)
        .enumerate()
        .filter_map(|(i, (past, file))| {
            let file = (*file)?;
            // A file recorded while empty is not told apart from an inode's next file: skipped.
            (file.identified_by(&past.fp) && file.size() > past.offset).then_some((i, past.offset))
        })
        .collect();
    let unknown = match (lineage.had_history || from_start, start) {
        (true, _) | (false, StartPosition::Beginning) => 0,
        (false, StartPosition::End) => current_size.unwrap_or(0),
    };
    StartPlan { drains, unknown, adopt_since: lineage.last_update }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Past;
    use crate::fingerprint::{FileId, Fingerprint};

    /// A file as a table row: its size and the fingerprints it matches.
    struct Row {
        size: u64,
        matches: Vec<Fingerprint>,
    }
    impl Probe for Row {
        fn size(&self) -> u64 {
            self.size
        }
        fn begins_with(&self, fp: &Fingerprint) -> bool {
            fp.len == 0 || self.matches.contains(fp)
        }
        fn holds_before(&self, _offset: u64, near: &Fingerprint) -> bool {
            near.len == 0 || self.matches.contains(near)
        }
    }

    fn past(ino: u64, fp: Fingerprint, offset: u64) -> Past {
        Past::new(FileId { dev: 1, ino }, fp, offset)
    }

    #[test]
    fn every_case_of_a_start() {
        let (a, b, c) =
            (Fingerprint { len: 8, hash: 1 }, Fingerprint { len: 8, hash: 2 }, Fingerprint { len: 8, hash: 3 });
        let lineage = Lineage {
            had_history: true,
            last_update: Some(1000),
            past: vec![past(1, a, 50), past(2, b, 80), past(3, c, 10), past(4, Fingerprint::default(), 0)],
        };
        // 1: grew past its offset: drained. 2: read to its end. 3: another file on its inode
        // now. 4: recorded while empty: proves nothing. A fifth was not found at all.
        let rows = [
            Row { size: 90, matches: vec![a] },
            Row { size: 80, matches: vec![b] },
            Row { size: 99, matches: vec![] },
            Row { size: 40, matches: vec![Fingerprint::default()] },
        ];
        let found: Vec<Option<&dyn Probe>> = rows.iter().map(|r| Some(r as &dyn Probe)).collect();
        let plan = plan_start(&lineage, &found, Some(500), false, StartPosition::End);
        assert_eq!(plan, StartPlan { drains: vec![(0, 50)], unknown: 0, adopt_since: Some(1000) });
        let gone: Vec<Option<&dyn Probe>> = vec![None; 4];
        assert!(plan_start(&lineage, &gone, None, false, StartPosition::End).drains.is_empty());
        // A path never seen: start_position decides, unless the file is new since its glob's
        // first scan.
        let fresh = Lineage { had_history: false, last_update: None, past: vec![] };
        assert_eq!(plan_start(&fresh, &[], Some(500), false, StartPosition::End).unknown, 500);
        assert_eq!(plan_start(&fresh, &[], Some(500), false, StartPosition::Beginning).unknown, 0);
        assert_eq!(plan_start(&fresh, &[], Some(500), true, StartPosition::End).unknown, 0);
        assert_eq!(plan_start(&fresh, &[], Some(500), true, StartPosition::End).adopt_since, None);
    }
}
