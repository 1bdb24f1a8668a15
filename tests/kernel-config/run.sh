#!/usr/bin/env bash
# Tests scripts/check-kernel-config.sh against real and broken kernel configs:
#   1. Debian 12's packaged amd64 kernel (the image's kernel) passes every required option;
#   2. the same config with required options removed or unset fails, naming exactly those;
#   3. misuse (not a config, a fragment option without a level) is exit status 2.
# The kernel package is fetched once with `apt-get download` into $HYPHAE_KERNEL_CACHE (default
# /var/cache/hyphae/kernel-config, outside the clone) and never installed.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
check=$repo/scripts/check-kernel-config.sh
cache=${HYPHAE_KERNEL_CACHE:-/var/cache/hyphae/kernel-config}
mkdir -p "$cache"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "kernel-config test: FAIL: $*" >&2; exit 1; }

# --- Debian 12's kernel config -----------------------------------------------------------------
# linux-image-amd64 is a metapackage; its dependency is the versioned kernel package.
kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -nE 's/^ *Depends: (linux-image-[0-9][^ ]*)$/\1/p' | head -n1
}
pkg=$(kernel_pkg)
if [ -z "$pkg" ]; then
  # A fresh machine may have no package lists yet.
  apt-get update -qq >/dev/null 2>&1 || true
  pkg=$(kernel_pkg)
fi
[ -n "$pkg" ] || fail "apt knows no linux-image-amd64 (is deb.debian.org reachable?)"
deb=$(ls "$cache/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
if [ -z "$deb" ]; then
  echo "kernel-config test: downloading $pkg into $cache" >&2
  (cd "$cache" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  deb=$(ls "$cache/${pkg}_"*.deb | head -n1)
fi
config=$cache/config-${pkg#linux-image-}
if [ ! -s "$config" ]; then
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp" --wildcards './boot/config-*'
  mv "$tmp"/boot/config-* "$config"
fi

echo "== Debian 12 $pkg"
"$check" --quiet "$config" || fail "Debian 12's kernel lacks a required option (see above)"

# --- a broken config ---------------------------------------------------------------------------
echo "== broken config (io_uring, soft-dirty and the cpu controller removed)"
sed -e '/^CONFIG_IO_URING=/d' \
  -e 's/^CONFIG_MEM_SOFT_DIRTY=y/# CONFIG_MEM_SOFT_DIRTY is not set/' \
  -e 's/^CONFIG_CFS_BANDWIDTH=y/# CONFIG_CFS_BANDWIDTH is not set/' \
  -e 's/^CONFIG_OVERLAY_FS=.*/CONFIG_OVERLAY_FS=n/' "$config" >"$tmp/broken"
if out=$("$check" --quiet "$tmp/broken"); then
  fail "a config without io_uring passed"
fi
sed 's/^/  (expected) /' <<<"$out"
for opt in CONFIG_IO_URING CONFIG_MEM_SOFT_DIRTY CONFIG_CFS_BANDWIDTH CONFIG_OVERLAY_FS; do
  grep -q "^FAIL  $opt " <<<"$out" || fail "$opt not reported"
done
[ "$(grep -c '^FAIL' <<<"$out")" -eq 4 ] || fail "more failures reported than options removed"

# A module is not enough where the fragment says built in (=y).
sed -e 's/^CONFIG_SECCOMP_FILTER=y/CONFIG_SECCOMP_FILTER=m/' "$config" >"$tmp/module"
out=$("$check" --quiet "$tmp/module") && fail "=m accepted where =y is required"
grep -q '^FAIL  CONFIG_SECCOMP_FILTER ' <<<"$out" || fail "CONFIG_SECCOMP_FILTER=m not reported"

# --- misuse ------------------------------------------------------------------------------------
echo "== misuse"
echo "hello" >"$tmp/notaconfig"
set +e
"$check" "$tmp/notaconfig" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || fail "a non-config gave exit status $rc, not 2"
printf 'CONFIG_IO_URING=y\n' >"$tmp/fragment"
"$check" --fragment "$tmp/fragment" "$config" >/dev/null 2>&1; rc=$?
[ "$rc" -eq 2 ] || fail "a fragment option without a level gave exit status $rc, not 2"
set -e
echo "kernel-config test: ok"
