//! The sending thread of `delivery: exactly_once`: lines and the positions they move, committed
//! together in Kafka transactions (KIP-98), so that a consumer reading `read_committed` sees each
//! line once across kills, broker restarts and rotations.
//!
//! Exists beside `sender` (at-least-once) because what acknowledges a line differs: here a batch
//! is acknowledged (its tracker moves, `checkpoints.json` follows) only once the transaction that
//! carried it has committed, and the authority at start is the positions topic (`positions`).
//!
//! Every `transaction_interval` the batches received since the transaction began are committed
//! with one record per file they were read from (its identity and the offset past its last line
//! in the transaction) in the positions topic. The batches are kept, whole, until the commit:
//! - an abortable error (a message failed, the broker aborted a transaction left open past
//!   `transaction.timeout.ms` by an outage) aborts, and the same batches are sent again, in the
//!   same order, in a new transaction: the tails need not rewind, and the aborted copies are
//!   never seen by `read_committed` consumers;
//! - a retriable error (the broker did not answer in time) tries the commit again;
//! - a fatal one (fenced: another agent took the transactional id) stops shipping and tells the
//!   agent, which exits with code 7.
//!
//! The kafka-poll thread serves delivery reports as in at-least-once (they only count here);
//! before each commit this thread waits for them, 1 ms at a time (`serve_until_delivered`):
//! rdkafka's own wait in `commit_transaction` took 100 ms every time. Without the poll thread
//! (tried), librdkafka's queue filled with unserved reports during a catch-up and the sender
//! waited for room for ever.
//!
//! Memory stays bounded as in at-least-once: while a commit waits the thread takes no batch, the
//! channel fills and `Sink::submit` holds the tails back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};

use super::sender::{produce_lines, send_when_room};
use super::{positions, BatchAck, KafkaProducer, Outgoing, Shared};
use crate::ack::AckTracker;
use crate::checkpoint::Checkpoints;
use crate::config::ExactlyOnce;

/// How long one call to librdkafka's transaction API may wait before it is tried again.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait between two tries of a call that failed for a reason that can pass.
const RETRY_WAIT: Duration = Duration::from_secs(1);

/// What the transactional sender needs besides the producer.
pub struct Transactions {
    pub settings: ExactlyOnce,
    pub checkpoints: Arc<Checkpoints>,
    /// Called once when the producer is fenced or failed for good, with why.
    pub fatal: Box<dyn Fn(String) + Send + Sync>,
}

/// Where the transaction stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// No transaction open (`init_transactions` was done by the agent before the tails
    /// started). Batches kept here (a `begin` that failed) go in the next one.
    #[default]
    Ready,
    /// A transaction is open since `since`; its batches are in `TxnState::batches`.
    Open { since: Instant },
    /// Its positions are in it and its commit was asked for; a commit that timed out is asked
    /// for again (librdkafka's rule: nothing else may be called meanwhile).
    Committing,
    /// The transaction failed for an abortable reason: abort it, then send its batches again.
    MustAbort,
    /// Fenced or failed for good: nothing more is sent.
    Dead,
}

/// What the thread keeps outside itself, so that a restarted sender goes on with the open
/// transaction's batches.
#[derive(Default)]
pub struct TxnState {
    phase: Phase,
    batches: Vec<Outgoing>,
}

fn lock(state: &Mutex<TxnState>) -> MutexGuard<'_, TxnState> {
    // Every change is a move of a value or a counter; a panic cannot leave it half-made.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The transactional sending thread's loop.
pub fn run_transactional(
    producer: &KafkaProducer,
    batches: &Receiver<Outgoing>,
    state: &Mutex<TxnState>,
    shared: &Shared,
    txn: &Transactions,
) {
    let interval = txn.settings.interval;
    loop {
        let mut st = lock(state);
        match st.phase {
            Phase::Dead => {
                drop(st);
                std::thread::sleep(Duration::from_secs(3600));
            }
            Phase::Ready => {
                if st.batches.is_empty() {
                    drop(st);
                    let got = match batches.recv() {
                        Ok(out) => out,
                        Err(_) => return,
                    };
                    st = lock(state);
                    st.batches.push(got);
                }
                begin_and_send(producer, &mut st, shared, txn);
            }
            Phase::Open { since } => {
                let due = since + interval;
                if Instant::now() < due {
                    drop(st);
                    let got = batches.recv_timeout(due.saturating_duration_since(Instant::now()));
                    let mut st = lock(state);
                    match got {
                        Ok(out) => send(producer, &mut st, out, shared),
                        Err(RecvTimeoutError::Timeout) => {}
                        Err(RecvTimeoutError::Disconnected) => return,
                    }
                    continue;
                }
                match produce_positions(producer, &st, txn) {
                    Ok(()) => st.phase = Phase::Committing,
                    Err(e) => {
                        shared
                            .log
                            .warn(format!("kafka: positions could not join the transaction ({e}); it is sent again"));
                        st.phase = Phase::MustAbort;
                    }
                }
            }
            Phase::Committing => commit(producer, &mut st, shared, txn),
            Phase::MustAbort => {
                abort_and_resend(producer, &mut st, shared, txn);
            }
        }
    }
}

/// Hands a batch's lines to librdkafka inside the open transaction and keeps the batch.
fn send(producer: &KafkaProducer, st: &mut TxnState, mut out: Outgoing, shared: &Shared) {
    if let Err(cause) = produce_lines(producer, &mut out, shared) {
        // Refused at `send` for a reason that can pass (an unknown topic): the transaction
        // cannot carry it; abort, wait, and send everything again.
        shared.log.warn(format!(
            "kafka: a line for topic {} was refused ({cause}); the transaction is sent again",
            out.batch.topic
        ));
        st.phase = Phase::MustAbort;
    }
    st.batches.push(out);
}

