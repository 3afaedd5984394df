#!/usr/bin/env bash
# Platform benchmarks (issue: platform core): complete -> first answer, the
# whole wizard through the API, N wizards at once on the embedded server, and
# the idle memory of `algocloud dev`, each printed next to a baseline measured
# in the same run. Builds bin/ first; the report goes to stdout and to
# docs/benchmarks-platform.md. Extra arguments go to algocloud-bench, e.g.
#   ./scripts/bench.sh -wizards 50 -runs 5 -cpuprofile /tmp/algocloud-prof
# It exits non-zero when any wizard fails. No test asserts these times.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/build.sh
go build -o bin/algocloud-bench ./cmd/algocloud-bench
echo "load before: $(cat /proc/loadavg)" >&2
exec bin/algocloud-bench -infer-bin bin/algocloud-infer -algocloud-bin bin/algocloud \
  -out docs/benchmarks-platform.md "$@"
