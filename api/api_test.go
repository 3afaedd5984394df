package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// concrete fills a route's parameters.
func concrete(path, id string) string {
	path = strings.ReplaceAll(path, ":id", id)
	path = strings.ReplaceAll(path, ":name", "curl")
	return strings.ReplaceAll(path, ":step", "provision")
}

func TestPublicRoutes(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/healthz", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "ok", jsonOf(t, w)["status"])

	w = e.do(http.MethodGet, "/api/ca.pem", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Contains(t, w.Body.String(), "BEGIN CERTIFICATE")

	w = e.do(http.MethodGet, "/api/openapi.json", "", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "3.0.3", jsonOf(t, w)["openapi"])

	requireError(t, e.do(http.MethodGet, "/nope", "", nil), http.StatusNotFound, "not_found")
	requireError(t, e.do(http.MethodPatch, "/healthz", "", nil), http.StatusMethodNotAllowed, "method_not_allowed")
}

func TestNoCAConfigured(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.CARootPEM = nil })
	requireError(t, e.do(http.MethodGet, "/api/ca.pem", "", nil), http.StatusNotFound, "not_found")
}

func TestAuthRequired(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	n := 0
	for _, r := range e.h.Routes() {
		if !strings.HasPrefix(r.Path, "/api/v1/") {
			continue
		}
		n++
		path := concrete(r.Path, id)
		for _, hdr := range [][]string{nil, {"Authorization", "Bearer nope"}, {"Authorization", "Basic dG9rQTo="}, {"Authorization", "Bearer "}} {
			w := e.do(r.Method, path, "", nil, hdr...)
			requireError(t, w, http.StatusUnauthorized, "unauthorized")
			require.NotEmpty(t, w.Header().Get("WWW-Authenticate"), "%s %s", r.Method, path)
		}
	}
	require.Greater(t, n, 10)
	require.Len(t, e.wf.calls, 0)
}

func TestOwnerIsolation(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.store.addEvent(id, "provision", "secret progress")
	queries := e.wf.queries
	n := 0
	for _, r := range e.h.Routes() {
		// The endpoints' routes (predictions) have their own owner checks,
		// tested end to end in integration/predictions_test.go.
		if !strings.Contains(r.Path, ":id") || strings.HasPrefix(r.Path, "/api/v1/endpoints/") {
			continue
		}
		n++
		w := e.do(r.Method, concrete(r.Path, id), "tokB", nil)
		m := requireError(t, w, http.StatusNotFound, "not_found")
		require.NotContains(t, w.Body.String(), "edges", "%s %s", r.Method, r.Path)
		require.Nil(t, m["step"])
	}
	require.Equal(t, 13, n) // every deployment route, GET .../code and .../code/file and .../webhook_secret included
	require.Equal(t, 0, e.wf.callCount(), "no update may reach another owner's workflow")
	require.Equal(t, queries, e.wf.queries, "no query may reach another owner's workflow")

	w := e.do(http.MethodGet, "/api/v1/deployments", "tokB", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Empty(t, jsonOf(t, w)["deployments"])
	// The owner still sees it.
	w = e.do(http.MethodGet, "/api/v1/deployments/"+id, "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
}

func TestMeAndTokens(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/api/v1/me", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, map[string]any{"id": "user-a", "name": "alice", "sandbox": "bwrap"}, jsonOf(t, w), "author code runs sandboxed unless the operator chose none")

	w = e.do(http.MethodPost, "/api/v1/tokens", "tokA", map[string]any{"name": "ci"})
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	tok := jsonOf(t, w)["token"].(string)
	w = e.do(http.MethodGet, "/api/v1/me", tok, nil)
	require.Equal(t, "user-a", jsonOf(t, w)["id"])

	m := requireError(t, e.do(http.MethodPost, "/api/v1/tokens", "tokA", map[string]any{"name": " "}), http.StatusBadRequest, "invalid_request")
	require.Equal(t, []string{"name"}, fieldNames(m))
}

func TestRequestLogsHaveNoTokens(t *testing.T) {
	e := newEnv(t)
	e.do(http.MethodGet, "/api/v1/me", "tokA", nil)
	e.do(http.MethodGet, "/api/v1/me?x=1", "tokSecretWrong", nil)
	w := e.do(http.MethodPost, "/api/v1/tokens", "tokA", map[string]any{"name": "ci"})
	plain := jsonOf(t, w)["token"].(string)
	logs := e.logs.String()
	require.Contains(t, logs, "level=INFO")
	require.Contains(t, logs, "path=/api/v1/me")
	require.Contains(t, logs, "status=401")
	for _, secret := range []string{"tokA", "tokSecretWrong", plain, "Bearer"} {
		require.NotContains(t, logs, secret)
	}
}

func TestPanicIsJSON500(t *testing.T) {
	e := newEnv(t)
	e.store.panicOnList = true
	requireError(t, e.do(http.MethodGet, "/api/v1/deployments", "tokA", nil), http.StatusInternalServerError, "internal")
	require.Contains(t, e.logs.String(), "handler panic")
}

func TestSkeleton(t *testing.T) {
	e := newEnv(t)
	w := e.do(http.MethodGet, "/api/v1/skeleton?input=image&output=image", "tokA", nil)
	require.Equal(t, http.StatusOK, w.Code)
	require.Equal(t, "text/x-python; charset=utf-8", w.Header().Get("Content-Type"))
	require.Contains(t, w.Body.String(), "class AlgoClass")

	m := requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?input=video&output=image", "tokA", nil), http.StatusBadRequest, "invalid_query")
	require.Equal(t, []string{"input"}, fieldNames(m))
	m = requireError(t, e.do(http.MethodGet, "/api/v1/skeleton", "tokA", nil), http.StatusBadRequest, "invalid_query")
	require.Equal(t, []string{"input", "output"}, fieldNames(m))
	requireError(t, e.do(http.MethodGet, "/api/v1/skeleton?input=json&output=file", "tokA", nil), http.StatusBadRequest, "unsupported_type")
}

// TestWebWizardIsMountedBesideTheAPI: the wizard answers its paths through
// NoRoute, never /api/... or /healthz, and adds no route to the API's table.
func TestWebWizardIsMountedBesideTheAPI(t *testing.T) {
	web := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("wizard " + r.Method + " " + r.URL.Path))
	})
	plain := newEnv(t)
	e := newEnv(t, func(c *Config) { c.Web = web })
	require.Equal(t, len(plain.h.Routes()), len(e.h.Routes()), "the wizard adds no API route")

	for _, p := range []string{"/", "/ui", "/ui/", "/ui/home", "/ui/deployments/x/test", "/ui/assets/app.js", "/favicon.ico"} {
		w := e.do(http.MethodGet, p, "", nil)
		require.Equal(t, http.StatusOK, w.Code, p)
		require.Equal(t, "wizard GET "+p, w.Body.String(), p)
	}
	require.Contains(t, e.do(http.MethodGet, "/healthz", "", nil).Body.String(), `"ok"`)
	for _, p := range []string{"/api", "/api/nope", "/api/v1/nope", "/uix", "/other"} {
		requireError(t, e.do(http.MethodGet, p, "", nil), http.StatusNotFound, "not_found")
	}
	requireError(t, e.do(http.MethodGet, "/api/v1/deployments", "", nil), http.StatusUnauthorized, "unauthorized")
	// Without a wizard, / is the API's JSON 404.
	requireError(t, plain.do(http.MethodGet, "/", "", nil), http.StatusNotFound, "not_found")
}