/// The position records of the batches of the transaction: for each file, the end of its last
/// line in it.
fn produce_positions(producer: &KafkaProducer, st: &TxnState, txn: &Transactions) -> Result<(), KafkaError> {
    let mut last: HashMap<*const AckTracker, (Arc<AckTracker>, u64)> = HashMap::new();
    for out in &st.batches {
        let t = &out.token.tracker;
        last.insert(Arc::as_ptr(t), (t.clone(), out.token.end));
    }
    let trackers: Vec<(Arc<AckTracker>, u64)> = last.into_values().collect();
    let entries = txn.checkpoints.entries_at(&trackers);
    // The records need a delivery token; they acknowledge nothing.
    let token = Arc::new(BatchAck {
        tracker: Arc::new(AckTracker::new(0)),
        seq: 0,
        end: 0,
        remaining: AtomicUsize::new(usize::MAX),
    });
    for e in &entries {
        let key = positions::key(&txn.settings.transactional_id, e);
        let value = serde_json::to_vec(e).expect("an entry serializes");
        let record = BaseRecord::with_opaque_to(&txn.settings.positions_topic, token.clone())
            .key(key.as_bytes())
            .payload(&value[..]);
        send_when_room(producer, record)?;
    }
    Ok(())
}

/// Commits the open transaction with its positions; on success every batch of it is
/// acknowledged.
fn commit(producer: &KafkaProducer, st: &mut TxnState, shared: &Shared, txn: &Transactions) {
    let asked = Instant::now();
    serve_until_delivered(producer, asked + CALL_TIMEOUT);
    match producer.commit_transaction(CALL_TIMEOUT) {
        Ok(()) => {
            log::debug!("kafka: transaction of {} batches committed in {:?}", st.batches.len(), asked.elapsed());
            for out in st.batches.drain(..) {
                out.token.tracker.ack(out.token.seq);
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            shared.stats.txn_committed.fetch_add(1, Ordering::Relaxed);
            st.phase = Phase::Ready;
        }
        Err(e) => fail(st, e, "commit", txn),
    }
}

/// Serves delivery reports until every message is delivered (or `until`). rdkafka's
/// `commit_transaction` flushes first, and its flush polls in slices of 100 ms that always last
/// their whole 100 ms: every commit took 101.5 ms, of which 100 ms that wait (measured), and the
/// live tail's p50 was 233 ms. Polled 1 ms at a time here, its own flush finds nothing left.
fn serve_until_delivered(producer: &KafkaProducer, until: Instant) {
    while producer.in_flight_count() > 0 && Instant::now() < until {
        producer.poll(Duration::from_millis(1));
    }
}

/// Sorts a failed transaction call: fatal (stop), abortable (abort and resend), anything else
/// (retriable, a broker away longer than the call's timeout) is tried again with the phase
/// unchanged: the agent keeps running on what it has rather than give up on a doubt.
fn fail(st: &mut TxnState, e: KafkaError, what: &str, txn: &Transactions) {
    let (fatal, abortable) = match &e {
        KafkaError::Transaction(t) => (t.is_fatal(), t.txn_requires_abort()),
        _ => (false, false),
    };
    let unsupported = e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnsupportedFeature);
    if fatal || unsupported {
        let why = if unsupported {
            // tansu 0.6 answers InitProducerId but has no EndTxn (librdkafka: "EndTxnRequest
            // (KIP-98) not supported by broker"), and calls that retriable: it never passes.
            format!(
                "kafka: the broker does not support transactions ({e}); delivery: exactly_once needs \
                 Apache Kafka (or another broker with KIP-98 transactions); nothing more is shipped"
            )
        } else {
            format!(
                "kafka: the transactional producer {} failed for good ({e}): another agent with the \
                 same transactional_id fenced this one, or the broker refused transactions; nothing \
                 more is shipped",
                txn.settings.transactional_id
            )
        };
        log::error!("{why}");
        st.phase = Phase::Dead;
        (txn.fatal)(why);
    } else if abortable {
        log::warn!("kafka: the transaction failed ({e}); aborting it and sending its lines again");
        st.phase = Phase::MustAbort;
    } else {
        log::warn!("kafka: could not {what} the transaction yet ({e}); trying again");
        std::thread::sleep(RETRY_WAIT);
    }
}

/// Aborts the failed transaction, then sends its batches again, from their first line, in a new
/// one.
fn abort_and_resend(producer: &KafkaProducer, st: &mut TxnState, shared: &Shared, txn: &Transactions) {
    match producer.abort_transaction(CALL_TIMEOUT) {
        Ok(()) => {
            shared.stats.txn_aborted.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => {
            fail(st, e, "abort", txn); // fatal stops; anything else tries the abort again
            return;
        }
    }
    std::thread::sleep(RETRY_WAIT.min(txn.settings.interval * 10));
    st.phase = Phase::Ready;
    begin_and_send(producer, st, shared, txn);
}

/// Begins a transaction and sends in it the batches kept (a new one, or those of an aborted
/// transaction), each from its first line.
fn begin_and_send(producer: &KafkaProducer, st: &mut TxnState, shared: &Shared, txn: &Transactions) {
    if let Err(e) = producer.begin_transaction() {
        fail(st, e, "begin", txn); // the batches stay for the next try
        return;
    }
    st.phase = Phase::Open { since: Instant::now() };
    for mut out in std::mem::take(&mut st.batches) {
        out.next = 0;
        send(producer, st, out, shared);
    }
}
