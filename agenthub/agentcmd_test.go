package agenthub_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agenthub"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/internal/loadgen"
	"github.com/algocloud/algocloud/internal/sandbox"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
)

// server is one test server's folder with the real `algocloud-infer agent`
// on it (command channel and endpoint both), laid out as a provider does:
// <root>/agent (the agent's folder: credential, link state, control socket,
// revision configs), <root>/code/<rev>, <root>/venvs/<rev>, <root>/tls.
type server struct {
	t        *testing.T
	e        *env
	id       string
	bin      string
	root     string
	dir      string
	credFile string
	caFile   string
	addr     string
	cert     string
	key      string
	logs     syncBuffer
	cmd      *exec.Cmd
	n        atomic.Int32
}

func newServer(t *testing.T, e *env, id string) *server {
	t.Helper()
	testenv.RequireSandbox(t)
	root := t.TempDir()
	require.NoError(t, os.Chmod(root, 0o755)) // the sandboxes' uid walks to code and venvs
	s := &server{t: t, e: e, id: id, bin: inferBinary(t), root: root, dir: filepath.Join(root, "agent"),
		addr: "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))}
	require.NoError(t, os.MkdirAll(s.dir, 0o700))
	s.credFile, s.caFile = filepath.Join(s.dir, "credential"), filepath.Join(root, "ca.pem")
	require.NoError(t, os.WriteFile(s.credFile, []byte(e.mint(id)+"\n"), 0o600))
	require.NoError(t, os.WriteFile(s.caFile, e.ca.RootPEM(), 0o644))
	require.NoError(t, os.MkdirAll(filepath.Join(root, "tls"), 0o755))
	s.cert, s.key = filepath.Join(root, "tls", "cert.pem"), filepath.Join(root, "tls", "key.pem")
	e.ca.WriteLeaf(t, "endpoint", s.cert, s.key)
	s.start()
	t.Cleanup(func() {
		s.kill()
		s.killAll() // what the test left serving

	})
	return s
}

// start runs the agent (again).
func (s *server) start() {
	s.cmd = exec.Command(s.bin, "agent", "--dir", s.dir, "--listen", s.addr, "--ready-timeout", "60s", "--stop-grace", "20s",
		"--platform", "https://"+s.e.api.addr, "--server", s.id, "--credential-file", s.credFile, "--ca-file", s.caFile)
	s.cmd.Stderr = &s.logs
	require.NoError(s.t, s.cmd.Start())
}

// kill is kill -9 of the agent (its revisions keep serving).
func (s *server) kill() {
	if s.cmd != nil && s.cmd.ProcessState == nil {
		_ = s.cmd.Process.Kill()
		_, _ = s.cmd.Process.Wait()
	}
}

// killAll kills every process of this server (revisions, test servers,
// pip): the test's cleanup.
func (s *server) killAll() {
	for _, pid := range s.procs("") {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// procs lists the live processes whose command line names this server's
// folder and holds what (all of them for "").
func (s *server) procs(what string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte(s.root)) || !bytes.Contains(cmdline, []byte(what)) {
			continue
		}
		if st, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat")); err == nil {
			if f := strings.Fields(string(st[bytes.LastIndexByte(st, ')')+1:])); len(f) > 0 && f[0] == "Z" {
				continue // a zombie
			}
		}
		pids = append(pids, pid)
	}
	return pids
}

// send starts a workflow running one command on the server.
func (s *server) send(kind string, payload any) (id string, wait func() (json.RawMessage, error)) {
	b, err := json.Marshal(payload)
	require.NoError(s.t, err)
	id = fmt.Sprintf("%s-%d", kind, s.n.Add(1))
	run := s.e.start(agenthub.Cmd{Server: s.id, ID: id, Kind: kind, Deployment: s.e.algID, Payload: b})
	return id, func() (json.RawMessage, error) {
		out, err := s.e.result(run)
		return out.Output, err
	}
}

// do runs one command and decodes its output into out.
func (s *server) do(kind string, payload, out any) {
	s.t.Helper()
	_, wait := s.send(kind, payload)
	raw, err := wait()
	require.NoError(s.t, err, "agent log:\n%s", s.logs.String())
	require.NoError(s.t, json.Unmarshal(raw, out))
}

// waitEvent waits until the deployment's progress log holds a line with sub.
func (s *server) waitEvent(sub string) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		evs, err := s.e.st.ListEvents(context.Background(), s.e.algID, 0, 0)
		if err != nil {
			return false
		}
		for _, ev := range evs {
			if strings.Contains(ev.Kind+": "+ev.Message, sub) { // as the wizard shows it
				return true
			}
		}
		return false
	}, 2*time.Minute, 50*time.Millisecond, "no progress line %q; agent log:\n%s", sub, s.logs.String())
}

