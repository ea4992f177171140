//! The command line: `logcatch [-c FILE] [--check] | status | test [--produce] | --version | --help`.
//!
//! Exists so argument handling is plain data with unit tests, and `main` only dispatches.

use std::path::PathBuf;

pub const USAGE: &str = "\
logcatch - tails log files and ships every line to Kafka

USAGE:
    logcatch [-c|--config FILE]            run the agent (default config: ./config.yaml)
    logcatch [-c|--config FILE] --check    validate the config and exit
    logcatch status [-c|--config FILE]     report from the metrics file; exit 0 running, 2 stopped
                                           or dead, 3 stuck (for cron)
    logcatch test [-c|--config FILE] [--produce]
                                           check the config, then Kafka (brokers, TLS/SASL, each
                                           topic; --produce writes a probe message) and each etcd
                                           endpoint and key: a line per check, OK or FAIL; exit 0
                                           only if all pass, 1 otherwise
    logcatch --version | --help

SIGNALS:
    SIGINT, SIGTERM  stop: tails stop, in-flight lines are flushed (bounded), checkpoints saved
    SIGHUP           reload config.yaml now

EXIT CODES:
    0  ran and stopped cleanly (SIGINT/SIGTERM), or --check found the config good
    1  the config file is missing or invalid (every problem is printed with its field)
    2  bad command line
    3  the state in data_dir cannot be used (for example a corrupt checkpoint store)
    4  the Kafka producer rejected its settings (kafkaconfig)
    5  another logcatch runs on the same data_dir (or pid_file names a running one)
    6  a reload needed a restart in place and the exec of the binary failed
    7  delivery: exactly_once: the producer was fenced, or the broker has no transactions
";

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run {
        config: PathBuf,
    },
    Check {
        config: PathBuf,
    },
    Status {
        config: PathBuf,
    },
    /// `logcatch test`: the config, then each connection it names.
    Test {
        config: PathBuf,
        produce: bool,
    },
    Version,
    Help,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut config = PathBuf::from("config.yaml");
    let mut check = false;
    let (mut status, mut test, mut produce) = (false, false, false);
    let mut it = args.into_iter().peekable();
    match it.peek().map(String::as_str) {
        Some("status") => status = true,
        Some("test") => test = true,
        _ => {}
    }
    if status || test {
        it.next();
    }
    while let Some(a) = it.next() {
        match a.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--check" => check = true,
            "--produce" if test => produce = true,
            "-c" | "--config" => {
                config = it.next().filter(|v| !v.is_empty()).ok_or_else(|| format!("{a} needs a file name"))?.into();
            }
            other => {
                if let Some(v) = other.strip_prefix("--config=") {
                    config = v.into();
                } else {
                    return Err(format!("unknown argument {other:?}"));
                }
            }
        }
    }
    if test {
        return Ok(Command::Test { config, produce });
    }
    Ok(match (status, check) {
        (true, _) => Command::Status { config },
        (false, true) => Command::Check { config },
        (false, false) => Command::Run { config },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn forms() {
        assert_eq!(p(&[]).unwrap(), Command::Run { config: "config.yaml".into() });
        assert_eq!(p(&["-c", "/x.yaml"]).unwrap(), Command::Run { config: "/x.yaml".into() });
        assert_eq!(p(&["--config=/y.yaml", "--check"]).unwrap(), Command::Check { config: "/y.yaml".into() });
        assert_eq!(p(&["--version"]).unwrap(), Command::Version);
        assert_eq!(p(&["status", "-c", "/z.yaml"]).unwrap(), Command::Status { config: "/z.yaml".into() });
        assert_eq!(p(&["test", "-c", "/t.yaml"]).unwrap(), Command::Test { config: "/t.yaml".into(), produce: false });
        assert_eq!(p(&["test", "--produce"]).unwrap(), Command::Test { config: "config.yaml".into(), produce: true });
        assert!(p(&["--produce"]).is_err(), "only for test");
        assert_eq!(p(&["-h"]).unwrap(), Command::Help);
        assert!(p(&["-c"]).is_err());
        assert!(p(&["--frobnicate"]).is_err());
    }
}
