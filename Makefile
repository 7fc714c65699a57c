# Bourse build, test and run targets. `make help` lists them.
SHELL := /bin/bash
GO ?= go
BIN := bin/bourse
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X github.com/bourse-net/bourse/cli.Version=$(VERSION)
# Packages whose tests exercise concurrency run with the race detector.
RACE_PKGS := ./p2p/... ./chain/... ./market/... ./worker/... ./node/... ./testnet/... ./gateway/...
PLAIN_PKGS := ./codec/... ./wallet/... ./cli/... ./cmd/... ./deploy/... ./internal/latency/...
# End-to-end tests build the binary and drive real daemons as processes.
E2E_PKGS := ./e2e/...
FUZZTIME ?= 5s
TESTNET_DIR ?= $(CURDIR)/.testnet

.PHONY: help build test test-long bench fuzz examples testnet testnet-down lint clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/bourse
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/bourse

test: ## vet, unit tests (-race where there is concurrency)
	$(GO) vet ./...
	$(GO) test -count=1 $(PLAIN_PKGS)
	$(GO) test -count=1 -race -timeout 15m $$($(GO) list $(RACE_PKGS) 2>/dev/null)
	$(GO) test -count=1 -timeout 10m $(E2E_PKGS)
	# The consensus simulation again without -race, where it affords 250 seeds,
	# and the chain's tests at the scale of 65,536 records (they skip under -race).
	$(GO) test -count=1 -run 'TestSim' ./chain/consensus/ ./chain/driver/
	$(GO) test -count=1 -run 'DecoderLimit|OneDeadlineSecond' ./chain/
	$(GO) test -count=1 -run 'TestBlocksOutgrowNetwork256MaximalBids' ./chain/driver/
	# The dashboard in headless Chromium (it skips under -race, and without a browser).
	$(GO) test -count=1 -run 'TestDashboardInHeadlessChromium' ./node/

test-long: ## slow fault, simulation and soak tests
	BOURSE_LONG=1 $(GO) test -count=1 -timeout 60m -run 'Sim|Long|Soak|Fault' ./...

bench: ## benchmarks (figures go in the closing notes and README); BOURSE_BENCH_FULL=1 for the full scaling runs
	$(GO) test -run '^$$' -bench . -benchmem -timeout 60m ./...
	# Services side by side with wrk: direct, nginx, the gateway (installs wrk and nginx if missing).
	./scripts/svc-bench.sh

fuzz: ## a short run of every fuzz target
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz' || true); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

examples: ## build every example job to WebAssembly
	@set -e; for d in examples/*/; do \
	  n=$$(basename $$d); \
	  if [ -f $$d/main.go ] && [ ! -f $$d/Dockerfile ]; then \
	    echo "examples/$$n/$$n.wasm"; GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -o $$d/$$n.wasm ./$$d; \
	  fi; \
	done

testnet: build examples ## start a 4-node local network and run the hello job end to end
	./scripts/testnet-demo.sh $(BIN) $(TESTNET_DIR)

testnet-down: ## stop the local network started by make testnet
	$(BIN) testnet down --dir $(TESTNET_DIR)

lint: ## gofmt check and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf bin