// box is a role's sandbox config.
func (s *server) box(role string) *sandbox.Config {
	return &sandbox.Config{Mode: sandbox.ModeBwrap, Network: sandbox.NetNone, Group: fmt.Sprintf("%s-%d.%s", s.id, os.Getpid(), role),
		Limits: sandbox.Limits{Label: "test", MemoryBytes: 1 << 30, Pids: 256, CPUs: 2}}
}

// code writes a revision's code: examples/segmentation's aai_main.py with
// edit applied.
func (s *server) code(rev string, edit func(string) string) string {
	src, err := os.ReadFile(filepath.Join("..", "examples", "segmentation", "aai_main.py"))
	require.NoError(s.t, err)
	main := string(src)
	if edit != nil {
		main = edit(main)
	}
	dir := filepath.Join(s.root, "code", rev)
	require.NoError(s.t, os.MkdirAll(dir, 0o755))
	require.NoError(s.t, os.WriteFile(filepath.Join(dir, "aai_main.py"), []byte(main), 0o644))
	return dir
}

// config is a revision's inference config (JSON) for role.
func (s *server) config(code, python, role string) json.RawMessage {
	b, err := json.Marshal(inferapi.Config{
		Name: "otsu", Listen: "ignored:0", CertFile: s.cert, KeyFile: s.key, CodeDir: code, Python: python, Threads: 1,
		Input: spec.Image, Output: spec.Image, Timeout: inferapi.Duration(30 * time.Second), Sandbox: s.box(role),
	})
	require.NoError(s.t, err)
	return b
}

// installPayload is an install of reqs into venvs/<rev> from the local
// wheels folder only (no index: no network here).
func (s *server) installPayload(rev, wheels string, reqs ...string) commands.Install {
	b, err := json.Marshal(s.box("install"))
	require.NoError(s.t, err)
	return commands.Install{CodeDir: filepath.Join(s.root, "code", rev), Venv: filepath.Join(s.root, "venvs", rev),
		Requirements: reqs, Sandbox: b, FindLinks: []string{wheels}, NoIndex: true}
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

// writeMemhog writes memhog-0.1.0.tar.gz: a source distribution whose
// in-tree build backend (no build requirements: pip builds it offline)
// allocates and touches 1 GiB while pip builds it.
func writeMemhog(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"memhog-0.1.0/pyproject.toml": "[build-system]\nrequires = []\nbuild-backend = \"hog\"\nbackend-path = [\".\"]\n",
		"memhog-0.1.0/PKG-INFO":       "Metadata-Version: 2.1\nName: memhog\nVersion: 0.1.0\n",
		"memhog-0.1.0/hog.py": "def get_requires_for_build_wheel(config_settings=None):\n    return []\n\n" +
			"def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):\n" +
			"    x = bytearray(1024 * 1024 * 1024)\n    for i in range(0, len(x), 4096):\n        x[i] = 1\n    raise RuntimeError('not killed')\n",
	}
	f, err := os.Create(filepath.Join(dir, "memhog-0.1.0.tar.gz"))
	require.NoError(t, err)
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	for _, n := range []string{"memhog-0.1.0/PKG-INFO", "memhog-0.1.0/hog.py", "memhog-0.1.0/pyproject.toml"} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(files[n])), Typeflag: tar.TypeReg}))
		_, err := tw.Write([]byte(files[n]))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	require.NoError(t, f.Close())
}

// usesWheel makes the algorithm import the wheel's package: it runs only in
// the venv the install made. Its import takes 3 s, so that a test of it can
// be caught running.
func usesWheel(src string) string {
	return strings.Replace(src, "import numpy as np\n", "import numpy as np\nimport algotiny, time\nassert algotiny.VALUE == 42\ntime.sleep(3)\n", 1)
}

// initRaises makes __init__ raise.
func initRaises(src string) string {
	return strings.Replace(src, "        self.blur = ", "        raise RuntimeError('boom in init')\n        self.blur = ", 1)
}

