# runtimeclassd. `make demo` shows it working; `make test` runs every test.
SHELL     := /bin/bash
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null)
BRANCH    ?= $(shell git rev-parse --abbrev-ref HEAD 2>/dev/null)
LDFLAGS   := -s -w -X main.version=$(VERSION) -X main.revision=$(REVISION) -X main.branch=$(BRANCH)
BIN       := bin/runtimeclassd
DAEMON    := bin/runtimeclassd-daemon
CACHE     ?= $(or $(RUNTIMECLASSD_CACHE),/var/tmp/runtimeclassd-cache)
export RUNTIMECLASSD_CACHE := $(CACHE)
CONTAINERD2_BIN ?= $(CACHE)/containerd-v2.4.2/containerd
export CONTAINERD2_BIN

.PHONY: all build docs test unit security rules tools-test dashboard e2e measure package package-lint deps lint bench fleet-bench fuzz demo clean

all: build

# Two builds of cmd/runtimeclassd: bin/runtimeclassd, the command people
# and configuration management run, without what only the daemon needs
# (gRPC, Prometheus, D-Bus: -tags runtimeclassd_lite), and
# bin/runtimeclassd-daemon, everything, which the first runs for `run` and
# for apply and revert when they write (installed in
# /usr/libexec/runtimeclassd/). Static and not position-independent: the
# dynamic loader's relocation of a PIE costs the one-shot command 15% of
# its start and the daemon 2 MiB of resident memory (docs/BENCHMARKS.md);
# packaging/lintian-overrides says why. Then the man pages and completions,
# generated from the flag definitions (make docs).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags runtimeclassd_lite -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/runtimeclassd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DAEMON) ./cmd/runtimeclassd
	$(MAKE) --no-print-directory docs

# bin/docs/man/*.8.gz and bin/docs/completions/ (bash, zsh, fish), from the
# command line's own flag definitions, for the host.
docs:
	rm -rf bin/docs
	GOOS= GOARCH= CGO_ENABLED=0 $(GO) run -tags runtimeclassd_lite -ldflags '-X main.version=$(VERSION)' ./cmd/runtimeclassd __docs bin/docs

deps:
	@scripts/deps.sh >/dev/null

# Every test, against real containerd 1.6 and 2.4.2 binaries, the alert
# rules' and the dashboard's tests, and the real-node e2e tests. Missing
# binaries are a failure here, not a skip.
test: deps unit security rules tools-test e2e

unit:
	RUNTIMECLASSD_REQUIRE_REAL=1 $(GO) test -race -count=1 ./...

# The hostile-input suite's counts (docs/SECURITY.md), and a bounded run of
# the policy fuzzer.
security:
	set -o pipefail; RUNTIMECLASSD_REQUIRE_REAL=1 $(GO) test -count=1 -run '^TestHostileInputs$$' -v ./cmd/runtimeclassd | grep -E 'hostile-input suite:|^(ok|FAIL)'
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzPolicy$$' -fuzztime 20s

# The alert rules: promtool's own checks, and a unit test for every alert.
rules:
	promtool check rules packaging/prometheus-alerts.yml
	cd packaging && promtool test rules prometheus-alerts_test.yml

# tools/dashboard is a module of its own (the Grafana SDK and Prometheus'
# PromQL parser stay out of runtimeclassd's go.mod): it generates the
# dashboard and checks every query of the dashboard and the alert rules.
tools-test:
	cd tools/dashboard && GOWORK=off $(GO) test -count=1 ./...
	cd tools/bench && GOWORK=off $(GO) test -count=1 ./...

# Regenerates packaging/grafana-dashboard.json from tools/dashboard.
dashboard:
	cd tools/dashboard && GOWORK=off $(GO) run . > ../../packaging/grafana-dashboard.json.tmp
	mv packaging/grafana-dashboard.json.tmp packaging/grafana-dashboard.json

# lintian on the .deb and rpmlint on the .rpm; explained exceptions only
# (packaging/lintian-overrides, packaging/rpmlint.toml).
package-lint: package
	@scripts/deps.sh lintian rpmlint rpm cpio >/dev/null
	scripts/lint-packages.sh

