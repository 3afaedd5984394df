package main

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// The ONNX section (issue 3): "an ONNX model at concurrency 16: batched,
// unbatched, and direct Run on full batches (the limit)", through
// algocloud-infer with environment onnx.

// onnxModelFile is PP-OCRv4's text detector, installed by scripts/onnxruntime.sh.
const onnxModelFile = "third_party/onnxruntime/models/ch_PP-OCRv4_det_infer.onnx"

// onnxBenchConfig serves it as PaddleOCR preprocesses (letterbox into
// 320×320, BGR, ImageNet mean/std), the probability map restored to the
// request's size (a grayscale PNG).
const onnxBenchConfig = `{"model": "det.onnx",
  "preprocess": {"width": 320, "height": 320, "resize": "letterbox", "channel_order": "BGR",
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "postprocess": {"kind": "image", "restore_size": true},
  "max_batch_size": %d}`

// onnxConc is the load's concurrency.
const onnxConc = 16

// onnxImageW and onnxImageH size the request image (landscape, as naturalImage draws).
const onnxImageW, onnxImageH = 384, 288

// onnxResult is one ONNX row: a server under load, or a direct loop.
type onnxResult struct {
	name        string
	batch       int     // max_batch_size (server) or the batch size (direct)
	perS        float64 // answered images per second
	p50, p99    float64 // ms: per request (server), per batch call (direct)
	errors      string
	meanBatch   float64 // server: mean batch from /metrics
	serverCPU   float64 // server: CPU ms per image (the whole process: Go and ONNX Runtime)
	othersCores float64
}

// perFreeCore is images/s per core that other processes left free.
func (r onnxResult) perFreeCore() float64 {
	return r.perS / max(0.25, float64(runtime.NumCPU())-r.othersCores)
}

// onnxReport is the ONNX section: onnxRowsPerRound rows per alternated round.
type onnxReport struct {
	rows    []onnxResult
	maxB    int
	delay   time.Duration
	version string
	skipped string // why the section did not run
}

// onnxRowsPerRound: server batched, server unbatched, direct Run, direct Predict.
const onnxRowsPerRound = 4

// measureONNX runs the ONNX section: -onnx-rounds rounds of (server batched,
// server unbatched, direct Run on full batches, direct Pipeline.Predict on
// full batches), alternated so that each sees the same share of the machine.
func measureONNX(ctx context.Context, o options, tmp string) (*onnxReport, error) {
	rep := &onnxReport{maxB: o.onnxBatch, delay: o.onnxDelay}
	lib, err := onnxrt.LibraryPath("")
	if err == nil {
		_, err = os.Stat(onnxModelFile)
	}
	if err != nil {
		if o.only["onnx"] {
			return nil, fmt.Errorf("onnx: %w (run scripts/onnxruntime.sh)", err)
		}
		rep.skipped = err.Error()
		log.Printf("onnx: skipped: %v", err)
		return rep, nil
	}
	if lib, err = filepath.Abs(lib); err != nil {
		return nil, err
	}
	model, err := filepath.Abs(onnxModelFile)
	if err != nil {
		return nil, err
	}
	if err := onnxrt.Init(lib); err != nil {
		return nil, err
	}
	rep.version = onnxrt.Version()
	dir := filepath.Join(tmp, "onnx-det")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(model, filepath.Join(dir, "det.onnx")); err != nil {
		return nil, err
	}
	// The run batch (aai_onnx.json) equals the server's max_batch_size, so a
	// full server batch is one Run, as in the direct loop.
	if err := os.WriteFile(filepath.Join(dir, onnxrt.ConfigFile), fmt.Appendf(nil, onnxBenchConfig, o.onnxBatch), 0o644); err != nil {
		return nil, err
	}
	body, err := pngOf(naturalImage(onnxImageW, onnxImageH))
	if err != nil {
		return nil, err
	}
	check := func(out []byte) bool {
		c, format, err := image.DecodeConfig(bytes.NewReader(out))
		return err == nil && format == "png" && c.Width == onnxImageW && c.Height == onnxImageH
	}
	servers := []struct {
		name     string
		maxBatch int
		delay    time.Duration
	}{
		{fmt.Sprintf("server, max_batch_size %d, max_queue_delay %s", o.onnxBatch, o.onnxDelay), o.onnxBatch, o.onnxDelay},
		{"server, unbatched (max_batch_size 1)", 1, 0},
	}
	// measure makes row k of a round: the two servers, then direct Run and
	// direct Predict.
	measure := func(k int) (onnxResult, error) {
		if k >= len(servers) {
			return directONNX(ctx, o, dir, body, k == 3)
		}
		v := servers[k]
		s, err := startOurs(ctx, o, o.inferBin, v.name, dir, spec.Image, spec.Image, v.maxBatch, func(c *inference.Config) {
			c.Environment, c.ONNXRuntimeLib, c.Threads = spec.EnvONNX, lib, 1
			c.MaxQueueDelay = inference.Duration(v.delay)
		})
		if err != nil {
			return onnxResult{}, err
		}
		m := s.measureBody(ctx, body, onnxConc, o, check)
		mean := s.batchSizes()
		s.stop()
		return onnxResult{name: v.name, batch: v.maxBatch, perS: m.rps(), p50: m.pct(50), p99: m.pct(99),
			errors: orDash(m.errors()), meanBatch: mean, serverCPU: m.cpuPerReq(m.cpuSelf, o.warm), othersCores: m.othersCores}, nil
	}
	for round := range max(1, o.onnxRounds) {
		rows := make([]onnxResult, onnxRowsPerRound)
		for i := range onnxRowsPerRound {
			k := i
			if round%2 == 1 { // every other round backwards, so that no row always follows the same one
				k = onnxRowsPerRound - 1 - i
			}
			r, err := measure(k)
			if err != nil {
				return nil, err
			}
			log.Printf("onnx round %d: %s: %.1f images/s", round+1, r.name, r.perS)
			rows[k] = r
		}
		rep.rows = append(rep.rows, rows...)
	}
	return rep, nil
}

