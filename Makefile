# Hyphae's front door. Every target installs what it needs first (scripts/deps.sh).
#
#   make run     one node with every service that exists, in the foreground
#   make test    the whole test suite (lint, fuzz smoke, unit + cluster tests)
#   make bench   benchmarks against the anchors (results in bench/results, docs/benchmarks.md)
#   make fuzz    run every fuzz target for FUZZ_SECONDS each

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Build caches live outside the clone so that a warm CI run reuses them (DEVELOPERS.md).
export CARGO_TARGET_DIR ?= /var/cache/hyphae/target
export CARGO_TERM_COLOR ?= auto
FUZZ_SECONDS ?= 20
RUN_DIR ?= /var/tmp/hyphae-dev
HYPHAE := $(CARGO_TARGET_DIR)/debug/hyphae

.PHONY: deps build run test lint unit-and-cluster fuzz fuzz-smoke bench clean-state

deps:
	@scripts/deps.sh

build: deps
	cargo build -p hyphae

run: build
	@scripts/run-node.sh "$(HYPHAE)" "$(RUN_DIR)"

lint: deps
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

fuzz-smoke:
	@scripts/deps.sh fuzz
	@scripts/fuzz.sh $(FUZZ_SECONDS)

fuzz: fuzz-smoke

test: lint fuzz-smoke
	cargo nextest run --workspace --profile ci --no-tests=fail

bench: deps
	cargo build --release -p hyphae-bench -p hyphae
	@scripts/bench.sh

clean-state:
	rm -rf "$(RUN_DIR)"
