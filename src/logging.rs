//! The agent's own log: `catsyslog.logpath` (appended to) and stderr, at `catsyslog.loglevel`.
//!
//! A logger of the agent's own rather than a general one, for one guarantee: a record is one
//! line. Messages carry text from outside (a path from an etcd value, a broker's error, a file
//! name a local user chose); a newline in it would forge a line that a reader of the log, or a
//! tool grepping it, takes for the agent's own. So every control character of a message is
//! written escaped (`\n`, `\u{1b}`), and the line goes out in one `write` (lines from threads
//! never interleave). simplelog, used before, hands its writer a record in pieces, which left
//! no place to do either.
//!
//! Warnings and errors are written at most `flood::BURST` per call site in `flood::WINDOW`, the
//! rest counted and said in one line (`flood`).
//!
//! The level is applied with `log::set_max_level`, so a reload of config.yaml can change it
//! live. The file is reopened by SIGHUP (`reopen`): logrotate renames it and signals the agent
//! in `postrotate`, and a descriptor kept open went on writing into the renamed file.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::config::LogSettings;

mod flood;

/// The log file and the path it is reopened from.
struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

/// Set once, by `init`, when `catsyslog.logpath` is.
static LOG_FILE: OnceLock<Arc<LogFile>> = OnceLock::new();

/// Targets whose records are dropped: the HTTP client's per-request debug lines drown the
/// agent's own.
const IGNORED_TARGETS: [&str; 2] = ["ureq", "rustls"];

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A write that panicked leaves at worst a partial line; a count, one record too many.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes each record to stderr and, when set, to the log file.
struct Logger {
    file: Option<Arc<LogFile>>,
    flood: Mutex<flood::Flood>,
    /// A window holds records back: any record asks whether its summary is due, and writes it
    /// first (a flood is said with the next record after its window closed, of any level).
    holding: AtomicBool,
}

impl Logger {
    fn write(&self, text: &str) {
        // Nowhere to report a failed write of the log itself.
        let _ = io::stderr().lock().write_all(text.as_bytes());
        if let Some(log) = &self.file {
            let _ = lock(&log.file).write_all(text.as_bytes());
        }
    }

    /// Whether `record` is written (a warning or an error over its call site's bound is not),
    /// and the summaries due: written first, they come before it.
    fn admit(&self, record: &log::Record) -> (bool, Vec<flood::Summary>) {
        let limited = record.level() <= log::Level::Warn;
        if !limited && !self.holding.load(Ordering::Relaxed) {
            return (true, Vec::new());
        }
        let now = Instant::now();
        let mut flood = lock(&self.flood);
        let due = flood.closed(now);
        let write = !limited || {
            let site = (record.file().unwrap_or(record.target()).to_string(), record.line().unwrap_or(0));
            flood.admit(site, now, || {
                // Kept as it would be written, escaped and cut at `MESSAGE_MAX`: never the
                // whole of a message that may be any size.
                let mut last = String::new();
                let _ = write!(Escaping { out: &mut last, room: MESSAGE_MAX, cut: 0 }, "{}", record.args());
                last
            })
        };
        self.holding.store(flood.holding(), Ordering::Relaxed);
        (write, due)
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level() && !IGNORED_TARGETS.iter().any(|t| metadata.target().starts_with(t))
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let (write, due) = self.admit(record);
        for s in due {
            let (file, at) = &s.site;
            let said = format_args!(
                "{} more warnings and errors from {file}:{at} were not logged (at most {} in {:?}); the last: {}",
                s.held,
                flood::BURST,
                flood::WINDOW,
                s.last
            );
            self.write(&line(SystemTime::now(), log::Level::Warn, &said));
        }
        if write {
            self.write(&line(SystemTime::now(), record.level(), record.args()));
        }
    }

    fn flush(&self) {
        if let Some(log) = &self.file {
            let _ = lock(&log.file).flush();
        }
    }
}

/// The longest message written whole, in bytes as written (escaped). Messages carry text from
/// outside, and most of it is bounded where it enters (a path by PATH_MAX, a list of files by
/// "and N more"); this bounds the rest, whatever a broker's error or a future message holds:
/// a line of the log is at most this and its prefix, and the end says how much was cut.
const MESSAGE_MAX: usize = 4096;

/// One record as written: `2026-12-07T09:27:21.314888705Z [INFO] message\n`, the message's
/// control characters escaped, cut at `MESSAGE_MAX`.
fn line(now: SystemTime, level: log::Level, args: &std::fmt::Arguments) -> String {
    let mut out = String::with_capacity(96);
    rfc3339(now, &mut out);
    let _ = write!(out, " [{level}] ");
    let mut escaping = Escaping { out: &mut out, room: MESSAGE_MAX, cut: 0 };
    let _ = write!(escaping, "{args}");
    let cut = escaping.cut;
    if cut > 0 {
        let _ = write!(out, "... ({cut} more bytes of this message not logged)");
    }
    out.push('\n');
    out
}

/// A `fmt::Write` that escapes control characters as they are written, and writes at most
/// `room` bytes; what does not fit is counted in `cut`.
struct Escaping<'a> {
    out: &'a mut String,
    room: usize,
    cut: usize,
}

impl std::fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for c in s.chars() {
            let start = self.out.len();
            if c.is_control() && c != '\t' {
                self.out.extend(c.escape_debug());
            } else {
                self.out.push(c);
            }
            let written = self.out.len() - start;
            if written <= self.room {
                self.room -= written;
            } else {
                // Nothing after a character that did not fit: the line keeps its order.
                self.out.truncate(start);
                self.room = 0;
                self.cut += c.len_utf8();
            }
        }
        Ok(())
    }
}

