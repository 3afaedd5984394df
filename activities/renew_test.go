package activities

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs"
	"github.com/algocloud/algocloud/activities/certs/acme"
	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"
)

func renewTestActivities(t *testing.T, validFor time.Duration) *Activities {
	ca, err := certs.LoadOrCreateCA(t.TempDir())
	require.NoError(t, err)
	return &Activities{CA: ca, Issuer: certs.LocalIssuer{CA: ca, ValidFor: validFor}, Domain: "algocloud.test"}
}

func TestIssueCertificateForceRenewsInPlace(t *testing.T) {
	a := renewTestActivities(t, 0) // 90 days
	ctx := context.Background()
	in := actdef.CertInput{DeploymentID: "d1", APIName: "seg", Server: compute.Server{Host: "127.0.0.1", Workdir: t.TempDir()}}
	first, err := a.IssueCertificate(ctx, in)
	require.NoError(t, err)
	firstLeaf, err := readLeaf(first.CertFile)
	require.NoError(t, err)

	again, err := a.IssueCertificate(ctx, in)
	require.NoError(t, err)
	againLeaf, err := readLeaf(again.CertFile)
	require.NoError(t, err)
	require.Equal(t, firstLeaf.SerialNumber, againLeaf.SerialNumber, "without Force a valid certificate is reused")

	in.Force = true
	renewed, err := a.IssueCertificate(ctx, in)
	require.NoError(t, err)
	require.Equal(t, first.CertFile, renewed.CertFile, "renewed in place: live.json keeps pointing at it")
	require.Equal(t, first.KeyFile, renewed.KeyFile)
	leaf, err := readLeaf(renewed.CertFile)
	require.NoError(t, err)
	require.NotEqual(t, firstLeaf.SerialNumber, leaf.SerialNumber)
	require.Equal(t, leaf.NotAfter, renewed.NotAfter)
	require.False(t, renewed.NotAfter.Before(first.NotAfter))
	pair, err := tls.LoadX509KeyPair(renewed.CertFile, renewed.KeyFile)
	require.NoError(t, err, "the new key matches the new certificate")
	require.NotEqual(t, firstLeaf.PublicKey, pair.Leaf.PublicKey, "a new key")
	fi, err := os.Stat(renewed.KeyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(renewed.CertFile), "*.tmp*"))
	require.Empty(t, left, "no temporary files left")
}

func TestRenewalTime(t *testing.T) {
	ctx := context.Background()
	for _, valid := range []time.Duration{0, 3 * time.Minute} {
		a := renewTestActivities(t, valid)
		c, err := a.IssueCertificate(ctx, actdef.CertInput{APIName: "seg", Server: compute.Server{Host: "127.0.0.1", Workdir: t.TempDir()}})
		require.NoError(t, err)
		at, notAfter, err := a.renewalTime(c)
		require.NoError(t, err)
		require.Equal(t, c.NotAfter, notAfter)
		life := valid
		if life == 0 {
			life = 90 * 24 * time.Hour
		}
		require.Equal(t, c.NotAfter.Add(-life/3), at, "local CA: a third of its validity left")

		// ACME (any other issuer): two thirds into the certificate's lifetime.
		certPEM, err := os.ReadFile(c.CertFile)
		require.NoError(t, err)
		want, err := acme.RenewalTime(certPEM)
		require.NoError(t, err)
		other := &Activities{Issuer: acme.Issuer{}}
		at, _, err = other.renewalTime(c)
		require.NoError(t, err)
		require.Equal(t, want, at)

		// No file: the state's expiry, 30 days before for ACME.
		gone := c
		gone.CertFile = filepath.Join(t.TempDir(), "gone.pem")
		at, _, err = other.renewalTime(gone)
		require.NoError(t, err)
		require.Equal(t, c.NotAfter.Add(-30*24*time.Hour), at)
		gone.NotAfter = time.Time{}
		_, _, err = other.renewalTime(gone)
		require.Error(t, err)
	}
}

// TestWaitServed serves one certificate over real TLS, then another, and
// checks that waitServed returns only once the one asked for is presented.
func TestWaitServed(t *testing.T) {
	a := renewTestActivities(t, 0)
	ctx := context.Background()
	in := actdef.CertInput{APIName: "seg", Server: compute.Server{Host: "127.0.0.1", Workdir: t.TempDir()}}
	c1, err := a.IssueCertificate(ctx, in)
	require.NoError(t, err)
	old, err := tls.LoadX509KeyPair(c1.CertFile, c1.KeyFile)
	require.NoError(t, err)
	in.Force = true
	c2, err := a.IssueCertificate(ctx, in)
	require.NoError(t, err)
	cur, err := tls.LoadX509KeyPair(c2.CertFile, c2.KeyFile)
	require.NoError(t, err)

	var serving atomic.Pointer[tls.Certificate]
	serving.Store(&old)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
		return serving.Load(), nil
	}})
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) { _ = c.(*tls.Conn).Handshake(); c.Close() }(conn)
		}
	}()

	sctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	err = a.waitServed(sctx, l.Addr().String(), cur.Leaf.Raw)
	cancel()
	require.ErrorContains(t, err, "still serves the previous certificate")

	time.AfterFunc(700*time.Millisecond, func() { serving.Store(&cur) })
	sctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	require.NoError(t, a.waitServed(sctx, l.Addr().String(), cur.Leaf.Raw))
}
