// Package revisions supervises the live revisions of one endpoint on one
// server: it owns the endpoint's listening TCP socket and hands it to each
// revision's inference server (algocloud-infer --listen-fd) as an inherited
// descriptor, so that a new revision can take over from the serving one with
// no connection refused and no request lost (Swap), restarts a serving
// revision that crashed (with backoff), keeps each revision's log in its
// folder (bounded), and records what serves in a state file so that a
// restarted agent adopts the running revision instead of starting a second.
//
// A swap starts the new revision's server beside the serving one. The new
// server loads its workers without accepting; when they are all up it says
// "ready" on a private socket pair; the supervisor then records it as the
// one serving (the commit point) and answers "serve", and only then does the
// new server accept from the shared socket. The old one is then sent SIGTERM:
// it stops accepting (the new one takes every new connection, including
// those already queued in the socket's backlog: there is one queue), asks
// its open connections to close after their next answer, finishes its
// in-flight requests and stops its workers. A new revision that fails to
// start (its __init__ raises, it crashes, it is not ready in time) is killed
// and never serves; Swap returns why, with the tail of its log.
//
// Author code is never run here: the revisions' Python workers are launched
// by the inference server through internal/sandbox as its config says; the
// supervisor passes each revision's config through unchanged.
//
// The package must not link Temporal, cloud SDKs or the platform's store
// (the agent runs on the server; see deps_test.go).
package revisions

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// listenFD and readyFD are where a revision's server finds the listening
// socket and the socket to the supervisor (exec's ExtraFiles start at 3).
const (
	listenFD = 3
	readyFD  = 4
)

// Revision is one deployable state of the endpoint: code, venv, threads,
// certificate and token file, all named by its inference server config.
type Revision struct {
	// ID names the revision (the platform's code revision, install and
	// settings); it names its log folder, so letters, digits, '.', '_' and
	// '-' only.
	ID string `json:"id"`
	// Config is the path of its inference.Config (JSON). Its listen is
	// ignored: the revision serves on the supervisor's socket.
	Config string `json:"config"`
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Check reports what is wrong with r.
func (r Revision) Check() error {
	if !idRe.MatchString(r.ID) {
		return fmt.Errorf("revision id %q: 1 to 64 letters, digits, '.', '_' or '-'", r.ID)
	}
	if !filepath.IsAbs(r.Config) {
		return fmt.Errorf("revision %s: config %q must be an absolute path", r.ID, r.Config)
	}
	if st, err := os.Stat(r.Config); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("revision %s: config %s is not a readable file", r.ID, r.Config)
	}
	return nil
}

// Options configure a Supervisor.
type Options struct {
	// Dir is the agent's folder: the state file, and revisions/<id>/server.log.
	Dir string
	// Listen is the endpoint's host:port.
	Listen string
	// Command is the inference server and its leading arguments (default:
	// this executable, which is algocloud-infer in the agent mode).
	Command []string
	// Env is the servers' environment (default: PATH, LANG and HOME=Dir).
	Env []string
	// ReadyTimeout bounds a revision's start, until its workers are up (default 5m).
	ReadyTimeout time.Duration
	// StopGrace bounds a drain; past it the revision's process group is
	// killed (default 2m: the server itself drains within its timeout + 10s).
	StopGrace time.Duration
	// MinBackoff and MaxBackoff space the restarts of a serving revision
	// that keeps crashing (default 1s, 1m).
	MinBackoff, MaxBackoff time.Duration
	// LogMaxBytes bounds each revision's log (and its one older part; default 4 MiB).
	LogMaxBytes int64
	// Log is the supervisor's own log (default slog.Default()).
	Log *slog.Logger
}

func (o Options) withDefaults() (Options, error) {
	if o.Dir == "" || o.Listen == "" {
		return o, errors.New("revisions: Dir and Listen are required")
	}
	if len(o.Command) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return o, fmt.Errorf("revisions: find this executable: %w", err)
		}
		o.Command = []string{exe}
	}
	if o.Env == nil {
		o.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + o.Dir}
	}
	if o.ReadyTimeout <= 0 {
		o.ReadyTimeout = 5 * time.Minute
	}
	if o.StopGrace <= 0 {
		o.StopGrace = 2 * time.Minute
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = time.Minute
	}
	if o.LogMaxBytes <= 0 {
		o.LogMaxBytes = 4 << 20
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return o, nil
}

