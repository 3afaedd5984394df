// Package python prepares an algorithm's Python environment: a virtual
// environment that sees the system's numpy and Pillow (Debian packages), and
// pip installs of the author's requirements into it.
package python

import (
	"github.com/algocloud/algocloud/internal/sandbox"
	"io"

	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// readyMarker is written into a venv once it was created and checked, so a
// folder left by a crash mid-creation is never mistaken for a venv.
const readyMarker = ".algocloud-ready"

// EnsureVenv makes dir a virtual environment of python created with
// --system-site-packages (so Debian's numpy and Pillow stay importable) and
// returns the absolute path of its interpreter.
//
// It is idempotent: a working venv at dir is reused as it is (installed
// packages kept). A folder that is not one (half made by a crash, python
// removed, pip missing) is deleted and created again. Calls for one dir (and
// Install into it) are serialised by a lock file next to dir, also across
// processes: a retried activity may overlap the attempt it replaces.
//
// The interpreter runs unconfined: this is for the platform's own tests and
// benchmarks. Where the venv may hold author-installed packages (whose .pth
// files run at every interpreter start), use EnsureVenvIn with a sandbox.
func EnsureVenv(ctx context.Context, python, dir string) (venvPython string, err error) {
	return EnsureVenvIn(ctx, nil, python, dir)
}

// EnsureVenvIn is EnsureVenv with every interpreter run (making the venv,
// checking it) in box, which sees dir writable and nothing else of the
// host's but the system's files.
func EnsureVenvIn(ctx context.Context, box *sandbox.Launcher, python, dir string) (venvPython string, err error) {
	if python == "" {
		return "", errors.New("ensure venv: no python interpreter given")
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("ensure venv: %w", err)
	}
	venvPython = filepath.Join(dir, "bin", "python")
	unlock, err := lockVenv(ctx, dir)
	if err != nil {
		return "", fmt.Errorf("ensure venv: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, readyMarker)); err == nil {
		if checkVenv(ctx, box, venvPython, dir) == nil {
			return venvPython, nil
		}
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("ensure venv: %w", ctx.Err())
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("ensure venv: remove broken venv %s: %w", dir, err)
	}
	// The folder exists before the venv: the sandbox mounts it writable.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("ensure venv: %w", err)
	}
	// --without-pip: ensurepip copies a whole pip into every venv (about 5 s,
	// most of a wizard's time); Debian's pip, visible through the system site
	// packages, installs into the venv just as well (it sees sys.prefix).
	if out, err := run(ctx, box, []sandbox.Mount{{Path: dir, Writable: true}}, python, "-m", "venv", "--without-pip", "--system-site-packages", dir); err != nil {
		return "", fmt.Errorf("ensure venv: %s -m venv %s: %w: %s", python, dir, err, lastLines(out, 5))
	}
	if err := checkVenv(ctx, box, venvPython, dir); err != nil {
		return "", fmt.Errorf("ensure venv: new venv %s does not work: %w", dir, err)
	}
	if err := os.WriteFile(filepath.Join(dir, readyMarker), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("ensure venv: %w", err)
	}
	return venvPython, nil
}

// checkVenv runs the venv's interpreter and checks that it lives in dir, has
// pip and sees the system site packages.
func checkVenv(ctx context.Context, box *sandbox.Launcher, venvPython, dir string) error {
	const probe = "import sys, pip; print(sys.prefix)"
	out, err := run(ctx, box, []sandbox.Mount{{Path: dir}}, venvPython, "-c", probe)
	if err != nil {
		return fmt.Errorf("%w: %s", err, lastLines(out, 5))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) == 0 {
		return errors.New("no output from the venv's python")
	}
	prefix, err := filepath.EvalSymlinks(strings.TrimSpace(lines[0]))
	if err != nil {
		return fmt.Errorf("venv prefix: %w", err)
	}
	want, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("venv folder: %w", err)
	}
	if prefix != want {
		return fmt.Errorf("interpreter's prefix is %s, not %s", prefix, want)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "pyvenv.cfg"))
	if err != nil {
		return fmt.Errorf("read pyvenv.cfg: %w", err)
	}
	if !bytes.Contains(bytes.ReplaceAll(cfg, []byte(" "), nil), []byte("include-system-site-packages=true")) {
		return errors.New("venv does not include the system site packages")
	}
	return nil
}

// lockVenv takes an exclusive flock on a file next to the venv folder,
// polling so that ctx can end the wait.
func lockVenv(ctx context.Context, dir string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open venv lock: %w", err)
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock venv %s: %w", dir, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for venv %s: %w", dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// run runs a short command (in box when not nil, seeing mounts), killed
// whole when ctx ends, and returns its combined output.
func run(ctx context.Context, box *sandbox.Launcher, mounts []sandbox.Mount, argv ...string) ([]byte, error) {
	var out bytes.Buffer
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	p, err := start(ctx, box, mounts, nil, pw, argv...)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(&out, pr); close(copied) }()
	err = p.wait()
	select { // a grandchild holding the pipe must not hang us
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	pr.Close()
	if ctx.Err() != nil {
		return out.Bytes(), ctx.Err()
	}
	return out.Bytes(), err
}

// killGroup SIGKILLs the command's whole process group (pip runs build
// backends and compilers as children).
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil {
		return cmd.Process.Kill()
	}
	return nil
}

// lastLines returns up to n last non-empty lines of out.
func lastLines(out []byte, n int) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, " | ")
}
