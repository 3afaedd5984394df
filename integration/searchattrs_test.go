package integration

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/converter"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/workflows"
)

// visibilityWait bounds each visibility poll: Temporal's visibility is
// eventually consistent, so a query may lag the step that changed it.
const visibilityWait = 30 * time.Second

// findByQuery polls the visibility store until query lists exactly the
// workflow wfID (or the deadline passes) and returns its search attributes
// decoded, or nil when it never showed.
func findByQuery(t *testing.T, p *platform.Platform, query, wfID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(visibilityWait)
	for {
		res, err := p.Client.ListWorkflow(context.Background(), &workflowservice.ListWorkflowExecutionsRequest{Query: query})
		require.NoError(t, err, query)
		if ex := res.GetExecutions(); len(ex) == 1 && ex[0].GetExecution().GetWorkflowId() == wfID {
			return searchAttrs(t, ex[0])
		}
		if time.Now().After(deadline) {
			t.Logf("%s: %d executions, not only %s, after %s", query, len(res.GetExecutions()), wfID, visibilityWait)
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// searchAttrs decodes an execution's Algocloud* search attributes (plain
// JSON: search attributes never pass through the payload codec).
func searchAttrs(t *testing.T, ex *workflowpb.WorkflowExecutionInfo) map[string]any {
	t.Helper()
	out := map[string]any{}
	dc := converter.GetDefaultDataConverter()
	for name, pl := range ex.GetSearchAttributes().GetIndexedFields() {
		if !strings.HasPrefix(name, "Algocloud") {
			continue
		}
		var v any
		require.NoError(t, dc.FromPayload(pl, &v), name)
		out[name] = v
	}
	return out
}

// TestSearchAttributesFindDeployments walks a deployment to live, stops it
// and deletes it, and at each point finds it with a visibility query by API
// name, owner, step, status and live revision (the SDK client, and the
// temporal CLI as an operator runs it). Its history goes to the replay
// corpus with ALGOCLOUD_CAPTURE_HISTORIES=1 (search-attributes-after.json,
// or -before.json with the code from before the change): it is captured
// before the assertions on what the workflow upserts, so the walk runs with
// the old code too.
func TestSearchAttributesFindDeployments(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, epToken := walk(t, c, "sattrs", "measurements", "json")
	wfID := workflows.WorkflowID(id)

	// What visibility answers at each point, checked after the capture.
	type seen struct {
		what  string
		attrs map[string]any
	}
	var got []seen
	look := func(what, query string) { got = append(got, seen{what, findByQuery(t, p, query, wfID)}) }

	look("live by api name", `AlgocloudApiName = "sattrs"`)
	look("live by owner, step, status and revision",
		`AlgocloudOwner = "dev" AND AlgocloudStep = "completed" AND AlgocloudStatus = "live" AND AlgocloudLiveRevision = 1`)
	// As an operator finds it (skipped where the CLI is not installed).
	t.Run("temporal CLI", func(t *testing.T) {
		bin := temporalCLI(t)
		out, err := exec.Command(bin, "workflow", "list", "--address", p.Temporal.HostPort(), "--namespace", "default",
			"--query", `AlgocloudApiName="sattrs" AND AlgocloudStatus="live"`).CombinedOutput()
		require.NoError(t, err, string(out))
		require.Contains(t, string(out), wfID, "temporal workflow list --query finds it by name and status")
	})

	require.Equal(t, http.StatusOK, c.Step(id, "stop", nil).Status)
	look("stopped", `AlgocloudApiName = "sattrs" AND AlgocloudStatus = "stopped"`)
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)
	look("deleted", `AlgocloudApiName = "sattrs" AND AlgocloudStep = "deleted" AND AlgocloudStatus = "deleted"`)

	markers := versionMarkers(t, decodedHistory(t, p, fetchHistory(t, p.Client, wfID)))
	name := "search-attributes-before.json"
	if slices.Contains(markers, "search-attributes") {
		name = "search-attributes-after.json"
	}
	h := captureHistory(t, p, wfID, name)
	require.Contains(t, versionMarkers(t, h), "search-attributes")

	static := map[string]any{"AlgocloudApiName": "sattrs", "AlgocloudOwner": "dev", "AlgocloudEnvironment": "python", "AlgocloudCompute": "cpu"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, v := range static {
			out[k] = v
		}
		for k, v := range m {
			out[k] = v
		}
		return out
	}
	live := with(map[string]any{"AlgocloudStep": "completed", "AlgocloudStatus": "live", "AlgocloudLiveRevision": float64(1)})
	want := []seen{
		{"live by api name", live},
		{"live by owner, step, status and revision", live},
		// Stopped: nothing serves, so no live revision.
		{"stopped", with(map[string]any{"AlgocloudStep": "completed", "AlgocloudStatus": "stopped"})},
		{"deleted", with(map[string]any{"AlgocloudStep": "deleted", "AlgocloudStatus": "deleted"})},
	}
	require.Equal(t, want, got)
	for _, s := range got {
		require.NotContains(t, fmt.Sprint(s.attrs), epToken, "no secret in search attributes")
	}

	// The workflow's upserts are commands in its history (GetVersion's own
	// TemporalChangeVersion upserts aside).
	var upserts int
	for _, ev := range h.GetEvents() {
		if _, ok := ev.GetUpsertWorkflowSearchAttributesEventAttributes().GetSearchAttributes().GetIndexedFields()["AlgocloudStep"]; ok {
			upserts++
		}
	}
	require.Positive(t, upserts)
}
