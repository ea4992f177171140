//! Scenario: a rotated generation that logrotate compressed before the agent read it (issue 26).
//! The same lines, once in `app.log.1` and once compressed as logrotate's `compress` would
//! (gzip's default level; bzip2, xz and zstd at their command's default levels, as with
//! `compresscmd`), found unseen beside a path the agent knows (from a first run on its empty
//! file) and read whole: lines/s and CPU of each, the order turned round at each run. The target
//! is gzip's (logrotate's default); the others are for the README's choice of codec.

use super::*;

/// What a generation is compressed with in this scenario, and its file name's ending.
const KINDS: [(&str, &str); 5] = [("plain", ""), ("gzip", ".gz"), ("bzip2", ".bz2"), ("xz", ".xz"), ("zstd", ".zst")];

impl Bench {
    pub(super) fn compressed(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let plain = self.dir.path().join("generation.lines");
        log_like_file(&plain, n);
        let files: Vec<PathBuf> = KINDS.iter().map(|(kind, ext)| compress(&plain, kind, ext)).collect();
        let mut took: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); KINDS.len()];
        for run in 0..self.runs {
            let mut order: Vec<usize> = (0..KINDS.len()).collect();
            order.rotate_left(run % KINDS.len());
            for i in order {
                let (secs, cpu) = self.generation_agent(&files[i], &format!("app.log.1{}", KINDS[i].1), n, run);
                took[i].0.push(secs);
                took[i].1.push(cpu);
            }
            let line: Vec<String> =
                KINDS.iter().zip(&took).map(|((k, _), t)| format!("{k} {:.2}s", t.0[run])).collect();
            eprintln!("compressed run {run}: {}", line.join(", "));
        }
        let medians: Vec<(f64, f64)> = took.into_iter().map(|(s, c)| (median(s), median(c))).collect();
        let (ps, pc) = medians[0];
        let per_m = |cpu: f64| cpu / (n as f64 / 1e6);
        let size = |f: &Path| std::fs::metadata(f).unwrap().len() as f64;
        let s = "12. compressed generation";
        let mut rows = vec![row(
            s,
            &format!("lines/s plain ({n} lines of {LINE_BYTES} B)"),
            format!("{:.0}, CPU {:.2} s per million lines", n as f64 / ps, per_m(pc)),
            "",
            None,
        )];
        for (i, (kind, _)) in KINDS.iter().enumerate().skip(1) {
            let (secs, cpu) = medians[i];
            let ratio = ps / secs;
            let target = (*kind == "gzip").then_some(ratio >= 0.8);
            rows.push(row(
                s,
                &format!("throughput, {kind} ({:.0}:1) / plain", size(&files[0]) / size(&files[i])),
                format!("{ratio:.2}x ({:.0} lines/s, CPU {:.2} s per million lines)", n as f64 / secs, per_m(cpu)),
                if target.is_some() { ">= 0.8x (issue 26)" } else { "" },
                target,
            ));
        }
        rows
    }

    /// One agent that knows `app.log` (a first run on it while empty), finding `content` beside it
    /// as `name`, written since: (seconds until its `n` lines are read back, CPU seconds).
    fn generation_agent(&mut self, content: &Path, name: &str, n: usize, run: usize) -> (f64, f64) {
        let topic = self.topic(name.rsplit('.').next().filter(|e| *e != "1").unwrap_or("plain"));
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

/// `plain` compressed with `kind` into a file beside it ending in `ext` (`plain` itself for
/// "plain").
fn compress(plain: &Path, kind: &str, ext: &str) -> PathBuf {
    if kind == "plain" {
        return plain.to_path_buf();
    }
    let out = PathBuf::from(format!("{}{ext}", plain.display()));
    let file = std::fs::File::create(&out).unwrap();
    let mut input = std::fs::File::open(plain).unwrap();
    match kind {
        "gzip" => {
            let mut e = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            std::io::copy(&mut input, &mut e).unwrap();
            e.finish().unwrap();
        }
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(file, bzip2::Compression::best());
            std::io::copy(&mut input, &mut e).unwrap();
            e.finish().unwrap();
        }
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(file, 6);
            std::io::copy(&mut input, &mut e).unwrap();
            e.finish().unwrap();
        }
        _ => zstd::stream::copy_encode(&mut input, file, 3).unwrap(),
    }
    out
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
