#!/usr/bin/env bash
# Builds what the image tests boot, once per set of inputs, and prints its path:
#
#   tests/image/ci-artifacts.sh x86 BINARY    the x86_64 disk image (raw, not compressed)
#   tests/image/ci-artifacts.sh pxe BINARY    the PXE set (kernel, initrd, iPXE script) dir
#   tests/image/ci-artifacts.sh rpi           the Raspberry Pi image (raw), with the hyphae
#                                             binary cross-compiled for aarch64 here
#
# The image tests (tests/image_appliance.rs) run as separate processes under nextest, several
# needing the same image: the first one builds it under a lock, the others find it built. An
# artifact is reused only when its key matches: a hash of the binary and of every script, unit
# and file the build reads (the root file system's own reuse is keyed the same way, see
# image/rootfs-cache.sh). Outputs in HYPHAE_IMAGE_CI_DIR (default /var/cache/hyphae/image-ci).
#
# The Pi's binary is the test flavour (image/cross-build-aarch64.sh dev with HYPHAE_CROSS_QUICK=1:
# opt-level 0, no debug info; in its own target directory: Debian's rustc-web, not the
# workspace's toolchain, compiles it). Its emulated arm64 root file system builds meanwhile.
set -euo pipefail
kind=${1:?usage: ci-artifacts.sh x86|pxe BINARY | rpi}
repo=$(cd "$(dirname "$0")/../.." && pwd)
dir=${HYPHAE_IMAGE_CI_DIR:-/var/cache/hyphae/image-ci}
mkdir -p "$dir"
inputs_hash() { (cd "$repo" && find image systemd -type f -print0 | sort -z | xargs -0 sha256sum); }

if [ "$kind" = rpi ]; then
  # Its own lock: the x86 tests need not wait for a cross build.
  exec 9>"$dir/lock-rpi"
  flock 9
  out=$dir/rpi
  img=$out/hyphae-rpi-arm64.img
  mkdir -p "$out"
  HYPHAE_IMAGE_REUSE_ROOTFS=auto "$repo/image/build-rpi-arm64.sh" --rootfs-only "$out" >&2 &
  rootfs_pid=$!
  if ! bin=$(HYPHAE_CROSS_QUICK=1 "$repo/image/cross-build-aarch64.sh" dev); then
    kill "$rootfs_pid" 2>/dev/null || true
    wait "$rootfs_pid" || true
    echo "ci-artifacts: the aarch64 cross build failed" >&2
    exit 1
  fi
  wait "$rootfs_pid" || { echo "ci-artifacts: the arm64 root file system build failed" >&2; exit 1; }
  key=$( { sha256sum <"$bin"; inputs_hash; } | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$out/key" 2>/dev/null)" != "$key" ] || [ ! -f "$img" ]; then
    rm -f "$img" "$out/key"
    echo "ci-artifacts: assembling the Raspberry Pi image (key ${key:0:12})" >&2
    HYPHAE_IMAGE_XZ=0 HYPHAE_IMAGE_REUSE_ROOTFS=1 "$repo/image/build-rpi-arm64.sh" "$bin" "$out" >&2
    echo "$key" >"$out/key"
  fi
  echo "$img"
  exit 0
fi

bin=${2:?usage: ci-artifacts.sh x86|pxe BINARY}
exec 9>"$dir/lock"
flock 9

key=$( { sha256sum <"$bin"; inputs_hash; } | sha256sum | cut -d' ' -f1)
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
  *) echo "ci-artifacts: unknown artifact $kind (x86, pxe or rpi)" >&2; exit 2 ;;
esac
