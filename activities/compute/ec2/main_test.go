package ec2

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

const (
	testRegion = "us-east-1"
	// testAMI is one of the images moto serves in every region.
	testAMI = "ami-760aaa0f"
)

// TestMain shares one moto server among the package's tests; each test
// names its deployments with uniq so that they keep apart.
func TestMain(m *testing.M) { testmoto.Main(m) }

// uniq makes a deployment ID no other test (or -count run) uses.
func uniq(name string) string { return name + "-" + uuid.NewString()[:8] }

// healthServer is the local stand-in for an instance's endpoint: the
// addresses moto hands out are never dialled, so Start's health wait and
// the suite's Check go here. Failing makes it answer 503.
type healthServer struct {
	*httptest.Server
	failing atomic.Bool
	hits    atomic.Int64
}

func newHealthServer(t *testing.T) *healthServer {
	h := &healthServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.hits.Add(1)
		if h.failing.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *healthServer) url(compute.Server) string { return h.URL + "/healthz" }

// check is the computetest Check hook: the service answers when the local
// health server does.
func (h *healthServer) check(ctx context.Context, _ compute.Handle) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.URL+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// env is one moto server with a provider and a plain EC2 client on it.
type env struct {
	moto   *testmoto.Server
	health *healthServer
	p      *Provider
}

// newEnv starts moto and a provider against it with short polls.
func newEnv(t *testing.T, edit ...func(*Options)) *env {
	t.Helper()
	e := &env{moto: testmoto.Start(t), health: newHealthServer(t)}
	e.p = e.provider(t, edit...)
	return e
}

// provider makes another Provider on the same moto (a second worker, or
// the same one after a restart).
func (e *env) provider(t *testing.T, edit ...func(*Options)) *Provider {
	t.Helper()
	opts := Options{
		Region:       testRegion,
		Endpoint:     e.moto.Endpoint,
		Credentials:  testmoto.Credentials,
		AMIs:         map[string]string{"python": testAMI},
		ArtifactsURL: "https://artifacts.invalid/algocloud",
		HealthURL:    e.health.url,
		Poll:         20 * time.Millisecond,
		StartTimeout: 30 * time.Second,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range edit {
		f(&opts)
	}
	p, err := New(context.Background(), opts)
	require.NoError(t, err)
	return p
}

func (e *env) ec2(region string) *ec2.Client { return e.p.client(region) }

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// instancesOf lists the deployment's instances in any state but terminated.
func (e *env) instancesOf(t *testing.T, region, deploymentID string) []types.Instance {
	t.Helper()
	out, err := e.ec2(region).DescribeInstances(ctxFor(t), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:" + TagDeployment), Values: []string{deploymentID}}},
	})
	require.NoError(t, err)
	var list []types.Instance
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			if state(inst) != types.InstanceStateNameTerminated {
				list = append(list, inst)
			}
		}
	}
	return list
}

// group returns the deployment's security group, or nil.
func (e *env) group(t *testing.T, region, deploymentID string) *types.SecurityGroup {
	t.Helper()
	out, err := e.ec2(region).DescribeSecurityGroups(ctxFor(t), &ec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{GroupName(deploymentID)}}},
	})
	require.NoError(t, err)
	if len(out.SecurityGroups) == 0 {
		return nil
	}
	require.Len(t, out.SecurityGroups, 1)
	return &out.SecurityGroups[0]
}

func requirePermanent(t *testing.T, err error, contains string) {
	t.Helper()
	var pe *compute.PermanentError
	require.True(t, errors.As(err, &pe), "want *compute.PermanentError, got %v", err)
	require.ErrorContains(t, err, contains)
}
