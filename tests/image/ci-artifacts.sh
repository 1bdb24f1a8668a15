#!/usr/bin/env bash
# Builds what the image tests boot, once per set of inputs, and prints its path:
#
#   tests/image/ci-artifacts.sh x86 BINARY    the x86_64 disk image (raw, not compressed)
#   tests/image/ci-artifacts.sh pxe BINARY    the PXE set (kernel, initrd, iPXE script) dir
#
# The image tests (tests/image_appliance.rs) run as separate processes under nextest, several
# needing the same image: the first one builds it under a lock, the others find it built. An
# artifact is reused only when its key matches: a hash of the binary and of every script, unit
# and file the build reads (the root file system's own reuse is keyed the same way, see
# HYPHAE_IMAGE_REUSE_ROOTFS=auto in image/build-x86_64.sh). Outputs in HYPHAE_IMAGE_CI_DIR
# (default /var/cache/hyphae/image-ci).
set -euo pipefail
kind=${1:?usage: ci-artifacts.sh x86|pxe BINARY}
bin=${2:?usage: ci-artifacts.sh x86|pxe BINARY}
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${HYPHAE_IMAGE_CI_DIR:-/var/cache/hyphae/image-ci}
mkdir -p "$dir"
exec 9>"$dir/lock"
flock 9

key=$( { sha256sum <"$bin"; cd "$repo" && find image systemd -type f -print0 | sort -z |
  xargs -0 sha256sum; } | sha256sum | cut -d' ' -f1)
out=$dir/x86
img=$out/hyphae-x86_64.img
if [ "$(cat "$out/key" 2>/dev/null)" != "$key" ] || [ ! -f "$img" ]; then
  rm -rf "$out"
  mkdir -p "$out"
  echo "ci-artifacts: building the x86_64 image (key ${key:0:12})" >&2
  HYPHAE_IMAGE_XZ=0 HYPHAE_IMAGE_REUSE_ROOTFS=auto "$repo/image/build-x86_64.sh" "$bin" "$out" >&2
  echo "$key" >"$out/key"
fi
case $kind in
  x86) echo "$img" ;;
  pxe)
    if [ "$(cat "$out/pxe.key" 2>/dev/null)" != "$key" ] || [ ! -f "$out/pxe/initrd.img" ]; then
      echo "ci-artifacts: building the PXE set (key ${key:0:12})" >&2
      "$repo/image/build-pxe.sh" "$out" >&2
      echo "$key" >"$out/pxe.key"
    fi
    echo "$out/pxe"
    ;;
  *) echo "ci-artifacts: unknown artifact $kind (x86 or pxe)" >&2; exit 2 ;;
esac
