package inferbench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// The ONNX section (issue 3): "an ONNX model at concurrency 16: batched,
// unbatched, and direct Run on full batches (the limit)", through
// algocloud-infer with environment onnx, for one or two models (-onnx-model).

// onnxModel is one model the section measures: its file (installed by
// scripts/onnxruntime.sh), its aai_onnx.json, the request and how an answer
// is checked.
type onnxModel struct {
	key   string // what -onnx-model names: det or cls
	title string // the report's heading
	about string // the report's sentence on the model, its request and answer
	file  string
	link  string // the model's name in the algorithm's folder
	// config is aai_onnx.json, with %d for its max_batch_size.
	config string
	extra  map[string]string // other files of the folder (labels)
	out    spec.IOType
	req    func() image.Image
	check  func(out []byte) bool
}

// onnxConc is the load's concurrency.
const onnxConc = 16

// onnxImageW and onnxImageH size the detector's request image (landscape, as naturalImage draws).
const onnxImageW, onnxImageH = 384, 288

// clsLineW and clsLineH size the classifier's request image: a cropped text line.
const clsLineW, clsLineH = 200, 40

// onnxModels are the models -onnx-model chooses from.
var onnxModels = map[string]onnxModel{
	// PP-OCRv4's text detector, served as PaddleOCR preprocesses (letterbox
	// into 320×320, BGR, ImageNet mean/std), the probability map restored to
	// the request's size (a grayscale PNG). Much work per image (4.7 MB).
	"det": {
		key: "det", title: "PP-OCRv4 text detector (image → image)",
		about: fmt.Sprintf("PaddleOCR's PP-OCRv4 text detector (`ch_PP-OCRv4_det_infer.onnx`, 4.7 MB), letterboxed into 320×320, its probability map restored to the request's size. "+
			"Request: a %d×%d RGB PNG (the synthetic landscape); answer: a %d×%d grayscale PNG, checked.", onnxImageW, onnxImageH, onnxImageW, onnxImageH),
		file: "third_party/onnxruntime/models/ch_PP-OCRv4_det_infer.onnx", link: "det.onnx",
		config: `{"model": "det.onnx",
  "preprocess": {"width": 320, "height": 320, "resize": "letterbox", "channel_order": "BGR",
    "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
  "postprocess": {"kind": "image", "restore_size": true},
  "max_batch_size": %d}`,
		out: spec.Image,
		req: func() image.Image { return naturalImage(onnxImageW, onnxImageH) },
		check: func(out []byte) bool {
			c, format, err := image.DecodeConfig(bytes.NewReader(out))
			return err == nil && format == "png" && c.Width == onnxImageW && c.Height == onnxImageH
		},
	},
	// PP-OCR's text direction classifier, as PaddleOCR runs it (letterbox into
	// 3×48×192 at the top left, pad 127.5, BGR, mean/std 0.5), answered as its
	// top class with a label (JSON). Little work per image (0.6 MB): a call's
	// fixed cost weighs most here, so batching can pay on a CPU.
	"cls": {
		key: "cls", title: "PP-OCR direction classifier (image → JSON)",
		about: fmt.Sprintf("PaddleOCR's text direction classifier (`ch_ppocr_mobile_v2.0_cls_infer.onnx`, 0.6 MB), letterboxed into 3×48×192 at the top left, answered as its top class with a label (`0` or `180`). "+
			"Request: a %d×%d RGB PNG of a dark text-like line on white; answer: JSON, checked for a label.", clsLineW, clsLineH),
		file: "third_party/onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx", link: "cls.onnx",
		config: `{"model": "cls.onnx",
  "preprocess": {"width": 192, "height": 48, "resize": "letterbox", "anchor": "topleft", "pad_value": 127.5,
    "channel_order": "BGR", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
  "postprocess": {"kind": "json", "top_k": 1, "labels": "labels.txt"},
  "max_batch_size": %d}`,
		extra: map[string]string{"labels.txt": "0\n180\n"},
		out:   spec.JSON,
		req:   func() image.Image { return textLine(clsLineW, clsLineH) },
		check: func(out []byte) bool {
			var got map[string][]struct {
				Label string `json:"label"`
			}
			if json.Unmarshal(out, &got) != nil || len(got) != 1 {
				return false
			}
			for _, top := range got {
				return len(top) == 1 && (top[0].Label == "0" || top[0].Label == "180")
			}
			return false
		},
	},
}

