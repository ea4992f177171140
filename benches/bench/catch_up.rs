//! Scenario 1: catch-up, lines already on disk.

use super::*;

impl Bench {
    pub(super) fn catch_up(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("catchup.log");
        numbered_file(&file, n);
        let mut base = (Vec::new(), Vec::new(), Vec::new());
        let mut lc = (Vec::new(), Vec::new(), Vec::new());
        let mut st: (Vec<f64>, Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..self.runs {
            // Baseline: the raw producer, from memory.
            let topic = self.topic("base");
            let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
            let start = Instant::now();
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args(["produce", &self.addr(), &topic])
                .arg(&file)
                .spawn()
                .unwrap();
            let (got, last) = reader.join();
            let secs = last.duration_since(start).as_secs_f64();
            let (cpu, rss) = reap(&mut child);
            assert_eq!(got, n, "baseline delivered every line");
            base.0.push(secs);
            base.1.push(cpu);
            base.2.push(rss as f64);
            // logcatch: the same lines from the file; then the static build, interleaved.
            // Which of the two goes first alternates, so neither always meets a broker holding
            // one more run's lines.
            let glibc = Path::new(env!("CARGO_BIN_EXE_logcatch"));
            let static_first = run % 2 == 1;
            if let (true, Some(bin)) = (static_first, self.static_bin.clone()) {
                let (secs, cpu, rss) = self.catch_up_agent(&bin, &file, n, run, "st");
                st.0.push(secs);
                st.1.push(cpu);
                st.2.push(rss);
            }
            let (secs, cpu, rss) = self.catch_up_agent(glibc, &file, n, run, "lc");
            lc.0.push(secs);
            lc.1.push(cpu);
            lc.2.push(rss);
            if let (false, Some(bin)) = (static_first, self.static_bin.clone()) {
                let (secs, cpu, rss) = self.catch_up_agent(&bin, &file, n, run, "st");
                st.0.push(secs);
                st.1.push(cpu);
                st.2.push(rss);
            }
            eprintln!("catch-up run {run}: baseline {:.2}s, logcatch {:.2}s", base.0[run], lc.0[run]);
        }
        let (bs, bc, br) = (median(base.0), median(base.1), median(base.2));
        let (ls, lcpu, lr) = (median(lc.0), median(lc.1), median(lc.2));
        let mb = (n * LINE_BYTES) as f64 / 1e6;
        let per_m = |cpu: f64| cpu / (n as f64 / 1e6);
        let ratio = bs / ls;
        let cpu_ratio = per_m(lcpu) / per_m(bc);
        let s = "1. catch-up";
        let mut rows = vec![
            row(
                s,
                &format!("lines/s ({} lines of {LINE_BYTES} B)", n),
                format!("logcatch {:.0} / raw {:.0}", n as f64 / ls, n as f64 / bs),
                "",
                None,
            ),
            row(s, "MB/s", format!("logcatch {:.1} / raw {:.1}", mb / ls, mb / bs), "", None),
            // Issue 29's targets (the default headers on, as here; the raw producer sends none):
            // at least the raw producer's throughput, at most 1.1x its CPU per line. They are
            // stricter than issue 15's (0.9x, 1.5x), which they replace.
            row(s, "throughput ratio", format!("{ratio:.2}x"), ">= 1.0x (issue 29)", Some(ratio >= 1.0)),
            row(s, "CPU s per million lines", format!("logcatch {:.2} / raw {:.2}", per_m(lcpu), per_m(bc)), "", None),
            row(
                s,
                "CPU per line ratio (default headers)",
                format!("{cpu_ratio:.2}x"),
                "<= 1.1x (issue 29)",
                Some(cpu_ratio <= 1.1),
            ),
            row(s, "peak RSS", format!("logcatch {:.1} MiB / raw {:.1} MiB", lr / 1024.0, br / 1024.0), "", None),
        ];
        if !st.0.is_empty() {
            let (ss, scpu, sr) = (median(st.0), median(st.1), median(st.2));
            let vs_glibc = per_m(scpu) / per_m(lcpu);
            rows.push(row(
                s,
                "static (musl) build: lines/s, CPU s per million, peak RSS",
                format!("{:.0}, {:.2}, {:.1} MiB", n as f64 / ss, per_m(scpu), sr / 1024.0),
                "",
                None,
            ));
            rows.push(row(
                s,
                "static / glibc CPU per line",
                format!("{vs_glibc:.2}x"),
                "<= 1.1x",
                Some(vs_glibc <= 1.1),
            ));
        }
        rows
    }

    /// One catch-up of `file` by the agent binary `bin`: (seconds to the last line read back,
    /// CPU seconds, peak RSS KiB).
    pub(super) fn catch_up_agent(
        &mut self,
        bin: &Path,
        file: &Path,
        n: usize,
        run: usize,
        name: &str,
    ) -> (f64, f64, f64) {
        let topic = self.topic(name);
        let d = self.run_dir(&format!("catchup-{name}{run}"));
        let cfg = self.config(&d, &[(file.to_path_buf(), topic.clone())], "start_position: beginning\n");
        let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
        let start = Instant::now();
        let mut child = self.spawn_bin(bin, &cfg);
        let (got, last) = reader.join();
        let secs = last.duration_since(start).as_secs_f64();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (cpu, rss) = reap(&mut child);
        assert_eq!(got, n, "{} delivered every line", bin.display());
        (secs, cpu, rss as f64)
    }

    /// The same file caught up by two agents, one without and one with `extra` on its entry,
    /// alternating, `self.runs` times: the medians of their CPU seconds per million lines *of
    /// the file* (`lines`). `arrive`: how many messages each side's reader waits for; `name`
    /// prefixes the topics and the log lines.
    pub(super) fn catch_up_pair(
        &mut self,
        file: &Path,
        lines: usize,
        arrive: (usize, usize),
        extra: &'static str,
        name: &str,
    ) -> (f64, f64) {
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_logcatch"));
        let per_million = |cpu: f64| cpu / (lines as f64 / 1e6);
        let (mut plain, mut with) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            self.entry_extra = "";
            plain.push(per_million(self.catch_up_agent(&bin, file, arrive.0, run, &format!("{name}-plain")).1));
            self.entry_extra = extra;
            with.push(per_million(self.catch_up_agent(&bin, file, arrive.1, run, &format!("{name}-with")).1));
            eprintln!(
                "{name} run {run}: {:.2} without / {:.2} with {extra}, CPU s per million lines",
                plain[run], with[run]
            );
        }
        self.entry_extra = "";
        (median(plain), median(with))
    }
}
