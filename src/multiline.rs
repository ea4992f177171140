//! Multiline events (issue 14): consecutive lines that belong together (a Java stack trace, a
//! Python traceback, a Go panic) are shipped as one message, the lines joined by `\n`.
//!
//! Exists as a pure function over lines (`group`), so that the tail only asks "which of these
//! complete lines form finished events, and where does the open one begin?" and keeps its
//! position at the start of the open event: an event is acknowledged whole or not at all, and a
//! kill resends it whole. The semantics are Vector's `multiline` (start_pattern,
//! condition_pattern, mode, timeout), with Filebeat's `max_lines` and a byte bound:
//!
//! - a line matching `start_pattern` opens an event (a line that does not, with none open, is
//!   an event of its own);
//! - `continue_through`: the lines after it that match `condition_pattern` join it;
//! - `continue_past`: they join it, and so does the one line after the last of them;
//! - `halt_before`: the lines that do *not* match join it; a matching line begins the next;
//! - `halt_with`: every line joins it, up to and including one that matches.
//!
//! An event longer than `max_lines` or `max_bytes` is cut into pieces (counted); an event still
//! open after `timeout` without a line that ends it is shipped as it is (the tail decides that,
//! it has the clock). The presets recognise where a record begins in the standard output of
//! Java (java.util.logging's SimpleFormatter, log4j, logback), Python's `logging` and Go's `log`
//! and panics; everything else joins the record before it.

use std::time::Duration;

use regex::bytes::Regex;
use serde::Deserialize;

use crate::units::{duration_text, parse_duration, parse_size_raw, RawSize};

/// How lines after the first are judged (Vector's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mode {
    ContinueThrough,
    ContinuePast,
    HaltBefore,
    HaltWith,
}

impl Mode {
    pub fn parse(text: &str) -> Result<Mode, String> {
        match text {
            "continue_through" => Ok(Mode::ContinueThrough),
            "continue_past" => Ok(Mode::ContinuePast),
            "halt_before" => Ok(Mode::HaltBefore),
            "halt_with" => Ok(Mode::HaltWith),
            other => Err(format!("{other:?} is not one of continue_through, continue_past, halt_before, halt_with")),
        }
    }
}

/// A source's `multiline` setting, as checked text (comparable, so a change restarts the tail).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spec {
    pub start_pattern: String,
    pub condition_pattern: String,
    pub mode: Mode,
    pub max_lines: usize,
    pub max_bytes: usize,
    pub timeout: Duration,
}

pub const DEFAULT_MAX_LINES: usize = 500;
pub const DEFAULT_MAX_BYTES: usize = 1024 * 1024;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// A timestamp at the start of a line, as the common formats write them: ISO 8601 and its
/// variants (`2026-11-29T01:05:21`, `2026-11-29 01:05:21,042`, in brackets or not), Go's `log`
/// (`2026/11/29 01:05:21`), java.util.logging's SimpleFormatter (`Nov 29, 2026 1:05:21 AM`), and
/// syslog's (`Nov 29 01:05:21`).
const TIMESTAMP: &str = r"\[?(\d{4}[-/]\d{2}[-/]\d{2}[T ]\d{2}:\d{2}|[A-Z][a-z]{2} \d{1,2}, \d{4} \d{1,2}:\d{2}:\d{2} [AP]M|[A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2})";

/// The presets: `halt_before` a line that begins a record.
pub fn preset(name: &str) -> Option<Spec> {
    let begins = match name {
        // A timestamped line begins a record: a JUL record's two lines, an exception's message,
        // its `at` lines, `Caused by:` and `... N more` all join the record they follow.
        "java" => format!("^{TIMESTAMP}"),
        // Also the default format `LEVEL:logger:message`; `Traceback ...`, its indented frames,
        // the exception line and the "During handling ..." chains join.
        "python" => format!("^({TIMESTAMP}|[A-Z]+:[^:\\s]*:)"),
        // Also a panic's first line; `goroutine N [...]:`, the frames and blank lines join it.
        "go" => format!("^({TIMESTAMP}|panic: |fatal error: )"),
        _ => return None,
    };
    Some(Spec {
        start_pattern: String::new(),
        condition_pattern: begins,
        mode: Mode::HaltBefore,
        max_lines: DEFAULT_MAX_LINES,
        max_bytes: DEFAULT_MAX_BYTES,
        timeout: DEFAULT_TIMEOUT,
    })
}