// TestAgentInstallAndTest: through the real API, embedded Temporal and the
// real agent binary, an install makes the venv and installs a local wheel
// (pip's lines in the progress log), a failing pip is an OK result with
// failed and pip's output, a test on the venv passes and its output comes
// back as the command's artifact (the PNG mask of testing_input_data()), a
// test whose __init__ raises is init_failed with the traceback, and a
// hostile aai_main.py cannot read the agent's credential, state or link
// results. The agent killed mid-install and mid-test: the command runs
// again after the restart, with no process of the killed attempt left.
func TestAgentInstallAndTest(t *testing.T) {
	e := newEnv(t)
	s := newServer(t, e, "srv-it")
	wheels := t.TempDir()
	require.NoError(t, os.Chmod(wheels, 0o755))
	writeWheel(t, wheels, "algotiny", "0.1.0")
	code := s.code("c1", usesWheel)

	// Killed mid-install: the command comes back to the restarted agent,
	// which makes the half-made venv again.
	_, wait := s.send(commands.KindInstall, s.installPayload("c1", wheels, "algotiny==0.1.0"))
	s.waitEvent("install: venv " + filepath.Join(s.root, "venvs", "c1"))
	s.kill()
	require.Eventually(t, func() bool { return len(s.procs("venvs/c1")) == 0 }, 30*time.Second, 50*time.Millisecond,
		"the killed agent's venv and pip processes die with it: %v", s.procs("venvs/c1"))
	s.start()
	raw, err := wait()
	require.NoError(t, err, "agent log:\n%s", s.logs.String())
	var inst commands.InstallOutput
	require.NoError(t, json.Unmarshal(raw, &inst))
	require.False(t, inst.Failed, inst.Output)
	require.Equal(t, filepath.Join(s.root, "venvs", "c1", "bin", "python"), inst.Python)
	s.waitEvent("Successfully installed algotiny-0.1.0") // pip's own line, streamed

	var bad commands.InstallOutput
	s.do(commands.KindInstall, s.installPayload("c-bad", wheels, "doesnotexist==1.0"), &bad)
	require.True(t, bad.Failed, "a requirement pip cannot find is the author's failure")
	require.False(t, bad.OOMKilled)
	require.Contains(t, bad.Output, "doesnotexist")

	// A build that outgrows the install's memory limit: failed, and said so.
	writeMemhog(t, wheels)
	hog := s.installPayload("c-hog", wheels, "memhog==0.1.0")
	small := s.box("install")
	small.Limits.MemoryBytes = 160 << 20
	hog.Sandbox, err = json.Marshal(small)
	require.NoError(t, err)
	var oom commands.InstallOutput
	s.do(commands.KindInstall, hog, &oom)
	require.True(t, oom.Failed, oom.Output)
	require.True(t, oom.OOMKilled, oom.Output)
	require.Contains(t, oom.Output, "was killed")

	// Killed mid-test: the next agent kills the test server it left.
	testPayload := commands.Test{Revision: "c1-i1", Config: s.config(code, inst.Python, "test"), ReadyTimeoutSeconds: 60}
	_, wait = s.send(commands.KindTest, testPayload)
	s.waitEvent("test: booting the inference server")
	require.Eventually(t, func() bool { return len(s.procs("tests/c1-i1/config.json")) == 1 }, 30*time.Second, 20*time.Millisecond)
	left := s.procs("tests/c1-i1/config.json")[0]
	s.kill()
	s.start()
	raw, err = wait()
	require.NoError(t, err, "agent log:\n%s", s.logs.String())
	var res commands.TestOutput
	require.NoError(t, json.Unmarshal(raw, &res))
	require.True(t, res.OK, "%+v", res)
	require.NotContains(t, s.procs(""), left, "the killed agent's test server was killed by the next agent")
	// A passing test's server stops behind the result.
	require.Eventually(t, func() bool { return len(s.procs("tests/c1-i1/config.json")) == 0 }, 15*time.Second, 20*time.Millisecond,
		"no test server left behind: %v", s.procs("tests/c1-i1/config.json"))
	require.Equal(t, "image/png", res.ContentType)
	require.Equal(t, "test-output.png", res.OutputArtifact)
	art, err := e.hub.Artifact(context.Background(), s.id, "test-"+strconv.Itoa(int(s.n.Load())), res.OutputArtifact)
	require.NoError(t, err)
	require.Equal(t, res.Summary, inferapi.Summarize(res.ContentType, art), "the artifact is the output the test saw")
	img, err := png.Decode(bytes.NewReader(art))
	require.NoError(t, err)
	require.Equal(t, 128, img.Bounds().Dx())
	require.Equal(t, 96, img.Bounds().Dy())
	r, _, _, _ := img.At(64, 48).RGBA()
	require.Greater(t, r, uint32(0x8000), "the disc's centre is in the mask")

	// A figure: one Test Code through the agent, from the workflow's
	// start to its result (boot, readyz, testing_input_data, artifact, stop).
	begin := time.Now()
	var plain commands.TestOutput
	s.do(commands.KindTest, commands.Test{Revision: "c0", Config: s.config(s.code("c0", nil), "/usr/bin/python3", "test")}, &plain)
	require.True(t, plain.OK, "%+v", plain)
	t.Logf("figure: a test command through the agent took %s (predict %d ms)", time.Since(begin).Round(time.Millisecond), plain.DurationMS)

	var failed commands.TestOutput
	s.do(commands.KindTest, commands.Test{Revision: "c2", Config: s.config(s.code("c2", initRaises), "/usr/bin/python3", "test")}, &failed)
	require.False(t, failed.OK)
	require.Equal(t, "init_failed", failed.Code)
	require.Contains(t, failed.Traceback, "boom in init")
	require.Empty(t, failed.OutputArtifact)
	require.Empty(t, s.procs("tests/c2/config.json"))

	// A hostile algorithm looks for the agent's secrets from __init__ and
	// reports what it saw in the error it raises.
	targets, err := json.Marshal([]string{s.dir, s.credFile, filepath.Join(s.dir, "state.json"), filepath.Join(s.dir, "link", "results"),
		filepath.Join(s.dir, "agent.sock"), filepath.Join(s.dir, "tests"), s.key})
	require.NoError(t, err)
	hostile := fmt.Sprintf(`
import os, json
def _probe():
    seen = {}
    for p in json.loads(%q):
        try:
            if os.path.isdir(p):
                seen[p] = "LISTED " + ",".join(os.listdir(p))
            else:
                with open(p, "rb") as f:
                    seen[p] = "READ " + f.read(40).decode("latin-1")
        except Exception as e:
            seen[p] = "blocked " + type(e).__name__
    return seen
`, targets)
	hostileCode := s.code("c3", func(src string) string {
		src = strings.Replace(src, "class AAI:", hostile+"\nclass AAI:", 1)
		return strings.Replace(src, "        self.blur = ", "        raise RuntimeError('PROBE ' + json.dumps(_probe()))\n        self.blur = ", 1)
	})
	var probe commands.TestOutput
	s.do(commands.KindTest, commands.Test{Revision: "c3", Config: s.config(hostileCode, "/usr/bin/python3", "test")}, &probe)
	require.Equal(t, "init_failed", probe.Code)
	const mark = "RuntimeError: PROBE "
	i := strings.LastIndex(probe.Traceback, mark)
	require.GreaterOrEqual(t, i, 0, probe.Traceback)
	var seen map[string]string
	require.NoError(t, json.NewDecoder(strings.NewReader(probe.Traceback[i+len(mark):])).Decode(&seen), probe.Traceback)
	require.Len(t, seen, 7)
	for p, what := range seen {
		require.True(t, strings.HasPrefix(what, "blocked "), "%s: %s", p, what)
	}
	cred, err := os.ReadFile(s.credFile)
	require.NoError(t, err)
	require.NotContains(t, s.logs.String(), strings.TrimPrefix(strings.TrimSpace(string(cred)), "ag_"), "the credential is never logged")
}

