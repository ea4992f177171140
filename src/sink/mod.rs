//! The Kafka sink: one rdkafka producer, fed by one sending thread.
//!
//! Exists to turn "a line of a file" into "a message in a topic" with three promises:
//! - backpressure: tails hand over `Batch`es of lines through a bounded channel to the sending
//!   thread (`sender`), which alone calls librdkafka; when the producer's bounded queue is full
//!   the sender waits, the channel fills, and `submit` blocks the tails instead of growing memory;
//! - acknowledgement: a batch is registered once with its file's `AckTracker`, and each of its
//!   messages carries a clone of the batch's `BatchAck` token (an `Arc`: no allocation per
//!   message, measured as 12% of the sending thread's time when each carried a `Box`); the last
//!   delivery report of the batch acknowledges it, which is what checkpoints record;
//! - nothing dropped silently and nothing stalled by one message: every refusal, at `send` or in
//!   a delivery report, is judged by `refusal::classify`. A message the broker can never accept
//!   (too large) is given up with an error naming the topic, counted in `dropped`; any other
//!   refusal makes its topic wait and retry while other topics go on (`sender`).
//!
//! rdkafka with default features off: a synchronous `BaseProducer`, no tokio (see README,
//! "Why rdkafka"), polled for delivery reports by our own supervised thread. rdkafka's
//! `ThreadedProducer` polls in 100 ms slices, and its deadline is rounded down to whole
//! milliseconds, so the last millisecond of every slice spins on `clock_gettime`: 0.9% of a core
//! of an idle agent (measured with perf). Our thread waits `POLL_WAIT` at a time instead; a
//! delivery report still ends the wait at once.

pub mod positions;
pub mod refusal;
pub mod sender;
pub mod transaction;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::fingerprint::Fingerprint;
use crossbeam_channel::{bounded, unbounded, Receiver, SendTimeoutError, Sender};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedHeaders};
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use refusal::Refusal;

use crate::ack::AckTracker;
use crate::config::KafkaSettings;
use crate::envelope::Format;
use crate::labels::Fields;

/// What every message of a batch carries so that its delivery report can be credited to its
/// file: when the last of the batch's messages is delivered (or given up on as undeliverable),
/// the batch's registration with the tracker is acknowledged.
pub struct BatchAck {
    tracker: Arc<AckTracker>,
    seq: u64,
    /// The file offset just past the batch's last line (exactly-once commits it as a position).
    end: u64,
    remaining: AtomicUsize,
}

impl BatchAck {
    /// Registers `batch`'s lines with `ack.tracker` as one unit ending at `ack.end`.
    fn register(batch: &Batch, ack: AckTo) -> BatchAck {
        let seq = ack.tracker.register_near(ack.end, ack.near);
        BatchAck { tracker: ack.tracker, seq, end: ack.end, remaining: AtomicUsize::new(batch.lines.len()) }
    }

    /// Takes the registration back: the batch was not handed over after all.
    fn cancel(&self) {
        self.tracker.cancel_from(self.seq);
    }

    fn delivered(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.tracker.ack(self.seq);
        }
    }
}

/// `submit` gave up because the caller's stop flag was raised while the queue was full.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;

/// Why `submit_within` gave a batch back (nothing of it stays registered either way).
#[derive(Debug, PartialEq, Eq)]
pub enum Held {
    /// The caller's stop flag was raised while the outlet was full.
    Stopped,
    /// The outlet stayed full for the whole of the caller's patience.
    Full,
}

/// Where a batch's acknowledgement goes: its file's tracker, the file offset just past its last
/// line, and the fingerprint of the file's bytes just before that offset. The outlet registers
/// the batch with the tracker as it takes it, and takes the registration back if it gives the
/// batch up: the caller keeps no books of its own.
pub struct AckTo {
    pub tracker: Arc<AckTracker>,
    pub end: u64,
    pub near: Fingerprint,
}

