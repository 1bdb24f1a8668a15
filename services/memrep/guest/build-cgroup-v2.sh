#!/usr/bin/env bash
# Builds memrep's cgroup v2 test guest: the test guest's Debian kernel (build.sh) and an
# initramfs whose /init is PROGRAM (the workspace's `memrep-cgroup-v2-guest`, dynamically
# linked: it goes in stripped, with the shared libraries `ldd` names at their own paths), plus
# the host's qemu-system-x86_64 (its libraries, its TCG accelerator module, SeaBIOS and the
# linuxboot ROM) and the same kernel as /vmlinuz, which that QEMU boots inside the guest.
# Prints the directory holding `vmlinuz` and `initrd.cpio`. Cached by content under
# $HYPHAE_GUEST_CACHE/cgroup-v2/<key> (default /var/cache/hyphae/memrep-guest); every other key
# there is removed, since each rebuild of PROGRAM makes a new one.
#
#   services/memrep/guest/build-cgroup-v2.sh PROGRAM   -> /var/cache/hyphae/memrep-guest/cgroup-v2/<key>
#
# Needs what build.sh needs, plus binutils (strip) and ldd (libc-bin).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
program="${1:?usage: build-cgroup-v2.sh PROGRAM}"
cache="${HYPHAE_GUEST_CACHE:-/var/cache/hyphae/memrep-guest}/cgroup-v2"
kernel_dir="$("$here/build.sh")"
mkdir -p "$cache"

qemu="$(command -v qemu-system-x86_64)"
key="$( (sha256sum "$program" "$here/build-cgroup-v2.sh" "$qemu"; echo "$kernel_dir") | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ -f "$out/vmlinuz" ] && [ -f "$out/initrd.cpio" ]; then
  echo "$out"
  exit 0
fi

work="$(mktemp -d "$cache/.build.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/root"
strip -o "$work/root/init" "$program"
mkdir -p "$work/root/usr/bin" "$work/root/usr/share/qemu"
strip -o "$work/root/usr/bin/qemu-system-x86_64" "$qemu"
cp "$kernel_dir/vmlinuz" "$work/root/vmlinuz"
# Debian's QEMU loads TCG from a module; the firmware it needs for a -kernel boot on q35.
modules=(/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so)
for m in "${modules[@]}"; do
  if [ -f "$m" ]; then cp -L --parents "$m" "$work/root/"; fi
done
for f in bios-256k.bin linuxboot_dma.bin kvmvapic.bin; do
  src="/usr/share/qemu/$f"
  [ -e "$src" ] || src="/usr/share/seabios/$f" # Debian: SeaBIOS has its own package
  cp -L "$src" "$work/root/usr/share/qemu/"
done
# The loader and libraries at the paths the binaries ask for (ldd: "name => /path (addr)" and
# the loader's own "/lib64/ld-linux-x86-64.so.2 (addr)").
ldd "$program" "$qemu" "${modules[@]}" 2>/dev/null |
  awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// && $2 ~ /^\(/ {print $1}' | sort -u |
  while read -r lib; do
    cp -L --parents "$lib" "$work/root/"
  done
(cd "$work/root" && find . -mindepth 1 | sed 's|^\./||' | cpio --quiet -o -H newc > "$work/initrd.cpio")
mkdir -p "$out.tmp"
cp "$kernel_dir/vmlinuz" "$out.tmp/vmlinuz"
mv "$work/initrd.cpio" "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
# Older keys (earlier builds of the program) are of no further use.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name "$key" ! -name '.build.*' ! -name '*.tmp' -exec rm -rf {} +
echo "$out"
