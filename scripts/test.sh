#!/usr/bin/env bash
# Run every test: install what is missing, build the binaries, vet, then the
# unit tests with the race detector and the integration tests (embedded
# Temporal server, real Python, real PostgreSQL started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-test.sh
./scripts/build.sh

unformatted=$(gofmt -l $(git ls-files '*.go') 2>/dev/null || true)
if [ -n "$unformatted" ]; then echo "gofmt needed: $unformatted"; exit 1; fi
go vet ./...
# Workflows must stay deterministic (no time.Now, goroutines, map ranging, I/O).
"$(go env GOPATH)/bin/workflowcheck" ./workflows/...

# Packages that link the Temporal server build slowly under -race on 2 cores:
# they run without it; everything else runs with it.
heavy='/internal/temporaldev|/internal/platform|/integration|/cmd/algocloud$'
light=$(go list ./... | grep -Ev "$heavy")
heavy_pkgs=$(go list ./... | grep -E "$heavy" || true)
export ALGOCLOUD_INFER_BIN="$PWD/bin/algocloud-infer"
# Tests that need an external tool setup-test.sh installed (Chromium, oapi-codegen, temporal)
# fail instead of skipping when it is missing.
export ALGOCLOUD_REQUIRE_TOOLS=1
# The ONNX server tests (inference, integration) fail instead of skipping
# without ONNX Runtime and its test models (setup-test.sh runs scripts/onnxruntime.sh).
export ALGOCLOUD_REQUIRE_ONNX=1
go test -race -count=1 -timeout 20m $light
if [ -n "$heavy_pkgs" ]; then
  go test -count=1 -timeout 30m $heavy_pkgs
fi
