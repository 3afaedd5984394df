#!/usr/bin/env bash
# Inference server benchmarks (issue 3), side by side in one run with ratios:
# identity predict on a 512x512 PNG through algocloud-infer (plain HTTP on
# loopback) at concurrency 1 and 8, the same Python work in a loop with no
# server (1 and 2 processes), a Cog-style FastAPI + uvicorn server under the
# same load generator, the Go server's RSS at concurrency 64, predict_batch,
# the Go<->Python transfer of a 4096x4096x3 array against a memcpy, and ONNX
# models (environment onnx: PP-OCRv4's detector, image->image, and PP-OCR's
# direction classifier, image->JSON) at concurrency 16: batched and unbatched
# servers at threads 2 and 1 against direct Run on full batches (needs
# scripts/onnxruntime.sh; skipped with a note without it).
# Builds only bin/algocloud-infer and bin/algocloud-bench-infer (not the
# platform binary). The report goes to stdout and docs/benchmarks-inference.md.
# Extra arguments go to algocloud-bench-infer, e.g.
#   ./scripts/bench-inference.sh -duration 20s -cpuprofile /tmp/infer.prof
#   ./scripts/bench-inference.sh -only onnx -duration 8s   # the ONNX block alone
#   ./scripts/bench-inference.sh -only onnx -onnx-model cls -onnx-threads 2,1 -onnx-profile /tmp/prof
#     (one model; the servers' threads values; perf + Go profiles of the batched server)
# Needs /usr/bin/python3 with numpy, Pillow, fastapi and uvicorn
# (scripts/setup-test.sh). No test asserts these times.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/algocloud-infer ./cmd/algocloud-infer
go build -o bin/algocloud-bench-infer ./cmd/algocloud-bench-infer
echo "load before: $(cat /proc/loadavg)" >&2
exec bin/algocloud-bench-infer -infer-bin bin/algocloud-infer -out docs/benchmarks-inference.md "$@"
