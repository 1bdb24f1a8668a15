#!/usr/bin/env bash
# Boots a Hyphae x86_64 image in QEMU with UEFI (OVMF): serial console on this terminal
# (Ctrl-a x quits, Ctrl-a c for QEMU's monitor), the node's ports forwarded to this host.
#
#   image/vm.sh IMAGE.img
#
# The image itself is never written: the VM runs on a copy-on-write overlay of VM_DISK_GB
# (default 8) GiB, so every `make vm` is a first boot (the data partition grows to the end of
# that disk at boot). VM_KEEP=1 keeps the overlay (and the node) between runs.
# Forwarded (host -> guest): udp 7440-7444 (node agent and service QUIC ports), tcp+udp
# 8443 -> 443 (gateway), all on localhost + VM_PORT_OFFSET (default 0).
set -euo pipefail

img=${1:?usage: vm.sh IMAGE.img}
[ -r "$img" ] || { echo "vm.sh: no image at $img (make image)" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=image/qemu-common.sh
. "$here/qemu-common.sh"

state=${VM_STATE_DIR:-$(dirname "$img")/vm}
mkdir -p "$state"
overlay=$state/disk.qcow2
if [ "${VM_KEEP:-0}" != 1 ] || [ ! -e "$overlay" ]; then
  rm -f "$overlay" "$state/OVMF_VARS.fd"
  qemu-img create -q -f qcow2 -F raw -b "$(realpath "$img")" "$overlay" "${VM_DISK_GB:-8}G"
  ovmf_vars "$state/OVMF_VARS.fd"
fi

off=${VM_PORT_OFFSET:-0}
fwd="hostfwd=tcp:127.0.0.1:$((8443 + off))-:443,hostfwd=udp:127.0.0.1:$((8443 + off))-:443"
for p in 7440 7441 7442 7443 7444 7445; do fwd+=",hostfwd=udp:127.0.0.1:$((p + off))-:$p"; done

qemu_args "$overlay" "$state/OVMF_VARS.fd" qcow2
echo "vm.sh: booting $img ($QEMU_ACCEL); Ctrl-a x quits. Log in as root on the console." >&2
exec qemu-system-x86_64 "${QEMU_ARGS[@]}" \
  -netdev "user,id=n0,$fwd" -device virtio-net-pci,netdev=n0 \
  -nographic -serial mon:stdio
