// Package sandboxbench measures what the sandbox (internal/sandbox) costs,
// each figure with and without it in the same run, interleaved, so the
// ratios hold on a shared, noisy machine: Test Code (boot a server, send
// testing_input_data), Complete to first answer (boot to the first 200 of
// /predict), image throughput at a given concurrency, and a pip install
// (venv + a local wheel). It runs the real algocloud-infer binary on a copy
// of examples/segmentation, with Debian's Python.
package sandboxbench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/bench/boot"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/spec"
)

// options are the command line's.
type options struct {
	inferBin    string
	example     string
	rounds      int
	duration    time.Duration
	concurrency int
	threads     int
	instance    string
}

// Main runs the benchmark and prints its report; it returns the exit code.
func Main(args []string) int {
	var o options
	fs := flag.NewFlagSet("algocloud-bench-sandbox", flag.ContinueOnError)
	fs.StringVar(&o.inferBin, "infer-bin", "bin/algocloud-infer", "the algocloud-infer binary")
	fs.StringVar(&o.example, "example", "examples/segmentation", "the algorithm folder (aai_main.py)")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds per mode (boot figures)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "throughput measuring time per mode and round")
	fs.IntVar(&o.concurrency, "concurrency", 8, "clients for the throughput figure")
	fs.IntVar(&o.threads, "threads", 2, "Python workers")
	fs.StringVar(&o.instance, "instance-type", "t3.small", "whose limits the sandbox applies")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "algocloud-bench-sandbox:", err)
		return 1
	}
	return 0
}

// sample is one mode's measurements.
type sample struct {
	test, first, install []time.Duration
	rps                  []float64
}

func run(o options) error {
	if err := sandbox.Available(); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "algocloud-bench-sandbox-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	lim, err := sandbox.ForInstanceType(o.instance, 1)
	if err != nil {
		return err
	}
	modes := []sandbox.Mode{sandbox.ModeNone, sandbox.ModeBwrap}
	res := map[sandbox.Mode]*sample{sandbox.ModeNone: {}, sandbox.ModeBwrap: {}}
	img := testPNG(256, 256)
	for r := 0; r < o.rounds; r++ {
		for i := range modes {
			m := modes[(i+r)%2] // alternate which goes first
			s := res[m]
			d, err := installOnce(filepath.Join(work, fmt.Sprintf("install-%s-%d", m, r)), m, lim)
			if err != nil {
				return fmt.Errorf("install (%s): %w", m, err)
			}
			s.install = append(s.install, d)
			srv, err := newServer(o, filepath.Join(work, fmt.Sprintf("srv-%s-%d", m, r)), m, lim)
			if err != nil {
				return err
			}
			test, first, rps, err := srv.measure(o, img, r == 0)
			srv.stop()
			if err != nil {
				return fmt.Errorf("%s: %w", m, err)
			}
			s.test, s.first = append(s.test, test), append(s.first, first)
			if rps > 0 {
				s.rps = append(s.rps, rps)
			}
		}
	}
	fmt.Print(report(o, lim, res))
	return nil
}

// server is one algocloud-infer on a copy of the example.
type server struct {
	proc  *boot.Process
	base  string
	token string
	start time.Time
}

func newServer(o options, dir string, mode sandbox.Mode, lim sandbox.Limits) (*server, error) {
	code := filepath.Join(dir, "code")
	if err := os.MkdirAll(code, 0o755); err != nil {
		return nil, err
	}
	if err := os.CopyFS(code, os.DirFS(o.example)); err != nil {
		return nil, err
	}
	port, err := boot.FreePort()
	if err != nil {
		return nil, err
	}
	token, sum, err := boot.NewToken(16)
	if err != nil {
		return nil, err
	}
	cfg := inferapi.Config{Name: "bench", Listen: fmt.Sprintf("127.0.0.1:%d", port), TokenSHA256: sum, CodeDir: code,
		Python: "/usr/bin/python3", Threads: o.threads, Input: spec.Image, Output: spec.Image, RunDir: dir,
		Timeout: inferapi.Duration(time.Minute),
		Sandbox: &sandbox.Config{Mode: mode, Network: sandbox.NetOutbound, Group: fmt.Sprintf("bench-%d", os.Getpid()), Limits: lim}}
	path := filepath.Join(dir, "live.json")
	if err := inferapi.WriteConfig(path, cfg.WithDefaults()); err != nil {
		return nil, err
	}
	s := &server{base: "http://" + cfg.Listen, token: token, start: time.Now()}
	s.proc, err = boot.Start(boot.Options{Command: []string{o.inferBin, "--config", path}, Group: true})
	return s, err
}

func (s *server) stop() { s.proc.Stop(10 * time.Second) }

