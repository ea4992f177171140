//! Scenario 2: live tail.

use super::*;

impl Bench {
    /// Reads `total` stamped lines of `topic` and returns (lines read, sorted latencies in ms of
    /// the lines written WARMUP or more after the reader was ready). Returns once its consumer is
    /// connected, so that its start-up is not counted as latency of the first lines.
    pub(super) fn latency_reader(
        &self,
        topic: &str,
        total: usize,
        secs: u64,
    ) -> std::thread::JoinHandle<(usize, Vec<f64>)> {
        let (broker, topic) = (self.addr(), topic.to_string());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::spawn(move || {
            let c = consumer(&broker, &topic);
            let measure_from = now_us() + WARMUP.as_micros() as u64;
            ready_tx.send(()).unwrap();
            let mut lat = Vec::with_capacity(total);
            let end = Instant::now() + Duration::from_secs(secs + 120);
            let mut got = 0;
            while got < total && Instant::now() < end {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
                    got += 1;
                    let p = m.payload().unwrap_or_default();
                    let now = now_us();
                    let w: u64 = std::str::from_utf8(&p[..16.min(p.len())])
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(now);
                    if w >= measure_from {
                        lat.push(now.saturating_sub(w) as f64 / 1000.0);
                    }
                }
            }
            lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
            (got, lat)
        });
        ready_rx.recv().expect("latency reader ready");
        handle
    }

    /// The raw producer sending `files` keys' stamped lines at `rate` lines/s each for `secs`
    /// (as `live_agent`'s writers do): its CPU (% of a core) and sorted latencies.
    pub(super) fn raw_live(&mut self, prefix: &str, files: usize, rate: usize, secs: u64) -> (f64, Vec<f64>) {
        let topic = self.topic(prefix);
        let reader = self.latency_reader(&topic, files * rate * secs as usize, secs);
        let t0 = Instant::now();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["produce-live", &self.addr(), &topic, &files.to_string(), &rate.to_string(), &secs.to_string()])
            .spawn()
            .unwrap();
        let (raw_cpu, _) = reap(&mut child);
        let raw_cpu_pct = raw_cpu / t0.elapsed().as_secs_f64() * 100.0;
        let (_, raw_lat) = reader.join().unwrap();
        (raw_cpu_pct, raw_lat)
    }

    pub(super) fn live_tail(&mut self) -> Vec<Row> {
        let files = 100;
        let rate = 1000; // lines/s per file
        let secs: u64 = if self.quick { 15 } else { 60 };
        let total = files * rate * secs as usize;

        // Baseline: the raw producer sends the same stamped lines at the same rate.
        let (raw_cpu_pct, raw_lat) = self.raw_live("rawlive", files, rate, secs);

        // logcatch: 100 files appended by this process (`batch_wait: 0`, the default: every
        // write read at once); then with `batch_wait: 20ms` (busy files keep a thread and their
        // writes gather: what the choice costs in latency and saves in CPU); then the static
        // build.
        let lc = self.live_agent(Path::new(env!("CARGO_BIN_EXE_logcatch")), "live", files, rate, secs);
        self.top_extra = "batch_wait: 20ms\n";
        let gathered = self.live_agent(Path::new(env!("CARGO_BIN_EXE_logcatch")), "live20_", files, rate, secs);
        self.top_extra = "";
        // rsyslog (imfile + omkafka) on the same files and broker, when installed.
        let rsyslog = self.rsyslog_live("rsyslive", files, rate, secs);
        // The static build in 3 pairs with the glibc one, each pair back to back and the order
        // alternating (glibc first, then static first, then glibc first), so that the drift
        // between runs (seen here: the second of two runs of one binary costing 1.1-1.3x the
        // first, as the broker holds more) falls on both sides; the ratio is the median of the
        // pairs' ratios.
        let mut pairs = Vec::new();
        if let Some(bin) = self.static_bin.clone() {
            let glibc = Path::new(env!("CARGO_BIN_EXE_logcatch"));
            // Pair 0's glibc run is the one above (glibc first); pair 1 runs static first; pair 2
            // glibc first.
            let st = self.live_agent(&bin, "stlive0_", files, rate, secs);
            pairs.push((st, None));
            let st = self.live_agent(&bin, "stlive1_", files, rate, secs);
            let gl = self.live_agent(glibc, "gllive1_", files, rate, secs);
            pairs.push((st, Some(gl)));
            let gl = self.live_agent(glibc, "gllive2_", files, rate, secs);
            let st = self.live_agent(&bin, "stlive2_", files, rate, secs);
            pairs.push((st, Some(gl)));
        }
        let LiveRun { read_back, lat, cpu_pct, rss, peak_rss } = lc;
        let ((p50, p99, max), (r50, r99, rmax)) = (quantiles(&lat), quantiles(&raw_lat));
        let s = "2. live tail";
        let mut rows = vec![
            row(
                s,
                &format!("{files} files x {rate} lines/s for {secs} s"),
                format!("{read_back} of {total} lines read back"),
                "all",
                Some(read_back == total),
            ),
            row(
                s,
                &format!("write -> consumer latency p50 / p99 / max (after {}s warm-up)", WARMUP.as_secs()),
                format!("logcatch {p50:.1} / {p99:.1} / {max:.1} ms; raw producer {r50:.1} / {r99:.1} / {rmax:.1} ms"),
                "p99 < 100 ms",
                Some(p99 < 100.0),
            ),
            row(
                s,
                "CPU",
                format!("logcatch {cpu_pct:.1} % of a core; raw producer {raw_cpu_pct:.1} %"),
                "<= 20 % (issue 15)",
                Some(cpu_pct <= 20.0),
            ),
            row(s, "p99 (issue 15: rsyslog's latency)", format!("{p99:.1} ms"), "<= 35 ms", Some(p99 <= 35.0)),
            row(
                s,
                "p99 / the raw producer's p99 (issue 29)",
                format!("{:.2}x ({p99:.1} / {r99:.1} ms)", p99 / r99),
                "<= 1.1x",
                Some(p99 <= 1.1 * r99),
            ),
            {
                let (g50, g99, gmax) = quantiles(&gathered.lat);
                row(
                    s,
                    "with batch_wait: 20ms (busy files' writes gathered): lines, p50 / p99 / max, CPU",
                    format!(
                        "{} of {total}, {g50:.1} / {g99:.1} / {gmax:.1} ms, {:.1} % of a core",
                        gathered.read_back, gathered.cpu_pct
                    ),
                    "all",
                    Some(gathered.read_back == total),
                )
            },
            row(
                s,
                "logcatch RSS (end / peak sampled)",
                format!("{:.1} / {:.1} MiB", rss as f64 / 1024.0, peak_rss.max(rss) as f64 / 1024.0),
                "",
                None,
            ),
        ];
        if let Some(r) = &rsyslog {
            let (y50, y99, ymax) = quantiles(&r.lat);
            rows.push(row(
                s,
                "rsyslog 8 (imfile inotify + omkafka, defaults): lines, p50 / p99 / max, CPU, peak RSS",
                format!(
                    "{} of {total}, {y50:.1} / {y99:.1} / {ymax:.1} ms, {:.1} % of a core, {:.1} MiB",
                    r.read_back,
                    r.cpu_pct,
                    r.peak_rss.max(r.rss) as f64 / 1024.0
                ),
                "report",
                None,
            ));
            rows.push(row(
                s,
                "logcatch CPU / rsyslog's (issue 29)",
                format!("{:.2}x ({cpu_pct:.1} / {:.1} %)", cpu_pct / r.cpu_pct, r.cpu_pct),
                "<= 0.3x",
                Some(cpu_pct <= 0.3 * r.cpu_pct),
            ));
        }
        if let Some((st, _)) = pairs.first() {
            let (s50, s99, _) = quantiles(&st.lat);
            let ratios: Vec<f64> =
                pairs.iter().map(|(s, g)| s.cpu_pct / g.as_ref().map_or(cpu_pct, |g| g.cpu_pct)).collect();
            let shown: Vec<String> = pairs
                .iter()
                .zip(&ratios)
                .map(|((s, g), r)| {
                    let g = g.as_ref().map_or(cpu_pct, |g| g.cpu_pct);
                    format!("{r:.2} = {:.1}/{g:.1} %", s.cpu_pct)
                })
                .collect();
            let vs_glibc = median(ratios.clone());
            rows.push(row(
                s,
                "static (musl) build: lines read back, p50 / p99, CPU, peak RSS",
                format!(
                    "{} of {total}, {s50:.1} / {s99:.1} ms, {:.1} % of a core, {:.1} MiB",
                    st.read_back,
                    st.cpu_pct,
                    st.peak_rss.max(st.rss) as f64 / 1024.0
                ),
                "all",
                Some(st.read_back == total),
            ));
            rows.push(row(
                s,
                "static / glibc live CPU (median of back-to-back pairs)",
                format!("{vs_glibc:.2}x (pairs: {})", shown.join(", ")),
                "<= 1.1x",
                Some(vs_glibc <= 1.1),
            ));
        }
        rows
    }
}
