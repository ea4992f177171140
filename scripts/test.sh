#!/usr/bin/env bash
# The test command: installs what is missing (tansu, etcd), then runs every test, unit and
# integration, against the real broker and etcd. Safe on a fresh machine; fast when warm.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# Builds are shared between clones of the project, so CI's fresh clone does not rebuild librdkafka.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
bash scripts/install-deps.sh
cargo test --no-fail-fast --features failpoints "$@"
