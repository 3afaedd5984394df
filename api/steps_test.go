package api

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/actdef"
)

func TestUnknownStepIs404WithCurrentStep(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/deploy", "tokA", nil), http.StatusNotFound, "unknown_step")
	require.Equal(t, "configured", m["step"])
	require.Equal(t, "draft", m["status"])
	require.Equal(t, []any{"provision", "fetch_code", "install_requirements", "test", "complete", "stop", "start"}, m["valid_steps"])
	// delete and configure have their own routes.
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/delete", "tokA", nil), http.StatusNotFound, "unknown_step")
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/configure", "tokA", nil), http.StatusNotFound, "unknown_step")
	require.Equal(t, 0, e.wf.callCount())
}

func TestStepSuccess(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, update string, _ any, st workflows.State) (workflows.State, error) {
		require.Equal(t, workflows.UpdateProvision, update)
		st.Step = workflows.StepProvisioned
		return st, nil
	}
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/provision", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m := jsonOf(t, w)
	require.Equal(t, "provisioned", m["step"])
	require.Equal(t, "fetch_code", m["next_step"])
	require.Equal(t, call{id, workflows.UpdateProvision, workflows.Empty{}}, e.wf.lastCall(t))

	// {} is the same as no body; anything else is refused.
	w = e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/provision", "tokA", `{}`)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m = requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/stop", "tokA", `{"force": true}`), http.StatusBadRequest, "unknown_field")
	require.Equal(t, []string{"force"}, fieldNames(m))
}

func TestStepRejectedIs409(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		return st, rejected("provision the server before fetching code", "configured", "draft")
	}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/test", "tokA", nil), http.StatusConflict, "step_rejected")
	require.Equal(t, "provision the server before fetching code", m["message"])
	require.Equal(t, "configured", m["step"])
	require.Equal(t, "draft", m["status"])
}

func TestStepFailedIs422(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		return st, failed("instance quota exceeded", workflows.UpdateProvision)
	}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/provision", "tokA", nil), http.StatusUnprocessableEntity, "step_failed")
	require.Equal(t, "instance quota exceeded", m["message"])
	require.Equal(t, "provision", m["failed_step"])
	require.Equal(t, "configured", m["step"])
	require.NotNil(t, m["deployment"])
}

func TestTemporalDownIs503(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		return st, errors.New("rpc error: code = Unavailable")
	}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/provision", "tokA", nil), http.StatusServiceUnavailable, "temporal_unavailable")
	require.NotContains(t, m["message"], "rpc error")
}

func TestTestFailedIs422WithTraceback(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	tb := "Traceback (most recent call last):\n  File \"aai_main.py\", line 9, in predict\nNameError: name 'np' is not defined"
	e.wf.onUpdate = func(_, _ string, arg any, st workflows.State) (workflows.State, error) {
		require.Equal(t, workflows.TestRequest{}, arg)
		st.Step = workflows.StepInstalled
		st.Test = &actdef.TestInfo{OK: false, Code: "predict_error", Message: "NameError: name 'np' is not defined", Traceback: tb}
		return st, nil
	}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/test", "tokA", nil), http.StatusUnprocessableEntity, "test_failed")
	require.Equal(t, "NameError: name 'np' is not defined", m["message"])
	require.Equal(t, tb, m["traceback"])
	require.Equal(t, "predict_error", m["test"].(map[string]any)["code"])
	require.Equal(t, "requirements_installed", m["step"])
	require.Equal(t, "test", m["deployment"].(map[string]any)["next_step"])
}

// A failed Test Code fails its update (the workflow records a failed step);
// the answer is still 422 test_failed with the traceback and the test's
// details, read from the state the failed step left.
func TestFailedTestStepIs422WithTraceback(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	tb := "Traceback (most recent call last):\n  File \"aai_main.py\", line 1, in <module>\nModuleNotFoundError: No module named 'skimage'"
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		st.Step = workflows.StepInstalled
		st.Test = &actdef.TestInfo{OK: false, Code: "import_error", Message: "import of aai_main.py failed: No module named 'skimage'", Traceback: tb}
		return st, failed("test failed: import of aai_main.py failed: No module named 'skimage'", workflows.UpdateTest)
	}
	m := requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/test", "tokA", nil), http.StatusUnprocessableEntity, "test_failed")
	require.Equal(t, "import of aai_main.py failed: No module named 'skimage'", m["message"])
	require.Equal(t, tb, m["traceback"])
	require.Equal(t, "import_error", m["test"].(map[string]any)["code"])
	require.Equal(t, "requirements_installed", m["step"])
	require.Equal(t, "test", m["deployment"].(map[string]any)["next_step"])

	// Another step's failure keeps its own shape, even with a failed test in the state.
	e.wf.onUpdate = func(_, _ string, _ any, st workflows.State) (workflows.State, error) {
		return st, failed("no space left on device", workflows.UpdateInstall)
	}
	m = requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/install_requirements", "tokA", nil), http.StatusUnprocessableEntity, "step_failed")
	require.Equal(t, "install_requirements", m["failed_step"])
}

