//! Scenario 6: the fleet in etcd.

use super::*;

impl Bench {
    /// The agents' reports under logcatch/agents: (count, how many report `key` at `revision` or
    /// later). Read with curl from the JSON gateway, as an operator's script would.
    pub(super) fn fleet_reports(&self, key: &str, revision: i64) -> (usize, usize) {
        use base64::Engine as _;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let body = format!("{{\"key\":\"{}\",\"range_end\":\"{}\"}}", b64("logcatch/agents/"), b64("logcatch/agents0"));
        let out = Command::new("curl")
            .args(["-fs", "-X", "POST", &format!("http://127.0.0.1:{}/v3/kv/range", self.etcd_port), "-d", &body])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let kvs = v["kvs"].as_array().cloned().unwrap_or_default();
        let applied = kvs
            .iter()
            .filter_map(|kv| base64::engine::general_purpose::STANDARD.decode(kv["value"].as_str()?).ok())
            .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .filter(|r| r["keys"][key]["revision"].as_i64().is_some_and(|x| x >= revision))
            .count();
        (kvs.len(), applied)
    }

    /// 200 idle agents (each its own data_dir, one file, `hostname: fleet-N`), all watching one
    /// etcd key and reporting in logcatch/agents: etcd's CPU and the agents' (leases kept alive,
    /// reports checked every second) over a quiet window, and the time from one put to the
    /// last of the 200 reporting it applied.
    pub(super) fn fleet(&mut self) -> Vec<Row> {
        let n = 200;
        let secs: u64 = if self.quick { 15 } else { 30 };
        let topic = self.topic("fleet");
        let mut kids = Vec::new();
        for i in 0..n {
            let d = self.run_dir(&format!("fleet{i}"));
            let file = d.join("a.log");
            std::fs::write(&file, "one line\n").unwrap();
            let extra = format!(
                "hostname: fleet-{i}\netcdconfig: [\"127.0.0.1:{}\"]\netcdkeys: [\"bench-fleet\"]\netcd_allowed_paths: [\"{}\"]\n",
                self.etcd_port,
                d.display()
            );
            let cfg = self.config(&d, &[(file, topic.clone())], &extra);
            kids.push(self.spawn_agent(&cfg));
        }
        wait_until(Duration::from_secs(180), "200 agents in the fleet", || self.fleet_reports("", 0).0 == n);
        // Let the start-up settle: 200 agents starting at once keep 2 cores busy for several
        // seconds after the last one registered (perf: the machine is idle after that).
        std::thread::sleep(Duration::from_secs(20));
        let etcd_pid = self.etcd.members[0].proc.pid() as u32;
        let agents_cpu = |kids: &Vec<Child>| kids.iter().map(|k| sample(k.id()).0).sum::<f64>();
        let (e0, a0, t0) = (sample(etcd_pid).0, agents_cpu(&kids), Instant::now());
        std::thread::sleep(Duration::from_secs(secs));
        let wall = t0.elapsed().as_secs_f64();
        let (e1, a1) = (sample(etcd_pid).0, agents_cpu(&kids));
        let rss: u64 = kids.iter().map(|k| sample(k.id()).1).sum();
        let (etcd_pct, agents_pct) = ((e1 - e0) / wall * 100.0, (a1 - a0) / wall * 100.0);
        // One put, until every report has it.
        let out = Command::new("curl")
            .args([
                "-fs",
                "-X",
                "POST",
                &format!("http://127.0.0.1:{}/v3/kv/put", self.etcd_port),
                "-d",
                "{\"key\":\"YmVuY2gtZmxlZXQ=\",\"value\":\"W10=\"}",
            ])
            .output()
            .unwrap();
        let put_at = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let revision: i64 = v["header"]["revision"].as_str().and_then(|r| r.parse().ok()).unwrap_or(i64::MAX);
        wait_until(Duration::from_secs(60), "every agent to report the put", || {
            self.fleet_reports("bench-fleet", revision).1 == n
        });
        let all_ms = put_at.elapsed().as_secs_f64() * 1000.0;
        for k in kids.iter_mut() {
            unsafe { libc::kill(k.id() as i32, libc::SIGTERM) };
        }
        for k in kids.iter_mut() {
            reap(k);
        }
        let s = "6. fleet";
        vec![
            row(
                s,
                &format!("{n} idle agents, {secs} s: etcd CPU"),
                format!("{etcd_pct:.2} % of a core"),
                "small",
                None,
            ),
            row(
                s,
                "the agents' CPU (all / each)",
                format!("{agents_pct:.1} % / {:.3} % of a core", agents_pct / n as f64),
                "",
                None,
            ),
            row(
                s,
                "the agents' RSS (all / each)",
                format!("{:.0} / {:.1} MiB", rss as f64 / 1024.0, rss as f64 / 1024.0 / n as f64),
                "",
                None,
            ),
            // Issue 17 asks 2 s for 20 agents (the suite's fleet test, which waits without a
            // clock); 200 on 2 cores saturate them (see BENCHMARKS): a figure, not a verdict.
            row(
                s,
                &format!("one put -> applied in all {n} reports"),
                format!("{all_ms:.0} ms"),
                "issue 17: < 2 s for 20",
                None,
            ),
        ]
    }
}
