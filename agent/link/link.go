// Package link is the server agent's side of the command channel: it
// long-polls the platform over HTTPS with the server's credential for
// commands, runs each with the Handler of its kind, streams the handler's
// output lines as progress (which the platform turns into activity
// heartbeats and progress-log lines) and posts the result.
//
// It is idempotent by command ID: a command runs at most once at a time (a
// command handed out again while it runs only moves the running one to the
// new lease), and a command it finished is answered again from the result it
// kept on disk under Config.StateDir, never run again, also after the agent
// restarts. Cut off from the platform, it retries with backoff and goes on
// where it was; an answer the platform refuses as stale is dropped (the
// platform hands the command out again if it still wants it, and the kept
// result answers that).
//
// The package imports nothing of the platform (no Temporal, no store): the
// agent binary that uses it runs on every server.
package link

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/agent/protocol"
)

// Handler runs the commands of one kind. Run gets the command and a progress
// function (each call adds output lines for the platform; it never blocks on
// the network) and returns the kind's output or an error (the command failed:
// the platform's activity fails with its message, not retried). A Run that
// returns because ctx ended is not an answer: nothing is kept or sent, and
// the command runs again when the platform hands it out again.
type Handler interface {
	Run(ctx context.Context, cmd protocol.Command, progress func(lines ...string)) (json.RawMessage, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, cmd protocol.Command, progress func(lines ...string)) (json.RawMessage, error)

// Run calls f.
func (f HandlerFunc) Run(ctx context.Context, cmd protocol.Command, progress func(lines ...string)) (json.RawMessage, error) {
	return f(ctx, cmd, progress)
}

// Config is what New needs. Platform, Server, Credential, StateDir and
// Handlers are required.
type Config struct {
	// Platform is the platform API's base URL (https://...; http:// only for
	// a loopback address, in tests).
	Platform string
	// Server is this server's ID; Credential its credential (ag_...).
	Server     string
	Credential string
	// CredentialFile, when set, holds the credential instead (Credential
	// is then ignored): it is read at New and again whenever the platform
	// answers 401, so a credential the platform replaced (rotation) is
	// picked up without a restart once the new one is written there.
	CredentialFile string
	// HTTPClient makes the requests; it carries the TLS roots (the
	// platform's CA). nil: a client with the system's roots.
	HTTPClient *http.Client
	// StateDir keeps the results of finished commands (results/).
	StateDir string
	// Handlers maps a command kind to its handler.
	Handlers map[string]Handler
	// Wait is how long one poll asks the platform to hold (default 20 s, at
	// most protocol.MaxWait).
	Wait time.Duration
	// RunningWait is how long a poll asks the platform to hold while this
	// agent runs commands (default 5 s, at most Wait): the platform counts
	// an agent with commands in hand as gone (stopped, hung, cut off) once
	// it has not polled for twice its wait, so a short wait then lets it
	// notice within seconds (agenthub, silence.go).
	RunningWait time.Duration
	// MinBackoff and MaxBackoff bound the wait between tries when the
	// platform cannot be reached (defaults 250 ms and 15 s).
	MinBackoff, MaxBackoff time.Duration
	// ProgressEvery is how often buffered output lines are sent (default
	// 500 ms); a sign of life goes at least every command's
	// HeartbeatSeconds (default 10 s) even without lines.
	ProgressEvery time.Duration
	// Boot identifies this agent process to the platform (sent with every
	// poll): a new one tells it the agent started anew, so what the previous
	// process held is handed out again at once. "": a new random one
	// (protocol.NewBoot); a process must never reuse another's.
	Boot   string
	Logger *slog.Logger
}

// Link is a running agent client. Create it with New and run it with Run.
type Link struct {
	cfg     Config
	base    *url.URL
	client  *http.Client
	log     *slog.Logger
	results string

	mu      sync.Mutex
	running map[string]*execution
	cred    string // the credential now (CredentialFile may replace it)
	wg      sync.WaitGroup
}

// execution is one command running on this agent.
type execution struct {
	mu    sync.Mutex
	cmd   protocol.Command // Lease moves to the newest hand-out
	lines []string
}

func (e *execution) lease() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cmd.Lease
}

