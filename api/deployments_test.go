package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/actdef"
)

func TestCreateDeployment(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodPost, "/api/v1/deployments", "tokA", validSpec("edges"))
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	m := jsonOf(t, w)
	id := m["id"].(string)
	require.Equal(t, "/api/v1/deployments/"+id, w.Header().Get("Location"))
	require.Equal(t, "edges", m["api_name"])
	require.Equal(t, workflows.WorkflowID(id), m["workflow_id"])
	require.Equal(t, "configured", m["step"])
	require.Equal(t, "draft", m["status"])
	require.Equal(t, "provision", m["next_step"])
	require.Len(t, m["steps"], len(workflows.Steps))
	// Defaults were applied before the row and the workflow saw the spec.
	require.Equal(t, "t3.small", m["spec"].(map[string]any)["instance_type"])

	require.Len(t, e.wf.started, 1)
	in := e.wf.started[0]
	require.Equal(t, id, in.DeploymentID)
	require.Equal(t, "user-a", in.OwnerID)
	require.Equal(t, spec.Spec{Name: "Edge detector", APIName: "edges", Environment: "python", Compute: "cpu",
		InstanceType: "t3.small", Region: "us-east-1", Threads: 1, Input: spec.Image, Output: spec.Image, Requirements: []string{}}, in.Spec)

	w = e.do(http.MethodGet, "/api/v1/deployments", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	list := jsonOf(t, w)["deployments"].([]any)
	require.Len(t, list, 1)
	require.Equal(t, id, list[0].(map[string]any)["id"])
}

func TestCreateValidationNamesFields(t *testing.T) {
	e := newEnv(t)
	body := map[string]any{"api_name": "Bad_Name", "input": "video", "output": "image", "threads": 500, "region": "mars-1"}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", body), http.StatusBadRequest, "invalid_spec")
	require.ElementsMatch(t, []string{"name", "api_name", "region", "threads", "input"}, fieldNames(m))
	require.Empty(t, e.wf.started)
	require.Empty(t, e.store.algs)

	m = requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", map[string]any{
		"name": "x", "api_name": "x", "input": "image", "output": "image", "requirements": []string{"ok==1", "--index-url http://evil"},
	}), http.StatusBadRequest, "invalid_spec")
	require.Equal(t, []string{"requirements[1]"}, fieldNames(m))
}

// A display name with control characters (a NUL, an ANSI escape that would
// recolour or clear an operator's terminal in algocloud ls) is refused,
// naming the field; nothing is created.
func TestCreateRefusesControlCharactersInName(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"seg\x00mentation", "\x1b[31mred\x1b[0m"} {
		body := validSpec("ctl")
		body["name"] = name
		m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", body), http.StatusBadRequest, "invalid_spec")
		require.Equal(t, []string{"name"}, fieldNames(m), "%q", name)
	}
	require.Empty(t, e.wf.started)
	require.Empty(t, e.store.algs)
}

func TestBadJSON(t *testing.T) {
	e := newEnv(t)
	body := validSpec("edges")
	body["colour"] = "blue"
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", body), http.StatusBadRequest, "unknown_field")
	require.Equal(t, []string{"colour"}, fieldNames(m))
	require.Contains(t, m["message"], "colour")

	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", `{"name": "x",`), http.StatusBadRequest, "invalid_json")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", `{"name": "x"} {"name": "y"}`), http.StatusBadRequest, "invalid_json")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", `not json`), http.StatusBadRequest, "invalid_json")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", ``), http.StatusBadRequest, "invalid_json")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", `[]`), http.StatusBadRequest, "invalid_json")
	m = requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", `{"threads": "four"}`), http.StatusBadRequest, "invalid_field")
	require.Equal(t, []string{"threads"}, fieldNames(m))
	require.Contains(t, m["message"], "a number")

	big := `{"description": "` + strings.Repeat("x", int(maxJSONBytes)) + `"}`
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", big), http.StatusRequestEntityTooLarge, "body_too_large")
	require.Empty(t, e.store.algs)
}

