#!/usr/bin/env bash
# gpu-runtime.sh puts ONNX Runtime's CUDA provider, with the core library it
# was built against, into third_party/onnxruntime/linux-x64-gpu/:
#   - core:     npm onnxruntime-node@1.29.0, bin/napi-v6/linux/x64/libonnxruntime.so.1
#               (onnxruntime-node has no CUDA provider in 1.30.0);
#   - provider: npm com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9 (ORT 1.29.0),
#               libonnxruntime_providers_cuda.so + libonnxruntime_providers_shared.so.
# Both tarballs are checked against pinned sha256 sums. The CPU runtime in
# linux-x64/ stays the default; use this one with
#   ONNXRUNTIME_LIB=$PWD/third_party/onnxruntime/linux-x64-gpu/libonnxruntime.so.1 workstation ... --device cuda
# The provider needs, on the machine: an NVIDIA driver, the CUDA 13 runtime
# libraries (cudart, cublas, cublasLt, cufft, curand) and cuDNN 9.
# Downloads about 290 MB (npm pack) once.
set -euo pipefail
cd "$(dirname "$0")/.."

CORE_PKG=onnxruntime-node@1.29.0
CORE_SHA256=cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037
CUDA_PKG=com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9
CUDA_SHA256=2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412
DIR=third_party/onnxruntime/linux-x64-gpu

log() { printf 'gpu-runtime: %s\n' "$*" >&2; }
if [ -f "$DIR/libonnxruntime.so.1" ] && [ -f "$DIR/libonnxruntime_providers_cuda.so" ] && [ -f "$DIR/libonnxruntime_providers_shared.so" ]; then
	log "already in $DIR"
	exit 0
fi
command -v npm >/dev/null || { log "npm is needed (apt-get install npm)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# fetch PKG SHA256: npm pack PKG into $tmp, check it, print the tarball's path.
fetch() {
	log "fetching $1 from npm (about $3)"
	local name
	name=$(cd "$tmp" && npm pack --silent "$1" | tail -1)
	local got
	got=$(sha256sum "$tmp/$name" | cut -d' ' -f1)
	if [ "$got" != "$2" ]; then
		log "checksum mismatch for $1: got $got, want $2"; exit 1
	fi
	echo "$tmp/$name"
}
core=$(fetch "$CORE_PKG" "$CORE_SHA256" "110 MB")
cuda=$(fetch "$CUDA_PKG" "$CUDA_SHA256" "180 MB")
mkdir -p "$tmp/core" "$tmp/cuda" "$DIR"
tar -xzf "$core" -C "$tmp/core" package/bin/napi-v6/linux/x64/libonnxruntime.so.1
tar -xzf "$cuda" -C "$tmp/cuda" package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so \
	package/Plugins/Linux/x64/libonnxruntime_providers_shared.so package/LICENSE
mv "$tmp/core/package/bin/napi-v6/linux/x64/libonnxruntime.so.1" "$DIR/"
mv "$tmp/cuda/package/Plugins/Linux/x64/"*.so "$DIR/"
mv "$tmp/cuda/package/LICENSE" "$DIR/LICENSE"
log "ONNX Runtime 1.29.0 with the CUDA provider is in $DIR"
log "use it: ONNXRUNTIME_LIB=$PWD/$DIR/libonnxruntime.so.1 ./bin/workstation train --device cuda ..."
log "it needs CUDA 13 runtime libraries and cuDNN 9 on the library path (ldd $DIR/libonnxruntime_providers_cuda.so lists them)"
