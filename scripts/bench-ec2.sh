#!/usr/bin/env bash
# EC2 provider under faults (issue 4): Provision + Start (health) + Release
# against moto through internal/testenv/faultproxy, with and without injected faults
# (20% throttling, 5% 500s, 5% dropped connections), interleaved in one run;
# then workers (re-executed test processes) SIGKILLed at random points between
# moto's answer and the worker, restarted, some deployments deleted, and the
# instances counted. Needs moto_server (scripts/moto.sh, run by scripts/setup-test.sh).
# Environment: ALGOCLOUD_BENCH_EC2_N (deployments per side, default 6),
# ALGOCLOUD_BENCH_EC2_KILLS (default 20), ALGOCLOUD_BENCH_EC2_SEED (default 1).
# The report goes to stdout; no test asserts these times. It exits non-zero
# when a deployment fails or an instance or security group is orphaned.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load before: $(cat /proc/loadavg)" >&2
ALGOCLOUD_BENCH_EC2=1 exec go test ./activities/compute/ec2 -run '^TestBenchEC2Faults$' \
  -count=1 -v -timeout 40m "$@"
