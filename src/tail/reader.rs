//! One open file being read: its bytes read with `pread`, framed into lines (or `multiline`
//! events) and shipped to the sink, with the acknowledgement going to the file's tracker.
//!
//! Exists so that reading and shipping are the reader's own job, the same for the current file
//! and for rotated ones being drained: the tail's state machine (`super`) decides which files
//! are read and what a change of the path means, and hands each reader what it ships with
//! (`Lane`). A reader's position moves only once a batch is handed to the sink, so a stop or a
//! panic never skips or repeats a line.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::framer::{self, Framed};
use super::generation::Decoded;
use super::TailCtx;
use crate::ack::AckTracker;
use crate::budget::Permit;
use crate::charset::Charset;
use crate::claims::Claim;
use crate::envelope::Format;
use crate::failpoint;
use crate::filter;
use crate::fingerprint::{FileId, Fingerprint, Stamp, NEAR_BYTES};
use crate::labels::Fields;
use crate::metrics::TailStats;
use crate::multiline;
use crate::rate::Limiter;
use crate::sink::{AckTo, Batch, Held, Stopped};

/// Bytes read from a file per `pread`.
const CHUNK: usize = 64 * 1024;
/// The last bytes read that a reader keeps (`Seen`), for the looker's look to read again.
const SEEN_BYTES: usize = NEAR_BYTES;
/// Bytes past the offset the looker's look asks for in its one `pread` (`read_appended`): a
/// busy logger's write is far less (the live bench's are 1.2 KiB); a longer append is read on by
/// `read_some`.
const APPENDED_READ: usize = 16 * 1024;
/// Bytes read from one file before the loop looks at its stop flag and other files again.
pub(super) const BUDGET: usize = 4 * 1024 * 1024;
/// How long a batch waits for room in the sink before the tail looks at its files again (and
/// offers the batch once more). A tail held back by a broker away must still see its file cut
/// by copytruncate: the copy holds the lines it has not read, and the next rotation may rename
/// over it (logrotate's `compress`), which only a descriptor on it survives. Each offer frames
/// the held lines again: estimated (not measured) at some microseconds per 64 KiB read, about
/// 1% of a core for 1,000 held files, beside the 50 ms wakeups every held tail already has.
pub(super) const HOLD_LOOK: std::time::Duration = std::time::Duration::from_secs(1);

/// How a tail's lines leave, whichever of its files they come from: the same for all its readers.
pub(super) struct Lane {
    pub topic: Arc<str>,
    pub key: Option<Arc<[u8]>>,
    pub format: Format,
    /// `multiline`: the spec's rule, compiled once (the spec was checked when resolved). Boxed:
    /// 104 bytes inline in every tail's state, parked ones included, and few entries have one.
    pub multiline: Option<Box<multiline::Rule>>,
    /// `include_lines`, `exclude_lines`, compiled once for the entry.
    pub filter: Option<Arc<filter::Rule>>,
    /// `fields`, with every message.
    pub fields: Option<Arc<Fields>>,
    /// `rate_limit`: the source's bucket and the agent's.
    pub limiter: Limiter,
    /// `encoding`: how lines are framed and decoded.
    pub charset: Charset,
    /// The tail's path as text (failpoints name it).
    pub path_text: String,
    pub stats: Arc<TailStats>,
}

impl Lane {
    /// The next line of `buf` from `pos` (`framer::frame`, or `frame_wide` for UTF-16).
    fn frame(&self, buf: &[u8], pos: usize, scanned: usize, max: usize) -> Framed {
        match self.charset.wide() {
            None => framer::frame(buf, pos, scanned, max),
            Some(big_endian) => framer::frame_wide(buf, pos, scanned, max, big_endian),
        }
    }

