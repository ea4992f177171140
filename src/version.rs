//! What `logcatch --version` says: enough for an operator to tell what a host runs.
//!
//! Exists because a fleet runs several builds at once: the version alone does not say which
//! commit, which target (the static release or a glibc build) or which librdkafka, with which
//! features (TLS, SASL, compression codecs), a host has.

use rdkafka::config::ClientConfig;

/// The crate version, the git commit and target stamped by build.rs.
pub fn short() -> String {
    format!("logcatch {} ({} {})", env!("CARGO_PKG_VERSION"), env!("LOGCATCH_COMMIT"), env!("LOGCATCH_TARGET"))
}

/// `short()`, then librdkafka's version and built-in features, one per line.
pub fn text() -> String {
    let (_, rdkafka) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_else(|e| format!("unknown ({e})"));
    format!(
        "{}\ncommit: {}\ntarget: {}\nlibrdkafka: {rdkafka}\nlibrdkafka features: {features}\n",
        short(),
        env!("LOGCATCH_COMMIT"),
        env!("LOGCATCH_TARGET")
    )
}
