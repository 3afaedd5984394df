package activities

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference"

	"github.com/algocloud/algocloud/activities/actdef"
)

// RunTest is Test Code: it boots a throwaway inference server for the code
// revision on a free port (on this machine when the provider is remote: see
// testServer), sends testing_input_data() through its real HTTP
// API and reports the result, or the error with its Python traceback. An
// algorithm that fails is a result (OK=false), not an activity error.
func (a *Activities) RunTest(ctx context.Context, in actdef.TestInput) (actdef.TestInfo, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "testing" })()
	token, sum := newToken()
	prov, srv, cert, err := a.testServer(ctx, in)
	if err != nil {
		return actdef.TestInfo{}, err
	}
	port, err := freePort(srv.Host)
	if err != nil {
		return actdef.TestInfo{}, err
	}
	cfgPath := filepath.Join(srv.Workdir, "test.json")
	build := in.Build
	build.Cert = cert
	cfg, err := a.serviceConfig(srv, port, build, sum, "test")
	if err != nil {
		return actdef.TestInfo{}, err
	}
	if _, err := writeConfig(cfgPath, cfg); err != nil {
		return actdef.TestInfo{}, err
	}
	svc := compute.ServiceSpec{Server: srv, Name: "test", Port: port, ConfigFile: cfgPath}
	// A test service left by a crashed attempt runs an old config: replace it.
	_ = prov.Stop(ctx, compute.Handle{Provider: srv.Provider, ServerID: srv.ID, Name: "test"})
	a.event(ctx, in.DeploymentID, "test", "booting the inference server (%d thread(s))", in.Spec.Threads)
	h, err := prov.Start(ctx, svc)
	if err != nil {
		return actdef.TestInfo{}, fmt.Errorf("start test server: %w", err)
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = prov.Stop(stopCtx, h)
	}()
	base := "https://" + h.Address
	client := a.httpClient(a.PredictTimeout + 30*time.Second)
	info := actdef.TestInfo{At: time.Now().UTC(), CodeRevision: in.Code.Revision, InstallRevision: in.Install.Revision}
	if a.Sandbox.Unconfined() {
		info.Unsandboxed, info.Warning = true, UnconfinedWarning
		a.event(ctx, in.DeploymentID, "test", "WARNING: %s", UnconfinedWarning)
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := inference.WaitReady(wctx, client, base); err != nil {
		if ie, ok := asInitError(err); ok {
			info.Code, info.Message, info.Stage, info.Traceback = "init_failed", ie.Message, ie.Stage, ie.Traceback
			a.event(ctx, in.DeploymentID, "test", "test failed: %s", ie.Message)
			return info, nil
		}
		return actdef.TestInfo{}, fmt.Errorf("test server did not become ready: %w", err)
	}
	a.event(ctx, in.DeploymentID, "test", "server booted and ready; sending testing_input_data()")
	res, err := inference.SelfTest(ctx, client, base, token)
	if err != nil {
		return actdef.TestInfo{}, fmt.Errorf("test request: %w", err)
	}
	info.OK, info.Status, info.Code, info.Message, info.Stage, info.Traceback = res.OK, res.Status, res.Code, res.Message, res.Stage, res.Traceback
	info.ContentType, info.Summary, info.InputSummary = res.ContentType, res.Summary, res.InputSummary
	info.DurationMS = res.Duration.Milliseconds()
	if res.OK {
		if a.Blobs != nil {
			// The API serves it from the blob store: it need not share this disk.
			key, err := a.putTestOutput(ctx, in.DeploymentID, in.Code.Revision, res.ContentType, res.Output)
			if err != nil {
				return actdef.TestInfo{}, fmt.Errorf("store test output: %w", err)
			}
			info.OutputKey = key
		} else {
			out := filepath.Join(in.Server.Workdir, "test-output", strconv.Itoa(in.Code.Revision)+outputExt(res.ContentType))
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err == nil && os.WriteFile(out, res.Output, 0o644) == nil {
				info.OutputFile = out
			}
		}
		a.event(ctx, in.DeploymentID, "test", "test passed: %s", res.Summary)
	} else {
		a.event(ctx, in.DeploymentID, "test", "test failed: %s (%d %s)", res.Message, res.Status, res.Code)
	}
	return info, nil
}

func asInitError(err error) (*inference.InitError, bool) {
	var ie *inference.InitError
	ok := errors.As(err, &ie)
	return ie, ok
}

func outputExt(contentType string) string {
	switch contentType {
	case "image/png":
		return ".png"
	case "application/json":
		return ".json"
	default:
		return ".bin"
	}
}

// freePort asks the kernel for a free port for a test server.
func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
