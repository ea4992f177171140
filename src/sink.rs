//! The Kafka sink: one rdkafka producer shared by every tail.
//!
//! Exists to turn "a line of a file" into "a message in a topic" with three promises:
//! - backpressure: when the producer's bounded queue is full, `send` blocks the calling tail
//!   instead of growing memory;
//! - acknowledgement: each message carries a `Delivery` token; a successful delivery report
//!   advances that file's `AckTracker`, which is what checkpoints record;
//! - nothing dropped silently: a message that fails for a reason that can pass (unknown topic,
//!   broker errors) is logged and sent again after a pause; only a message the broker can never
//!   accept (too large) is given up on, with an error naming the topic, counted in `dropped`.
//!
//! rdkafka with default features off: synchronous `ThreadedProducer`, no tokio (see README,
//! "Why rdkafka").

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::ack::AckTracker;
use crate::config::KafkaSettings;

/// What a message carries so its delivery report can be credited to its file.
pub struct Delivery {
    pub tracker: Arc<AckTracker>,
    pub seq: u64,
}

/// `send` gave up because the caller's stop flag was raised while the queue was full.
#[derive(Debug, PartialEq, Eq)]
pub struct Stopped;

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
    delivery: Box<Delivery>,
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
    type DeliveryOpaque = Box<Delivery>;

    fn delivery(&self, result: &DeliveryResult<'_>, delivery: Box<Delivery>) {
        match result {
            Ok(_) => {
                self.stats.acked.fetch_add(1, Ordering::Relaxed);
                self.stats.brokers_down.store(false, Ordering::Relaxed);
                delivery.tracker.ack(delivery.seq);
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
                    delivery.tracker.ack(delivery.seq);
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

pub type KafkaProducer = ThreadedProducer<Context>;

/// The shared producer.
pub struct Sink {
    producer: Arc<KafkaProducer>,
    pub stats: Arc<SinkStats>,
}

impl Sink {
    /// Creates the producer. Fails on a property librdkafka rejects (named in the error).
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
        Ok(Sink { producer, stats })
    }

    /// Hands one message to the producer, blocking while its queue is full. Returns `Stopped`
    /// (and drops the token) when `stop` is raised while waiting.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        delivery: Box<Delivery>,
        stop: &AtomicBool,
    ) -> Result<(), Stopped> {
        let mut record = BaseRecord::with_opaque_to(topic, delivery).payload(payload);
        if let Some(k) = key {
            record = record.key(k);
        }
        let mut wait = Duration::from_micros(200);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return Ok(());
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return Err(Stopped);
                    }
                    record = back;
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(20));
                }
                Err((e, back)) => {
                    // Not expected for a valid topic name; keep the line and try again shortly.
                    log::warn!("kafka: cannot queue a message for topic {topic}: {e}; retrying");
                    if stop.load(Ordering::Relaxed) {
                        return Err(Stopped);
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Messages handed to the producer and not yet reported on.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }

    /// Waits up to `timeout` for every message to be delivered; true when none is left.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let _ = self.producer.flush(Duration::from_millis(100));
            if self.in_flight() == 0 {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
        }
    }
}

/// The retry thread: sends failed messages again, in the order they failed, after a pause.
fn run_retries(producer: &KafkaProducer, rx: Receiver<Retry>) {
    while let Ok(r) = rx.recv() {
        let pause = r.at.saturating_duration_since(Instant::now());
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
        let mut record = BaseRecord::with_opaque_to(&r.topic, r.delivery).payload(&r.payload);
        if let Some(k) = &r.key {
            record = record.key(k);
        }
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}
