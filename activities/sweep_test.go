package activities

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"

	"github.com/algocloud/algocloud/activities/actdef"
)

// SweepServer on EC2 (moto): an instance Provision launched but the
// workflow never recorded, its security group and the deployment's
// published bundle are all removed by the deployment ID; a second sweep
// finds nothing; a bad ID is a non-retryable BadInput error; a platform
// without a sweeping provider does nothing.
func TestSweepServer_EC2(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	moto := testmoto.Start(t)
	creds := testmoto.Credentials
	p, err := ec2.New(ctx, ec2.Options{
		Region: "us-east-1", Endpoint: moto.Endpoint, Credentials: creds,
		AMIs:         map[string]string{"python": "ami-760aaa0f"}, // served by moto in every region
		ArtifactsURL: "https://artifacts.invalid/algocloud",
		Poll:         20 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	require.NoError(t, err)
	bucket := "sweep-" + uuid.NewString()[:8]
	s3c := s3.New(s3.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint), UsePathStyle: true})
	_, err = s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)})
	require.NoError(t, err)
	bundles, err := ec2.NewBundleStore(ctx, ec2.BundleStoreOptions{
		Bucket: bucket, Region: "us-east-1", Endpoint: moto.Endpoint, Credentials: creds, EncryptionKey: make([]byte, 32),
	})
	require.NoError(t, err)

	dep := "dep-" + uuid.NewString()[:8]
	lost, err := p.Provision(ctx, compute.ServerSpec{DeploymentID: dep, APIName: "seg", Compute: "cpu", InstanceType: "t3.small", Region: "us-east-1"})
	require.NoError(t, err)
	require.NoError(t, bundles.Publish(ctx, dep, []byte("bundle")))

	a := &Activities{Provider: p, Bundles: bundles}
	require.NoError(t, a.SweepServer(ctx, dep))
	_, err = bundles.Fetch(ctx, dep)
	require.Error(t, err, "the bundle is deleted")
	ec2c := awsec2.New(awsec2.Options{Region: "us-east-1", Credentials: creds, BaseEndpoint: aws.String(moto.Endpoint)})
	requireTerminated(ctx, t, ec2c, lost.ID)
	groups, err := ec2c.DescribeSecurityGroups(ctx, &awsec2.DescribeSecurityGroupsInput{
		Filters: []types.Filter{{Name: aws.String("group-name"), Values: []string{ec2.GroupName(dep)}}},
	})
	require.NoError(t, err)
	require.Empty(t, groups.SecurityGroups, "the security group is deleted")

	require.NoError(t, a.SweepServer(ctx, dep), "again: nothing to sweep")

	err = a.SweepServer(ctx, "../"+dep)
	var app *temporal.ApplicationError
	require.True(t, errors.As(err, &app) && app.NonRetryable(), "want non-retryable, got %v", err)
	require.Equal(t, actdef.BadInputErrorType, app.Type())
	require.Contains(t, err.Error(), "not valid")

	require.NoError(t, (&Activities{}).SweepServer(ctx, dep), "no provider that sweeps: a no-op")
}

// requireTerminated checks that instance id is terminated (EC2 and moto
// keep describing a terminated instance for a while).
func requireTerminated(ctx context.Context, t *testing.T, c *awsec2.Client, id string) {
	t.Helper()
	out, err := c.DescribeInstances(ctx, &awsec2.DescribeInstancesInput{InstanceIds: []string{id}})
	require.NoError(t, err)
	require.Len(t, out.Reservations, 1)
	require.Len(t, out.Reservations[0].Instances, 1)
	require.Equal(t, types.InstanceStateNameTerminated, out.Reservations[0].Instances[0].State.Name, "instance %s", id)
}
