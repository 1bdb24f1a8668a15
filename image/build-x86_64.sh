#!/usr/bin/env bash
# Builds the x86_64 UEFI appliance image without loop devices or mounts:
#
#   image/build-x86_64.sh HYPHAE_BINARY OUT_DIR
#
# 1. mmdebstrap: a Debian 12 root file system (minbase + what a node needs) in a directory,
#    with docs, man pages and kernel modules no node uses excluded at unpack time (dpkg
#    path-exclude), customised by image/customize.sh (binary, units, network, fstab, ...).
# 2. The disk, assembled in a plain file: sfdisk writes a GPT (ESP, root, data), mkfs.fat +
#    mtools fill the ESP (systemd-boot, kernel, initrd), mke2fs -d fills the ext4 root and the
#    (empty) data partition at their offsets.
# 3. OUT_DIR/hyphae-x86_64.img (sparse; make vm and the boot test use it), its .img.xz and the
#    .img.xz.sha256.
#
# Downloaded .debs are kept in $HYPHAE_APT_CACHE (default /var/cache/hyphae/apt), outside the
# clone, so a warm build downloads nothing. Scratch space is $HYPHAE_IMAGE_WORK (default
# /var/tmp/hyphae-image).
#
# The Raspberry Pi image reuses steps 1 and 2 with --architectures=arm64, linux-image-arm64 and
# raspi-firmware instead of systemd-boot, and an MBR/GPT table whose FAT partition holds the Pi
# firmware, config.txt, cmdline.txt and hyphae.toml (mounted at /boot/firmware). The PXE set
# reuses step 1 and packs the root into a squashfs inside the initrd instead of step 2.
set -euo pipefail

