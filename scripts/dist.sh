#!/usr/bin/env bash
# dist.sh builds the bundles a user downloads, under dist/ (or $DIST_OUT):
#   dmad-workstation-<version>-linux-x64.tar.xz   workstation, libonnxruntime.so.1,
#       models/<backbone>, a .desktop file and icon (install-desktop.sh registers them)
#   dmad-workstation-<version>-windows-x64.zip    workstation.exe (GUI subsystem, icon,
#       version resource), workstation-cli.exe (the same program as a console program,
#       for terminals and scripts), onnxruntime.dll + DirectML.dll, models/<backbone>
# Each has a README.txt. The version is FyneApp.toml's; the backbone is copied
# from $MODELS (default ../shared/models) at build time and never committed.
#   scripts/dist.sh [linux|windows|all]     (default all)
# No -trimpath: it would key a second build cache apart from make build/test (another
# cold Fyne compile). Test hooks: DIST_OUT (output folder), DIST_BIN (a prebuilt Linux binary),
# BACKBONE_FILE (an .onnx with its .json beside it), XZ_OPT (xz level), DIST_NO_SETUP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
what="${1:-all}"
version=$(sed -n 's/^Version *= *"\(.*\)"/\1/p' FyneApp.toml)
[ -n "$version" ] || { echo "dist: no Version in FyneApp.toml" >&2; exit 1; }
out="$(realpath -m "${DIST_OUT:-dist}")"
models="${MODELS:-../shared/models}"
backbone_file="${BACKBONE_FILE:-$models/mobilenet_v2_imagenet.onnx}"
ort=third_party/onnxruntime
log() { printf 'dist: %s\n' "$*" >&2; }
export XZ_OPT="${XZ_OPT:--6 -T0}" # all cores: xz is most of the Linux bundle's time
mkdir -p "$out"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"; rm -f "$root"/cmd/workstation/rsrc_windows_amd64.syso' EXIT

# copy_backbone DIR: the default backbone (ONNX + card, and a licence when there is one) into DIR/models.
copy_backbone() {
	mkdir -p "$1/models"
	if [ ! -f "$backbone_file" ]; then
		log "WARNING: backbone $backbone_file not found: the bundle ships none (users import one at first start)"
		return
	fi
	local stem="${backbone_file%.onnx}" name
	name=$(basename "$stem")
	cp "$backbone_file" "$stem.json" "$1/models/"
	[ -f "$(dirname "$stem")/LICENSE.$name" ] && cp "$(dirname "$stem")/LICENSE.$name" "$1/models/"
	return 0
}

readme() { # readme OS
	cat <<TXT
DMAD Inspection Workstation $version ($1, x64)

Unified anomaly detection for visual inspection: one model for every product
category, trained from good images and a few annotated defects.

Start
TXT
	if [ "$1" = windows ]; then
		cat <<'TXT'
  Unzip the whole folder anywhere (e.g. Documents), then double-click
  workstation.exe. Click "Demo" on the start screen: it generates a small
  synthetic dataset, trains and shows results in a few minutes.
  Windows may warn about an unknown publisher the first time: "More info",
  then "Run anyway".

Command line
  workstation-cli.exe is the same program for terminals and scripts
  (workstation.exe has no console window):
    workstation-cli.exe version
    workstation-cli.exe train --project line1.dmadproj --data D:\data\line1
    workstation-cli.exe --help

GPU
  --device directml uses any DirectX 12 GPU (DirectML.dll is included).
TXT
	else
		cat <<'TXT'
  tar xJf dmad-workstation-*-linux-x64.tar.xz
  cd dmad-workstation-*-linux-x64 && ./workstation
  ./install-desktop.sh adds it to your desktop's application menu.
  Click "Demo" on the start screen: it generates a small synthetic dataset,
  trains and shows results in a few minutes.
  Needs an OpenGL driver and X11 or XWayland (any desktop has them).

Command line
    ./workstation version
    ./workstation train --project line1.dmadproj --data ~/data/line1
    ./workstation --help

GPU
  --device cuda needs the CUDA provider of ONNX Runtime (see the project's
  README, 'make gpu-runtime'), CUDA 13 and cuDNN 9; point ONNXRUNTIME_LIB
  at that runtime.
TXT
	fi
	cat <<'TXT'

Files
  The program finds ONNX Runtime and the backbone network in models/
  beside itself: keep the folder together. Your projects are where you save
  them; imported backbones and demo data go to your user data folder.
TXT
}