/// Where a tail hands its batches: the Kafka `Sink`, or (in the tail's model tests) an
/// in-memory outlet. `submit` blocks while the outlet is full and gives the batch back when
/// `stop` is raised meanwhile; a batch is acknowledged on its tracker once delivered.
pub trait Outlet: Send + Sync {
    /// Takes `batch`, registered with `ack.tracker`, waiting at most `patience` for room; on
    /// `Held` nothing of it stays registered.
    fn submit_within(&self, batch: Batch, ack: AckTo, stop: &AtomicBool, patience: Duration) -> Result<(), Held>;

    /// Takes `batch`, waiting for room as long as it takes (or until `stop`).
    fn submit(&self, batch: Batch, ack: AckTo, stop: &AtomicBool) -> Result<(), Stopped> {
        self.submit_within(batch, ack, stop, Duration::MAX).map_err(|_| Stopped)
    }
}

impl Outlet for Sink {
    fn submit_within(&self, batch: Batch, ack: AckTo, stop: &AtomicBool, patience: Duration) -> Result<(), Held> {
        Sink::submit_within(self, batch, ack, stop, patience)
    }
}

/// Lines of one file read together, on their way to the sending thread (which registers it with
/// its file's tracker as it takes it: `AckTo`).
pub struct Batch {
    pub topic: Arc<str>,
    pub key: Option<Arc<[u8]>>,
    pub data: Vec<u8>,
    /// (start, end) of each line in `data`.
    pub lines: Vec<(usize, usize)>,
    /// Where and when the lines were read: the `path` and `offset` headers, and the envelope.
    pub origin: Option<Origin>,
    /// The payload of each message: the line, or the line in a JSON envelope (written by the
    /// sending thread). A message sent back for another try is `Raw`: its payload is final.
    pub format: Format,
    /// A failed message sent back for another try keeps the headers it had.
    pub headers: Option<OwnedHeaders>,
    /// The source's `fields`: headers with `raw`, the envelope's `labels` with `json`.
    pub fields: Option<Arc<Fields>>,
    /// With `encoding`, `data` holds the lines decoded: each line's offset in the file's bytes,
    /// from `origin.offset` (without it, a line's start in `data` is that offset).
    pub offsets: Option<Vec<u64>>,
}

/// The file a batch was read from, and the file offset of its `data[0]`: a line's `offset`
/// header is that plus the line's start in `data`. `read_ms`: when (Unix milliseconds).
#[derive(Debug, Clone)]
pub struct Origin {
    pub path: Arc<str>,
    pub offset: u64,
    pub read_ms: u64,
}

impl Batch {
    pub fn new(topic: Arc<str>, key: Option<Arc<[u8]>>) -> Batch {
        Batch {
            topic,
            key,
            data: Vec::new(),
            lines: Vec::new(),
            origin: None,
            format: Format::Raw,
            headers: None,
            fields: None,
            offsets: None,
        }
    }
    /// The batch's lines were read from `path` just now, `data[0]` at file offset `offset`.
    pub fn with_origin(mut self, path: Arc<str>, offset: u64) -> Batch {
        self.origin = Some(Origin { path, offset, read_ms: crate::timestamp::now_millis() });
        self
    }
    /// The batch's messages are shipped as `format` says.
    pub fn with_format(mut self, format: Format) -> Batch {
        self.format = format;
        self
    }
    pub fn push(&mut self, line: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.lines.push((start, self.data.len()));
    }
    /// A batch of lines already framed: `lines` are (start, end) spans of `data`.
    pub fn from_spans(topic: Arc<str>, key: Option<Arc<[u8]>>, data: Vec<u8>, lines: Vec<(usize, usize)>) -> Batch {
        debug_assert!(lines.iter().all(|&(s, e)| s <= e && e <= data.len()));
        Batch { topic, key, data, lines, origin: None, format: Format::Raw, headers: None, fields: None, offsets: None }
    }
    /// Each line's offset in the file from `origin.offset` (`data` is not the file's bytes).
    pub fn with_offsets(mut self, offsets: Option<Vec<u64>>) -> Batch {
        debug_assert!(offsets.as_ref().is_none_or(|o| o.len() == self.lines.len()));
        self.offsets = offsets;
        self
    }
    /// The file offset of line `i`'s first byte (the `offset` header, the envelope's).
    pub fn line_offset(&self, i: usize) -> u64 {
        let base = self.origin.as_ref().map_or(0, |o| o.offset);
        base + self.offsets.as_ref().map_or(self.lines[i].0 as u64, |o| o[i])
    }
    /// Takes line `i` out of the batch.
    pub fn remove_line(&mut self, i: usize) {
        self.lines.remove(i);
        if let Some(o) = &mut self.offsets {
            o.remove(i);
        }
    }
    /// The source's labels go with every message (none when `fields` is empty).
    pub fn with_fields(mut self, fields: Option<Arc<Fields>>) -> Batch {
        self.fields = fields.filter(|f| !f.is_empty());
        self
    }
    /// Whether a batch of `bytes` bytes in `lines` lines is to be handed over now.
    pub fn full_at(bytes: usize, lines: usize) -> bool {
        bytes >= BATCH_BYTES || lines >= BATCH_LINES
    }
}

