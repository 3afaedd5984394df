package webhook

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/internal/netpolicy/netpolicytest"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/store"
)

// The worker-kill test runs the worker in a child process: this binary,
// with helperEnv set, runs only that worker until it is killed.
const helperEnv = "ALGOCLOUD_WEBHOOK_TEST_WORKER"

func TestMain(m *testing.M) {
	if cfg := os.Getenv(helperEnv); cfg != "" {
		os.Exit(runHelperWorker(cfg))
	}
	code := m.Run()
	if temporalSrv != nil {
		temporalSrv.Stop()
	}
	os.Exit(code)
}

// One embedded Temporal server for the package's tests; each test has its
// own task queue, so their workers never take each other's tasks.
var (
	temporalOnce sync.Once
	temporalSrv  *temporaldev.Server
	temporalErr  error
)

func temporalClient(t testing.TB) (client.Client, string) {
	t.Helper()
	temporalOnce.Do(func() {
		temporalSrv, temporalErr = temporaldev.Start(temporaldev.Options{})
	})
	require.NoError(t, temporalErr)
	c, err := client.Dial(client.Options{HostPort: temporalSrv.HostPort(), Logger: quietLogger()})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	return c, temporalSrv.HostPort()
}

func quietLogger() sdklog.Logger {
	return sdklog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// fixture is a store with one algorithm whose sealed secret is secret.
type fixture struct {
	dsn    string
	store  *store.Store
	key    []byte
	alg    string
	secret string
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{dsn: "sqlite://" + filepath.Join(t.TempDir(), "algocloud.db"), alg: "alg1", key: make([]byte, 32)}
	_, _ = rand.Read(f.key)
	var err error
	f.store, err = store.Open(ctx, f.dsn)
	require.NoError(t, err)
	t.Cleanup(func() { f.store.Close() })
	u, err := f.store.CreateUser(ctx, "alice")
	require.NoError(t, err)
	require.NoError(t, f.store.CreateAlgorithm(ctx, store.Algorithm{ID: f.alg, OwnerID: u.ID, APIName: "seg"}))
	f.secret, err = NewSecret()
	require.NoError(t, err)
	sealed, err := SealSecret(f.key, f.alg, f.secret)
	require.NoError(t, err)
	require.NoError(t, f.store.SetWebhookSecret(ctx, f.alg, sealed))
	return f
}

// worker runs the delivery workflow and acts on a task queue of the test's own.
func (f *fixture) worker(t testing.TB, c client.Client, acts *Activities) string {
	t.Helper()
	queue := "webhook-test-" + strings.ReplaceAll(t.Name(), "/", "-")
	acts.Store, acts.Key = f.store, f.key
	w := sdkworker.New(c, queue, sdkworker.Options{})
	Register(w, acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return queue
}

func (f *fixture) attempts(t *testing.T, subject string) []store.WebhookAttempt {
	t.Helper()
	list, err := f.store.ListWebhookAttempts(context.Background(), f.alg, subject, 0)
	require.NoError(t, err)
	return list
}

// received is one request a receiver got.
type received struct {
	header http.Header
	body   []byte
}

// receiver records what it gets and answers with answer(n) for the n-th
// request (from 0).
type receiver struct {
	mu   sync.Mutex
	got  []received
	send func(w http.ResponseWriter, n int)
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	n := len(r.got)
	r.got = append(r.got, received{header: req.Header.Clone(), body: body})
	r.mu.Unlock()
	r.send(w, n)
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

func status(code int) func(http.ResponseWriter, int) {
	return func(w http.ResponseWriter, _ int) { w.WriteHeader(code) }
}

// pythonVerify checks a received webhook with Python's hmac, independently
// of this package: the Standard Webhooks recipe a receiver would write.
func pythonVerify(t *testing.T, secret string, r received) {
	t.Helper()
	const script = `
import base64, hashlib, hmac, json, sys, time
d = json.load(sys.stdin)
key = base64.b64decode(d["secret"].removeprefix("whsec_"))
msg = (d["id"] + "." + d["ts"] + ".").encode() + base64.b64decode(d["body"])
want = base64.b64encode(hmac.new(key, msg, hashlib.sha256).digest()).decode()
ok = any(s.split(",", 1) == ["v1", want] for s in d["sig"].split())
fresh = abs(time.time() - int(d["ts"])) < 300
print("valid" if ok and fresh else "INVALID")
`
	in, err := json.Marshal(map[string]any{
		"secret": secret, "id": r.header.Get(HeaderID), "ts": r.header.Get(HeaderTimestamp),
		"sig": r.header.Get(HeaderSignature), "body": r.body,
	})
	require.NoError(t, err)
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	require.Equal(t, "valid", strings.TrimSpace(string(out)))
}

func loopbackOnly() *netpolicy.Dialer {
	return &netpolicy.Dialer{Policy: netpolicy.Policy{AllowPrefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}}
}

var fast = RetryOptions{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 400 * time.Millisecond, GiveUpAfter: time.Minute}

func deliver(t *testing.T, c client.Client, queue string, in DeliverInput) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	run, err := Start(ctx, c, queue, in)
	require.NoError(t, err)
	var res Result
	require.NoError(t, run.Get(ctx, &res))
	captureHistory(t, c, run)
	return res
}

// captureHistory writes the delivery's history to testdata/histories when
// ALGOCLOUD_CAPTURE_HISTORY names this test (TestReplayDeliverHistories
// replays them).
func captureHistory(t *testing.T, c client.Client, run client.WorkflowRun) {
	if os.Getenv("ALGOCLOUD_CAPTURE_HISTORY") != t.Name() {
		return
	}
	writeHistory(t, c, run.GetID(), run.GetRunID(), filepath.Join("testdata", "histories", strings.ReplaceAll(t.Name(), "/", "-")+".json"))
}

func event(id string) Event {
	return Event{Type: EventCompleted, Payload: []byte(fmt.Sprintf(`{"id":%q,"status":"succeeded","output":{"area":42}}`, id))}
}

// An HTTPS receiver on 127.0.0.1 gets one signed POST, which both the
// exported Verifier and Python's hmac accept; one attempt is recorded.
func TestDeliverSignedOverHTTPS(t *testing.T) {
	c, _ := temporalClient(t)
	f := newFixture(t)
	rcv := &receiver{send: status(http.StatusNoContent)}
	srv := httptest.NewTLSServer(rcv)
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	queue := f.worker(t, c, &Activities{Dialer: loopbackOnly(), RootCAs: roots})

	res := deliver(t, c, queue, DeliverInput{
		DeliveryID: "p1-completed", EndpointAlgorithmID: f.alg, SubjectID: "p1", URL: srv.URL + "/hook", Event: event("p1"), Retry: fast,
	})
	require.Equal(t, Result{Outcome: store.WebhookDelivered, StatusCode: 204, Attempt: 1}, res)
	got := rcv.requests()
	require.Len(t, got, 1)
	require.Equal(t, "p1-completed", got[0].header.Get(HeaderID))
	require.Equal(t, "application/json", got[0].header.Get("Content-Type"))
	require.JSONEq(t, string(event("p1").Payload), string(got[0].body))
	v, err := NewVerifier(f.secret)
	require.NoError(t, err)
	require.NoError(t, v.Verify(got[0].header, got[0].body))
	pythonVerify(t, f.secret, got[0])
	// A tampered body fails both checks' logic (the exported one here).
	require.ErrorIs(t, v.Verify(got[0].header, append(got[0].body, ' ')), ErrSignature)

	list := f.attempts(t, "p1")
	require.Len(t, list, 1)
	require.Equal(t, store.WebhookDelivered, list[0].Outcome)
	require.Equal(t, 204, list[0].StatusCode)
	require.Equal(t, 1, list[0].Attempt)
	require.Equal(t, "completed", list[0].Event)
	require.Empty(t, list[0].Error)
}

// A receiver failing three times (500, a dropped connection, 503) and then
// answering 200 gets four attempts with the same webhook-id, each freshly
// signed; four are recorded, the last delivered.
func TestDeliverRetriesWithBackoffUntilDelivered(t *testing.T) {
	c, _ := temporalClient(t)
	f := newFixture(t)
	rcv := &receiver{send: func(w http.ResponseWriter, n int) {
		switch n {
		case 0:
			http.Error(w, "database is down", http.StatusInternalServerError)
		case 1:
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
		case 2:
			w.WriteHeader(http.StatusServiceUnavailable)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	queue := f.worker(t, c, &Activities{Dialer: loopbackOnly()})

	start := time.Now()
	res := deliver(t, c, queue, DeliverInput{
		DeliveryID: "p2-completed", EndpointAlgorithmID: f.alg, SubjectID: "p2", URL: srv.URL, Event: event("p2"), Retry: fast,
	})
	require.Equal(t, Result{Outcome: store.WebhookDelivered, StatusCode: 200, Attempt: 4}, res)
	// Backoff 100 + 200 + 400 ms at least.
	require.GreaterOrEqual(t, time.Since(start), 700*time.Millisecond)
	got := rcv.requests()
	require.Len(t, got, 4)
	v, _ := NewVerifier(f.secret)
	for _, r := range got {
		require.Equal(t, "p2-completed", r.header.Get(HeaderID))
		require.NoError(t, v.Verify(r.header, r.body))
	}
	pythonVerify(t, f.secret, got[3])

	list := f.attempts(t, "p2")
	require.Len(t, list, 4)
	for i, a := range list {
		require.Equal(t, i+1, a.Attempt)
		require.Equal(t, "p2-completed", a.DeliveryID)
	}
	require.Equal(t, []string{"retry", "retry", "retry", "delivered"}, outcomes(list))
	require.Equal(t, 500, list[0].StatusCode)
	require.Contains(t, list[0].Error, "database is down")
	require.Equal(t, 0, list[1].StatusCode)
	require.Contains(t, list[1].Error, "no answer")
	require.Equal(t, 503, list[2].StatusCode)
	require.Equal(t, 200, list[3].StatusCode)
}

func outcomes(list []store.WebhookAttempt) []string {
	var out []string
	for _, a := range list {
		out = append(out, a.Outcome)
	}
	return out
}

// 410 Gone stops the delivery at once: one attempt, no retry.
func TestDeliverStopsOnGone(t *testing.T) {
	c, _ := temporalClient(t)
	f := newFixture(t)
	rcv := &receiver{send: status(http.StatusGone)}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	queue := f.worker(t, c, &Activities{Dialer: loopbackOnly()})

	res := deliver(t, c, queue, DeliverInput{
		DeliveryID: "p3-start", EndpointAlgorithmID: f.alg, SubjectID: "p3", URL: srv.URL, Event: Event{Type: EventStart, Payload: []byte(`{}`)}, Retry: fast,
	})
	require.Equal(t, Result{Outcome: store.WebhookGone, StatusCode: 410, Attempt: 1}, res)
	time.Sleep(500 * time.Millisecond) // a retry would have come by now
	require.Len(t, rcv.requests(), 1)
	require.Equal(t, []string{"gone"}, outcomes(f.attempts(t, "p3")))
}

// A receiver that redirects (to the metadata service, or to another
// loopback address the policy forbids) is never followed: each attempt is a
// failed one, recorded with the Location, and the delivery gives up when
// its time is over, recording that. Nothing reaches the redirect's target.
func TestDeliverNeverFollowsRedirects(t *testing.T) {
	c, _ := temporalClient(t)
	forbidden := &receiver{send: status(http.StatusOK)}
	target := httptest.NewUnstartedServer(forbidden)
	l, err := net.Listen("tcp", "127.0.0.2:0") // loopback, but not the 127.0.0.1 the policy allows
	require.NoError(t, err)
	target.Listener = l
	target.Start()
	defer target.Close()
	for name, loc := range map[string]string{
		"metadata": "http://169.254.169.254/latest/meta-data/iam/",
		"loopback": target.URL + "/stolen",
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			rcv := &receiver{send: func(w http.ResponseWriter, _ int) {
				w.Header().Set("Location", loc)
				w.WriteHeader(http.StatusFound)
			}}
			srv := httptest.NewServer(rcv)
			defer srv.Close()
			queue := f.worker(t, c, &Activities{Dialer: loopbackOnly()})
			retry := fast
			retry.GiveUpAfter = 1500 * time.Millisecond
			res := deliver(t, c, queue, DeliverInput{
				DeliveryID: "p4-" + name, EndpointAlgorithmID: f.alg, SubjectID: "p4", URL: srv.URL, Event: event("p4"), Retry: retry,
			})
			require.Equal(t, store.WebhookFailed, res.Outcome)
			list := f.attempts(t, "p4")
			require.GreaterOrEqual(t, len(list), 2, "at least one attempt and the gave-up line")
			for _, a := range list[:len(list)-1] {
				require.Equal(t, store.WebhookRetry, a.Outcome)
				require.Equal(t, 302, a.StatusCode)
				require.Contains(t, a.Error, "not followed")
				require.Contains(t, a.Error, loc)
			}
			last := list[len(list)-1]
			require.Equal(t, store.WebhookFailed, last.Outcome)
			require.Contains(t, last.Error, "gave up")
			require.Len(t, rcv.requests(), len(list)-1)
		})
	}
	require.Empty(t, forbidden.requests(), "a redirect's target was contacted")
}

// Refused before anything is sent, and not retried: a loopback URL under a
// policy that forbids loopback, a name that resolves to loopback (checked
// at dial time: it passed CheckURL), and an endpoint without a secret.
func TestDeliverRefusals(t *testing.T) {
	c, _ := temporalClient(t)
	rcv := &receiver{send: status(http.StatusOK)}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	dns := netpolicytest.StartDNS(t, func(name string, _ int) []netip.Addr {
		if name == "hooks.example.com" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		}
		return nil
	})
	publicOnly := &netpolicy.Dialer{Resolver: dns.Resolver}
	for _, tc := range []struct {
		name, url string
		noSecret  bool
		want      string
	}{
		{"loopback-literal", srv.URL, false, "is refused: 127.0.0.1 is loopback"},
		{"name-resolving-to-loopback", fmt.Sprintf("http://hooks.example.com:%d/hook", port), false, "refused by the webhook URL policy"},
		{"metadata", "http://169.254.169.254/latest/meta-data/", false, "cloud metadata"},
		{"no-secret", "https://hooks.example.com/hook", true, "no webhook secret"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			if tc.noSecret {
				// A second algorithm of the same owner, without a secret.
				a, err := f.store.GetAlgorithmByID(context.Background(), f.alg)
				require.NoError(t, err)
				require.NoError(t, f.store.CreateAlgorithm(context.Background(), store.Algorithm{ID: "alg2", OwnerID: a.OwnerID, APIName: "other"}))
				f.alg = "alg2"
			}
			if strings.Contains(tc.url, "hooks.example.com") {
				// Names pass the create-time check; the dial decides.
				require.NoError(t, CheckURL(netpolicy.Policy{}, tc.url))
			}
			queue := f.worker(t, c, &Activities{Dialer: publicOnly})
			res := deliver(t, c, queue, DeliverInput{
				DeliveryID: "p5-" + tc.name, EndpointAlgorithmID: f.alg, SubjectID: "p5", URL: tc.url, Event: event("p5"), Retry: fast,
			})
			require.Equal(t, store.WebhookRefused, res.Outcome)
			list := f.attempts(t, "p5")
			require.Len(t, list, 1)
			require.Equal(t, store.WebhookRefused, list[0].Outcome)
			require.Contains(t, list[0].Error, tc.want)
		})
	}
	require.Greater(t, dns.Lookups("hooks.example.com"), 0, "the name was never resolved at dial time")
	require.Empty(t, rcv.requests(), "a refused URL was contacted")
}

// The worker dies (SIGKILL, a process of its own) between two attempts;
// the retry waits on the Temporal server, and a new worker process makes
// it: the receiver sees the same webhook-id on every attempt, and the
// delivery ends delivered.
func TestDeliverSurvivesAKilledWorker(t *testing.T) {
	c, hostPort := temporalClient(t)
	f := newFixture(t)
	rcv := &receiver{send: func(w http.ResponseWriter, n int) {
		if n < 2 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusOK)
	}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	queue := "webhook-test-kill"
	cfg, err := json.Marshal(helperConfig{HostPort: hostPort, Queue: queue, DSN: f.dsn, Key: hex.EncodeToString(f.key)})
	require.NoError(t, err)
	startWorker := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+string(cfg))
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		require.NoError(t, cmd.Start())
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	first := startWorker()

	retry := RetryOptions{InitialInterval: 2 * time.Second, BackoffCoefficient: 1, MaximumInterval: 2 * time.Second, GiveUpAfter: 5 * time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	in := DeliverInput{DeliveryID: "p6-completed", EndpointAlgorithmID: f.alg, SubjectID: "p6", URL: srv.URL, Event: event("p6"), Retry: retry}
	run, err := Start(ctx, c, queue, in)
	require.NoError(t, err)
	require.Eventually(t, func() bool { return len(f.attempts(t, "p6")) == 1 }, time.Minute, 20*time.Millisecond)
	time.Sleep(100 * time.Millisecond) // the activity returns right after recording
	require.NoError(t, first.Process.Kill())
	_ = first.Wait()
	time.Sleep(3 * time.Second) // the retry falls due with no worker
	require.Len(t, rcv.requests(), 1, "an attempt ran without a worker")

	startWorker()
	var res Result
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, store.WebhookDelivered, res.Outcome)
	require.Equal(t, 3, res.Attempt)
	got := rcv.requests()
	require.Len(t, got, 3)
	v, _ := NewVerifier(f.secret)
	for _, r := range got {
		require.Equal(t, "p6-completed", r.header.Get(HeaderID))
		require.NoError(t, v.Verify(r.header, r.body))
	}
	require.Equal(t, []string{"retry", "retry", "delivered"}, outcomes(f.attempts(t, "p6")))
	// Starting the same delivery again is the same workflow, not a new send.
	again, err := Start(ctx, c, queue, in)
	require.NoError(t, err)
	require.Equal(t, run.GetRunID(), again.GetRunID())
}