// ProcStatus is one revision's process.
type ProcStatus struct {
	Revision
	PID      int       `json:"pid"`
	Since    time.Time `json:"since"`
	Restarts int       `json:"restarts,omitempty"`
	Log      string    `json:"log"`
}

// Status is what the supervisor runs.
type Status struct {
	Listen string `json:"listen"`
	// Serving is the revision that accepts connections (nil: none).
	Serving *ProcStatus `json:"serving,omitempty"`
	// Starting is a revision a swap is starting (not accepting yet).
	Starting *ProcStatus `json:"starting,omitempty"`
	// Draining are replaced revisions finishing their in-flight requests.
	Draining []ProcStatus `json:"draining,omitempty"`
	// LastError is the last failed start, swap or crash, and when.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// Supervisor runs the revisions of one endpoint. Its methods may be called
// concurrently; Start, Swap and Stop run one at a time.
type Supervisor struct {
	opts Options
	log  *slog.Logger

	op     sync.Mutex // one Start, Swap, Stop or crash restart at a time
	saveMu sync.Mutex // one saveState at a time

	mu       sync.Mutex
	lnFile   *os.File // the listening socket; nil while nothing serves
	serving  *proc
	starting *proc
	draining []*proc
	lastErr  string
	lastAt   time.Time
	closed   bool

	spawnCh chan spawnReq
	quit    chan struct{}
	wg      sync.WaitGroup
	lock    *os.File // flock'ed while this supervisor runs
}

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// ErrNotServing is Swap's or Stop's error when nothing serves, and
// ErrServing Start's when something does.
var (
	ErrNotServing = errors.New("revisions: no revision serves")
	ErrServing    = errors.New("revisions: a revision serves already; swap to replace it")
)

// Open starts a supervisor for the endpoint. When the state file names
// revisions an earlier agent started, it adopts them: the serving one keeps
// serving (the supervisor takes the listening socket back from it), one a
// swap was starting is killed (it never served: the swap is to be sent
// again), draining ones are left to finish. A serving revision that died
// meanwhile is started again.
func Open(ctx context.Context, opts Options) (*Supervisor, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("revisions: make %s: %w", opts.Dir, err)
	}
	// One supervisor per folder: a second would start a second serving
	// revision. The lock is close-on-exec, so the servers do not hold it
	// after the agent is gone.
	lock, err := os.OpenFile(filepath.Join(opts.Dir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("revisions: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("revisions: another agent runs on %s: %w", opts.Dir, err)
	}
	s := &Supervisor{opts: opts, log: opts.Log.With("listen", opts.Listen), spawnCh: make(chan spawnReq), quit: make(chan struct{}), lock: lock}
	go s.spawnLoop()
	s.wg.Add(1)
	go s.trimLoop()
	if err := s.adopt(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// spawnLoop starts every child, so that none starts once Close has begun
// (launch hands its command over or sees quit). Unlike
// activities/compute/local, the children get no Pdeathsig (they outlive the
// agent), so which thread forks them does not matter.
func (s *Supervisor) spawnLoop() {
	for {
		select {
		case req := <-s.spawnCh:
			req.done <- req.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

// Close stops supervising and leaves the revisions running (an agent that
// exits, to be restarted, keeps the endpoint serving; Stop stops them).
func (s *Supervisor) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.quit)
	if s.lnFile != nil {
		s.lnFile.Close()
		s.lnFile = nil
	}
	s.mu.Unlock()
	s.wg.Wait()
	s.lock.Close() // releases the flock
}

func (s *Supervisor) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Supervisor) logPath(id string) string {
	return filepath.Join(s.opts.Dir, "revisions", id, "server.log")
}

// Status says which revision serves, since when, and what starts or drains.
func (s *Supervisor) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Listen: s.opts.Listen, LastError: s.lastErr, LastErrorAt: s.lastAt}
	ps := func(p *proc) ProcStatus {
		return ProcStatus{Revision: p.rev, PID: p.pid, Since: p.since, Restarts: p.restarts, Log: s.logPath(p.rev.ID)}
	}
	if s.serving != nil {
		v := ps(s.serving)
		st.Serving = &v
	}
	if s.starting != nil {
		v := ps(s.starting)
		st.Starting = &v
	}
	for _, p := range s.draining {
		st.Draining = append(st.Draining, ps(p))
	}
	return st
}

func (s *Supervisor) fail(err error) {
	s.mu.Lock()
	s.lastErr, s.lastAt = err.Error(), time.Now().UTC()
	s.mu.Unlock()
}

// Start starts the endpoint's first revision (or the one after Stop).
func (s *Supervisor) Start(ctx context.Context, rev Revision) error {
	if err := rev.Check(); err != nil {
		return err
	}
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	busy := s.serving != nil
	s.mu.Unlock()
	if busy {
		return ErrServing
	}
	_, err := s.launch(ctx, rev, nil, 0)
	return err
}

// Swap replaces the serving revision with rev without refusing a
// connection: see the package comment. It returns once rev serves; the old
// revision drains in the background (Status lists it under Draining until
// it has exited). When rev fails to start, the serving revision is left
// untouched and the error says why, with the tail of rev's log. Swapping to
// the revision that serves starts it anew (a threads change or a new
// certificate under the same ID). Two revisions whose configs name the same
// sandbox group are refused (distinctGroups).
func (s *Supervisor) Swap(ctx context.Context, rev Revision) error {
	if err := rev.Check(); err != nil {
		return err
	}
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	old := s.serving
	s.mu.Unlock()
	if old == nil {
		return ErrNotServing
	}
	if err := distinctGroups(old.rev, rev); err != nil {
		s.fail(err)
		return err
	}
	_, err := s.launch(ctx, rev, old, 0)
	return err
}

// Stop drains the serving revision and waits until it and every draining
// one have exited; the listening socket is then closed (a later Start binds
// it again).
func (s *Supervisor) Stop(ctx context.Context) error {
	s.op.Lock()
	defer s.op.Unlock()
	s.mu.Lock()
	old := s.serving
	if old != nil {
		s.serving = nil
		s.draining = append(s.draining, old)
	}
	all := append([]*proc(nil), s.draining...)
	s.mu.Unlock()
	if old != nil {
		s.log.Info("stopping", "revision", old.rev.ID, "pid", old.pid)
		if err := s.saveState(); err != nil {
			return err
		}
		s.drain(old)
	}
	for _, p := range all {
		select {
		case <-p.exited:
		case <-ctx.Done():
			return fmt.Errorf("stop: waiting for revision %s (pid %d) to drain: %w", p.rev.ID, p.pid, ctx.Err())
		}
	}
	s.mu.Lock()
	if s.serving == nil && s.lnFile != nil {
		s.lnFile.Close()
		s.lnFile = nil
	}
	s.mu.Unlock()
	return s.saveState()
}

// listener returns the listening socket, binding it when nothing holds it.
func (s *Supervisor) listener() (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lnFile != nil {
		return s.lnFile, nil
	}
	lc := net.ListenConfig{}
	ln, err := lc.Listen(context.Background(), "tcp", s.opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	f, err := ln.(*net.TCPListener).File()
	ln.Close() // f is a duplicate: the socket stays open
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	defer f.Close()
	// Why another duplicate: a File from net is one whose Fd() puts the
	// socket in blocking mode, and exec calls Fd() on every inherited
	// file. O_NONBLOCK belongs to the socket, shared with the revision
	// serving from it, whose accept would then block in the kernel (its
	// drain's close waits for that accept, which returns only with the
	// next connection). A File from os.NewFile of a non-blocking
	// descriptor is left non-blocking by Fd().
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err == nil {
		err = unix.SetNonblock(fd, true)
	}
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", s.opts.Listen, err)
	}
	s.lnFile = os.NewFile(uintptr(fd), "listener")
	return s.lnFile, nil
}

// launch starts rev's server and, once its workers are up, makes it the
// serving revision, draining replaced (nil for a first start or a restart).
// restarts is carried over by a crash restart. The caller holds s.op.
func (s *Supervisor) launch(ctx context.Context, rev Revision, replaced *proc, restarts int) (*proc, error) {
	lnFile, err := s.listener()
	if err != nil {
		s.fail(err)
		return nil, err
	}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "ready"), os.NewFile(uintptr(pair[1]), "ready-child")
	defer ours.Close()
	logPath := s.logPath(rev.ID)
	logFile, err := openLog(logPath)
	if err != nil {
		theirs.Close()
		return nil, fmt.Errorf("revision %s: open its log: %w", rev.ID, err)
	}
	fmt.Fprintf(logFile, "[agent %s] starting revision %s (config %s)\n", time.Now().UTC().Format(time.RFC3339), rev.ID, rev.Config)
	args := append(append([]string(nil), s.opts.Command[1:]...), "--config", rev.Config,
		"--listen-fd", fmt.Sprint(listenFD), "--ready-fd", fmt.Sprint(readyFD))
	cmd := exec.Command(s.opts.Command[0], args...)
	cmd.Dir = filepath.Dir(rev.Config)
	cmd.Env = s.opts.Env
	cmd.Stdout, cmd.Stderr = logFile, logFile // a file, not a pipe: the server outlives an agent restart
	cmd.ExtraFiles = []*os.File{lnFile, theirs}
	// Its own process group, and no Pdeathsig: a serving revision outlives
	// the agent (a restarted agent adopts it).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	req := spawnReq{cmd: cmd, done: make(chan error, 1)}
	select {
	case s.spawnCh <- req:
		err = <-req.done
	case <-s.quit:
		err = errors.New("the supervisor is closed")
	}
	theirs.Close()
	logFile.Close()
	if err != nil {
		err = fmt.Errorf("revision %s: start %s: %w", rev.ID, s.opts.Command[0], err)
		s.fail(err)
		return nil, err
	}
	ticks, _ := startTicks(cmd.Process.Pid)
	p := &proc{rev: rev, pid: cmd.Process.Pid, startTicks: ticks, since: time.Now().UTC(), restarts: restarts, own: true, exited: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		p.status = exitStatus(err, cmd.ProcessState)
		close(p.exited)
	}()
	s.mu.Lock()
	s.starting = p
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		s.log.Error("write state", "error", err)
	}
	s.log.Info("revision starting", "revision", rev.ID, "pid", p.pid, "replaces", procID(replaced))

	if err := s.waitReady(ctx, p, ours); err != nil {
		p.signal(syscall.SIGKILL, true)
		<-p.exited
		s.mu.Lock()
		if s.starting == p {
			s.starting = nil
		}
		s.mu.Unlock()
		_ = s.saveState()
		err = withTail(fmt.Errorf("revision %s did not start: %w", rev.ID, err), logPath)
		s.fail(err)
		s.log.Error("revision failed to start; the serving one stays", "revision", rev.ID, "error", err)
		return nil, err
	}

	// The commit point: recorded as serving before it may accept.
	s.mu.Lock()
	s.starting = nil
	s.serving = p
	p.since = time.Now().UTC()
	if replaced != nil {
		s.draining = append(s.draining, replaced)
	}
	s.mu.Unlock()
	if err := s.saveState(); err != nil {
		s.log.Error("write state", "error", err)
	}
	if _, err := ours.WriteString("serve\n"); err != nil {
		// It died just now: the crash watcher restarts it.
		s.log.Warn("revision gone before serve", "revision", rev.ID, "error", err)
	}
	s.log.Info("revision serving", "revision", rev.ID, "pid", p.pid)
	s.wg.Add(1)
	go s.watch(p)
	if replaced != nil {
		s.drain(replaced)
	}
	return p, nil
}

