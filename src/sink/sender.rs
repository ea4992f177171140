//! The sending thread: the only caller of librdkafka's `send`.
//!
//! Exists so that one refused message never holds up another file. A hundred threads producing
//! at once contend on librdkafka's topic lock, so one thread sends for every tail; that made it
//! a single point where one stuck message stalled everything (issue 18). Now:
//! - a message refused for good (`Refusal::Permanent`) is given up at once, with an error;
//! - a message refused for a reason that can pass parks its *topic*: that batch, and every later
//!   batch of the same topic, wait in order in `SenderState::parked` and are tried again every
//!   `RETRY_AFTER`; batches of other topics go on. The tails of a parked topic are held back in
//!   `Sink::submit` once `PARKED_PER_TOPIC` of its batches wait, so memory stays bounded;
//! - a message that failed in its delivery report comes back on the retries channel and parks
//!   its topic the same way, on this supervised thread.
//!
//! Everything the loop needs to go on after a panic lives in `SenderState`, outside the thread.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, TryRecvError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::BaseRecord;

use super::refusal::{classify_error, Refusal, Waiting};
use super::{Batch, BatchAck, KafkaProducer, Outgoing, Shared};
use crate::envelope::{self, Format};
use crate::timestamp;

/// How long a parked topic waits before its first waiting message is tried again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The longest sleep of the sending thread while librdkafka's queue is full.
const QUEUE_FULL_MAX_WAIT: Duration = Duration::from_millis(1);
/// Once the channel runs dry after a batch, the sending thread lets the next ones gather this
/// long before it sleeps on the channel. Waiting on the channel at once, it was woken for every
/// batch: 100 files written every 10 ms (10,000 batches a second, the looker handing them over
/// one by one) woke it 5,093 times a second, and the handover (the tail's `futex` wake, the
/// channel's registration and the switches) was a quarter of the agent's CPU (perf). librdkafka
/// lingers 5 ms (`linger`) before it sends anyway; this adds at most 1 ms to a line. A channel
/// half full ends the wait (`Shared::half_full`).
pub(super) const SEND_GATHER: Duration = Duration::from_millis(1);

/// A message that librdkafka failed in its delivery report, for a reason that can pass.
pub struct Refused {
    pub out: Outgoing,
    pub cause: String,
}

/// A topic whose messages wait: its batches in order, and when to try the first again.
struct Parked {
    queue: VecDeque<Outgoing>,
    retry_at: Instant,
}

/// What the sending thread keeps outside itself, so a restarted sender goes on where a panicked
/// one stopped.
#[derive(Default)]
pub struct SenderState {
    in_hand: Option<Outgoing>,
    parked: BTreeMap<Arc<str>, Parked>,
}

impl SenderState {
    /// When the next parked topic is due.
    fn next_retry(&self) -> Option<Instant> {
        self.parked.values().map(|p| p.retry_at).min()
    }

    /// Puts `out` at the back of its topic's waiting line (parking the topic if it was not).
    fn park(&mut self, out: Outgoing, cause: Option<String>, shared: &Shared) {
        let topic = out.batch.topic.clone();
        if let Some(cause) = cause {
            shared.log.warn(Waiting { topic: topic.to_string(), cause }.to_string());
        }
        let p = self
            .parked
            .entry(topic.clone())
            .or_insert_with(|| Parked { queue: VecDeque::new(), retry_at: Instant::now() + RETRY_AFTER });
        p.queue.push_back(out);
        shared.parked_changed(&topic, 1);
    }

    /// Tries again every parked topic that is due, each from its first waiting batch.
    fn retry_due(&mut self, producer: &KafkaProducer, shared: &Shared) {
        if self.parked.is_empty() {
            return; // the common case: no clock read per batch
        }
        let now = Instant::now();
        let due: Vec<Arc<str>> =
            self.parked.iter().filter(|(_, p)| p.retry_at <= now).map(|(t, _)| t.clone()).collect();
        for topic in due {
            let p = self.parked.get_mut(&topic).expect("a due topic is parked");
            while let Some(front) = p.queue.front_mut() {
                match produce_lines(producer, front, shared) {
                    Ok(()) => {
                        p.queue.pop_front();
                        shared.queued.fetch_sub(1, Ordering::SeqCst);
                        shared.parked_changed(&topic, -1);
                    }
                    Err(e) => {
                        shared.log.warn(Waiting { topic: topic.to_string(), cause: e.to_string() }.to_string());
                        p.retry_at = Instant::now() + RETRY_AFTER;
                        break;
                    }
                }
            }
            if p.queue.is_empty() {
                self.parked.remove(&topic);
                log::info!("kafka: topic {topic} accepts messages again; its files go on");
            }
        }
    }
}