/// A batch is handed over at this size (or line count) at the latest.
pub const BATCH_BYTES: usize = 256 * 1024;
pub const BATCH_LINES: usize = 4096;
/// Batches waiting for the sending thread, at most (with BATCH_BYTES: 16 MiB).
pub const BATCHES_QUEUED: usize = 64;

/// Counters of the producer, for logs and metrics.
#[derive(Default, Debug)]
pub struct SinkStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub retried: AtomicU64,
    pub dropped: AtomicU64,
    pub delivery_errors: AtomicU64,
    /// Lines shipped in the JSON envelope whose invalid UTF-8 was replaced.
    pub json_replaced: AtomicU64,
    /// `delivery: exactly_once`: transactions committed, and aborted (their lines sent again).
    pub txn_committed: AtomicU64,
    pub txn_aborted: AtomicU64,
    /// `delivery: exactly_once`: producers made anew after the broker aborted a transaction for
    /// its timeout (and fenced the producer that had it open).
    pub txn_renewed: AtomicU64,
    /// Set when librdkafka reports every broker down; cleared by the next delivery.
    pub brokers_down: AtomicBool,
    /// The client's last error (a TLS handshake, an authentication, a connection refused),
    /// naming the broker; cleared by the next delivery. For `status` and the metrics file.
    pub last_error: Mutex<Option<String>>,
    /// `last_error` is set: checked (one atomic load) before the lock on every delivery.
    pub error_set: AtomicBool,
    /// Topics whose messages wait because the broker refused one (unknown topic, ...).
    pub topics_waiting: AtomicU64,
}

/// Lines on their way into librdkafka: a batch, how many of its lines were handed over, and
/// the token its messages carry.
pub struct Outgoing {
    pub batch: Batch,
    pub next: usize,
    pub token: Arc<BatchAck>,
}

/// The same warning is logged at most this often.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// A warning logged once per `WARN_EVERY` while its text stays the same.
#[derive(Default)]
pub struct LimitedLog {
    last: Mutex<Option<(String, Instant)>>,
}

impl LimitedLog {
    pub fn warn(&self, text: String) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match &*last {
            Some((prev, at)) => *prev != text || at.elapsed() >= WARN_EVERY,
            None => true,
        };
        if fresh {
            log::warn!("{text}");
            *last = Some((text, Instant::now()));
        }
    }
}

