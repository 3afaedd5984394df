package ec2

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
)

// Release terminates the instance and deletes its security group; again,
// it is a no-op.
func TestRelease_TerminatesAndDeletesGroup(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	id := uniq("dep-release")
	s, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.NotNil(t, e.group(t, testRegion, id))

	require.NoError(t, e.p.Release(ctx, s))
	inst, err := e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameTerminated, state(inst))
	require.Nil(t, e.group(t, testRegion, id))

	require.NoError(t, e.p.Release(ctx, s))
	require.NoError(t, e.provider(t).Release(ctx, s), "a fresh provider too")
	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: "live"})
	require.ErrorIs(t, err, compute.ErrNotFound)
}

// With StagingDir, a server has a local folder for the activities, removed
// by Release.
func TestStagingDir(t *testing.T) {
	dir := t.TempDir()
	e := newEnv(t, func(o *Options) { o.StagingDir = dir })
	ctx := ctxFor(t)
	id := uniq("dep-staging")
	s, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, id), s.Workdir)
	require.DirExists(t, s.Workdir)
	again, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.Equal(t, s, again)
	require.NoError(t, e.p.Release(ctx, s))
	require.NoDirExists(t, s.Workdir)
	require.DirExists(t, dir)

	outside := s
	outside.Workdir = t.TempDir()
	require.NoError(t, e.p.Release(ctx, outside))
	require.DirExists(t, outside.Workdir, "only folders directly under StagingDir are removed")
}

// An instance the platform did not make is never touched.
func TestRelease_LeavesForeignInstances(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	out, err := e.ec2(testRegion).RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Small, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
	})
	require.NoError(t, err)
	id := aws.ToString(out.Instances[0].InstanceId)
	s := compute.Server{Provider: ProviderName, ID: id}
	require.NoError(t, e.p.Release(ctx, s))
	require.NoError(t, e.p.Stop(ctx, compute.Handle{Provider: ProviderName, ServerID: id, Name: "live"}))
	_, err = e.p.Status(ctx, compute.Handle{Provider: ProviderName, ServerID: id, Name: "live"})
	require.ErrorIs(t, err, compute.ErrNotFound)
	inst, err := e.p.describe(ctx, testRegion, id)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameRunning, state(inst))
}

// Stop of the live service stops the instance; Start starts it again and
// waits for the endpoint's health. Stop of another service only marks it.
func TestStopAndStart_Live(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	s, err := e.p.Provision(ctx, specFor(uniq("dep-stop")))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.p.Release(context.Background(), s)) })

	live, err := e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	require.NoError(t, err)
	require.Equal(t, compute.Handle{Provider: ProviderName, ServerID: s.ID, Name: "live", Address: fmt.Sprintf("%s:443", s.Host)}, live)
	test, err := e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: "test", Port: 9000})
	require.NoError(t, err)
	require.Equal(t, fmt.Sprintf("%s:9000", s.Host), test.Address)

	require.NoError(t, e.p.Stop(ctx, test))
	requireState(t, e.p, test, compute.Exited)
	requireState(t, e.p, live, compute.Running)
	inst, err := e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameRunning, state(inst), "stopping the test service leaves the instance")

	require.NoError(t, e.p.Stop(ctx, live))
	requireState(t, e.p, live, compute.Exited)
	inst, err = e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameStopped, state(inst))
	require.NoError(t, e.p.Stop(ctx, live), "again: no-op")

	// The endpoint is not healthy at first after the boot: Start waits.
	e.health.failing.Store(true)
	before := e.health.hits.Load()
	go func() {
		for e.health.hits.Load() < before+3 {
			time.Sleep(5 * time.Millisecond)
		}
		e.health.failing.Store(false)
	}()
	again, err := e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	require.NoError(t, err)
	require.GreaterOrEqual(t, e.health.hits.Load(), before+4)
	inst, err = e.p.describe(ctx, testRegion, s.ID)
	require.NoError(t, err)
	require.Equal(t, types.InstanceStateNameRunning, state(inst))
	require.Equal(t, host(inst)+":443", again.Address)
	requireState(t, e.p, again, compute.Running)
}

// Start gives up when ctx ends before the endpoint answers.
func TestStart_HealthNeverAnswers(t *testing.T) {
	e := newEnv(t)
	s, err := e.p.Provision(ctxFor(t), specFor(uniq("dep-sick")))
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.p.Release(context.Background(), s)) })
	e.health.failing.Store(true)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for e.health.hits.Load() < 3 {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: s, Name: LiveService})
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "503")
}

func TestValidation(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	_, err := e.p.Start(ctx, compute.ServiceSpec{Server: compute.Server{Provider: "local", ID: "x"}, Name: "live"})
	requirePermanent(t, err, `provider "local"`)
	_, err = e.p.Start(ctx, compute.ServiceSpec{Server: compute.Server{Provider: ProviderName, ID: "i-0123456789abcdef0"}, Name: "../x"})
	requirePermanent(t, err, "service name")
	_, err = e.p.Status(ctx, compute.Handle{Provider: "local"})
	requirePermanent(t, err, "provider")
	require.Error(t, e.p.Release(ctx, compute.Server{Provider: "local", ID: "x"}))

	_, err = New(ctx, Options{})
	require.ErrorContains(t, err, "no region")
	_, err = New(ctx, Options{Region: testRegion, Port: 70000})
	require.ErrorContains(t, err, "port")
	_, err = DefaultUserData(specFor("d"), "", 443)
	require.ErrorContains(t, err, "artifacts URL")
}

func requireState(t *testing.T, p *Provider, h compute.Handle, want compute.State) {
	t.Helper()
	st, err := p.Status(ctxFor(t), h)
	require.NoError(t, err)
	require.Equal(t, want, st.State, st.Detail)
}

func TestClassify(t *testing.T) {
	api := func(code string) error {
		return fmt.Errorf("operation error EC2: RunInstances: %w", &smithy.GenericAPIError{Code: code, Message: "msg"})
	}
	for _, tc := range []struct {
		code      string
		notFound  bool
		permanent bool
	}{
		{"InvalidInstanceID.NotFound", true, false},
		{"InvalidInstanceID.Malformed", true, false},
		{"InvalidGroup.NotFound", true, false},
		{"InvalidAMIID.NotFound", false, true},
		{"InvalidAMIID.Malformed", false, true},
		{"InvalidParameterValue", false, true},
		{"Unsupported", false, true},
		{"InstanceLimitExceeded", false, true},
		{"VcpuLimitExceeded", false, true},
		{"UnauthorizedOperation", false, true},
		{"RequestLimitExceeded", false, false},
		{"InsufficientInstanceCapacity", false, false},
		{"InternalError", false, false},
	} {
		t.Run(tc.code, func(t *testing.T) {
			err := classify("run instance", api(tc.code))
			require.Equal(t, tc.notFound, errors.Is(err, compute.ErrNotFound))
			var pe *compute.PermanentError
			require.Equal(t, tc.permanent, errors.As(err, &pe))
			require.Equal(t, tc.code, apiCode(err), "the API error stays reachable")
		})
	}
	quota := classify("run instance", api("VcpuLimitExceeded"))
	require.ErrorContains(t, quota, "vCPU quota")
	require.NoError(t, classify("x", nil))
	require.ErrorIs(t, classify("x", context.Canceled), context.Canceled)
}
