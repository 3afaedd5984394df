package inference

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/internal/sandbox"
)

// workerLostError is a call whose worker died or broke the protocol: its slot
// replaces the worker instead of reusing it.
type workerLostError struct{ msg string }

func (e *workerLostError) Error() string { return e.msg }

// workerSpec is how to start one Python worker.
type workerSpec struct {
	idx    int
	python string
	runner string // path of aai_runner.py
	dir    string // the algorithm's folder, the worker's cwd
	log    *slog.Logger
	// box runs the worker: sandboxed (internal/sandbox), or unconfined
	// where the operator chose --sandbox=none.
	box *sandbox.Launcher
}

// mounts are what a worker sees of the host besides the system's files:
// the code, the venv and the runner, all read-only. Not the server's folder
// (its TLS key and token hash), not the data folder, not other servers.
func (s workerSpec) mounts() []sandbox.Mount {
	m := []sandbox.Mount{{Path: s.dir}, {Path: s.runner}}
	if venv := venvOf(s.python); venv != "" {
		m = append(m, sandbox.Mount{Path: venv})
	}
	return m
}

// venvOf is the venv folder whose interpreter python is, or "" when python
// is not in a venv (the system's, under /usr, which the sandbox sees anyway).
func venvOf(python string) string {
	dir := filepath.Dir(filepath.Dir(python))
	if _, err := os.Stat(filepath.Join(dir, "pyvenv.cfg")); err == nil {
		return dir
	}
	return ""
}

// worker is one Python process serving one batch at a time. Only its slot
// calls roundTripBatch; kill and close may be called from anywhere.
type worker struct {
	spec    workerSpec
	cmd     *sandbox.Cmd
	req     *os.File      // write end of the request pipe (the worker's fd 3)
	rep     *bufio.Reader // read end of the reply pipe (the worker's fd 4)
	repFile *os.File
	exited  chan struct{} // closed once the process is reaped
	outDone chan struct{} // closed once stdout and stderr reached EOF
	tail    *outputTail
	nextID  uint64
	// predictBatch: the class defines predict_batch, so batches may hold
	// several calls (set once the worker is ready).
	predictBatch bool
	oomAtStart   uint64 // the sandbox's OOM kills before it started

	mu     sync.Mutex
	reaped bool
	status string // "exit status 1", "signal: killed"
}

