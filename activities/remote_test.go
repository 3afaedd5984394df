package activities

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/dns"
	dnsroute53 "github.com/algocloud/algocloud/activities/dns/route53"
	"github.com/algocloud/algocloud/internal/sealed"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"

	"github.com/algocloud/algocloud/activities/compute/ec2/bundlelayout"
)

// untar reads a bundle into name -> content.
func untar(t *testing.T, tarGz []byte) map[string]string {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(tarGz))
	require.NoError(t, err)
	tr := tar.NewReader(zr)
	files := map[string]string{}
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		require.NoError(t, err)
		b, err := io.ReadAll(tr)
		require.NoError(t, err)
		files[h.Name] = string(b)
	}
}

// With a remote provider the certificate key is stored sealed, and the
// bundle carries it opened, with the code (not .git), the requirements and
// a live.json.in whose paths are the server's placeholders. The same inputs
// give the same bytes.
func TestBundle_SealedKeyAndDeterministic(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.LoadOrCreateCA(filepath.Join(dir, "ca"))
	require.NoError(t, err)
	encKey, err := sealed.NewEncryptionKey()
	require.NoError(t, err)
	a := &Activities{CA: ca, Domain: "algocloud.test", Bundles: nopBundles{}, KeyEncryptionKey: encKey, PredictTimeout: time.Second,
		CredentialsKey: bytes.Repeat([]byte{7}, 32)}
	srv := compute.Server{Provider: "ec2", ID: "i-0123456789abcdef0", Host: "203.0.113.7", Port: 443, Workdir: filepath.Join(dir, "ec2", "dep-1")}
	cert, err := a.IssueCertificate(context.Background(), actdef.CertInput{DeploymentID: "dep-1", APIName: "seg", Server: srv})
	require.NoError(t, err)
	require.Equal(t, sealedKeyFile, filepath.Base(cert.KeyFile))
	raw, err := os.ReadFile(cert.KeyFile)
	require.NoError(t, err)
	require.NotContains(t, string(raw), "PRIVATE KEY", "sealed at rest")
	again, err := a.IssueCertificate(context.Background(), actdef.CertInput{DeploymentID: "dep-1", APIName: "seg", Server: srv})
	require.NoError(t, err)
	require.Equal(t, cert, again, "reused while valid")

	code := filepath.Join(dir, "code")
	require.NoError(t, os.MkdirAll(filepath.Join(code, ".git"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(code, "aai_main.py"), []byte("class AAI: pass\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(code, ".git", "HEAD"), []byte("ref"), 0o644))
	in := actdef.ServiceInput{TokenSHA256: "ab", Build: actdef.Build{
		DeploymentID: "dep-1", Server: srv, Cert: cert, Code: actdef.CodeInfo{Dir: code, Revision: 1},
		Spec:    spec.Spec{APIName: "seg", Threads: 1, Input: spec.Image, Output: spec.Image},
		Install: actdef.InstallInfo{Python: "/worker/venv/bin/python", Requirements: []string{"scikit-image==0.22.0"}},
	}}
	b1, err := a.buildBundle(in, "")
	require.NoError(t, err)
	b2, err := a.buildBundle(in, "")
	require.NoError(t, err)
	require.Equal(t, b1, b2, "deterministic")
	rotated := in
	rotated.TokenSHA256 = "cd"
	b3, err := a.buildBundle(rotated, "")
	require.NoError(t, err)
	require.NotEqual(t, b1, b3, "a rotated token changes the bundle, so startRemote restarts the endpoint with it")
	var rcfg map[string]any
	require.NoError(t, json.Unmarshal([]byte(untar(t, b3)["live.json.in"]), &rcfg))
	require.Equal(t, "cd", rcfg["token_sha256"])
	files := untar(t, b1)
	require.Contains(t, files, "code/aai_main.py")
	require.NotContains(t, files, "code/.git/HEAD")
	require.Equal(t, "scikit-image==0.22.0\n", files["requirements.txt"])
	block, _ := pem.Decode([]byte(files["tls/key.pem"]))
	require.NotNil(t, block, "the bundle holds the key opened")
	var cfg map[string]any
	require.NoError(t, json.Unmarshal([]byte(files["live.json.in"]), &cfg))
	require.Equal(t, bundlelayout.ListenPlaceholder, cfg["listen"])
	require.Equal(t, call.PlatformTokenSHA256(a.CredentialsKey, "dep-1"), cfg["platform_token_sha256"],
		"the platform caller's hash travels in the bundle, the token and key do not")
	require.Equal(t, bundlelayout.HomePlaceholder+"/bundle/code", cfg["code_dir"])
	require.Equal(t, bundlelayout.HomePlaceholder+"/venv/bin/python", cfg["python"])
	certBlock, _ := pem.Decode([]byte(files["tls/cert.pem"]))
	leaf, err := x509.ParseCertificate(certBlock.Bytes)
	require.NoError(t, err)
	require.Equal(t, []string{"seg.algocloud.test"}, leaf.DNSNames)
	require.True(t, leaf.IPAddresses[0].Equal(net.ParseIP("203.0.113.7")), "the local CA names the address")
}

type nopBundles struct{}

func (nopBundles) Publish(context.Context, string, []byte) error               { return nil }
func (nopBundles) Delete(context.Context, string) error                        { return nil }
func (nopBundles) PublishObject(context.Context, string, string, []byte) error { return nil }
func (nopBundles) PublishONNXRuntime(context.Context, string) (string, error) {
	return "", errors.New("nopBundles publishes no ONNX Runtime")
}

func TestRecords(t *testing.T) {
	ctx := context.Background()
	none := &Activities{Domain: "algocloud.test"}
	rec, err := none.UpsertRecord(ctx, actdef.DNSInput{APIName: "seg", Server: compute.Server{Host: "203.0.113.7"}})
	require.NoError(t, err)
	require.Equal(t, actdef.DNSRecord{}, rec, "no DNS configured: nothing")
	require.NoError(t, none.DeleteRecord(ctx, actdef.DNSRecord{Name: "seg.algocloud.test"}))

	// Route53 on moto.
	moto := testmoto.Start(t)
	creds := testmoto.Credentials
	zone, err := route53.New(route53.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint)}).
		CreateHostedZone(ctx, &route53.CreateHostedZoneInput{Name: aws.String("algocloud.test"), CallerReference: aws.String("activities-test")})
	require.NoError(t, err)
	r53, err := dnsroute53.NewRoute53(ctx, dnsroute53.Options{Endpoint: moto.Endpoint, Credentials: creds, ZoneID: aws.ToString(zone.HostedZone.Id), Poll: 10 * time.Millisecond})
	require.NoError(t, err)
	a := &Activities{Domain: "algocloud.test", DNS: r53}
	in := actdef.DNSInput{DeploymentID: "d", APIName: "seg", Server: compute.Server{Host: "203.0.113.7"}}
	rec, err = a.UpsertRecord(ctx, in)
	require.NoError(t, err)
	require.Equal(t, actdef.DNSRecord{Name: "seg.algocloud.test", Address: "203.0.113.7"}, rec)
	_, err = a.UpsertRecord(ctx, in)
	require.NoError(t, err, "again")
	ip, err := r53.Lookup(ctx, "seg.algocloud.test")
	require.NoError(t, err)
	require.Equal(t, "203.0.113.7", ip)
	require.NoError(t, a.DeleteRecord(ctx, rec))
	require.NoError(t, a.DeleteRecord(ctx, rec), "again")
	_, err = r53.Lookup(ctx, "seg.algocloud.test")
	require.ErrorIs(t, err, dns.ErrNotFound)

	out := actdef.DNSInput{APIName: "x", Server: compute.Server{Host: "203.0.113.7"}}
	other := &Activities{Domain: "elsewhere.test", DNS: r53}
	_, err = other.UpsertRecord(ctx, out)
	var perm *temporal.ApplicationError
	require.True(t, errors.As(err, &perm) && perm.NonRetryable(), "a name outside the zone cannot pass: %v", err)

	in.Server.Host = "ec2-203-0-113-7.compute.amazonaws.com"
	_, err = a.UpsertRecord(ctx, in)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app) && app.NonRetryable(), "a host name is not an address: %v", err)
}
