//! The value of an etcd key: a JSON array `[{"path": "...", "topic": "..."}]`, checked.
//!
//! Exists so that nothing half-understood is acted on. A value that is not such an array (or has
//! an entry with an empty or invalid path or topic) is rejected whole: the key's tails keep
//! running as they were. Paths must also pass the allowlist (`confine::Allowlist`: under
//! `etcd_allowed_paths`, under none of `etcd_denied_paths`, no `.` or `..`), and every open of
//! their files is confined beneath the allowed root with no symlink followed, so that etcd
//! cannot be used to read any file on the host; a refused entry is reported and the rest of the
//! value still applies. A path may be a glob pattern (its directory
//! before the first glob component is checked here, every file it matches again when it is found)
//! and an entry may carry `"exclude": ["*.gz", ...]` and `"format": "json"`, as in config.yaml.

use std::collections::BTreeSet;
use std::path::Path;

use serde::Deserialize;

use crate::confine::{has_dot_component, Allowlist};
use crate::selector::{literal_prefix, Entry, Selector, SelectorError};

/// Values larger than this are rejected before parsing.
pub const MAX_VALUE_BYTES: usize = 16 * 1024 * 1024;
/// Entries in one value, at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    path: String,
    topic: String,
    #[serde(default)]
    exclude: Vec<String>,
    format: Option<String>,
    multiline: Option<crate::multiline::Raw>,
    #[serde(default)]
    include_lines: Vec<String>,
    #[serde(default)]
    exclude_lines: Vec<String>,
    fields: Option<std::collections::BTreeMap<String, crate::labels::RawValue>>,
    rate_limit: Option<crate::units::RawSize>,
    encoding: Option<String>,
}

/// A value that was understood: what to tail, and the entries refused by the allowlist.
#[derive(Debug, Default, PartialEq)]
pub struct Parsed {
    pub tails: BTreeSet<Selector>,
    pub refused: Vec<String>,
}

/// How long checking one value's entries may take: compiling `include_lines`/`exclude_lines`
/// costs up to ~10 ms an entry (a list near the size limit), so a value of 10,000 such entries
/// took minutes of the watcher's thread and held every compiled list. Refused whole past it, as
/// the scan of a value's globs is.
pub const CHECK_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);

/// Parses and checks a value (`defaults`: this host's name, for `{host}` in a topic, and the
/// top-level `fields`). `Err` names what is wrong; the caller keeps the key's old tails.
pub fn parse(value: &[u8], allowed: &Allowlist, defaults: &crate::labels::Defaults) -> Result<Parsed, String> {
    parse_within(value, allowed, defaults, CHECK_BUDGET)
}

/// `parse`, refusing a value whose entries take longer than `budget` to check.
pub fn parse_within(
    value: &[u8],
    allowed: &Allowlist,
    defaults: &crate::labels::Defaults,
    budget: std::time::Duration,
) -> Result<Parsed, String> {
    let started = std::time::Instant::now();
    if value.len() > MAX_VALUE_BYTES {
        return Err(format!("value is {} bytes, more than the {MAX_VALUE_BYTES} accepted", value.len()));
    }
    let text = std::str::from_utf8(value).map_err(|e| format!("value is not UTF-8: {e}"))?;
    let entries: Vec<RawEntry> = serde_json::from_str(text)
        .map_err(|e| format!("value is not a JSON array of {{\"path\": \"...\", \"topic\": \"...\"}} objects: {e}"))?;
    if entries.len() > MAX_ENTRIES {
        return Err(format!("value has {} entries, more than the {MAX_ENTRIES} accepted", entries.len()));
    }
    let mut out = Parsed::default();
    for (i, e) in entries.iter().enumerate() {
        if started.elapsed() > budget {
            return Err(too_slow(budget, i, entries.len()));
        }
        if !e.path.is_empty() && !e.path.starts_with('/') {
            return Err(format!("entry {i}: path {:?} is not absolute", e.path));
        }
        if let Some((j, ex)) = e.exclude.iter().enumerate().find(|(_, ex)| ex.contains('/') && !ex.starts_with('/')) {
            return Err(format!("entry {i}: exclude[{j}] {ex:?} has a '/' but is not absolute"));
        }
        let entry = Entry {
            path: &e.path,
            topic: &e.topic,
            exclude: &e.exclude,
            format: e.format.as_deref(),
            multiline: e.multiline.as_ref(),
            include_lines: &e.include_lines,
            exclude_lines: &e.exclude_lines,
            fields: e.fields.as_ref(),
            rate_limit: e.rate_limit.as_ref(),
            encoding: e.encoding.as_deref(),
            follow_symlinks: false,
            defaults,
        };
        let mut sel = Selector::build(&entry, Path::new("/")).map_err(|errors| entry_error(i, &errors[0]))?;
        // Checked on the text as written: `Selector::build` folds `..` away.
        if has_dot_component(Path::new(&e.path)) {
            out.refused.push(format!("{}: has a '.' or '..' component; refused", e.path.escape_debug()));
            continue;
        }
        // A glob is checked by its fixed directory here, and each file it matches when found.
        let checked = if sel.is_glob() { literal_prefix(&sel.pattern) } else { sel.pattern.clone() };
        match allowed.check(&checked) {
            Ok(access) => {
                sel.access = access;
                out.tails.insert(sel);
            }
            // Escaped: a path may hold a newline, which would forge a line of the agent's log.
            Err(why) => out.refused.push(format!("{}: {why}", e.path.escape_debug())),
        }
    }
    Ok(out)
}

