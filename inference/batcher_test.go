package inference

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// batchAlgorithm's predict_batch answers each input with the size of the
// batch it came in and the shapes of that batch's inputs. An input's "mode"
// picks a behaviour: "block" waits for the file "release", "crash" kills the
// worker, "raise" raises, "short" returns one value for the whole batch.
const batchAlgorithm = `
import os, time
import numpy as np

def wait_for(name):
    for _ in range(6000):
        if os.path.exists(name):
            return
        time.sleep(0.01)
    raise TimeoutError(name)

class AAI:
    def predict(self, x):
        return self.predict_batch([x])[0]

    def predict_batch(self, xs):
        modes = [x.get("mode") if isinstance(x, dict) else None for x in xs]
        if "crash" in modes:
            os._exit(3)
        if "block" in modes:
            wait_for("release")
        if "raise" in modes:
            raise ValueError("batch of %d refused" % len(xs))
        if "short" in modes:
            return [{}]
        shapes = [list(x.shape) if isinstance(x, np.ndarray) else None for x in xs]
        if shapes[0] is not None:
            np.stack(xs)  # one shape per batch: stacking works
        return [{"batch": len(xs), "shapes": shapes, "pid": os.getpid()} for _ in xs]
`

type batchAnswer struct {
	Batch  int     `json:"batch"`
	Shapes [][]int `json:"shapes"`
	PID    int     `json:"pid"`
}

type reply struct {
	status     int
	body       []byte
	retryAfter string
}

// postAll sends bodies concurrently and returns the replies in order.
func postAll(t *testing.T, ts *testServer, contentType string, bodies [][]byte) []reply {
	t.Helper()
	out := make([]reply, len(bodies))
	var wg sync.WaitGroup
	for i, b := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = postOne(ts, contentType, b)
		}()
	}
	wg.Wait()
	return out
}

func postOne(ts *testServer, contentType string, body []byte) reply {
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(body))
	if err != nil {
		return reply{body: []byte(err.Error())}
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", contentType)
	resp, err := ts.Client.Do(req)
	if err != nil {
		return reply{body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return reply{resp.StatusCode, b.Bytes(), resp.Header.Get("Retry-After")}
}

func jsonBodies(n int, v any) [][]byte {
	b, _ := json.Marshal(v)
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

func batchAnswers(t *testing.T, rs []reply) []batchAnswer {
	t.Helper()
	out := make([]batchAnswer, len(rs))
	for i, r := range rs {
		require.Equal(t, http.StatusOK, r.status, string(r.body))
		require.NoError(t, json.Unmarshal(r.body, &out[i]), string(r.body))
	}
	return out
}

// metricValue reads one sample from /metrics; series is the name with its
// labels as the text format prints them (`x_total{code="200",path="/predict"}`).
func metricValue(t *testing.T, ts *testServer, series string) float64 {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err)
			return f
		}
	}
	return -1
}

// waitQueued waits until n calls wait in the queue.
func waitQueued(t *testing.T, ts *testServer, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return metricValue(t, ts, "algocloud_inference_queue_depth") == float64(n) },
		time.Minute, 5*time.Millisecond, "waiting for %d queued calls", n)
}

