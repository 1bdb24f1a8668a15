# Hyphae's front door. Every target installs what it needs first (scripts/deps.sh).
#
#   make run     one node with every service that exists, in the foreground
#   make test    the whole test suite (lint, fuzz smoke, unit + cluster tests)
#   make bench   benchmarks against the anchors (results in bench/results, docs/benchmarks.md)
#   make fuzz    run every fuzz target for FUZZ_SECONDS each
#   make image   the x86_64 UEFI appliance image: out/hyphae-x86_64.img.xz + .sha256
#   make vm      boot that image in QEMU (OVMF, KVM when present), serial console here
#   make image-test   build the image and boot-test it (tests/image/boot-test.sh)
#   make pxe     the PXE set (kernel, initrd carrying the root, iPXE script): out/pxe/
#   make pxe-serve    serve out/pxe over HTTP for a LAN's PXE boot (PXE_PORT, default 8069)
#   make pxe-test     build the PXE set and network-boot it in QEMU (tests/image/pxe-boot-test.sh)
#   make image-rpi    the Raspberry Pi 3/4 image: out/hyphae-rpi-arm64.img.xz + .sha256
#   make image-rpi-test   build it (debug binary), check its partitions and boot files, boot
#                     it under qemu-system-aarch64 -M virt (TCG; slow)
#   make vm-cluster N=3   boot N VMs of the x86 image on one virtual LAN (they form a mesh)
#   make vm-cluster-test N=3   those VMs form one mesh and share a file (make test runs N=3)
#   make image-ci     what `make test` runs of the above (see the target)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Build caches live outside the clone so that a warm CI run reuses them (DEVELOPERS.md).
export CARGO_TARGET_DIR ?= /var/cache/hyphae/target
export CARGO_TERM_COLOR ?= auto
FUZZ_SECONDS ?= 20
# `make test` runs each fuzz target for this long: a smoke run (a few hundred thousand inputs
# each, and every corpus entry replayed) that keeps the warm suite under 30 min on 2 cores;
# `make fuzz` fuzzes for FUZZ_SECONDS.
FUZZ_SMOKE_SECONDS ?= 10
RUN_DIR ?= /var/tmp/hyphae-dev
HYPHAE := $(CARGO_TARGET_DIR)/debug/hyphae
IMAGE_OUT ?= out
IMAGE := $(IMAGE_OUT)/hyphae-x86_64.img
RPI_IMAGE := $(IMAGE_OUT)/hyphae-rpi-arm64.img
# The cargo profile of the binary in the images: release for images people flash; CI builds
# them with the debug binary `make test` has already built (image-ci).
IMAGE_PROFILE ?= release
IMAGE_PROFILE_DIR := $(if $(filter dev,$(IMAGE_PROFILE)),debug,$(IMAGE_PROFILE))
# xz level of the images people flash: -6 brings the x86 image under 200 MB (-1, the build
# scripts' own default for quick local builds, leaves it at ≈ 223 MB) for ≈ 5.5 min of xz on 2
# cores (docs/benchmarks.md). CI's images are not compressed (HYPHAE_IMAGE_XZ=0).
export HYPHAE_XZ_LEVEL ?= -6
N ?= 3
PXE_PORT ?= 8069
IMAGE_TEST_FILTER := $(if $(filter 1,$(HYPHAE_SKIP_IMAGE)),-E 'not binary(image_appliance)',)

.PHONY: deps build run test lint unit-and-cluster fuzz fuzz-smoke bench clean-state \
	image-deps image-deps-rpi image vm image-test kernel-config-test pxe pxe-serve pxe-test \
	image-rpi image-rpi-test vm-cluster vm-cluster-test image-ci

deps:
	@scripts/deps.sh

build: deps
	cargo build -p hyphae

run: build
	@scripts/run-node.sh "$(HYPHAE)" "$(RUN_DIR)"

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@scripts/check-units.sh

# Debian 12's kernel (and a broken config) against kernel-config/hyphae.config.
kernel-config-test: deps
	@tests/kernel-config/run.sh

fuzz-smoke:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz: fuzz-smoke

# The image boot tests (tests/image_appliance.rs) need the image tools (image-deps); with
# HYPHAE_SKIP_IMAGE=1 they are left out of the run (not counted as passed).
# The Raspberry Pi test's inputs (the aarch64 cross build, the emulated arm64 root) are made in
# the background while lint, the fuzz smoke and the test build run, and finished before any
# test starts: built beside the cluster tests they loaded the 2 cores enough to fail them. If
# that preparation fails, the Pi test itself tries again and reports why.
RPI_PREP_LOG ?= /var/cache/hyphae/image-ci/rpi-prepare.log
test: image-deps image-deps-rpi
	@prep=; \
	if [ "$(HYPHAE_SKIP_IMAGE)" != 1 ]; then \
	  mkdir -p "$$(dirname "$(RPI_PREP_LOG)")"; \
	  echo "test: preparing the Raspberry Pi test image in the background (log: $(RPI_PREP_LOG))"; \
	  setsid tests/image/ci-artifacts.sh rpi >"$(RPI_PREP_LOG)" 2>&1 & prep=$$!; \
	  trap '[ -z "$$prep" ] || kill -- -$$prep 2>/dev/null || true' EXIT; \
	fi; \
	$(MAKE) --no-print-directory lint kernel-config-test fuzz-smoke FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS); \
	cargo nextest run --workspace --profile ci --no-run $(IMAGE_TEST_FILTER); \
	if [ -n "$$prep" ]; then \
	  echo "test: waiting for the Raspberry Pi test image"; \
	  if wait "$$prep"; then echo "test: Raspberry Pi test image ready"; \
	  else echo "test: preparing the Raspberry Pi test image failed (tail of $(RPI_PREP_LOG) below); its test will retry"; \
	    tail -n 20 "$(RPI_PREP_LOG)"; fi; \
	  prep=; \
	fi
	cargo nextest run --workspace --profile ci --no-tests=fail $(IMAGE_TEST_FILTER)

