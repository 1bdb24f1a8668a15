#!/usr/bin/env bash
# The Raspberry Pi image content test: reads a built hyphae-rpi-arm64.img without booting or
# mounting it (sfdisk, mtools, debugfs at partition offsets) and asserts what a Pi 3/4 needs to
# boot it:
#   - an MBR partition table: 1 FAT32 (LBA, bootable) boot, 2 root, 3 data, in that order;
#   - on the boot partition: the GPU firmware (bootcode.bin, start.elf/fixup.dat for the Pi 3,
#     start4.elf/fixup4.dat for the Pi 4), config.txt in 64-bit mode naming a kernel and an
#     initramfs that are there, cmdline.txt whose root= is partition 2's PARTUUID, DTBs for the
#     Pi 3 (B, B+) and Pi 4 (B), the hyphae.toml template, and an initrd with the drivers for
#     the Pi's SD card and USB disks;
#   - in the root file system: an aarch64 /usr/bin/hyphae, an fstab that mounts partitions 1
#     and 3 by their PARTUUIDs, and the Hyphae units enabled.
#
#   tests/image/rpi-image-test.sh IMAGE.img
set -euo pipefail

img=${1:?usage: rpi-image-test.sh IMAGE.img}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hyphae-rpi-image-test.XXXXXX")
trap 'rm -rf "$work"' EXIT
fails=0
fail() { echo "rpi-image-test: FAIL: $*" >&2; fails=$((fails + 1)); }
ok() { echo "rpi-image-test: ok: $*"; }
[ -r "$img" ] || { echo "rpi-image-test: no image at $img (make image-rpi)" >&2; exit 1; }

