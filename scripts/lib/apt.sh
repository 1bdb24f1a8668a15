# Sourced by scripts/deps.sh and scripts/image-deps.sh: installs the Debian packages that are
# missing, and nothing when all are present (so every Makefile target can call it cheaply).
#
#   apt_ensure WHO PACKAGE...    WHO names the caller in messages

apt_ensure() {
  local who=$1
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "$who: missing packages ${missing[*]}; run as root (or install them)" >&2
    return 1
  fi
  printf '\033[1m%s:\033[0m installing %s\n' "$who" "${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
