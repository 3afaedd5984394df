package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/activities/compute"

	"github.com/algocloud/algocloud/activities/actdef"
)

// A certificate that fails for good undoes the provision step: the DNS record
// and the server it made are removed, the deployment is back at configured,
// and the next Provision starts afresh and succeeds.
func TestProvisionFailingForGoodIsUndone(t *testing.T) {
	env := newEnv(t)
	srv1 := compute.Server{Provider: "ec2", ID: "i-first", Host: "203.0.113.7", Port: 443, Workdir: "/tmp/d1"}
	srv2 := compute.Server{Provider: "ec2", ID: "i-second", Host: "203.0.113.8", Port: 443, Workdir: "/tmp/d1"}
	rec1 := actdef.DNSRecord{Name: "seg.algocloud.test", Address: srv1.Host}
	rec2 := actdef.DNSRecord{Name: "seg.algocloud.test", Address: srv2.Host}
	var calls []string
	note := func(s string) func(mock.Arguments) { return func(mock.Arguments) { calls = append(calls, s) } }
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(srv1, nil).Once().Run(note("provision"))
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(srv2, nil).Once().Run(note("provision"))
	env.OnActivity(a.UpsertRecord, mock.Anything, mock.Anything).Return(rec1, nil).Once().Run(note("upsert"))
	env.OnActivity(a.UpsertRecord, mock.Anything, mock.Anything).Return(rec2, nil).Once().Run(note("upsert"))
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(actdef.CertInfo{},
		temporal.NewNonRetryableApplicationError("acme: the CA refused seg.algocloud.test: rejectedIdentifier", "CertFailed", nil)).Once().Run(note("cert"))
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(actdef.CertInfo{CertFile: "c", KeyFile: "k", Names: []string{"seg.algocloud.test"}}, nil).Once().Run(note("cert"))
	env.OnActivity(a.DeleteRecord, mock.Anything, rec1).Return(nil).Once().Run(note("delete-record"))
	env.OnActivity(a.ReleaseServer, mock.Anything, srv1).Return(nil).Once().Run(note("release"))
	env.OnActivity(a.DeleteRecord, mock.Anything, rec2).Return(nil).Once().Run(note("delete-record"))
	env.OnActivity(a.ReleaseServer, mock.Anything, srv2).Return(nil).Once().Run(note("release"))
	env.OnActivity(a.MarkDeleted, mock.Anything, mock.Anything).Return(nil).Once()

	s := &script{env: env}
	failed := s.send(UpdateProvision, Empty{})
	again := s.send(UpdateProvision, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())

	require.Error(t, failed.err)
	require.Contains(t, failed.err.Error(), "rejectedIdentifier")
	require.Contains(t, failed.err.Error(), "undone: DNS record seg.algocloud.test, server i-first released")
	require.NoError(t, again.rejected)
	require.NoError(t, again.err)
	require.Equal(t, StepProvisioned, again.state.Step)
	require.Equal(t, "i-second", again.state.Server.ID)
	require.Equal(t, &rec2, again.state.DNS)
	require.Equal(t, []string{"provision", "upsert", "cert", "delete-record", "release", "provision", "upsert", "cert",
		"delete-record", "release"}, calls)
	env.AssertExpectations(t)
}

// A compensation that fails itself keeps what it could not remove in the
// state (Delete finishes it) and says so in the step's error.
func TestProvisionUndoThatFailsIsLeftForDelete(t *testing.T) {
	env := newEnv(t)
	srv := compute.Server{Provider: "ec2", ID: "i-first", Host: "203.0.113.7", Port: 443, Workdir: "/tmp/d1"}
	env.OnActivity(a.ProvisionServer, mock.Anything, mock.Anything).Return(srv, nil).Once()
	env.OnActivity(a.IssueCertificate, mock.Anything, mock.Anything).Return(actdef.CertInfo{},
		temporal.NewNonRetryableApplicationError("acme: rate limited for good", "CertFailed", nil)).Once()
	env.OnActivity(a.ReleaseServer, mock.Anything, srv).Return(
		temporal.NewNonRetryableApplicationError("ec2: UnauthorizedOperation", "Permanent", nil)).Once()
	env.OnActivity(a.ReleaseServer, mock.Anything, srv).Return(nil).Once()
	env.OnActivity(a.MarkDeleted, mock.Anything, mock.Anything).Return(nil).Once()

	s := &script{env: env}
	failed := s.send(UpdateProvision, Empty{})
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.Error(t, failed.err)
	require.Contains(t, failed.err.Error(), "undoing it failed too (server i-first, left for Delete)")
	require.Equal(t, "i-first", failed.state.Server.ID)
	require.NoError(t, del.err)
	require.Equal(t, StatusDeleted, del.state.Status)
	env.AssertExpectations(t)
}
