//! The agent's control messages: what its main thread waits for.
//!
//! Exists apart from `agent` so that the threads below it (the file server asks for a restart in
//! place, the sending thread reports a fenced producer) send on a channel whose message type is
//! theirs to name, and no module imports the agent: the agent imports them, never the reverse.

/// What the agent's main thread waits for (one channel, one enum).
pub enum AgentMsg {
    /// SIGHUP, SIGINT or SIGTERM, forwarded by the supervised "signals" thread.
    Signal(i32),
    /// A reload changed settings a running agent cannot take (`kafkaconfig`, `data_dir`...):
    /// stop in order, then exec the same binary with the same arguments (same PID, so
    /// supervisord and systemd see no exit).
    Restart { why: String },
    /// The transactional producer was fenced: stop in order and exit 7.
    Fenced { why: String },
}
