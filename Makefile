# Frontdoor: an Envoy front door for kube-apiserver. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The e2e suite starts etcd, three kube-apiservers, frontdoor and Envoy; keep
# it bounded well inside CI's 90 minutes.
TEST_TIMEOUT ?= 25m
CONTROLLER_GEN := $(GO) tool -modfile=tools/go.mod controller-gen

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## install envoy, etcd, kube-apiserver, kubectl into bin/ (cached by version)
	@bash tools/install.sh

.PHONY: build
build: ## build bin/frontdoor
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/frontdoor ./cmd/frontdoor

.PHONY: up
up: tools build ## run the sandbox: etcd, 3 kube-apiservers, frontdoor and Envoy on 127.0.0.1 (Ctrl-C stops it)
	$(GO) run ./tests/sandbox/up

.PHONY: test
test: tools build ## unit tests and the end-to-end suite against real Envoy, etcd and kube-apiservers, in both request-service modes
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	FRONTDOOR_E2E_REQUEST_SERVICE=ExtProc $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./tests/e2e

.PHONY: test-extproc
test-extproc: tools build ## the end-to-end suite with the sandbox UpstreamCluster on spec.requestService: ExtProc
	FRONTDOOR_E2E_REQUEST_SERVICE=ExtProc $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./tests/e2e

.PHONY: unit
unit: ## unit tests only (no real components)
	$(GO) test -count=1 $$($(GO) list ./... | grep -v /tests/)

.PHONY: generate
generate: ## regenerate deepcopy and CRD YAML with controller-gen
	$(CONTROLLER_GEN) object:headerFile=tools/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:artifacts:config=manifests/crds

.PHONY: golden
golden: ## rewrite the translator's golden files
	$(GO) test ./translator/... -update

.PHONY: verify
verify: generate golden ## regenerate everything and fail if the tree changed
	$(GO) mod tidy
	cd tools && $(GO) mod tidy
	cd tools/etcd && $(GO) mod tidy
	@git diff --exit-code -- . || { echo "generated files, goldens or go.mod are stale: run make verify and commit the result"; exit 1; }

.PHONY: lint
lint: ## go vet and gofmt
	$(GO) vet ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); [ -z "$$out" ] || { echo "gofmt needed:"; echo "$$out"; exit 1; }

.PHONY: clean
clean: ## remove built binaries and sandbox state (not the cached bin/ components)
	rm -rf $(BIN)/frontdoor _sandbox _bench
