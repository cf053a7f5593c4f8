#!/usr/bin/env bash
# setup.sh installs everything the workstation and its tests need on a fresh
# Debian/Ubuntu machine, and does nothing that is already done:
#   - Debian packages for Fyne (cgo, OpenGL, X11), Xvfb, and Mosquitto (the
#     MQTT broker the live-inspection tests start on a free local port), only
#     when absent;
#   - the ONNX Runtime shared library, taken from the npm package
#     onnxruntime-node@1.30.0 (checked against a pinned sha256) into third_party/onnxruntime/;
#   - Go modules.
# With --windows it also installs the MinGW cross-compiler (and zip) that the
# Windows build needs: `make dist` and .ci/run's Windows vet step use it.
set -euo pipefail
cd "$(dirname "$0")/.."
windows=0
[ "${1:-}" = --windows ] && windows=1

ORT_VERSION=1.30.0
ORT_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
ORT_DIR=third_party/onnxruntime

log() { printf 'setup: %s\n' "$*" >&2; }

# 1. Debian packages.
pkgs=(gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev
      libxinerama-dev libxi-dev libxxf86vm-dev xvfb xauth mosquitto)
((windows)) && pkgs+=(gcc-mingw-w64-x86-64 binutils-mingw-w64-x86-64 zip)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null; then
    log "missing packages ${missing[*]} and no apt-get: install them by hand"; exit 1
  fi
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  log "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. ONNX Runtime from the npm tarball.
if [ ! -f "$ORT_DIR/linux-x64/libonnxruntime.so.1" ]; then
  command -v npm >/dev/null || { log "npm is needed to fetch onnxruntime-node@$ORT_VERSION (apt-get install npm)"; exit 1; }
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  log "fetching onnxruntime-node@$ORT_VERSION from npm"
  (cd "$tmp" && npm pack --silent "onnxruntime-node@$ORT_VERSION" >/dev/null)
  tgz="$tmp/onnxruntime-node-$ORT_VERSION.tgz"
  got=$(sha256sum "$tgz" | cut -d' ' -f1)
  if [ "$got" != "$ORT_SHA256" ]; then
    log "checksum mismatch for $tgz: got $got, want $ORT_SHA256"; exit 1
  fi
  mkdir -p "$ORT_DIR/linux-x64" "$ORT_DIR/win-x64"
  tar -xzf "$tgz" -C "$tmp" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
      package/bin/napi-v6/win32/x64/onnxruntime.dll package/bin/napi-v6/win32/x64/DirectML.dll
  mv "$tmp/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$ORT_DIR/linux-x64/"
  mv "$tmp/package/bin/napi-v6/win32/x64/onnxruntime.dll" "$tmp/package/bin/napi-v6/win32/x64/DirectML.dll" "$ORT_DIR/win-x64/"
  log "ONNX Runtime $ORT_VERSION unpacked into $ORT_DIR"
fi

# 3. Go modules.
go mod download