// helperConfig is what the worker process of the kill test needs.
type helperConfig struct {
	HostPort, Queue, DSN, Key string
}

func runHelperWorker(raw string) int {
	var cfg helperConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "helper worker config:", err)
		return 2
	}
	key, _ := hex.DecodeString(cfg.Key)
	st, err := store.Open(context.Background(), cfg.DSN)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper worker store:", err)
		return 2
	}
	c, err := client.Dial(client.Options{HostPort: cfg.HostPort, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper worker client:", err)
		return 2
	}
	w := sdkworker.New(c, cfg.Queue, sdkworker.Options{})
	Register(w, &Activities{Store: st, Key: key, Dialer: loopbackOnly()})
	if err := w.Run(sdkworker.InterruptCh()); err != nil {
		fmt.Fprintln(os.Stderr, "helper worker:", err)
		return 1
	}
	return 0
}

// A 503 or 429 with Retry-After waits that long before the next attempt,
// instead of the (here 100 ms) backoff step.
func TestDeliverHonoursRetryAfter(t *testing.T) {
	c, _ := temporalClient(t)
	f := newFixture(t)
	rcv := &receiver{send: func(w http.ResponseWriter, n int) {
		if n == 0 {
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}}
	srv := httptest.NewServer(rcv)
	defer srv.Close()
	queue := f.worker(t, c, &Activities{Dialer: loopbackOnly()})
	var at []time.Time
	rcvSend := rcv.send
	rcv.send = func(w http.ResponseWriter, n int) { at = append(at, time.Now()); rcvSend(w, n) }
	retry := fast
	retry.MaximumInterval = 5 * time.Second
	res := deliver(t, c, queue, DeliverInput{
		DeliveryID: "p7-completed", EndpointAlgorithmID: f.alg, SubjectID: "p7", URL: srv.URL, Event: event("p7"), Retry: retry,
	})
	require.Equal(t, store.WebhookDelivered, res.Outcome)
	require.Len(t, at, 2)
	require.GreaterOrEqual(t, at[1].Sub(at[0]), 2*time.Second)
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, 7*time.Second, parseRetryAfter("7", now, time.Hour))
	require.Equal(t, time.Hour, parseRetryAfter("86400", now, time.Hour))
	require.Equal(t, 90*time.Second, parseRetryAfter(now.Add(90*time.Second).Format(http.TimeFormat), now, time.Hour))
	require.Zero(t, parseRetryAfter("", now, time.Hour))
	require.Zero(t, parseRetryAfter("-3", now, time.Hour))
	require.Zero(t, parseRetryAfter("soon", now, time.Hour))
	require.Zero(t, parseRetryAfter(now.Add(-time.Minute).Format(http.TimeFormat), now, time.Hour))
}