// TestCreatePublicMetrics: public_metrics is false unless asked for, reaches
// the workflow's spec when true, and a non-boolean is a 400 naming it.
func TestCreatePublicMetrics(t *testing.T) {
	e := newEnv(t)
	body := validSpec("edges")
	body["public_metrics"] = true
	w := e.do(http.MethodPost, "/api/v1/deployments", "tokA", body)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	require.Equal(t, true, jsonOf(t, w)["spec"].(map[string]any)["public_metrics"])
	require.True(t, e.wf.started[0].Spec.PublicMetrics)

	require.Equal(t, http.StatusCreated, e.do(http.MethodPost, "/api/v1/deployments", "tokA", validSpec("plain")).Code)
	require.False(t, e.wf.started[1].Spec.PublicMetrics, "private by default")

	body = validSpec("other")
	body["public_metrics"] = "yes"
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", body), http.StatusBadRequest, "invalid_field")
	require.Equal(t, []string{"public_metrics"}, fieldNames(m))
	require.Contains(t, m["message"], "true or false")
}

func TestCreateConflict(t *testing.T) {
	e := newEnv(t)
	e.create("tokA", "edges")
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokB", validSpec("edges")), http.StatusConflict, "api_name_taken")
	require.Equal(t, []string{"api_name"}, fieldNames(m))
	require.Len(t, e.wf.started, 1)
}

func TestCreateStartFailureFreesName(t *testing.T) {
	e := newEnv(t)
	e.wf.startErr = errors.New("connection refused")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments", "tokA", validSpec("edges")), http.StatusServiceUnavailable, "temporal_unavailable")
	w := e.do(http.MethodGet, "/api/v1/deployments", "tokA", nil)
	require.Empty(t, jsonOf(t, w)["deployments"])

	e.wf.startErr = nil
	e.create("tokA", "edges") // the name is free again
}

func TestGetDeployment(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	st := e.wf.states[id]
	st.Step, st.TokenSHA256 = workflows.StepTested, strings.Repeat("ab", 32)
	st.Test = &actdef.TestInfo{OK: true, Summary: "512x512 PNG"}
	e.wf.states[id] = st

	w := e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.NotContains(t, w.Body.String(), "token_sha256")
	require.NotContains(t, w.Body.String(), strings.Repeat("ab", 32))
	m := jsonOf(t, w)
	require.Equal(t, "tested", m["step"])
	require.Equal(t, "complete", m["next_step"])
	require.Equal(t, true, m["state"].(map[string]any)["test"].(map[string]any)["ok"])
	steps := m["steps"].([]any)
	require.Equal(t, map[string]any{"name": "test", "done": true}, steps[3])
	require.Equal(t, map[string]any{"name": "complete", "done": false}, steps[4])

	e.wf.stateErr = errors.New("deadline exceeded")
	w = e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	m = jsonOf(t, w)
	require.Nil(t, m["state"])
	require.NotEmpty(t, m["state_error"])
	require.Equal(t, "configured", m["step"]) // from the row

	requireError(t, e.do(http.MethodGet, "/api/v1/deployments/no-such-id", "tokA", nil), http.StatusNotFound, "not_found")
}

func TestUpdateSpec(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, _ string, arg any, st workflows.State) (workflows.State, error) {
		r := arg.(workflows.ConfigureRequest)
		if r.Spec.APIName != st.Spec.APIName {
			return st, rejected("api_name cannot change", st.Step, st.Status)
		}
		st.Spec = r.Spec
		return st, nil
	}
	body := validSpec("edges")
	body["threads"] = 4
	w := e.do(http.MethodPut, "/api/v1/deployments/"+id+"/spec", "tokA", body)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, 4, e.wf.lastCall(t).Arg.(workflows.ConfigureRequest).Spec.Threads)
	require.Equal(t, workflows.UpdateConfigure, e.wf.lastCall(t).Update)

	body["threads"] = 0
	body["compute"] = "tpu"
	m := requireError(t, e.do(http.MethodPut, "/api/v1/deployments/"+id+"/spec", "tokA", body), http.StatusBadRequest, "invalid_spec")
	require.Equal(t, []string{"compute"}, fieldNames(m))

	m = requireError(t, e.do(http.MethodPut, "/api/v1/deployments/"+id+"/spec", "tokA", validSpec("other")), http.StatusConflict, "step_rejected")
	require.Equal(t, "configured", m["step"])
	require.Equal(t, "draft", m["status"])
}

