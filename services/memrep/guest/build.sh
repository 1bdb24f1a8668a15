#!/usr/bin/env bash
# Builds memrep's test guest: Debian's amd64 kernel + an initramfs whose /init is wave.c (a
# static program writing a counter and a page-wave pattern). Prints the directory holding
# `vmlinuz` and `initrd.cpio`. Cached by content under $HYPHAE_GUEST_CACHE (default
# /var/cache/hyphae/memrep-guest): a second call with the same inputs does no work.
#
#   services/memrep/guest/build.sh        -> /var/cache/hyphae/memrep-guest/<key>
#
# Needs gcc (static libc: libc6-dev), cpio, and apt-get/dpkg-deb for the kernel package.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${HYPHAE_GUEST_CACHE:-/var/cache/hyphae/memrep-guest}"
apt_cache="${HYPHAE_APT_CACHE:-/var/cache/hyphae/apt}"
mkdir -p "$cache" "$apt_cache"

# The kernel package: linux-image-amd64 is a metapackage; its dependency is the real image.
kernel_deb="$(ls "$apt_cache"/linux-image-[0-9]*-amd64_*_amd64.deb 2>/dev/null | sort -V | tail -n1 || true)"
if [ -z "$kernel_deb" ]; then
  real="$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')"
  if [ -z "$real" ]; then
    echo "memrep guest: cannot resolve linux-image-amd64 (run apt-get update?)" >&2
    exit 1
  fi
  (cd "$apt_cache" && apt-get download -q "$real" >&2)
  kernel_deb="$(ls "$apt_cache"/"$real"_*_amd64.deb | tail -n1)"
fi

key="$( (sha256sum "$here/wave.c" "$here/build.sh"; basename "$kernel_deb") | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.cpio" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
dpkg-deb -x "$kernel_deb" "$work/kernel"
cp "$work"/kernel/boot/vmlinuz-* "$work/vmlinuz"
mkdir -p "$work/root"
gcc -static -O2 -Wall -o "$work/root/init" "$here/wave.c"
(cd "$work/root" && echo init | cpio --quiet -o -H newc > "$work/initrd.cpio")
mkdir -p "$out.tmp"
mv "$work/vmlinuz" "$work/initrd.cpio" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
