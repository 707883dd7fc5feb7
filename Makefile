# pipetel: the two commands a newcomer needs are
#   go run ./cmd/pipetel dev     the whole pipeline on an embedded broker
#   make test                    the suite against real Kafka, Elasticsearch and Prometheus

GO       ?= go
SERVICES := deploy/local/services
PKGS     := ./...

.PHONY: all build vet test test-embedded services services-down fuzz bench dev image

all: build vet

build:
	$(GO) build ./...

vet:
	$(GO) vet ./...
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi

# Starts the services, runs the whole suite with -race against them, and
# stops them, also when a test fails. Under CI=true a service that does not
# come up fails the run.
test:
	deploy/local/test-with-services $(PKGS)

# The suite on the embedded broker only: no Java, no Prometheus server.
test-embedded: vet
	$(GO) test -race -count=1 $(PKGS)

services:
	$(SERVICES) up all

services-down:
	$(SERVICES) down all

FUZZTIME ?= 30s
fuzz:
	$(GO) test -run='^$$' -fuzz=FuzzDecode -fuzztime=$(FUZZTIME) ./schemas/

bench:
	$(GO) test -run='^$$' -bench=. -benchmem ./schemas/ ./telemetry/ ./state/ ./processor/

dev:
	$(GO) run ./cmd/pipetel dev

# The container image (buildah, FROM scratch), checked by running
# `pipetel version` inside it.
image:
	deploy/image/build pipetel:latest
