package ec2

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/computetest"
)

var cpuSpec = compute.ServerSpec{
	Owner: "user-1", APIName: "seg", Compute: "cpu", InstanceType: "t3.small", Region: testRegion,
}

func specFor(id string) compute.ServerSpec {
	s := cpuSpec
	s.DeploymentID = id
	return s
}

// The shared provider contract, against moto.
func TestContract(t *testing.T) {
	e := newEnv(t)
	computetest.Run(t, e.p, computetest.Suite{
		ServerSpec: cpuSpec,
		WriteConfig: func(t *testing.T, _ compute.Server, name string) string {
			// The instance's user data runs the service from its bundle; the
			// provider never reads this file.
			path := filepath.Join(t.TempDir(), name+".json")
			require.NoError(t, os.WriteFile(path, []byte(`{}`), 0o600))
			return path
		},
		Check:   e.health.check,
		Timeout: 30 * time.Second,
		Poll:    20 * time.Millisecond,
	})
}

// Provision again, from another Provider (a restarted worker) and
// concurrently: always the same single instance.
func TestProvision_OneInstancePerDeployment(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	once, concurrent := uniq("dep-once"), uniq("dep-concurrent")
	s, err := e.p.Provision(ctx, specFor(once))
	require.NoError(t, err)
	require.Equal(t, ProviderName, s.Provider)
	require.Regexp(t, `^i-[0-9a-f]+$`, s.ID)
	require.NotEmpty(t, s.Host)
	require.Equal(t, 443, s.Port)

	again, err := e.provider(t).Provision(ctx, specFor(once))
	require.NoError(t, err)
	require.Equal(t, s, again)

	const n = 6
	servers := make([]compute.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = e.p.Provision(ctx, specFor(concurrent))
		}()
	}
	wg.Wait()
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, servers[0], servers[i])
	}
	require.Len(t, e.instancesOf(t, testRegion, once), 1)
	require.Len(t, e.instancesOf(t, testRegion, concurrent), 1)

	// RunInstances carried the deployment's ClientToken.
	inst := e.instancesOf(t, testRegion, once)[0]
	require.Equal(t, clientToken(once, nil), aws.ToString(inst.ClientToken))
}

// A worker that died after RunInstances reached EC2 but before it heard the
// answer: the retry finds the instance by tag instead of launching another.
// moto ignores ClientToken (the same token twice gives two instances), so
// here the tag lookup is what keeps it to one; on EC2 the token covers the
// window where a fresh tag is not yet visible to DescribeInstances.
func TestProvision_RetryAfterLostAnswerFindsInstance(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	s := specFor(uniq("dep-lost"))
	run := func() string {
		out, err := e.ec2(testRegion).RunInstances(ctx, &ec2.RunInstancesInput{
			ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Small,
			MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
			ClientToken:       aws.String(clientToken(s.DeploymentID, nil)),
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: resourceTags(s)}},
		})
		require.NoError(t, err)
		return aws.ToString(out.Instances[0].InstanceId)
	}
	first := run()
	if second := run(); second != first {
		t.Logf("moto does not honour ClientToken: the same token launched %s and %s", first, second)
		_, err := e.ec2(testRegion).TerminateInstances(ctx, &ec2.TerminateInstancesInput{InstanceIds: []string{second}})
		require.NoError(t, err)
	}

	got, err := e.p.Provision(ctx, s)
	require.NoError(t, err)
	require.Equal(t, first, got.ID)
	require.Len(t, e.instancesOf(t, testRegion, s.DeploymentID), 1)
}

// After Release, provisioning the same deployment again makes a new
// instance: the ClientToken changes with the dead instances.
func TestProvision_AfterReleaseLaunchesNew(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	id := uniq("dep-again")
	s1, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.NoError(t, e.p.Release(ctx, s1))
	s2, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.NotEqual(t, s1.ID, s2.ID)
	require.NotEqual(t, clientToken(id, nil), clientToken(id, []string{s1.ID}))
	require.NoError(t, e.p.Release(ctx, s2))
}

func TestProvision_Rejects(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	cases := []struct {
		name     string
		edit     func(*compute.ServerSpec)
		opts     func(*Options)
		contains string
	}{
		{"GPU type for a CPU server", func(s *compute.ServerSpec) { s.InstanceType = "g4dn.xlarge" }, nil,
			"g4dn.xlarge is a GPU instance type, but the deployment asks for a CPU server"},
		{"CPU type for a GPU server", func(s *compute.ServerSpec) { s.Compute = "gpu" }, nil,
			"t3.small is a CPU instance type"},
		{"unknown instance type", func(s *compute.ServerSpec) { s.InstanceType = "x9.huge" }, nil,
			`instance type "x9.huge" is not offered for cpu servers`},
		{"unknown region", func(s *compute.ServerSpec) { s.Region = "mars-north-1" }, nil,
			`region "mars-north-1" is not offered`},
		{"type not offered in the region", func(s *compute.ServerSpec) { s.Compute, s.InstanceType = "gpu", "p3.2xlarge" }, nil,
			"instance type p3.2xlarge is not offered in us-east-1"},
		{"unknown AMI", nil, func(o *Options) { o.AMIs = map[string]string{"python": "ami-0000000000deadbee"} },
			"the machine image does not exist in this region"},
		{"no image matches the name", nil, func(o *Options) { o.AMIs = map[string]string{"python": "no-such-image-*"} },
			`machine image "no-such-image-*" is not available in us-east-1`},
		{"no image for the environment", nil, func(o *Options) { o.AMIs = map[string]string{"onnx": testAMI} },
			"no machine image configured for python cpu servers"},
		{"bad deployment id", func(s *compute.ServerSpec) { s.DeploymentID = "../x" }, nil, "deployment id"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := e.p
			if tc.opts != nil {
				p = e.provider(t, tc.opts)
			}
			s := specFor(uniq(fmt.Sprintf("dep-reject-%d", i)))
			if tc.edit != nil {
				tc.edit(&s)
			}
			_, err := p.Provision(ctx, s)
			requirePermanent(t, err, tc.contains)
			if s.Region == testRegion {
				require.Empty(t, e.instancesOf(t, testRegion, s.DeploymentID), "nothing launched")
				require.Nil(t, e.group(t, testRegion, s.DeploymentID), "no security group left")
			}
		})
	}
}

