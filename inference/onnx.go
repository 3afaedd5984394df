package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// onnxDispatcher serves environment onnx: the Python batcher's queue (the same
// admission, batch forming by max_batch_size and max_queue_delay, bounded queue
// answering 429, timeouts and metrics), drained by Threads goroutines that
// each run one batch at a time through an onnxrt.Pipeline loaded from
// CodeDir/aai_onnx.json, in process, instead of a Python worker.
//
// Images of any size share a batch: the decoded RGB pixels reach onnxrt's
// preprocessing as they are (no copy, no re-encode), and preprocessing resizes
// each to the model's input size, so one Run takes them all (a model with a
// dynamic size and no preprocess width/height runs each size as its own Run).
type onnxDispatcher struct {
	q   *batcher // the queue; it starts no Python workers (no specs)
	cfg Config
	log *slog.Logger

	loaded chan struct{} // closed once loading finished, well or not
	// Set by load before loaded closes; read only after.
	pipe    *onnxrt.Pipeline
	test    Value     // what /v1/test-input sends
	loadErr *APIError // init_failed
}

var _ dispatcher = (*onnxDispatcher)(nil)

// onnxBatchKey lets every predict call share a batch (their images are resized
// to one input size); test_input never reaches the queue.
func onnxBatchKey(c call) string {
	if c.Op != opPredict {
		return ""
	}
	return "onnx/" + string(c.Want)
}

func newONNXDispatcher(cfg Config, log *slog.Logger, m *metrics) *onnxDispatcher {
	opts := batchOptionsOf(cfg)
	opts.keyOf = onnxBatchKey
	return &onnxDispatcher{q: newBatcher(nil, opts, log, m), cfg: cfg, log: log, loaded: make(chan struct{})}
}

// onnxOptions are the ONNX Runtime session options of a server: Threads
// batches run at once, and each Run's operators get an equal share of the
// cores (intra-op threads = GOMAXPROCS / Threads, at least 1). Idle intra-op
// threads do not spin, leaving the cores to the server's image codecs.
func onnxOptions(cfg Config) onnxrt.Options {
	return onnxrt.Options{IntraOpThreads: max(1, runtime.GOMAXPROCS(0)/max(1, cfg.Threads)), NoSpinning: true}
}

// Start loads the model in the background; /readyz says ready once it is
// loaded, or init_failed with the reason.
func (d *onnxDispatcher) Start(ctx context.Context) {
	d.q.Start(ctx)
	go d.load()
}

func (d *onnxDispatcher) load() {
	defer close(d.loaded)
	start := time.Now()
	p, test, err := loadONNX(d.cfg)
	if err != nil {
		// Callers and Test Code see paths relative to the code folder, as
		// the Python runner shows them, not where the platform keeps it.
		msg := strings.ReplaceAll(err.Error(), d.cfg.CodeDir+string(filepath.Separator), "")
		msg = strings.ReplaceAll(msg, d.cfg.CodeDir, "the code folder")
		ae := apiErr(http.StatusServiceUnavailable, CodeInitFailed, "%s", msg)
		d.log.Error("ONNX model failed to load", "code_dir", d.cfg.CodeDir, "error", err)
		d.loadErr = ae
		d.q.mu.Lock()
		if d.q.initErr == nil {
			d.q.initErr = ae
			d.q.failQueued(ae)
		}
		d.q.mu.Unlock()
		return
	}
	d.pipe, d.test = p, test
	c := p.Config()
	d.log.Info("ONNX model loaded", "model", c.Model, "input", p.Model().Input().String(),
		"size", fmt.Sprintf("%dx%d", c.Preprocess.Width, c.Preprocess.Height), "run_batch", p.MaxBatchSize(),
		"onnxruntime", onnxrt.Version(), "took_ms", time.Since(start).Milliseconds())
	d.q.mu.Lock()
	defer d.q.mu.Unlock()
	if d.q.closing {
		return // Close closes the pipeline
	}
	for range d.cfg.Threads {
		d.q.slots.Add(1)
		go d.serveSlot()
	}
}

// loadONNX loads ONNX Runtime and the deployment's pipeline, checks that its
// postprocess matches the API's output type, and prepares the test input.
func loadONNX(cfg Config) (*onnxrt.Pipeline, Value, error) {
	if err := onnxrt.Init(cfg.ONNXRuntimeLib); err != nil {
		return nil, Value{}, err
	}
	c, err := onnxrt.LoadConfig(cfg.CodeDir)
	if err != nil {
		return nil, Value{}, err
	}
	want := "image"
	if cfg.Output == spec.JSON {
		want = "json"
	}
	if c.Postprocess.Kind != want {
		return nil, Value{}, fmt.Errorf("%s: postprocess kind %q answers %s, but the API's output type is %s: set \"kind\": %q",
			onnxrt.ConfigFile, c.Postprocess.Kind, c.Postprocess.Kind, cfg.Output, want)
	}
	p, err := onnxrt.NewPipeline(c, onnxOptions(cfg))
	if err != nil {
		return nil, Value{}, err
	}
	test, err := onnxTestInput(p.Config(), cfg)
	if err != nil {
		p.Close()
		return nil, Value{}, err
	}
	return p, test, nil
}

