package integration

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	awssdk "github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/certs/acme"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testpebble"
	"github.com/algocloud/algocloud/workflows"
)

// acmeValidity is the lifetime of the certificates pebble issues in
// TestCertificateRenewalACME: long enough for the wizard's walk from the
// certificate (issued by provision) to a live endpoint, short enough that
// the renewal (due two thirds in, acme.RenewalTime: after about 60 s) comes
// within the test.
const acmeValidity = 90 * time.Second

// TestCertificateRenewalACME renews an ACME certificate end to end: the
// platform runs with --compute ec2 --dns route53 --certs acme on moto and
// pebble, pebble issues 90-second certificates, and the renewal schedule
// runs every 3 s. The wizard is walked to a live endpoint (the stand-in for
// the instance serves it); the renewal schedule finds the certificate due,
// the Deployment workflow obtains a new one from pebble (a new DNS-01
// order through Route53) and publishes it; the stand-in's certificate
// pick-up (the user data's certfetch.sh, run every second as the instance's
// timer would) installs it and the running server reloads it; the
// certificate read from a real TLS connection to seg.algocloud.test,
// verified against pebble's root only, then has a new serial and a later
// NotAfter, the same algocloud-infer process serves it (no restart), and the
// endpoint answers predict.
func TestCertificateRenewalACME(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	w := newCloudWorld(t, ctx)
	// newCloudWorld's pebble issues 90-day certificates; this one, answering
	// DNS-01 through the same zone, issues short-lived ones.
	w.pebble = testpebble.Start(t, testpebble.Config{Resolver: w.zdns.Addr, Validity: acmeValidity})
	pebbleRoots := x509.NewCertPool()
	require.True(t, pebbleRoots.AppendCertsFromPEM(w.pebble.IssuerRootPEM(t)))

	port := testenv.FreePort(t)
	inst := &instanceStandIn{si: &standIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}}
	defer inst.shutdown()
	aws := inst.proxy(t, w.moto.Endpoint)
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.CertRenewEvery = 3 * time.Second
		o.Cloud = ec2Options(w, aws, port, inst.si.listen)
		// The worker's path's certificate pick-up (fetch.sh's timer).
		o.Cloud.EC2Agents = false
		o.Cloud.Certs, o.Cloud.ACMEDirectory, o.Cloud.ACMEEmail = platform.CertsACME, w.pebble.DirectoryURL, "ops@algocloud.test"
		o.Cloud.ACMECARoots, o.Cloud.ACMEDNSResolvers, o.Cloud.EndpointRoots = w.pebble.TLSRoots(), []string{w.zdns.Addr}, pebbleRoots
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Segmentation on EC2 with ACME", "api_name": "seg", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	walkStart := time.Now()
	for _, s := range []string{"provision", "fetch_code", "install_requirements", "test"} {
		var body any
		if s == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		r = c.Step(id, s, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", s, r.Raw)
	}

	// The certificate provision obtained: short-lived, from pebble, by a
	// DNS-01 challenge pebble validated through Route53.
	st := deploymentState(t, p, id)
	require.NotNil(t, st.Cert)
	issuedPEM, err := os.ReadFile(st.Cert.CertFile)
	require.NoError(t, err)
	issued := pemLeaf(t, issuedPEM)
	require.Equal(t, []string{"seg.algocloud.test"}, issued.DNSNames)
	require.Equal(t, acmeValidity-time.Second, issued.NotAfter.Sub(issued.NotBefore), "pebble's ValidityPeriod")
	require.Equal(t, issued.NotAfter.UTC(), st.Cert.NotAfter.UTC())
	dueAt, err := acme.RenewalTime(issuedPEM)
	require.NoError(t, err)
	require.Equal(t, issued.NotBefore.Add((acmeValidity-time.Second)*2/3), dueAt)
	challenges := w.zdns.Answered("TXT", "_acme-challenge.seg.algocloud.test")
	require.Positive(t, challenges, "pebble validated DNS-01 through Route53")

	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: awssdk.String(st.Server.ID), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(awssdk.ToString(attr.UserData.Value))
	require.NoError(t, err)
	inst.setUserData(string(userData))
	inst.runPickup(t, time.Second)

	// Complete publishes the bundle; the instance's first boot fetches it.
	done := make(chan resp, 1)
	go func() { done <- c.Step(id, "complete", nil) }()
	require.Eventually(t, func() bool {
		_, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: awssdk.String(w.bucket), Key: awssdk.String("algocloud/" + id + "/bundle.enc")})
		return err == nil
	}, 3*time.Minute, 50*time.Millisecond, "bundle published")
	inst.start()
	require.NoError(t, inst.err())
	select {
	case r = <-done:
	case <-time.After(4 * time.Minute):
		t.Fatal("complete did not return: the endpoint never became ready")
	}
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, token := r.Str("endpoint"), r.Str("token")
	require.Equal(t, "https://seg.algocloud.test:"+strconv.Itoa(port), endpoint)
	t.Logf("walk to live: %s; certificate issued at %s, due at %s, expires at %s",
		time.Since(walkStart).Round(time.Second), issued.NotBefore.Format(time.TimeOnly),
		dueAt.Format(time.TimeOnly), issued.NotAfter.Format(time.TimeOnly))

	// The endpoint by its name, verified against pebble's root only; the
	// dialer plays DNS and sends the name's traffic to the stand-in.
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		if host != "seg.algocloud.test" {
			return nil, errors.New("unexpected dial to " + addr)
		}
		return (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, inst.si.listen)
	}
	tlsConfig := &tls.Config{RootCAs: pebbleRoots, MinVersion: tls.VersionTLS12}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		DisableKeepAlives: true, TLSClientConfig: tlsConfig, DialContext: dial,
	}}
	// served is the leaf of a new TLS connection (nil while the stand-in
	// restarts and refuses connections).
	served := func() *x509.Certificate {
		raw, err := dial(ctx, "tcp", "seg.algocloud.test:"+strconv.Itoa(port))
		if err != nil {
			return nil
		}
		conn := tls.Client(raw, &tls.Config{RootCAs: pebbleRoots, ServerName: "seg.algocloud.test", MinVersion: tls.VersionTLS12})
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := conn.HandshakeContext(ctx); err != nil {
			var verr *tls.CertificateVerificationError
			require.False(t, errors.As(err, &verr), "the endpoint's certificate does not verify against pebble's root: %v", err)
			return nil
		}
		return conn.ConnectionState().PeerCertificates[0]
	}
	res, out := predict(t, hc, endpoint, token, samplePNG(t, 32, 24))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	first := res.TLS.PeerCertificates[0]
	require.False(t, first.NotAfter.Before(issued.NotAfter), "the endpoint serves the provisioned certificate or a renewed one")
	require.Empty(t, first.IPAddresses, "an ACME certificate names no address")
	require.NotEqual(t, p.CA.Root().RawSubject, first.RawIssuer, "issued by pebble, not the local CA")
	pid := inst.pid()
	require.NotZero(t, pid)
	powerBefore := inst.stops.Load() + inst.starts.Load()

	// Wait for the renewal: the schedule finds the certificate due two
	// thirds into its lifetime; the endpoint then picks up a new one in place.
	var renewed *x509.Certificate
	for time.Now().Before(issued.NotAfter) {
		require.NoError(t, inst.err())
		if cur := served(); cur != nil && cur.SerialNumber.Cmp(issued.SerialNumber) != 0 {
			st = deploymentState(t, p, id)
			if st.Busy == "" && st.Cert.NotAfter.Equal(cur.NotAfter) {
				renewed = cur
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.NotNil(t, renewed, "the endpoint still served the certificate issued at provision (serial %x) at its expiry", issued.SerialNumber)
	t.Logf("served serial %x (until %s) -> %x (until %s) with %s of the first left",
		issued.SerialNumber, issued.NotAfter.Format(time.TimeOnly), renewed.SerialNumber,
		renewed.NotAfter.Format(time.TimeOnly), time.Until(issued.NotAfter).Round(time.Second))
	require.True(t, renewed.NotAfter.After(issued.NotAfter), "renewed certificate expires later: %s vs %s", renewed.NotAfter, issued.NotAfter)
	require.False(t, renewed.NotBefore.Before(dueAt.Add(-time.Second)), "renewed once due (NotBefore %s, due %s)", renewed.NotBefore, dueAt)
	require.Equal(t, acmeValidity-time.Second, renewed.NotAfter.Sub(renewed.NotBefore))
	require.Equal(t, []string{"seg.algocloud.test"}, renewed.DNSNames)
	require.Equal(t, issued.RawIssuer, renewed.RawIssuer, "issued by the same pebble intermediate")
	require.NotEqual(t, issued.PublicKey, renewed.PublicKey, "a new key")
	require.Greater(t, w.zdns.Answered("TXT", "_acme-challenge.seg.algocloud.test"), challenges, "a new DNS-01 challenge for the renewal")
	require.Equal(t, int64(1), inst.boots.Load(), "no restart: one boot")
	require.Equal(t, pid, inst.pid(), "the same algocloud-infer process serves the renewed certificate")
	require.Equal(t, powerBefore, inst.stops.Load()+inst.starts.Load(), "no StopInstances or StartInstances")
	require.Positive(t, inst.pickups.Load(), "the pick-up script installed the certificate")

	// The endpoint answers predict on the renewed certificate.
	res, out = predict(t, hc, endpoint, token, samplePNG(t, 32, 24))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, 0, res.TLS.PeerCertificates[0].SerialNumber.Cmp(renewed.SerialNumber))

	// The workflow recorded the renewal; the event log tells it.
	require.Equal(t, workflows.StatusLive, st.Status)
	var rec *workflows.StepRecord
	for i := range st.History {
		if st.History[i].Step == workflows.StepRenewCertificate {
			rec = &st.History[i]
		}
	}
	require.NotNil(t, rec, "history: %+v", st.History)
	require.True(t, rec.OK, rec.Message)
	require.Contains(t, rec.Message, "reloaded in place")
	require.Contains(t, rec.Message, renewed.NotAfter.UTC().Format(time.RFC3339))
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Equal(t, http.StatusOK, ev.Status, string(ev.Raw))
	require.Contains(t, string(ev.Raw), "certificate renewed for [seg.algocloud.test] (ACME "+w.pebble.DirectoryURL+")")
	require.Contains(t, string(ev.Raw), "renewed certificate published")
	require.Contains(t, string(ev.Raw), "without a restart")
	require.NotContains(t, string(ev.Raw), "endpoint restarted")
	require.NotContains(t, string(ev.Raw), "PRIVATE KEY")
	t.Logf("%s", rec.Message)
}

// pemLeaf parses the first certificate of PEM data.
func pemLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	require.NotNil(t, block, "no PEM block")
	require.Equal(t, "CERTIFICATE", block.Type)
	leaf, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	return leaf
}
