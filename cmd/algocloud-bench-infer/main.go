// Command algocloud-bench-infer measures the inference server against its
// baselines, side by side in one run, and prints the figures with ratios
// (the code and what it measures: package bench/inferbench). Run it from
// the repository root (scripts/bench-inference.sh builds the binaries first):
//
//	bin/algocloud-bench-infer -infer-bin bin/algocloud-infer -out docs/benchmarks-inference.md
package main

import (
	"os"

	"github.com/algocloud/algocloud/bench/inferbench"
)

func main() { os.Exit(inferbench.Main(os.Args[1:])) }
