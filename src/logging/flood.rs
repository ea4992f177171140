//! At most `BURST` warnings and errors from one place in the code in `WINDOW`; what is held
//! back is counted and said in one line when the window closes.
//!
//! Exists because outsiders choose how often some warnings come: one etcd value may hold tens of
//! thousands of refused entries (etcd takes 1.5 MiB a request), each worth a line, and its writer
//! may put it again every second; a local user may make thousands of files a glob refuses. Each
//! line is bounded (`MESSAGE_MAX`); their number was not, and a log that fills the disk or hides
//! the one line that matters helps no one. Vector does the same for its own log
//! (`internal_log_rate_limit`, 10 s by default, per call site); Fluent Bit has no such limit.
//!
//! Per call site (file and line), not per message: a flood's lines differ (each names its path).
//! Information and debug records are not limited: the agent writes them at a pace of its own
//! (a tail started, a key watched), and operators and tests count them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a window lasts: Vector's default.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Records written per call site and window: room for an ordinary burst (a host's files refused
/// at start, each named) before the count takes over.
pub const BURST: u32 = 20;

/// Where a record comes from: its source file and line.
pub type Site = (String, u32);

/// The windows open, one per call site heard from in the last `WINDOW`.
#[derive(Default)]
pub struct Flood {
    sites: HashMap<Site, Window>,
}

struct Window {
    since: Instant,
    shown: u32,
    held: u64,
    /// The last record held back (its message), for the summary.
    last: String,
}

/// What a closed window held back: `held` records from `site`, the last of them `last`.
#[derive(Debug, PartialEq, Eq)]
pub struct Summary {
    pub site: Site,
    pub held: u64,
    pub last: String,
}

impl Flood {
    /// Whether a record from `site` at `now` is written; when it is not, `message` is kept as
    /// the window's last (`MESSAGE_MAX` at most, cut by the caller).
    pub fn admit(&mut self, site: Site, now: Instant, message: impl FnOnce() -> String) -> bool {
        let w = self.sites.entry(site).or_insert_with(|| Window { since: now, shown: 0, held: 0, last: String::new() });
        if now.saturating_duration_since(w.since) >= WINDOW && w.held == 0 {
            *w = Window { since: now, shown: 0, held: 0, last: String::new() };
        }
        if w.shown < BURST {
            w.shown += 1;
            return true;
        }
        w.held += 1;
        w.last = message();
        false
    }

    /// The windows closed by `now` that held records back, each said once; windows closed are
    /// forgotten (the map holds only the call sites of the last `WINDOW`).
    pub fn closed(&mut self, now: Instant) -> Vec<Summary> {
        let mut out = Vec::new();
        self.sites.retain(|site, w| {
            if now.saturating_duration_since(w.since) < WINDOW {
                return true;
            }
            if w.held > 0 {
                out.push(Summary { site: site.clone(), held: w.held, last: std::mem::take(&mut w.last) });
            }
            false
        });
        out
    }

    /// Whether a window holds records back (its summary is due when it closes).
    pub fn holding(&self) -> bool {
        self.sites.values().any(|w| w.held > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(line: u32) -> Site {
        ("src/etcd/watcher.rs".into(), line)
    }

    #[test]
    fn a_burst_is_written_then_counted_then_said_once() {
        let mut f = Flood::default();
        let t0 = Instant::now();
        let written = (0..100).filter(|i| f.admit(site(75), t0, || format!("refused {i}"))).count();
        assert_eq!(written, BURST as usize);
        assert!(f.holding());
        assert_eq!(f.closed(t0 + WINDOW / 2), vec![], "the window is still open");
        let closed = f.closed(t0 + WINDOW);
        assert_eq!(closed, vec![Summary { site: site(75), held: 100 - u64::from(BURST), last: "refused 99".into() }]);
        assert!(f.closed(t0 + WINDOW * 3).is_empty(), "said once");
        assert!(!f.holding());
        // A new window writes again.
        assert!(f.admit(site(75), t0 + WINDOW * 3, String::new));
    }

    #[test]
    fn call_sites_are_counted_apart() {
        let mut f = Flood::default();
        let t0 = Instant::now();
        for _ in 0..BURST {
            assert!(f.admit(site(75), t0, String::new));
        }
        assert!(!f.admit(site(75), t0, String::new));
        assert!(f.admit(site(80), t0, String::new), "another site has its own window");
    }

    #[test]
    fn a_quiet_window_is_forgotten_and_a_slow_site_is_never_held() {
        let mut f = Flood::default();
        let t0 = Instant::now();
        // One record a second for a minute: never more than BURST in a window.
        for s in 0..60 {
            let now = t0 + Duration::from_secs(s);
            assert!(f.admit(site(1), now, String::new), "second {s}");
            assert!(f.closed(now).is_empty());
        }
        f.closed(t0 + Duration::from_secs(100));
        assert!(f.sites.is_empty(), "closed windows are forgotten");
    }
}
