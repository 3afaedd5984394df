#!/usr/bin/env bash
# Installs everything algocloud needs on a Debian machine with Go, idempotently:
# Debian packages (Python with numpy/Pillow/venv/pip for algorithms, PostgreSQL
# for the store tests, git) and the Go tools the Taskfile uses. Safe to re-run:
# it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(python3 python3-numpy python3-pil python3-venv python3-pip python3-wheel python3-fastapi python3-uvicorn postgresql git ca-certificates curl chromium)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

gobin="$(go env GOPATH)/bin"
# workflowcheck: the determinism checker for workflows/ (run by scripts/test.sh).
if [ ! -x "$gobin/workflowcheck" ]; then
  echo "setup: installing workflowcheck into $gobin"
  GOFLAGS= go install go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0
fi

# oapi-codegen: the templates tests generate a Go client from each endpoint's
# OpenAPI document with it. A project tool in bin/, pinned, not a module of
# go.mod (the project does not import it).
oapi_version=v2.8.2
if [ "$( (bin/oapi-codegen --version 2>/dev/null || true) | tail -n 1)" != "$oapi_version" ]; then
  echo "setup: installing oapi-codegen $oapi_version into bin/"
  GOFLAGS= GOBIN="$PWD/bin" go install "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@$oapi_version"
fi

# temporal CLI: the payload codec's integration test shows a history through
# it with --codec-endpoint and --codec-auth (integration/codec_test.go).
if [ ! -x "$gobin/temporal" ]; then
  echo "setup: installing the temporal CLI v1.5.1 into $gobin (a few minutes on 2 cores)"
  GOFLAGS= go install github.com/temporalio/cli/cmd/temporal@v1.5.1
fi

# task (go-task) only for those who asked for the Taskfile: `scripts/setup.sh --task`.
if [ "${1:-}" = "--task" ] && [ ! -x "$gobin/task" ]; then
  echo "setup: installing task (go-task) into $gobin"
  GOFLAGS= go install github.com/go-task/task/v3/cmd/task@v3.54.0
fi
scripts/onnxruntime.sh # libonnxruntime.so.1 and test models for inference/onnxrt
# moto_server (moto's AWS endpoints) is what the EC2 provider's tests run
# against. It comes preinstalled with the machine's pyenv Python and cannot be
# installed here (no PyPI), so it is only checked.
if ! command -v moto_server >/dev/null 2>&1; then
  echo "setup: ERROR: moto_server not found on PATH: the EC2 provider tests (activities/compute/ec2) will fail." >&2
  echo "setup:        install moto with its server extra into a Python on PATH: pip install 'moto[server]' (moto 5.x)" >&2
fi
echo "setup: done (Debian packages and Go tools present)"
