// Package swapbench measures a redeploy of a live endpoint under load, two
// ways in one run: the agent's swap (agent/revisions: the new revision
// starts beside the serving one on the shared listening socket) and today's
// stop-and-start (SIGTERM the server, start the new one on the same port).
// Clients send requests back to back for the whole duration; the redeploy
// comes in the middle. It reports failed requests, p99 latency before and
// during the redeploy, and the time from the redeploy call to the first
// answer of the new revision. It runs the real algocloud-infer binary on a
// copy of examples/segmentation (the new revision answers the inverted
// mask, so answers tell the revisions apart), with Debian's Python.
package swapbench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/algocloud/algocloud/agent/revisions"
	"github.com/algocloud/algocloud/bench/boot"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/loadgen"
	"github.com/algocloud/algocloud/spec"
)

// options are the command line's.
type options struct {
	inferBin  string
	example   string
	duration  time.Duration
	clients   int
	threads   int
	initSleep time.Duration
	backoff   time.Duration
}

// Main runs the benchmark and prints its report; it returns the exit code.
func Main(args []string) int {
	var o options
	fs := flag.NewFlagSet("algocloud-bench-swap", flag.ContinueOnError)
	fs.StringVar(&o.inferBin, "infer-bin", "bin/algocloud-infer", "the algocloud-infer binary")
	fs.StringVar(&o.example, "example", "examples/segmentation", "the algorithm folder (aai_main.py)")
	fs.DurationVar(&o.duration, "duration", 60*time.Second, "load time per mode; the redeploy comes at half of it")
	fs.IntVar(&o.clients, "clients", 4, "concurrent clients (half HTTP/1.1, half HTTP/2)")
	fs.IntVar(&o.threads, "threads", 2, "Python workers")
	fs.DurationVar(&o.initSleep, "init-sleep", 3*time.Second, "added to __init__, as a model load")
	fs.DurationVar(&o.backoff, "backoff", 100*time.Millisecond, "how long a client waits after a failed request")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "algocloud-bench-swap:", err)
		return 1
	}
	return 0
}

// result is one mode's measurements.
type result struct {
	mode               string
	ok, failed         int
	failures           map[string]int
	p99Before, p99Swap time.Duration
	maxSwap            time.Duration
	toNew              time.Duration // redeploy call to the new revision's first answer
	callTook           time.Duration // the redeploy call itself
	nBefore, nSwap     int
	oldAfterNew        int
}

