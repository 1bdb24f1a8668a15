#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for N seconds (default 20) with cargo-fuzz on nightly.
# A crash fails the run and leaves the reproducer in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-20}
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/cache/hyphae/fuzz-target}
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in $(cargo +nightly fuzz list); do
  echo "fuzz: $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  if ! cargo +nightly fuzz run "$target" "fuzz/corpus/$target" -- \
      -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz: $target FAILED (reproducer in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed "s/^/fuzz: $target /"
done
