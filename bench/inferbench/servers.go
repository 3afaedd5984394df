package inferbench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/algocloud/algocloud/bench/boot"
	"github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/spec"
)

//go:embed cogstyle.py
var cogstylePy string

//go:embed limit.py
var limitPy string

// server is a process under load: ours (algocloud-infer) or the Cog-style one.
type server struct {
	t        target
	base     string
	proc     *boot.Process
	children bool // count its child processes' CPU (our Python workers)
}

// measured is one load run with the CPU the server (and its workers) spent.
type measured struct {
	loadResult
	name             string
	cpuSelf, cpuKids float64 // seconds during the run, warm-up included
	rssMiB           float64
	othersCores      float64 // cores busy with neither the server, its workers nor the load generator
	genCores         float64 // cores the load generator (this process) kept busy
}

func (s *server) measure(ctx context.Context, e *env, conc int, o options) measured {
	return s.measureBody(ctx, e.png, conc, o, func(out []byte) bool { return samePixels(e.png, out) })
}

// measureBody runs the load with body; check validates one answer.
func (s *server) measureBody(ctx context.Context, body []byte, conc int, o options, check func([]byte) bool) measured {
	pid := s.proc.Pid()
	self0, kids0 := cpuSeconds(pid, s.children)
	gen0, busy0, t0 := procCPU(os.Getpid()), machineBusy(), time.Now()
	rss := sampleRSS(pid, 50*time.Millisecond)
	lr := runLoad(ctx, s.t, body, conc, o.warm, o.dur)
	m := measured{loadResult: lr, name: s.t.name, rssMiB: rss.Stop()}
	self1, kids1 := cpuSeconds(pid, s.children)
	m.cpuSelf, m.cpuKids = self1-self0, kids1-kids0
	gen := procCPU(os.Getpid()) - gen0
	// Clamped: per-process and machine counters tick separately, and a
	// quiet machine can come out a little below zero.
	m.othersCores = max(0, (machineBusy()-busy0-m.cpuSelf-m.cpuKids-gen)/time.Since(t0).Seconds())
	m.genCores = gen / time.Since(t0).Seconds()
	if lr.ok > 0 && !check(lr.last) {
		m.statuses[-1]++ // a wrong answer: shown in the errors column
	}
	return m
}

// cpuPerReq is ms of CPU per answered request, counting warm-up requests at
// the measured rate.
func (m measured) cpuPerReq(cpu float64, warm time.Duration) float64 {
	n := float64(m.ok) * (1 + warm.Seconds()/m.elapsed.Seconds())
	if n == 0 {
		return 0
	}
	return 1000 * cpu / n
}

// stop ends the server: SIGTERM, SIGKILL after 20 s.
func (s *server) stop() {
	if s.proc != nil {
		s.proc.Stop(20 * time.Second)
	}
}

// startOurs starts bin on the algorithm in dir, serving the API type in→out;
// mutate may change the config further (the ONNX section's environment).
func startOurs(ctx context.Context, o options, bin, name, dir string, in, out spec.IOType, maxBatch int, mutate ...func(*inferapi.Config)) (*server, error) {
	port, err := boot.FreePort()
	if err != nil {
		return nil, err
	}
	token, sum, err := boot.NewToken(16)
	if err != nil {
		return nil, err
	}
	cfg := inferapi.Config{Name: "bench", Listen: fmt.Sprintf("127.0.0.1:%d", port), TokenSHA256: sum,
		CodeDir: dir, Python: o.python, Threads: o.threads, Input: in, Output: out, MaxBatchSize: maxBatch}
	for _, m := range mutate {
		m(&cfg)
	}
	cfgPath := filepath.Join(dir, fmt.Sprintf("inference-%d.json", port))
	if err := inferapi.WriteConfig(cfgPath, cfg); err != nil {
		return nil, err
	}
	bo := boot.Options{Command: []string{bin, "--config", cfgPath}} // logs go to /dev/null, or -server-log
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		defer f.Close() // the child holds its own copy
		bo.Stderr = f
	}
	proc, err := boot.Start(bo)
	if err != nil {
		return nil, err
	}
	ct := map[spec.IOType]string{spec.Image: "image/png", spec.JSON: "application/json"}[in]
	s := &server{t: target{name: name, url: "http://" + cfg.Listen + "/predict", token: token, contentType: ct},
		base: "http://" + cfg.Listen, proc: proc, children: true}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := inferapi.WaitReady(wctx, http.DefaultClient, s.base); err != nil {
		s.stop()
		return nil, fmt.Errorf("algocloud-infer did not get ready: %w", err)
	}
	return s, nil
}

