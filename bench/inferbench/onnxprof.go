package inferbench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
)

// -onnx-profile DIR profiles one batched ONNX server per model in two ways:
// `perf record` on the server process while the first round's batched row
// runs (every thread: Go's and ONNX Runtime's own), and Go's CPU profiler on
// the same server run in this process (Go's threads only: ONNX Runtime's
// intra-op threads are not Go's, so Go sees only the part of Run on the
// calling thread, under cgocall; the load generator shows too).

// perfRecording is a `perf record` of one process in progress.
type perfRecording struct {
	cmd  *exec.Cmd
	path string
}

// startPerf samples pid's threads (cpu-clock, 499 Hz, call graphs) for d into
// path, or fails when perf is missing or not allowed.
func startPerf(ctx context.Context, pid int, path string, d time.Duration) (*perfRecording, error) {
	perf, err := exec.LookPath("perf")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, perf, "record", "-q", "-e", "cpu-clock", "-F", "499", "-g", "-p", strconv.Itoa(pid), "-o", path,
		"--", "sleep", strconv.FormatFloat(d.Seconds(), 'f', 1, 64))
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &perfRecording{cmd: cmd, path: path}, nil
}

// perfGroups name the Go parts of a server's work, each by the symbol whose
// inclusive time (children included) measures it. ONNX Runtime's work is its
// library's self time: perf does not unwind from its C++ frames into Go's, so
// Model.Run's inclusive time misses it.
var perfGroups = []struct{ what, sym string }{
	{"decode the request (PNG → RGB)", "github.com/algocloud/algocloud/inference.decodeImage"},
	{"preprocess (resize, normalise)", "github.com/algocloud/algocloud/inference/onnxrt.Preprocess.Apply"},
	{"postprocess to an image", "github.com/algocloud/algocloud/inference/onnxrt.Postprocess.ImageOutput"},
	{"postprocess to JSON", "github.com/algocloud/algocloud/inference/onnxrt.Postprocess.JSONOutput"},
	{"encode the answer as PNG", "github.com/algocloud/algocloud/inference.encodeTensorPNG"},
	{"net/http.(*conn).serve (all of a request's Go work but the batch's)", "net/http.(*conn).serve"},
	{"Go garbage collector (gcBgMarkWorker)", "runtime.gcBgMarkWorker"},
	{"Go scheduler (runtime.schedule)", "runtime.schedule"},
}