func TestInstallRequirements(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/steps/install_requirements"
	m := requireError(t, e.do(http.MethodPost, path, "tokA", map[string]any{"requirements_txt": "numpy==1.26\n-e git+https://x\n"}), http.StatusBadRequest, "invalid_requirements")
	require.Equal(t, []string{"requirements[line 2]"}, fieldNames(m))
	requireError(t, e.do(http.MethodPost, path, "tokA", map[string]any{"requirements_txt": strings.Repeat("a\n", 40<<10)}), http.StatusBadRequest, "invalid_requirements")
	require.Equal(t, 0, e.wf.callCount())

	w := e.do(http.MethodPost, path, "tokA", map[string]any{"requirements_txt": "# models\nscikit-image==0.22\n"})
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	r := e.wf.lastCall(t).Arg.(workflows.InstallRequest)
	require.Equal(t, "# models\nscikit-image==0.22\n", *r.RequirementsTxt)

	w = e.do(http.MethodPost, path, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Nil(t, e.wf.lastCall(t).Arg.(workflows.InstallRequest).RequirementsTxt)
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// completing records the CompleteRequest hashes the workflow received.
func completing(e *env, hashes *[]string, fail *error) {
	e.wf.onUpdate = func(_, update string, arg any, st workflows.State) (workflows.State, error) {
		require.Equal(e.t, workflows.UpdateComplete, update)
		r := arg.(workflows.CompleteRequest)
		*hashes = append(*hashes, r.TokenSHA256)
		if *fail != nil {
			return st, *fail
		}
		st.TokenSHA256 = r.TokenSHA256
		st.Step, st.Status = workflows.StepCompleted, workflows.StatusLive
		st.Live = &actdef.ServiceInfo{Endpoint: "https://127.0.0.1:9443"}
		return st, nil
	}
}

func TestCompleteShowsTokenOnceAndStoresOnlyItsHash(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	var hashes []string
	var fail error
	completing(e, &hashes, &fail)
	path := "/api/v1/deployments/" + id + "/steps/complete"

	// A failed first completion stores nothing: its token was never shown.
	fail = failed("port in use", workflows.UpdateComplete)
	requireError(t, e.do(http.MethodPost, path, "tokA", nil), http.StatusUnprocessableEntity, "step_failed")
	require.Empty(t, e.store.hashes[id])
	fail = nil

	w := e.do(http.MethodPost, path, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m := jsonOf(t, w)
	token := m["token"].(string)
	require.True(t, strings.HasPrefix(token, "ep_"), token)
	require.Len(t, token, 3+43)
	require.Equal(t, "https://127.0.0.1:9443", m["endpoint"])
	require.Equal(t, "/api/ca.pem", m["ca_url"])
	require.Contains(t, m["token_note"], "only now")
	require.Equal(t, true, m["has_endpoint_token"])
	require.Equal(t, "completed", m["step"])
	require.Equal(t, "live", m["status"])
	require.NotContains(t, w.Body.String(), sha(token), "the hash is not for clients")

	require.Len(t, hashes, 2)
	require.Equal(t, sha(token), hashes[1])
	require.NotEqual(t, hashes[0], hashes[1])
	require.Equal(t, sha(token), e.store.hashes[id], "only the hash is stored")

	// Completing again keeps the token and does not show it.
	w = e.do(http.MethodPost, path, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m = jsonOf(t, w)
	require.Nil(t, m["token"])
	require.NotContains(t, w.Body.String(), token)
	require.Contains(t, m["token_note"], "existing token")
	require.Equal(t, sha(token), hashes[2])
}

// TestCompleteWithPublicEndpointCerts: with ACME certificates Complete's
// answer names no CA root, though /api/ca.pem still serves the platform's own.
func TestCompleteWithPublicEndpointCerts(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PublicEndpointCerts = true })
	id := e.create("tokA", "edges")
	var hashes []string
	var fail error
	completing(e, &hashes, &fail)
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/complete", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	m := jsonOf(t, w)
	require.True(t, strings.HasPrefix(m["token"].(string), "ep_"))
	require.Equal(t, "https://127.0.0.1:9443", m["endpoint"])
	require.NotContains(t, m, "ca_url", "clients verify a publicly trusted endpoint with the system's roots")
	require.NotContains(t, w.Body.String(), "ca.pem")

	w = e.do(http.MethodGet, "/api/ca.pem", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "BEGIN CERTIFICATE")
}

func TestRotateToken(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	var hashes []string
	var fail error
	completing(e, &hashes, &fail)
	first := jsonOf(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/complete", "tokA", nil))["token"].(string)

	// The rotation goes to the workflow (which pushes it to a live
	// endpoint) before the answer; the store keeps it for later Completes.
	var rotated []string
	var rotateErr error
	complete := e.wf.onUpdate
	e.wf.onUpdate = func(id, update string, arg any, st workflows.State) (workflows.State, error) {
		if update != workflows.UpdateRotateToken {
			return complete(id, update, arg, st)
		}
		r := arg.(workflows.RotateTokenRequest)
		rotated = append(rotated, r.TokenSHA256)
		if rotateErr != nil {
			return st, rotateErr
		}
		st.TokenSHA256 = r.TokenSHA256
		return st, nil
	}
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/token", "tokA", nil)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	second := jsonOf(t, w)["token"].(string)
	require.NotEqual(t, first, second)
	require.Equal(t, []string{sha(second)}, rotated)
	require.Equal(t, sha(second), e.store.hashes[id])
	require.Contains(t, jsonOf(t, w)["token_note"], "refuses the previous token")

	// Busy: 409, and nothing changes.
	rotateErr = &StepError{Kind: StepRejected, Message: "install_requirements is still running", Step: "tested", Status: "live"}
	requireError(t, e.do(http.MethodPost, "/api/v1/deployments/"+id+"/token", "tokA", nil), http.StatusConflict, "step_rejected")
	require.Len(t, rotated, 2)
	require.Equal(t, sha(second), e.store.hashes[id], "a refused rotation stores nothing")

	w = e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/complete", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Nil(t, jsonOf(t, w)["token"])
	require.Equal(t, sha(second), hashes[1], "a later completion keeps the rotated token")
}

func TestTestOutput(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/test/output"
	requireError(t, e.do(http.MethodGet, path, "tokA", nil), http.StatusNotFound, "no_test_output")

	out := filepath.Join(t.TempDir(), "output.png")
	require.NoError(t, os.WriteFile(out, []byte("\x89PNG fake"), 0o644))
	st := e.wf.states[id]
	st.Test = &actdef.TestInfo{OK: true, OutputFile: out, ContentType: "image/png"}
	e.wf.states[id] = st
	w := e.do(http.MethodGet, path, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "image/png", w.Header().Get("Content-Type"))
	require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "\x89PNG fake", w.Body.String())

	require.NoError(t, os.Remove(out))
	requireError(t, e.do(http.MethodGet, path, "tokA", nil), http.StatusNotFound, "no_test_output")
}

// TestTestOutputFromBlobs: the worker puts the output in the blob store and
// the state carries its key; the API streams it from there.
func TestTestOutputFromBlobs(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	path := "/api/v1/deployments/" + id + "/test/output"
	key := "tests/" + id + "/3/output.json"
	require.NoError(t, e.blobs.Put(t.Context(), key, strings.NewReader(`{"area":42}`), -1))
	st := e.wf.states[id]
	st.Test = &actdef.TestInfo{OK: true, OutputKey: key, ContentType: "application/json"}
	e.wf.states[id] = st
	w := e.do(http.MethodGet, path, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "application/json", w.Header().Get("Content-Type"))
	require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
	require.Equal(t, "sandbox", w.Header().Get("Content-Security-Policy"))
	require.Contains(t, w.Header().Get("Content-Disposition"), `filename=output.json`)
	require.Equal(t, `{"area":42}`, w.Body.String())

	require.NoError(t, e.blobs.Delete(t.Context(), "tests/"+id))
	m := requireError(t, e.do(http.MethodGet, path, "tokA", nil), http.StatusNotFound, "no_test_output")
	require.Contains(t, fmt.Sprint(m), "gone")
}

// TestFetchCodeUploadWithoutBlobs: a server without a blob store refuses
// uploads with 503 (Git still works).
func TestFetchCodeUploadWithoutBlobs(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Blobs = nil })
	id := e.create("tokA", "edges")
	body, ct := multipartBody(t, part{"archive", "code.zip", zipBytes(t)})
	w := e.do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/fetch_code", "tokA", body, "Content-Type", ct)
	requireError(t, w, http.StatusServiceUnavailable, "uploads_unavailable")
	require.Equal(t, 0, e.wf.callCount())
}
