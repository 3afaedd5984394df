package ec2

// Fault tests: the provider driven through internal/testenv/faultproxy in front of
// moto, which injects EC2's throttling, 500s, dropped connections, answers
// lost after the request took effect, and quota and validation errors.
// Assertions about what exists go to moto directly (env.p), never through
// the proxy.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

// retryPolicy mirrors the workflow's activity retry policy
// (workflows.activityOptions: 1s initial interval, backoff 2, at most 30s,
// MaximumAttempts per step): a call that fails with a retryable error is
// called again, as Temporal would schedule the activity again; a
// *compute.PermanentError is not (the activity makes it non-retryable).
type retryPolicy struct {
	initial, max time.Duration
	attempts     int
}

// provisionPolicy is ProvisionServer's (10 attempts); the other EC2 steps
// have fewer, and these tests give every step the same.
var provisionPolicy = retryPolicy{initial: time.Second, max: 30 * time.Second, attempts: 10}

// do runs f under the policy and returns how many attempts it took.
func (rp retryPolicy) do(ctx context.Context, f func(context.Context) error) (int, error) {
	delay := rp.initial
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		var pe *compute.PermanentError
		if err == nil || errors.As(err, &pe) || attempt >= rp.attempts {
			return attempt, err
		}
		select {
		case <-ctx.Done():
			return attempt, err
		case <-time.After(delay):
		}
		delay = min(2*delay, rp.max)
	}
}

// faultEnv is a moto env plus a proxy in front of it and a provider (fp)
// that talks to EC2 through the proxy.
type faultEnv struct {
	*env
	proxy *faultproxy.Proxy
	fp    *Provider
}

func newFaultEnv(t *testing.T, plan faultproxy.Plan, edit ...func(*Options)) *faultEnv {
	t.Helper()
	e := newEnv(t)
	fe := &faultEnv{env: e, proxy: faultproxy.Start(t, e.moto.Endpoint, plan)}
	fe.fp = fe.viaProxy(t, edit...)
	return fe
}

// viaProxy makes a new Provider (a restarted worker) that talks through the proxy.
func (fe *faultEnv) viaProxy(t *testing.T, edit ...func(*Options)) *Provider {
	t.Helper()
	return fe.provider(t, append([]func(*Options){func(o *Options) { o.Endpoint = fe.proxy.URL }}, edit...)...)
}

// requireNothingLeft asserts moto holds no live instance and no security
// group of the deployment.
func (fe *faultEnv) requireNothingLeft(t *testing.T, deploymentID string) {
	t.Helper()
	require.Empty(t, fe.instancesOf(t, testRegion, deploymentID), "no instance left")
	require.Nil(t, fe.group(t, testRegion, deploymentID), "no security group left")
}

// lifecycleActions are the EC2 actions a Provision, Start, Stop, Start,
// Release cycle calls.
var lifecycleActions = []string{
	"DescribeInstances", "DescribeInstanceTypeOfferings", "DescribeImages", "DescribeSecurityGroups",
	"CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RunInstances", "CreateTags",
	"StopInstances", "StartInstances", "TerminateInstances", "DeleteSecurityGroup",
}

// lifecycle provisions, starts (health), checks, stops, starts again and
// releases a deployment's server, each step under the activity retry policy,
// and returns the attempts each step took.
func lifecycle(t *testing.T, ctx context.Context, p *Provider, id string) map[string]int {
	t.Helper()
	attempts := map[string]int{}
	step := func(name string, f func(context.Context) error) {
		t.Helper()
		n, err := provisionPolicy.do(ctx, f)
		require.NoError(t, err, "%s (after %d attempts)", name, n)
		attempts[name] += n
	}
	var srv compute.Server
	var h compute.Handle
	step("provision", func(ctx context.Context) (err error) { srv, err = p.Provision(ctx, specFor(id)); return err })
	start := func(ctx context.Context) (err error) {
		h, err = p.Start(ctx, compute.ServiceSpec{Server: srv, Name: LiveService})
		return err
	}
	step("start", start)
	step("status", func(ctx context.Context) error {
		st, err := p.Status(ctx, h)
		if err == nil && st.State != compute.Running {
			err = fmt.Errorf("state %s", st.State)
		}
		return err
	})
	step("stop", func(ctx context.Context) error { return p.Stop(ctx, h) })
	step("start", start)
	step("release", func(ctx context.Context) error { return p.Release(ctx, srv) })
	return attempts
}