func startCog(ctx context.Context, o options, e *env) (*server, error) {
	port, err := boot.FreePort()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	proc, err := boot.Start(boot.Options{Command: []string{o.python, e.cogPy, "--port", strconv.Itoa(port), "--code-dir", e.identityDir},
		Stderr: &stderr})
	if err != nil {
		return nil, err
	}
	s := &server{t: target{name: "Cog-style (FastAPI + uvicorn)", url: fmt.Sprintf("http://127.0.0.1:%d/predict", port)},
		base: fmt.Sprintf("http://127.0.0.1:%d", port), proc: proc}
	for deadline := time.Now().Add(time.Minute); ; {
		resp, err := http.Get(s.base + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			return nil, fmt.Errorf("the Cog-style server did not start (needs python3-fastapi python3-uvicorn): %s", short(stderr.String(), 800))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// batchSizes is the mean batch size the server saw, from /metrics.
func (s *server) batchSizes() float64 {
	req, err := http.NewRequest(http.MethodGet, s.base+"/metrics", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("Authorization", "Bearer "+s.t.token) // /metrics needs the endpoint's token
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var sum, count float64
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "algocloud_inference_batch_size_sum "); ok {
			sum, _ = strconv.ParseFloat(v, 64)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "algocloud_inference_batch_size_count "); ok {
			count, _ = strconv.ParseFloat(v, 64)
		}
	}
	if count == 0 {
		return 0
	}
	return sum / count
}

// limitResult is one run of limit.py.
type limitResult struct {
	Procs     int     `json:"-"`
	Level     string  `json:"-"`
	ItemsPerS float64 `json:"items_per_s"`
	DecodeMS  float64 `json:"decode_ms"`
	PredictMS float64 `json:"predict_ms"`
	EncodeMS  float64 `json:"encode_ms"`
	PNGBytes  int     `json:"png_bytes"`
	CPUS      float64 `json:"cpu_s"`
	Others    float64 `json:"-"` // cores busy with other work meanwhile
}

func runLimit(ctx context.Context, o options, e *env, procs int, level string) (limitResult, error) {
	args := []string{e.limitPy, "--image", e.pngPath, "--code-dir", e.identityDir, "--procs", strconv.Itoa(procs),
		"--seconds", strconv.FormatFloat(o.limitDur.Seconds(), 'f', -1, 64)}
	if level != "" {
		args = append(args, "--level", level)
	}
	busy0, t0 := machineBusy(), time.Now()
	out, err := exec.CommandContext(ctx, o.python, args...).CombinedOutput()
	if err != nil {
		return limitResult{}, fmt.Errorf("limit.py: %w: %s", err, short(string(out), 800))
	}
	busy, wall := machineBusy()-busy0, time.Since(t0).Seconds()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	r := limitResult{Procs: procs, Level: level}
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		return limitResult{}, fmt.Errorf("limit.py answered %q: %w", short(string(out), 300), err)
	}
	r.Others = max(0, (busy-r.CPUS)/wall)
	return r, nil
}

// transferLine is one sub-benchmark of BenchmarkTransfer.
type transferLine struct {
	name       string
	nsPerOp    float64
	mbPerS     float64
	iterations int
}

var benchLine = regexp.MustCompile(`^BenchmarkTransfer/(\S+?)(?:-\d+)?\s+(\d+)\s+([\d.]+) ns/op\s+([\d.]+) MB/s`)

func runTransfer(ctx context.Context) ([]transferLine, error) {
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "^BenchmarkTransfer$", "-benchtime", "20x", "./inference/")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go test -bench Transfer: %w: %s", err, short(string(out), 1500))
	}
	var lines []transferLine
	for _, l := range strings.Split(string(out), "\n") {
		m := benchLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[2])
		ns, _ := strconv.ParseFloat(m[3], 64)
		mb, _ := strconv.ParseFloat(m[4], 64)
		lines = append(lines, transferLine{name: m[1], nsPerOp: ns, mbPerS: mb, iterations: n})
	}
	return lines, nil
}

// profileInProcess serves identity in this process under a CPU profile at
// concurrency 8 (the load generator's own work shows in it too) and returns
// `go tool pprof -top`.
func profileInProcess(ctx context.Context, o options, e *env) (string, error) {
	cfg := inferapi.Config{Name: "bench", Listen: "127.0.0.1:0", TokenSHA256: strings.Repeat("0", 64),
		CodeDir: e.identityDir, Python: o.python, Threads: o.threads, Input: spec.Image, Output: spec.Image}
	token := "profile"
	sum := sha256.Sum256([]byte(token))
	cfg.TokenSHA256 = hex.EncodeToString(sum[:])
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
	f, err := os.Create(o.cpuprof)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		return "", err
	}
	runLoad(ctx, target{name: "profile", url: base + "/predict", token: token}, e.png, 8, 0, o.dur)
	pprof.StopCPUProfile()
	out, err := exec.CommandContext(ctx, "go", "tool", "pprof", "-top", "-nodecount=25", o.cpuprof).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof: %w: %s", err, short(string(out), 500))
	}
	return string(out), nil
}

// measureDispatch is the per-request cost of HTTP, the queue and the pipes
// with no codec work: a JSON echo at concurrency 1 and 8, max_batch_size 1,
// for this build and, with -baseline-infer-bin, another one.
func measureDispatch(ctx context.Context, o options, e *env) ([]measured, error) {
	bins := []struct{ name, bin string }{{oursName + ", JSON echo", o.inferBin}}
	if o.baseBin != "" {
		bins = append(bins, struct{ name, bin string }{"baseline build, JSON echo", o.baseBin})
	}
	body := []byte(`{"x": 1}`)
	var out []measured
	for _, conc := range []int{1, 8} {
		for _, b := range bins {
			s, err := startOurs(ctx, o, b.bin, b.name, e.jsonDir, spec.JSON, spec.JSON, 1)
			if err != nil {
				return nil, err
			}
			log.Printf("dispatch: %s at concurrency %d", b.name, conc)
			out = append(out, s.measureBody(ctx, body, conc, o, func(b []byte) bool { return bytes.Equal(bytes.TrimSpace(b), []byte(`{"x": 1}`)) }))
			s.stop()
		}
	}
	return out, nil
}
