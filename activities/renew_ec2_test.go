package activities

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// An EC2 instance tagged for the certificate pick-up that does not serve
// the renewed certificate within certPickupWait (its timer broken, say) is
// restarted instead, so the renewal still lands: ReloadCertificate on moto
// (the provider, the bundle store) with a TLS server standing for the
// instance that keeps serving the first certificate. The certificate object
// and the bundle with the new certificate are published first.
func TestReloadCertificateEC2_NotPickedUpRestarts(t *testing.T) {
	old, oldPoll := certPickupWait, certPickupPoll
	certPickupWait, certPickupPoll = time.Second, 100*time.Millisecond
	t.Cleanup(func() { certPickupWait, certPickupPoll = old, oldPoll })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	master, err := sealed.NewEncryptionKey()
	require.NoError(t, err)

	moto := testmoto.Start(t)
	creds := testmoto.Credentials
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint), UsePathStyle: true})
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("renew-bundles")})
	require.NoError(t, err)
	store, err := ec2.NewBundleStore(ctx, ec2.BundleStoreOptions{
		Bucket: "renew-bundles", Region: "us-east-1", Endpoint: moto.Endpoint, Credentials: creds, EncryptionKey: master,
	})
	require.NoError(t, err)

	// The instance's endpoint: it serves the first certificate and never
	// picks up another.
	var instance *httptest.Server
	health := func(compute.Server) string { return instance.URL + "/readyz" }
	prov, err := ec2.New(ctx, ec2.Options{
		Region: "us-east-1", Endpoint: moto.Endpoint, Credentials: creds, AMIs: map[string]string{"python": "ami-760aaa0f"},
		ArtifactsURL: store.ArtifactsURL(), BundleEncryptionKey: master, Domain: "algocloud.test", HealthURL: health,
		HealthClient: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}},
		Poll:         20 * time.Millisecond, StagingDir: filepath.Join(dir, "ec2"), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	srv, err := prov.Provision(ctx, compute.ServerSpec{
		DeploymentID: "dep-renew", Owner: "u", APIName: "seg", Compute: spec.CPU, InstanceType: "t3.small", Region: "us-east-1",
	})
	require.NoError(t, err)
	a := &Activities{CA: ca, Domain: "algocloud.test", Provider: prov, Bundles: store, KeyEncryptionKey: master, PredictTimeout: time.Second}
	first, err := a.IssueCertificate(ctx, actdef.CertInput{DeploymentID: "dep-renew", APIName: "seg", Server: srv})
	require.NoError(t, err)
	firstKey, err := a.readKey(first.KeyFile)
	require.NoError(t, err)
	firstCert, err := os.ReadFile(first.CertFile)
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(firstCert, firstKey)
	require.NoError(t, err)
	instance = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	instance.TLS = &tls.Config{Certificates: []tls.Certificate{pair}}
	instance.StartTLS()
	defer instance.Close()
	ok, err := prov.CertPickup(ctx, srv)
	require.NoError(t, err)
	require.True(t, ok, "launched with the pick-up timer")

	renewed, err := a.IssueCertificate(ctx, actdef.CertInput{DeploymentID: "dep-renew", APIName: "seg", Server: srv, Force: true})
	require.NoError(t, err)
	code := filepath.Join(dir, "code")
	require.NoError(t, os.MkdirAll(code, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, "aai_main.py"), []byte("class AAI: pass\n"), 0o644))
	in := actdef.ServiceInput{TokenSHA256: "ab", Build: actdef.Build{
		DeploymentID: "dep-renew", Server: srv, Cert: renewed, Code: actdef.CodeInfo{Dir: code, Revision: 1},
		Spec:    spec.Spec{APIName: "seg", Threads: 1, Input: spec.Image, Output: spec.Image},
		Install: actdef.InstallInfo{Python: "/worker/venv/bin/python"},
	}}
	rel, err := a.ReloadCertificate(ctx, actdef.ReloadInput{Service: in, Endpoint: "https://seg.algocloud.test"})
	require.NoError(t, err)
	require.False(t, rel.InPlace, "not picked up: restarted")
	require.Equal(t, "live", rel.Service.Handle.Name)
	require.Equal(t, srv.ID, rel.Service.Handle.ServerID)
	leaf, err := readLeaf(renewed.CertFile)
	require.NoError(t, err)
	require.Equal(t, leaf.NotAfter, rel.NotAfter)

	// Published before the wait: the certificate object and the bundle
	// holding the renewed certificate (what the restart's boot fetches).
	renewedPEM, err := os.ReadFile(renewed.CertFile)
	require.NoError(t, err)
	bundle, err := store.Fetch(ctx, "dep-renew")
	require.NoError(t, err)
	require.Equal(t, string(renewedPEM), untar(t, bundle)["tls/cert.pem"])
	obj, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("renew-bundles"), Key: aws.String(store.CertKey("dep-renew"))})
	require.NoError(t, err)
	sealed, err := io.ReadAll(obj.Body)
	obj.Body.Close()
	require.NoError(t, err)
	keys, err := store.Keys("dep-renew")
	require.NoError(t, err)
	plain, err := ec2.OpenBundle(keys, sealed)
	require.NoError(t, err)
	require.Equal(t, string(renewedPEM), untar(t, plain)["cert.pem"])

	// On an instance whose agent fetched the certificate (AgentFetched) the
	// reload only waits for it: an endpoint that keeps the old one fails
	// the reload (retried; the next renewal run asks again) and is never
	// restarted, which would not help an agent's revision.
	_, err = a.ReloadCertificate(ctx, actdef.ReloadInput{Service: in, Endpoint: "https://seg.algocloud.test", AgentFetched: true})
	require.ErrorContains(t, err, "wait for the agent's revision to serve the renewed certificate")
	require.ErrorContains(t, err, "still serves the previous certificate")
}
