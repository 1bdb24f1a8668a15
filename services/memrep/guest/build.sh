#!/usr/bin/env bash
# Builds memrep's test guest: Debian's amd64 kernel + an initramfs whose /init is wave.c (a
# static program writing a counter and a page-wave pattern, and with wave_disk=1 a counter ring
# on /dev/vda) and the kernel's virtio-blk modules under /lib/modules. Prints the directory holding
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
# The virtio-blk driver is a module in Debian's kernel: ship it (and what it needs) flat under
# /lib/modules; wave.c loads them in this order.
mkdir -p "$work/root/lib/modules"
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
  f="$(find "$work"/kernel/lib/modules -name "$m.ko*" | head -n1)"
  if [ -z "$f" ]; then
    continue # built into this kernel
  fi
  case "$f" in
    *.ko) cp "$f" "$work/root/lib/modules/$m.ko" ;;
    *.ko.xz) xz -dc "$f" > "$work/root/lib/modules/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" > "$work/root/lib/modules/$m.ko" ;;
    *) echo "memrep guest: unknown module format $f" >&2; exit 1 ;;
  esac
done
(cd "$work/root" && find . -mindepth 1 | sed 's|^\./||' | cpio --quiet -o -H newc > "$work/initrd.cpio")
mkdir -p "$out.tmp"
mv "$work/vmlinuz" "$work/initrd.cpio" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out"
