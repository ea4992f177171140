//! Nothing stalls the pipeline (issue 18): a line Kafka can never take, or a topic that refuses
//! for a while, holds up no other file. Against real tansu and the real binary.

mod common;

use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(30);

/// The repro: `max_line_bytes: 4MiB`, one 2,000,000-byte line in one file. It used to be
/// refused at `send` for ever (librdkafka's `message.max.bytes` stayed at 1 MiB) while 100 lines
/// of another file waited. Now `message.max.bytes` follows `max_line_bytes`: the big line ships,
/// and so does everything else. (On Apache Kafka the topic must allow such records: its
/// `max.message.bytes` is raised, as an operator who sets `max_line_bytes: 4MiB` would.)
#[test]
fn a_two_megabyte_line_under_max_line_bytes_4mib_ships_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic_with("w1", 1, &[("max.message.bytes", "5000000")]);
    broker.create_topic("w2");
    let (big, other) = (dir.path().join("big.log"), dir.path().join("other.log"));
    let huge = "x".repeat(2_000_000);
    append(&big, &[huge.clone(), "after-big".to_string()]);
    let cfg = write_config(
        dir.path(),
        &broker.addr(),
        &[(&big, "w1"), (&other, "w2")],
        "start_position: beginning\nmax_line_bytes: 4MiB\n",
    );
    let mut agent = Agent::start(&cfg);
    append(&other, &numbered("o", 0..100));
    assert_eq!(broker.lines("w2", 100, T), numbered("o", 0..100));
    let got = broker.lines("w1", 2, T);
    assert_eq!(got.len(), 2, "the 2 MB line and the one after it");
    assert!(got[0] == huge, "the 2 MB line arrives unchanged ({} bytes)", got[0].len());
    assert_eq!(got[1], "after-big");
    assert_eq!(agent.terminate(), Some(0));
}

/// A line larger than what the producer may send (here librdkafka's own `message.max.bytes`,
/// set below `max_line_bytes`) is given up with the documented error, counted, and holds up
/// neither the lines after it in its own file nor another file.
#[test]
fn a_line_kafka_can_never_take_is_given_up_and_holds_nothing_up() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    a_huge_line_is_given_up_and_holds_nothing_up(dir.path(), &broker, "{message.max.bytes: 1000000}", "");
}

/// A topic that does not exist (auto-creation is off) makes only its own files wait: the other
/// file's lines ship meanwhile; `logcatch_producer_topics_waiting` says 1; once the topic is
/// created the waiting lines ship, in order, none missing.
#[test]
fn a_missing_topic_holds_up_only_its_own_files() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("present");
    let (a, b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let metrics = dir.path().join("metrics.prom");
    let cfg = write_config(
        dir.path(),
        &broker.addr(),
        &[(&a, "missing"), (&b, "present")],
        // librdkafka gives up on an unknown topic after topic.metadata.propagation.max.ms
        // (30 s by default); 1 s here so the test reaches the refusal quickly.
        &format!(
            "start_position: beginning\nkafkaconfig: {{kafkaaddr: \"{}\", properties: {{topic.metadata.propagation.max.ms: 1000}}}}\nmetrics: {{path: \"{}\", interval: 200ms}}\n",
            broker.addr(),
            metrics.display()
        ),
    );
    let mut agent = Agent::start(&cfg);
    append(&a, &numbered("a", 0..50));
    wait_until(T, "the missing topic to be reported waiting", || {
        metric(&metrics, "logcatch_producer_topics_waiting") == Some(1.0)
    });
    agent.wait_log("topic missing refused a message", T);
    // Written after the refusal: must not wait behind topic `missing`.
    append(&b, &numbered("b", 0..100));
    assert_eq!(broker.lines("present", 100, T), numbered("b", 0..100));
    append(&a, &numbered("a", 50..80));
    broker.create_topic("missing");
    assert_eq!(broker.lines("missing", 80, Duration::from_secs(60)), numbered("a", 0..80));
    wait_until(T, "no topic waiting", || metric(&metrics, "logcatch_producer_topics_waiting") == Some(0.0));
    assert_eq!(agent.terminate(), Some(0));
}
