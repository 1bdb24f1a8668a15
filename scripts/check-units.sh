#!/usr/bin/env bash
# Checks every systemd unit Hyphae ships (systemd/ and image/units/):
#   1. `systemd-analyze verify`: syntax, unknown directives, missing executables, ordering cycles;
#   2. `systemd-analyze security --offline=true`: the exposure score must be at most 2.0
#      (docs/ARCHITECTURE.md), or the threshold a unit names in a comment
#      `hyphae-security-threshold: N` together with the reason (memrep needs /dev/kvm, ...).
#
# verify runs against a scratch root that holds the units and stub executables, so it checks the
# units as the image installs them without needing the release binary or the image.
#
#   scripts/check-units.sh [UNIT_FILE...]     default: every unit under systemd/ and image/units/
set -euo pipefail

args=()
for a in "$@"; do args+=("$(realpath "$a")"); done
cd "$(dirname "$0")/.."
DEFAULT_THRESHOLD=2.0

if ! command -v systemd-analyze >/dev/null; then
  echo "check-units.sh: systemd-analyze not found (apt install systemd; scripts/deps.sh does)" >&2
  exit 1
fi

if ((${#args[@]})); then
  units=("${args[@]}")
else
  mapfile -t units < <(find systemd image/units -maxdepth 1 -type f \
    \( -name '*.service' -o -name '*.target' -o -name '*.timer' -o -name '*.socket' \
       -o -name '*.mount' -o -name '*.path' \) 2>/dev/null | sort)
fi
if ((${#units[@]} == 0)); then
  echo "check-units.sh: no unit files found" >&2
  exit 1
fi

root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd/system" "$root/etc/systemd/system"
# The host's own units (sysinit.target, network.target, ...) so that dependencies resolve.
cp -a /lib/systemd/system/. "$root/usr/lib/systemd/system/"
for u in "${units[@]}"; do cp "$u" "$root/usr/lib/systemd/system/"; done
# Stub every absolute ExecStart*/ExecStop* path the units name, so verify's "is executable"
# check passes for our own programs; system programs come from the host's copy.
grep -hoE '^Exec[A-Za-z]*=[-+!@:]*/[^ ]+' "${units[@]}" | sed -E 's/^[^=]*=[-+!@:]*//' | sort -u |
  while read -r exe; do
    if [ ! -x "$exe" ] || [[ $exe == /usr/bin/hyphae || $exe == /usr/lib/hyphae/* ]]; then
      mkdir -p "$root$(dirname "$exe")"
      printf '#!/bin/sh\nexit 0\n' >"$root$exe"
      chmod +x "$root$exe"
    fi
  done

failed=0
echo "== systemd-analyze verify"
names=()
for u in "${units[@]}"; do names+=("$root/usr/lib/systemd/system/$(basename "$u")"); done
# verify exits 0 on some warnings; treat any output mentioning our units as a failure.
if ! out=$(systemd-analyze verify --root="$root" "${names[@]}" 2>&1); then
  failed=1
fi
# Lines about units that are not ours (the host's own units) are noise here.
ours=$(printf '%s\n' "$out" | grep -E 'hyphae' || true)
if [ -n "$ours" ]; then
  printf '%s\n' "$ours"
  failed=1
fi
((failed)) || echo "ok: ${#units[@]} units"

echo "== systemd-analyze security --offline=true"
for u in "${units[@]}"; do
  case "$u" in *.service) ;; *) continue ;; esac
  threshold=$(sed -nE 's/^#.*hyphae-security-threshold: *([0-9.]+).*/\1/p' "$u" | head -n1)
  threshold=${threshold:-$DEFAULT_THRESHOLD}
  line=$(systemd-analyze security --offline=true --root="$root" "$(basename "$u")" 2>&1 |
    grep 'Overall exposure level' || true)
  score=$(sed -nE 's/.*: ([0-9]+\.[0-9]+) .*/\1/p' <<<"$line")
  if [ -z "$score" ]; then
    echo "FAIL $(basename "$u"): no score from systemd-analyze security"
    failed=1
  elif awk -v s="$score" -v t="$threshold" 'BEGIN { exit !(s > t) }'; then
    echo "FAIL $(basename "$u"): exposure $score > $threshold"
    failed=1
  else
    echo "ok   $(basename "$u"): exposure $score (threshold $threshold)"
  fi
done

if ((failed)); then
  echo "check-units.sh: FAILED" >&2
  exit 1
fi
