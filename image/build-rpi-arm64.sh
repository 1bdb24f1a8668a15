#!/usr/bin/env bash
# Builds the Raspberry Pi 3/4 SD-card image (arm64) without loop devices or mounts:
#
#   image/build-rpi-arm64.sh HYPHAE_AARCH64_BINARY OUT_DIR
#   image/build-rpi-arm64.sh --rootfs-only OUT_DIR    step 1 only, without the binary
#
# --rootfs-only lets the emulated (slow) root file system build run while the binary is still
# being cross-compiled; a later run with the binary and HYPHAE_IMAGE_REUSE_ROOTFS=1 puts the
# binary in and assembles the disk (make image-rpi does the two side by side).
#
# 1. mmdebstrap --architectures=arm64 (arm64 maintainer scripts run through qemu-aarch64 via
#    binfmt_misc; scripts/image-deps.sh rpi sets that up): the same root file system as the
#    x86_64 image (image/customize.sh) with linux-image-arm64 and Debian's raspi-firmware
#    (non-free-firmware) instead of systemd-boot; image/customize-rpi-boot.sh collects the boot
#    partition's files (GPU firmware, kernel, initrd, DTBs for Pi 3 and 4, config.txt,
#    cmdline.txt naming the root by PARTUUID, hyphae.toml.example).
# 2. The disk in a plain file: an MBR partition table (the Pi 3's boot ROM reads only MBR):
#    1 FAT32 boot (mounted at /boot/firmware), 2 ext4 root, 3 ext4 data (/var/lib/hyphae);
#    mkfs.fat + mtools and mke2fs -d fill them at their offsets.
# 3. OUT_DIR/hyphae-rpi-arm64.img (sparse), its .img.xz and the .img.xz.sha256.
#
# Downloaded .debs are kept in $HYPHAE_APT_CACHE (default /var/cache/hyphae/apt-arm64), outside
# the clone. Scratch space is $HYPHAE_IMAGE_WORK (default /var/tmp/hyphae-image-rpi).
set -euo pipefail

