package activities

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/local"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// Where a bundle's files go on the server: fetch.sh (the EC2 user data)
// puts the bundle in <home>/bundle and the venv in <home>/venv, and fills
// in the placeholders of live.json.in.
const (
	bundleHome   = bundlelayout.HomePlaceholder
	bundleListen = bundlelayout.ListenPlaceholder
)

// maxBundle bounds a bundle (code and models included) before encryption.
const maxBundle = 512 << 20

// remoteConfig is the live endpoint's inference config as the server reads
// it: paths in the unpacked bundle, the address it listens on left to the
// server.
func (a *Activities) remoteConfig(in actdef.ServiceInput) ([]byte, error) {
	cfg, err := a.serviceConfig(in.Server, in.Server.Port, in.Build, in.TokenSHA256, "live")
	if err != nil {
		return nil, err
	}
	cfg.Listen = bundleListen
	// The platform's async predictions call with a token derived from the
	// credentials key, which never leaves the worker: only its hash travels.
	cfg.PlatformTokenSHA256 = call.PlatformTokenSHA256(a.CredentialsKey, in.DeploymentID)
	cfg.CertFile = bundleHome + "/bundle/tls/cert.pem"
	cfg.KeyFile = bundleHome + "/bundle/tls/key.pem"
	cfg.CodeDir = bundleHome + "/bundle/code"
	// The server makes a venv only when the config runs Python from it: as
	// on the worker, environment onnx without requirements has none.
	cfg.Python = ""
	if in.Install.Python != "" {
		cfg.Python = bundleHome + "/venv/bin/python"
	}
	// The worker's ONNX Runtime path means nothing on the server: it loads
	// the library its fetch downloaded (the one the bundle names).
	cfg.ONNXRuntimeLib = ""
	if in.Spec.Environment == spec.EnvONNX {
		cfg.ONNXRuntimeLib = bundleHome + "/" + bundlelayout.ONNXRuntimePath
	}
	cfg = cfg.WithDefaults()
	return json.MarshalIndent(cfg, "", "  ")
}

