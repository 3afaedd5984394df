package revisions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stateVersion is the state file's format; a file of another version is
// refused rather than misread.
const stateVersion = 1

// procRecord is one revision process in the state file: pid and start time
// tell it from a later process that got the same pid.
type procRecord struct {
	Revision
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"`
	Since      time.Time `json:"since"`
	Restarts   int       `json:"restarts,omitempty"`
}

// state is what survives an agent restart: which revision serves, which a
// swap was starting, which drain.
type state struct {
	Version  int          `json:"version"`
	Listen   string       `json:"listen"`
	Serving  *procRecord  `json:"serving,omitempty"`
	Starting *procRecord  `json:"starting,omitempty"`
	Draining []procRecord `json:"draining,omitempty"`
}

func (s *Supervisor) statePath() string { return filepath.Join(s.opts.Dir, "state.json") }

// saveState writes the state file atomically (written aside, synced, renamed).
func (s *Supervisor) saveState() error {
	s.saveMu.Lock() // one writer of the temporary file at a time
	defer s.saveMu.Unlock()
	s.mu.Lock()
	st := state{Version: stateVersion, Listen: s.opts.Listen}
	if s.serving != nil {
		st.Serving = s.serving.record()
	}
	if s.starting != nil {
		st.Starting = s.starting.record()
	}
	for _, p := range s.draining {
		st.Draining = append(st.Draining, *p.record())
	}
	s.mu.Unlock()
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	tmp := s.statePath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("write agent state: %w", err)
	}
	_, werr := f.Write(b)
	if err := f.Sync(); werr == nil {
		werr = err
	}
	if err := f.Close(); werr == nil {
		werr = err
	}
	if werr == nil {
		werr = os.Rename(tmp, s.statePath())
	}
	if werr != nil {
		return fmt.Errorf("write agent state: %w", werr)
	}
	return nil
}

func (s *Supervisor) readState() (*state, error) {
	b, err := os.ReadFile(s.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read agent state: %w", err)
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read agent state %s: %w", s.statePath(), err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("agent state %s: version %d, this agent reads %d", s.statePath(), st.Version, stateVersion)
	}
	return &st, nil
}

// adopted makes a proc for a live process an earlier agent started.
func (s *Supervisor) adopted(r procRecord) *proc {
	p := &proc{rev: r.Revision, pid: r.PID, startTicks: r.StartTicks, since: r.Since, restarts: r.Restarts, exited: make(chan struct{})}
	watchAdopted(p, s.quit)
	return p
}

// adopt takes over what the state file says an earlier agent ran (see Open).
func (s *Supervisor) adopt(ctx context.Context) error {
	st, err := s.readState()
	if err != nil || st == nil {
		return err
	}
	if st.Listen != s.opts.Listen {
		return fmt.Errorf("agent state %s is for %s, not %s: stop that endpoint first or use another folder", s.statePath(), st.Listen, s.opts.Listen)
	}
	// A revision a swap was starting never served (it accepts only after
	// the commit that moves it to Serving): kill it; the swap is sent again.
	if r := st.Starting; r != nil && isAlive(r.PID, r.StartTicks) {
		s.log.Warn("killing the revision an interrupted swap was starting", "revision", r.ID, "pid", r.PID)
		p := s.adopted(*r)
		p.signal(syscall.SIGKILL, true)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			return fmt.Errorf("revision %s (pid %d) of an interrupted swap survived SIGKILL", r.ID, r.PID)
		}
	}
	var live []*proc
	if r := st.Serving; r != nil && isAlive(r.PID, r.StartTicks) {
		s.serving = s.adopted(*r)
		live = append(live, s.serving)
	}
	for _, r := range st.Draining {
		if isAlive(r.PID, r.StartTicks) {
			p := s.adopted(r)
			s.draining = append(s.draining, p)
			live = append(live, p)
		}
	}
	// The listening socket: taken back from a live revision (it keeps the
	// inherited descriptor open for this), else bound anew.
	for _, p := range live {
		f, err := s.takeListener(p.pid)
		if err != nil {
			s.log.Warn("could not take the listening socket back", "revision", p.rev.ID, "pid", p.pid, "error", err)
			continue
		}
		s.lnFile = f
		break
	}
	if s.serving != nil && s.lnFile == nil {
		// Without the socket it cannot swap or restart: replace it cleanly.
		s.log.Warn("the serving revision's socket is out of reach; restarting it", "revision", s.serving.rev.ID)
		s.serving.signal(syscall.SIGTERM, false)
		select {
		case <-s.serving.exited:
		case <-time.After(s.opts.StopGrace):
			s.serving.signal(syscall.SIGKILL, true)
			<-s.serving.exited
		}
	}
	for _, p := range s.draining {
		s.drain(p)
	}
	switch {
	case s.serving != nil && s.serving.alive():
		s.log.Info("adopted the serving revision", "revision", s.serving.rev.ID, "pid", s.serving.pid)
		s.wg.Add(1)
		go s.watch(s.serving)
	case st.Serving != nil:
		// It died while no agent ran: the crash watcher starts it again.
		dead := &proc{rev: st.Serving.Revision, pid: 0, since: st.Serving.Since, restarts: st.Serving.Restarts,
			exited: make(chan struct{}), status: "exited while no agent ran"}
		close(dead.exited)
		s.serving = dead
		s.wg.Add(1)
		go s.watch(dead)
	}
	_ = ctx
	return s.saveState()
}

// takeListener duplicates the listening socket a revision's server holds at
// listenFD (pidfd_getfd(2): Linux 5.6, and ptrace rights over it, which the
// agent has over the servers it started as its own user) and checks that it
// is a listening socket on this endpoint's port.
func (s *Supervisor) takeListener(pid int) (*os.File, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open: %w", err)
	}
	defer unix.Close(pidfd)
	fd, err := unix.PidfdGetfd(pidfd, listenFD, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_getfd: %w", err)
	}
	if v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN); err != nil || v != 1 {
		unix.Close(fd)
		return nil, fmt.Errorf("descriptor %d of pid %d is not a listening socket", listenFD, pid)
	}
	_, want, err := net.SplitHostPort(s.opts.Listen)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	port := -1
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		port = a.Port
	case *unix.SockaddrInet6:
		port = a.Port
	}
	if err != nil || strconv.Itoa(port) != want {
		unix.Close(fd)
		return nil, fmt.Errorf("descriptor %d of pid %d listens on port %d, not %s", listenFD, pid, port, want)
	}
	// Non-blocking, as its servers set it, so that os.File.Fd (exec) leaves
	// it so (see listener).
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return os.NewFile(uintptr(fd), "listener"), nil
}
