package python

import (
	"github.com/algocloud/algocloud/internal/sandbox"

	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/algocloud/algocloud/spec"
)

// RequirementsFile is the name of the author's requirements file in the code.
const RequirementsFile = "aai_pip-requirements.txt"

// maxOutput bounds the pip output Install keeps (the tail); maxLine bounds one
// line handed to progress.
const (
	maxOutput = 64 << 10
	maxLine   = 4 << 10
)

// InstallOptions tune where pip looks for packages. They come from the
// platform's configuration, never from the author.
type InstallOptions struct {
	// NoIndex stops pip from contacting any package index.
	NoIndex bool
	// FindLinks are folders or URLs of wheels pip may install from.
	FindLinks []string
	// IndexURL replaces PyPI (a mirror); empty keeps pip's default.
	IndexURL string
	// Timeout bounds the whole install; zero means only ctx bounds it.
	Timeout time.Duration
	// Box is the sandbox pip (and every build script of the packages it
	// fetches) runs in; nil runs pip unconfined (this package's own tests).
	Box *sandbox.Launcher `json:"-"`
}

// InstallError is a pip install that ran and failed.
type InstallError struct {
	// Output is pip's combined output (its tail when long).
	Output string
	// ExitCode is pip's exit status.
	ExitCode int
}

// Error carries pip's own explanation: its "ERROR:" lines, or else the last
// lines of output. When pip could not reach its package index, that real
// cause comes first: pip only warns about it and then says "No matching
// distribution found", which sends authors hunting for a misspelt name.
func (e *InstallError) Error() string {
	var errs []string
	for _, l := range strings.Split(e.Output, "\n") {
		if l = strings.TrimSpace(l); strings.HasPrefix(l, "ERROR:") {
			errs = append(errs, l)
		}
	}
	msg := strings.Join(errs, "\n")
	if msg == "" {
		msg = lastLines([]byte(e.Output), 3)
	}
	if cause := indexProblem(e.Output); cause != "" {
		msg = cause + "\n" + msg
	}
	return fmt.Sprintf("pip install failed (exit status %d): %s", e.ExitCode, msg)
}

// errnoText finds the OS's words in a urllib3 connection error:
// "[Errno 111] Connection refused", "[Errno -3] Temporary failure in name resolution".
var errnoText = regexp.MustCompile(`\[Errno -?\d+\] ([^'"()\]\[]+)`)

// indexProblem says, from pip's output, that the package index could not be
// used and why, or "" when nothing shows that. pip has no machine-readable
// report of it, so this reads its warnings (the edge of an outside system:
// the texts of pip 20 to 24). The index is the one "Looking in indexes:"
// names.
func indexProblem(output string) string {
	index := "the package index"
	var reason string
	for _, l := range strings.Split(output, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "Looking in indexes:"):
			index = "the package index " + strings.TrimSpace(strings.TrimPrefix(l, "Looking in indexes:"))
		case reason != "":
		case strings.Contains(l, "Retrying (Retry(") || strings.HasPrefix(l, "WARNING: Could not fetch URL") ||
			strings.HasPrefix(l, "Could not fetch URL"):
			switch m := errnoText.FindStringSubmatch(l); {
			case m != nil:
				reason = strings.TrimSpace(m[1])
			case strings.Contains(l, "SSLError") || strings.Contains(l, "certificate"):
				reason = "its TLS certificate was refused"
			case strings.Contains(l, "ProxyError"):
				reason = "the proxy failed"
			case strings.Contains(l, "Timeout") || strings.Contains(l, "timed out"):
				reason = "it timed out"
			default:
				reason = "the connection failed"
			}
		case strings.Contains(l, "is not a trusted or secure host and is being ignored"):
			reason = "it is plain HTTP on an untrusted host, so pip ignored it"
		}
	}
	if reason == "" {
		return ""
	}
	return fmt.Sprintf("%s could not be reached (%s), so pip found no packages there; "+
		"check the platform's package index settings and network before the requirement names", index, reason)
}

