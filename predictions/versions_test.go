package predictions

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/versioncheck"
)

// TestEveryChangeIsListed: every change ID the workflow passes to
// workflow.GetVersion is a const listed once in Changes.
func TestEveryChangeIsListed(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	versioncheck.EveryChangeListed(t, files, versioncheck.Changes(Changes))
}

// TestCorpusCoversEveryChange: for every change, a history in
// testdata/histories took its new branch (a Version marker with its ID), so
// dropping or inverting the branch fails TestReplayHistories.
func TestCorpusCoversEveryChange(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "histories", "*.json"))
	require.NoError(t, err)
	versioncheck.CorpusCovers(t, files, versioncheck.Changes(Changes))
}
