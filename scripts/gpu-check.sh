#!/usr/bin/env bash
# gpu-check.sh — one prepared run for a machine with an NVIDIA GPU.
# Trains the same small unified DMAD model on the CPU and on CUDA (same data,
# seed and settings), evaluates both, compares their scores and prints the
# timings. Needs libonnxruntime_providers_cuda.so + _shared.so (onnxruntime-gpu
# 1.30) beside third_party/onnxruntime/linux-x64/libonnxruntime.so.1, or
# ONNXRUNTIME_LIB pointing at a library that has them beside it.
#   scripts/gpu-check.sh [DATA_DIR]   (default: a synthetic dataset; pass ../shared/data/industrial for real data)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x bin/workstation ] || go build -o bin/workstation ./cmd/workstation
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME="$tmp/xdg" XDG_CONFIG_HOME="$tmp/xdgc"
data="${1:-}"
if [ -z "$data" ]; then
	data="$tmp/data"
	go run ./scripts/internal/synthdata "$data"
fi
backbone="${BACKBONE:-../shared/models/mobilenet_v2_imagenet.onnx}"
[ -f "$backbone" ] || { echo "gpu-check: backbone $backbone not found (set BACKBONE=FILE.onnx)"; exit 1; }
nvidia-smi -L 2>/dev/null || echo "gpu-check: nvidia-smi not found"
common=(--data "$data" --backbone "$backbone" --seen-anomalies 2 --epochs 4 --train-patches 32768 --ood-images 40 --quiet)
for dev in cpu cuda; do
	start=$(date +%s%N)
	./bin/workstation train --project "$tmp/$dev.db" --device "$dev" "${common[@]}"
	mid=$(date +%s%N)
	./bin/workstation eval --project "$tmp/$dev.db" --device "$dev" --json "$tmp/$dev.json" --quiet
	end=$(date +%s%N)
	printf '%-5s train %6d ms   eval %6d ms\n' "$dev" $(((mid - start) / 1000000)) $(((end - mid) / 1000000))
done
go run ./scripts/internal/cmpscores "$tmp/cpu.json" "$tmp/cuda.json"
