//! Scenario: a rotated generation that logrotate compressed before the agent read it (issue 26).
//! The same lines, once in `app.log.1` and once in `app.log.1.gz` (gzip's default level, as
//! logrotate's `compress`), found unseen beside a path the agent knows (from a first run on its
//! empty file) and read whole: lines/s and CPU of each, alternating which goes first.

use super::*;

impl Bench {
    pub(super) fn compressed(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let plain = self.dir.path().join("generation.lines");
        log_like_file(&plain, n);
        let gz = self.dir.path().join("generation.lines.gz");
        let mut enc =
            flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
        std::io::copy(&mut std::fs::File::open(&plain).unwrap(), &mut enc).unwrap();
        enc.finish().unwrap();
        let (mut p, mut g) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
        for run in 0..self.runs {
            for kind in if run % 2 == 0 { ["plain", "gzip"] } else { ["gzip", "plain"] } {
                let (secs, cpu) = if kind == "plain" {
                    self.generation_agent(&plain, "app.log.1", n, run)
                } else {
                    self.generation_agent(&gz, "app.log.1.gz", n, run)
                };
                let into = if kind == "plain" { &mut p } else { &mut g };
                into.0.push(secs);
                into.1.push(cpu);
            }
            eprintln!("compressed run {run}: plain {:.2}s, gzip {:.2}s", p.0[run], g.0[run]);
        }
        let (ps, pc, gs, gc) = (median(p.0), median(p.1), median(g.0), median(g.1));
        let per_m = |cpu: f64| cpu / (n as f64 / 1e6);
        let ratio = ps / gs;
        let s = "12. compressed generation";
        let ratio_of = std::fs::metadata(&plain).unwrap().len() as f64 / std::fs::metadata(&gz).unwrap().len() as f64;
        vec![
            row(
                s,
                &format!("lines/s ({n} lines of {LINE_BYTES} B, gzip {ratio_of:.0}:1)"),
                format!("gzip {:.0} / plain {:.0}", n as f64 / gs, n as f64 / ps),
                "",
                None,
            ),
            row(s, "throughput, gzip / plain", format!("{ratio:.2}x"), ">= 0.8x (issue 26)", Some(ratio >= 0.8)),
            row(s, "CPU s per million lines", format!("gzip {:.2} / plain {:.2}", per_m(gc), per_m(pc)), "", None),
        ]
    }

    /// One agent that knows `app.log` (a first run on it while empty), finding `content` beside it
    /// as `name`, written since: (seconds until its `n` lines are read back, CPU seconds).
    fn generation_agent(&mut self, content: &Path, name: &str, n: usize, run: usize) -> (f64, f64) {
        let topic = self.topic(if name.ends_with(".gz") { "gz" } else { "plain" });
        let d = self.run_dir(&format!("compressed-{topic}-{run}"));
        let log = d.join("app.log");
        std::fs::write(&log, b"").unwrap();
        let cfg = self.config(&d, &[(log.clone(), topic.clone())], "start_position: beginning\n");
        let mut first = self.spawn_agent(&cfg);
        let store = d.join("data").join("checkpoints.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&store).is_ok_and(|s| s.contains("app.log")) {
            assert!(Instant::now() < deadline, "the first run saved no checkpoint");
            std::thread::sleep(Duration::from_millis(20));
        }
        unsafe { libc::kill(first.id() as i32, libc::SIGTERM) };
        reap(&mut first);
        // Rotated while the agent was stopped; the generation's mtime is now, past the checkpoint.
        std::thread::sleep(Duration::from_millis(1100));
        std::fs::copy(content, d.join(name)).unwrap();
        let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
        let start = Instant::now();
        let mut child = self.spawn_agent(&cfg);
        let (got, last) = reader.join();
        let secs = last.duration_since(start).as_secs_f64();
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let (cpu, _) = reap(&mut child);
        assert_eq!(got, n, "{name}: every line read back");
        (secs, cpu)
    }
}

/// `n` lines of `LINE_BYTES` that compress like an application's log (about 4:1 with gzip: a
/// timestamp, a level, ids and words drawn at random), not like padding (over 40:1, and nearly
/// free to decompress).
fn log_like_file(file: &Path, n: usize) {
    const WORDS: [&str; 16] = [
        "orders", "users", "cart", "login", "search", "items", "payments", "health", "images", "export", "session",
        "stock", "report", "audit", "mail", "queue",
    ];
    const LEVELS: [&str; 4] = ["INFO", "INFO", "WARN", "DEBUG"];
    let mut w = std::io::BufWriter::new(std::fs::File::create(file).unwrap());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..n {
        let (a, b, c) = (next(), next(), next());
        let mut line = format!(
            "2026-12-06T18:{:02}:{:02}.{:06}Z {} [worker-{}] id={:016x} GET /api/v1/{}/{} status={} took={}ms user={}{}",
            (i / 600_000) % 60,
            (i / 10_000) % 60,
            i % 1_000_000,
            LEVELS[(a % 4) as usize],
            a % 16,
            b,
            WORDS[(c % 16) as usize],
            c % 100_000,
            [200, 200, 200, 404, 500][(a % 5) as usize],
            b % 2000,
            WORDS[(b % 16) as usize],
            c % 1000,
        );
        line.truncate(LINE_BYTES - 1);
        while line.len() < LINE_BYTES - 1 {
            line.push(' ');
        }
        w.write_all(line.as_bytes()).unwrap();
        w.write_all(b"\n").unwrap();
    }
}