// onnxTestInput is what /v1/test-input sends for an ONNX deployment: the
// image file aai_onnx.json's testing_input names (checked to decode), else a
// generated image of the model's input size (onnxSampleImage).
func onnxTestInput(c onnxrt.Config, cfg Config) (Value, error) {
	if path := c.TestingInputPath(); path != "" {
		st, err := os.Stat(path)
		if err != nil {
			return Value{}, fmt.Errorf("%s: testing_input: %w", onnxrt.ConfigFile, err)
		}
		if st.Size() > cfg.MaxBodyBytes {
			return Value{}, fmt.Errorf("%s: testing_input %s is %d bytes; a request may have %d", onnxrt.ConfigFile, c.TestingInput, st.Size(), cfg.MaxBodyBytes)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return Value{}, fmt.Errorf("%s: testing_input: %w", onnxrt.ConfigFile, err)
		}
		if _, err := decodeImage(b, cfg.MaxPixels); err != nil {
			msg := err.Error()
			var ae *APIError
			if errors.As(err, &ae) {
				msg = ae.Message
			}
			return Value{}, fmt.Errorf("%s: testing_input %s is not a usable image: %s", onnxrt.ConfigFile, c.TestingInput, msg)
		}
		return Value{Kind: KindBytes, Data: b}, nil
	}
	w, h := c.Preprocess.Width, c.Preprocess.Height
	if w == 0 || h == 0 { // a dynamic size: any will do
		w, h = onnxSampleSize, onnxSampleSize
	}
	return onnxSampleImage(w, h), nil
}

// onnxSampleSize is the side of the generated test image for a model whose
// input size is dynamic.
const onnxSampleSize = 320

// onnxSampleImage draws a w×h RGB test image: a soft colour gradient with dark
// horizontal strokes (text-like lines) and a bright square, so that detectors
// and classifiers get edges and contrast rather than a flat field.
func onnxSampleImage(w, h int) Value {
	pix := make([]byte, w*h*3)
	for y := range h {
		for x := range w {
			r := 160 + 80*x/max(w-1, 1)
			g := 160 + 80*y/max(h-1, 1)
			b := 200
			line := (y*10/max(h, 1))%3 == 1 && x > w/8 && x < w*7/8 && (x*16/max(w, 1))%4 != 3
			square := x > w/3 && x < w/2 && y > h*2/3 && y < h*5/6
			switch {
			case line:
				r, g, b = 20, 20, 30
			case square:
				r, g, b = 250, 250, 250
			}
			i := (y*w + x) * 3
			pix[i], pix[i+1], pix[i+2] = byte(r), byte(g), byte(b)
		}
	}
	return Value{Kind: KindTensor, DType: "uint8", Shape: []int{h, w, 3}, Data: pix}
}

// Readiness is ready once the model loaded; init_failed when it did not.
func (d *onnxDispatcher) Readiness() readiness {
	select {
	case <-d.loaded:
	default:
		return readiness{}
	}
	if d.loadErr != nil {
		return readiness{Err: d.loadErr}
	}
	return readiness{Ready: true}
}

// Do queues a predict call for the next batch. A test_input call is answered
// here, once the model has loaded (the generated image needs its input size).
func (d *onnxDispatcher) Do(ctx context.Context, c call) (Value, error) {
	if c.Op != opTestInput {
		return d.q.Do(ctx, c)
	}
	timer := time.NewTimer(d.q.opts.timeout)
	defer timer.Stop()
	select {
	case <-d.loaded:
	case <-timer.C:
		return Value{}, apiErr(http.StatusServiceUnavailable, CodeNotReady, "the ONNX model did not load within %s", d.q.opts.timeout)
	case <-ctx.Done():
		return Value{}, fmt.Errorf("call abandoned: %w", ctx.Err())
	}
	if d.loadErr != nil {
		return Value{}, d.loadErr
	}
	return d.test, nil
}

// serveSlot runs the batches the queue hands it until the queue closes.
func (d *onnxDispatcher) serveSlot() {
	defer d.q.slots.Done()
	for {
		batch := d.q.next(d.q.opts.maxBatch)
		if batch == nil {
			return
		}
		d.run(batch)
	}
}

