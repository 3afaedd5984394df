package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"
)

// TestRotateToken: a draft or stopped deployment's rotation only stores the
// hash (Start then serves it); a live one's pushes it to the running endpoint
// (StartService with the new hash) before the update returns; a bad hash is
// rejected; a failed push keeps the previous hash.
func TestRotateToken(t *testing.T) {
	env := newEnv(t)
	var pushed []string
	fail := false
	env.OnActivity(a.StartService, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in actdef.ServiceInput) (actdef.ServiceInfo, error) {
			pushed = append(pushed, in.TokenSHA256)
			if fail {
				fail = false
				return actdef.ServiceInfo{}, temporal.NewNonRetryableApplicationError("endpoint unreachable", "Test", nil)
			}
			return actdef.ServiceInfo{Handle: compute.Handle{Name: "live", Address: "127.0.0.1:9000"}, Endpoint: "https://127.0.0.1:9000", CodeRevision: 1}, nil
		})
	mockHappyPath(env)
	h := func(c string) string { return strings.Repeat(c, 64) }
	s := &script{env: env}
	draft := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: h("1")})
	s.send(UpdateProvision, Empty{})
	s.send(UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"})
	s.send(UpdateInstall, InstallRequest{})
	s.send(UpdateTest, TestRequest{})
	done := s.send(UpdateComplete, CompleteRequest{})
	live := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: h("2")})
	bad := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: "ABC"})
	upper := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: h("A")})
	s.env.RegisterDelayedCallback(func() { fail = true }, s.next+30*time.Second)
	failed := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: h("3")})
	s.send(UpdateStop, Empty{})
	stopped := s.send(UpdateRotateToken, RotateTokenRequest{TokenSHA256: h("4")})
	start := s.send(UpdateStart, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())

	require.NoError(t, draft.err)
	require.Equal(t, h("1"), draft.state.TokenSHA256)
	require.Equal(t, StatusDraft, draft.state.Status)
	require.NoError(t, done.err)
	require.NoError(t, live.rejected)
	require.NoError(t, live.err)
	require.Equal(t, h("2"), live.state.TokenSHA256)
	require.Equal(t, StatusLive, live.state.Status)
	require.Error(t, bad.rejected)
	require.Error(t, upper.rejected)
	require.Error(t, failed.err)
	require.Equal(t, h("2"), failed.state.TokenSHA256, "a failed push keeps the previous token")
	require.NoError(t, stopped.err)
	require.Equal(t, StatusStopped, stopped.state.Status)
	require.NoError(t, start.err)
	require.Equal(t, h("4"), start.state.TokenSHA256)
	// Complete serves the draft's rotated hash; the live rotations push
	// theirs; the stopped one's waits for Start.
	require.Equal(t, []string{h("1"), h("2"), h("3"), h("4")}, pushed)
}
