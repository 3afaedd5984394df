package local

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/computetest"
)

func TestProviderContract(t *testing.T) {
	p := newTestProvider(t, t.TempDir())
	computetest.Run(t, p, computetest.Suite{
		WriteConfig: writeConfig,
		Check:       healthz,
		Timeout:     30 * time.Second,
	})
}

func TestProvision(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p := newTestProvider(t, dir)

	s1, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-1"})
	require.NoError(t, err)
	require.Equal(t, compute.Server{Provider: "local", ID: "dep-1", Host: "127.0.0.1", Port: s1.Port, Workdir: filepath.Join(dir, "servers", "dep-1")}, s1)
	require.NotZero(t, s1.Port)
	require.DirExists(t, filepath.Join(s1.Workdir, "run"))
	require.DirExists(t, filepath.Join(s1.Workdir, "logs"))
	require.FileExists(t, filepath.Join(s1.Workdir, "server.json"))

	again, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-1"})
	require.NoError(t, err)
	require.Equal(t, s1, again)
	s2, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-2"})
	require.NoError(t, err)
	require.NotEqual(t, s1.Port, s2.Port)

	// Another Provider over the same folder (a platform restart) sees the same server.
	later := newTestProvider(t, dir)
	again, err = later.Provision(ctx, compute.ServerSpec{DeploymentID: "dep-1"})
	require.NoError(t, err)
	require.Equal(t, s1, again)

	for _, id := range []string{"", "..", "../evil", "a/b", ".hidden", "a..b", "/abs", "x\x00y", strings.Repeat("a", 200)} {
		_, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: id})
		requirePermanent(t, err)
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "nothing created outside servers/")
}

func TestStart_ServesAndReattaches(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir(), func(o *Options) { o.Limits.NoFile = 1000 })
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	cfg := writeConfig(t, s, "live")
	spec := compute.ServiceSpec{Server: s, Name: "live", Port: s.Port, ConfigFile: cfg}

	h, err := p.Start(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)), h.Address)
	require.NotZero(t, h.PID)
	waitHealthy(t, h)

	// The config now says where to listen; other fields are kept.
	var c map[string]any
	b, err := os.ReadFile(cfg)
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &c))
	require.Equal(t, h.Address, c["listen"])
	require.Equal(t, "test", c["name"])

	again, err := p.Start(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, h, again, "same pid, no second process")

	limits, err := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/limits")
	require.NoError(t, err)
	require.Regexp(t, `Max core file size\s+0\s+0`, string(limits))
	require.Regexp(t, `Max open files\s+1000\s+1000`, string(limits))

	pgid, err := syscall.Getpgid(h.PID)
	require.NoError(t, err)
	require.Equal(t, h.PID, pgid, "own process group")

	require.NoError(t, p.Stop(ctx, h))
	waitGoneOrFail(t, h.PID, cfg)
	_, err = p.Status(ctx, h)
	require.ErrorIs(t, err, compute.ErrNotFound)
	log, err := os.ReadFile(filepath.Join(s.Workdir, "logs", "live.log"))
	require.NoError(t, err)
	require.Contains(t, string(log), "serving on "+h.Address)
	require.Contains(t, string(log), "SIGTERM: shutting down")
	require.NoFileExists(t, p.recordPath(s.ID, "live"))
}

func TestStart_PortZeroIsPickedAndKept(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir())
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	spec := compute.ServiceSpec{Server: s, Name: "test", ConfigFile: writeConfig(t, s, "test")}
	h, err := p.Start(ctx, spec)
	require.NoError(t, err)
	require.NotEqual(t, net.JoinHostPort("127.0.0.1", "0"), h.Address)
	waitHealthy(t, h)

	// Killed without Restart: it reads as exited, and Start brings it back on
	// the same port.
	require.NoError(t, syscall.Kill(h.PID, syscall.SIGKILL))
	require.Eventually(t, func() bool {
		st, err := p.Status(ctx, h)
		return err == nil && st.State == compute.Exited && strings.Contains(st.Detail, "killed")
	}, 30*time.Second, 20*time.Millisecond)
	st, err := p.Status(ctx, h)
	require.NoError(t, err)
	require.Zero(t, st.Restarts, "no restarts without Restart")

	h2, err := p.Start(ctx, spec)
	require.NoError(t, err)
	require.NotEqual(t, h.PID, h2.PID)
	require.Equal(t, h.Address, h2.Address)
	waitHealthy(t, h2)
}

