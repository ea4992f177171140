//! A small synchronous etcd v3 client over the JSON gateway (HTTP, ureq).
//!
//! Exists because the agent needs four calls (range, put, delete, watch) and no async runtime.
//! Endpoints are tried in turn: on a connection error (or a dead watch stream) the client moves to
//! the next one, logging each switch once; when all fail the caller backs off. Optional
//! username/password: a token from `/v3/auth/authenticate`, fetched again when rejected.

use std::io::Read;
use std::time::Duration;

use serde_json::json;

pub use crate::config::Credentials;
use crate::secret::TlsFiles;
use ureq::tls::{parse_pem, Certificate, ClientCert, PemItem, PrivateKey, RootCerts, TlsConfig};

use super::gateway::{b64, decode_watch_line, unb64, LineSplitter, RangeResponse, WatchMsg};

/// What went wrong with a call; the watcher branches on it (`is_hopeless`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// No endpoint answered: each endpoint with why. Retried with backoff.
    Unreachable { tried: Vec<(String, String)> },
    /// etcd refused the user (or kept refusing its token).
    Auth { user: String, status: u16 },
    /// etcd answered the request with an error: the request itself is wrong for this etcd.
    Refused { status: u16, body: String },
    /// An answer that could not be read or understood.
    Garbage(String),
    /// The TLS files (`etcd_tls`) cannot be used: a file unreadable, no certificate or key in it.
    Tls(String),
}

impl Error {
    /// Whether retrying soon is pointless (wrong credentials, a request etcd refuses): the
    /// watcher then waits its longest backoff and says so as an error.
    pub fn is_hopeless(&self) -> bool {
        matches!(self, Error::Auth { .. } | Error::Refused { .. } | Error::Tls(_))
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Unreachable { tried } => {
                let list: Vec<String> = tried.iter().map(|(e, why)| format!("{e}: {why}")).collect();
                write!(f, "no etcd endpoint answers: {}", list.join("; "))
            }
            Error::Auth { user, status } => write!(f, "etcd refused user {user:?} (HTTP {status})"),
            Error::Refused { status, body } => write!(f, "etcd answered HTTP {status}: {body}"),
            Error::Garbage(what) => write!(f, "{what}"),
            Error::Tls(why) => write!(f, "etcd_tls: {why}"),
        }
    }
}

impl std::error::Error for Error {}

/// How long a quiet watch stream is kept before it is re-opened from the last revision (this
/// also bounds how long a silently dead connection goes unnoticed).
pub const WATCH_IDLE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A key's value as of a revision.
#[derive(Debug, PartialEq)]
pub struct Range {
    /// The store's revision when it was read.
    pub revision: i64,
    /// None when the key does not exist.
    pub value: Option<Vec<u8>>,
}

pub struct EtcdClient {
    endpoints: Vec<String>,
    current: usize,
    agent: ureq::Agent,
    watch_agent: ureq::Agent,
    creds: Option<Credentials>,
    token: Option<String>,
    /// Whether the last call reached an endpoint (to log outages and recoveries once).
    healthy: bool,
}

/// `host:port` becomes `http://host:port`; URLs are kept; trailing slashes dropped.
pub fn normalize_endpoint(e: &str) -> String {
    let e = e.trim().trim_end_matches('/');
    if e.starts_with("http://") || e.starts_with("https://") {
        e.to_string()
    } else {
        format!("http://{e}")
    }
}

fn agent(read_timeout: Option<Duration>, global: Option<Duration>, tls: &TlsConfig) -> ureq::Agent {
    ureq::Agent::config_builder()
        .tls_config(tls.clone())
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .timeout_global(global)
        .timeout_per_read(read_timeout)
        .http_status_as_error(false)
        .build()
        .into()
}

/// An int64 field, which the JSON gateway writes as a string.
fn id_field(v: &serde_json::Value, name: &str) -> Option<i64> {
    match v.get(name)? {
        serde_json::Value::String(s) => s.parse().ok(),
        n => n.as_i64(),
    }
}

