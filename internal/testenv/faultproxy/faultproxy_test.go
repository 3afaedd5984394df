package faultproxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

// TestMain shares one real moto server among the tests.
func TestMain(m *testing.M) { testmoto.Main(m) }

// testAMI is one of the images moto serves in every region.
const testAMI = "ami-760aaa0f"

// client is an EC2 client on endpoint that makes at most attempts attempts
// per call, with a short fixed backoff (these tests are about the proxy, not
// the SDK's delays).
func client(endpoint string, attempts int) *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       "us-east-1",
		Credentials:  testmoto.Credentials,
		BaseEndpoint: aws.String(endpoint),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 10 * time.Millisecond, nil })
		}),
	})
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// apiError asserts err is an EC2 API error with code and HTTP status.
func apiError(t *testing.T, err error, code string, status int) smithy.APIError {
	t.Helper()
	var ae smithy.APIError
	require.True(t, errors.As(err, &ae), "want an API error, got %v", err)
	require.Equal(t, code, ae.ErrorCode())
	var re *smithyhttp.ResponseError
	require.True(t, errors.As(err, &re), "want an HTTP response error, got %v", err)
	require.Equal(t, status, re.HTTPStatusCode())
	return ae
}

// run launches one instance tagged with tag (deployment-like) through c.
func run(ctx context.Context, c *ec2.Client, tag, token string) (*ec2.RunInstancesOutput, error) {
	in := &ec2.RunInstancesInput{
		ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Small,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{
			ResourceType: types.ResourceTypeInstance,
			Tags:         []types.Tag{{Key: aws.String("faultproxy-test"), Value: aws.String(tag)}},
		}},
	}
	if token != "" {
		in.ClientToken = aws.String(token)
	}
	return c.RunInstances(ctx, in)
}

// instances lists the IDs of the instances tagged tag, straight from moto.
func instances(t *testing.T, moto, tag string) []string {
	t.Helper()
	out, err := client(moto, 1).DescribeInstances(ctxFor(t), &ec2.DescribeInstancesInput{
		Filters: []types.Filter{{Name: aws.String("tag:faultproxy-test"), Values: []string{tag}}},
	})
	require.NoError(t, err)
	var ids []string
	for _, r := range out.Reservations {
		for _, inst := range r.Instances {
			ids = append(ids, aws.ToString(inst.InstanceId))
		}
	}
	return ids
}

func TestPassThrough(t *testing.T) {
	moto := testmoto.Start(t)
	p := Start(t, moto.Endpoint, Plan{})
	c := client(p.URL, 1)
	ctx := ctxFor(t)
	out, err := c.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{testAMI}})
	require.NoError(t, err)
	require.Len(t, out.Images, 1)
	tag := uuid.NewString()
	ran, err := run(ctx, c, tag, "")
	require.NoError(t, err)
	require.Equal(t, []string{aws.ToString(ran.Instances[0].InstanceId)}, instances(t, moto.Endpoint, tag))

	counts := p.Counts()
	require.Equal(t, Counts{Requests: 1, Forwarded: 1}, counts["DescribeImages"])
	require.Equal(t, Counts{Requests: 1, Forwarded: 1}, counts["RunInstances"])
	require.Equal(t, 2, p.Total().Requests)
	require.Zero(t, p.Total().Injected())
}

// Throttling and 500s answer EC2's error document: the SDK reads its code and
// status, and its retryer retries them until the request gets through.
func TestThrottleAndServerError(t *testing.T) {
	moto := testmoto.Start(t)
	p := Start(t, moto.Endpoint, Plan{Rules: []Rule{
		{Action: "DescribeRegions", Fault: Throttle, Count: 2},
		{Action: "DescribeRegions", Fault: ServerError, Count: 1},
		{Action: "DescribeAvailabilityZones", Fault: Throttle, Status: http.StatusBadRequest, Count: 1},
	}})
	ctx := ctxFor(t)

	// One attempt per call: each error as the SDK sees it.
	once := client(p.URL, 1)
	for _, want := range []struct {
		code   string
		status int
	}{{"RequestLimitExceeded", 503}, {"RequestLimitExceeded", 503}, {"InternalError", 500}} {
		_, err := once.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
		ae := apiError(t, err, want.code, want.status)
		require.NotEmpty(t, ae.ErrorMessage())
	}
	_, err := once.DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	require.NoError(t, err, "the rules' counts are used up")
	_, err = once.DescribeAvailabilityZones(ctx, &ec2.DescribeAvailabilityZonesInput{})
	ae := apiError(t, err, "RequestLimitExceeded", 400)
	require.Equal(t, "Request limit exceeded.", ae.ErrorMessage())

	got := p.Counts()["DescribeRegions"]
	require.Equal(t, 4, got.Requests)
	require.Equal(t, 1, got.Forwarded)
	require.Equal(t, map[Fault]int{Throttle: 2, ServerError: 1}, got.Faults)

	// With retries the same faults are ridden out.
	require.NoError(t, p.SetPlan(Plan{Rules: []Rule{
		{Action: "DescribeRegions", Fault: Throttle, Count: 1},
		{Action: "DescribeRegions", Fault: ServerError, Count: 1},
	}}))
	p.ResetCounts()
	_, err = client(p.URL, 3).DescribeRegions(ctx, &ec2.DescribeRegionsInput{})
	require.NoError(t, err)
	got = p.Counts()["DescribeRegions"]
	require.Equal(t, 3, got.Requests)
	require.Equal(t, 1, got.Forwarded)
}