/// `multiline:` as written: a preset's name, or the settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Raw {
    Preset(String),
    Custom(RawCustom),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCustom {
    #[serde(default)]
    start_pattern: Option<String>,
    condition_pattern: Option<String>,
    mode: Option<String>,
    max_lines: Option<u64>,
    max_bytes: Option<RawSize>,
    #[serde(default, deserialize_with = "duration_text")]
    timeout: Option<String>,
}

impl Raw {
    /// Checks the setting (patterns compiled, numbers in range); the error names the piece.
    pub fn resolve(&self) -> Result<Spec, String> {
        let spec = match self {
            Raw::Preset(name) => {
                preset(name).ok_or_else(|| format!("{name:?} is not one of java, python, go (or a map of settings)"))?
            }
            Raw::Custom(c) => {
                let condition_pattern =
                    c.condition_pattern.clone().ok_or("condition_pattern: missing (the mode's pattern)")?;
                let mode = Mode::parse(c.mode.as_deref().ok_or("mode: missing")?).map_err(|e| format!("mode: {e}"))?;
                let max_lines = c.max_lines.map_or(DEFAULT_MAX_LINES, |n| n as usize);
                if !(1..=100_000).contains(&max_lines) {
                    return Err("max_lines: between 1 and 100000".into());
                }
                let max_bytes = match &c.max_bytes {
                    None => DEFAULT_MAX_BYTES,
                    Some(b) => parse_size_raw(b).map_err(|e| format!("max_bytes: {e}"))? as usize,
                };
                if !(16..=64 << 20).contains(&max_bytes) {
                    return Err("max_bytes: between 16 bytes and 64MiB".into());
                }
                let timeout = match &c.timeout {
                    None => DEFAULT_TIMEOUT,
                    Some(t) => parse_duration(t).map_err(|e| format!("timeout: {e}"))?,
                };
                if timeout < Duration::from_millis(10) || timeout > Duration::from_secs(3600) {
                    return Err("timeout: between 10ms and 1h".into());
                }
                Spec {
                    start_pattern: c.start_pattern.clone().unwrap_or_default(),
                    condition_pattern,
                    mode,
                    max_lines,
                    max_bytes,
                    timeout,
                }
            }
        };
        Rule::new(&spec)?;
        Ok(spec)
    }
}

/// A `Spec` with its patterns compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    start: Regex,
    condition: Regex,
    mode: Mode,
    max_lines: usize,
    max_bytes: usize,
    pub timeout: Duration,
}

impl Rule {
    /// Compiles the patterns; the error names the one that is wrong.
    pub fn new(spec: &Spec) -> Result<Rule, String> {
        let start = Regex::new(&spec.start_pattern).map_err(|e| format!("start_pattern: {e}"))?;
        let condition = Regex::new(&spec.condition_pattern).map_err(|e| format!("condition_pattern: {e}"))?;
        Ok(Rule {
            start,
            condition,
            mode: spec.mode,
            max_lines: spec.max_lines.max(1),
            max_bytes: spec.max_bytes.max(1),
            timeout: spec.timeout,
        })
    }
}

/// Lines `first..=last` (indexes into the lines given to `group`) form one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub first: usize,
    pub last: usize,
}

/// What `group` found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Grouping {
    /// Finished events, in order.
    pub events: Vec<Event>,
    /// The first line of the event still open (waiting for a line that ends it, or the timeout).
    pub open: Option<usize>,
    /// Events cut because they reached max_lines or max_bytes.
    pub cut: u64,
}

/// An event being gathered.
struct Open {
    first: usize,
    count: usize,
    bytes: usize,
    /// The last line matched the condition (what `continue_past` needs).
    matched: bool,
}