// textLine draws a w×h line of dark, text-like glyphs (blocks of strokes with
// gaps between words) on white, the kind of crop the classifier reads.
func textLine(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = 255
	}
	top, bottom := h/4, h*3/4
	for x := 4; x < w-4; x++ {
		glyph, col := (x-4)/9, (x-4)%9
		if glyph%5 == 4 || col > 6 { // a space between words, a gap between glyphs
			continue
		}
		for y := top; y < bottom; y++ {
			stroke := col == 0 || col == 6 || (y-top)%((bottom-top)/2) == 0 || (glyph%3 == 1 && col == 3)
			if stroke {
				img.Set(x, y, color.NRGBA{20, 20, 30, 255})
			}
		}
	}
	return img
}

// onnxRowKind is what a row measures.
type onnxRowKind string

const (
	rowBatched   onnxRowKind = "batched"   // the server, max_batch_size -onnx-max-batch
	rowUnbatched onnxRowKind = "unbatched" // the server, max_batch_size 1
	rowRun       onnxRowKind = "run"       // direct Model.Run on full batches
	rowPredict   onnxRowKind = "predict"   // direct Pipeline.Predict on full batches
)

// onnxRowSpec is one row of a round: a kind at a thread count (the server's
// `threads`; for direct Run, that many loops at once with the server's
// session options for it).
type onnxRowSpec struct {
	kind    onnxRowKind
	threads int
}

// onnxResult is one ONNX row: a server under load, or a direct loop.
type onnxResult struct {
	onnxRowSpec
	name        string
	batch       int     // max_batch_size (server) or the batch size (direct)
	perS        float64 // answered images per second
	p50, p99    float64 // ms: per request (server), per batch call (direct)
	errors      string
	meanBatch   float64 // server: mean batch from /metrics
	cpuPerImage float64 // CPU ms per image: the whole server process (Go and ONNX Runtime), or the benchmark's process for a direct row
	othersCores float64 // cores busy with other processes
	genCores    float64 // server: cores the load generator kept busy
}

// perFreeCore is images/s per core left to the row's own work: the cores
// less those of other processes and, for a server, of the load generator
// (in a deployment the clients run elsewhere).
func (r onnxResult) perFreeCore() float64 {
	return r.perS / max(0.25, float64(cores)-r.othersCores-r.genCores)
}

// onnxModelReport is one model's rows: len(specs) rows per alternated round.
type onnxModelReport struct {
	model   onnxModel
	specs   []onnxRowSpec
	rows    []onnxResult
	profile string // -onnx-profile's summary, when asked
}

// onnxReport is the ONNX section.
type onnxReport struct {
	models  []*onnxModelReport
	maxB    int
	delay   time.Duration
	version string
	skipped string // why the section did not run
}

// onnxSpecs are the rows of a round: for each -onnx-threads value the batched
// server, the unbatched server and direct Run; then direct Predict at the
// first value.
func onnxSpecs(threads []int) []onnxRowSpec {
	var s []onnxRowSpec
	for _, kind := range []onnxRowKind{rowBatched, rowUnbatched, rowRun} {
		for _, t := range threads {
			s = append(s, onnxRowSpec{kind, t})
		}
	}
	return append(s, onnxRowSpec{rowPredict, threads[0]})
}

