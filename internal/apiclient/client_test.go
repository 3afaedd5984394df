package apiclient

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const testToken = "ac_test"

// fakeAPI is an httptest server whose routes the test sets; it checks the
// API token on every request and records what it received.
type fakeAPI struct {
	t   *testing.T
	srv *httptest.Server
	mux *http.ServeMux
	mu  sync.Mutex
	got []string // "METHOD path?query"
}

func newFakeAPI(t *testing.T) (*fakeAPI, *Client) {
	f := &fakeAPI{t: t, mux: http.NewServeMux()}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.got = append(f.got, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer "+testToken {
			writeJSON(w, http.StatusUnauthorized, map[string]any{"code": "unauthorized", "message": "the API token is unknown or revoked"})
			return
		}
		f.mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	c, err := New(f.srv.URL+"/", testToken, nil)
	require.NoError(t, err)
	return f, c
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func TestNew(t *testing.T) {
	_, err := New("127.0.0.1:8080", "tok", nil)
	require.ErrorContains(t, err, "want http(s)")
	_, err = New("http://127.0.0.1:8080", " ", nil)
	require.ErrorContains(t, err, "ALGOCLOUD_TOKEN")
	c, err := New(" http://127.0.0.1:8080/ ", "tok", nil)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080", c.BaseURL())
	require.Equal(t, "http://127.0.0.1:8080/api/ca.pem", c.Resolve("/api/ca.pem"))
	require.Equal(t, "https://x.example/ca.pem", c.Resolve("https://x.example/ca.pem"))
}

func TestDeploymentsAndErrors(t *testing.T) {
	f, c := newFakeAPI(t)
	ctx := context.Background()
	f.mux.HandleFunc("GET /api/v1/me", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "u1", "name": "dev"})
	})
	f.mux.HandleFunc("GET /api/v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"deployments": []any{
			map[string]any{"id": "d1", "name": "Seg", "api_name": "seg", "step": "completed", "status": "live",
				"endpoint": "https://127.0.0.1:9443", "updated_at": "2025-01-02T03:04:05Z"},
		}})
	})
	var created map[string]any
	f.mux.HandleFunc("POST /api/v1/deployments", func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "application/json", r.Header.Get("Content-Type"))
		require.NoError(t, json.NewDecoder(r.Body).Decode(&created))
		writeJSON(w, 201, map[string]any{"id": "d2", "api_name": created["api_name"], "step": "configured", "status": "draft",
			"steps": []any{map[string]any{"name": "provision", "done": false}}, "spec": created})
	})
	f.mux.HandleFunc("POST /api/v1/deployments/d2/steps/provision", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 409, map[string]any{"code": "step_rejected", "message": "already provisioned", "step": "provisioned", "status": "draft"})
	})
	f.mux.HandleFunc("POST /api/v1/deployments/d2/steps/test", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 422, map[string]any{"code": "test_failed", "message": "ZeroDivisionError: division by zero",
			"traceback": "Traceback (most recent call last):\n  File \"aai_main.py\", line 3\nZeroDivisionError: division by zero\n",
			"step":      "requirements_installed", "status": "draft"})
	})
	f.mux.HandleFunc("POST /api/v1/deployments/d2/steps/complete", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "d2", "endpoint": "https://127.0.0.1:9443", "token": "ep_x", "token_note": "shown once", "ca_url": "/api/ca.pem"})
	})
	f.mux.HandleFunc("PUT /api/v1/deployments/d2/spec", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 400, map[string]any{"code": "invalid_spec", "message": "invalid threads: must be 1..64",
			"fields": []any{map[string]any{"field": "threads", "message": "must be 1..64"}}})
	})
	f.mux.HandleFunc("DELETE /api/v1/deployments/d2", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"id": "d2", "step": "deleted", "status": "deleted"})
	})
	f.mux.HandleFunc("DELETE /api/v1/deployments/busy", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 409, map[string]any{"code": "step_rejected", "message": "a step is running", "step": "provisioned", "status": "draft"})
	})
	f.mux.HandleFunc("GET /api/v1/deployments/gone", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream broke", http.StatusBadGateway)
	})

	u, err := c.Me(ctx)
	require.NoError(t, err)
	require.Equal(t, User{ID: "u1", Name: "dev"}, u)

	list, err := c.ListDeployments(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	require.Equal(t, "seg", list[0].APIName)
	require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), list[0].UpdatedAt)

	d, err := c.CreateDeployment(ctx, map[string]any{"name": "Seg", "api_name": "seg2", "input": "image", "output": "image"})
	require.NoError(t, err)
	require.Equal(t, "d2", d.ID)
	require.Equal(t, "seg2", created["api_name"])
	require.False(t, d.StepDone("provision"))
	require.JSONEq(t, `{"name": "Seg", "api_name": "seg2", "input": "image", "output": "image"}`, string(d.Spec))

	_, err = c.Step(ctx, "d2", "provision", nil)
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, 409, e.StatusCode)
	require.Equal(t, "step_rejected", ErrorCode(err))
	require.Equal(t, "provisioned", e.Step)
	require.Contains(t, err.Error(), "already provisioned (the deployment is at step provisioned)")

	_, err = c.Step(ctx, "d2", "test", nil)
	require.ErrorAs(t, err, &e)
	require.Equal(t, "test_failed", e.Code)
	require.Contains(t, e.Traceback, "ZeroDivisionError")

	_, err = c.UpdateSpec(ctx, "d2", map[string]any{"threads": 100})
	require.ErrorAs(t, err, &e)
	require.Equal(t, []FieldError{{Field: "threads", Message: "must be 1..64"}}, e.Fields)

	done, err := c.Complete(ctx, "d2")
	require.NoError(t, err)
	require.Equal(t, "ep_x", done.Token)
	require.Equal(t, f.srv.URL+"/api/ca.pem", c.Resolve(done.CAURL))

	gone, err := c.DeleteDeployment(ctx, "d2")
	require.NoError(t, err)
	require.Equal(t, "deleted", gone.Status)
	_, err = c.DeleteDeployment(ctx, "busy")
	require.Equal(t, "step_rejected", ErrorCode(err))

	_, err = c.GetDeployment(ctx, "gone")
	require.ErrorAs(t, err, &e)
	require.Equal(t, "http_502", e.Code)
	require.Equal(t, "upstream broke", e.Message)

	bad, err := New(f.srv.URL, "wrong", nil)
	require.NoError(t, err)
	_, err = bad.ListDeployments(ctx)
	require.Equal(t, "unauthorized", ErrorCode(err))
	require.Equal(t, "", ErrorCode(errors.New("plain")))
}

