#!/usr/bin/env bash
# mmdebstrap --essential-hook: runs after the essential packages are installed and before the
# rest (the kernel among them), so the initrd is generated once, already as configured here.
set -euo pipefail
root=${1:?usage: essential.sh ROOTFS}

# The initrd: every storage driver (MODULES=most: the image must boot on unknown hardware),
# compressed with zstd (fast to unpack at boot).
mkdir -p "$root/etc/initramfs-tools/conf.d"
cat >"$root/etc/initramfs-tools/conf.d/hyphae" <<'CONF'
MODULES=most
COMPRESS=zstd
CONF

# The data partition grows to the end of the disk in the initrd, before anything on the disk is
# mounted (image/initramfs/grow-data explains why there).
here=$(cd "$(dirname "$0")" && pwd)
install -D -m 0755 "$here/initramfs/hook" "$root/etc/initramfs-tools/hooks/hyphae-grow-data"
install -D -m 0755 "$here/initramfs/grow-data" \
  "$root/etc/initramfs-tools/scripts/local-premount/hyphae-grow-data"
