//! The etcd v3 JSON gateway's messages, and the splitting of a watch stream into them.
//!
//! Exists to keep the wire format (base64 keys and values, 64-bit numbers sent as strings,
//! fields left out when they hold their default) apart from the client's I/O, so it can be tested
//! on captured bytes, including a watch stream cut at arbitrary points.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Deserializer};

/// A watch stream line longer than this is an error (etcd's own request limit is 1.5 MiB).
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;

pub fn b64(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

pub fn unb64(text: &str) -> Result<Vec<u8>, String> {
    B64.decode(text).map_err(|e| format!("bad base64 from etcd: {e}"))
}

/// An int64 the gateway sends as a string ("42"), tolerating a plain number.
fn de_i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum N {
        S(String),
        I(i64),
    }
    match N::deserialize(d)? {
        N::I(i) => Ok(i),
        N::S(s) => s.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Header {
    #[serde(default, deserialize_with = "de_i64")]
    pub revision: i64,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct KeyValue {
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub value: String,
    #[serde(default, deserialize_with = "de_i64")]
    pub mod_revision: i64,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct RangeResponse {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub kvs: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct Event {
    /// Absent for PUT (the proto3 default), "DELETE" for deletes.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub kv: KeyValue,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct WatchResult {
    #[serde(default)]
    pub header: Header,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub canceled: bool,
    #[serde(default, deserialize_with = "de_i64")]
    pub compact_revision: i64,
    #[serde(default)]
    pub cancel_reason: String,
    #[serde(default)]
    pub events: Vec<Event>,
}

#[derive(Debug, Default, Deserialize, PartialEq)]
pub struct GatewayError {
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub http_code: i64,
    #[serde(default)]
    pub grpc_code: i64,
}

#[derive(Debug, Deserialize, PartialEq)]
struct WatchLine {
    #[serde(default)]
    result: Option<WatchResult>,
    #[serde(default)]
    error: Option<GatewayError>,
}

/// One message of a watch stream, decoded.
#[derive(Debug, PartialEq)]
pub enum WatchMsg {
    Created {
        revision: i64,
    },
    /// A change of the key: `value` is None for a delete.
    Change {
        revision: i64,
        value: Option<Vec<u8>>,
    },
    /// The start revision was compacted away: read the key afresh.
    Compacted {
        compact_revision: i64,
    },
    /// The watch ended on etcd's side (or the gateway reported an error); `auth` when etcd no
    /// longer takes the token (it expired or the user's auth changed): authenticate again.
    Ended {
        reason: String,
        auth: bool,
    },
    /// A message with nothing for us (progress notification).
    Progress {
        revision: i64,
    },
}

/// Decodes one line of a watch stream into messages (one line can carry several events).
pub fn decode_watch_line(line: &[u8]) -> Result<Vec<WatchMsg>, String> {
    let parsed: WatchLine =
        serde_json::from_slice(line).map_err(|e| format!("unreadable watch message from etcd: {e}"))?;
    if let Some(err) = parsed.error {
        // gRPC 16 is UNAUTHENTICATED; etcd says "invalid auth token" for an expired one.
        let auth = err.grpc_code == 16 || err.http_code == 401 || err.message.contains("auth token");
        let reason = format!("gateway error {}: {}", err.http_code, err.message);
        return Ok(vec![WatchMsg::Ended { reason, auth }]);
    }
    let Some(r) = parsed.result else {
        return Err("watch message without result or error".into());
    };
    if r.compact_revision > 0 {
        return Ok(vec![WatchMsg::Compacted { compact_revision: r.compact_revision }]);
    }
    if r.canceled {
        let auth = r.cancel_reason.contains("auth");
        return Ok(vec![WatchMsg::Ended { reason: format!("watch cancelled: {}", r.cancel_reason), auth }]);
    }
    if r.created {
        return Ok(vec![WatchMsg::Created { revision: r.header.revision }]);
    }
    if r.events.is_empty() {
        return Ok(vec![WatchMsg::Progress { revision: r.header.revision }]);
    }
    r.events
        .into_iter()
        .map(|e| {
            let revision = if e.kv.mod_revision > 0 { e.kv.mod_revision } else { r.header.revision };
            let value = match e.kind.as_deref() {
                Some("DELETE") => None,
                _ => Some(unb64(&e.kv.value)?),
            };
            Ok(WatchMsg::Change { revision, value })
        })
        .collect()
}

/// Splits a byte stream into lines, holding an incomplete last line until the rest arrives.
#[derive(Debug, Default)]
pub struct LineSplitter {
    buf: Vec<u8>,
}

impl LineSplitter {
    /// Adds bytes; returns the complete non-empty lines they finish.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Vec<u8>>, String> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=nl).collect();
            let line = line.trim_ascii();
            if !line.is_empty() {
                out.push(line.to_vec());
            }
        }
        if self.buf.len() > MAX_MESSAGE_BYTES {
            self.buf.clear();
            return Err(format!("a watch message from etcd exceeds {MAX_MESSAGE_BYTES} bytes"));
        }
        Ok(out)
    }

    /// What is left without a newline when the stream ends: a cut-off message.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &str = concat!(
        "{\"result\":{\"header\":{\"cluster_id\":\"1\",\"revision\":\"5\"},\"created\":true}}\n",
        "{\"result\":{\"header\":{\"revision\":\"6\"},\"events\":[{\"kv\":{\"key\":\"aw==\",\"create_revision\":\"6\",\"mod_revision\":\"6\",\"version\":\"1\",\"value\":\"W10=\"}}]}}\n",
        "{\"result\":{\"header\":{\"revision\":\"7\"},\"events\":[{\"type\":\"DELETE\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"7\"}}]}}\n",
    );

    fn decode_all(lines: Vec<Vec<u8>>) -> Vec<WatchMsg> {
        lines.iter().flat_map(|l| decode_watch_line(l).unwrap()).collect()
    }

    #[test]
    fn a_stream_split_at_every_byte_decodes_the_same() {
        let whole = {
            let mut s = LineSplitter::default();
            decode_all(s.push(STREAM.as_bytes()).unwrap())
        };
        assert_eq!(
            whole,
            vec![
                WatchMsg::Created { revision: 5 },
                WatchMsg::Change { revision: 6, value: Some(b"[]".to_vec()) },
                WatchMsg::Change { revision: 7, value: None },
            ]
        );
        for cut in 1..STREAM.len() {
            let mut s = LineSplitter::default();
            let mut lines = s.push(&STREAM.as_bytes()[..cut]).unwrap();
            lines.extend(s.push(&STREAM.as_bytes()[cut..]).unwrap());
            assert_eq!(decode_all(lines), whole, "cut at {cut}");
            assert_eq!(s.pending(), 0);
        }
    }

    #[test]
    fn a_stream_cut_mid_message_leaves_it_pending() {
        let mut s = LineSplitter::default();
        let lines = s.push(&STREAM.as_bytes()[..100]).unwrap();
        assert_eq!(lines.len(), 1);
        assert!(s.pending() > 0);
    }

    #[test]
    fn compaction_cancel_error_and_garbage() {
        assert_eq!(
            decode_watch_line(br#"{"result":{"header":{"revision":"9"},"compact_revision":"4","canceled":true}}"#)
                .unwrap(),
            vec![WatchMsg::Compacted { compact_revision: 4 }]
        );
        assert!(matches!(
            decode_watch_line(br#"{"error":{"grpc_code":14,"http_code":503,"message":"unavailable"}}"#).unwrap()[0],
            WatchMsg::Ended { auth: false, .. }
        ));
        assert!(matches!(
            decode_watch_line(
                br#"{"error":{"grpc_code":16,"http_code":401,"message":"etcdserver: invalid auth token"}}"#
            )
            .unwrap()[0],
            WatchMsg::Ended { auth: true, .. }
        ));
        assert!(decode_watch_line(b"{not json").is_err());
        assert!(decode_watch_line(br#"{"result":{"events":[{"kv":{"value":"!!!"}}]}}"#).is_err());
        assert!(decode_watch_line(&vec![b'['; 10_000]).is_err());
    }

    #[test]
    fn oversized_message_is_refused() {
        let mut s = LineSplitter::default();
        assert!(s.push(&vec![b'x'; MAX_MESSAGE_BYTES + 1]).is_err());
        assert_eq!(s.pending(), 0);
    }

    #[test]
    fn range_response_numbers_as_strings() {
        let r: RangeResponse = serde_json::from_str(
            r#"{"header":{"revision":"12"},"kvs":[{"key":"aw==","mod_revision":"11","value":"eA=="}],"count":"1"}"#,
        )
        .unwrap();
        assert_eq!(r.header.revision, 12);
        assert_eq!(r.kvs[0].mod_revision, 11);
        assert_eq!(unb64(&r.kvs[0].value).unwrap(), b"x");
        let empty: RangeResponse = serde_json::from_str(r#"{"header":{"revision":"3"}}"#).unwrap();
        assert!(empty.kvs.is_empty());
    }
}
