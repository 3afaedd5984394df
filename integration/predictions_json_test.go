package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/predictions/webhook"
)

// polygonsRepo is examples/polygons in a Git repository, its predict made
// to sleep x["sleep"] seconds first (so calls overlap or queue) and to print
// x["tag"] at its start and end.
func polygonsRepo(t *testing.T) string {
	t.Helper()
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "polygons"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	changed := strings.Replace(string(src), "        polygons = x[\"polygons\"]\n",
		"        polygons = x[\"polygons\"]\n        import sys, time\n        print(\"start\", x.get(\"tag\", \"\"))\n"+
			"        time.sleep(float(x.get(\"sleep\", 0)))\n        print(\"end\", x.get(\"tag\", \"\"), file=sys.stderr)\n", 1)
	require.NotEqual(t, string(src), changed)
	commit(t, repo, map[string]string{"aai_main.py": changed})
	return repo
}

// walkJSON deploys repo as a JSON->JSON endpoint through the wizard's API
// (create, provision .. test, complete) with extra spec fields.
func walkJSON(t *testing.T, c *client, apiName, repo string, extra map[string]any) (id, endpoint, token string) {
	t.Helper()
	body := map[string]any{"name": "Polygons " + apiName, "api_name": apiName, "input": "json", "output": "json", "threads": 2}
	for k, v := range extra {
		body[k] = v
	}
	r := c.Do(http.MethodPost, "/api/v1/deployments", body)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id = r.Str("id")
	throughTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	return id, r.Str("endpoint"), r.Str("token")
}

// polygonInput is a JSON input for examples/polygons: a w x h rectangle.
func polygonInput(tag string, w, h, sleep float64) map[string]any {
	return map[string]any{"tag": tag, "sleep": sleep, "polygons": [][][]float64{{{0, 0}, {w, 0}, {w, h}, {0, h}}}}
}

// hookRecorder is a Standard Webhooks receiver on loopback that keeps every
// verified delivery by webhook-id.
type hookRecorder struct {
	mu    sync.Mutex
	hooks map[string]map[string]any
	srv   *httptest.Server
}

