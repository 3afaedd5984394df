package templates_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// asyncAPI is a stand-in of the platform's async routes of one endpoint,
// just enough to check the request shapes the generated Python client sends
// and that it reads the answers as documented. The real platform runs the
// same client in integration (TestAsyncJobsSurfaces).
type asyncAPI struct {
	t  *testing.T
	mu sync.Mutex
	// what the client sent
	inputType, inputName, idemKey, prefer, webhook string
	inputBody                                      []byte
	archive                                        map[string][]byte
	concurrency                                    string
	polls                                          int
}

func (a *asyncAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer "+liveToken {
		http.Error(w, `{"code":"unauthorized","message":"no"}`, http.StatusUnauthorized)
		return
	}
	reply := func(status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	base := "/api/v1/endpoints/seg"
	switch r.Method + " " + r.URL.Path {
	case "POST " + base + "/predictions":
		a.idemKey, a.prefer = r.Header.Get("Idempotency-Key"), r.Header.Get("Prefer")
		f, h, err := r.FormFile("input")
		require.NoError(a.t, err)
		a.inputBody, _ = io.ReadAll(f)
		a.inputType, a.inputName, a.webhook = h.Header.Get("Content-Type"), h.Filename, r.FormValue("webhook")
		reply(http.StatusAccepted, map[string]any{"id": "p1", "status": "starting"})
	case "GET " + base + "/predictions/p1":
		a.polls++
		if a.polls < 2 {
			reply(http.StatusOK, map[string]any{"id": "p1", "status": "processing"})
			return
		}
		reply(http.StatusOK, map[string]any{"id": "p1", "status": "succeeded", "logs": "step 1\n<b>two</b>\n",
			"output": map[string]any{"url": base + "/predictions/p1/output", "content_type": "image/png", "size": 1}})
	case "GET " + base + "/predictions/p1/output":
		w.Header().Set("Content-Type", "image/png")
		_, _ = w.Write(a.inputBody) // the input back, as the "mask"
	case "GET " + base + "/predictions":
		reply(http.StatusOK, map[string]any{"predictions": []any{map[string]any{"id": "p1", "status": "succeeded"}}, "next_cursor": "c2"})
	case "POST " + base + "/batches":
		f, _, err := r.FormFile("archive")
		require.NoError(a.t, err)
		b, _ := io.ReadAll(f)
		zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
		require.NoError(a.t, err)
		a.archive = map[string][]byte{}
		for _, zf := range zr.File {
			rc, _ := zf.Open()
			a.archive[zf.Name], _ = io.ReadAll(rc)
			rc.Close()
		}
		a.concurrency = r.FormValue("concurrency")
		reply(http.StatusAccepted, map[string]any{"id": "b1", "status": "queued", "counts": map[string]int{"total": len(a.archive), "left": len(a.archive)}})
	case "GET " + base + "/batches/b1":
		reply(http.StatusOK, map[string]any{"id": "b1", "status": "succeeded", "counts": map[string]int{"total": len(a.archive), "done": len(a.archive) - 1, "failed": 1, "left": 0}})
	case "GET " + base + "/batches/b1/output.zip":
		w.Header().Set("Content-Type", "application/zip")
		_, _ = w.Write([]byte("PK-outputs"))
	case "GET " + base + "/batches/b1/errors":
		w.Header().Set("Content-Type", "application/x-ndjson")
		_, _ = w.Write([]byte(`{"index":1,"name":"x","error":"bad"}` + "\n"))
	default:
		reply(http.StatusNotFound, map[string]any{"code": "not_found", "message": r.Method + " " + r.URL.Path})
	}
}

// TestPythonClientAsyncShapes runs the generated client's predict_async,
// wait, output, predictions and batch with /usr/bin/python3.
func TestPythonClientAsyncShapes(t *testing.T) {
	requireTools(t)
	api := &asyncAPI{t: t}
	srv := httptest.NewServer(api)
	defer srv.Close()
	d := templates.ClientData{Name: "Seg", APIName: "seg", Endpoint: "https://127.0.0.1:9443", Input: spec.Image, Output: spec.Image, PlatformURL: srv.URL}
	files, err := templates.Clients(d)
	require.NoError(t, err)
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "algocloud_client.py"), []byte(files[templates.ClientPython].Content), 0o644))
	png := img16x12PNG
	require.NoError(t, os.WriteFile(filepath.Join(dir, "in.png"), png, 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "photos", "sub"), 0o755))
	for _, f := range []string{"photos/a.png", "photos/sub/b.png", "photos/.hidden"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(f), 0o644))
	}
	script := `
import json, os
from algocloud_client import Algorithm
algo = Algorithm()
p = algo.predict_async("in.png", webhook="https://hooks.example.com/h", wait=5)
print("created", p.id, p.status)
out = p.wait(timeout=30, interval=0.01).output()
print("output", out.shape, out.dtype)
print("logs", repr(p.logs))
page, cursor = algo.predictions(limit=5)
print("listed", [q.id for q in page], cursor, "logs" in page[0].data)
print("listed logs", repr(page[0].logs))
seen = []
b = algo.batch(["photos", "in.png"], out="outputs.zip", progress=seen.append, interval=0.01, concurrency=3)
print("batch", b.status, b.counts["done"], b.counts["failed"], len(seen))
print("files", open("outputs.zip", "rb").read().decode(), [json.loads(l)["name"] for l in open("outputs.errors.jsonl")])
`
	cmd := exec.Command(python, "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), templates.TokenEnv+"="+liveToken)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	got := string(out)
	require.Contains(t, got, "created p1 starting")
	require.Contains(t, got, "output (12, 16, 3) uint8")
	require.Contains(t, got, `logs 'step 1\n<b>two</b>\n'`, "wait's prediction carries the logs")
	require.Contains(t, got, "listed ['p1'] c2 False")
	require.Contains(t, got, `listed logs 'step 1\n<b>two</b>\n'`, "a listed prediction reads its logs when asked")
	require.Contains(t, got, "batch succeeded 2 1 2")
	require.Contains(t, got, "files PK-outputs ['x']")

	api.mu.Lock()
	defer api.mu.Unlock()
	require.Equal(t, "image/png", api.inputType, "an image goes as the multipart part input")
	require.Equal(t, png, api.inputBody)
	require.Equal(t, "https://hooks.example.com/h", api.webhook)
	require.True(t, strings.HasPrefix(api.idemKey, "py-"), api.idemKey)
	require.Equal(t, "wait=5", api.prefer)
	require.Equal(t, map[string][]byte{"a.png": []byte("photos/a.png"), "sub/b.png": []byte("photos/sub/b.png"), "in.png": png}, api.archive,
		"a folder's files by their path in it, hidden files left out")
	require.Equal(t, 3, api.polls, "wait polled until succeeded (2); the listed one's logs were read once (1)")
	require.Equal(t, "3", api.concurrency)
}
