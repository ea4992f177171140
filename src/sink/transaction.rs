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
//! - a fence after nothing committed for longer than `transaction.timeout.ms` is the broker's
//!   abort of the open transaction for its timeout (Apache Kafka bumps the producer's epoch, and
//!   librdkafka reports a fence, fatal to that producer): a new producer with the same
//!   transactional id is made (`ProducerSlot::renew`), registered, and sends the same batches
//!   again, as after any abort; the tails and the files they hold open go on untouched;
//! - any other fatal error (fenced: another agent took the transactional id) stops shipping and
//!   tells the agent, which exits with code 7.
//!
//! One refused message must not hold up every file, as in at-least-once (`sender`):
//! - a line the broker can never take (too large) fails its transaction; at the abort it is taken
//!   out of its batch and given up, with an error naming the topic and its size, and the rest is
//!   sent again: one abort per such line, not an abort for ever;
//! - a topic that refuses (it does not exist, may not be written: `refusal::is_the_topics`)
//!   fails the transaction too; at the abort its batches are set aside (`Parked`), in order, and
//!   the other topics' lines are sent again without them. The topic is tried again after 1 s,
//!   then after twice as long each time it refuses again (30 s at most): each try that fails
//!   costs the other topics one abort. Its tails are held back once `PARKED_PER_TOPIC` of its
//!   batches wait, as in at-least-once. librdkafka fails a message to a topic it cannot find
//!   only after `topic.metadata.propagation.max.ms` (30 s by default): until then the
//!   transaction, and every file, waits for it.
//!
//! The kafka-poll thread serves delivery reports as in at-least-once (they only count here);
//! before each commit this thread waits for them, 1 ms at a time (`serve_until_delivered`):
//! rdkafka's own wait in `commit_transaction` took 100 ms every time. Without the poll thread
//! (tried), librdkafka's queue filled with unserved reports during a catch-up and the sender
//! waited for room for ever.
//!
//! Memory stays bounded as in at-least-once: while a commit waits the thread takes no batch, the
//! channel fills and `Sink::submit` holds the tails back.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer};

use super::refusal::{self, Refusal, Waiting};
use super::sender::{give_up, payload_of, produce_lines, send_when_room};
use super::{positions, BatchAck, KafkaProducer, Outgoing, ProducerSlot, Shared};
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
    /// Called once when the producer failed for good (fenced by another agent with the same
    /// transactional id, or a broker without transactions), with why: the agent stops (exit 7;
    /// started again, it would fence the other).
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
    /// The broker aborted the transaction for its timeout and fenced the producer (Apache Kafka
    /// 4.1, in the soak: a broker kill, a stalled network, then a 3 s pause of the agent): a new
    /// producer is to be made. The batches stay kept.
    TimedOut,
    /// The new producer registers the transactional id (`init_transactions`, which needs the
    /// broker: tried again until it answers); then the kept batches go in a new transaction.
    Registering,
    /// Fenced or failed for good: nothing more is sent.
    Dead,
}

/// The longest wait before a refusing topic is tried again.
const PARKED_MAX_WAIT: Duration = Duration::from_secs(30);
/// Lines refused for good remembered from one transaction (each is found and given up at its
/// abort; more wait for the next one).
const GIVEN_UP_KEPT: usize = 1024;

/// What the thread keeps outside itself, so that a restarted sender goes on with the open
/// transaction's batches.
#[derive(Default)]
pub struct TxnState {
    phase: Phase,
    /// When the first transaction since the last commit began (None after a commit): a fence
    /// that comes after nothing committed for longer than `transaction.timeout.ms` is the broker's
    /// abort of one of them for its timeout (`Failed::TimedOut`), whichever call meets it (in the
    /// soak: the `begin` after the agent's own abort of the timed-out one).
    began: Option<Instant>,
    batches: Vec<Outgoing>,
    /// Topics set aside because they refused, with their batches in order.
    parked: BTreeMap<Arc<str>, Parked>,
    /// Topics that refused a line at `send` in the open transaction, and why: set aside at its
    /// abort.
    refused: BTreeMap<Arc<str>, String>,
}