// directONNX is the limit: Model.Run (or, with pipeline, Pipeline.Predict:
// preprocessing, Run, postprocessing) on full batches of max_batch_size in a
// loop in this process, with the session options the server uses for 1
// thread (intra-op threads = GOMAXPROCS, no spinning). Run gets the batch
// already preprocessed; Predict gets the decoded request images.
func directONNX(ctx context.Context, o options, dir string, body []byte, pipeline bool) (onnxResult, error) {
	p, err := onnxrt.Load(dir, onnxrt.Options{IntraOpThreads: runtime.GOMAXPROCS(0), NoSpinning: true})
	if err != nil {
		return onnxResult{}, err
	}
	defer p.Close()
	src, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		return onnxResult{}, err
	}
	img := onnxrt.FromImage(src)
	b := o.onnxBatch
	imgs := make([]onnxrt.Image, b)
	for i := range imgs {
		imgs[i] = img
	}
	c := p.Config()
	per := 3 * c.Preprocess.Width * c.Preprocess.Height
	in := onnxrt.Tensor{Shape: []int64{int64(b), 3, int64(c.Preprocess.Height), int64(c.Preprocess.Width)}, Data: make([]float32, b*per)}
	for i := range b {
		if _, err := c.Preprocess.Apply(img, in.Data[i*per:(i+1)*per]); err != nil {
			return onnxResult{}, err
		}
	}
	call := func() error {
		if pipeline {
			res, err := p.Predict(imgs)
			if err == nil && res[0].Err != nil {
				err = res[0].Err
			}
			return err
		}
		_, err := p.Model().Run(in)
		return err
	}
	name := fmt.Sprintf("direct Model.Run, full batches of %d (the limit)", b)
	if pipeline {
		name = fmt.Sprintf("direct Pipeline.Predict (preprocess + Run + postprocess), batches of %d", b)
	}
	busy0 := machineBusy()
	self0 := procCPU(os.Getpid())
	t0 := time.Now()
	var lat []time.Duration
	for warm := time.Now().Add(o.warm); time.Now().Before(warm) && ctx.Err() == nil; {
		if err := call(); err != nil {
			return onnxResult{}, err
		}
	}
	start := time.Now()
	for time.Since(start) < o.dur && ctx.Err() == nil {
		c0 := time.Now()
		if err := call(); err != nil {
			return onnxResult{}, err
		}
		lat = append(lat, time.Since(c0))
	}
	elapsed := time.Since(start)
	self := procCPU(os.Getpid()) - self0
	slices.Sort(lat)
	lr := loadResult{lat: lat}
	return onnxResult{name: name, batch: b, perS: float64(len(lat)*b) / elapsed.Seconds(), p50: lr.pct(50), p99: lr.pct(99),
		errors: "none", othersCores: max(0, (machineBusy()-busy0-self)/time.Since(t0).Seconds())}, nil
}

