//! Scenario 8: multiline.

use super::*;

impl Bench {
    /// Catch-up of a Java-style log (timestamped single lines, and every fifth record a stack
    /// trace of 12 lines with a "Caused by:") with `multiline: java`, against the same file
    /// shipped line by line, same run: CPU seconds per million *lines* of the file.
    pub(super) fn multiline(&mut self) -> Vec<Row> {
        let s = "8. multiline";
        let records: usize = if self.quick { 40_000 } else { 200_000 };
        let file = self.dir.path().join("java.log");
        let mut lines = 0;
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..records {
                writeln!(
                    w,
                    "2026-11-29 01:{:02}:{:02},{:03} INFO  [worker-{}] request {i} served in 12 ms",
                    i / 60 % 60,
                    i % 60,
                    i % 1000,
                    i % 8
                )
                .unwrap();
                lines += 1;
                if i % 5 == 4 {
                    writeln!(w, "java.lang.IllegalStateException: request {i} failed").unwrap();
                    for f in 0..8 {
                        writeln!(w, "\tat com.example.service.Handler.step{f}(Handler.java:{})", 100 + f).unwrap();
                    }
                    writeln!(w, "Caused by: java.io.IOException: disk unreadable").unwrap();
                    writeln!(w, "\t... 8 more").unwrap();
                    lines += 11;
                }
            }
        }
        let (p, j) = self.catch_up_pair(&file, lines, (lines, records), ", multiline: java", "multiline");
        vec![row(
            s,
            &format!("catch-up CPU per line, java preset / line by line ({lines} lines, {records} events)"),
            format!("{:.2}x ({j:.2} / {p:.2} CPU s per million lines)", j / p),
            "<= 1.5x",
            Some(j / p <= 1.5),
        )]
    }
}
