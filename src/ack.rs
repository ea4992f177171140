//! Acknowledgement tracking for one file: which byte offset is safe to checkpoint.
//!
//! Exists because Kafka acknowledges lines asynchronously and not necessarily in order, while a
//! checkpoint may only move past a line when that line *and every line before it* is acknowledged.
//! Each batch of lines handed to the producer is registered with the offset just past its last
//! line; when every line of it is delivered (`sink::BatchAck`) it is acked; the acknowledged
//! offset is the end of the longest fully acknowledged prefix. Memory is one entry per batch in
//! flight, which the producer's queue bound keeps bounded. (A registration can be a single line:
//! the unfinished last line of a rotated file.)

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use crate::fingerprint::Fingerprint;
use crate::waker::Doorbell;

/// A position store's count of its trackers' changes, and the bell of the thread that saves
/// them: the checkpointer sleeps until something changed rather than waking every
/// `checkpoint_interval` to find nothing (1,000 idle files: five wakeups a second, 4.9 ms of CPU
/// in 30 s, the idle agent's largest share; schedstat).
#[derive(Default)]
pub struct Changes {
    count: AtomicU64,
    /// Shared with the checkpointer's stop, which rings it to end the thread at once.
    bell: Arc<Doorbell>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").field("count", &self.count()).finish_non_exhaustive()
    }
}

impl Changes {
    /// Changes counted so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// A tracker's progress may have moved: counted, and the saver woken. Counted before the
    /// bell is looked at, both SeqCst: a saver that takes the ring after this count sees it.
    fn note(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.bell.ring_once();
    }

    /// Something else is left to save (the store's own state changed, or a write failed).
    pub fn wake(&self) {
        self.bell.ring_once();
    }

    /// Sleeps until a change or `timeout`.
    pub fn wait(&self, timeout: std::time::Duration) {
        self.bell.wait(timeout);
    }

    /// The saver's bell (a `control::Stop` made with it wakes the saver when raised).
    pub fn bell(&self) -> Arc<Doorbell> {
        self.bell.clone()
    }
}

#[derive(Debug)]
struct Inner {
    /// Sequence number of `pending[0]`.
    first_seq: u64,
    /// (end offset, fingerprint of the bytes just before it, acknowledged) per line in flight,
    /// in send order.
    pending: VecDeque<(u64, Fingerprint, bool)>,
    /// End of the acknowledged prefix.
    acked: u64,
    /// The bytes just before `acked` (`len` 0: not known, as for a tracker made at a position).
    acked_near: Fingerprint,
    /// End of the last line registered (sent, or being sent).
    sent: u64,
    /// Readers reading with this tracker: a copy left by copytruncate goes on with its
    /// original's tracker, so two can. At 0 the tracker is kept only until its lines are
    /// acknowledged. (A flag, cleared by whichever reader ended first, let the checkpointer
    /// forget a copy still being read: found by the tail's model test.)
    readers: usize,
}

/// Thread-safe: registered by the tail's thread, acknowledged by the producer's delivery thread,
/// read by the checkpointer.
#[derive(Debug)]
pub struct AckTracker {
    inner: Mutex<Inner>,
    /// The position store's count of changes (`Checkpoints::track` hands it out), bumped
    /// whenever `progress()` may have changed (an ack, a cancel, a reader closing or opening):
    /// the checkpointer walks its live trackers only when it moved. Idle, that walk was five
    /// passes a second over every tracker (1,000 files: 5,000 locks a second, the
    /// checkpointer's 0.04% of a core).
    changes: OnceLock<Arc<Changes>>,
}

impl AckTracker {
    /// A tracker for a file whose bytes before `offset` are already acknowledged.
    pub fn new(offset: u64) -> AckTracker {
        AckTracker {
            inner: Mutex::new(Inner {
                first_seq: 0,
                pending: VecDeque::new(),
                acked: offset,
                acked_near: Fingerprint::default(),
                sent: offset,
                readers: 0,
            }),
            changes: OnceLock::new(),
        }
    }

    /// Counts this tracker's changes in `changes` from now on (the first counter given wins: a
    /// tracker belongs to one store).
    pub fn count_changes_in(&self, changes: &Arc<Changes>) {
        let _ = self.changes.set(changes.clone());
    }