// A quota error is a 400 with EC2's code and message, and nothing launches.
func TestAPIErrorQuota(t *testing.T) {
	moto := testmoto.Start(t)
	p := Start(t, moto.Endpoint, Plan{Rules: []Rule{{Action: "RunInstances", Fault: APIError, Code: "InstanceLimitExceeded"}}})
	tag := uuid.NewString()
	_, err := run(ctxFor(t), client(p.URL, 3), tag, "")
	ae := apiError(t, err, "InstanceLimitExceeded", 400)
	require.Contains(t, ae.ErrorMessage(), "current instance limit")
	require.Empty(t, instances(t, moto.Endpoint, tag))
	got := p.Counts()["RunInstances"]
	require.Equal(t, 1, got.Requests, "a 400 is not retried")
	require.Zero(t, got.Forwarded)

	// A code the proxy does not know gets the rule's status and message.
	require.NoError(t, p.SetPlan(Plan{Rules: []Rule{{Fault: APIError, Code: "Custom.Code", Status: 409, Message: "a <custom> & message"}}}))
	_, err = client(p.URL, 1).DescribeRegions(ctxFor(t), &ec2.DescribeRegionsInput{})
	ae = apiError(t, err, "Custom.Code", 409)
	require.Equal(t, "a <custom> & message", ae.ErrorMessage(), "the message is XML-escaped and parsed back")
}

// A dropped connection reaches the client as a connection error; moto never
// sees the request, and the SDK retries it.
func TestDrop(t *testing.T) {
	moto := testmoto.Start(t)
	p := Start(t, moto.Endpoint, Plan{Rules: []Rule{{Action: "RunInstances", Fault: Drop, Count: 1}}})
	ctx := ctxFor(t)
	tag := uuid.NewString()
	_, err := run(ctx, client(p.URL, 1), tag, "")
	require.Error(t, err)
	var ae smithy.APIError
	require.False(t, errors.As(err, &ae), "a dropped connection has no API error: %v", err)
	require.True(t, retry.RetryableConnectionError{}.IsErrorRetryable(err).Bool(), "the SDK sees a retryable connection error: %v", err)
	require.Empty(t, instances(t, moto.Endpoint, tag), "moto never saw it")

	require.NoError(t, p.SetPlan(Plan{Rules: []Rule{{Action: "RunInstances", Fault: Drop, Count: 2}}}))
	_, err = run(ctx, client(p.URL, 3), tag, "")
	require.NoError(t, err)
	require.Len(t, instances(t, moto.Endpoint, tag), 1)
	got := p.Counts()["RunInstances"]
	require.Equal(t, 4, got.Requests)
	require.Equal(t, 1, got.Forwarded)
	require.Equal(t, 3, got.Faults[Drop])
}

// DropAfter: moto launched the instance, the client never heard.
func TestDropAfterForwarding(t *testing.T) {
	moto := testmoto.Start(t)
	var mu sync.Mutex
	var hooked []string
	p := Start(t, moto.Endpoint, Plan{
		Rules: []Rule{{Action: "RunInstances", Fault: DropAfter, Count: 1}},
		OnForwarded: func(action string, status int) {
			mu.Lock()
			hooked = append(hooked, action+" "+http.StatusText(status))
			mu.Unlock()
		},
	})
	tag := uuid.NewString()
	_, err := run(ctxFor(t), client(p.URL, 1), tag, "")
	require.Error(t, err)
	require.Len(t, instances(t, moto.Endpoint, tag), 1, "the request took effect")
	got := p.Counts()["RunInstances"]
	require.Equal(t, Counts{Requests: 1, Forwarded: 1, Faults: map[Fault]int{DropAfter: 1}}, got)
	mu.Lock()
	require.Equal(t, []string{"RunInstances OK"}, hooked)
	mu.Unlock()
}