func run(o options) error {
	work, err := os.MkdirTemp("", "algocloud-bench-swap-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := filepath.Abs(o.inferBin)
	if err != nil {
		return err
	}
	certFile, keyFile := filepath.Join(work, "cert.pem"), filepath.Join(work, "key.pem")
	pool, err := writeCert(certFile, keyFile)
	if err != nil {
		return err
	}
	token, sum, err := boot.NewToken(32)
	if err != nil {
		return err
	}
	mk := func(name string, invert bool, listen string) (string, error) {
		return writeRevision(o, filepath.Join(work, name), invert, inferapi.Config{Name: "otsu", Listen: listen,
			CertFile: certFile, KeyFile: keyFile, TokenSHA256: sum, Python: "/usr/bin/python3", Threads: o.threads,
			Input: spec.Image, Output: spec.Image, Timeout: inferapi.Duration(30 * time.Second)})
	}
	var results []result
	for _, mode := range []string{"agent swap", "stop and start"} {
		port, err := boot.FreePort()
		if err != nil {
			return err
		}
		addr := "127.0.0.1:" + strconv.Itoa(port)
		dir := filepath.Join(work, strings.ReplaceAll(mode, " ", "-"))
		oldCfg, err := mk(filepath.Join(dir, "old"), false, addr)
		if err != nil {
			return err
		}
		newCfg, err := mk(filepath.Join(dir, "new"), true, addr)
		if err != nil {
			return err
		}
		var redeploy func() error
		var cleanup func()
		switch mode {
		case "agent swap":
			sup, err := revisions.Open(context.Background(), revisions.Options{Dir: filepath.Join(dir, "agent"), Listen: addr,
				Command: []string{bin}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				return err
			}
			if err := sup.Start(context.Background(), revisions.Revision{ID: "old", Config: oldCfg}); err != nil {
				sup.Close()
				return err
			}
			redeploy = func() error { return sup.Swap(context.Background(), revisions.Revision{ID: "new", Config: newCfg}) }
			cleanup = func() { _ = sup.Stop(context.Background()); sup.Close() }
		default:
			old, err := boot.Start(boot.Options{Command: []string{bin, "--config", oldCfg}, Group: true})
			if err != nil {
				return err
			}
			if err := waitReady(addr, pool); err != nil {
				old.Stop(10 * time.Second)
				return err
			}
			var cur *boot.Process
			redeploy = func() error {
				old.Stop(time.Minute) // today's redeploy: stop, then start the new one
				cur, err = boot.Start(boot.Options{Command: []string{bin, "--config", newCfg}, Group: true})
				return err
			}
			cleanup = func() {
				old.Stop(10 * time.Second)
				if cur != nil {
					cur.Stop(time.Minute)
				}
			}
		}
		fmt.Fprintf(os.Stderr, "%s: %d clients for %s, redeploy at %s\n", mode, o.clients, o.duration, o.duration/2)
		r, err := measure(o, mode, addr, pool, token, redeploy)
		cleanup()
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	report(os.Stdout, o, results)
	return nil
}

// writeRevision copies the example's code into dir (the new revision's
// predict inverts its mask; both sleep initSleep in __init__) and writes its
// config; it returns the config's path.
func writeRevision(o options, dir string, invert bool, cfg inferapi.Config) (string, error) {
	code := filepath.Join(dir, "code")
	if err := os.MkdirAll(code, 0o755); err != nil {
		return "", err
	}
	src, err := os.ReadFile(filepath.Join(o.example, "aai_main.py"))
	if err != nil {
		return "", err
	}
	main := strings.Replace(string(src), "    def __init__(self):\n",
		fmt.Sprintf("    def __init__(self):\n        import time; time.sleep(%g)\n", o.initSleep.Seconds()), 1)
	if invert {
		main = strings.Replace(main, "return gray > t", "return ~(gray > t)", 1)
	}
	if err := os.WriteFile(filepath.Join(code, "aai_main.py"), []byte(main), 0o644); err != nil {
		return "", err
	}
	cfg.CodeDir = code
	path := filepath.Join(dir, "inference.json")
	return path, inferapi.WriteConfig(path, cfg)
}

func measure(o options, mode, addr string, pool *x509.CertPool, token string, redeploy func() error) (result, error) {
	img := testPNG(128, 96)
	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	clients := make([]*http.Client, o.clients)
	for i := range clients {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: i%2 == 1}
		clients[i] = &http.Client{Transport: tr, Timeout: 60 * time.Second}
	}
	load := loadgen.Start(ctx, loadgen.Options{Clients: o.clients, Backoff: o.backoff},
		func(_ context.Context, i int) (string, error) { return predict(clients[i], addr, token, img) })
	time.Sleep(o.duration / 2)
	call := time.Now()
	if err := redeploy(); err != nil {
		load.Stop()
		return result{}, fmt.Errorf("%s: redeploy: %w", mode, err)
	}
	callTook := time.Since(call)
	load.Wait()
	samples := load.Samples()

	r := result{mode: mode, callTook: callTook, failures: map[string]int{}}
	var firstNew time.Time
	for _, s := range samples {
		if s.Who == "new" && (firstNew.IsZero() || s.Start.Add(s.Took).Before(firstNew)) {
			firstNew = s.Start.Add(s.Took)
		}
	}
	if firstNew.IsZero() {
		return r, fmt.Errorf("%s: the new revision never answered", mode)
	}
	r.toNew = firstNew.Sub(call)
	// "During": requests started from the redeploy call until the new
	// revision answered and the call returned (at least 1 s).
	end := firstNew
	if e := call.Add(max(callTook, time.Second)); e.After(end) {
		end = e
	}
	var before, during []time.Duration
	warm := call.Add(-o.duration/2 + 5*time.Second) // the first 5 s warm up
	for _, s := range samples {
		if s.Err != "" {
			r.failed++
			r.failures[shortErr(s.Err)]++
		} else {
			r.ok++
		}
		switch {
		case s.Start.After(warm) && s.Start.Before(call):
			before = append(before, s.Took)
		case !s.Start.Before(call) && s.Start.Before(end):
			during = append(during, s.Took)
		}
		if s.Who == "old" && s.Start.After(firstNew) {
			r.oldAfterNew++
		}
	}
	r.nBefore, r.nSwap = len(before), len(during)
	r.p99Before, r.p99Swap = loadgen.P99(before), loadgen.P99(during)
	for _, d := range during {
		r.maxSwap = max(r.maxSwap, d)
	}
	return r, nil
}

func shortErr(s string) string {
	for _, k := range []string{"connection refused", "connection reset", "EOF", "timeout", "503", "server closed"} {
		if strings.Contains(s, k) {
			return k
		}
	}
	if len(s) > 60 {
		s = s[:60]
	}
	return s
}

// predict posts img; who is "old" (the disc's centre is white) or "new".
func predict(c *http.Client, addr, token string, img []byte) (string, error) {
	return loadgen.PredictPNG(context.Background(), c, "https://"+addr+"/predict", token, img)
}

// waitReady polls /readyz until it answers 200 (stop-and-start's first server).
func waitReady(addr string, pool *x509.CertPool) error {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return inferapi.WaitReady(ctx, c, "https://"+addr)
}

// testPNG is a bright disc on a dark background.
func testPNG(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x-w/2), float64(y-h/2)
			c := color.RGBA{20, 20, 20, 255}
			if dx*dx+dy*dy < float64(h*h)/9 {
				c = color.RGBA{220, 220, 220, 255}
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// writeCert writes a self-signed certificate for 127.0.0.1 and returns a
// pool that trusts it.
func writeCert(certFile, keyFile string) (*x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "swapbench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool, nil
}

// report prints the results as a Markdown table.
func report(w io.Writer, o options, rs []result) {
	fmt.Fprintf(w, "%d clients for %s per mode, redeploy at %s; %d Python workers; __init__ + %s; a failed client waits %s\n\n",
		o.clients, o.duration, o.duration/2, o.threads, o.initSleep, o.backoff)
	fmt.Fprintln(w, "| mode | requests ok | failed | p99 before (n) | p99 during the redeploy (n) | max during | redeploy call to the new revision's first answer | redeploy call took | old answers after the first new |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fails := ""
		if r.failed > 0 {
			var parts []string
			for k, v := range r.failures {
				parts = append(parts, fmt.Sprintf("%d %s", v, k))
			}
			sort.Strings(parts)
			fails = " (" + strings.Join(parts, ", ") + ")"
		}
		fmt.Fprintf(w, "| %s | %d | %d%s | %s (%d) | %s (%d) | %s | %s | %s | %d |\n", r.mode, r.ok, r.failed, fails,
			r.p99Before.Round(time.Millisecond), r.nBefore, r.p99Swap.Round(time.Millisecond), r.nSwap,
			r.maxSwap.Round(time.Millisecond), r.toNew.Round(time.Millisecond), r.callTook.Round(time.Millisecond), r.oldAfterNew)
	}
}