/// The certificates and key of `etcd_tls`, for rustls (pure Rust: nothing more to link).
fn tls_config(files: &TlsFiles) -> Result<TlsConfig, Error> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| Error::Tls(format!("cannot read {}: {e}", path.display())))
    };
    let certs = |path: &std::path::Path| -> Result<Vec<Certificate<'static>>, Error> {
        let pem = read(path)?;
        let mut out = Vec::new();
        for item in parse_pem(&pem) {
            match item {
                Ok(PemItem::Certificate(c)) => out.push(c),
                Ok(_) => {}
                Err(e) => return Err(Error::Tls(format!("{}: {e}", path.display()))),
            }
        }
        if out.is_empty() {
            return Err(Error::Tls(format!("{}: no PEM certificate in it", path.display())));
        }
        Ok(out)
    };
    let mut builder = TlsConfig::builder();
    if let Some(ca) = &files.ca_file {
        builder = builder.root_certs(RootCerts::new_with_certs(&certs(ca)?));
    }
    if let (Some(cert), Some(key)) = (&files.cert_file, &files.key_file) {
        let chain = certs(cert)?;
        let key = PrivateKey::from_pem(&read(key)?)
            .map_err(|e| Error::Tls(format!("{}: no PEM private key in it ({e})", key.display())))?;
        builder = builder.client_cert(Some(ClientCert::new_with_certs(&chain, key)));
    }
    Ok(builder.build())
}

/// Why a watch stream stopped yielding messages; the watcher decides by the kind, not by the
/// text of ureq's message.
#[derive(Debug)]
pub enum StreamError {
    /// No byte for `WATCH_IDLE`: the key was quiet. Reopen on the same endpoint.
    Idle,
    /// The connection broke, or the stream ended (perhaps mid-message): try the next endpoint.
    Broken(String),
    /// A line that is not a watch response, or one too long: try the next endpoint.
    Garbage(String),
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamError::Idle => write!(f, "watch stream idle for {WATCH_IDLE:?}"),
            StreamError::Broken(e) | StreamError::Garbage(e) => write!(f, "{e}"),
        }
    }
}

/// Whether a read error is a timeout: ureq hands one over as an `io::Error` of kind `Other`
/// carrying `ureq::Error::Timeout`; the socket's own is `TimedOut` or `WouldBlock`.
fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock)
        || e.get_ref()
            .and_then(|i| i.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// An open watch: yields messages as they arrive on the stream.
pub struct WatchStream {
    reader: ureq::BodyReader<'static>,
    splitter: LineSplitter,
    queue: std::collections::VecDeque<WatchMsg>,
    pub endpoint: String,
}

impl WatchStream {
    /// The next message; Err when the stream broke, timed out idle, or sent garbage.
    pub fn next_msg(&mut self) -> Result<WatchMsg, StreamError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(m);
            }
            let n = match self.reader.read(&mut buf) {
                Ok(n) => n,
                Err(e) if is_timeout(&e) => return Err(StreamError::Idle),
                Err(e) => return Err(StreamError::Broken(format!("watch stream from {}: {e}", self.endpoint))),
            };
            if n == 0 {
                let cut = if self.splitter.pending() > 0 { " (cut mid-message)" } else { "" };
                return Err(StreamError::Broken(format!("watch stream from {} ended{cut}", self.endpoint)));
            }
            for line in self.splitter.push(&buf[..n]).map_err(StreamError::Garbage)? {
                self.queue.extend(decode_watch_line(&line).map_err(StreamError::Garbage)?);
            }
        }
    }
}

