# RSwarm. `make help` lists the targets.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin:$(shell go env GOPATH 2>/dev/null || echo $$HOME/go)/bin
GO      ?= go
BIN     := bin/rswarm
TOOLS   := $(CURDIR)/bin/tools
ARGS    ?=
TESTFLAGS ?= -count=1 -timeout 30m

.PHONY: help setup build up test test-short check swagger swagger-check compose-check bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup: ## install and start what RSwarm needs (Debian packages, dockerd, the local image)
	@bash scripts/setup.sh

build: ## build bin/rswarm (stamped with its commit, for rswarm version, even where GOFLAGS turns that off)
	$(GO) build -buildvcs=auto -o $(BIN) ./cmd/rswarm

up: setup build ## run the whole system on this host (rswarm up); ARGS="--strategy first-fit" passes flags
	$(BIN) up $(ARGS)

test: setup ## run the whole test suite against the real parts (Docker, ZeroMQ, SQLite, MongoDB wire)
	$(GO) test $(TESTFLAGS) ./...

test-short: ## the fast loop: pure tests and in-memory stand-ins only
	$(GO) test -short -count=1 ./...

check: ## gofmt, go mod tidy, go vet, staticcheck, docker-compose config, Swagger docs up to date
	@$(GO) mod tidy -diff >/dev/null 2>&1 || { echo "go.mod/go.sum are not tidy: run go mod tidy and commit the result"; $(GO) mod tidy -diff; exit 1; }
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	@test -x $(TOOLS)/staticcheck || GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@v0.8.2
	$(TOOLS)/staticcheck ./...
	@$(MAKE) --no-print-directory compose-check
	@$(MAKE) --no-print-directory swagger-check

swagger: ## regenerate swagger/ (frontend, globalmanager) from the handlers' swag annotations
	TOOLS=$(TOOLS) bash scripts/swagger.sh swagger

swagger-check: ## fail if swagger/ differs from what the annotations generate
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	TOOLS=$(TOOLS) bash scripts/swagger.sh "$$tmp" || exit 1; \
	if ! diff -ru swagger "$$tmp"; then echo "swagger/ is out of date: run make swagger and commit the result"; exit 1; fi; \
	echo "swagger/ is up to date"

compose-check: ## validate docker-compose.yml
	RSWARM_API_TOKEN=compose-check docker-compose -f docker-compose.yml config -q
	@if env -u RSWARM_API_TOKEN docker-compose -f docker-compose.yml config -q 2>/dev/null; then echo "docker-compose.yml must refuse to start without RSWARM_API_TOKEN"; exit 1; fi

bench: build ## placement benchmark at 10,000 workers (figures in the README)
	$(BIN) bench placement --workers 10000 --cores 64 --tasks 1000000 --strategy best-fit

clean: ## remove build output
	rm -rf bin
