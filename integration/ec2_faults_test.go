package integration

// The whole wizard on --compute ec2 with the platform's EC2 calls going
// through internal/testenv/faultproxy in front of moto: transient faults (throttling,
// 500s, dropped connections, answers lost after moto acted) are retried and
// the deployment finishes with one instance; the real `algocloud dev` killed
// between RunInstances and its answer leaves one instance after the restart;
// permanent errors (a type, region or image that cannot be, a used-up quota)
// fail the provision step with a clear message and leave nothing on moto.
//
// The platform gets one AWS endpoint (--aws-endpoint): awsRouter, which sends
// the requests signed for EC2 through the fault proxy and those for S3 and
// Route53 straight to moto (the proxy reads whole bodies, at most 8 MiB, and
// the worker uploads the 18 MB inference binary to S3). What exists is asked
// of moto directly (cloudWorld.ec2), never through the proxy.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkclient "go.temporal.io/sdk/client"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
	"github.com/algocloud/algocloud/workflows"
)

// startAWSRouter serves the one AWS endpoint the platform is given: requests
// whose SigV4 credential scope names the ec2 service go to ec2Target (the
// fault proxy), every other request (S3, Route53, the instances' anonymous
// downloads) to moto. A connection the proxy drops is dropped towards the
// client too, so the SDK sees what it would see from EC2.
func startAWSRouter(t testing.TB, moto, ec2Target string) string {
	t.Helper()
	mu, err := url.Parse(moto)
	require.NoError(t, err)
	eu, err := url.Parse(ec2Target)
	require.NoError(t, err)
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			target := mu
			if strings.Contains(pr.In.Header.Get("Authorization"), "/ec2/aws4_request") {
				target = eu
			}
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // signed
		},
		ErrorHandler: func(http.ResponseWriter, *http.Request, error) {
			panic(http.ErrAbortHandler) // close the client's connection, no answer
		},
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// sniRouter is where the worker checks endpoints' health: it reads the TLS
// ClientHello's server name (<api-name>.algocloud.test, which the health
// client verifies) and splices the connection to that endpoint's stand-in,
// so that several deployments' stand-ins can run at once on local ports.
type sniRouter struct {
	ln       net.Listener
	mu       sync.Mutex
	backends map[string]string
}

func startSNIRouter(t testing.TB) *sniRouter {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &sniRouter{ln: ln, backends: map[string]string{}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return r
}

// healthURL is the URL to give the worker (EC2HealthURL, --ec2-health-url).
func (r *sniRouter) healthURL() string { return "https://" + r.ln.Addr().String() + "/readyz" }

// route sends the TLS connections for name to addr.
func (r *sniRouter) route(name, addr string) {
	r.mu.Lock()
	r.backends[name] = addr
	r.mu.Unlock()
}

// readOnlyConn lets crypto/tls read the ClientHello (teed into a buffer) and
// swallows the alert it writes when the handshake is abandoned.
type readOnlyConn struct {
	net.Conn
	r io.Reader
}

func (c readOnlyConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c readOnlyConn) Write(p []byte) (int, error) { return len(p), nil }

var errSNIPeeked = errors.New("peeked")

// tlsServerName reads a TLS ClientHello from c and stores its server name.
func tlsServerName(c net.Conn, name *string) error {
	return tls.Server(c, &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		*name = h.ServerName
		return nil, errSNIPeeked
	}}).Handshake()
}

func (r *sniRouter) serve(c net.Conn) {
	defer c.Close()
	var hello bytes.Buffer
	var name string
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_ = tlsServerName(readOnlyConn{Conn: c, r: io.TeeReader(c, &hello)}, &name)
	_ = c.SetReadDeadline(time.Time{})
	r.mu.Lock()
	addr := r.backends[name]
	r.mu.Unlock()
	if addr == "" {
		return // no stand-in yet: the health check fails and is polled again
	}
	b, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if _, err := b.Write(hello.Bytes()); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(b, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, b); done <- struct{}{} }()
	<-done
}

