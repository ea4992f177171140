#!/usr/bin/env bash
# Installs the real components the tests and the demo run against, idempotently:
#   - tansu 0.6.0 (Kafka-compatible broker) from crates.io, skipped when that version is on PATH;
#   - etcd-server + etcd-client from Debian, skipped when `etcd` is on PATH;
#   - curl (the etcd-logconf script and the demo use it);
#   - supervisor from Debian (the shipped supervisord conf is tested under the real one);
#   - logrotate from Debian (rotation and compression are tested with the real one);
#   - openssl and perl (scripts/pki.sh makes the TLS tests' certificates; OpenSSL's own build,
#     compiled into the binary by rdkafka's ssl-vendored, runs perl);
#   - rpm, lintian, rpmlint and debootstrap from Debian (the packages are built and checked);
#   - with --bench (scripts/bench.sh passes it): rsyslog and rsyslog-kafka from Debian, the live
#     tail's same-run baseline (its service is disabled: the bench starts its own rsyslogd).
# Safe to run again and again; prints what it skips.
set -euo pipefail
bench=false
[ "${1:-}" = "--bench" ] && bench=true

TANSU_VERSION=0.6.0

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server etcd-client)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
# Debian's supervisord: tests/operations.rs runs the shipped program section under it.
command -v supervisord >/dev/null 2>&1 || need_apt+=(supervisor)
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)
command -v perl >/dev/null 2>&1 || need_apt+=(perl)
command -v etcdctl >/dev/null 2>&1 || need_apt+=(etcd-client)
# Debian's logrotate: tests/compressed.rs rotates and compresses with the real one.
command -v logrotate >/dev/null 2>&1 || [ -x /usr/sbin/logrotate ] || need_apt+=(logrotate)
# systemd-analyze (verify, security --offline): tests/confinement.rs checks the shipped unit.
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
# The packaging tools and checks (tests/package.rs): rpmbuild and rpm (package rpm), lintian,
# rpmlint, and debootstrap for the minimal Debian root the .deb is installed into.
command -v rpmbuild >/dev/null 2>&1 || need_apt+=(rpm)
command -v lintian >/dev/null 2>&1 || need_apt+=(lintian)
command -v rpmlint >/dev/null 2>&1 || need_apt+=(rpmlint)
command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || need_apt+=(debootstrap)
rsyslog_new=false
if $bench && [ ! -e /usr/lib/x86_64-linux-gnu/rsyslog/omkafka.so ]; then
    need_apt+=(rsyslog rsyslog-kafka)
    rsyslog_new=true
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "install-deps: apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
    # Debian's package may start a system etcd on 2379; the project starts its own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
    pkill -x etcd >/dev/null 2>&1 || true
    # Likewise the package's own supervisord; tests start their own.
    if command -v systemctl >/dev/null 2>&1; then systemctl disable --now supervisor >/dev/null 2>&1 || true; fi
    # And the system rsyslog the bench's package brings: the bench runs its own.
    if $rsyslog_new && command -v systemctl >/dev/null 2>&1; then
        systemctl disable --now rsyslog >/dev/null 2>&1 || true
    fi
else
    echo "install-deps: etcd $(etcd --version 2>/dev/null | head -1 | awk '{print $3}') already installed"
fi

if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
    echo "install-deps: tansu $TANSU_VERSION already installed"
else
    echo "install-deps: cargo install tansu $TANSU_VERSION (about 10-12 minutes on 2 cores)"
    cargo install tansu --locked --version "$TANSU_VERSION" --features dynostore,libsql
fi