/// What the sink's handle, the sending thread and the delivery callback share.
#[derive(Default)]
pub struct Shared {
    pub stats: Arc<SinkStats>,
    /// Batches (and failed messages sent back) not yet wholly handed to librdkafka.
    pub queued: AtomicUsize,
    /// Batches waiting per parked topic (see `sender`); `submit` holds a topic's tails back at
    /// `PARKED_PER_TOPIC`. A count kept beside the sender's queues rather than derived from
    /// them: the sender holds its state's lock while it produces, and `submit` must not wait on it.
    parked: Mutex<HashMap<Arc<str>, usize>>,
    /// Signalled when a topic's waiting batches go down: `submit`s held back wake at once.
    unparked: std::sync::Condvar,
    pub log: LimitedLog,
    /// Which headers every message carries, and the `host` one's value.
    pub headers: crate::config::Headers,
    pub host: Arc<str>,
    /// `delivery: exactly_once`: a batch is acknowledged when its transaction commits, not by
    /// delivery reports.
    pub transactional: bool,
    /// `delivery: exactly_once`: what failed in the open transaction, for its abort.
    pub txn_failures: Mutex<transaction::Failures>,
    /// Rung when the channel to the sending thread is half full: it stops letting batches
    /// gather (`sender::SEND_GATHER`) and takes them, before a caller with no patience for a
    /// full channel (the looker) has to hand its file to a thread.
    pub half_full: crate::waker::Doorbell,
}

/// Batches of one waiting topic held by the sender before that topic's tails are held back:
/// with BATCH_BYTES, 1 MiB per waiting topic.
pub const PARKED_PER_TOPIC: usize = 4;
/// How often a `submit` held back looks at its stop flag (the topic's room wakes it at once).
const STOP_LOOK: Duration = Duration::from_millis(500);

impl Shared {
    fn parked_lock(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, usize>> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds `delta` to the batches waiting for `topic`.
    pub fn parked_changed(&self, topic: &Arc<str>, delta: isize) {
        let mut m = self.parked_lock();
        let n = m.entry(topic.clone()).or_insert(0);
        *n = n.saturating_add_signed(delta);
        if *n == 0 {
            m.remove(topic);
        }
        self.stats.topics_waiting.store(m.len() as u64, Ordering::Relaxed);
        if delta < 0 {
            self.unparked.notify_all();
        }
    }

    /// Waits while `topic` has `PARKED_PER_TOPIC` batches waiting, until `stop` is raised or
    /// `deadline` (None: no end). Woken by the sender as the topic's batches go (a held-back tail
    /// goes on at once), and every `STOP_LOOK` to look at `stop`.
    fn wait_for_room(&self, topic: &str, stop: &AtomicBool, deadline: Option<Instant>) -> Result<(), Held> {
        let mut m = self.parked_lock();
        while m.get(topic).copied().unwrap_or(0) >= PARKED_PER_TOPIC {
            if stop.load(Ordering::Relaxed) {
                return Err(Held::Stopped);
            }
            let wait = match deadline {
                Some(d) if Instant::now() >= d => return Err(Held::Full),
                Some(d) => d.saturating_duration_since(Instant::now()).min(STOP_LOOK),
                None => STOP_LOOK,
            };
            m = self.unparked.wait_timeout(m, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(())
    }
}

/// The producer context: receives delivery reports on our polling thread.
pub struct Context {
    shared: Arc<Shared>,
    refused_tx: Sender<sender::Refused>,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        let text = format!("kafka: {error}: {reason}");
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            // A consequence: the error that says why (a TLS handshake, a refused password) is
            // the one kept for `status`.
            self.shared.stats.brokers_down.store(true, Ordering::Relaxed);
        } else {
            *self.shared.stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(text.clone());
            self.shared.stats.error_set.store(true, Ordering::Relaxed);
        }
        self.shared.log.warn(text);
    }
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, token: Arc<BatchAck>) {
        let stats = &self.shared.stats;
        let (err, msg) = match result {
            Ok(_) => {
                stats.acked.fetch_add(1, Ordering::Relaxed);
                stats.brokers_down.store(false, Ordering::Relaxed);
                if stats.error_set.load(Ordering::Relaxed) && stats.error_set.swap(false, Ordering::Relaxed) {
                    *stats.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                }
                if !self.shared.transactional {
                    token.delivered();
                }
                return;
            }
            Err(e) => e,
        };
        if self.shared.transactional {
            // The commit fails for it; the abort looks at what failed (transaction.rs).
            stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
            self.shared.log.warn(format!("kafka: a message of a transaction to {} failed: {}", msg.topic(), err));
            let batch = Arc::as_ptr(&token) as usize;
            let payload = msg.payload().unwrap_or_default();
            transaction::note_failure(&self.shared.txn_failures, msg.topic(), batch, payload, err);
            return;
        }
        stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
        let payload = msg.payload().unwrap_or_default();
        if refusal::classify_error(err) == Refusal::Permanent {
            sender::give_up(&self.shared, msg.topic(), payload.len(), err);
            token.delivered();
            return;
        }
        // Sent back to the sending thread, which parks the topic and sends it again. Counted as
        // queued before the report is done, so `pending` never misses it.
        stats.retried.fetch_add(1, Ordering::Relaxed);
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let mut batch = Batch::new(Arc::from(msg.topic()), msg.key().map(Arc::from));
        batch.push(payload);
        batch.headers = msg.headers().map(|h| h.detach());
        let out = Outgoing { batch, next: 0, token };
        let _ = self.refused_tx.send(sender::Refused { out, cause: err.to_string() });
    }
}

