package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/workflows"
)

// TestStepOutcomes walks a deployment through the paths issue 8 found wrong:
// a failing Test Code, then new requirements and a passing test on a live
// deployment, then Delete. With ALGOCLOUD_CAPTURE_HISTORY=<file name> it
// writes the workflow's history to workflows/testdata/histories/<file name>
// (the replay corpus), before asserting anything the change under test
// decides, so the same walk captures the history of the code before a change
// and after it.
func TestStepOutcomes(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, _ := walk(t, c, "outcomes", "segmentation", "image")
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	newCode := func(main string) resp {
		t.Helper()
		commit(t, repo, map[string]string{"aai_main.py": main})
		for _, s := range []struct {
			name string
			body any
		}{{"fetch_code", map[string]any{"git_url": repo, "ref": "main"}}, {"install_requirements", nil}} {
			r := c.Step(id, s.name, s.body)
			require.Equal(t, http.StatusOK, r.Status, "%s: %s", s.name, r.Raw)
		}
		return c.Step(id, "test", nil)
	}

	// A failing test on a live deployment.
	failed := newCode(strings.Replace(brokenMain,
		"return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:",
		"raise ValueError('threshold out of range: %d' % x.shape[0])", 1))
	require.Equal(t, http.StatusUnprocessableEntity, failed.Status, string(failed.Raw))
	afterFail := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)

	// Fixed code passes and completes.
	r := newCode(strings.Replace(brokenMain,
		"return x / 0 if x.mean() >= 0 else x  # numpy warns, so fail explicitly:", "return 255 - x", 1))
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	// Add More Dependencies on the live deployment, then a passing test: the
	// endpoint still serves the previous install.
	r = c.Step(id, "install_requirements", map[string]any{"requirements_txt": "# no extra packages\n"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	tested := c.Step(id, "test", nil)
	require.Equal(t, http.StatusOK, tested.Status, string(tested.Raw))
	listed := c.Do(http.MethodGet, "/api/v1/deployments", nil)
	require.Equal(t, http.StatusOK, listed.Status, string(listed.Raw))

	// Completing again serves the new install.
	completed := c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, completed.Status, string(completed.Raw))
	require.Equal(t, http.StatusOK, c.Do(http.MethodDelete, "/api/v1/deployments/"+id, nil).Status)

	history := decodedHistory(t, p, fetchHistory(t, p.Client, workflows.WorkflowID(id)))
	if name := os.Getenv("ALGOCLOUD_CAPTURE_HISTORY"); name != "" {
		js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(history)
		require.NoError(t, err)
		path := filepath.Join(repoRoot(t), "workflows", "testdata", "histories", filepath.Base(name))
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, js, 0o644))
	}

	// A failed test is a failed step: 422 with the traceback, a history
	// record ok:false, last_error, and the update's outcome a failure.
	require.Equal(t, "test_failed", failed.Str("code"), string(failed.Raw))
	require.Contains(t, failed.Str("traceback"), "ValueError", string(failed.Raw))
	require.Contains(t, failed.Str("message"), "threshold out of range: 8", string(failed.Raw))
	require.Equal(t, "requirements_installed", failed.Str("step"), string(failed.Raw))
	st, _ := afterFail.Body["state"].(map[string]any)
	require.NotNil(t, st, string(afterFail.Raw))
	hist, _ := st["history"].([]any)
	require.NotEmpty(t, hist, string(afterFail.Raw))
	last := hist[len(hist)-1].(map[string]any)
	require.Equal(t, "test", last["step"], string(afterFail.Raw))
	require.Equal(t, false, last["ok"], "a failed test is recorded as failed: %s", afterFail.Raw)
	require.Equal(t, "test", afterFail.Str("state", "last_error", "step"), string(afterFail.Raw))
	require.Equal(t, false, st["test"].(map[string]any)["ok"], "the state keeps the failed result")
	require.Equal(t, []bool{true, false, true, true}, testUpdateOutcomes(t, history),
		"walk's test passed, the broken code's failed, the fixed code's and the live one's passed")

	// New requirements on the live deployment, tested: tested, Complete next,
	// in the detail and in the list, until Complete serves them.
	require.Equal(t, "tested", tested.Str("step"), string(tested.Raw))
	require.Equal(t, "live", tested.Str("status"), string(tested.Raw))
	require.Equal(t, "complete", tested.Str("next_step"), string(tested.Raw))
	var row map[string]any
	for _, d := range listed.Body["deployments"].([]any) {
		if d.(map[string]any)["id"] == id {
			row = d.(map[string]any)
		}
	}
	require.NotNil(t, row, string(listed.Raw))
	require.Equal(t, "tested", row["step"], string(listed.Raw))
	require.Equal(t, "completed", completed.Str("step"), string(completed.Raw))
}

