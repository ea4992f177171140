//! Secured transport (issue 12) against real servers: Apache Kafka 4.1.1 with TLS listeners
//! (`scripts/kafka.sh start secure`: one that requires a client certificate, one with SASL
//! SCRAM-SHA-512/256 and PLAIN), and etcd serving TLS with client certificates, written to with
//! Debian's etcdctl. Certificates from `scripts/pki.sh`. tansu cannot serve TLS (see
//! ../shared/ENVIRONMENT.md), so these run on Apache Kafka whatever LOGCATCH_TEST_BROKER says.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

const T: Duration = Duration::from_secs(40);
const PASSWORD: &str = "logcatch-secret";

/// Fields drop in order: the broker is stopped before its directory goes.
struct Secure {
    broker: Broker,
    dir: tempfile::TempDir,
    ssl: String,
    sasl_ssl: String,
    pki: PathBuf,
}

fn secure_kafka() -> Secure {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start_kafka(dir.path(), "secure");
    let printed = &broker.kafka.as_ref().unwrap().printed;
    let (ssl, sasl_ssl, pki) = (printed["SSL"].clone(), printed["SASL_SSL"].clone(), PathBuf::from(&printed["PKI"]));
    Secure { dir, broker, ssl, sasl_ssl, pki }
}

fn password_file(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("kafka.pass");
    std::fs::write(&p, format!("{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// A directory with one file of `n` numbered lines, and a config shipping it to `topic` with
/// the given kafkaconfig (and a metrics file, for `status`).
fn agent_dir(root: &Path, name: &str, topic: &str, n: usize, kafka: &str) -> (PathBuf, PathBuf) {
    let d = root.join(name);
    std::fs::create_dir_all(&d).unwrap();
    append(&d.join("app.log"), &numbered(name, 0..n));
    let cfg = agent_config(&d, topic, kafka);
    (d, cfg)
}

/// (Re)writes the config of an `agent_dir`.
fn agent_config(d: &Path, topic: &str, kafka: &str) -> PathBuf {
    let extra =
        format!("start_position: beginning\nmetrics: {{path: {}/metrics.prom, interval: 200ms}}\n{kafka}", d.display());
    write_config(d, "", &[(&d.join("app.log"), topic)], &extra)
}

/// `logcatch test` of a config: what it printed, and its exit code.
fn logcatch_test(cfg: &Path) -> (String, Option<i32>) {
    let out = Command::new(bin()).args(["test", "-c"]).arg(cfg).output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr), out.status.code())
}

fn status(cfg: &Path) -> (String, Option<i32>) {
    let out = Command::new(bin()).args(["status", "-c"]).arg(cfg).output().unwrap();
    (String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr), out.status.code())
}

#[test]
fn kafka_over_tls_with_sasl_or_a_client_certificate_ships_every_line() {
    let s = secure_kafka();
    let pki = s.pki.display();
    let pw = password_file(s.dir.path(), PASSWORD);
    let pw = pw.display();
    let cases = [
        (
            "scram512",
            format!(
                "kafkaconfig:\n  kafkaaddr: \"{}\"\n  tls: {{ca_file: {pki}/ca.pem}}\n  \
                 sasl: {{mechanism: SCRAM-SHA-512, username: logcatch, password_file: {pw}}}\n  compression: zstd\n",
                s.sasl_ssl
            ),
        ),
        (
            "scram256",
            format!(
                "kafkaconfig:\n  kafkaaddr: \"{}\"\n  tls: {{ca_file: {pki}/ca.pem}}\n  \
                 sasl: {{mechanism: SCRAM-SHA-256, username: logcatch, password_file: {pw}}}\n",
                s.sasl_ssl
            ),
        ),
        (
            "plain",
            format!(
                "kafkaconfig:\n  kafkaaddr: \"{}\"\n  tls: {{ca_file: {pki}/ca.pem}}\n  \
                 sasl: {{mechanism: PLAIN, username: logcatch, password_file: {pw}}}\n",
                s.sasl_ssl
            ),
        ),
        (
            "mtls",
            format!(
                "kafkaconfig:\n  kafkaaddr: \"{}\"\n  \
                 tls: {{ca_file: {pki}/ca.pem, cert_file: {pki}/client.pem, key_file: {pki}/client.key}}\n",
                s.ssl
            ),
        ),
    ];
    for (name, kafka) in &cases {
        s.broker.create_topic(name);
        let (d, cfg) = agent_dir(s.dir.path(), name, name, 200, kafka);
        let check = Command::new(bin()).args(["--check", "-c"]).arg(&cfg).output().unwrap();
        assert!(check.status.success(), "{name}: {}", String::from_utf8_lossy(&check.stderr));
        let mut agent = Agent::start(&cfg);
        assert_eq!(s.broker.lines(name, 200, T), numbered(name, 0..200), "{name}");
        assert_eq!(agent.terminate(), Some(0), "{name}");
        // The password is in no log, no metrics file, no --check output.
        let logs = agent.log_text() + &std::fs::read_to_string(d.join("agent.log")).unwrap_or_default();
        let metrics = std::fs::read_to_string(d.join("metrics.prom")).unwrap_or_default();
        let check = String::from_utf8_lossy(&check.stdout).into_owned() + &String::from_utf8_lossy(&check.stderr);
        for (what, text) in [("log", &logs), ("metrics", &metrics), ("--check", &check)] {
            assert!(!text.contains(PASSWORD), "{name}: the password is in the {what}");
        }
    }
}

