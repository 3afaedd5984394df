// Package inferbench is the code of the algocloud-bench-infer command
// (cmd/algocloud-bench-infer, run by scripts/bench-inference.sh). It
// measures the inference server against its baselines, side by side in one
// run, and prints the figures with ratios:
//
//   - an identity predict on a 512×512 RGB PNG through algocloud-infer (plain
//     HTTP on loopback) at concurrency 1 and 8: throughput, p50, p99;
//   - the limit: the same Python work (PIL decode → predict → PIL encode PNG)
//     in a loop with no server, in 1 and 2 processes;
//   - a Cog-style FastAPI + uvicorn server doing the same work, under the
//     same load generator;
//   - the Go server's peak RSS at concurrency 64;
//   - predict_batch at max_batch_size 8 against plain predict;
//   - Go↔Python transfer of a 4096×4096×3 uint8 array (BenchmarkTransfer in
//     ./inference) against a memcpy;
//   - ONNX models (environment onnx: PP-OCRv4's detector, image→image, and
//     PP-OCR's direction classifier, image→JSON) at concurrency 16: the
//     server batched and unbatched at each -onnx-threads value against
//     direct Run on full batches (onnx.go), with -onnx-profile a perf and a
//     Go profile of the batched server (onnxprof.go), written to its own
//     block of -out.
//
// Run the command from the repository root (scripts/bench-inference.sh builds the
// binaries first):
//
//	bin/algocloud-bench-infer -infer-bin bin/algocloud-infer -out docs/benchmarks-inference.md
//
// Nothing here asserts a time; the figures are for people.
package inferbench

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/spec"
)

type options struct {
	inferBin string
	python   string
	out      string
	threads  int
	dur      time.Duration
	warm     time.Duration
	limitDur time.Duration
	memConc  int
	transfer bool
	cpuprof  string
	keep     bool
	only     map[string]bool
	logFile  string
	baseBin  string
	// ONNX section: the batched server's max_batch_size and max_queue_delay.
	onnxBatch  int
	onnxDelay  time.Duration
	onnxRounds int
	// ONNX section: the models (det, cls), the servers' threads values, and
	// the folder for profiles (-onnx-profile; empty: none).
	onnxModels  []string
	onnxThreads []int
	onnxProfile string
}

// oursName names algocloud-infer's rows.
const oursName = "algocloud-infer"

// runs reports whether part is to be measured (-only).
func (o options) runs(part string) bool { return len(o.only) == 0 || o.only[part] }

