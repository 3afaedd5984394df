package integration

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
)

// TestPredictionOverheadFigure measures what an async prediction costs over
// a synchronous /predict of the same input (docs/benchmarks.md, Async
// predictions): N predictions one after another on the measurements
// endpoint, each timed from create to completed (the store's created_at and
// completed_at, so the client's polling is not counted) and from the
// client's create to the 201 answer of Prefer: wait (the API polls the store
// every 100 ms), against N synchronous calls. Run with
// ALGOCLOUD_BENCH_PREDICTIONS=50; skipped otherwise (a figure, not a check).
func TestPredictionOverheadFigure(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("ALGOCLOUD_BENCH_PREDICTIONS"))
	if n <= 0 {
		t.Skip("set ALGOCLOUD_BENCH_PREDICTIONS=N to measure")
	}
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.WebhookAllowLoopback = true })
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	hc := endpointClient(t, p)
	mID, mURL, mTok := walk(t, c, "measure", "measurements", "json")
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+mID+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	received := make(chan time.Time, 1)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		at := time.Now()
		_, _ = io.Copy(io.Discard, req.Body)
		w.WriteHeader(http.StatusNoContent)
		received <- at
	}))
	defer receiver.Close()
	img := samplePNG(t, 64, 48)
	body := mustJSON(t, map[string]any{"input": dataURI(img), "webhook": receiver.URL, "webhook_events_filter": []string{"completed"}})
	for range 3 { // warm both paths
		res, out := predict(t, hc, mURL, mTok, img)
		require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	}

	var syncD, serverD, clientD, hookD []time.Duration
	for range n {
		start := time.Now()
		res, out := predict(t, hc, mURL, mTok, img)
		syncD = append(syncD, time.Since(start))
		require.Equal(t, http.StatusOK, res.StatusCode, string(out))

		req, err := http.NewRequest(http.MethodPost, p.APIURL+"/api/v1/endpoints/measure/predictions", bytes.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+mTok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Prefer", "wait=60")
		start = time.Now()
		st, m, raw, _ := doReq(t, req)
		clientD = append(clientD, time.Since(start))
		require.Equal(t, http.StatusCreated, st, string(raw))
		select {
		case at := <-received:
			hookD = append(hookD, at.Sub(start))
		case <-time.After(time.Minute):
			t.Fatal("no webhook within a minute")
		}
		created, err := time.Parse(time.RFC3339Nano, m["created_at"].(string))
		require.NoError(t, err)
		completed, err := time.Parse(time.RFC3339Nano, m["completed_at"].(string))
		require.NoError(t, err)
		serverD = append(serverD, completed.Sub(created))
	}
	med := func(d []time.Duration) time.Duration {
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	s, srv, cl, hk := med(syncD), med(serverD), med(clientD), med(hookD)
	t.Logf("FIGURE async predictions, median of %d (image->JSON, 64x48 PNG): synchronous /predict %v; async create->completed %v (overhead %v); client create->201 with Prefer: wait %v (overhead %v)",
		n, s.Round(100*time.Microsecond), srv.Round(100*time.Microsecond), (srv - s).Round(100*time.Microsecond),
		cl.Round(100*time.Microsecond), (cl - s).Round(100*time.Microsecond))
	t.Logf("FIGURE client create -> completed webhook received %v (overhead %v)", hk.Round(100*time.Microsecond), (hk - s).Round(100*time.Microsecond))
}
