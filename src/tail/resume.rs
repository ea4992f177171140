//! Where reading a file resumes, decided from what the position store knows of it.
//!
//! Exists so that one rule answers "from which offset?" for every file a tail opens: the file at
//! its path when it starts or when a new one appears, and a rotated generation beside it that it
//! adopts. Two deciders would disagree (a copytruncate copy refused by one as shorter than the
//! offset read, then read in full by the other as an unseen generation). The store is asked once
//! (`Checkpoints::position`); `plan` turns the answer into an action, without I/O.

use std::sync::Arc;

use crate::ack::AckTracker;
use crate::checkpoint::Known;
use crate::fingerprint::Fingerprint;

/// What to do with the file.
#[derive(Debug)]
pub enum Resume {
    /// Another tail reads it: wait until it is done.
    Wait { owner: u64 },
    /// Read it from `offset`, crediting acknowledgements to `tracker` (a live one carries on).
    At { offset: u64, tracker: Option<Arc<AckTracker>> },
    /// It holds other content than what was read: read it from 0, after the copy of the old
    /// content (`fp`, read up to `offset`), if there is one beside it.
    Replaced { fp: Fingerprint, offset: u64, tracker: Option<Arc<AckTracker>> },
}

/// `holder`: another tail that reads the file now (from `claims`); `known`: the store's answer
/// for a file of `size` bytes; `unknown`: where a file never seen starts (`start_position`, or 0
/// for a file that appeared while watched).
pub fn plan(holder: Option<u64>, known: Known, size: u64, unknown: u64) -> Resume {
    if let Some(owner) = holder {
        return Resume::Wait { owner };
    }
    match known {
        Known::Live(t) => {
            let sent = t.sent();
            Resume::At { offset: sent, tracker: Some(t) }
        }
        Known::Saved(offset) => Resume::At { offset, tracker: None },
        Known::Replaced { fp, offset, tracker } => Resume::Replaced { fp, offset, tracker },
        Known::CopyOf { offset, tracker } => Resume::At { offset, tracker },
        Known::Unknown => Resume::At { offset: unknown.min(size), tracker: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_of_the_store() {
        let t = Arc::new(AckTracker::new(40));
        assert!(matches!(plan(Some(3), Known::Saved(5), 100, 0), Resume::Wait { owner: 3 }));
        assert!(matches!(plan(None, Known::Live(t), 100, 0), Resume::At { offset: 40, tracker: Some(_) }));
        assert!(matches!(plan(None, Known::Saved(60), 100, 0), Resume::At { offset: 60, tracker: None }));
        let fp = Fingerprint { len: 8, hash: 1 };
        assert!(matches!(
            plan(None, Known::Replaced { fp, offset: 8, tracker: None }, 3, 0),
            Resume::Replaced { offset: 8, .. }
        ));
        assert!(matches!(
            plan(None, Known::CopyOf { offset: 30, tracker: None }, 100, 0),
            Resume::At { offset: 30, .. }
        ));
        assert!(matches!(plan(None, Known::Unknown, 100, 100), Resume::At { offset: 100, .. }), "start_position: end");
        assert!(matches!(plan(None, Known::Unknown, 100, 0), Resume::At { offset: 0, .. }));
    }
}