#[test]
fn a_wrong_ca_or_password_is_named_and_the_lines_ship_once_it_is_fixed() {
    let s = secure_kafka();
    let pki = s.pki.display();
    s.broker.create_topic("t");
    let good = password_file(s.dir.path(), PASSWORD);
    let kafka = |ca: &str, pw: &Path| {
        format!(
            "kafkaconfig:\n  kafkaaddr: \"{}\"\n  tls: {{ca_file: {pki}/{ca}}}\n  \
             sasl: {{mechanism: SCRAM-SHA-512, username: logcatch, password_file: {}}}\n",
            s.sasl_ssl,
            pw.display()
        )
    };
    // A CA that did not sign the broker's certificate.
    let (d, cfg) = agent_dir(s.dir.path(), "a", "t", 100, &kafka("other-ca.pem", &good));
    let mut agent = Agent::start(&cfg);
    agent.wait_log("certificate verify failed", T);
    let text = agent.log_text();
    let line = text.lines().find(|l| l.contains("certificate verify failed")).unwrap();
    assert!(line.contains(&s.sasl_ssl), "the error names the broker: {line}");
    wait_until(T, "status to say why it is stuck", || {
        let (out, code) = status(&cfg);
        code == Some(3) && out.contains("certificate verify failed")
    });
    // `logcatch test` names it too, before any agent runs (issue 27).
    let (out, code) = logcatch_test(&cfg);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(&format!("FAIL  kafka {}: ", s.sasl_ssl)) && out.contains("certificate verify failed"),
        "{out}"
    );

    // The right CA, a wrong password: fixed in config.yaml, applied by a reload (SIGHUP).
    let wrong = d.join("wrong.pass");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    agent_config(&d, "t", &kafka("ca.pem", &wrong));
    agent.proc.signal(libc::SIGHUP);
    agent.wait_log("Authentication failed", T);
    assert!(!agent.log_text().contains("not-the-password"));
    let (out, code) = logcatch_test(&cfg);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("FAIL  kafka") && out.contains("Authentication failed"), "{out}");
    assert!(!out.contains("not-the-password"), "no secret printed: {out}");

    // Fixed: every line arrives, once.
    append(&d.join("app.log"), &numbered("a", 100..150));
    agent_config(&d, "t", &kafka("ca.pem", &good));
    let (out, code) = logcatch_test(&cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("OK    kafka topic t: 1 partition(s)"), "{out}");
    agent.proc.signal(libc::SIGHUP);
    assert_eq!(s.broker.lines("t", 150, T), numbered("a", 0..150));
    // Nothing twice: a 151st line is waited for, boundedly, and must not come.
    assert_eq!(s.broker.lines("t", 151, Duration::from_secs(3)), numbered("a", 0..150), "nothing twice");
    assert_eq!(agent.terminate(), Some(0));
}