impl Open {
    fn new(first: usize, line: &[u8], matched: bool) -> Open {
        Open { first, count: 1, bytes: line.len(), matched }
    }
    fn event(&self) -> Event {
        Event { first: self.first, last: self.first + self.count - 1 }
    }
}

/// Groups complete `lines` into events. With `flush` (the open event's timeout passed, or the
/// file is done) the last event is finished too.
pub fn group(rule: &Rule, lines: &[&[u8]], flush: bool) -> Grouping {
    let mut g = Grouping::default();
    let mut open: Option<Open> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let matched = rule.condition.is_match(line);
        let Some(mut o) = open.take() else {
            // A line no event claims is one of its own; so is a `halt_with` start that ends too.
            if !rule.start.is_match(line) || (rule.mode == Mode::HaltWith && matched) {
                g.events.push(Event { first: i, last: i });
            } else {
                open = Some(Open::new(i, line, matched));
            }
            i += 1;
            continue;
        };
        let joins = match rule.mode {
            Mode::ContinueThrough => matched,
            Mode::ContinuePast => o.matched,
            Mode::HaltBefore => !matched,
            Mode::HaltWith => true,
        };
        if !joins {
            g.events.push(o.event());
            continue; // line i is looked at again, with no event open
        }
        if o.count + 1 > rule.max_lines || o.bytes + 1 + line.len() > rule.max_bytes {
            // Too long: what was gathered goes as one piece; the next piece begins here.
            g.events.push(o.event());
            g.cut += 1;
            o = Open::new(i, line, matched);
        } else {
            o.count += 1;
            o.bytes += 1 + line.len();
            o.matched = matched;
        }
        if rule.mode == Mode::HaltWith && matched {
            g.events.push(o.event());
        } else {
            open = Some(o);
        }
        i += 1;
    }
    match open {
        Some(o) if flush => g.events.push(o.event()),
        Some(o) => g.open = Some(o.first),
        None => {}
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(start: &str, condition: &str, mode: Mode) -> Rule {
        Rule::new(&Spec {
            start_pattern: start.into(),
            condition_pattern: condition.into(),
            mode,
            max_lines: DEFAULT_MAX_LINES,
            max_bytes: DEFAULT_MAX_BYTES,
            timeout: DEFAULT_TIMEOUT,
        })
        .unwrap()
    }

    /// The events of `text`'s lines, each joined by `\n`, and the open one's first line.
    fn events(rule: &Rule, text: &str, flush: bool) -> (Vec<String>, Option<String>) {
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        let g = group(rule, &lines, flush);
        let joined = g
            .events
            .iter()
            .map(|e| text.lines().skip(e.first).take(e.last - e.first + 1).collect::<Vec<_>>().join("\n"))
            .collect();
        (joined, g.open.map(|i| text.lines().nth(i).unwrap().to_string()))
    }

    #[test]
    fn the_four_modes() {
        let through = rule("^[^\\s]", "^\\s", Mode::ContinueThrough);
        let (ev, open) = events(&through, "a\n  a1\n  a2\nb\nc\n  c1", false);
        assert_eq!(ev, ["a\n  a1\n  a2", "b"]);
        assert_eq!(open.as_deref(), Some("c"));

        let past = rule("", "\\\\$", Mode::ContinuePast);
        let (ev, open) = events(&past, "one \\\ntwo \\\nthree\nfour\nfive", false);
        assert_eq!(ev, ["one \\\ntwo \\\nthree", "four"]);
        assert_eq!(open.as_deref(), Some("five"));

        let before = rule("", "^\\d{4}-", Mode::HaltBefore);
        let (ev, open) = events(&before, "2026- a\nx\ny\n2026- b\n2026- c\nz", false);
        assert_eq!(ev, ["2026- a\nx\ny", "2026- b"]);
        assert_eq!(open.as_deref(), Some("2026- c"));

        let with = rule("^BEGIN", ";$", Mode::HaltWith);
        let (ev, open) = events(&with, "single\nBEGIN x\ny;\nBEGIN;\nBEGIN z", false);
        assert_eq!(ev, ["single", "BEGIN x\ny;", "BEGIN;"]);
        assert_eq!(open.as_deref(), Some("BEGIN z"));
        let (ev, open) = events(&with, "BEGIN z\nw", true);
        assert_eq!((ev, open), (vec!["BEGIN z\nw".to_string()], None), "flushed");
    }

    #[test]
    fn long_events_are_cut_into_pieces() {
        let mut spec = preset("java").unwrap();
        spec.max_lines = 3;
        let r = Rule::new(&spec).unwrap();
        let text = "2026-11-29 01:00:00 E\n\tat 1\n\tat 2\n\tat 3\n\tat 4\n2026-11-29 01:00:01 I";
        let lines: Vec<&[u8]> = text.lines().map(str::as_bytes).collect();
        let g = group(&r, &lines, false);
        assert_eq!(g.events, [Event { first: 0, last: 2 }, Event { first: 3, last: 4 }]);
        assert_eq!((g.open, g.cut), (Some(5), 1));
        spec.max_lines = 500;
        spec.max_bytes = 30;
        let g = group(&Rule::new(&spec).unwrap(), &lines, true);
        // 21 + 1 + 5 bytes fit in 30, the next line does not: cut after "\tat 1".
        assert_eq!(g.events, [Event { first: 0, last: 1 }, Event { first: 2, last: 4 }, Event { first: 5, last: 5 }]);
        assert_eq!(g.cut, 1);
    }

    #[test]
    fn java_preset_joins_jul_records_and_nested_causes() {
        let r = Rule::new(&preset("java").unwrap()).unwrap();
        let text = "Nov 29, 2026 1:05:21 AM demo.App main\n\
                    INFO: started\n\
                    Nov 29, 2026 1:05:22 AM demo.App work\n\
                    SEVERE: failed\n\
                    java.lang.IllegalStateException: outer\n\
                    \tat demo.App.work(App.java:10)\n\
                    Caused by: java.io.IOException: inner\n\
                    \tat demo.App.read(App.java:20)\n\
                    \t... 3 more\n\
                    2026-11-29 01:05:23,042 INFO logback line\n";
        let (ev, open) = events(&r, text, false);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0], "Nov 29, 2026 1:05:21 AM demo.App main\nINFO: started");
        assert!(ev[1].starts_with("Nov 29, 2026 1:05:22 AM") && ev[1].ends_with("\t... 3 more"), "{}", ev[1]);
        assert_eq!(open.as_deref(), Some("2026-11-29 01:05:23,042 INFO logback line"));
    }

    #[test]
    fn python_and_go_presets() {
        let py = Rule::new(&preset("python").unwrap()).unwrap();
        let text = "ERROR:root:it failed\n\
                    Traceback (most recent call last):\n  File \"x.py\", line 3, in <module>\n    f()\n\
                    ValueError: boom\n\nDuring handling of the above exception, another exception occurred:\n\n\
                    KeyError: 'k'\n\
                    INFO:app:next\n";
        let (ev, open) = events(&py, text, false);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].starts_with("ERROR:root:it failed\nTraceback") && ev[0].ends_with("KeyError: 'k'"));
        assert_eq!(open.as_deref(), Some("INFO:app:next"));

        let go = Rule::new(&preset("go").unwrap()).unwrap();
        let text = "2026/11/29 01:05:21 serving\npanic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\
                    \t/src/main.go:9 +0x1d\nexit status 2\n2026/11/29 01:05:22 restarted\n";
        let (ev, _) = events(&go, text, true);
        assert_eq!(ev.len(), 3);
        assert_eq!(ev[1], "panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/src/main.go:9 +0x1d\nexit status 2");
        assert!(preset("cobol").is_none());
    }

    #[test]
    fn bad_patterns_are_named() {
        let mut spec = preset("go").unwrap();
        spec.condition_pattern = "(".into();
        assert!(Rule::new(&spec).unwrap_err().starts_with("condition_pattern: "));
        assert!(Mode::parse("halt").unwrap_err().contains("halt_before"));
    }
}
