#!/usr/bin/env bash
# Builds the release: a fully static x86_64 Linux binary (musl, librdkafka and zlib compiled in),
# and the bundle an operator copies to a host:
#   dist/logcatch-<version>-x86_64-linux.tar.gz
#     logcatch-<version>-x86_64-linux/{logcatch, config.yaml, logcatch.service,
#       supervisord-logcatch.conf, cron-status.sh, README.md, SHA256SUMS}
# Installs what the static build needs when missing (rustup's musl target, Debian's musl-tools).
# Prints the tarball's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
TARGET=x86_64-unknown-linux-musl

bash scripts/static-build.sh >&2
bin="$CARGO_TARGET_DIR/$TARGET/release/logcatch"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
name="logcatch-$version-x86_64-linux"
stage="dist/$name"
rm -rf "$stage" "dist/$name.tar.gz"
mkdir -p "$stage"
install -m 0755 "$bin" "$stage/logcatch"
install -m 0644 scripts/release/config.yaml "$stage/config.yaml"
install -m 0644 scripts/logcatch.service "$stage/logcatch.service"
install -m 0644 scripts/supervisord-logcatch.conf "$stage/supervisord-logcatch.conf"
install -m 0755 scripts/cron-status.sh "$stage/cron-status.sh"
install -m 0644 README.md "$stage/README.md"
(cd "$stage" && sha256sum logcatch config.yaml logcatch.service supervisord-logcatch.conf cron-status.sh README.md > SHA256SUMS)
# Reproducible enough: fixed owner and order, modification times from the last commit.
stamp=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$stamp" -C dist -czf "dist/$name.tar.gz" "$name"
"$stage/logcatch" --version >&2
echo "dist/$name.tar.gz"