// measure: boot to the first 200 of /predict (what Complete waits for),
// Test Code (boot + testing_input_data through /predict, on a second
// server start: measured here as readiness + SelfTest from this start),
// then throughput.
func (s *server) measure(o options, img []byte, warm bool) (test, first time.Duration, rps float64, err error) {
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := inferapi.WaitReady(ctx, hc, s.base); err != nil {
		return 0, 0, 0, err
	}
	res, err := inferapi.SelfTest(ctx, hc, s.base, s.token)
	if err != nil || !res.OK {
		return 0, 0, 0, fmt.Errorf("self test: %v %s", err, res.Message)
	}
	test = time.Since(s.start)
	for {
		code, err := post(hc, s.base, s.token, img)
		if err == nil && code == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			return 0, 0, 0, fmt.Errorf("no answer: %v %d", err, code)
		}
	}
	first = time.Since(s.start)
	if o.duration > 0 {
		rps, err = throughput(hc, s.base, s.token, img, o.concurrency, o.duration)
	}
	return test, first, rps, err
}

func post(hc *http.Client, base, token string, img []byte) (int, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/predict", bytes.NewReader(img))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "image/png")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// throughput runs n clients for d (after a 1 s warm-up) and returns answers per second.
func throughput(hc *http.Client, base, token string, img []byte, n int, d time.Duration) (float64, error) {
	var ok, bad atomic.Int64
	var counting atomic.Bool
	stop := time.Now().Add(d + time.Second)
	go func() { time.Sleep(time.Second); counting.Store(true) }()
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				code, err := post(hc, base, token, img)
				if !counting.Load() {
					continue
				}
				if err != nil || code != http.StatusOK {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		return 0, fmt.Errorf("%d failed calls", bad.Load())
	}
	return float64(ok.Load()) / d.Seconds(), nil
}

// installOnce makes a venv and installs a tiny local wheel, in the mode.
func installOnce(dir string, mode sandbox.Mode, lim sandbox.Limits) (time.Duration, error) {
	wheels := filepath.Join(dir, "wheels")
	if err := os.MkdirAll(wheels, 0o755); err != nil {
		return 0, err
	}
	if err := writeWheel(wheels); err != nil {
		return 0, err
	}
	server := filepath.Join(dir, "server")
	if err := os.MkdirAll(server, 0o755); err != nil {
		return 0, err
	}
	box, err := sandbox.New(sandbox.Config{Mode: mode, Network: sandbox.NetOutbound, Group: fmt.Sprintf("bench-install-%d", os.Getpid()), Limits: lim, StateDir: server})
	if err != nil {
		return 0, err
	}
	defer box.Close()
	ctx := context.Background()
	start := time.Now()
	py, err := python.EnsureVenvIn(ctx, box, "/usr/bin/python3", filepath.Join(server, "venv"))
	if err != nil {
		return 0, err
	}
	if out, err := python.Install(ctx, py, []string{"benchtiny==0.1.0"}, python.InstallOptions{NoIndex: true, FindLinks: []string{wheels}, Box: box}, nil); err != nil {
		return 0, fmt.Errorf("%w: %s", err, out)
	}
	return time.Since(start), nil
}

func testPNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func medianF(f []float64) float64 {
	if len(f) == 0 {
		return 0
	}
	s := append([]float64(nil), f...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func report(o options, lim sandbox.Limits, res map[sandbox.Mode]*sample) string {
	var b strings.Builder
	none, box := res[sandbox.ModeNone], res[sandbox.ModeBwrap]
	fmt.Fprintf(&b, "Sandbox cost: %s (%d worker(s), %s limits: %s, %.0f CPUs, %d tasks), %d round(s) per mode, interleaved; medians.\n\n",
		o.example, o.threads, lim.Label, sandbox.FormatBytes(lim.MemoryBytes), lim.CPUs, lim.Pids, o.rounds)
	fmt.Fprintf(&b, "| figure | unsandboxed (--sandbox=none) | sandboxed (bwrap) | sandboxed − unsandboxed | ratio |\n|---|---|---|---|---|\n")
	row := func(name string, a, c time.Duration) {
		fmt.Fprintf(&b, "| %s | %s | %s | %+d ms | %.3f× |\n", name, a.Round(time.Millisecond), c.Round(time.Millisecond),
			(c - a).Milliseconds(), float64(c)/float64(a))
	}
	row("venv + pip install of a local wheel", median(none.install), median(box.install))
	row("Test Code (boot to testing_input_data answered)", median(none.test), median(box.test))
	row("start to first /predict answer (Complete)", median(none.first), median(box.first))
	if a, c := medianF(none.rps), medianF(box.rps); a > 0 {
		fmt.Fprintf(&b, "| throughput, %d clients, 256×256 PNG | %.1f/s | %.1f/s | %+.1f%% | %.3f× |\n", o.concurrency, a, c, 100*(c-a)/a, c/a)
	}
	return b.String()
}
