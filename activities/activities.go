// Package activities holds the Deployment workflow's activities: each is
// retryable and idempotent, and long ones heartbeat. The Activities struct holds
// the clients they need; the workflow calls them by method value.
package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/activities/python"
	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"

	"github.com/algocloud/algocloud/activities/actdef"

	"github.com/algocloud/algocloud/activities/dns"
)

// Activities are the platform's side effects. Zero fields are not valid; build
// it in the worker.
type Activities struct {
	Provider compute.Provider
	// CA is the platform's local CA: it issues endpoints' certificates when
	// Issuer is nil, and Test Code's certificates on a remote provider.
	CA *certs.CA
	// Issuer issues endpoints' certificates; nil means the local CA.
	Issuer certs.Issuer
	// DNS, when set, keeps <api-name>.<Domain> pointing at each server.
	DNS dns.RecordStore
	// Bundles, when set, means endpoints run on remote servers (EC2): the
	// live endpoint's bundle is published there before the provider starts
	// it (see remote.go), and certificate keys are stored sealed.
	Bundles compute.BundlePublisher
	// KeyEncryptionKey (32 bytes) seals certificate keys at rest with
	// Bundles (acme.SaveKey); required with Bundles.
	KeyEncryptionKey []byte
	// CredentialsKey (32 bytes) opens the Git credentials the API sealed
	// (see source.SealGitCredentials); the API must use the same key.
	CredentialsKey []byte
	// Tests runs Test Code's throwaway servers on this machine when Provider
	// is remote (a local provider); nil means Provider.
	Tests compute.Provider
	Store *store.Store
	// Workflows reads deployments' state for the certificate renewal
	// schedule (ListCertificates); the worker's Temporal client.
	Workflows WorkflowQuerier
	// UploadDir is where older APIs staged uploads (legacy paths in
	// histories); only files under it are read.
	UploadDir string
	// Blobs holds uploads and Test Code's outputs, shared with the API.
	Blobs blobs.Store
	// Python is the interpreter venvs are made from (Debian's /usr/bin/python3).
	Python string
	// Pip configures installs (index, find-links).
	Pip python.InstallOptions
	// AllowLocalGit lets code come from local paths and file:// URLs (dev).
	AllowLocalGit bool
	// AllowPrivateGit lets Git URLs reach loopback and private addresses.
	AllowPrivateGit bool
	// AllowPrivateURLs is passed to inference servers (image URLs to private hosts).
	AllowPrivateURLs bool
	// Domain names endpoints: <api-name>.<Domain>.
	Domain string
	// Sandbox says how author code (pip installs, Test Code, the live
	// workers) runs: sandboxed unless the operator chose otherwise.
	Sandbox SandboxSettings
	// PredictTimeout bounds one prediction in the served endpoint.
	PredictTimeout time.Duration
	// Agents, when set, gives local servers a server agent (agent.go):
	// their Install, Test Code and live revisions then run there, through
	// agent commands; nil keeps every step on this worker.
	Agents *AgentSettings
	Logger *slog.Logger
}

// The workflows name these methods through actdef.Names: same names, same
// signatures, or this does not compile.
var _ actdef.Activities = (*Activities)(nil)

func nonRetryable(kind string, err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), kind, nil)
}

// event records progress for the deployment's event log; failures only log.
func (a *Activities) event(ctx context.Context, id, kind, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if a.Store != nil {
		if err := a.Store.AddEvent(ctx, id, kind, msg); err != nil {
			a.log().Warn("record event", "deployment", id, "error", err)
		}
	}
}

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// heartbeatPeriod is how often long activities heartbeat: well inside the
// workflow's heartbeat timeout (20 s), so only a lost worker misses it.
var heartbeatPeriod = 5 * time.Second

// heartbeatEvery heartbeats until the returned stop is called, so a long step
// shows liveness while a blocking call runs.
func heartbeatEvery(ctx context.Context, d time.Duration, detail func() any) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if activity.IsActivity(ctx) {
					activity.RecordHeartbeat(ctx, detail())
				}
			}
		}
	}()
	return func() { close(done) }
}

// RecordState projects state into the store so listings and restarts see it.
func (a *Activities) RecordState(ctx context.Context, r actdef.StateRecord) error {
	up := store.StateUpdate{Step: r.Step, Status: r.Status, Endpoint: r.Endpoint, Error: r.Error}
	var err error
	if r.Serving != nil {
		if up.Serving, err = json.Marshal(r.Serving); err != nil {
			return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("record serving revision: %w", err))
		}
	}
	if r.Staged != nil {
		if up.Staged, err = json.Marshal(r.Staged); err != nil {
			return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("record staged revision: %w", err))
		}
	}
	err = a.Store.UpdateAlgorithmState(ctx, r.DeploymentID, up)
	if errors.Is(err, store.ErrNotFound) {
		return nonRetryable(actdef.BadInputErrorType, err)
	}
	return err
}

// MarkDeleted frees the deployment's API name once teardown finished.
func (a *Activities) MarkDeleted(ctx context.Context, id string) error {
	if err := a.Store.MarkDeleted(ctx, id); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	a.event(ctx, id, "delete", "deployment deleted: servers, certificates and files removed")
	return nil
}

