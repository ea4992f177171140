//! Scenario 15: rate_limit (issue 28).

use super::*;

impl Bench {
    /// A backlog read under `rate_limit: 1MiB` while another source of the same agent is written
    /// live (100 stamped lines/s): the backlog's measured read rate (from the agent's own
    /// `logcatch_source_bytes_total`, between two metrics files 5 s and `secs` s in), and the
    /// live source's p99 latency against the same live source with no backlog beside it, same
    /// run.
    pub(super) fn rate_limit(&mut self) -> Vec<Row> {
        let s = "15. rate_limit";
        let secs: u64 = if self.quick { 20 } else { 40 };
        let backlog_mb: usize = if self.quick { 50 } else { 200 };
        let backlog = self.dir.path().join("backlog.log");
        numbered_file(&backlog, backlog_mb * 1_000_000 / LINE_BYTES);
        let (p99_alone, _) = self.rate_run("rl-alone", None, secs);
        let (p99_beside, rate) = self.rate_run("rl-beside", Some(&backlog), secs);
        let limit = f64::from(1u32 << 20);
        let rate = rate.unwrap_or(0.0);
        vec![
            row(
                s,
                &format!("read rate of a {backlog_mb} MB backlog under rate_limit: 1MiB ({secs} s)"),
                format!("{:.3}x the limit ({:.0} bytes/s)", rate / limit, rate),
                "within 5%",
                Some((rate / limit - 1.0).abs() <= 0.05),
            ),
            row(
                s,
                "live source's p99 beside the throttled backlog / alone",
                format!("{:.2}x ({p99_beside:.1} / {p99_alone:.1} ms)", p99_beside / p99_alone),
                "<= 1.5x",
                Some(p99_beside / p99_alone <= 1.5),
            ),
        ]
    }

    /// One agent: a live file written at 100 lines/s for `secs`, and `backlog` (when given)
    /// under `rate_limit: 1MiB`. The live lines' p99 (ms) and the backlog's read rate.
    fn rate_run(&mut self, name: &str, backlog: Option<&Path>, secs: u64) -> (f64, Option<f64>) {
        let d = self.run_dir(name);
        let live = d.join("live.log");
        std::fs::write(&live, "").unwrap();
        let (live_topic, slow_topic) = (self.topic(&format!("{name}-live")), self.topic(&format!("{name}-slow")));
        let mut files = vec![(live.clone(), live_topic.clone())];
        if let Some(b) = backlog {
            files.push((b.to_path_buf(), slow_topic.clone()));
        }
        let prom = d.join("logcatch.prom");
        let extra = format!("start_position: beginning\nmetrics: {{path: {}, interval: 1s}}\n", prom.display());
        let cfg = self.config(&d, &files, &extra);
        let text = std::fs::read_to_string(&cfg).unwrap();
        let text =
            text.replace(&format!("logtopic: {slow_topic}}}"), &format!("logtopic: {slow_topic}, rate_limit: 1MiB}}"));
        std::fs::write(&cfg, text).unwrap();
        let rate = 100;
        let reader = self.latency_reader(&live_topic, rate * secs as usize, secs);
        let mut child = self.spawn_agent(&cfg);
        let bytes_at = |prom: &Path| -> Option<(f64, f64)> {
            let m = logcatch::metrics::parse(&std::fs::read_to_string(prom).ok()?).ok()?;
            let at = m.value("logcatch_metrics_timestamp_seconds")?;
            let b = m.by_source("logcatch_source_bytes_total");
            let path = backlog?.to_string_lossy().into_owned();
            Some((at, *b.get(&(path, slow_topic.clone()))?))
        };
        let mut first = None;
        let mut f = std::fs::OpenOptions::new().append(true).open(&live).unwrap();
        let t0 = Instant::now();
        for t in 0..(secs as u32 * 100) {
            if let Some(w) = (t0 + Duration::from_millis(10) * t).checked_duration_since(Instant::now()) {
                std::thread::sleep(w);
            }
            let mut line = Vec::with_capacity(LINE_BYTES);
            live_line(&mut line);
            line.push(b'\n');
            f.write_all(&line).unwrap();
            if first.is_none() && t0.elapsed() >= Duration::from_secs(5) {
                first = bytes_at(&prom);
            }
        }
        let last = bytes_at(&prom);
        let (_, lat) = reader.join().unwrap();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let rate = match (first, last) {
            (Some((t1, b1)), Some((t2, b2))) if t2 > t1 => Some((b2 - b1) / (t2 - t1)),
            _ => None,
        };
        eprintln!("rate_limit {name}: live p99 {:.1} ms, backlog {rate:?} bytes/s", percentile(&lat, 0.99));
        (percentile(&lat, 0.99), rate)
    }
}
