package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	dnsroute53 "github.com/algocloud/algocloud/activities/dns/route53"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
	"github.com/algocloud/algocloud/internal/testenv/testpebble"

	"github.com/algocloud/algocloud/internal/sealed"
)

// TestMain shares one moto server (Route53) among the package's tests.
// pebble (internal/testenv/testpebble) sets its PEBBLE_* environment with t.Setenv
// in each test that starts it, so those tests must not call t.Parallel.
func TestMain(m *testing.M) {
	RouteLegoLogs(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	testmoto.Main(m)
}

// Route53 is what DNS-01 runs on in production.
var _ TXTRecords = (*dnsroute53.Route53)(nil)

// testDomain is the zone the test names live in; pebble certifies any name.
const testDomain = "algocloud.test"

// env is one test's world: a Route53 zone algocloud.test in moto, the DNS
// server that serves it, and pebble validating through that server.
type env struct {
	r53      *dnsroute53.Route53
	dns      *testpebble.ZoneDNS
	pebble   *testpebble.Pebble
	httpPort int
	encKey   []byte
	dir      string
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newEnv(t *testing.T, cfg testpebble.Config) *env {
	t.Helper()
	moto := testmoto.Start(t)
	// Tests share moto: each makes its own zone of the same name and uses it by ID.
	out, err := route53.New(route53.Options{
		Region:       "us-east-1",
		Credentials:  testmoto.Credentials,
		BaseEndpoint: aws.String(moto.Endpoint),
	}).CreateHostedZone(ctxFor(t), &route53.CreateHostedZoneInput{
		Name:            aws.String(testDomain),
		CallerReference: aws.String(uuid.NewString()),
	})
	require.NoError(t, err)
	r53, err := dnsroute53.NewRoute53(ctxFor(t), dnsroute53.Options{
		Endpoint:    moto.Endpoint,
		Credentials: testmoto.Credentials,
		ZoneID:      aws.ToString(out.HostedZone.Id),
		Poll:        10 * time.Millisecond,
		Logger:      quiet(),
	})
	require.NoError(t, err)

	e := &env{r53: r53, httpPort: testenv.FreePort(t), dir: t.TempDir()}
	e.dns = testpebble.StartZoneDNS(t, r53)
	cfg.HTTPPort, cfg.Resolver = e.httpPort, e.dns.Addr
	e.pebble = testpebble.Start(t, cfg)
	e.encKey, err = sealed.NewEncryptionKey()
	require.NoError(t, err)
	return e
}

// options are HTTP-01 on lego's own server at 127.0.0.1:httpPort, where
// pebble's VA looks (after asking ZoneDNS for the name's address).
func (e *env) options() Options {
	return Options{
		DirectoryURL:   e.pebble.DirectoryURL,
		Email:          "ops@algocloud.test",
		CARoots:        e.pebble.TLSRoots(),
		Challenge:      HTTP01,
		HTTPAddress:    "127.0.0.1",
		HTTPPort:       e.httpPort,
		AccountKeyFile: filepath.Join(e.dir, "acme", "account.key"),
		EncryptionKey:  e.encKey,
		Logger:         quiet(),
	}
}

func (e *env) client(t *testing.T, edit func(*Options)) *Client {
	t.Helper()
	opts := e.options()
	if edit != nil {
		edit(&opts)
	}
	c, err := New(opts)
	require.NoError(t, err)
	return c
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// serveAndVerify serves certPEM/keyPEM from a Go TLS server on 127.0.0.1
// and calls it as name with a client that trusts only roots, returning the
// verified chain. dial maps the name to the server, as DNS would.
func serveAndVerify(t *testing.T, certPEM, keyPEM []byte, name string, roots *x509.CertPool) ([][]*x509.Certificate, error) {
	t.Helper()
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "hello from "+name)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the wrong-root cases fail handshakes
	srv.StartTLS()
	defer srv.Close()
	addr := srv.Listener.Addr().String()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	_, port, _ := net.SplitHostPort(addr)
	resp, err := client.Get("https://" + net.JoinHostPort(name, port) + "/")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, "hello from "+name, string(body))
	return resp.TLS.VerifiedChains, nil
}

// leafOf parses the first certificate of a PEM bundle.
func leafOf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	leaf, err := parseLeaf(certPEM)
	require.NoError(t, err)
	return leaf
}
