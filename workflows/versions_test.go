package workflows

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestEveryChangeIsListed: every change ID a workflow passes to
// workflow.GetVersion is in Changes, once, so versions.go stays the one
// place that says why each branch exists and when it may go.
func TestEveryChangeIsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	call := regexp.MustCompile(`GetVersion\(ctx, (\w+),`)
	decl := regexp.MustCompile(`(?m)^const (change\w+) = "([^"]+)"`)
	ids := map[string]string{} // const name -> change ID
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
