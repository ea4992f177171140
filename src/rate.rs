//! `rate_limit` (issue 28): bytes read per second, per source and for the whole agent.
//!
//! Exists so that a backlog of gigabytes after an outage does not take the host's uplink: the
//! limit slows the *reads* (backpressure), so nothing is dropped and nothing is lost, and a file
//! read slowly keeps its place like any other. A bucket is a token bucket in debt form: a reader
//! takes what it read, the bucket goes below zero, and the reader waits until the debt is paid.
//! So a read of any size passes (a 64 KiB read under a 1 KiB/s limit waits 64 s, it is not
//! refused), and the rate over time is the limit. The bucket holds at most `BURST` of the rate:
//! a source idle for an hour does not then read an hour's worth at once.
//!
//! A source's tails share its bucket (`Rates::source`, by the entry's pattern and topic); every
//! tail also takes from the agent's (top-level `rate_limit`, changed live on a reload).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// What a full bucket holds, as a share of a second of its rate.
const BURST: f64 = 0.1;

/// One limit: its rate and its tokens (negative: debt).
#[derive(Debug)]
pub struct Bucket {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Bytes per second; 0: no limit.
    rate: u64,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: u64) -> Bucket {
        Bucket { inner: Mutex::new(Inner { rate, tokens: 0.0, at: Instant::now() }) }
    }

    /// A new rate (0: none), from now on.
    pub fn set_rate(&self, rate: u64) {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if b.rate != rate {
            *b = Inner { rate, tokens: 0.0, at: Instant::now() };
        }
    }

    /// Whether it limits at all (a rate set).
    pub fn limits(&self) -> bool {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).rate != 0
    }

    /// Takes `bytes` (read already) at `now`: how long the reader waits before it reads on.
    pub fn take_at(&self, bytes: usize, now: Instant) -> Duration {
        let mut b = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if b.rate == 0 {
            return Duration::ZERO;
        }
        let rate = b.rate as f64;
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * rate).min(rate * BURST) - bytes as f64;
        b.at = now;
        if b.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-b.tokens / rate)
        }
    }
}

/// The agent's buckets: its own, and one per source with a `rate_limit`, shared by that source's
/// tails (kept while a tail holds it).
#[derive(Debug)]
pub struct Rates {
    agent: Arc<Bucket>,
    sources: Mutex<HashMap<(String, u64), Weak<Bucket>>>,
}

impl Rates {
    /// `agent`: the top-level `rate_limit` (None: none).
    pub fn new(agent: Option<u64>) -> Rates {
        Rates { agent: Arc::new(Bucket::new(agent.unwrap_or(0))), sources: Mutex::new(HashMap::new()) }
    }

    /// A reload's top-level `rate_limit`.
    pub fn set_agent(&self, rate: Option<u64>) {
        self.agent.set_rate(rate.unwrap_or(0));
    }

    /// What a tail of `source` (its entry's pattern and topic) takes from: the source's bucket at
    /// `rate` (when it has one) and the agent's.
    pub fn limiter(&self, source: &str, rate: Option<u64>) -> Limiter {
        let own = rate.map(|r| {
            let mut map = self.sources.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, w| w.strong_count() > 0);
            let key = (source.to_string(), r);
            if let Some(b) = map.get(&key).and_then(Weak::upgrade) {
                return b;
            }
            let b = Arc::new(Bucket::new(r));
            map.insert(key, Arc::downgrade(&b));
            b
        });
        Limiter { own, agent: self.agent.clone() }
    }
}

/// The buckets one tail takes from.
#[derive(Debug, Clone)]
pub struct Limiter {
    own: Option<Arc<Bucket>>,
    agent: Arc<Bucket>,
}

impl Limiter {
    /// Whether a read may have to wait (the source's or the agent's rate is set): the looker of
    /// parked tails, which must not wait, leaves such a tail to its own thread.
    pub fn limits(&self) -> bool {
        self.own.as_ref().is_some_and(|b| b.limits()) || self.agent.limits()
    }

    /// Takes `bytes` from both buckets: the longer of their waits.
    pub fn take(&self, bytes: usize) -> Duration {
        let now = Instant::now();
        let own = self.own.as_ref().map_or(Duration::ZERO, |b| b.take_at(bytes, now));
        own.max(self.agent.take_at(bytes, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bucket whose clock starts at `t0` (a new one starts at its creation).
    fn bucket_at(rate: u64, t0: Instant) -> Bucket {
        Bucket { inner: Mutex::new(Inner { rate, tokens: 0.0, at: t0 }) }
    }

    #[test]
    fn debt_is_paid_at_the_rate() {
        let t0 = Instant::now();
        let b = bucket_at(1000, t0);
        assert_eq!(b.take_at(500, t0), Duration::from_millis(500), "an empty bucket: the whole read is debt");
        // Half a second later the debt is paid: the next 100 bytes wait 100 ms.
        assert_eq!(b.take_at(100, t0 + Duration::from_millis(500)), Duration::from_millis(100));
        // A second's idle fills the bucket to its burst (100 bytes), no more.
        let t2 = t0 + Duration::from_millis(1600);
        assert_eq!(b.take_at(100, t2), Duration::ZERO);
        assert_eq!(b.take_at(1, t2), Duration::from_millis(1));
    }

    #[test]
    fn over_time_the_rate_is_the_limit() {
        let mut now = Instant::now();
        let b = bucket_at(1 << 20, now);
        let mut read = 0usize;
        // A reader that reads 64 KiB, waits what it is told, and reads again, for 10 s.
        let end = now + Duration::from_secs(10);
        while now < end {
            now += b.take_at(64 << 10, now);
            read += 64 << 10;
        }
        let rate = read as f64 / 10.0;
        assert!((rate / f64::from(1 << 20) - 1.0).abs() < 0.02, "{rate}");
    }

    #[test]
    fn no_rate_no_wait_and_a_new_rate_applies() {
        let b = Bucket::new(0);
        assert_eq!(b.take_at(1 << 30, Instant::now()), Duration::ZERO);
        b.set_rate(1000);
        assert!(b.take_at(1000, Instant::now()) > Duration::from_millis(900));
        b.set_rate(0);
        assert_eq!(b.take_at(1 << 30, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn a_sources_tails_share_its_bucket_and_every_tail_the_agents() {
        let rates = Rates::new(None);
        let (a, b) = (rates.limiter("/l/*.log\0t", Some(1000)), rates.limiter("/l/*.log\0t", Some(1000)));
        assert!(a.take(1000) >= Duration::from_millis(900));
        assert!(b.take(1000) >= Duration::from_millis(1900), "the second tail waits behind the first");
        let other = rates.limiter("/m/x.log\0t", None);
        assert_eq!(other.take(1 << 20), Duration::ZERO);
        rates.set_agent(Some(1000));
        assert!(other.take(1000) >= Duration::from_millis(900), "the agent's limit applies to every tail");
    }
}
