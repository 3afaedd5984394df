// Command algocloud-bench-sandbox measures what sandboxing author code
// costs (bench/sandboxbench): Test Code, Complete to first answer, image
// throughput and a pip install, with and without the sandbox in one run.
package main

import (
	"os"

	"github.com/algocloud/algocloud/bench/sandboxbench"
)

func main() { os.Exit(sandboxbench.Main(os.Args[1:])) }