// String prints the ONNX section as markdown.
func (r *onnxReport) String() string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("## ONNX model through the server (`environment: onnx`)\n\n")
	if r.skipped != "" {
		p("Not measured: %s (run scripts/onnxruntime.sh).\n", r.skipped)
		return b.String()
	}
	p("Produced by `scripts/bench-inference.sh -only onnx` (`bin/algocloud-bench-infer`) on %s: %s, %d cores, %s, ONNX Runtime %s (CPU).\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), runtime.NumCPU(), runtime.Version(), r.version)
	p("Model: PaddleOCR's PP-OCRv4 text detector (`%s`), letterboxed into 320×320, its probability map restored to the request's size. ", filepath.Base(onnxModelFile))
	p("Request: a %d×%d RGB PNG (the synthetic landscape); answer: a %d×%d grayscale PNG, checked. ", onnxImageW, onnxImageH, onnxImageW, onnxImageH)
	p("Servers: algocloud-infer, plain HTTP on loopback, `threads` 1 (one batch runs at a time, with every core as ONNX Runtime intra-op threads, no spinning), closed-loop load at concurrency %d. ", onnxConc)
	p("Direct rows: the same session options in the benchmark's process, one call after another on full batches; their latency is per batch call, the servers' per request. ")
	p("%d rounds, the rows in this order, then backwards (so that no row always follows the same one); server CPU per image is the whole server process (Go and ONNX Runtime).\n\n", len(r.rows)/onnxRowsPerRound)
	p("| round | what | images/s | images/s per free core | p50 ms | p99 ms | errors | mean batch | server CPU ms/image | others' cores |\n|---|---|---|---|---|---|---|---|---|---|\n")
	per := onnxRowsPerRound
	for i, row := range r.rows {
		mean, cpu := "—", "—"
		if row.meanBatch > 0 {
			mean = fmt.Sprintf("%.2f", row.meanBatch)
			cpu = fmt.Sprintf("%.1f", row.serverCPU)
		}
		p("| %d | %s | %.1f | %.1f | %.1f | %.1f | %s | %s | %s | %.2f |\n", i/per+1, row.name, row.perS, row.perFreeCore(), row.p50, row.p99, row.errors, mean, cpu, row.othersCores)
	}
	if len(r.rows) == 0 || len(r.rows)%per != 0 {
		return b.String()
	}
	sum := func(k int, f func(onnxResult) float64) float64 {
		s := 0.0
		for i := k; i < len(r.rows); i += per {
			s += f(r.rows[i])
		}
		return s
	}
	raw := func(x onnxResult) float64 { return x.perS }
	free := onnxResult.perFreeCore
	p("\n| ratio (every round summed) | images/s | images/s per free core |\n|---|---|---|\n")
	line := func(what string, a, b int, pct bool) {
		x, y := ratio(sum(a, raw), sum(b, raw)), ratio(sum(a, free), sum(b, free))
		if pct {
			p("| %s | %.0f%% | %.0f%% |\n", what, 100*x, 100*y)
		} else {
			p("| %s | %.2f× | %.2f× |\n", what, x, y)
		}
	}
	line("batched server / unbatched server", 0, 1, false)
	line("batched server / direct Run on full batches (the limit)", 0, 2, true)
	line("unbatched server / direct Run on full batches", 1, 2, true)
	line("batched server / direct Pipeline.Predict", 0, 3, true)
	line("direct Pipeline.Predict / direct Run", 3, 2, true)
	p("\n*Per free core* divides images/s by the cores the others left (%d − others' cores): a rough correction for the shared machine, fair only because every row is CPU-bound.\n", runtime.NumCPU())
	return b.String()
}

// The ONNX section lives between its own markers in -out, so that a run of
// it alone (-only onnx) leaves the rest of the file as it is.
const (
	onnxBeginMark = "<!-- bench:onnx:begin (written by scripts/bench-inference.sh -only onnx) -->\n"
	onnxEndMark   = "<!-- bench:onnx:end -->\n"
)
