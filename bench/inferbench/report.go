package inferbench

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// cores is the machine's CPU count, as the reports state and use it; a
// variable so that TestReportGolden reads the same on any machine.
var cores = runtime.NumCPU()

// report gathers one run's figures and prints them as markdown.
type report struct {
	o                     options
	loadBefore, loadAfter string
	inputBytes            int
	limits                []limitResult // 1 process; threads processes; threads processes at PNG level 1
	loads                 []measured    // ours and Cog-style at concurrency 1, then 8
	mem, memCog           measured
	batched, unbatched    []measured // alternated runs at concurrency 8
	batchSizes            []float64
	transfer              []transferLine
	profileTop            string
	dispatch              []measured
	onnx                  *onnxReport // the ONNX section, printed to its own block
}

func (r *report) find(name string, conc int) measured {
	for _, m := range r.loads {
		if m.name == name && m.conc == conc {
			return m
		}
	}
	return measured{}
}

// String is the report in markdown: the run's header, then the sections of
// the parts that ran; ratios against the goals only after a full run.
func (r *report) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	r.writeHeader(p)
	r.writeLimits(p)
	r.writeServers(p)
	r.writeDispatch(p)
	if len(r.loads) == 0 || len(r.limits) < 3 || r.mem.conc == 0 || len(r.batched) == 0 || len(r.transfer) == 0 {
		p("(A partial run (-only, -transfer=false): no ratios.)\n")
		r.printProfile(p)
		return b.String()
	}
	r.writeRatios(p)
	r.writeTransfer(p)
	r.printProfile(p)
	return b.String()
}

