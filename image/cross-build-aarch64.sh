#!/usr/bin/env bash
# Cross-compiles the hyphae binary for aarch64 (the Raspberry Pi image) with Debian's toolchain:
# rustc-web (/usr/bin/rustc) with libstd-rust-web-dev:arm64, gcc-aarch64-linux-gnu as linker and
# C compiler, and Debian's librocksdb-dev:arm64 (multiarch) as the RocksDB it links, as the host
# build links the amd64 one (.cargo/config.toml). No rustup target is needed.
#
#   image/cross-build-aarch64.sh [PROFILE]     PROFILE: dev (default) or release
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
[ -e /usr/lib/aarch64-linux-gnu/librocksdb.so ] || die "no librocksdb-dev:arm64"

export RUSTC=$rustc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CXX_aarch64_unknown_linux_gnu=aarch64-linux-gnu-g++
export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
# The environment wins over .cargo/config.toml's [env] (which names the amd64 library).
export ROCKSDB_LIB_DIR=/usr/lib/aarch64-linux-gnu
# bindgen (librocksdb-sys) parses C headers for the target: the cross sysroot's libc headers.
export BINDGEN_EXTRA_CLANG_ARGS_aarch64_unknown_linux_gnu="--target=$target --sysroot=/usr/aarch64-linux-gnu"
export PKG_CONFIG_ALLOW_CROSS=1
export PKG_CONFIG_LIBDIR=/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig

cd "$repo"
cargo build --profile "$profile" --target "$target" -p hyphae --bin hyphae >&2
dir=$profile
[ "$profile" = dev ] && dir=debug
echo "${CARGO_TARGET_DIR:-$repo/target}/$target/$dir/hyphae"
