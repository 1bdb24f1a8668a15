#!/usr/bin/env bash
# Runs every benchmark (release builds) and writes bench/results/*.json. Needs root (namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${CARGO_TARGET_DIR:-/var/cache/hyphae/target}/release
"$bin/hyphae-bench" rpc --hyphae "$bin/hyphae" --out bench/results/rpc.json
"$bin/hyphae-bench" discovery --hyphae "$bin/hyphae" --out bench/results/discovery.json
