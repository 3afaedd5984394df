package activities

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"

	"github.com/algocloud/algocloud/activities/certs/acme"
	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"

	"github.com/algocloud/algocloud/activities/certs"
)

// WorkflowQuerier queries a workflow (the Temporal client.Client is one).
// ListCertificates reads each live deployment's certificate from its
// workflow's state, which owns it.
type WorkflowQuerier interface {
	QueryWorkflow(ctx context.Context, workflowID, runID, queryType string, args ...any) (converter.EncodedValue, error)
}

// ListCertificates lists the live deployments (from the store) with their
// certificates (from their workflows' state) and marks those whose renewal
// time has come (or whose renewed certificate the endpoint was not seen
// serving: Pending): for the local CA when a third of its configured validity is
// left (30 of 90 days), for ACME two thirds into the certificate's lifetime
// (acme.RenewalTime, day 60 of 90). A deployment whose state cannot be read
// is listed with Error and not renewed.
func (a *Activities) ListCertificates(ctx context.Context, in actdef.ListCertificatesInput) ([]actdef.CertStatus, error) {
	if a.Workflows == nil {
		return nil, nonRetryable(actdef.BadInputErrorType, errors.New("list certificates: no Temporal client configured"))
	}
	live, err := a.Store.ListLiveAlgorithms(ctx)
	if err != nil {
		return nil, fmt.Errorf("list live deployments: %w", err)
	}
	now := time.Now()
	out := make([]actdef.CertStatus, 0, len(live))
	for i, alg := range live {
		if activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, i)
		}
		cs := actdef.CertStatus{DeploymentID: alg.ID}
		cert, err := a.queryCert(ctx, in, alg.ID)
		var onDisk time.Time
		if err == nil {
			cs.Names, cs.NotAfter = cert.Names, cert.NotAfter
			cs.RenewAt, onDisk, err = a.renewalTime(cert)
		}
		switch {
		case err != nil:
			cs.Error = err.Error()
			a.log().Warn("certificate renewal: cannot check a deployment's certificate", "deployment", alg.ID, "error", err)
		case !onDisk.Equal(cert.NotAfter):
			// Issued, but the endpoint was not seen serving it (a reload
			// that failed): renew again, which reloads.
			cs.Due, cs.Pending = true, true
		default:
			cs.Due = !now.Before(cs.RenewAt)
		}
		out = append(out, cs)
	}
	return out, nil
}

// queryCert reads the certificate of a deployment's workflow state.
func (a *Activities) queryCert(ctx context.Context, in actdef.ListCertificatesInput, id string) (actdef.CertInfo, error) {
	qctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	v, err := a.Workflows.QueryWorkflow(qctx, in.WorkflowIDPrefix+id, "", in.Query)
	if err != nil {
		return actdef.CertInfo{}, fmt.Errorf("query state: %w", err)
	}
	var st struct {
		Cert *actdef.CertInfo `json:"cert"`
	}
	if err := v.Get(&st); err != nil {
		return actdef.CertInfo{}, fmt.Errorf("decode state: %w", err)
	}
	if st.Cert == nil {
		return actdef.CertInfo{}, errors.New("no certificate in the deployment's state")
	}
	return *st.Cert, nil
}

// renewalTime is when c should be renewed, and its NotAfter as the file on
// disk says (the state's when the file cannot be read).
func (a *Activities) renewalTime(c actdef.CertInfo) (time.Time, time.Time, error) {
	certPEM, err := os.ReadFile(c.CertFile)
	var leaf *x509.Certificate
	if err == nil {
		leaf, err = parseLeaf(certPEM)
	}
	if err != nil && c.NotAfter.IsZero() {
		return time.Time{}, time.Time{}, err
	}
	notAfter := c.NotAfter
	if leaf != nil {
		notAfter = leaf.NotAfter
	}
	if l, ok := a.issuer().(certs.LocalIssuer); ok {
		// The local CA backdates NotBefore (clock skew), so the lifetime is
		// what it was asked for, not NotAfter-NotBefore.
		return notAfter.Add(-l.Validity() / 3), notAfter, nil
	}
	if leaf == nil {
		return notAfter.Add(-30 * 24 * time.Hour), notAfter, nil
	}
	at, err := acme.RenewalTime(certPEM)
	return at, notAfter, err
}

// readLeaf parses the first certificate of a PEM file.
func readLeaf(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	return parseLeaf(b)
}