// startWorker starts a worker and waits until it has built the algorithm's
// class. An __init__ that raises, or a worker that exits first, is an
// *APIError with code init_failed. ctx bounds the start-up.
func startWorker(ctx context.Context, s workerSpec) (*worker, error) {
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d: request pipe: %w", s.idx, err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		closeAll(reqR, reqW)
		return nil, fmt.Errorf("worker %d: reply pipe: %w", s.idx, err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		closeAll(reqR, reqW, repR, repW)
		return nil, fmt.Errorf("worker %d: output pipe: %w", s.idx, err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		closeAll(reqR, reqW, repR, repW, outR, outW)
		return nil, fmt.Errorf("worker %d: output pipe: %w", s.idx, err)
	}
	// Bigger pipes move a tensor in fewer wake-ups (best effort; see BenchmarkTransfer).
	if pipeSize > 0 {
		setPipeSize(reqW, pipeSize)
		setPipeSize(repR, pipeSize)
	}
	oomAtStart := s.box.OOMKills()
	cmd, err := s.box.Command(sandbox.Command{
		Argv: []string{s.python, "-u", s.runner},
		Dir:  s.dir,
		// The code folder is read-only in the sandbox: no .pyc files.
		Env:        []string{"PYTHONUNBUFFERED=1", "PYTHONDONTWRITEBYTECODE=1"},
		Mounts:     s.mounts(),
		ExtraFiles: []*os.File{reqR, repW}, // fd 3, fd 4
		Stdout:     outW, Stderr: errW,     // *os.File: Wait never waits on a copy
	})
	if err == nil {
		err = cmd.Start()
	}
	closeAll(reqR, repW, outW, errW) // the child holds its own copies
	if err != nil {
		closeAll(reqW, repR, outR, errR)
		return nil, &APIError{Status: http.StatusServiceUnavailable, Code: CodeInitFailed,
			Message: fmt.Sprintf("start Python %s: %v", s.python, err)}
	}
	w := &worker{spec: s, cmd: cmd, oomAtStart: oomAtStart, req: reqW, repFile: repR, rep: bufio.NewReaderSize(repR, 1<<16),
		exited: make(chan struct{}), outDone: make(chan struct{}), tail: &outputTail{}}
	s.log.Info("worker started", "worker", s.idx, "pid", cmd.Process.Pid)
	var outputs sync.WaitGroup
	outputs.Add(2)
	go func() { defer outputs.Done(); w.logOutput(outR, "stdout") }()
	go func() { defer outputs.Done(); w.logOutput(errR, "stderr") }()
	go func() { outputs.Wait(); close(w.outDone) }()
	go w.wait()
	if err := w.awaitReady(ctx); err != nil {
		w.close(0)
		return nil, err
	}
	return w, nil
}

func (w *worker) awaitReady(ctx context.Context) error {
	type ready struct {
		h       frameHeader
		payload []byte
		err     error
	}
	ch := make(chan ready, 1)
	go func() {
		h, p, err := readFrame(w.rep)
		ch <- ready{h, p, err}
	}()
	var r ready
	select {
	case r = <-ch:
	case <-ctx.Done():
		w.kill()
		<-ch
		return fmt.Errorf("worker %d: start-up: %w", w.spec.idx, ctx.Err())
	}
	switch {
	case r.err != nil:
		status := w.exitStatus(2 * time.Second)
		msg := fmt.Sprintf("the worker exited while loading aai_main.py (%s)", status)
		if w.spec.box.OOMKills() > w.oomAtStart {
			msg = fmt.Sprintf("loading aai_main.py (its imports or __init__) used more than %s; the worker was killed", w.spec.box.Config().Limits.Describe())
		}
		select { // its last words are still in the pipe
		case <-w.outDone:
		case <-time.After(time.Second):
		}
		if t := w.tail.String(); t != "" {
			msg += "; its last output:\n" + t
		}
		return &APIError{Status: http.StatusServiceUnavailable, Code: CodeInitFailed, Message: msg}
	case r.h.Op == opError:
		e := decodePythonError(r.payload)
		e.Status, e.Code = http.StatusServiceUnavailable, CodeInitFailed
		return e
	case r.h.Op != opReady:
		return fmt.Errorf("worker %d: expected a ready frame, got op %q", w.spec.idx, r.h.Op)
	}
	w.predictBatch = r.h.PredictBatch
	w.spec.log.Info("worker ready", "worker", w.spec.idx, "class", r.h.Class, "predict_batch", r.h.PredictBatch)
	return nil
}

// roundTripBatch sends calls as one batch and hands each reply to deliver, in
// order, as it arrives: algorithm errors as *APIError. It returns a
// *workerLostError when the worker died or broke the protocol; the calls not
// delivered by then have no answer. A batch is consecutive request frames;
// with asBatch the first carries "batch": len(calls), which makes the runner
// call predict_batch (even for one call) after reading them all; without,
// calls is a single call for predict.
func (w *worker) roundTripBatch(calls []call, asBatch bool, deliver func(i int, v Value, err error)) error {
	first := w.nextID + 1
	for i, c := range calls {
		w.nextID++
		h := frameHeader{ID: w.nextID, Op: c.Op, Kind: c.In.Kind, DType: c.In.DType, Shape: c.In.Shape, Want: c.Want,
			Name: c.In.Name, ContentType: c.In.ContentType, Format: c.In.Format, CaptureLogs: c.Logs}
		if h.Kind == "" {
			h.Kind = KindNone
		}
		if i == 0 && asBatch {
			h.Batch = len(calls)
		}
		if err := writeFrame(w.req, h, c.In.Data); err != nil {
			return w.lost(c.Op, err)
		}
	}
	for i, c := range calls {
		rh, payload, err := readFrame(w.rep)
		if err != nil {
			return w.lost(c.Op, err)
		}
		if id := first + uint64(i); rh.ID != id {
			return w.lost(c.Op, fmt.Errorf("reply id %d for request %d", rh.ID, id))
		}
		logs := ""
		if rh.Logs != nil {
			logs = *rh.Logs
		}
		switch rh.Op {
		case opResult:
			deliver(i, Value{Kind: rh.Kind, DType: rh.DType, Shape: rh.Shape, Data: payload, Name: rh.Name, ContentType: rh.ContentType, Logs: logs}, nil)
		case opError:
			e := decodePythonError(payload)
			e.Logs = logs
			deliver(i, Value{}, e)
		default:
			return w.lost(c.Op, fmt.Errorf("unexpected reply op %q", rh.Op))
		}
	}
	return nil
}

// lost describes why a call lost its worker, with the exit status when it died.
func (w *worker) lost(op string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, os.ErrClosed) || isBrokenPipe(err) {
		return &workerLostError{fmt.Sprintf("worker %d died during %s (%s)", w.spec.idx, op, w.exitStatus(2*time.Second))}
	}
	return &workerLostError{fmt.Sprintf("worker %d broke the protocol during %s: %v", w.spec.idx, op, err)}
}

