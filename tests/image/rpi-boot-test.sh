#!/usr/bin/env bash
# The arm64 boot test: boots the Raspberry Pi image's root file system with its own kernel and
# initrd (taken from its boot partition) under qemu-system-aarch64 -M virt (TCG: no arm64 KVM
# on an x86 host), and reads the serial console, where hyphae-console-report.service prints the
# node's state once boot has settled. It asserts every Hyphae unit is active (first boot ran),
# first boot applied the settings an operator leaves on the boot partition (hyphae.toml, and a
# hyphae.* option appended to cmdline.txt), on a card 512 MiB larger than the image the data
# partition and its file system took the space (the initrd grows the partition), `systemctl
# --failed` is empty, and the agent answers `hyphae status`.
#
# QEMU cannot emulate a Pi's boot firmware, so the GPU firmware, config.txt and DTBs are not
# exercised here (tests/image/rpi-image-test.sh checks them); cmdline.txt's options are used,
# with the serial console of the virt machine (ttyAMA0) instead of the Pi's (ttyS1).
#
#   tests/image/rpi-boot-test.sh IMAGE.img      (TIMEOUT_S, default 1500: TCG is slow)
set -euo pipefail

img=${1:?usage: rpi-boot-test.sh IMAGE.img}
timeout_s=${TIMEOUT_S:-1500}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hyphae-rpi-boot-test.XXXXXX")
qemu_pid=""
console=$work/console.log
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "rpi-boot-test: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "rpi-boot-test: FAIL: $*" >&2
  if [ -f "$console" ]; then
    echo "--- last 60 lines of the serial console ($console) ---" >&2
    tail -n 60 "$console" | tr -d '\r' >&2
  fi
  exit 1
}
[ -r "$img" ] || fail "no image at $img (make image-rpi)"
command -v qemu-system-aarch64 >/dev/null || fail "qemu-system-aarch64 not found (scripts/image-deps.sh rpi)"

disk=$work/disk.img
cp --sparse=always "$img" "$disk"
# A card 512 MiB larger than the image: first boot grows the data partition (in the initrd) and
# its file system (on mount).
truncate -s +512M "$disk"

boot_off=$(($(sfdisk --json "$disk" | python3 -c \
  "import json,sys; print(json.load(sys.stdin)['partitiontable']['partitions'][0]['start'])") * 512))
export MTOOLS_SKIP_CHECK=1
fat="$disk@@$boot_off"
# First-boot settings, the way an operator leaves them on the card: hyphae.toml on the boot
# partition and a hyphae.* option on cmdline.txt's line. auto_init: alone on its network, the
# node founds its own mesh.
printf '[node]\nname = "rpi-boot-test"\n\n[discovery]\nauto_init = true\n' >"$work/hyphae.toml"
mcopy -i "$fat" "$work/hyphae.toml" ::/hyphae.toml
mtype -i "$fat" ::/cmdline.txt | tr -d '\r\n' >"$work/cmdline.txt"
echo " hyphae.log.level=debug" >>"$work/cmdline.txt"
mcopy -o -i "$fat" "$work/cmdline.txt" ::/cmdline.txt
mtype -i "$fat" ::/config.txt | tr -d '\r' >"$work/config.txt"
kernel=$(sed -n 's/^kernel=//p' "$work/config.txt")
initramfs=$(sed -nE 's/^initramfs ([^ ]+).*/\1/p' "$work/config.txt")
mcopy -i "$fat" "::/$kernel" "$work/vmlinuz"
mcopy -i "$fat" "::/$initramfs" "$work/initrd.img"
# cmdline.txt without its consoles (the virt machine's UART is ttyAMA0) and CMA setting.
cmdline=$(mtype -i "$fat" ::/cmdline.txt | tr -d '\r\n' | sed -E 's/(console|cma)=[^ ]*//g; s/  +/ /g')
cmdline="$cmdline console=ttyAMA0,115200"
echo "rpi-boot-test: kernel $kernel, initrd $initramfs, command line: $cmdline"

start=$(date +%s)
qemu-system-aarch64 -machine virt -cpu cortex-a72 -smp "${VM_CPUS:-2}" -m "${VM_MEM_MB:-2048}" \
  -accel tcg -kernel "$work/vmlinuz" -initrd "$work/initrd.img" -append "$cmdline" \
  -drive "file=$disk,if=virtio,format=raw,cache=unsafe" -device virtio-rng-pci \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
  -display none -monitor none -serial "file:$console" -no-reboot &
qemu_pid=$!
deadline=$((SECONDS + timeout_s))
until grep -q 'HYPHAE-READY' "$console" 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited before the node was ready"
  ((SECONDS < deadline)) || fail "no HYPHAE-READY within ${timeout_s}s"
  sleep 2
done
boot_s=$(($(date +%s) - start))
kill "$qemu_pid" 2>/dev/null || true
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=""

r=$work/report
tr -d '\r' <"$console" | sed -nE 's/^.*(HYPHAE-[A-Z]+ )/\1/p' >"$r"
cat "$r"
field() { sed -nE "s/^HYPHAE-READY .*$1=([^ ]*).*/\1/p" "$r"; }
unit_state() { awk -v u="$1" '$1 == "HYPHAE-UNIT" && $2 == u { print $3 }' "$r"; }
grep -q '^HYPHAE-READY ok ' "$r" || fail "the node did not report ready"
for u in hyphae.target hyphae-agent.service hyphae-firstboot.service; do
  [ "$(unit_state "$u")" = active ] || fail "$u is not active"
done
[ "$(field failed)" = - ] || fail "failed units: $(field failed)"
grep -q '^HYPHAE-STATUS .*"ready": *true' "$r" || fail "hyphae status did not answer ready"
grep -q '^HYPHAE-STATUS .*"name": *"rpi-boot-test"' "$r" || fail "hyphae.toml from the boot partition not applied"
grep -q '^HYPHAE-CONFIG .*level = "debug"' "$r" || fail "hyphae.log.level from cmdline.txt not applied"
data_mib=$(sed -nE 's/^HYPHAE-DATA size_mib=([0-9]+).*/\1/p' "$r")
[ -n "$data_mib" ] || fail "the data partition is not mounted on /var/lib/hyphae"
((data_mib > 1280)) || fail "data file system is ${data_mib} MiB; the partition or its file system did not grow"
echo "rpi-boot-test: ok (arm64, TCG; ready after ${boot_s}s on the host clock, guest uptime $(field uptime)s; data ${data_mib} MiB)"
