//! `fields` (a source's static labels) and the topic template (issue 28).
//!
//! Exists so that config.yaml's entries and etcd's check labels and resolve `logtopic` the same
//! way. `fields: {app: billing, env: prod}` go with every message of the source: as Kafka headers
//! beside `host`, `path` and `offset` with `format: raw`, in the envelope's `labels` (Elastic
//! Common Schema's place for them) with `format: json`. A topic may name `{host}` and
//! `{fields.NAME}`: resolved once, when the entry is checked, not per line, and the result must
//! be a valid topic name.

use serde::Deserialize;

/// Labels in one source, at most.
pub const MAX_FIELDS: usize = 32;
/// Bytes in a label's name, at most.
pub const MAX_NAME_BYTES: usize = 64;
/// Bytes in a label's value, at most (each travels with every message).
pub const MAX_VALUE_BYTES: usize = 1024;
/// The headers the agent writes itself: a label may not take their names.
pub const BUILT_IN: [&str; 3] = ["host", "path", "offset"];

/// A label's value as written: YAML and JSON scalars alike (`version: 2` is the text "2").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum RawValue {
    Text(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl RawValue {
    fn text(&self) -> String {
        match self {
            RawValue::Text(s) => s.clone(),
            RawValue::Int(n) => n.to_string(),
            RawValue::Float(x) => x.to_string(),
            RawValue::Bool(b) => b.to_string(),
        }
    }
}

/// A source's labels, checked and sorted by name (comparable, so a change restarts the tail).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// Checks the labels as written: names of letters, digits, `_`, `.`, `-` (a Kafka header
    /// and a JSON key alike), not a built-in header's, values within the bounds.
    pub fn check(raw: &std::collections::BTreeMap<String, RawValue>) -> Result<Fields, String> {
        if raw.len() > MAX_FIELDS {
            return Err(format!("more than {MAX_FIELDS} labels"));
        }
        let mut out = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            if name.is_empty() || name.len() > MAX_NAME_BYTES {
                return Err(format!("{name:?}: a name of 1 to {MAX_NAME_BYTES} bytes"));
            }
            if let Some(c) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
                return Err(format!("{name:?}: has {c:?}; names allow only a-z A-Z 0-9 _ . -"));
            }
            if BUILT_IN.contains(&name.as_str()) {
                return Err(format!("{name:?}: the name of a header the agent writes itself (host, path, offset)"));
            }
            let value = value.text();
            if value.len() > MAX_VALUE_BYTES {
                return Err(format!("{name}: a value longer than {MAX_VALUE_BYTES} bytes"));
            }
            out.push((name.clone(), value));
        }
        Ok(Fields(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// What every entry of the agent shares: the host name (`{host}`) and the top-level `fields`,
/// which each entry's own extend (an entry's label wins over a top-level one of the same name).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Defaults {
    pub host: String,
    pub fields: Fields,
}

impl Fields {
    /// `self` (an entry's own) with the labels of `base` it does not name, sorted by name.
    pub fn over(mut self, base: &Fields) -> Fields {
        for (name, value) in &base.0 {
            if self.get(name).is_none() {
                self.0.push((name.clone(), value.clone()));
            }
        }
        self.0.sort();
        self
    }
}

/// `logtopic` with `{host}` and `{fields.NAME}` replaced; the error names the placeholder that
/// cannot be (the resolved name is checked by the caller, as any topic).
pub fn resolve_topic(template: &str, host: &str, fields: &Fields) -> Result<String, String> {
    if !template.contains('{') {
        return Ok(template.to_string());
    }
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').ok_or_else(|| format!("{template:?}: a '{{' without its '}}'"))? + open;
        let name = &rest[open + 1..close];
        match name.strip_prefix("fields.") {
            None if name == "host" => out.push_str(host),
            Some(f) => out.push_str(
                fields.get(f).ok_or_else(|| format!("{template:?}: {{fields.{f}}} names no label of this entry"))?,
            ),
            None => return Err(format!("{template:?}: {{{name}}} is not {{host}} or {{fields.NAME}}")),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        let raw: BTreeMap<String, RawValue> =
            pairs.iter().map(|(n, v)| (n.to_string(), RawValue::Text(v.to_string()))).collect();
        Fields::check(&raw).unwrap()
    }

    #[test]
    fn labels_are_checked_and_sorted() {
        let f = fields(&[("env", "prod"), ("app", "billing")]);
        assert_eq!(f.0, vec![("app".into(), "billing".into()), ("env".into(), "prod".into())]);
        let raw = |n: &str| BTreeMap::from([(n.to_string(), RawValue::Int(2))]);
        assert_eq!(Fields::check(&raw("version")).unwrap().0, vec![("version".into(), "2".into())]);
        for (name, why) in [("host", "a header the agent writes"), ("a b", "has ' '"), ("", "a name of 1 to")] {
            let e = Fields::check(&raw(name)).unwrap_err();
            assert!(e.contains(why), "{name:?}: {e}");
        }
        let long = BTreeMap::from([("a".to_string(), RawValue::Text("x".repeat(MAX_VALUE_BYTES + 1)))]);
        assert!(Fields::check(&long).is_err());
        let many: BTreeMap<String, RawValue> =
            (0..=MAX_FIELDS).map(|i| (format!("f{i}"), RawValue::Bool(true))).collect();
        assert!(Fields::check(&many).unwrap_err().contains("more than 32"));
    }

    #[test]
    fn an_entrys_labels_win_over_the_top_levels() {
        let own = fields(&[("app", "billing")]);
        let base = fields(&[("app", "other"), ("dc", "eu1")]);
        assert_eq!(own.over(&base).0, vec![("app".into(), "billing".into()), ("dc".into(), "eu1".into())]);
    }

    #[test]
    fn a_topic_names_the_host_and_labels() {
        let f = fields(&[("app", "billing"), ("env", "prod")]);
        assert_eq!(resolve_topic("logs", "web-7", &f).unwrap(), "logs");
        assert_eq!(resolve_topic("{fields.app}-{host}", "web-7", &f).unwrap(), "billing-web-7");
        assert_eq!(resolve_topic("x.{fields.env}.{fields.app}", "h", &f).unwrap(), "x.prod.billing");
        assert!(resolve_topic("{fields.team}", "h", &f).unwrap_err().contains("{fields.team} names no label"));
        assert!(resolve_topic("{hostname}", "h", &f).unwrap_err().contains("is not {host} or {fields.NAME}"));
        assert!(resolve_topic("a{host", "h", &f).unwrap_err().contains("without its"));
    }
}
