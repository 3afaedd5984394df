package inferbench

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestReportGolden renders the inference report of fixed figures (a full
// run with ratios, a partial one, and the ONNX section with a full and an
// incomplete model, and skipped) and compares it with
// testdata/report.golden.md, so that moving the report's code keeps its
// bytes. The lines naming this machine and the time are masked.
// UPDATE_GOLDEN=1 rewrites the file after a change meant to alter it.
func TestReportGolden(t *testing.T) {
	defer func(n int) { cores = n }(cores)
	cores = 2 // the golden file's machine
	lr := func(conc, ok int) loadResult {
		return loadResult{conc: conc, ok: ok, lat: []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond}, elapsed: time.Second, respLen: 99, statuses: map[int]int{500: 1}}
	}
	m := func(name string, conc int) measured {
		return measured{loadResult: lr(conc, 10*conc), name: name, cpuSelf: 1, cpuKids: 0.5, rssMiB: 30, othersCores: 0.1, genCores: 0.2}
	}
	o := options{threads: 2, warm: time.Second, dur: 2 * time.Second, python: "/nonexistent"}
	r := &report{o: o, loadBefore: "1 2 3", loadAfter: "4 5 6", inputBytes: 1234,
		limits: []limitResult{{Procs: 1, ItemsPerS: 10}, {Procs: 2, ItemsPerS: 18}, {Procs: 2, Level: "1", ItemsPerS: 20}},
		loads:  []measured{m("algocloud-infer", 1), m("Cog-style (FastAPI + uvicorn)", 1), m("algocloud-infer", 8), m("Cog-style (FastAPI + uvicorn)", 8)},
		mem:    m("algocloud-infer", 64), memCog: m("Cog-style (FastAPI + uvicorn)", 64),
		batched: []measured{m("b", 8), m("b", 8)}, unbatched: []measured{m("u", 8), m("u", 8)}, batchSizes: []float64{3.5, 4},
		transfer: []transferLine{{name: "memcpy", mbPerS: 5000}, {name: "to_python/pipe1MiB", mbPerS: 1500, nsPerOp: 3e7}},
		dispatch: []measured{m("d", 1)}, profileTop: "top\n"}
	mask := func(s string) string { // the lines naming the machine and the time
		var out []string
		for _, l := range strings.Split(s, "\n") {
			if strings.HasPrefix(l, "Produced by") {
				l = "Produced by MASKED"
			}
			out = append(out, l)
		}
		return strings.Join(out, "\n")
	}
	spec := onnxSpecs([]int{1, 2})
	var rows []onnxResult
	for round := 0; round < 2; round++ {
		for i, s := range spec {
			rows = append(rows, onnxResult{onnxRowSpec: s, name: string(s.kind), batch: 8, perS: float64(10 + i + round), p50: 1, p99: 2, errors: "none", meanBatch: float64(i % 2), cpuPerImage: float64(1 + i), othersCores: 0.1, genCores: 0.1})
		}
	}
	onnx := &onnxReport{maxB: 8, delay: 5 * time.Millisecond, version: "1.2", models: []*onnxModelReport{
		{model: onnxModels["cls"], specs: spec, rows: rows, profile: "prof\n"},
		{model: onnxModels["det"], specs: spec, rows: rows[:3], profile: "never\n"},
	}}
	partial := *r
	partial.transfer = nil
	got := mask(r.String()) + "\n----\n" + mask(partial.String()) + "\n----\n" + mask(onnx.String()) + "\n----\n" + mask((&onnxReport{skipped: "no lib"}).String())
	const golden = "testdata/report.golden.md"
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		require.NoError(t, os.WriteFile(golden, []byte(got), 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), got)
}
