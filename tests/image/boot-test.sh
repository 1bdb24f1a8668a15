#!/usr/bin/env bash
# The image boot test: boots a built x86_64 image headless in QEMU with OVMF (KVM when usable)
# and reads its serial console, where hyphae-console-report.service prints the node's state
# once boot has settled (image/files/usr/lib/hyphae/console-report). It asserts:
#   - every Hyphae unit is active, `systemctl --failed` is empty, no ordering cycle was logged;
#   - the agent answers `hyphae status` inside the guest, and the dashboard answers 200 over
#     HTTPS on 443 (forwarded from the host; the time from QEMU's start to that first 200 is
#     printed) with a certificate chain that verifies against the mesh's web CA;
#   - first boot applied hyphae.toml from the ESP and a hyphae.* kernel command-line setting;
#   - the data partition is mounted on /var/lib/hyphae, and on a disk 1 GiB larger than the
#     image it took the space (the initrd grows the partition, image/initramfs/grow-data; the
#     file system follows on mount).
# Then it boots the same disk a second time: first boot must not run again and the node must
# come up with the same identity.
#
#   tests/image/boot-test.sh IMAGE.img        (TIMEOUT_S per boot, default 600; DASHBOARD_WAIT_S
#                                              after ready, default 300)
#
# The image file is not modified: the test boots a sparse copy.
set -euo pipefail

img=${1:?usage: boot-test.sh IMAGE.img}
repo=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=image/qemu-common.sh
. "$repo/image/qemu-common.sh"
timeout_s=${TIMEOUT_S:-600}
dash_wait_s=${DASHBOARD_WAIT_S:-300}
work=$(mktemp -d "${TMPDIR:-/var/tmp}/hyphae-boot-test.XXXXXX")
qemu_pid=""
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid" 2>/dev/null || true; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "boot-test: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
fail() {
  echo "boot-test: FAIL: $*" >&2
  if [ -n "${console:-}" ] && [ -f "$console" ]; then
    echo "--- last 60 lines of the serial console ($console) ---" >&2
    tail -n 60 "$console" | tr -d '\r' >&2
  fi
  exit 1
}

[ -r "$img" ] || fail "no image at $img (make image)"
disk=$work/disk.img
cp --sparse=always "$img" "$disk"
orig_mib=$(( $(stat -c %s "$disk") / 1048576 ))
# A disk 1 GiB larger than the image, as when it is flashed onto a bigger one: the GPT's backup
# header is not at the end, and the free space is after the data partition. First boot grows
# the partition (the initrd) and its file system (x-systemd.growfs).
truncate -s +1G "$disk"

# First-boot settings, the way an operator leaves them: hyphae.toml on the ESP and a hyphae.*
# argument in the loader entry (both on the FAT partition, at 1 MiB; mtools, no mount).
export MTOOLS_SKIP_CHECK=1
esp="$disk@@1M"
# auto_init: alone on its network, the node founds its own mesh (the gateway serves the
# dashboard only for a member).
printf '[node]\nname = "boot-test"\n\n[discovery]\nauto_init = true\n' >"$work/hyphae.toml"
mcopy -i "$esp" "$work/hyphae.toml" ::/hyphae.toml
mcopy -i "$esp" ::/loader/entries/hyphae.conf "$work/entry.conf"
# no_timer_check: under TCG on a loaded host the kernel's IO-APIC timer check can time out
# ("IO-APIC + timer doesn't work!" panic); the check is for broken real hardware, not this VM.
sed -i 's/^options .*/& hyphae.log.level=debug no_timer_check/' "$work/entry.conf"
mcopy -o -i "$esp" "$work/entry.conf" ::/loader/entries/hyphae.conf
ovmf_vars "$work/OVMF_VARS.fd"

