#!/usr/bin/env bash
# Runs every benchmark (release builds) and writes bench/results/*.json. Needs root (namespaces).
# Installs the anchors it measures against (Debian packages) first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
# etcd-server: the coordinator's anchor (etcd 3.4).
apt_ensure bench etcd-server
bin=${CARGO_TARGET_DIR:-/var/cache/hyphae/target}/release
"$bin/hyphae-bench" rpc --hyphae "$bin/hyphae" --out bench/results/rpc.json
"$bin/hyphae-bench" coordinator --hyphae "$bin/hyphae" --out bench/results/coordinator.json
"$bin/hyphae-bench" discovery --hyphae "$bin/hyphae" --out bench/results/discovery.json
