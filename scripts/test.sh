#!/usr/bin/env bash
# The test command: installs what is missing (tansu, etcd, supervisord, Apache Kafka's jars, the
# musl toolchain), builds the static release binary, then runs every test, unit and integration,
# against the real brokers (tansu, and Apache Kafka) and etcd. Safe on a fresh machine; fast when
# warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Builds are shared between clones of the project, so CI's fresh clone does not rebuild librdkafka.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
bash scripts/install-deps.sh
# Apache Kafka's jars from Maven Central (skipped when cached).
bash scripts/kafka.sh install
# The static release binary, for tests/release.rs (the chroot test): built like the release.
bash scripts/static-build.sh
export LOGCATCH_STATIC_BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/logcatch"
status=0
# Every test; brokers are tansu, except tests/kafka.rs (Apache Kafka: a 3-node cluster, 6
# partitions, the broker's own size limit).
cargo test --no-fail-fast --features failpoints "$@" || status=$?
# The same core, delivery, stall and compressed tests again, on Apache Kafka 4.x (a single KRaft node per
# test) instead of tansu.
LOGCATCH_TEST_BROKER=kafka cargo test --no-fail-fast --features failpoints --test core --test delivery --test stall --test compressed "$@" \
    || status=$?
exit "$status"
