// Package testmoto gives tests a real, throwaway moto server: moto's
// implementation of the AWS APIs (EC2 among them), run as `moto_server` on a
// free 127.0.0.1 port and stopped when the test ends.
//
// moto_server (moto 5.x with its server extra) is installed by scripts/moto.sh
// (run by scripts/setup-test.sh), which looks where find does, in the same
// order. Where it is missing the test FAILS rather than skips, so a machine
// that cannot run the EC2 tests is noticed.
//
// moto hands out made-up public and 10.x addresses for instances: tests never
// connect to them.
package testmoto

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/algocloud/algocloud/internal/testenv"
)

// Binary is the command started: found on PATH, else in pyenv's shims.
const Binary = "moto_server"

// InstallHint says how to get moto_server where it is missing.
const InstallHint = "moto_server not found on PATH, in scripts/moto.sh's venv or among pyenv's shims: " +
	"run scripts/moto.sh, or install moto with its server extra into a Python on PATH " +
	"(`pip install 'moto[server]'`, moto 5.x)"

// Server is a running moto_server.
type Server struct {
	// Endpoint is the base URL AWS SDK clients use (http://127.0.0.1:PORT).
	Endpoint string

	cmd    *exec.Cmd
	log    *bytes.Buffer
	logMu  *sync.Mutex
	exited chan struct{}
}

// Credentials are moto's conventional fake credentials. Passing them to an
// AWS SDK client keeps the SDK away from the instance metadata service and
// this machine's files, and moto accepts any.
var Credentials = credentials.NewStaticCredentialsProvider("testing", "testing", "")

// UseEnvCredentials is for tests of code that takes its AWS credentials from
// the SDK's standard chain (the platform's processes do, as in production):
// for the rest of t, and in the processes it starts, the chain finds moto's
// fake credentials in the environment and nothing else, neither this
// machine's config and credentials files nor an instance metadata service.
func UseEnvCredentials(t testing.TB) {
	t.Helper()
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none"),
		// Set first so that t restores them, then unset: an empty
		// AWS_PROFILE is not the same as none.
		"AWS_SESSION_TOKEN": "", "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	os.Unsetenv("AWS_SESSION_TOKEN")
	os.Unsetenv("AWS_PROFILE")
}

// Env is the environment moto_server runs with: it turns on the validations
// that real EC2 does and moto does not by default (unknown AMIs and instance
// types are refused, as on AWS).
var Env = []string{
	"MOTO_ENABLE_AMI_VALIDATION=true",
	"MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION=true",
}

var (
	mainActive atomic.Bool
	sharedOnce sync.Once
	shared     *Server
	sharedErr  error
)

// Main runs the package's tests (m.Run) with one moto server shared by all
// of them, started on first use, stops it, and exits with the tests' status.
// Call it from TestMain; tests sharing a server keep apart by using their
// own resource names (deployment IDs).
func Main(m *testing.M) {
	mainActive.Store(true)
	code := m.Run()
	if shared != nil {
		if err := shared.stop(); err != nil {
			fmt.Fprintf(os.Stderr, "testmoto: %v\n", err)
		}
	}
	os.Exit(code)
}

// Start returns a running moto server: the package's shared one under Main,
// else one of the test's own, stopped in t.Cleanup. It fails the test when
// moto_server is missing or does not answer.
func Start(t testing.TB) *Server {
	t.Helper()
	if mainActive.Load() {
		sharedOnce.Do(func() { shared, sharedErr = start() })
		if sharedErr != nil {
			t.Fatalf("testmoto: %v", sharedErr)
		}
		return shared
	}
	s, err := start()
	if err != nil {
		t.Fatalf("testmoto: %v", err)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testmoto: %v", err)
		}
	})
	return s
}

// find looks for moto_server on PATH, then in the venv scripts/moto.sh makes
// (where there is no Debian package), then among pyenv's shims (a shell that
// did not run pyenv's init has them off PATH). scripts/moto.sh looks in the
// same order: keep them together.
func find() (string, error) {
	if bin, err := exec.LookPath(Binary); err == nil {
		return bin, nil
	}
	home, _ := os.UserHomeDir()
	data := os.Getenv("XDG_DATA_HOME")
	if data == "" {
		data = filepath.Join(home, ".local", "share")
	}
	root := os.Getenv("PYENV_ROOT")
	if root == "" {
		root = filepath.Join(home, ".pyenv")
	}
	for _, bin := range []string{
		filepath.Join(data, "algocloud", "moto", "bin", Binary),
		filepath.Join(root, "shims", Binary),
	} {
		if st, err := os.Stat(bin); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return bin, nil
		}
	}
	return "", errors.New(InstallHint)
}

func start() (*Server, error) {
	bin, err := find()
	if err != nil {
		return nil, err
	}
	// The port is free when picked but may be taken before moto binds it: retry.
	for attempt := 0; ; attempt++ {
		s, err := launch(bin)
		if err == nil || attempt == 2 {
			return s, err
		}
	}
}

type lockedWriter struct {
	mu  *sync.Mutex
	buf *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() > 1<<20 { // keep the tail only
		w.buf.Reset()
	}
	return w.buf.Write(p)
}

func launch(bin string) (*Server, error) {
	port, err := testenv.FindFreePort()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Endpoint: "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		log:      &bytes.Buffer{},
		logMu:    &sync.Mutex{},
		exited:   make(chan struct{}),
	}
	s.cmd = exec.Command(bin, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	s.cmd.Env = append(os.Environ(), Env...)
	w := lockedWriter{mu: s.logMu, buf: s.log}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	s.cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies (timeout, ^C), the kernel stops moto too.
		// The pyenv shim execs Python in place, so the signal reaches it.
		Pdeathsig: syscall.SIGKILL,
	}
	started := make(chan error, 1)
	go func() {
		// Pdeathsig fires when the thread that started the child exits: keep
		// this goroutine on its thread for as long as moto runs.
		runtime.LockOSThread()
		if err := s.cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	if err := s.waitReady(60 * time.Second); err != nil {
		_ = s.stop()
		return nil, fmt.Errorf("%w\nmoto_server output:\n%s", err, s.Output())
	}
	return s, nil
}

// waitReady polls moto's own API until it answers, moto exits, or timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/moto-api/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("moto-api answered %s", resp.Status)
		}
		select {
		case <-s.exited:
			return errors.New("moto_server exited during start")
		case <-ctx.Done():
			return fmt.Errorf("moto_server not ready after %s: %w", timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Output returns what moto_server printed (its request log), for failure messages.
func (s *Server) Output() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// stop kills moto's process group and waits for it.
func (s *Server) stop() error {
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-s.exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("moto_server (pid %d) did not exit", s.cmd.Process.Pid)
	}
}