// Main parses args (the command line after the program name) as
// algocloud-bench-infer's flags, runs the measurements, prints the report
// (and writes it into -out's blocks) and returns the process's exit code.
func Main(args []string) int {
	var o options
	fs := flag.NewFlagSet("algocloud-bench-infer", flag.ExitOnError)
	fs.StringVar(&o.inferBin, "infer-bin", "bin/algocloud-infer", "the algocloud-infer binary")
	fs.StringVar(&o.python, "python", "/usr/bin/python3", "Python with numpy, Pillow, fastapi and uvicorn")
	fs.StringVar(&o.out, "out", "", "also write the report (markdown) to this file")
	fs.IntVar(&o.threads, "threads", runtime.NumCPU(), "Python workers of algocloud-infer, and processes of the 2-process limit")
	fs.DurationVar(&o.dur, "duration", 10*time.Second, "measured time per load run")
	fs.DurationVar(&o.warm, "warmup", 2*time.Second, "unmeasured time before each load run")
	fs.DurationVar(&o.limitDur, "limit-duration", 10*time.Second, "time per no-server limit run")
	fs.IntVar(&o.memConc, "mem-concurrency", 64, "concurrency of the memory run")
	fs.BoolVar(&o.transfer, "transfer", true, "run BenchmarkTransfer (go test) too")
	fs.StringVar(&o.cpuprof, "cpuprofile", "", "profile an in-process server at concurrency 8 into this file")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary folder")
	only := fs.String("only", "", "measure only these parts, comma-separated: limit, load, mem, batch, dispatch, onnx (for quick checks; the report is partial)")
	fs.IntVar(&o.onnxBatch, "onnx-max-batch", 8, "ONNX section: max_batch_size of the batched server, and the direct loop's batch")
	fs.DurationVar(&o.onnxDelay, "onnx-delay", 5*time.Millisecond, "ONNX section: max_queue_delay of the batched server")
	fs.IntVar(&o.onnxRounds, "onnx-rounds", 2, "ONNX section: alternated rounds of its rows")
	onnxModel := fs.String("onnx-model", "both", "ONNX section: det (PP-OCRv4 detector, image→image), cls (PP-OCR direction classifier, image→JSON) or both")
	onnxThreads := fs.String("onnx-threads", "1,2", "ONNX section: the servers' threads values, comma-separated (each gets a batched, an unbatched and a direct Run row)")
	fs.StringVar(&o.onnxProfile, "onnx-profile", "", "ONNX section: profile one batched server per model (perf record, and Go's profiler in process) into this folder")
	fs.StringVar(&o.logFile, "server-log", "", "append algocloud-infer's log (stderr) to this file")
	fs.StringVar(&o.baseBin, "baseline-infer-bin", "", "another algocloud-infer build (e.g. before a change) to measure beside this one in the dispatch rows")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits 2 after the usage, as before
	if *only != "" {
		o.only = map[string]bool{}
		for _, p := range strings.Split(*only, ",") {
			o.only[strings.TrimSpace(p)] = true
		}
	}
	log.SetFlags(0)
	switch *onnxModel {
	case "det", "cls":
		o.onnxModels = []string{*onnxModel}
	case "both":
		o.onnxModels = []string{"det", "cls"}
	default:
		log.Printf("algocloud-bench-infer: -onnx-model %q: want det, cls or both", *onnxModel)
		return 1
	}
	for _, f := range strings.Split(*onnxThreads, ",") {
		t, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || t < 1 {
			log.Printf("algocloud-bench-infer: -onnx-threads %q: want positive integers, comma-separated", *onnxThreads)
			return 1
		}
		o.onnxThreads = append(o.onnxThreads, t)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	r, err := run(ctx, o)
	if err != nil {
		log.Printf("algocloud-bench-infer: %v", err)
		return 1
	}
	mainParts := !(len(o.only) == 1 && o.only["onnx"]) // -only onnx leaves the main block as it is
	if mainParts {
		report := r.String()
		fmt.Print(report)
		if o.out != "" {
			if err := writeBlock(o.out, beginMark, endMark, report); err != nil {
				log.Printf("write %s: %v", o.out, err)
				return 1
			}
		}
	}
	if r.onnx != nil {
		report := r.onnx.String()
		fmt.Print("\n" + report)
		if o.out != "" {
			if err := writeBlock(o.out, onnxBeginMark, onnxEndMark, report); err != nil {
				log.Printf("write %s: %v", o.out, err)
				return 1
			}
		}
	}
	return 0
}

// The report replaces what lies between these markers in -out, so that the
// text people wrote around the figures stays.
const (
	beginMark = "<!-- bench:inference:begin (written by task bench:inference) -->\n"
	endMark   = "<!-- bench:inference:end -->\n"
)

// writeBlock replaces what lies between begin and end in path with report;
// without the markers, the block is appended (the file is made if missing).
func writeBlock(path, begin, end, report string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	i, j := strings.Index(text, begin), strings.Index(text, end)
	switch {
	case i < 0 || j < i:
		if text != "" && !strings.HasSuffix(text, "\n") {
			text += "\n"
		}
		text += begin + report + end
	default:
		text = text[:i] + begin + report + end + text[j+len(end):]
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// identityCode is the algorithm measured: predict returns its input.
const identityCode = "class AAI:\n    def predict(self, x):\n        return x\n"

// batchLoopCode is the same work through predict_batch: what a worker does
// when it fans a batch out one by one.
const batchLoopCode = "class AAI:\n    def predict(self, x):\n        return x\n\n" +
	"    def predict_batch(self, xs):\n        return [self.predict(x) for x in xs]\n"

// run measures the parts -only selects, in order (the limit first, while
// nothing else runs), in a temporary folder.
func run(ctx context.Context, o options) (*report, error) {
	tmp, err := os.MkdirTemp("", "algocloud-bench-infer-")
	if err != nil {
		return nil, err
	}
	if o.keep {
		log.Printf("keeping %s", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	env, err := prepare(tmp, o)
	if err != nil {
		return nil, err
	}
	r := &report{o: o, loadBefore: loadavg(), inputBytes: len(env.png)}
	log.Printf("input: 512x512 RGB PNG, %d bytes; load %s", len(env.png), r.loadBefore)

	// The limit first, while nothing else runs.
	if err := runLimits(ctx, o, env, r); err != nil {
		return nil, err
	}
	if o.runs("load") || o.runs("mem") {
		if err := runLoadAndMem(ctx, o, env, r); err != nil {
			return nil, err
		}
	}
	if o.runs("batch") {
		if err := runBatch(ctx, o, env, r); err != nil {
			return nil, err
		}
	}
	if o.runs("dispatch") {
		if r.dispatch, err = measureDispatch(ctx, o, env); err != nil {
			return nil, err
		}
	}
	if o.cpuprof != "" {
		log.Printf("profile: in-process server at concurrency 8")
		if r.profileTop, err = profileInProcess(ctx, o, env); err != nil {
			return nil, err
		}
	}
	if o.transfer {
		log.Printf("transfer: go test -bench Transfer ./inference")
		if r.transfer, err = runTransfer(ctx); err != nil {
			return nil, err
		}
	}
	if o.runs("onnx") {
		if r.onnx, err = measureONNX(ctx, o, tmp); err != nil {
			return nil, err
		}
	}
	r.loadAfter = loadavg()
	return r, nil
}

// runLimits measures limit.py with no server: 1 process, -threads
// processes, and -threads processes at PNG level 1.
func runLimits(ctx context.Context, o options, env *env, r *report) error {
	for _, l := range []struct {
		procs int
		level string
	}{{1, ""}, {o.threads, ""}, {o.threads, "1"}} {
		if !o.runs("limit") {
			break
		}
		log.Printf("limit: %d process(es), PNG level %q", l.procs, l.level)
		lr, err := runLimit(ctx, o, env, l.procs, l.level)
		if err != nil {
			return err
		}
		r.limits = append(r.limits, lr)
	}
	return nil
}

// runLoadAndMem runs the load (concurrency 1 and 8) and memory runs
// through algocloud-infer and the Cog-style server, side by side.
func runLoadAndMem(ctx context.Context, o options, env *env, r *report) error {
	ours, err := startOurs(ctx, o, o.inferBin, oursName, env.identityDir, spec.Image, spec.Image, 1)
	if err != nil {
		return err
	}
	defer ours.stop()
	cog, err := startCog(ctx, o, env)
	if err != nil {
		return err
	}
	defer cog.stop()
	for _, conc := range []int{1, 8} {
		for _, s := range []*server{ours, cog} {
			if o.runs("load") {
				log.Printf("load: %s at concurrency %d", s.t.name, conc)
				r.loads = append(r.loads, s.measure(ctx, env, conc, o))
			}
		}
	}
	if o.runs("mem") {
		log.Printf("memory: %s and the Cog-style server at concurrency %d", ours.t.name, o.memConc)
		r.mem = ours.measure(ctx, env, o.memConc, o)
		r.memCog = cog.measure(ctx, env, o.memConc, o)
	}
	ours.stop()
	cog.stop()
	return nil
}

// runBatch alternates predict at max_batch_size 1 and a predict_batch loop
// at max_batch_size 8, twice, so that both see the same share of the
// machine.
func runBatch(ctx context.Context, o options, env *env, r *report) error {
	for range 2 {
		for _, v := range []struct {
			name, dir string
			maxBatch  int
		}{{oursName + ", predict", env.identityDir, 1}, {oursName + ", predict_batch loop, max_batch_size 8", env.batchDir, 8}} {
			s, err := startOurs(ctx, o, o.inferBin, v.name, v.dir, spec.Image, spec.Image, v.maxBatch)
			if err != nil {
				return err
			}
			log.Printf("load: %s, concurrency 8", v.name)
			m := s.measure(ctx, env, 8, o)
			if v.maxBatch > 1 {
				r.batched = append(r.batched, m)
				r.batchSizes = append(r.batchSizes, s.batchSizes())
			} else {
				r.unbatched = append(r.unbatched, m)
			}
			s.stop()
		}
	}
	return nil
}

// env is what every run shares: the input image and the algorithms' folders.
type env struct {
	png                   []byte
	pngPath               string
	identityDir, batchDir string
	jsonDir               string
	cogPy, limitPy        string
}

func prepare(tmp string, o options) (*env, error) {
	img, err := pngOf(naturalImage(512, 512))
	if err != nil {
		return nil, err
	}
	e := &env{png: img, pngPath: filepath.Join(tmp, "input.png"), identityDir: filepath.Join(tmp, "identity"),
		batchDir: filepath.Join(tmp, "batchloop"), jsonDir: filepath.Join(tmp, "echo"), cogPy: filepath.Join(tmp, "cogstyle.py"), limitPy: filepath.Join(tmp, "limit.py")}
	files := map[string]string{
		e.pngPath: string(img), e.cogPy: cogstylePy, e.limitPy: limitPy,
		filepath.Join(e.identityDir, "aai_main.py"): identityCode,
		filepath.Join(e.batchDir, "aai_main.py"):    batchLoopCode,
		filepath.Join(e.jsonDir, "aai_main.py"):     identityCode,
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return nil, err
		}
	}
	return e, nil
}

func short(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
