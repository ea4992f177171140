//! Scenario 9: checkpoint saves.

use super::*;

impl Bench {
    /// What one save of positions costs with 10,000 files known of which 10 are being read
    /// (issue 15): the store's own code (no agent), saves of the journal against whole snapshots
    /// (the way before), same run: wall time per save (each ends with an fsync) and bytes written.
    pub(super) fn checkpoint(&mut self) -> Vec<Row> {
        use logcatch::ack::AckTracker;
        use logcatch::checkpoint::{Checkpoints, JOURNAL_FILE, STORE_FILE};
        use logcatch::fingerprint::{FileId, Fingerprint};
        let s = "9. checkpoint saves";
        let (known, active, saves) = (10_000u64, 10u64, if self.quick { 100 } else { 500 });
        let mut out = Vec::new();
        for (mode, below) in [("journal", 256), ("whole snapshot", usize::MAX)] {
            let dir = self.run_dir(&format!("checkpoint-{}", mode.replace(' ', "-")));
            let cp = Checkpoints::open(&dir).unwrap().with_snapshot_below(below);
            for i in 0..known {
                let fp = Fingerprint { len: 256, hash: i };
                cp.skip_old("app", FileId { dev: 1, ino: i }, &format!("/var/log/app/host-{i:05}.log"), fp, 4096);
            }
            let trackers: Vec<Arc<AckTracker>> = (0..active)
                .map(|i| {
                    let t = Arc::new(AckTracker::new(0));
                    let fp = Fingerprint { len: 256, hash: 1_000_000 + i };
                    cp.track("app", FileId { dev: 2, ino: i }, &format!("/var/log/app/busy-{i}.log"), fp, t.clone());
                    t
                })
                .collect();
            cp.save().unwrap();
            let size = |d: &Path| -> u64 {
                [STORE_FILE, JOURNAL_FILE]
                    .iter()
                    .map(|f| std::fs::metadata(d.join(f)).map(|m| m.len()).unwrap_or(0))
                    .sum()
            };
            let (mut written, mut spent) = (0u64, Duration::ZERO);
            for round in 1..=saves {
                for t in &trackers {
                    let seq = t.register(round as u64 * 120);
                    t.ack(seq);
                }
                let before = size(&dir);
                let t0 = Instant::now();
                assert!(cp.save().unwrap());
                spent += t0.elapsed();
                // A snapshot rewrites the whole file (its size is what was written, the journal
                // is emptied); a journal write adds its lines.
                let after = size(&dir);
                let snapshot = below == usize::MAX || after < before;
                written += if snapshot { after } else { after - before };
            }
            let (ms, kb) = (spent.as_secs_f64() * 1000.0 / saves as f64, written as f64 / saves as f64 / 1024.0);
            eprintln!("checkpoint {mode}: {ms:.2} ms and {kb:.1} KiB per save");
            out.push((mode, ms, kb));
        }
        let (j, w) = (&out[0], &out[1]);
        vec![
            row(
                s,
                &format!("per save, {known} files known, {active} read: journal"),
                format!("{:.2} ms, {:.1} KiB written", j.1, j.2),
                "",
                None,
            ),
            row(s, "per save: whole snapshot (before)", format!("{:.2} ms, {:.1} KiB written", w.1, w.2), "", None),
            row(
                s,
                "bytes written per save, journal / whole snapshot",
                format!("{:.4}x ({:.2}x the time)", j.2 / w.2, j.1 / w.1),
                "in proportion to the files changed",
                Some(j.2 * 100.0 < w.2),
            ),
        ]
    }
}
