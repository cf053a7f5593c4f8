#!/usr/bin/env bash
# Builds the GUI and runs it under a virtual X server through the scripted
# demo, saving one PNG per screen.
#   scripts/screenshots.sh [OUT_DIR] [PACKAGE]
# OUT_DIR defaults to ./screenshots; PACKAGE to ./ui/cmd/demo (the views on
# test doubles). Once cmd/workstation honours WORKSTATION_SCREENSHOTS (call
# ui.Workstation.RunDemo then Screenshots), pass ./cmd/workstation.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:-screenshots}")"
pkg="${2:-./ui/cmd/demo}"
bin="$(mktemp -d)/workstation-gui"
mkdir -p "$out"
echo "building $pkg (the first Fyne build takes minutes)…"
go build -o "$bin" "$pkg"
export WORKSTATION_SCREENSHOTS="$out"
export XDG_CONFIG_HOME="$(mktemp -d)" XDG_DATA_HOME="$(mktemp -d)"
export LIBGL_ALWAYS_SOFTWARE=1
timeout 300 xvfb-run -a -s "-screen 0 1400x900x24" "$bin"
ls -1 "$out"/*.png
