package inference

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// Server is the inference server of one deployed algorithm: HTTP(S) handlers
// in front of a pool of Python workers that loaded aai_main.py.
type Server struct {
	cfg       Config
	log       *slog.Logger
	in        inputCodec
	out       outputCodec
	pool      dispatcher
	metrics   *metrics
	admission *admission
	token     *tokenHash // token.go
	// platformToken is Config.PlatformTokenSHA256 decoded; nil when unset.
	platformToken []byte
	// agentToken is Config.AgentTokenSHA256 decoded; nil when unset.
	agentToken []byte
	handler    http.Handler
	certs      *certReloader // nil without TLS (tls.go)
	box        *sandbox.Launcher
}

// NewServer checks cfg and builds a server; nothing starts until Serve or Run.
// A nil log logs with slog.Default().
func NewServer(cfg Config, log *slog.Logger) (*Server, error) {
	cfg = cfg.WithDefaults()
	if log == nil {
		log = slog.Default()
	}
	token, err := newTokenHash(cfg, log)
	if err != nil {
		return nil, err
	}
	var platformToken []byte
	if cfg.PlatformTokenSHA256 != "" {
		if platformToken, err = inferapi.ParseTokenHash(cfg.PlatformTokenSHA256); err != nil {
			return nil, errors.New("inference config: platform_token_sha256 must be 64 hex digits (the SHA-256 of the platform caller token)")
		}
	}
	var agentToken []byte
	if cfg.AgentTokenSHA256 != "" {
		if agentToken, err = inferapi.ParseTokenHash(cfg.AgentTokenSHA256); err != nil {
			return nil, errors.New("inference config: agent_token_sha256 must be 64 hex digits (the SHA-256 of the server agent's token)")
		}
	}
	if !spec.SupportedPairs[spec.Pair{In: cfg.Input, Out: cfg.Output}] {
		return nil, fmt.Errorf("inference config: API type %s is not served", spec.Pair{In: cfg.Input, Out: cfg.Output})
	}
	if err := checkEnvironment(cfg); err != nil {
		return nil, err
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("inference config: cert_file and key_file go together")
	}
	dir, err := filepath.Abs(cfg.CodeDir)
	if err != nil {
		return nil, fmt.Errorf("inference config: code_dir: %w", err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("inference config: code_dir %s is not a folder", cfg.CodeDir)
	}
	cfg.CodeDir = dir
	if err := cfg.CheckBatching(); err != nil {
		return nil, err
	}
	var policy netpolicy.Policy // public addresses only
	if cfg.AllowPrivateURLs {
		policy.Allow = netpolicy.AllClasses
	}
	in, err := newInputCodec(cfg.Input, cfg, newFetcher(&netpolicy.Dialer{Policy: policy, Timeout: 10 * time.Second}, cfg.MaxBodyBytes))
	if err != nil {
		return nil, fmt.Errorf("inference config: %w", err)
	}
	out, err := newOutputCodec(cfg.Output)
	if err != nil {
		return nil, fmt.Errorf("inference config: %w", err)
	}
	s := &Server{cfg: cfg, log: log.With("api", cfg.Name), in: in, out: out, token: token, platformToken: platformToken, agentToken: agentToken, metrics: newMetrics(),
		admission: newAdmission(cfg)}
	if cfg.CertFile != "" {
		s.certs = newCertReloader(cfg.CertFile, cfg.KeyFile, s.log)
	}
	s.handler = s.routes()
	return s, nil
}

// Run listens on cfg.Listen and serves until ctx ends, then drains (see Serve).
func (s *Server) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.Listen, err)
	}
	return s.Serve(ctx, ln)
}

// Serve starts the workers and serves HTTP (HTTPS when the config names a
// certificate) on ln until ctx ends. It then drains: it stops accepting,
// lets in-flight requests finish (at most Timeout plus a margin), and stops
// the workers. Serve closes ln and may be called once.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return s.serve(ctx, ln, nil)
}

