#!/usr/bin/env bash
# Checks a kernel's config (/boot/config-*, /proc/config.gz, a kernel tree's .config) against
# kernel-config/hyphae.config: every `required` option must be set as the fragment says, and
# every `recommended` one that is not is reported as a warning.
#
#   scripts/check-kernel-config.sh [--fragment FILE] [--arch x86_64|arm64] [--quiet] CONFIG
#
# `=y` in the fragment must be built in; `=m` may be a module or built in; any other value must
# match exactly. The architecture comes from the config (CONFIG_X86_64 / CONFIG_ARM64) unless
# given. Exit status: 0 when every required option is there, 1 when one is missing, 2 on misuse.
set -euo pipefail

usage() { echo "usage: check-kernel-config.sh [--fragment FILE] [--arch ARCH] [--quiet] CONFIG" >&2; exit 2; }
fragment="$(cd "$(dirname "$0")/.." && pwd)/kernel-config/hyphae.config"
arch=""
quiet=0
config=""
while (($#)); do
  case "$1" in
    --fragment) fragment=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    --quiet) quiet=1; shift ;;
    -h | --help) usage ;;
    -*) usage ;;
    *) [ -z "$config" ] || usage; config=$1; shift ;;
  esac
done
[ -n "$config" ] || usage
[ -r "$config" ] || { echo "check-kernel-config.sh: cannot read $config" >&2; exit 2; }
[ -r "$fragment" ] || { echo "check-kernel-config.sh: cannot read $fragment" >&2; exit 2; }

# /proc/config.gz and friends.
cfg=$(mktemp)
trap 'rm -f "$cfg"' EXIT
case "$config" in
  *.gz) gzip -dc "$config" >"$cfg" ;;
  *) cat "$config" >"$cfg" ;;
esac
if ! grep -qE '^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)' "$cfg"; then
  echo "check-kernel-config.sh: $config does not look like a kernel config" >&2
  exit 2
fi
if [ -z "$arch" ]; then
  if grep -q '^CONFIG_X86_64=y' "$cfg"; then arch=x86_64
  elif grep -q '^CONFIG_ARM64=y' "$cfg"; then arch=arm64
  else arch=unknown
  fi
fi

# One pass in awk: the fragment first (comment line, then option), then the config.
awk -v arch="$arch" -v quiet="$quiet" -v cfgname="$config" '
  FNR == NR {
    if ($0 ~ /^# (required|recommended)( [a-z0-9_]+)?: /) {
      hdr = substr($0, 3)
      split(hdr, parts, ": ")
      split(parts[1], lv, " ")
      level = lv[1]; want_arch = lv[2]
      why = substr(hdr, length(parts[1]) + 3)
      next
    }
    if ($0 ~ /^CONFIG_[A-Z0-9_]+=/) {
      if (level == "") { printf "fragment: %s has no level comment above it\n", $0 > "/dev/stderr"; bad_fragment = 1; next }
      eq = index($0, "=")
      if (want_arch == "" || want_arch == arch) {
        n++; name[n] = substr($0, 1, eq - 1); want[n] = substr($0, eq + 1); lvl[n] = level; reason[n] = why
      }
      level = ""; want_arch = ""
    }
    next
  }
  /^CONFIG_[A-Z0-9_]+=/ { eq = index($0, "="); have[substr($0, 1, eq - 1)] = substr($0, eq + 1) }
  END {
    if (bad_fragment) exit 2
    for (i = 1; i <= n; i++) {
      k = name[i]; h = (k in have) ? have[k] : "not set"; w = want[i]
      ok = (w == "m") ? (h == "m" || h == "y") : (h == w)
      if (ok) { okc++; if (!quiet) printf "ok    %-28s %s\n", k, h; continue }
      if (lvl[i] == "required") { missing++; printf "FAIL  %-28s %s, needs %s: %s\n", k, h, (w == "m" ? "m or y" : w), reason[i] }
      else { warn++; printf "warn  %-28s %s, recommended %s: %s\n", k, h, (w == "m" ? "m or y" : w), reason[i] }
    }
    printf "%s (%s): %d options checked, %d ok, %d required missing, %d recommended missing\n", cfgname, arch, n, okc, missing, warn
    exit (missing > 0)
  }
' "$fragment" "$cfg"
