// Command algocloud-bench-swap measures a redeploy under load: the agent's
// zero-downtime swap against today's stop-and-start, in one run
// (bench/swapbench; docs/benchmarks.md, *Redeploy under load*).
package main

import (
	"os"

	"github.com/algocloud/algocloud/bench/swapbench"
)

func main() { os.Exit(swapbench.Main(os.Args[1:])) }