pub type KafkaProducer = BaseProducer<Context>;

/// How long one poll for delivery reports waits when none comes (a report ends it at once).
const POLL_WAIT: Duration = Duration::from_secs(10);

/// Why the producer could not be made.
#[derive(Debug)]
pub enum SinkError {
    /// librdkafka refused a property (named in the text).
    Settings(String),
}

impl std::fmt::Display for SinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkError::Settings(e) => write!(f, "kafkaconfig: the Kafka producer refused its settings: {e}"),
        }
    }
}

impl std::error::Error for SinkError {}

/// The producer every thread of the sink uses, which can be made anew: librdkafka makes a
/// transactional producer fenced by the broker's abort of a transaction left open past
/// `transaction.timeout.ms` unusable for good, yet nothing else claimed its transactional id,
/// and the batches of that transaction are still kept (`transaction`): a new producer with the
/// same settings goes on with them. Threads take the current producer at each turn of their
/// loop. Replacing it keeps the agent, and the files its tails hold open, running: a restart
/// would let go of generations already deleted (soak seed 11: 1,569 lines of generations
/// logrotate deleted while the agent was held back were lost across a restart).
pub struct ProducerSlot {
    current: RwLock<Arc<KafkaProducer>>,
    config: ClientConfig,
    shared: Arc<Shared>,
    refused_tx: Sender<sender::Refused>,
}

impl ProducerSlot {
    fn new(config: ClientConfig, shared: Arc<Shared>, refused_tx: Sender<sender::Refused>) -> Result<Self, SinkError> {
        let first = Self::make(&config, &shared, &refused_tx)?;
        Ok(ProducerSlot { current: RwLock::new(Arc::new(first)), config, shared, refused_tx })
    }

    fn make(
        config: &ClientConfig,
        shared: &Arc<Shared>,
        refused_tx: &Sender<sender::Refused>,
    ) -> Result<KafkaProducer, SinkError> {
        let ctx = Context { shared: shared.clone(), refused_tx: refused_tx.clone() };
        config.create_with_context(ctx).map_err(|e| SinkError::Settings(e.to_string()))
    }

