//! Scenario 5: compression codecs and headers.

use super::*;

impl Bench {
    /// Catch-up of the same file with each `kafkaconfig.compression`: CPU seconds per million
    /// lines (median of the runs), against `none` in the same run. Lines are the catch-up
    /// scenario's (a counter, then padding: very compressible, as many logs are).
    pub(super) fn codecs(&mut self) -> Vec<Row> {
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("codecs.log");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..n {
                let head = format!("{i:010} level=info msg=\"request served\" path=/api/v1/items/{} ", i % 977);
                w.write_all(head.as_bytes()).unwrap();
                w.write_all(&vec![b'x'; LINE_BYTES.saturating_sub(head.len() + 1)]).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        // (name, kafkaconfig extra, top-level extra). Every codec without headers; then what the
        // `host`, `path` and `offset` headers (the default) and the JSON envelope cost (issue 17).
        let variants: [(&str, &str, &str); 7] = [
            ("none", "compression: none, headers: []", ""),
            ("gzip", "compression: gzip, headers: []", ""),
            ("snappy", "compression: snappy, headers: []", ""),
            ("lz4", "compression: lz4, headers: []", ""),
            ("zstd", "compression: zstd, headers: []", ""),
            ("headers", "compression: none, headers: [host, path, offset]", ""),
            ("json", "compression: none, headers: []", "format: json\n"),
        ];
        let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for run in 0..self.runs {
            for (i, (name, kafka, top)) in variants.iter().enumerate() {
                let topic = self.topic(&format!("codec-{name}"));
                let d = self.run_dir(&format!("codec-{name}{run}"));
                let cfg = self.config_kafka(
                    &d,
                    &[(file.clone(), topic.clone())],
                    &format!("start_position: beginning\n{top}"),
                    kafka,
                );
                let reader = ReadyReader::start(&self.addr(), &topic, n, Duration::from_secs(300));
                let mut child = self.spawn_agent(&cfg);
                let (got, _) = reader.join();
                unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
                let (c, _) = reap(&mut child);
                assert_eq!(got, n, "{name}: every line delivered");
                cpu[i].push(c);
            }
            eprintln!("codecs run {run} done");
        }
        let per_m: Vec<f64> = cpu.into_iter().map(|v| median(v) / (n as f64 / 1e6)).collect();
        let s = "5. compression, headers, JSON";
        let none = per_m[0];
        let mut rows: Vec<Row> = variants[..5]
            .iter()
            .zip(&per_m)
            .map(|((codec, _, _), c)| {
                row(
                    s,
                    &format!("{codec}: CPU s per million lines"),
                    format!("{c:.2} ({:.2}x none)", c / none),
                    "",
                    None,
                )
            })
            .collect();
        let cost = per_m[5] / none;
        rows.push(row(
            s,
            "headers host, path, offset (the default): CPU per line, with / without",
            format!("{cost:.2}x ({:.2} / {none:.2})", per_m[5]),
            "<= 1.15x (issue 29; issue 17 asked 1.1x)",
            Some(cost <= 1.15),
        ));
        rows.push(row(
            s,
            "format: json (no headers): CPU per line, against raw",
            format!("{:.2}x ({:.2} / {none:.2})", per_m[6] / none, per_m[6]),
            "",
            None,
        ));
        rows
    }
}
