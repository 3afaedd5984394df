package python

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// systemPython is Debian's interpreter, which sees python3-numpy and -pil.
const systemPython = "/usr/bin/python3"

var (
	venvOnce   sync.Once
	venvDir    string
	venvPy     string
	venvErr    error
	sharedRoot string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedRoot != "" {
		os.RemoveAll(sharedRoot)
	}
	os.Exit(code)
}

// sharedVenv creates one venv for the package's tests (creation takes seconds).
func sharedVenv(t *testing.T) (dir, py string) {
	t.Helper()
	if _, err := os.Stat(systemPython); err != nil {
		t.Skip("no " + systemPython + " (run scripts/setup.sh)")
	}
	venvOnce.Do(func() {
		sharedRoot, venvErr = os.MkdirTemp("", "algocloud-python-test-*")
		if venvErr != nil {
			return
		}
		venvDir = filepath.Join(sharedRoot, "venv")
		venvPy, venvErr = EnsureVenv(context.Background(), systemPython, venvDir)
	})
	require.NoError(t, venvErr)
	return venvDir, venvPy
}

func pyRun(t *testing.T, py, code string) string {
	t.Helper()
	out, err := exec.Command(py, "-c", code).CombinedOutput()
	require.NoError(t, err, string(out))
	return strings.TrimSpace(string(out))
}

func TestEnsureVenv_SystemPackagesAndReuse(t *testing.T) {
	dir, py := sharedVenv(t)
	require.Equal(t, filepath.Join(dir, "bin", "python"), py)
	require.Equal(t, "ok", pyRun(t, py, "import numpy, PIL; print('ok')"))

	sentinel := filepath.Join(dir, "sentinel")
	require.NoError(t, os.WriteFile(sentinel, nil, 0o644))
	defer os.Remove(sentinel)
	again, err := EnsureVenv(context.Background(), systemPython, dir)
	require.NoError(t, err)
	require.Equal(t, py, again)
	require.FileExists(t, sentinel, "a working venv is reused, not recreated")
}

func TestEnsureVenv_RecreatesBrokenOnes(t *testing.T) {
	sharedVenv(t) // skips without python
	dir := filepath.Join(t.TempDir(), "venv")

	// A folder left half-made by a crash (no ready marker).
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "bin"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "junk"), nil, 0o644))
	py, err := EnsureVenv(context.Background(), systemPython, dir)
	require.NoError(t, err)
	require.NoFileExists(t, filepath.Join(dir, "junk"))
	require.Equal(t, "ok", pyRun(t, py, "import numpy; print('ok')"))

	// A venv whose interpreter went away.
	require.NoError(t, os.Remove(py))
	py, err = EnsureVenv(context.Background(), systemPython, dir)
	require.NoError(t, err)
	require.Equal(t, "ok", pyRun(t, py, "print('ok')"))

	_, err = EnsureVenv(context.Background(), "/nonexistent/python3", filepath.Join(t.TempDir(), "v"))
	require.Error(t, err)
}

