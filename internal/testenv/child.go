package testenv

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"time"
)

// Child is a process a test started with StartChild: a server the test
// talks to, and may kill and start again, over its lifetime.
type Child struct {
	// Cmd is the started command; tests signal its Process.
	Cmd *exec.Cmd

	done chan struct{}
	err  error
}

// Done is closed once the process has exited and been waited for.
func (c *Child) Done() <-chan struct{} { return c.done }

// Err is what waiting for the process returned (nil for a clean exit); it
// is meaningful once Done is closed.
func (c *Child) Err() error {
	<-c.done
	return c.err
}

// StartChild starts cmd and waits until it says it is ready: every line it
// writes to stdout goes, in order and from one goroutine, to onLine, and
// the first line for which onLine returns true makes StartChild return.
// Lines after that still go to onLine (their answer is ignored), so that the
// child never blocks on a full pipe. Its stderr goes to this process's
// stderr, where `go test` shows it, unless cmd.Stderr is already set.
//
// If the process exits before it is ready, StartChild returns an error with
// the exit status; if it is not ready within timeout, StartChild kills it,
// waits for it and returns an error. It returns errors instead of failing a
// test so that goroutines (a supervisor restarting a killed server) can use
// it too.
func StartChild(cmd *exec.Cmd, timeout time.Duration, onLine func(line string) (ready bool)) (*Child, error) {
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	c := &Child{Cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		isReady := false
		for sc.Scan() {
			if onLine(sc.Text()) && !isReady {
				isReady = true
				close(ready)
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	// Wait does not wait for the scanner: it returns when the process has
	// exited, even while processes the child started still hold its
	// stdout, and closes the pipe, which ends the scan.
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	select {
	case <-ready:
		return c, nil
	case <-c.done:
		select {
		case <-ready: // it said so, then exited: that is for the caller to see
			return c, nil
		default:
		}
		return nil, fmt.Errorf("%s exited before it was ready (%v)", cmd.Path, c.err)
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		<-c.done
		return nil, fmt.Errorf("%s was not ready in %v", cmd.Path, timeout)
	}
}
