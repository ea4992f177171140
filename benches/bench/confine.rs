//! Scenario 12: what confinement costs (issue 24).

use super::*;

/// Scenario 12 (issue 24): what confinement costs, in this process. Opens of a file three
/// directories below its root: a plain `open(2)` (what every open was), the confined open with
/// `openat2`, and with the legacy kernels' walk; and one scan of a glob over 10,000 files: the
/// `glob` crate's walk plus a `stat` of each match (what a scan was) against `globwalk`. Each
/// the best of 3 rounds (wall time of one thread: nothing else runs).
pub(super) fn confinement(quick: bool) -> Vec<Row> {
    use logcatch::confine::{self, Access};
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let file = root.join("a/b/c/app.log");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"x\n").unwrap();
    let n: u32 = if quick { 50_000 } else { 200_000 };
    let best = |f: &dyn Fn()| {
        (0..3)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed()
            })
            .min()
            .unwrap()
    };
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    let plain = per(best(&|| {
        for _ in 0..n {
            std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(&file).unwrap();
        }
    }));
    let access = Access::beneath(&root);
    let mut rows = Vec::new();
    for (openat2, name) in [(true, "openat2"), (false, "O_NOFOLLOW walk")] {
        confine::set_openat2(openat2);
        let us = per(best(&|| {
            for _ in 0..n {
                confine::open(&file, &access).unwrap();
            }
        }));
        rows.push(row(
            "12 confined open",
            &format!("{name}: per open (plain open {plain:.2} us)"),
            format!("{us:.2} us ({:.2}x)", us / plain),
            "(reported)",
            None,
        ));
    }
    confine::set_openat2(true);
    let logs = root.join("logs");
    std::fs::create_dir(&logs).unwrap();
    for i in 0..10_000 {
        std::fs::write(logs.join(format!("f{i:05}.log")), b"").unwrap();
    }
    let pattern = logs.join("*.log");
    let text = pattern.to_string_lossy().into_owned();
    let old = best(&|| {
        let n = glob::glob_with(&text, logcatch::discover::MATCH)
            .unwrap()
            .flatten()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
            .count();
        assert_eq!(n, 10_000);
    });
    let new = best(&|| {
        let w = logcatch::globwalk::walk(&pattern, &Access::beneath(&logs));
        assert_eq!(w.files.len(), 10_000);
    });
    let ratio = new.as_secs_f64() / old.as_secs_f64();
    rows.push(row(
        "12 confined open",
        &format!("scan of a glob of 10,000 files (glob crate + stat: {:.1} ms)", old.as_secs_f64() * 1e3),
        format!("{:.1} ms ({ratio:.2}x)", new.as_secs_f64() * 1e3),
        "<= 1.05x",
        Some(ratio <= 1.05),
    ));
    rows
}
