package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/apiclient"
)

// ls's table and show's lines say what serves (revision, commit, install,
// since) and what is staged, and "-" / "nothing" when neither exists. The
// integration test TestRedeployShowsServingAndStaged checks the same
// against a real platform.
func TestListAndDetailShowServingAndStaged(t *testing.T) {
	since := time.Date(2026, 12, 6, 20, 15, 0, 0, time.Local)
	live := apiclient.Deployment{ID: "d1", APIName: "seg", Name: "Seg", Step: "tested", Status: "live",
		Endpoint: "https://127.0.0.1:9443",
		Serving: &apiclient.ServingRevision{CodeRevision: 1, Commit: "3f2a1bc9d0e1", Source: "git", InstallRevision: 1,
			Requirements: []string{"numpy==2.0"}, Since: since, Endpoint: "https://127.0.0.1:9443"},
		Staged: &apiclient.StagedRevision{CodeRevision: 2, Commit: "77aa00", InstallRevision: 2, Tested: true, TestPassed: true}}
	draft := apiclient.Deployment{ID: "d2", APIName: "up", Name: "Up", Step: "code_fetched", Status: "draft",
		Staged: &apiclient.StagedRevision{CodeRevision: 1}}
	var b bytes.Buffer
	require.NoError(t, printList(&b, []apiclient.Deployment{live, draft}))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	require.Len(t, lines, 3)
	require.Regexp(t, `SERVING\s+SINCE\s+STAGED`, lines[0])
	require.Regexp(t, `live\s+r1 3f2a1bc i1\s+2026-12-06 20:15\s+r2 i2 test passed\s+https://127.0.0.1:9443`, lines[1])
	require.Regexp(t, `draft\s+-\s+-\s+r1 not installed\s+-`, lines[2])

	b.Reset()
	require.NoError(t, printDetail(&b, apiclient.DeploymentDetail{Deployment: live, NextStep: "complete"}))
	out := b.String()
	require.Regexp(t, `Serving\s+code revision 1 \(commit 3f2a1bc9d0e1\), install revision 1\n`, out)
	require.Regexp(t, `since\s+2026-12-06 20:15:00`, out)
	require.Regexp(t, `requirements\s+numpy==2.0\n`, out)
	require.Regexp(t, `Staged\s+code revision 2 \(commit 77aa00\), install revision 2: Test Code passed; Complete serves it\n`, out)
	require.Regexp(t, `Next step\s+complete`, out)

	b.Reset()
	require.NoError(t, printDetail(&b, apiclient.DeploymentDetail{Deployment: apiclient.Deployment{ID: "d3", Status: "stopped"}}))
	require.Regexp(t, `Serving\s+nothing\n`, b.String())
	require.Regexp(t, `Staged\s+nothing`, b.String())
}