func TestFetchCodeUpload(t *testing.T) {
	f, c := newFakeAPI(t)
	type part struct{ Field, Name, Body string }
	var parts []part
	f.mux.HandleFunc("POST /api/v1/deployments/d1/steps/fetch_code", func(w http.ResponseWriter, r *http.Request) {
		mr, err := r.MultipartReader()
		require.NoError(t, err)
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err)
			b, err := io.ReadAll(p)
			require.NoError(t, err)
			parts = append(parts, part{p.FormName(), p.FileName(), string(b)})
		}
		writeJSON(w, 200, map[string]any{"id": "d1", "step": "code_fetched"})
	})
	d, err := c.FetchCodeUpload(context.Background(), "d1",
		Upload{Name: "code.zip", Body: bytes.NewReader([]byte("PK zip bytes"))},
		Upload{Name: "model.onnx", Body: bytes.NewReader([]byte("onnx"))})
	require.NoError(t, err)
	require.Equal(t, "code_fetched", d.Step)
	require.Equal(t, []part{{"archive", "code.zip", "PK zip bytes"}, {"files", "model.onnx", "onnx"}}, parts)

	// An answer before the whole body was read (here: the upload is refused) is still an *Error.
	f.mux.HandleFunc("POST /api/v1/deployments/d9/steps/fetch_code", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 413, map[string]any{"code": "body_too_large", "message": "request body is over the limit"})
	})
	_, err = c.FetchCodeUpload(context.Background(), "d9", Upload{Name: "big.zip", Body: bytes.NewReader(make([]byte, 8<<20))})
	require.Equal(t, "body_too_large", ErrorCode(err))
}

func TestEventsPaging(t *testing.T) {
	f, c := newFakeAPI(t)
	var events []Event
	for i := 1; i <= 2500; i++ {
		events = append(events, Event{ID: int64(i), Kind: "install_requirements", Message: "line " + strconv.Itoa(i)})
	}
	f.mux.HandleFunc("GET /api/v1/deployments/d1/events", func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		out := []Event{}
		next := after
		for _, e := range events {
			if e.ID > after && len(out) < limit {
				out = append(out, e)
				next = e.ID
			}
		}
		writeJSON(w, 200, map[string]any{"events": out, "next_after": next})
	})
	p, err := c.Events(context.Background(), "d1", 10, 5)
	require.NoError(t, err)
	require.Len(t, p.Events, 5)
	require.Equal(t, int64(15), p.NextAfter)
	last, err := c.LastEventID(context.Background(), "d1")
	require.NoError(t, err)
	require.Equal(t, int64(2500), last)
}