// Handover is how a server shares its listening socket with the other
// revisions of one endpoint (agent/revisions hands the socket to each
// revision's server as an inherited descriptor). Both serve the same API, so
// both may accept from the socket while one replaces the other; what must
// not happen is a server accepting before its workers are up (its callers
// would get 503 not_ready) or one leaving with connections it could still
// have handed back cleanly.
type Handover struct {
	// Ready is called once every worker has loaded the algorithm, before the
	// first accept; the server accepts once it returns nil. It is where the
	// agent is told "ready" and answers "serve" (or goes away: an error
	// stops the server without it ever having accepted).
	Ready func(ctx context.Context) error
	// CloseGrace is how long a draining server keeps its open connections,
	// answering each one's next request with "Connection: close" (a GOAWAY
	// on HTTP/2), before it closes the idle rest. Clients then move to a new
	// connection, which the other revision accepts, instead of racing the
	// close of an idle keep-alive connection (a POST sent on a connection
	// being closed fails and is not retried). Default 2s.
	CloseGrace time.Duration
}

// ServeHandover is Serve on a listener shared with other revisions: it
// starts the workers, waits until all of them are up (an __init__ that
// raises ends it with that error, never having accepted), calls h.Ready,
// and only then accepts. Its drain stops accepting at once (the socket stays
// open in the agent and the other revision), tells open connections to
// close (h.CloseGrace), then finishes in-flight requests as Serve does.
func (s *Server) ServeHandover(ctx context.Context, ln net.Listener, h Handover) error {
	if h.CloseGrace <= 0 {
		h.CloseGrace = 2 * time.Second
	}
	return s.serve(ctx, ln, &h)
}

// waitWorkers waits until the dispatcher's workers are all up.
func waitWorkers(ctx context.Context, p dispatcher) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		rd := p.Readiness()
		switch {
		case rd.Err != nil:
			msg := rd.Err.Message
			if rd.Err.Traceback != "" {
				msg += "\n" + rd.Err.Traceback
			}
			return fmt.Errorf("the workers did not start (%s): %s", rd.Err.Code, msg)
		case rd.Ready:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the workers: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (s *Server) serve(ctx context.Context, ln net.Listener, h *Handover) error {
	p, err := s.newDispatcher()
	if err != nil {
		ln.Close()
		return err
	}
	if s.certs != nil { // reloaded when the files change (tls.go)
		if err := s.certs.load(); err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, s.certs.tlsConfig())
	}
	s.pool = p
	p.Start(ctx)
	var agentLn net.Listener
	if h != nil {
		err := waitWorkers(ctx, p)
		if err == nil {
			// Before Ready: the agent calls this revision's socket once it
			// has made it the one serving, which is what Ready waits for.
			agentLn = s.listenAgentSocket()
			err = h.Ready(ctx)
		}
		if err != nil {
			ln.Close()
			if agentLn != nil {
				agentLn.Close()
			}
			cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_ = p.Close(cctx)
			if s.box != nil {
				_ = s.box.Close()
			}
			s.log.Error("not serving", "error", err)
			return err
		}
	}

	var draining atomic.Bool
	var open atomic.Int64 // connections not yet closed
	handler := s.handler
	if h != nil {
		handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if draining.Load() { // see Handover.CloseGrace
				w.Header().Set("Connection", "close")
			}
			s.handler.ServeHTTP(w, r)
		})
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ConnState: func(_ net.Conn, st http.ConnState) {
			switch st {
			case http.StateNew:
				open.Add(1)
			case http.StateClosed, http.StateHijacked:
				open.Add(-1)
			}
		},
	}
	s.log.Info("serving", "addr", ln.Addr().String(), "tls", s.cfg.CertFile != "", "environment", s.cfg.Environment, "threads", s.cfg.Threads,
		"type", spec.Pair{In: s.cfg.Input, Out: s.cfg.Output}.String(), "max_batch_size", s.cfg.MaxBatchSize,
		"max_queue_delay", time.Duration(s.cfg.MaxQueueDelay).String(), "max_queue_size", s.cfg.MaxQueueSize)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if h == nil {
		agentLn = s.listenAgentSocket()
	}
	if agentLn != nil {
		// Its end is the TCP listener's: Shutdown closes both, and a drain
		// closes it beside ln below.
		go func() { _ = srv.Serve(agentLn) }()
	}
	select {
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		s.log.Info("draining: finishing in-flight requests")
		if h != nil {
			// Stop accepting now: the other revision takes the new
			// connections. Then let open ones close after their next answer.
			draining.Store(true)
			ln.Close()
			if agentLn != nil {
				agentLn.Close()
			}
			deadline := time.Now().Add(h.CloseGrace)
			for open.Load() > 0 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			s.log.Info("draining: connections left after the close grace", "open", open.Load())
		}
		dctx, cancel := context.WithTimeout(context.Background(), time.Duration(s.cfg.Timeout)+10*time.Second)
		defer cancel()
		if derr := srv.Shutdown(dctx); derr != nil && !(h != nil && errors.Is(derr, net.ErrClosed)) {
			err = fmt.Errorf("drain: %w", derr)
		}
	}
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cerr := p.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	if s.box != nil {
		_ = s.box.Close()
	}
	s.log.Info("stopped")
	return err
}

