#!/usr/bin/env bash
# Start the whole platform on this machine: install what is missing, build,
# and run `algocloud dev` (API + wizard on :8080, Temporal on :7233, UI on :8233).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/build.sh
exec ./bin/algocloud dev "$@"