// writeHeader names the command, the machine, the input and the load.
func (r *report) writeHeader(p func(string, ...any)) {
	o := r.o
	p("## Inference server\n\n")
	p("Produced by `task bench:inference` (`scripts/bench-inference.sh`, which runs `bin/algocloud-bench-infer`) on %s: %s, %d cores, %s, %s.\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), cores, runtime.Version(), pythonVersion(o.python))
	p("Load average (1/5/15 min) before: %s, after: %s; the machine is shared, so figures move between runs: compare within a run.\n\n", r.loadBefore, r.loadAfter)
	p("Input: a 512×512 RGB PNG of a synthetic landscape (gradients, soft blobs, sensor noise σ≈3), %d bytes; `predict` returns its input. ", r.inputBytes)
	p("algocloud-infer serves plain HTTP on loopback with %d Python workers (`threads`), no TLS; the load generator (closed loop, keep-alive) runs on the same machine. ", o.threads)
	p("Each load run: %s warm-up, then %s measured. Answers are checked by pixels.\n\n", o.warm, o.dur)

}

// writeLimits is the no-server limit's table.
func (r *report) writeLimits(p func(string, ...any)) {
	if len(r.limits) > 0 {
		p("### The limit: the same Python work in a loop, no server\n\n")
		p("| processes | PNG level | items/s | decode ms | predict ms | encode ms | PNG bytes | others' cores |\n|---|---|---|---|---|---|---|---|\n")
	}
	for _, l := range r.limits {
		level := "PIL default (6)"
		if l.Level != "" {
			level = l.Level
		}
		p("| %d | %s | %.1f | %.1f | %.2f | %.1f | %d | %.2f |\n", l.Procs, level, l.ItemsPerS, l.DecodeMS, l.PredictMS, l.EncodeMS, l.PNGBytes, l.Others)
	}

}

// writeServers is the table of the load, memory and batch runs.
func (r *report) writeServers(p func(string, ...any)) {
	o := r.o
	p("\n")
	if len(r.loads) > 0 || r.mem.conc > 0 || len(r.batched) > 0 {
		p("### Through a server\n\n")
		p("| server | concurrency | req/s | p50 ms | p99 ms | errors | response bytes | server CPU ms/req | workers CPU ms/req | peak RSS MiB | others' cores |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	}
	row := func(m measured) {
		if m.conc == 0 {
			return
		}
		kids := "—"
		if m.cpuKids > 0 {
			kids = fmt.Sprintf("%.1f", m.cpuPerReq(m.cpuKids, o.warm))
		}
		p("| %s | %d | %.1f | %.1f | %.1f | %s | %d | %.1f | %s | %.0f | %.2f |\n", m.name, m.conc, m.rps(), m.pct(50), m.pct(99),
			orDash(m.errors()), m.respLen, m.cpuPerReq(m.cpuSelf, o.warm), kids, m.rssMiB, m.othersCores)
	}
	for _, m := range r.loads {
		row(m)
	}
	row(r.mem)
	row(r.memCog)
	for i := range r.batched {
		row(r.unbatched[i])
		row(r.batched[i])
	}
	if len(r.loads) > 0 || r.mem.conc > 0 || len(r.batched) > 0 {
		p("\nServer CPU is the serving process (for algocloud-infer: Go, which decodes and encodes the PNGs); workers CPU is algocloud-infer's Python workers. ")
		p("RSS is the serving process alone (algocloud-infer without its workers). Others' cores: the machine's busy CPU during the run that was neither the server, its workers nor the load generator (other people's work on this shared machine), in cores out of %d. ", cores)
		p("The last rows alternate two servers, twice: `predict` at max_batch_size 1, and `predict_batch = [predict(x) for x in xs]` at max_batch_size 8, ")
		p("what fanning a batch out inside a worker would cost; mean batch sizes there: %v.\n\n", fmtFloats(r.batchSizes))
	}

}

// writeDispatch is the JSON echo's table.
func (r *report) writeDispatch(p func(string, ...any)) {
	o := r.o
	if len(r.dispatch) > 0 {
		p("### Dispatch alone: a JSON echo (no image codecs), max_batch_size 1\n\n")
		p("| server | concurrency | req/s | p50 ms | p99 ms | errors | server CPU ms/req | workers CPU ms/req | others' cores |\n|---|---|---|---|---|---|---|---|---|\n")
		for _, m := range r.dispatch {
			p("| %s | %d | %.0f | %.2f | %.2f | %s | %.2f | %.2f | %.2f |\n", m.name, m.conc, m.rps(), m.pct(50), m.pct(99), orDash(m.errors()),
				m.cpuPerReq(m.cpuSelf, o.warm), m.cpuPerReq(m.cpuKids, o.warm), m.othersCores)
		}
		p("\n")
	}
}

// writeRatios is the table of the ratios against the goals; its
// transfer rows follow from writeTransfer.
func (r *report) writeRatios(p func(string, ...any)) {
	p("### Ratios against the goals\n\n")
	ours8, cog8 := r.find("algocloud-infer", 8), r.find("Cog-style (FastAPI + uvicorn)", 8)
	ours1, cog1 := r.find("algocloud-infer", 1), r.find("Cog-style (FastAPI + uvicorn)", 1)
	p("| figure | value | goal |\n|---|---|---|\n")
	p("| throughput at concurrency 8, algocloud-infer / Cog-style | %.2f× (%.1f / %.1f req/s) | ≥ 2× |\n", ratio(ours8.rps(), cog8.rps()), ours8.rps(), cog8.rps())
	{
		lim, lim1 := r.limits[1], r.limits[2]
		p("| throughput at concurrency 8, algocloud-infer / limit (%d processes, PIL default level) | %.0f%% (%.1f / %.1f) | ≥ 80%% |\n",
			lim.Procs, 100*ratio(ours8.rps(), lim.ItemsPerS), ours8.rps(), lim.ItemsPerS)
		p("| same, against the limit at PNG level 1 (the level algocloud-infer writes) | %.0f%% (%.1f / %.1f) | — |\n",
			100*ratio(ours8.rps(), lim1.ItemsPerS), ours8.rps(), lim1.ItemsPerS)
		p("| limit, %d processes / 1 process | %.2f× | — |\n", lim.Procs, ratio(lim.ItemsPerS, r.limits[0].ItemsPerS))
	}
	p("| p50 at concurrency 1, algocloud-infer / Cog-style | %.2f (%.1f / %.1f ms) | ≤ 1 |\n", ratio(ours1.pct(50), cog1.pct(50)), ours1.pct(50), cog1.pct(50))
	p("| algocloud-infer peak RSS at concurrency %d | %.0f MiB (%.1f req/s, errors: %s) | < 100 MB |\n", r.mem.conc, r.mem.rssMiB, r.mem.rps(), orDash(r.mem.errors()))
	p("| predict_batch loop at max_batch_size 8 / predict, concurrency 8, alternated runs | %.2f× (%.1f / %.1f req/s) | — |\n",
		ratio(sumRPS(r.batched), sumRPS(r.unbatched)), sumRPS(r.batched)/float64(len(r.batched)), sumRPS(r.unbatched)/float64(len(r.unbatched)))
}

// writeTransfer ends the ratios table with the transfer rows and says how
// they were measured.
func (r *report) writeTransfer(p func(string, ...any)) {
	var memcpy float64
	for _, t := range r.transfer {
		if t.name == "memcpy" {
			memcpy = t.mbPerS
		}
	}
	for _, t := range r.transfer {
		if t.name == "memcpy" {
			continue
		}
		goal := "—"
		if strings.HasSuffix(t.name, "pipe1MiB") {
			goal = "≥ 1 GB/s"
		}
		p("| transfer 4096×4096×3 uint8, %s | %.0f MB/s (%.1f ms/op; %.0f%% of memcpy's %.0f MB/s) | %s |\n",
			t.name, t.mbPerS, t.nsPerOp/1e6, 100*ratio(t.mbPerS, memcpy), memcpy, goal)
	}
	p("\nTransfer: `go test -run '^$' -bench '^BenchmarkTransfer$' -benchtime 20x ./inference/`; to_python and from_python move the array one way (MB/s = 50.3 MB / time), roundtrip is an identity predict (MB/s counts both directions). pipe1MiB is what the server uses (F_SETPIPE_SZ).\n")
}

func (r *report) printProfile(p func(string, ...any)) {
	if r.profileTop != "" {
		p("\n### CPU profile: in-process server at concurrency 8 (load generator included)\n\n```\n%s```\n", r.profileTop)
	}
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func orDash(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "model name"); ok {
			return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
		}
	}
	return runtime.GOARCH
}

func pythonVersion(py string) string {
	out, err := exec.Command(py, "-c", "import sys, PIL, numpy; print('Python %d.%d.%d' % sys.version_info[:3], 'Pillow', PIL.__version__, 'numpy', numpy.__version__)").Output()
	if err != nil {
		return py
	}
	return strings.TrimSpace(string(out))
}

func sumRPS(ms []measured) float64 {
	var s float64
	for _, m := range ms {
		s += m.rps()
	}
	return s
}

func fmtFloats(fs []float64) string {
	parts := make([]string, len(fs))
	for i, f := range fs {
		parts[i] = fmt.Sprintf("%.2f", f)
	}
	return strings.Join(parts, ", ")
}
