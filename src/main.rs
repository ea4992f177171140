//! The `logcatch` binary: parses the command line and wires the threads. No logic lives here.

use std::process::ExitCode;

use logcatch::cli::{self, Command};
use logcatch::config::Config;
use logcatch::{agent, probe, status, version};

/// The allocator, on Linux (see Cargo.toml: musl's own cost 3.8x the CPU per line, glibc's made
/// Kafka headers cost 2.4x).
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The static release's memcpy/memmove (see src/fastcopy.rs): referenced here so the linker
/// takes them from logcatch's archive before it reaches musl's libc.a.
#[cfg(all(target_env = "musl", logcatch_fastcopy))]
#[used]
static FASTCOPY: unsafe extern "C" fn(*mut u8, *const u8, usize) -> *mut u8 = logcatch::fastcopy::logcatch_memmove;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("logcatch: {e}\n\n{}", cli::USAGE);
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Command::Version => {
            print!("{}", version::text());
            ExitCode::SUCCESS
        }
        Command::Check { config } => match Config::load(&config) {
            Ok(c) => {
                for w in &c.warnings {
                    eprintln!("warning: {w}");
                }
                println!(
                    "{}: OK ({} entries in collectlogs, {} etcd keys)",
                    c.file.display(),
                    c.sources.len(),
                    c.etcd.keys.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::from(1)
            }
        },
        Command::Test { config, produce } => {
            if probe::run(&config, produce) {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Status { config } => {
            let (text, code) = status::status(&config);
            print!("{text}");
            ExitCode::from(code)
        }
        Command::Run { config } => match agent::run(&config) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                // Before logging is set up only stderr can say it; after, the log says it
                // (to stderr as well).
                match e {
                    agent::StartError::Config(_) | agent::StartError::Log(_) => eprintln!("{e}"),
                    _ => log::error!("{e}"),
                }
                ExitCode::from(e.exit_code())
            }
        },
    }
}