bench: deps
	cargo build --release -p hyphae-bench -p hyphae
	@scripts/bench.sh

image-deps: deps
	@scripts/image-deps.sh

image-deps-rpi: deps
	@scripts/image-deps.sh rpi

image: image-deps
	cargo build --profile $(IMAGE_PROFILE) -p hyphae --bin hyphae
	image/build-x86_64.sh "$(CARGO_TARGET_DIR)/$(IMAGE_PROFILE_DIR)/hyphae" "$(IMAGE_OUT)"

# Boots the last built image (building it first when there is none).
vm: image-deps
	@test -f "$(IMAGE)" || $(MAKE) image
	image/vm.sh "$(IMAGE)"

image-test: image
	tests/image/boot-test.sh "$(IMAGE)"

clean-state:
	rm -rf "$(RUN_DIR)"

# The PXE set reuses the image's root file system (built by `make image`).
pxe: image
	image/build-pxe.sh "$(IMAGE_OUT)"

pxe-serve:
	@test -f "$(IMAGE_OUT)/pxe/boot.ipxe" || $(MAKE) pxe
	@echo "Point your DHCP server's boot file at http://<this host>:$(PXE_PORT)/boot.ipxe"
	@echo "(or chain-load it from iPXE). First-boot settings: set hyphae_args in a site script."
	python3 -m http.server --directory "$(IMAGE_OUT)/pxe" "$(PXE_PORT)"

pxe-test: pxe
	tests/image/pxe-boot-test.sh "$(IMAGE_OUT)/pxe"

# The Raspberry Pi image: the binary cross-compiled for aarch64 with Debian's rustc-web.
image-rpi: image-deps
	@scripts/image-deps.sh rpi
	@# The emulated arm64 root file system builds while the binary cross-compiles; then the
	@# binary goes into that root and the disk is assembled.
	image/build-rpi-arm64.sh --rootfs-only "$(IMAGE_OUT)" & rootfs=$$!; \
	bin=$$(image/cross-build-aarch64.sh $(IMAGE_PROFILE)) || { kill $$rootfs; exit 1; }; \
	wait $$rootfs; \
	HYPHAE_IMAGE_REUSE_ROOTFS=1 image/build-rpi-arm64.sh "$$bin" "$(IMAGE_OUT)"

# The test image: the debug binary at opt-level 0 (HYPHAE_CROSS_QUICK=1: a cold aarch64 build
# of the dev profile's opt-level 2 dependencies takes hours on a 2-core machine), no xz (the
# tests read the raw image).
image-rpi-test: image-deps
	HYPHAE_IMAGE_XZ=0 HYPHAE_CROSS_QUICK=1 $(MAKE) --no-print-directory image-rpi IMAGE_PROFILE=dev
	tests/image/rpi-image-test.sh "$(RPI_IMAGE)"
	tests/image/rpi-boot-test.sh "$(RPI_IMAGE)"

# N VMs of the last built x86 image on one QEMU multicast network (tests/image/vm-cluster-test.sh
# drives it); the serial consoles go to $(IMAGE_OUT)/vm-cluster/vmK/console.log.
vm-cluster: image-deps
	@test -f "$(IMAGE)" || $(MAKE) image
	image/vm-cluster.sh "$(IMAGE)" $(N)

# The image tests `make test` runs, alone (tests/image_appliance.rs; timings in
# docs/benchmarks.md, "Image boot"): the x86 image with the debug binary the test suite builds
# anyway, its boot test (UEFI, first and second boot, data partition growth, dashboard), three
# VMs of it forming a mesh, the PXE set and its diskless boot, and the Raspberry Pi image (its
# boot files, its arm64 root under qemu-system-aarch64). `HYPHAE_SKIP_IMAGE=1 make test` leaves them out (a machine without
# root, or a quick local run).
image-ci: image-deps
	cargo nextest run -p hyphae --test image_appliance --profile ci

# Three (N) VMs of the image (built from the debug binary, as image-ci) form one mesh, admit each
# other and share a file (tests/image/vm-cluster-test.sh). `make test` runs it with N=3
# (tests/image_appliance.rs, alone on the machine: ≈ 3 min under TCG on 2 cores).
vm-cluster-test: image-deps
	cargo build -p hyphae --bin hyphae
	tests/image/vm-cluster-test.sh "$$(tests/image/ci-artifacts.sh x86 $(HYPHAE))" $(N)
