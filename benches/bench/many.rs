//! Scenario 10: ten thousand files.

use super::*;

impl Bench {
    /// Issue 15, as a new user tries it: one glob matching 10,000 files of 10 lines each; the
    /// time from start until every line is in Kafka (read back), then the idle agent's CPU, RSS
    /// and threads.
    pub(super) fn many_files(&mut self) -> Vec<Row> {
        let (files, per_file, idle_secs) = (10_000usize, 10usize, if self.quick { 10 } else { 30 });
        let topic = self.topic("many");
        let d = self.run_dir("many");
        let logs = d.join("logs");
        std::fs::create_dir_all(&logs).unwrap();
        for i in 0..files {
            let mut text = String::new();
            for j in 0..per_file {
                text.push_str(&format!("file {i:05} line {j} {}\n", "x".repeat(80)));
            }
            std::fs::write(logs.join(format!("f{i:05}.log")), text).unwrap();
        }
        let cfg = self.config(&d, &[(logs.join("*.log"), topic.clone())], "start_position: beginning\n");
        let total = files * per_file;
        let reader = ReadyReader::start(&self.addr(), &topic, total, Duration::from_secs(300));
        let start = Instant::now();
        let mut child = self.spawn_agent(&cfg);
        let (got, last) = reader.join();
        let shipped = last.duration_since(start).as_secs_f64();
        // Settled: the tails park soon after their last line (`tail::park_after`, issue 29); what
        // ending 10,000 threads costs is the change from busy to idle, not idleness.
        std::thread::sleep(Duration::from_secs(3));
        let (cpu_pct, how) = idle_cpu_pct(child.id(), Duration::from_secs(idle_secs));
        let (_, rss, threads) = sample(child.id());
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        assert_eq!(got, total, "every line of the 10,000 files");
        let rss_mib = rss as f64 / 1024.0;
        let s = "10. ten thousand files";
        vec![
            row(
                s,
                &format!("{files} files x {per_file} lines: all in Kafka after"),
                format!("{shipped:.2} s"),
                "< 3 s",
                Some(shipped < 3.0),
            ),
            row(
                s,
                &format!("then idle {idle_secs} s: CPU"),
                format!("{cpu_pct:.3} % of a core ({how})"),
                "< 0.2 % (issue 29)",
                Some(cpu_pct < 0.2),
            ),
            row(
                s,
                "idle RSS, threads",
                format!("{rss_mib:.0} MiB, {threads}"),
                "< 64 MiB (issue 29)",
                Some(rss_mib < 64.0),
            ),
        ]
    }
}
