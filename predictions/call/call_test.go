package call

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
)

// tlsServer starts a real TLS server and a Target trusting exactly its certificate.
func tlsServer(t *testing.T, h http.HandlerFunc) (*httptest.Server, Target) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	return srv, Target{URL: srv.URL, Token: "ep_test", RootCAs: pool}
}

func TestDoSendsTokenAndBodyAndReturnsTheAnswer(t *testing.T) {
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/predict", r.URL.Path)
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "Bearer ep_test", r.Header.Get("Authorization"))
		require.Equal(t, "image/png", r.Header.Get("Content-Type"))
		require.Equal(t, "application/json", r.Header.Get("Accept"))
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(append([]byte(`{"echo":"`), append(b, '"', '}')...))
	})
	resp, err := Do(context.Background(), nil, tg, Request{Body: []byte("abc"), ContentType: "image/png", Accept: "application/json"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, "application/json", resp.ContentType)
	require.JSONEq(t, `{"echo":"abc"}`, string(resp.Body))
}

// retryLoop is the caller's loop the workflows implement with Temporal
// retries: call, and while Retryable says so, wait the delay and call again.
func retryLoop(t *testing.T, tg Target, max int) (Response, []time.Duration, error) {
	t.Helper()
	var waits []time.Duration
	for i := 0; ; i++ {
		resp, err := Do(context.Background(), nil, tg, Request{Body: []byte("x"), ContentType: "application/json"})
		ok, d := Retryable(err)
		if !ok || i == max {
			return resp, waits, err
		}
		waits = append(waits, d)
		time.Sleep(d)
	}
}

func TestTooManyRequestsIsRetriedAfterRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"code":"overloaded"}`, http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	})
	resp, waits, err := retryLoop(t, tg, 3)
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, []time.Duration{time.Second}, waits)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, times, 2)
	require.GreaterOrEqual(t, times[1].Sub(times[0]), time.Second, "the second call waited for Retry-After")
}

func TestServiceUnavailableIsRetried(t *testing.T) {
	var calls atomic.Int32
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) < 3 {
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{}`))
	})
	resp, waits, err := retryLoop(t, tg, 5)
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Equal(t, []time.Duration{DefaultRetryDelay, DefaultRetryDelay}, waits)
	require.EqualValues(t, 3, calls.Load())
}

func TestAnsweredErrorsAreNeverRetried(t *testing.T) {
	for _, status := range []int{http.StatusInternalServerError, http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusUnauthorized} {
		var calls atomic.Int32
		_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			w.Header().Set("Retry-After", "1") // ignored: only 429/503 honour it
			http.Error(w, `{"code":"predict_failed","message":"boom"}`, status)
		})
		resp, waits, err := retryLoop(t, tg, 3)
		var se *StatusError
		require.ErrorAs(t, err, &se, "status %d", status)
		require.Equal(t, status, se.Status)
		require.Contains(t, se.Error(), "boom")
		require.Equal(t, status, resp.Status)
		require.Contains(t, string(resp.Body), "predict_failed")
		require.Empty(t, waits)
		require.EqualValues(t, 1, calls.Load(), "status %d called once", status)
	}
}

func TestConnectionResetBeforeAnswerIsRetried(t *testing.T) {
	var calls atomic.Int32
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			conn, _, err := http.NewResponseController(w).Hijack()
			require.NoError(t, err)
			if tc, ok := conn.(interface{ NetConn() net.Conn }); ok {
				if c, ok := tc.NetConn().(*net.TCPConn); ok {
					_ = c.SetLinger(0) // RST, not FIN
				}
			}
			_ = conn.Close()
			return
		}
		_, _ = w.Write([]byte(`{"ok":1}`))
	})
	resp, waits, err := retryLoop(t, tg, 3)
	require.NoError(t, err)
	require.Equal(t, 200, resp.Status)
	require.Len(t, waits, 1)
	require.EqualValues(t, 2, calls.Load())
}

func TestConnectionRefusedAndUnknownCertificateAreRetryable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	_, err = Do(context.Background(), nil, Target{URL: "https://" + addr}, Request{})
	var te *TransportError
	require.ErrorAs(t, err, &te)
	ok, d := Retryable(err)
	require.True(t, ok)
	require.Equal(t, DefaultRetryDelay, d)

	// A certificate the roots do not trust: the handshake fails, nothing was sent.
	var calls atomic.Int32
	srv, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	_, err = Do(context.Background(), nil, Target{URL: srv.URL, RootCAs: x509.NewCertPool()}, Request{})
	ok, _ = Retryable(err)
	require.True(t, ok, "%v", err)
	require.Zero(t, calls.Load())
}

