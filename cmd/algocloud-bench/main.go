// Command algocloud-bench measures the platform core's figures on this
// machine, each next to a baseline measured in the same run (the code and
// what it measures: package bench/platformbench). Run it from the repository
// (scripts/bench.sh builds bin/ first):
//
//	go run ./cmd/algocloud-bench -out docs/benchmarks-platform.md
package main

import (
	"os"

	"github.com/algocloud/algocloud/bench/platformbench"
)

func main() { os.Exit(platformbench.Main(os.Args[1:])) }
