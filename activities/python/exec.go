package python

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/algocloud/algocloud/internal/sandbox"
)

// proc is a started command: sandboxed, or unconfined when no launcher was
// given (the platform's own tests and benchmarks of this package).
type proc struct {
	wait func() error
	kill func()
}

// start runs argv with extra environment env, in box when it is not nil
// (seeing only the system's files and mounts), else as a child of ours with
// our environment, in its own process group. ctx ending kills it (and what
// it started).
func start(ctx context.Context, box *sandbox.Launcher, mounts []sandbox.Mount, env []string, out io.Writer, argv ...string) (*proc, error) {
	var p *proc
	if box == nil {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p = &proc{wait: cmd.Wait, kill: func() { _ = killGroup(cmd) }}
	} else {
		cmd, err := box.Command(sandbox.Command{Argv: argv, Env: env, Mounts: append(interpreterMounts(argv[0]), mounts...),
			Stdout: out, Stderr: out})
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		p = &proc{wait: func() error {
			err := cmd.Wait()
			if why := cmd.KilledFor(); why != "" {
				return &killedError{why}
			}
			return err
		}, kill: cmd.Kill}
	}
	stop := context.AfterFunc(ctx, p.kill)
	wait := p.wait
	p.wait = func() error {
		err := wait()
		stop()
		return err
	}
	return p, nil
}

// killedError is a command the sandbox killed for a limit.
type killedError struct{ why string }

func (e *killedError) Error() string { return "killed: " + e.why }

// interpreterMounts are what an interpreter outside /usr needs visible (a
// pyenv Python, say): its installation, read-only. A venv's python is a link
// to the interpreter it was made from.
func interpreterMounts(exe string) []sandbox.Mount {
	real, err := filepath.EvalSymlinks(exe)
	if err != nil || strings.HasPrefix(real, "/usr/") {
		return nil
	}
	prefix := filepath.Dir(filepath.Dir(real)) // <prefix>/bin/python3.x
	if prefix == "/" {
		return nil
	}
	return []sandbox.Mount{{Path: prefix}}
}
