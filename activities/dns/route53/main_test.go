package route53

import (
	"bytes"
	"context"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/route53"
	"github.com/aws/aws-sdk-go-v2/service/route53/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

// TestMain shares one moto server among the package's tests; each test
// makes its own hosted zone with a unique name.
func TestMain(m *testing.M) { testmoto.Main(m) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// rawClient is a plain Route53 client on endpoint, for what the package
// does not do itself (creating zones).
func rawClient(endpoint string) *route53.Client {
	return route53.New(route53.Options{
		Region:       "us-east-1",
		Credentials:  testmoto.Credentials,
		BaseEndpoint: aws.String(endpoint),
	})
}

// newZone creates a public hosted zone with a unique name and returns its
// name and ID.
func newZone(t *testing.T, endpoint, prefix string, private bool) (name, id string) {
	t.Helper()
	return createZone(t, endpoint, prefix+"-"+uuid.NewString()[:8]+".test", private)
}

// newZoneNamed creates another public hosted zone called name.
func newZoneNamed(t *testing.T, endpoint, name string) (string, string) {
	t.Helper()
	return createZone(t, endpoint, name, false)
}

func createZone(t *testing.T, endpoint, name string, private bool) (string, string) {
	t.Helper()
	in := &route53.CreateHostedZoneInput{
		Name:            aws.String(name),
		CallerReference: aws.String(uuid.NewString()),
	}
	if private {
		in.HostedZoneConfig = &types.HostedZoneConfig{PrivateZone: true}
		in.VPC = &types.VPC{VPCId: aws.String("vpc-12345678"), VPCRegion: types.VPCRegionUsEast1}
	}
	out, err := rawClient(endpoint).CreateHostedZone(ctxFor(t), in)
	require.NoError(t, err)
	return name, strings.TrimPrefix(aws.ToString(out.HostedZone.Id), "/hostedzone/")
}

// open makes a Route53 on endpoint with short polls.
func open(t *testing.T, endpoint string, edit func(*Options)) (*Route53, error) {
	t.Helper()
	opts := Options{
		Endpoint:    endpoint,
		Credentials: testmoto.Credentials,
		Poll:        10 * time.Millisecond,
		SyncTimeout: 10 * time.Second,
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	edit(&opts)
	return NewRoute53(ctxFor(t), opts)
}

// pendingProxy sits in front of moto and answers every change as PENDING,
// so that the wait for INSYNC really polls GetChange (moto itself reports
// each change INSYNC at once). The first polls say PENDING too, until
// pendingPolls have been answered.
type pendingProxy struct {
	*httptest.Server
	pendingPolls atomic.Int64
	getChanges   atomic.Int64
}

func newPendingProxy(t *testing.T, target string, pendingPolls int64) *pendingProxy {
	t.Helper()
	u, err := url.Parse(target)
	require.NoError(t, err)
	p := &pendingProxy{}
	p.pendingPolls.Store(pendingPolls)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a cancelled wait is expected
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		pending := false
		switch {
		case req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/rrset"):
			pending = true
		case req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/change/"):
			pending = p.getChanges.Add(1) <= p.pendingPolls.Load()
		}
		if !pending || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body = bytes.ReplaceAll(body, []byte("<Status>INSYNC</Status>"), []byte("<Status>PENDING</Status>"))
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}
