#!/usr/bin/env bash
# Boots N VMs of a Hyphae x86_64 image on one virtual LAN (QEMU's socket netdev over UDP
# multicast on the host's loopback: every VM hears every other's broadcasts and multicasts, as on
# one switch). There is no DHCP server on that LAN: the nodes take IPv4 link-local addresses
# (169.254.x.x, systemd-networkd) and IPv6 link-local ones, and find each other by the beacon
# and mDNS. Each VM boots with `hyphae.discovery.auto_init=true` and `hyphae.node.name=vmK` on
# its kernel command line: the lowest node id founds the mesh (its queen) and the others ask to
# join it and wait as pending until admitted (`hyphae admit NODE` on the queen's console).
#
#   image/vm-cluster.sh IMAGE.img N
#
# State in VM_CLUSTER_DIR (default: vm-cluster/ next to the image): vmK/disk.img (a sparse copy
# of the image: every run is a first boot), vmK/console.log (serial console), vmK/console.sock
# (the serial console as a Unix socket: `socat -,raw,echo=0 UNIX-CONNECT:vmK/console.sock`, or
# tests/image/console.py), vmK/qemu.pid. Ctrl-C stops them all; VM_CLUSTER_DETACH=1 returns
# after starting them (stop them with `kill $(cat vm*/qemu.pid)`).
set -euo pipefail

img=${1:?usage: vm-cluster.sh IMAGE.img N}
n=${2:?usage: vm-cluster.sh IMAGE.img N}
[ -r "$img" ] || { echo "vm-cluster.sh: no image at $img (make image)" >&2; exit 1; }
((n >= 1 && n <= 16)) || { echo "vm-cluster.sh: N must be 1..16" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image/qemu-common.sh
. "$here/qemu-common.sh"
dir=${VM_CLUSTER_DIR:-$(dirname "$img")/vm-cluster}
# A multicast group and port of its own per cluster directory, so two clusters do not meet.
port=$((20000 + $(cksum <<<"$(realpath -m "$dir")" | cut -d' ' -f1) % 20000))
mkdir -p "$dir"
export MTOOLS_SKIP_CHECK=1

pids=()
stop_all() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}

for k in $(seq 1 "$n"); do
  vm=$dir/vm$k
  rm -rf "$vm" && mkdir -p "$vm"
  cp --sparse=always "$img" "$vm/disk.img"
  # The first-boot settings on the kernel command line (the loader entry on the ESP, at 1 MiB).
  mcopy -i "$vm/disk.img@@1M" ::/loader/entries/hyphae.conf "$vm/entry.conf"
  # (no_timer_check: see tests/image/boot-test.sh; TCG guests on a loaded host need it.)
  sed -i "s/^options .*/& hyphae.node.name=vm$k hyphae.discovery.auto_init=true no_timer_check/" "$vm/entry.conf"
  mcopy -o -i "$vm/disk.img@@1M" "$vm/entry.conf" ::/loader/entries/hyphae.conf
  ovmf_vars "$vm/OVMF_VARS.fd"
  VM_MEM_MB=${VM_MEM_MB:-1536} VM_CPUS=${VM_CPUS:-2} qemu_args "$vm/disk.img" "$vm/OVMF_VARS.fd" raw
  qemu-system-x86_64 "${QEMU_ARGS[@]}" -display none -monitor none \
    -chardev "socket,id=con,path=$vm/console.sock,server=on,wait=off,logfile=$vm/console.log" \
    -serial chardev:con \
    -netdev "socket,id=lan,mcast=230.0.0.1:$port,localaddr=127.0.0.1" \
    -device "virtio-net-pci,netdev=lan,mac=52:54:00:48:59:$(printf '%02x' "$k")" \
    -pidfile "$vm/qemu.pid" >"$vm/qemu.log" 2>&1 &
  pids+=($!)
  echo "vm-cluster: vm$k started ($QEMU_ACCEL): console $vm/console.log, $vm/console.sock" >&2
done

if [ "${VM_CLUSTER_DETACH:-0}" = 1 ]; then exit 0; fi
trap stop_all EXIT INT TERM
echo "vm-cluster: $n VMs on multicast 230.0.0.1:$port; Ctrl-C stops them" >&2
wait