// ec2Rig is moto, the fault proxy and the router in front of it, the health
// router, and the stand-ins of the deployments' instances.
type ec2Rig struct {
	w      *cloudWorld
	proxy  *faultproxy.Proxy
	awsURL string // the platform's AWS endpoint
	health *sniRouter
}

func newEC2Rig(t *testing.T, ctx context.Context, plan faultproxy.Plan) *ec2Rig {
	t.Helper()
	w := newCloudWorld(t, ctx)
	rig := &ec2Rig{w: w, proxy: faultproxy.Start(t, w.moto.Endpoint, plan), health: startSNIRouter(t)}
	rig.awsURL = startAWSRouter(t, w.moto.Endpoint, rig.proxy.URL)
	return rig
}

// ec2Port is the endpoint port instances get (their security group opens it).
const ec2Port = 8443

// startPlatform starts the platform in this process with ec2Options,
// through the router (the agent on each instance, Route53, the local CA).
func (rig *ec2Rig) startPlatform(t *testing.T, data string, mutate ...func(*platform.Options)) *platform.Platform {
	t.Helper()
	return startPlatform(t, data, append([]func(*platform.Options){func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = ec2Options(rig.w, rig.awsURL, ec2Port, rig.health.ln.Addr().String())
	}}, mutate...)...)
}

// devArgs are the flags of `algocloud dev` for the same set-up.
func (rig *ec2Rig) devArgs() []string {
	return []string{
		"--compute", "ec2", "--dns", "route53", "--certs", "local", "--domain", "algocloud.test",
		"--aws-region", "us-east-1", "--aws-endpoint", rig.awsURL, "--ec2-ami", "python=" + motoAMI,
		"--ec2-port", strconv.Itoa(ec2Port), "--ec2-health-url", rig.health.healthURL(),
		"--bundle-bucket", rig.w.bucket, "--dns-zone-id", rig.w.zoneID,
	}
}

// bootStandIn starts the stand-in of deployment id's instance from the
// user data moto holds, and routes <apiName>.algocloud.test's health checks
// to it: an instance with the agent (the default) as soon as it is
// launched, since its agent takes the install, test and serve commands; one
// on the worker's path once its bundle is in S3 (complete publishes it).
func (rig *ec2Rig) bootStandIn(t *testing.T, ctx context.Context, id, apiName string) error {
	var inst []ec2types.Instance
	for len(inst) == 0 {
		if inst = deploymentInstances(t, ctx, rig.w, id); len(inst) > 1 {
			return fmt.Errorf("deployment %s has %d instances", id, len(inst))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s never launched: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	attr, err := rig.w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: inst[0].InstanceId, Attribute: ec2types.InstanceAttributeNameUserData,
	})
	if err != nil {
		return err
	}
	userData, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	if err != nil {
		return err
	}
	listen := "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	if strings.Contains(string(userData), "algocloud-agent.service") {
		si := &agentStandIn{home: t.TempDir(), listen: listen}
		si.start(t, string(userData))
		rig.health.route(apiName+".algocloud.test", listen)
		return nil
	}
	key := "algocloud/" + id + "/bundle.enc"
	for {
		_, err := rig.w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(rig.w.bucket), Key: aws.String(key)})
		if err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bundle of %s never published: %w", id, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	si := &standIn{home: t.TempDir(), listen: listen}
	si.start(t, string(userData))
	rig.health.route(apiName+".algocloud.test", listen)
	return nil
}

// bootAsync runs bootStandIn in the background; the channel gets its result
// (also when a require inside it ended the goroutine).
func (rig *ec2Rig) bootAsync(t *testing.T, ctx context.Context, id, apiName string) <-chan error {
	boot := make(chan error, 1)
	go func() {
		err := errors.New("the stand-in failed to start")
		defer func() { boot <- err }()
		err = rig.bootStandIn(t, ctx, id, apiName)
	}()
	return boot
}