func procID(p *proc) string {
	if p == nil {
		return ""
	}
	return fmt.Sprintf("%s (pid %d)", p.rev.ID, p.pid)
}

// waitReady waits for the server's "ready" line, its exit, the timeout or ctx.
func (s *Supervisor) waitReady(ctx context.Context, p *proc, c *os.File) error {
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(c).ReadString('\n')
		line <- strings.TrimSpace(l)
	}()
	t := time.NewTimer(s.opts.ReadyTimeout)
	defer t.Stop()
	select {
	case l := <-line:
		if l == "ready" {
			return nil
		}
		// EOF: the server stopped before it was ready; wait for its status.
		select {
		case <-p.exited:
			return fmt.Errorf("its server %s", p.status)
		case <-time.After(5 * time.Second):
			return fmt.Errorf("its server closed the ready socket without saying ready (%q)", l)
		}
	case <-p.exited:
		return fmt.Errorf("its server %s", p.status)
	case <-t.C:
		return fmt.Errorf("not ready within %s", s.opts.ReadyTimeout)
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errors.New("the supervisor is closing")
	}
}

// drain sends p SIGTERM (its server drains) and, in the background, kills
// its group if it has not exited within StopGrace; once it has exited it
// leaves the state.
func (s *Supervisor) drain(p *proc) {
	p.drainOnce.Do(func() {
		s.log.Info("revision draining", "revision", p.rev.ID, "pid", p.pid)
		p.signal(syscall.SIGTERM, false)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			t := time.NewTimer(s.opts.StopGrace)
			defer t.Stop()
			select {
			case <-p.exited:
			case <-t.C:
				s.log.Warn("revision did not drain in time; killing", "revision", p.rev.ID, "pid", p.pid)
				p.signal(syscall.SIGKILL, true)
				<-p.exited
			case <-s.quit:
				return // the next agent finishes watching it
			}
			killGroup(p.pid)
			s.log.Info("revision exited", "revision", p.rev.ID, "pid", p.pid, "status", p.status)
			s.mu.Lock()
			for i, d := range s.draining {
				if d == p {
					s.draining = append(s.draining[:i], s.draining[i+1:]...)
					break
				}
			}
			s.mu.Unlock()
			_ = s.saveState()
		}()
	})
}

