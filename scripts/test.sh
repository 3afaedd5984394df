#!/usr/bin/env bash
# Run every test: install what is missing (scripts/setup-test.sh), build the
# binaries, run the static checks (scripts/lint.sh: gofmt, go mod tidy -diff,
# go vet, staticcheck, workflowcheck, shellcheck, the README's layout), then the
# unit tests with the race detector and the integration tests (embedded
# Temporal server, real Python, real PostgreSQL started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup-test.sh
./scripts/build.sh
./scripts/lint.sh

# Packages that link the Temporal server build slowly under -race on 2 cores:
# they run without it; everything else runs with it.
heavy='/internal/temporaldev|/internal/platform|/integration|/cmd/algocloud$'
mapfile -t light < <(go list ./... | grep -Ev "$heavy")
mapfile -t heavy_pkgs < <(go list ./... | grep -E "$heavy" || true)
export ALGOCLOUD_INFER_BIN="$PWD/bin/algocloud-infer"
# Tests that need an external tool setup-test.sh installed (Chromium,
# oapi-codegen, temporal) fail instead of skipping when it is missing.
export ALGOCLOUD_REQUIRE_TOOLS=1
# The ONNX server tests (inference, integration) fail instead of skipping
# without ONNX Runtime and its test models (setup-test.sh runs scripts/onnxruntime.sh).
export ALGOCLOUD_REQUIRE_ONNX=1
# The sandbox tests (internal/sandbox, activities/python, inference) fail
# instead of skipping where bubblewrap cannot run (setup.sh installs it).
export ALGOCLOUD_REQUIRE_SANDBOX=1
go test -race -count=1 -timeout 20m "${light[@]}"
if [ ${#heavy_pkgs[@]} -gt 0 ]; then
  go test -count=1 -timeout 30m "${heavy_pkgs[@]}"
fi