func newHookRecorder(t *testing.T, secret string) *hookRecorder {
	v, err := webhook.NewVerifier(secret)
	require.NoError(t, err)
	h := &hookRecorder{hooks: map[string]map[string]any{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if v.Verify(req.Header, body) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		h.mu.Lock()
		h.hooks[req.Header.Get(webhook.HeaderID)] = m
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookRecorder) get(id string) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hooks[id]
}

// TestAsyncPredictionsJSON deploys examples/polygons (JSON input) through the
// wizard's API with 2 workers and runs it synchronously and as async
// predictions with a JSON input: the async output equals the synchronous
// one; predict's prints come back as each prediction's logs, unmixed
// between two predictions that ran at once on the two workers; the logs
// webhook event fires (filter honoured) and carries them; the history holds
// references only. The synchronous API returns no logs.
func TestAsyncPredictionsJSON(t *testing.T) {
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.WebhookAllowLoopback = true })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)
	depID, url, tok := walkJSON(t, c, "polygons", polygonsRepo(t), nil)
	const api = "/api/v1/endpoints/polygons/predictions"

	// Synchronous: JSON in, JSON out, no logs header.
	in := polygonInput("sync", 4, 3, 0)
	req, err := http.NewRequest(http.MethodPost, url+"/predict", bytes.NewReader(mustJSON(t, in)))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	require.NoError(t, err)
	want, err := io.ReadAll(res.Body)
	res.Body.Close()
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(want))
	require.JSONEq(t, `{"count": 1, "total_area": 12.0, "polygons": [{"vertices": 4, "area": 12.0,
		"perimeter": 14.0, "centroid": [2.0, 1.5], "bbox": [0.0, 0.0, 4.0, 3.0]}]}`, string(want))
	require.Empty(t, res.Header.Get(inferapi.LogsHeader), "the synchronous API returns no logs unless asked")

	// The endpoint's webhook secret, and a receiver.
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+depID+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	hooks := newHookRecorder(t, r.Str("secret"))

	// Two async predictions at once, each sleeping 3 s on its own worker.
	const sleep = 3.0
	tags := []string{"alpha", "beta"}
	ids := make([]string, 2)
	var wg sync.WaitGroup
	start := time.Now()
	for i, tag := range tags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, m, raw, _ := predCall(t, p, http.MethodPost, api, tok, jsonBody(t, map[string]any{
				"input": polygonInput(tag, float64(2+i), 5, sleep), "webhook": hooks.srv.URL + "/hook",
				"webhook_events_filter": []string{"logs", "completed"}}), nil)
			require.Equal(t, http.StatusAccepted, st, string(raw))
			ids[i] = m["id"].(string)
		}()
	}
	wg.Wait()
	done := make([]map[string]any, 2)
	for i := range tags {
		done[i] = waitPrediction(t, p, "polygons", tok, ids[i])
	}
	took := time.Since(start)
	require.Less(t, took, time.Duration(2*sleep*float64(time.Second)), "the two predictions ran at once")
	for i, tag := range tags {
		d := done[i]
		require.Equal(t, "succeeded", d["status"], "%v", d)
		area := float64(2+i) * 5
		require.Equal(t, map[string]any{"vertices": 4.0, "area": area, "perimeter": 2*float64(2+i) + 10,
			"centroid": []any{float64(2+i) / 2, 2.5}, "bbox": []any{0.0, 0.0, float64(2 + i), 5.0}},
			d["output"].(map[string]any)["polygons"].([]any)[0], "the JSON output inline")
		wantLogs := fmt.Sprintf("start %s\nend %s\npolygon 0: 4 vertices, area %.3f\n1 polygons, total area %.3f\n", tag, tag, area, area)
		require.Equal(t, wantLogs, d["logs"], "each prediction has its own predict's output, nothing of the other's")
		require.GreaterOrEqual(t, d["metrics"].(map[string]any)["predict_time"].(float64), sleep)
	}

	// The logs and completed events fired for each (start was filtered out), with the logs.
	for i := range tags {
		id := ids[i]
		require.Eventually(t, func() bool { return hooks.get(id+"-logs") != nil && hooks.get(id+"-completed") != nil },
			time.Minute, 50*time.Millisecond)
		require.Equal(t, done[i]["logs"], hooks.get(id + "-logs")["logs"])
		require.Equal(t, "succeeded", hooks.get(id + "-logs")["status"])
		require.Equal(t, done[i]["logs"], hooks.get(id + "-completed")["logs"])
		require.Nil(t, hooks.get(id+"-start"), "start was filtered out")
	}

	// A prediction whose filter leaves logs out gets no logs event; its GET still has them.
	st, m, raw, _ := predCall(t, p, http.MethodPost, api, tok, jsonBody(t, map[string]any{
		"input": polygonInput("gamma", 1, 1, 0), "webhook": hooks.srv.URL + "/hook", "webhook_events_filter": []string{"completed"}}),
		map[string]string{"Prefer": "wait=50"})
	require.Equal(t, http.StatusCreated, st, string(raw))
	require.Equal(t, "start gamma\nend gamma\npolygon 0: 4 vertices, area 1.000\n1 polygons, total area 1.000\n", m["logs"])
	gamma := m["id"].(string)
	require.Eventually(t, func() bool { return hooks.get(gamma+"-completed") != nil }, time.Minute, 50*time.Millisecond)
	time.Sleep(500 * time.Millisecond)
	require.Nil(t, hooks.get(gamma+"-logs"), "the filter leaves the logs event out")

	// A failed predict keeps its logs beside the error.
	st, m, raw, _ = predCall(t, p, http.MethodPost, api, tok, jsonBody(t, map[string]any{
		"input": map[string]any{"tag": "bad", "polygons": [][][]float64{{{0, 0}, {1, 1}}}}}), map[string]string{"Prefer": "wait=50"})
	require.Equal(t, http.StatusCreated, st, string(raw))
	require.Equal(t, "failed", m["status"], string(raw))
	require.Contains(t, m["error"].(map[string]any)["message"], "polygon 0: expected at least 3")
	require.Equal(t, "start bad\nend bad\n", m["logs"])

	// Lists leave logs out; the history holds references, never the logs or the input.
	st, m, raw, _ = predCall(t, p, http.MethodGet, api, tok, nil, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	for _, it := range m["predictions"].([]any) {
		require.NotContains(t, it.(map[string]any), "logs")
	}
	h := capturePredictionHistory(t, p, ids[0], "prediction-logs-after.json")
	called := false
	for _, ev := range h.GetEvents() {
		a := ev.GetActivityTaskCompletedEventAttributes()
		if a == nil || len(a.GetResult().GetPayloads()) == 0 {
			continue
		}
		var out predictions.PredictOutcome
		if json.Unmarshal(a.GetResult().GetPayloads()[0].GetData(), &out) != nil || out.OutputKey == "" {
			continue
		}
		called = true // CallEndpoint's result: the logs' blob key and size, not the logs
		require.NotEmpty(t, out.LogsKey)
		require.Equal(t, int64(len(done[0]["logs"].(string))), out.LogsSize)
		require.NotContains(t, string(a.GetResult().GetPayloads()[0].GetData()), "start alpha")
	}
	require.True(t, called, "the history holds CallEndpoint's outcome")
}

