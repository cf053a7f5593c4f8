#!/usr/bin/env bash
# wine-check.sh — starts the Windows download bundle under Wine, as far as
# this Linux machine can: the console program (version, backbone list, train,
# eval, inspect on a synthetic dataset, Windows paths) and the GUI program,
# whose Demo button it clicks under Xvfb. Screenshots and logs go to OUT.
#   scripts/wine-check.sh [OUT]   (default: wine-check/; builds the zip with dist.sh when missing)
# Wine is not Windows: no GPU (DirectML fails its graphs, which exercises the
# CPU fallback), Wine's fonts, and Debian 12's Wine 8.0 lacks
# bcryptprimitives.dll, which Go programs load from system32 since Go 1.22;
# the check puts a small stand-in (scripts/wine/bcryptprimitives.c) into its
# own throw-away Wine prefix. Nothing of it goes into the bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${1:-wine-check}")
mkdir -p "$out"
version=$(sed -n 's/^Version *= *"\(.*\)"/\1/p' FyneApp.toml)
zip="dist/dmad-workstation-$version-windows-x64.zip"
[ -f "$zip" ] || ./scripts/dist.sh windows
need=()
for p in wine64:wine xdotool:xdotool x11-apps:xwd imagemagick:convert xvfb:xvfb-run unzip:unzip gcc-mingw-w64-x86-64:x86_64-w64-mingw32-gcc; do
	command -v "${p#*:}" >/dev/null || need+=("${p%%:*}")
done
if [ ${#need[@]} -gt 0 ]; then
	echo "wine-check: installing ${need[*]}"
	sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get install -y -q "${need[@]}" >/dev/null
fi
tmp=$(mktemp -d)
display=$((90 + RANDOM % 9))
cleanup() {
	pkill -f "Xvfb :$display" 2>/dev/null || true
	WINEPREFIX="$tmp/prefix" wineserver -k 2>/dev/null || true
	rm -rf "$tmp"
}
trap cleanup EXIT
export WINEPREFIX="$tmp/prefix" WINEDEBUG=-all HOME="$tmp/home"
mkdir -p "$HOME"
wine wineboot -i >/dev/null 2>&1 || true
x86_64-w64-mingw32-gcc -shared -O2 -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" \
	scripts/wine/bcryptprimitives.c -ladvapi32
# A Windows Fonts folder holds fonts with arrows (Segoe UI Symbol, Arial);
# Wine's prefix holds none, and Fyne takes the glyphs its font lacks from there.
font=/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf
[ -f "$font" ] && cp "$font" "$WINEPREFIX/drive_c/windows/Fonts/"
unzip -q "$zip" -d "$tmp"
app=$(ls -d "$tmp"/dmad-workstation-*-windows-x64)
go run ./scripts/internal/synthdata "$tmp/data"
cli() { (cd "$app" && wine ./workstation-cli.exe "$@"); }
winpath() { echo "Z:${1//\//\\}"; }

echo "wine-check: console program"
cli version | tee "$out/version.txt"
cli backbone list | tee "$out/backbone-list.txt"
grep -q "mobilenet_v2_imagenet.*bundled" "$out/backbone-list.txt"
cli train --project 'C:\users\line1.dmadproj' --data "$(winpath "$tmp/data")" --seen-anomalies 2 --epochs 4 --quiet 2>&1 | tee "$out/train.txt"
cli eval --project 'C:\users\line1.dmadproj' --json "$(winpath "$out/eval.json")" --quiet 2>&1 | tee "$out/eval.txt"
cli inspect --project 'C:\users\line1.dmadproj' --input "$(winpath "$tmp/data")" --out "$(winpath "$out/inspect")" --quiet 2>&1 | tee "$out/inspect.txt"
[ -s "$out/inspect/report.pdf" ] && [ -s "$out/inspect/summary.json" ]
# Live inspection: a watcher on a folder (ReadDirectoryChangesW), three images moved in.
mkdir -p "$tmp/in" "$out/watch"
cat=$(ls "$tmp/data" | head -1)
(cd "$app" && timeout 60 wine ./workstation-cli.exe watch --project 'C:\users\line1.dmadproj' --input "$(winpath "$tmp/in")" \
	--out "$(winpath "$out/watch")" --category "$cat" >"$out/watch.txt" 2>&1) &
for _ in $(seq 60); do grep -q "watching" "$out/watch.txt" 2>/dev/null && break; sleep 1; done
for f in $(find "$tmp/data/$cat/test" -name '*.png' | sort | head -3); do
	cp "$f" "$tmp/in/.part"; mv "$tmp/in/.part" "$tmp/in/$(basename "$(dirname "$f")")-$(basename "$f")"; sleep 2
done
sleep 3
cat "$out"/watch/verdicts-*.csv
[ "$(tail -n +2 "$out"/watch/verdicts-*.csv | wc -l)" = 3 ] || { echo "wine-check: watch scored $(tail -n +2 "$out"/watch/verdicts-*.csv | wc -l) of 3 images"; exit 1; }
WINEPREFIX="$tmp/prefix" wineserver -k 2>/dev/null || true

echo "wine-check: GUI program, Demo (a few minutes)"
# The console runs left a Wine desktop without a display; the GUI needs a
# fresh one on Xvfb's.
wineserver -k 2>/dev/null || true
wineserver -w
xvfb-run -n "$display" -f "$tmp/xauth" -s "-screen 0 1280x800x24" bash -c "cd '$app' && exec wine ./workstation.exe" >"$out/gui.log" 2>&1 &
sleep 5
export DISPLAY=":$display" XAUTHORITY="$tmp/xauth"
shot() { xwd -root -silent | convert xwd:- "$out/$1.png"; }
for _ in $(seq 60); do grep -q "ONNX Runtime provider\|no GPU provider" "$out/gui.log" && break; sleep 2; done
sleep 10
shot 1-home
xdotool mousemove 603 371 click 1 # the Demo button of a 1280×800 screen
for _ in $(seq 150); do grep -q 'stage="map fusion"\|level=ERROR' "$out/gui.log" && break; sleep 2; done
sleep 20
shot 2-demo-results
xdotool mousemove 280 237 click 1 # the top image of the gallery
sleep 5
shot 3-top-image
if grep -q "level=ERROR" "$out/gui.log"; then
	echo "wine-check: the GUI logged an error:"; grep "level=ERROR" "$out/gui.log"; exit 1
fi
grep -q 'stage="map fusion"' "$out/gui.log" || { echo "wine-check: the Demo did not train (see $out/gui.log)"; exit 1; }
echo "wine-check: ok; look at $out/*.png"