// groupExists reports whether deployment id's security group is on moto.
func (rig *ec2Rig) groupExists(t *testing.T, ctx context.Context, id string) bool {
	return deploymentGroup(t, ctx, rig.w, id) != nil
}

// ec2Spec is the configure body of a small CPU image->image deployment.
func ec2Spec(apiName string) map[string]any {
	return map[string]any{
		"name": "EC2 " + apiName, "api_name": apiName, "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	}
}

// ec2Wizard walks configure -> complete for apiName with c (the stand-in
// boots once the instance is launched: bootStandIn) and returns the ID.
func (rig *ec2Rig) ec2Wizard(t *testing.T, ctx context.Context, c *client, repo, apiName string) string {
	t.Helper()
	r := c.Do(http.MethodPost, "/api/v1/deployments", ec2Spec(apiName))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	boot := rig.bootAsync(t, ctx, id, apiName)
	r = throughTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, "complete: %s", r.Raw)
	require.NoError(t, <-boot)
	require.Equal(t, fmt.Sprintf("https://%s.algocloud.test:%d", apiName, ec2Port), r.Str("endpoint"))
	return id
}

// activityAttempts counts, from the deployment's workflow history, the
// attempts of each activity type: the Attempt of its ActivityTaskStarted
// event (Temporal writes only the last attempt's start; the earlier ones are
// in that number).
func activityAttempts(t testing.TB, c sdkclient.Client, id string) map[string]int {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflows.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	out := map[string]int{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityType().GetName()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil {
			out[scheduled[a.GetScheduledEventId()]] += int(a.GetAttempt())
		}
	}
	return out
}

// randomFaults throttle 20% of the EC2 requests (RequestLimitExceeded),
// answer 5% with a 500 InternalError and drop 5% of the connections before
// moto sees them, drawn from the plan's seeded source. (Each rule is tried
// only when the ones before did not fire, hence the conditional chances.)
func randomFaults() []faultproxy.Rule {
	return []faultproxy.Rule{
		{Action: "*", Fault: faultproxy.Throttle, Probability: 0.20},
		{Action: "*", Fault: faultproxy.ServerError, Probability: 0.05 / 0.80},
		{Action: "*", Fault: faultproxy.Drop, Probability: 0.05 / 0.75},
	}
}

// transientPlan injects faults of every transient kind: randomFaults, a
// burst of 5 throttles on RunInstances, more than the SDK's 5 attempts get
// past (so Temporal retries ProvisionServer), and then one RunInstances answer
// lost after moto launched (the SDK's retry sends the same ClientToken and
// the proxy replays the kept answer, as EC2 does), and at least one 500, one
// dropped connection and one throttle on the way to the image, the security
// group and the teardown whatever the draw.
func transientPlan(seed uint64) faultproxy.Plan {
	return faultproxy.Plan{Seed: seed, ClientTokens: true, Rules: append([]faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.Throttle, Count: 5},
		{Action: "RunInstances", Fault: faultproxy.DropAfter, Count: 1},
		{Action: "DescribeImages", Fault: faultproxy.ServerError, Count: 1},
		{Action: "CreateSecurityGroup", Fault: faultproxy.Drop, Count: 1},
		{Action: "TerminateInstances", Fault: faultproxy.Throttle, Count: 1},
	}, randomFaults()...)}
}

