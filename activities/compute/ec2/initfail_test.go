package ec2

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// bootingEndpoint stands in for an instance's inference server as it boots:
// its first answers drop the connection (nothing listening yet), the next
// are 503 not_ready (aai_main.py loading), then it answers what final says.
// The bodies are the inference server's own error type, so the test speaks
// its wire format.
type bootingEndpoint struct {
	*httptest.Server
	drops, loading int64
	final          atomic.Value // func(http.ResponseWriter)
	hits           atomic.Int64
}

func newBootingEndpoint(t *testing.T, drops, loading int64, final func(http.ResponseWriter)) *bootingEndpoint {
	b := &bootingEndpoint{drops: drops, loading: loading}
	b.final.Store(final)
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := b.hits.Add(1)
		switch {
		case r.URL.Path != "/readyz":
			http.NotFound(w, r)
		case n <= b.drops:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		case n <= b.drops+b.loading:
			writeAPIError(w, &inferapi.Error{Code: inferapi.CodeNotReady, Message: "the workers are still loading aai_main.py"})
		default:
			b.final.Load().(func(http.ResponseWriter))(w)
		}
	}))
	t.Cleanup(b.Close)
	return b
}

func (b *bootingEndpoint) url(compute.Server) string { return b.URL + "/readyz" }

func writeAPIError(w http.ResponseWriter, e *inferapi.Error) {
	body, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write(body)
}

const initTraceback = `Traceback (most recent call last):
  File "/opt/algocloud/bundle/code/aai_main.py", line 9, in __init__
    self.weights = np.load("weights.npy")
FileNotFoundError: [Errno 2] No such file or directory: 'weights.npy'`

func answerInitFailed(w http.ResponseWriter) {
	writeAPIError(w, &inferapi.Error{Code: inferapi.CodeInitFailed,
		Message: "FileNotFoundError: [Errno 2] No such file or directory: 'weights.npy'", Traceback: initTraceback})
}

func answerReady(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}

// The health URL's init_failed ends Start at once with a permanent error
// carrying the server's message and traceback, after Start polled through
// the boot's connection errors and not_ready; the live service's instance is
// stopped, so the next Start boots it (fetching the current bundle) and
// succeeds once the endpoint is ready.
func TestStart_InitFailedFailsFast(t *testing.T) {
	ep := newBootingEndpoint(t, 2, 3, answerInitFailed)
	e := newEnv(t, func(o *Options) { o.HealthURL = ep.url })
	ctx := ctxFor(t)
	s, err := e.p.Provision(ctx, specFor(uniq("dep-initfail")))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.p.Release(context.Background(), s)) })

	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	requirePermanent(t, err, "FileNotFoundError: [Errno 2] No such file or directory: 'weights.npy'")
	var ie *InitFailedError
	require.True(t, errors.As(err, &ie), "want *InitFailedError, got %v", err)
	require.Equal(t, initTraceback, ie.Traceback)
	require.ErrorContains(t, err, `line 9, in __init__`, "the traceback is in the message the step reports")
	require.ErrorContains(t, err, "instance stopped")
	require.Equal(t, int64(2+3+1), ep.hits.Load(), "polled through the boot, then stopped at the first init_failed")

	inst, err := e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Contains(t, []types.InstanceStateName{types.InstanceStateNameStopping, types.InstanceStateNameStopped}, state(inst))
	requireState(t, e.p, compute.Handle{Provider: ProviderName, ServerID: s.ID, Name: LiveService}, compute.Exited)

	// Fixed code, new bundle: the next Start starts the instance again and
	// waits through its boot until the endpoint is ready.
	ep.final.Store(answerReady)
	ep.hits.Store(0)
	h, err := e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	require.NoError(t, err)
	require.Equal(t, int64(2+3+1), ep.hits.Load())
	inst, err = e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameRunning, state(inst))
	requireState(t, e.p, h, compute.Running)
}

// A service other than live is only marked stopped: the instance (and the
// live endpoint on it) keeps running.
func TestStart_InitFailedOtherService(t *testing.T) {
	ep := newBootingEndpoint(t, 0, 1, answerInitFailed)
	e := newEnv(t, func(o *Options) { o.HealthURL = ep.url })
	ctx := ctxFor(t)
	s, err := e.p.Provision(ctx, specFor(uniq("dep-initfail-test")))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.p.Release(context.Background(), s)) })

	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: "test", Port: 9000})
	requirePermanent(t, err, "service stopped")
	inst, err := e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameRunning, state(inst))
	requireState(t, e.p, compute.Handle{Provider: ProviderName, ServerID: s.ID, Name: "test"}, compute.Exited)
}

// not_ready (and any answer that is not init_failed: another code, another
// status, a body that is not JSON) is "still loading": Start keeps waiting
// until ctx ends, and the error is not permanent.
func TestStart_NotReadyKeepsWaiting(t *testing.T) {
	ep := newBootingEndpoint(t, 0, 1<<40, answerInitFailed)
	e := newEnv(t, func(o *Options) { o.HealthURL = ep.url })
	s, err := e.p.Provision(ctxFor(t), specFor(uniq("dep-loading")))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.p.Release(context.Background(), s)) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ep.hits.Load() < 5 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "503")
	var pe *compute.PermanentError
	require.False(t, errors.As(err, &pe), "still loading is not a failure: %v", err)

	for _, tc := range []struct {
		name   string
		status int
		body   string
	}{
		{"not_ready", 503, `{"code":"not_ready","message":"the workers are still loading aai_main.py"}`},
		{"other code", 503, `{"code":"shutting_down","message":"draining"}`},
		{"not JSON", 503, `init_failed`},
		{"other status", 500, `{"code":"init_failed","message":"x"}`},
	} {
		require.Nil(t, initFailure(tc.status, []byte(tc.body)), tc.name)
	}
	ie := initFailure(503, []byte(`{"code":"init_failed","message":"  boom \n"}`))
	require.Equal(t, &InitFailedError{Message: "boom"}, ie)
	require.Equal(t, "the algorithm failed to load on the instance: boom", ie.Error())
}

// A huge traceback is cut to its end (the exception is in its last lines).
func TestInitFailure_Bounded(t *testing.T) {
	tb := "Traceback (most recent call last):\n" + strings.Repeat("  File \"x.py\", line 1, in f\n    f()\n", 5000) + "RecursionError: maximum recursion depth exceeded"
	body, err := json.Marshal(&inferapi.Error{Code: inferapi.CodeInitFailed, Message: strings.Repeat("m", 10000), Traceback: tb})
	require.NoError(t, err)
	ie := initFailure(503, body)
	require.NotNil(t, ie)
	require.LessOrEqual(t, len(ie.Traceback), maxInitTraceback+len("[...]\n"))
	require.True(t, strings.HasPrefix(ie.Traceback, "[...]\n  "), "cut at a line start: %q", ie.Traceback[:40])
	require.True(t, strings.HasSuffix(ie.Traceback, "RecursionError: maximum recursion depth exceeded"))
	require.LessOrEqual(t, len(ie.Message), maxInitMessage+len("[...]\n"))
}