/// A value whose check passed its budget at entry `i` of `n`.
fn too_slow(budget: std::time::Duration, i: usize, n: usize) -> String {
    format!(
        "checking the value took more than {budget:?} (at entry {i} of {n}: include_lines/exclude_lines patterns \
         that take long to compile?); refused"
    )
}

/// A selector's first problem, named as an etcd value's entry.
fn entry_error(i: usize, e: &SelectorError) -> String {
    match e {
        SelectorError::Path(why) if why == "missing or empty" => format!("entry {i}: empty path"),
        SelectorError::Path(why) => format!("entry {i}: path {why}"),
        SelectorError::Topic(why) => format!("entry {i}: topic {why}"),
        SelectorError::Exclude { index, why } => format!("entry {i}: exclude[{index}] {why}"),
        SelectorError::Format(why) => format!("entry {i}: format {why}"),
        SelectorError::Multiline(why) => format!("entry {i}: multiline {why}"),
        SelectorError::Filter(why) => format!("entry {i}: {why}"),
        SelectorError::Fields(why) => format!("entry {i}: fields: {why}"),
        SelectorError::RateLimit(why) => format!("entry {i}: rate_limit: {why}"),
        SelectorError::Encoding(why) => format!("entry {i}: encoding: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> crate::labels::Defaults {
        crate::labels::Defaults { host: "h".into(), fields: Default::default() }
    }
    use crate::confine::Access;

    fn allow(v: &[&str]) -> Allowlist {
        Allowlist { allowed: v.iter().map(|s| s.to_string()).collect(), denied: vec!["/var/log/auth.log*".into()] }
    }

    #[test]
    fn origin_format() {
        let p = parse(
            br#"[{"path":"/var/log/a.log","topic":"ta"},{"path":"/var/log/b.log","topic":"tb"}]"#,
            &allow(&["/var/log"]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(p.tails.len(), 2);
        assert!(p.refused.is_empty());
        assert!(parse(b"[]", &allow(&["/var/log"]), &defaults()).unwrap().tails.is_empty());
    }

    #[test]
    fn rejected_values_name_the_problem() {
        let a = allow(&["/"]);
        for (v, needle) in [
            (&b"not json"[..], "not a JSON array"),
            (b"{\"path\":\"/a\",\"topic\":\"t\"}", "not a JSON array"),
            (b"[{\"path\":\"\",\"topic\":\"t\"}]", "empty path"),
            (b"[{\"path\":\"/a\",\"topic\":\"\"}]", "topic"),
            (b"[{\"path\":\"/a\",\"topic\":\"bad topic\"}]", "topic"),
            (b"[{\"path\":\"rel/a\",\"topic\":\"t\"}]", "not absolute"),
            (b"[{\"path\":\"/a\\u0000b\",\"topic\":\"t\"}]", "NUL"),
            (b"[{\"path\":\"/a\",\"topic\":\"t\",\"extra\":1}]", "extra"),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let err = parse(v, &a, &defaults()).unwrap_err();
            assert!(err.contains(needle), "{:?}: {err}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn deep_and_huge_values_are_errors_not_crashes() {
        let deep = "[".repeat(100_000);
        assert!(parse(deep.as_bytes(), &allow(&["/"]), &defaults()).is_err());
        let huge = vec![b' '; MAX_VALUE_BYTES + 1];
        assert!(parse(&huge, &allow(&["/"]), &defaults()).unwrap_err().contains("bytes"));
    }

    #[test]
    fn refused_entries_are_named_and_the_rest_applies() {
        let a = allow(&["/var/log", "/srv/*/logs"]);
        let p = parse(
            br#"[{"path":"/var/log/ok.log","topic":"t"},
                 {"path":"/var/log/../../etc/shadow","topic":"t"},
                 {"path":"/var/log/./x.log","topic":"t"},
                 {"path":"/var/log/*/conf/.?/shadow","topic":"t"},
                 {"path":"/var/log/auth.log","topic":"t"},
                 {"path":"/etc/shadow","topic":"t"},
                 {"path":"/srv/web/logs/a.log","topic":"t"}]"#,
            &a,
            &defaults(),
        )
        .unwrap();
        let got: Vec<_> =
            p.tails.iter().map(|s| (s.pattern.to_string_lossy().into_owned(), s.access.clone())).collect();
        assert_eq!(
            got,
            [
                ("/srv/web/logs/a.log".to_string(), Access::beneath("/srv")),
                ("/var/log/*/conf/.?/shadow".to_string(), Access::beneath("/var/log")),
                ("/var/log/ok.log".to_string(), Access::beneath("/var/log")),
            ]
        );
        let refused = p.refused.join("\n");
        for needle in [
            "../../etc/shadow: has a '.' or '..'",
            "/./x.log: has a '.'",
            "auth.log: matches etcd_denied_paths",
            "/etc/shadow: outside",
        ] {
            assert!(refused.contains(needle), "{needle}: {refused}");
        }
    }

    /// A refused path is named in the log as its writer wrote it, but a newline in it cannot
    /// start a line of the agent's own.
    #[test]
    fn a_refused_path_cannot_forge_a_log_line() {
        let p = parse(
            br#"[{"path":"/etc/x\n2026-12-07T00:00:00Z [INFO] forged","topic":"t"},
                 {"path":"/var/log/../y\r\n[INFO] forged","topic":"t"}]"#,
            &allow(&["/var/log"]),
            &defaults(),
        )
        .unwrap();
        assert_eq!(p.refused.len(), 2);
        for r in &p.refused {
            assert!(!r.contains('\n') && !r.contains('\r') && r.contains("\\n"), "{r}");
        }
    }

    #[test]
    fn glob_paths_and_excludes() {
        let a = allow(&["/var/log"]);
        let p = parse(
            br#"[{"path":"/var/log/app/*.log","topic":"t","exclude":["*.gz","/var/log/app/x*"]}]"#,
            &a,
            &defaults(),
        )
        .unwrap();
        let s = p.tails.iter().next().unwrap();
        assert!(s.is_glob());
        assert_eq!(s.exclude, vec!["*.gz", "/var/log/app/x*"]);
        assert!(p.refused.is_empty());
        // The glob's fixed directory must be allowed.
        let p = parse(br#"[{"path":"/var/log/j.log","topic":"t","multiline":"java"},{"path":"/var/log/k.log","topic":"t","multiline":{"condition_pattern":";$","mode":"halt_with"}}]"#, &a, &defaults()).unwrap();
        assert!(p.tails.iter().all(|s| s.multiline.is_some()));
        let e = parse(br#"[{"path":"/var/log/j.log","topic":"t","multiline":"jaav"}]"#, &a, &defaults()).unwrap_err();
        assert!(e.starts_with("entry 0: multiline \"jaav\" is not one of"), "{e}");
        let p = parse(br#"[{"path":"/etc/*","topic":"t"}]"#, &a, &defaults()).unwrap();
        assert!(p.tails.is_empty() && p.refused.len() == 1);
        for (v, needle) in [
            (&br#"[{"path":"/var/log/[x","topic":"t"}]"#[..], "glob"),
            (br#"[{"path":"/var/log/a","topic":"t","exclude":["rel/x"]}]"#, "not absolute"),
            (br#"[{"path":"/var/log/a","topic":"t","exclude":"*.gz"}]"#, "not a JSON array"),
        ] {
            let err = parse(v, &a, &defaults()).unwrap_err();
            assert!(err.contains(needle), "{:?}: {err}", String::from_utf8_lossy(v));
        }
    }

    /// Attack: a value of many entries whose filters each take milliseconds to compile (each
    /// list within the size limit) is refused whole once its check passes the budget, named,
    /// instead of holding the watcher's thread for minutes.
    #[test]
    fn a_value_of_slow_filters_is_refused_past_the_check_budget() {
        use std::time::Duration;
        let heavy = r#"["\\w{5}0","\\w{5}1","\\w{5}2","\\w{5}3"]"#;
        let entry = |i: usize| {
            format!(r#"{{"path":"/var/log/f{i}.log","topic":"t","include_lines":{heavy},"exclude_lines":{heavy}}}"#)
        };
        let value = format!("[{}]", (0..2000).map(entry).collect::<Vec<_>>().join(","));
        let started = std::time::Instant::now();
        let e =
            parse_within(value.as_bytes(), &allow(&["/var/log"]), &defaults(), Duration::from_millis(100)).unwrap_err();
        assert!(e.contains("checking the value took more than 100ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5), "refused soon after the budget: {:?}", started.elapsed());
        // One such entry alone passes.
        assert!(parse(format!("[{}]", entry(0)).as_bytes(), &allow(&["/var/log"]), &defaults()).is_ok());
    }
}