// Install pip-installs reqs (each checked with spec.ValidateRequirement, so
// no options or URLs get through) into the venv whose interpreter is
// venvPython. Each output line goes to progress (when not nil) as it arrives,
// from one goroutine, in order, before Install returns; the returned output is
// the tail of it all.
//
// No requirements is nothing to do. Installs into one venv are serialised
// (see EnsureVenv). A failed pip is *InstallError. When ctx
// ends or opts.Timeout passes, pip and its children are killed and the error
// wraps ctx's error (context.DeadlineExceeded on timeout).
func Install(ctx context.Context, venvPython string, reqs []string, opts InstallOptions, progress func(line string)) (output string, err error) {
	if len(reqs) == 0 {
		return "", nil
	}
	for _, r := range reqs {
		if err := spec.ValidateRequirement(r); err != nil {
			return "", fmt.Errorf("pip install: %w", err)
		}
	}
	for _, v := range append([]string{opts.IndexURL}, opts.FindLinks...) {
		if strings.HasPrefix(v, "-") {
			return "", fmt.Errorf("pip install: option value %q starts with '-'", v)
		}
	}
	if opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Timeout)
		defer cancel()
	}

	// venvPython is <venv>/bin/python: serialise with EnsureVenv and other
	// installs into the same venv (two pips at once corrupt it).
	unlock, err := lockVenv(ctx, filepath.Dir(filepath.Dir(venvPython)))
	if err != nil {
		return "", fmt.Errorf("pip install: %w", err)
	}
	defer unlock()

	// The requirements go to a file beside the venv, in the server's folder:
	// one name per venv (the lock above serialises its users), so a crash
	// leaves at most that file, where the server's removal takes it, instead
	// of one more in the system temp folder.
	venv := filepath.Dir(filepath.Dir(venvPython))
	reqFile := filepath.Join(filepath.Dir(venv), "."+filepath.Base(venv)+".requirements.txt")
	if err := os.WriteFile(reqFile, []byte(strings.Join(reqs, "\n")+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("pip install: write requirements: %w", err)
	}
	defer os.Remove(reqFile)

	args := []string{"-m", "pip", "install", "--disable-pip-version-check", "--no-input",
		"--progress-bar", "off", "--no-color", "-r", reqFile}
	if opts.NoIndex {
		args = append(args, "--no-index")
	}
	for _, l := range opts.FindLinks {
		args = append(args, "--find-links", l)
	}
	if opts.IndexURL != "" {
		args = append(args, "--index-url", opts.IndexURL)
	}

	mounts := []sandbox.Mount{{Path: venv, Writable: true}, {Path: reqFile}}
	for _, l := range opts.FindLinks {
		if filepath.IsAbs(l) { // a local folder of wheels; URLs go over the network
			if _, err := os.Stat(l); err == nil {
				mounts = append(mounts, sandbox.Mount{Path: l})
			}
		}
	}
	tail, err := runStreaming(ctx, opts.Box, mounts, append([]string{venvPython}, args...), progress)
	output = tail.String()
	if ctx.Err() != nil {
		return output, fmt.Errorf("pip install: %w", ctx.Err())
	}
	var killed *killedError
	if errors.As(err, &killed) {
		return output, &InstallError{Output: output + "\n" + killed.Error(), ExitCode: -1}
	}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return output, &InstallError{Output: output, ExitCode: exitErr.ExitCode()}
	}
	if err != nil {
		return output, fmt.Errorf("pip install: run %s: %w", venvPython, err)
	}
	return output, nil
}

// runStreaming runs argv (in box when not nil, with mounts) feeding stdout
// and stderr line by line to progress and keeping the tail.
func runStreaming(ctx context.Context, box *sandbox.Launcher, mounts []sandbox.Mount, argv []string, progress func(string)) (*tailBuffer, error) {
	tail := &tailBuffer{max: maxOutput}
	pr, pw, err := os.Pipe()
	if err != nil {
		return tail, err
	}
	defer pr.Close()
	p, err := start(ctx, box, mounts, []string{"PYTHONUNBUFFERED=1", "PIP_NO_INPUT=1", "PIP_DISABLE_PIP_VERSION_CHECK=1"}, pw, argv...)
	pw.Close() // the child holds the only write end now
	if err != nil {
		return tail, err
	}

	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 2*maxLine), 2*maxLine)
		sc.Split(splitLines)
		for sc.Scan() {
			line := sc.Text()
			tail.WriteLine(line)
			if progress != nil {
				progress(line)
			}
		}
		_, _ = io.Copy(io.Discard, pr) // keep draining if the scanner gave up
	}()
	// A grandchild that kept the pipe open must not hang us after a kill.
	select {
	case <-done:
	case <-ctx.Done():
		p.kill()
		pr.Close()
		<-done
	}
	return tail, p.wait()
}

// splitLines splits on "\n" or "\r" (progress redraws) and cuts lines longer
// than maxLine instead of failing.
func splitLines(data []byte, atEOF bool) (advance int, token []byte, err error) {
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		return i + 1, data[:i], nil
	}
	if len(data) >= maxLine {
		return maxLine, data[:maxLine], nil
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// tailBuffer keeps the last max bytes of lines written to it.
type tailBuffer struct {
	max     int
	lines   []string
	size    int
	dropped bool
}

// WriteLine appends one line, dropping the oldest past max bytes.
func (b *tailBuffer) WriteLine(l string) {
	b.lines = append(b.lines, l)
	b.size += len(l) + 1
	for b.size > b.max && len(b.lines) > 1 {
		b.size -= len(b.lines[0]) + 1
		b.lines = b.lines[1:]
		b.dropped = true
	}
}

// String returns the kept lines, marked when earlier ones were dropped.
func (b *tailBuffer) String() string {
	s := strings.Join(b.lines, "\n")
	if b.dropped {
		s = "[earlier output dropped]\n" + s
	}
	return s
}

// WriteRequirementsFile writes reqs, one a line, to path atomically. Each is
// checked with spec.ValidateRequirement first; no requirements is an empty file.
func WriteRequirementsFile(path string, reqs []string) error {
	var b strings.Builder
	for i, r := range reqs {
		r = strings.TrimSpace(r)
		if err := spec.ValidateRequirement(r); err != nil {
			return fmt.Errorf("write %s: requirement %d: %w", filepath.Base(path), i+1, err)
		}
		b.WriteString(r + "\n")
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	_, err = f.WriteString(b.String())
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// maxRequirementsFile bounds the requirements file ReadRequirementsFile reads.
const maxRequirementsFile = 1 << 20

// ReadRequirementsFile reads a requirements file (aai_pip-requirements.txt):
// one requirement a line, blank lines and # comments ignored, each line
// checked by spec.ParseRequirements (a *spec.ValidationError names the bad
// lines). A missing file is an error wrapping fs.ErrNotExist.
func ReadRequirementsFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read requirements: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRequirementsFile+1))
	if err != nil {
		return nil, fmt.Errorf("read requirements %s: %w", path, err)
	}
	if len(b) > maxRequirementsFile {
		return nil, fmt.Errorf("read requirements %s: larger than %d bytes", path, maxRequirementsFile)
	}
	reqs, err := spec.ParseRequirements(string(b))
	if err != nil {
		return nil, fmt.Errorf("read requirements %s: %w", filepath.Base(path), err)
	}
	return reqs, nil
}
