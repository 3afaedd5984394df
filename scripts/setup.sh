#!/usr/bin/env bash
# Installs what RUNNING algocloud needs on a Debian machine with Go,
# idempotently (scripts/dev.sh runs it; it installs only what is missing):
#   python3 with numpy, Pillow, venv, pip and wheel   the algorithms' workers and their venvs
#   git, ca-certificates                              code from Git, HTTPS to indexes and clouds
#   bubblewrap, slirp4netns                           the sandbox author code runs in
# What only the tests and benchmarks need (Chromium, PostgreSQL, npm and ONNX
# Runtime, moto, oapi-codegen, the temporal CLI, the linters) is
# scripts/setup-test.sh's, which runs this first. ONNX deployments
# (`environment: onnx`) also need scripts/onnxruntime.sh.
#
#   scripts/setup.sh [--task]    --task also installs task (go-task) for the Taskfile
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/common.sh
. scripts/common.sh

apt_install python3 python3-numpy python3-pil python3-venv python3-pip python3-wheel \
  git ca-certificates bubblewrap slirp4netns

if [ "${1:-}" = "--task" ]; then
  go_install task github.com/go-task/task/v3/cmd/task@v3.54.0
fi
echo "setup: done (what running algocloud needs is present; the tests need scripts/setup-test.sh)"
