package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// proc is one running (or finished) service process.
type proc struct {
	pid     int
	config  string // the config path its command line must hold (pid reuse check)
	own     bool   // our child: exited is closed by cmd.Wait; else by polling
	started time.Time
	exited  chan struct{}
	status  string // set before exited is closed
}

// alive reports whether the process still runs.
func (pr *proc) alive() bool {
	select {
	case <-pr.exited:
		return false
	default:
		return isOurs(pr.pid, pr.config)
	}
}

type spawnRequest struct {
	cmd  *exec.Cmd
	done chan error
}

// spawnLoop starts every child from one goroutine locked to its OS thread.
// Pdeathsig fires when the *thread* that forked the child exits, not the
// process (golang/go#27505), and the Go runtime may retire threads; this
// thread lives until Close.
func (p *Provider) spawnLoop() {
	runtime.LockOSThread()
	for req := range p.spawnCh {
		req.done <- req.cmd.Start()
	}
	// Returning while locked ends the thread: children still attached to it
	// get their Pdeathsig, which is what Close wants anyway.
}

var errClosed = errors.New("local provider is closed")

// spawn starts the service's process as our child.
func (p *Provider) spawn(s *service) (*proc, error) {
	args := append(append([]string(nil), p.opts.Command[1:]...), "--config", s.spec.ConfigFile)
	if len(s.spec.Args) > 0 {
		args = append(append([]string(nil), p.opts.Command[1:]...), s.spec.Args...)
	}
	cmd := exec.Command(p.opts.Command[0], args...)
	cmd.Dir = p.serverDir(s.serverID)
	cmd.Env = p.env(cmd.Dir)
	cmd.Stdout = s.log // one writer for both: exec copies through one pipe
	cmd.Stderr = s.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 2 * time.Second // a grandchild holding the pipe must not block Wait

	p.spawnMu.RLock()
	if p.isClosed() {
		p.spawnMu.RUnlock()
		return nil, errClosed
	}
	req := spawnRequest{cmd: cmd, done: make(chan error, 1)}
	p.spawnCh <- req
	err := <-req.done
	p.spawnMu.RUnlock()
	if err != nil {
		s.log.Printf("start failed: %v", err)
		return nil, fmt.Errorf("start %s: %w", p.opts.Command[0], err)
	}

	pr := &proc{pid: cmd.Process.Pid, config: s.spec.ConfigFile, own: true, started: time.Now(), exited: make(chan struct{})}
	if err := p.applyLimits(pr.pid); err != nil {
		p.log.Warn("could not apply resource limits", "server", s.serverID, "service", s.name, "pid", pr.pid, "err", err)
	}
	s.log.Printf("started pid %d: %s", pr.pid, strings.Join(cmd.Args, " "))
	go func() {
		err := cmd.Wait()
		pr.status = exitStatus(err, cmd.ProcessState)
		s.log.Printf("pid %d %s", pr.pid, pr.status)
		close(pr.exited)
	}()
	return pr, nil
}

// exitStatus says how the process ended, once it has; "" while it runs.
func (pr *proc) exitStatus() string {
	select {
	case <-pr.exited:
		return pr.status
	default:
		if pr.alive() {
			return ""
		}
		return "exited"
	}
}

// watch follows a process that is not our child (started by an earlier
// Provider or another worker) by polling until it is gone.
func watch(pid int, config string) *proc {
	pr := &proc{pid: pid, config: config, started: time.Now(), exited: make(chan struct{})}
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for range t.C {
			if !isOurs(pid, config) {
				pr.status = "exited (not our child: status unknown)"
				close(pr.exited)
				return
			}
		}
	}()
	return pr
}

func exitStatus(err error, st *os.ProcessState) string {
	if st == nil {
		return fmt.Sprintf("failed: %v", err)
	}
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return "exited with status " + strconv.Itoa(st.ExitCode())
}

// env is the services' environment.
func (p *Provider) env(home string) []string {
	if p.opts.Env != nil {
		return append([]string(nil), p.opts.Env...)
	}
	return []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + home}
}

