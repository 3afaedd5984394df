package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/spec"
)

// values is a set of search attributes as name -> value, to compare.
func values(sa temporal.SearchAttributes) map[string]any {
	out := map[string]any{}
	for k, v := range sa.GetUntypedValues() {
		out[k.GetName()] = v
	}
	return out
}

// updatesOf turns attributes back into updates that set them.
func updatesOf(sa temporal.SearchAttributes) []temporal.SearchAttributeUpdate {
	var ups []temporal.SearchAttributeUpdate
	for k, v := range sa.GetUntypedValues() {
		switch k := k.(type) {
		case temporal.SearchAttributeKeyKeyword:
			ups = append(ups, k.ValueSet(v.(string)))
		case temporal.SearchAttributeKeyInt64:
			ups = append(ups, k.ValueSet(v.(int64)))
		}
	}
	return ups
}

// upsert is what current becomes once the state's updates are applied (as
// Temporal merges an upsert), and how many updates that took.
func upsert(st State, current temporal.SearchAttributes) (temporal.SearchAttributes, int) {
	ups := st.searchAttributeUpdates(current)
	return temporal.NewSearchAttributes(append(updatesOf(current), ups...)...), len(ups)
}

// The updates carry exactly what differs from the current attributes: the
// steps' ones, the spec's ones when missing (a deployment from before the
// API set them) or changed, the live revision only while live (unset
// otherwise); nothing when nothing changed.
func TestSearchAttributeUpdates(t *testing.T) {
	sp := testSpec()
	spec4 := map[string]any{"AlgocloudApiName": "seg", "AlgocloudOwner": "alice", "AlgocloudEnvironment": spec.EnvPython, "AlgocloudCompute": spec.CPU}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range spec4 {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}

	draft := State{Spec: sp, Step: StepConfigured, Status: StatusDraft}
	cur, n := upsert(draft, StartSearchAttributes(sp, "alice"))
	require.Equal(t, 2, n, "a new deployment: the API set the spec's")
	require.Equal(t, with(map[string]any{"AlgocloudStep": StepConfigured, "AlgocloudStatus": StatusDraft}), values(cur))
	_, n = upsert(draft, cur)
	require.Zero(t, n, "nothing changed: no upsert")

	old, n := upsert(draft, temporal.NewSearchAttributes())
	require.Equal(t, 5, n, "a deployment from before: all but the owner, which only the API knows")
	require.Equal(t, map[string]any{"AlgocloudApiName": "seg", "AlgocloudEnvironment": spec.EnvPython, "AlgocloudCompute": spec.CPU,
		"AlgocloudStep": StepConfigured, "AlgocloudStatus": StatusDraft}, values(old))

	gpu := draft
	gpu.Spec.Compute = spec.GPU
	next, n := upsert(gpu, cur)
	require.Equal(t, 1, n, "configure changed compute")
	require.Equal(t, spec.GPU, values(next)["AlgocloudCompute"])

	live := State{Spec: sp, Step: StepCompleted, Status: StatusLive, Live: &actdef.ServiceInfo{CodeRevision: 3}}
	cur, n = upsert(live, cur)
	require.Equal(t, 3, n)
	require.Equal(t, with(map[string]any{"AlgocloudStep": StepCompleted, "AlgocloudStatus": StatusLive, "AlgocloudLiveRevision": int64(3)}), values(cur))

	stopped := live
	stopped.Status = StatusStopped // Live stays recorded, but nothing is served
	cur, n = upsert(stopped, cur)
	require.Equal(t, 2, n)
	require.Equal(t, with(map[string]any{"AlgocloudStep": StepCompleted, "AlgocloudStatus": StatusStopped}), values(cur), "no live revision while stopped")
	_, n = upsert(stopped, cur)
	require.Zero(t, n, "an unset revision is not unset again")
}

// A run with the change upserts the step's attributes at its start and
// after every step whose outcome changed them, and nothing else: the spec's
// are the API's start attributes.
func TestDeploymentUpsertsSearchAttributes(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	require.NoError(t, env.SetTypedSearchAttributesOnStart(StartSearchAttributes(testSpec(), "alice")))
	var upserts []map[string]any
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		upserts = append(upserts, values(args.Get(0).(temporal.SearchAttributes)))
	}).Return(nil)
	s := &script{env: env}
	for _, u := range []struct {
		name string
		arg  any
	}{
		{UpdateProvision, Empty{}}, {UpdateFetchCode, FetchCodeRequest{GitURL: "/repo", Ref: "main"}},
		{UpdateInstall, InstallRequest{}}, {UpdateTest, TestRequest{}}, {UpdateComplete, CompleteRequest{TokenSHA256: "feed"}},
		{UpdateStop, Empty{}}, {UpdateStart, Empty{}}, {UpdateDelete, Empty{}},
	} {
		s.send(u.name, u.arg)
	}
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	for _, o := range s.out {
		require.NoError(t, o.rejected, o.name)
		require.NoError(t, o.err, o.name)
	}
	require.Equal(t, []map[string]any{
		{"AlgocloudStep": StepConfigured, "AlgocloudStatus": StatusDraft},
		{"AlgocloudStep": StepProvisioned},
		{"AlgocloudStep": StepCodeFetched},
		{"AlgocloudStep": StepInstalled},
		{"AlgocloudStep": StepTested},
		{"AlgocloudStep": StepCompleted, "AlgocloudStatus": StatusLive, "AlgocloudLiveRevision": int64(1)},
		// Stopping unsets the revision (an unset shows as no value here): so
		// the start sets revision 1 again.
		{"AlgocloudStatus": StatusStopped},
		{"AlgocloudStatus": StatusLive, "AlgocloudLiveRevision": int64(1)},
		{"AlgocloudStatus": StatusDeleting},
		{"AlgocloudStep": StepDeleted, "AlgocloudStatus": StatusDeleted},
	}, upserts)
}

// A run from before the change (its history has no marker) upserts nothing.
func TestDeploymentWithoutTheChangeUpsertsNothing(t *testing.T) {
	env := newEnv(t)
	mockHappyPath(env)
	env.OnGetVersion(changeSearchAttributes, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
	upserted := 0
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(mock.Arguments) { upserted++ }).Return(nil)
	s := &script{env: env}
	s.send(UpdateProvision, Empty{})
	s.send(UpdateDelete, Empty{})
	env.ExecuteWorkflow(Deployment, Input{DeploymentID: "d1", OwnerID: "u1", Spec: testSpec()})
	require.NoError(t, env.GetWorkflowError())
	require.Zero(t, upserted)
}
