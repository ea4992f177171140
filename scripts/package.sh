#!/usr/bin/env bash
# Builds the packages of the static release binary:
#   dist/logcatch_<version>_amd64.deb        with dpkg-deb (Debian, Ubuntu)
#   dist/logcatch-<version>-1.x86_64.rpm     with rpmbuild (EL6 to EL9, SLES)
# Each format's own tool, the ones lintian and rpmlint are written against, rather than a
# generic packager: dpkg-deb and rpm are in Debian, so nothing else is installed, and the
# maintainer scripts and the spec (scripts/package/) are what a distribution's packager reads.
# The binary is the one scripts/static-build.sh makes (or LOGCATCH_STATIC_BIN), stripped.
# Options: --version V (default: Cargo.toml's; the tests build an upgrade with it), --out DIR
# (default dist).
# Prints the two packages' paths, one a line, at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/logcatch/target}"

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
out=dist
while [ $# -gt 0 ]; do
    case "$1" in
        --version) version="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        *) echo "package.sh: unknown argument $1 (--version V, --out DIR)" >&2; exit 2 ;;
    esac
done
case "$version" in
    [0-9]*) ;;
    *) echo "package.sh: --version $version: must start with a digit" >&2; exit 2 ;;
esac
for tool in dpkg-deb rpmbuild; do
    command -v "$tool" >/dev/null || { echo "package.sh: $tool missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
done

bin="${LOGCATCH_STATIC_BIN:-}"
if [ -z "$bin" ]; then
    bash scripts/static-build.sh >&2
    bin="$CARGO_TARGET_DIR/x86_64-unknown-linux-musl/release/logcatch"
fi
[ -x "$bin" ] || { echo "package.sh: no binary at $bin" >&2; exit 1; }

# Reproducible: file times from the last commit, owners from the package metadata.
stamp=$(git log -1 --format=%ct 2>/dev/null || date +%s)
export SOURCE_DATE_EPOCH="$stamp"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out=$(cd "$out" && pwd)

# The files both packages hold, at their places; $1 the root, $2 the unit directory, $3 the init
# script's directory, $4 the directory of the license text.
stage() {
    local root=$1 unitdir=$2 initdir=$3 licdir=$4
    install -d "$root/usr/bin" "$root/etc/logcatch" "$root/etc/logrotate.d" "$root$unitdir" "$root$initdir" \
        "$root/usr/share/doc/logcatch/examples" "$root/usr/share/man/man1" "$root$licdir" \
        "$root/var/lib/logcatch" "$root/var/log/logcatch"
    install -m 0755 "$bin" "$root/usr/bin/logcatch"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$root/usr/bin/logcatch"
    install -m 0644 scripts/release/config.yaml "$root/etc/logcatch/config.yaml"
    install -m 0644 scripts/package/logrotate "$root/etc/logrotate.d/logcatch"
    sed 's|/usr/local/bin/logcatch|/usr/bin/logcatch|g' scripts/logcatch.service > "$root$unitdir/logcatch.service"
    chmod 0644 "$root$unitdir/logcatch.service"
    install -m 0755 scripts/package/logcatch.init "$root$initdir/logcatch"
    sed 's|/usr/local/bin/logcatch|/usr/bin/logcatch|g' scripts/supervisord-logcatch.conf \
        > "$root/usr/share/doc/logcatch/examples/supervisord-logcatch.conf"
    sed 's|/usr/local/bin/cron-status.sh|/usr/share/doc/logcatch/examples/cron-status.sh|g' scripts/cron-status.sh \
        > "$root/usr/share/doc/logcatch/examples/cron-status.sh"
    chmod 0644 "$root/usr/share/doc/logcatch/examples/"*
    gzip -9n < README.md > "$root/usr/share/doc/logcatch/README.md.gz"
    gzip -9n < scripts/package/logcatch.1 > "$root/usr/share/man/man1/logcatch.1.gz"
    install -m 0644 scripts/package/copyright "$root$licdir/copyright"
    find "$root" -exec touch -h -d "@$stamp" {} +
}

# --- .deb ---
deb="$out/logcatch_${version}_amd64.deb"
root="$work/deb"
stage "$root" /lib/systemd/system /etc/init.d /usr/share/doc/logcatch
# The directories owned by the user are made by postinst (the user does not exist at unpack).
rmdir "$root/var/lib/logcatch" "$root/var/log/logcatch" "$root/var/lib" "$root/var/log" "$root/var"
printf '%s\n' \
    "logcatch ($version) unstable; urgency=medium" "" \
    "  * Release $version: see /usr/share/doc/logcatch/README.md.gz." "" \
    " -- logcatch developers <logcatch@example.org>  $(date -u -R -d "@$stamp")" \
    | gzip -9n > "$root/usr/share/doc/logcatch/changelog.gz"
install -d "$root/usr/share/lintian/overrides"
install -m 0644 scripts/package/deb/lintian-overrides "$root/usr/share/lintian/overrides/logcatch"
install -d "$root/DEBIAN"
install -m 0755 scripts/package/deb/postinst scripts/package/deb/prerm scripts/package/deb/postrm "$root/DEBIAN/"
printf '%s\n' /etc/init.d/logcatch /etc/logcatch/config.yaml /etc/logrotate.d/logcatch > "$root/DEBIAN/conffiles"
size=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
cat > "$root/DEBIAN/control" <<CONTROL
Package: logcatch
Version: $version
Architecture: amd64
Maintainer: logcatch developers <logcatch@example.org>
Installed-Size: $size
Depends: adduser
Recommends: logrotate
Section: admin
Priority: optional
Homepage: https://github.com/logcatch/logcatch
Description: tails log files and ships every line to Kafka
 logcatch tails the log files named in its config.yaml and in etcd keys, and
 ships every line to Kafka, keeping its positions so that a restart neither
 loses nor repeats lines. One static binary (librdkafka, OpenSSL, zlib, zstd,
 bzip2 and liblzma compiled in) with a hardened systemd unit, a SysV init script
 and a logrotate snippet for its own log.
CONTROL
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) > "$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/control" "$root/DEBIAN/conffiles" "$root/DEBIAN/md5sums"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >&2

# --- .rpm ---
rpm_root="$work/rpm"
stage "$rpm_root" /usr/lib/systemd/system /etc/rc.d/init.d /usr/share/licenses/logcatch
rpmbuild -bb --quiet \
    --define "_topdir $work/rpmbuild" \
    --define "_rpmdir $out" \
    --define "_build_name_fmt %%{NAME}-%%{VERSION}-%%{RELEASE}.%%{ARCH}.rpm" \
    --define "pkg_version $version" \
    --define "pkg_date $(LC_ALL=C date -u -d "@$stamp" '+%a %b %d %Y')" \
    --define "stage $rpm_root" \
    --define "use_source_date_epoch_as_buildtime 1" \
    --define "clamp_mtime_to_source_date_epoch 1" \
    scripts/package/logcatch.spec >&2
rpm="$out/logcatch-$version-1.x86_64.rpm"
[ -s "$rpm" ] || { echo "package.sh: rpmbuild made no $rpm" >&2; exit 1; }
echo "$deb"
echo "$rpm"