// endpointClient trusts the test CA.
func (s *server) client() *http.Client {
	return s.e.httpClient()
}

// predict posts a small PNG with token and says which revision answered:
// "old" (the disc's centre is white) or "new" (inverted: black).
func (s *server) predict(ctx context.Context, token string, img []byte) (string, error) {
	return loadgen.PredictPNG(ctx, s.client(), "https://"+s.addr+"/predict", token, img)
}

// discPNG is a bright disc on a dark background.
func discPNG(t *testing.T) []byte {
	cmd := exec.Command("/usr/bin/python3", "-c", `
import io, sys, numpy as np
from PIL import Image
h, w = 48, 64
yy, xx = np.mgrid[:h, :w]
img = np.full((h, w, 3), 20, np.uint8)
img[(yy - h / 2) ** 2 + (xx - w / 2) ** 2 < (h / 3) ** 2] = 220
b = io.BytesIO(); Image.fromarray(img).save(b, "PNG"); sys.stdout.buffer.write(b.getvalue())`)
	out, err := cmd.Output()
	require.NoError(t, err)
	return out
}

// TestAgentServeSwap: serve starts the first revision on the endpoint's
// port; serving a second under load (4 clients) swaps with no failed
// request; a revision whose __init__ raises is failed with its traceback
// and the serving one still serves; serving the serving revision again
// changes nothing (same process); the agent killed mid-swap ends, once
// restarted and the command re-run, with exactly one serving process; stop
// stops it.
func TestAgentServeSwap(t *testing.T) {
	e := newEnv(t)
	s := newServer(t, e, "srv-swap")
	token := "ep_agent-swap-token"
	sum := sha256.Sum256([]byte(token))
	tokenSum := hex.EncodeToString(sum[:])
	serve := func(rev string, edit func(string) string) commands.Serve {
		cfg := s.config(s.code(rev, edit), "/usr/bin/python3", "live."+rev)
		return commands.Serve{Revision: rev, Config: cfg, TokenSHA256: tokenSum}
	}
	inverted := func(src string) string { return strings.Replace(src, "return gray > t", "return ~(gray > t)", 1) }

	var out commands.ServeOutput
	s.do(commands.KindServe, serve("r1", nil), &out)
	require.Equal(t, "r1", out.Serving)
	require.False(t, out.Failed)
	img := discPNG(t)
	who, err := s.predict(context.Background(), token, img)
	require.NoError(t, err)
	require.Equal(t, "old", who)
	servers := s.procs("--listen-fd")
	require.Len(t, servers, 1)

	// Load through the swap.
	load := loadgen.Start(context.Background(), loadgen.Options{Clients: 4, DropCancelled: true},
		func(ctx context.Context, _ int) (string, error) { return s.predict(ctx, token, img) })
	t.Cleanup(load.Stop)
	require.Eventually(t, func() bool { return load.OK() > 20 }, time.Minute, 20*time.Millisecond)
	begin := time.Now()
	s.do(commands.KindServe, serve("r2", inverted), &out)
	t.Logf("figure: serve r2 (a swap under 4 clients) took %s from the workflow's start to its result", time.Since(begin).Round(time.Millisecond))
	require.Equal(t, "r2", out.Serving)
	before := load.OK()
	require.Eventually(t, func() bool { return load.OK() > before+20 }, time.Minute, 20*time.Millisecond)
	load.Stop()
	require.Empty(t, load.Failures(), "no request failed through the swap")
	require.Positive(t, load.Answers()["old"])
	require.Positive(t, load.Answers()["new"])
	who, err = s.predict(context.Background(), token, img)
	require.NoError(t, err)
	require.Equal(t, "new", who)

	// A revision that fails to start does not replace the serving one.
	s.do(commands.KindServe, serve("r3", initRaises), &out)
	require.True(t, out.Failed)
	require.Equal(t, "r2", out.Serving)
	require.Contains(t, out.Traceback, "boom in init")
	who, err = s.predict(context.Background(), token, img)
	require.NoError(t, err)
	require.Equal(t, "new", who)

	// The serving revision again with a rotated token: nothing restarts,
	// the token file changes and the serving server follows it.
	require.Eventually(t, func() bool { return len(s.procs("--listen-fd")) == 1 }, time.Minute, 50*time.Millisecond)
	pid := s.procs("--listen-fd")[0]
	const rotated = "ep_agent-swap-token-rotated"
	rsum := sha256.Sum256([]byte(rotated))
	again := serve("r2", inverted)
	again.TokenSHA256 = hex.EncodeToString(rsum[:])
	s.do(commands.KindServe, again, &out)
	require.Equal(t, "r2", out.Serving)
	require.Equal(t, []int{pid}, s.procs("--listen-fd"))
	require.Eventually(t, func() bool {
		_, err := s.predict(context.Background(), rotated, img)
		return err == nil
	}, 30*time.Second, 100*time.Millisecond, "the rotated token works")
	_, err = s.predict(context.Background(), token, img)
	require.ErrorContains(t, err, "401", "the old token no longer does")
	token, tokenSum = rotated, again.TokenSHA256

	// Killed mid-swap to r4: the restarted agent runs the command again
	// and one revision serves.
	_, wait := s.send(commands.KindServe, serve("r4", nil))
	s.waitEvent("serve: starting revision r4 beside r2")
	s.kill()
	s.start()
	raw, err := wait()
	require.NoError(t, err, "agent log:\n%s", s.logs.String())
	require.NoError(t, json.Unmarshal(raw, &out))
	require.Equal(t, "r4", out.Serving)
	require.Eventually(t, func() bool { return len(s.procs("--listen-fd")) == 1 }, time.Minute, 50*time.Millisecond,
		"one serving process: %v", s.procs("--listen-fd"))
	who, err = s.predict(context.Background(), token, img)
	require.NoError(t, err)
	require.Equal(t, "old", who)

	var st commands.ServeOutput
	s.do(commands.KindStatus, struct{}{}, &st)
	require.Equal(t, "r4", st.Serving)
	var stopped commands.ServeOutput
	s.do(commands.KindStop, struct{}{}, &stopped)
	require.Empty(t, stopped.Serving)
	require.Empty(t, s.procs("--listen-fd"))
	_, err = s.predict(context.Background(), token, img)
	require.Error(t, err, "nothing serves after stop")
}
