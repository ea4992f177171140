//! The Kafka sink: one rdkafka producer, fed by one sending thread.
//!
//! Exists to turn "a line of a file" into "a message in a topic" with three promises:
//! - backpressure: tails hand over `Batch`es of lines through a bounded channel to the sending
//!   thread, which alone calls librdkafka (a hundred threads producing at once contend on
//!   librdkafka's topic lock); when the producer's bounded queue is full the sender waits, the
//!   channel fills, and `submit` blocks the tails instead of growing memory;
//! - acknowledgement: a batch is registered once with its file's `AckTracker`, and each of its
//!   messages carries a clone of the batch's `BatchAck` token (an `Arc`: no allocation per
//!   message, measured as 12% of the sending thread's time when each carried a `Box`); the last
//!   delivery report of the batch acknowledges it, which is what checkpoints record;
//! - nothing dropped silently: a message that fails for a reason that can pass (unknown topic,
//!   broker errors) is logged and sent again after a pause; only a message the broker can never
//!   accept (too large) is given up on, with an error naming the topic, counted in `dropped`.
//!
//! rdkafka with default features off: a synchronous `BaseProducer`, no tokio (see README,
//! "Why rdkafka"), polled for delivery reports by our own supervised thread. rdkafka's
//! `ThreadedProducer` polls in 100 ms slices, and its deadline is rounded down to whole
//! milliseconds, so the last millisecond of every slice spins on `clock_gettime`: 0.9% of a core
//! of an idle agent (measured with perf). Our thread waits `POLL_WAIT` at a time instead; a
//! delivery report still ends the wait at once.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Receiver, SendTimeoutError, Sender};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use crate::ack::AckTracker;
use crate::config::KafkaSettings;

/// What every message of a batch carries so that its delivery report can be credited to its
/// file: when the last of the batch's messages is delivered (or given up on as undeliverable),
/// the batch's registration with the tracker is acknowledged.
pub struct BatchAck {
    tracker: Arc<AckTracker>,
    seq: u64,
    remaining: AtomicUsize,
}

impl BatchAck {
    fn new(batch: &Batch) -> BatchAck {
        BatchAck { tracker: batch.tracker.clone(), seq: batch.seq, remaining: AtomicUsize::new(batch.lines.len()) }
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

/// Lines of one file read together, on their way to the sending thread. Before it is handed
/// over, the batch is registered with `tracker` as one unit ending at the end of its last line.
pub struct Batch {
    pub topic: Arc<str>,
    pub key: Option<Arc<[u8]>>,
    pub tracker: Arc<AckTracker>,
    pub data: Vec<u8>,
    /// (start, end) of each line in `data`.
    pub lines: Vec<(usize, usize)>,
    /// The batch's sequence number with `tracker` (set by `register`).
    pub seq: u64,
}

impl Batch {
    pub fn new(topic: Arc<str>, key: Option<Arc<[u8]>>, tracker: Arc<AckTracker>) -> Batch {
        Batch { topic, key, tracker, data: Vec::new(), lines: Vec::new(), seq: 0 }
    }
    pub fn push(&mut self, line: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(line);
        self.lines.push((start, self.data.len()));
    }
    /// Registers the batch with its tracker: its last line ends at file offset `end`.
    pub fn register(&mut self, end: u64) {
        self.seq = self.tracker.register(end);
    }
    pub fn full(&self) -> bool {
        self.data.len() >= BATCH_BYTES || self.lines.len() >= BATCH_LINES
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
    /// Set when librdkafka reports every broker down; cleared by the next delivery.
    pub brokers_down: AtomicBool,
}

/// A message whose delivery failed and that will be sent again.
struct Retry {
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
    delivery: Arc<BatchAck>,
    at: Instant,
}

/// The producer context: receives delivery reports on librdkafka's polling thread.
pub struct Context {
    stats: Arc<SinkStats>,
    retry_tx: Sender<Retry>,
    last_error: Mutex<Option<(String, Instant)>>,
}

/// How long to wait before sending a failed message again.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// The same client error is logged at most this often.
const ERROR_LOG_EVERY: Duration = Duration::from_secs(30);

impl Context {
    fn log_limited(&self, text: String) {
        let mut last = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = match &*last {
            Some((prev, at)) => *prev != text || at.elapsed() >= ERROR_LOG_EVERY,
            None => true,
        };
        if fresh {
            log::warn!("{text}");
            *last = Some((text, Instant::now()));
        }
    }
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown) {
            self.stats.brokers_down.store(true, Ordering::Relaxed);
        }
        self.log_limited(format!("kafka: {error}: {reason}"));
    }
}

/// Errors after which sending the same bytes again cannot succeed.
fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::InvalidMessageSize | RDKafkaErrorCode::InvalidMessage
    )
}

