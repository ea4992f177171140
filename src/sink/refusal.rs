//! What a refusal from librdkafka means for a message, decided in one place.
//!
//! Exists because a message can be refused at two moments, synchronously by `send` and later in
//! its delivery report, and the two paths once disagreed: a line too large for librdkafka's
//! `message.max.bytes` was "permanent" in a delivery report but "retry every 500 ms" at `send`,
//! and the single sending thread retried it forever while every other file waited (issue 18:
//! 33 retries in 16 s, 100 lines of another file never sent). Both paths now ask `classify`.

use std::fmt;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// The three things the sink can do with a refused message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// librdkafka's queue is full: wait until it drains (this is the producer's memory bound,
    /// and it rightly holds up every file).
    QueueFull,
    /// Sending the same bytes again can never succeed (too large, invalid): give the message up,
    /// with an error naming its topic and size, counted in `logcatch_producer_dropped_total`.
    Permanent,
    /// The cause can pass (a topic that does not exist yet, broker errors, authorization being
    /// fixed): the message's topic waits and is tried again; other topics go on.
    Transient,
}

/// Classifies an error code of librdkafka (None: an error that carries no code).
pub fn classify(code: Option<RDKafkaErrorCode>) -> Refusal {
    match code {
        Some(RDKafkaErrorCode::QueueFull) => Refusal::QueueFull,
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::InvalidRecord,
        ) => Refusal::Permanent,
        _ => Refusal::Transient,
    }
}

/// Classifies a `KafkaError` as returned by `send` or carried by a delivery report.
pub fn classify_error(e: &KafkaError) -> Refusal {
    classify(e.rdkafka_error_code())
}

/// Whether a `Transient` refusal is the topic's own (it does not exist, may not be written, or
/// its policy refuses), not the broker's or the connection's: `delivery: exactly_once` sets that
/// topic's files aside rather than try every file's lines again behind it.
pub fn is_the_topics(code: Option<RDKafkaErrorCode>) -> bool {
    matches!(
        code,
        Some(
            RDKafkaErrorCode::UnknownTopic
                | RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::PolicyViolation
        )
    )
}

/// Why a topic's messages are waiting: the refusal as librdkafka worded it, for logs and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Waiting {
    pub topic: String,
    pub cause: String,
}

impl fmt::Display for Waiting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "topic {} refused a message ({}); its files wait and are tried again, other topics go on",
            self.topic, self.cause
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_errors_are_permanent_queue_full_waits_the_rest_can_pass() {
        assert_eq!(classify(Some(RDKafkaErrorCode::MessageSizeTooLarge)), Refusal::Permanent);
        assert_eq!(classify(Some(RDKafkaErrorCode::InvalidMessageSize)), Refusal::Permanent);
        assert_eq!(classify(Some(RDKafkaErrorCode::QueueFull)), Refusal::QueueFull);
        assert_eq!(classify(Some(RDKafkaErrorCode::UnknownTopic)), Refusal::Transient);
        assert_eq!(classify(Some(RDKafkaErrorCode::UnknownTopicOrPartition)), Refusal::Transient);
        assert_eq!(classify(Some(RDKafkaErrorCode::TopicAuthorizationFailed)), Refusal::Transient);
        assert_eq!(classify(None), Refusal::Transient);
    }

    #[test]
    fn the_send_path_and_the_delivery_path_agree() {
        // `send` reports MessageProduction, a delivery report MessageProduction too: one answer.
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(classify_error(&e), Refusal::Permanent);
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(classify_error(&e), Refusal::QueueFull);
    }
}