// New checks cfg and returns a Link.
func New(cfg Config) (*Link, error) {
	u, err := url.Parse(cfg.Platform)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("link: platform URL %q is not http(s)://host", cfg.Platform)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return nil, fmt.Errorf("link: platform URL %q: plain http only to a loopback address (the credential would travel in clear)", cfg.Platform)
	}
	if err := protocol.ValidID(cfg.Server); err != nil {
		return nil, fmt.Errorf("link: server id: %w", err)
	}
	if cfg.CredentialFile != "" {
		c, err := readCredential(cfg.CredentialFile)
		if err != nil {
			return nil, fmt.Errorf("link: %w", err)
		}
		cfg.Credential = c
	}
	if !strings.HasPrefix(cfg.Credential, protocol.CredentialPrefix) {
		return nil, fmt.Errorf("link: the credential does not start with %q", protocol.CredentialPrefix)
	}
	if cfg.StateDir == "" {
		return nil, errors.New("link: no state folder")
	}
	if len(cfg.Handlers) == 0 {
		return nil, errors.New("link: no handlers")
	}
	results := filepath.Join(cfg.StateDir, "results")
	if err := os.MkdirAll(results, 0o700); err != nil {
		return nil, fmt.Errorf("link: state folder: %w", err)
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 20 * time.Second
	}
	cfg.Wait = min(cfg.Wait, protocol.MaxWait)
	if cfg.RunningWait <= 0 {
		cfg.RunningWait = 5 * time.Second
	}
	cfg.RunningWait = min(cfg.RunningWait, cfg.Wait)
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 250 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 15 * time.Second
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 500 * time.Millisecond
	}
	if cfg.Boot == "" {
		cfg.Boot = protocol.NewBoot()
	} else if err := protocol.ValidBoot(cfg.Boot); err != nil {
		return nil, fmt.Errorf("link: boot id: %w", err)
	}
	l := &Link{cfg: cfg, base: u, client: cfg.HTTPClient, log: cfg.Logger, results: results, running: map[string]*execution{}, cred: cfg.Credential}
	if l.client == nil {
		l.client = &http.Client{}
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	return l, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// Run polls for commands and runs them until ctx ends, then waits for the
// running handlers (which see ctx end) to return. It returns ctx's error.
func (l *Link) Run(ctx context.Context) error {
	defer l.wg.Wait()
	backoff := l.cfg.MinBackoff
	for ctx.Err() == nil {
		cmd, err := l.next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			l.log.Warn("agent: cannot fetch commands; retrying", "error", err, "in", backoff)
			sleep(ctx, jitter(backoff))
			backoff = min(backoff*2, l.cfg.MaxBackoff)
			continue
		}
		backoff = l.cfg.MinBackoff
		if cmd != nil {
			l.dispatch(ctx, *cmd)
		}
	}
	return ctx.Err()
}

// dispatch starts cmd, moves the running execution of its ID to cmd's lease,
// or answers it from the kept result.
func (l *Link) dispatch(ctx context.Context, cmd protocol.Command) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.running[cmd.ID]; ok {
		e.mu.Lock()
		e.cmd.Lease = cmd.Lease
		e.mu.Unlock()
		l.log.Info("agent: command handed out again while it runs; answering under the new lease", "command", cmd.ID)
		return
	}
	if r, ok := l.kept(cmd.ID); ok {
		l.log.Info("agent: command already done here; sending the kept result", "command", cmd.ID)
		r.Lease = cmd.Lease
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.post(ctx, r)
		}()
		return
	}
	e := &execution{cmd: cmd}
	l.running[cmd.ID] = e
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.execute(ctx, e)
	}()
}

