package platform

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
)

func TestCloudOptionsValidate(t *testing.T) {
	var def CloudOptions
	require.NoError(t, def.validate())
	require.Equal(t, CloudOptions{Compute: ComputeLocal, Certs: CertsLocal, DNS: DNSNone, AWSRegion: "us-east-1"}, def, "defaults stay local/local/none")
	ok := CloudOptions{Compute: ComputeEC2, Certs: CertsACME, DNS: DNSRoute53, BundleBucket: "b", ACMEDirectory: "https://ca/dir"}
	require.NoError(t, ok.validate())
	for _, tc := range []struct {
		o    CloudOptions
		want string
	}{
		{CloudOptions{Compute: "gce"}, "compute"},
		{CloudOptions{Certs: "self"}, "certs"},
		{CloudOptions{DNS: "bind"}, "dns"},
		{CloudOptions{Compute: ComputeEC2}, "bundle bucket"},
		{CloudOptions{Certs: CertsACME, DNS: DNSRoute53, ACMEDirectory: "https://ca/dir"}, "needs compute ec2"},
		{CloudOptions{Compute: ComputeEC2, BundleBucket: "b", Certs: CertsACME, ACMEDirectory: "https://ca/dir"}, "needs dns route53"},
		{CloudOptions{Compute: ComputeEC2, BundleBucket: "b", Certs: CertsACME, DNS: DNSRoute53}, "ACME directory"},
	} {
		require.ErrorContains(t, tc.o.validate(), tc.want)
	}
}

// A platform without a worker (`algocloud api`) checks each cloud value but
// not how they combine: the API takes --certs alone (no --compute, --dns or
// --acme-*), and the worker checks the combination.
func TestCloudOptionsValidateValues(t *testing.T) {
	apiOnly := CloudOptions{Certs: CertsACME}
	require.NoError(t, apiOnly.validateValues())
	require.Equal(t, CloudOptions{Compute: ComputeLocal, Certs: CertsACME, DNS: DNSNone, AWSRegion: "us-east-1"}, apiOnly)
	require.ErrorContains(t, apiOnly.validate(), "needs compute ec2", "the worker's check")
	bad := CloudOptions{Certs: "self"}
	require.ErrorContains(t, bad.validateValues(), "certs")
}

// Without a configured key, a development key is made once on the data
// disk (0600) and read back the same by later starts.
func TestEncryptionKeyOnDisk(t *testing.T) {
	dir := t.TempDir()
	p := &Platform{opts: Options{DataDir: dir}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	k1, err := p.encryptionKey()
	require.NoError(t, err)
	require.Len(t, k1, 32)
	fi, err := os.Stat(filepath.Join(dir, "secrets", "encryption.key"))
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	k2, err := p.encryptionKey()
	require.NoError(t, err)
	require.Equal(t, k1, k2)

	p.opts.Cloud.EncryptionKey = []byte("short")
	_, err = p.encryptionKey()
	require.ErrorContains(t, err, "32")
}

// The API learns from --certs whether clients verify endpoints with the local
// CA root or with the system's roots; it serves the local CA's root either way.
func TestAPIConfigFollowsCerts(t *testing.T) {
	ca, err := certs.LoadOrCreateCA(filepath.Join(t.TempDir(), "ca"))
	require.NoError(t, err)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, tc := range []struct {
		cloud  CloudOptions
		public bool
	}{
		{CloudOptions{}, false},
		{CloudOptions{Compute: ComputeEC2, BundleBucket: "b", Certs: CertsLocal, DNS: DNSRoute53}, false},
		{CloudOptions{Compute: ComputeEC2, BundleBucket: "b", Certs: CertsACME, DNS: DNSRoute53, ACMEDirectory: "https://ca/dir"}, true},
	} {
		require.NoError(t, tc.cloud.validate())
		p := &Platform{opts: Options{DataDir: t.TempDir(), Cloud: tc.cloud, Logger: log}, log: log, CA: ca}
		cfg := p.apiConfig()
		require.Equal(t, tc.public, cfg.PublicEndpointCerts, "certs %s", tc.cloud.Certs)
		require.Equal(t, ca.RootPEM(), cfg.CARootPEM, "/api/ca.pem serves the local CA with certs %s too", tc.cloud.Certs)
	}
}