// parseLeaf parses the first certificate of PEM data.
func parseLeaf(certPEM []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// ReloadCertificate makes the live endpoint serve the renewed certificate in
// in.Service.Cert. Locally the files were replaced in place (renamed over,
// where live.json points) and the running algocloud-infer reloads them at its
// next TLS handshake after a change (inference/tls.go), so nothing restarts:
// this dials the endpoint until it presents the new certificate. On a remote
// provider (EC2) see reloadRemote: in place on instances with the
// certificate pick-up timer, else a restart with the republished bundle.
func (a *Activities) ReloadCertificate(ctx context.Context, in actdef.ReloadInput) (actdef.CertReload, error) {
	defer heartbeatEvery(ctx, heartbeatPeriod, func() any { return "reloading certificate" })()
	leaf, err := readLeaf(in.Service.Cert.CertFile)
	if err != nil {
		return actdef.CertReload{}, err
	}
	out := actdef.CertReload{Serial: hex.EncodeToString(leaf.SerialNumber.Bytes()), NotAfter: leaf.NotAfter}
	if in.AgentFetched {
		return a.reloadByAgent(ctx, in, leaf, out)
	}
	if a.Bundles != nil {
		return a.reloadRemote(ctx, in, leaf, out)
	}
	u, err := url.Parse(in.Endpoint)
	if err != nil || u.Host == "" {
		return actdef.CertReload{}, nonRetryable(actdef.BadInputErrorType, fmt.Errorf("endpoint %q is not a URL", in.Endpoint))
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := a.waitServed(wctx, u.Host, leaf.Raw); err != nil {
		return actdef.CertReload{}, err
	}
	out.InPlace = true
	a.event(ctx, in.Service.DeploymentID, "renew", "endpoint %s serves the renewed certificate (serial %s, valid until %s) without a restart",
		in.Endpoint, out.Serial, leaf.NotAfter.UTC().Format(time.RFC3339))
	return out, nil
}

// waitServed dials addr with TLS (verifying it with the local CA) until the
// certificate it presents is want (DER). Each new handshake lets the server
// notice the changed files (it checks at most every 2 s).
func (a *Activities) waitServed(ctx context.Context, addr string, want []byte) error {
	cfg := clientTLS(a.CA)
	host, _, _ := net.SplitHostPort(addr)
	cfg.ServerName = host
	var last error
	for {
		d := tls.Dialer{Config: cfg, NetDialer: &net.Dialer{Timeout: 5 * time.Second}}
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			peers := conn.(*tls.Conn).ConnectionState().PeerCertificates
			_ = conn.Close()
			if len(peers) > 0 && bytes.Equal(peers[0].Raw, want) {
				return nil
			}
			last = errors.New("the endpoint still serves the previous certificate")
		} else if ctx.Err() == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the endpoint to serve the renewed certificate: %w (last: %v)", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// certPickupWait bounds how long reloadRemote waits for an instance to
// serve the published certificate (its timer runs every minute) before it
// restarts the service instead; certPickupPoll is how often it looks.
var (
	certPickupWait = 2 * time.Minute
	certPickupPoll = 2 * time.Second
)

// reloadRemote has a remote endpoint take up the renewed certificate. When
// the provider says the server picks certificates up (EC2: the instance's
// algocloud:cert-pickup tag, set at launch for user data with the timer), it
// republishes the bundle (so a later boot has the new certificate too), then
// publishes the certificate object and waits, heartbeating, until the
// endpoint presents the new certificate on a new connection: the running
// server reloaded the files its timer replaced, with no restart. A server
// without the pick-up (launched before it existed), or one not seen serving
// the certificate within certPickupWait, is restarted with the republished
// bundle, as before.
func (a *Activities) reloadRemote(ctx context.Context, in actdef.ReloadInput, leaf *x509.Certificate, out actdef.CertReload) (actdef.CertReload, error) {
	svc := in.Service
	pp, okProv := a.Provider.(compute.CertPickupProvider)
	cp, okPub := a.Bundles.(compute.CertPublisher)
	pickup := false
	if okProv && okPub {
		var err error
		if pickup, err = pp.CertPickup(ctx, svc.Server); err != nil {
			return actdef.CertReload{}, err
		}
	}
	if !pickup {
		info, err := a.startRemote(ctx, svc)
		if err != nil {
			return actdef.CertReload{}, err
		}
		out.Service = info
		a.event(ctx, svc.DeploymentID, "renew", "endpoint restarted with the renewed certificate (serial %s): its instance has no certificate pick-up", out.Serial)
		return out, nil
	}
	if err := a.republishBundle(ctx, svc); err != nil {
		return actdef.CertReload{}, err
	}
	keyPEM, err := a.readKey(svc.Cert.KeyFile)
	if err != nil {
		return actdef.CertReload{}, fmt.Errorf("certificate key: %w", err)
	}
	certPEM, err := os.ReadFile(svc.Cert.CertFile)
	if err != nil {
		return actdef.CertReload{}, fmt.Errorf("certificate: %w", err)
	}
	if err := cp.PublishCert(ctx, svc.DeploymentID, certPEM, keyPEM, time.Now().UnixMilli()); err != nil {
		return actdef.CertReload{}, fmt.Errorf("publish certificate: %w", err)
	}
	a.event(ctx, svc.DeploymentID, "renew", "renewed certificate published (serial %s); waiting for the instance to pick it up", out.Serial)
	wctx, cancel := context.WithTimeout(ctx, certPickupWait)
	defer cancel()
	var last error
	for wctx.Err() == nil {
		der, err := pp.ServedCertificate(wctx, svc.Server)
		if err == nil && bytes.Equal(der, leaf.Raw) {
			out.InPlace = true
			a.event(ctx, svc.DeploymentID, "renew", "endpoint %s serves the renewed certificate (serial %s, valid until %s) without a restart",
				in.Endpoint, out.Serial, leaf.NotAfter.UTC().Format(time.RFC3339))
			return out, nil
		}
		if err == nil {
			last = errors.New("the endpoint still serves the previous certificate")
		} else if wctx.Err() == nil {
			last = err
		}
		select {
		case <-wctx.Done():
		case <-time.After(certPickupPoll):
		}
	}
	if err := ctx.Err(); err != nil {
		return actdef.CertReload{}, err
	}
	a.log().Warn("renewed certificate not picked up in place; restarting the endpoint", "deployment", svc.DeploymentID, "after", certPickupWait, "last", last)
	h := compute.Handle{Provider: svc.Server.Provider, ServerID: svc.Server.ID, Name: "live"}
	if err := a.Provider.Stop(ctx, h); err != nil && !errors.Is(err, compute.ErrNotFound) {
		return actdef.CertReload{}, fmt.Errorf("stop endpoint: %w", err)
	}
	info, err := a.startRemote(ctx, svc)
	if err != nil {
		return actdef.CertReload{}, err
	}
	out.Service = info
	a.event(ctx, svc.DeploymentID, "renew", "endpoint restarted with the renewed certificate (serial %s): not picked up in place within %s (last: %v)", out.Serial, certPickupWait, last)
	return out, nil
}

// reloadByAgent is ReloadCertificate on a remote server whose agent has
// fetched the renewed certificate already (the workflow served the serving
// revision again with it: ReloadInput.AgentFetched): the revision reloads
// the replaced files at its next handshake, so this only waits, heartbeating,
// until the endpoint presents the new certificate on a new connection. It
// never restarts the endpoint: one not seen serving it within
// certPickupWait is an error, retried, and the next renewal run asks again
// (ListCertificates sees the state's certificate differ from the issued one).
func (a *Activities) reloadByAgent(ctx context.Context, in actdef.ReloadInput, leaf *x509.Certificate, out actdef.CertReload) (actdef.CertReload, error) {
	svc := in.Service
	pp, ok := a.Provider.(compute.CertPickupProvider)
	if !ok {
		return actdef.CertReload{}, nonRetryable(actdef.BadInputErrorType, errors.New("reload certificate: the provider cannot read the certificate its servers present"))
	}
	wctx, cancel := context.WithTimeout(ctx, certPickupWait)
	defer cancel()
	var last error
	for {
		der, err := pp.ServedCertificate(wctx, svc.Server)
		switch {
		case err == nil && bytes.Equal(der, leaf.Raw):
			out.InPlace = true
			a.event(ctx, svc.DeploymentID, "renew", "endpoint %s serves the renewed certificate (serial %s, valid until %s) without a restart: its agent fetched it and the serving revision reloaded it",
				in.Endpoint, out.Serial, leaf.NotAfter.UTC().Format(time.RFC3339))
			return out, nil
		case err == nil:
			last = errors.New("the endpoint still serves the previous certificate")
		case wctx.Err() == nil:
			last = err
		}
		select {
		case <-wctx.Done():
			if err := ctx.Err(); err != nil {
				return actdef.CertReload{}, err
			}
			return actdef.CertReload{}, fmt.Errorf("wait for the agent's revision to serve the renewed certificate (serial %s): not within %s (last: %v)", out.Serial, certPickupWait, last)
		case <-time.After(certPickupPoll):
		}
	}
}