# --- partition table -------------------------------------------------------------------------
sfdisk --json "$img" >"$work/table.json"
read -r label disk_id nparts p1_type p1_boot p1_start p2_type p3_type < <(python3 - "$work/table.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))["partitiontable"]
p = t.get("partitions", [])
g = lambda i, k, d="-": str(p[i].get(k, d)) if len(p) > i else "-"
print(t["label"], t.get("id", "-"), len(p), g(0, "type"), g(0, "bootable", False), g(0, "start"),
      g(1, "type"), g(2, "type"))
PY
)
[ "$label" = dos ] || fail "partition table is $label, not MBR (dos): the Pi 3 boots only MBR"
[ "$nparts" = 3 ] || fail "$nparts partitions, expected boot, root, data"
[ "$p1_type" = c ] || fail "partition 1 has type $p1_type, expected c (FAT32 LBA)"
[ "$p1_boot" = True ] || fail "partition 1 is not marked bootable"
[ "$p2_type" = 83 ] && [ "$p3_type" = 83 ] || fail "partitions 2 and 3 are not Linux (83)"
disk_id=${disk_id#0x}
root_partuuid="$disk_id-02"
((fails == 0)) && ok "MBR, disk id $disk_id: FAT32 boot (bootable), root, data"

offset() { sfdisk --json "$img" | python3 -c "import json,sys; p=json.load(sys.stdin)['partitiontable']['partitions']; print(p[$1]['start'] * 512)"; }
boot_off=$(offset 0)
root_off=$(offset 1)

# --- boot partition --------------------------------------------------------------------------
export MTOOLS_SKIP_CHECK=1
fat="$img@@$boot_off"
mdir -b -i "$fat" ::/ | sed 's|^::/||' >"$work/boot-files" ||
  { fail "the boot partition is not a FAT file system mtools can read"; exit 1; }
has() { grep -qx "$1" "$work/boot-files"; }
for f in bootcode.bin start.elf fixup.dat start4.elf fixup4.dat config.txt cmdline.txt \
  bcm2837-rpi-3-b.dtb bcm2837-rpi-3-b-plus.dtb bcm2711-rpi-4-b.dtb hyphae.toml.example; do
  has "$f" || fail "boot partition lacks $f"
done
mtype -i "$fat" ::/config.txt | tr -d '\r' >"$work/config.txt"
mtype -i "$fat" ::/cmdline.txt | tr -d '\r' >"$work/cmdline.txt"
grep -qx 'arm_64bit=1' "$work/config.txt" || fail "config.txt does not set arm_64bit=1"
kernel=$(sed -n 's/^kernel=//p' "$work/config.txt")
initramfs=$(sed -nE 's/^initramfs ([^ ]+).*/\1/p' "$work/config.txt")
{ [ -n "$kernel" ] && has "$kernel"; } || fail "config.txt's kernel=${kernel:-(none)} is not on the boot partition"
{ [ -n "$initramfs" ] && has "$initramfs"; } || fail "config.txt's initramfs ${initramfs:-(none)} is not on the boot partition"
cmd_root=$(grep -oE 'root=[^ ]+' "$work/cmdline.txt" || true)
[ "$cmd_root" = "root=PARTUUID=$root_partuuid" ] ||
  fail "cmdline.txt has ${cmd_root:-no root=}, expected root=PARTUUID=$root_partuuid (partition 2)"
mcopy -i "$fat" "::/$kernel" "$work/kernel" 2>/dev/null && file -b "$work/kernel" | grep -qiE 'ARM64|aarch64|gzip' ||
  fail "the kernel $kernel is not an arm64 kernel image"
# The initrd lists the drivers it boots from (image/essential.sh, MODULES=list): the Pi's SD
# controllers, USB boot, ext4, and virtio for the arm64 boot test.
mcopy -i "$fat" "::/$initramfs" "$work/initrd" 2>/dev/null || true
if zstd -dcq "$work/initrd" 2>/dev/null | cpio -it --quiet >"$work/initrd-files" 2>/dev/null; then
  for m in sdhci-iproc bcm2835 dwc2 xhci-pci usb-storage ext4 virtio_blk; do
    grep -qE "/$m\.ko(\.[a-z]+)?$" "$work/initrd-files" || fail "the initrd lacks the $m module"
  done
  grep -qE '(^|/)hyphae-grow-data$' "$work/initrd-files" || fail "the initrd lacks the data partition's growth script"
else
  fail "the initrd $initramfs is not a zstd-compressed cpio archive"
fi
((fails == 0)) && ok "boot partition: firmware, config.txt (kernel=$kernel, initramfs $initramfs), cmdline.txt ($cmd_root), DTBs for Pi 3 and 4, hyphae.toml.example"

# --- root file system ------------------------------------------------------------------------
root_fs="$img?offset=$root_off"
debugfs -R 'dump /usr/bin/hyphae '"$work/hyphae" "$root_fs" 2>/dev/null
file -b "$work/hyphae" 2>/dev/null | grep -q 'ARM aarch64' || fail "/usr/bin/hyphae is missing or not an aarch64 executable"
debugfs -R 'cat /etc/fstab' "$root_fs" 2>/dev/null >"$work/fstab"
grep -qE "^PARTUUID=$disk_id-01 +/boot/firmware +vfat" "$work/fstab" || fail "fstab does not mount partition 1 on /boot/firmware"
grep -qE "^PARTUUID=$disk_id-03 +/var/lib/hyphae +ext4" "$work/fstab" || fail "fstab does not mount partition 3 on /var/lib/hyphae"
debugfs -R 'ls -l /etc/systemd/system/hyphae.target.wants' "$root_fs" 2>/dev/null >"$work/wants"
for u in hyphae-agent.service hyphae-firstboot.service; do
  grep -q "$u" "$work/wants" || fail "$u is not enabled (hyphae.target.wants)"
done
((fails == 0)) && ok "root: aarch64 /usr/bin/hyphae, fstab by PARTUUID, units enabled"

if ((fails)); then
  echo "rpi-image-test: $fails check(s) failed" >&2
  exit 1
fi
echo "rpi-image-test: ok ($img)"