// sse serves one stream of events after ?after, then ends as end says.
func sse(events []Event, end string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		after, _ := strconv.ParseInt(r.URL.Query().Get("after"), 10, 64)
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "retry: 2000\n\n: keep-alive\n\n")
		for _, e := range events {
			if e.ID > after {
				b, _ := json.Marshal(e)
				fmt.Fprintf(w, "id: %d\ndata: %s\n\n", e.ID, b)
			}
		}
		switch end {
		case "end":
			fmt.Fprint(w, "event: end\ndata: {\"reason\":\"stream lifetime reached; reconnect to continue\"}\n\n")
		case "error":
			fmt.Fprint(w, "event: error\ndata: {\"code\":\"internal\",\"message\":\"reading events failed\"}\n\n")
		}
	}
}

func TestStreamEvents(t *testing.T) {
	f, c := newFakeAPI(t)
	evs := []Event{{ID: 1, Kind: "provision", Message: "a"}, {ID: 2, Kind: "provision", Message: "multi\nline"}, {ID: 3, Kind: "test", Message: "c"}}
	f.mux.HandleFunc("GET /api/v1/deployments/d1/events/stream", sse(evs, "end"))
	f.mux.HandleFunc("GET /api/v1/deployments/d2/events/stream", sse(evs, "error"))
	f.mux.HandleFunc("GET /api/v1/deployments/d3/events/stream", sse(evs, "close"))
	ctx := context.Background()

	var got []Event
	last, err := c.StreamEvents(ctx, "d1", 1, func(e Event) error { got = append(got, e); return nil })
	require.ErrorIs(t, err, ErrStreamEnded)
	require.Equal(t, int64(3), last)
	require.Equal(t, evs[1:], got)

	_, err = c.StreamEvents(ctx, "d2", 3, func(Event) error { return nil })
	require.ErrorContains(t, err, "reading events failed")

	last, err = c.StreamEvents(ctx, "d3", 0, func(Event) error { return nil })
	require.ErrorContains(t, err, "connection closed")
	require.Equal(t, int64(3), last)

	_, err = c.StreamEvents(ctx, "nope", 0, func(Event) error { return nil })
	require.Equal(t, "http_404", ErrorCode(err))
}

// TestFollowEvents reconnects after the server ends the stream, resuming
// after the last event, until fn stops it.
func TestFollowEvents(t *testing.T) {
	f, c := newFakeAPI(t)
	var mu sync.Mutex
	evs := []Event{{ID: 1, Message: "a"}}
	connects := 0
	f.mux.HandleFunc("GET /api/v1/deployments/d1/events/stream", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		connects++
		cur := append([]Event(nil), evs...)
		evs = append(evs, Event{ID: int64(len(evs) + 1), Message: "more"})
		mu.Unlock()
		sse(cur, "end")(w, r)
	})
	var ids []int64
	stop := errors.New("enough")
	err := c.FollowEvents(context.Background(), "d1", 0, func(e Event) error {
		ids = append(ids, e.ID)
		if len(ids) == 4 {
			return stop
		}
		return nil
	})
	require.ErrorIs(t, err, stop)
	require.Equal(t, []int64{1, 2, 3, 4}, ids, "each event once, in order, across reconnections")
	require.GreaterOrEqual(t, connects, 4)

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	f.mux.HandleFunc("GET /api/v1/deployments/d2/events/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	require.ErrorIs(t, c.FollowEvents(ctx, "d2", 0, func(Event) error { return nil }), context.DeadlineExceeded)

	err = c.FollowEvents(context.Background(), "missing", 0, func(Event) error { return nil })
	require.Equal(t, "http_404", ErrorCode(err), "a refusal is not retried")
}

func TestClientsAndCA(t *testing.T) {
	f, c := newFakeAPI(t)
	f.mux.HandleFunc("GET /api/v1/deployments/d1/clients", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"endpoint": "https://127.0.0.1:9443", "input": "image", "output": "image", "token_env": "ALGOCLOUD_ENDPOINT_TOKEN",
			"order": []string{"curl"}, "clients": map[string]any{"curl": map[string]any{"filename": "predict.sh", "content_type": "text/x-shellscript", "title": "curl", "content": "#!/bin/sh\n"}}})
	})
	f.mux.HandleFunc("GET /api/v1/deployments/d1/clients/curl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Disposition", "attachment; filename=predict.sh")
		_, _ = w.Write([]byte("#!/bin/sh\n"))
	})
	f.mux.HandleFunc("GET /api/ca.pem", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("PEM")) })
	cl, err := c.Clients(context.Background(), "d1")
	require.NoError(t, err)
	require.Equal(t, "predict.sh", cl.Clients["curl"].Filename)
	name, body, err := c.ClientFile(context.Background(), "d1", "curl")
	require.NoError(t, err)
	require.Equal(t, "predict.sh", name)
	require.Equal(t, "#!/bin/sh\n", string(body))
	ca, err := c.CARoot(context.Background())
	require.NoError(t, err)
	require.Equal(t, "PEM", string(ca))
}

