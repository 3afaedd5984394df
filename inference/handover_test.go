package inference

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// TestServeHandoverAcceptsOnlyWhenReady: on a shared listener, the server
// calls Ready only once its workers are up and accepts only after Ready
// returned (a connection made before is answered after, not refused and not
// answered 503); a draining server tells its open connection to close.
func TestServeHandoverAcceptsOnlyWhenReady(t *testing.T) {
	requirePython(t)
	dir := codeDir(t, "import time\nclass AAI:\n    def __init__(self):\n        time.sleep(1)\n    def predict(self, x):\n        return x\n")
	s, err := NewServer(Config{Name: "test", TokenSHA256: tokenSHA(testToken), CodeDir: dir, Python: testPython,
		Threads: 1, Input: spec.JSON, Output: spec.JSON, Timeout: Duration(20 * time.Second)}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	url := "http://" + ln.Addr().String()
	ready := make(chan struct{})
	serve := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.ServeHandover(ctx, ln, Handover{CloseGrace: time.Second, Ready: func(context.Context) error {
			require.True(t, s.pool.Readiness().Ready, "Ready is called once the workers are up")
			close(ready)
			<-serve
			return nil
		}})
	}()
	// Sent before the server accepts: it waits in the socket's queue.
	early := make(chan *http.Response, 1)
	go func() {
		res, err := http.Get(url + "/readyz")
		if err == nil {
			early <- res
		}
		close(early)
	}()
	<-ready
	select {
	case <-early:
		t.Fatal("answered before Ready returned")
	case <-time.After(300 * time.Millisecond):
	}
	close(serve)
	res := <-early
	require.NotNil(t, res)
	require.Equal(t, http.StatusOK, res.StatusCode, "never 503: the workers were up before the first accept")
	res.Body.Close()

	// Draining: an open keep-alive connection is told to close after its
	// next answer (it arrives within CloseGrace).
	c := &http.Client{}
	res, err = c.Get(url + "/healthz")
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, res.Body) // read to the end: the connection goes back to the pool
	res.Body.Close()
	require.False(t, res.Close)
	cancel()
	time.Sleep(100 * time.Millisecond)
	res, err = c.Get(url + "/healthz")
	require.NoError(t, err)
	res.Body.Close()
	require.True(t, res.Close, "Connection: close while draining")
	require.NoError(t, <-done)
}

// TestServeHandoverInitFails: an __init__ that raises ends ServeHandover
// with its error and traceback; Ready is never called and nothing accepted.
func TestServeHandoverInitFails(t *testing.T) {
	requirePython(t)
	dir := codeDir(t, "class AAI:\n    def __init__(self):\n        raise RuntimeError('weights.bin is missing')\n    def predict(self, x):\n        return x\n")
	s, err := NewServer(Config{Name: "test", TokenSHA256: tokenSHA(testToken), CodeDir: dir, Python: testPython,
		Threads: 1, Input: spec.JSON, Output: spec.JSON}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	err = s.ServeHandover(context.Background(), ln, Handover{Ready: func(context.Context) error {
		t.Error("Ready called for workers that failed")
		return nil
	}})
	require.ErrorContains(t, err, "weights.bin is missing")
	require.ErrorContains(t, err, "RuntimeError")
}
