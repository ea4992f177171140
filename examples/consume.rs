//! Prints what is in a topic: `cargo run --example consume -- BROKER TOPIC [SECONDS]`.
//!
//! A small rdkafka consumer for the demo and for checking by hand (Debian's kcat links a
//! librdkafka too old to talk to tansu). Reads partition 0 from the beginning with `assign()`,
//! as consumer groups are slow to join on tansu, and follows it for SECONDS (default 10).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: consume BROKER TOPIC [SECONDS]");
        std::process::exit(2);
    }
    let secs: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args[0])
        .set("group.id", "logcatch-consume")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&args[1], 0, Offset::Beginning).unwrap();
    consumer.assign(&tpl).unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    let mut n = 0u64;
    while Instant::now() < end {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            n += 1;
            println!(
                "[{} #{}] key={} {}",
                m.topic(),
                m.offset(),
                m.key().map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_default(),
                String::from_utf8_lossy(m.payload().unwrap_or_default())
            );
        }
    }
    eprintln!("{n} messages read from {}", args[1]);
}
