package revisions

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// agentProc is `algocloud-infer agent` run as its own process.
type agentProc struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	log  *bytes.Buffer
}

func (e *endpoint) startAgent(t *testing.T) *agentProc {
	t.Helper()
	dir := filepath.Join(e.dir, "agent")
	a := &agentProc{dir: dir, done: make(chan struct{}), log: &bytes.Buffer{}}
	a.cmd = exec.Command(inferBin, "agent", "--dir", dir, "--listen", e.addr, "--ready-timeout", "1m")
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, a.cmd.Start())
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(func() {
		_ = a.cmd.Process.Kill()
		<-a.done
	})
	eventually(t, 30*time.Second, "the agent's control socket answers", func() bool {
		status, _ := a.call(t, http.MethodGet, "/v1/status", nil)
		return status == http.StatusOK
	})
	return a
}

// call sends one command to the agent's control socket.
func (a *agentProc) call(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	sock := filepath.Join(a.dir, "agent.sock")
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}, Timeout: 2 * time.Minute}
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://agent"+path, r)
	require.NoError(t, err)
	res, err := c.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

func (a *agentProc) status(t *testing.T) Status {
	t.Helper()
	code, b := a.call(t, http.MethodGet, "/v1/status", nil)
	require.Equal(t, http.StatusOK, code, string(b))
	var st Status
	require.NoError(t, json.Unmarshal(b, &st))
	return st
}

// TestAgentKilledMidSwap: kill -9 of the agent process while a swap is
// starting the new revision: the serving revision keeps answering (no
// request fails), the half-started one goes away (it never accepted), and
// the restarted agent adopts the serving revision (same pid), so that there
// is exactly one serving process; the swap sent again then succeeds.
func TestAgentKilledMidSwap(t *testing.T) {
	e := newEndpoint(t)
	r1 := e.revision(t, "r1", "/usr/bin/python3", 1, nil)
	r2 := e.revision(t, "r2", "/usr/bin/python3", 1, func(s string) string {
		s = strings.Replace(s, "return gray > t", inverted, 1)
		return strings.Replace(s, "    def __init__(self):\n", "    def __init__(self):\n        import time; time.sleep(3)\n", 1)
	})
	a := e.startAgent(t)
	code, b := a.call(t, http.MethodPost, "/v1/start", r1)
	require.Equal(t, http.StatusOK, code, string(b))
	pid := a.status(t).Serving.PID

	l := e.startLoad(t, 4)
	l.waitOK(t, 10)
	go a.call(t, http.MethodPost, "/v1/swap", r2) // interrupted: its answer never comes
	var starting int
	eventually(t, 30*time.Second, "the swap starts r2", func() bool {
		st := a.status(t)
		if st.Starting != nil {
			starting = st.Starting.PID
		}
		return starting != 0
	})
	require.NoError(t, syscall.Kill(a.cmd.Process.Pid, syscall.SIGKILL))
	<-a.done
	l.waitOK(t, 10) // served without an agent

	a = e.startAgent(t)
	st := a.status(t)
	require.NotNil(t, st.Serving)
	require.Equal(t, "r1", st.Serving.ID)
	require.Equal(t, pid, st.Serving.PID, "the serving revision is adopted, not started again")
	require.Nil(t, st.Starting)
	eventually(t, 30*time.Second, "the interrupted swap's server is gone", func() bool { _, ok := startTicks(starting); return !ok })
	require.Equal(t, []int{pid}, e.servers(t), "exactly one server process")
	l.waitOK(t, 10)

	// The swap, sent again, completes.
	code, b = a.call(t, http.MethodPost, "/v1/swap", r2)
	require.Equal(t, http.StatusOK, code, string(b))
	eventually(t, time.Minute, "one server, r2's", func() bool {
		pids := e.servers(t)
		return len(pids) == 1 && pids[0] == a.status(t).Serving.PID
	})
	l.waitOK(t, 10)
	l.Stop()
	require.Empty(t, l.Failures(), "failed requests")
	for i, last := range l.Last() {
		require.Equal(t, "new", last, "client %d", i)
	}

	// Bad commands are refused with a code naming what is wrong.
	code, b = a.call(t, http.MethodPost, "/v1/swap", map[string]string{"id": "../x", "config": r2.Config})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, string(b), "invalid_revision")
	code, _ = a.call(t, http.MethodPost, "/v1/start", r1)
	require.Equal(t, http.StatusConflict, code, "start while a revision serves")

	code, b = a.call(t, http.MethodPost, "/v1/stop", nil)
	require.Equal(t, http.StatusOK, code, string(b))
	require.Empty(t, e.servers(t))
	_, err := net.DialTimeout("tcp", e.addr, time.Second)
	require.Error(t, err, "the port is closed once stopped")
	_ = os.Remove(filepath.Join(a.dir, "agent.sock"))
}
