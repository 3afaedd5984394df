#!/usr/bin/env bash
# Start the whole platform on this machine: install what running needs
# (scripts/setup.sh, not the test tools), build, and run `algocloud dev`
# (API + wizard on :8080, Temporal on :7233, UI on :8233).
set -euo pipefail
cd "$(dirname "$0")/.."
# The build (CPU) runs while setup installs Debian packages (network, dpkg):
# nothing in the build needs them. Setup stays in the foreground, where sudo
# can ask for a password.
./scripts/build.sh &
build=$!
if ! ./scripts/setup.sh; then
  kill "$build" 2>/dev/null || true
  exit 1
fi
wait "$build"
exec ./bin/algocloud dev "$@"