// testUpdateOutcomes lists whether each test update in a workflow history
// succeeded, from its WorkflowExecutionUpdateCompleted event's outcome (what
// the Temporal UI colours).
func testUpdateOutcomes(t *testing.T, h *historypb.History) []bool {
	t.Helper()
	names := map[string]string{}
	var out []bool
	for _, ev := range h.Events {
		if acc := ev.GetWorkflowExecutionUpdateAcceptedEventAttributes(); acc != nil {
			names[acc.GetAcceptedRequest().GetMeta().GetUpdateId()] = acc.GetAcceptedRequest().GetInput().GetName()
		}
		if done := ev.GetWorkflowExecutionUpdateCompletedEventAttributes(); done != nil && names[done.GetMeta().GetUpdateId()] == "test" {
			out = append(out, done.GetOutcome().GetFailure() == nil)
		}
	}
	return out
}

// TestKillDevDuringDeleteThenRestart kills the real `algocloud dev` with
// SIGKILL while DELETE tears a live deployment down, starts it again on the
// same data, and expects the list and the detail to agree throughout (the
// list read the store's `live` until the teardown ended, for minutes when a
// worker died) and the deletion to finish by itself within the heartbeat
// timeout and a retry, not a 5-minute time limit.
func TestKillDevDuringDeleteThenRestart(t *testing.T) {
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDev(t, data, apiPort, temporalPort)
	c := testenv.NewAPIClient(t, d.api, d.token)
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "doomed", "api_name": "doomed", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	throughTest(t, c, id, gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation")))
	require.Equal(t, http.StatusOK, c.Step(id, "complete", nil).Status)

	// status reads the detail, then the list's row ("" when it is gone).
	status := func() (detail, listed string) {
		det := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
		if det.Status == http.StatusOK {
			detail = det.Str("status")
		}
		list := c.Do(http.MethodGet, "/api/v1/deployments", nil)
		rows, _ := list.Body["deployments"].([]any)
		for _, row := range rows {
			if m := row.(map[string]any); m["id"] == id {
				listed, _ = m["status"].(string)
			}
		}
		return detail, listed
	}
	go func() { // this request dies with the process; the deletion must not
		_, _, _ = testenv.TryAPI(d.api, d.token, http.MethodDelete, "/api/v1/deployments/"+id, nil)
	}()
	var det, listed string
	require.Eventually(t, func() bool {
		det, listed = status()
		return det != "live"
	}, time.Minute, 5*time.Millisecond)
	require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
	<-d.Done()
	t.Logf("killed with the detail %q and the list %q", det, listed)
	require.NotEqual(t, "live", listed, "the list says live while the detail says %s", det)

	d2 := startDev(t, data, apiPort, temporalPort)
	c.Base = d2.api
	defer func() {
		_ = d2.Cmd.Process.Signal(os.Interrupt)
		<-d2.Done()
	}()
	restarted := time.Now()
	var disagree string
	require.Eventually(t, func() bool {
		det, listed := status()
		if listed == "live" || (det != "" && listed != "" && det != listed) {
			disagree = "the detail says " + det + ", the list " + listed
			return true
		}
		return listed == ""
	}, 90*time.Second, 200*time.Millisecond, "the deletion finishes after the restart")
	require.Empty(t, disagree, "list and detail disagree")
	t.Logf("deleted %s after the restart", time.Since(restarted).Round(time.Second))
	require.Equal(t, 0, countServers(t, data), "the server is released")
	// The API name is free again.
	r = c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "again", "api_name": "doomed", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
}
