//! Scenario 14: filters (issue 28).

use super::*;

impl Bench {
    /// Catch-up of 120-byte lines with two `exclude_lines` patterns that drop half of them,
    /// against the same file shipped whole, same run: CPU seconds per million lines *of the
    /// file*. Dropping a line must cost less than sending it.
    pub(super) fn filters(&mut self) -> Vec<Row> {
        let s = "14. filters";
        let n: usize = if self.quick { 200_000 } else { 1_000_000 };
        let file = self.dir.path().join("filtered.log");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..n {
                let head = match i % 4 {
                    0 => format!("{i:010} DEBUG cache lookup"),
                    1 => format!("{i:010} INFO GET /healthcheck 200"),
                    _ => format!("{i:010} INFO GET /orders 200"),
                };
                w.write_all(head.as_bytes()).unwrap();
                w.write_all(&vec![b'x'; LINE_BYTES - head.len() - 1]).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        let extra = ", exclude_lines: [' DEBUG ', 'GET /healthcheck']";
        let (w, f) = self.catch_up_pair(&file, n, (n, n / 2), extra, "filters");
        vec![row(
            s,
            &format!("catch-up CPU per line, 2 exclude_lines dropping 50% / every line shipped ({n} lines)"),
            format!("{:.2}x ({f:.2} / {w:.2} CPU s per million lines)", f / w),
            "<= 0.7x",
            Some(f / w <= 0.7),
        )]
    }
}
