# Sourced by image/customize.sh for HYPHAE_BOARD=rpi (uses its $root, $repo, $kver, in_root):
# fills $HYPHAE_STAGE/boot with what the Raspberry Pi's FAT boot partition holds.
#
# Debian's raspi-firmware does the work, as it does on an installed Pi at every kernel upgrade:
# its postinst copies the GPU firmware (bootcode.bin, start*.elf, fixup*.dat) to /boot/firmware,
# and its kernel hook copies kernel, initrd and the Broadcom DTBs there and writes config.txt
# (arm_64bit=1, upstream_kernel=1, kernel=, initramfs) and cmdline.txt. Here it is told which
# root to name (the root partition's PARTUUID) and which consoles to use, then run again, since
# during package installation it ran before this configuration existed.

boot=$HYPHAE_STAGE/boot
cat >"$root/etc/default/raspi-firmware" <<CONF
# Hyphae: written by the image build (image/customize-rpi-boot.sh). The kernel hook of
# raspi-firmware regenerates /boot/firmware/config.txt and cmdline.txt from this file at every
# kernel upgrade.
ROOTPART=PARTUUID=$ROOT_PARTUUID
# Screen and the GPIO serial port of a Pi 3/4 (ttyS1); the last one gets the boot messages.
CONSOLES="tty0 ttyS1,115200"
CONF
# Hyphae's first boot is hyphae-firstboot.service: no systemd-firstboot prompts.
echo 'systemd.firstboot=off' >"$root/etc/default/raspi-extra-cmdline"

rm -rf "$root/boot/firmware" && install -d "$root/boot/firmware"
for f in "$root"/usr/lib/raspi-firmware/*; do cp "$f" "$root/boot/firmware/"; done
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$kver" "/boot/vmlinuz-$kver"

# The boot partition's content leaves the root file system (the partition is mounted over
# /boot/firmware, hiding it): kernel and initrd then exist once, on the boot partition.
rm -rf "$boot" && install -d "$boot"
cp -a "$root/boot/firmware/." "$boot/"
rm -rf "$root"/boot/firmware/* "$root"/vmlinuz* "$root"/initrd.img* "$root"/boot/vmlinuz* \
  "$root"/boot/initrd.img*
# DTBs: the Pi 3 (BCM2837) and Pi 4 / 400 / CM4 (BCM2711) families; the rest of bcm*.dtb are
# older or other boards a 64-bit Hyphae node does not run on.
find "$boot" -maxdepth 1 -name 'bcm*.dtb' ! -name 'bcm2837-rpi-*' ! -name 'bcm2711-rpi-*' -delete
install -m 0644 "$repo/image/hyphae.toml.example" "$boot/hyphae.toml.example"
