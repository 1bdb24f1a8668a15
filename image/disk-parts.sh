# Sourced by image/build-x86_64.sh and image/build-rpi-arm64.sh: the steps both disks share once
# their partition table is written. Every file system is made straight into the image file at
# its offset (no loop device, no mount). The caller defines say() and die().

# The kernel module directories neither image unpacks (dpkg path-exclude): hardware a mesh
# node does not have or cannot use without non-free firmware (sound, media, Wi-Fi, Bluetooth,
# InfiniBand, staging drivers, ...) and file systems it never mounts (cluster file systems, NFS
# server, ...). GPU drivers stay: the compute service uses them.
unused_module_dirs=(sound drivers/media drivers/staging drivers/infiniband drivers/isdn
  drivers/bluetooth net/bluetooth drivers/net/wireless net/wireless net/mac80211 drivers/iio
  drivers/nfc net/nfc drivers/input/joystick drivers/input/touchscreen drivers/input/tablet
  drivers/usb/gadget drivers/net/can net/can drivers/atm net/atm drivers/net/hamradio drivers/w1
  drivers/comedi fs/ocfs2 fs/gfs2 fs/nfsd fs/coda fs/orangefs fs/jfs fs/reiserfs fs/nilfs2
  fs/ubifs fs/afs fs/dlm)

# fill_fat IMAGE OFFSET_BYTES MIB LABEL DIR: a FAT32 file system at OFFSET holding DIR's tree.
# One 512-byte sector per cluster: at 128-256 MiB the default 4 KiB clusters are fewer than
# FAT32's minimum (65525) and mtools then reads the file system as FAT16 ("No directory slots").
fill_fat() {
  local img=$1 off=$2 mib=$3 label=$4 dir=$5 log fat
  if ! log=$(mkfs.fat -F 32 -S 512 -s 1 -n "$label" --offset $((off / 512)) "$img" \
    $((mib * 1024)) 2>&1); then
    die "mkfs.fat failed: $log"
  fi
  export MTOOLS_SKIP_CHECK=1
  fat="$img@@$off"
  (cd "$dir" && find . -mindepth 1 -type d | sort | sed 's|^\./||') |
    while read -r d; do mmd -i "$fat" "::/$d"; done
  (cd "$dir" && find . -type f | sort | sed 's|^\./||') |
    while read -r f; do mcopy -i "$fat" "$dir/$f" "::/$f"; done
}

# fill_root_and_data IMAGE ROOTFS ROOT_OFFSET ROOT_MIB DATA_OFFSET DATA_MIB SCRATCH: the ext4
# root made from the ROOTFS directory and the empty ext4 data partition (no reserved blocks: it
# holds only hyphae's data).
fill_root_and_data() {
  local img=$1 rootfs=$2 root_off=$3 root_mib=$4 data_off=$5 data_mib=$6 empty=$7/empty
  mke2fs -q -t ext4 -L hyphae-root -d "$rootfs" -E offset="$root_off",nodiscard \
    "$img" "$((root_mib * 1024))k"
  rm -rf "$empty" && mkdir -p "$empty"
  mke2fs -q -t ext4 -L hyphae-data -m 0 -d "$empty" -E offset="$data_off",nodiscard \
    "$img" "$((data_mib * 1024))k"
}

# finish_image IMAGE TOTAL_MIB START_S ROOTFS_S DISK_S: compresses IMAGE (xz -1 by default: on
# a 2-core machine -6 takes ~5x as long for ~10 % less; releases can set HYPHAE_XZ_LEVEL=-6 or
# -9; HYPHAE_IMAGE_XZ=0 skips it, the boot tests use the raw image), writes its .sha256 and
# reports the timings and sizes.
finish_image() {
  local img=$1 total_mib=$2 start_s=$3 rootfs_s=$4 disk_s=$5 end_s raw_used
  if [ "${HYPHAE_IMAGE_XZ:-1}" != 0 ]; then
    say "compressing"
    xz -T0 "${HYPHAE_XZ_LEVEL:--1}" --keep --force "$img"
    (cd "$(dirname "$img")" && sha256sum "$(basename "$img").xz" >"$(basename "$img").xz.sha256")
  fi
  end_s=$(date +%s)
  raw_used=$(du -m "$img" | cut -f1)
  say "$(printf 'done in %ss (rootfs %ss, disk %ss, xz %ss)' $((end_s - start_s)) \
    $((rootfs_s - start_s)) $((disk_s - rootfs_s)) $((end_s - disk_s)))"
  say "$img: ${total_mib} MiB raw (${raw_used} MiB allocated)$([ -e "$img.xz" ] && echo ", $(du -m "$img.xz" | cut -f1) MiB xz")"
}
