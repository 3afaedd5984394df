package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
)

// The test binary doubles as the service the provider runs (so these tests
// depend on no other package) and as a stand-in platform process.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("LOCAL_TEST_SERVE") == "1":
		serve()
	case os.Getenv("LOCAL_TEST_PLATFORM") != "":
		platform(os.Getenv("LOCAL_TEST_PLATFORM"))
	default:
		os.Exit(m.Run())
	}
}

// serve reads --config's "listen" and answers GET /healthz until SIGTERM
// (which it ignores with LOCAL_TEST_IGNORE_TERM=1).
func serve() {
	var path string
	for i, a := range os.Args {
		if a == "--config" && i+1 < len(os.Args) {
			path = os.Args[i+1]
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(2)
	}
	var cfg struct {
		Listen string `json:"listen"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(2)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		os.Exit(3)
	}
	fmt.Println("serving on", cfg.Listen)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	if os.Getenv("LOCAL_TEST_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintf(w, "ok %d\n", os.Getpid())
			return
		}
		http.NotFound(w, r)
	})}
	go func() { _ = srv.Serve(l) }()
	<-term
	fmt.Println("SIGTERM: shutting down")
	_ = srv.Close()
	os.Exit(0)
}

// platform starts one service with a Provider, prints its pid and waits to be
// killed: the test checks that the service dies with it (Pdeathsig).
func platform(dataDir string) {
	exe, _ := os.Executable()
	p, err := New(Options{DataDir: dataDir, Command: []string{exe}, Env: []string{"LOCAL_TEST_SERVE=1"}})
	if err == nil {
		var s compute.Server
		if s, err = p.Provision(context.Background(), compute.ServerSpec{DeploymentID: "pdeath"}); err == nil {
			cfg := filepath.Join(s.Workdir, "live.json")
			if err = os.WriteFile(cfg, []byte(`{"listen":""}`), 0o600); err == nil {
				var h compute.Handle
				if h, err = p.Start(context.Background(), compute.ServiceSpec{Server: s, Name: "live", ConfigFile: cfg}); err == nil {
					fmt.Printf("pid %d %s\n", h.PID, cfg)
					select {}
				}
			}
		}
	}
	fmt.Println("error", err)
	os.Exit(1)
}

// newTestProvider makes a Provider over dataDir that runs this test binary
// as the service, with short backoffs; it is closed when the test ends.
func newTestProvider(t *testing.T, dataDir string, edit ...func(*Options)) *Provider {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	opts := Options{
		DataDir:    dataDir,
		Command:    []string{exe},
		Env:        []string{"LOCAL_TEST_SERVE=1", "GORACE=atexit_sleep_ms=0"},
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		StopGrace:  5 * time.Second,
		MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond,
	}
	for _, e := range edit {
		e(&opts)
	}
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, p.Close()) })
	return p
}

// writeConfig writes a minimal service config into the server's folder.
func writeConfig(t *testing.T, s compute.Server, name string) string {
	t.Helper()
	path := filepath.Join(s.Workdir, name+"-config.json")
	require.NoError(t, os.WriteFile(path, []byte(`{"name":"test","listen":"","threads":1}`), 0o600))
	return path
}

// healthz returns nil when the service at h answers /healthz.
func healthz(ctx context.Context, h compute.Handle) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.Address+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("healthz: %s: %s", resp.Status, body)
	}
	return nil
}

func waitHealthy(t *testing.T, h compute.Handle) {
	t.Helper()
	var last error
	require.Eventually(t, func() bool {
		last = healthz(context.Background(), h)
		return last == nil
	}, 30*time.Second, 20*time.Millisecond, "service at %s never answered", h.Address)
}

func waitGoneOrFail(t *testing.T, pid int, config string) {
	t.Helper()
	require.Eventually(t, func() bool { return !isOurs(pid, config) }, 30*time.Second, 20*time.Millisecond, "pid %d still runs", pid)
}

func requirePermanent(t *testing.T, err error) {
	t.Helper()
	var pe *compute.PermanentError
	require.True(t, errors.As(err, &pe), "want *compute.PermanentError, got %v", err)
}
