package inference

import (
	"encoding/json"
	"image/color"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// TestForm checks how batches close, on a clock the test sets.
func TestForm(t *testing.T) {
	t0 := time.Unix(1000, 0)
	type q struct {
		key string
		age time.Duration
	}
	cases := []struct {
		name      string
		opts      batchOptions
		max       int
		queue     []q
		wantSizes []int // batches taken in turn until none is due
		wantWait  time.Duration
		wantLeft  int
	}{
		{name: "batch of one takes the head at once", opts: batchOptions{maxBatch: 1, delay: time.Hour}, max: 1,
			queue: []q{{"a", 0}, {"a", 0}}, wantSizes: []int{1, 1}},
		{name: "class without predict_batch", opts: batchOptions{maxBatch: 8, delay: time.Hour}, max: 1,
			queue: []q{{"a", 0}, {"a", 0}}, wantSizes: []int{1, 1}},
		{name: "full batch leaves, the rest waits out the delay", opts: batchOptions{maxBatch: 2, delay: time.Second}, max: 2,
			queue: []q{{"a", 0}, {"a", 0}, {"a", 0}}, wantSizes: []int{2}, wantWait: time.Second, wantLeft: 1},
		{name: "delay over: a partial batch leaves", opts: batchOptions{maxBatch: 4, delay: time.Second}, max: 4,
			queue: []q{{"a", 2 * time.Second}, {"a", 0}}, wantSizes: []int{2}},
		{name: "no delay: whatever is queued", opts: batchOptions{maxBatch: 4}, max: 4,
			queue: []q{{"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}}, wantSizes: []int{4, 1}},
		{name: "preferred size leaves before the delay", opts: batchOptions{maxBatch: 8, delay: time.Second, preferred: []int{4, 2}}, max: 8,
			queue: []q{{"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}, {"a", 0}}, wantSizes: []int{4, 2}, wantWait: time.Second, wantLeft: 1},
		{name: "one shape per batch, head first", opts: batchOptions{maxBatch: 3, delay: time.Second}, max: 3,
			queue: []q{{"a", 2 * time.Second}, {"b", 2 * time.Second}, {"a", 0}, {"b", 0}, {"b", 0}}, wantSizes: []int{2, 3}},
		{name: "test_input goes alone", opts: batchOptions{maxBatch: 3, delay: time.Hour}, max: 3,
			queue: []q{{"", 0}, {"", 0}}, wantSizes: []int{1, 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := newBatcher(nil, c.opts, nil, newMetrics())
			for _, e := range c.queue {
				b.queue = append(b.queue, &pending{key: e.key, enq: t0.Add(-e.age), queued: true})
			}
			var sizes []int
			for {
				batch, wait := b.form(c.max, t0)
				if batch == nil {
					require.Equal(t, c.wantWait, wait)
					break
				}
				for _, p := range batch {
					require.Equal(t, batch[0].key, p.key)
					require.False(t, p.queued)
				}
				sizes = append(sizes, len(batch))
			}
			require.Equal(t, c.wantSizes, sizes)
			require.Len(t, b.queue, c.wantLeft)
		})
	}
}

// TestOverflow: both bounds answer 429 errors that errors.Is finds as ErrOverflow.
func TestOverflow(t *testing.T) {
	b := newBatcher(nil, batchOptions{maxBatch: 1, maxQueue: 2}, nil, newMetrics())
	for range 2 {
		require.NoError(t, b.enqueue(&pending{done: make(chan callResult, 1)}))
	}
	err := b.enqueue(&pending{done: make(chan callResult, 1)})
	require.ErrorIs(t, err, ErrOverflow)
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusTooManyRequests, ae.Status)

	a := newAdmission(Config{MaxQueueSize: 1, Threads: 1, MaxBatchSize: 1})
	r1, err := a.admit()
	require.NoError(t, err)
	_, err = a.admit()
	require.NoError(t, err)
	_, err = a.admit()
	require.ErrorIs(t, err, ErrOverflow)
	r1()
	_, err = a.admit()
	require.NoError(t, err, "a request that left makes room")
}

// TestWhichMethod: predict_batch serves every call when batches may form (a
// lone one as a list of one), predict otherwise; a class with predict_batch
// alone works either way.
func TestWhichMethod(t *testing.T) {
	both := "class AAI:\n    def predict(self, x):\n        return 'predict'\n" +
		"    def predict_batch(self, xs):\n        return ['batch' for x in xs]\n"
	batchOnly := "class Model:\n    def predict_batch(self, xs):\n        return ['batch' for x in xs]\n"
	for _, c := range []struct {
		name, code string
		max        int
		want       string
	}{{"both, max 1", both, 1, "predict"}, {"both, max 4", both, 4, "batch"},
		{"predict_batch only, max 1", batchOnly, 1, "batch"}, {"predict_batch only, max 4", batchOnly, 4, "batch"}} {
		t.Run(c.name, func(t *testing.T) {
			ts := startServer(t, codeDir(t, c.code), spec.JSON, spec.JSON, func(cfg *Config) { cfg.MaxBatchSize = c.max })
			ts.waitReady(t)
			status, _, body := ts.post(t, "/predict", "application/json", []byte("1"))
			require.Equal(t, http.StatusOK, status, string(body))
			require.JSONEq(t, `"`+c.want+`"`, string(body))
		})
	}
}

// TestTensorBufferReuse: the runner reuses a big input buffer only when
// predict kept no reference to its input; kept inputs are never overwritten.
func TestTensorBufferReuse(t *testing.T) {
	code := `
class AAI:
    def __init__(self):
        self.kept = []
    def predict(self, x):
        if x[0] == 1:
            self.kept.append(x)
        return {"addr": x.ctypes.data, "kept": [int(k[0]) for k in self.kept]}
`
	ts := startServer(t, codeDir(t, code), spec.Numpy, spec.JSON, nil)
	ts.waitReady(t)
	type answer struct {
		Addr int   `json:"addr"`
		Kept []int `json:"kept"`
	}
	send := func(first byte) answer {
		data := make([]byte, 2<<20)
		data[0] = first
		status, _, body := ts.post(t, "/predict", "application/x-npy", npyOf(t, "uint8", []int{len(data)}, data))
		require.Equal(t, http.StatusOK, status, string(body))
		var a answer
		require.NoError(t, json.Unmarshal(body, &a))
		return a
	}
	a, b := send(0), send(0)
	require.Equal(t, a.Addr, b.Addr, "an input nobody kept is reused")
	k1 := send(1) // kept by predict
	c := send(0)
	require.NotEqual(t, k1.Addr, c.Addr, "a kept input is not reused")
	send(1)
	require.Equal(t, []int{1, 1}, send(0).Kept, "kept inputs keep their bytes")
}

// TestPredictBatchArray: predict_batch may return one array whose first axis
// is the batch.
func TestPredictBatchArray(t *testing.T) {
	code := "import numpy as np\nclass AAI:\n    def predict_batch(self, xs):\n        return np.stack(xs)[..., ::-1]\n"
	ts := startServer(t, codeDir(t, code), spec.Image, spec.Image, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueDelay = 2, Duration(time.Hour)
	})
	ts.waitReady(t)
	in := testImage(6, 4, 0)
	for _, r := range postAll(t, ts, "image/png", [][]byte{pngBytes(t, in), pngBytes(t, in)}) {
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		out := decodePNG(t, r.body)
		for y := range 4 {
			for x := range 6 {
				c := in.NRGBAAt(x, y)
				require.Equal(t, color.NRGBA{c.B, c.G, c.R, 255}, color.NRGBAModel.Convert(out.At(x, y)))
			}
		}
	}
	require.Equal(t, 1.0, metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="2"}`)-metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="1"}`))
}
