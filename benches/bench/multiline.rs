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
        let bin = PathBuf::from(env!("CARGO_BIN_EXE_logcatch"));
        let (mut plain, mut joined) = (Vec::new(), Vec::new());
        for run in 0..self.runs {
            self.entry_extra = "";
            let (_, cpu, _) = self.catch_up_agent(&bin, &file, lines, run, "ml-plain");
            plain.push(cpu / (lines as f64 / 1e6));
            self.entry_extra = ", multiline: java";
            let (_, cpu, _) = self.catch_up_agent(&bin, &file, records, run, "ml-java");
            joined.push(cpu / (lines as f64 / 1e6));
            eprintln!("multiline run {run}: {:.2} / {:.2} CPU s per million lines", plain[run], joined[run]);
        }
        self.entry_extra = "";
        let (p, j) = (median(plain), median(joined));
        vec![row(
            s,
            &format!("catch-up CPU per line, java preset / line by line ({lines} lines, {records} events)"),
            format!("{:.2}x ({j:.2} / {p:.2} CPU s per million lines)", j / p),
            "<= 1.5x",
            Some(j / p <= 1.5),
        )]
    }
}
