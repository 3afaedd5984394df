package workflows

import (
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/spec"
)

// Search attributes of the Deployment workflow, so operators find a
// deployment in Temporal by name, owner or state (`temporal workflow list
// --query 'AlgocloudApiName="seg"'`, the UI's filters), not only by
// deployment-<uuid>. Every name starts with Algocloud. None holds a secret:
// the owner is a user name, the rest is the spec and the step. The embedded
// server registers them at start (internal/temporaldev); on a cluster an
// operator creates them once (docs/architecture.md, "Search attributes"),
// and the worker and API refuse to start without them
// (internal/platform), because Temporal refuses a workflow start or an
// upsert that names an unregistered attribute.
var (
	// SearchAPIName is the deployment's api_name (set at start).
	SearchAPIName = temporal.NewSearchAttributeKeyKeyword("AlgocloudApiName")
	// SearchOwner is the owner's user name (set at start; the workflow knows
	// only the owner's ID, so it never changes it).
	SearchOwner = temporal.NewSearchAttributeKeyKeyword("AlgocloudOwner")
	// SearchEnvironment is the spec's environment: python or onnx.
	SearchEnvironment = temporal.NewSearchAttributeKeyKeyword("AlgocloudEnvironment")
	// SearchCompute is the spec's compute kind: cpu or gpu.
	SearchCompute = temporal.NewSearchAttributeKeyKeyword("AlgocloudCompute")
	// SearchStep is State.Step (configured ... completed, deleted).
	SearchStep = temporal.NewSearchAttributeKeyKeyword("AlgocloudStep")
	// SearchStatus is State.Status (draft, live, stopped, deleting, deleted).
	SearchStatus = temporal.NewSearchAttributeKeyKeyword("AlgocloudStatus")
	// SearchLiveRevision is the code revision the endpoint serves while
	// live; unset otherwise.
	SearchLiveRevision = temporal.NewSearchAttributeKeyInt64("AlgocloudLiveRevision")
)

// SearchAttributeKeys lists every search attribute a Deployment workflow
// carries: what a Temporal namespace must have registered.
var SearchAttributeKeys = []temporal.SearchAttributeKey{
	SearchAPIName, SearchOwner, SearchEnvironment, SearchCompute, SearchStep, SearchStatus, SearchLiveRevision,
}

// SearchAttributeTypes is SearchAttributeKeys as name -> type, the form the
// operator service registers and lists.
func SearchAttributeTypes() map[string]enums.IndexedValueType {
	m := make(map[string]enums.IndexedValueType, len(SearchAttributeKeys))
	for _, k := range SearchAttributeKeys {
		m[k.GetName()] = k.GetValueType()
	}
	return m
}

// StartSearchAttributes are the attributes the API sets when it starts a
// deployment's workflow: the ones that do not follow its steps (API name,
// owner's user name, environment, compute). The workflow upserts the
// others as its state moves.
func StartSearchAttributes(sp spec.Spec, ownerName string) temporal.SearchAttributes {
	var ups []temporal.SearchAttributeUpdate
	for _, kv := range []struct {
		key temporal.SearchAttributeKeyKeyword
		v   string
	}{{SearchAPIName, sp.APIName}, {SearchOwner, ownerName}, {SearchEnvironment, sp.Environment}, {SearchCompute, sp.Compute}} {
		if kv.v != "" {
			ups = append(ups, kv.key.ValueSet(kv.v))
		}
	}
	return temporal.NewSearchAttributes(ups...)
}

// changeSearchAttributes versions the workflow's search attribute upserts
// (UpsertWorkflowSearchAttributes commands that older histories lack),
// decided once when a run starts: a run with it upserts, at its start and
// whenever it projects its state, the attributes that differ from the
// state (step, status, live revision, and api name, environment and
// compute, which configure may change and which deployments started before
// the API set them lack).
const changeSearchAttributes = "search-attributes"

// upsertSearchAttributes brings the workflow's search attributes to what
// its state says, when this run has changeSearchAttributes. Only changed
// ones are upserted (none: no command), so replays and unchanged steps add
// nothing. A refused upsert is logged, never fails the step: the attributes
// are for finding deployments, not part of their state.
func (d *deployment) upsertSearchAttributes(ctx workflow.Context) {
	if !d.searchAttrs {
		return
	}
	ups := d.st.searchAttributeUpdates(workflow.GetTypedSearchAttributes(ctx))
	if len(ups) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, ups...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes", "error", err)
	}
}

// searchAttributeUpdates are the updates that bring current to the state:
// each attribute the workflow keeps whose value differs, and the live
// revision unset when nothing is served. The owner is the API's (the
// workflow knows only the owner's ID).
func (s *State) searchAttributeUpdates(current temporal.SearchAttributes) []temporal.SearchAttributeUpdate {
	var ups []temporal.SearchAttributeUpdate
	for _, kv := range []struct {
		key temporal.SearchAttributeKeyKeyword
		v   string
	}{
		{SearchAPIName, s.Spec.APIName}, {SearchEnvironment, s.Spec.Environment}, {SearchCompute, s.Spec.Compute},
		{SearchStep, s.Step}, {SearchStatus, s.Status},
	} {
		if old, ok := current.GetKeyword(kv.key); kv.v != "" && (!ok || old != kv.v) {
			ups = append(ups, kv.key.ValueSet(kv.v))
		}
	}
	old, ok := current.GetInt64(SearchLiveRevision)
	switch {
	case s.Status == StatusLive && s.Live != nil:
		if rev := int64(s.Live.CodeRevision); !ok || old != rev {
			ups = append(ups, SearchLiveRevision.ValueSet(rev))
		}
	case ok:
		ups = append(ups, SearchLiveRevision.ValueUnset())
	}
	return ups
}