// With ClientTokens the proxy answers a repeated token as EC2 does: the SDK's
// retry after a lost answer gets the first launch, not a second instance.
func TestClientTokens(t *testing.T) {
	moto := testmoto.Start(t)
	ctx := ctxFor(t)
	plan := Plan{Rules: []Rule{{Action: "RunInstances", Fault: DropAfter, Count: 1}}, ClientTokens: true}
	p := Start(t, moto.Endpoint, plan)
	tag, token := uuid.NewString(), "tok-"+uuid.NewString()
	out, err := run(ctx, client(p.URL, 3), tag, token)
	require.NoError(t, err)
	ids := instances(t, moto.Endpoint, tag)
	require.Equal(t, []string{aws.ToString(out.Instances[0].InstanceId)}, ids)
	again, err := run(ctx, client(p.URL, 1), tag, token)
	require.NoError(t, err)
	require.Equal(t, ids[0], aws.ToString(again.Instances[0].InstanceId))
	require.Len(t, instances(t, moto.Endpoint, tag), 1)
	got := p.Counts()["RunInstances"]
	require.Equal(t, 3, got.Requests)
	require.Equal(t, 1, got.Forwarded)
	require.Equal(t, 2, got.Replayed)

	// Without it, moto itself decides (moto 5 launches again: EC2 would not).
	raw := Start(t, moto.Endpoint, Plan{Rules: plan.Rules})
	tag2 := uuid.NewString()
	_, err = run(ctx, client(raw.URL, 3), tag2, "tok-"+uuid.NewString())
	require.NoError(t, err)
	t.Logf("moto without the proxy's ClientToken emulation: %d instance(s) after a retried RunInstances", len(instances(t, moto.Endpoint, tag2)))
}

// The same seed and the same requests inject the same faults.
func TestProbabilitySeeded(t *testing.T) {
	moto := testmoto.Start(t)
	pattern := func(seed uint64) string {
		p := Start(t, moto.Endpoint, Plan{Seed: seed, Rules: []Rule{{Fault: Throttle, Probability: 0.5}}})
		c := client(p.URL, 1)
		var b strings.Builder
		for range 24 {
			if _, err := c.DescribeRegions(ctxFor(t), &ec2.DescribeRegionsInput{}); err != nil {
				apiError(t, err, "RequestLimitExceeded", 503)
				b.WriteByte('x')
			} else {
				b.WriteByte('.')
			}
		}
		got := p.Counts()["DescribeRegions"]
		require.Equal(t, 24, got.Requests)
		require.Equal(t, strings.Count(b.String(), "x"), got.Faults[Throttle])
		require.Equal(t, strings.Count(b.String(), "."), got.Forwarded)
		return b.String()
	}
	a, b := pattern(7), pattern(7)
	require.Equal(t, a, b)
	require.Contains(t, a, "x")
	require.Contains(t, a, ".")
	require.NotEqual(t, a, pattern(8), "another seed, another pattern (24 draws at 1/2)")
}

// Skip lets the first matching requests through.
func TestSkip(t *testing.T) {
	moto := testmoto.Start(t)
	p := Start(t, moto.Endpoint, Plan{Rules: []Rule{{Action: "DescribeRegions", Fault: ServerError, Skip: 2, Count: 1}}})
	c := client(p.URL, 1)
	var errs []bool
	for range 4 {
		_, err := c.DescribeRegions(ctxFor(t), &ec2.DescribeRegionsInput{})
		errs = append(errs, err != nil)
	}
	require.Equal(t, []bool{false, false, true, false}, errs)
}

func TestBadPlan(t *testing.T) {
	for _, plan := range []Plan{
		{Rules: []Rule{{Fault: "explode"}}},
		{Rules: []Rule{{Fault: APIError}}},
		{Rules: []Rule{{Fault: Throttle, Probability: 1.5}}},
		{Rules: []Rule{{Fault: Throttle, Count: -1}}},
		{Rules: []Rule{{Fault: Throttle, Status: 42}}},
	} {
		_, err := Listen("http://127.0.0.1:1", plan)
		require.Error(t, err, "%+v", plan)
	}
	_, err := Listen("127.0.0.1:1", Plan{})
	require.ErrorContains(t, err, "not an http(s) base URL")
}

func TestErrorXML(t *testing.T) {
	got := string(ErrorXML("RequestLimitExceeded", "Request limit exceeded.", "req-1"))
	require.Equal(t, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message></Error></Errors><RequestID>req-1</RequestID></Response>`, got)
}
