//! The positions topic of `delivery: exactly_once`: where each file's position is committed, in
//! the same Kafka transaction as the lines that moved it.
//!
//! Exists because `checkpoints.json` cannot be written atomically with a Kafka transaction: a
//! kill between a commit and the next save would read those lines again. A position committed
//! with its lines can be neither behind nor ahead of them. The topic is compacted: one record
//! per agent and file identity (key `<transactional_id> \x1f <topic> \x1f <dev>:<ino>`), the value
//! the same JSON entry as in `checkpoints.json`. At start the agent reads the whole topic with
//! `isolation.level=read_committed` up to its end and keeps its own records: they, not the file,
//! are the authority (`Checkpoints::adopt`).
//!
//! The topic is created if absent (compacted, one partition, the broker's replication factor).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::checkpoint::Entry;
use crate::config::{ExactlyOnce, KafkaSettings};

/// Why the committed positions could not be read.
#[derive(Debug)]
pub enum PositionsError {
    /// The client could not be made from the settings.
    Settings(String),
    /// The broker did not answer in time, or refused (the text says which).
    Broker(String),
}

impl std::fmt::Display for PositionsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PositionsError::Settings(e) => write!(f, "the positions topic's client refused its settings: {e}"),
            PositionsError::Broker(e) => write!(f, "{e}"),
        }
    }
}

/// The record key of a file's position.
pub fn key(transactional_id: &str, entry: &Entry) -> String {
    format!("{transactional_id}\x1f{}\x1f{}:{}", entry.topic, entry.dev, entry.ino)
}

/// The client settings of the positions reader: the connection and security ones of the
/// producer (bootstrap, TLS, SASL), none of its producing ones.
fn client_config(settings: &KafkaSettings) -> ClientConfig {
    let mut cc = ClientConfig::new();
    let connection = |k: &str| {
        k == "bootstrap.servers"
            || k.starts_with("ssl.")
            || k.starts_with("sasl.")
            || k.starts_with("security.")
            || k.starts_with("socket.")
            || k == "client.id"
            || k == "broker.address.family"
    };
    for (k, v) in settings.properties.iter().filter(|(k, _)| connection(k)) {
        cc.set(k, v);
    }
    for (k, v) in settings.secrets.iter().filter(|(k, _)| connection(k)) {
        cc.set(k, v.expose());
    }
    cc
}

/// Creates the positions topic unless it exists.
pub fn ensure_topic(settings: &KafkaSettings, eo: &ExactlyOnce, timeout: Duration) -> Result<(), PositionsError> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(settings).create().map_err(|e| PositionsError::Settings(e.to_string()))?;
    let topic = NewTopic::new(&eo.positions_topic, 1, TopicReplication::Fixed(-1))
        .set("cleanup.policy", "compact")
        .set("min.compaction.lag.ms", "60000");
    let opts = AdminOptions::new().operation_timeout(Some(timeout)).request_timeout(Some(timeout));
    let results = block_on(admin.create_topics([&topic], &opts)).map_err(|e| {
        PositionsError::Broker(format!("cannot create the positions topic {}: {e}", eo.positions_topic))
    })?;
    for r in results {
        match r {
            Ok(_) => log::info!("kafka: created the positions topic {} (compacted)", eo.positions_topic),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((t, code)) => {
                return Err(PositionsError::Broker(format!("cannot create the positions topic {t}: {code}")));
            }
        }
    }
    Ok(())
}

/// This agent's committed positions: every record of `transactional_id` in the topic, the last
/// of each key (an empty value deletes it), read with `read_committed` to the topic's end.
///
/// Long on purpose: the consumer's settings, each with why, then one read loop.
pub fn load(settings: &KafkaSettings, eo: &ExactlyOnce, timeout: Duration) -> Result<Vec<Entry>, PositionsError> {
    let mut cc = client_config(settings);
    cc.set("group.id", format!("{}-positions", eo.transactional_id))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        // At the end of a partition the broker holds a fetch this long before it answers (the
        // default 500 ms was most of the agent's start-up in this mode).
        .set("fetch.wait.max.ms", "10")
        .set("auto.offset.reset", "earliest");
    let consumer: BaseConsumer<Quiet> =
        cc.create_with_context(Quiet).map_err(|e| PositionsError::Settings(e.to_string()))?;
    let meta = consumer
        .fetch_metadata(Some(&eo.positions_topic), timeout)
        .map_err(|e| PositionsError::Broker(format!("positions topic {}: {e}", eo.positions_topic)))?;
    let partitions: Vec<i32> =
        meta.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect::<Vec<_>>();
    if partitions.is_empty() {
        return Err(PositionsError::Broker(format!("positions topic {} has no partitions", eo.positions_topic)));
    }
    let mut tpl = TopicPartitionList::new();
    for &p in &partitions {
        tpl.add_partition_offset(&eo.positions_topic, p, Offset::Beginning)
            .map_err(|e| PositionsError::Broker(e.to_string()))?;
    }
    consumer.assign(&tpl).map_err(|e| PositionsError::Broker(e.to_string()))?;
    let prefix = format!("{}\x1f", eo.transactional_id);
    let mut found: BTreeMap<String, Option<Entry>> = BTreeMap::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + timeout;
    while at_end.len() < partitions.len() {
        if Instant::now() >= deadline {
            return Err(PositionsError::Broker(format!(
                "positions topic {}: not read to its end within {timeout:?}",
                eo.positions_topic
            )));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => log::warn!("kafka: reading the positions topic {}: {e}", eo.positions_topic),
            Some(Ok(m)) => {
                let Some(k) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else { continue };
                if !k.starts_with(&prefix) {
                    continue;
                }
                let entry = match m.payload() {
                    None | Some([]) => None,
                    Some(v) => match serde_json::from_slice::<Entry>(v) {
                        Ok(e) => Some(e),
                        Err(e) => {
                            log::warn!("kafka: positions topic: record {k:?} is not a position ({e}); ignored");
                            continue;
                        }
                    },
                };
                found.insert(k.to_string(), entry);
            }
        }
    }
    Ok(found.into_values().flatten().collect())
}

/// The reader's context: the end of a partition, which `load` waits for, is not an error to log.
struct Quiet;

impl ClientContext for Quiet {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::PartitionEOF) {
            log::warn!("kafka: positions reader: {error}: {reason}");
        }
    }
}

impl ConsumerContext for Quiet {}

/// Runs a future of rdkafka's admin client to completion on this thread (the admin client does
/// its work on its own thread and wakes the waker; no async runtime is needed for one call).
/// The tests' topic creation uses it too.
pub fn block_on<F: Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