bin=${1:?usage: build-x86_64.sh HYPHAE_BINARY OUT_DIR}
out=${2:?usage: build-x86_64.sh HYPHAE_BINARY OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${HYPHAE_APT_CACHE:-/var/cache/hyphae/apt}
work=${HYPHAE_IMAGE_WORK:-/var/tmp/hyphae-image}
suite=${HYPHAE_DEBIAN_SUITE:-bookworm}
mirror=${HYPHAE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${HYPHAE_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

say() { printf '\033[1mimage:\033[0m %s\n' "$*" >&2; }
die() { echo "build-x86_64.sh: $*" >&2; exit 1; }

[ -x "$bin" ] || die "no hyphae binary at $bin (make image builds it with cargo build --release)"
[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap's root mode; no loop devices are used)"
for tool in mmdebstrap sfdisk mkfs.fat mcopy mmd mke2fs xz; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/image-deps.sh installs it)"
done

# shellcheck source=image/disk-parts.sh
. "$here/disk-parts.sh"

start_s=$(date +%s)
mkdir -p "$cache" "$out" "$work"
rootfs=$work/rootfs
export HYPHAE_STAGE=$work/stage

# --- 1. root file system ---------------------------------------------------------------------
# What a node runs on, beyond minbase (apt, dpkg, coreutils, util-linux, e2fsprogs, ...):
#   systemd-sysv udev dbus    init, device manager, the bus systemctl/hostnamectl/loginctl use
#   linux-image-amd64 initramfs-tools zstd   the kernel; an initrd compressed with zstd
#   systemd-boot-efi          the UEFI boot loader (only its .efi file is used, on the ESP)
#   systemd-resolved systemd-timesyncd   DNS for networkd's DHCP leases; a correct clock (mesh
#                             certificates have validity periods)
#   iproute2 iputils-ping procps fdisk   administration (no ca-certificates: nothing on a node
#                             trusts the public web PKI; the mesh has its own CA)
#   librocksdb7.8             the RocksDB the hyphae binary links (coordinator, chunkstore)
#   qemu-system-x86           the VMs memrep runs and replicates (it starts qemu-system-x86_64)
#   libvulkan1 mesa-vulkan-drivers   compute's Vulkan backend: the loader and Mesa's drivers
#                             (radv, anv, lavapipe); without a GPU compute uses lavapipe or its
#                             CPU backend
#   (essential.sh swaps usrmerge, which the essential set brings with perl, for usr-is-merged)
packages=(systemd-sysv udev dbus linux-image-amd64 initramfs-tools zstd systemd-boot-efi
  systemd-resolved systemd-timesyncd iproute2 iputils-ping procps fdisk
  e2fsprogs kmod librocksdb7.8 qemu-system-x86 libvulkan1 mesa-vulkan-drivers)

# Never unpacked: documentation (copyright files stay), manuals, translations, and the kernel
# modules image/disk-parts.sh lists.
# (Quoted: these are dpkg patterns, not globs for this shell.)
excludes=(
  '/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*'
  '/usr/share/lintian/*' '/usr/share/bug/*' '/usr/share/doc-base/*'
)
for m in "${unused_module_dirs[@]}" drivers/gpu/drm/nouveau/nvkm/subdev/secboot; do
  excludes+=("/lib/modules/*/kernel/$m/*" "/usr/lib/modules/*/kernel/$m/*")
done
dpkgopts=()
for e in "${excludes[@]}"; do dpkgopts+=(--dpkgopt="path-exclude=$e"); done
dpkgopts+=(--dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-include=/usr/share/locale/locale.alias')

# HYPHAE_IMAGE_REUSE_ROOTFS=1 skips step 1 and reuses the last root file system, putting this
# binary, the units and image/files in again (for work on those and on the disk layout).
# HYPHAE_IMAGE_REUSE_ROOTFS=auto (CI) reuses it only when it was built by these very steps
# (image/rootfs-cache.sh).
# shellcheck source=image/rootfs-cache.sh
. "$here/rootfs-cache.sh"
reuse=${HYPHAE_IMAGE_REUSE_ROOTFS:-0}
# The key: what mmdebstrap is asked for (suite, mirrors, packages, dpkg options) and the hooks.
# (A change to the mmdebstrap command below that this does not show must change the recipe.)
recipe="$suite $mirror $security ${packages[*]} ${dpkgopts[*]}"
rootfs_key=$(rootfs_key "$repo" "$recipe" image/essential.sh image/customize.sh \
  image/rootfs-cache.sh image/initramfs image/hyphae.toml.example)
if [ "$reuse" = auto ]; then
  if rootfs_matches "$work" "$rootfs_key"; then
    reuse=1
    say "the root file system in $rootfs was built by these steps (key ${rootfs_key:0:12}): reusing it"
  else
    reuse=0
  fi
fi
if [ "$reuse" = 1 ] && [ -s "$work/uuids" ] && [ -d "$rootfs/etc" ]; then
  # shellcheck source=/dev/null
  . "$work/uuids"
else
  reuse=0
  # Partition UUIDs are fresh per build; fstab and the loader entry name partitions by them.
  new_uuid() { cat /proc/sys/kernel/random/uuid; }
  printf 'export BOOT_PARTUUID=%s ROOT_PARTUUID=%s DATA_PARTUUID=%s\n' "$(new_uuid)" "$(new_uuid)" "$(new_uuid)" \
    >"$work/uuids"
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

export HYPHAE_BIN=$bin HYPHAE_REPO=$repo HYPHAE_BOARD=x86_64
if [ "$reuse" = 1 ]; then
  # The binary, the units and image/files are put in again: iterating on them needs no new
  # root.
  say "reusing the root file system in $rootfs (with this binary and these units)"
  "$here/install-hyphae.sh" "$rootfs" "$HYPHAE_BOARD"
else
  say "mmdebstrap $suite into $rootfs (.debs cached in $cache)"
  # Root mode bind-mounts /proc, /sys and /dev into the chroot while packages install (no loop
  # devices). HYPHAE_MMDEBSTRAP_MODE picks another mmdebstrap mode (unshare: untested here).
  mmdebstrap --variant=minbase --mode="${HYPHAE_MMDEBSTRAP_MODE:-root}" --components=main \
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
    "deb $mirror $suite main" "deb $mirror $suite-updates main" \
    "deb $security $suite-security main"
fi
[ "$reuse" = 1 ] || echo "$rootfs_key" >"$work/rootfs.key"
rootfs_s=$(date +%s)

# --- 2. the disk -----------------------------------------------------------------------------
# Sizes in MiB. The root gets its content plus a quarter plus 256 MiB for logs and later
# packages. The data partition is 1 GiB (sparse in the file, so it costs nothing in the .xz);
# the initrd grows it to the end of the disk it is written to (image/initramfs/grow-data) and
# its file system follows on mount (x-systemd.growfs).
esp_mib=128
root_used=$(du -sm --apparent-size "$rootfs" | cut -f1)
root_mib=$(((root_used * 5 / 4 + 256 + 3) / 4 * 4))
data_mib=${HYPHAE_DATA_MIB:-1024}
total_mib=$((1 + esp_mib + root_mib + data_mib + 1))

img=$out/hyphae-x86_64.img
rm -f "$img" "$img.xz" "$img.xz.sha256"
truncate -s "${total_mib}M" "$img"

say "disk: ESP ${esp_mib} MiB, root ${root_mib} MiB (${root_used} MiB used), data ${data_mib} MiB"
# Types: EFI System; Linux root (x86-64) from the Discoverable Partitions Specification; Linux
# filesystem data.
sfdisk --quiet "$img" <<SFDISK
label: gpt
unit: sectors
first-lba: 2048
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$BOOT_PARTUUID, name="ESP"
size=$((root_mib * 2048)), type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709, uuid=$ROOT_PARTUUID, name="hyphae-root"
size=$((data_mib * 2048)), type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, uuid=$DATA_PARTUUID, name="hyphae-data"
SFDISK

esp_off=$((1 * 1024 * 1024))
root_off=$((esp_off + esp_mib * 1024 * 1024))
data_off=$((root_off + root_mib * 1024 * 1024))

# ESP: systemd-boot, kernel, initrd; root and data: ext4.
fill_fat "$img" "$esp_off" "$esp_mib" HYPHAE-ESP "$HYPHAE_STAGE/esp"
fill_root_and_data "$img" "$rootfs" "$root_off" "$root_mib" "$data_off" "$data_mib" "$work"
disk_s=$(date +%s)

# --- 3. compress -----------------------------------------------------------------------------
finish_image "$img" "$total_mib" "$start_s" "$rootfs_s" "$disk_s"