// listenAgentSocket opens Config.AgentSocket (nil when unset or when it
// cannot be opened: the agent then calls the TLS port, so a failure here
// costs speed, not service). A file left at the path by a killed server is
// replaced only when it is a socket; the socket is made 0600 before anyone
// is accepted.
func (s *Server) listenAgentSocket() net.Listener {
	path := s.cfg.AgentSocket
	if path == "" {
		return nil
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			s.log.Warn("agent socket not opened: something else is at its path", "path", path)
			return nil
		}
		_ = os.Remove(path)
	}
	ln, err := inferapi.ListenUnix(path)
	if err == nil {
		if err = os.Chmod(path, 0o600); err != nil {
			ln.Close()
		}
	}
	if err != nil {
		s.log.Warn("agent socket not opened; the agent calls the TLS port", "path", path, "error", err)
		return nil
	}
	return ln
}

// newDispatcher makes what runs predict for the environment: the ONNX model
// in process (onnx.go) or Python workers running aai_runner.py.
func (s *Server) newDispatcher() (dispatcher, error) {
	if s.cfg.Environment == spec.EnvONNX {
		return newONNXDispatcher(s.cfg, s.log, s.metrics), nil
	}
	runner, err := writeRunner(s.cfg.RunDir)
	if err != nil {
		return nil, err
	}
	box, err := s.newSandbox()
	if err != nil {
		return nil, err
	}
	s.box = box
	specs := make([]workerSpec, s.cfg.Threads)
	for i := range specs {
		specs[i] = workerSpec{idx: i, python: s.cfg.Python, runner: runner, dir: s.cfg.CodeDir, log: s.log, box: box}
	}
	return newBatcher(specs, batchOptionsOf(s.cfg), s.log, s.metrics), nil
}

// newSandbox makes the launcher the Python workers start through: the
// config's sandbox, or unconfined when the config has none (a server run by
// hand; the platform always sets one).
func (s *Server) newSandbox() (*sandbox.Launcher, error) {
	cfg := sandbox.Config{Mode: sandbox.ModeNone, Group: "unconfined"}
	if s.cfg.Sandbox != nil {
		cfg = *s.cfg.Sandbox
		if cfg.StateDir == "" && s.cfg.RunDir != "" {
			cfg.StateDir = s.cfg.RunDir
		}
	}
	box, err := sandbox.New(cfg)
	if err != nil {
		return nil, err
	}
	c := box.Config()
	s.log.Info("python workers run", "sandbox", c.Mode, "network", c.Network, "memory", sandbox.FormatBytes(c.Limits.MemoryBytes),
		"cpus", c.Limits.CPUs, "pids", c.Limits.Pids, "limits_of", c.Limits.Label, "uid", box.UID())
	return box, nil
}

