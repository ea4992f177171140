//! Scenario 3: idle scale.

use super::*;

impl Bench {
    pub(super) fn idle_scale(&mut self) -> Vec<Row> {
        let files = 1000;
        let secs = if self.quick { 20 } else { 60 };
        let topic = self.topic("idle");
        let d = self.run_dir("idle");
        let specs: Vec<(PathBuf, String)> = (0..files)
            .map(|i| {
                let p = d.join(format!("idle{i}.log"));
                std::fs::write(&p, b"").unwrap();
                (p, topic.clone())
            })
            .collect();
        let cfg = self.config(&d, &specs, "");
        let mut child = self.spawn_agent(&cfg);
        // Let every tail start, then park (`tail::park_after`: at once at the default batch_wait 0,
        // issue 29).
        std::thread::sleep(Duration::from_secs(3));
        let (cpu_pct, how) = idle_cpu_pct(child.id(), Duration::from_secs(secs));
        let (_, rss, threads) = sample(child.id());
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let rss_mib = rss as f64 / 1024.0;
        let s = "3. idle scale";
        vec![
            row(
                s,
                &format!("{files} files, no writes, {secs} s: CPU"),
                format!("{cpu_pct:.3} % of a core ({how})"),
                "< 0.05 % (issue 29)",
                Some(cpu_pct < 0.05),
            ),
            row(s, "RSS", format!("{rss_mib:.1} MiB"), "< 20 MiB (issue 29; rsyslog's 19)", Some(rss_mib < 20.0)),
            row(s, "threads", format!("{threads}"), "", None),
        ]
    }
}