/// `t` in UTC as RFC 3339 with nanoseconds. UTC rather than the host's zone: a local offset
/// cannot be read soundly once threads run (the `time` crate refuses to), and a fleet's logs
/// compare across zones.
fn rfc3339(t: SystemTime, out: &mut String) {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        since.subsec_nanos()
    );
}

/// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Opens the log at `path` for appending (created if absent, never through a symlink).
fn open(path: &Path) -> Result<File, String> {
    crate::statefile::open(path, crate::statefile::Mode::Append)
        .map_err(|e| format!("catsyslog.logpath: cannot open {}: {e}", path.display()))
}

/// Opens `catsyslog.logpath` again (SIGHUP): the file at the path now, created if logrotate moved
/// it away without `create`. When it cannot be opened the old file is kept, and the error says
/// why. Without a log file, nothing to do.
pub fn reopen() -> Result<(), String> {
    let Some(log) = LOG_FILE.get() else { return Ok(()) };
    let file = open(&log.path)?;
    *lock(&log.file) = file;
    Ok(())
}

pub fn init(settings: &LogSettings) -> Result<(), String> {
    let mut file = None;
    if let Some(path) = &settings.path {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("catsyslog.logpath: cannot create {}: {e}", dir.display()))?;
        }
        let log = Arc::new(LogFile { path: path.clone(), file: Mutex::new(open(path)?) });
        let _ = LOG_FILE.set(log.clone());
        file = Some(log);
    }
    // Set once per process; the logger lives as long as it.
    let logger = Logger { file, flood: Mutex::default(), holding: AtomicBool::new(false) };
    log::set_logger(Box::leak(Box::new(logger))).map_err(|e| format!("cannot set up logging: {e}"))?;
    log::set_max_level(settings.level);
    Ok(())
}

/// Panics are logged (with their thread) before the supervisor restarts the thread.
pub fn log_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        log::error!("thread {thread} panicked: {info}");
        default(info);
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_message_cannot_forge_a_log_line() {
        let path = "/var/log/app.log\n2026-12-07T00:00:00.000000000Z [INFO] all is well\r\u{1b}[2J";
        let text = line(UNIX_EPOCH, log::Level::Warn, &format_args!("cannot open {path}: gone"));
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(
            text,
            "1970-01-01T00:00:00.000000000Z [WARN] cannot open /var/log/app.log\\n2026-12-07T00:00:00.000000000Z \
             [INFO] all is well\\r\\u{1b}[2J: gone\n"
        );
    }

    #[test]
    fn a_message_is_cut_at_its_bound_and_says_so() {
        let value = "x".repeat(MESSAGE_MAX - 3) + "日本\n" + &"y".repeat(1000);
        let text = line(UNIX_EPOCH, log::Level::Warn, &format_args!("{value}"));
        assert_eq!(text.lines().count(), 1);
        let message = &text["1970-01-01T00:00:00.000000000Z [WARN] ".len()..];
        // "日" (3 bytes) fits exactly; "本" does not, nor anything after it.
        assert!(message.starts_with(&("x".repeat(MESSAGE_MAX - 3) + "日...")), "{message}");
        assert!(message.ends_with("... (1004 more bytes of this message not logged)\n"), "{message}");
        let short = line(UNIX_EPOCH, log::Level::Info, &format_args!("{}", "z".repeat(MESSAGE_MAX)));
        assert!(!short.contains("not logged"), "a message of exactly the bound is whole");
    }

    /// A held message is kept for its summary bounded, whatever its size.
    #[test]
    fn a_held_message_is_kept_cut_at_its_bound() {
        let logger = Logger { file: None, flood: Mutex::default(), holding: AtomicBool::new(false) };
        let huge = "\u{1b}".repeat(1 << 20);
        let record = |text: &str| {
            let args = format_args!("refused {text}");
            let r =
                log::Record::builder().level(log::Level::Error).file(Some("src/x.rs")).line(Some(7)).args(args).build();
            logger.admit(&r).0
        };
        for _ in 0..flood::BURST {
            assert!(record(""));
        }
        assert!(!record(&huge), "over the bound: held");
        let due = lock(&logger.flood).closed(Instant::now() + flood::WINDOW);
        assert_eq!(due.len(), 1);
        assert!(
            due[0].last.len() <= MESSAGE_MAX && due[0].last.starts_with("refused \\u{1b}"),
            "{}",
            due[0].last.len()
        );
    }

    #[test]
    fn tabs_and_non_ascii_text_are_kept() {
        let text = line(UNIX_EPOCH, log::Level::Info, &format_args!("a\tb /var/log/日志.log"));
        assert!(text.ends_with("[INFO] a\tb /var/log/日志.log\n"), "{text}");
    }

    #[test]
    fn times_are_utc_rfc3339_with_nanoseconds() {
        let at = |secs: u64, nanos: u32| {
            let mut s = String::new();
            rfc3339(UNIX_EPOCH + Duration::new(secs, nanos), &mut s);
            s
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.000000005Z");
        assert_eq!(at(1_796_635_641, 314_888_705), "2026-12-07T09:27:21.314888705Z");
        assert_eq!(at(4_102_444_799, 999_999_999), "2099-12-31T23:59:59.999999999Z");
    }
}
