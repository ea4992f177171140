#!/usr/bin/env bash
# The test command: installs what is missing (tansu, etcd, supervisord, the musl toolchain), builds
# the static release binary, then runs every test, unit and integration, against the real broker
# and etcd. Safe on a fresh machine; fast when warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Builds are shared between clones of the project, so CI's fresh clone does not rebuild librdkafka.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
bash scripts/install-deps.sh
# The static release binary, for tests/release.rs (the chroot test): built like the release.
bash scripts/static-build.sh
export LOGCATCH_STATIC_BIN="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/logcatch"
cargo test --no-fail-fast --features failpoints "$@"
