package revisions

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

func (e *endpoint) open(t *testing.T, opts Options) *Supervisor {
	t.Helper()
	opts.Dir = filepath.Join(e.dir, "agent")
	opts.Listen = e.addr
	opts.Command = []string{inferBin}
	if opts.ReadyTimeout == 0 {
		opts.ReadyTimeout = time.Minute
	}
	opts.Log = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	s, err := Open(context.Background(), opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = s.Stop(ctx)
		s.Close()
	})
	return s
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// TestSwapUnderLoad: 4 clients (HTTP/1.1 and HTTP/2) send requests back to
// back while the endpoint swaps to a revision with other code (an inverted
// mask), another venv and another thread count: no request fails, answers
// move from the old revision to the new, a slow request (3 s) the old one
// took before the swap completes, and the old process exits after draining.
func TestSwapUnderLoad(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 2, nil)
	r2 := e.revision(t, "r2", venv(t, filepath.Join(e.dir, "venv2")), 1, func(s string) string {
		return strings.Replace(s, "return gray > t", inverted, 1)
	})
	s := e.open(t, Options{})
	require.NoError(t, s.Start(context.Background(), r1))
	st := s.Status()
	require.NotNil(t, st.Serving)
	require.Equal(t, "r1", st.Serving.ID)
	oldPID := st.Serving.PID

	l := e.startLoad(t, 4)
	l.waitOK(t, 20)

	slow := make(chan error, 1)
	go func() {
		who, err := e.predict(context.Background(), e.client, testPNG(t, 7, 48))
		if err == nil && who != "old" {
			err = errUnexpected(who)
		}
		slow <- err
	}()
	time.Sleep(500 * time.Millisecond) // the slow request is in the old revision's worker

	start := time.Now()
	require.NoError(t, s.Swap(context.Background(), r2))
	t.Logf("swap took %s", time.Since(start))
	st = s.Status()
	require.Equal(t, "r2", st.Serving.ID)
	require.NotEqual(t, oldPID, st.Serving.PID)

	require.NoError(t, <-slow, "the slow request started before the swap")
	eventually(t, time.Minute, "the old revision exits", func() bool { _, ok := startTicks(oldPID); return !ok })
	eventually(t, 10*time.Second, "the state lists no draining revision", func() bool { return len(s.Status().Draining) == 0 })
	l.waitOK(t, 20)
	l.Stop()
	require.Empty(t, l.Failures(), "failed requests")
	require.Positive(t, l.Answers()["old"])
	require.Positive(t, l.Answers()["new"])
	for i, last := range l.Last() {
		require.Equal(t, "new", last, "client %d's last answer", i)
	}
	require.Equal(t, []int{st.Serving.PID}, e.servers(t), "one server process")
	t.Logf("answers: %v", l.Answers())

	log, err := os.ReadFile(filepath.Join(e.dir, "agent", "revisions", "r1", "server.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), `"msg":"stopped"`, "the old revision drained")
	require.NotContains(t, string(log), testToken)
}

type errUnexpected string

func (e errUnexpected) Error() string { return "answered by the " + string(e) + " revision" }

// TestSwapToFailingRevisionKeepsServing: a revision whose __init__ raises
// never serves; Swap returns its error with its log's tail; the serving
// revision keeps answering every request.
func TestSwapToFailingRevisionKeepsServing(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 1, nil)
	bad := e.revision(t, "bad", "/usr/bin/python3", 1, func(s string) string {
		return strings.Replace(s, "    def __init__(self):\n", "    def __init__(self):\n        raise RuntimeError('boom: the model file is missing')\n", 1)
	})
	s := e.open(t, Options{ReadyTimeout: 15 * time.Second})
	require.NoError(t, s.Start(context.Background(), r1))
	pid := s.Status().Serving.PID
	l := e.startLoad(t, 4)
	l.waitOK(t, 10)

	err := s.Swap(context.Background(), bad)
	require.Error(t, err)
	require.Contains(t, err.Error(), "boom: the model file is missing")
	require.Contains(t, err.Error(), "revision bad did not start")
	st := s.Status()
	require.Equal(t, "r1", st.Serving.ID)
	require.Equal(t, pid, st.Serving.PID)
	require.Nil(t, st.Starting)
	require.Contains(t, st.LastError, "boom")
	require.Equal(t, []int{pid}, e.servers(t), "the failed revision's server is gone")

	// One that is not ready in time is killed too.
	hung := e.revision(t, "hung", "/usr/bin/python3", 1, func(s string) string {
		return strings.Replace(s, "    def __init__(self):\n", "    def __init__(self):\n        import time; time.sleep(600)\n", 1)
	})
	err = s.Swap(context.Background(), hung)
	require.ErrorContains(t, err, "revision hung did not start: not ready within 15s")
	require.Equal(t, pid, s.Status().Serving.PID)
	require.Equal(t, []int{pid}, e.servers(t), "the hung revision's server is gone")

	l.waitOK(t, 10)
	l.Stop()
	require.Empty(t, l.Failures())
	require.Zero(t, l.Answers()["new"])
}