func TestSupervisor_RestartsKilledService(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir())
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	spec := compute.ServiceSpec{Server: s, Name: "live", Port: s.Port, ConfigFile: writeConfig(t, s, "live"), Restart: true}
	h, err := p.Start(ctx, spec)
	require.NoError(t, err)
	waitHealthy(t, h)

	for round := 1; round <= 2; round++ {
		old := h.PID
		require.NoError(t, syscall.Kill(old, syscall.SIGKILL))
		require.Eventually(t, func() bool {
			st, err := p.Status(ctx, h)
			return err == nil && st.State == compute.Running && st.Restarts == round
		}, 30*time.Second, 20*time.Millisecond, "round %d", round)
		h, err = p.Start(ctx, spec) // re-attaches, and tells the new pid
		require.NoError(t, err)
		require.NotEqual(t, old, h.PID)
		waitHealthy(t, h)
	}
	rec, err := p.readRecord(s.ID, "live")
	require.NoError(t, err)
	require.Equal(t, 2, rec.Restarts)
	require.Equal(t, h.PID, rec.PID)

	require.NoError(t, p.Stop(ctx, h))
	waitGoneOrFail(t, h.PID, spec.ConfigFile)
}

func TestStop_EscalatesToSIGKILL(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir(), func(o *Options) {
		o.Env = append(o.Env, "LOCAL_TEST_IGNORE_TERM=1")
		o.StopGrace = 200 * time.Millisecond
	})
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	spec := compute.ServiceSpec{Server: s, Name: "live", ConfigFile: writeConfig(t, s, "live"), Restart: true}
	h, err := p.Start(ctx, spec)
	require.NoError(t, err)
	waitHealthy(t, h)
	require.NoError(t, p.Stop(ctx, h))
	require.False(t, isOurs(h.PID, spec.ConfigFile))
	require.NoError(t, p.Stop(ctx, h))
}

func TestRelease_RemovesFolder(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir())
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	cfg := writeConfig(t, s, "live")
	h, err := p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live", ConfigFile: cfg, Restart: true})
	require.NoError(t, err)
	waitHealthy(t, h)

	require.NoError(t, p.Release(ctx, s))
	require.NoDirExists(t, s.Workdir)
	require.False(t, isOurs(h.PID, cfg))
	require.NoError(t, p.Release(ctx, s))
	_, err = p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live", ConfigFile: cfg})
	require.ErrorIs(t, err, compute.ErrNotFound)
}

// A new Provider over the same folder (a platform restart, or another worker)
// re-attaches to a service the first one started, and stopping it there is
// not undone by the first one's supervisor.
func TestNewProvider_ReattachesToRunningService(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p1 := newTestProvider(t, dir)
	s, err := p1.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	spec := compute.ServiceSpec{Server: s, Name: "live", Port: s.Port, ConfigFile: writeConfig(t, s, "live"), Restart: true}
	h1, err := p1.Start(ctx, spec)
	require.NoError(t, err)
	waitHealthy(t, h1)

	p2 := newTestProvider(t, dir)
	st, err := p2.Status(ctx, h1)
	require.NoError(t, err)
	require.Equal(t, compute.Running, st.State)
	h2, err := p2.Start(ctx, spec)
	require.NoError(t, err)
	require.Equal(t, h1, h2, "re-attached: same pid and address")

	require.NoError(t, p2.Stop(ctx, h2))
	waitGoneOrFail(t, h1.PID, spec.ConfigFile)

	// p1's supervisor saw the exit, found the pid file gone and gave up.
	p1.mu.Lock()
	sv := p1.services[key(s.ID, "live")]
	p1.mu.Unlock()
	require.NotNil(t, sv)
	select {
	case <-sv.done:
	case <-time.After(30 * time.Second):
		t.Fatal("first provider's supervisor still running")
	}
	_, err = p2.Status(ctx, h1)
	require.ErrorIs(t, err, compute.ErrNotFound)
	require.Error(t, healthz(ctx, h1), "nobody restarted it")
}