// TestEC2WizardThroughFaults walks the whole wizard on EC2 (moto) with the
// EC2 calls going through the fault proxy, then deletes the deployment:
// every step finishes, moto holds exactly one instance for it (zero after
// delete), and the workflow history shows ProvisionServer retried by
// Temporal.
func TestEC2WizardThroughFaults(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, transientPlan(7))
	p := rig.startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))

	id := rig.ec2Wizard(t, ctx, c, repo, "faulty")
	inst := deploymentInstances(t, ctx, rig.w, id)
	require.Len(t, inst, 1, "exactly one instance despite the lost RunInstances answer")
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, aws.ToString(inst[0].InstanceId), st.Str("state", "server", "id"), string(st.Raw))
	require.Equal(t, "live", st.Str("status"), string(st.Raw))

	r := c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Empty(t, deploymentInstances(t, ctx, rig.w, id))
	require.False(t, rig.groupExists(t, ctx, id))

	counts := rig.proxy.Counts()
	total := rig.proxy.Total()
	attempts := activityAttempts(t, p.Client, id)
	t.Logf("EC2 requests %d, faults injected %v, RunInstances %+v; activity attempts %v",
		total.Requests, total.Faults, counts["RunInstances"], attempts)
	require.GreaterOrEqual(t, counts["RunInstances"].Faults[faultproxy.Throttle], 5)
	require.Equal(t, 1, counts["RunInstances"].Faults[faultproxy.DropAfter])
	require.Positive(t, counts["RunInstances"].Replayed, "the retried RunInstances got the kept answer")
	require.Equal(t, 1, counts["DescribeImages"].Faults[faultproxy.ServerError])
	require.Equal(t, 1, counts["CreateSecurityGroup"].Faults[faultproxy.Drop])
	require.GreaterOrEqual(t, counts["TerminateInstances"].Faults[faultproxy.Throttle], 1)
	require.GreaterOrEqual(t, attempts["ProvisionServer"], 2, "Temporal retried ProvisionServer past the SDK's retryer")
}

// TestEC2WizardPermanentErrors: what cannot succeed is refused with a clear
// message and leaves nothing on moto. An instance type or region that is not
// offered, or a GPU type for a CPU server, is refused at configure time (400
// naming the field, before any workflow or AWS call); a type the region does
// not offer, a missing machine image and a used-up instance quota only EC2
// can tell, so the provision step
// answers 422 with EC2's reason, the deployment stays configured (not
// retried: one RunInstances), and no instance or security group is left.
func TestEC2WizardPermanentErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, faultproxy.Plan{ClientTokens: true})
	// The image of GPU servers is one moto does not have.
	p := rig.startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Cloud.EC2AMIs = map[string]string{"python": motoAMI, "python/gpu": "ami-0000000000000dead"}
	})
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	for _, tc := range []struct {
		edit  map[string]any
		field string
		says  string
	}{
		{map[string]any{"instance_type": "m5.24xlarge"}, "instance_type", "not offered for cpu servers"},
		{map[string]any{"instance_type": "g4dn.xlarge"}, "instance_type", "not offered for cpu servers"},
		{map[string]any{"region": "mars-north-1"}, "region", "not offered"},
	} {
		body := ec2Spec("refused")
		for k, v := range tc.edit {
			body[k] = v
		}
		r := c.Do(http.MethodPost, "/api/v1/deployments", body)
		require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
		require.Contains(t, string(r.Raw), `"`+tc.field+`"`, string(r.Raw))
		require.Contains(t, string(r.Raw), tc.says, string(r.Raw))
	}
	require.Zero(t, rig.proxy.Total().Requests, "refused before any EC2 call")

	provisionFails := func(apiName string, body map[string]any, says ...string) string {
		t.Helper()
		r := c.Do(http.MethodPost, "/api/v1/deployments", body)
		require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
		id := r.Str("id")
		rig.proxy.ResetCounts()
		r = c.Step(id, "provision", nil)
		require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
		require.Equal(t, "step_failed", r.Str("code"), string(r.Raw))
		for _, s := range says {
			require.Contains(t, r.Str("message"), s, string(r.Raw))
		}
		st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
		require.Equal(t, "configured", st.Str("state", "step"), string(st.Raw))
		require.Empty(t, st.Str("state", "busy"), string(st.Raw))
		require.Contains(t, st.Str("state", "last_error", "message"), says[0], string(st.Raw))
		require.Empty(t, deploymentInstances(t, ctx, rig.w, id), "no instance left")
		require.False(t, rig.groupExists(t, ctx, id), "no security group left")
		t.Logf("%s: %s", apiName, r.Str("message"))
		return id
	}

	// A GPU type the region does not offer (moto, as EC2, has no p3 in
	// us-east-1): only DescribeInstanceTypeOfferings can tell.
	p3 := ec2Spec("notoffered")
	p3["compute"], p3["instance_type"] = "gpu", "p3.2xlarge"
	provisionFails("notoffered", p3, "instance type p3.2xlarge is not offered in us-east-1")
	require.Equal(t, 1, rig.proxy.Counts()["DescribeInstanceTypeOfferings"].Requests)
	require.Zero(t, rig.proxy.Counts()["RunInstances"].Requests, "no launch of a type not offered")

	// A GPU server whose configured image does not exist in the region.
	gpu := ec2Spec("noimage")
	gpu["compute"], gpu["instance_type"] = "gpu", "g4dn.xlarge"
	provisionFails("noimage", gpu, "machine image does not exist in this region", "ami-0000000000000dead")
	require.Zero(t, rig.proxy.Counts()["RunInstances"].Requests, "no launch without an image")

	// The account's instance quota is used up: EC2 answers RunInstances
	// with InstanceLimitExceeded (throttled once first, which is retried).
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.Throttle, Count: 1},
		{Action: "RunInstances", Fault: faultproxy.APIError, Code: "InstanceLimitExceeded"},
	}}))
	id := provisionFails("quota", ec2Spec("quota"), "instance quota", "InstanceLimitExceeded")
	require.Equal(t, 2, rig.proxy.Counts()["RunInstances"].Requests, "the quota error is not retried")
	require.Equal(t, 1, activityAttempts(t, p.Client, id)["ProvisionServer"], "non-retryable: one activity attempt")

	// Once the quota is raised, the same deployment provisions.
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true}))
	r := c.Step(id, "provision", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Len(t, deploymentInstances(t, ctx, rig.w, id), 1)
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	require.Empty(t, deploymentInstances(t, ctx, rig.w, id))
}