// ProvisionServer provisions (or re-attaches to) the deployment's server.
func (a *Activities) ProvisionServer(ctx context.Context, in actdef.ProvisionInput) (compute.Server, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "provisioning" })()
	// Worded for both providers: in dev the "server" is a local process,
	// and the spec's instance type and region are only what EC2 would get.
	a.event(ctx, in.DeploymentID, "provision", "provisioning the server (asked for: %s %s in %s)", in.Spec.Compute, in.Spec.InstanceType, in.Spec.Region)
	agent := in.Agent && a.agentsFor(in.Spec)
	s, err := a.Provider.Provision(ctx, compute.ServerSpec{
		DeploymentID: in.DeploymentID, Owner: in.OwnerID, APIName: in.Spec.APIName,
		Compute: in.Spec.Compute, InstanceType: in.Spec.InstanceType, Region: in.Spec.Region,
		Agent: agent,
	})
	if err != nil {
		var perm *compute.PermanentError
		if errors.As(err, &perm) {
			return compute.Server{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		return compute.Server{}, fmt.Errorf("provision server: %w", err)
	}
	switch {
	case agent && remoteAgent(s):
		// The instance's user data installed its agent, with a credential
		// for its commands only (the provider reports it: an instance
		// launched before agents has none, and keeps the worker's path).
		if s.Agent {
			a.event(ctx, in.DeploymentID, "provision", "server agent installed on instance %s by its user data (it installs, tests and serves)", s.ID)
		}
	case agent && s.Provider == local.ProviderName:
		// The server's own agent, with a credential for its commands only:
		// from here on author code runs there, never in this worker.
		if err := a.ensureAgent(ctx, s); err != nil {
			return compute.Server{}, err
		}
		s.Agent = true
		a.event(ctx, in.DeploymentID, "provision", "server agent started on %s (it installs, tests and serves)", s.ID)
	default:
		// Never an agent the workflow did not ask for (a history from
		// before agents replays the worker's steps).
		s.Agent, s.AgentID = false, ""
	}
	a.event(ctx, in.DeploymentID, "provision", "%s", ProvisionedText(s, in.Spec))
	return s, nil
}

// IssueCertificate issues the endpoint's certificate from the configured
// issuer (the local CA by default, or ACME), or returns the existing one
// when it is still valid for 30 days for the same names (unless in.Force:
// a renewal always issues a new one). The key is written
// next to it, mode 0600: plain where the endpoint runs on this machine,
// sealed (acme.SaveKey) where it runs remotely and is only published inside
// the encrypted bundle. Only paths and names are returned.
func (a *Activities) IssueCertificate(ctx context.Context, in actdef.CertInput) (actdef.CertInfo, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "issuing certificate" })()
	iss := a.issuer()
	names := []string{a.endpointName(in.APIName)}
	var ips []net.IP
	if iss.CertifiesIPs() {
		ips = hostIPs(in.Server.Host)
	}
	dir := filepath.Join(in.Server.Workdir, "certs")
	keyName := "key.pem"
	if a.sealKeys() {
		keyName = sealedKeyFile
	}
	if info, ok := existingCert(dir, keyName, names, ips, 30*24*time.Hour); ok && !in.Force {
		return actdef.CertInfo{CertFile: info.CertFile, KeyFile: info.KeyFile, Names: names, NotAfter: info.NotAfter}, nil
	}
	certPEM, keyPEM, err := iss.Issue(ctx, names, ips)
	if err != nil {
		err = fmt.Errorf("issue certificate (%s): %w", iss.Describe(), err)
		if iss.Permanent(err) {
			return actdef.CertInfo{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		return actdef.CertInfo{}, err
	}
	var certFile, keyFile string
	if a.sealKeys() {
		certFile, keyFile, err = writeSealedPair(dir, certPEM, keyPEM, a.KeyEncryptionKey)
	} else {
		certFile, keyFile, err = certs.WriteKeyPair(dir, certPEM, keyPEM)
	}
	if err != nil {
		return actdef.CertInfo{}, fmt.Errorf("write certificate: %w", err)
	}
	info, _ := existingCert(dir, keyName, names, ips, 0)
	if in.Force {
		a.event(ctx, in.DeploymentID, "renew", "certificate renewed for %v (%s), valid until %s", names, iss.Describe(), info.NotAfter.UTC().Format(time.RFC3339))
	} else {
		a.event(ctx, in.DeploymentID, "provision", "certificate issued for %v (%s)", names, iss.Describe())
	}
	return actdef.CertInfo{CertFile: certFile, KeyFile: keyFile, Names: names, NotAfter: info.NotAfter}, nil
}

// httpClient trusts the local CA, for talking to inference servers.
func (a *Activities) httpClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: clientTLS(a.CA)}}
}

// ProvisionedText says what a provisioned server is, as users read it: a
// local process (dev) must not pass for the EC2 instance the spec names.
func ProvisionedText(s compute.Server, sp spec.Spec) string {
	if s.Provider == local.ProviderName {
		return fmt.Sprintf("server %s ready: a local process on this machine at %s (on EC2 it would be a %s %s in %s)", s.ID, s.Host, sp.Compute, sp.InstanceType, sp.Region)
	}
	return fmt.Sprintf("server %s ready: %s %s in %s at %s", s.ID, sp.Compute, sp.InstanceType, sp.Region, s.Host)
}
