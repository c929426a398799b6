# linux/arm64 (Raspberry Pi OS bookworm / Debian 12 arm64) cross build on an
# x86_64 Debian 12 machine. Included from the Makefile (`include scripts/arm64.mk`,
# after VERSION is set). The work is in scripts/build-arm64.sh; see
# docs/edge-devices.md for what it installs and the on-device layout.

.PHONY: build-arm64 test-arm64 smoke-arm64 dist-arm64

build-arm64: ## cross-compile bin/edged-linux-arm64 (toolchain, arm64 sysroot, TF library: cached)
	@VERSION="$(VERSION)" bash scripts/build-arm64.sh build

test-arm64: setup build-arm64 ## pure-Go tests and a smoke test of the arm64 binary under qemu-aarch64
	@VERSION="$(VERSION)" bash scripts/build-arm64.sh test

smoke-arm64: setup build-arm64 ## only the smoke test of bin/edged-linux-arm64 under qemu-aarch64
	@VERSION="$(VERSION)" bash scripts/build-arm64.sh smoke

dist-arm64: setup build-arm64 ## bin/edged-VERSION-linux-arm64.tar.gz: bin/, lib/edged/, share/edged/models/
	@VERSION="$(VERSION)" bash scripts/build-arm64.sh dist
