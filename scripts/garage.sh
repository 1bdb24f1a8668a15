#!/usr/bin/env bash
# Installs Garage (the S3 object store the mesh store is compared against in `hyphae-bench garage`)
# into /var/cache/hyphae/garage/bin/garage. Built from crates.io with cargo: slow the first time
# (tens of minutes), a no-op afterwards.
set -euo pipefail
GARAGE_VERSION=${GARAGE_VERSION:-2.5.0}
root=${GARAGE_ROOT:-/var/cache/hyphae/garage}
if [[ -x "$root/bin/garage" ]] && "$root/bin/garage" --version 2>/dev/null | grep -qF "$GARAGE_VERSION"; then
  echo "garage $GARAGE_VERSION already in $root/bin"
  exit 0
fi
CARGO_TARGET_DIR=${GARAGE_TARGET_DIR:-/var/cache/hyphae/garage-target} \
  nice -n 10 cargo install garage --version "=$GARAGE_VERSION" --locked --root "$root"