// run predicts one batch with one Pipeline.Predict (one Run per
// max_batch_size of aai_onnx.json) and answers each call. A Run cannot be
// interrupted: past the timeout the calls are answered predict_timeout and
// this slot finishes the Run before it takes the next batch.
func (d *onnxDispatcher) run(batch []*pending) {
	now := time.Now()
	d.q.m.batchSize.Observe(float64(len(batch)))
	var mu sync.Mutex
	answered := make([]bool, len(batch))
	answer := func(i int, r callResult) {
		mu.Lock()
		defer mu.Unlock()
		if !answered[i] {
			answered[i] = true
			batch[i].done <- r
		}
	}
	timer := time.AfterFunc(d.q.opts.timeout, func() {
		err := apiErr(http.StatusGatewayTimeout, CodePredictTimeout, "the ONNX model did not answer within %s", d.q.opts.timeout)
		for i := range batch {
			answer(i, callResult{err: err})
		}
	})
	defer timer.Stop()

	imgs := make([]onnxrt.Image, 0, len(batch))
	idx := make([]int, 0, len(batch)) // batch index of each image
	for i, p := range batch {
		d.q.m.queueWait.Observe(now.Sub(p.enq).Seconds())
		img, err := onnxImage(p.c.In)
		if err != nil {
			answer(i, callResult{err: err})
			continue
		}
		imgs, idx = append(imgs, img), append(idx, i)
	}
	if len(imgs) == 0 {
		return
	}
	res, err := d.predict(imgs)
	if err != nil {
		ae := apiErr(http.StatusInternalServerError, CodePredictFailed, "ONNX Runtime: %v", err)
		for _, i := range idx {
			answer(i, callResult{err: ae})
		}
		return
	}
	for k, i := range idx {
		v, err := onnxValue(res[k])
		answer(i, callResult{v: v, err: err})
	}
}

// predict is Pipeline.Predict with a panic (a bug) turned into an error, so
// that one bad batch does not take the server down.
func (d *onnxDispatcher) predict(imgs []onnxrt.Image) (res []onnxrt.Result, err error) {
	defer func() {
		if p := recover(); p != nil {
			d.log.Error("ONNX predict panicked", "panic", fmt.Sprint(p))
			err = fmt.Errorf("internal error: %v", p)
		}
	}()
	return d.pipe.Predict(imgs)
}

// onnxImage wraps a decoded image (uint8 H×W×3, what the image codec makes)
// as an onnxrt.Image, sharing its pixels.
func onnxImage(v Value) (onnxrt.Image, error) {
	if v.Kind != KindTensor || v.DType != "uint8" || len(v.Shape) != 3 || v.Shape[2] != 3 {
		return onnxrt.Image{}, apiErr(http.StatusBadRequest, CodeNotAnImage, "an ONNX model takes an RGB image; got a %s %s %v value", v.Kind, v.DType, v.Shape)
	}
	img := onnxrt.Image{Width: v.Shape[1], Height: v.Shape[0], Channels: 3, Pix: v.Data}
	if err := img.Validate(); err != nil {
		return onnxrt.Image{}, apiErr(http.StatusBadRequest, CodeCorruptImage, "%v", err)
	}
	return img, nil
}

// onnxValue turns one postprocessed item into the value the output codec
// encodes: an image as a uint8 H×W (gray) or H×W×3 tensor (PNG), JSON as it is.
func onnxValue(r onnxrt.Result) (Value, error) {
	switch {
	case r.Err != nil:
		return Value{}, apiErr(http.StatusUnprocessableEntity, CodePredictFailed, "the ONNX pipeline could not process this image: %v", r.Err)
	case r.Image != nil && r.Image.Channels == 1:
		return Value{Kind: KindTensor, DType: "uint8", Shape: []int{r.Image.Height, r.Image.Width}, Data: r.Image.Pix}, nil
	case r.Image != nil:
		return Value{Kind: KindTensor, DType: "uint8", Shape: []int{r.Image.Height, r.Image.Width, r.Image.Channels}, Data: r.Image.Pix}, nil
	default:
		return Value{Kind: KindJSON, Data: r.JSON}, nil
	}
}

// Close refuses new calls, lets the slots finish what is queued and running
// (a Run in progress cannot be cut short), then closes the model.
func (d *onnxDispatcher) Close(ctx context.Context) error {
	err := d.q.Close(ctx)
	select {
	case <-d.loaded:
	case <-ctx.Done():
		return fmt.Errorf("stop: the ONNX model is still loading: %w", ctx.Err())
	}
	if d.pipe != nil { // the slots are done (q.Close waited for them)
		if cerr := d.pipe.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// checkEnvironment refuses an environment the server cannot run, and API
// types environment onnx does not serve (spec.ONNXPairs: an image in, an
// image or JSON out).
func checkEnvironment(cfg Config) error {
	pair := spec.Pair{In: cfg.Input, Out: cfg.Output}
	switch {
	case cfg.Environment != spec.EnvPython && cfg.Environment != spec.EnvONNX:
		return fmt.Errorf("inference config: environment %q is not served (python or onnx)", cfg.Environment)
	case !spec.ServesPair(cfg.Environment, pair):
		return fmt.Errorf("inference config: environment onnx serves image->image and image->json, not %s", pair)
	}
	return nil
}
