#!/usr/bin/env bash
# The PXE boot test: serves a built PXE set (make pxe) over HTTP on the host and network-boots
# it in QEMU the way a LAN does it: the NIC's iPXE ROM gets an address and a boot file (an
# http:// URL) from DHCP (QEMU's user network), runs the script, loads the kernel and the
# initrd that carries the root file system, and the node runs from RAM. It asserts, from the
# serial console report (image/files/usr/lib/hyphae/console-report):
#   - every Hyphae unit is active, `systemctl --failed` is empty, the system is running;
#   - the agent answers `hyphae status`;
#   - a hyphae.* setting given on the kernel command line (through the iPXE script's
#     ${hyphae_args}) was applied by first boot;
#   - the root file system is the RAM overlay.
#
#   tests/image/pxe-boot-test.sh PXE_DIR        (TIMEOUT_S, default 900; VM_MEM_MB, default 1024:
#                                               the node must run in 1 GiB of RAM)
set -euo pipefail

pxe=${1:?usage: pxe-boot-test.sh PXE_DIR}
timeout_s=${TIMEOUT_S:-900}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hyphae-pxe-test.XXXXXX")
qemu_pid="" http_pid=""
cleanup() {
  for p in "$qemu_pid" "$http_pid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then kill "$p" 2>/dev/null || true; fi
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "pxe-boot-test: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
console=$work/console.log
fail() {
  echo "pxe-boot-test: FAIL: $*" >&2
  if [ -f "$console" ]; then
    echo "--- last 60 lines of the serial console ($console) ---" >&2
    tail -n 60 "$console" | tr -d '\r' >&2
  fi
  exit 1
}

for f in vmlinuz initrd.img boot.ipxe SHA256SUMS; do
  [ -r "$pxe/$f" ] || fail "no $pxe/$f (make pxe)"
done
(cd "$pxe" && sha256sum --quiet -c SHA256SUMS) || fail "the PXE set does not match its SHA256SUMS"

# The served directory: the PXE set plus a site script that sets first-boot arguments and
# chains the stock boot.ipxe, as an operator's DHCP/iPXE setup would.
www=$work/www
mkdir -p "$www"
for f in vmlinuz initrd.img boot.ipxe; do ln -s "$(realpath "$pxe/$f")" "$www/$f"; done
printf '#!ipxe\nset hyphae_args hyphae.log.level=debug\nchain boot.ipxe\n' >"$www/site.ipxe"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$port" >"$work/http.log" 2>&1 &
http_pid=$!

accel=(-accel tcg -cpu max)
if [ "${VM_ACCEL:-tcg}" = kvm ]; then accel=(-accel kvm -cpu host); fi
start=$(date +%s%N)
# QEMU's user network: the guest reaches the host as 10.0.2.2; DHCP hands out the boot file.
qemu-system-x86_64 -machine q35 -m "${VM_MEM_MB:-1024}" -smp 2 "${accel[@]}" \
  -netdev "user,id=n0,bootfile=http://10.0.2.2:$port/site.ipxe" \
  -device virtio-net-pci,netdev=n0 -boot n -device virtio-rng-pci \
  -display none -monitor none -serial "file:$console" -no-reboot &
qemu_pid=$!
deadline=$((SECONDS + timeout_s))
until grep -q 'HYPHAE-READY' "$console" 2>/dev/null; do
  kill -0 "$qemu_pid" 2>/dev/null || fail "QEMU exited before the node was ready"
  ((SECONDS < deadline)) || fail "no HYPHAE-READY within ${timeout_s}s"
  sleep 1
done
ms=$((($(date +%s%N) - start) / 1000000))
sleep 1
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
[ "$(field system)" = running ] || fail "system state $(field system)"
grep -q '^HYPHAE-STATUS .*"ready": *true' "$r" || fail "hyphae status did not answer ready"
grep -q '^HYPHAE-CONFIG .*level = "debug"' "$r" || fail "hyphae.log.level from the iPXE command line not applied"
grep -q "^HYPHAE-ROOT overlay" "$r" || fail "the root file system is not the RAM overlay"
grep -q 'GET /initrd.img' "$work/http.log" || fail "the initrd was not fetched over HTTP"
echo "pxe-boot-test: ok (TCG unless VM_ACCEL=kvm; ready $((ms / 1000)).$((ms % 1000 / 100))s after QEMU started, guest uptime $(field uptime)s)"