// ec2Dev is the real `algocloud dev` on EC2 through the rig, restartable on
// the same data folder and ports.
type ec2Dev struct {
	rig                   *ec2Rig
	bin, data             string
	apiPort, temporalPort int
	mu                    sync.Mutex
	cur                   *ec2DevProc
	token                 string
	kills                 atomic.Int32
}

// ec2DevProc is one run of the process; Done is closed when it has ended.
type ec2DevProc struct {
	*testenv.Child
	api string
}

func newEC2Dev(t *testing.T, rig *ec2Rig) *ec2Dev {
	d := &ec2Dev{rig: rig, bin: algocloudBinary(t), data: t.TempDir(), apiPort: testenv.FreePort(t), temporalPort: testenv.FreePort(t)}
	require.NoError(t, d.start())
	t.Cleanup(func() {
		if p := d.proc(); p != nil {
			_ = p.Cmd.Process.Signal(os.Interrupt)
			select {
			case <-p.Done():
			case <-time.After(time.Minute):
				_ = p.Cmd.Process.Kill()
				<-p.Done()
			}
		}
	})
	return d
}

func (d *ec2Dev) proc() *ec2DevProc {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur
}

// start runs `algocloud dev` and waits until it reports its API.
func (d *ec2Dev) start() error {
	args := append([]string{"dev", "--data", d.data, "--addr", fmt.Sprintf("127.0.0.1:%d", d.apiPort),
		"--temporal-port", strconv.Itoa(d.temporalPort), "--ui-port", "0", "--infer-bin", inferBin, "--log-level", "warn"},
		d.rig.devArgs()...)
	p := &ec2DevProc{}
	var token string
	child, err := testenv.StartChild(exec.Command(d.bin, args...), 3*time.Minute, func(line string) bool {
		if m := apiLine.FindStringSubmatch(line); m != nil {
			p.api = m[1]
		}
		if m := tokenLine.FindStringSubmatch(line); m != nil {
			token = m[1]
		}
		return strings.Contains(line, "Ctrl-C stops everything")
	})
	if err != nil {
		return fmt.Errorf("algocloud dev: %w", err)
	}
	p.Child = child
	d.mu.Lock()
	d.cur = p
	if token != "" {
		d.token = token
	}
	d.mu.Unlock()
	return nil
}