// TestAsyncPredictions429 deploys an endpoint whose admission refuses early
// (1 worker, max_queue_size 1: 2 requests in progress at most) and creates
// more async predictions at once than it admits: every one succeeds, the
// endpoint answered 429 to some calls (its /metrics), and each predict ran
// exactly once (the endpoint's 200s grew by the number of predictions).
func TestAsyncPredictions429(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)
	_, url, tok := walkJSON(t, c, "busy", polygonsRepo(t), map[string]any{"threads": 1, "max_queue_size": 1})
	const api = "/api/v1/endpoints/busy/predictions"

	before := predictCounts(t, hc, url, tok)
	const n = 6
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, m, raw, _ := predCall(t, p, http.MethodPost, api, tok,
				jsonBody(t, map[string]any{"input": polygonInput(fmt.Sprint("p", i), float64(i+1), 1, 1)}), nil)
			require.Equal(t, http.StatusAccepted, st, string(raw))
			ids[i] = m["id"].(string)
		}()
	}
	wg.Wait()
	for i, id := range ids {
		d := waitPrediction(t, p, "busy", tok, id)
		require.Equal(t, "succeeded", d["status"], "%v", d)
		require.Equal(t, float64(i+1), d["output"].(map[string]any)["total_area"])
		require.Equal(t, 1, strings.Count(d["logs"].(string), fmt.Sprintf("start p%d\n", i)))
	}
	after := predictCounts(t, hc, url, tok)
	refused := after["429"] - before["429"]
	t.Logf("the endpoint answered 429 to %d calls and 200 to %d", refused, after["200"]-before["200"])
	require.Positive(t, refused, "the endpoint refused some calls: the workflows retried them")
	require.Equal(t, n, after["200"]-before["200"], "each predict ran once")
	require.Equal(t, before["500"], after["500"])
}

var requestsLine = regexp.MustCompile(`(?m)^algocloud_inference_requests_total\{code="(\d+)",path="/predict"\} (\d+)$`)

// predictCounts reads the endpoint's /predict answers by status code from its /metrics.
func predictCounts(t *testing.T, hc *http.Client, url, tok string) map[string]int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := hc.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.StatusCode, string(b))
	out := map[string]int{}
	for _, m := range requestsLine.FindAllStringSubmatch(string(b), -1) {
		out[m[1]], _ = strconv.Atoi(m[2])
	}
	return out
}