/// What arrives for the sending thread next.
enum Next {
    Out(Outgoing),
    Refused(Refused),
    /// Nothing before the next parked topic is due.
    Due,
    /// The sink is gone.
    Closed,
}

fn lock(state: &Mutex<SenderState>) -> MutexGuard<'_, SenderState> {
    // Every change to the state is a move of one value; a panic cannot leave it half-made.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// What is waiting for the sending thread now, if anything.
fn try_next(batches: &Receiver<Outgoing>, refused: &Receiver<Refused>) -> Option<Next> {
    match refused.try_recv() {
        Ok(r) => return Some(Next::Refused(r)),
        Err(TryRecvError::Disconnected) => return Some(Next::Closed),
        Err(TryRecvError::Empty) => {}
    }
    match batches.try_recv() {
        Ok(b) => Some(Next::Out(b)),
        Err(TryRecvError::Disconnected) => Some(Next::Closed),
        Err(TryRecvError::Empty) => None,
    }
}

fn next(batches: &Receiver<Outgoing>, refused: &Receiver<Refused>, until: Option<Instant>) -> Next {
    let wait = until.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
    select! {
        recv(refused) -> r => r.map_or(Next::Closed, Next::Refused),
        recv(batches) -> b => b.map_or(Next::Closed, Next::Out),
        default(wait) => Next::Due,
    }
}