func TestDeleteDeployment(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(id, _ string, _ any, st workflows.State) (workflows.State, error) {
		st.Status, st.Step = workflows.StatusDeleted, workflows.StepDeleted
		_ = e.store.MarkDeleted(t.Context(), id) // the workflow's MarkDeleted activity
		return st, nil
	}
	w := e.do(http.MethodDelete, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m := jsonOf(t, w)
	require.Equal(t, "deleted", m["status"])
	require.Empty(t, m["next_step"])
	require.Equal(t, workflows.UpdateDelete, e.wf.lastCall(t).Update)
	requireError(t, e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil), http.StatusNotFound, "not_found")

	// A row whose workflow is gone is only hidden.
	id = e.create("tokA", "other")
	delete(e.wf.states, id)
	w = e.do(http.MethodDelete, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.True(t, e.store.deleted[id])
}

// The detail derives serving and staged from the workflow's state; the list
// answers the store's projection of them without querying any workflow;
// both are absent when nothing serves and nothing is staged.
func TestServingAndStagedInDetailAndList(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "seg")
	w := e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	m := jsonOf(t, w)
	require.NotContains(t, m, "serving")
	require.NotContains(t, m, "staged")

	since := time.Date(2026, 12, 6, 20, 0, 0, 0, time.UTC)
	code1 := actdef.CodeInfo{Revision: 1, Source: "git", Commit: "c1"}
	inst1 := actdef.InstallInfo{CodeRevision: 1, Revision: 1, Requirements: []string{"numpy"}}
	e.wf.mu.Lock()
	st := e.wf.states[id]
	st.Status, st.Step = workflows.StatusLive, workflows.StepInstalled
	st.Code = &actdef.CodeInfo{Revision: 2, Source: "git", Commit: "c2"}
	st.Install = &actdef.InstallInfo{CodeRevision: 2, Revision: 2}
	st.Live = &actdef.ServiceInfo{Endpoint: "https://127.0.0.1:9443", CodeRevision: 1, Since: since}
	st.Serving = &workflows.Serving{Code: code1, Install: inst1}
	e.wf.states[id] = st
	e.wf.mu.Unlock()
	w = e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.JSONEq(t, `{"code_revision":1,"commit":"c1","source":"git","install_revision":1,
		"requirements":["numpy"],"since":"2026-12-06T20:00:00Z","endpoint":"https://127.0.0.1:9443"}`,
		string(mustJSON(t, jsonOf(t, w)["serving"])))
	require.JSONEq(t, `{"code_revision":2,"commit":"c2","install_revision":2,"tested":false,"test_passed":false}`,
		string(mustJSON(t, jsonOf(t, w)["staged"])))

	// The list reads the row the workflow projected, byte for byte.
	e.store.mu.Lock()
	a := e.store.algs[id]
	a.Serving = json.RawMessage(`{"code_revision":1,"commit":"c1","install_revision":1,"requirements":[],"since":"2026-12-06T20:00:00Z","endpoint":"https://e"}`)
	a.Staged = json.RawMessage(`{"code_revision":2,"tested":true,"test_passed":true}`)
	e.store.algs[id] = a
	e.store.mu.Unlock()
	queries := e.wf.queries
	w = e.do(http.MethodGet, "/api/v1/deployments", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, queries, e.wf.queries, "the list queries no workflow")
	row := jsonOf(t, w)["deployments"].([]any)[0].(map[string]any)
	require.Equal(t, float64(1), row["serving"].(map[string]any)["code_revision"])
	require.Equal(t, "c1", row["serving"].(map[string]any)["commit"])
	require.Equal(t, true, row["staged"].(map[string]any)["test_passed"])

	// A workflow that does not answer: the detail falls back to the row's.
	e.wf.mu.Lock()
	e.wf.stateErr = errors.New("deadline exceeded")
	e.wf.mu.Unlock()
	w = e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	m = jsonOf(t, w)
	require.NotEmpty(t, m["state_error"])
	require.Equal(t, "https://e", m["serving"].(map[string]any)["endpoint"])
	require.Equal(t, float64(2), m["staged"].(map[string]any)["code_revision"])
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return b
}