/// Issue 27: short-lived certificates are renewed in place. The agent starts with a CA file that
/// did not sign the broker's certificate (stuck, named); the same file is then overwritten with
/// the right CA, config.yaml untouched, and SIGHUP applies it (a restart in place, same PID):
/// every line arrives, once.
#[test]
fn a_ca_file_renewed_in_place_is_applied_by_sighup() {
    let s = secure_kafka();
    let pki = s.pki.clone();
    s.broker.create_topic("t");
    let pw = password_file(s.dir.path(), PASSWORD);
    let live_ca = s.dir.path().join("live-ca.pem");
    std::fs::copy(pki.join("other-ca.pem"), &live_ca).unwrap();
    let kafka = format!(
        "kafkaconfig:\n  kafkaaddr: \"{}\"\n  tls: {{ca_file: {}}}\n  \
         sasl: {{mechanism: SCRAM-SHA-512, username: logcatch, password_file: {}}}\n",
        s.sasl_ssl,
        live_ca.display(),
        pw.display()
    );
    let (d, cfg) = agent_dir(s.dir.path(), "r", "t", 100, &kafka);
    let mut agent = Agent::start(&cfg);
    agent.wait_log("certificate verify failed", T);
    let pid = agent.proc.pid();
    // Renewed in place, as a certificate manager does (a new file renamed over the old one).
    let tmp = s.dir.path().join(".live-ca.pem.new");
    std::fs::copy(pki.join("ca.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, &live_ca).unwrap();
    append(&d.join("app.log"), &numbered("r", 100..120));
    agent.proc.signal(libc::SIGHUP);
    assert_eq!(s.broker.lines("t", 120, T), numbered("r", 0..120));
    assert_eq!(s.broker.lines("t", 121, Duration::from_secs(3)).len(), 120, "nothing twice");
    assert_eq!(agent.proc.pid(), pid, "restarted in place");
    assert!(agent.log_text().contains("kafkaconfig"), "the log says what changed");
    assert_eq!(agent.terminate(), Some(0));
}

/// One etcd member serving TLS only, requiring client certificates signed by the test CA.
struct TlsEtcd {
    proc: Proc,
    endpoint: String,
    pki: PathBuf,
    _data: tempfile::TempDir,
}

impl TlsEtcd {
    fn start(dir: &Path) -> TlsEtcd {
        let pki = dir.join("pki");
        assert!(Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pki.sh"))
            .arg(&pki)
            .status()
            .unwrap()
            .success());
        let (client, peer) = (free_port(), free_port());
        let data = tempfile::tempdir().unwrap();
        let c = format!("https://127.0.0.1:{client}");
        let p = format!("http://127.0.0.1:{peer}");
        let log = std::fs::File::create(dir.join("etcd-tls.log")).unwrap();
        let child = Command::new("etcd")
            .args(["--name", "tls", "--data-dir"])
            .arg(data.path())
            .args(["--listen-client-urls", &c, "--advertise-client-urls", &c])
            .args(["--listen-peer-urls", &p, "--initial-advertise-peer-urls", &p])
            .args(["--initial-cluster", &format!("tls={p}")])
            .arg("--cert-file")
            .arg(pki.join("server.pem"))
            .arg("--key-file")
            .arg(pki.join("server.key"))
            .arg("--trusted-ca-file")
            .arg(pki.join("ca.pem"))
            .arg("--client-cert-auth")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd (run scripts/install-deps.sh)");
        let e = TlsEtcd { proc: Proc { child: Some(child), name: "etcd-tls".into() }, endpoint: c, pki, _data: data };
        wait_until(Duration::from_secs(30), "etcd over TLS to answer", || e.etcdctl(&["endpoint", "health"]).is_ok());
        e
    }

    /// Debian's etcdctl, as an operator's script would run it, with the client certificate.
    fn etcdctl(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", self.endpoint))
            .arg(format!("--cacert={}", self.pki.join("ca.pem").display()))
            .arg(format!("--cert={}", self.pki.join("client.pem").display()))
            .arg(format!("--key={}", self.pki.join("client.key").display()))
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }
}

#[test]
fn etcd_over_mutual_tls_drives_the_tails() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("te");
    let etcd = TlsEtcd::start(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let a = logs.join("a.log");
    append(&a, &numbered("e", 0..50));
    etcd.etcdctl(&["put", "k", &format!("[{{\"path\":\"{}\",\"topic\":\"te\"}}]", a.display())]).unwrap();
    let pki = etcd.pki.display();
    let extra = format!(
        "start_position: beginning\netcdkeys: [k]\netcdconfig: [\"{}\"]\netcd_allowed_paths: [\"{}\"]\n\
         etcd_tls: {{ca_file: {pki}/ca.pem, cert_file: {pki}/client.pem, key_file: {pki}/client.key}}\n",
        etcd.endpoint,
        logs.display()
    );
    let cfg = write_config(dir.path(), &broker.addr(), &[], &extra);
    let mut agent = Agent::start(&cfg);
    assert_eq!(broker.lines("te", 50, T), numbered("e", 0..50));

    // A CA that did not sign etcd's certificate, or no client certificate: named with the
    // endpoint, and the agent runs on (retrying).
    for (name, tls, cause) in [
        ("other-ca", format!("{{ca_file: {pki}/other-ca.pem}}"), "invalid peer certificate: UnknownIssuer"),
        ("no-client-cert", format!("{{ca_file: {pki}/ca.pem}}"), "received fatal alert: BadCertificate"),
    ] {
        let bad = dir.path().join(name);
        std::fs::create_dir_all(&bad).unwrap();
        let extra = format!(
            "etcdkeys: [k]\netcdconfig: [\"{}\"]\netcd_allowed_paths: [\"{}\"]\netcd_tls: {tls}\n",
            etcd.endpoint,
            logs.display()
        );
        let cfg = write_config(&bad, &broker.addr(), &[], &extra);
        let mut refused = Agent::start(&cfg);
        refused.wait_log(cause, T);
        let text = refused.log_text();
        let line = text.lines().find(|l| l.contains(cause)).unwrap();
        assert!(line.contains(&etcd.endpoint), "{name}: the error names the endpoint: {line}");
        assert!(refused.proc.is_running(), "{name}");
        assert_eq!(refused.terminate(), Some(0), "{name}");
    }
    drop(etcd);
    assert_eq!(agent.terminate(), Some(0));
}

/// Issue 27: etcd's CA file renewed in place (config.yaml untouched) is applied by SIGHUP: the
/// watch that could not connect (the old CA did not sign etcd's certificate) connects, the
/// key's files ship, and the fleet report appears.
#[test]
fn an_etcd_ca_file_renewed_in_place_is_applied_by_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    broker.create_topic("tr");
    let etcd = TlsEtcd::start(dir.path());
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let a = logs.join("a.log");
    append(&a, &numbered("e", 0..30));
    etcd.etcdctl(&["put", "k", &format!("[{{\"path\":\"{}\",\"topic\":\"tr\"}}]", a.display())]).unwrap();
    let pki = etcd.pki.display();
    let live_ca = dir.path().join("live-ca.pem");
    std::fs::copy(etcd.pki.join("other-ca.pem"), &live_ca).unwrap();
    let extra = format!(
        "start_position: beginning\netcdkeys: [k]\netcdconfig: [\"{}\"]\netcd_allowed_paths: [\"{}\"]\n\
         etcd_tls: {{ca_file: {}, cert_file: {pki}/client.pem, key_file: {pki}/client.key}}\n",
        etcd.endpoint,
        logs.display(),
        live_ca.display()
    );
    let cfg = write_config(dir.path(), &broker.addr(), &[], &extra);
    let mut agent = Agent::start(&cfg);
    agent.wait_log("UnknownIssuer", T);
    let pid = agent.proc.pid();
    let tmp = dir.path().join(".live-ca.pem.new");
    std::fs::copy(etcd.pki.join("ca.pem"), &tmp).unwrap();
    std::fs::rename(&tmp, &live_ca).unwrap();
    agent.proc.signal(libc::SIGHUP);
    assert_eq!(broker.lines("tr", 30, T), numbered("e", 0..30));
    // The fleet report connects with the renewed CA too.
    wait_until(T, "the agent to report itself under logcatch/agents/", || {
        etcd.etcdctl(&["get", "--prefix", "--keys-only", "logcatch/agents/"]).is_ok_and(|k| !k.trim().is_empty())
    });
    assert_eq!(agent.proc.pid(), pid, "the same process");
    drop(etcd);
    assert_eq!(agent.terminate(), Some(0));
}

impl Drop for TlsEtcd {
    fn drop(&mut self) {
        self.proc.kill();
    }
}
