//! Which tail reads which file: one file (by identity, for one topic) is read by one tail at a
//! time.
//!
//! Exists apart from the position store (`checkpoint`) because the two answer different
//! questions: the store remembers where reading got to, durably; the registry says who holds a
//! file now, and only while the process runs. When a glob matches both `app.log` and its rotated
//! `app.log.1`, the tail of `app.log` drains the old file it already has open, and the tail of
//! `app.log.1` waits for that claim to end, then goes on from where the first one stopped.
//!
//! A claim is held by the reader that reads the file and released when the reader is dropped
//! (finished, closed for inactivity, or its tail stopped): nothing to forget to release. It is
//! not read off the file's acknowledgement tracker, because a copy carries on the tracker of its
//! original (copytruncate), and the original would then look claimed by a tail long gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::fingerprint::FileId;

type Key = (Arc<str>, FileId);

/// The registry: for each claimed file, the tail (its generation) that holds it and how many of
/// its readers do.
#[derive(Default)]
pub struct Claims {
    held: Mutex<HashMap<Key, (u64, usize)>>,
}

/// A tail's hold on one file; released on drop.
pub struct Claim {
    claims: Arc<Claims>,
    key: Key,
}

impl Claims {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, (u64, usize)>> {
        // Every change is one insert or remove: a panic elsewhere never leaves it half done.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the file `id` for `topic` for the tail `owner`; `Err(holder)` when another tail
    /// holds it.
    pub fn claim(self: &Arc<Self>, topic: &Arc<str>, id: FileId, owner: u64) -> Result<Claim, u64> {
        let key = (topic.clone(), id);
        let mut held = self.lock();
        let entry = held.entry(key.clone()).or_insert((owner, 0));
        if entry.0 != owner {
            return Err(entry.0);
        }
        entry.1 += 1;
        Ok(Claim { claims: self.clone(), key })
    }

    /// The tail holding the file, if any.
    pub fn holder(&self, topic: &str, id: FileId) -> Option<u64> {
        self.lock().iter().find(|((t, i), _)| &**t == topic && *i == id).map(|(_, (owner, _))| *owner)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut held = self.claims.lock();
        if let Some(entry) = held.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                held.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_tail_at_a_time_reads_a_file_until_its_claim_is_dropped() {
        let claims = Arc::new(Claims::default());
        let (t, u): (Arc<str>, Arc<str>) = ("t".into(), "u".into());
        let id = FileId { dev: 1, ino: 7 };
        let first = claims.claim(&t, id, 1).unwrap();
        assert_eq!(claims.claim(&t, id, 2).err(), Some(1), "tail 2 waits for tail 1");
        assert!(claims.claim(&u, id, 2).is_ok(), "claims are per topic");
        let again = claims.claim(&t, id, 1).expect("a tail may hold its file twice (a reader and a copy's)");
        drop(first);
        assert_eq!(claims.holder("t", id), Some(1), "still held by its other reader");
        drop(again);
        assert_eq!(claims.holder("t", id), None);
        assert!(claims.claim(&t, id, 2).is_ok(), "tail 2 takes it over");
    }
}