// measureONNX runs the ONNX section for each model of -onnx-model:
// -onnx-rounds rounds of its rows (onnxSpecs), alternated so that each sees
// the same share of the machine.
func measureONNX(ctx context.Context, o options, tmp string) (*onnxReport, error) {
	rep := &onnxReport{maxB: o.onnxBatch, delay: o.onnxDelay}
	lib, err := onnxrt.LibraryPath("")
	for _, m := range o.onnxModels {
		if err == nil {
			_, err = os.Stat(onnxModels[m].file)
		}
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
	if err := onnxrt.Init(lib); err != nil {
		return nil, err
	}
	rep.version = onnxrt.Version()
	for _, key := range o.onnxModels {
		mr, err := measureONNXModel(ctx, o, tmp, lib, onnxModels[key])
		if err != nil {
			return nil, err
		}
		rep.models = append(rep.models, mr)
	}
	return rep, nil
}

// measureONNXModel writes m's folder and measures its rows.
func measureONNXModel(ctx context.Context, o options, tmp, lib string, m onnxModel) (*onnxModelReport, error) {
	dir, err := writeONNXDir(o, tmp, m)
	if err != nil {
		return nil, err
	}
	body, err := pngOf(m.req())
	if err != nil {
		return nil, err
	}
	mr := &onnxModelReport{model: m, specs: onnxSpecs(o.onnxThreads)}
	run := &onnxModelRun{o: o, m: m, mr: mr, dir: dir, lib: lib, body: body}
	if err := run.rounds(ctx); err != nil {
		return nil, err
	}
	if o.onnxProfile != "" {
		log.Printf("onnx %s: Go profile of the batched server, in process", m.key)
		top, err := profileONNXInProcess(ctx, o, dir, lib, m, body)
		if err != nil {
			return nil, err
		}
		mr.profile += top
	}
	return mr, nil
}

// writeONNXDir makes m's code folder in tmp: the model (a symlink), its
// aai_onnx.json and extra files.
func writeONNXDir(o options, tmp string, m onnxModel) (string, error) {
	model, err := filepath.Abs(m.file)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(tmp, "onnx-"+m.key)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.Symlink(model, filepath.Join(dir, m.link)); err != nil {
		return "", err
	}
	// The run batch (aai_onnx.json) equals the server's max_batch_size, so a
	// full server batch is one Run, as in the direct loop.
	files := map[string]string{onnxrt.ConfigFile: fmt.Sprintf(m.config, o.onnxBatch)}
	for name, text := range m.extra {
		files[name] = text
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// onnxModelRun is one model's measurement: its folder, request body and
// report.
type onnxModelRun struct {
	o        options
	m        onnxModel
	mr       *onnxModelReport
	dir, lib string
	body     []byte
}

// rounds measures -onnx-rounds rounds of every row into mr.rows, every
// other round backwards.
func (run *onnxModelRun) rounds(ctx context.Context) error {
	o, mr := run.o, run.mr
	per := len(mr.specs)
	for round := range max(1, o.onnxRounds) {
		rows := make([]onnxResult, per)
		for i := range per {
			k := i
			if round%2 == 1 { // every other round backwards, so that no row always follows the same one
				k = per - 1 - i
			}
			// perf records the first round's first batched server.
			profile := o.onnxProfile != "" && round == 0 && k == 0
			r, err := run.row(ctx, mr.specs[k], profile)
			if err != nil {
				return err
			}
			log.Printf("onnx %s round %d: %s: %.1f images/s (others' cores %.2f)", run.m.key, round+1, r.name, r.perS, r.othersCores)
			rows[k] = r
		}
		mr.rows = append(mr.rows, rows...)
	}
	return nil
}

// row measures one row: a direct loop, or a server started for it (with
// profile, under perf, whose report goes to mr.profile).
func (run *onnxModelRun) row(ctx context.Context, s onnxRowSpec, profile bool) (onnxResult, error) {
	o, m := run.o, run.m
	switch s.kind {
	case rowRun, rowPredict:
		return directONNX(ctx, o, run.dir, run.body, s)
	}
	maxBatch, delay := o.onnxBatch, o.onnxDelay
	name := fmt.Sprintf("server, max_batch_size %d, max_queue_delay %s, threads %d", maxBatch, delay, s.threads)
	if s.kind == rowUnbatched {
		maxBatch, delay = 1, 0
		name = fmt.Sprintf("server, unbatched (max_batch_size 1), threads %d", s.threads)
	}
	srv, err := startOurs(ctx, o, o.inferBin, name, run.dir, spec.Image, m.out, maxBatch, func(c *inferapi.Config) {
		c.Environment, c.ONNXRuntimeLib, c.Threads = spec.EnvONNX, run.lib, s.threads
		c.MaxQueueDelay = inferapi.Duration(delay)
	})
	if err != nil {
		return onnxResult{}, err
	}
	var prof *perfRecording
	if profile {
		if prof, err = startPerf(ctx, srv.proc.Pid(), filepath.Join(o.onnxProfile, m.key+".perf.data"), o.warm+o.dur); err != nil {
			log.Printf("onnx: perf: %v (the profile is Go's only)", err)
		}
	}
	r := srv.measureBody(ctx, run.body, onnxConc, o, m.check)
	mean := srv.batchSizes()
	if prof != nil { // perf stops first: it follows the server
		run.mr.profile = prof.finish(ctx)
	}
	srv.stop()
	return onnxResult{onnxRowSpec: s, name: name, batch: maxBatch, perS: r.rps(), p50: r.pct(50), p99: r.pct(99),
		errors: orDash(r.errors()), meanBatch: mean, cpuPerImage: r.cpuPerReq(r.cpuSelf, o.warm), othersCores: r.othersCores, genCores: r.genCores}, nil
}

// directONNX is the limit: Model.Run (or, for rowPredict, Pipeline.Predict:
// preprocessing, Run, postprocessing) on full batches of max_batch_size in
// s.threads loops at once in this process, on one session with the options
// the server uses for `threads` s.threads (intra-op threads = GOMAXPROCS /
// threads, no spinning). Run gets the batch already preprocessed; Predict
// gets the decoded request images.
func directONNX(ctx context.Context, o options, dir string, body []byte, s onnxRowSpec) (onnxResult, error) {
	p, err := onnxrt.Load(dir, onnxrt.Options{IntraOpThreads: max(1, runtime.GOMAXPROCS(0)/s.threads), NoSpinning: true})
	if err != nil {
		return onnxResult{}, err
	}
	defer p.Close()
	call, name, err := directCall(p, o.onnxBatch, body, s)
	if err != nil {
		return onnxResult{}, err
	}
	b := o.onnxBatch
	// Each loop warms up, then calls until the window closes; calls that end
	// inside it count.
	busy0 := machineBusy()
	self0 := procCPU(os.Getpid())
	t0 := time.Now()
	lat, calls, err := callLoops(ctx, s.threads, t0.Add(o.warm), t0.Add(o.warm+o.dur), call)
	if err != nil {
		return onnxResult{}, err
	}
	self := procCPU(os.Getpid()) - self0
	slices.Sort(lat)
	lr := loadResult{lat: lat}
	return onnxResult{onnxRowSpec: s, name: name, batch: b, perS: float64(len(lat)*b) / o.dur.Seconds(), p50: lr.pct(50), p99: lr.pct(99),
		errors: "none", cpuPerImage: 1000 * self / float64(max(1, calls*b)), othersCores: max(0, (machineBusy()-busy0-self)/time.Since(t0).Seconds())}, nil
}

// directCall makes the direct row's call on p: Pipeline.Predict of b
// decoded request images (rowPredict), or Model.Run of a batch of b
// preprocessed ones; and the row's name.
func directCall(p *onnxrt.Pipeline, b int, body []byte, s onnxRowSpec) (call func() error, name string, err error) {
	src, _, err := image.Decode(bytes.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	img := onnxrt.FromImage(src)
	imgs := make([]onnxrt.Image, b)
	for i := range imgs {
		imgs[i] = img
	}
	c := p.Config()
	per := 3 * c.Preprocess.Width * c.Preprocess.Height
	in := onnxrt.Tensor{Shape: []int64{int64(b), 3, int64(c.Preprocess.Height), int64(c.Preprocess.Width)}, Data: make([]float32, b*per)}
	for i := range b {
		if _, err := c.Preprocess.Apply(img, in.Data[i*per:(i+1)*per]); err != nil {
			return nil, "", err
		}
	}
	if s.kind == rowPredict {
		return func() error {
			res, err := p.Predict(imgs)
			if err == nil && res[0].Err != nil {
				err = res[0].Err
			}
			return err
		}, fmt.Sprintf("direct Pipeline.Predict (preprocess + Run + postprocess), batches of %d, %d at once", b, s.threads), nil
	}
	return func() error {
		_, err := p.Model().Run(in)
		return err
	}, fmt.Sprintf("direct Model.Run, full batches of %d, %d at once", b, s.threads), nil
}

// callLoops runs call in loops at once until stop; it returns the latencies
// of the successful calls that ended between start and stop, the number of
// calls (the warm-up's too, for CPU per image) and the first error (which
// ends its loop).
func callLoops(ctx context.Context, loops int, start, stop time.Time, call func() error) (lat []time.Duration, calls int, err error) {
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range loops {
		wg.Go(func() {
			for ctx.Err() == nil && time.Now().Before(stop) {
				c0 := time.Now()
				cerr := call()
				end := time.Now()
				mu.Lock()
				if cerr != nil && err == nil {
					err = cerr
				}
				calls++
				if cerr == nil && end.After(start) && end.Before(stop) {
					lat = append(lat, end.Sub(c0))
				}
				mu.Unlock()
				if cerr != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	return lat, calls, err
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
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), cpuModel(), cores, runtime.Version(), r.version)
	p("Servers: algocloud-infer, plain HTTP on loopback, closed-loop load at concurrency %d from this process (its CPU is not in *others' cores*); `threads` T runs T batches at once, each `Run` with %d/T ONNX Runtime intra-op threads, no spinning. ", onnxConc, cores)
	p("The batched servers have max_batch_size %d and max_queue_delay %s, and `aai_onnx.json`'s max_batch_size is the same, so a full batch is one `Run`. ", r.maxB, r.delay)
	p("Direct rows: T loops at once on one session with the server's options for `threads` T, in the benchmark's process, on full batches; their latency is per batch call, the servers' per request. ")
	p("Rounds run the rows in this order, then backwards (so that no row always follows the same one); CPU per image is the whole server process's (Go and ONNX Runtime), or the benchmark process's for a direct row (its loops only; warm-up included on both sides).\n")
	for _, m := range r.models {
		m.write(p)
	}
	p("\n*Per free core* divides images/s by the cores left to the row's own work (%d − others' cores − the load generator's cores, the last for servers only: in a deployment the clients run elsewhere): a rough correction for the shared machine, fair only because every row is CPU-bound. ", cores)
	p("*Work* compares CPU time per image (the inverse ratio: 0.5 ms against 1 ms per image is 2×), which other processes' load moves much less than images/s. *Best* is the `threads` value with the most images/s summed over the rounds.\n")
	return b.String()
}

// write prints one model's table, ratios and profile.
func (m *onnxModelReport) write(p func(string, ...any)) {
	m.writeRows(p)
	if len(m.rows) == 0 || len(m.rows)%len(m.specs) != 0 {
		return // no full round: neither ratios nor the profile
	}
	m.writeRatios(p)
	if m.profile != "" {
		p("\nProfile of the batched server (`-onnx-profile`, the first round's first row):\n\n```\n%s```\n", m.profile)
	}
}

// writeRows is the table of every round's rows.
func (m *onnxModelReport) writeRows(p func(string, ...any)) {
	p("\n### %s\n\n%s %d rounds.\n\n", m.model.title, m.model.about, len(m.rows)/len(m.specs))
	p("| round | what | images/s | images/s per free core | p50 ms | p99 ms | errors | mean batch | CPU ms/image | others' cores | load generator's cores |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	per := len(m.specs)
	for i, row := range m.rows {
		mean, gen := "—", "—"
		if row.meanBatch > 0 {
			mean = fmt.Sprintf("%.2f", row.meanBatch)
			gen = fmt.Sprintf("%.2f", row.genCores)
		}
		cpu := fmt.Sprintf("%.2f", row.cpuPerImage)
		p("| %d | %s | %.1f | %.1f | %.1f | %.1f | %s | %s | %s | %.2f | %s |\n", i/per+1, row.name, row.perS, row.perFreeCore(), row.p50, row.p99, row.errors, mean, cpu, row.othersCores, gen)
	}
}

// writeRatios is the table of ratios between rows, every round summed.
func (m *onnxModelReport) writeRatios(p func(string, ...any)) {
	// sum adds a row spec's figure over the rounds.
	sum := func(s onnxRowSpec, f func(onnxResult) float64) float64 {
		t := 0.0
		for _, row := range m.rows {
			if row.onnxRowSpec == s {
				t += f(row)
			}
		}
		return t
	}
	raw := func(x onnxResult) float64 { return x.perS }
	free := onnxResult.perFreeCore
	// best is the spec of kind with the most images/s summed.
	best := func(kind onnxRowKind) onnxRowSpec {
		var b onnxRowSpec
		for _, s := range m.specs {
			if s.kind == kind && (b.kind == "" || sum(s, raw) > sum(b, raw)) {
				b = s
			}
		}
		return b
	}
	label := func(s onnxRowSpec) string {
		return map[onnxRowKind]string{rowBatched: "batched server", rowUnbatched: "unbatched server", rowRun: "direct Run", rowPredict: "direct Predict"}[s.kind] +
			fmt.Sprintf(" (threads %d)", s.threads)
	}
	cpu := func(x onnxResult) float64 { return x.cpuPerImage }
	p("\n| ratio (every round summed) | images/s | images/s per free core | work: CPU ms per image, inverse |\n|---|---|---|---|\n")
	line := func(a, b onnxRowSpec, pct bool, bold ...string) {
		// The work ratio is b's CPU per image over a's: what a's figure
		// would be over b's if both had the same cores.
		x, y, z := ratio(sum(a, raw), sum(b, raw)), ratio(sum(a, free), sum(b, free)), ratio(sum(b, cpu), sum(a, cpu))
		what := label(a) + " / " + label(b)
		if len(bold) > 0 {
			what = "**" + bold[0] + "**: " + what
		}
		if pct {
			p("| %s | %.0f%% | %.0f%% | %.0f%% |\n", what, 100*x, 100*y, 100*z)
		} else {
			p("| %s | %.2f× | %.2f× | %.2f× |\n", what, x, y, z)
		}
	}
	bb, bu, br := best(rowBatched), best(rowUnbatched), best(rowRun)
	line(bb, bu, false, "best batched / best unbatched")
	line(bb, br, true, "best batched / best direct Run (the limit)")
	for _, s := range m.specs {
		if s.kind == rowBatched {
			line(s, onnxRowSpec{rowUnbatched, s.threads}, false)
			line(s, onnxRowSpec{rowRun, s.threads}, true)
		}
	}
	for _, a := range m.specs {
		for _, b := range m.specs {
			if a.kind == b.kind && a.kind != rowPredict && a.threads > b.threads {
				line(a, b, false)
			}
		}
	}
	for _, s := range m.specs {
		if s.kind == rowPredict {
			line(s, onnxRowSpec{rowRun, s.threads}, true)
		}
	}
}

// The ONNX section lives between its own markers in -out, so that a run of
// it alone (-only onnx) leaves the rest of the file as it is.
const (
	onnxBeginMark = "<!-- bench:onnx:begin (written by scripts/bench-inference.sh -only onnx) -->\n"
	onnxEndMark   = "<!-- bench:onnx:end -->\n"
)
