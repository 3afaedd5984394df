#!/usr/bin/env bash
# Builds the two binaries into bin/: algocloud (platform) and algocloud-infer
# (the small inference server every endpoint runs; it does not link Temporal).
# One `go build` for both: one build graph, so their packages compile in
# parallel instead of one binary after the other.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/ ./cmd/algocloud ./cmd/algocloud-infer
