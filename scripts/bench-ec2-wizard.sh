#!/usr/bin/env bash
# The full EC2 wizard under faults (issue 4): configure -> complete on
# --compute ec2 --dns route53 against moto, the instance played by a local
# stand-in that boots from the instance's own user data.
#  1. TestBenchEC2WizardFaults: the platform in the test process, runs
#     alternately without and with injected EC2 faults (20% throttling, 5%
#     500s, 5% dropped connections); wall time, EC2 requests and activity
#     attempts (from the workflow histories) per side, and their ratio.
#  2. TestBenchEC2WizardKills: wizard runs in parallel lanes against the real
#     `algocloud dev`, SIGKILLed at random points (at a random EC2 request,
#     after moto answered and before the worker heard it, or after a random
#     delay) and restarted; every fourth run deleted; then the instances per
#     deployment counted on moto.
# Environment: ALGOCLOUD_BENCH_EC2_WIZARD_N (runs per side, default 10),
# ALGOCLOUD_BENCH_EC2_WIZARD_RUNS (killed wizard runs, default 20),
# ALGOCLOUD_BENCH_EC2_WIZARD_LANES (default 5), ALGOCLOUD_BENCH_EC2_WIZARD_SEED
# (default 1). Needs moto_server (scripts/moto.sh, run by scripts/setup-test.sh). The report goes to
# stdout; nothing asserts a time. It exits non-zero when a deployment fails or
# an instance is orphaned. Extra arguments go to `go test` (e.g. -run to pick
# one of the two).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cat /proc/loadavg)" >&2
ALGOCLOUD_BENCH_EC2_WIZARD=1 exec go test ./integration -run '^TestBenchEC2Wizard(Faults|Kills)$' \
  -count=1 -v -timeout 30m -parallel 8 "$@"