// watch restarts p, with backoff, if it exits while it is the serving
// revision (a crash: a drained one is no longer serving).
func (s *Supervisor) watch(p *proc) {
	defer s.wg.Done()
	select {
	case <-p.exited:
	case <-s.quit:
		return
	}
	failures := 0
	cur := p
	for {
		s.mu.Lock()
		still := s.serving == cur
		s.mu.Unlock()
		if !still || s.isClosed() {
			return
		}
		killGroup(cur.pid)
		err := withTail(fmt.Errorf("serving revision %s (pid %d) %s", cur.rev.ID, cur.pid, cur.status), s.logPath(cur.rev.ID))
		s.fail(err)
		s.log.Error("serving revision exited; restarting", "error", err)
		if time.Since(cur.since) > time.Minute {
			failures = 0
		}
		delay := min(s.opts.MinBackoff<<min(failures, 20), s.opts.MaxBackoff)
		failures++
		select {
		case <-time.After(delay):
		case <-s.quit:
			return
		}
		s.op.Lock()
		s.mu.Lock()
		still = s.serving == cur
		if still {
			s.serving = nil // launch makes the restarted one serving
		}
		s.mu.Unlock()
		if !still {
			s.op.Unlock()
			return
		}
		next, err := s.launch(context.Background(), cur.rev, nil, cur.restarts+1)
		s.op.Unlock()
		if err == nil {
			return // launch started a watcher for next
		}
		// Nothing serves; keep it recorded as the revision to restart.
		s.mu.Lock()
		if s.serving == nil {
			failed := &proc{rev: cur.rev, restarts: cur.restarts + 1, since: time.Now(), exited: make(chan struct{}), status: "failed to restart"}
			close(failed.exited)
			s.serving = failed
			cur = failed
		}
		s.mu.Unlock()
		_ = next
	}
}