// applyLimits sets the child's rlimits with prlimit(2) right after it starts:
// Go's exec cannot set them between fork and exec. The window is the time the
// child takes to exec and start, before it can open files or fork workers, so
// the limits hold for all it does. RLIMIT_CORE 0 keeps a crashing model from
// dumping gigabytes of memory (and the bearer-token hash) to disk.
func (p *Provider) applyLimits(pid int) error {
	nofile := p.opts.Limits.NoFile
	if nofile == 0 {
		nofile = 4096
	}
	var errs []error
	if err := unix.Prlimit(pid, unix.RLIMIT_CORE, &unix.Rlimit{Cur: 0, Max: 0}, nil); err != nil {
		errs = append(errs, fmt.Errorf("RLIMIT_CORE: %w", err))
	}
	if err := unix.Prlimit(pid, unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: nofile, Max: nofile}, nil); err != nil {
		errs = append(errs, fmt.Errorf("RLIMIT_NOFILE %d: %w", nofile, err))
	}
	if as := p.opts.Limits.AddressSpace; as > 0 {
		if err := unix.Prlimit(pid, unix.RLIMIT_AS, &unix.Rlimit{Cur: as, Max: as}, nil); err != nil {
			errs = append(errs, fmt.Errorf("RLIMIT_AS %d: %w", as, err))
		}
	}
	return errors.Join(errs...)
}

// isOurs reports whether pid is a live (not zombie) process whose command
// line holds config: a pid file may name a pid the kernel has since reused.
func isOurs(pid int, config string) bool {
	if pid <= 0 || config == "" {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil {
		return false
	}
	for _, arg := range bytes.Split(cmdline, []byte{0}) {
		if string(arg) == config {
			return true
		}
	}
	return false
}

// terminate stops pr's process group: SIGTERM, then SIGKILL after StopGrace
// (at once when ctx ends, returning ctx's error). Members of the group left
// behind by the leader (workers) are killed too. A process already gone is
// left alone: its pid, and so its group id, may belong to someone else now.
func (p *Provider) terminate(ctx context.Context, pr *proc) error {
	if pr == nil || !pr.alive() {
		return nil
	}
	signalGroup(pr.pid, syscall.SIGTERM)
	timer := time.NewTimer(p.opts.StopGrace)
	defer timer.Stop()
	select {
	case <-waitGone(pr):
	case <-timer.C:
		p.log.Warn("service ignored SIGTERM; killing", "pid", pr.pid, "grace", p.opts.StopGrace)
	case <-ctx.Done():
		signalGroup(pr.pid, syscall.SIGKILL)
		return ctx.Err()
	}
	// The leader, if still there, and stragglers. The group id stays reserved
	// while any member lives, and the leader was alive a moment ago.
	signalGroup(pr.pid, syscall.SIGKILL)
	kill := time.NewTimer(10 * time.Second)
	defer kill.Stop()
	select {
	case <-waitGone(pr):
		return nil
	case <-kill.C:
		return fmt.Errorf("pid %d survived SIGKILL", pr.pid)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitGone is closed once pr's process no longer runs: for our child, once
// Wait has reaped it and its exit is logged; for another's, once it is gone
// or a zombie.
func waitGone(pr *proc) <-chan struct{} {
	if pr.own {
		return pr.exited
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for pr.alive() {
			select {
			case <-pr.exited:
				return
			case <-t.C:
			}
		}
	}()
	return ch
}

// signalGroup signals the process group led by pid (services run with
// Setpgid, so their group id is their pid), or pid alone if that fails.
func signalGroup(pid int, sig syscall.Signal) {
	if err := syscall.Kill(-pid, sig); err != nil {
		_ = syscall.Kill(pid, sig)
	}
}

// logWriter appends a service's output to its log file, rotating it to
// <file>.1 past max bytes. It never fails a write: a full log must not block
// the service (os/exec stops draining the pipe on a write error).
type logWriter struct {
	mu   sync.Mutex
	path string
	max  int64
	f    *os.File
	size int64
}

// Write appends b, rotating first when b would take the file past max.
func (w *logWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		w.open()
	}
	if w.f != nil && w.size > 0 && w.size+int64(len(b)) > w.max {
		w.f.Close()
		w.f = nil
		_ = os.Rename(w.path, w.path+".1")
		w.open()
	}
	if w.f != nil {
		n, _ := w.f.Write(b)
		w.size += int64(n)
	}
	return len(b), nil
}

// open opens the log for appending; the caller holds w.mu.
func (w *logWriter) open() {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return
	}
	w.f, w.size = f, 0
	if st, err := f.Stat(); err == nil {
		w.size = st.Size()
	}
}

// Printf writes a platform line ("[algocloud] ...") into the log.
func (w *logWriter) Printf(format string, args ...any) {
	_, _ = fmt.Fprintf(w, "[algocloud %s] %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// Close closes the file; a later write opens it again.
func (w *logWriter) Close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