// Every kind of transient fault, on the first call of every action of the
// lifecycle: the SDK's retryer (5 attempts, provider.go) and, past it, the
// activity retry ride them out, and the deployment ends as it should.
// DropAfter means the call took effect and its answer was lost: the retry
// must cope with "already exists", "already gone" and the like. The proxy
// honours ClientToken as EC2 does (moto does not, see TestClientTokens in
// internal/testenv/faultproxy).
func TestFaults_LifecycleSurvivesTransientFaults(t *testing.T) {
	for _, fault := range []faultproxy.Fault{faultproxy.Throttle, faultproxy.ServerError, faultproxy.Drop, faultproxy.DropAfter} {
		t.Run(string(fault), func(t *testing.T) {
			t.Parallel()
			plan := faultproxy.Plan{ClientTokens: true}
			for _, a := range lifecycleActions {
				plan.Rules = append(plan.Rules, faultproxy.Rule{Action: a, Fault: fault, Count: 1})
			}
			// A second one later in the polling, away from the first.
			plan.Rules = append(plan.Rules, faultproxy.Rule{Action: "DescribeInstances", Fault: fault, Skip: 3, Count: 1})
			fe := newFaultEnv(t, plan)
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
			defer cancel()
			id := uniq("dep-faults-" + string(fault))
			attempts := lifecycle(t, ctx, fe.fp, id)
			fe.requireNothingLeft(t, id)

			counts := fe.proxy.Counts()
			for _, a := range lifecycleActions[1:] {
				require.Equal(t, 1, counts[a].Faults[fault], "%s got its %s", a, fault)
				require.Greater(t, counts[a].Requests, counts[a].Faults[fault], "%s was retried past the fault", a)
			}
			require.Equal(t, 2, counts["DescribeInstances"].Faults[fault], "DescribeInstances got its two")
			t.Logf("%s: activity attempts %v; proxy: %d requests, %d forwarded, %d injected",
				fault, attempts, fe.proxy.Total().Requests, fe.proxy.Total().Forwarded, fe.proxy.Total().Injected())
		})
	}
}

// A burst longer than the SDK's 5 attempts fails the call with a retryable
// error; the activity retry (the workflow's policy) gets the deployment
// through, with one instance.
func TestFaults_BurstPastTheSDKRetryer(t *testing.T) {
	fe := newFaultEnv(t, faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.ServerError, Count: 5},
	}})
	ctx := ctxFor(t)
	id := uniq("dep-burst")
	var srv compute.Server
	n, err := provisionPolicy.do(ctx, func(ctx context.Context) (err error) {
		srv, err = fe.fp.Provision(ctx, specFor(id))
		var pe *compute.PermanentError
		require.False(t, errors.As(err, &pe), "a 500 is not permanent: %v", err)
		return err
	})
	require.NoError(t, err)
	require.Equal(t, 2, n, "the first activity attempt spent the SDK's 5 tries")
	require.Equal(t, 6, fe.proxy.Counts()["RunInstances"].Requests)
	insts := fe.instancesOf(t, testRegion, id)
	require.Len(t, insts, 1)
	require.Equal(t, srv.ID, *insts[0].InstanceId)
	require.NoError(t, fe.fp.Release(ctx, srv))
	fe.requireNothingLeft(t, id)
}

// The answer to RunInstances is lost on every SDK attempt: the instance was
// launched but Provision fails (retryable). A new Provider, as after a worker
// restart, finds that instance: exactly one exists.
func TestFaults_LostRunInstancesAnswerThenRestart(t *testing.T) {
	fe := newFaultEnv(t, faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.DropAfter},
	}})
	ctx := ctxFor(t)
	id := uniq("dep-lost-answer")
	_, err := fe.fp.Provision(ctx, specFor(id))
	require.Error(t, err)
	var pe *compute.PermanentError
	require.False(t, errors.As(err, &pe), "a lost answer is retryable: %v", err)
	runs := fe.proxy.Counts()["RunInstances"]
	require.Equal(t, 5, runs.Requests, "the SDK tried 5 times")
	require.Equal(t, 1, runs.Forwarded, "moto launched once; the repeats got EC2's answer for the same ClientToken")
	launched := fe.instancesOf(t, testRegion, id)
	require.Len(t, launched, 1)

	require.NoError(t, fe.proxy.SetPlan(faultproxy.Plan{ClientTokens: true}))
	restarted := fe.viaProxy(t)
	srv, err := restarted.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.Equal(t, *launched[0].InstanceId, srv.ID)
	require.Len(t, fe.instancesOf(t, testRegion, id), 1, "exactly one instance")
	require.Equal(t, runs.Requests, fe.proxy.Counts()["RunInstances"].Requests, "found by tag: no RunInstances")
	require.NoError(t, restarted.Release(ctx, srv))
	fe.requireNothingLeft(t, id)
}

