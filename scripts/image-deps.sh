#!/usr/bin/env bash
# Installs what building and booting the appliance image needs, on top of scripts/deps.sh, on a
# Debian 12 machine, as root. Idempotent and quick when everything is present: the image
# targets of the Makefile call it.
#
#   scripts/image-deps.sh          the x86_64 image, the PXE set, their boot tests
#   scripts/image-deps.sh rpi      + the Raspberry Pi (arm64) image and its boot test
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
# For the Raspberry Pi image (rpi):
#   qemu-user-static + arch-test  run arm64 maintainer scripts while mmdebstrap builds the
#                        arm64 root (binfmt_misc; registered below)
#   rustc-web + libstd-rust-web-dev:arm64 + gcc-aarch64-linux-gnu + libc6-dev-arm64-cross
#                        cross-compile the hyphae binary for aarch64 with Debian's toolchain
#   libsnappy1v5 liblz4-1 libzstd1 libbz2-1.0 zlib1g (arm64)  what the arm64 librocksdb needs
#                        when linking; librocksdb itself is NOT installed for arm64 (not
#                        Multi-Arch: same: it would remove the host's librocksdb-dev), see
#                        image/cross-build-aarch64.sh
#   qemu-system-arm      boot the arm64 root under qemu-system-aarch64 -M virt (TCG)
# (The boot loader, kernel and initrd come from packages inside the image, not from this host;
# strip comes with build-essential from scripts/deps.sh.)
set -euo pipefail

want_rpi=0
for arg in "$@"; do
  case "$arg" in
    rpi) want_rpi=1 ;;
    *) echo "image-deps.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

packages=(mmdebstrap e2fsprogs dosfstools mtools fdisk xz-utils qemu-system-x86 qemu-utils ovmf
  squashfs-tools cpio ipxe-qemu)

. "$(dirname "$0")/lib/apt.sh"
apt_ensure image-deps "${packages[@]}"

if [ "$want_rpi" = 1 ]; then
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    [ "$(id -u)" -eq 0 ] || { echo "image-deps: run as root to add the arm64 architecture" >&2; exit 1; }
    dpkg --add-architecture arm64
    # apt_ensure runs apt-get update only when something is missing, which it now is.
  fi
  apt_ensure image-deps qemu-user-static arch-test qemu-system-arm rustc-web \
    libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu libc6-dev-arm64-cross \
    libsnappy1v5:arm64 liblz4-1:arm64 libzstd1:arm64 libbz2-1.0:arm64 zlib1g:arm64
  # arm64 maintainer scripts run through qemu-aarch64 via binfmt_misc. In containers nothing
  # mounts binfmt_misc or registers the interpreter at boot, so do both here.
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    cat /usr/lib/binfmt.d/qemu-aarch64.conf >/proc/sys/fs/binfmt_misc/register
  fi
fi