impl EtcdClient {
    /// `tls`: the CA and client certificate for `https://` endpoints (without it, https is
    /// checked against the Mozilla roots built into the binary). `Err` when those files cannot
    /// be used.
    pub fn new(endpoints: &[String], creds: Option<Credentials>, tls: Option<&TlsFiles>) -> Result<EtcdClient, Error> {
        let tls = match tls {
            Some(files) => tls_config(files)?,
            None => TlsConfig::default(),
        };
        Ok(EtcdClient {
            endpoints: endpoints.iter().map(|e| normalize_endpoint(e)).collect(),
            current: 0,
            agent: agent(None, Some(CALL_TIMEOUT), &tls),
            watch_agent: agent(Some(WATCH_IDLE), None, &tls),
            creds,
            token: None,
            healthy: true,
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoints[self.current]
    }

    /// POSTs `body` to `path`, trying each endpoint once, starting at the current one.
    fn call(&mut self, path: &str, body: &serde_json::Value, watch: bool) -> Result<ureq::Body, Error> {
        let mut tried = Vec::new();
        for _ in 0..self.endpoints.len() {
            let url = format!("{}{path}", self.endpoint());
            match self.post_once(&url, body, watch) {
                Ok(b) => {
                    if !self.healthy {
                        log::info!("etcd: connected to {}", self.endpoint());
                        self.healthy = true;
                    }
                    return Ok(b);
                }
                Err(Failure::Endpoint(e)) => {
                    let from = self.endpoint().to_string();
                    self.current = (self.current + 1) % self.endpoints.len();
                    if self.healthy && self.endpoints.len() > 1 {
                        log::warn!("etcd: {from} failed ({e}); switching to {}", self.endpoint());
                    }
                    tried.push((from, e));
                }
                Err(Failure::Request(e)) => return Err(e),
            }
        }
        if self.healthy {
            let list: Vec<String> = tried.iter().map(|(e, why)| format!("{e}: {why}")).collect();
            log::warn!("etcd: no endpoint answers ({}); retrying with backoff", list.join("; "));
            self.healthy = false;
        }
        Err(Error::Unreachable { tried })
    }

    fn post_once(&mut self, url: &str, body: &serde_json::Value, watch: bool) -> Result<ureq::Body, Failure> {
        for attempt in 0..2 {
            if self.creds.is_some() && self.token.is_none() {
                self.authenticate(url)?;
            }
            let agent = if watch { &self.watch_agent } else { &self.agent };
            let mut req = agent.post(url);
            if let Some(t) = &self.token {
                req = req.header("Authorization", t);
            }
            let resp = req.send_json(body).map_err(|e| Failure::Endpoint(e.to_string()))?;
            let status = resp.status().as_u16();
            let mut body = resp.into_body();
            match status {
                200 => return Ok(body),
                401 if attempt == 0 && self.creds.is_some() => {
                    self.token = None; // expired: authenticate again
                }
                500..=599 => {
                    let text = body.read_to_string().unwrap_or_default();
                    return Err(Failure::Endpoint(format!("HTTP {status}: {}", text.trim())));
                }
                _ => {
                    let text = body.read_to_string().unwrap_or_default();
                    return Err(Failure::Request(Error::Refused { status, body: text.trim().to_string() }));
                }
            }
        }
        let user = self.creds.as_ref().map(|c| c.user.clone()).unwrap_or_default();
        Err(Failure::Request(Error::Auth { user, status: 401 }))
    }

    fn authenticate(&mut self, url: &str) -> Result<(), Failure> {
        let creds = self.creds.clone().expect("credentials");
        let base = url.split("/v3/").next().unwrap_or(url);
        let resp = self
            .agent
            .post(&format!("{base}/v3/auth/authenticate"))
            .send_json(json!({"name": creds.user, "password": creds.password.expose()}))
            .map_err(|e| Failure::Endpoint(e.to_string()))?;
        if resp.status().as_u16() != 200 {
            return Err(Failure::Request(Error::Auth { user: creds.user, status: resp.status().as_u16() }));
        }
        let v: serde_json::Value = resp
            .into_body()
            .read_json()
            .map_err(|e| Failure::Endpoint(format!("unreadable authenticate answer: {e}")))?;
        self.token = v.get("token").and_then(|t| t.as_str()).map(str::to_string);
        Ok(())
    }

    fn json_call(&mut self, path: &str, body: serde_json::Value) -> Result<Vec<u8>, Error> {
        let mut b = self.call(path, &body, false)?;
        let mut out = Vec::new();
        b.as_reader()
            .take(64 * 1024 * 1024)
            .read_to_end(&mut out)
            .map_err(|e| Error::Garbage(format!("etcd {path}: {e}")))?;
        Ok(out)
    }

    /// Reads a key.
    pub fn range(&mut self, key: &str) -> Result<Range, Error> {
        let bytes = self.json_call("/v3/kv/range", json!({"key": b64(key.as_bytes())}))?;
        let r: RangeResponse = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Garbage(format!("unreadable range answer from etcd: {e}")))?;
        let value = match r.kvs.first() {
            Some(kv) => Some(unb64(&kv.value).map_err(Error::Garbage)?),
            None => None,
        };
        Ok(Range { revision: r.header.revision, value })
    }

    pub fn put(&mut self, key: &str, value: &[u8]) -> Result<(), Error> {
        self.json_call("/v3/kv/put", json!({"key": b64(key.as_bytes()), "value": b64(value)})).map(|_| ())
    }

    pub fn delete(&mut self, key: &str) -> Result<(), Error> {
        self.json_call("/v3/kv/deleterange", json!({"key": b64(key.as_bytes())})).map(|_| ())
    }

    /// Grants a lease of `ttl` seconds; its id.
    pub fn lease_grant(&mut self, ttl: u64) -> Result<i64, Error> {
        let v = self.json_value("/v3/lease/grant", json!({"TTL": ttl}))?;
        id_field(&v, "ID").ok_or_else(|| Error::Garbage(format!("no lease ID in etcd's answer: {v}")))
    }

    /// Keeps lease `id` alive; the seconds it has left (0: it is gone, expired or revoked).
    pub fn lease_keepalive(&mut self, id: i64) -> Result<i64, Error> {
        let v = self.json_value("/v3/lease/keepalive", json!({"ID": id.to_string()}))?;
        Ok(v.get("result").and_then(|r| id_field(r, "TTL")).unwrap_or(0))
    }

    /// Revokes lease `id` (its keys go at once).
    pub fn lease_revoke(&mut self, id: i64) -> Result<(), Error> {
        self.json_value("/v3/lease/revoke", json!({"ID": id.to_string()})).map(|_| ())
    }

    /// Puts `key` bound to lease `lease`.
    pub fn put_leased(&mut self, key: &str, value: &[u8], lease: i64) -> Result<(), Error> {
        let body = json!({"key": b64(key.as_bytes()), "value": b64(value), "lease": lease.to_string()});
        self.json_call("/v3/kv/put", body).map(|_| ())
    }

    /// Creates `key` bound to `lease` unless it exists: None when created, else the value there.
    pub fn create_leased(&mut self, key: &str, value: &[u8], lease: i64) -> Result<Option<Vec<u8>>, Error> {
        let k = b64(key.as_bytes());
        let body = json!({
            "compare": [{"key": k, "result": "EQUAL", "target": "CREATE", "create_revision": "0"}],
            "success": [{"request_put": {"key": k, "value": b64(value), "lease": lease.to_string()}}],
            "failure": [{"request_range": {"key": k}}],
        });
        let v = self.json_value("/v3/kv/txn", body)?;
        if v.get("succeeded").and_then(|b| b.as_bool()) == Some(true) {
            return Ok(None);
        }
        let existing = v.pointer("/responses/0/response_range/kvs/0/value").and_then(|x| x.as_str()).unwrap_or("");
        Ok(Some(unb64(existing).map_err(Error::Garbage)?))
    }

    fn json_value(&mut self, path: &str, body: serde_json::Value) -> Result<serde_json::Value, Error> {
        let bytes = self.json_call(path, body)?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Garbage(format!("unreadable answer from etcd {path}: {e}")))
    }