// Requests no retry can fix fail at once with a *compute.PermanentError
// whose message says what to change, and leave nothing running: no
// instance, no security group. Transient faults on the way (a throttle
// before the quota error, a 500 on the group's deletion) change nothing.
func TestFaults_PermanentFailuresLeaveNothing(t *testing.T) {
	quota := func(code string) []faultproxy.Rule {
		return []faultproxy.Rule{
			{Action: "RunInstances", Fault: faultproxy.Throttle, Count: 1},
			{Action: "RunInstances", Fault: faultproxy.APIError, Code: code},
			{Action: "DeleteSecurityGroup", Fault: faultproxy.ServerError, Count: 1},
		}
	}
	cases := []struct {
		name     string
		rules    []faultproxy.Rule
		edit     func(*compute.ServerSpec)
		opts     func(*Options)
		contains string
		runs     bool // RunInstances was reached
	}{
		{name: "instance type not in the offer", edit: func(s *compute.ServerSpec) { s.InstanceType = "m1.tiny" },
			contains: `instance type "m1.tiny" is not offered for cpu servers; choose one of`},
		{name: "instance type not offered in the region", edit: func(s *compute.ServerSpec) { s.Compute, s.InstanceType = "gpu", "p3.2xlarge" },
			contains: "instance type p3.2xlarge is not offered in us-east-1"},
		{name: "EC2 refuses the instance type", rules: quota("InvalidInstanceType"),
			contains: "the instance type is not valid here", runs: true},
		{name: "unsupported in the zone", rules: quota("Unsupported"),
			contains: "not supported in this region or zone", runs: true},
		{name: "unknown region", edit: func(s *compute.ServerSpec) { s.Region = "mars-north-1" },
			contains: `region "mars-north-1" is not offered; choose one of`},
		{name: "region not enabled for the account",
			rules:    []faultproxy.Rule{{Action: "DescribeInstances", Fault: faultproxy.APIError, Code: "OptInRequired", Status: 401}},
			contains: "the account is not subscribed to this region or image"},
		{name: "unknown AMI", opts: func(o *Options) { o.AMIs = map[string]string{"python": "ami-0000000000deadbee"} },
			contains: "the machine image does not exist in this region"},
		{name: "AMI gone by launch time", rules: quota("InvalidAMIID.NotFound"),
			contains: "the machine image does not exist in this region", runs: true},
		{name: "instance quota", rules: quota("InstanceLimitExceeded"),
			contains: "the account's instance quota for this type and region is used up; ask AWS for more", runs: true},
		{name: "vCPU quota", rules: quota("VcpuLimitExceeded"),
			contains: "vCPU quota for this instance family and region is used up", runs: true},
		{name: "security group quota",
			rules:    []faultproxy.Rule{{Action: "CreateSecurityGroup", Fault: faultproxy.APIError, Code: "SecurityGroupLimitExceeded"}},
			contains: "the account's security group quota is used up"},
	}
	moto := newEnv(t)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fe := &faultEnv{env: moto, proxy: faultproxy.Start(t, moto.moto.Endpoint, faultproxy.Plan{Rules: tc.rules, ClientTokens: true})}
			fe.fp = fe.viaProxy(t, func(o *Options) {
				if tc.opts != nil {
					tc.opts(o)
				}
			})
			s := specFor(uniq(fmt.Sprintf("dep-perm-%d", i)))
			if tc.edit != nil {
				tc.edit(&s)
			}
			n, err := provisionPolicy.do(ctxFor(t), func(ctx context.Context) error {
				_, err := fe.fp.Provision(ctx, s)
				return err
			})
			requirePermanent(t, err, tc.contains)
			require.Equal(t, 1, n, "not retried by the activity")
			fe.requireNothingLeft(t, s.DeploymentID)
			runs := fe.proxy.Counts()["RunInstances"]
			if tc.runs {
				require.Equal(t, 2, runs.Requests, "one throttled, one refused: the refusal is not retried")
				require.Equal(t, 1, fe.proxy.Counts()["CreateSecurityGroup"].Forwarded)
				require.Equal(t, 2, fe.proxy.Counts()["DeleteSecurityGroup"].Requests, "the group was deleted through a 500")
			} else {
				require.Zero(t, runs.Requests)
			}
		})
	}
}