// buildWheel writes a minimal pure-Python wheel of pkg (a zip with the
// package, METADATA, WHEEL and RECORD) into dir.
func buildWheel(t *testing.T, dir, pkg, version string) {
	t.Helper()
	info := pkg + "-" + version + ".dist-info"
	files := map[string]string{
		pkg + "/__init__.py": "VALUE = 42\n",
		info + "/METADATA":   "Metadata-Version: 2.1\nName: " + pkg + "\nVersion: " + version + "\n",
		info + "/WHEEL":      "Wheel-Version: 1.0\nGenerator: algocloud-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	var record strings.Builder
	f, err := os.Create(filepath.Join(dir, pkg+"-"+version+"-py3-none-any.whl"))
	require.NoError(t, err)
	zw := zip.NewWriter(f)
	for _, name := range []string{pkg + "/__init__.py", info + "/METADATA", info + "/WHEEL"} {
		body := files[name]
		w, err := zw.Create(name)
		require.NoError(t, err)
		_, err = w.Write([]byte(body))
		require.NoError(t, err)
		sum := sha256.Sum256([]byte(body))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", name, base64.RawURLEncoding.EncodeToString(sum[:]), len(body))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", info)
	w, err := zw.Create(info + "/RECORD")
	require.NoError(t, err)
	_, err = w.Write([]byte(record.String()))
	require.NoError(t, err)
	require.NoError(t, zw.Close())
	require.NoError(t, f.Close())
}

func TestInstall_LocalWheel(t *testing.T) {
	_, py := sharedVenv(t)
	wheels := t.TempDir()
	buildWheel(t, wheels, "algotiny", "0.1.0")

	var lines []string
	out, err := Install(context.Background(), py, []string{"algotiny==0.1.0"},
		InstallOptions{NoIndex: true, FindLinks: []string{wheels}, Timeout: 5 * time.Minute},
		func(l string) { lines = append(lines, l) })
	require.NoError(t, err, out)
	require.Contains(t, out, "Successfully installed algotiny-0.1.0")
	require.NotEmpty(t, lines)
	require.Equal(t, "42", pyRun(t, py, "import algotiny; print(algotiny.VALUE)"))
	// Installed into the venv, not the system.
	require.Error(t, exec.Command(systemPython, "-c", "import algotiny").Run())
}

func TestInstall_MissingPackage(t *testing.T) {
	_, py := sharedVenv(t)
	out, err := Install(context.Background(), py, []string{"nosuchpkg"},
		InstallOptions{NoIndex: true, FindLinks: []string{t.TempDir()}}, nil)
	var ie *InstallError
	require.ErrorAs(t, err, &ie)
	require.NotZero(t, ie.ExitCode)
	require.Equal(t, out, ie.Output)
	require.Contains(t, err.Error(), "Could not find a version that satisfies the requirement nosuchpkg")
}

func TestInstall_NothingOrInvalid(t *testing.T) {
	out, err := Install(context.Background(), "/nonexistent/python", nil, InstallOptions{}, nil)
	require.NoError(t, err)
	require.Empty(t, out)

	for _, bad := range []string{"-e git+https://example.com/x", "--index-url=http://evil", "https://evil/x.whl", "pkg; os_name=='posix'"} {
		_, err := Install(context.Background(), "/nonexistent/python", []string{"numpy", bad}, InstallOptions{}, nil)
		require.Error(t, err, bad)
		var ie *InstallError
		require.False(t, errors.As(err, &ie), "refused before pip runs")
	}
}

// fakePip is an "interpreter" that starts a long-running child in its process
// group and waits: Install must kill the whole group when ctx ends.
func fakePip(t *testing.T) (py, pidFile string) {
	t.Helper()
	dir := t.TempDir()
	pidFile = filepath.Join(dir, "child.pid")
	py = filepath.Join(dir, "python")
	script := "#!/bin/sh\nsleep 300 &\necho $! > " + pidFile + "\necho started\nwait\n"
	require.NoError(t, os.WriteFile(py, []byte(script), 0o755))
	return py, pidFile
}

func requireGone(t *testing.T, pidFile string) {
	t.Helper()
	b, err := os.ReadFile(pidFile)
	require.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		// Gone, or a zombie waiting for an init that reaps slowly.
		stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			return true
		}
		i := strings.LastIndexByte(string(stat), ')')
		return i > 0 && i+2 < len(stat) && stat[i+2] == 'Z'
	}, 10*time.Second, 20*time.Millisecond, "pip's children are killed too")
}

func TestInstall_CancelKillsProcessGroup(t *testing.T) {
	py, pidFile := fakePip(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Install(ctx, py, []string{"anything"}, InstallOptions{}, func(l string) {
		if l == "started" {
			cancel()
		}
	})
	require.ErrorIs(t, err, context.Canceled)
	requireGone(t, pidFile)
}

func TestInstall_Timeout(t *testing.T) {
	py, pidFile := fakePip(t)
	_, err := Install(context.Background(), py, []string{"anything"}, InstallOptions{Timeout: 100 * time.Millisecond}, nil)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	requireGone(t, pidFile)
}

func TestInstallError_Message(t *testing.T) {
	e := &InstallError{ExitCode: 1, Output: "Looking in links: /x\nERROR: Could not find a version that satisfies the requirement foo\nERROR: No matching distribution found for foo\n"}
	require.Equal(t, "pip install failed (exit status 1): ERROR: Could not find a version that satisfies the requirement foo\nERROR: No matching distribution found for foo", e.Error())
	e = &InstallError{ExitCode: 2, Output: "a\nb\n\nc\nd\n"}
	require.Equal(t, "pip install failed (exit status 2): b | c | d", e.Error())
}

func TestTailBuffer_KeepsTheEnd(t *testing.T) {
	b := &tailBuffer{max: 20}
	for i := range 10 {
		b.WriteLine(fmt.Sprintf("line%d", i))
	}
	s := b.String()
	require.True(t, strings.HasPrefix(s, "[earlier output dropped]\n"))
	require.True(t, strings.HasSuffix(s, "line8\nline9"))
}

func TestRequirementsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), RequirementsFile)
	require.NoError(t, WriteRequirementsFile(path, []string{"numpy==1.24.2", " pillow>=9 ", "scikit-image[data]"}))
	got, err := ReadRequirementsFile(path)
	require.NoError(t, err)
	require.Equal(t, []string{"numpy==1.24.2", "pillow>=9", "scikit-image[data]"}, got)

	require.Error(t, WriteRequirementsFile(path, []string{"ok", "-r other.txt"}))
	got, err = ReadRequirementsFile(path)
	require.NoError(t, err)
	require.Len(t, got, 3, "a refused write leaves the file as it was")

	require.NoError(t, WriteRequirementsFile(path, nil))
	got, err = ReadRequirementsFile(path)
	require.NoError(t, err)
	require.Empty(t, got)

	require.NoError(t, os.WriteFile(path, []byte("# deps\nnumpy\n\nrequests==2.0 # http\n--extra-index-url http://evil\n"), 0o644))
	_, err = ReadRequirementsFile(path)
	v, ok := spec.AsValidation(err)
	require.True(t, ok, "%v", err)
	require.Len(t, v.Fields, 1)
	require.Contains(t, v.Fields[0].Field, "line 5")

	_, err = ReadRequirementsFile(filepath.Join(t.TempDir(), "missing.txt"))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestInstall_WaitsForTheVenvLock(t *testing.T) {
	py, _ := fakePip(t)
	unlock, err := lockVenv(context.Background(), filepath.Dir(filepath.Dir(py)))
	require.NoError(t, err)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	var lines []string
	_, err = Install(ctx, py, []string{"anything"}, InstallOptions{}, func(l string) { lines = append(lines, l) })
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.Empty(t, lines, "pip never ran while another holder had the venv")
}

