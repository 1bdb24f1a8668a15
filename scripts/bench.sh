#!/usr/bin/env bash
# Runs every benchmark (release builds) and writes bench/results/*.json. Needs root (namespaces).
# Installs the anchors it measures against (Debian packages) first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/apt.sh
# etcd-server: the coordinator's anchor (etcd 3.4); fio: the shard store's (same filesystem).
# caddy: the gateway's (Caddy 2.6, HTTP/3 on).
apt_ensure bench etcd-server fio caddy
bin=${CARGO_TARGET_DIR:-/var/cache/hyphae/target}/release
"$bin/hyphae-bench" rpc --hyphae "$bin/hyphae" --out bench/results/rpc.json
"$bin/hyphae-bench" coordinator --hyphae "$bin/hyphae" --out bench/results/coordinator.json
"$bin/hyphae-bench" discovery --hyphae "$bin/hyphae" --out bench/results/discovery.json
"$bin/hyphae-bench" gateway --hyphae "$bin/hyphae" --out bench/results/gateway.json
# The local shard store against fio (io_uring engine) on the filesystem of the state directory.
mkdir -p /var/lib/hyphae-bench
"$bin/hyphae-bench" store --dir /var/lib/hyphae-bench/store --out bench/results/store.json
"$bin/hyphae-bench" pipeline --out bench/results/pipeline.json
# Compute: CPU SGEMM vs OpenBLAS (libopenblas-dev from deps.sh), Vulkan vs cuBLAS where a GPU is.
"$bin/hyphae-bench" compute --out bench/results/compute.json
# The mesh store against Garage (built from crates.io sources; slow the first time).
scripts/garage.sh
"$bin/hyphae-bench" garage --hyphae "$bin/hyphae" --out bench/results/garage.json
"$bin/hyphae-bench" heal --hyphae "$bin/hyphae" --out bench/results/heal.json
# The memory replicator on the test guest (TCG where KVM cannot run it): pause, lag, failover.
"$bin/hyphae-bench" memrep --out bench/results/memrep.json
# Compute over the mesh: 4 workers on 1 Gbit/s links (tc tbf), tiles vs Cannon, at n = 4096 and 8192.
"$bin/hyphae-bench" compute-dist --hyphae "$bin/hyphae" --out bench/results/compute_dist.json
