package activities

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/inference/inferapi"
	"github.com/algocloud/algocloud/predictions/call"

	"github.com/algocloud/algocloud/activities/actdef"
)

// serviceConfig is the inference server config for a service on the server.
//
// role ("test" or "live") names the sandbox's group; an instance type
// without sandbox limits is an error.
func (a *Activities) serviceConfig(srv compute.Server, port int, in actdef.Build, tokenSHA256, role string) (inferapi.Config, error) {
	box, err := a.sandboxConfig(srv, in.Spec, role)
	if err != nil {
		return inferapi.Config{}, nonRetryable(actdef.BadInputErrorType, err)
	}
	return inferapi.Config{
		Sandbox:          box,
		Name:             in.Spec.APIName,
		Listen:           net.JoinHostPort(srv.Host, strconv.Itoa(port)),
		CertFile:         in.Cert.CertFile,
		KeyFile:          in.Cert.KeyFile,
		TokenSHA256:      tokenSHA256,
		Environment:      in.Spec.Environment,
		ONNXRuntimeLib:   onnxRuntimeLib(in.Spec.Environment),
		CodeDir:          in.Code.Dir,
		Python:           in.Install.Python,
		Threads:          in.Spec.Threads,
		Input:            in.Spec.Input,
		Output:           in.Spec.Output,
		Timeout:          inferapi.Duration(a.PredictTimeout),
		AllowPrivateURLs: a.AllowPrivateURLs,
		MaxBatchSize:     in.Spec.MaxBatchSize,
		MaxQueueDelay:    inferapi.Duration(time.Duration(in.Spec.MaxQueueDelayMS) * time.Millisecond),
		MaxQueueSize:     in.Spec.MaxQueueSize,
		PublicMetrics:    in.Spec.PublicMetrics,
	}.WithDefaults(), nil
}

// writeConfig writes cfg to path and reports whether its content changed.
func writeConfig(path string, cfg inferapi.Config) (changed bool, err error) {
	old, _ := os.ReadFile(path)
	if err := inferapi.WriteConfig(path, cfg); err != nil {
		return false, fmt.Errorf("write service config: %w", err)
	}
	cur, _ := os.ReadFile(path)
	return !bytes.Equal(old, cur), nil
}

// liveTokenFile is the file in the server's folder that holds the live
// endpoint's token hash; the server re-reads it when it changes
// (inferapi.Config.TokenFile), so a rotation needs no restart.
const liveTokenFile = "live-token.sha256"

// StartService makes the live endpoint run the given code revision: it
// re-attaches when the same config already runs, or restarts it when the
// config changed (a redeploy), then waits until the endpoint is ready. The
// token's hash is written first to its own file, which the running server
// follows: a new token (a rotation) reaches a running endpoint at once,
// without a restart, and the old one is refused from then on.
func (a *Activities) StartService(ctx context.Context, in actdef.ServiceInput) (actdef.ServiceInfo, error) {
	if in.TokenSHA256 == "" {
		return actdef.ServiceInfo{}, nonRetryable(actdef.BadInputErrorType, errors.New("no endpoint token"))
	}
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "starting endpoint" })()
	if a.Bundles != nil {
		return a.startRemote(ctx, in)
	}
	cfgPath := filepath.Join(in.Server.Workdir, "live.json")
	cfg, err := a.serviceConfig(in.Server, in.Server.Port, in.Build, in.TokenSHA256, "live")
	if err != nil {
		return actdef.ServiceInfo{}, err
	}
	cfg.TokenSHA256, cfg.TokenFile = "", filepath.Join(in.Server.Workdir, liveTokenFile)
	cfg.PlatformTokenSHA256 = call.PlatformTokenSHA256(a.CredentialsKey, in.DeploymentID)
	if b, err := hex.DecodeString(in.TokenSHA256); err != nil || len(b) != sha256.Size {
		return actdef.ServiceInfo{}, nonRetryable(actdef.BadInputErrorType, errors.New("the endpoint token hash is not 64 hex digits"))
	}
	// Rewritten only when it changes: the running server re-reads a replaced file.
	if cur, _ := os.ReadFile(cfg.TokenFile); strings.TrimSpace(string(cur)) != strings.ToLower(in.TokenSHA256) {
		if err := inferapi.WriteTokenFile(cfg.TokenFile, in.TokenSHA256); err != nil {
			return actdef.ServiceInfo{}, err
		}
	}
	changed, err := writeConfig(cfgPath, cfg)
	if err != nil {
		return actdef.ServiceInfo{}, err
	}
	svc := compute.ServiceSpec{Server: in.Server, Name: "live", Port: in.Server.Port, ConfigFile: cfgPath, Restart: true}
	if changed {
		// A different config is a redeploy: stop what runs so Start launches anew.
		if err := a.Provider.Stop(ctx, compute.Handle{Provider: in.Server.Provider, ServerID: in.Server.ID, Name: "live"}); err != nil && !errors.Is(err, compute.ErrNotFound) {
			return actdef.ServiceInfo{}, fmt.Errorf("stop previous endpoint: %w", err)
		}
	}
	h, err := a.Provider.Start(ctx, svc)
	if err != nil {
		return actdef.ServiceInfo{}, fmt.Errorf("start endpoint: %w", err)
	}
	endpoint := "https://" + h.Address
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := inferapi.WaitReady(wctx, a.httpClient(5*time.Second), endpoint); err != nil {
		return actdef.ServiceInfo{}, a.initError(err)
	}
	a.event(ctx, in.DeploymentID, "complete", "endpoint live at %s", endpoint)
	return actdef.ServiceInfo{Handle: h, Endpoint: endpoint, CodeRevision: in.Code.Revision}, nil
}

// initError makes an algorithm whose __init__ fails a permanent failure.
func (a *Activities) initError(err error) error {
	var ie *inferapi.InitError
	if errors.As(err, &ie) {
		return nonRetryable(actdef.InitFailedErrorType, err)
	}
	return fmt.Errorf("wait for endpoint: %w", err)
}

// StopService stops a service; stopping what is gone is not an error.
func (a *Activities) StopService(ctx context.Context, h compute.Handle) error {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "stopping" })()
	if err := a.Provider.Stop(ctx, h); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return fmt.Errorf("stop service %s: %w", h.Name, err)
	}
	return nil
}

// ReleaseServer tears the server down (folder, certificate, venv included)
// and, for a remote server, its published bundle and local test server.
func (a *Activities) ReleaseServer(ctx context.Context, s compute.Server) error {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "releasing" })()
	if s.Agent {
		if err := a.stopAgent(ctx, s); err != nil {
			return err
		}
	}
	if err := a.Provider.Release(ctx, s); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return fmt.Errorf("release server %s: %w", s.ID, err)
	}
	return a.releaseRemote(ctx, s)
}

// newToken makes a random bearer token and its SHA-256 hex, for test services
// whose token never leaves this activity.
func newToken() (token, sum string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	token = hex.EncodeToString(b)
	h := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(h[:])
}
