#!/usr/bin/env bash
# Installs what the TESTS and benchmarks need on top of scripts/setup.sh's
# (which it runs first), idempotently (scripts/test.sh runs it):
#   postgresql              the store's tests against a real PostgreSQL
#   chromium                the wizard's browser tests
#   python3-fastapi/uvicorn the Cog-style baseline of the inference benchmark
#   curl                    tests that check endpoints with curl
#   staticcheck, workflowcheck, shellcheck   scripts/lint.sh
#   oapi-codegen (bin/)     the generated-client tests
#   temporal CLI            the payload codec's integration test
#   npm                     scripts/onnxruntime.sh: ONNX Runtime and the ONNX test models
#   moto (moto_server)      the EC2 provider's tests
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh
./scripts/setup.sh "$@"

apt_install postgresql chromium python3-fastapi python3-uvicorn curl shellcheck
# npm only where none is on PATH: NodeSource's nodejs bundles its own npm and
# conflicts with Debian's npm package.
command -v npm >/dev/null 2>&1 || apt_install nodejs npm

gobin="$(go env GOPATH)/bin"
go_install workflowcheck go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
# staticcheck 0.8.x (2026.2) is the first release that supports go1.26.
staticcheck_version=0.8.2
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -qF "($staticcheck_version)"; then
  rm -f "$gobin/staticcheck"
  go_install staticcheck "honnef.co/go/tools/cmd/staticcheck@v$staticcheck_version"
fi
# oapi-codegen: a project tool in bin/, pinned, not a module of go.mod (the
# project does not import it).
oapi_version=v2.8.2
if [ "$( (bin/oapi-codegen --version 2>/dev/null || true) | tail -n 1)" != "$oapi_version" ]; then
  rm -f bin/oapi-codegen
  go_install oapi-codegen "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$oapi_version" "$PWD/bin"
fi
# temporal CLI: shows a history through the codec endpoint (integration/codec_test.go).
go_install temporal github.com/temporalio/cli/cmd/temporal@v1.5.1

scripts/onnxruntime.sh # libonnxruntime.so.1 and test models for inference/onnxrt
scripts/moto.sh        # moto_server for the EC2 provider's tests
echo "setup-test: done (what the tests need is present)"