// kill SIGKILLs the running process (from any goroutine) and waits for it.
func (d *ec2Dev) kill() {
	p := d.proc()
	if p == nil {
		return
	}
	select {
	case <-p.Done():
		return
	default:
	}
	if err := p.Cmd.Process.Signal(syscall.SIGKILL); err == nil {
		d.kills.Add(1)
	}
	<-p.Done()
}

// client is a REST client of the current process.
func (d *ec2Dev) client(t testing.TB) *client {
	p := d.proc()
	return testenv.NewAPIClient(t, p.api, d.token)
}

// tryStep posts a step; err is set when the process died under it.
func tryStep(base, token, id, step string, body any) (int, []byte, error) {
	return testenv.TryAPI(base, token, http.MethodPost, "/api/v1/deployments/"+id+"/steps/"+step, body)
}

// TestEC2DevKilledBetweenRunInstancesAndAnswer runs the real `algocloud dev`
// on EC2 through the proxy and SIGKILLs it from the proxy's hook when moto has
// answered RunInstances, before the answer reaches the worker. Started again
// on the same data, the provision step finishes by itself (the activity's
// heartbeat times out, its retry finds the instance by tag), moto holds
// exactly one instance tagged with the deployment, the wizard completes on it,
// and delete leaves none.
func TestEC2DevKilledBetweenRunInstancesAndAnswer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, faultproxy.Plan{ClientTokens: true})
	d := newEC2Dev(t, rig)
	require.NotEmpty(t, d.token)
	var once sync.Once
	killed := make(chan struct{})
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true, OnForwarded: func(action string, status int) {
		if action == "RunInstances" && status == http.StatusOK {
			once.Do(func() { go func() { d.kill(); close(killed) }() })
			<-killed // the answer goes back only to a dead process
		}
	}}))

	c := d.client(t)
	r := c.Do(http.MethodPost, "/api/v1/deployments", ec2Spec("killed"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	_, _, err := tryStep(c.Base, d.token, id, "provision", nil)
	require.Error(t, err, "the process died under the provision step")
	<-killed
	require.Len(t, deploymentInstances(t, ctx, rig.w, id), 1, "moto launched before the kill")

	require.NoError(t, d.start())
	c = d.client(t)
	var st resp
	require.Eventually(t, func() bool {
		st = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
		return st.Str("state", "busy") == "" && st.Str("state", "step") == "provisioned"
	}, 3*time.Minute, 500*time.Millisecond, "the interrupted provision finishes after the restart")
	inst := deploymentInstances(t, ctx, rig.w, id)
	require.Len(t, inst, 1, "exactly one instance after the restart")
	require.Equal(t, aws.ToString(inst[0].InstanceId), st.Str("state", "server", "id"), string(st.Raw))
	require.Equal(t, 1, rig.proxy.Counts()["RunInstances"].Requests, "the retry found the instance by tag: no second RunInstances")

	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	boot := rig.bootAsync(t, ctx, id, "killed")
	r = fetchInstallTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.NoError(t, <-boot)
	require.Len(t, deploymentInstances(t, ctx, rig.w, id), 1)

	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Empty(t, deploymentInstances(t, ctx, rig.w, id), "zero instances after delete")
	require.False(t, rig.groupExists(t, ctx, id))
	require.Equal(t, int32(1), d.kills.Load())
}
