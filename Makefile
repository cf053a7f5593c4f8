# Everything a newcomer needs: `make run` opens the workstation, `make test` runs every test.
# Both install what is missing first (scripts/setup.sh is idempotent and quick on a second run).

GO        ?= go
ORT_LIB   := $(CURDIR)/third_party/onnxruntime/linux-x64/libonnxruntime.so.1
DATA      ?= ../shared/data/industrial
export ONNXRUNTIME_LIB ?= $(ORT_LIB)

.PHONY: setup build backbone-store run test test-full test-core bench vet fmt screenshots gpu-check

setup:
	@./scripts/setup.sh

build: setup
	$(GO) build -o bin/workstation ./cmd/workstation

# The demo backbone: imported into the user's store once, when ../shared has it.
MODELS    ?= ../shared/models
DEMO_BACKBONE := mobilenet_v2_imagenet

backbone-store: build
	@if [ -f $(MODELS)/$(DEMO_BACKBONE).onnx ] && \
	   ! ./bin/workstation backbone list 2>/dev/null | grep -q '^$(DEMO_BACKBONE) .* installed'; then \
		./bin/workstation backbone import $(MODELS)/$(DEMO_BACKBONE).onnx; fi

run: build backbone-store
	./bin/workstation

# Tests never write to $HOME: config and data folders point into a temp dir.
test: setup
	@tmp=$$(mktemp -d); \
	XDG_CONFIG_HOME=$$tmp/config XDG_DATA_HOME=$$tmp/data XDG_CACHE_HOME=$$tmp/cache \
	$(GO) test -count=1 -timeout 40m ./... ; rc=$$?; rm -rf $$tmp; exit $$rc

# Also the full-protocol test on ../shared (DMAD vs PatchCore, ~19 min on 2 cores).
test-full: setup
	@tmp=$$(mktemp -d); \
	XDG_CONFIG_HOME=$$tmp/config XDG_DATA_HOME=$$tmp/data XDG_CACHE_HOME=$$tmp/cache DMAD_FULL_PROTOCOL=1 \
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
