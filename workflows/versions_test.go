package workflows

import (
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv/versioncheck"
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
	versioncheck.EveryChangeListed(t, files, versioncheck.Changes(Changes))
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
	types := versioncheck.CorpusCovers(t, files, versioncheck.Changes(Changes))
	require.NotEmpty(t, types["RenewCertificates"], "no RenewCertificates history in testdata/histories")
}