func TestBatchesForm(t *testing.T) {
	// A delay far longer than the test: a batch leaves only once full (or at
	// a preferred size), so batch sizes are exact without timing anything.
	t.Run("full batches", func(t *testing.T) {
		ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) {
			c.MaxBatchSize, c.MaxQueueDelay = 4, Duration(time.Hour)
		})
		ts.waitReady(t)
		for _, a := range batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(8, map[string]int{"x": 1}))) {
			require.Equal(t, 4, a.Batch)
		}
		require.Equal(t, 2.0, metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="4"}`))
		require.Equal(t, 0.0, metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="2"}`))
	})
	t.Run("preferred size", func(t *testing.T) {
		ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) {
			c.MaxBatchSize, c.MaxQueueDelay, c.PreferredBatchSizes = 8, Duration(time.Hour), []int{2}
		})
		ts.waitReady(t)
		for _, a := range batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(6, map[string]int{"x": 1}))) {
			require.Equal(t, 2, a.Batch)
		}
	})
	t.Run("a lone request leaves after the delay", func(t *testing.T) {
		ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) {
			c.MaxBatchSize, c.MaxQueueDelay = 8, Duration(20*time.Millisecond)
		})
		ts.waitReady(t)
		require.Equal(t, 1, batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(1, map[string]int{"x": 1})))[0].Batch)
	})
	t.Run("no delay: batches form while the worker is busy", func(t *testing.T) {
		dir := codeDir(t, batchAlgorithm)
		ts := startServer(t, dir, spec.JSON, spec.JSON, func(c *Config) { c.MaxBatchSize = 8 })
		ts.waitReady(t)
		first := make(chan reply, 1)
		go func() { first <- postOne(ts, "application/json", []byte(`{"mode":"block"}`)) }()
		require.Eventually(t, func() bool {
			return metricValue(t, ts, "algocloud_inference_in_flight_requests") == 1 &&
				metricValue(t, ts, "algocloud_inference_queue_depth") == 0
		}, time.Minute, 5*time.Millisecond)
		rest := make(chan []reply, 1)
		go func() { rest <- postAll(t, ts, "application/json", jsonBodies(7, map[string]int{"x": 1})) }()
		waitQueued(t, ts, 7)
		require.NoError(t, os.WriteFile(filepath.Join(dir, "release"), nil, 0o644))
		require.Equal(t, 1, batchAnswers(t, []reply{<-first})[0].Batch)
		for _, a := range batchAnswers(t, <-rest) {
			require.Equal(t, 7, a.Batch)
		}
	})
	t.Run("predict without predict_batch is never batched", func(t *testing.T) {
		code := "import os\nclass AAI:\n    def predict(self, x):\n        return {'pid': os.getpid()}\n"
		ts := startServer(t, codeDir(t, code), spec.JSON, spec.JSON, func(c *Config) {
			c.MaxBatchSize, c.MaxQueueDelay = 4, Duration(time.Hour)
		})
		ts.waitReady(t)
		for _, r := range postAll(t, ts, "application/json", jsonBodies(4, 1)) {
			require.Equal(t, http.StatusOK, r.status, string(r.body))
		}
		require.Equal(t, 4.0, metricValue(t, ts, `algocloud_inference_batch_size_bucket{le="1"}`))
	})
}

func TestBatchMixedShapes(t *testing.T) {
	ts := startServer(t, codeDir(t, batchAlgorithm), spec.Image, spec.JSON, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueDelay = 3, Duration(time.Hour)
	})
	ts.waitReady(t)
	var bodies [][]byte
	for i := range 6 {
		if i%2 == 0 {
			bodies = append(bodies, pngBytes(t, testImage(8, 5, 0)))
		} else {
			bodies = append(bodies, pngBytes(t, testImage(4, 6, 0)))
		}
	}
	for i, a := range batchAnswers(t, postAll(t, ts, "image/png", bodies)) {
		require.Equal(t, 3, a.Batch)
		want := []int{5, 8, 3}
		if i%2 == 1 {
			want = []int{6, 4, 3}
		}
		require.Equal(t, [][]int{want, want, want}, a.Shapes, "each batch holds one shape")
	}
}

func TestBatchCrashFailsOnlyItsBatch(t *testing.T) {
	ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) {
		c.Threads, c.MaxBatchSize, c.MaxQueueDelay = 2, 3, Duration(time.Hour)
	})
	ts.waitReady(t)
	crash := postAll(t, ts, "application/json", [][]byte{[]byte(`{"mode":"crash"}`), []byte(`{"x":1}`), []byte(`{"x":2}`)})
	for _, r := range crash {
		e := requireError(t, http.StatusInternalServerError, CodeWorkerCrashed, r.status, r.body)
		require.Contains(t, e.Message, "exit status 3")
	}
	// The other worker serves while the crashed one restarts; then both do.
	for range 2 {
		for _, a := range batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(3, map[string]int{"x": 1}))) {
			require.Equal(t, 3, a.Batch)
		}
	}
	require.Equal(t, 1.0, metricValue(t, ts, `algocloud_inference_worker_restarts_total{reason="crashed"}`))
}