bin=${1:?usage: build-rpi-arm64.sh HYPHAE_AARCH64_BINARY OUT_DIR}
out=${2:?usage: build-rpi-arm64.sh HYPHAE_AARCH64_BINARY OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${HYPHAE_APT_CACHE:-/var/cache/hyphae/apt-arm64}
work=${HYPHAE_IMAGE_WORK:-/var/tmp/hyphae-image-rpi}
suite=${HYPHAE_DEBIAN_SUITE:-bookworm}
mirror=${HYPHAE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${HYPHAE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

say() { printf '\033[1mimage-rpi:\033[0m %s\n' "$*" >&2; }
die() { echo "build-rpi-arm64.sh: $*" >&2; exit 1; }

rootfs_only=0
if [ "$bin" = --rootfs-only ]; then
  rootfs_only=1 bin=""
else
  [ -x "$bin" ] || die "no hyphae binary at $bin (image/cross-build-aarch64.sh builds it)"
  file -b "$bin" 2>/dev/null | grep -q 'ARM aarch64' || die "$bin is not an aarch64 executable"
fi
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap's root mode; no loop devices are used)"
for tool in mmdebstrap sfdisk mkfs.fat mcopy mmd mke2fs xz; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/image-deps.sh rpi installs it)"
done
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] ||
  die "qemu-aarch64 is not registered with binfmt_misc (scripts/image-deps.sh rpi does it)"

# shellcheck source=image/disk-parts.sh
. "$here/disk-parts.sh"

start_s=$(date +%s)
mkdir -p "$cache" "$out" "$work"
rootfs=$work/rootfs
export HYPHAE_STAGE=$work/stage

# --- 1. root file system ---------------------------------------------------------------------
# As the x86_64 image (image/build-x86_64.sh explains each), with linux-image-arm64 and
# raspi-firmware (GPU firmware and the kernel hook that fills /boot/firmware) instead of
# linux-image-amd64 and systemd-boot-efi. (No ca-certificates either: its configure step alone
# took 14 min under qemu-user.)
packages=(systemd-sysv udev dbus linux-image-arm64 initramfs-tools zstd raspi-firmware
  systemd-resolved systemd-timesyncd iproute2 iputils-ping procps fdisk
  e2fsprogs kmod librocksdb7.8 qemu-system-x86 libvulkan1 mesa-vulkan-drivers)

excludes=(
  '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*'
  '/usr/share/lintian/*' '/usr/share/bug/*' '/usr/share/doc-base/*'
)
# Kernel modules a mesh node does not use (image/disk-parts.sh), and the drivers of arm64 SoCs
# and GPUs other than the Pi's: linux-image-arm64 is one kernel for every arm64 board.
for m in "${unused_module_dirs[@]}" \
  drivers/gpu/drm/amd drivers/gpu/drm/nouveau drivers/gpu/drm/radeon drivers/gpu/drm/msm \
  drivers/gpu/drm/tegra drivers/gpu/drm/panfrost drivers/gpu/drm/lima drivers/gpu/drm/meson \
  drivers/gpu/drm/rockchip drivers/gpu/drm/sun4i drivers/gpu/drm/imx drivers/gpu/drm/etnaviv \
  drivers/net/ethernet/mellanox drivers/net/ethernet/qlogic drivers/net/ethernet/chelsio \
  drivers/net/ethernet/intel/ice drivers/scsi/lpfc drivers/scsi/qla2xxx drivers/scsi/mpt3sas \
  drivers/scsi/megaraid drivers/net/ethernet/cavium drivers/crypto/hisilicon; do
  excludes+=("/lib/modules/*/kernel/$m/*" "/usr/lib/modules/*/kernel/$m/*")
done
# Wi-Fi firmware for the Pi's radio (a mesh node is wired).
excludes+=('/lib/firmware/brcm/*' '/usr/lib/firmware/brcm/*')
dpkgopts=()
for e in "${excludes[@]}"; do dpkgopts+=(--dpkgopt="path-exclude=$e"); done
dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-include=/usr/share/locale/locale.alias')

# HYPHAE_IMAGE_REUSE_ROOTFS=1 reuses the last root file system (putting this binary, the units
# and image/files in again); =auto (CI) only when it was built by these very steps
# (image/rootfs-cache.sh), with --rootfs-only then doing nothing.
# shellcheck source=image/rootfs-cache.sh
. "$here/rootfs-cache.sh"
reuse=${HYPHAE_IMAGE_REUSE_ROOTFS:-0}
# The key: what mmdebstrap is asked for (suite, mirrors, packages, dpkg options) and the hooks.
# (A change to the mmdebstrap command below that this does not show must change the recipe.)
recipe="$suite $mirror $security ${packages[*]} ${dpkgopts[*]}"
rootfs_key=$(rootfs_key "$repo" "$recipe" image/essential.sh image/customize.sh image/customize-rpi-boot.sh \
  image/rootfs-cache.sh image/initramfs image/hyphae.toml.example)
if [ "$reuse" = auto ]; then
  if rootfs_matches "$work" "$rootfs_key" && [ -d "$HYPHAE_STAGE/boot" ]; then
    reuse=1
    say "the root file system in $rootfs was built by these steps (key ${rootfs_key:0:12}): reusing it"
    if [ "$rootfs_only" = 1 ]; then exit 0; fi
  else
    reuse=0
  fi
fi
[ "$rootfs_only" = 0 ] || reuse=0
if [ "$reuse" = 1 ] && [ -s "$work/uuids" ] && [ -d "$rootfs/etc" ] && [ -d "$HYPHAE_STAGE/boot" ]; then
  # shellcheck source=/dev/null
  . "$work/uuids"
else
  reuse=0
  # The MBR's disk identifier, fresh per build: partition N's PARTUUID is <id>-0N.
  disk_id=$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
  printf 'export DISK_ID=%s BOOT_PARTUUID=%s-01 ROOT_PARTUUID=%s-02 DATA_PARTUUID=%s-03\n' \
    "$disk_id" "$disk_id" "$disk_id" "$disk_id" >"$work/uuids"
  # shellcheck source=/dev/null
  . "$work/uuids"
  # An interrupted mmdebstrap (root mode) can leave /proc, /sys or /dev bind-mounted in the
  # old root: never rm -rf through them.
  if findmnt -rn -o TARGET | grep -q "^$rootfs/"; then
    die "something is still mounted under $rootfs (an interrupted build?); unmount it first"
  fi
  rm -f "$work/rootfs.key"
  rm -rf "$rootfs" "$HYPHAE_STAGE"
fi

export HYPHAE_BIN=$bin HYPHAE_REPO=$repo HYPHAE_BOARD=rpi
if [ "$reuse" = 1 ]; then
  # The binary, the units and image/files are put in again: iterating on them needs no new
  # root.
  say "reusing the root file system in $rootfs (with this binary and these units)"
  "$here/install-hyphae.sh" "$rootfs" "$HYPHAE_BOARD"
else
  say "mmdebstrap $suite arm64 into $rootfs (.debs cached in $cache)"
  mmdebstrap --variant=minbase --mode="${HYPHAE_MMDEBSTRAP_MODE:-root}" --architectures=arm64 \
    --components=main,non-free-firmware \
    --include="$(IFS=,; echo "${packages[*]}")" \
    "${dpkgopts[@]}" \
    --aptopt='APT::Install-Recommends "false"' \
    --skip=essential/unlink \
    --setup-hook='mkdir -p "$1/var/cache/apt/archives"' \
    --setup-hook="sync-in $cache /var/cache/apt/archives" \
    --essential-hook="$here/essential.sh \"\$1\"" \
    --customize-hook="sync-out /var/cache/apt/archives $cache" \
    --customize-hook="$here/customize.sh \"\$1\"" \
    "$suite" "$rootfs" \
    "deb $mirror $suite main non-free-firmware" "deb $mirror $suite-updates main non-free-firmware" \
    "deb $security $suite-security main non-free-firmware"
fi
[ "$reuse" = 1 ] || echo "$rootfs_key" >"$work/rootfs.key"
rootfs_s=$(date +%s)
if [ "$rootfs_only" = 1 ]; then
  say "root file system ready in $((rootfs_s - start_s))s (without the binary): $rootfs"
  exit 0
fi

# --- 2. the disk -----------------------------------------------------------------------------
# Sizes in MiB, as on x86_64; the boot partition holds kernel (~30 MB) and initrd with room for
# a second pair during a kernel upgrade.
boot_mib=256
root_used=$(du -sm --apparent-size "$rootfs" | cut -f1)
root_mib=$(((root_used * 5 / 4 + 256 + 3) / 4 * 4))
data_mib=${HYPHAE_DATA_MIB:-1024}
total_mib=$((1 + boot_mib + root_mib + data_mib))

img=$out/hyphae-rpi-arm64.img
rm -f "$img" "$img.xz" "$img.xz.sha256"
truncate -s "${total_mib}M" "$img"

say "disk: boot ${boot_mib} MiB, root ${root_mib} MiB (${root_used} MiB used), data ${data_mib} MiB"
# Types: 0c FAT32 (LBA), the one the Pi's boot ROM looks for; 83 Linux.
sfdisk --quiet "$img" <<SFDISK
label: dos
label-id: 0x$DISK_ID
unit: sectors
start=2048, size=$((boot_mib * 2048)), type=c, bootable
size=$((root_mib * 2048)), type=83
size=$((data_mib * 2048)), type=83
SFDISK

boot_off=$((1 * 1024 * 1024))
root_off=$((boot_off + boot_mib * 1024 * 1024))
data_off=$((root_off + root_mib * 1024 * 1024))

fill_fat "$img" "$boot_off" "$boot_mib" HYPHAE-BOOT "$HYPHAE_STAGE/boot"
fill_root_and_data "$img" "$rootfs" "$root_off" "$root_mib" "$data_off" "$data_mib" "$work"
disk_s=$(date +%s)

# --- 3. compress -----------------------------------------------------------------------------
finish_image "$img" "$total_mib" "$start_s" "$rootfs_s" "$disk_s"