/// A topic set aside: its batches wait, in order, until `retry_at`, when they join a
/// transaction again (`trying`: until it commits, or the topic refuses again and waits twice as
/// long).
struct Parked {
    queue: Vec<Outgoing>,
    retry_at: Instant,
    wait: Duration,
    trying: bool,
}

/// What the delivery callback saw fail in the open transaction, kept for its abort (the
/// callback runs on the polling thread).
#[derive(Default)]
pub struct Failures {
    /// Messages refused for good: their batch (its token's address), payload and why.
    given_up: Vec<(usize, Vec<u8>, String)>,
    /// Topics that refused, and why.
    refused: BTreeMap<Arc<str>, String>,
    /// A message failed for a reason of its own (not purged by a failure or an abort): the
    /// transaction cannot commit. Asked before each commit: with a message stuck in a failed
    /// transaction, rdkafka's commit flushes first and only ever times out (seen under load:
    /// "Flush error: OperationTimedOut", tried again for ever).
    failed: bool,
}

/// The delivery callback's part: notes a failed message of a transaction (one that failed for
/// the broker's or the connection's reasons needs nothing: the whole transaction is sent again).
pub fn note_failure(failures: &Mutex<Failures>, topic: &str, batch: usize, payload: &[u8], e: &KafkaError) {
    let mut f = failures.lock().unwrap_or_else(|p| p.into_inner());
    let code = e.rdkafka_error_code();
    // Purged: a consequence of a failure (or of an abort), which is noted on its own.
    f.failed |= !matches!(code, Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight));
    if refusal::classify_error(e) == Refusal::Permanent {
        if f.given_up.len() < GIVEN_UP_KEPT {
            f.given_up.push((batch, payload.to_vec(), e.to_string()));
        }
    } else if refusal::is_the_topics(e.rdkafka_error_code()) && !f.refused.contains_key(topic) {
        f.refused.insert(Arc::from(topic), e.to_string());
    }
}

impl TxnState {
    /// When the next set-aside topic is to be tried again.
    fn next_retry(&self) -> Option<Instant> {
        self.parked.values().filter(|p| !p.trying).map(|p| p.retry_at).min()
    }

    /// Whether `topic`'s batches are set aside now.
    fn is_parked(&self, topic: &str) -> bool {
        self.parked.get(topic).is_some_and(|p| !p.trying)
    }

    /// Puts `out` at the back of its topic's waiting batches.
    fn park(&mut self, out: Outgoing, shared: &Shared) {
        let topic = out.batch.topic.clone();
        shared.parked_changed(&topic, 1);
        self.parked.get_mut(&topic).expect("a parked topic").queue.push(out);
    }

    /// Sets `topic` aside (again) with its batches of the open transaction, in order.
    fn set_aside(&mut self, topic: Arc<str>, cause: String, shared: &Shared) {
        shared.log.warn(Waiting { topic: topic.to_string(), cause }.to_string());
        let p = self.parked.entry(topic.clone()).or_insert(Parked {
            queue: Vec::new(),
            retry_at: Instant::now(),
            wait: RETRY_WAIT / 2,
            trying: true,
        });
        if p.trying {
            p.trying = false;
            p.wait = (p.wait * 2).min(PARKED_MAX_WAIT);
            p.retry_at = Instant::now() + p.wait;
        }
        let (theirs, rest): (Vec<Outgoing>, Vec<Outgoing>) =
            std::mem::take(&mut self.batches).into_iter().partition(|o| o.batch.topic == topic);
        self.batches = rest;
        for out in theirs {
            self.park(out, shared);
        }
    }

    /// Brings the batches of set-aside topics that are due back into the next transaction.
    fn try_due(&mut self, shared: &Shared) {
        let now = Instant::now();
        for (topic, p) in self.parked.iter_mut().filter(|(_, p)| !p.trying && p.retry_at <= now) {
            p.trying = true;
            shared.parked_changed(topic, -(p.queue.len() as isize));
            self.batches.append(&mut p.queue);
        }
    }

