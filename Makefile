# Frontdoor: an Envoy front door for kube-apiserver. `make help` lists targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

GO       ?= go
BIN      := $(CURDIR)/bin
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# The e2e suite starts etcd, three kube-apiservers, frontdoor and Envoy; keep
# it bounded well inside CI's 90 minutes.
TEST_TIMEOUT ?= 25m
# make up: where frontdoor reads its config (kubernetes: UpstreamClusters in
# the sandbox cluster; files: --config-dir _sandbox/config).
MODE ?= kubernetes
# make up: how the gateway forwards identities to the replicas (the sandbox
# UpstreamCluster's spec.clientConfig.identityForwarding).
IDENTITY_FORWARDING ?= Impersonation
# make up: how many Envoys run on the one frontdoor serve (a fleet on one host).
GATEWAYS ?= 1
# make up GLOBAL_RATELIMIT=true also runs Redis and the ratelimit service.
GLOBAL_RATELIMIT ?= false
CONTROLLER_GEN := $(GO) tool -modfile=tools/go.mod controller-gen
GOLANGCI_LINT  := $(GO) tool -modfile=$(CURDIR)/tools/lint/go.mod golangci-lint
# tests/ is its own Go module (harness, e2e suites, benchmarks), so its
# dependencies stay out of the product go.mod; run its packages through it.
TESTS_GO := $(GO) -C tests

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## install envoy, etcd, kube-apiserver, kubectl, helm, ratelimit, redis-server into bin/ (cached by version)
	@bash tools/install.sh

.PHONY: build
build: ## build bin/frontdoor and bin/libfrontdoor.so (the in-process request service, an Envoy dynamic module)
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN)/frontdoor ./cmd/frontdoor
	CGO_ENABLED=1 $(GO) build -buildmode=c-shared -o $(BIN)/libfrontdoor.so ./cmd/frontdoor-module
	@rm -f $(BIN)/libfrontdoor.h

# make image: the frontdoor and Envoy OCI images, built FROM scratch with
# podman (tools/install.sh podman) and saved as OCI archives in _images/
# (README "Images"). The deployment test (tests/deploy) runs them.
.PHONY: image
image: ## build the frontdoor and Envoy images with podman (no Docker daemon) into _images/*.oci.tar
	@bash tools/install.sh envoy podman
	VERSION=$(VERSION) GO=$(GO) bash images/build.sh

.PHONY: up
up: tools build ## run the sandbox: etcd, 3 kube-apiservers, frontdoor and Envoy on 127.0.0.1 (MODE=kubernetes|files; IDENTITY_FORWARDING=Impersonation|RequestHeader; GATEWAYS=N Envoys on the one frontdoor; GLOBAL_RATELIMIT=true adds Redis and the ratelimit service; Ctrl-C stops it)
	$(TESTS_GO) run ./sandbox/up -mode $(MODE) -identity-forwarding $(IDENTITY_FORWARDING) -gateways $(GATEWAYS) -global-ratelimit=$(GLOBAL_RATELIMIT)