// Environment variables of the re-executed test binary (TestFaultsChild).
const (
	childEnv       = "ALGOCLOUD_EC2_FAULTS_CHILD" // "up" or "down"
	childEndpoint  = "ALGOCLOUD_EC2_FAULTS_ENDPOINT"
	childHealth    = "ALGOCLOUD_EC2_FAULTS_HEALTH"
	childID        = "ALGOCLOUD_EC2_FAULTS_DEPLOYMENT"
	childServer    = "ALGOCLOUD_EC2_FAULTS_SERVER" // JSON compute.Server, for "down"
	childResultTag = "CHILD-RESULT "
)

// TestFaultsChild is not a test: run by the fault tests as a separate process
// (the test binary re-executed with childEnv set), it is a worker doing one
// step through the proxy under the activity retry policy: "up" provisions
// and starts the live service and prints the server, "down" releases it.
// The parent kills it with SIGKILL at a moment of its choosing.
func TestFaultsChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("run by the fault tests as a worker process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	health := os.Getenv(childHealth)
	p, err := New(ctx, Options{
		Region: testRegion, Endpoint: os.Getenv(childEndpoint), Credentials: testmoto.Credentials,
		AMIs: map[string]string{"python": testAMI}, ArtifactsURL: "https://artifacts.invalid/algocloud",
		HealthURL: func(compute.Server) string { return health },
		Poll:      20 * time.Millisecond, StartTimeout: time.Minute,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	id := os.Getenv(childID)
	switch mode {
	case "up":
		var srv compute.Server
		_, err = provisionPolicy.do(ctx, func(ctx context.Context) (err error) {
			srv, err = p.Provision(ctx, specFor(id))
			return err
		})
		require.NoError(t, err)
		_, err = provisionPolicy.do(ctx, func(ctx context.Context) error {
			_, err := p.Start(ctx, compute.ServiceSpec{Server: srv, Name: LiveService})
			return err
		})
		require.NoError(t, err)
		b, err := json.Marshal(srv)
		require.NoError(t, err)
		fmt.Printf("%s%s\n", childResultTag, b)
	case "down":
		var srv compute.Server
		require.NoError(t, json.Unmarshal([]byte(os.Getenv(childServer)), &srv))
		_, err = provisionPolicy.do(ctx, func(ctx context.Context) error { return p.Release(ctx, srv) })
		require.NoError(t, err)
		fmt.Printf("%sreleased\n", childResultTag)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
}

// worker is a re-executed test binary doing one step (see TestFaultsChild).
type worker struct {
	cmd    *exec.Cmd
	out    strings.Builder
	mu     sync.Mutex
	done   chan struct{}
	err    error
	killed bool
}

// startWorker runs TestFaultsChild in a new process.
func startWorker(t testing.TB, mode, endpoint, health, deploymentID string, srv *compute.Server) *worker {
	t.Helper()
	w := &worker{done: make(chan struct{})}
	w.cmd = exec.Command(os.Args[0], "-test.run=^TestFaultsChild$", "-test.count=1", "-test.v")
	w.cmd.Env = append(os.Environ(),
		childEnv+"="+mode, childEndpoint+"="+endpoint, childHealth+"="+health, childID+"="+deploymentID)
	if srv != nil {
		b, _ := json.Marshal(srv)
		w.cmd.Env = append(w.cmd.Env, childServer+"="+string(b))
	}
	w.cmd.Stdout, w.cmd.Stderr = (*lockedBuilder)(w), (*lockedBuilder)(w)
	require.NoError(t, w.cmd.Start())
	go func() { w.err = w.cmd.Wait(); close(w.done) }()
	t.Cleanup(func() { w.kill() })
	return w
}

type lockedBuilder worker

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.out.Write(p)
}

// kill sends SIGKILL and returns once the process is gone (a no-op when it
// has already exited).
func (w *worker) kill() {
	select {
	case <-w.done:
		return
	default:
	}
	w.mu.Lock()
	w.killed = true
	w.mu.Unlock()
	_ = w.cmd.Process.Kill()
	<-w.done
}

func (w *worker) wasKilled() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.killed
}

// wait waits for the worker to exit and returns its result line's payload.
func (w *worker) wait(t testing.TB, timeout time.Duration) (string, error) {
	t.Helper()
	select {
	case <-w.done:
	case <-time.After(timeout):
		w.kill()
		return "", fmt.Errorf("worker did not finish in %s:\n%s", timeout, w.output())
	}
	out := w.output()
	if w.err != nil {
		return "", fmt.Errorf("worker: %v\n%s", w.err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, childResultTag); ok {
			return rest, nil
		}
	}
	return "", fmt.Errorf("worker printed no result:\n%s", out)
}

func (w *worker) output() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

// A real worker process is SIGKILLed between RunInstances reaching moto and
// its answer reaching the worker (the proxy calls back once moto answered,
// and holds the answer until the process is dead). A fresh worker then
// provisions the same deployment: it finds that instance, and exactly one
// exists.
func TestFaults_WorkerKilledBetweenRunInstancesAndAnswer(t *testing.T) {
	var mu sync.Mutex
	var w *worker
	killed := make(chan struct{})
	var once sync.Once
	fe := newFaultEnv(t, faultproxy.Plan{
		ClientTokens: true,
		OnForwarded: func(action string, status int) {
			if action != "RunInstances" || status != 200 {
				return
			}
			once.Do(func() {
				var victim *worker
				for victim == nil { // set right after the process starts
					mu.Lock()
					victim = w
					mu.Unlock()
					time.Sleep(time.Millisecond)
				}
				victim.kill()
				close(killed)
			})
		},
	})
	id := uniq("dep-killed")
	mu.Lock()
	w = startWorker(t, "up", fe.proxy.URL, fe.health.URL+"/healthz", id, nil)
	mu.Unlock()
	select {
	case <-killed:
	case <-w.done:
		if !w.wasKilled() {
			t.Fatalf("the worker finished before RunInstances answered:\n%s", w.output())
		}
		<-killed
	case <-time.After(2 * time.Minute):
		t.Fatalf("the worker never reached RunInstances:\n%s", w.output())
	}
	require.NotContains(t, w.output(), childResultTag, "the worker died before it heard the answer")
	launched := fe.instancesOf(t, testRegion, id)
	require.Len(t, launched, 1, "moto launched the instance")

	again := startWorker(t, "up", fe.proxy.URL, fe.health.URL+"/healthz", id, nil)
	res, err := again.wait(t, 2*time.Minute)
	require.NoError(t, err)
	var srv compute.Server
	require.NoError(t, json.Unmarshal([]byte(res), &srv))
	require.Equal(t, *launched[0].InstanceId, srv.ID)
	require.Len(t, fe.instancesOf(t, testRegion, id), 1, "exactly one instance after the restart")
	require.Equal(t, 1, fe.proxy.Counts()["RunInstances"].Requests, "the restarted worker found it by tag")
	require.NoError(t, fe.p.Release(ctxFor(t), srv))
	fe.requireNothingLeft(t, id)
}

// A permanent RunInstances failure whose security group cannot be deleted
// (DeleteSecurityGroup fails past the SDK's retries) must not leave the
// group behind: the activity retries, and a later attempt that fails the
// same permanent way deletes it.
func TestFaults_PermanentFailureWithGroupDeletionFailing(t *testing.T) {
	fe := newFaultEnv(t, faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.APIError, Code: "InstanceLimitExceeded"},
		{Action: "DeleteSecurityGroup", Fault: faultproxy.ServerError, Count: 5},
	}})
	s := specFor(uniq("dep-perm-leak"))
	n, err := provisionPolicy.do(ctxFor(t), func(ctx context.Context) error {
		_, err := fe.fp.Provision(ctx, s)
		return err
	})
	requirePermanent(t, err, "instance quota")
	require.Equal(t, 2, n, "the first attempt could not delete the group, so it was retryable")
	fe.requireNothingLeft(t, s.DeploymentID)
}
