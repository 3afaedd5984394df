package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/platform"
)

func parse(t *testing.T, args ...string) *config {
	t.Helper()
	var c config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.flags(fs, workerCommand)
	require.NoError(t, fs.Parse(args))
	return &c
}

func TestCloudFlagsDefaults(t *testing.T) {
	t.Setenv("ALGOCLOUD_ENCRYPTION_KEY", "")
	o, err := parse(t).cloud()
	require.NoError(t, err)
	require.Equal(t, platform.ComputeLocal, o.Compute)
	require.Equal(t, platform.CertsLocal, o.Certs)
	require.Equal(t, platform.DNSNone, o.DNS)
	require.Nil(t, o.EncryptionKey)
	require.True(t, o.EC2Agents, "EC2 instances run the agent by default")
	o, err = parse(t, "--ec2-agents=false").cloud()
	require.NoError(t, err)
	require.False(t, o.EC2Agents, "the opt-out")
}

func TestCloudFlags(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	require.NoError(t, os.WriteFile(keyFile, []byte(strings.Repeat("ab", 32)+"\n"), 0o600))
	root := filepath.Join(dir, "root.pem")
	require.NoError(t, os.WriteFile(root, []byte("not a certificate"), 0o644))

	c := parse(t, "--compute", "ec2", "--certs", "acme", "--dns", "route53", "--aws-endpoint", "http://127.0.0.1:5000",
		"--ec2-ami", "python=ami-1, python/gpu=ami-2", "--bundle-bucket", "b", "--acme-directory", "https://ca/dir",
		"--acme-dns-resolvers", "127.0.0.1:53,127.0.0.2:53", "--encryption-key-file", keyFile)
	o, err := c.cloud()
	require.NoError(t, err)
	require.Equal(t, map[string]string{"python": "ami-1", "python/gpu": "ami-2"}, o.EC2AMIs)
	require.Equal(t, []string{"127.0.0.1:53", "127.0.0.2:53"}, o.ACMEDNSResolvers)
	require.Len(t, o.EncryptionKey, 32)
	require.Equal(t, "http://127.0.0.1:5000", o.AWSEndpoint)

	_, err = parse(t, "--ec2-ami", "python").cloud()
	require.ErrorContains(t, err, "--ec2-ami")
	_, err = parse(t, "--acme-ca-root", root).cloud()
	require.ErrorContains(t, err, "no PEM certificate")

	t.Setenv("ALGOCLOUD_ENCRYPTION_KEY", "secret-value-that-is-wrong")
	_, err = parse(t).cloud()
	require.Error(t, err)
	require.NotContains(t, err.Error(), "secret-value", "the key never shows in errors")
}

func TestEC2HealthURLFlag(t *testing.T) {
	o, err := parse(t).cloud()
	require.NoError(t, err)
	require.Nil(t, o.EC2HealthURL, "default: the provider's https://<instance>:<port>/readyz")

	o, err = parse(t, "--ec2-health-url", "https://{host}:{port}/healthz").cloud()
	require.NoError(t, err)
	require.Equal(t, "https://203.0.113.7:8443/healthz", o.EC2HealthURL(compute.Server{Host: "203.0.113.7", Port: 8443}))

	t.Setenv("ALGOCLOUD_EC2_HEALTH_URL", "https://127.0.0.1:9000/readyz")
	o, err = parse(t).cloud()
	require.NoError(t, err)
	require.Equal(t, "https://127.0.0.1:9000/readyz", o.EC2HealthURL(compute.Server{Host: "203.0.113.7", Port: 443}))
}

// The previous key (rotation) comes from its file or environment variable,
// and a malformed one is refused without echoing it.
func TestPreviousEncryptionKeyFlag(t *testing.T) {
	t.Setenv("ALGOCLOUD_ENCRYPTION_KEY", strings.Repeat("cd", 32))
	t.Setenv("ALGOCLOUD_PREVIOUS_ENCRYPTION_KEY", "")
	o, err := parse(t).cloud()
	require.NoError(t, err)
	require.Nil(t, o.PreviousEncryptionKey)

	prev := filepath.Join(t.TempDir(), "prev")
	require.NoError(t, os.WriteFile(prev, []byte(strings.Repeat("ab", 32)), 0o600))
	o, err = parse(t, "--previous-encryption-key-file", prev).cloud()
	require.NoError(t, err)
	require.Len(t, o.PreviousEncryptionKey, 32)
	require.NotEqual(t, o.EncryptionKey, o.PreviousEncryptionKey)

	t.Setenv("ALGOCLOUD_PREVIOUS_ENCRYPTION_KEY", "old-secret-too-short")
	_, err = parse(t).cloud()
	require.ErrorContains(t, err, "--previous-encryption-key-file")
	require.NotContains(t, err.Error(), "old-secret")
}