    /// The batch of `spans` (events) of `data`, read from `origin` with `data[0]` at file
    /// offset `offset`: decoded to UTF-8 with `encoding` (each line keeping its offset in the
    /// file's bytes), less the events `include_lines`/`exclude_lines` drop (how many is the
    /// second value). A dropped event's bytes count as read: the batch's end, the position it
    /// acknowledges, moves past them; with every event dropped it has no line, and is still
    /// handed over (in exactly_once its position is committed within a transaction).
    fn batch(&self, data: &[u8], mut spans: Vec<(usize, usize)>, origin: Arc<str>, offset: u64) -> (Batch, u64) {
        let before = spans.len();
        let (data, offsets) = if self.charset.is_passthrough() {
            if let Some(rule) = &self.filter {
                spans.retain(|&(s, e)| rule.keeps(&data[s..e]));
            }
            (data.to_vec(), None)
        } else {
            let mut out = Vec::with_capacity(data.len() + data.len() / 4);
            let mut offsets = Vec::with_capacity(spans.len());
            let mut kept = Vec::with_capacity(spans.len());
            for (s, e) in spans {
                let start = out.len();
                if self.charset.decode_into(&data[s..e], offset + s as u64 == 0, &mut out) {
                    self.stats.undecodable.fetch_add(1, Ordering::Relaxed);
                }
                if self.filter.as_ref().is_none_or(|r| r.keeps(&out[start..])) {
                    kept.push((start, out.len()));
                    offsets.push(s as u64);
                } else {
                    out.truncate(start);
                }
            }
            spans = kept;
            (out, Some(offsets))
        };
        let dropped = (before - spans.len()) as u64;
        let batch = Batch::from_spans(self.topic.clone(), self.key.clone(), data, spans)
            .with_origin(origin, offset)
            .with_format(self.format)
            .with_fields(self.fields.clone())
            .with_offsets(offsets);
        (batch, dropped)
    }

    /// `rate_limit`: waits as long as the buckets say after `n` bytes were read, in slices, so
    /// that a stop is seen within 50 ms. Whether it waited (or was stopped waiting).
    fn pace(&self, n: usize, stop: &AtomicBool) -> bool {
        let wait = self.limiter.take(n);
        if wait.is_zero() {
            return false;
        }
        self.stats.throttled_us.fetch_add(wait.as_micros() as u64, Ordering::Relaxed);
        let until = Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || stop.load(Ordering::Relaxed) {
                return true;
            }
            std::thread::sleep(left.min(std::time::Duration::from_millis(50)));
        }
    }
}

