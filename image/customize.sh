#!/usr/bin/env bash
# mmdebstrap --customize-hook: turns the Debian root file system into a Hyphae node.
#   customize.sh ROOTFS      (env: HYPHAE_BIN, HYPHAE_REPO, HYPHAE_STAGE, HYPHAE_BOARD from
#                             build-x86_64.sh or build-rpi-arm64.sh)
# HYPHAE_BOARD=x86_64 (default) leaves the ESP's files in $HYPHAE_STAGE/esp; HYPHAE_BOARD=rpi
# leaves the Raspberry Pi boot partition's files in $HYPHAE_STAGE/boot. Partitions are named by
# the PARTUUIDs that the build script chose and gives the partition table ($BOOT_PARTUUID,
# $ROOT_PARTUUID, $DATA_PARTUUID).
set -euo pipefail
root=${1:?usage: customize.sh ROOTFS}
board=${HYPHAE_BOARD:-x86_64}
: "${HYPHAE_BIN?} ${HYPHAE_REPO:?} ${HYPHAE_STAGE:?}"
: "${BOOT_PARTUUID:?} ${ROOT_PARTUUID:?} ${DATA_PARTUUID:?}"
repo=$HYPHAE_REPO
in_root() { chroot "$root" "$@"; }

# --- Hyphae: the binary, its units, its user (image/install-hyphae.sh) ------------------------
"$repo/image/install-hyphae.sh" "$root" "$board"
systemctl --root="$root" --quiet enable \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service
systemctl --root="$root" set-default multi-user.target
# networkd-wait-online would hold boot for 2 minutes on a node without a cable; nothing Hyphae
# runs waits for network-online.target.
systemctl --root="$root" --quiet disable systemd-networkd-wait-online.service 2>/dev/null || true

# --- System identity and login ---------------------------------------------------------------
echo hyphae >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\thyphae\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$root/etc/hosts"
# Empty machine-id: systemd makes a fresh one on first boot, so flashed nodes differ (DHCP client
# ids are derived from it).
: >"$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Console login as root without a password (physical access only: no network login is
# installed); docs/operator-guide.md tells the operator to set one.
in_root passwd --delete root >/dev/null
# resolved's full list (127.0.0.1 = the gateway's DNS first, then the LAN's servers), not its stub:
# the stub listener is off so the gateway can hold port 53 (resolved.conf.d/hyphae.conf).
ln -sf ../run/systemd/resolve/resolv.conf "$root/etc/resolv.conf"

if [ "$board" = rpi ]; then boot_mount=/boot/firmware; else boot_mount=/boot/efi; fi
# The boot and data partitions are on the disk the root is on, so they will show up: wait for
# them for 5 minutes rather than systemd's 90 s before dropping to emergency mode (a loaded VM
# host or a slow SD card can take longer than 90 s to get udev through its coldplug).
cat >"$root/etc/fstab" <<FSTAB
# <device>                                   <mount point>    <type> <options>                    <dump> <fsck>
PARTUUID=$ROOT_PARTUUID  /                ext4   rw,noatime,errors=remount-ro 0      1
PARTUUID=$BOOT_PARTUUID  $boot_mount   vfat   umask=0077,noatime,x-systemd.device-timeout=5min 0      2
PARTUUID=$DATA_PARTUUID  /var/lib/hyphae  ext4   rw,noatime,x-systemd.growfs,x-systemd.device-timeout=5min  0      2
FSTAB
install -d "$root$boot_mount"

kver=$(basename "$(ls -d "$root"/lib/modules/* | sort -V | tail -n1)")
# The packaged kernel must offer what the mesh needs (kernel-config/hyphae.config).
"$repo/scripts/check-kernel-config.sh" --quiet "$root/boot/config-$kver"

# The initrd must carry the data partition's growth (image/initramfs): when the kernel's
# initrd was generated before sfdisk was unpacked, the hook could not copy it; make it again.
# (The list is read whole first: grep -q closing the pipe early would fail it under pipefail.)
initrd_has() {
  local list
  list=$(in_root lsinitramfs "/boot/initrd.img-$kver")
  grep -q "$1" <<<"$list"
}
if ! initrd_has 'local-premount/hyphae-grow-data$' || ! initrd_has 'sbin/sfdisk$'; then
  in_root update-initramfs -u -k "$kver"
fi
initrd_has 'sbin/sfdisk$' ||
  { echo "customize.sh: the initrd has no sfdisk (image/initramfs/hook)" >&2; exit 1; }

if [ "$board" = rpi ]; then
  . "$repo/image/customize-rpi-boot.sh"
else
  # --- ESP: systemd-boot, kernel, initrd -------------------------------------------------------
  esp=$HYPHAE_STAGE/esp
  install -d "$esp/EFI/BOOT" "$esp/EFI/systemd" "$esp/loader/entries" "$esp/hyphae"
  # The removable-media path: firmware boots it without an NVRAM entry (a freshly flashed disk).
  install -m 0644 "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/BOOT/BOOTX64.EFI"
  install -m 0644 "$root/usr/lib/systemd/boot/efi/systemd-bootx64.efi" "$esp/EFI/systemd/"
  # The ESP holds the only copy of kernel and initrd (saves ~40 MB in the image).
  mv "$root/boot/vmlinuz-$kver" "$esp/hyphae/vmlinuz"
  mv "$root/boot/initrd.img-$kver" "$esp/hyphae/initrd.img"
  rm -f "$root"/vmlinuz* "$root"/initrd.img* "$root"/boot/vmlinuz* "$root"/boot/initrd.img*
  printf 'timeout 0\ndefault hyphae.conf\neditor yes\n' >"$esp/loader/loader.conf"
  # Kernel command line: root by partition UUID; console on screen and on the first serial port
  # (the last console= is /dev/console); no systemd-firstboot prompts (Hyphae's first boot is
  # hyphae-firstboot.service); no GPT auto-mounts (fstab names every partition).
  cat >"$esp/loader/entries/hyphae.conf" <<ENTRY
title   Hyphae ($kver)
linux   /hyphae/vmlinuz
initrd  /hyphae/initrd.img
options root=PARTUUID=$ROOT_PARTUUID rw console=tty0 console=ttyS0,115200 quiet systemd.firstboot=off systemd.gpt_auto=0
ENTRY
  install -m 0644 "$repo/image/hyphae.toml.example" "$esp/hyphae.toml.example"
fi

# --- Prune -----------------------------------------------------------------------------------
# dpkg's path-exclude kept most of this out; essential packages unpacked before it took effect
# leave some behind.
find "$root/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/archives/*.deb \
  "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log \
  "$root"/var/cache/debconf/*-old
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
