package integration

import (
	"context"
	"encoding/base64"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsec2 "github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/compute/ec2"
	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
)

// TestEC2DeleteSweepsUnrecordedInstance: a Provision whose RunInstances
// launched an instance on moto but whose every answer was lost (DropAfter,
// the SDK's retries replayed and dropped too), and whose next attempt then
// failed for good (the lookup by tag refused: UnauthorizedOperation), leaves
// an instance and its security group that the workflow never recorded.
// DELETE finds them by the deployment ID (SweepServer) and leaves nothing,
// the credential of the instance's agent (registered at launch) revoked.
func TestEC2DeleteSweepsUnrecordedInstance(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	rig := newEC2Rig(t, ctx, faultproxy.Plan{ClientTokens: true, Rules: []faultproxy.Rule{
		{Action: "RunInstances", Fault: faultproxy.DropAfter},
		// The first attempt's lookup passes; every later one is refused.
		{Action: "DescribeInstances", Fault: faultproxy.APIError, Code: "UnauthorizedOperation",
			Status: http.StatusForbidden, Message: "You are not authorized to perform this operation.", Skip: 1},
	}})
	p := rig.startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))

	r := c.Do(http.MethodPost, "/api/v1/deployments", ec2Spec("swept"))
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	r = c.Step(id, "provision", nil)
	require.Equal(t, http.StatusUnprocessableEntity, r.Status, string(r.Raw))
	require.Contains(t, r.Str("message"), "UnauthorizedOperation", string(r.Raw))
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Empty(t, st.Str("state", "server", "id"), "no server recorded: %s", st.Raw)

	counts := rig.proxy.Counts()
	require.Positive(t, counts["RunInstances"].Faults[faultproxy.DropAfter], "RunInstances' answer lost")
	require.Equal(t, 1, counts["RunInstances"].Forwarded, "one launch reached moto")
	launched := deploymentInstances(t, ctx, rig.w, id)
	require.Len(t, launched, 1, "the launched instance runs, unrecorded")
	require.True(t, rig.groupExists(t, ctx, id))
	// Its user data holds its agent's credential, registered at launch.
	attr, err := rig.w.ec2.DescribeInstanceAttribute(ctx, &awsec2.DescribeInstanceAttributeInput{
		InstanceId: launched[0].InstanceId, Attribute: ec2types.InstanceAttributeNameUserData,
	})
	require.NoError(t, err)
	userData, err := base64.StdEncoding.DecodeString(aws.ToString(attr.UserData.Value))
	require.NoError(t, err)
	credential := regexp.MustCompile(`ag_[A-Za-z0-9_-]{43}`).FindString(string(userData))
	require.NotEmpty(t, credential, "the agent's user data")
	server, err := p.Agents.AuthenticateAgent(ctx, credential)
	require.NoError(t, err)
	require.Equal(t, ec2.AgentID(id), server)

	// The credentials are fixed; Delete has no server to release.
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true}))
	rig.proxy.ResetCounts()
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Empty(t, deploymentInstances(t, ctx, rig.w, id), "the unrecorded instance is terminated")
	require.False(t, rig.groupExists(t, ctx, id), "its security group is deleted")
	_, err = p.Agents.AuthenticateAgent(ctx, credential)
	require.Error(t, err, "its agent's credential is revoked")
	require.Equal(t, 1, rig.proxy.Counts()["TerminateInstances"].Requests)
	attempts := activityAttempts(t, p.Client, id)
	require.Equal(t, 1, attempts["SweepServer"], "swept once")
	require.Zero(t, attempts["ReleaseServer"])
	t.Logf("activity attempts %v", attempts)
}