// trimLoop bounds the revisions' logs.
func (s *Supervisor) trimLoop() {
	defer s.wg.Done()
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.quit:
			return
		}
		logs, _ := filepath.Glob(filepath.Join(s.opts.Dir, "revisions", "*", "server.log"))
		for _, l := range logs {
			trimLog(l, s.opts.LogMaxBytes)
		}
	}
}

func exitStatus(err error, st *os.ProcessState) string {
	if st == nil {
		return fmt.Sprintf("failed: %v", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "was killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exited with status %d", st.ExitCode())
}

// distinctGroups refuses a swap between two revisions whose configs name
// the same sandbox group: both run during the swap, and one cgroup would
// hold both revisions' workers under one limit (the old one's exit would
// also remove it under the new one). The platform names each revision's
// group apart ("<server>.live.<revision>").
func distinctGroups(old, rev Revision) error {
	a, b := sandboxGroup(old.Config), sandboxGroup(rev.Config)
	if a != "" && a == b {
		return fmt.Errorf("revision %s: its sandbox group %q is the serving revision %s's; each revision needs its own, since both run during a swap", rev.ID, b, old.ID)
	}
	return nil
}

// sandboxGroup reads the sandbox group an inference config names ("" for
// none or an unreadable config, which the server itself then reports).
func sandboxGroup(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	var c struct {
		Sandbox *struct {
			Group string `json:"group"`
		} `json:"sandbox"`
	}
	if json.Unmarshal(b, &c) != nil || c.Sandbox == nil {
		return ""
	}
	return c.Sandbox.Group
}

// killGroup kills what is left of a server's process group (workers a crash
// left behind). The group id is the server's pid (Setpgid); a pid of 0 is
// a revision that never ran, and kill(0) would be the agent's own group.
func killGroup(pid int) {
	if pid > 0 {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
