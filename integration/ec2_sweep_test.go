package integration

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/faultproxy"
)

// TestEC2DeleteSweepsUnrecordedInstance: a Provision whose RunInstances
// launched an instance on moto but whose every answer was lost (DropAfter,
// the SDK's retries replayed and dropped too), and whose next attempt then
// failed for good (the lookup by tag refused: UnauthorizedOperation), leaves
// an instance and its security group that the workflow never recorded.
// DELETE finds them by the deployment ID (SweepServer) and leaves nothing.
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
	require.Len(t, deploymentInstances(t, ctx, rig.w, id), 1, "the launched instance runs, unrecorded")
	require.True(t, rig.groupExists(t, ctx, id))

	// The credentials are fixed; Delete has no server to release.
	require.NoError(t, rig.proxy.SetPlan(faultproxy.Plan{ClientTokens: true}))
	rig.proxy.ResetCounts()
	r = c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.Empty(t, deploymentInstances(t, ctx, rig.w, id), "the unrecorded instance is terminated")
	require.False(t, rig.groupExists(t, ctx, id), "its security group is deleted")
	require.Equal(t, 1, rig.proxy.Counts()["TerminateInstances"].Requests)
	attempts := activityAttempts(t, p.Client, id)
	require.Equal(t, 1, attempts["SweepServer"], "swept once")
	require.Zero(t, attempts["ReleaseServer"])
	t.Logf("activity attempts %v", attempts)
}
