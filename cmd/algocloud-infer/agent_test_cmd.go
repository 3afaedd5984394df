package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/algocloud/algocloud/agent/commands"
	"github.com/algocloud/algocloud/agent/link"
	"github.com/algocloud/algocloud/agent/protocol"
	"github.com/algocloud/algocloud/inference/inferapi"
)

// testsDir is the agent's folder of test servers: tests/<revision>/ holds
// one's config, log and pid file.
const testsDir = "tests"

// test is KindTest: a throwaway inference server (this binary) on the
// payload's config, on a free loopback port with a random token that never
// leaves the agent; once /readyz answers, testing_input_data() goes through
// its HTTP API (inferapi.SelfTest), the output is uploaded as the command's
// artifact, and the server is stopped, whatever happened (also when ctx
// ends; after a passing test, behind the result). A killed agent's test
// server dies with it (Pdeathsig); one left all the same is found by its
// pid file and killed by the next agent (reapTests). An algorithm that
// fails (__init__ raising, predict raising) is an OK result with OK false.
func (a *agentRuntime) test(ctx context.Context, cmd protocol.Command, progress func(...string)) (json.RawMessage, error) {
	var in commands.Test
	if err := decodePayload(cmd, &in); err != nil {
		return nil, err
	}
	if err := checkRevision(in.Revision); err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	var cfg inferapi.Config
	if err := json.Unmarshal(in.Config, &cfg); err != nil {
		return nil, fmt.Errorf("test: config: %w", err)
	}
	if cfg.Sandbox == nil {
		return nil, errors.New("test: the config has no sandbox: refusing to run author code unconfined")
	}
	if cfg.Sandbox.StateDir != "" && within(cfg.Sandbox.StateDir, a.dir) {
		return nil, fmt.Errorf("test: sandbox state_dir %s is inside the agent's folder", cfg.Sandbox.StateDir)
	}
	folder := filepath.Join(a.dir, testsDir, in.Revision)
	// One test at a time: two at once would share the sandbox group
	// ("<server>.test"), and for one revision its folder, and kill each
	// other's server. The lock is held until the server has stopped, which
	// may be after the result went (release).
	release := a.lock("test")
	defer func() { release() }()
	a.reapTest(folder) // an earlier attempt's, if its agent was killed
	if err := os.RemoveAll(folder); err != nil {
		return nil, fmt.Errorf("test: clear %s: %w", folder, err)
	}
	if err := os.MkdirAll(folder, 0o700); err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	port, err := freeLoopbackPort()
	if err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	var tok [32]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return nil, fmt.Errorf("test: token: %w", err)
	}
	token := hex.EncodeToString(tok[:])
	sum := sha256.Sum256([]byte(token))
	cfg.Listen = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg.TokenSHA256, cfg.TokenFile = hex.EncodeToString(sum[:]), ""
	if cfg.RunDir == "" {
		cfg.RunDir = filepath.Join(a.runRoot, "test-"+in.Revision)
	}
	if within(cfg.RunDir, a.dir) {
		return nil, fmt.Errorf("test: run_dir %s is inside the agent's folder", cfg.RunDir)
	}
	if err := os.MkdirAll(cfg.RunDir, 0o755); err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	cfgPath := filepath.Join(folder, "config.json")
	if err := inferapi.WriteConfig(cfgPath, cfg); err != nil {
		return nil, fmt.Errorf("test: write config: %w", err)
	}
	client, scheme, err := testClient(cfg.CertFile)
	if err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}

	progress(fmt.Sprintf("test: booting the inference server (%d thread(s)) in sandbox %s", max(cfg.Threads, 1), cfg.Sandbox.Group))
	logPath := filepath.Join(folder, "server.log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	srv := exec.Command(a.exe, "--config", cfgPath)
	srv.Dir = folder
	srv.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=" + cfg.RunDir}
	srv.Stdout, srv.Stderr = logFile, logFile
	// Killed as a group (workers included) when the test ends, and with
	// the agent when the agent dies (Pdeathsig): a test server is the
	// agent's, never left serving behind a killed one. (Pdeathsig follows
	// the thread that started it; the Go runtime ends no thread a goroutine
	// has not locked, and newAgentRuntime reaps one left all the same.)
	srv.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	err = srv.Start()
	logFile.Close()
	if err != nil {
		return nil, fmt.Errorf("test: start the inference server: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = srv.Wait(); close(exited) }()
	pidFile := filepath.Join(folder, "server.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(srv.Process.Pid)+"\n"), 0o600); err != nil {
		stopServer(srv.Process.Pid, exited)
		return nil, fmt.Errorf("test: %w", err)
	}
	unlock := release
	release = func() {
		stopServer(srv.Process.Pid, exited)
		os.Remove(pidFile)
		unlock()
	}

	base := scheme + "://" + cfg.Listen
	readyTimeout := 2 * time.Minute
	if in.ReadyTimeoutSeconds > 0 {
		readyTimeout = time.Duration(in.ReadyTimeoutSeconds) * time.Second
	}
	wctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	go func() { // a server that exits has nothing more to say: stop waiting
		select {
		case <-exited:
			cancel()
		case <-wctx.Done():
		}
	}()
	out := commands.TestOutput{}
	if err := inferapi.WaitReady(wctx, client, base); err != nil {
		var ie *inferapi.InitError
		if errors.As(err, &ie) {
			out.Code, out.Message, out.Stage, out.Traceback = inferapi.CodeInitFailed, ie.Message, ie.Stage, ie.Traceback
			return json.Marshal(out) // the worker logs the outcome, once (AgentTestResult)
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tail := logTail(logPath, 20)
		select {
		case <-exited:
			return nil, fmt.Errorf("test: the inference server stopped before it was ready: %s", tail)
		default:
			return nil, fmt.Errorf("test: the inference server was not ready within %s: %w\n%s", readyTimeout, err, tail)
		}
	}
	progress("test: server booted and ready; sending testing_input_data()")
	res, err := inferapi.SelfTest(ctx, client, base, token)
	if err != nil {
		return nil, fmt.Errorf("test: request: %w", err)
	}
	out = commands.TestOutput{OK: res.OK, Status: res.Status, Code: res.Code, Message: res.Message, Stage: res.Stage,
		Traceback: res.Traceback, ContentType: res.ContentType, Summary: res.Summary, InputSummary: res.InputSummary,
		DurationMS: res.Duration.Milliseconds()}
	if !res.OK {
		return json.Marshal(out)
	}
	if len(res.Output) > protocol.MaxArtifact {
		return nil, fmt.Errorf("test: the output is %d bytes, over the %d-byte artifact limit", len(res.Output), protocol.MaxArtifact)
	}
	name := "test-output" + outputExt(res.ContentType)
	if err := link.UploadArtifact(ctx, name, res.Output); err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	out.OutputArtifact = name
	// No "test passed" line: the worker logs the outcome from the result
	// (AgentTestResult), once, also when a restarted agent sends its kept
	// result and no progress.
	// The answer is in hand: the result goes now and the server stops
	// behind it (~150 ms of its workers' exit the step no longer waits
	// for). A next test waits for the lock; a killed agent's server is
	// reaped by the next agent.
	stop := release
	release = func() {}
	go stop()
	return json.Marshal(out)
}

// outputExt is the artifact name's extension for a content type.
func outputExt(contentType string) string {
	switch contentType {
	case "image/png":
		return ".png"
	case "image/jpeg":
		return ".jpg"
	case "application/json":
		return ".json"
	case "application/x-npy":
		return ".npy"
	default:
		return ".bin"
	}
}

// testClient is the client the agent calls its test server with: plain
// HTTP on loopback when the config has no certificate; else HTTPS pinned to
// the config's own certificate (the server's name on it is the endpoint's,
// not 127.0.0.1, so chain and name checks cannot apply; the pin is
// stronger: only that certificate's key is accepted).
func testClient(certFile string) (*http.Client, string, error) {
	tr := &http.Transport{Proxy: nil}
	if certFile == "" {
		return &http.Client{Transport: tr}, "http", nil
	}
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, "", fmt.Errorf("read the test server's certificate: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, "", fmt.Errorf("%s holds no PEM certificate", certFile)
	}
	want := blk.Bytes
	tr.TLSClientConfig = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // replaced by the pin below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !bytes.Equal(raw[0], want) {
				return errors.New("the test server's certificate is not the config's")
			}
			return nil
		},
	}
	return &http.Client{Transport: tr}, "https", nil
}

// freeLoopbackPort asks the kernel for a free port on 127.0.0.1.
func freeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopServer asks a test server's process group to drain (SIGTERM), and
// kills it after a grace period.
func stopServer(pid int, exited <-chan struct{}) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL) // what of the group is left (workers)
}

// reapTests kills the test servers a killed agent left behind (each test
// folder's pid file).
func (a *agentRuntime) reapTests() {
	dirs, _ := filepath.Glob(filepath.Join(a.dir, testsDir, "*"))
	for _, d := range dirs {
		a.reapTest(d)
	}
}

// reapTest kills the test server whose pid file is in folder, if that pid
// is still that server (its command line names the folder's config: a pid
// reused by another process is left alone).
func (a *agentRuntime) reapTest(folder string) {
	pidFile := filepath.Join(folder, "server.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid > 0 {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if bytes.Contains(cmdline, []byte(filepath.Join(folder, "config.json"))) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
				time.Sleep(50 * time.Millisecond) // its parent (the killed agent) is gone: init reaps it
			}
		}
	}
	os.Remove(pidFile)
}

// logTail is the last n lines of a log file.
func logTail(path string, n int) string {
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
