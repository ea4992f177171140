//! What a message's payload is: the raw line (the origin system's way, the default), or the line
//! in a JSON envelope with where and when it was read (`format: json`, issue 17).
//!
//! Exists so that a consumer that only reads payloads (a search index, a SIEM) gets the host, the
//! file and the offset without reading Kafka headers. The field names are Elastic Common
//! Schema's, as Filebeat ships them:
//!
//! ```json
//! {"@timestamp":"2026-11-29T00:15:10.123Z","host":{"name":"web-7"},
//!  "log":{"file":{"path":"/var/log/app.log"},"offset":1042},"labels":{"app":"billing"},
//!  "message":"the line"}
//! ```
//!
//! `labels` holds the source's `fields` (left out when it has none).
//!
//! `@timestamp` is when the line was read (a log line's own time is the consumer's to parse).
//! JSON strings are UTF-8, log lines need not be: a line with invalid UTF-8 has each invalid
//! sequence replaced by U+FFFD and is counted (`logcatch_json_replaced_lines_total`). The
//! envelope is written by the sending thread, into one buffer reused for every message.

use std::fmt;
use std::io::Write;

/// `format`: the payload of each message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Format {
    /// The line as it is in the file, without its newline.
    #[default]
    Raw,
    /// The line in an Elastic Common Schema envelope.
    Json,
}

impl Format {
    /// `raw` or `json`; the error says what is accepted.
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "raw" => Ok(Format::Raw),
            "json" => Ok(Format::Json),
            other => Err(format!("{other:?} is not one of raw, json")),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Raw => "raw",
            Format::Json => "json",
        })
    }
}

/// What every envelope of one batch shares: its lines were read at once, from one file.
pub struct Context<'a> {
    /// `@timestamp`, already formatted (once per batch).
    pub timestamp: &'a str,
    pub host: &'a str,
    pub path: &'a str,
    /// The source's `fields`, as ECS `labels` (left out when there are none).
    pub labels: Option<&'a crate::labels::Fields>,
}

/// Writes the envelope of `line`, read at file offset `offset`, into `out` (cleared first).
/// Returns whether invalid UTF-8 had to be replaced.
pub fn write(out: &mut Vec<u8>, ctx: &Context<'_>, offset: u64, line: &[u8]) -> bool {
    out.clear();
    let message = String::from_utf8_lossy(line);
    let replaced = matches!(message, std::borrow::Cow::Owned(_));
    out.extend_from_slice(b"{\"@timestamp\":\"");
    out.extend_from_slice(ctx.timestamp.as_bytes());
    out.extend_from_slice(b"\",\"host\":{\"name\":");
    string(out, ctx.host);
    out.extend_from_slice(b"},\"log\":{\"file\":{\"path\":");
    string(out, ctx.path);
    let _ = write!(out, "}},\"offset\":{offset}}},");
    if let Some(labels) = ctx.labels.filter(|l| !l.is_empty()) {
        out.extend_from_slice(b"\"labels\":{");
        for (i, (name, value)) in labels.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            string(out, name);
            out.push(b':');
            string(out, value);
        }
        out.extend_from_slice(b"},");
    }
    out.extend_from_slice(b"\"message\":");
    string(out, &message);
    out.push(b'}');
    replaced
}

/// `s` as a JSON string (serde_json's escaping: quotes, backslashes, control characters).
fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(line: &[u8]) -> (serde_json::Value, bool) {
        let ctx = Context {
            timestamp: "2026-11-29T00:15:10.123Z",
            host: "web-7",
            path: "/var/log/a \"b\".log",
            labels: None,
        };
        let mut out = b"left over".to_vec();
        let replaced = write(&mut out, &ctx, 1042, line);
        (serde_json::from_slice(&out).expect("valid JSON"), replaced)
    }

    #[test]
    fn fields_are_ecs() {
        let (v, replaced) = envelope(b"GET /x \"quoted\"\t\\ \x01 done");
        assert!(!replaced);
        assert_eq!(
            v,
            serde_json::json!({
                "@timestamp": "2026-11-29T00:15:10.123Z",
                "host": {"name": "web-7"},
                "log": {"file": {"path": "/var/log/a \"b\".log"}, "offset": 1042},
                "message": "GET /x \"quoted\"\t\\ \u{1} done",
            })
        );
    }

    #[test]
    fn fields_are_the_envelopes_labels() {
        let labels = crate::labels::Fields(vec![("app".into(), "bill\"ing".into()), ("env".into(), "prod".into())]);
        let ctx = Context { timestamp: "t", host: "h", path: "/p", labels: Some(&labels) };
        let mut out = Vec::new();
        write(&mut out, &ctx, 7, b"x");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["labels"], serde_json::json!({"app": "bill\"ing", "env": "prod"}));
        assert_eq!(v["message"], "x");
        let empty = crate::labels::Fields::default();
        write(&mut out, &Context { labels: Some(&empty), ..ctx }, 7, b"x");
        assert!(!String::from_utf8_lossy(&out).contains("labels"));
    }

    #[test]
    fn invalid_utf8_is_replaced_and_said() {
        let (v, replaced) = envelope(b"caf\xe9 \xff ok \xc3\xa9");
        assert!(replaced);
        assert_eq!(v["message"], "caf\u{fffd} \u{fffd} ok \u{e9}");
        let (v, replaced) = envelope(b"");
        assert!(!replaced);
        assert_eq!(v["message"], "");
    }

    #[test]
    fn parse_names_what_is_accepted() {
        assert_eq!(Format::parse("json"), Ok(Format::Json));
        assert_eq!(Format::parse("raw"), Ok(Format::Raw));
        assert_eq!(Format::parse("JSON").unwrap_err(), "\"JSON\" is not one of raw, json");
    }
}
