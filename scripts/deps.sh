#!/usr/bin/env bash
# Installs what building, running and testing Hyphae needs on a fresh Debian 12 machine, as
# root. Idempotent and quick when everything is present: every Makefile target calls it.
#
#   scripts/deps.sh            system packages + Rust tools for build, run and test
#   scripts/deps.sh fuzz       + nightly's cargo-fuzz
#
# Caches live outside the clone (see DEVELOPERS.md): apt's archive cache, cargo's registry in
# ~/.cargo, the cargo target dir in /var/cache/hyphae/target.
set -euo pipefail

want_fuzz=0
for arg in "$@"; do
  case "$arg" in
    fuzz) want_fuzz=1 ;;
    *) echo "deps.sh: unknown argument $arg" >&2; exit 2 ;;
  esac
done

say() { printf '\033[1mdeps:\033[0m %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------------------------
# iproute2: ip netns/veth/bridge and tc for the cluster harness; iputils-ping: harness checks;
# python3: harness self-test stand-in; curl: `make run` hints and operators' --unix-socket use;
# build-essential + pkg-config: crates that build C (ring); clang + libclang-dev: bindgen in
# librocksdb-sys; librocksdb-dev: the RocksDB library the coordinator links (.cargo/config.toml
# points ROCKSDB_LIB_DIR at it, so RocksDB's C++ is not compiled from source); systemd:
# systemd-analyze for scripts/check-units.sh (tests/kernel-config needs only apt-get and
# dpkg-deb, always present). The image's tools (mmdebstrap, mtools, QEMU, OVMF, ...) are in
# scripts/image-deps.sh.
packages=(iproute2 iputils-ping python3 curl ca-certificates build-essential pkg-config clang libclang-dev librocksdb-dev systemd)
# python3-zeroconf: an independent mDNS implementation the discovery test browses with
# (tests/discovery_mesh.rs; avahi-browse would need avahi-daemon and dbus in every namespace).
packages+=(python3-zeroconf)
# bind9-dnsutils: `dig` for the gateway's DNS tests (tests/gateway_api.rs).
packages+=(bind9-dnsutils)
# The compute worker (services/compute): glslang-tools compiles its GLSL shaders to SPIR-V at
# build time; libvulkan1 + mesa-vulkan-drivers (lavapipe) run the Vulkan path without a GPU;
# libopenblas-dev is the CPU anchor of `hyphae-bench compute`; python3-numpy runs the MLP
# weights converter and its reference.
packages+=(glslang-tools libvulkan1 mesa-vulkan-drivers libopenblas-dev python3-numpy)

# qemu-system-x86 + cpio: memrep runs QEMU VMs, and its tests build and boot a tiny guest
# (services/memrep/guest/build.sh: Debian's kernel package + a static /init in a cpio).
packages+=(qemu-system-x86 cpio)
# qemu-utils: qemu-img, which memrep's disk tests use to make a qcow2 image that must be
# refused (services/memrep/tests/qemu_disk.rs) and which users need to convert images to raw.
packages+=(qemu-utils)
# libvulkan1 + mesa-vulkan-drivers: the Vulkan loader and lavapipe (a CPU Vulkan device), so
# the beacon's hardware profile lists a GPU with heaps and VRAM use (VK_EXT_memory_budget) on a
# machine without a real GPU (tests/discovery_mesh.rs; the compute service uses them too).
packages+=(libvulkan1 mesa-vulkan-drivers)
# syslinux + syslinux-common + mtools + dosfstools: memrep's boot-from-disk test makes a
# bootable FAT image of the test guest without loop mounts (services/memrep/guest/build-boot-disk.sh).
packages+=(syslinux syslinux-common mtools dosfstools)

. "$(dirname "$0")/lib/apt.sh"
apt_ensure deps "${packages[@]}"

# The web dashboard (gateway/dashboard) is built with Node.js + npm (Debian 12's nodejs 18 is
# enough; a newer node already on PATH is kept) and tested in headless Chromium (tests/browser.rs).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_ensure deps nodejs npm
fi
apt_ensure deps chromium
# libnss3-tools: certutil, to trust the mesh's web CA in the NSS database Chromium reads
# ($HOME/.pki/nssdb) in the browser test, as a user importing `hyphae ca export` would.
apt_ensure deps libnss3-tools

# --- Rust toolchain pieces -------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo >/dev/null; then
  echo "deps.sh: no cargo found; this machine kind ships rustup's stable toolchain in ~/.cargo/bin" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest from crates.io"
  cargo install --locked cargo-nextest
fi
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  say "adding rustfmt and clippy"
  rustup component add rustfmt clippy
fi
if ((want_fuzz)); then
  if ! rustup toolchain list | grep -q '^nightly'; then
    echo "deps.sh: fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
  fi
  if ! cargo fuzz --version >/dev/null 2>&1; then
    say "installing cargo-fuzz from crates.io"
    cargo install --locked cargo-fuzz
  fi
fi
