// Package boot starts the servers the benchmark programs measure (the
// algocloud-infer binary, and the baselines beside it) as child processes
// on loopback, and stops them: bench/platformbench boots algocloud-infer
// directly on a live deployment's config (the platform-less baseline),
// bench/inferbench boots it, and a Cog-style Python server, under load.
// Waiting for readiness stays with the callers, since what they time
// differs (a 5 ms /readyz poll, or inferapi.WaitReady as the platform does).
package boot

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// FreePort asks the kernel for a loopback port nobody uses. The port is
// free when FreePort returns; the caller's server binds it soon after.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// NewToken returns an endpoint token of n random bytes in hex and the hex
// SHA-256 of it, which an inferapi.Config holds as TokenSHA256.
func NewToken(n int) (token, sum string, err error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("endpoint token: %w", err)
	}
	token = hex.EncodeToString(b)
	s := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(s[:]), nil
}

// Options says what to start and how.
type Options struct {
	// Command is the program and its arguments.
	Command []string
	// Dir is the working folder; "" is this process's.
	Dir string
	// Env is the environment; nil is this process's.
	Env []string
	// Stdout and Stderr receive the process's output; nil discards it.
	Stdout, Stderr io.Writer
	// Group starts the process in its own process group, which Stop
	// signals as a whole (a server and its Python workers), and has the
	// kernel kill the process if this one dies first.
	Group bool
}

// Process is a started server.
type Process struct {
	cmd   *exec.Cmd
	group bool
	done  chan struct{}
	err   error // cmd.Wait's, once done is closed

	stopOnce sync.Once
	stopTook time.Duration
}

// Start starts o.Command and returns at once; a goroutine waits for it, so
// Done reports its exit.
func Start(o Options) (*Process, error) {
	if len(o.Command) == 0 {
		return nil, errors.New("start: no command")
	}
	cmd := exec.Command(o.Command[0], o.Command[1:]...)
	cmd.Dir, cmd.Env = o.Dir, o.Env
	cmd.Stdout, cmd.Stderr = o.Stdout, o.Stderr
	if o.Group {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Command[0], err)
	}
	p := &Process{cmd: cmd, group: o.Group, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's ID (its group's, with Options.Group).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (exec.Cmd.Wait's error); nil before Done.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

// Stop sends SIGTERM (to the group, with Options.Group), waits up to grace
// for the exit, then sends SIGKILL and waits for it. It returns how long the
// first call took; later calls return the same at once.
func (p *Process) Stop(grace time.Duration) time.Duration {
	p.stopOnce.Do(func() {
		t := time.Now()
		select {
		case <-p.done:
			return // already gone: nothing to stop
		default:
		}
		p.signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		p.stopTook = time.Since(t)
	})
	return p.stopTook
}

func (p *Process) signal(sig syscall.Signal) {
	if p.group {
		_ = syscall.Kill(-p.cmd.Process.Pid, sig)
		return
	}
	_ = p.cmd.Process.Signal(sig)
}