// buildBundle makes the live endpoint's bundle: live.json.in,
// requirements.txt, code/ (the revision's folder without .git), tls/
// (certificate and key, the key opened from its sealed file in memory) and,
// given onnxSHA256 (environment onnx), bundlelayout.ONNXRuntimeSumFile naming the
// ONNX Runtime library the server fetches. The archive is deterministic
// (sorted, no times), so the same inputs give the same bytes and a restart
// can tell whether anything changed (a new library is a change).
func (a *Activities) buildBundle(in actdef.ServiceInput, onnxSHA256 string) ([]byte, error) {
	cfg, err := a.remoteConfig(in)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(in.Cert.CertFile)
	if err != nil {
		return nil, fmt.Errorf("bundle: certificate: %w", err)
	}
	keyPEM, err := a.readKey(in.Cert.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("bundle: certificate key: %w", err)
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	add := func(name string, mode int64, data []byte) error {
		if buf.Len() > maxBundle {
			return nonRetryable(actdef.BadInputErrorType, fmt.Errorf("bundle is over %d MiB", maxBundle>>20))
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	reqs := strings.Join(in.Install.Requirements, "\n")
	if reqs != "" {
		reqs += "\n"
	}
	type member struct {
		name string
		mode int64
		data []byte
	}
	members := []member{
		{"live.json.in", 0o600, cfg},
		{"requirements.txt", 0o644, []byte(reqs)},
		{"tls/cert.pem", 0o644, certPEM},
		{"tls/key.pem", 0o600, keyPEM},
	}
	if onnxSHA256 != "" {
		members = append(members, member{bundlelayout.ONNXRuntimeSumFile, 0o644, []byte(onnxSHA256 + "\n")})
	}
	for _, f := range members {
		if err := add(f.name, f.mode, f.data); err != nil {
			return nil, err
		}
	}
	err = filepath.WalkDir(in.Code.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(in.Code.Dir, path)
		switch {
		case d.IsDir() && d.Name() == ".git":
			return filepath.SkipDir
		case d.IsDir(), !d.Type().IsRegular():
			return nil // folders come with their files; links are never extracted into code
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return add("code/"+filepath.ToSlash(rel), 0o644, data)
	})
	if err != nil {
		return nil, fmt.Errorf("bundle: code: %w", err)
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// startRemote publishes the bundle (after the ONNX Runtime library it
// names, for environment onnx) and has the provider start the live
// endpoint on the remote server, which fetches the bundle when its service
// starts. A changed bundle (a redeploy) first stops the service, so that the
// start fetches the new one. The provider waits for the endpoint's health
// (verifying its certificate); with DNS, the name is pointed at the
// server's current address (it changes when an instance stops and starts)
// and is the endpoint's URL.
func (a *Activities) startRemote(ctx context.Context, in actdef.ServiceInput) (actdef.ServiceInfo, error) {
	onnxSHA256, err := a.publishONNXRuntime(ctx, in)
	if err != nil {
		return actdef.ServiceInfo{}, err
	}
	bundle, err := a.buildBundle(in, onnxSHA256)
	if err != nil {
		return actdef.ServiceInfo{}, err
	}
	sum := sha256.Sum256(bundle)
	sumFile := filepath.Join(in.Server.Workdir, "bundle.sha256")
	old, _ := os.ReadFile(sumFile)
	changed := string(old) != hex.EncodeToString(sum[:])
	if err := a.Bundles.Publish(ctx, in.DeploymentID, bundle); err != nil {
		return actdef.ServiceInfo{}, fmt.Errorf("publish bundle: %w", err)
	}
	a.event(ctx, in.DeploymentID, "complete", "bundle published (%d KiB, encrypted)", len(bundle)>>10)
	cfgPath := filepath.Join(in.Server.Workdir, "live.json.in")
	cfg, _ := a.remoteConfig(in)
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return actdef.ServiceInfo{}, fmt.Errorf("write service config: %w", err)
	}
	stopHandle := compute.Handle{Provider: in.Server.Provider, ServerID: in.Server.ID, Name: "live"}
	if changed && len(old) > 0 {
		if err := a.Provider.Stop(ctx, stopHandle); err != nil && !errors.Is(err, compute.ErrNotFound) {
			return actdef.ServiceInfo{}, fmt.Errorf("stop previous endpoint: %w", err)
		}
	}
	h, err := a.Provider.Start(ctx, compute.ServiceSpec{Server: in.Server, Name: "live", Port: in.Server.Port, ConfigFile: cfgPath, Restart: true})
	if err != nil {
		var perm *compute.PermanentError
		if errors.As(err, &perm) {
			return actdef.ServiceInfo{}, nonRetryable(actdef.BadInputErrorType, err)
		}
		return actdef.ServiceInfo{}, fmt.Errorf("start endpoint: %w", err)
	}
	if err := os.WriteFile(sumFile, []byte(hex.EncodeToString(sum[:])), 0o600); err != nil {
		return actdef.ServiceInfo{}, err
	}
	endpoint := "https://" + h.Address
	if a.DNS != nil {
		host, port, _ := net.SplitHostPort(h.Address)
		rec := actdef.DNSRecord{Name: a.endpointName(in.Spec.APIName), Address: host}
		if err := a.upsert(ctx, rec); err != nil {
			return actdef.ServiceInfo{}, err
		}
		endpoint = "https://" + rec.Name
		if port != "443" {
			endpoint += ":" + port
		}
	}
	a.event(ctx, in.DeploymentID, "complete", "endpoint live at %s", endpoint)
	return actdef.ServiceInfo{Handle: h, Endpoint: endpoint, CodeRevision: in.Code.Revision}, nil
}

// republishBundle rebuilds and publishes the live endpoint's bundle (a
// renewal's new certificate in it) without restarting anything, and records
// its sum as the one the server runs: the running server takes the
// certificate from the certificate object instead (reloadRemote), and a
// later boot fetches this bundle, so a later start must not count it as a
// change that needs a restart.
func (a *Activities) republishBundle(ctx context.Context, in actdef.ServiceInput) error {
	onnxSHA256, err := a.publishONNXRuntime(ctx, in)
	if err != nil {
		return err
	}
	bundle, err := a.buildBundle(in, onnxSHA256)
	if err != nil {
		return err
	}
	if err := a.Bundles.Publish(ctx, in.DeploymentID, bundle); err != nil {
		return fmt.Errorf("publish bundle: %w", err)
	}
	sum := sha256.Sum256(bundle)
	return os.WriteFile(filepath.Join(in.Server.Workdir, "bundle.sha256"), []byte(hex.EncodeToString(sum[:])), 0o600)
}

// deploymentOfWorkdir is the deployment ID a remote server's staging folder
// is named after (ec2.Options.StagingDir/<deployment-id>), or "".
func deploymentOfWorkdir(workdir string) string {
	if workdir == "" {
		return ""
	}
	id := filepath.Base(workdir)
	if !deploymentIDRe.MatchString(id) {
		return ""
	}
	return id
}

var deploymentIDRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// testServer is where Test Code runs: the deployment's server, or, when
// the provider is remote (Activities.Tests), a local server named after
// the remote one, with a certificate from the local CA for 127.0.0.1 so
// that the test client can verify it. It returns the provider, the server
// and the certificate's files.
func (a *Activities) testServer(ctx context.Context, in actdef.TestInput) (compute.Provider, compute.Server, actdef.CertInfo, error) {
	if a.Tests == nil {
		return a.Provider, in.Server, in.Cert, nil
	}
	srv, err := a.Tests.Provision(ctx, compute.ServerSpec{DeploymentID: in.Server.ID, APIName: in.Spec.APIName})
	if err != nil {
		return nil, compute.Server{}, actdef.CertInfo{}, fmt.Errorf("test server: %w", err)
	}
	names := []string{a.endpointName(in.Spec.APIName)}
	ips := hostIPs(srv.Host)
	dir := filepath.Join(srv.Workdir, "test-certs")
	if info, ok := existingCert(dir, "key.pem", names, ips, time.Hour); ok {
		return a.Tests, srv, actdef.CertInfo{CertFile: info.CertFile, KeyFile: info.KeyFile, Names: names}, nil
	}
	certPEM, keyPEM, err := a.CA.Issue(names, ips, 24*time.Hour)
	if err != nil {
		return nil, compute.Server{}, actdef.CertInfo{}, fmt.Errorf("test certificate: %w", err)
	}
	certFile, keyFile, err := certs.WriteKeyPair(dir, certPEM, keyPEM)
	if err != nil {
		return nil, compute.Server{}, actdef.CertInfo{}, err
	}
	return a.Tests, srv, actdef.CertInfo{CertFile: certFile, KeyFile: keyFile, Names: names}, nil
}

// releaseRemote removes what a remote server left on the side: its bundle
// and its local test server.
func (a *Activities) releaseRemote(ctx context.Context, s compute.Server) error {
	if a.Bundles != nil {
		if id := deploymentOfWorkdir(s.Workdir); id != "" {
			if err := a.Bundles.Delete(ctx, id); err != nil {
				return fmt.Errorf("delete bundle: %w", err)
			}
		}
	}
	if a.Tests != nil && s.ID != "" {
		err := a.Tests.Release(ctx, compute.Server{Provider: local.ProviderName, ID: s.ID})
		if err != nil && !errors.Is(err, compute.ErrNotFound) {
			return fmt.Errorf("release test server: %w", err)
		}
	}
	return nil
}