func TestPredictBatchErrors(t *testing.T) {
	ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueDelay = 2, Duration(time.Hour)
	})
	ts.waitReady(t)
	for _, r := range postAll(t, ts, "application/json", [][]byte{[]byte(`{"mode":"raise"}`), []byte(`{"x":1}`)}) {
		e := requireError(t, http.StatusInternalServerError, CodePredictFailed, r.status, r.body)
		require.Equal(t, "predict failed: ValueError: batch of 2 refused", e.Message)
		require.Contains(t, e.Traceback, "aai_main.py")
		require.NotContains(t, e.Traceback, "aai_runner")
	}
	for _, r := range postAll(t, ts, "application/json", [][]byte{[]byte(`{"mode":"short"}`), []byte(`{"x":1}`)}) {
		e := requireError(t, http.StatusInternalServerError, CodeBadOutput, r.status, r.body)
		require.Contains(t, e.Message, "predict_batch returned 1 values for 2 inputs")
	}
}

func TestCancelledWhileQueued(t *testing.T) {
	dir := codeDir(t, batchAlgorithm)
	ts := startServer(t, dir, spec.JSON, spec.JSON, nil)
	ts.waitReady(t)
	running := make(chan reply, 1)
	go func() { running <- postOne(ts, "application/json", []byte(`{"mode":"block"}`)) }()
	require.Eventually(t, func() bool {
		return metricValue(t, ts, "algocloud_inference_in_flight_requests") == 1 &&
			metricValue(t, ts, "algocloud_inference_queue_depth") == 0
	}, time.Minute, 5*time.Millisecond)
	ctx, cancel := context.WithCancel(t.Context())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/predict", strings.NewReader(`{"x":1}`))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	gone := make(chan error, 1)
	go func() {
		resp, err := ts.Client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		gone <- err
	}()
	waitQueued(t, ts, 1)
	cancel()
	require.ErrorIs(t, <-gone, context.Canceled)
	waitQueued(t, ts, 0) // dropped from the queue: no worker runs it
	require.NoError(t, os.WriteFile(filepath.Join(dir, "release"), nil, 0o644))
	batchAnswers(t, []reply{<-running})
	require.Equal(t, 1.0, metricValue(t, ts, "algocloud_inference_batch_size_count"))
}

func TestQueueOverflow(t *testing.T) {
	dir := codeDir(t, batchAlgorithm)
	ts := startServer(t, dir, spec.JSON, spec.JSON, func(c *Config) { c.MaxQueueSize = 2 })
	ts.waitReady(t)
	running := make(chan reply, 1)
	go func() { running <- postOne(ts, "application/json", []byte(`{"mode":"block"}`)) }()
	require.Eventually(t, func() bool {
		return metricValue(t, ts, "algocloud_inference_in_flight_requests") == 1 &&
			metricValue(t, ts, "algocloud_inference_queue_depth") == 0
	}, time.Minute, 5*time.Millisecond)
	queued := make(chan []reply, 1)
	go func() { queued <- postAll(t, ts, "application/json", jsonBodies(2, map[string]int{"x": 1})) }()
	waitQueued(t, ts, 2)

	r := postOne(ts, "application/json", []byte(`{"x":1}`))
	e := requireError(t, http.StatusTooManyRequests, CodeOverloaded, r.status, r.body)
	require.Contains(t, e.Message, "3 requests are already in progress")
	require.Equal(t, "1", r.retryAfter)
	require.Equal(t, 1.0, metricValue(t, ts, `algocloud_inference_requests_total{code="429",path="/predict"}`))

	require.NoError(t, os.WriteFile(filepath.Join(dir, "release"), nil, 0o644))
	batchAnswers(t, []reply{<-running})
	batchAnswers(t, <-queued)
	batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(2, map[string]int{"x": 1}))) // recovered
}

