package revisions

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one revision's inference server process: our child, or one an
// earlier agent started and this one adopted.
type proc struct {
	rev        Revision
	pid        int
	startTicks uint64 // /proc/<pid>/stat starttime: tells the pid from a reused one
	since      time.Time
	restarts   int
	own        bool
	exited     chan struct{}
	status     string // how it ended; set before exited is closed
	drainOnce  sync.Once
}

// record is what the state file keeps of a proc.
func (p *proc) record() *procRecord {
	return &procRecord{Revision: p.rev, PID: p.pid, StartTicks: p.startTicks, Since: p.since, Restarts: p.restarts}
}

// startTicks reads the start time (clock ticks since boot) of a live, not
// zombie, process; ok is false when there is none.
func startTicks(pid int) (uint64, bool) {
	if pid <= 0 {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state (field 3); starttime is field 22.
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return 0, false
	}
	v, err := strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}

// isAlive reports whether the process a record names still runs (the same
// process: pid and start time both match).
func isAlive(pid int, ticks uint64) bool {
	t, ok := startTicks(pid)
	return ok && t == ticks
}

// watchAdopted follows a process that is not our child by polling /proc,
// until it exits or quit is closed (the supervisor closed).
func watchAdopted(p *proc, quit <-chan struct{}) {
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-quit:
				return
			}
			if !isAlive(p.pid, p.startTicks) {
				p.status = "exited (adopted: status unknown)"
				close(p.exited)
				return
			}
		}
	}()
}

// alive reports whether p still runs.
func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the server process alone (its workers are stopped by
// the server's own drain), or, with group, to its whole process group.
func (p *proc) signal(sig syscall.Signal, group bool) {
	if p.pid <= 0 || !p.alive() {
		return // never ran, or its pid may be someone else's now
	}
	if group {
		if err := syscall.Kill(-p.pid, sig); err == nil {
			return
		}
	}
	_ = syscall.Kill(p.pid, sig)
}

// logFile is a revision's log: the server writes it directly (O_APPEND), so
// it keeps logging while no agent runs; the agent trims it (trimLog).
func openLog(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

// trimLog bounds a log the server appends to: past max bytes, its content
// moves to <path>.1 (replacing the older one) and the file is truncated in
// place (the writer's O_APPEND continues at the new end). A few lines
// written between the copy and the truncation are lost; the bound holds.
func trimLog(path string, max int64) {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		return
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if err := os.WriteFile(path+".1", b, 0o600); err != nil {
		return
	}
	_ = os.Truncate(path, 0)
}

// logTail is the last lines (at most 4 KiB) of a revision's log, for errors.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const max = 4096
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max64(0, st.Size()-max)
	b := make([]byte, st.Size()-off)
	n, _ := f.ReadAt(b, off)
	b = b[:n]
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return strings.TrimSpace(string(b))
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// withTail adds a log's tail to err.
func withTail(err error, path string) error {
	if t := logTail(path); t != "" {
		return fmt.Errorf("%w\n--- the last lines of its log (%s) ---\n%s", err, path, t)
	}
	return err
}
