package ec2

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"
)

// A Provision whose Server was lost (the workflow never recorded it): Sweep,
// by the deployment ID alone and from a provider that never saw the
// instance, terminates it and deletes its security group and staging folder;
// another deployment's instance keeps running; a second Sweep and a Sweep of
// a deployment that never had anything return nil.
func TestSweep_LostServer(t *testing.T) {
	staging := t.TempDir()
	e := newEnv(t, func(o *Options) { o.StagingDir = staging })
	ctx := ctxFor(t)
	lost, kept := uniq("dep-lost"), uniq("dep-kept")
	srv, err := e.p.Provision(ctx, specFor(lost))
	require.NoError(t, err)
	require.DirExists(t, srv.Workdir)
	_, err = e.p.Provision(ctx, specFor(kept))
	require.NoError(t, err)
	require.Len(t, e.instancesOf(t, testRegion, lost), 1)
	require.NotNil(t, e.group(t, testRegion, lost))

	// A restarted worker: no memory of the instance or its region.
	other := e.provider(t, func(o *Options) { o.StagingDir = staging })
	require.NoError(t, other.Sweep(ctx, lost))
	require.Empty(t, e.instancesOf(t, testRegion, lost))
	require.Nil(t, e.group(t, testRegion, lost))
	require.NoDirExists(t, srv.Workdir)
	require.Len(t, e.instancesOf(t, testRegion, kept), 1, "another deployment's instance is untouched")
	require.NotNil(t, e.group(t, testRegion, kept))

	require.NoError(t, other.Sweep(ctx, lost), "sweeping again finds nothing")
	require.NoError(t, other.Sweep(ctx, uniq("dep-never")), "a deployment that never had a server")
	require.DirExists(t, staging)
}

// The instance runs in a region other than the provider's default one, and
// a second deployment only got its security group (its launch failed after
// making it): Sweep finds and removes both.
func TestSweep_OtherRegionAndGroupOnly(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	far := specFor(uniq("dep-far"))
	far.Region = "eu-west-1"
	_, err := e.p.Provision(ctx, far)
	require.NoError(t, err)
	require.Len(t, e.instancesOf(t, "eu-west-1", far.DeploymentID), 1)

	groupOnly := specFor(uniq("dep-group"))
	_, err = e.p.securityGroup(ctx, e.ec2(testRegion), groupOnly)
	require.NoError(t, err)
	require.NotNil(t, e.group(t, testRegion, groupOnly.DeploymentID))

	other := e.provider(t)
	require.NoError(t, other.Sweep(ctx, far.DeploymentID))
	require.Empty(t, e.instancesOf(t, "eu-west-1", far.DeploymentID))
	require.Nil(t, e.group(t, "eu-west-1", far.DeploymentID))

	require.NoError(t, other.Sweep(ctx, groupOnly.DeploymentID))
	require.Nil(t, e.group(t, testRegion, groupOnly.DeploymentID))
}

// An instance carrying the deployment tag but not algocloud:managed-by
// (someone else's) is never terminated, and an invalid deployment ID is a
// permanent error that touches nothing.
func TestSweep_OnlyWhatItManages(t *testing.T) {
	e := newEnv(t)
	ctx := ctxFor(t)
	id := uniq("dep-foreign")
	out, err := e.ec2(testRegion).RunInstances(ctx, &ec2.RunInstancesInput{
		ImageId: aws.String(testAMI), InstanceType: types.InstanceTypeT3Small,
		MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeInstance, Tags: []types.Tag{
			{Key: aws.String(TagDeployment), Value: aws.String(id)},
		}}},
	})
	require.NoError(t, err)
	foreign := aws.ToString(out.Instances[0].InstanceId)
	t.Cleanup(func() {
		_, _ = e.ec2(testRegion).TerminateInstances(context.Background(), &ec2.TerminateInstancesInput{InstanceIds: []string{foreign}})
	})

	require.NoError(t, e.p.Sweep(ctx, id))
	insts := e.instancesOf(t, testRegion, id)
	require.Len(t, insts, 1)
	require.Equal(t, foreign, aws.ToString(insts[0].InstanceId))
	require.NotEqual(t, types.InstanceStateNameShuttingDown, state(insts[0]))

	requirePermanent(t, e.p.Sweep(ctx, "../etc"), "not valid")
	requirePermanent(t, e.p.Sweep(ctx, ""), "not valid")
}

// A cancelled context stops Sweep with the context's error instead of
// waiting on.
func TestSweep_RespectsContext(t *testing.T) {
	staging := t.TempDir()
	e := newEnv(t, func(o *Options) { o.StagingDir = staging })
	id := uniq("dep-cancel")
	srv, err := e.p.Provision(ctxFor(t), specFor(id))
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	require.ErrorIs(t, e.p.Sweep(ctx, id), context.Canceled)
	require.DirExists(t, srv.Workdir, "nothing after the cancelled step ran")
	require.NoError(t, e.p.Sweep(ctxFor(t), id))
	require.Empty(t, e.instancesOf(t, testRegion, id))
	_, err = os.Stat(filepath.Join(staging, id))
	require.ErrorIs(t, err, os.ErrNotExist)
}