# Boots the disk until HYPHAE-READY appears on the console; sets $console and $boot_s.
boot() {
  local n=$1
  console=$work/console-$n.log
  : >"$console"
  qemu_args "$disk" "$work/OVMF_VARS.fd" raw
  local start
  start=$(date +%s%N)
  # The dashboard, forwarded from the host: the gateway's port on the image (443) and its
  # development default (8443, until the image's hyphae.toml sets 443).
  local fwd_443=$((20000 + RANDOM % 20000)) fwd_8443
  fwd_8443=$((fwd_443 + 1))
  qemu-system-x86_64 "${QEMU_ARGS[@]}" -display none -monitor none \
    -serial "file:$console" \
    -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:$fwd_443-:443,hostfwd=tcp:127.0.0.1:$fwd_8443-:8443" \
    -device virtio-net-pci,netdev=n0 &
  qemu_pid=$!
  local deadline=$((SECONDS + timeout_s)) ready_ms="" dash_ms="" now ready_at=0 b64
  dashboard_port="" webca=""
  # Until the console says ready and the dashboard has answered 200 and its certificate has
  # been checked against the web CA the console printed (at most DASHBOARD_WAIT_S after ready:
  # founding the mesh, then the gateway's certificate, come after boot has settled).
  until [ -n "$ready_ms" ] && { { [ -n "$dash_ms" ] && [ -n "$webca" ]; } || ((SECONDS > ready_at + dash_wait_s)); }; do
    kill -0 "$qemu_pid" 2>/dev/null || fail "boot $n: QEMU exited before the node was ready"
    ((SECONDS < deadline)) || fail "boot $n: no HYPHAE-READY within ${timeout_s}s"
    now=$((($(date +%s%N) - start) / 1000000))
    if [ -z "$ready_ms" ] && grep -q 'HYPHAE-READY' "$console"; then ready_ms=$now ready_at=$SECONDS; fi
    if [ -n "$dash_ms" ] && [ -z "$webca" ] && [ -n "$ready_ms" ]; then
      # The chain the dashboard serves must verify against the mesh's web CA (no host name
      # check: the certificate names the node's mesh names, not 127.0.0.1).
      b64=$(tr -d '\r' <"$console" | sed -nE 's/^.*HYPHAE-WEBCA ([A-Za-z0-9+\/=]+).*$/\1/p' | head -n1)
      if [ -n "$b64" ] && base64 -d <<<"$b64" >"$work/web-ca-$n.pem" 2>/dev/null; then
        if timeout 10 openssl s_client -connect "127.0.0.1:$dashboard_port" -CAfile "$work/web-ca-$n.pem" \
          -verify_return_error </dev/null >"$work/s_client-$n.log" 2>&1; then
          webca=verified
        else
          webca=failed
        fi
      fi
    fi
    if [ -z "$dash_ms" ]; then
      for port in "$fwd_443" "$fwd_8443"; do
        if [ "$(curl -sk -o /dev/null -w '%{http_code}' --max-time 2 "https://127.0.0.1:$port/")" = 200 ]; then
          dash_ms=$now dashboard_port=$port
          break
        fi
      done
    fi
    sleep 0.5
  done
  boot_s=$(printf '%d.%01d' $((ready_ms / 1000)) $((ready_ms % 1000 / 100)))
  dash_s=-
  [ -z "$dash_ms" ] || dash_s=$(printf '%d.%01d' $((dash_ms / 1000)) $((dash_ms % 1000 / 100)))
  [ "$dashboard_port" != "$fwd_8443" ] || dashboard_port=8443
  [ "$dashboard_port" != "$fwd_443" ] || dashboard_port=443
  kill "$qemu_pid" 2>/dev/null || true
  wait "$qemu_pid" 2>/dev/null || true
  qemu_pid=""
  # journal+console lines carry a "[ uptime] console-report[pid]: " prefix.
  tr -d '\r' <"$console" | sed -nE 's/^.*(HYPHAE-[A-Z]+ )/\1/p' >"$work/report-$n"
  echo "--- boot $n ($QEMU_ACCEL): ready after ${boot_s}s on the host clock, dashboard's first 200 after ${dash_s}s (guest port ${dashboard_port:-none})"
  cat "$work/report-$n"
}

field() { sed -nE "s/^HYPHAE-READY .*$1=([^ ]*).*/\1/p" "$2"; }
unit_state() { awk -v u="$1" '$1 == "HYPHAE-UNIT" && $2 == u { print $3 }' "$2"; }

# --- first boot --------------------------------------------------------------------------------
boot 1
r=$work/report-1
grep -q '^HYPHAE-READY ok ' "$r" || fail "boot 1: the node did not report ready"
for u in hyphae.target hyphae-agent.service hyphae-firstboot.service; do
  [ "$(unit_state "$u" "$r")" = active ] || fail "boot 1: $u is not active"
done
[ "$(field failed "$r")" = - ] || fail "boot 1: failed units: $(field failed "$r")"
[ "$(field cycles "$r")" = 0 ] || fail "boot 1: ordering cycles in the journal"
[ "$(field system "$r")" = running ] || fail "boot 1: system state $(field system "$r")"
grep -q '^HYPHAE-STATUS .*"ready": *true' "$r" || fail "boot 1: hyphae status did not answer ready"
grep -q '^HYPHAE-STATUS .*"name": *"boot-test"' "$r" || fail "boot 1: hyphae.toml from the ESP not applied"
grep -q '^HYPHAE-CONFIG .*level = "debug"' "$r" || fail "boot 1: hyphae.log.level from the command line not applied"
node1=$(field node "$r")
data_mib=$(sed -nE 's/^HYPHAE-DATA size_mib=([0-9]+).*/\1/p' "$r")
[ -n "$data_mib" ] || fail "boot 1: the data partition is not mounted on /var/lib/hyphae"
((data_mib > 1536)) || fail "boot 1: data file system is ${data_mib} MiB; the partition or its file system did not grow"
[ "$dash_s" != - ] || fail "boot 1: the dashboard did not answer 200 on 443 or 8443"
[ "$dashboard_port" = 443 ] || fail "boot 1: the dashboard answered on ${dashboard_port}, not on 443"
[ "$webca" = verified ] ||
  fail "boot 1: the dashboard's certificate did not verify against the web CA (${webca:-no HYPHAE-WEBCA on the console}): $(tail -n 5 "$work/s_client-1.log" 2>/dev/null)"
boot1_s=$boot_s
dash1_s=$dash_s
uptime1=$(field uptime "$r")

boot1_line=$(sed -n 's/^HYPHAE-BOOT //p' "$r")

# --- second boot -------------------------------------------------------------------------------
boot 2
r=$work/report-2
grep -q '^HYPHAE-READY ok ' "$r" || fail "boot 2: the node did not report ready"
[ "$(unit_state hyphae-agent.service "$r")" = active ] || fail "boot 2: hyphae-agent.service is not active"
[ "$(unit_state hyphae-firstboot.service "$r")" = skipped ] || fail "boot 2: first boot ran again"
[ "$(field node "$r")" = "$node1" ] || fail "boot 2: node id changed ($node1 -> $(field node "$r"))"

echo "boot-test: first boot: $boot1_line"
echo "boot-test: second boot: $(sed -n 's/^HYPHAE-BOOT //p' "$r")"
echo "boot-test: ok ($QEMU_ACCEL; image ${orig_mib} MiB; first boot ready in ${boot1_s}s host /" \
  "dashboard 200 after ${dash1_s}s /" \
  "${uptime1}s guest uptime; second boot ${boot_s}s / $(field uptime "$r")s; data ${data_mib} MiB)"
