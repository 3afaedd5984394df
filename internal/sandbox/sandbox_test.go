package sandbox

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// python is the interpreter the sandboxed probes run with.
func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	// The Debian interpreter under /usr: the sandbox sees /usr.
	if r, err := filepath.EvalSymlinks(p); err == nil && !strings.HasPrefix(r, "/usr/") {
		if _, err := os.Stat("/usr/bin/python3"); err == nil {
			return "/usr/bin/python3"
		}
	}
	return p
}

// requireSandbox skips where bubblewrap cannot run, unless the run insists
// (CI sets ALGOCLOUD_REQUIRE_SANDBOX=1: there a missing sandbox is a failure).
func requireSandbox(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_SANDBOX") != "" {
			t.Fatalf("sandbox unavailable: %v", err)
		}
		t.Skipf("sandbox unavailable: %v", err)
	}
}

var groupSeq int

func newLauncher(t *testing.T, net Network, lim Limits) *Launcher {
	t.Helper()
	requireSandbox(t)
	groupSeq++
	l, err := New(Config{Mode: ModeBwrap, Network: net, Group: fmt.Sprintf("test-%d-%d", os.Getpid(), groupSeq), Limits: lim, StateDir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// run runs a Python program in the sandbox with the given mounts and returns
// its output and exit error.
func run(t *testing.T, l *Launcher, prog string, mounts ...Mount) (string, error) {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "probe.py")
	require.NoError(t, os.WriteFile(file, []byte(prog), 0o644))
	var out bytes.Buffer
	cmd, err := l.Command(Command{Argv: []string{python(t), "-u", file}, Dir: dir,
		Mounts: append([]Mount{{Path: dir}}, mounts...), Stdout: &out, Stderr: &out})
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		cmd.Kill()
		t.Fatalf("probe did not finish; output so far:\n%s", out.String())
	}
	return out.String(), err
}

// TestHostileProbesFail runs a hostile program in the sandbox: every attempt
// on the platform fails, and what it may use works.
func TestHostileProbesFail(t *testing.T) {
	l := newLauncher(t, NetNone, Limits{Label: "test", MemoryBytes: 256 << 20, Pids: 64, CPUs: 1})

	// The platform's secrets: a 0600 file beside the mount, and a folder
	// of another server.
	data := t.TempDir()
	require.NoError(t, os.Chmod(data, 0o700))
	secret := filepath.Join(data, "root-key.pem")
	require.NoError(t, os.WriteFile(secret, []byte("SECRET"), 0o600))
	other := filepath.Join(data, "servers", "other", "code")
	require.NoError(t, os.MkdirAll(other, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(other, "aai_main.py"), []byte("OTHER"), 0o644))
	mine := filepath.Join(data, "servers", "mine", "code")
	require.NoError(t, os.MkdirAll(mine, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(mine, "aai_main.py"), []byte("MINE"), 0o644))
	// A platform service on loopback.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Setenv("ALGOCLOUD_PLATFORM_SECRET", "ENVSECRET")

	prog := fmt.Sprintf(`
import os, socket, signal, errno
def attempt(name, f):
    try:
        r = f()
        print(name, "SUCCEEDED", repr(r)[:80])
    except Exception as e:
        print(name, "failed:", type(e).__name__)
attempt("read-secret", lambda: open(%[1]q).read())
attempt("read-other", lambda: open(%[2]q).read())
print("data-listing", sorted(os.listdir(%[3]q)), sorted(os.listdir(%[3]q + "/servers")))
attempt("write-usr", lambda: open("/usr/evil", "w"))
attempt("write-mine", lambda: open(%[4]q, "w"))
attempt("connect-platform", lambda: socket.create_connection(("127.0.0.1", %[5]d), timeout=2))
attempt("kill-parent", lambda: os.kill(%[6]d, signal.SIGKILL))
attempt("setuid-root", lambda: os.setuid(0))
attempt("read-shadow", lambda: open("/etc/shadow").read())
print("mine", open(%[4]q).read())
print("env-secret", "ENVSECRET" in str(os.environ))
procs = [p for p in os.listdir("/proc") if p.isdigit()]
print("procs", len(procs))
print("environ-secret", any(b"ENVSECRET" in open("/proc/%%s/environ" %% p, "rb").read() for p in procs))
status = open("/proc/self/status").read()
print("nnp", [l for l in status.splitlines() if l.startswith("NoNewPrivs")][0].split()[1])
print("uid", os.getuid())
`, secret, filepath.Join(other, "aai_main.py"), data, filepath.Join(mine, "aai_main.py"),
		ln.Addr().(*net.TCPAddr).Port, os.Getpid())
	out, err := run(t, l, prog, Mount{Path: mine})
	require.NoError(t, err, out)
	t.Log(out)
	require.NotContains(t, out, "SUCCEEDED")
	for _, name := range []string{"read-secret", "read-other", "write-usr", "write-mine", "connect-platform", "kill-parent", "setuid-root", "read-shadow"} {
		require.Contains(t, out, name+" failed:")
	}
	require.Contains(t, out, "mine MINE", "its own (read-only) mount is readable")
	require.Contains(t, out, "data-listing ['servers'] ['mine']", "only the way to its own mount, not the key or other servers")
	require.Contains(t, out, "env-secret False")
	require.Contains(t, out, "environ-secret False")
	require.Contains(t, out, "nnp 1", "no_new_privs: setuid binaries gain nothing")
	require.NotContains(t, out, "uid 0\n")
	b, err := os.ReadFile(secret)
	require.NoError(t, err)
	require.Equal(t, "SECRET", string(b))
	_, err = os.Stat("/usr/evil")
	require.True(t, os.IsNotExist(err))
}

// TestMemoryLimitKillsAndIsCounted: past the memory limit the kernel kills
// the process, and the launcher counts it.
func TestMemoryLimitKillsAndIsCounted(t *testing.T) {
	l := newLauncher(t, NetNone, Limits{Label: "tiny", MemoryBytes: 96 << 20, Pids: 64})
	before := l.OOMKills()
	out, err := run(t, l, "x = bytearray(400*1024*1024)\nfor i in range(0, len(x), 4096): x[i] = 1\nprint('allocated')\n")
	require.Error(t, err, out)
	require.NotContains(t, out, "allocated")
	require.Greater(t, l.OOMKills(), before, "the kernel's OOM kill is counted")
	require.Equal(t, "96 MiB, the tiny limit", l.Config().Limits.Describe())
}

// TestForkBombStops: a fork bomb stops at the task limit, and the sandbox's
// processes all end with it.
func TestForkBombStops(t *testing.T) {
	l := newLauncher(t, NetNone, Limits{MemoryBytes: 512 << 20, Pids: 32})
	out, err := run(t, l, `
import os, time
n = 0
try:
    for i in range(1000):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("stopped after", n, type(e).__name__)
`)
	require.NoError(t, err, out)
	require.Contains(t, out, "stopped after")
}

// TestFileSizeLimit: a file cannot grow past FileSizeBytes, and the private
// /tmp has a size.
func TestFileSizeLimit(t *testing.T) {
	l := newLauncher(t, NetNone, Limits{MemoryBytes: 512 << 20, Pids: 64, FileSizeBytes: 8 << 20, TmpBytes: 32 << 20})
	out, err := run(t, l, `
import signal, os
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
try:
    with open("/tmp/big", "wb") as f:
        for i in range(64):
            f.write(b"x" * (1 << 20))
    print("WROTE", os.path.getsize("/tmp/big"))
except OSError as e:
    print("stopped", e.errno, os.path.getsize("/tmp/big"))
`)
	require.NoError(t, err, out)
	require.Contains(t, out, "stopped")
}

// TestOutboundHasNoHostLoopback: with outbound network, the host's loopback
// (10.0.2.2 in slirp4netns's network) is refused, and the resolver is set.
func TestOutboundHasNoHostLoopback(t *testing.T) {
	if _, err := exec.LookPath("slirp4netns"); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_SANDBOX") != "" {
			t.Fatal("slirp4netns not installed")
		}
		t.Skip("slirp4netns not installed")
	}
	l := newLauncher(t, NetOutbound, Limits{MemoryBytes: 256 << 20, Pids: 64})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	out, err := run(t, l, fmt.Sprintf(`
import socket
for host in ("127.0.0.1", "10.0.2.2"):
    try:
        socket.create_connection((host, %d), timeout=3)
        print(host, "CONNECTED")
    except OSError as e:
        print(host, "refused", e.errno)
print(open("/etc/resolv.conf").read().strip())
print(open("/proc/net/route").read().count("tap0") > 0)
`, port))
	require.NoError(t, err, out)
	require.NotContains(t, out, "CONNECTED")
	require.Contains(t, out, "nameserver 10.0.2.3")
	require.Contains(t, out, "True", "a route through slirp4netns's tap device")
}

func TestForInstanceType(t *testing.T) {
	l, err := ForInstanceType("t3.small", 1)
	require.NoError(t, err)
	require.Equal(t, int64(2<<30), l.MemoryBytes)
	require.Equal(t, "2 GiB, the t3.small limit", l.Describe())
	_, err = ForInstanceType("x9.huge", 1)
	require.ErrorContains(t, err, `"x9.huge"`)
	half, err := ForInstanceType("t3.small", 0.5)
	require.NoError(t, err)
	require.Equal(t, int64(1<<30), half.MemoryBytes)
}
