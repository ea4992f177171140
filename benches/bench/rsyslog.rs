//! rsyslog as a same-run baseline of the live tail (issue 29: "CPU at most 0.3x rsyslog's"):
//! Debian's rsyslogd with `imfile` (inotify mode) and `omkafka` (package `rsyslog-kafka`, which
//! `scripts/install-deps.sh --bench` installs), both at their defaults, reading the same files
//! into the same broker. Skipped (no row) when rsyslogd or its omkafka module is missing.

use super::*;

/// Where Debian puts rsyslog's modules.
const MODULES: &str = "/usr/lib/x86_64-linux-gnu/rsyslog";

impl Bench {
    /// One live run of rsyslogd, like `live_agent`'s; None when it is not installed.
    pub(super) fn rsyslog_live(&mut self, name: &str, files: usize, rate: usize, secs: u64) -> Option<LiveRun> {
        let rsyslogd = ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].into_iter().map(Path::new).find(|p| p.exists())?;
        if !Path::new(MODULES).join("omkafka.so").exists() {
            return None;
        }
        Some(self.live_run(name, files, rate, secs, |b, d, paths, topic| {
            let work = d.join("rsyslog-work");
            std::fs::create_dir_all(&work).unwrap();
            // One input per file, as logcatch gets one entry per file; `%rawmsg%` is the line
            // as written (the latency reader reads its stamp).
            let inputs: String = paths
                .iter()
                .map(|p| format!("input(type=\"imfile\" File=\"{}\" Tag=\"bench\" ruleset=\"tokafka\")\n", p.display()))
                .collect();
            let conf = format!(
                "global(workDirectory=\"{work}\")\n\
                 module(load=\"imfile\" mode=\"inotify\")\n\
                 module(load=\"omkafka\")\n\
                 template(name=\"line\" type=\"string\" string=\"%rawmsg%\")\n\
                 ruleset(name=\"tokafka\") {{\n  action(type=\"omkafka\" broker=[\"{addr}\"] topic=\"{topic}\" template=\"line\")\n}}\n\
                 {inputs}",
                work = work.display(),
                addr = b.addr(),
            );
            let path = d.join("rsyslog.conf");
            std::fs::write(&path, conf).unwrap();
            let log = std::fs::File::create(d.join("rsyslog.out")).unwrap();
            Command::new(rsyslogd)
                .arg("-n")
                .arg("-f")
                .arg(&path)
                .arg("-i")
                .arg(d.join("rsyslog.pid"))
                .arg("-M")
                .arg(MODULES)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap()
        }))
    }
}
