# Shared by image/vm.sh and tests/image/boot-test.sh (sourced): the QEMU command line that boots
# an x86_64 Hyphae disk with OVMF (UEFI), KVM when usable, TCG otherwise.
#   qemu_args DISK VARS_FILE    fills the array QEMU_ARGS (without serial/display options)

ovmf_code=""
for f in /usr/share/OVMF/OVMF_CODE_4M.fd /usr/share/OVMF/OVMF_CODE.fd; do
  if [ -r "$f" ]; then ovmf_code=$f; break; fi
done

# Writes a fresh copy of OVMF's variable store (UEFI writes boot entries into it) to $1.
ovmf_vars() {
  local vars=${ovmf_code/_CODE/_VARS}
  [ -r "$vars" ] || { echo "no OVMF variable store next to $ovmf_code" >&2; return 1; }
  cp "$vars" "$1"
}

# Whether KVM can run OVMF on this host. /dev/kvm being there is not enough: some nested
# hypervisors (KVM-PVM, as on our CI machines) run only guests built for them and stop OVMF
# with "KVM internal error" in its first instructions. The answer is cached per shell.
kvm_works() {
  if [ -z "${HYPHAE_KVM_WORKS:-}" ]; then
    HYPHAE_KVM_WORKS=no
    if [ -r /dev/kvm ] && [ -w /dev/kvm ] && [ -n "$ovmf_code" ]; then
      local probe
      probe=$(mktemp -d)
      # OVMF with no disk prints its boot manager's attempts on the serial port within seconds.
      ovmf_vars "$probe/vars" || return 1
      timeout 30 qemu-system-x86_64 -machine q35 -m 256 -accel kvm \
        -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code" \
        -drive "if=pflash,format=raw,unit=1,file=$probe/vars" -display none -monitor none -serial "file:$probe/serial" -net none \
        >"$probe/out" 2>&1 &
      local pid=$! i
      for i in $(seq 1 30); do
        if grep -q 'BdsDxe' "$probe/serial" 2>/dev/null; then HYPHAE_KVM_WORKS=yes; break; fi
        if grep -q 'KVM internal error' "$probe/out" 2>/dev/null || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 1
      done
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      rm -rf "$probe"
    fi
    export HYPHAE_KVM_WORKS
    [ "$HYPHAE_KVM_WORKS" = yes ] || echo "qemu: KVM cannot run OVMF here; using TCG (slow)" >&2
  fi
  [ "$HYPHAE_KVM_WORKS" = yes ]
}

qemu_args() {
  local disk=$1 vars=$2 format=${3:-qcow2}
  [ -n "$ovmf_code" ] || { echo "OVMF not found (apt install ovmf; scripts/image-deps.sh)" >&2; return 1; }
  QEMU_ARGS=(-machine q35 -m "${VM_MEM_MB:-2048}" -smp "${VM_CPUS:-2}"
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$ovmf_code"
    -drive "if=pflash,format=raw,unit=1,file=$vars"
    -drive "file=$disk,if=virtio,format=$format,cache=unsafe"
    -device virtio-rng-pci -no-reboot)
  # KVM when it can run firmware here (kvm_works), TCG otherwise; VM_ACCEL=kvm|tcg decides.
  if [ "${VM_ACCEL:-}" = kvm ] || { [ "${VM_ACCEL:-}" != tcg ] && kvm_works; }; then
    QEMU_ARGS+=(-accel kvm -cpu host)
    QEMU_ACCEL=kvm
  else
    QEMU_ARGS+=(-accel tcg -cpu max)
    QEMU_ACCEL=tcg
  fi
}