// Close stops the services but keeps their records; Resume on the next
// Provider brings Restart services back on the same address.
func TestCloseAndResume(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	p1 := newTestProvider(t, dir)
	s, err := p1.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	spec := compute.ServiceSpec{Server: s, Name: "live", Port: s.Port, ConfigFile: writeConfig(t, s, "live"), Restart: true}
	h1, err := p1.Start(ctx, spec)
	require.NoError(t, err)
	waitHealthy(t, h1)

	require.NoError(t, p1.Close())
	require.False(t, isOurs(h1.PID, spec.ConfigFile), "Close stops the children")
	require.NoError(t, p1.Close())
	_, err = p1.Start(ctx, spec)
	require.Error(t, err)

	p3 := newTestProvider(t, dir)
	st, err := p3.Status(ctx, h1)
	require.NoError(t, err)
	require.Equal(t, compute.Exited, st.State)
	handles, err := p3.Resume(ctx)
	require.NoError(t, err)
	require.Len(t, handles, 1)
	require.Equal(t, h1.Address, handles[0].Address)
	require.NotEqual(t, h1.PID, handles[0].PID)
	waitHealthy(t, handles[0])
}

// The service dies with the platform process (Pdeathsig), even though the
// provider spawns from a goroutine.
func TestChildDiesWithPlatform(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "LOCAL_TEST_PLATFORM="+t.TempDir())
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	require.NoError(t, err)
	fields := strings.Fields(line)
	require.Len(t, fields, 3, line)
	require.Equal(t, "pid", fields[0], line)
	pid, err := strconv.Atoi(fields[1])
	require.NoError(t, err)
	require.True(t, isOurs(pid, fields[2]))

	require.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	waitGoneOrFail(t, pid, fields[2])
}

func TestLogWriter_Rotates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "svc.log")
	w := &logWriter{path: path, max: 100}
	line := []byte(strings.Repeat("x", 29) + "\n")
	for range 10 {
		n, err := w.Write(line)
		require.NoError(t, err)
		require.Equal(t, len(line), n)
	}
	w.Close()
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.LessOrEqual(t, st.Size(), int64(100))
	st, err = os.Stat(path + ".1")
	require.NoError(t, err)
	require.LessOrEqual(t, st.Size(), int64(100))

	// Reopened after Close, appending.
	_, _ = w.Write(line)
	w.Close()
	require.FileExists(t, path)
}

func TestValidation(t *testing.T) {
	ctx := context.Background()
	p := newTestProvider(t, t.TempDir())
	s, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: "dep"})
	require.NoError(t, err)
	cfg := writeConfig(t, s, "live")

	_, err = p.Start(ctx, compute.ServiceSpec{Server: s, Name: "../x", ConfigFile: cfg})
	requirePermanent(t, err)
	_, err = p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live", ConfigFile: "relative.json"})
	requirePermanent(t, err)
	other := s
	other.Provider = "ec2"
	_, err = p.Start(ctx, compute.ServiceSpec{Server: other, Name: "live", ConfigFile: cfg})
	requirePermanent(t, err)

	require.NoError(t, os.WriteFile(cfg, []byte("not json"), 0o600))
	_, err = p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live", ConfigFile: cfg})
	require.ErrorContains(t, err, "not a JSON object")

	_, err = New(Options{DataDir: t.TempDir()})
	require.Error(t, err)
	_, err = New(Options{Command: []string{"x"}})
	require.Error(t, err)
}