impl ProducerContext for Context {
    type DeliveryOpaque = Arc<BatchAck>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Arc<BatchAck>) {
        match result {
            Ok(_) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                self.stats.brokers_down.store(false, Ordering::Relaxed);
                delivery.delivered();
            }
            Err((err, msg)) => {
                self.stats.delivery_errors.fetch_add(1, Ordering::Relaxed);
                let code = err.rdkafka_error_code();
                if code.is_some_and(is_permanent) {
                    self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                    log::error!(
                        "kafka: a {}-byte message to topic {} can never be delivered ({err}); it is skipped",
                        msg.payload().map_or(0, |p| p.len()),
                        msg.topic()
                    );
                    delivery.delivered();
                    return;
                }
                self.log_limited(format!(
                    "kafka: delivery to topic {} failed ({err}); retrying every {RETRY_AFTER:?}",
                    msg.topic()
                ));
                self.stats.retried.fetch_add(1, Ordering::Relaxed);
                let _ = self.retry_tx.send(Retry {
                    topic: msg.topic().to_string(),
                    key: msg.key().map(<[u8]>::to_vec),
                    payload: msg.payload().unwrap_or_default().to_vec(),
                    delivery,
                    at: Instant::now() + RETRY_AFTER,
                });
            }
        }
    }
}

pub type KafkaProducer = BaseProducer<Context>;

/// A batch being produced: the next line to produce, and the token its messages carry.
type InHand = (Batch, usize, Arc<BatchAck>);

/// The longest sleep of the sending thread while librdkafka's queue is full.
const QUEUE_FULL_MAX_WAIT: Duration = Duration::from_millis(1);
/// How long one poll for delivery reports waits when none comes (a report ends it at once).
const POLL_WAIT: Duration = Duration::from_secs(10);

/// The shared producer.
pub struct Sink {
    producer: Arc<KafkaProducer>,
    pub stats: Arc<SinkStats>,
    batches: Sender<Batch>,
    batches_rx: Receiver<Batch>,
    /// Batches submitted and not yet wholly handed to librdkafka.
    queued: Arc<AtomicUsize>,
    /// The batch the sending thread is producing, how far it got, and its token: kept outside
    /// the thread so a restarted sender goes on where a panicked one stopped.
    in_hand: Arc<Mutex<Option<InHand>>>,
}

impl Sink {
    /// Creates the producer. Fails on a property librdkafka rejects (named in the error).
    /// The sending thread is started by the caller, under the supervisor (`sender_worker`).
    pub fn new(settings: &KafkaSettings) -> Result<Sink, String> {
        let mut cc = ClientConfig::new();
        for (k, v) in &settings.properties {
            cc.set(k, v);
        }
        let stats = Arc::new(SinkStats::default());
        let (retry_tx, retry_rx) = unbounded();
        let ctx = Context { stats: stats.clone(), retry_tx, last_error: Mutex::new(None) };
        let producer: KafkaProducer = cc
            .create_with_context(ctx)
            .map_err(|e| format!("kafkaconfig: the Kafka producer refused its settings: {e}"))?;
        let producer = Arc::new(producer);
        let p2 = producer.clone();
        std::thread::Builder::new()
            .name("kafka-retry".into())
            .spawn(move || run_retries(&p2, retry_rx))
            .map_err(|e| format!("cannot start the retry thread: {e}"))?;
        let (batches, batches_rx) = bounded(BATCHES_QUEUED);
        Ok(Sink { producer, stats, batches, batches_rx, queued: Arc::default(), in_hand: Arc::default() })
    }

