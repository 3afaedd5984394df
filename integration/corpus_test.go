package integration

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/workflows"
)

// captureEnv names the variable that lets captureHistory add histories to
// the workflows package's replay corpus. Off by default, so a test run never
// rewrites what the corpus holds.
const captureEnv = "ALGOCLOUD_CAPTURE_HISTORIES"

// captureHistory fetches a workflow's history, decodes it with the
// platform's key and checks that it replays with the current code (Deployment
// and RenewCertificates registered, as TestReplayHistories does). With
// ALGOCLOUD_CAPTURE_HISTORIES=1 it also writes it to
// workflows/testdata/histories/<name>, unless that file exists: the corpus
// is append-only (a history captured with older code is what catches an edit
// that breaks running workflows; recapturing it with the new code would hide
// that), so an outdated file is removed by hand, on purpose. It returns the
// decoded history.
func captureHistory(t *testing.T, p *platform.Platform, workflowID, name string) *historypb.History {
	t.Helper()
	h := decodedHistory(t, p, fetchHistory(t, p.Client, workflowID))
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)

	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflow(workflows.Deployment)
	r.RegisterWorkflow(workflows.RenewCertificates)
	parsed, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, r.ReplayWorkflowHistory(nil, parsed), "%s replays with the current code", workflowID)

	if os.Getenv(captureEnv) != "1" {
		return h
	}
	path := filepath.Join(repoRoot(t), "workflows", "testdata", "histories", filepath.Base(name))
	if _, err := os.Stat(path); err == nil {
		t.Logf("%s exists: the corpus is append-only, not rewritten", path)
		return h
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, js, 0o644))
	t.Logf("captured %s (%d events) into %s", workflowID, len(h.Events), path)
	return h
}

// versionMarkers lists the change IDs a history's Version markers record
// with a version other than workflow.DefaultVersion: the changes whose new
// branch the run took.
func versionMarkers(t *testing.T, h *historypb.History) []string {
	t.Helper()
	dc := converter.GetDefaultDataConverter()
	var ids []string
	for _, ev := range h.Events {
		m := ev.GetMarkerRecordedEventAttributes()
		if m == nil || m.GetMarkerName() != "Version" {
			continue
		}
		var id string
		var v workflow.Version
		require.NoError(t, dc.FromPayloads(m.GetDetails()["change-id"], &id))
		require.NoError(t, dc.FromPayloads(m.GetDetails()["version"], &v))
		if v != workflow.DefaultVersion {
			ids = append(ids, id)
		}
	}
	return ids
}
