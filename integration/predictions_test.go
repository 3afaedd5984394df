package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/predictions/webhook"
)

// capturePredictionHistory is captureHistory for Prediction workflows: it
// checks the decoded history replays with the current code and, with
// ALGOCLOUD_CAPTURE_HISTORIES=1, adds it to predictions/testdata/histories
// (append-only; predictions' TestReplayHistories replays them).
func capturePredictionHistory(t *testing.T, p *platform.Platform, id, name string) *historypb.History {
	t.Helper()
	h := decodedHistory(t, p, fetchHistory(t, p.Client, predictions.WorkflowID(id)))
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(predictions.Prediction)
	parsed, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, r.ReplayWorkflowHistory(nil, parsed), "%s replays with the current code", id)
	if os.Getenv(captureEnv) != "1" {
		return h
	}
	path := filepath.Join(repoRoot(t), "predictions", "testdata", "histories", name)
	if _, err := os.Stat(path); err == nil {
		return h
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, js, 0o644))
	return h
}

// predCall is one request to the async predictions API.
func predCall(t *testing.T, p *platform.Platform, method, path, token string, body io.Reader, hdr map[string]string) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, p.APIURL+path, body)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return doReq(t, req)
}

// doReq sends req and reads the answer (decoded when JSON).
func doReq(t *testing.T, req *http.Request) (int, map[string]any, []byte, http.Header) {
	t.Helper()
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return res.StatusCode, m, raw, res.Header
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}

func jsonBody(t *testing.T, v any) io.Reader {
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return bytes.NewReader(b)
}

func dataURI(png []byte) string {
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(png)
}