/// One open file being read.
pub(super) struct Reader {
    pub file: File,
    pub id: FileId,
    pub fp: Fingerprint,
    pub tracker: Arc<AckTracker>,
    /// A compressed generation: its decompressed bytes, which are what is read (`read_offset`
    /// and the fingerprint are the original's).
    decoded: Option<Box<Decoded>>,
    /// Where it was opened (a rotated file keeps the name it had then).
    pub opened_as: PathBuf,
    /// `opened_as` as text, for the `path` header of its lines.
    origin: Arc<str>,
    /// File offset just past `buf`.
    pub read_offset: u64,
    /// The bytes just before `read_offset`, as read.
    seen: Seen,
    /// Bytes read and not yet sent start at `buf[pos]`.
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` is known to hold no newline.
    scanned: usize,
    /// Unix seconds when it was opened.
    pub opened_at: u64,
    /// The file's stamp at the last end-of-file check (its first bytes are compared only when
    /// it changed).
    pub checked: Stamp,
    /// `multiline`: the file offset of the open event's first line, and since when it waits
    /// for a line that ends it (shipped as it is after the rule's timeout).
    pub event_since: Option<(u64, Instant)>,
    /// When the reader last reached its end with nothing new (draining readers close after
    /// `rotate_wait` of this, the current one after `close_inactive`).
    pub idle_since: Option<Instant>,
    /// It reached the end of what its file held at least once: a draining generation holds up
    /// the newer ones (and the current file) only until then.
    pub caught_up: bool,
    /// Its share of the open-file budget.
    _permit: Permit,
    /// This tail's hold on the file, released when the reader is dropped.
    _claim: Claim,
}

/// A reader ends by being dropped: its tracker is told (the checkpointer forgets it once its
/// lines are acknowledged) and its claim and permit go back.
impl Drop for Reader {
    fn drop(&mut self) {
        self.tracker.close();
    }
}

/// What one look at a reader found.
pub(super) struct Look {
    /// Bytes read (and their complete lines shipped).
    pub read: usize,
    /// The file's stamp at the look.
    pub stamp: Stamp,
    /// Reading failed (the bytes read before the error were shipped).
    pub error: Option<io::Error>,
    /// The look stopped at its budget, not at the end of what the file held: there is more.
    pub more: bool,
    /// The sink had no room for `HOLD_LOOK`: the lines read wait in the buffer (nothing more is
    /// read), to be offered again once the tail has looked at its files.
    pub held: bool,
}

impl Look {
    /// A look that has read nothing yet, at a file of `stamp`.
    fn at(stamp: Stamp) -> Look {
        Look { read: 0, stamp, error: None, more: false, held: false }
    }
}

impl Reader {
    /// A reader of `file` from `offset`, holding the file's claim and a permit.
    #[allow(clippy::too_many_arguments)] // each is a part the reader owns from here on
    pub fn new(
        file: File,
        id: FileId,
        fp: Fingerprint,
        tracker: Arc<AckTracker>,
        decoded: Option<Decoded>,
        opened_as: PathBuf,
        offset: u64,
        permit: Permit,
        claim: Claim,
    ) -> Reader {
        Reader {
            file,
            id,
            fp,
            tracker,
            decoded: decoded.map(Box::new),
            origin: opened_as.to_string_lossy().into(),
            opened_as,
            read_offset: offset,
            seen: Seen::default(),
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            opened_at: super::unix_now(),
            checked: Stamp { size: offset, mtime: (0, 0) },
            event_since: None,
            idle_since: None,
            caught_up: false,
            _permit: permit,
            _claim: claim,
        }
    }

    /// Bytes read and not shipped (an unfinished last line, or an open `multiline` event).
    pub fn has_unsent(&self) -> bool {
        self.pos < self.buf.len()
    }

    /// The read buffer's room (the model test checks what a parked tail keeps).
    #[cfg(test)]
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Whether what was read and not shipped is at most an unfinished last line (no newline in
    /// it): nothing but the file's next write completes it, so a tail may park holding it (a
    /// rotation, a cut or a deletion rings the tail, and a thread finishes the line then).
    pub fn holds_only_a_partial_line(&self) -> bool {
        memchr::memchr(b'\n', &self.buf[self.pos..]).is_none()
    }

    /// The file offset of the first byte not shipped.
    pub fn unsent_offset(&self) -> u64 {
        self.offset_of(self.pos)
    }

    /// The file's stamp now (the last one checked if `fstat` fails).
    pub fn stamp(&self) -> Stamp {
        self.file.metadata().map(|m| Stamp::of(&m)).unwrap_or(self.checked)
    }

    /// Where the acknowledgement of lines ending at file offset `end` (buffer index `idx`) goes:
    /// this file's tracker, with the fingerprint of the bytes just before `end` (those still in
    /// the buffer, `NEAR_BYTES` at most).
    fn ack_to(&self, end: u64, idx: usize) -> AckTo {
        let near = Fingerprint::of_bytes(&self.buf[idx.saturating_sub(NEAR_BYTES)..idx]);
        AckTo { tracker: self.tracker.clone(), end, near }
    }

    fn offset_of(&self, idx: usize) -> u64 {
        self.read_offset - (self.buf.len() - idx) as u64
    }

    /// A compressed generation read to its end: nothing more will come.
    pub fn ended(&self) -> bool {
        self.decoded.as_ref().is_some_and(|d| d.ended())
    }

    /// Whether the file no longer holds what was read from it: shorter than the offset read, or
    /// (when its stamp moved since the last look) other first bytes. A compressed generation is
    /// never cut (logrotate writes it once).
    pub fn is_cut(&self) -> bool {
        self.decoded.is_none() && self.file.metadata().is_ok_and(|m| self.is_cut_at(Stamp::of(&m)))
    }

    /// `is_cut`, for a caller that has the file's stamp already (one `fstat`, not two).
    pub fn is_cut_at(&self, stamp: Stamp) -> bool {
        self.decoded.is_none()
            && (stamp.size < self.read_offset || (stamp != self.checked && !self.fp.matches(&self.file)))
    }

    /// Reads up to `BUDGET` bytes and ships every complete line, waiting at most `patience` for
    /// room in the sink (`HOLD_LOOK` on a tail's thread; none on the looker's, which must not
    /// keep the other parked files waiting).
    pub fn read_some(
        &mut self,
        ctx: &TailCtx,
        lane: &Lane,
        stop: &AtomicBool,
        patience: Duration,
    ) -> Result<Look, Stopped> {
        // One `fstat` per look: the file is read up to the size it had then (what is written
        // meanwhile is the next look's, which a write's notification or `batch_wait` brings).
        let stamp = self.stamp();
        // A compressed generation's decompressed size is known once its stream ends.
        let size = if self.decoded.is_some() { u64::MAX } else { stamp.size };
        let look = Look::at(stamp);
        if !self.same_content_grew(stamp) {
            return Ok(look); // cut and written again since the last look: the tail decides
        }
        self.read_to(ctx, lane, stop, patience, size, look)
    }

    /// The looker's look (`quick_look`): one `pread` from the last bytes read (`Seen`) on, for
    /// them and what was appended after them. When they are still there, the file was neither
    /// cut nor written over (a copytruncate followed by writes past the offset, both between
    /// two looks, puts other bytes there), so the `fstat` and the read of the file's first
    /// bytes that `read_some` takes are not needed: three system calls a look become one (the
    /// two were 36 % of the looker's time in the live bench, perf). `None`: no bytes known yet,
    /// other bytes there, the file shorter, or an error; `read_some` looks instead.
    /// `scratch`: the caller's buffer to read into, kept from look to look (the bytes appended
    /// are copied out: a buffer of the read's size allocated, zeroed and freed by each look
    /// took 10 % of the looker's time).
    pub fn read_appended(
        &mut self,
        ctx: &TailCtx,
        lane: &Lane,
        stop: &AtomicBool,
        scratch: &mut Vec<u8>,
    ) -> Result<Option<Look>, Stopped> {
        let k = self.seen.len;
        let Some(from) = self.read_offset.checked_sub(k as u64) else { return Ok(None) };
        if self.decoded.is_some() || k == 0 {
            return Ok(None);
        }
        let want = APPENDED_READ.min(ctx.settings.max_line_bytes + 1);
        if scratch.len() < k + want {
            scratch.resize(k + want, 0);
        }
        let n = match self.file.read_at(&mut scratch[..k + want], from) {
            Ok(n) if n >= k && scratch[..k] == *self.seen.bytes() => n - k,
            _ => return Ok(None),
        };
        let (len, end) = (self.buf.len(), from + (k + n) as u64);
        self.buf.extend_from_slice(&scratch[k..k + n]);
        let mut look = Look::at(Stamp::by_content(end));
        if self.took(ctx, lane, stop, len, end, &mut look) {
            return Ok(Some(look));
        }
        if n == want {
            // There may be more: `read_some` reads on (and checks by `fstat`).
            let on = self.read_some(ctx, lane, stop, Duration::ZERO)?;
            return Ok(Some(Look { read: n + on.read, ..on }));
        }
        // A short read ends at the file's end: it is known to hold nothing past the offset.
        self.checked = look.stamp;
        self.read_to(ctx, lane, stop, Duration::ZERO, self.read_offset, look).map(Some)
    }

    /// `read_some`'s loop: ships what is buffered and reads on up to `size` (or the budget).
    ///
    /// Long on purpose: the read loop and its three ways out (budget spent, end of file, error).
    fn read_to(
        &mut self,
        ctx: &TailCtx,
        lane: &Lane,
        stop: &AtomicBool,
        patience: Duration,
        size: u64,
        mut look: Look,
    ) -> Result<Look, Stopped> {
        let max = ctx.settings.max_line_bytes;
        loop {
            // Ship what is buffered first (there may be lines left from a stopped send).
            if !self.ship_lines(ctx, lane, stop, patience)? {
                look.held = true;
                return Ok(look);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.scanned -= self.pos;
                self.pos = 0;
            }
            if look.read >= BUDGET {
                look.more = true;
                return Ok(look);
            }
            // Read only what is there: a quiet file costs one fstat, and no buffer beyond its
            // unfinished last line (a tail parks holding one: without this, each kept the read's
            // 64 KiB of room, which a local user could make a thousand files do).
            if size <= self.read_offset {
                self.trim_buffer();
                return Ok(look);
            }
            let len = self.buf.len();
            let want = (size - self.read_offset).min(CHUNK.min(max + 1) as u64) as usize;
            self.buf.resize(len + want, 0);
            let read = match &mut self.decoded {
                Some(d) => d.read_at(&mut self.buf[len..], self.read_offset),
                None => self.file.read_at(&mut self.buf[len..], self.read_offset),
            };
            let n = match read {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => 0,
                Err(e) => {
                    self.buf.truncate(len);
                    look.error = Some(e);
                    return Ok(look);
                }
            };
            self.buf.truncate(len + n);
            if self.took(ctx, lane, stop, len, size, &mut look) || n == 0 {
                return Ok(look);
            }
        }
    }

    /// Counts the bytes just read into `buf[len..]`, from the file of `size` bytes: the offset
    /// and the last bytes seen move together. True when `rate_limit` made it wait: the look ends
    /// there (what was read stays buffered, and is shipped first at the next), so that the tail
    /// updates its lag and sees its stop flag between two waits.
    fn took(&mut self, ctx: &TailCtx, lane: &Lane, stop: &AtomicBool, len: usize, size: u64, look: &mut Look) -> bool {
        let n = self.buf.len() - len;
        self.read_offset += n as u64;
        if self.decoded.is_none() {
            self.seen.push(&self.buf[len..]);
        }
        look.read += n;
        if lane.pace(n, stop) {
            look.more = true;
            return true;
        }
        self.grow_fingerprint(ctx, lane, size);
        false
    }

    /// Gives back the buffer's room beyond what it holds (a parked tail keeps no more than its
    /// unfinished last line).
    fn trim_buffer(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = Vec::new();
        } else {
            self.buf.shrink_to_fit();
        }
    }

    /// Takes the fingerprint further when the file (of `size` bytes) holds more than it covers,
    /// up to 256 bytes: a file recorded with fewer is not recognised after a rename, an inode
    /// reuse, or in its copy after copytruncate. Reading does it as soon as it reads; the tail
    /// does it too for a current file it cannot read yet (held back by the sink, or behind on
    /// older generations), which would otherwise be cut with no way to know its copy.
    pub fn grow_fingerprint(&mut self, ctx: &TailCtx, lane: &Lane, size: u64) {
        if self.decoded.is_none() && self.fp.can_grow(size) {
            if let Ok(fp) = Fingerprint::of_file(&self.file) {
                self.fp = fp;
                ctx.checkpoints.update_fingerprint(&lane.topic, self.id, fp);
            }
        }
    }

    /// Whether the file still begins as it did, checked when it grew since the last look: a
    /// copytruncate followed by writes past the old offset, all between two looks, would
    /// otherwise be read on from the old offset, mid-line in the new content. One `pread` of at
    /// most 256 bytes per look at a file that grew.
    fn same_content_grew(&mut self, stamp: Stamp) -> bool {
        if self.decoded.is_some() || stamp == self.checked || stamp.size <= self.read_offset {
            return true;
        }
        if !self.fp.matches(&self.file) {
            return false;
        }
        self.checked = stamp;
        true
    }

    /// Ships every complete line in the buffer (and pieces of over-long ones), in batches handed
    /// to the sink. The position moves only once a batch is handed over. False when the sink had
    /// no room for `patience` (what is left waits in the buffer).
    fn ship_lines(
        &mut self,
        ctx: &TailCtx,
        lane: &Lane,
        stop: &AtomicBool,
        patience: Duration,
    ) -> Result<bool, Stopped> {
        if let Some(rule) = &lane.multiline {
            return self.ship_events(ctx, lane, rule, stop, patience);
        }
        let max = ctx.settings.max_line_bytes;
        loop {
            // Lines are framed in place, as spans of the unread buffer from `first`, and copied
            // out once per batch: a copy per line (and the batch's regrowth) was the largest
            // difference between the static (musl) build and the glibc one in perf.
            let first = self.pos;
            // Room for a busy logger's write (the live bench's are 10 lines): growing from
            // none took three allocations a batch, 8 % of the looker's time.
            let mut lines: Vec<(usize, usize)> = Vec::with_capacity(16);
            let (mut pos, mut scanned, mut split_lines, mut bytes, mut end_offset) =
                (self.pos, self.scanned, 0u64, 0u64, 0);
            while !Batch::full_at(pos - first, lines.len()) {
                let (end, consumed, split) = match lane.frame(&self.buf, pos, scanned, max) {
                    Framed::Line { end, next, split } => (end, next, split),
                    Framed::Incomplete => {
                        scanned = self.buf.len();
                        break;
                    }
                };
                lines.push((pos - first, end - first));
                end_offset = self.offset_of(consumed);
                bytes += (end - pos) as u64;
                split_lines += u64::from(split);
                pos = consumed;
                scanned = scanned.max(pos);
            }
            if lines.is_empty() {
                self.scanned = scanned;
                return Ok(true);
            }
            let (batch, dropped) = lane.batch(&self.buf[first..pos], lines, self.origin.clone(), self.offset_of(first));
            let n = batch.lines.len() as u64;
            if !offer(ctx, batch, self.ack_to(end_offset, pos), stop, patience)? {
                return Ok(false);
            }
            lane.stats.filtered.fetch_add(dropped, Ordering::Relaxed);
            self.pos = pos;
            self.scanned = scanned;
            lane.stats.lines.fetch_add(n, Ordering::Relaxed);
            lane.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            lane.stats.split.fetch_add(split_lines, Ordering::Relaxed);
            for _ in 0..n {
                failpoint::hit("tail.sent", &lane.path_text);
            }
        }
    }

    /// `multiline`: ships the finished events among the complete lines buffered, each as one
    /// message (its lines joined by `\n`: the bytes between its first line's start and its last
    /// line's end). The position stays at the open event's first line, so an event is
    /// acknowledged whole or read again whole; the open event is shipped as it is once it has
    /// waited the rule's timeout. False as `ship_lines`.
    fn ship_events(
        &mut self,
        ctx: &TailCtx,
        lane: &Lane,
        rule: &multiline::Rule,
        stop: &AtomicBool,
        patience: Duration,
    ) -> Result<bool, Stopped> {
        let max = ctx.settings.max_line_bytes;
        // Every complete line buffered, as (start, end, next, split) spans.
        let mut spans: Vec<(usize, usize, usize, bool)> = Vec::new();
        let (mut pos, mut scanned) = (self.pos, self.scanned);
        while let Framed::Line { end, next, split } = lane.frame(&self.buf, pos, scanned, max) {
            spans.push((pos, end, next, split));
            pos = next;
            scanned = scanned.max(pos);
        }
        if spans.is_empty() {
            self.scanned = self.buf.len();
            return Ok(true);
        }
        let now = Instant::now();
        let first_offset = self.offset_of(spans[0].0);
        let timed_out = matches!(self.event_since, Some((at, since)) if at == first_offset && now.duration_since(since) >= rule.timeout);
        let lines: Vec<&[u8]> = spans.iter().map(|&(s, e, _, _)| &self.buf[s..e]).collect();
        let g = multiline::group(rule, &lines, timed_out);
        // The open event's lines are framed again at the next look.
        self.scanned = self.pos;
        let open_at = g.open.map(|i| self.offset_of(spans[i].0));
        if self.event_since.map(|(at, _)| at) != open_at {
            self.event_since = open_at.map(|at| (at, now));
        }
        let Some(last) = g.events.last() else { return Ok(true) };
        let (first, consumed) = (self.pos, spans[last.last].2);
        let events: Vec<(usize, usize)> =
            g.events.iter().map(|e| (spans[e.first].0 - first, spans[e.last].1 - first)).collect();
        let (batch, dropped) =
            lane.batch(&self.buf[first..consumed], events, self.origin.clone(), self.offset_of(first));
        let n = batch.lines.len() as u64;
        let end_offset = self.offset_of(consumed);
        if !offer(ctx, batch, self.ack_to(end_offset, consumed), stop, patience)? {
            return Ok(false);
        }
        lane.stats.filtered.fetch_add(dropped, Ordering::Relaxed);
        self.pos = consumed;
        self.scanned = self.pos;
        lane.stats.lines.fetch_add(n, Ordering::Relaxed);
        lane.stats.bytes.fetch_add((consumed - first) as u64, Ordering::Relaxed);
        // Pieces of events cut at max_lines/max_bytes, and of lines over max_line_bytes.
        let split_lines = spans[..=last.last].iter().filter(|s| s.3).count() as u64;
        lane.stats.split.fetch_add(g.cut + split_lines, Ordering::Relaxed);
        Ok(true)
    }

    /// Ships what is left unsent as the last messages of the file: the complete lines a full
    /// sink left in the buffer, as a read ships them (the exactly_once soak, seed 17, had them go
    /// out joined in one message), then an unfinished last line (nothing more will complete it);
    /// with `multiline`, the open event (its lines joined by `\n`).
    pub fn ship_rest(&mut self, ctx: &TailCtx, lane: &Lane, stop: &AtomicBool) -> Result<(), Stopped> {
        if lane.multiline.is_none() {
            self.ship_lines(ctx, lane, stop, Duration::MAX)?;
        }
        if !self.has_unsent() {
            return Ok(());
        }
        let rest = &self.buf[self.pos..];
        let rest = if lane.multiline.is_some() { rest.strip_suffix(b"\n").unwrap_or(rest) } else { rest };
        let (batch, dropped) = lane.batch(rest, vec![(0, rest.len())], self.origin.clone(), self.offset_of(self.pos));
        ctx.sink.submit(batch, self.ack_to(self.read_offset, self.buf.len()), stop)?;
        lane.stats.lines.fetch_add(1 - dropped, Ordering::Relaxed);
        lane.stats.filtered.fetch_add(dropped, Ordering::Relaxed);
        self.pos = self.buf.len();
        Ok(())
    }
}

/// Offers a batch to the sink for `patience`: false when it had no room (nothing of the batch
/// stays in the sink).
fn offer(ctx: &TailCtx, batch: Batch, ack: AckTo, stop: &AtomicBool, patience: Duration) -> Result<bool, Stopped> {
    match ctx.sink.submit_within(batch, ack, stop, patience) {
        Ok(()) => Ok(true),
        Err(Held::Full) => Ok(false),
        Err(Held::Stopped) => Err(Stopped),
    }
}

/// The last bytes read from a file (`SEEN_BYTES` at most), ending at the reader's offset: kept
/// inline, as 1,000 parked tails keep theirs.
#[derive(Clone, Copy)]
struct Seen {
    buf: [u8; SEEN_BYTES],
    len: usize,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen { buf: [0; SEEN_BYTES], len: 0 }
    }
}

impl Seen {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// `read`: the bytes read next after these.
    fn push(&mut self, read: &[u8]) {
        if read.len() >= SEEN_BYTES {
            self.buf.copy_from_slice(&read[read.len() - SEEN_BYTES..]);
            self.len = SEEN_BYTES;
            return;
        }
        let keep = self.len.min(SEEN_BYTES - read.len());
        self.buf.copy_within(self.len - keep..self.len, 0);
        self.buf[keep..keep + read.len()].copy_from_slice(read);
        self.len = keep + read.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_keeps_the_last_bytes_read_whatever_the_reads_sizes() {
        let mut seen = Seen::default();
        let mut all = Vec::new();
        for (i, n) in [3, 1, 0, 70, 5, 64, 63, 2].into_iter().enumerate() {
            let read: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
            seen.push(&read);
            all.extend_from_slice(&read);
            assert_eq!(seen.bytes(), &all[all.len().saturating_sub(SEEN_BYTES)..], "after read {i} of {n} bytes");
        }
    }
}
