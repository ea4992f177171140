//! `include_lines` and `exclude_lines` (issue 28): which events of a source go to Kafka.
//!
//! Exists as a pure check over an event's bytes, so that the tail only asks "is this one kept?"
//! and moves its position past a dropped event as past a shipped one: a file of nothing but
//! dropped lines is not read again after a restart. The semantics are Filebeat's: the patterns
//! are unanchored regular expressions matched against the event (after `multiline`); with
//! `include_lines`, an event is kept only when one of them matches; then any match of
//! `exclude_lines` drops it. The patterns are the `regex` crate's, matched in linear time: a
//! pattern an etcd writer sends cannot take exponential time (there are no backreferences), and
//! each list is compiled with a size limit.

use std::sync::Arc;

use regex::bytes::{RegexSet, RegexSetBuilder};

/// Patterns in one list, at most.
pub const MAX_PATTERNS: usize = 64;
/// Characters in one pattern, at most.
pub const MAX_PATTERN_CHARS: usize = 4096;
/// The compiled size of one list, at most (the regex crate's default is 10 MiB: a value of
/// 10,000 entries could then hold 100 GB of programs).
const SIZE_LIMIT: usize = 1 << 20;

/// A source's filters, as checked text (compared by it, so a change restarts the tail), and
/// compiled once when checked: every tail of the entry shares the rule (a compile of a list
/// near the size limit takes ~10 ms, and a glob entry may have thousands of files).
#[derive(Debug, Clone, Default)]
pub struct Spec {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    rule: Option<Arc<Rule>>,
}

impl PartialEq for Spec {
    fn eq(&self, other: &Spec) -> bool {
        (&self.include, &self.exclude) == (&other.include, &other.exclude)
    }
}

impl Eq for Spec {}

impl PartialOrd for Spec {
    fn partial_cmp(&self, other: &Spec) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Spec {
    fn cmp(&self, other: &Spec) -> std::cmp::Ordering {
        (&self.include, &self.exclude).cmp(&(&other.include, &other.exclude))
    }
}

impl std::hash::Hash for Spec {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.include, &self.exclude).hash(state);
    }
}

/// Which list is wrong, at which index, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilterError {
    Include {
        index: usize,
        why: String,
    },
    Exclude {
        index: usize,
        why: String,
    },
    /// A list longer than `MAX_PATTERNS` (the field's name).
    TooMany(&'static str),
}

impl std::fmt::Display for FilterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterError::Include { index, why } => write!(f, "include_lines[{index}]: {why}"),
            FilterError::Exclude { index, why } => write!(f, "exclude_lines[{index}]: {why}"),
            FilterError::TooMany(field) => write!(f, "{field}: more than {MAX_PATTERNS} patterns"),
        }
    }
}

impl Spec {
    /// Checks both lists (every pattern compiles, within the bounds) and compiles them.
    pub fn check(include: &[String], exclude: &[String]) -> Result<Spec, FilterError> {
        let inc = compile(include, "include_lines").map_err(|e| e.into_include())?;
        let exc = compile(exclude, "exclude_lines").map_err(|e| e.into_exclude())?;
        let rule = (inc.is_some() || exc.is_some()).then(|| Arc::new(Rule { include: inc, exclude: exc }));
        Ok(Spec { include: include.to_vec(), exclude: exclude.to_vec(), rule })
    }

    /// The compiled rule; None when nothing is filtered.
    pub fn rule(&self) -> Option<Arc<Rule>> {
        self.rule.clone()
    }

