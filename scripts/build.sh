#!/usr/bin/env bash
# Builds the two binaries into bin/: algocloud (platform) and algocloud-infer
# (the small inference server every endpoint runs; it does not link Temporal).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/algocloud-infer ./cmd/algocloud-infer
go build -o bin/algocloud ./cmd/algocloud
