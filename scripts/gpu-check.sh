#!/usr/bin/env bash
# gpu-check.sh — one prepared run for a machine with a GPU (not run yet: no
# GPU was lent when it was written).
# Trains the same small unified DMAD model on the CPU, on CUDA and on WebGPU
# (same data, seed and settings), evaluates each, compares each GPU's scores
# with the CPU's and prints the timings. CUDA uses the runtime of
# `make gpu-runtime` (fetched here when missing; ORT 1.29 + CUDA provider,
# needs CUDA 13 and cuDNN 9); WebGPU uses the default npm runtime (Vulkan).
# A device that does not load is reported and skipped; the script fails when
# none of the GPU devices ran or when a GPU's AUROC differs from the CPU's.
#   scripts/gpu-check.sh [DATA_DIR]   (default: a synthetic dataset; pass ../shared/data/industrial for real data)
#   DEVICES="cuda" scripts/gpu-check.sh   to try only some devices
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/workstation ] || go build -o bin/workstation ./cmd/workstation
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/xdg" XDG_CONFIG_HOME="$tmp/xdgc"
unset ONNXRUNTIME_LIB # each device finds its runtime (cuda: third_party/onnxruntime/linux-x64-gpu)
data="${1:-}"
if [ -z "$data" ]; then
	data="$tmp/data"
	go run ./scripts/internal/synthdata "$data"
fi
backbone="${BACKBONE:-../shared/models/mobilenet_v2_imagenet.onnx}"
[ -f "$backbone" ] || { echo "gpu-check: backbone $backbone not found (set BACKBONE=FILE.onnx)"; exit 1; }
nvidia-smi -L 2>/dev/null || echo "gpu-check: nvidia-smi not found"
devices=(${DEVICES:-cuda webgpu})
if [[ " ${devices[*]} " == *" cuda "* ]]; then
	./scripts/gpu-runtime.sh
	echo "gpu-check: libraries the CUDA provider cannot find (none is good):"
	ldd third_party/onnxruntime/linux-x64-gpu/libonnxruntime_providers_cuda.so | grep "not found" || true
fi
common=(--data "$data" --backbone "$backbone" --seen-anomalies 2 --epochs 4 --train-patches 32768 --ood-images 40 --quiet)
ran=()
for dev in cpu "${devices[@]}"; do
	start=$(date +%s%N)
	if ! ./bin/workstation train --project "$tmp/$dev.db" --device "$dev" "${common[@]}" 2>"$tmp/$dev.err"; then
		echo "gpu-check: $dev did not run: $(tail -3 "$tmp/$dev.err")"
		[ "$dev" = cpu ] && exit 1
		continue
	fi
	mid=$(date +%s%N)
	./bin/workstation eval --project "$tmp/$dev.db" --device "$dev" --json "$tmp/$dev.json" --quiet
	end=$(date +%s%N)
	printf '%-7s train %6d ms   eval %6d ms\n' "$dev" $(((mid - start) / 1000000)) $(((end - mid) / 1000000))
	[ "$dev" = cpu ] || ran+=("$dev")
done
((${#ran[@]})) || { echo "gpu-check: no GPU device ran"; exit 1; }
rc=0
for dev in "${ran[@]}"; do
	echo "== cpu vs $dev"
	go run ./scripts/internal/cmpscores "$tmp/cpu.json" "$tmp/$dev.json" || rc=1
done
exit $rc