.PHONY: test
test: tools build ## unit tests and the end-to-end suite against real Envoy, etcd and kube-apiservers, in all three request-service modes, then a bounded fuzz
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./inprocess/... ./authz/...
	@$(MAKE) --no-print-directory image
	$(TESTS_GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...
	FRONTDOOR_E2E_REQUEST_SERVICE=ExtProc $(TESTS_GO) test -count=1 -timeout $(TEST_TIMEOUT) ./e2e
	FRONTDOOR_E2E_REQUEST_SERVICE=InProcess $(TESTS_GO) test -count=1 -timeout $(TEST_TIMEOUT) ./e2e
	@$(MAKE) --no-print-directory fuzz

# Each fuzz target runs FUZZ_TIME: bad or missing credentials must never
# crash or stall the request service. Keep it short; CI's budget is the suite.
# A count of executions, not a duration: Go 1.26's fuzz coordinator can fail
# a duration run with a bare "context deadline exceeded" at its end on a busy
# machine (golang/go#75804, fixed in Go 1.27), with no failing input found.
# 3000 executions take 3-20 s per target here.
FUZZ_TIME    ?= 3000x
FUZZ_TARGETS := authz:FuzzPipeline authz:FuzzPipelineCredentials authz:FuzzCredentialParsing inprocess:FuzzFilter

.PHONY: fuzz
fuzz: ## fuzz the request service's header, credential and path parsing and the in-process filter (FUZZ_TIME each)
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; f=$${t#*:}; \
		$(GO) test -run='^$$' -fuzz="^$$f\$$" -fuzztime=$(FUZZ_TIME) ./$$pkg || exit 1; \
	done

.PHONY: test-extproc
test-extproc: tools build ## the end-to-end suite with the sandbox UpstreamCluster on spec.requestService: ExtProc
	FRONTDOOR_E2E_REQUEST_SERVICE=ExtProc $(TESTS_GO) test -count=1 -timeout $(TEST_TIMEOUT) ./e2e

.PHONY: test-inprocess
test-inprocess: tools build ## the end-to-end suite with the sandbox UpstreamCluster on spec.requestService: InProcess
	FRONTDOOR_E2E_REQUEST_SERVICE=InProcess $(TESTS_GO) test -count=1 -timeout $(TEST_TIMEOUT) ./e2e

.PHONY: unit
unit: ## unit tests only: the product module, and the tests module's own with -short (no sandbox)
	$(GO) test -count=1 ./...
	$(TESTS_GO) test -count=1 -short ./...

.PHONY: bench
bench: tools build ## measure direct vs Frontdoor vs plain Envoy vs HAProxy; table in _bench/, binary in bin/bench (BENCH_FLAGS=--quick for a 2-minute smoke run)
	@bash tools/install.sh haproxy || echo ">> haproxy unavailable: the HAProxy path will be reported n/a"
	$(TESTS_GO) build -o $(BIN)/bench ./bench/cmd/bench
	$(BIN)/bench $(BENCH_FLAGS)

# make bench-abuse: valid users' success rate and p99, quiet and under each
# attack alone (slow-loris, half-open TLS, random-token flood, hung proxied
# requests), in each request-service mode. Not part of make test or CI.
ABUSE_FLAGS ?=

.PHONY: bench-abuse
bench-abuse: tools build ## abuse benchmark (~7 min): valid users under slow-loris, half-open TLS, token flood, hung requests; table in _bench/abuse.md (ABUSE_FLAGS, see bin/bench-abuse --help)
	$(TESTS_GO) build -o $(BIN)/bench-abuse ./bench/cmd/abuse
	$(BIN)/bench-abuse $(ABUSE_FLAGS)

# make soak: a long steady mixed load on one request-service mode; flat
# memory, the same Envoy throughout and no failed request, or it fails.
SOAK_MODE     ?= InProcess
SOAK_DURATION ?= 30m

.PHONY: soak
soak: tools build ## soak the gateway for SOAK_DURATION (30m) on SOAK_MODE (InProcess): report in _bench/soak-<mode>.md (not run by make test)
	$(TESTS_GO) build -o $(BIN)/soak ./soak/cmd/soak
	$(BIN)/soak -mode $(SOAK_MODE) -duration $(SOAK_DURATION)

.PHONY: generate
generate: ## regenerate deepcopy and CRD YAML with controller-gen, then the chart's copies and the raw manifests (make manifests)
	$(CONTROLLER_GEN) object:headerFile=tools/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd:crdVersions=v1 paths=./api/... output:crd:artifacts:config=manifests/crds
	@$(MAKE) --no-print-directory manifests

# The chart is the one source of manifests/deploy and
# manifests/rbac/control-plane.yaml; its crds/ and dashboard are copies of
# manifests/crds and manifests/dashboards (tools/manifests.sh).
.PHONY: manifests
manifests: ## render manifests/deploy and manifests/rbac/control-plane.yaml from charts/frontdoor (and copy the CRDs and dashboard into the chart)
	@bash tools/install.sh helm
	bash tools/manifests.sh

.PHONY: golden
golden: ## rewrite the golden files (translator, KubeGateway import)
	$(GO) test ./translator -update
	$(GO) test ./importer/kubegateway -update

.PHONY: verify
verify: generate golden ## regenerate everything and fail if the tree changed
	$(GO) mod tidy
	$(TESTS_GO) mod tidy
	cd tools && $(GO) mod tidy
	cd tools/etcd && $(GO) mod tidy
	cd tools/lint && $(GO) mod tidy
	cd tools/helm && $(GO) mod tidy
	@git diff --exit-code -- . || { echo "generated files, rendered manifests, goldens or go.mod are stale: run make verify and commit the result"; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- charts manifests)" || { git status --short -- charts manifests; echo "make manifests wrote files git does not track: add them"; exit 1; }

.PHONY: lint
lint: ## golangci-lint (pinned in tools/lint; house rules in .golangci.yml) on the product and tests modules
	$(GOLANGCI_LINT) run ./...
	cd tests && $(GOLANGCI_LINT) run --config ../.golangci.yml ./...

.PHONY: clean
clean: ## remove built binaries and sandbox state (not the cached bin/ components)
	rm -rf $(BIN)/frontdoor $(BIN)/bench $(BIN)/bench-abuse _sandbox _bench