    fn touch(&self) {
        if let Some(c) = self.changes.get() {
            c.note();
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere never leaves Inner half-updated (every method is a few plain
        // assignments), so a poisoned lock is safe to use.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a line ending at `end` (exclusive); returns its sequence number.
    pub fn register(&self, end: u64) -> u64 {
        self.register_near(end, Fingerprint::default())
    }

    /// `register`, with the fingerprint of the bytes just before `end`: kept with the position
    /// once acknowledged, so that a file that begins like the one read but differs there is not
    /// taken for it (`Checkpoints::resolve`).
    pub fn register_near(&self, end: u64, near: Fingerprint) -> u64 {
        let mut g = self.lock();
        let seq = g.first_seq + g.pending.len() as u64;
        g.pending.push_back((end, near, false));
        g.sent = end;
        seq
    }

    /// Takes back registration `seq` and every later one (those lines were not handed to the
    /// producer after all).
    pub fn cancel_from(&self, seq: u64) {
        let mut g = self.lock();
        // A seq below first_seq is already acknowledged: not ours to take back.
        if let Some(keep) = seq.checked_sub(g.first_seq) {
            g.pending.truncate(keep as usize);
        }
        g.sent = g.pending.back().map(|p| p.0).unwrap_or(g.acked);
        self.touch();
    }

    /// Marks line `seq` acknowledged (or given up on); advances the acknowledged prefix.
    pub fn ack(&self, seq: u64) {
        let mut g = self.lock();
        let Some(idx) = seq.checked_sub(g.first_seq) else {
            return;
        };
        if let Some(entry) = g.pending.get_mut(idx as usize) {
            entry.2 = true;
        }
        while let Some(&(end, near, true)) = g.pending.front() {
            g.acked = end;
            g.acked_near = near;
            g.pending.pop_front();
            g.first_seq += 1;
        }
        self.touch();
    }

    /// The fingerprint of the bytes before `end`, a line's end registered and not yet let go (or
    /// the acknowledged offset): what exactly-once commits with a position. Not known: no bytes.
    pub fn near_of(&self, end: u64) -> Fingerprint {
        let g = self.lock();
        if end == g.acked {
            return g.acked_near;
        }
        g.pending.iter().rev().find(|p| p.0 == end).map(|p| p.1).unwrap_or_default()
    }

    /// The offset up to which every line is acknowledged: what a checkpoint may record.
    pub fn acked(&self) -> u64 {
        self.lock().acked
    }

    /// The offset just past the last line handed to the producer: where a restarted tail resumes.
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    pub fn in_flight(&self) -> usize {
        self.lock().pending.len()
    }

    /// A reader stops reading with this tracker (the tail's `Reader` does it when dropped).
    pub fn close(&self) {
        let mut g = self.lock();
        g.readers = g.readers.saturating_sub(1);
        self.touch();
    }

    /// Whether no reader has the file open now.
    pub fn is_closed(&self) -> bool {
        self.lock().readers == 0
    }

    /// A reader starts reading with this tracker (registered by `Checkpoints::track`).
    pub fn reopen(&self) {
        self.lock().readers += 1;
        self.touch();
    }

    /// `acked()`, the fingerprint of the bytes just before it, and `finished()` under one lock:
    /// what the checkpointer asks of every live file five times a second (10,000 files: 100,000
    /// locks a second as two calls).
    pub fn progress(&self) -> (u64, Fingerprint, bool) {
        let g = self.lock();
        (g.acked, g.acked_near, g.readers == 0 && g.pending.is_empty())
    }

    /// Closed and nothing left in flight: the checkpointer can forget the live tracker.
    pub fn finished(&self) -> bool {
        let g = self.lock();
        g.readers == 0 && g.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bytes_before_each_end_are_kept_with_it_and_with_the_acknowledged_offset() {
        let t = AckTracker::new(0);
        let (n1, n2) = (Fingerprint { len: 4, hash: 1 }, Fingerprint { len: 4, hash: 2 });
        let a = t.register_near(5, n1);
        let _b = t.register_near(9, n2);
        assert_eq!((t.near_of(5), t.near_of(9), t.near_of(7)), (n1, n2, Fingerprint::default()));
        t.ack(a);
        assert_eq!(t.progress(), (5, n1, false));
        assert_eq!(t.near_of(5), n1, "the acknowledged offset keeps its fingerprint");
    }

    #[test]
    fn in_order() {
        let t = AckTracker::new(10);
        let a = t.register(20);
        let b = t.register(35);
        assert_eq!((t.acked(), t.sent()), (10, 35));
        t.ack(a);
        assert_eq!(t.acked(), 20);
        t.ack(b);
        assert_eq!(t.acked(), 35);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn out_of_order_waits_for_the_gap() {
        let t = AckTracker::new(0);
        let s: Vec<u64> = [5, 9, 14, 20].iter().map(|&e| t.register(e)).collect();
        t.ack(s[2]);
        t.ack(s[1]);
        assert_eq!(t.acked(), 0, "line 0 is not acknowledged yet");
        t.ack(s[0]);
        assert_eq!(t.acked(), 14);
        t.ack(s[3]);
        assert_eq!(t.acked(), 20);
    }

    #[test]
    fn duplicate_and_stale_acks_are_harmless() {
        let t = AckTracker::new(0);
        let a = t.register(5);
        t.ack(a);
        t.ack(a);
        t.ack(999);
        let b = t.register(9);
        t.ack(b);
        assert_eq!(t.acked(), 9);
    }

    #[test]
    fn cancel_takes_back_the_last_line() {
        let t = AckTracker::new(0);
        let a = t.register(5);
        let b = t.register(9);
        t.cancel_from(b);
        assert_eq!(t.sent(), 5);
        t.ack(a);
        assert_eq!(t.acked(), 5);
        let c = t.register(12);
        assert_eq!(c, b, "the cancelled sequence number is reused");
        t.ack(c);
        assert_eq!(t.acked(), 12);
    }

    #[test]
    fn cancel_from_takes_back_a_batch() {
        let t = AckTracker::new(0);
        let a = t.register(5);
        let b = t.register(9);
        t.register(12);
        t.cancel_from(b);
        assert_eq!((t.sent(), t.in_flight()), (5, 1));
        t.ack(a);
        assert_eq!(t.acked(), 5);
    }

    #[test]
    fn finished_when_closed_and_drained() {
        let t = AckTracker::new(0);
        let a = t.register(3);
        t.close();
        assert!(!t.finished());
        t.ack(a);
        assert!(t.finished());
    }
}
