package integration

import (
	"context"
	"encoding/base64"
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

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// TestEC2AgentFigures is TestAgentFigures on the EC2 stand-in, when
// ALGOCLOUD_BENCH_EC2_AGENT=N is set: two platforms on moto side by side,
// one with EC2 agents (--ec2-agents: the stand-in runs the user data's
// agent; Install, Test Code and Complete run there) and one without (the
// worker's path: Test Code on the worker, the instance serving the bundle,
// a redeploy restarting it: StopInstances and StartInstances reach the
// stand-in through instanceStandIn's proxy, as on a real instance). N
// interleaved Test Code rounds, then a redeploy under 4 clients for
// ALGOCLOUD_BENCH_EC2_AGENT_LOAD (default 60s) on each: failed requests,
// p99 before and during, complete to the first answer. It asserts only that
// every step answers; the figures go to docs/benchmarks.md with the command.
func TestEC2AgentFigures(t *testing.T) {
	rounds, _ := strconv.Atoi(os.Getenv("ALGOCLOUD_BENCH_EC2_AGENT"))
	if rounds <= 0 {
		t.Skip("set ALGOCLOUD_BENCH_EC2_AGENT=N to measure N Test Code rounds and a redeploy under load on each EC2 path")
	}
	load := 60 * time.Second
	if v := os.Getenv("ALGOCLOUD_BENCH_EC2_AGENT_LOAD"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "ALGOCLOUD_BENCH_EC2_AGENT_LOAD")
		load = d
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	example := filepath.Join(repoRoot(t), "examples", "segmentation")

	// Through the instance's agent.
	e := newEC2AgentWorld(t, ctx, "bench-agent")
	agent := &agentBenchPath{name: "ec2 agent", c: e.c, id: e.id, repo: gitRepo(t, example)}
	agent.endpoint, agent.token = e.deploy(t, agent.repo)
	agent.hc = ec2AgentClient(e.p.CA.Pool(), e.si.listen)
	agent.hc.Transport.(*http.Transport).DisableKeepAlives = false

	// The worker's path.
	worker := ec2WorkerPath(t, ctx, example)

	paths := []*agentBenchPath{agent, worker}
	benchTestCode(t, paths, rounds)
	img := samplePNG(t, 32, 24)
	for _, b := range paths {
		benchRedeployUnderLoad(t, b, load, img)
	}
}

// ec2WorkerPath is a live deployment on the EC2 stand-in without agents
// (EC2Agents false: Test Code on the worker, a redeploy stops and starts
// the instance, whose boot fetches the republished bundle).
func ec2WorkerPath(t *testing.T, ctx context.Context, example string) *agentBenchPath {
	t.Helper()
	w := newCloudWorld(t, ctx)
	port := testenv.FreePort(t)
	inst := &instanceStandIn{si: &standIn{home: t.TempDir(), listen: "127.0.0.1:" + strconv.Itoa(port)}}
	t.Cleanup(inst.shutdown)
	reapStandIn(t, inst.si.home)
	aws := inst.proxy(t, w.moto.Endpoint)
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Domain = "algocloud.test"
		o.Cloud = ec2Options(w, aws, port, inst.si.listen)
		o.Cloud.EC2Agents = false // the worker's path, measured against the agent's
	})
	t.Cleanup(p.Stop)
	b := &agentBenchPath{name: "ec2 worker", c: newClient(t, p, devToken(t, p)), repo: gitRepo(t, example)}
	r := b.c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Bench ec2 worker", "api_name": "bench-worker", "input": "image", "output": "image", "threads": 1,
		"compute": "cpu", "instance_type": "t3.small", "region": "us-east-1",
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	b.id = r.Str("id")
	r = throughTest(t, b.c, b.id, b.repo)
	require.NotEqual(t, true, r.Body["state"].(map[string]any)["server"].(map[string]any)["agent"], "the worker path has no agent: %s", r.Raw)
	srv := r.Body["state"].(map[string]any)["server"].(map[string]any)
	attr, err := w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: awssdk.String(srv["id"].(string)), Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(awssdk.ToString(attr.UserData.Value))
	require.NoError(t, err)
	inst.setUserData(string(userData))
	// Complete publishes the bundle; the instance's first boot fetches it.
	done := make(chan resp, 1)
	go func() { done <- b.c.Step(b.id, "complete", nil) }()
	require.Eventually(t, func() bool {
		_, err := w.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: awssdk.String(w.bucket), Key: awssdk.String("algocloud/" + b.id + "/bundle.enc")})
		return err == nil
	}, 3*time.Minute, 50*time.Millisecond, "bundle published")
	inst.start()
	r = <-done
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.NoError(t, inst.err())
	b.endpoint, b.token = r.Str("endpoint"), r.Str("token")
	b.hc = ec2AgentClient(p.CA.Pool(), inst.si.listen)
	b.hc.Transport.(*http.Transport).DisableKeepAlives = false
	return b
}
