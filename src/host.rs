//! What the agent reads from the host at run time, and what a missing piece means.
//!
//! Exists for the static release, which may run on any Linux (kernel 3.2 or later) and even in a
//! bare chroot. The binary itself needs nothing from the host; at run time it reads:
//! - `/etc/hosts` and `/etc/resolv.conf`, only to resolve broker and etcd *names* (addresses need
//!   neither). Both missing while a name is configured: one warning at start naming the hosts;
//!   librdkafka's and the etcd client's own errors then name the host that does not resolve.
//! - `/proc/<pid>/cmdline`, only to tell whether a `pid_file` names a live logcatch; without
//!   `/proc` such a pid file is taken as stale (the `data_dir` lock still refuses a second agent).
//! - The host name, from the kernel (`gethostname`, no file): the default of `hostname`.
//! - Not `/etc/localtime`: the agent's log is stamped in UTC (RFC 3339 with `Z`) everywhere, so
//!   hosts in different zones read alike.

use std::net::IpAddr;
use std::path::Path;

/// The kernel's host name (what `hostname` prints), or None if it cannot be had.
pub fn system_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is valid for writes of its whole length, which is what is passed; the kernel
    // writes at most that many bytes (a name of 64 at most on Linux) and nothing else is touched.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The host part of `host:port` (IPv6 in brackets allowed), or of a URL.
fn host_of(addr: &str) -> &str {
    let a = addr.trim();
    let a = a.split_once("://").map_or(a, |(_, rest)| rest);
    let a = a.split('/').next().unwrap_or(a);
    if let Some(rest) = a.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    a.rsplit_once(':').map_or(a, |(h, _)| h)
}

/// The configured names (not addresses) that need resolving.
pub fn names(addrs: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = addrs
        .iter()
        .map(|a| host_of(a))
        .filter(|h| !h.is_empty() && h.parse::<IpAddr>().is_err())
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Warnings about the host, for the log at start: empty on an ordinary host.
pub fn warnings(brokers: &str, etcd_endpoints: &[String], root: &Path) -> Vec<String> {
    let mut addrs: Vec<&str> = brokers.split(',').collect();
    addrs.extend(etcd_endpoints.iter().map(String::as_str));
    let names = names(&addrs);
    let resolvable = root.join("etc/hosts").exists() || root.join("etc/resolv.conf").exists();
    if names.is_empty() || resolvable {
        return Vec::new();
    }
    vec![format!(
        "neither /etc/hosts nor /etc/resolv.conf exists, so the host names {} may not resolve; \
         give addresses in kafkaconfig.kafkaaddr and etcdconfig, or provide those files",
        names.join(", ")
    )]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_leave_addresses_out() {
        assert_eq!(
            names(&["127.0.0.1:9092", "kafka1:9092", "[::1]:9092", "http://etcd.example.org:2379", "kafka1:9093"]),
            vec!["etcd.example.org", "kafka1"]
        );
    }

    #[test]
    fn a_bare_root_with_names_warns_once_naming_them() {
        let root = tempfile::tempdir().unwrap();
        let w = warnings("kafka1:9092,10.0.0.1:9092", &["etcd1:2379".into()], root.path());
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("etcd1, kafka1"), "{}", w[0]);
        assert!(warnings("127.0.0.1:9092", &[], root.path()).is_empty(), "addresses need nothing");
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/hosts"), "").unwrap();
        assert!(warnings("kafka1:9092", &[], root.path()).is_empty());
    }
}