// TestInstall_UnreachableIndexComesFirst runs the real pip against a package
// index nobody listens on: the error's first line names that index and why it
// failed, not only pip's closing "No matching distribution found".
func TestInstall_UnreachableIndexComesFirst(t *testing.T) {
	_, py := sharedVenv(t)
	// A free port: nobody listens, so connections are refused at once.
	index := "http://127.0.0.1:" + strconv.Itoa(testenv.FreePort(t)) + "/simple"
	t.Setenv("PIP_RETRIES", "1")   // pip's default 5 retries back off for seconds
	t.Setenv("PIP_FIND_LINKS", "") // only the index: no local wheels to fall back on
	out, err := Install(context.Background(), py, []string{"algocloud-no-such-package"},
		InstallOptions{IndexURL: index, Timeout: 2 * time.Minute}, nil)
	var ie *InstallError
	require.ErrorAs(t, err, &ie, out)
	first, rest, _ := strings.Cut(err.Error(), "\n")
	require.Contains(t, first, "the package index "+index+" could not be reached (Connection refused)")
	require.Contains(t, rest, "No matching distribution found for algocloud-no-such-package", "pip's own words follow")
}

func TestInstallError_IndexProblems(t *testing.T) {
	for _, c := range []struct{ output, want string }{
		{"Looking in indexes: https://pypi.example/simple\nWARNING: Retrying (Retry(total=4, connect=None, read=None, redirect=None, status=None)) after connection broken by 'NewConnectionError('<pip._vendor.urllib3.connection.HTTPSConnection object at 0x7f>: Failed to establish a new connection: [Errno -3] Temporary failure in name resolution')': /simple/foo/\nERROR: No matching distribution found for foo\n",
			"the package index https://pypi.example/simple could not be reached (Temporary failure in name resolution)"},
		{"WARNING: Retrying (Retry(total=0, connect=None, read=None, redirect=None, status=None)) after connection broken by 'SSLError(SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed'))': /simple/foo/\nERROR: No matching distribution found for foo\n",
			"the package index could not be reached (its TLS certificate was refused)"},
		{"Looking in indexes: http://mirror.example/simple\nWARNING: The repository located at mirror.example is not a trusted or secure host and is being ignored.\nERROR: No matching distribution found for foo\n",
			"the package index http://mirror.example/simple could not be reached (it is plain HTTP on an untrusted host, so pip ignored it)"},
	} {
		first, _, _ := strings.Cut((&InstallError{ExitCode: 1, Output: c.output}).Error(), "\n")
		require.Contains(t, first, c.want)
	}
	// A real missing package with a working index says only what pip said.
	e := &InstallError{ExitCode: 1, Output: "Looking in indexes: https://pypi.org/simple\nERROR: No matching distribution found for foo\n"}
	require.Equal(t, "pip install failed (exit status 1): ERROR: No matching distribution found for foo", e.Error())
}

// TestInstall_RequirementsFileBesideTheVenv: the requirements pip reads lie
// in the server's folder (beside the venv) while pip runs, never in the
// system temp folder, where a crash used to leave them.
func TestInstall_RequirementsFileBesideTheVenv(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	server := t.TempDir()
	py := filepath.Join(server, "venv", "bin", "python")
	require.NoError(t, os.MkdirAll(filepath.Dir(py), 0o755))
	// A stand-in pip that prints the requirements file it was given.
	require.NoError(t, os.WriteFile(py, []byte("#!/bin/sh\nfor a; do f=$a; done\necho \"file $f\"\ncat \"$f\"\n"), 0o755))
	var lines []string
	_, err := Install(context.Background(), py, []string{"algotiny==0.1.0"}, InstallOptions{}, func(l string) { lines = append(lines, l) })
	require.NoError(t, err)
	require.Equal(t, []string{"file " + filepath.Join(server, ".venv.requirements.txt"), "algotiny==0.1.0"}, lines)
	require.NoFileExists(t, filepath.Join(server, ".venv.requirements.txt"), "removed once pip is done")
	left, err := os.ReadDir(tmp)
	require.NoError(t, err)
	require.Empty(t, left)
}