    /// The polling thread's body, for the supervisor: serves delivery reports (and client
    /// errors) as they come.
    pub fn poll_worker(&self) -> crate::supervisor::WorkerFn {
        let producer = self.producer.clone();
        Arc::new(move || loop {
            producer.poll(POLL_WAIT);
        })
    }

    /// The sending thread's body, for the supervisor.
    pub fn sender_worker(&self) -> crate::supervisor::WorkerFn {
        let (producer, rx, queued, in_hand, stats) = (
            self.producer.clone(),
            self.batches_rx.clone(),
            self.queued.clone(),
            self.in_hand.clone(),
            self.stats.clone(),
        );
        Arc::new(move || run_sender(&producer, &rx, &queued, &in_hand, &stats))
    }

    /// Hands a batch to the sending thread, blocking while the channel is full. Gives the
    /// batch back when `stop` is raised while waiting.
    pub fn submit(&self, batch: Batch, stop: &AtomicBool) -> Result<(), (Stopped, Batch)> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let mut batch = batch;
        loop {
            match self.batches.send_timeout(batch, Duration::from_millis(50)) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Timeout(b)) | Err(SendTimeoutError::Disconnected(b)) => {
                    if stop.load(Ordering::Relaxed) {
                        self.queued.fetch_sub(1, Ordering::SeqCst);
                        return Err((Stopped, b));
                    }
                    batch = b;
                }
            }
        }
    }

    /// Messages handed to librdkafka and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Lines not yet acknowledged: in flight in librdkafka, plus batches not yet produced.
    pub fn pending(&self) -> usize {
        self.in_flight().max(0) as usize + self.queued.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` for every submitted line to be delivered; true when none is left.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let _ = self.producer.flush(Duration::from_millis(100));
            if self.pending() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

/// The sending thread's loop: takes batches in the order they came and produces their lines,
/// waiting while librdkafka's queue is full.
fn run_sender(
    producer: &KafkaProducer,
    rx: &Receiver<Batch>,
    queued: &AtomicUsize,
    in_hand: &Mutex<Option<InHand>>,
    stats: &SinkStats,
) {
    loop {
        let mut slot = in_hand.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            drop(slot);
            let Ok(batch) = rx.recv() else { return };
            slot = in_hand.lock().unwrap_or_else(|p| p.into_inner());
            let token = Arc::new(BatchAck::new(&batch));
            *slot = Some((batch, 0, token));
        }
        let (batch, next, token) = slot.as_mut().expect("a batch in hand");
        while *next < batch.lines.len() {
            let (start, end) = batch.lines[*next];
            let mut record = BaseRecord::with_opaque_to(&batch.topic, token.clone()).payload(&batch.data[start..end]);
            if let Some(k) = &batch.key {
                record = record.key(&**k);
            }
            produce(producer, record, &batch.topic);
            stats.sent.fetch_add(1, Ordering::Relaxed);
            *next += 1;
        }
        *slot = None;
        queued.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The retry thread: sends failed messages again, in the order they failed, after a pause.
fn run_retries(producer: &KafkaProducer, rx: Receiver<Retry>) {
    while let Ok(r) = rx.recv() {
        let pause = r.at.saturating_duration_since(Instant::now());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let mut record = BaseRecord::with_opaque_to(&r.topic, r.delivery).payload(&r.payload[..]);
        if let Some(k) = &r.key {
            record = record.key(&k[..]);
        }
        produce(producer, record, &r.topic);
    }
}

/// Hands one record to librdkafka, waiting while its queue is full (backing off 0.2 to 1 ms: the
/// queue frees space in chunks, one produce request's acknowledgements at a time, and a longer
/// sleep leaves the broker connection idle) and retrying other refusals every 500 ms with a
/// warning.
fn produce(producer: &KafkaProducer, mut record: BaseRecord<'_, [u8], [u8], Arc<BatchAck>>, topic: &str) {
    let mut wait = Duration::from_micros(200);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(wait);
                wait = (wait * 2).min(QUEUE_FULL_MAX_WAIT);
            }
            Err((e, back)) => {
                log::warn!("kafka: cannot queue a message for topic {topic}: {e}; retrying");
                record = back;
                std::thread::sleep(Duration::from_millis(500));
            }
        }
    }
}
