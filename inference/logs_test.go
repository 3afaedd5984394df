package inference

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
)

// logsAlgo prints on stdout and stderr, from predict and from a thread it
// starts, sleeps between its first and last line (so two calls overlap),
// can print a lot, and can fail after printing.
const logsAlgo = `
import sys, threading, time

class AAI:
    def __init__(self):
        print("init output is not a request's")

    def predict(self, x):
        tag = x["tag"]
        print("start", tag)
        t = threading.Thread(target=lambda: print("thread", tag, file=sys.stderr))
        t.start(); t.join()
        time.sleep(x.get("sleep", 0))
        if x.get("big"):
            for i in range(4000):
                print("line %05d of %s %s" % (i, tag, "x" * 20))
        print("end", tag, file=sys.stderr)
        if x.get("fail"):
            raise ValueError("failed " + tag)
        return {"tag": tag}

    def testing_input_data(self):
        return {"tag": "test"}
`

// predictLogs posts x with or without the logs header and returns the
// status, body and decoded logs (ok: the header was there).
func predictLogs(t *testing.T, ts *testServer, x map[string]any, ask bool) (int, []byte, string, bool) {
	t.Helper()
	b, err := json.Marshal(x)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, ts.URL+"/predict", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	if ask {
		req.Header.Set(inferapi.LogsHeader, "1")
	}
	resp, err := ts.Client.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var body bytes.Buffer
	_, err = body.ReadFrom(resp.Body)
	require.NoError(t, err)
	_, ok := resp.Header[http.CanonicalHeaderKey(inferapi.LogsHeader)]
	logs, err := inferapi.Logs(resp.Header)
	require.NoError(t, err)
	return resp.StatusCode, body.Bytes(), logs, ok
}

// TestPredictLogs: a caller that sends Algocloud-Logs: 1 gets what its own
// predict printed (stdout, stderr and predict's threads), and nothing of a
// concurrent call's on the other worker; a caller that did not ask gets no
// logs; a failed predict's logs come with its error; long output keeps its
// last 64 KiB.
func TestPredictLogs(t *testing.T) {
	ts := startServer(t, codeDir(t, logsAlgo), spec.JSON, spec.JSON, func(c *Config) { c.Threads = 2 })
	ts.waitReady(t)

	// Two calls at once on the two workers, each printing while the other does.
	var wg sync.WaitGroup
	logs := make([]string, 2)
	for i, tag := range []string{"alpha", "beta"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, l, ok := predictLogs(t, ts, map[string]any{"tag": tag, "sleep": 1.5}, true)
			require.Equal(t, http.StatusOK, st, string(body))
			require.JSONEq(t, `{"tag":"`+tag+`"}`, string(body))
			require.True(t, ok)
			logs[i] = l
		}()
	}
	start := time.Now()
	wg.Wait()
	require.Less(t, time.Since(start), 2900*time.Millisecond, "the two calls ran at once")
	require.Equal(t, "start alpha\nthread alpha\nend alpha\n", logs[0])
	require.Equal(t, "start beta\nthread beta\nend beta\n", logs[1])

	// Not asked: no header, the same body as before.
	st, body, _, ok := predictLogs(t, ts, map[string]any{"tag": "quiet"}, false)
	require.Equal(t, http.StatusOK, st)
	require.JSONEq(t, `{"tag":"quiet"}`, string(body))
	require.False(t, ok, "a caller that did not ask gets no logs")
	require.Contains(t, ts.logs.String(), "start quiet", "the server still logs the output")

	// A failed predict: the error as before (no logs in its body), the logs in the header.
	st, body, l, ok := predictLogs(t, ts, map[string]any{"tag": "bad", "fail": true}, true)
	e := requireError(t, http.StatusInternalServerError, CodePredictFailed, st, body)
	require.Contains(t, e.Message, "failed bad")
	require.NotContains(t, string(body), "start bad")
	require.True(t, ok)
	require.Equal(t, "start bad\nthread bad\nend bad\n", l)

	// Long output: the last 64 KiB, marked as cut.
	st, body, l, _ = predictLogs(t, ts, map[string]any{"tag": "long", "big": true}, true)
	require.Equal(t, http.StatusOK, st, string(body))
	require.LessOrEqual(t, len(l), inferapi.MaxLogBytes+len("[earlier output dropped]\n"))
	require.Greater(t, len(l), inferapi.MaxLogBytes-100)
	require.True(t, strings.HasPrefix(l, "[earlier output dropped]\n"), l[:80])
	require.True(t, strings.HasSuffix(l, "line 03999 of long "+strings.Repeat("x", 20)+"\nend long\n"))
	require.NotContains(t, l, "start long")
}

// batchLogsAlgo defines predict_batch: one call serves a whole batch.
const batchLogsAlgo = `
class AAI:
    def predict_batch(self, xs):
        print("batch of", len(xs))
        return [{"tag": x["tag"]} for x in xs]

    def testing_input_data(self):
        return {"tag": "test"}
`

// TestPredictLogsBatch: the requests of one predict_batch call share its logs.
func TestPredictLogsBatch(t *testing.T) {
	ts := startServer(t, codeDir(t, batchLogsAlgo), spec.JSON, spec.JSON, func(c *Config) {
		c.MaxBatchSize, c.MaxQueueDelay = 4, Duration(500*time.Millisecond)
	})
	ts.waitReady(t)
	var wg sync.WaitGroup
	logs := make([]string, 2)
	for i, tag := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, body, l, _ := predictLogs(t, ts, map[string]any{"tag": tag}, i == 0)
			require.Equal(t, http.StatusOK, st, string(body))
			logs[i] = l
		}()
	}
	wg.Wait()
	require.Equal(t, "batch of 2\n", logs[0])
	require.Empty(t, logs[1], "the request that did not ask gets none")
}