    /// Opens a watch of `key` from `start_revision`.
    pub fn watch(&mut self, key: &str, start_revision: i64) -> Result<WatchStream, Error> {
        let body =
            json!({"create_request": {"key": b64(key.as_bytes()), "start_revision": start_revision.to_string()}});
        let b = self.call("/v3/watch", &body, true)?;
        Ok(WatchStream {
            reader: b.into_with_config().limit(u64::MAX).reader(),
            splitter: LineSplitter::default(),
            queue: Default::default(),
            endpoint: self.endpoint().to_string(),
        })
    }

    /// etcd no longer takes the token (said inside a watch stream): the next request
    /// authenticates again.
    pub fn forget_token(&mut self) {
        self.token = None;
    }

    /// The stream from the current endpoint died: start the next watch at the next endpoint.
    pub fn rotate(&mut self) {
        self.current = (self.current + 1) % self.endpoints.len();
    }
}

enum Failure {
    /// The endpoint is down or broken: try another.
    Endpoint(String),
    /// The request itself is wrong: another endpoint will say the same.
    Request(Error),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_are_told_from_broken_streams_by_kind_not_text() {
        let ureq_timeout = std::io::Error::other(ureq::Error::Timeout(ureq::Timeout::RecvBody));
        assert!(is_timeout(&ureq_timeout));
        assert!(is_timeout(&std::io::Error::from(std::io::ErrorKind::TimedOut)));
        // A message that merely mentions a timeout is not one.
        assert!(!is_timeout(&std::io::Error::other("peer said: Timeout")));
        assert!(!is_timeout(&std::io::Error::from(std::io::ErrorKind::ConnectionReset)));
    }

    #[test]
    fn endpoints_normalize() {
        assert_eq!(normalize_endpoint("localhost:2379"), "http://localhost:2379");
        assert_eq!(normalize_endpoint("http://a:1/"), "http://a:1");
        assert_eq!(normalize_endpoint("https://a:1"), "https://a:1");
    }

    #[test]
    fn unreachable_endpoints_are_an_error_naming_them() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut c = EtcdClient::new(&[format!("127.0.0.1:{port}")], None, None).unwrap();
        let err = c.range("k").unwrap_err();
        assert!(matches!(&err, Error::Unreachable { tried } if tried.len() == 1), "{err:?}");
        assert!(!err.is_hopeless(), "an endpoint that does not answer may answer later");
        assert!(err.to_string().contains(&port.to_string()), "{err}");
        let auth = Error::Auth { user: "u".into(), status: 401 };
        assert!(auth.is_hopeless() && auth.to_string().contains("\"u\""));
    }
}
