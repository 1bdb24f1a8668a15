#!/usr/bin/env bash
# Installs what building and booting the appliance image needs, on top of scripts/deps.sh, on a
# Debian 12 machine, as root. Idempotent and quick when everything is present: the image
# targets of the Makefile call it.
#
# The disk is assembled without loop devices or mounts (CI containers have neither):
#   mmdebstrap           the root filesystem from Debian packages, as a directory
#   e2fsprogs            mke2fs -d: an ext4 file system filled from a directory, into a file
#   dosfstools + mtools  mkfs.fat and mcopy/mmd: the EFI system partition, without mounting it
#   fdisk                sfdisk: the GPT partition table on an image file
#   xz-utils             the .img.xz
#   qemu-system-x86 + ovmf  make vm and the image boot test (UEFI firmware for QEMU)
#   qemu-utils           qemu-img: make vm's copy-on-write overlay
#   squashfs-tools + cpio  make pxe: the root as squashfs, carried in a cpio archive
#   ipxe-qemu            the iPXE ROMs QEMU's NICs network-boot with (make pxe-test)
# (The boot loader, kernel and initrd come from packages inside the image, not from this host;
# strip comes with build-essential from scripts/deps.sh.)
set -euo pipefail

packages=(mmdebstrap e2fsprogs dosfstools mtools fdisk xz-utils qemu-system-x86 qemu-utils ovmf
  squashfs-tools cpio ipxe-qemu)

. "$(dirname "$0")/lib/apt.sh"
apt_ensure image-deps "${packages[@]}"