    /// Neither list is set: every event is kept.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

/// A problem of one list, before it is known which list it is.
enum ListError {
    At(usize, String),
    TooMany(&'static str),
}

impl ListError {
    fn into_include(self) -> FilterError {
        match self {
            ListError::At(index, why) => FilterError::Include { index, why },
            ListError::TooMany(f) => FilterError::TooMany(f),
        }
    }
    fn into_exclude(self) -> FilterError {
        match self {
            ListError::At(index, why) => FilterError::Exclude { index, why },
            ListError::TooMany(f) => FilterError::TooMany(f),
        }
    }
}

fn compile(list: &[String], field: &'static str) -> Result<Option<RegexSet>, ListError> {
    if list.is_empty() {
        return Ok(None);
    }
    if list.len() > MAX_PATTERNS {
        return Err(ListError::TooMany(field));
    }
    for (i, p) in list.iter().enumerate() {
        if p.is_empty() {
            return Err(ListError::At(i, "empty pattern (it would match every line)".into()));
        }
        if p.chars().count() > MAX_PATTERN_CHARS {
            return Err(ListError::At(i, format!("longer than {MAX_PATTERN_CHARS} characters")));
        }
    }
    let set_error = match RegexSetBuilder::new(list).size_limit(SIZE_LIMIT).build() {
        Ok(set) => return Ok(Some(set)),
        Err(e) => e,
    };
    // Each alone, so that the error names the pattern that is wrong (only when the list fails).
    for (i, p) in list.iter().enumerate() {
        RegexSetBuilder::new([p]).size_limit(SIZE_LIMIT).build().map_err(|e| ListError::At(i, e.to_string()))?;
    }
    Err(ListError::At(0, format!("the list together: {set_error}")))
}

/// A `Spec` compiled, for the tail.
#[derive(Debug)]
pub struct Rule {
    include: Option<RegexSet>,
    exclude: Option<RegexSet>,
}

impl Rule {
    /// Whether `event` (without its newline) goes to Kafka.
    pub fn keeps(&self, event: &[u8]) -> bool {
        self.include.as_ref().is_none_or(|s| s.is_match(event))
            && self.exclude.as_ref().is_none_or(|s| !s.is_match(event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(include: &[&str], exclude: &[&str]) -> Arc<Rule> {
        let s = |l: &[&str]| l.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        Spec::check(&s(include), &s(exclude)).unwrap().rule().unwrap()
    }

    #[test]
    fn include_first_then_exclude_as_filebeat() {
        let r = rule(&["^ERR", "WARN"], &["healthcheck"]);
        assert!(r.keeps(b"ERR disk full"));
        assert!(r.keeps(b"2026 WARN slow"));
        assert!(!r.keeps(b"INFO fine"), "not included");
        assert!(!r.keeps(b"ERR healthcheck failed"), "included, then excluded");
        let only_exclude = rule(&[], &["DEBUG"]);
        assert!(only_exclude.keeps(b"INFO x") && !only_exclude.keeps(b"a DEBUG b"));
    }

    #[test]
    fn bytes_that_are_not_utf8_are_matched_too() {
        let r = rule(&[], &["^GET /health"]);
        assert!(!r.keeps(b"GET /health \xff\xfe"));
        assert!(r.keeps(b"\xffGET /health"));
    }

    #[test]
    fn nothing_set_is_no_rule() {
        assert!(Spec::check(&[], &[]).unwrap().rule().is_none());
        assert_eq!(Spec::check(&[], &[]).unwrap(), Spec::default());
    }

    #[test]
    fn every_bad_pattern_is_named_by_list_and_index() {
        let l = |v: &[&str]| v.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        let e = Spec::check(&l(&["ok", "("]), &[]).unwrap_err();
        assert!(matches!(&e, FilterError::Include { index: 1, .. }), "{e}");
        assert!(e.to_string().starts_with("include_lines[1]: "), "{e}");
        let e = Spec::check(&[], &l(&[""])).unwrap_err();
        assert_eq!(e.to_string(), "exclude_lines[0]: empty pattern (it would match every line)");
        let e = Spec::check(&l(&vec!["x"; 65]), &[]).unwrap_err();
        assert_eq!(e, FilterError::TooMany("include_lines"));
        let long = "a".repeat(MAX_PATTERN_CHARS + 1);
        assert!(Spec::check(&[], &[long]).is_err());
        // Backreferences (exponential in backtracking engines) are not in the regex crate's syntax.
        assert!(Spec::check(&l(&[r"(a)\1"]), &[]).is_err());
        // A pattern whose program is larger than the limit is refused, not compiled.
        let e = Spec::check(&l(&[r"\w{1000}\w{1000}\w{1000}"]), &[]).unwrap_err();
        assert!(e.to_string().contains("size limit"), "{e}");
    }
}