// writeRunner writes the embedded aai_runner.py into dir (the system temp
// folder when empty) and returns its path. The name holds a hash of the
// content, so the file is written once per server version and never
// removed: the test and live servers of one folder (and a live server
// replacing another) share it without one deleting it under the other, and
// a crash leaves no new file behind, as the random temp names it replaces
// did.
func writeRunner(dir string) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	code := templates.RunnerPy()
	sum := sha256.Sum256(code)
	path := filepath.Join(dir, "aai_runner-"+hex.EncodeToString(sum[:6])+".py")
	if cur, err := os.ReadFile(path); err == nil && bytes.Equal(cur, code) {
		return path, nil
	}
	// Written aside and renamed: a worker starting now never reads half a file.
	f, err := os.CreateTemp(dir, ".aai_runner-*.tmp")
	if err != nil {
		return "", fmt.Errorf("write worker runner: %w", err)
	}
	_, werr := f.Write(code)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("write worker runner: %w", werr)
	}
	return path, nil
}

// routes builds the handler: every answer, errors included, is JSON unless it
// is the output itself.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	route := func(path, method string, auth bool, h http.HandlerFunc) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			if cors(w, r, method) {
				return
			}
			if r.Method != method && !(method == http.MethodGet && r.Method == http.MethodHead) {
				w.Header().Set("Allow", method)
				writeError(w, apiErr(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "%s takes %s", path, method))
				return
			}
			if auth && !s.authorized(r) {
				writeError(w, apiErr(http.StatusUnauthorized, CodeUnauthorized, "send the endpoint's token as \"Authorization: Bearer <token>\""))
				return
			}
			h(w, r)
		})
	}
	route("/healthz", http.MethodGet, false, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	route("/readyz", http.MethodGet, false, s.readyz)
	route("/openapi.json", http.MethodGet, false, s.openAPI)
	metricsHandler := s.metrics.handler()
	route("/metrics", http.MethodGet, !s.cfg.PublicMetrics, metricsHandler.ServeHTTP)
	route("/predict", http.MethodPost, true, s.predict)
	route("/v1/test-input", http.MethodGet, true, s.testInput)
	s.v2Routes(mux) // the Open Inference Protocol (v2.go)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, apiErr(http.StatusNotFound, CodeNotFound, "no such endpoint %s; see /openapi.json", r.URL.Path))
	})
	return s.logRequests(mux)
}

