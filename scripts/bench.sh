#!/usr/bin/env bash
# Runs every benchmark (release builds) and writes bench/results/*.json. Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
# fio: the anchor of the shard store benchmark (same filesystem, same run).
. scripts/lib/apt.sh
apt_ensure bench fio
bin=${CARGO_TARGET_DIR:-/var/cache/hyphae/target}/release
"$bin/hyphae-bench" rpc --hyphae "$bin/hyphae" --out bench/results/rpc.json
# The local shard store against fio (io_uring engine) on the filesystem of the state directory.
mkdir -p /var/lib/hyphae-bench
"$bin/hyphae-bench" store --dir /var/lib/hyphae-bench/store --out bench/results/store.json
"$bin/hyphae-bench" pipeline --out bench/results/pipeline.json