// The security group opens only the endpoint port, and everything made
// carries the owner, deployment and API name.
func TestProvision_SecurityGroupAndTags(t *testing.T) {
	e := newEnv(t, func(o *Options) { o.Port = 8443 })
	ctx := ctxFor(t)
	id := uniq("dep-tags")
	s, err := e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.Equal(t, 8443, s.Port)

	g := e.group(t, testRegion, id)
	require.NotNil(t, g)
	require.Len(t, g.IpPermissions, 1, "one ingress rule")
	rule := g.IpPermissions[0]
	require.Equal(t, "tcp", aws.ToString(rule.IpProtocol))
	require.Equal(t, int32(8443), aws.ToInt32(rule.FromPort))
	require.Equal(t, int32(8443), aws.ToInt32(rule.ToPort))
	require.Len(t, rule.IpRanges, 1)
	require.Equal(t, "0.0.0.0/0", aws.ToString(rule.IpRanges[0].CidrIp))

	insts := e.instancesOf(t, testRegion, id)
	require.Len(t, insts, 1)
	inst := insts[0]
	require.Equal(t, s.ID, aws.ToString(inst.InstanceId))
	require.Equal(t, types.InstanceTypeT3Small, inst.InstanceType)
	require.Equal(t, testAMI, aws.ToString(inst.ImageId))
	require.Len(t, inst.SecurityGroups, 1)
	require.Equal(t, aws.ToString(g.GroupId), aws.ToString(inst.SecurityGroups[0].GroupId))
	want := map[string]string{
		"Name": "algocloud-seg", TagDeployment: id, TagOwner: "user-1", TagAPIName: "seg", TagManagedBy: "algocloud",
	}
	for _, tags := range [][]types.Tag{inst.Tags, g.Tags} {
		for k, v := range want {
			got, ok := tag(tags, k)
			require.True(t, ok, "tag %s", k)
			require.Equal(t, v, got, "tag %s", k)
		}
	}

	attr, err := e.ec2(testRegion).DescribeInstanceAttribute(ctx, &ec2.DescribeInstanceAttributeInput{
		InstanceId: aws.String(s.ID), Attribute: types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	script, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)
	require.Contains(t, string(script), "artifacts='https://artifacts.invalid/algocloud'\n")
	require.Contains(t, string(script), `"$artifacts/`+id+`/bundle.tar.gz"`)

	// A second Provision leaves the group as it was (no duplicate rule).
	_, err = e.p.Provision(ctx, specFor(id))
	require.NoError(t, err)
	require.Len(t, e.group(t, testRegion, id).IpPermissions, 1)
}

// Images resolve by name (newest match) and per region; other regions work.
func TestProvision_AMIByNameInAnotherRegion(t *testing.T) {
	e := newEnv(t, func(o *Options) {
		o.AMIs = map[string]string{"python/gpu/eu-west-1": "ubuntu/images/hvm-ssd/ubuntu-*-amd64-server-*", "python": "ami-nope"}
	})
	ctx := ctxFor(t)
	s := specFor(uniq("dep-gpu"))
	s.Compute, s.InstanceType, s.Region = "gpu", "g4dn.xlarge", "eu-west-1"
	srv, err := e.p.Provision(ctx, s)
	require.NoError(t, err)
	insts := e.instancesOf(t, "eu-west-1", s.DeploymentID)
	require.Len(t, insts, 1)
	require.Equal(t, "ami-785db401", aws.ToString(insts[0].ImageId), "moto dates all images alike: the later name (xenial-...-20170721) wins")
	require.Equal(t, types.InstanceTypeG4dnXlarge, insts[0].InstanceType)

	// A new Provider (no memory of the region) finds the instance by search.
	other := e.provider(t)
	h, err := other.Start(ctx, compute.ServiceSpec{Server: srv, Name: "live"})
	require.NoError(t, err)
	st, err := other.Status(ctx, h)
	require.NoError(t, err)
	require.Equal(t, compute.Running, st.State)
	require.NoError(t, other.Release(ctx, srv))
	require.Empty(t, e.instancesOf(t, "eu-west-1", s.DeploymentID))
}
