# Sourced by image/build-x86_64.sh and image/build-rpi-arm64.sh: when a root file system left in
# the work directory by an earlier build may be reused (HYPHAE_IMAGE_REUSE_ROOTFS=auto, as CI
# runs them).
#
# A root is reused only when it was built by these very steps: its key is a hash of every script
# and file that goes into it, written next to it once the build succeeded; a root older than
# HYPHAE_IMAGE_ROOTFS_MAX_DAYS (default 7) is rebuilt so that Debian's updates come in.

# rootfs_key REPO RECIPE PATH... : the key of a root built by RECIPE (a string: what mmdebstrap
# is asked for) with these hook scripts and files (files or directories, relative to REPO). Hyphae's own files (the binary, systemd/, image/units, image/files) go into
# a reused root again every time (image/install-hyphae.sh), so only their names count: adding or
# removing one builds a new root, editing one does not.
rootfs_key() {
  local repo=$1 recipe=$2
  shift 2
  (cd "$repo" && {
    echo "$recipe"
    find "$@" -type f -print0 | sort -z | xargs -0 sha256sum
    find systemd image/units image/files -type f | sort
  } | sha256sum | cut -d' ' -f1)
}

# rootfs_matches WORK KEY : true when WORK/rootfs was built with KEY, recently enough.
rootfs_matches() {
  local work=$1 key=$2 max_days=${HYPHAE_IMAGE_ROOTFS_MAX_DAYS:-7}
  [ "$(cat "$work/rootfs.key" 2>/dev/null)" = "$key" ] &&
    [ -n "$(find "$work/rootfs.key" -mtime "-$max_days" 2>/dev/null)" ] &&
    [ -d "$work/rootfs/etc" ] && [ -s "$work/uuids" ]
}