// execute runs one command, keeps its result and posts it.
func (l *Link) execute(ctx context.Context, e *execution) {
	e.mu.Lock()
	cmd := e.cmd
	e.mu.Unlock()
	log := l.log.With("command", cmd.ID, "kind", cmd.Kind)
	log.Info("agent: running command", "attempt", cmd.Attempt)
	runCtx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		l.progressLoop(runCtx, e)
	}()
	hctx := context.WithValue(ctx, uploaderKey{}, &uploader{l: l, e: e})
	out, err := l.runHandler(hctx, cmd, func(lines ...string) {
		e.mu.Lock()
		e.lines = append(e.lines, lines...)
		e.mu.Unlock()
	})
	stopProgress()
	<-progressDone
	if ctx.Err() != nil {
		// Stopped, not answered: the command runs again when handed out again.
		l.forget(cmd.ID)
		log.Info("agent: command interrupted", "error", err)
		return
	}
	l.flushLast(ctx, e) // the last lines before the result
	r := protocol.Result{CommandID: cmd.ID, OK: err == nil, Output: out}
	if err != nil {
		r.Error = err.Error()
	}
	if kerr := l.keep(r); kerr != nil {
		// Without the kept copy a restart would run it again; say so, still answer.
		log.Error("agent: cannot keep the result", "error", kerr)
	}
	r.Lease = e.lease()
	l.forget(cmd.ID)
	l.post(ctx, r)
}

func (l *Link) forget(id string) {
	l.mu.Lock()
	delete(l.running, id)
	l.mu.Unlock()
}

// runHandler runs the kind's handler, turning a panic or a missing handler
// into a failed answer.
func (l *Link) runHandler(ctx context.Context, cmd protocol.Command, progress func(...string)) (out json.RawMessage, err error) {
	h, ok := l.cfg.Handlers[cmd.Kind]
	if !ok {
		return nil, fmt.Errorf("this agent has no handler for commands of kind %q", cmd.Kind)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler of %q panicked: %v", cmd.Kind, p)
		}
	}()
	return h.Run(ctx, cmd, progress)
}

// progressLoop sends buffered lines every ProgressEvery and a sign of life
// at least every HeartbeatSeconds, until ctx ends.
func (l *Link) progressLoop(ctx context.Context, e *execution) {
	every := 10 * time.Second
	if e.cmd.HeartbeatSeconds > 0 {
		every = time.Duration(e.cmd.HeartbeatSeconds) * time.Second
	}
	tick := time.NewTicker(l.cfg.ProgressEvery)
	defer tick.Stop()
	last := time.Now()
	l.sendProgress(ctx, e, nil) // at once: the command started
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		n := len(e.lines)
		e.mu.Unlock()
		if n > 0 || time.Since(last) >= every {
			l.flushProgress(ctx, e)
			last = time.Now()
		}
	}
}

