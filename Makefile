# thinblk — build, test, fuzz, bench.
#   make build   -> bin/thinblk
#   make test    -> peers installed, gofmt, go vet, go test -race (the CI gate)
#   make fuzz    -> every fuzz target for FUZZTIME (default 60s)
#   make bench   -> bench/*.sh against the peers

GO       ?= go
FUZZTIME ?= 60s
TESTFLAGS ?= -race -count=1 -timeout 25m

.PHONY: all build test peers fmt-check vet unit fuzz bench clean

all: build

build:
	$(GO) build -o bin/thinblk ./cmd/thinblk

test: peers fmt-check vet unit

peers:
	scripts/install-peers.sh
	scripts/install-e2e.sh

fmt-check:
	@out=$$(gofmt -l $$(find . -name '*.go' -not -path './.git/*')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

unit:
	$(GO) test $(TESTFLAGS) ./...

fuzz:
	FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

bench:
	scripts/bench.sh

clean:
	rm -rf bin
