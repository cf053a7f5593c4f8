# Everything a newcomer needs: `make run` opens the workstation, `make test` runs every test.
# Both install what is missing first (scripts/setup.sh is idempotent and quick on a second run).

GO        ?= go
ORT_LIB   := $(CURDIR)/third_party/onnxruntime/linux-x64/libonnxruntime.so.1
DATA      ?= ../shared/data/industrial
export ONNXRUNTIME_LIB ?= $(ORT_LIB)

.PHONY: setup build backbone-store run test test-full test-core bench vet fmt screenshots gpu-check gpu-runtime dist wine-check

setup:
	@./scripts/setup.sh

build: setup
	@[ -x bin/workstation ] || echo "make: building bin/workstation. The first build compiles Fyne's OpenGL code:" \
		"about 10-15 minutes on 2 cores, once; later builds take seconds."
	$(GO) build -o bin/workstation ./cmd/workstation

# The demo backbone: imported into the user's store once, when ../shared has it.
MODELS    ?= ../shared/models
DEMO_BACKBONE := mobilenet_v2_imagenet

# (STATUS is the last column: "installed", "bundled" or "not installed (known card)".)
backbone-store: build
	@if ./bin/workstation backbone list 2>/dev/null | \
	   awk '$$1 == "$(DEMO_BACKBONE)" && ($$NF == "installed" || $$NF == "bundled") {f = 1} END {exit !f}'; then :; \
	elif [ -f $(MODELS)/$(DEMO_BACKBONE).onnx ]; then \
		echo "make: importing the demo backbone $(MODELS)/$(DEMO_BACKBONE).onnx into your backbone store (once)"; \
		./bin/workstation backbone import $(MODELS)/$(DEMO_BACKBONE).onnx; \
	else echo "make: no $(MODELS)/$(DEMO_BACKBONE).onnx: the workstation will ask for a backbone file (Import backbone…)"; fi

run: build backbone-store
	@echo "make: starting the workstation (click Demo on the start screen)"
	./bin/workstation

# Tests never write to $HOME: config, data and cache folders point into a temp dir
# (ONNX Runtime keeps a device id under $XDG_CACHE_HOME/Microsoft). GOCACHE is pinned
# first: Go's build cache defaults to $XDG_CACHE_HOME/go-build, and moving it with
# XDG_CACHE_HOME recompiled everything (11 min) on every run.
GOCACHE_DIR = $(shell $(GO) env GOCACHE)

test: setup
	@tmp=$$(mktemp -d); \
	GOCACHE=$(GOCACHE_DIR) XDG_CONFIG_HOME=$$tmp/config XDG_DATA_HOME=$$tmp/data XDG_CACHE_HOME=$$tmp/cache \
	$(GO) test -count=1 -timeout 40m ./... ; rc=$$?; rm -rf $$tmp; exit $$rc

# Also the full-protocol test on ../shared (DMAD vs PatchCore, ~19 min on 2 cores).
test-full: setup
	@tmp=$$(mktemp -d); \
	GOCACHE=$(GOCACHE_DIR) XDG_CONFIG_HOME=$$tmp/config XDG_DATA_HOME=$$tmp/data XDG_CACHE_HOME=$$tmp/cache DMAD_FULL_PROTOCOL=1 \
	$(GO) test -count=1 -timeout 90m ./... ; rc=$$?; rm -rf $$tmp; exit $$rc

test-core: setup
	$(GO) test -count=1 ./core/... ./storage/...

# The whole protocol on ../shared/data/industrial (~25 min on 2 cores); features and the
# normal bank are cached in .cache/bench for quicker reruns.
bench: build backbone-store
	./bin/workstation bench --data $(DATA) --json bench.json --cache .cache/bench

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w .

# One PNG per screen of the demo on the real engine (under Xvfb, backbone from ../shared/models) into ./screenshots.
screenshots: build
	./scripts/screenshots.sh

gpu-check: build
	./scripts/gpu-check.sh

# The Windows bundle under Wine: console commands and the GUI's Demo, with
# screenshots in wine-check/ (builds the zip when missing).
wine-check: setup
	./scripts/wine-check.sh

# The CUDA provider of ONNX Runtime, with the core it was built against, into
# third_party/onnxruntime/linux-x64-gpu/ (the CPU runtime stays the default).
gpu-runtime:
	@./scripts/gpu-runtime.sh

# The download bundles under dist/: a Linux .tar.xz and a Windows .zip (cross-built
# with MinGW: about 13 min cold on 2 cores). The backbone comes from $(MODELS).
dist: setup
	MODELS=$(MODELS) ./scripts/dist.sh all
