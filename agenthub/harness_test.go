package agenthub_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
	sdkworker "go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/api"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/internal/temporaldev"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/store"
)

// One embedded Temporal server for the package's tests (each test has its
// own task queue, store, hub, API and agents): starting it is the slow part.
var (
	temporalOnce sync.Once
	temporalSrv  *temporaldev.Server
	temporalErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if temporalSrv != nil {
		temporalSrv.Stop()
	}
	os.Exit(code)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// heartbeatTimeout is the test workflow's activity heartbeat timeout: short,
// so a vanished agent is noticed within seconds.
const heartbeatTimeout = 2 * time.Second

// runCommand is the test workflow: one RunOnServer with the options the
// Deployment workflow's steps will use (a heartbeat timeout, retries
// without a low maximum).
func runCommand(ctx workflow.Context, in agenthub.Cmd) (agenthub.Outcome, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 5 * time.Minute, HeartbeatTimeout: heartbeatTimeout,
		RetryPolicy: &temporal.RetryPolicy{InitialInterval: 100 * time.Millisecond, BackoffCoefficient: 1, MaximumInterval: 500 * time.Millisecond},
	})
	var out agenthub.Outcome
	err := workflow.ExecuteActivity(ctx, agenthub.ActivityName, in).Get(ctx, &out)
	return out, err
}

// env is one test's platform: the shared Temporal server, a worker running
// runCommand and RunOnServer, a SQLite store, the hub and the real API
// handlers on a TLS server of their own on 127.0.0.1.
type env struct {
	t      *testing.T
	c      client.Client
	st     *store.Store
	hub    *agenthub.Hub
	queue  string
	worker sdkworker.Worker
	ca     *testenv.CA
	api    *tlsAPI
	algID  string // an algorithm whose event log receives progress
	key    []byte // the hub's platform key (a second hub over the store needs it)
}

func newEnv(t *testing.T) *env { return newEnvWith(t, nil) }

// newEnvWith is newEnv with the hub's config changed by tweak (nil: none).
func newEnvWith(t *testing.T, tweak func(*agenthub.Config)) *env {
	t.Helper()
	temporalOnce.Do(func() {
		temporalSrv, temporalErr = temporaldev.Start(temporaldev.Options{Logger: quiet()})
	})
	require.NoError(t, temporalErr)
	ctx := context.Background()
	c, err := client.DialContext(ctx, client.Options{HostPort: temporalSrv.HostPort(), Logger: sdklog.NewStructuredLogger(quiet())})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	st, err := store.Open(ctx, "sqlite://"+filepath.Join(t.TempDir(), "algocloud.db"))
	require.NoError(t, err)
	t.Cleanup(func() { st.Close() })
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	bl, err := blobs.NewDir(filepath.Join(t.TempDir(), "blobs"))
	require.NoError(t, err)
	cfg := agenthub.Config{Store: st, Temporal: c, Key: key, Blobs: bl, PollEvery: 200 * time.Millisecond, Logger: quiet()}
	if tweak != nil {
		tweak(&cfg)
	}
	hub, err := agenthub.New(cfg)
	require.NoError(t, err)
	t.Cleanup(hub.Close)
	u, err := st.CreateUser(ctx, "dev")
	require.NoError(t, err)
	e := &env{t: t, c: c, st: st, hub: hub, queue: "agenthub-" + t.Name(), ca: testenv.NewCA(t), algID: "alg-" + t.Name(), key: key}
	require.NoError(t, st.CreateAlgorithm(ctx, store.Algorithm{ID: e.algID, OwnerID: u.ID, Name: "a", APIName: "a" + t.Name()}))
	e.startWorker()
	certPEM, keyPEM := e.ca.Leaf(t, "platform")
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	e.api = &tlsAPI{addr: "127.0.0.1:0", conf: &tls.Config{Certificates: []tls.Certificate{cert}},
		handler: api.New(api.Config{Store: st, Agents: hub, Logger: quiet()})}
	e.api.start(t)
	t.Cleanup(e.api.stop)
	return e
}

