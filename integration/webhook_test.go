package integration

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/predictions/webhook"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// TestWebhookDeliveryThroughThePlatform runs a delivery on the platform's
// own worker (what a prediction's workflow starts), signed with the secret
// the API showed once: the receiver on loopback (allowed by
// --webhook-allow-loopback) verifies it; the platform is stopped between
// two attempts, as Ctrl-C stops `algocloud dev`, and the restarted one
// finishes the delivery with the same webhook-id; the attempts route lists
// them. A platform without the flag refuses the same URL.
func TestWebhookDeliveryThroughThePlatform(t *testing.T) {
	data := t.TempDir()
	allowLoopback := func(o *platform.Options) { o.WebhookAllowLoopback = true }
	p := startPlatform(t, data, allowLoopback)
	tok := devToken(t, p)
	c := newClient(t, p, tok)
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "hooked", "api_name": "hooked", "input": "image", "output": "json"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	secret := r.Str("secret")
	v, err := webhook.NewVerifier(secret)
	require.NoError(t, err)

	var mu sync.Mutex
	var ids []string
	var verified int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		mu.Lock()
		n := len(ids)
		ids = append(ids, req.Header.Get(webhook.HeaderID))
		if v.Verify(req.Header, body) == nil {
			verified++
		}
		mu.Unlock()
		if n == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }

	in := webhook.DeliverInput{
		DeliveryID: "pred1-completed", EndpointAlgorithmID: id, SubjectID: "pred1", URL: srv.URL + "/hook",
		Event: webhook.Event{Type: webhook.EventCompleted, Payload: []byte(`{"id":"pred1","status":"succeeded"}`)},
		Retry: webhook.RetryOptions{InitialInterval: 3 * time.Second, BackoffCoefficient: 1, MaximumInterval: 3 * time.Second, GiveUpAfter: 10 * time.Minute},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	_, err = webhook.Start(ctx, p.Client, workflows.TaskQueue, in)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		list, err := p.Store.ListWebhookAttempts(ctx, id, "pred1", 0)
		return err == nil && len(list) == 1
	}, time.Minute, 50*time.Millisecond)
	time.Sleep(100 * time.Millisecond)
	p.Stop()
	require.Equal(t, 1, count())

	p2 := startPlatform(t, data, allowLoopback)
	defer p2.Stop()
	run := p2.Client.GetWorkflow(ctx, webhook.WorkflowID(in.DeliveryID), "")
	var res webhook.Result
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, store.WebhookDelivered, res.Outcome)
	require.Equal(t, 2, count())
	mu.Lock()
	require.Equal(t, []string{"pred1-completed", "pred1-completed"}, ids)
	require.Equal(t, 2, verified, "a delivery the shown secret does not verify")
	mu.Unlock()

	c2 := newClient(t, p2, tok)
	r = c2.Do(http.MethodGet, "/api/v1/endpoints/hooked/predictions/pred1/webhooks", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"outcome":"retry"`)
	require.Contains(t, string(r.Raw), `"outcome":"delivered"`)
	require.Contains(t, string(r.Raw), `"status_code":503`)
	p2.Stop()

	// Without --webhook-allow-loopback the worker refuses the same URL
	// (the create handlers refuse it first; this is the dial-time check).
	p3 := startPlatform(t, data)
	defer p3.Stop()
	in.DeliveryID, in.SubjectID = "pred2-completed", "pred2"
	run, err = webhook.Start(ctx, p3.Client, workflows.TaskQueue, in)
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, store.WebhookRefused, res.Outcome)
	require.Equal(t, 2, count(), "a refused URL was contacted")
}