build_linux() {
	local name="dmad-workstation-$version-linux-x64" stage="$tmp/linux"
	local dir="$stage/$name"
	mkdir -p "$dir/share/applications" "$dir/share/icons"
	if [ -n "${DIST_BIN:-}" ]; then
		cp "$DIST_BIN" "$dir/workstation"
	else
		log "building the Linux binary (the first Fyne build takes minutes)"
		CGO_ENABLED=1 go build -ldflags "-s -w" -o "$dir/workstation" ./cmd/workstation
	fi
	cp "$ort/linux-x64/libonnxruntime.so.1" "$dir/"
	copy_backbone "$dir"
	cp assets/icons/workstation.png "$dir/share/icons/io.github.dmad.workstation.png"
	# As fyne package writes it; install-desktop.sh fills in the absolute paths.
	cat >"$dir/share/applications/io.github.dmad.workstation.desktop" <<DESKTOP
[Desktop Entry]
Type=Application
Name=DMAD Workstation
GenericName=Inspection workstation
Comment=Unified anomaly detection for visual inspection
Exec=workstation
Icon=io.github.dmad.workstation
Categories=Science;Graphics;
Keywords=inspection;anomaly;defect;
Terminal=false
Version=1.0
X-DMAD-Version=$version
DESKTOP
	cat >"$dir/install-desktop.sh" <<'SH'
#!/bin/sh
# Adds the workstation (this folder) to the desktop's application menu.
set -e
here=$(cd "$(dirname "$0")" && pwd)
apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
icons="${XDG_DATA_HOME:-$HOME/.local/share}/icons/hicolor/512x512/apps"
mkdir -p "$apps" "$icons"
cp "$here/share/icons/io.github.dmad.workstation.png" "$icons/"
sed "s|^Exec=.*|Exec=\"$here/workstation\"|" "$here/share/applications/io.github.dmad.workstation.desktop" \
	>"$apps/io.github.dmad.workstation.desktop"
echo "added to the application menu: $apps/io.github.dmad.workstation.desktop"
SH
	chmod +x "$dir/install-desktop.sh" "$dir/workstation"
	readme linux >"$dir/README.txt"
	log "packing $name.tar.xz"
	tar -C "$stage" -cJf "$out/$name.tar.xz" "$name"
	echo "$out/$name.tar.xz"
}

build_windows() {
	local name="dmad-workstation-$version-windows-x64" stage="$tmp/windows"
	local dir="$stage/$name"
	mkdir -p "$dir"
	./scripts/setup.sh --windows
	command -v zip >/dev/null || { log "zip is needed (apt-get install zip)"; exit 1; }
	# Icon, version and manifest from FyneApp.toml, as a .syso the linker takes.
	# Go only takes .syso files from the package folder, so it sits in
	# cmd/workstation during these two builds (gitignored, removed on exit); a
	# go vet/test of cmd/workstation started meanwhile can trip over it vanishing.
	go run ./scripts/internal/winres "$tmp/res"
	(cd "$tmp/res" && x86_64-w64-mingw32-windres -O coff -i workstation.rc -o "$root/cmd/workstation/rsrc_windows_amd64.syso")
	local env=(CGO_ENABLED=1 GOOS=windows GOARCH=amd64 CC=x86_64-w64-mingw32-gcc)
	log "cross-building workstation.exe (cold: about 13 min on 2 cores; seconds when cached)"
	env "${env[@]}" go build -ldflags "-H=windowsgui -s -w" -o "$dir/workstation.exe" ./cmd/workstation
	env "${env[@]}" go build -ldflags "-s -w" -o "$dir/workstation-cli.exe" ./cmd/workstation
	rm -f "$root/cmd/workstation/rsrc_windows_amd64.syso"
	cp "$ort/win-x64/onnxruntime.dll" "$ort/win-x64/DirectML.dll" "$dir/"
	copy_backbone "$dir"
	readme windows | sed 's/$/\r/' >"$dir/README.txt"
	log "packing $name.zip"
	rm -f "$out/$name.zip"
	(cd "$stage" && zip -qr -9 "$out/$name.zip" "$name")
	echo "$out/$name.zip"
}

[ -n "${DIST_NO_SETUP:-}" ] || ./scripts/setup.sh
case "$what" in
linux) build_linux ;;
windows) build_windows ;;
all) build_linux; build_windows ;;
*) echo "usage: scripts/dist.sh [linux|windows|all]" >&2; exit 2 ;;
esac