// flushLast sends what lines are left once the handler returned, trying a
// few times: nothing else would send them (the result goes regardless).
func (l *Link) flushLast(ctx context.Context, e *execution) {
	backoff := l.cfg.MinBackoff
	for range 5 {
		l.flushProgress(ctx, e)
		e.mu.Lock()
		left := len(e.lines)
		e.mu.Unlock()
		if left == 0 || ctx.Err() != nil {
			return
		}
		sleep(ctx, jitter(backoff))
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

// flushProgress sends the buffered lines, keeping them when the platform
// cannot be reached (up to protocol.MaxLines) for the next try.
func (l *Link) flushProgress(ctx context.Context, e *execution) {
	e.mu.Lock()
	lines := e.lines
	if len(lines) > protocol.MaxLines {
		lines = lines[:protocol.MaxLines]
	}
	e.lines = e.lines[len(lines):]
	e.mu.Unlock()
	if !l.sendProgress(ctx, e, lines) && len(lines) > 0 {
		e.mu.Lock()
		if len(e.lines)+len(lines) <= protocol.MaxLines {
			e.lines = append(lines, e.lines...)
		}
		e.mu.Unlock()
	}
}

// sendProgress posts one Progress and reports whether it should be
// considered delivered (refusals are: they will not change on a retry).
func (l *Link) sendProgress(ctx context.Context, e *execution, lines []string) bool {
	p := protocol.Progress{CommandID: e.cmd.ID, Lease: e.lease(), Lines: lines}
	err := l.do(ctx, http.MethodPost, protocol.CommandPath(l.cfg.Server, p.CommandID, "progress"), p, nil)
	switch {
	case err == nil:
		return true
	case errors.Is(err, protocol.ErrStaleLease) && e.lease() != p.Lease:
		// Handed out again meanwhile (an attempt that timed out while the
		// platform refused this agent's rotated credential): the lines go
		// again under the new lease rather than being dropped.
		l.log.Info("agent: progress sent under a replaced lease; sending it again", "command", p.CommandID)
		return false
	case errors.Is(err, protocol.ErrStaleLease), errors.Is(err, protocol.ErrForbidden), errors.Is(err, protocol.ErrUnknownCommand):
		l.log.Info("agent: progress refused", "command", p.CommandID, "error", err)
		return true
	case ctx.Err() != nil: // the command ended meanwhile; its last lines go with flushLast
		return false
	default:
		l.log.Warn("agent: progress not sent", "command", p.CommandID, "error", err)
		return false
	}
}

// post sends a result until the platform takes or refuses it, or ctx ends.
func (l *Link) post(ctx context.Context, r protocol.Result) {
	backoff := l.cfg.MinBackoff
	for {
		var ack protocol.Ack
		err := l.do(ctx, http.MethodPost, protocol.CommandPath(l.cfg.Server, r.CommandID, "result"), r, &ack)
		switch {
		case err == nil:
			l.log.Info("agent: result delivered", "command", r.CommandID, "ok", r.OK, "duplicate", ack.Duplicate)
			return
		case errors.Is(err, protocol.ErrStaleLease), errors.Is(err, protocol.ErrCommandDone),
			errors.Is(err, protocol.ErrForbidden), errors.Is(err, protocol.ErrUnknownCommand):
			// Kept on disk: if the platform still wants it, it hands the
			// command out again and the kept result answers.
			l.log.Info("agent: result refused", "command", r.CommandID, "error", err)
			return
		case ctx.Err() != nil:
			return
		}
		l.log.Warn("agent: result not delivered; retrying", "command", r.CommandID, "error", err, "in", backoff)
		sleep(ctx, jitter(backoff))
		backoff = min(backoff*2, l.cfg.MaxBackoff)
	}
}

// next long-polls for the next command; nil when none came in time.
// It asks for RunningWait while commands run, Wait otherwise.
func (l *Link) next(ctx context.Context) (*protocol.Command, error) {
	var cmd protocol.Command
	wait := l.cfg.Wait
	l.mu.Lock()
	if len(l.running) > 0 {
		wait = l.cfg.RunningWait
	}
	l.mu.Unlock()
	path := protocol.NextPath(l.cfg.Server) + "?wait=" + wait.String() + "&boot=" + l.cfg.Boot
	got, err := l.doStatus(ctx, http.MethodGet, path, nil, &cmd, wait+15*time.Second)
	if err != nil || !got {
		return nil, err
	}
	if cmd.Server != l.cfg.Server {
		return nil, fmt.Errorf("the platform handed over a command for server %q", cmd.Server)
	}
	return &cmd, nil
}

func (l *Link) do(ctx context.Context, method, path string, body, into any) error {
	_, err := l.doStatus(ctx, method, path, body, into, 30*time.Second)
	return err
}

// doStatus makes one request; it reports false for a 204 (nothing to
// decode) and maps the platform's refusals onto the protocol's errors.
func (l *Link) doStatus(ctx context.Context, method, path string, body, into any, timeout time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return false, err
		}
		rd = bytes.NewReader(b)
	}
	ref, err := url.Parse(path)
	if err != nil {
		return false, err
	}
	req, err := http.NewRequestWithContext(ctx, method, l.base.ResolveReference(ref).String(), rd)
	if err != nil {
		return false, err
	}
	l.mu.Lock()
	cred := l.cred
	l.mu.Unlock()
	req.Header.Set("Authorization", "Bearer "+cred)
	req.Header.Set(protocol.VersionHeader, protocol.Version)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return false, err // never the URL's credential: there is none in it
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, protocol.MaxBody))
	if err != nil {
		return false, fmt.Errorf("%s %s: read answer: %w", method, req.URL.Path, err)
	}
	switch {
	case resp.StatusCode == http.StatusNoContent:
		return false, nil
	case resp.StatusCode/100 == 2:
		if into != nil {
			if err := json.Unmarshal(data, into); err != nil {
				return false, fmt.Errorf("%s %s: decode answer: %w", method, req.URL.Path, err)
			}
		}
		return true, nil
	}
	if resp.StatusCode == http.StatusUnauthorized && l.cfg.CredentialFile != "" {
		l.reloadCredential(cred)
	}
	return false, refusal(method, req.URL.Path, resp.Status, data)
}

