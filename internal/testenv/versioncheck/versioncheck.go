// Package versioncheck holds the checks every package with Temporal
// workflows runs on its list of GetVersion changes (workflows and
// predictions each keep a Changes list in versions.go): every change ID
// the sources pass to workflow.GetVersion is listed once, and the replay
// corpus holds a history that took each change's new branch. Imported by
// tests only.
package versioncheck

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

// Change is one entry of a package's Changes list (its Change type
// converts to this one).
type Change struct {
	// ID is the change ID passed to workflow.GetVersion.
	ID string
	// Since is the day the change landed (YYYY-MM-DD).
	Since string
	// Why says what the new branch does that old histories did not.
	Why string
}

// Changes converts a package's Changes list (its Change type has Change's
// fields) to Changes.
func Changes[C ~struct{ ID, Since, Why string }](cs []C) []Change {
	out := make([]Change, len(cs))
	for i, c := range cs {
		out[i] = Change(c)
	}
	return out
}

var (
	getVersion = regexp.MustCompile(`GetVersion\(\w+, (\w+),`)
	changeDecl = regexp.MustCompile(`(?m)^const (change\w+) = "([^"]+)"`)
)

// EveryChangeListed checks that every change ID the Go sources in files
// (test files skipped) pass to workflow.GetVersion is a
// `const change... = "..."` declared in them and listed exactly once in
// changes, that each listed change has a Why and a Since date, and that
// changes lists none the sources do not use.
func EveryChangeListed(t testing.TB, files []string, changes []Change) {
	t.Helper()
	ids := map[string]string{} // const name -> change ID
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range changeDecl.FindAllStringSubmatch(string(b), -1) {
			ids[m[1]] = m[2]
		}
		for _, m := range getVersion.FindAllStringSubmatch(string(b), -1) {
			used[m[1]] = true
		}
	}
	require.NotEmpty(t, used)
	listed := map[string]int{}
	for _, c := range changes {
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

// CorpusCovers checks that, for every change in changes, some history in
// files (Temporal JSON histories) took its new branch, i.e. recorded a
// Version marker with its ID at a version other than DefaultVersion;
// without one, deleting or inverting the branch replays as well as before.
// It returns the workflow types the histories start, each with the files
// (base names) that start it.
func CorpusCovers(t testing.TB, files []string, changes []Change) map[string][]string {
	t.Helper()
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
	for _, c := range changes {
		require.NotEmpty(t, covered[c.ID], "no history in testdata/histories takes change %q's new branch (%s)", c.ID, c.Why)
		t.Logf("%s: %v", c.ID, covered[c.ID])
	}
	return types
}
