#!/usr/bin/env bash
# Builds a bootable raw disk image of memrep's test guest, for VMs created with a disk and no
# kernel (the firmware boots the disk): a FAT "superfloppy" (no partition table; the FAT boot
# sector is the disk's first sector) with syslinux installed in it (`syslinux --install`, which
# writes through mtools: no loop mount, no root needed), and build.sh's kernel and initramfs
# copied in with mcopy beside a syslinux.cfg that boots them with the wave program's usual
# command line on the serial console. Prints the path of the image (`boot.raw`). Cached by content
# under $HYPHAE_GUEST_CACHE/boot-disk/<key> (default /var/cache/hyphae/memrep-guest); other keys
# there are removed.
#
#   services/memrep/guest/build-boot-disk.sh   -> /var/cache/hyphae/memrep-guest/boot-disk/<key>/boot.raw
#
# Needs what build.sh needs, plus dosfstools (mkfs.fat), syslinux and mtools (scripts/deps.sh).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cache="${HYPHAE_GUEST_CACHE:-/var/cache/hyphae/memrep-guest}/boot-disk"
guest="$("$here/build.sh")"
mkdir -p "$cache"

key="$( (sha256sum "$here/build-boot-disk.sh"; echo "$guest") | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/boot.raw" ]; then
  echo "$out/boot.raw"
  exit 0
fi

work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# Room for the kernel, the initramfs and syslinux, rounded to whole MiB plus 2 MiB of slack
# (a multiple of 4 KiB, as memrep requires of disks).
bytes=$(( $(stat -c %s "$guest/vmlinuz") + $(stat -c %s "$guest/initrd.cpio") ))
mib=$(( bytes / 1048576 + 3 ))
mkfs.fat -C -n HYPHAEBOOT "$work/boot.raw" $(( mib * 1024 )) >/dev/null
syslinux --install "$work/boot.raw"
cat > "$work/syslinux.cfg" <<'CFG'
SERIAL 0 115200
DEFAULT wave
PROMPT 0
TIMEOUT 0
LABEL wave
  KERNEL vmlinuz
  INITRD initrd.cpio
  APPEND console=ttyS0 nokaslr mitigations=off panic=-1 quiet wave_region=512 wave_pages=16 wave_sleep_us=2000
CFG
mcopy -i "$work/boot.raw" "$guest/vmlinuz" "$guest/initrd.cpio" "$work/syslinux.cfg" ::/
mkdir -p "$out.tmp"
mv "$work/boot.raw" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' ! -name '*.tmp' -exec rm -rf {} +
echo "$out/boot.raw"
