# ztmesh build, test and demo targets. Run `make help` for the list.

SHELL   := /bin/bash
GO      ?= go
BIN     := bin
GOFILES  = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

# The build stamp: `ztmesh version` and `ztmeshd --version` print it. The
# date is the commit's, so that two builds of one commit are the same.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
DATE    ?= $(shell git log -1 --format=%cI 2>/dev/null)
PKG_BI  := github.com/ztmesh/ztmesh/internal/buildinfo
LDFLAGS := -X $(PKG_BI).version=$(VERSION) -X $(PKG_BI).commit=$(COMMIT) -X $(PKG_BI).date=$(DATE)

.PHONY: all build test test-unit test-full test-sim test-integration test-tpm test-interop dist test-dist vet lint fmt fmt-check bench fuzz sim sim-quick sim-large demo demo-creds clean help

all: build

help:
	@echo "make build       build ztmesh into ./bin"
	@echo "make test        vet, format check, unit tests (race detector on) and multi-process tests"
	@echo "make test-unit   the fast in-process suite only (go test -race -short ./...)"
	@echo "make test-sim    the simulation package's tests (small meshes, every scenario kind)"
	@echo "make test-tpm    attestation against the go-tpm-tools TPM simulator (installs libssl-dev)"
	@echo "make test-interop credentials both ways with did-jwt-vc (Node.js + npm ci of interop/)"
	@echo "make bench       benchmarks, each next to its baseline in the same run, then a ratio table"
	@echo "make sim         the standard simulation set (~30 min): writes docs/RESULTS.md and docs/plots"
	@echo "make sim-quick   the reduced set CI runs (attack table included): writes sim-out/"
	@echo "make sim-large   the fleet at 5,000 nodes (~11 min, ~13 GB): writes docs/fleet-5000/"
	@echo "make fuzz        run every fuzz target for FUZZTIME (default 20s) each"
	@echo "make demo        a local mesh of ztmeshd daemons: verify, refuse, revoke"
	@echo "make demo-creds  the credential walkthrough: issue, verify, revoke, reject"
	@echo "make dist        static release archives (linux amd64/arm64), SBOMs and SHA256SUMS in dist/out"
	@echo "make test-dist   check what make dist ships and the systemd unit (installs file, systemd)"
	@echo "make lint        staticcheck $(STATICCHECK_VERSION) on every package (CI runs it after make test)"
	@echo "make fmt         gofmt the tree"

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

# staticcheck, pinned, fetched through the Go module proxy by go run (and
# cached by it): nothing to install first, the same version everywhere.
# Deliberate exceptions are //lint:ignore comments that give the reason.
STATICCHECK_VERSION ?= v0.8.2
lint:
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

fmt:
	gofmt -w $(GOFILES)

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The race detector is on for every package: the ones without goroutines
# cost little, and the ones with them are where it matters. Multi-process
# tests (real ztmeshd daemons) carry the integration build tag.
test: vet fmt-check test-full test-sim test-integration

# The fast suite: -short skips the tests that wait for real time to pass.
test-unit:
	$(GO) test -race -short -count=1 ./...

test-full:
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list ./... | grep -v /simulations)

# The simulation tests start dozens of nodes each; under the race detector
# they run five times slower and starve their own timers, so they run
# without it (node and pubsub, which they drive, are race-tested above).
test-sim:
	$(GO) test -count=1 -timeout 20m ./simulations

test-integration:
	$(GO) vet -tags integration ./cmd/ztmeshd
	$(GO) test -tags integration -count=1 ./cmd/ztmeshd

# Cross-implementation tests against did-jwt-vc (Node.js 20 and npm; the
# packages come from interop/package-lock.json).
test-interop:
	cd interop && npm ci --no-audit --no-fund --loglevel=error
	$(GO) vet -tags interop ./interop
	$(GO) test -tags interop -count=1 ./interop

dist:
	VERSION=$(VERSION) scripts/dist.sh $(VERSION) $(COMMIT) $(DATE) dist/out

test-dist: dist
	@command -v systemd-analyze >/dev/null && command -v file >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd file; }
	scripts/test-dist.sh dist/out $(VERSION)

# The TPM simulator is C (cgo, OpenSSL); the default build stays cgo-free.
test-tpm:
	@dpkg -s libssl-dev >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq libssl-dev; }
	CGO_ENABLED=1 $(GO) test -tags tpmsim -count=1 ./attest

# Each benchmark prints its own figures; benchsum then sets each ztmesh
# figure against its same-run baseline in one table.
bench:
	@mkdir -p $(BIN); set -o pipefail; $(GO) test -run '^$$' -bench . -benchmem -count 1 -timeout 60m ./... | tee $(BIN)/bench.out
	@$(GO) run ./internal/benchsum < $(BIN)/bench.out

# The standard set of simulations (simulations/scenarios) at full size:
# the report with its plots lands in docs/, committed as the latest results.
SIMOUT ?= docs
sim:
	$(GO) run ./cmd/ztmesh-sim run --out $(SIMOUT) simulations/scenarios

sim-quick:
	$(GO) run ./cmd/ztmesh-sim run --quick --out sim-out simulations/scenarios

# The sizes too large for the standard set (simulations/large): 5,000 nodes
# in one process need more heap than the default limit of two thirds of a
# 24 GB machine.
sim-large:
	GOMEMLIMIT=$${GOMEMLIMIT:-20GiB} $(GO) run ./cmd/ztmesh-sim run --timeout 90m --out docs/fleet-5000 simulations/large

FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

demo: build
	./scripts/demo-mesh.sh

demo-creds: build
	./scripts/demo-credentials.sh

clean:
	rm -rf $(BIN)
