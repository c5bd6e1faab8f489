# ztmesh build, test and demo targets. Run `make help` for the list.

GO      ?= go
BIN     := bin
GOFILES  = $(shell git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*')

.PHONY: all build test test-unit vet fmt fmt-check bench fuzz demo demo-creds clean help

all: build

help:
	@echo "make build       build ztmesh into ./bin"
	@echo "make test        vet, format check and the whole test suite (race detector on)"
	@echo "make bench       benchmarks, each next to its baseline in the same run"
	@echo "make fuzz        run every fuzz target for FUZZTIME (default 20s) each"
	@echo "make demo        the main demo"
	@echo "make demo-creds  the credential walkthrough: issue, verify, revoke, reject"
	@echo "make fmt         gofmt the tree"

build:
	$(GO) build -o $(BIN)/ ./cmd/...

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $(GOFILES)

fmt-check:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# The race detector is on for every package: the ones without goroutines
# cost little, and the ones with them are where it matters.
test: vet fmt-check
	$(GO) test -race -count=1 ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 1 ./...

FUZZTIME ?= 20s
fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

demo: demo-creds

demo-creds: build
	./scripts/demo-credentials.sh

clean:
	rm -rf $(BIN)