// finish waits for perf and summarises the recording: samples by shared
// object (self time: ONNX Runtime's library, the Go binary, the kernel),
// then inclusive time of perfGroups' symbols, then the hottest symbols.
func (p *perfRecording) finish(ctx context.Context) string {
	var b strings.Builder
	if err := p.cmd.Wait(); err != nil {
		fmt.Fprintf(&b, "(perf record ended: %v)\n", err)
	}
	fmt.Fprintf(&b, "perf record -e cpu-clock -F 499 -g -p SERVER (%s): self time by shared object\n", filepath.Base(p.path))
	dso, err := perfReport(ctx, p.path, "--no-children", "--sort", "dso")
	if err != nil {
		return b.String() + err.Error() + "\n"
	}
	for _, l := range firstLines(dso, 6) {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	children, err := perfReport(ctx, p.path, "--children", "--sort", "sym")
	if err == nil {
		fmt.Fprintf(&b, "inclusive time (children included) of:\n")
		for _, g := range perfGroups {
			pct := "0%"
			for _, l := range children {
				if f := strings.Fields(l); len(f) >= 4 && strings.HasPrefix(strings.Join(f[3:], " "), g.sym) {
					pct = f[0]
					break
				}
			}
			fmt.Fprintf(&b, "  %7s  %s\n", pct, g.what)
		}
	}
	self, err := perfReport(ctx, p.path, "--no-children", "--sort", "dso,sym")
	if err == nil {
		fmt.Fprintf(&b, "hottest symbols (self time):\n")
		for _, l := range firstLines(self, 12) {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	return b.String()
}

// perfReport runs `perf report --stdio` with args and returns its lines that
// are not comments or blank.
func perfReport(ctx context.Context, path string, args ...string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "perf", append([]string{"report", "-i", path, "--stdio", "-g", "none", "--percent-limit", "0.5"}, args...)...)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("perf report: %w", err)
	}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines, nil
}

func firstLines(lines []string, n int) []string { return lines[:min(n, len(lines))] }

// profileONNXInProcess serves m batched (the first -onnx-threads value) in
// this process under Go's CPU profiler at concurrency onnxConc for -duration,
// writes DIR/MODEL.pprof, and returns the cumulative shares of pprofGroups
// (from `go tool pprof -top -cum`).
func profileONNXInProcess(ctx context.Context, o options, dir, lib string, m onnxModel, body []byte) (string, error) {
	token := "profile"
	sum := sha256.Sum256([]byte(token))
	cfg := inferapi.Config{Name: "bench", Listen: "127.0.0.1:0", TokenSHA256: hex.EncodeToString(sum[:]), CodeDir: dir,
		Environment: spec.EnvONNX, ONNXRuntimeLib: lib, Threads: o.onnxThreads[0], Input: spec.Image, Output: m.out,
		MaxBatchSize: o.onnxBatch, MaxQueueDelay: inferapi.Duration(o.onnxDelay)}
	srv, err := inference.NewServer(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return "", err
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(sctx, ln) }()
	defer func() { cancel(); <-done }()
	base := "http://" + ln.Addr().String()
	wctx, wcancel := context.WithTimeout(ctx, time.Minute)
	defer wcancel()
	if err := inferapi.WaitReady(wctx, http.DefaultClient, base); err != nil {
		return "", err
	}
	t := target{name: "profile", url: base + "/predict", token: token}
	runLoad(ctx, t, body, onnxConc, 0, o.warm) // warm-up
	path := filepath.Join(o.onnxProfile, m.key+".pprof")
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return "", err
	}
	lr := runLoad(ctx, t, body, onnxConc, 0, o.dur)
	pprof.StopCPUProfile()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-cum", "-nodefraction=0", "-nodecount=1000", path).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, short(string(out), 500))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\nGo CPU profile (%s): the same batched server in the benchmark's process, %.1f images/s; cumulative share of all its samples (the load generator's too, about its cores' share) of:\n", filepath.Base(path), lr.rps())
	for _, g := range pprofGroups {
		pct := "0%"
		for _, l := range strings.Split(string(out), "\n") {
			// flat flat% sum% cum cum% name
			if f := strings.Fields(l); len(f) >= 6 && strings.HasPrefix(strings.Join(f[5:], " "), g.sym) {
				pct = f[4]
				break
			}
		}
		fmt.Fprintf(&b, "  %7s  %s\n", pct, g.what)
	}
	return b.String(), nil
}

// pprofGroups name the parts of the in-process profile, each by the function
// whose cumulative time measures it.
var pprofGroups = []struct{ what, sym string }{
	{"the batch: inference.(*onnxDispatcher).run (preprocess, Run, postprocess)", "github.com/algocloud/algocloud/inference.(*onnxDispatcher).run"},
	{"runtime.cgocall: Run on the calling thread", "runtime.cgocall"},
	{"runtime._ExternalCode: samples on ONNX Runtime's own threads (Go sees few of them)", "runtime._ExternalCode"},
	{"preprocess: onnxrt.Preprocess.Apply", "github.com/algocloud/algocloud/inference/onnxrt.Preprocess.Apply"},
	{"postprocess to JSON: onnxrt.Postprocess.JSONOutput", "github.com/algocloud/algocloud/inference/onnxrt.Postprocess.JSONOutput"},
	{"postprocess to an image: onnxrt.Postprocess.ImageOutput", "github.com/algocloud/algocloud/inference/onnxrt.Postprocess.ImageOutput"},
	{"the server's HTTP handling: net/http.(*conn).serve (decode and encode included)", "net/http.(*conn).serve"},
	{"decode the request: inference.decodeImage", "github.com/algocloud/algocloud/inference.decodeImage"},
	{"encode the answer as PNG: inference.encodeTensorPNG", "github.com/algocloud/algocloud/inference.encodeTensorPNG"},
	{"garbage collector: runtime.gcBgMarkWorker", "runtime.gcBgMarkWorker"},
}