func (e *env) startWorker() {
	w := sdkworker.New(e.c, e.queue, sdkworker.Options{})
	w.RegisterWorkflow(runCommand)
	w.RegisterActivityWithOptions(e.hub.RunOnServer, activity.RegisterOptions{Name: agenthub.ActivityName})
	require.NoError(e.t, w.Start())
	e.worker = w
	e.t.Cleanup(w.Stop) // Stop twice is harmless
}

// start runs the test workflow for cmd.
func (e *env) start(cmd agenthub.Cmd) client.WorkflowRun {
	run, err := e.c.ExecuteWorkflow(context.Background(), client.StartWorkflowOptions{
		ID: "wf-" + e.t.Name() + "-" + cmd.ID, TaskQueue: e.queue, WorkflowExecutionTimeout: 3 * time.Minute,
	}, runCommand, cmd)
	require.NoError(e.t, err)
	return run
}

// result waits for the workflow's result.
func (e *env) result(run client.WorkflowRun) (agenthub.Outcome, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var out agenthub.Outcome
	err := run.Get(ctx, &out)
	return out, err
}

// httpClient trusts the test CA only.
func (e *env) httpClient() *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.ca.Pool}}}
}

// agent starts an in-process agent (a link) for server; stop cancels it (the
// agent killed) and waits for it to return.
func (e *env) agent(server, credential, stateDir string, handlers map[string]link.Handler) (stop func()) {
	l, err := link.New(link.Config{
		Platform: "https://" + e.api.addr, Server: server, Credential: credential, HTTPClient: e.httpClient(),
		StateDir: stateDir, Handlers: handlers, Wait: 2 * time.Second, MinBackoff: 50 * time.Millisecond,
		MaxBackoff: 300 * time.Millisecond, ProgressEvery: 100 * time.Millisecond, Logger: quiet(),
	})
	require.NoError(e.t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = l.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// mint makes a credential for server.
func (e *env) mint(server string) string {
	cred, err := e.hub.MintCredential(context.Background(), server)
	require.NoError(e.t, err)
	return cred
}

// command waits until the store holds command id in state, and returns it.
func (e *env) command(id, state string) store.AgentCommand {
	var c store.AgentCommand
	require.Eventually(e.t, func() bool {
		var err error
		c, err = e.st.GetAgentCommand(context.Background(), id)
		return err == nil && c.State == state
	}, time.Minute, 50*time.Millisecond, "command %s never %s", id, state)
	return c
}

// call makes one request of the channel as an agent would, and returns the
// status and the error body's code.
func (e *env) call(method, path, credential string, body any) (int, string) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(e.t, err)
		rd = bytesReader(b)
	}
	req, err := http.NewRequest(method, "https://"+e.api.addr+path, rd)
	require.NoError(e.t, err)
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	resp, err := e.httpClient().Do(req)
	require.NoError(e.t, err)
	defer resp.Body.Close()
	var eb protocol.ErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&eb)
	return resp.StatusCode, eb.Code
}

// counter counts a handler's runs: started, and finished with an answer.
type counter struct{ started, finished atomic.Int32 }

// tlsAPI serves the API over TLS on a fixed address that can be taken away
// (stop: the listener and every connection closed, as when the network
// between agent and platform is cut) and given back (start again).
type tlsAPI struct {
	addr    string
	conf    *tls.Config
	handler http.Handler
	mu      sync.Mutex
	srv     *http.Server
}

func (a *tlsAPI) start(t *testing.T) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var l net.Listener
	require.Eventually(t, func() bool { // the old socket may linger a moment
		var err error
		l, err = net.Listen("tcp", a.addr)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
	a.addr = l.Addr().String()
	a.srv = &http.Server{Handler: a.handler, TLSConfig: a.conf, ReadHeaderTimeout: 5 * time.Second}
	srv := a.srv
	go func() {
		if err := srv.ServeTLS(l, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("api: %v", err)
		}
	}()
}

func (a *tlsAPI) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.srv != nil {
		_ = a.srv.Close()
		a.srv = nil
	}
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