lint: package-lint
	$(GO) vet ./...
	cd tools/dashboard && GOWORK=off $(GO) vet ./...
	cd tools/bench && GOWORK=off $(GO) vet ./...
	$(GO) vet -tags runtimeclassd_lite ./cmd/runtimeclassd
	@if command -v staticcheck >/dev/null 2>&1 || GOFLAGS= $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2 >/dev/null 2>&1; then \
		PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...; \
	else echo "staticcheck could not be installed; ran go vet only"; fi
	@test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed"; exit 1; }

# Real nodes: systemd + D-Bus + containerd under systemd-nspawn (root).
e2e: package
	@scripts/deps.sh systemd-container debootstrap busybox-static rpm cpio prometheus >/dev/null
	scripts/e2e-rootfs.sh
	scripts/kube-bins.sh >/dev/null
	RUNTIMECLASSD_DEB=$$(ls $(CURDIR)/dist/*.deb) RUNTIMECLASSD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -count=1 -timeout 15m -v ./test/e2e 2>&1 | grep -E '^(=== RUN|\s*---|\s+\S+_test.go|ok|FAIL|PASS)' ; exit $${PIPESTATUS[0]}

# The figures in the issue notes: CRI downtime vs a bare restart, idle
# RSS and CPU, and policy-write-to-config latency.
measure: package
	scripts/e2e-rootfs.sh
	RUNTIMECLASSD_DEB=$$(ls $(CURDIR)/dist/*.deb) RUNTIMECLASSD_MEASURE=1 RUNTIMECLASSD_BIN=$(CURDIR)/$(BIN) $(GO) test -tags e2e -count=1 -timeout 20m -v -run 'TestMeasure' ./test/e2e 2>&1 | grep -E '^\s*(---|\S+_test.go)|^(ok|FAIL)'

# dist/*.deb and dist/*.rpm, built with nfpm.
package: deps build
	scripts/package.sh

# Every figure of issue 12 against its peer and goal, in one run: the
# one-shot command against nvidia-ctk and containerd's config dump, scale
# fits, and the reaction and idle figures of real nodes (make measure's
# TestMeasureReaction and TestMeasureIdle). Prints the table and rewrites
# docs/BENCHMARKS.md's results and plots. Then the fleet simulation in full
# (fleet-bench, about 15 minutes more).
bench: package
	scripts/bench.sh
	$(MAKE) fleet-bench

# The fleet simulation in full (make test runs it with 200 agents): 1,000
# node agents with the project's budget code against a real kube-apiserver
# and etcd, K = 1, 10 and 50, clean and with 10% killed holding a slot. The
# figures go to dist/fleet-sim.json, the table to stdout (docs/FLEET.md),
# the plot to docs/fleet-rollout.png (tools/fleetsim, a module of its own).
fleet-bench:
	scripts/kube-bins.sh >/dev/null
	mkdir -p dist
	set -o pipefail; RUNTIMECLASSD_FLEET_AGENTS=1000 RUNTIMECLASSD_FLEET_OUT=$(CURDIR)/dist/fleet-sim.json $(GO) test -tags e2e -count=1 -timeout 60m -v -run '^TestFleetSimulation$$' ./test/e2e 2>&1 | grep -E '^\s*(---|\S+_test.go)|^(ok|FAIL)'
	cd tools/fleetsim && GOWORK=off $(GO) run . -in ../../dist/fleet-sim.json -png ../../docs/fleet-rollout.png

fuzz:
	$(GO) test ./tomlpatch -run '^$$' -fuzz FuzzPlaceSubtable -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./ctrdconfig -run '^$$' -fuzz FuzzPatch -fuzztime 60s -fuzzminimizetime 5s
	$(GO) test ./policy -run '^$$' -fuzz '^FuzzPolicy$$' -fuzztime 5m -fuzzminimizetime 5s

# The crash-consistency suite in full: a kill at every step of six apply and
# rollback scenarios, and enough kills at random moments for over 2,000 runs
# (make test runs it with fewer random kills).
fault:
	RUNTIMECLASSD_CRASH_RANDOM=300 $(GO) test -count=1 -timeout 30m -run 'TestCrashConsistency' -v ./daemon 2>&1 | grep -E 'crash suite|steps, each|^(ok|FAIL)|^\s+(---|\S+_test.go)'; exit $${PIPESTATUS[0]}

demo: deps build
	scripts/demo.sh

clean:
	rm -rf bin dist
