# edged: `make help` lists the targets. Every target installs what it needs
# first (scripts/setup.sh is idempotent and quick when everything is there).

SHELL := /bin/bash
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)
PREFIX ?= /usr/local
GO ?= go
ENV := source $(CURDIR)/.deps/env.sh &&
LDFLAGS := -X main.version=$(VERSION)
# Benchmarks: `make bench BENCH=Embed` narrows them.
BENCH ?= .

# linux/arm64 cross build and its qemu tests (build-arm64, test-arm64, smoke-arm64, dist-arm64).
include scripts/arm64.mk

.PHONY: help setup build test test-short test-browser bench demo install uninstall fmt vet clean soak

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

setup: ## install Debian packages, the TensorFlow C library, models and media (idempotent)
	@bash scripts/setup.sh

build: setup ## build bin/edged
	@$(ENV) $(GO) build -ldflags "$(LDFLAGS)" -o bin/edged ./cmd/edged
	@echo "built bin/edged"

fmt: ## check gofmt
	@bad=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null; git ls-files -o --exclude-standard '*.go' 2>/dev/null)); \
	  if [ -n "$$bad" ]; then echo "gofmt needed:"; echo "$$bad"; exit 1; fi

vet: setup ## go vet
	@$(ENV) $(GO) vet ./...

test: setup fmt vet build ## gofmt, go vet, all tests, short fuzzing, arm64 smoke test under qemu (the README's test command)
	@$(ENV) EDGED_BIN=$(CURDIR)/bin/edged $(GO) test -count=1 -timeout 40m ./... 2>&1 | tee .deps/test.log; exit $${PIPESTATUS[0]}
	@$(ENV) bash scripts/fuzz-short.sh
	@# The linux/arm64 build and its qemu smoke test (version + a golden embedding), on x86_64 hosts.
	@if [ "$$(uname -m)" = x86_64 ]; then $(MAKE) --no-print-directory smoke-arm64; fi

test-browser: ## the web page in a real browser (installs chromium and Playwright), screenshots kept in EDGED_KEEP_SCREENSHOTS
	@EDGED_BROWSER_TESTS=1 bash scripts/setup.sh
	@$(ENV) $(GO) test -count=1 -run TestBrowser -v ./web/backend

test-short: setup ## unit tests only (-short)
	@$(ENV) $(GO) test -short ./...

bench: build ## benchmarks (go test -bench) and `edged bench`
	@$(ENV) $(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -count 1 -timeout 60m ./... 2>&1 | tee .deps/bench.log

demo: build ## run edged on its sample video with the embedded broker and print the events
	@$(ENV) bash scripts/demo.sh

install: build ## install the binary, TF library, models and the systemd unit (as root)
	@bash systemd/install.sh install "$(PREFIX)"

uninstall: ## remove what `make install` put in place (keeps the data directory)
	@bash systemd/install.sh uninstall "$(PREFIX)"

clean: ## remove build outputs (keeps .deps and the download cache)
	rm -rf bin

soak: setup ## fault-injection soak: 100 x kill -9 during MQTT enrolls, events and fine-tunes, broker outage, corrupt logs
	@$(ENV) EDGED_SOAK_KILLS=$${EDGED_SOAK_KILLS:-100} $(GO) test -count=1 -timeout 30m -v -run 'TestKillDuring|TestBrokerDown|TestCorruptLogs' ./internal/faultinject 2>&1 | grep -v '^=== RUN' | tee .deps/soak.log; exit $${PIPESTATUS[0]}
