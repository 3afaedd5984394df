package predictions

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/versioncheck"
)

// changes is Changes for versioncheck.
func changes() []versioncheck.Change {
	var cs []versioncheck.Change
	for _, c := range Changes {
		cs = append(cs, versioncheck.Change(c))
	}
	return cs
}

// TestEveryChangeIsListed: every change ID the workflow passes to
// workflow.GetVersion is a const listed once in Changes.
func TestEveryChangeIsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	versioncheck.EveryChangeListed(t, files, changes())
}

// TestCorpusCoversEveryChange: for every change, a history in
// testdata/histories took its new branch (a Version marker with its ID), so
// dropping or inverting the branch fails TestReplayHistories.
func TestCorpusCoversEveryChange(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	versioncheck.CorpusCovers(t, files, changes())
}
