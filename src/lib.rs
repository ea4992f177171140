//! logcatch: tails log files and ships every line to Kafka.
//!
//! Threads and what links them (see README, "How it works"); every one of them is started and
//! restarted by the `supervisor`, and `agent` starts them in order and stops them in the order
//! the delivery guarantee depends on:
//! - `config_watch`: the config thread, notices config.yaml changes;
//! - `server`: the file server, owns the desired set of tails and starts/stops them; its scans
//!   expand glob patterns (`discover`);
//! - `tail`: one thread per (file, topic), woken by `waker` (its inotify event thread) or its
//!   own poll;
//! - `etcd`: one watcher thread per etcd key;
//! - `checkpoint`: the checkpointer thread, saves acknowledged offsets;
//! - `metrics`: writes the metrics file;
//! - `sink`: the shared Kafka producer, its sending thread (transactional with
//!   `delivery: exactly_once`) and its delivery-report thread;
//! - `fleet`: keeps this agent's key in etcd;
//! - `inherit`: after a restart in place that handed deleted files over, closes those no tail
//!   took back in time.
//!
//! Pure pieces the threads use: `multiline` (lines -> events), `envelope` (the JSON payload),
//! `selector`, `desired`, `tail::resume`.
//!
//! What keeps the agent from being turned against its host (README, "Threat model"): `confine`
//! (the one confined open of every log file, and the etcd allowlist), `globwalk` (globs walked
//! without following symlinks, bounded), `statefile` (state files nobody can redirect).

pub mod ack;
pub mod agent;
pub mod alloc;
pub mod budget;
pub mod charset;
pub mod checkpoint;
pub mod claims;
pub mod cli;
pub mod config;
pub mod config_watch;
pub mod confine;
pub mod control;
pub mod desired;
pub mod discover;
pub mod envelope;
pub mod etcd;
pub mod failpoint;
pub mod fastcopy;
pub mod filter;
pub mod fingerprint;
pub mod fleet;
pub mod globwalk;
pub mod host;
pub mod inherit;
pub mod labels;
pub mod logging;
pub mod metrics;
pub mod multiline;
pub mod pattern;
pub mod probe;
pub mod process;
pub mod rate;
pub mod secret;
pub mod selector;
pub mod server;
pub mod sink;
pub mod statefile;
pub mod status;
pub mod supervisor;
pub mod tail;
pub mod timestamp;
pub mod units;
pub mod version;
pub mod waker;
