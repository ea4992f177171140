//! Scenario 16: encoding (issue 28).

use super::*;

impl Bench {
    /// Catch-up of 120-byte Latin-1 lines (an accented letter in each) with `encoding: latin1`
    /// (each line decoded to UTF-8), against the same file shipped as its bytes (`utf-8`, the
    /// default), same run: CPU seconds per million lines.
    pub(super) fn encoding(&mut self) -> Vec<Row> {
        let s = "16. encoding";
        let n: usize = if self.quick { 300_000 } else { 1_000_000 };
        let file = self.dir.path().join("latin1.log");
        {
            let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
            for i in 0..n {
                let head = format!("{i:010} caf\u{e9} cr\u{e8}me na\u{ef}ve ");
                let bytes: Vec<u8> = head.chars().map(|c| c as u32 as u8).collect();
                w.write_all(&bytes).unwrap();
                w.write_all(&vec![b'x'; LINE_BYTES - bytes.len() - 1]).unwrap();
                w.write_all(b"\n").unwrap();
            }
        }
        let (p, d) = self.catch_up_pair(&file, n, (n, n), ", encoding: latin1", "encoding");
        vec![row(
            s,
            &format!("catch-up CPU per line, encoding: latin1 / utf-8 ({n} lines of 120 B)"),
            format!("{:.2}x ({d:.2} / {p:.2} CPU s per million lines)", d / p),
            "<= 1.3x",
            Some(d / p <= 1.3),
        )]
    }
}
