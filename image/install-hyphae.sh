#!/usr/bin/env bash
# Puts Hyphae into a root file system: the binary, its units (enabled), its system user and
# image/files. image/customize.sh runs it while the root is built; image/build-x86_64.sh and
# image/build-rpi-arm64.sh run it again on a reused root, so that a change to the binary, a unit
# or a file needs no new root (image/rootfs-cache.sh keys a root by the names of these files,
# not their content).
#
#   install-hyphae.sh ROOTFS BOARD      (BOARD: x86_64 or rpi; env HYPHAE_BIN, HYPHAE_REPO)
#
# An empty HYPHAE_BIN (build-rpi-arm64.sh --rootfs-only) leaves the binary for a later run.
# Everything here runs on the host, with no emulator: systemctl and systemd-sysusers work on an
# offline root with --root.
set -euo pipefail
root=${1:?usage: install-hyphae.sh ROOTFS BOARD}
board=${2:?usage: install-hyphae.sh ROOTFS BOARD}
repo=${HYPHAE_REPO:?}

# Without DWARF (53 -> 10 MB); symbols stay, so backtraces still name functions.
if [ -n "${HYPHAE_BIN:-}" ]; then
  install -D -m 0755 "$HYPHAE_BIN" "$root/usr/bin/hyphae"
  # The host's strip reads only its own architecture; the aarch64 binary needs binutils' cross one.
  strip_tool=strip
  [ "$board" = rpi ] && strip_tool=aarch64-linux-gnu-strip
  if command -v "$strip_tool" >/dev/null; then "$strip_tool" --strip-debug "$root/usr/bin/hyphae"; fi
fi
for u in "$repo"/systemd/*.service "$repo"/systemd/*.target "$repo"/image/units/*.service; do
  install -D -m 0644 "$u" "$root/usr/lib/systemd/system/$(basename "$u")"
done
install -D -m 0644 "$repo/systemd/hyphae.sysusers" "$root/usr/lib/sysusers.d/hyphae.conf"
cp -a "$repo/image/files/." "$root/"
# The user exists in the image already (systemd-sysusers.service would also create it at boot).
systemd-sysusers --root="$root" >/dev/null
install -d -m 0755 "$root/var/lib/hyphae" "$root/etc/hyphae"

# Every Hyphae unit with an [Install] section is enabled, so a service that adds its unit to
# systemd/ comes into the image by itself.
enable=(hyphae.target)
for u in "$repo"/systemd/hyphae-*.service "$repo"/image/units/*.service; do
  if grep -q '^\[Install\]' "$u"; then enable+=("$(basename "$u")"); fi
done
systemctl --root="$root" --quiet enable "${enable[@]}"
