# destination-keen. `make help` lists the targets.

GO      ?= go
BIN     := bin/destination-keen
VERSION := $(shell sed -n 's/^const Version = "\(.*\)"/\1/p' internal/connector/connector.go)
IMAGE_ARCHS := amd64 arm64
# Every timestamp in the image: the last commit's, for reproducible builds.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
IMAGE_SOURCE ?=
# The race detector needs cgo and a C compiler; without them tests still run.
RACE    ?= $(shell [ "$$($(GO) env CGO_ENABLED)" = 1 ] && command -v "$$($(GO) env CC)" >/dev/null 2>&1 && echo -race)
BENCH   ?= .
BENCHTIME ?= 1s
N       ?= 200000
ROUNDS  ?= 3
SOAK_N  ?= 10000000
# bash, for pipefail in test.
SHELL   := bash

.PHONY: help generate build test lint bench soak fuzz mutants image demo emulator clean

# Fuzz targets as package:Target; `make test` runs their seed corpora.
FUZZ_TARGETS := internal/message:FuzzDecode internal/keen:FuzzParseString \
	internal/keen:FuzzCollectionName internal/keen:FuzzAppendEvent internal/keen:FuzzAppendTimestamp \
	internal/jsonx:FuzzValid internal/keen:FuzzConform internal/message:FuzzSkim internal/config:FuzzParse
# A count of executions, not a duration: Go 1.26's fuzzing coordinator can
# fail a timed run at its deadline with a bare "context deadline exceeded"
# and no failing input (golang/go#75804, fixed in Go 1.27); a count has no
# deadline to race. 1000000x is 30-90 s a target on 2 cores.
FUZZTIME ?= 1000000x

help: ## list the targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

generate: ## regenerate gen/ from schemas/ (pinned go-jsonschema)
	$(GO) generate ./gen

build: ## build the static binary into bin/
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags="-s -w" -o $(BIN) ./cmd/destination-keen

test: ## run every test (with the race detector when cgo is available)
	@[ -n "$(RACE)" ] || echo "note: no C compiler for cgo, running without -race"
	@echo "== go test: packages run side by side; a line when each starts and ends, and every 30 s the test each is on; the end-to-end tests (cmd/destination-keen) take most of the time, 2-4 minutes on 2 cores"
	@set -o pipefail; $(GO) test $(RACE) -count=1 -json ./... | $(GO) run ./tools/testview

lint: ## gofmt and go vet
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

bench: build ## micro-benchmarks (bench/latest.txt, for benchstat), then N records end to end at 0, 40 and 100 ms of round trip, against tuned sarama and franz-go
	@mkdir -p bench
	$(GO) test -run '^$$' -bench '$(BENCH)' -benchmem -benchtime $(BENCHTIME) ./... | tee bench/latest.txt
	$(GO) run ./tools/loadgen --records $(N) --rounds $(ROUNDS) --connector $(BIN) --out bench/latest.txt

soak: build ## 10M records (SOAK_N) through the connector: memory, state gaps, goroutines
	@mkdir -p bench
	$(GO) run ./tools/loadgen --soak $(SOAK_N) --connector $(BIN) --out bench/latest.txt

fuzz: ## run every fuzz target for FUZZTIME executions (default 1000000x) each
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

mutants: ## plant each bug of tools/mutants in a copy of the tree and check that its tests catch it (minutes)
	$(GO) run ./tools/mutants

image: ## build the multi-arch OCI image without Docker (bin/image/: OCI layout, OCI archive, docker-archives)
	@for arch in $(IMAGE_ARCHS); do \
		echo "build linux/$$arch"; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags="-s -w" -o bin/linux-$$arch/destination-keen ./cmd/destination-keen || exit 1; \
	done
	$(GO) run ./tools/image $(foreach a,$(IMAGE_ARCHS),--bin $(a)=bin/linux-$(a)/destination-keen) \
		--created $(SOURCE_DATE_EPOCH) --revision "$(REVISION)" --source "$(IMAGE_SOURCE)" --out bin/image

emulator: ## build the local Keen emulator into bin/keenlocal and run it (ARGS="--ready-file ready.json ...")
	$(GO) build -o bin/keenlocal ./tools/keenlocal
	exec bin/keenlocal $(ARGS)

demo: build ## a full sync against the local Keen emulator, showing what landed
	$(GO) run ./tools/demo --connector $(BIN)

clean:
	rm -rf bin bench/latest.txt