func TestSlowServerAndContextCancel(t *testing.T) {
	started := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body) // so the server notices the client leaving
		select {
		case started <- struct{}{}:
		default:
		}
		select { // slower than the caller will wait
		case <-r.Context().Done():
		case <-release:
		}
	}
	_, tg := tlsServer(t, slow)
	t.Cleanup(func() { close(release) })
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-started; cancel() }()

	_, err := Do(ctx, nil, tg, Request{Body: []byte("x")})
	require.ErrorIs(t, err, context.Canceled)
	ok, _ := Retryable(err)
	require.False(t, ok, "the caller stopped: not ours to retry")

	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	_, tg2 := tlsServer(t, slow)
	_, err = Do(ctx2, nil, tg2, Request{})
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestOversizeResponseIsAnError(t *testing.T) {
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(make([]byte, 2048))
	})
	_, err := Do(context.Background(), nil, tg, Request{MaxResponseBytes: 1024})
	require.ErrorIs(t, err, ErrResponseTooLarge)
	ok, _ := Retryable(err)
	require.False(t, ok)
	resp, err := Do(context.Background(), nil, tg, Request{MaxResponseBytes: 2048})
	require.NoError(t, err)
	require.Len(t, resp.Body, 2048)
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	var other atomic.Int32
	otherSrv, _ := tlsServer(t, func(w http.ResponseWriter, r *http.Request) { other.Add(1) })
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, otherSrv.URL+"/predict", http.StatusTemporaryRedirect)
	})
	resp, err := Do(context.Background(), nil, tg, Request{})
	require.Equal(t, http.StatusTemporaryRedirect, resp.Status)
	ok, _ := Retryable(err)
	require.False(t, ok)
	require.Zero(t, other.Load(), "the token never went to the redirect's target")
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 7 ", 7 * time.Second},
		{"0", 0},
		{"-4", 0},
		{"99999", MaxRetryAfter},
		{"soon", 0},
		{now.Add(10 * time.Second).Format(http.TimeFormat), 10 * time.Second},
		{now.Add(-10 * time.Second).Format(http.TimeFormat), 0},
		{now.Add(24 * time.Hour).Format(http.TimeFormat), MaxRetryAfter},
	} {
		require.Equal(t, tc.want, ParseRetryAfter(tc.in, now), "%q", tc.in)
	}
	ok, d := Retryable(&StatusError{Status: 429, RetryAfter: 4 * time.Second})
	require.True(t, ok)
	require.Equal(t, 4*time.Second, d)
	ok, _ = Retryable(errors.New("other"))
	require.False(t, ok)
	ok, _ = Retryable(nil)
	require.False(t, ok)
}

func TestPlatformTokenIsPerDeploymentAndKey(t *testing.T) {
	k1, k2 := make([]byte, 32), make([]byte, 32)
	k2[0] = 1
	a := PlatformToken(k1, "d1")
	require.Regexp(t, `^ep_platform_[0-9a-f]{64}$`, a)
	require.Equal(t, a, PlatformToken(k1, "d1"), "derived, so the same every time")
	require.NotEqual(t, a, PlatformToken(k1, "d2"))
	require.NotEqual(t, a, PlatformToken(k2, "d1"))
	require.Len(t, PlatformTokenSHA256(k1, "d1"), 64)
	require.Empty(t, PlatformTokenSHA256(nil, "d1"))
}

// TestDoAsksForLogs: Request.Logs sends the logs header and decodes the
// answer's, on a failed answer too; without it none is sent or read.
func TestDoAsksForLogs(t *testing.T) {
	_, tg := tlsServer(t, func(w http.ResponseWriter, r *http.Request) {
		if inferapi.WantsLogs(r.Header) {
			inferapi.SetLogs(w.Header(), "step 1\nstep 2\n")
		}
		if string(readAll(r)) == "fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("{}"))
	})
	resp, err := Do(context.Background(), nil, tg, Request{Body: []byte("ok"), Logs: true})
	require.NoError(t, err)
	require.Equal(t, "step 1\nstep 2\n", resp.Logs)
	resp, err = Do(context.Background(), nil, tg, Request{Body: []byte("fail"), Logs: true})
	var se *StatusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, "step 1\nstep 2\n", resp.Logs, "a failed predict's logs come back too")
	resp, err = Do(context.Background(), nil, tg, Request{Body: []byte("ok")})
	require.NoError(t, err)
	require.Empty(t, resp.Logs)
	require.Empty(t, resp.Header.Get(inferapi.LogsHeader), "not asked, not sent")
}

func readAll(r *http.Request) []byte {
	b, _ := io.ReadAll(r.Body)
	return b
}