// TestCrashedServingRevisionRestarts: kill -9 of the serving revision's
// server: it is started again (with backoff), the port answers again, and
// the status counts the restart and keeps the crash as the last error.
func TestCrashedServingRevisionRestarts(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 1, nil)
	s := e.open(t, Options{MinBackoff: 100 * time.Millisecond})
	require.NoError(t, s.Start(context.Background(), r1))
	pid := s.Status().Serving.PID
	require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	eventually(t, time.Minute, "a restarted server", func() bool {
		st := s.Status()
		return st.Serving != nil && st.Serving.PID != pid && st.Serving.Restarts == 1
	})
	who, err := e.predict(context.Background(), e.client, testPNG(t, 64, 48))
	require.NoError(t, err)
	require.Equal(t, "old", who)
	require.Contains(t, s.Status().LastError, "was killed by killed")
	require.Len(t, e.servers(t), 1)
}

// TestRestartedSupervisorAdopts: a second supervisor on the same folder (the
// agent restarted) adopts the serving revision (same pid, listening socket
// taken back) and can swap from it.
func TestRestartedSupervisorAdopts(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 1, nil)
	r2 := e.revision(t, "r2", "/usr/bin/python3", 1, func(s string) string {
		return strings.Replace(s, "return gray > t", inverted, 1)
	})
	opts := Options{Dir: filepath.Join(e.dir, "agent"), Listen: e.addr, Command: []string{inferBin}, ReadyTimeout: time.Minute}
	first, err := Open(context.Background(), opts)
	require.NoError(t, err)
	require.NoError(t, first.Start(context.Background(), r1))
	pid := first.Status().Serving.PID
	_, err = Open(context.Background(), opts)
	require.ErrorContains(t, err, "another agent runs on", "one supervisor per folder")
	first.Close() // the agent exits; the revision keeps serving

	l := e.startLoad(t, 2)
	l.waitOK(t, 5)
	s := e.open(t, Options{})
	require.Equal(t, pid, s.Status().Serving.PID)
	require.NoError(t, s.Swap(context.Background(), r2))
	eventually(t, time.Minute, "the adopted revision exits", func() bool { _, ok := startTicks(pid); return !ok })
	l.waitOK(t, 5)
	l.Stop()
	require.Empty(t, l.Failures())
	require.Equal(t, []int{s.Status().Serving.PID}, e.servers(t))
}

// TestSwapSandboxed: revisions whose workers run in the bubblewrap sandbox
// (each revision its own group, as the platform names them) swap under load
// like unconfined ones: the agent passes the sandbox through unchanged. Two
// revisions sharing a group are refused before anything starts.
func TestSwapSandboxed(t *testing.T) {
	testenv.RequireSandbox(t)
	e := newEndpoint(t)
	box := func(id string) *sandbox.Config {
		return &sandbox.Config{Mode: sandbox.ModeBwrap, Network: sandbox.NetNone, Group: fmt.Sprintf("swap-test-%d.live.%s", os.Getpid(), id),
			Limits: sandbox.Limits{Label: "test", MemoryBytes: 512 << 20, Pids: 64, CPUs: 1}}
	}
	r1 := e.revisionIn(t, "r1", "/usr/bin/python3", 1, box("r1"), nil)
	r2 := e.revisionIn(t, "r2", "/usr/bin/python3", 1, box("r2"), func(s string) string {
		return strings.Replace(s, "return gray > t", inverted, 1)
	})
	same := e.revisionIn(t, "same", "/usr/bin/python3", 1, box("r1"), nil)
	s := e.open(t, Options{})
	require.NoError(t, s.Start(context.Background(), r1))
	l := e.startLoad(t, 4)
	l.waitOK(t, 10)

	err := s.Swap(context.Background(), same)
	require.ErrorContains(t, err, "each revision needs its own")
	require.NoError(t, s.Swap(context.Background(), r2))
	l.waitOK(t, 20)
	l.Stop()
	require.Empty(t, l.Failures())
	require.Positive(t, l.Answers()["new"])
	log, err := os.ReadFile(filepath.Join(e.dir, "agent", "revisions", "r2", "server.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), `"msg":"python workers run","api":"otsu","sandbox":"bwrap"`)
}

// TestRestartedSupervisorFinishesDrain: the agent goes away right after a
// swap's commit, while the old revision still finishes a slow request: the
// next supervisor lists it as draining and sees it exit, the request
// completes, and the new revision serves on.
func TestRestartedSupervisorFinishesDrain(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 1, nil)
	r2 := e.revision(t, "r2", "/usr/bin/python3", 1, func(s string) string {
		return strings.Replace(s, "return gray > t", inverted, 1)
	})
	opts := Options{Dir: filepath.Join(e.dir, "agent"), Listen: e.addr, Command: []string{inferBin}, ReadyTimeout: time.Minute}
	first, err := Open(context.Background(), opts)
	require.NoError(t, err)
	require.NoError(t, first.Start(context.Background(), r1))
	oldPID := first.Status().Serving.PID
	slow := make(chan error, 1)
	go func() {
		who, err := e.predict(context.Background(), e.client, testPNG(t, 7, 48))
		if err == nil && who != "old" {
			err = errUnexpected(who)
		}
		slow <- err
	}()
	time.Sleep(500 * time.Millisecond)
	require.NoError(t, first.Swap(context.Background(), r2))
	newPID := first.Status().Serving.PID
	first.Close()

	s := e.open(t, Options{})
	st := s.Status()
	require.Equal(t, newPID, st.Serving.PID)
	require.Len(t, st.Draining, 1)
	require.Equal(t, oldPID, st.Draining[0].PID)
	require.NoError(t, <-slow)
	eventually(t, time.Minute, "the drained revision leaves the state", func() bool { return len(s.Status().Draining) == 0 })
	require.Equal(t, []int{newPID}, e.servers(t))
	who, err := e.predict(context.Background(), e.client, testPNG(t, 64, 48))
	require.NoError(t, err)
	require.Equal(t, "new", who)
}

// TestTrimLog: a log past its bound moves to .1 and starts again empty;
// one under it is left alone.
func TestTrimLog(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "server.log")
	f, err := openLog(path)
	require.NoError(t, err)
	defer f.Close()
	_, err = f.WriteString(strings.Repeat("x", 100))
	require.NoError(t, err)
	trimLog(path, 200)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.EqualValues(t, 100, st.Size())
	_, err = f.WriteString(strings.Repeat("y", 150) + "\nlast line\n")
	require.NoError(t, err)
	trimLog(path, 200)
	old, err := os.ReadFile(path + ".1")
	require.NoError(t, err)
	require.Len(t, old, 261)
	_, err = f.WriteString("after\n") // the server's O_APPEND goes on at the new end
	require.NoError(t, err)
	cur, err := os.ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, "after\n", string(cur))
	require.Equal(t, "after", logTail(path))
}

