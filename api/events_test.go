package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestListEvents(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	other := e.create("tokA", "other")
	for i, msg := range []string{"launching server", "issuing certificate", "server ready"} {
		e.store.addEvent(id, "provision", msg)
		if i == 0 {
			e.store.addEvent(other, "provision", "not this one")
		}
	}
	path := "/api/v1/deployments/" + id + "/events"
	w := e.do(http.MethodGet, path+"?limit=2", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m := jsonOf(t, w)
	evs := m["events"].([]any)
	require.Len(t, evs, 2)
	require.Equal(t, "launching server", evs[0].(map[string]any)["message"])
	require.Equal(t, "provision", evs[0].(map[string]any)["kind"])
	require.EqualValues(t, 3, m["next_after"])

	w = e.do(http.MethodGet, path+"?after=3", "tokA", nil)
	m = jsonOf(t, w)
	require.Len(t, m["events"], 1)
	require.Equal(t, "server ready", m["events"].([]any)[0].(map[string]any)["message"])
	require.EqualValues(t, 4, m["next_after"])

	w = e.do(http.MethodGet, path+"?after=4", "tokA", nil)
	m = jsonOf(t, w)
	require.Empty(t, m["events"])
	require.EqualValues(t, 4, m["next_after"], "an empty page keeps the cursor")

	for _, q := range []string{"?limit=0", "?limit=5000", "?after=-1", "?after=x"} {
		requireError(t, e.do(http.MethodGet, path+q, "tokA", nil), http.StatusBadRequest, "invalid_query")
	}
}

// sseReader reads Server-Sent Events messages.
type sseReader struct{ sc *bufio.Scanner }

// next returns the next message's fields (id, event, data), skipping comments.
func (r *sseReader) next(t *testing.T) map[string]string {
	t.Helper()
	msg := map[string]string{}
	for r.sc.Scan() {
		line := r.sc.Text()
		if line == "" {
			if len(msg) > 0 && msg["retry"] == "" {
				return msg
			}
			msg = map[string]string{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		msg[k] = v
	}
	t.Fatalf("stream ended: %v", r.sc.Err())
	return nil
}

func TestStreamEvents(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.store.addEvent(id, "provision", "launching server")
	e.store.addEvent(id, "provision", "server ready")
	srv := httptest.NewServer(e.h)
	defer srv.Close()

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/deployments/"+id+"/events/stream?after=1", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tokA")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "text/event-stream", resp.Header.Get("Content-Type"))

	r := &sseReader{sc: bufio.NewScanner(resp.Body)}
	msg := r.next(t)
	require.Equal(t, "2", msg["id"], "?after=1 skips the first event")
	var ev map[string]any
	require.NoError(t, json.Unmarshal([]byte(msg["data"]), &ev))
	require.Equal(t, "server ready", ev["message"])

	// An event added later arrives on a later poll.
	e.store.addEvent(id, "fetch_code", "cloning")
	msg = r.next(t)
	require.Equal(t, "3", msg["id"])
	require.Contains(t, msg["data"], `"kind":"fetch_code"`)
	cancel()
}

func TestStreamEventsEndsAfterLifetime(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.store.addEvent(id, "provision", "launching server")
	srv := newServerWith(t, e, func(s *server) { s.sseLifetime, s.ssePoll = 50*time.Millisecond, 10*time.Millisecond })

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/api/v1/deployments/"+id+"/events/stream", nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer tokA")
	req.Header.Set("Last-Event-ID", "0")
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	r := &sseReader{sc: bufio.NewScanner(resp.Body)}
	require.Equal(t, "1", r.next(t)["id"])
	require.Equal(t, "end", r.next(t)["event"])
	require.False(t, r.sc.Scan(), "the stream ends after its lifetime")
}

// newServerWith serves e's fakes through a server whose internals mod adjusts.
func newServerWith(t *testing.T, e *env, mod func(*server)) *httptest.Server {
	t.Helper()
	s := &server{store: e.store, wf: e.wf, log: discardLogger(), maxUpload: DefaultMaxUploadBytes, ssePoll: 500 * time.Millisecond, sseLifetime: 10 * time.Minute}
	mod(s)
	srv := httptest.NewServer(s.routes())
	t.Cleanup(srv.Close)
	return srv
}
