package predictions

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

// TestEveryChangeIsListed: every change ID the workflow passes to
// workflow.GetVersion is a const listed once in Changes.
func TestEveryChangeIsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	call := regexp.MustCompile(`GetVersion\(\w+, (\w+),`)
	decl := regexp.MustCompile(`(?m)^const (change\w+) = "([^"]+)"`)
	ids := map[string]string{}
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

// TestCorpusCoversEveryChange: for every change, a history in
// testdata/histories took its new branch (a Version marker with its ID), so
// dropping or inverting the branch fails TestReplayHistories.
func TestCorpusCoversEveryChange(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	covered := map[string][]string{}
	dc := converter.GetDefaultDataConverter()
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		h, err := client.HistoryFromJSON(bytes.NewReader(b), client.HistoryJSONOptions{})
		require.NoError(t, err, f)
		for _, ev := range h.GetEvents() {
			m := ev.GetMarkerRecordedEventAttributes()
			if m == nil || m.GetMarkerName() != "Version" {
				continue
			}
			var id string
			var version workflow.Version
			require.NoError(t, dc.FromPayloads(m.GetDetails()["change-id"], &id), f)
			require.NoError(t, dc.FromPayloads(m.GetDetails()["version"], &version), f)
			if version != workflow.DefaultVersion {
				covered[id] = append(covered[id], filepath.Base(f))
			}
		}
	}
	for _, c := range Changes {
		require.NotEmpty(t, covered[c.ID], "no history in testdata/histories takes change %q's new branch (%s)", c.ID, c.Why)
	}
}