// refusal maps the platform's error answer onto the protocol's errors.
func refusal(method, path, status string, data []byte) error {
	var eb protocol.ErrorBody
	_ = json.Unmarshal(data, &eb)
	err := fmt.Errorf("%s %s: %s: %s", method, path, status, eb.Message)
	switch eb.Code {
	case "agent_forbidden":
		return fmt.Errorf("%w (%w)", protocol.ErrForbidden, err)
	case "agent_command_not_found":
		return fmt.Errorf("%w (%w)", protocol.ErrUnknownCommand, err)
	case "agent_stale_lease":
		return fmt.Errorf("%w (%w)", protocol.ErrStaleLease, err)
	case "agent_command_done":
		return fmt.Errorf("%w (%w)", protocol.ErrCommandDone, err)
	}
	return err
}

// readCredential reads a credential file (surrounding space trimmed).
func readCredential(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credential: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// reloadCredential reads CredentialFile again after the platform refused
// used, and takes what it holds if it is another credential.
func (l *Link) reloadCredential(used string) {
	c, err := readCredential(l.cfg.CredentialFile)
	if err != nil || !strings.HasPrefix(c, protocol.CredentialPrefix) {
		l.log.Warn("agent: credential refused and the credential file holds no other", "error", err)
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c != used && l.cred == used {
		l.cred = c
		l.log.Info("agent: credential refused; using the new one in the credential file")
	}
}

// keptPath is where the result of command id is kept: named by its hash, so
// any ID is a safe file name.
func (l *Link) keptPath(id string) string {
	sum := sha256.Sum256([]byte(id))
	return filepath.Join(l.results, hex.EncodeToString(sum[:])+".json")
}

// keep writes r (without its lease) durably before it is sent, so an agent
// that dies after running a command answers it from disk when it is back.
func (l *Link) keep(r protocol.Result) error {
	r.Lease = ""
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	path := l.keptPath(r.CommandID)
	f, err := os.CreateTemp(l.results, ".result-*")
	if err != nil {
		return fmt.Errorf("keep result of %s: %w", r.CommandID, err)
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err == nil { // the rename itself survives a power cut only once the folder is synced
		if d, derr := os.Open(l.results); derr == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("keep result of %s: %w", r.CommandID, err)
	}
	return nil
}

// kept returns the kept result of command id, if any.
func (l *Link) kept(id string) (protocol.Result, bool) {
	b, err := os.ReadFile(l.keptPath(id))
	if err != nil {
		return protocol.Result{}, false
	}
	var r protocol.Result
	if json.Unmarshal(b, &r) != nil || r.CommandID != id {
		return protocol.Result{}, false
	}
	return r, true
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// jitter spreads retries of many agents cut off at once over ±25 %.
func jitter(d time.Duration) time.Duration {
	return d*3/4 + time.Duration(rand.Int64N(int64(d)/2+1))
}
