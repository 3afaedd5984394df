package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities/actdef"
)

// With DNS configured, provision upserts the endpoint's record and keeps it
// in the state; delete removes it (once) and clears it.
func TestDNSRecordUpsertedAndDeleted(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	rec := actdef.DNSRecord{Name: "seg.algocloud.test", Address: "203.0.113.7"}
	var order []string
	env.OnActivity(a.UpsertRecord, mock.Anything, mock.Anything).Return(rec, nil).Once().
		Run(func(mock.Arguments) { order = append(order, "upsert") })
	env.OnActivity(a.DeleteRecord, mock.Anything, rec).Return(nil).Once().
		Run(func(mock.Arguments) { order = append(order, "delete") })
	s := &script{env: env}
	prov := s.send(UpdateProvision, Empty{})
	del := s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, prov.err)
	require.NoError(t, del.err)
	require.Equal(t, &rec, prov.state.DNS)
	require.Nil(t, del.state.DNS)
	require.Equal(t, []string{"upsert", "delete"}, order)
}

// Without DNS the activity answers with no record: nothing is kept and
// nothing is deleted.
func TestNoDNSNoRecord(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	s := &script{env: env}
	prov := s.send(UpdateProvision, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.NoError(t, prov.err)
	require.Nil(t, prov.state.DNS)
}
