#!/usr/bin/env bash
# mmdebstrap --essential-hook: runs after the essential packages are installed and before the
# rest (the kernel among them), so the initrd is generated once, already as configured here.
set -euo pipefail
root=${1:?usage: essential.sh ROOTFS}

# No perl: init-system-helpers (essential) depends on "usrmerge | usr-is-merged", and apt takes
# usrmerge with the essential packages, which brings perl (57 MB) that nothing on a node uses.
# mmdebstrap merged /usr already: usr-is-merged says so and lets usrmerge go; perl and its
# modules, marked automatic, go with it unless something still depends on them (some essential
# packages only suggest perl, which apt's autoremove would otherwise count as a reason to keep
# it). The build log lists what was removed.
export APT_CONFIG=${MMDEBSTRAP_APT_CONFIG:?run as an mmdebstrap hook}
apt-get --yes --quiet -oDPkg::Chroot-Directory="$root" install usr-is-merged >/dev/null
perlish=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}\n' |
  grep -E '^(perl|perl-modules-.*|libperl5.*|lib.*-perl)$' || true)
# shellcheck disable=SC2086 # one package name per word
[ -z "$perlish" ] || apt-mark auto $perlish >/dev/null
apt-get --yes --quiet -oDPkg::Chroot-Directory="$root" -oAPT::AutoRemove::SuggestsImportant=false \
  purge --auto-remove usrmerge | grep -E '^(Removing|Purging) ' >&2 || true

# The initrd, compressed with zstd (fast to unpack at boot). x86_64: every storage driver
# (MODULES=most: the image must boot on unknown hardware). The Raspberry Pi's hardware is known,
# so its initrd lists the drivers it boots from (MODULES=list): a tenth of the size, and built
# in minutes rather than hours under qemu-user, where MODULES=most's thousands of `cp`s and
# `modinfo`s each start an emulator (docs/benchmarks.md, "The Raspberry Pi image").
mkdir -p "$root/etc/initramfs-tools/conf.d"
if [ "${HYPHAE_BOARD:-x86_64}" = rpi ]; then
  cat >"$root/etc/initramfs-tools/conf.d/hyphae" <<'CONF'
MODULES=list
COMPRESS=zstd
CONF
  cat >"$root/etc/initramfs-tools/modules" <<'MODULES'
# Hyphae (image/essential.sh): the drivers a Raspberry Pi 3/4 boots its root from; the kernel
# loads everything else from the root file system once it is mounted.
# SD card: the Pi 4's EMMC2 and the Pi 3's Arasan controller (sdhci-iproc), the SDHOST (bcm2835)
sdhci-iproc
bcm2835
# USB boot: the Pi 4's VL805 (xhci on PCIe, reset by the firmware), the Pi 3's dwc2; USB disks
reset-raspberrypi
xhci-pci
dwc2
usb-storage
uas
# The root file system
ext4
# virtio (qemu-system-aarch64 -M virt: tests/image/rpi-boot-test.sh boots this root there)
virtio_pci
virtio_mmio
virtio_blk
MODULES
else
  cat >"$root/etc/initramfs-tools/conf.d/hyphae" <<'CONF'
MODULES=most
COMPRESS=zstd
CONF
fi

# The data partition grows to the end of the disk in the initrd, before anything on the disk is
# mounted (image/initramfs/grow-data explains why there).
here=$(cd "$(dirname "$0")" && pwd)
install -D -m 0755 "$here/initramfs/hook" "$root/etc/initramfs-tools/hooks/hyphae-grow-data"
install -D -m 0755 "$here/initramfs/grow-data" \
  "$root/etc/initramfs-tools/scripts/local-premount/hyphae-grow-data"