    /// Takes out of their batches the lines refused for good, giving each up.
    fn give_up_lines(&mut self, given_up: Vec<(usize, Vec<u8>, String)>, shared: &Shared) {
        let mut buf = Vec::new();
        for (batch, payload, cause) in given_up {
            let Some(out) = self.batches.iter_mut().find(|o| Arc::as_ptr(&o.token) as usize == batch) else {
                continue; // of an earlier transaction, already taken out
            };
            let at = (0..out.batch.lines.len()).find(|&i| payload_of(&out.batch, i, shared, &mut buf) == payload);
            if let Some(i) = at {
                out.batch.remove_line(i);
                give_up(shared, &out.batch.topic, payload.len(), &cause);
            }
        }
    }
}

fn lock(state: &Mutex<TxnState>) -> MutexGuard<'_, TxnState> {
    // Every change is a move of a value or a counter; a panic cannot leave it half-made.
    state.lock().unwrap_or_else(|p| p.into_inner())
}

/// The transactional sending thread's loop.
///
/// Long on purpose: one arm per `Phase`, so that the thread's whole cycle reads in one place.
pub fn run_transactional(
    slot: &ProducerSlot,
    batches: &Receiver<Outgoing>,
    state: &Mutex<TxnState>,
    shared: &Shared,
    txn: &Transactions,
) {
    let interval = txn.settings.interval;
    loop {
        let current = slot.current();
        let producer = &*current;
        let mut st = lock(state);
        match st.phase {
            Phase::Dead => {
                drop(st);
                std::thread::sleep(Duration::from_secs(3600));
            }
            Phase::Ready => {
                st.try_due(shared);
                if st.batches.is_empty() {
                    drop(st);
                    match first_batch(batches, state, shared) {
                        Some(true) => st = lock(state),
                        Some(false) => continue,
                        None => return,
                    }
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
            Phase::TimedOut => renew(slot, &mut st, txn),
            Phase::Registering => register(producer, &mut st, shared, txn),
        }
    }
}

/// With no transaction open and nothing kept: waits for a batch (or until a set-aside topic is
/// due). Some(true): a batch is kept to begin a transaction with; Some(false): look again; None:
/// the sink is gone.
fn first_batch(batches: &Receiver<Outgoing>, state: &Mutex<TxnState>, shared: &Shared) -> Option<bool> {
    let until = lock(state).next_retry();
    let wait = until.map_or(Duration::from_secs(3600), |at| at.saturating_duration_since(Instant::now()));
    let got = match batches.recv_timeout(wait) {
        Ok(out) => out,
        Err(RecvTimeoutError::Timeout) => return Some(false),
        Err(RecvTimeoutError::Disconnected) => return None,
    };
    let mut st = lock(state);
    if st.is_parked(&got.batch.topic) {
        st.park(got, shared);
        return Some(false);
    }
    st.batches.push(got);
    Some(true)
}

/// Hands a batch's lines to librdkafka inside the open transaction and keeps the batch (one of
/// a topic set aside waits with its topic's).
fn send(producer: &KafkaProducer, st: &mut TxnState, mut out: Outgoing, shared: &Shared) {
    if st.is_parked(&out.batch.topic) {
        st.park(out, shared);
        return;
    }
    if let Err(e) = produce_lines(producer, &mut out, shared) {
        // Refused at `send` for a reason that can pass: lines of the batch may be in the
        // transaction already; abort, set the topic aside if the refusal is its own (an unknown
        // topic; not the transaction's error state after a failed message), send the rest again.
        if refusal::is_the_topics(e.rdkafka_error_code()) {
            st.refused.insert(out.batch.topic.clone(), e.to_string());
        }
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
    serve_until_delivered(producer, asked + CALL_TIMEOUT, Some(shared));
    if lock_failures(shared).failed {
        log::warn!("kafka: a message of the transaction failed; aborting it and sending its lines again");
        st.phase = Phase::MustAbort;
        return;
    }
    match producer.commit_transaction(CALL_TIMEOUT) {
        Ok(()) => {
            log::debug!("kafka: transaction of {} batches committed in {:?}", st.batches.len(), asked.elapsed());
            for out in st.batches.drain(..) {
                out.token.tracker.ack(out.token.seq);
                shared.queued.fetch_sub(1, Ordering::SeqCst);
            }
            let tried: Vec<Arc<str>> = st.parked.iter().filter(|(_, p)| p.trying).map(|(t, _)| t.clone()).collect();
            for topic in tried {
                st.parked.remove(&topic);
                log::info!("kafka: topic {topic} accepts messages again; its files go on");
            }
            *lock_failures(shared) = Failures::default(); // of messages librdkafka sent again itself
            shared.stats.txn_committed.fetch_add(1, Ordering::Relaxed);
            st.phase = Phase::Ready;
            st.began = None;
        }
        Err(_) if lock_failures(shared).failed => st.phase = Phase::MustAbort,
        Err(e) => fail(st, e, "commit", txn),
    }
}

/// Serves delivery reports until every message is delivered (or `until`). rdkafka's
/// `commit_transaction` flushes first, and its flush polls in slices of 100 ms that always last
/// their whole 100 ms: every commit took 101.5 ms, of which 100 ms that wait (measured), and the
/// live tail's p50 was 233 ms. Polled 1 ms at a time here, its own flush finds nothing left.
/// With `failed_too`, stops at the first failed message: the transaction is then aborted, and
/// messages stuck behind the failure are never delivered.
fn serve_until_delivered(producer: &KafkaProducer, until: Instant, failed_too: Option<&Shared>) {
    while producer.in_flight_count() > 0 && Instant::now() < until {
        if failed_too.is_some_and(|shared| lock_failures(shared).failed) {
            return;
        }
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
    let fenced = matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced));
    let open_for = st.began.map(|b| b.elapsed());
    if fatal && fenced && open_for.is_some_and(|d| d >= txn.settings.timeout) {
        log::warn!(
            "kafka: the transactional producer {} was fenced ({e}) after {:.0?} without a commit, past \
             transaction.timeout.ms ({:?}): the broker aborted a transaction for its timeout; a new producer \
             sends its {} batches again",
            txn.settings.transactional_id,
            open_for.unwrap_or_default(),
            txn.settings.timeout,
            st.batches.len()
        );
        // A fence that comes again without a commit in between is another agent's.
        st.began = None;
        st.phase = Phase::TimedOut;
    } else if fatal || unsupported {
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

fn lock_failures(shared: &Shared) -> MutexGuard<'_, Failures> {
    // Every change is a push or an insert; a panic cannot leave it half-made.
    shared.txn_failures.lock().unwrap_or_else(|p| p.into_inner())
}

/// Aborts the failed transaction, takes out what can never be sent (lines refused for good, the
/// batches of topics that refuse), then sends the rest again, from their first line, in a new one.
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
    // The aborted messages' reports (the failures among them) are all in once none is in flight.
    serve_until_delivered(producer, Instant::now() + CALL_TIMEOUT, None);
    let failures = std::mem::take(&mut *lock_failures(shared));
    st.give_up_lines(failures.given_up, shared);
    let refused = std::mem::take(&mut st.refused).into_iter().chain(failures.refused);
    for (topic, cause) in refused {
        st.set_aside(topic, cause, shared);
    }
    std::thread::sleep(RETRY_WAIT.min(txn.settings.interval * 10));
    st.phase = Phase::Ready;
    if !st.batches.is_empty() {
        begin_and_send(producer, st, shared, txn);
    }
}

/// Makes the new producer that goes on after a fence for a transaction's timeout.
fn renew(slot: &ProducerSlot, st: &mut TxnState, txn: &Transactions) {
    match slot.renew() {
        Ok(_) => st.phase = Phase::Registering,
        Err(e) => {
            // The same settings made the first one: not expected to fail.
            let why = format!("kafka: no new transactional producer could be made ({e}); nothing more is shipped");
            log::error!("{why}");
            st.phase = Phase::Dead;
            (txn.fatal)(why);
        }
    }
}

/// Registers the new producer's transactional id; once done, the kept batches (and the
/// set-aside topics' ones) go on as after an abort.
fn register(producer: &KafkaProducer, st: &mut TxnState, shared: &Shared, txn: &Transactions) {
    if let Err(e) = producer.init_transactions(CALL_TIMEOUT) {
        fail(st, e, "register a new producer for", txn); // fatal stops; the broker away waits
        return;
    }
    // The fenced producer's reports: purges, and the failure that fenced it.
    *lock_failures(shared) = Failures::default();
    st.refused.clear();
    shared.stats.txn_renewed.fetch_add(1, Ordering::Relaxed);
    log::info!(
        "kafka: a new transactional producer {} is registered; the {} batches not committed are sent again",
        txn.settings.transactional_id,
        st.batches.len()
    );
    st.phase = Phase::Ready;
}

/// Begins a transaction and sends in it the batches kept (a new one, or those of an aborted
/// transaction), each from its first line.
fn begin_and_send(producer: &KafkaProducer, st: &mut TxnState, shared: &Shared, txn: &Transactions) {
    if let Err(e) = producer.begin_transaction() {
        fail(st, e, "begin", txn); // the batches stay for the next try
        return;
    }
    st.phase = Phase::Open { since: Instant::now() };
    st.began.get_or_insert_with(Instant::now);
    for mut out in std::mem::take(&mut st.batches) {
        out.next = 0;
        send(producer, st, out, shared);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::Batch;

    fn out(topic: &str, line: &[u8]) -> Outgoing {
        let mut batch = Batch::new(Arc::from(topic), None);
        batch.push(line);
        let token = Arc::new(BatchAck {
            tracker: Arc::new(AckTracker::new(0)),
            seq: 0,
            end: 0,
            remaining: AtomicUsize::new(1),
        });
        Outgoing { batch, next: 0, token }
    }

    fn lines(batches: &[Outgoing]) -> Vec<&[u8]> {
        batches.iter().flat_map(|o| o.batch.lines.iter().map(|&(s, e)| &o.batch.data[s..e])).collect()
    }

    /// A refusing topic's batches leave the transaction in order, later ones queue behind them,
    /// and all come back together when it is due; each refusal doubles its wait.
    #[test]
    fn a_refusing_topic_is_set_aside_in_order_and_tried_again_later_each_time() {
        let shared = Shared::default();
        let mut st =
            TxnState { batches: vec![out("a", b"a1"), out("b", b"b1"), out("a", b"a2")], ..Default::default() };
        st.set_aside(Arc::from("a"), "unknown topic".into(), &shared);
        assert_eq!(lines(&st.batches), [b"b1"]);
        assert!(st.is_parked("a") && !st.is_parked("b"));
        st.park(out("a", b"a3"), &shared);
        assert_eq!(shared.parked_lock().get("a"), Some(&3), "its tails are held back from 4");
        let first_wait = st.parked["a"].wait;
        assert_eq!(first_wait, RETRY_WAIT);
        st.try_due(&shared);
        assert_eq!(lines(&st.batches), [b"b1"], "not due yet");
        st.parked.get_mut("a").unwrap().retry_at = Instant::now();
        st.try_due(&shared);
        assert_eq!(lines(&st.batches), [&b"b1"[..], b"a1", b"a2", b"a3"]);
        assert!(!st.is_parked("a") && shared.parked_lock().get("a").is_none());
        st.set_aside(Arc::from("a"), "unknown topic".into(), &shared);
        assert_eq!(st.parked["a"].wait, first_wait * 2, "refused again: twice as long");
        assert_eq!(lines(&st.parked["a"].queue), [&b"a1"[..], b"a2", b"a3"]);
    }

    /// A line refused for good is taken out of its batch (found by its payload); the batch stays,
    /// to be acknowledged with its transaction.
    #[test]
    fn a_line_refused_for_good_is_taken_out_of_its_batch() {
        let shared = Shared::default();
        let mut big = out("a", b"small");
        big.batch.push(b"huge");
        big.batch.push(b"after");
        let id = Arc::as_ptr(&big.token) as usize;
        let mut st = TxnState { batches: vec![big], ..Default::default() };
        st.give_up_lines(vec![(id, b"huge".to_vec(), "too large".into()), (7, b"x".to_vec(), "stale".into())], &shared);
        assert_eq!(lines(&st.batches), [&b"small"[..], b"after"]);
        assert_eq!(shared.stats.dropped.load(Ordering::Relaxed), 1);
    }
}
