#!/usr/bin/env bash
# Cross-compiles the hyphae binary for aarch64 (the Raspberry Pi image) with Debian's toolchain:
# rustc-web (/usr/bin/rustc) with libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu as linker and
# C compiler, and Debian's arm64 RocksDB 7.8 as the library it links, as the host build links
# the amd64 one (.cargo/config.toml). No rustup target is needed.
#
# librocksdb-dev and librocksdb7.8 are not Multi-Arch: same, so installing the arm64 ones would
# REMOVE the host's amd64 librocksdb-dev (and break every host build). Their arm64 .debs are
# downloaded (apt-get download) and unpacked into $HYPHAE_ARM64_LIBS instead (default
# /var/cache/hyphae/arm64-libs), which the linker searches.
#
#   image/cross-build-aarch64.sh [PROFILE]     PROFILE: dev (default) or release
#
# HYPHAE_CROSS_QUICK=1 (with dev) builds every crate at opt-level 0 without debug info: the
# workspace's dev profile compiles all dependencies at opt-level 2, which on a shared 2-core
# machine makes a cold aarch64 build take hours (docs/benchmarks.md); the boot test only needs
# the services to come up, not to be fast. Images people flash use release.
#
# The build has its own target directory, HYPHAE_AARCH64_TARGET_DIR (default
# /var/cache/hyphae/target-aarch64, outside the clone so CI reuses it): rustc-web is another
# compiler than the workspace's, and its build scripts and proc macros must not mix with the
# host build's (the Makefile exports CARGO_TARGET_DIR for that one, which this overrides).
#
# Prints the path of the binary on stdout. scripts/image-deps.sh rpi installs the toolchain.
set -euo pipefail

profile=${1:-dev}
repo=$(cd "$(dirname "$0")/.." && pwd)
target=aarch64-unknown-linux-gnu
rustc=${HYPHAE_CROSS_RUSTC:-/usr/bin/rustc}
die() { echo "cross-build-aarch64.sh: $*" >&2; exit 1; }

[ -x "$rustc" ] || die "no $rustc (scripts/image-deps.sh rpi installs rustc-web)"
[ -d "$("$rustc" --print sysroot)/lib/rustlib/$target" ] ||
  die "$rustc has no standard library for $target (libstd-rust-web-dev:arm64)"
command -v aarch64-linux-gnu-gcc >/dev/null || die "no aarch64-linux-gnu-gcc (gcc-aarch64-linux-gnu)"
libs=${HYPHAE_ARM64_LIBS:-/var/cache/hyphae/arm64-libs}
libdir=$libs/usr/lib/aarch64-linux-gnu
if [ ! -e "$libdir/librocksdb.so" ]; then
  echo "cross-build-aarch64.sh: unpacking arm64 librocksdb into $libs" >&2
  debs=$(mktemp -d)
  (cd "$debs" && apt-get download -q librocksdb-dev:arm64 librocksdb7.8:arm64 libgflags2.2:arm64 >&2) ||
    die "apt-get download of the arm64 RocksDB packages failed (is the arm64 architecture added? scripts/image-deps.sh rpi)"
  mkdir -p "$libs"
  for d in "$debs"/*.deb; do dpkg-deb -x "$d" "$libs"; done
  rm -rf "$debs"
  [ -e "$libdir/librocksdb.so" ] || die "no librocksdb.so in the unpacked packages"
fi

# Run from inside a test (tests/image/ci-artifacts.sh under nextest) this script inherits the
# variables cargo sets for the test process (CARGO_MANIFEST_DIR naming the clone, CARGO_PKG_*,
# ...). Build scripts such as ring's declare `rerun-if-env-changed` on those names, so with them
# set every dependent crate would rebuild whenever the clone's path or the caller changed.
while IFS= read -r name; do
  unset "$name"
done < <(compgen -e | grep -E '^(CARGO_(MANIFEST_|PKG_|PRIMARY_PACKAGE|CRATE_|BIN_EXE_|BIN_NAME|TARGET_TMPDIR|CFG_)|NEXTEST|OUT_DIR$)' || true)

export RUSTC=$rustc
export CARGO_TARGET_DIR=${HYPHAE_AARCH64_TARGET_DIR:-/var/cache/hyphae/target-aarch64}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# The environment wins over .cargo/config.toml's [env] (which names the amd64 library).
export ROCKSDB_LIB_DIR=$libdir
# librocksdb.so's own dependencies (gflags from $libdir; snappy, lz4, zstd, ... from the arm64
# runtime packages scripts/image-deps.sh rpi installs, which are Multi-Arch: same).
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C link-arg=-Wl,-rpath-link,$libdir -C link-arg=-Wl,-rpath-link,/usr/lib/aarch64-linux-gnu"
# bindgen (librocksdb-sys) parses C headers for the target: the cross sysroot's libc headers.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=$target --sysroot=/usr/aarch64-linux-gnu"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig

quick=()
if [ "${HYPHAE_CROSS_QUICK:-0}" = 1 ]; then
  [ "$profile" = dev ] || die "HYPHAE_CROSS_QUICK=1 is for the dev profile only"
  quick=(--config 'profile.dev.debug=0' --config 'profile.dev.package."*".opt-level=0')
  for p in hyphae-chunkstore hyphae-compute hyphae-memrep; do
    quick+=(--config "profile.dev.package.$p.opt-level=0")
  done
fi

cd "$repo"
cargo build "${quick[@]}" --profile "$profile" --target "$target" -p hyphae --bin hyphae >&2
dir=$profile
[ "$profile" = dev ] && dir=debug
echo "$CARGO_TARGET_DIR/$target/$dir/hyphae"