// cors lets browser pages on any origin (the generated jQuery client, opened
// from disk or another site) call the endpoint. That is safe because the
// endpoint authenticates with a bearer token, never with cookies: a page can
// only call it with a token its user pasted. It answers a preflight (OPTIONS)
// itself and reports true when the request is done.
func cors(w http.ResponseWriter, r *http.Request, method string) bool {
	if r.Header.Get("Origin") == "" {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "Content-Disposition, Retry-After, X-Request-Id, Inference-Header-Content-Length, Algocloud-Logs")
	if r.Method != http.MethodOptions {
		return false
	}
	h.Set("Access-Control-Allow-Methods", method+", OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Inference-Header-Content-Length, Algocloud-Logs")
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// authorized compares the bearer token's SHA-256 with the configured one
// (token.go: it follows Config.TokenFile) and with the platform caller's
// (Config.PlatformTokenSHA256) and the server agent's
// (Config.AgentTokenSHA256), each in constant time.
func (s *Server) authorized(r *http.Request) bool {
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	user := subtle.ConstantTimeCompare(sum[:], s.token.current()) == 1
	platform := s.platformToken != nil && subtle.ConstantTimeCompare(sum[:], s.platformToken) == 1
	agent := s.agentToken != nil && subtle.ConstantTimeCompare(sum[:], s.agentToken) == 1
	return user || platform || agent
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := s.pool.Readiness()
	switch {
	case rd.Err != nil:
		writeError(w, rd.Err)
	case !rd.Ready && s.cfg.Environment == spec.EnvONNX:
		writeError(w, apiErr(http.StatusServiceUnavailable, CodeNotReady, "the ONNX model is still loading"))
	case !rd.Ready:
		writeError(w, apiErr(http.StatusServiceUnavailable, CodeNotReady, "the workers are still loading aai_main.py"))
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

// predict serves /predict; admission.go explains the three bounds it passes
// (admission, intake slot, work slot).
func (s *Server) predict(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength > s.cfg.MaxBodyBytes {
		// The body is discarded (up to a bound: drain.go) so the client sees
		// this answer; the connection is not reused after a body this large.
		closeAfter(w, r)
		s.fail(w, r, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the request body exceeds %d bytes", s.cfg.MaxBodyBytes))
		return
	}
	release, err := s.admission.admit()
	if err != nil {
		s.fail(w, r, err)
		return
	}
	defer release()
	r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
	ticket := &workTicket{a: s.admission}
	defer ticket.leave()
	ctx := withWork(r.Context(), ticket)
	b, logs, err := s.runPredict(ctx, r, ticket)
	ticket.leaveWork()                 // before a slow client reads the answer; the intake slot covers the output's bytes
	inferapi.SetLogs(w.Header(), logs) // only a caller that asked gets any
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeBody(w, b)
}

// runPredict decodes, predicts and encodes one request; logs is what the
// algorithm printed when the request asked for it (inferapi.LogsHeader).
func (s *Server) runPredict(ctx context.Context, r *http.Request, ticket *workTicket) (_ httpBody, logs string, _ error) {
	if err := ticket.enterIntake(ctx); err != nil {
		return httpBody{}, "", err
	}
	in, err := s.in.Decode(ctx, r)
	if err != nil {
		return httpBody{}, "", err
	}
	if err := ticket.enter(ctx); err != nil { // codecs that did not take it while decoding
		return httpBody{}, "", err
	}
	out, err := s.pool.Do(ctx, call{Op: opPredict, Want: s.out.Want(), In: in, Logs: inferapi.WantsLogs(r.Header)})
	if err != nil {
		var ae *APIError
		if errors.As(err, &ae) {
			logs = ae.Logs
		}
		return httpBody{}, logs, err
	}
	b, err := s.out.Encode(out)
	return b, out.Logs, err
}

func (s *Server) testInput(w http.ResponseWriter, r *http.Request) {
	v, err := s.pool.Do(r.Context(), call{Op: opTestInput, Want: s.in.Want()})
	if err != nil {
		s.fail(w, r, err)
		return
	}
	b, err := s.in.EncodeRequest(v)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeBody(w, b)
}

func writeBody(w http.ResponseWriter, b httpBody) {
	h := w.Header()
	h.Set("Content-Type", b.ContentType)
	h.Set("Content-Length", fmt.Sprint(len(b.Data)))
	if b.Disposition != "" {
		h.Set("Content-Disposition", b.Disposition)
		h.Set("X-Content-Type-Options", "nosniff")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b.Data)
}

// fail answers err: an *APIError as it is, anything else as a 500 (or 503 when
// the caller went away, though it will not read it).
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	writeError(w, s.asAPIError(r, err))
}

// asAPIError is the answer to a request that failed with err (see fail).
func (s *Server) asAPIError(r *http.Request, err error) *APIError {
	var ae *APIError
	switch {
	case errors.As(err, &ae):
	case r.Context().Err() != nil:
		ae = apiErr(http.StatusServiceUnavailable, CodeShuttingDown, "request cancelled: %v", err)
	default:
		s.log.Error("request failed", "path", r.URL.Path, "error", err)
		ae = apiErr(http.StatusInternalServerError, CodeInternal, "%v", err)
	}
	return ae
}

// logRequests logs one line per request (never the Authorization header),
// counts it in the metrics, and turns a handler panic into a JSON 500.
func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if r.URL.Path == "/predict" || r.URL.Path == "/v1/test-input" {
			s.metrics.inFlight.Inc()
			defer s.metrics.inFlight.Dec()
		}
		id := r.Header.Get("X-Request-Id")
		if id == "" || len(id) > 64 {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-Id", id)
		rec := &statusRecorder{ResponseWriter: newDrainingWriter(w, r, s.cfg.MaxBodyBytes, s.log)}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("handler panic", "request_id", id, "panic", fmt.Sprint(p))
				if rec.status == 0 {
					writeError(rec, apiErr(http.StatusInternalServerError, CodeInternal, "internal error"))
				}
			}
			took := time.Since(start)
			s.metrics.observe(r.URL.Path, rec.status, took.Seconds())
			s.log.Info("request", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"bytes", rec.bytes, "duration_ms", took.Milliseconds(), "remote", r.RemoteAddr)
		}()
		next.ServeHTTP(rec, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}