func TestZipDir(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, filepath.FromSlash(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o755))
		require.NoError(t, os.WriteFile(p, []byte(content), 0o644))
	}
	write("aai_main.py", "class AAI: pass\n")
	write("algocloud.json", "{}")
	write("models/net.onnx", "weights")
	write(".git/HEAD", "ref")
	write("__pycache__/aai_main.cpython-311.pyc", "x")
	write("pkg/__pycache__/m.pyc", "x")
	require.NoError(t, os.Symlink("aai_main.py", filepath.Join(dir, "link.py")))

	var b bytes.Buffer
	st, err := ZipDir(dir, &b)
	require.NoError(t, err)
	require.Equal(t, 3, st.Files)
	require.Equal(t, []string{"link.py"}, st.Skipped)
	zr, err := zip.NewReader(bytes.NewReader(b.Bytes()), int64(b.Len()))
	require.NoError(t, err)
	var names []string
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	require.Equal(t, []string{"aai_main.py", "algocloud.json", "models/net.onnx"}, names)

	_, err = ZipDir(t.TempDir(), &b)
	require.ErrorContains(t, err, "no files")
}

func TestSniffInput(t *testing.T) {
	for _, c := range []struct {
		name, data, ctype, filename string
	}{
		{"photo.png", "\x89PNG\r\n\x1a\nrest", "image/png", "photo.png"},
		{"dir/photo.jpg", "\xff\xd8\xff\xe0rest", "image/jpeg", "photo.jpg"},
		{"anim.gif", "GIF89a...", "image/gif", "anim.gif"},
		{"x.npy", "\x93NUMPY\x01\x00", NPYType, "x.npy"},
		{"in.json", "not even json", JSONType, "in.json"},
		{"-", ` {"a": 1}`, JSONType, ""},
		{"data", `[1, 2]`, JSONType, "data"},
		{"data.csv", "a,b\n1,2\n", "text/csv; charset=utf-8", "data.csv"},
		{"blob", "\x00\x01\x02", "application/octet-stream", "blob"},
	} {
		in := SniffInput(c.name, []byte(c.data))
		require.Equal(t, c.ctype, in.ContentType, c.name)
		require.Equal(t, c.filename, in.Filename, c.name)
	}
	in := SniffInput("https://example.com/a.png", nil)
	require.Equal(t, JSONType, in.ContentType)
	require.JSONEq(t, `{"url": "https://example.com/a.png"}`, string(in.Body))
}

func TestPredict(t *testing.T) {
	var gotQuery, gotType, gotAuth string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotQuery, gotType, gotAuth = r.URL.RawQuery, r.Header.Get("Content-Type"), r.Header.Get("Authorization")
		body, _ := io.ReadAll(r.Body)
		switch string(body) {
		case "raise":
			writeJSON(w, 500, map[string]any{"code": "predict_failed", "message": "boom", "traceback": "Traceback ...\nValueError: boom\n"})
		case "file":
			w.Header().Set("Content-Disposition", `attachment; filename="../../etc/result.csv"`)
			w.Header().Set("Content-Type", "text/csv")
			_, _ = w.Write([]byte("a,b\n"))
		default:
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			_, _ = w.Write([]byte(`{"ok": true}`))
		}
	}))
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	hc, err := EndpointClient(caPEM)
	require.NoError(t, err)
	ctx := context.Background()

	out, err := Predict(ctx, hc, srv.URL+"/", " ep_tok ", Input{Body: []byte("x"), ContentType: "image/png", Filename: "a b.png"})
	require.NoError(t, err)
	require.Equal(t, Output{ContentType: "application/json", Body: []byte(`{"ok": true}`)}, out)
	require.Equal(t, "filename=a+b.png", gotQuery)
	require.Equal(t, "image/png", gotType)
	require.Equal(t, "Bearer ep_tok", gotAuth)

	out, err = Predict(ctx, hc, srv.URL, "t", Input{Body: []byte("file")})
	require.NoError(t, err)
	require.Equal(t, "result.csv", out.Filename, "the name loses its folders")
	require.Equal(t, "text/csv", out.ContentType)

	_, err = Predict(ctx, hc, srv.URL, "t", Input{Body: []byte("raise")})
	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, "predict_failed", e.Code)
	require.Contains(t, e.Traceback, "ValueError: boom")

	// Without the CA the certificate is not trusted: verification is never skipped.
	_, err = Predict(ctx, &http.Client{}, srv.URL, "t", Input{Body: []byte("x")})
	var unknown x509.UnknownAuthorityError
	require.ErrorAs(t, err, &unknown)

	_, err = EndpointClient([]byte("not pem"))
	require.Error(t, err)
	_, err = Predict(ctx, hc, "ftp://x", "t", Input{})
	require.ErrorContains(t, err, "want https")
}