// waitPrediction polls GET until the prediction is final.
func waitPrediction(t *testing.T, p *platform.Platform, api, token, id string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		st, m, raw, _ := predCall(t, p, http.MethodGet, "/api/v1/endpoints/"+api+"/predictions/"+id, token, nil, nil)
		require.Equal(t, http.StatusOK, st, string(raw))
		switch m["status"] {
		case "succeeded", "failed", "canceled":
			return m
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("prediction %s did not finish", id)
	return nil
}

// walkRepo is walk for a repository the test made.
func walkRepo(t *testing.T, c *client, apiName, repo, output string) (id, endpoint, token string) {
	t.Helper()
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Async " + apiName, "api_name": apiName, "input": "image", "output": output, "threads": 2,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id = r.Str("id")
	throughTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	return id, r.Str("endpoint"), r.Str("token")
}

// TestAsyncPredictions walks the async predictions API against real
// endpoints on the embedded Temporal: created with the endpoint's token and
// with the owner's, the output equal to a synchronous /predict of the same
// input (image->image and image->JSON), multipart, Prefer: wait, idempotency
// under concurrent creates, cancel of a slow predict, paging, and the
// refusals (another user's endpoint, wrong tokens, bad input, a URL the
// policy refuses, a bad Prefer, oversize).
func TestAsyncPredictions(t *testing.T) {
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.MaxPredictionInput = 256 << 10
		o.WebhookAllowLoopback = true // the test's receiver is on loopback
	})
	defer p.Stop()
	owner := devToken(t, p)
	c := newClient(t, p, owner)
	hc := endpointClient(t, p)

	// seg sleeps on 13-pixel-wide images, so a cancel catches it in flight.
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	src, err := os.ReadFile(filepath.Join(repo, "aai_main.py"))
	require.NoError(t, err)
	slow := strings.Replace(string(src), "    def predict(self, x):\n", "    def predict(self, x):\n        if x.shape[1] == 13:\n            import time\n            time.sleep(15)\n", 1)
	require.NotEqual(t, string(src), slow)
	commit(t, repo, map[string]string{"aai_main.py": slow})
	segID, segURL, segTok := walkRepo(t, c, "seg", repo, "image")
	_, mURL, mTok := walk(t, c, "measure", "measurements", "json")

	const seg = "/api/v1/endpoints/seg/predictions"
	img := samplePNG(t, 96, 64)
	res, want := predict(t, hc, segURL, segTok, img)
	require.Equal(t, http.StatusOK, res.StatusCode, string(want))

	// With the endpoint's token: 202, then succeeded; the output is the synchronous one.
	st, m, raw, hdr := predCall(t, p, http.MethodPost, seg, segTok, jsonBody(t, map[string]any{"input": dataURI(img)}), nil)
	require.Equal(t, http.StatusAccepted, st, string(raw))
	id, _ := m["id"].(string)
	require.NotEmpty(t, id)
	require.Equal(t, "starting", m["status"])
	require.Equal(t, p.APIURL+seg+"/"+id, m["urls"].(map[string]any)["get"])
	require.Equal(t, p.APIURL+seg+"/"+id, hdr.Get("Location"))
	done := waitPrediction(t, p, "seg", segTok, id)
	require.Equal(t, "succeeded", done["status"], fmt.Sprint(done))
	out := done["output"].(map[string]any)
	require.Equal(t, "image/png", out["content_type"])
	require.NotNil(t, done["metrics"].(map[string]any)["predict_time"])
	require.NotEmpty(t, done["started_at"])
	require.NotEmpty(t, done["completed_at"])
	st, _, got, _ := predCall(t, p, http.MethodGet, seg+"/"+id+"/output", segTok, nil, nil)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, want, got, "the async output is the synchronous one")

	// The workflow's history holds references, never the input, the output or a token.
	h := capturePredictionHistory(t, p, id, "prediction-succeeded.json")
	hjs, err := protojson.Marshal(h)
	require.NoError(t, err)
	require.NotContains(t, string(hjs), base64.StdEncoding.EncodeToString(img)[:200])
	require.NotContains(t, string(hjs), "ep_platform_")
	require.NotContains(t, string(hjs), segTok)

	// A webhook filtered to start and completed: two signed deliveries,
	// each the prediction as GET shows it at that moment.
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+segID+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	verifier, err := webhook.NewVerifier(r.Str("secret"))
	require.NoError(t, err)
	var hookMu sync.Mutex
	hooks := map[string]map[string]any{} // webhook-id -> payload
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		if verifier.Verify(req.Header, body) != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		hookMu.Lock()
		hooks[req.Header.Get(webhook.HeaderID)] = m
		hookMu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()
	st, m, raw, _ = predCall(t, p, http.MethodPost, seg, segTok, jsonBody(t, map[string]any{"input": dataURI(img),
		"webhook": receiver.URL + "/hook", "webhook_events_filter": []string{"start", "completed"}}), nil)
	require.Equal(t, http.StatusAccepted, st, string(raw))
	hookedID := m["id"].(string)
	require.Equal(t, "succeeded", waitPrediction(t, p, "seg", segTok, hookedID)["status"])
	require.Eventually(t, func() bool { hookMu.Lock(); defer hookMu.Unlock(); return len(hooks) == 2 }, time.Minute, 50*time.Millisecond)
	hookMu.Lock()
	require.Equal(t, "processing", hooks[hookedID+"-start"]["status"], "%v", hooks)
	require.Equal(t, "succeeded", hooks[hookedID+"-completed"]["status"], "%v", hooks)
	require.Equal(t, p.APIURL+seg+"/"+hookedID+"/output", hooks[hookedID+"-completed"]["output"].(map[string]any)["url"])
	hookMu.Unlock()
	time.Sleep(500 * time.Millisecond)
	hookMu.Lock()
	require.Len(t, hooks, 2, "output was filtered out; each event delivered once")
	hookMu.Unlock()
	capturePredictionHistory(t, p, hookedID, "prediction-webhooks.json")

	// With the owner's platform token and a multipart file.
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, err := mw.CreateFormFile("input", "photo.png")
	require.NoError(t, err)
	_, _ = fw.Write(img)
	require.NoError(t, mw.Close())
	st, m, raw, _ = predCall(t, p, http.MethodPost, seg, owner, &mp, map[string]string{"Content-Type": mw.FormDataContentType(), "Prefer": "wait=50"})
	require.Equal(t, http.StatusCreated, st, string(raw))
	require.Equal(t, "succeeded", m["status"], string(raw))
	st, _, got, _ = predCall(t, p, http.MethodGet, seg+"/"+m["id"].(string)+"/output", owner, nil, nil)
	require.Equal(t, http.StatusOK, st)
	require.Equal(t, want, got)

	// image -> JSON: Prefer: wait answers 201 with the JSON inline, equal to /predict's.
	mimg := samplePNG(t, 40, 30)
	res, mwant := predict(t, hc, mURL, mTok, mimg)
	require.Equal(t, http.StatusOK, res.StatusCode, string(mwant))
	st, m, raw, _ = predCall(t, p, http.MethodPost, "/api/v1/endpoints/measure/predictions", mTok,
		jsonBody(t, map[string]any{"input": dataURI(mimg)}), map[string]string{"Prefer": "wait=50"})
	require.Equal(t, http.StatusCreated, st, string(raw))
	require.Equal(t, "succeeded", m["status"], string(raw))
	gotJSON, err := json.Marshal(m["output"])
	require.NoError(t, err)
	require.JSONEq(t, string(mwant), string(gotJSON))

	// Idempotency: concurrent creates with one key give one prediction.
	ids := make([]string, 4)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, m, raw, _ := predCall(t, p, http.MethodPost, seg, segTok, jsonBody(t, map[string]any{"input": dataURI(img)}), map[string]string{"Idempotency-Key": "order-42"})
			if st != http.StatusAccepted {
				t.Errorf("create %d: %d %s", i, st, raw)
				return
			}
			ids[i], _ = m["id"].(string)
		}()
	}
	wg.Wait()
	for _, got := range ids[1:] {
		require.Equal(t, ids[0], got, "one prediction per Idempotency-Key")
	}
	require.Equal(t, "succeeded", waitPrediction(t, p, "seg", segTok, ids[0])["status"])
	st, m, _, _ = predCall(t, p, http.MethodPost, seg, segTok, jsonBody(t, map[string]any{"input": dataURI(img)}), map[string]string{"Idempotency-Key": "order-42"})
	require.Equal(t, http.StatusAccepted, st)
	require.Equal(t, ids[0], m["id"], "a retry after the end still finds it")

	// Cancel a slow predict in flight: canceled at once, and stays canceled.
	st, m, raw, _ = predCall(t, p, http.MethodPost, seg, segTok, jsonBody(t, map[string]any{"input": dataURI(samplePNG(t, 13, 10))}), nil)
	require.Equal(t, http.StatusAccepted, st, string(raw))
	slowID := m["id"].(string)
	require.Eventually(t, func() bool {
		_, m, _, _ := predCall(t, p, http.MethodGet, seg+"/"+slowID, segTok, nil, nil)
		return m["status"] == "processing"
	}, time.Minute, 100*time.Millisecond)
	time.Sleep(time.Second) // the call is in the endpoint now
	st, m, raw, _ = predCall(t, p, http.MethodPost, seg+"/"+slowID+"/cancel", segTok, nil, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	require.Equal(t, "canceled", m["status"])
	st, m, _, _ = predCall(t, p, http.MethodGet, seg+"/"+slowID+"/output", segTok, nil, nil)
	require.Equal(t, http.StatusConflict, st)
	require.Equal(t, "no_output", m["code"])
	wf, err := p.Client.DescribeWorkflowExecution(context.Background(), "prediction-"+slowID, "")
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		d, err := p.Client.DescribeWorkflowExecution(context.Background(), "prediction-"+slowID, "")
		return err == nil && d.WorkflowExecutionInfo.CloseTime != nil
	}, 30*time.Second, 200*time.Millisecond, "the workflow ends without waiting for the endpoint: %v", wf.WorkflowExecutionInfo.Status)
	_, m, _, _ = predCall(t, p, http.MethodGet, seg+"/"+slowID, segTok, nil, nil)
	require.Equal(t, "canceled", m["status"])
	capturePredictionHistory(t, p, slowID, "prediction-canceled.json")

	// Paging, newest first: every prediction once.
	seen := map[string]bool{}
	next := ""
	for pages := 0; ; pages++ {
		require.Less(t, pages, 10)
		path := seg + "?limit=2"
		if next != "" {
			path += "&cursor=" + next
		}
		st, m, raw, _ := predCall(t, p, http.MethodGet, path, segTok, nil, nil)
		require.Equal(t, http.StatusOK, st, string(raw))
		for _, it := range m["predictions"].([]any) {
			pid := it.(map[string]any)["id"].(string)
			require.False(t, seen[pid], "listed twice: %s", pid)
			seen[pid] = true
		}
		next, _ = m["next_cursor"].(string)
		if next == "" {
			break
		}
	}
	require.Len(t, seen, 5, "async, webhook, multipart, idempotent, slow")
	require.True(t, seen[slowID])

	// Retention: the sweep (run here as if two days passed) deletes the
	// input and output, and GET says expired.
	svc := predictions.Service{Store: p.Store, Blobs: p.Blobs}
	n, err := svc.Sweep(context.Background(), time.Now().Add(48*time.Hour))
	require.NoError(t, err)
	require.Equal(t, 6, n, "every finished prediction of both endpoints")
	st, m, raw, _ = predCall(t, p, http.MethodGet, seg+"/"+id, segTok, nil, nil)
	require.Equal(t, http.StatusOK, st, string(raw))
	require.Equal(t, true, m["expired"], string(raw))
	require.Nil(t, m["output"])
	st, m, _, _ = predCall(t, p, http.MethodGet, seg+"/"+id+"/output", segTok, nil, nil)
	require.Equal(t, http.StatusConflict, st)
	require.Equal(t, true, m["expired"])
	_, err = p.Blobs.Get(context.Background(), "predictions/"+segID+"/"+id+"/output")
	require.ErrorIs(t, err, blobs.ErrNotFound)

	// Refusals.
	other, err := p.Store.CreateUser(context.Background(), "mallory")
	require.NoError(t, err)
	otherTok, _, err := p.Store.CreateToken(context.Background(), other.ID, "t")
	require.NoError(t, err)
	for _, tc := range []struct {
		name, path, token string
		body              any
		hdr               map[string]string
		status            int
		code, field       string
	}{
		{"another user's endpoint", seg, otherTok, map[string]any{"input": dataURI(img)}, nil, 404, "not_found", ""},
		{"another user's prediction", seg + "/" + id, otherTok, nil, nil, 404, "not_found", ""},
		{"another endpoint's token", seg, mTok, map[string]any{"input": dataURI(img)}, nil, 404, "not_found", ""},
		{"unknown endpoint", "/api/v1/endpoints/nope/predictions", owner, map[string]any{"input": dataURI(img)}, nil, 404, "not_found", ""},
		{"unknown prediction", seg + "/p_nope", segTok, nil, nil, 404, "not_found", ""},
		{"no token", seg, "", map[string]any{"input": dataURI(img)}, nil, 401, "unauthorized", ""},
		{"unknown API token", seg, "ac_nope", map[string]any{"input": dataURI(img)}, nil, 401, "unauthorized", ""},
		{"JSON to an image endpoint", seg, segTok, map[string]any{"input": map[string]any{"a": 1}}, nil, 400, "invalid_input", "input"},
		{"no input", seg, segTok, map[string]any{}, nil, 400, "invalid_input", "input"},
		{"bad data URI", seg, segTok, map[string]any{"input": "data:image/png;base64,%%%"}, nil, 400, "invalid_input", "input"},
		{"URL the policy refuses", seg, segTok, map[string]any{"input": "http://127.0.0.1:9/x.png"}, nil, 400, "invalid_input", "input"},
		{"metadata URL", seg, segTok, map[string]any{"input": "http://169.254.169.254/latest/meta-data"}, nil, 400, "invalid_input", "input"},
		{"Prefer out of range", seg, segTok, map[string]any{"input": dataURI(img)}, map[string]string{"Prefer": "wait=61"}, 400, "invalid_header", "Prefer"},
		{"unknown field", seg, segTok, map[string]any{"input": dataURI(img), "inputs": 1}, nil, 400, "unknown_field", "inputs"},
		{"bad event filter", seg, segTok, map[string]any{"input": dataURI(img), "webhook": "https://example.com/h", "webhook_events_filter": []string{"done"}}, nil, 400, "invalid_field", "webhook_events_filter"},
		{"oversize", seg, segTok, map[string]any{"input": dataURI(make([]byte, 300<<10))}, nil, 413, "payload_too_large", "input"},
		{"bad cursor", seg + "?cursor=zzz", segTok, nil, nil, 400, "invalid_query", "cursor"},
	} {
		method := http.MethodGet
		var body io.Reader
		if tc.body != nil {
			method, body = http.MethodPost, jsonBody(t, tc.body)
		}
		st, m, raw, _ := predCall(t, p, method, tc.path, tc.token, body, tc.hdr)
		require.Equal(t, tc.status, st, "%s: %s", tc.name, raw)
		require.Equal(t, tc.code, m["code"], "%s: %s", tc.name, raw)
		if tc.field != "" {
			require.Contains(t, string(raw), `"field":"`+tc.field+`"`, "%s names the field: %s", tc.name, raw)
		}
	}
}
