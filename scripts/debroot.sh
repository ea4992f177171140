#!/usr/bin/env bash
# A minimal Debian root (debootstrap --variant=minbase, bookworm) for tests/package.rs: the .deb
# is installed, upgraded, removed and purged with dpkg inside a copy of it, and the .rpm's
# scriptlets run in another (it has /bin/sh, useradd and su, as an EL host does). Made once and
# kept as a tarball in the cache (about 2 minutes and 80 MB of downloads the first time); each
# test unpacks its own copy. Prints the tarball's path on its last line.
set -euo pipefail
CACHE="${LOGCATCH_CACHE:-$HOME/.cache/logcatch}"
SUITE=bookworm
# adduser: the .deb depends on it (Priority: important, so not in minbase).
INCLUDE=adduser
tarball="$CACHE/debroot-$SUITE-minbase-$INCLUDE.tar.gz"
if [ -s "$tarball" ]; then
    echo "debroot: $tarball already made" >&2
    echo "$tarball"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    echo "debroot: apt-get install debootstrap" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
mkdir -p "$CACHE"
work=$(mktemp -d "$CACHE/debroot.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "debroot: debootstrap --variant=minbase $SUITE (once)" >&2
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$work/root" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/log" 2>&1 \
    || { tail -20 "$work/log" >&2; exit 1; }
# Downloaded packages are not needed in the copies.
rm -rf "$work/root/var/cache/apt/archives/"*.deb
tar --numeric-owner -C "$work/root" -czf "$tarball.part" .
mv "$tarball.part" "$tarball"
echo "$tarball"