/// The sending thread's loop: produces batches in the order they came, topic by topic; a topic
/// that refuses waits aside while the others go on.
pub fn run_sender(
    producer: &KafkaProducer,
    batches: &Receiver<Outgoing>,
    refused: &Receiver<Refused>,
    state: &Mutex<SenderState>,
    shared: &Shared,
) {
    // A batch came since the thread last let batches gather (`SEND_GATHER`).
    let mut came = false;
    loop {
        let mut st = lock(state);
        st.retry_due(producer, shared);
        if st.in_hand.is_none() {
            let until = st.next_retry();
            drop(st);
            let got = match try_next(batches, refused) {
                Some(got) => got,
                None if came => {
                    came = false;
                    shared.half_full.wait(SEND_GATHER);
                    continue;
                }
                None => next(batches, refused, until),
            };
            came = true;
            st = lock(state);
            match got {
                Next::Out(out) => st.in_hand = Some(out),
                Next::Refused(r) => st.park(r.out, Some(r.cause), shared),
                Next::Due => {}
                Next::Closed => return,
            }
            continue;
        }
        let topic = st.in_hand.as_ref().expect("a batch in hand").batch.topic.clone();
        if st.parked.contains_key(&topic) {
            // Later batches of a waiting topic wait behind it: a file's lines keep their order.
            let out = st.in_hand.take().expect("a batch in hand");
            st.park(out, None, shared);
            continue;
        }
        match produce_lines(producer, st.in_hand.as_mut().expect("a batch in hand"), shared) {
            Ok(()) => {
                st.in_hand = None;
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            Err(e) => {
                let out = st.in_hand.take().expect("a batch in hand");
                st.park(out, Some(e.to_string()), shared);
            }
        }
    }
}

/// Hands the lines of `out` to librdkafka from `out.next` on. A line refused for good is given up
/// (and counts as delivered for its batch); a refusal that can pass stops here and returns its
/// cause, with `out.next` at the refused line.
pub(super) fn produce_lines(producer: &KafkaProducer, out: &mut Outgoing, shared: &Shared) -> Result<(), KafkaError> {
    // The JSON envelope's pieces shared by the batch's lines, and its buffer (reused per line).
    let json = match (&out.batch.format, &out.batch.origin) {
        (Format::Json, Some(origin)) => Some((timestamp::rfc3339_millis(origin.read_ms), origin.clone())),
        _ => None,
    };
    let mut envelope_buf = Vec::new();
    while out.next < out.batch.lines.len() {
        let (start, end) = out.batch.lines[out.next];
        let line = &out.batch.data[start..end];
        let payload = match &json {
            Some((timestamp, origin)) => {
                let ctx = envelope::Context {
                    timestamp,
                    host: &shared.host,
                    path: &origin.path,
                    labels: out.batch.fields.as_deref(),
                };
                if envelope::write(&mut envelope_buf, &ctx, out.batch.line_offset(out.next), line) {
                    shared.stats.json_replaced.fetch_add(1, Ordering::Relaxed);
                }
                &envelope_buf[..]
            }
            _ => line,
        };
        let mut record = BaseRecord::with_opaque_to(&out.batch.topic, out.token.clone()).payload(payload);
        if let Some(k) = &out.batch.key {
            record = record.key(&**k);
        }
        if let Some(h) = headers(&out.batch, out.next, shared) {
            record = record.headers(h);
        }
        match send_when_room(producer, record) {
            Ok(()) => {
                shared.stats.sent.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) if classify_error(&e) == Refusal::Permanent => {
                give_up(shared, &out.batch.topic, end - start, &e);
                out.token.delivered();
            }
            Err(e) => return Err(e),
        }
        out.next += 1;
    }
    Ok(())
}

/// The payload of line `i` of `batch` as `produce_lines` makes it: the line, or its JSON
/// envelope (written into `buf`). Asked only to find a message that failed (a transaction's
/// message refused for good is taken out of its batch).
pub(super) fn payload_of<'a>(batch: &'a Batch, i: usize, shared: &Shared, buf: &'a mut Vec<u8>) -> &'a [u8] {
    let (start, end) = batch.lines[i];
    let line = &batch.data[start..end];
    match (&batch.format, &batch.origin) {
        (Format::Json, Some(origin)) => {
            let timestamp = timestamp::rfc3339_millis(origin.read_ms);
            let ctx = envelope::Context {
                timestamp: &timestamp,
                host: &shared.host,
                path: &origin.path,
                labels: batch.fields.as_deref(),
            };
            envelope::write(buf, &ctx, batch.line_offset(i), line);
            &buf[..]
        }
        _ => line,
    }
}

/// The headers of line `i` of the batch (`kafkaconfig.headers`):
/// `host`, `path` (the file read) and `offset` (of the line's first byte in it, in decimal);
/// then the source's `fields` with `format: raw`.
fn headers(batch: &Batch, i: usize, shared: &Shared) -> Option<OwnedHeaders> {
    if let Some(h) = &batch.headers {
        return Some(h.clone()); // a message sent again keeps its own
    }
    let set = shared.headers;
    let labels = match (&batch.fields, batch.format) {
        (Some(f), Format::Raw) => &f.0[..],
        _ => &[], // with json they are in the envelope
    };
    if !set.any() && labels.is_empty() {
        return None;
    }
    let mut h = OwnedHeaders::new_with_capacity(3 + labels.len());
    if set.host {
        h = h.insert(Header { key: "host", value: Some(&*shared.host) });
    }
    if let Some(origin) = &batch.origin {
        if set.path {
            h = h.insert(Header { key: "path", value: Some(&*origin.path) });
        }
        if set.offset {
            let mut buf = [0u8; 20];
            h = h.insert(Header { key: "offset", value: Some(decimal(batch.line_offset(i), &mut buf)) });
        }
    }
    for (name, value) in labels {
        h = h.insert(Header { key: name, value: Some(value.as_bytes()) });
    }
    Some(h)
}

/// `n` in decimal, written into `buf` (no allocation per message).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Logs and counts a message that can never be delivered.
pub fn give_up(shared: &Shared, topic: &str, bytes: usize, e: &dyn std::fmt::Display) {
    shared.stats.dropped.fetch_add(1, Ordering::Relaxed);
    log::error!(
        "kafka: a {bytes}-byte message to topic {topic} can never be delivered ({e}); it is given up \
         (logcatch_producer_dropped_total; see README, \"Lines Kafka refuses\")"
    );
}

/// `send`, waiting while librdkafka's queue is full (backing off 0.2 to 1 ms: the queue frees
/// space in chunks, one produce request's acknowledgements at a time, and a longer sleep leaves
/// the broker connection idle). Any other refusal is returned.
pub(super) fn send_when_room(
    producer: &KafkaProducer,
    mut record: BaseRecord<'_, [u8], [u8], Arc<BatchAck>>,
) -> Result<(), KafkaError> {
    let mut wait = Duration::from_micros(200);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(wait);
                wait = (wait * 2).min(QUEUE_FULL_MAX_WAIT);
            }
            Err((e, _)) => return Err(e),
        }
    }
}