    /// The producer to use now.
    pub fn current(&self) -> Arc<KafkaProducer> {
        // A swap of one Arc cannot be left half-made by a panic.
        self.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Makes a new producer with the same settings and puts it in place of the current one, which
    /// is dropped once the threads holding it let go (the polling thread within `POLL_WAIT`).
    pub fn renew(&self) -> Result<Arc<KafkaProducer>, SinkError> {
        let new = Arc::new(Self::make(&self.config, &self.shared, &self.refused_tx)?);
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = new.clone();
        Ok(new)
    }
}

/// The shared producer.
pub struct Sink {
    producer: Arc<ProducerSlot>,
    pub stats: Arc<SinkStats>,
    shared: Arc<Shared>,
    batches: Sender<Outgoing>,
    batches_rx: Receiver<Outgoing>,
    refused_rx: Receiver<sender::Refused>,
    state: Arc<Mutex<sender::SenderState>>,
    /// `delivery: exactly_once`: the transactional sender's state.
    txn_state: Arc<Mutex<transaction::TxnState>>,
}

impl Sink {
    /// Creates the producer. Fails on a property librdkafka rejects (named in the error).
    /// The sending and polling threads are started by the caller, under the supervisor.
    /// `host`: the `host` header's value.
    pub fn new(settings: &KafkaSettings, host: &str) -> Result<Sink, SinkError> {
        let mut cc = ClientConfig::new();
        for (k, v) in &settings.properties {
            cc.set(k, v);
        }
        for (k, v) in &settings.secrets {
            cc.set(k, v.expose());
        }
        let shared = Arc::new(Shared {
            headers: settings.headers,
            host: host.into(),
            transactional: settings.exactly_once.is_some(),
            ..Shared::default()
        });
        let (refused_tx, refused_rx) = unbounded();
        let producer = ProducerSlot::new(cc, shared.clone(), refused_tx)?;
        let (batches, batches_rx) = bounded(BATCHES_QUEUED);
        Ok(Sink {
            producer: Arc::new(producer),
            stats: shared.stats.clone(),
            shared,
            batches,
            batches_rx,
            refused_rx,
            state: Arc::default(),
            txn_state: Arc::default(),
        })
    }

    /// `delivery: exactly_once`: registers the transactional id with the broker, which fences
    /// any earlier producer with the same id and aborts its open transaction. Done before the
    /// committed positions are read (what the fenced one left open is then settled).
    pub fn init_transactions(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.current().init_transactions(timeout)
    }

    /// The transactional sending thread's body, for the supervisor (`delivery: exactly_once`).
    pub fn transactional_worker(&self, txn: Arc<transaction::Transactions>) -> crate::supervisor::WorkerFn {
        let (producer, batches, state, shared) =
            (self.producer.clone(), self.batches_rx.clone(), self.txn_state.clone(), self.shared.clone());
        Arc::new(move || transaction::run_transactional(&producer, &batches, &state, &shared, &txn))
    }

    /// The polling thread's body, for the supervisor: serves delivery reports (and client
    /// errors) as they come.
    pub fn poll_worker(&self) -> crate::supervisor::WorkerFn {
        let slot = self.producer.clone();
        Arc::new(move || loop {
            slot.current().poll(POLL_WAIT);
        })
    }

    /// The sending thread's body, for the supervisor.
    pub fn sender_worker(&self) -> crate::supervisor::WorkerFn {
        let (producer, batches, refused, state, shared) = (
            self.producer.clone(),
            self.batches_rx.clone(),
            self.refused_rx.clone(),
            self.state.clone(),
            self.shared.clone(),
        );
        // At-least-once never makes a new producer: the one current at the start is the one.
        Arc::new(move || sender::run_sender(&producer.current(), &batches, &refused, &state, &shared))
    }

