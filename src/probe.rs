//! `logcatch test -c FILE [--produce]`: whether the config would work, before the agent runs
//! (Filebeat's `test config` and `test output` in one).
//!
//! Exists because `--check` reads the config only: a wrong password, a missing topic or a dead
//! etcd endpoint was found out by running the agent and reading its log. Each check is one line,
//! OK or FAIL, naming the component and the cause; a secret is never printed (the config keeps
//! them apart, and librdkafka's and etcd's errors do not carry them). Kafka is asked through a
//! client of its own with the agent's connection settings (TLS, SASL), not the agent's producer:
//! a probe must not need the transactional id, nor share delivery reports with shipping.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;

use crate::config::{Config, KafkaSettings};
use crate::etcd::client::EtcdClient;

/// How long each question to Kafka may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// One check's outcome: what was checked, and OK with what was found or FAIL with why.
#[derive(Debug)]
pub struct Check {
    pub what: String,
    pub outcome: Result<String, String>,
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.outcome {
            Ok(found) => write!(f, "OK    {}: {found}", self.what),
            Err(why) => write!(f, "FAIL  {}: {why}", self.what),
        }
    }
}

fn check(what: impl Into<String>, outcome: Result<String, String>) -> Check {
    Check { what: what.into(), outcome }
}

/// Keeps the client's last error (a refused handshake, a failed authentication): the reason a
/// metadata request times out.
#[derive(Default)]
struct Errors(Mutex<Option<String>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() != Some(RDKafkaErrorCode::AllBrokersDown) {
            *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(format!("{error}: {reason}"));
        }
    }
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _log_message: &str) {}
}

impl ProducerContext for Errors {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &rdkafka::producer::DeliveryResult<'_>, _: ()) {}
}

/// Runs every check of `config` (its file, then Kafka, its topics, and etcd) and prints each line
/// as it is done. Returns whether all passed.
pub fn run(config: &std::path::Path, produce: bool) -> bool {
    let cfg = match Config::load(config) {
        Ok(c) => c,
        Err(e) => {
            println!("{}", check(format!("config {}", config.display()), Err(e.to_string())));
            return false;
        }
    };
    let mut all = true;
    let mut say = |c: Check| {
        all &= c.outcome.is_ok();
        println!("{c}");
    };
    say(check(
        format!("config {}", cfg.file.display()),
        Ok(format!("{} entries in collectlogs, {} etcd keys", cfg.sources.len(), cfg.etcd.keys.len())),
    ));
    for c in kafka_checks(&cfg, produce) {
        say(c);
    }
    for c in etcd_checks(&cfg) {
        say(c);
    }
    all
}

/// The client settings: the agent's, less what only a transactional producer may have.
fn client(settings: &KafkaSettings) -> Result<BaseProducer<Errors>, String> {
    let mut cc = ClientConfig::new();
    for (k, v) in settings.properties.iter().filter(|(k, _)| k.as_str() != "transactional.id") {
        cc.set(k, v);
    }
    for (k, v) in &settings.secrets {
        cc.set(k, v.expose());
    }
    cc.create_with_context(Errors::default()).map_err(|e| format!("the client refused its settings: {e}"))
}

/// Kafka: the brokers answer (with the configured TLS and SASL), then each topic of config.yaml
/// exists and may be written (and, with `produce`, takes a probe message).
fn kafka_checks(cfg: &Config, produce: bool) -> Vec<Check> {
    let what = format!("kafka {}", cfg.kafka.brokers);
    let producer = match client(&cfg.kafka) {
        Ok(p) => p,
        Err(e) => return vec![check(what, Err(e))],
    };
    // The client's errors reach its context when it is polled: served for up to a second.
    let why = |e: KafkaError| {
        let last = || producer.context().0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(1);
        while last().is_none() && std::time::Instant::now() < deadline {
            producer.poll(Duration::from_millis(50));
        }
        last().map_or_else(|| e.to_string(), |l| format!("{e} ({l})"))
    };
    let brokers = match producer.client().fetch_metadata(None, KAFKA_TIMEOUT) {
        Ok(m) => {
            let list: Vec<String> = m.brokers().iter().map(|b| format!("{}:{}", b.host(), b.port())).collect();
            Ok(format!("{} broker(s) answer: {}", list.len(), list.join(", ")))
        }
        Err(e) => Err(why(e)),
    };
    let reached = brokers.is_ok();
    let mut out = vec![check(what, brokers)];
    if !reached {
        return out;
    }
    let topics: BTreeSet<&str> = cfg.sources.iter().map(|s| s.topic.as_str()).collect();
    for topic in topics {
        let outcome = match producer.client().fetch_metadata(Some(topic), KAFKA_TIMEOUT) {
            Ok(m) => match m.topics().first() {
                Some(t) => match t.error() {
                    None => Ok(format!("{} partition(s)", t.partitions().len())),
                    Some(e) => Err(RDKafkaErrorCode::from(e).to_string()),
                },
                None => Err("not in the cluster's metadata".to_string()),
            },
            Err(e) => Err(why(e)),
        };
        let outcome = match outcome {
            Ok(found) if produce => {
                probe(&producer, topic, &cfg.hostname).map(|()| format!("{found}; a probe message was written"))
            }
            other => other,
        };
        out.push(check(format!("kafka topic {topic}"), outcome));
    }
    out
}

/// Writes one probe message to `topic` and waits for the broker's answer.
fn probe(producer: &BaseProducer<Errors>, topic: &str, host: &str) -> Result<(), String> {
    let text = format!("logcatch test: a probe from {host} at {}", crate::timestamp::now_rfc3339());
    producer
        .send(BaseRecord::<(), str, ()>::to(topic).payload(&text))
        .map_err(|(e, _)| format!("the probe was refused: {e}"))?;
    producer.flush(KAFKA_TIMEOUT).map_err(|e| format!("the probe was not acknowledged: {e}"))?;
    Ok(())
}

/// etcd: each endpoint on its own answers and gives each watched key (its value is not judged
/// here: the agent checks it as it comes).
fn etcd_checks(cfg: &Config) -> Vec<Check> {
    let mut out = Vec::new();
    for endpoint in &cfg.etcd.endpoints {
        let what = format!("etcd {endpoint}");
        let mut client = match EtcdClient::new(
            std::slice::from_ref(endpoint),
            cfg.etcd.credentials.clone(),
            cfg.etcd.tls.as_ref(),
        ) {
            Ok(c) => c,
            Err(e) => {
                out.push(check(what, Err(e.to_string())));
                continue;
            }
        };
        // With no key to watch, one that need not exist: the endpoint must still answer.
        let probe_key = ["/logcatch/test".to_string()];
        let keys = if cfg.etcd.keys.is_empty() { &probe_key[..] } else { &cfg.etcd.keys[..] };
        let keys: Result<Vec<String>, String> = keys
            .iter()
            .map(|key| match client.range(key) {
                Ok(r) => Ok(match r.value {
                    Some(v) => format!("{key} ({} bytes)", v.len()),
                    None => format!("{key} (absent)"),
                }),
                Err(e) => Err(format!("key {key}: {e}")),
            })
            .collect();
        out.push(check(what, keys.map(|k| format!("reads {}", k.join(", ")))));
    }
    out
}