// TestWorkersDoNotInheritTheSocket: the listening socket and the socket
// pair to the agent stay in the inference server; its Python workers (author
// code) get neither, so they can neither accept the endpoint's connections
// nor keep the port open.
func TestWorkersDoNotInheritTheSocket(t *testing.T) {
	e := newEndpoint(t)
	code := filepath.Join(e.dir, "fds", "code")
	require.NoError(t, os.MkdirAll(code, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, "aai_main.py"), []byte(`import os
class AAI:
    def predict(self, x):
        fds = {}
        for fd in os.listdir('/proc/self/fd'):
            try:
                fds[fd] = os.readlink('/proc/self/fd/' + fd)
            except OSError:
                pass
        return fds
    def testing_input_data(self):
        return {}
`), 0o644))
	sum := sha256.Sum256([]byte(testToken))
	cfg := filepath.Join(e.dir, "fds", "inference.json")
	require.NoError(t, inferapi.WriteConfig(cfg, inferapi.Config{Name: "fds", CertFile: e.cert, KeyFile: e.key,
		TokenSHA256: hex.EncodeToString(sum[:]), CodeDir: code, Python: "/usr/bin/python3", Threads: 1, Input: spec.JSON, Output: spec.JSON}))
	s := e.open(t, Options{})
	require.NoError(t, s.Start(context.Background(), Revision{ID: "fds", Config: cfg}))
	var st syscall.Stat_t
	require.NoError(t, syscall.Fstat(int(s.lnFile.Fd()), &st))
	sock := fmt.Sprintf("socket:[%d]", st.Ino)
	flags, err := unix.FcntlInt(s.lnFile.Fd(), unix.F_GETFL, 0)
	require.NoError(t, err)
	require.NotZero(t, flags&unix.O_NONBLOCK, "the shared socket stays non-blocking (a blocking one hangs the serving revision's drain)")

	req, err := http.NewRequest(http.MethodPost, "https://"+e.addr+"/predict", strings.NewReader("{}"))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := e.client.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	var fds map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&fds))
	require.NotEmpty(t, fds)
	for fd, target := range fds {
		require.NotEqual(t, sock, target, "the worker holds the listening socket as fd %s", fd)
	}
	// The server itself keeps it (a restarted agent takes it back from there).
	target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%d", s.Status().Serving.PID, listenFD))
	require.NoError(t, err)
	require.Equal(t, sock, target)
	t.Logf("worker fds: %v", fds)

	// With no request coming, the drain ends at once (a blocking socket
	// left the server's accept, and so its drain, waiting for a connection).
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, s.Stop(ctx))
	require.Less(t, time.Since(start), 15*time.Second)
}
