#!/usr/bin/env bash
# Builds the workstation and runs it under a virtual X server through the
# scripted demo with the REAL engine (synthetic dataset, import, one seen
# anomaly per category, training, evaluation, a scored batch), saving one
# PNG per screen.
#   scripts/screenshots.sh [OUT_DIR] [PACKAGE]
# OUT_DIR defaults to ./screenshots; PACKAGE to ./cmd/workstation
# (./ui/cmd/demo runs the views on test doubles instead).
# SCREENSHOTS_TIMEOUT (seconds, default 1200) bounds the whole run: the demo
# trains twice (the Train shot catches a second run half-way) and Live scores
# a few images, which on a busy 2-core machine takes 10 minutes.
# The backbone is BACKBONE (default: ../shared/models/mobilenet_v2_imagenet.onnx
# when present, else the user's store entry mobilenet_v2_imagenet).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-screenshots}")"
pkg="${2:-./cmd/workstation}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bin="$tmp/workstation"
mkdir -p "$out"
rm -f "$out"/*.png
echo "building $pkg (the first Fyne build takes minutes)…"
go build -o "$bin" "$pkg"
export WORKSTATION_SCREENSHOTS="$out"
export LIBGL_ALWAYS_SOFTWARE=1
loc=()
case "${LC_ALL:-${LANG:-C}}" in C|C.*|POSIX) loc=(LC_ALL=en_US.UTF-8 LANG=en_US.UTF-8) ;; esac # Fyne cannot parse "C"
export ONNXRUNTIME_LIB="${ONNXRUNTIME_LIB:-$PWD/third_party/onnxruntime/linux-x64/libonnxruntime.so.1}"
backbone="${BACKBONE:-}"
if [[ -z "$backbone" && -f ../shared/models/mobilenet_v2_imagenet.onnx ]]; then
	backbone="$(realpath ../shared/models/mobilenet_v2_imagenet.onnx)"
fi
# Fyne's preferences and the backbone store go to a throw-away folder; a
# backbone file is imported into that store (projects name it by its card).
export XDG_CONFIG_HOME="$tmp/config" XDG_DATA_HOME="$tmp/data"
args=()
if [[ -n "$backbone" ]]; then
	if [[ "$pkg" == ./cmd/workstation ]]; then
		env "${loc[@]}" "$bin" backbone import "$backbone" >/dev/null
	fi
	args=(--backbone "$(basename "${backbone%.onnx}")")
fi
start=$(date +%s)
env "${loc[@]}" timeout "${SCREENSHOTS_TIMEOUT:-1200}" xvfb-run -a -s "-screen 0 1400x900x24" "$bin" gui "${args[@]}"
echo "demo and screenshots took $(( $(date +%s) - start )) s"
ls -1 "$out"/*.png