// decodePythonError turns the runner's error reply into the API error: the
// code callers branch on, and a message that starts by naming what failed
// ("import of aai_main.py failed: ModuleNotFoundError: ...").
func decodePythonError(payload []byte) *APIError {
	var pe pythonError
	if err := json.Unmarshal(payload, &pe); err != nil {
		return apiErr(http.StatusInternalServerError, CodeInternal, "undecodable error from the worker: %v", err)
	}
	raised := pe.Message // what the exception said, with its type unless that is the whole message
	if pe.Type != "" && pe.Type != pe.Message {
		raised = pe.Type + ": " + pe.Message
	}
	if pe.Hint != "" {
		raised += " (" + pe.Hint + ")"
	}
	e := &APIError{Status: http.StatusInternalServerError, Stage: pe.Stage, Traceback: pe.Traceback}
	switch pe.Stage {
	case StageImport:
		e.Code, e.Message = CodeInitFailed, "import of aai_main.py failed: "+raised
	case StageClass:
		e.Code, e.Message = CodeInitFailed, pe.Message // it says what aai_main.py lacks
	case StageInit:
		e.Code, e.Message = CodeInitFailed, "__init__ failed: "+raised
	case StagePredict:
		e.Code, e.Message = CodePredictFailed, "predict failed: "+raised
	case StageTestInput:
		e.Code, e.Message = CodeTestInputFailed, "testing_input_data failed: "+raised
	case StageOutput:
		e.Code = CodeBadOutput
		e.Message = "encoding the answer failed: the algorithm returned a value the API type cannot carry: " + pe.Message
	case StageTestInputOutput:
		e.Code = CodeTestInputFailed
		e.Message = "encoding testing_input_data's value failed: testing_input_data returned a value the input type cannot carry: " + pe.Message
	case stageDecode: // the client's image: its fault, no traceback of ours
		return apiErr(http.StatusBadRequest, CodeCorruptImage, "the image is truncated or corrupt: %s", pe.Message)
	default:
		e.Code, e.Message = CodeInternal, raised
	}
	return e
}

func (w *worker) wait() {
	err := w.cmd.Wait()
	if why := w.cmd.KilledFor(); why != "" {
		err = errors.New("killed: " + why)
	}
	w.mu.Lock()
	w.reaped = true
	w.status = "exit status 0"
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			w.status = ee.ProcessState.String()
		} else {
			w.status = err.Error()
		}
	}
	status := w.status
	w.mu.Unlock()
	// Logged before exited closes, so that whoever waited for the exit finds the line.
	w.spec.log.Info("worker exited", "worker", w.spec.idx, "status", status)
	close(w.exited)
}

// exitStatus waits up to d for the process to end and describes how it ended.
func (w *worker) exitStatus(d time.Duration) string {
	select {
	case <-w.exited:
	case <-time.After(d):
		return "still running"
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.status
}

// dead reports whether the process has ended.
func (w *worker) dead() bool {
	select {
	case <-w.exited:
		return true
	default:
		return false
	}
}

// kill stops the worker's process group at once; its pipes then report EOF.
func (w *worker) kill() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.reaped { // a reaped pid may already belong to someone else
		killProcess(w.cmd.Cmd)
	}
}

// close ends the worker: it closes the request pipe, which makes the runner
// return, waits up to grace, then kills it, and releases the pipes.
func (w *worker) close(grace time.Duration) {
	_ = w.req.Close()
	select {
	case <-w.exited:
	case <-time.After(grace):
		w.kill()
		<-w.exited
	}
	_ = w.repFile.Close()
}

// logOutput logs the algorithm's prints line by line, tagged with the worker.
func (w *worker) logOutput(r *os.File, stream string) {
	defer r.Close()
	br := bufio.NewReaderSize(r, 64<<10)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			text := strings.TrimRight(string(line), "\r\n")
			w.tail.add(text)
			w.spec.log.Info("worker output", "worker", w.spec.idx, "stream", stream, "line", text)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

// outputTail keeps a worker's last lines of output for start-up failures.
type outputTail struct {
	mu    sync.Mutex
	lines []string
}

const tailLines = 20

func (t *outputTail) add(line string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(line) > 500 {
		line = line[:500] + "..."
	}
	t.lines = append(t.lines, line)
	if len(t.lines) > tailLines {
		t.lines = t.lines[len(t.lines)-tailLines:]
	}
}

func (t *outputTail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

func closeAll(fs ...*os.File) {
	for _, f := range fs {
		_ = f.Close()
	}
}
