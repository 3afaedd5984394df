package workflows

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"
)

// otherWorkflows are the folders of workflows outside this package whose
// GetVersion changes Changes lists too (their sources are read for the
// calls, their corpus for the markers): the Batch workflow's.
var otherWorkflows = []string{filepath.Join("..", "predictions", "batch")}

// TestEveryChangeIsListed: every change ID a workflow passes to
// workflow.GetVersion is in Changes, once, so versions.go stays the one
// place that says why each branch exists and when it may go.
func TestEveryChangeIsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	for _, dir := range otherWorkflows {
		more, err := filepath.Glob(filepath.Join(dir, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, more, dir)
		files = append(files, more...)
	}
	ids := map[string]string{} // const name -> change ID
	call := regexp.MustCompile(`GetVersion\(ctx, (\w+),`)
	decl := regexp.MustCompile(`(?m)^const (change\w+) = "([^"]+)"`)
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			ids[m[1]] = m[2]
		}
		for _, m := range call.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	require.NotEmpty(t, used)
	listed := map[string]int{}
	for _, c := range Changes {
		listed[c.ID]++
		require.NotEmpty(t, c.Why, c.ID)
		require.Regexp(t, `^\d{4}-\d{2}-\d{2}$`, c.Since, c.ID)
	}
	for name := range used {
		id, ok := ids[name]
		require.True(t, ok, "GetVersion's change ID %s is not a const change... = \"...\" declaration", name)
		require.Equal(t, 1, listed[id], "change %q (%s) must be listed once in versions.go's Changes", id, name)
	}
	require.Len(t, listed, len(used), "versions.go lists a change no workflow uses")
}

// TestCorpusCoversEveryChange: for every change in Changes, some history in
// the replay corpus (testdata/histories) took its new branch, i.e. recorded a
// Version marker with its ID; and one is a RenewCertificates run. Without
// such a history, deleting or inverting the branch replays as well as before
// and TestReplayHistories cannot catch it. A new change adds a history of a
// walk through its path (integration tests capture them with
// ALGOCLOUD_CAPTURE_HISTORIES=1).
func TestCorpusCoversEveryChange(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, dir := range otherWorkflows {
		more, err := filepath.Glob(filepath.Join(dir, "testdata", "histories", "*.json"))
		require.NoError(t, err)
		files = append(files, more...)
	}
	covered := map[string][]string{} // change ID -> files
	types := map[string][]string{}   // workflow type -> files
	dc := converter.GetDefaultDataConverter()
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		h, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
		require.NoError(t, err, f)
		name := filepath.Base(f)
		for _, ev := range h.GetEvents() {
			if s := ev.GetWorkflowExecutionStartedEventAttributes(); s != nil {
				types[s.GetWorkflowType().GetName()] = append(types[s.GetWorkflowType().GetName()], name)
			}
			m := ev.GetMarkerRecordedEventAttributes()
			if m == nil || m.GetMarkerName() != "Version" {
				continue
			}
			var id string
			var version workflow.Version
			require.NoError(t, dc.FromPayloads(m.GetDetails()["change-id"], &id), name)
			require.NoError(t, dc.FromPayloads(m.GetDetails()["version"], &version), name)
			if version != workflow.DefaultVersion {
				covered[id] = append(covered[id], name)
			}
		}
	}
	for _, c := range Changes {
		require.NotEmpty(t, covered[c.ID], "no history in testdata/histories takes change %q's new branch (%s)", c.ID, c.Why)
		t.Logf("%s: %v", c.ID, covered[c.ID])
	}
	require.NotEmpty(t, types["RenewCertificates"], "no RenewCertificates history in testdata/histories")
}