func TestDrainServesQueuedCalls(t *testing.T) {
	dir := codeDir(t, batchAlgorithm)
	ts := startServer(t, dir, spec.JSON, spec.JSON, func(c *Config) { c.MaxBatchSize = 4 })
	ts.waitReady(t)
	running := make(chan reply, 1)
	go func() { running <- postOne(ts, "application/json", []byte(`{"mode":"block"}`)) }()
	require.Eventually(t, func() bool {
		return metricValue(t, ts, "algocloud_inference_in_flight_requests") == 1 &&
			metricValue(t, ts, "algocloud_inference_queue_depth") == 0
	}, time.Minute, 5*time.Millisecond)
	queued := make(chan []reply, 1)
	go func() { queued <- postAll(t, ts, "application/json", jsonBodies(3, map[string]int{"x": 1})) }()
	waitQueued(t, ts, 3)
	ts.cancel() // SIGTERM: queued calls are still served
	require.Eventually(t, func() bool {
		_, err := (&http.Client{Timeout: time.Second}).Get(ts.URL + "/healthz")
		return err != nil
	}, 30*time.Second, 10*time.Millisecond)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "release"), nil, 0o644))
	require.Equal(t, 1, batchAnswers(t, []reply{<-running})[0].Batch)
	for _, a := range batchAnswers(t, <-queued) {
		require.Equal(t, 3, a.Batch)
	}
	ts.stop(t)
}

func TestMetricsEndpoint(t *testing.T) {
	ts := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, nil)
	ts.waitReady(t)
	batchAnswers(t, postAll(t, ts, "application/json", jsonBodies(3, map[string]int{"x": 1})))
	req, err := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	for _, want := range []string{
		`algocloud_inference_requests_total{code="200",path="/predict"} 3`,
		`algocloud_inference_request_duration_seconds_count{path="/predict"} 3`,
		`algocloud_inference_batch_size_count 3`,
		`algocloud_inference_queue_depth 0`,
		`algocloud_inference_in_flight_requests 0`,
		`algocloud_inference_worker_restarts_total{reason="crashed"} 0`,
		`algocloud_inference_queue_wait_seconds_count 3`,
		"process_resident_memory_bytes ",
		"go_goroutines ",
	} {
		require.Contains(t, b.String(), want)
	}
	require.Equal(t, 1.0, metricValue(t, ts, `algocloud_inference_requests_total{code="200",path="/metrics"}`))
}

// TestMetricsNeedToken: /metrics answers 401 without the endpoint's token
// (or with a wrong one) and 200 with it; a server configured with public
// metrics answers without a token.
func TestMetricsNeedToken(t *testing.T) {
	get := func(ts *testServer, token string) int {
		req, err := http.NewRequest(http.MethodGet, ts.URL+"/metrics", nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		status, _, body := ts.do(t, req)
		if status != http.StatusOK {
			requireError(t, http.StatusUnauthorized, CodeUnauthorized, status, body)
		} else {
			require.Contains(t, string(body), "algocloud_inference_queue_depth ")
		}
		return status
	}
	private := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, nil)
	require.Equal(t, http.StatusUnauthorized, get(private, ""))
	require.Equal(t, http.StatusUnauthorized, get(private, "wrong"))
	require.Equal(t, http.StatusOK, get(private, testToken))

	public := startServer(t, codeDir(t, batchAlgorithm), spec.JSON, spec.JSON, func(c *Config) { c.PublicMetrics = true })
	require.Equal(t, http.StatusOK, get(public, ""))
	require.Equal(t, http.StatusOK, get(public, testToken))
}

func TestPreferredBatchSizesChecked(t *testing.T) {
	_, err := NewServer(Config{TokenSHA256: tokenSHA(testToken), CodeDir: t.TempDir(), Input: spec.JSON, Output: spec.JSON,
		MaxBatchSize: 4, PreferredBatchSizes: []int{2, 8}}, nil)
	require.ErrorContains(t, err, "preferred_batch_sizes holds 8")
	require.Equal(t, 64, Config{Threads: 2}.WithDefaults().MaxQueueSize)
	require.Equal(t, 128, Config{Threads: 8}.WithDefaults().MaxQueueSize)
	require.Equal(t, 256, Config{Threads: 8, MaxBatchSize: 16}.WithDefaults().MaxQueueSize)
}
