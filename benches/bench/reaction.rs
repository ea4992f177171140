//! Scenario 4: reaction to an etcd put and a config.yaml edit.

use super::*;

impl Bench {
    pub(super) fn reaction(&mut self) -> Vec<Row> {
        let changes = 10;
        let topic = self.topic("react");
        let d = self.run_dir("react");
        let cfg_extra = format!(
            "start_position: beginning\netcdconfig: [\"127.0.0.1:{}\"]\netcdkeys: [\"bench\"]\netcd_allowed_paths: [\"{}\"]\n",
            self.etcd_port,
            d.display()
        );
        let cfg = self.config(&d, &[], &cfg_extra);
        let mut child = self.spawn_agent(&cfg);
        let c = consumer(&self.addr(), &topic);
        let wait_for = |c: &BaseConsumer, want: &str| -> f64 {
            let start = Instant::now();
            loop {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(5)) {
                    if m.payload() == Some(want.as_bytes()) {
                        return start.elapsed().as_secs_f64() * 1000.0;
                    }
                }
                assert!(start.elapsed() < Duration::from_secs(30), "no reaction to {want}");
            }
        };
        std::thread::sleep(Duration::from_secs(1));
        let mut etcd_ms = Vec::new();
        let mut entries = Vec::new();
        for i in 0..changes {
            let p = d.join(format!("etcd{i}.log"));
            std::fs::write(&p, format!("etcd-{i}\n")).unwrap();
            entries.push(format!("{{\"path\":\"{}\",\"topic\":\"{topic}\"}}", p.display()));
            let value = format!("[{}]", entries.join(","));
            let body = format!("{{\"key\":\"{}\",\"value\":\"{}\"}}", b64("bench"), b64(&value));
            let out = Command::new("curl")
                .args(["-fs", "-X", "POST", &format!("http://127.0.0.1:{}/v3/kv/put", self.etcd_port), "-d", &body])
                .output()
                .unwrap();
            assert!(out.status.success());
            etcd_ms.push(wait_for(&c, &format!("etcd-{i}")));
        }
        let mut yaml_ms = Vec::new();
        let mut files = Vec::new();
        for i in 0..changes {
            let p = d.join(format!("yaml{i}.log"));
            std::fs::write(&p, format!("yaml-{i}\n")).unwrap();
            files.push((p, topic.clone()));
            self.config(&d, &files, &cfg_extra);
            yaml_ms.push(wait_for(&c, &format!("yaml-{i}")));
        }
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        reap(&mut child);
        let (e, y) = (median(etcd_ms), median(yaml_ms));
        let s = "4. reaction";
        vec![
            row(
                s,
                &format!("etcd put -> first line in topic (median of {changes})"),
                format!("{e:.0} ms"),
                "< 1 s",
                Some(e < 1000.0),
            ),
            row(
                s,
                &format!("config.yaml edit -> first line (median of {changes})"),
                format!("{y:.0} ms"),
                "< 1 s",
                Some(y < 1000.0),
            ),
        ]
    }
}