    /// Hands a batch to the sending thread, registered with `ack.tracker` as it is taken,
    /// waiting (up to `patience`) while the channel is full or while its topic already has
    /// `PARKED_PER_TOPIC` batches waiting. On `Held` (the caller's `stop` raised, or its patience
    /// spent) nothing of the batch stays registered.
    pub fn submit_within(&self, batch: Batch, ack: AckTo, stop: &AtomicBool, patience: Duration) -> Result<(), Held> {
        if batch.lines.is_empty() && !self.shared.transactional {
            // Every line filtered out: nothing to send, acknowledged at once (its tracker moves
            // past it once the batches before it are). In exactly_once it goes through the
            // transaction, so that its position is committed like any other.
            let token = BatchAck::register(&batch, ack);
            token.tracker.ack(token.seq);
            return Ok(());
        }
        let deadline = Instant::now().checked_add(patience);
        self.shared.wait_for_room(&batch.topic, stop, deadline)?;
        self.shared.queued.fetch_add(1, Ordering::SeqCst);
        let token = Arc::new(BatchAck::register(&batch, ack));
        let mut out = Outgoing { batch, next: 0, token };
        loop {
            // A caller with no patience (the looker of parked tails) is not held for a full
            // channel either: it hands the file to a thread of its own, which waits.
            match self.batches.send_timeout(out, Duration::from_millis(50).min(patience)) {
                Ok(()) => {
                    if self.batches.len() >= BATCHES_QUEUED / 2 {
                        self.shared.half_full.ring_once();
                    }
                    return Ok(());
                }
                Err(SendTimeoutError::Timeout(o)) | Err(SendTimeoutError::Disconnected(o)) => {
                    let held = if stop.load(Ordering::Relaxed) {
                        Held::Stopped
                    } else if deadline.is_some_and(|d| Instant::now() >= d) {
                        Held::Full
                    } else {
                        out = o;
                        continue;
                    };
                    self.shared.queued.fetch_sub(1, Ordering::SeqCst);
                    o.token.cancel();
                    return Err(held);
                }
            }
        }
    }

    /// Messages handed to librdkafka and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.current().in_flight_count()
    }

    /// What is still owed: messages in flight in librdkafka, plus batches (and failed messages
    /// sent back for another try, and the batches of waiting topics) not yet handed over.
    pub fn pending(&self) -> usize {
        self.in_flight().max(0) as usize + self.shared.queued.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` for every submitted line to be delivered; true when none is left.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let _ = self.producer.current().flush(Duration::from_millis(100));
            if self.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink() -> Sink {
        let cfg = crate::config::Config::parse(
            "kafkaconfig: {kafkaaddr: \"127.0.0.1:9\"}\ncollectlogs: []\n",
            std::path::Path::new("/c.yaml"),
        )
        .unwrap();
        Sink::new(&cfg.kafka, "h").unwrap()
    }

    fn batch(line: &[u8]) -> Batch {
        let mut b = Batch::new(Arc::from("t"), None);
        b.push(line);
        b
    }

    /// The outlet keeps the books: a batch it takes is registered with its tracker, one it gives
    /// up on (the caller stopping while the queue is full) leaves nothing registered.
    #[test]
    fn a_stopped_submit_leaves_nothing_registered() {
        let sink = sink(); // no sending thread: the queue fills
        let tracker = Arc::new(AckTracker::new(0));
        let go = AtomicBool::new(false);
        for i in 0..BATCHES_QUEUED as u64 {
            let ack = AckTo { tracker: tracker.clone(), end: (i + 1) * 2, near: Fingerprint::default() };
            assert_eq!(sink.submit(batch(b"x"), ack, &go), Ok(()));
        }
        assert_eq!((tracker.in_flight(), tracker.sent()), (BATCHES_QUEUED, 2 * BATCHES_QUEUED as u64));
        let stop = AtomicBool::new(true);
        let ack = AckTo { tracker: tracker.clone(), end: 1000, near: Fingerprint::default() };
        assert_eq!(sink.submit(batch(b"late"), ack, &stop), Err(Stopped));
        assert_eq!((tracker.in_flight(), tracker.sent()), (BATCHES_QUEUED, 2 * BATCHES_QUEUED as u64));
        assert_eq!(sink.shared.queued.load(Ordering::SeqCst), BATCHES_QUEUED);
        // A patience spent gives it back the same way, and says so.
        let ack = AckTo { tracker: tracker.clone(), end: 1000, near: Fingerprint::default() };
        let full = sink.submit_within(batch(b"late"), ack, &go, Duration::from_millis(60));
        assert_eq!(full, Err(Held::Full));
        assert_eq!((tracker.in_flight(), tracker.sent()), (BATCHES_QUEUED, 2 * BATCHES_QUEUED as u64));
        assert_eq!(sink.shared.queued.load(Ordering::SeqCst), BATCHES_QUEUED);
    }
}
