//! Scenario 7: exactly once.

use super::*;

impl Bench {
    /// `delivery: exactly_once` beside `at_least_once`, same run, same broker (Apache Kafka: tansu
    /// has no transactions): catch-up throughput and CPU per line, and the live tail's latency
    /// (read back with read_committed: a line counts when its transaction committed).
    pub(super) fn exactly_once(&mut self) -> Vec<Row> {
        let s = "7. exactly once";
        if self.broker.kafka.is_none() {
            return vec![row(s, "needs --broker kafka (tansu has no transactions)", "skipped".into(), "", None)];
        }
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("eo.log");
        numbered_file(&file, n);
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_logcatch"));
        let (mut alo, mut eo) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for run in 0..self.runs {
            for (mode, out) in [("", &mut alo), ("delivery: exactly_once\n", &mut eo)] {
                self.top_extra = mode;
                let name = if mode.is_empty() { "alo" } else { "eo" };
                let (secs, cpu, _) = self.catch_up_agent(&bin, &file, n, run, name);
                out.0.push(n as f64 / secs);
                out.1.push(cpu / (n as f64 / 1e6));
            }
            eprintln!(
                "exactly-once catch-up run {run}: lines/s {alo0:?} / {eo0:?}",
                alo0 = alo.0.last(),
                eo0 = eo.0.last()
            );
        }
        let (files, rate, secs) = (20, 1000, if self.quick { 15 } else { 60 });
        self.top_extra = "";
        let live_alo = self.live_agent(&bin, "live-alo", files, rate, secs);
        self.top_extra = "delivery: exactly_once\n";
        let live_eo = self.live_agent(&bin, "live-eo", files, rate, secs);
        self.top_extra = "";
        let (tp, cpu) = (median(eo.0.clone()) / median(alo.0.clone()), median(eo.1.clone()) / median(alo.1.clone()));
        let p99 = |l: &LiveRun| percentile(&l.lat, 0.99);
        vec![
            row(
                s,
                "catch-up throughput, exactly / at least once",
                format!("{tp:.2}x ({:.0} / {:.0} lines/s)", median(eo.0), median(alo.0)),
                ">= 0.8x",
                Some(tp >= 0.8),
            ),
            row(
                s,
                "catch-up CPU per line, exactly / at least once",
                format!("{cpu:.2}x ({:.2} / {:.2} CPU s per million)", median(eo.1), median(alo.1)),
                "<= 1.3x",
                Some(cpu <= 1.3),
            ),
            row(
                s,
                &format!("live, {files} files x {rate} lines/s: p50 / p99, exactly once"),
                format!("{:.1} / {:.1} ms, CPU {:.1}%", percentile(&live_eo.lat, 0.5), p99(&live_eo), live_eo.cpu_pct),
                "p99 < 250 ms",
                Some(p99(&live_eo) < 250.0 && live_eo.read_back == files * rate * secs as usize),
            ),
            row(
                s,
                &format!("live, {files} files x {rate} lines/s: p50 / p99, at least once"),
                format!(
                    "{:.1} / {:.1} ms, CPU {:.1}%",
                    percentile(&live_alo.lat, 0.5),
                    p99(&live_alo),
                    live_alo.cpu_pct
                ),
                "",
                None,
            ),
        ]
    }
}
