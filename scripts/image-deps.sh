#!/usr/bin/env bash
# Installs what building and booting the appliance image needs, on top of scripts/deps.sh, on a
# Debian 12 machine, as root. Idempotent and quick when everything is present: the image
# targets of the Makefile call it.
#
# Everything here works without loop devices or mounts (CI containers have neither):
#   mmdebstrap           the root filesystem from Debian packages, as a directory
#   e2fsprogs            mke2fs -d: an ext4 file system filled from a directory, into a file
#   dosfstools + mtools  mkfs.fat and mcopy/mmd: the EFI system partition, without mounting it
#   fdisk                sfdisk: the GPT partition table on an image file
#   xz-utils             the .img.xz
#   qemu-system-x86 + ovmf  make vm and the image boot test (UEFI firmware for QEMU)
#   systemd + systemd-boot-efi  systemd-analyze for scripts/check-units.sh; the boot loader
#                               files are taken from the image's own package, not from here
set -euo pipefail

packages=(mmdebstrap e2fsprogs dosfstools mtools fdisk xz-utils qemu-system-x86 ovmf systemd
  zstd python3)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "image-deps.sh: missing packages ${missing[*]}; run as root (or install them)" >&2
    exit 1
  fi
  printf '\033[1mimage-deps:\033[0m installing %s\n' "${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
