package main

import (
	"github.com/algocloud/algocloud/internal/testenv"

	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testhostile"
)

// runMain runs this test binary as algocloud-infer with args and returns
// its stdout and stderr and its error.
func runMain(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "ALGOCLOUD_INFER_AS_MAIN=1", "ALGOCLOUD_PLATFORM_MARKER=PLATFORM-ENV-MARKER")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// writeWheel writes a pure-Python wheel of pkg whose module holds VALUE = 42.
func writeWheel(t *testing.T, dir, pkg, version string) {
	t.Helper()
	info := pkg + "-" + version + ".dist-info"
	f, err := os.Create(filepath.Join(dir, pkg+"-"+version+"-py3-none-any.whl"))
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for _, file := range [][2]string{
		{pkg + "/__init__.py", "VALUE = 42\n"},
		{info + "/METADATA", "Metadata-Version: 2.1\nName: " + pkg + "\nVersion: " + version + "\n"},
		{info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: algocloud-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"},
		{info + "/RECORD", ""},
	} {
		w, err := zw.Create(file[0])
		require.NoError(t, err)
		_, err = w.Write([]byte(file[1]))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

// The install mode, as the EC2 instance's fetch.sh runs it: it makes the
// venv the config names and installs a local wheel and a source package
// whose build backend tries to read the bundle's TLS key, write into the
// bundle, reach a loopback service and kill or trace the installer. Every
// attempt is blocked, both packages are installed, and (as root) the
// venv's files belong to the sandbox's uid, not root.
func TestInstallMode_SandboxesPipAndBuildBackends(t *testing.T) {
	testenv.RequireSandbox(t)
	home := t.TempDir()
	require.NoError(t, os.Chmod(home, 0o755))
	bundle := filepath.Join(home, "bundle.new")
	require.NoError(t, os.MkdirAll(filepath.Join(bundle, "tls"), 0o700))
	key := filepath.Join(bundle, "tls", "key.pem")
	require.NoError(t, os.WriteFile(key, []byte("BUNDLE KEY"), 0o600))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	wheels := t.TempDir()
	writeWheel(t, wheels, "algotiny", "0.1.0")
	_, err = testhostile.Sdist(wheels, "0.1.0", testhostile.Targets{
		Read:       []string{key},
		Write:      []string{filepath.Join(bundle, "owned"), filepath.Join(home, "owned")},
		Connect:    []int{ln.Addr().(*net.TCPAddr).Port},
		Kill:       []int{os.Getpid()},
		EnvMarkers: []string{"PLATFORM-ENV-MARKER"},
	})
	require.NoError(t, err)
	reqs := filepath.Join(bundle, "requirements.txt")
	require.NoError(t, os.WriteFile(reqs, []byte("# the author's\nalgotiny==0.1.0\nhostile==0.1.0\n"), 0o644))
	cfgPath := filepath.Join(bundle, "live.json")
	group := fmt.Sprintf("infer-install-test-%d", os.Getpid())
	require.NoError(t, inferapi.WriteConfig(cfgPath, inferapi.Config{
		Name: "hostile", Listen: "127.0.0.1:0", CodeDir: filepath.Join(home, "bundle", "code"),
		Python: filepath.Join(home, "venv", "bin", "python"), Threads: 1,
		Sandbox: &sandbox.Config{Mode: sandbox.ModeBwrap, Network: sandbox.NetNone, Group: group + ".live",
			Limits: sandbox.Limits{Label: "test", MemoryBytes: 1 << 30, Pids: 256, CPUs: 2, DiskBytes: 1 << 30}},
	}))

	stdout, stderr, err := runMain(t, "install", "--config", cfgPath, "--requirements", reqs, "--no-index", "--find-links", wheels)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "sandbox "+group+".install")
	require.Contains(t, stdout, "Successfully installed") // pip's own output, streamed
	require.Contains(t, stdout, "algotiny-0.1.0")
	require.Contains(t, stdout, "hostile-0.1.0")

	site, err := filepath.Glob(filepath.Join(home, "venv", "lib", "python3*", "site-packages"))
	require.NoError(t, err)
	require.Len(t, site, 1)
	require.FileExists(t, filepath.Join(site[0], "algotiny", "__init__.py"))
	// The backend's results, read as a literal (nothing of it runs here).
	src, err := os.ReadFile(filepath.Join(site[0], "hostile_result.py"))
	require.NoError(t, err)
	lit, ok := strings.CutPrefix(strings.TrimSpace(string(src)), "RESULTS = ")
	require.True(t, ok, string(src))
	out, err := exec.Command("/usr/bin/python3", "-c", "import ast, json, sys; print(json.dumps(ast.literal_eval(sys.argv[1])))", lit).Output()
	require.NoError(t, err)
	var results map[string]string
	require.NoError(t, json.Unmarshal(out, &results))
	require.GreaterOrEqual(t, len(results), 8, results)
	require.Empty(t, testhostile.Breaches(results), "every attempt from the build backend is blocked")
	b, err := os.ReadFile(key)
	require.NoError(t, err)
	require.Equal(t, "BUNDLE KEY", string(b))
	require.NoFileExists(t, filepath.Join(bundle, "owned"))
	require.NoFileExists(t, filepath.Join(home, "owned"))

	if os.Geteuid() == 0 {
		var st syscall.Stat_t
		require.NoError(t, syscall.Stat(filepath.Join(site[0], "algotiny", "__init__.py"), &st))
		require.GreaterOrEqual(t, int(st.Uid), sandbox.UIDBase, "pip ran as the sandbox's uid, not root")
	}

	// Again (the next start of the instance): the venv is reused.
	stdout, stderr, err = runMain(t, "install", "--config", cfgPath, "--requirements", reqs, "--no-index", "--find-links", wheels)
	require.NoError(t, err, "stdout:\n%s\nstderr:\n%s", stdout, stderr)
	require.Contains(t, stdout, "Requirement already satisfied")
}

// Bad invocations say what is wrong and exit 1; a config without a
// sandbox is refused rather than running pip unconfined.
func TestInstallMode_BadInput(t *testing.T) {
	dir := t.TempDir()
	noBox := filepath.Join(dir, "nobox.json")
	require.NoError(t, inferapi.WriteConfig(noBox, inferapi.Config{Name: "x", Python: filepath.Join(dir, "venv", "bin", "python")}))
	notVenv := filepath.Join(dir, "notvenv.json")
	require.NoError(t, inferapi.WriteConfig(notVenv, inferapi.Config{Name: "x", Python: "/usr/bin/python3",
		Sandbox: &sandbox.Config{Group: "g.live"}}))
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"install"}, "--config is required"},
		{[]string{"install", "--config", filepath.Join(dir, "missing.json")}, "read inference config"},
		{[]string{"install", "--config", noBox}, "no sandbox section"},
		{[]string{"install", "--config", notVenv}, "is not <venv>/bin/python"},
		{[]string{"install", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		_, stderr, err := runMain(t, c.args...)
		var exit *exec.ExitError
		require.ErrorAs(t, err, &exit, "%v", c.args)
		require.Equal(t, 1, exit.ExitCode())
		require.Contains(t, stderr, c.want, "%v", c.args)
	}
	require.NoDirExists(t, filepath.Join(dir, "venv"))
}

// The install group sits next to the live one.
func TestInstallGroup(t *testing.T) {
	require.Equal(t, "i-0abc.install", installGroup("i-0abc.live"))
	require.Equal(t, "server.install", installGroup("server"))
}
