#!/usr/bin/env bash
# Builds the PXE set from the x86_64 image's root file system (run `make image` first; `make
# pxe` does both):
#
#   image/build-pxe.sh OUT_DIR        (env: HYPHAE_IMAGE_WORK, default /var/tmp/hyphae-image)
#
# OUT_DIR/pxe/ then holds
#   vmlinuz      the Debian kernel of the image;
#   initrd.img   an initramfs-tools initrd with loop, squashfs and overlay, losetup and the
#                `hyphae-ram` boot script (image/pxe/hyphae-ram, image/pxe/hook), preceded by a
#                cpio archive holding the whole root file system as hyphae-root.squashfs: the
#                node runs from RAM;
#   boot.ipxe    the iPXE script (relative URLs: serve the directory over HTTP and point DHCP's
#                boot file at http://SERVER:PORT/boot.ipxe, or chain-load it);
#   SHA256SUMS.
# No loop devices or mounts: the root is copied with hard links, its fstab replaced, squashed
# with mksquashfs; the initrd is made with the root's own mkinitramfs in a chroot.
set -euo pipefail

out=${1:?usage: build-pxe.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
work=${HYPHAE_IMAGE_WORK:-/var/tmp/hyphae-image}
rootfs=$work/rootfs
stage=$work/stage

say() { printf '\033[1mpxe:\033[0m %s\n' "$*" >&2; }
die() { echo "build-pxe.sh: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (chroot for mkinitramfs)"
[ -d "$rootfs/etc" ] && [ -f "$stage/esp/hyphae/vmlinuz" ] ||
  die "no x86_64 root file system in $work (make image builds it)"
for tool in mksquashfs cpio; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/image-deps.sh installs it)"
done
start_s=$(date +%s)

# The PXE root: the image's root with hard links (no copy of the data); files that differ are
# replaced, never edited in place, so the image's own root stays as it was.
pxe_root=$work/pxe-root
rm -rf "$pxe_root"
cp -al "$rootfs" "$pxe_root"
rm -f "$pxe_root/etc/fstab"
cat >"$pxe_root/etc/fstab" <<'FSTAB'
# A PXE node runs from RAM (an overlay of the initrd's squashfs and a tmpfs): no partitions.
# Its state (/var/lib/hyphae) lives in RAM too; after a reboot it joins again as a new node.
# (A local disk for the state is not supported yet: the units' StateDirectory= makes them
# require a mount listed here, so an absent disk would keep them from starting.)
FSTAB

kver=$(basename "$(ls -d "$pxe_root"/lib/modules/* | sort -V | tail -n1)")
say "initrd for $kver with the hyphae-ram boot script"
rm -f "$pxe_root/etc/initramfs-tools/modules"
printf 'loop\nsquashfs\noverlay\n' >"$pxe_root/etc/initramfs-tools/modules"
install -D -m 0755 "$here/pxe/hyphae-ram" "$pxe_root/etc/initramfs-tools/scripts/hyphae-ram"
install -D -m 0755 "$here/pxe/hook" "$pxe_root/etc/initramfs-tools/hooks/hyphae-ram"
chroot "$pxe_root" mkinitramfs -o /tmp/initrd.base "$kver"
mv "$pxe_root/tmp/initrd.base" "$work/initrd.base"
# The initrd's own files must not end up in the squashed root.
rm -rf "$pxe_root/etc/initramfs-tools/scripts/hyphae-ram" \
  "$pxe_root/etc/initramfs-tools/hooks/hyphae-ram" "$pxe_root/tmp/"*

# POSIX ACLs (systemd-journald sets its own at boot) are not kept: squashfs-tools 4.5 warns
# "Unrecognised xattr prefix system.posix_acl_*" and skips them; capabilities are kept.
say "squashing the root file system"
carry=$work/pxe-carry
rm -rf "$carry" && mkdir -p "$carry"
# HYPHAE_PXE_ZSTD_LEVEL (default 15). Lower levels are minutes faster on 2 cores but the
# initrd grows (level 3: 293 MiB instead of 257 with the debug binary) and then no longer
# unpacks in a 1 GiB node ("Initramfs unpacking failed: write error"): keep 15 for the test.
mksquashfs "$pxe_root" "$carry/hyphae-root.squashfs" -comp zstd \
  -Xcompression-level "${HYPHAE_PXE_ZSTD_LEVEL:-15}" \
  -noappend -quiet -no-progress
rm -rf "$pxe_root"

mkdir -p "$out/pxe"
pxe=$out/pxe
rm -f "$pxe"/*
cp "$stage/esp/hyphae/vmlinuz" "$pxe/vmlinuz"
# Linux unpacks concatenated cpio archives in order. Ours (uncompressed: squashfs is compressed
# already) goes first, the way early microcode is prepended: after a compressed archive the
# kernel expects only compressed ones ("invalid magic at start of compressed archive").
(cd "$carry" && echo hyphae-root.squashfs | cpio --quiet -o -H newc) >"$work/carry.cpio"
cat "$work/carry.cpio" "$work/initrd.base" >"$pxe/initrd.img"
rm -f "$work/initrd.base" "$work/carry.cpio"
rm -rf "$carry"

# Command line: as the disk image's, with the RAM root instead of a partition. Add first-boot
# settings (hyphae.join=TOKEN, hyphae.node.name=NAME, hyphae.candidates=...) after `boot=`.
cat >"$pxe/boot.ipxe" <<'IPXE'
#!ipxe
# Hyphae PXE boot: kernel and initrd (with the root file system) next to this script.
echo Hyphae: loading the kernel and the root file system...
kernel vmlinuz initrd=initrd.img boot=hyphae-ram console=tty0 console=ttyS0,115200 quiet systemd.firstboot=off systemd.gpt_auto=0 ${hyphae_args}
initrd initrd.img
boot
IPXE
(cd "$pxe" && sha256sum vmlinuz initrd.img boot.ipxe >SHA256SUMS)
end_s=$(date +%s)
say "done in $((end_s - start_s))s: $pxe (kernel $(du -m "$pxe/vmlinuz" | cut -f1) MiB," \
  "initrd $(du -m "$pxe/initrd.img" | cut -f1) MiB)"
