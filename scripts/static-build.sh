#!/usr/bin/env bash
# Builds the static release binary: target x86_64-unknown-linux-musl, C parts (librdkafka, zlib,
# the allocator) compiled with Debian's musl-gcc, linked into a static-pie executable that needs
# nothing from the host. Installs the musl target and musl-tools when missing; idempotent.
# The binary: $CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/logcatch
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"
TARGET=x86_64-unknown-linux-musl

if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
    echo "static-build: rustup target add $TARGET"
    rustup target add "$TARGET"
fi
if ! command -v musl-gcc >/dev/null 2>&1; then
    echo "static-build: apt-get install musl-tools"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq musl-tools >/dev/null
fi
export CC_x86_64_unknown_linux_musl=musl-gcc
cargo build --release --target "$TARGET" "$@"
bin="$CARGO_TARGET_DIR/$TARGET/release/logcatch"
# The promise of the release: no dynamic section at all.
if readelf -d "$bin" 2>/dev/null | grep -q NEEDED; then
    echo "static-build: $bin needs shared libraries:" >&2
    readelf -d "$bin" | grep NEEDED >&2
    exit 1
fi
echo "static-build: $bin (static, $(du -h "$bin" | cut -f1))"
