package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	// Registers the endpoints' OpenAPI generator with templates.Clients, as
	// internal/platform does for the running API (the api package itself
	// must not link the inference server: ONNX Runtime is cgo).
	_ "github.com/algocloud/algocloud/inference"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
	"github.com/algocloud/algocloud/workflows"

	"github.com/algocloud/algocloud/activities/actdef"
)

// goLive makes the fake workflow of id completed and serving sp at endpoint.
func (e *env) goLive(id, endpoint string, sp spec.Spec, status string) {
	e.t.Helper()
	e.wf.mu.Lock()
	defer e.wf.mu.Unlock()
	st, ok := e.wf.states[id]
	require.True(e.t, ok)
	st.Step, st.Status = workflows.StepCompleted, status
	st.Live = &actdef.ServiceInfo{Endpoint: endpoint}
	st.Serving = &workflows.Serving{Spec: sp.WithDefaults()}
	e.wf.states[id] = st
}

// clientsOf decodes GET .../clients.
func clientsOf(t *testing.T, w interface{ Result() *http.Response }, body []byte) clientsView {
	t.Helper()
	require.Equal(t, http.StatusOK, w.Result().StatusCode, "body: %s", body)
	var v clientsView
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	return v
}

func TestClientsBeforeEndpoint(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	for _, path := range []string{"/api/v1/deployments/" + id + "/clients", "/api/v1/deployments/" + id + "/clients/curl"} {
		m := requireError(t, e.do(http.MethodGet, path, "tokA", nil), http.StatusConflict, "no_endpoint")
		require.Equal(t, workflows.StepConfigured, m["step"])
		require.Equal(t, workflows.StatusDraft, m["status"])
		require.Contains(t, m["message"], "Complete Deployment")
	}
}

func TestClientsOfLiveEndpoint(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	// The working copy moved on to image->json; the endpoint still serves image->image.
	served := spec.Spec{Name: "Edge detector", APIName: "edges", Input: spec.Image, Output: spec.Image}
	e.goLive(id, "https://127.0.0.1:9443", served, workflows.StatusLive)
	e.wf.mu.Lock()
	st := e.wf.states[id]
	st.Spec.Output = spec.JSON
	e.wf.states[id] = st
	e.wf.mu.Unlock()

	w := e.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", "tokA", nil)
	v := clientsOf(t, w, w.Body.Bytes())
	require.Equal(t, "https://127.0.0.1:9443", v.Endpoint)
	require.Equal(t, spec.Image, v.Input)
	require.Equal(t, spec.Image, v.Output, "the clients follow what the endpoint serves")
	require.Equal(t, workflows.StatusLive, v.Status)
	require.Equal(t, "http://example.com/api/ca.pem", v.CAURL, "the CA URL is absolute, on the host the caller used")
	require.Equal(t, templates.TokenEnv, v.TokenEnv)
	require.Equal(t, templates.ClientNames, v.Order)

	want, err := templates.Clients(templates.ClientData{Name: "Edge detector", APIName: "edges", Endpoint: "https://127.0.0.1:9443",
		Input: spec.Image, Output: spec.Image, CAURL: "http://example.com/api/ca.pem"})
	require.NoError(t, err)
	require.Equal(t, want, v.Clients)
	require.Contains(t, v.Clients[templates.ClientCurl].Content, "--cacert algocloud-ca.pem")
	require.Contains(t, v.Clients[templates.ClientCurl].Content, "-o output.png")

	// Each one downloads as a file, byte for byte what the list holds.
	for name, c := range v.Clients {
		w := e.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients/"+name, "tokA", nil)
		require.Equal(t, http.StatusOK, w.Code, "%s: %s", name, w.Body.String())
		require.Equal(t, c.ContentType, w.Header().Get("Content-Type"), name)
		require.Equal(t, `attachment; filename=`+quoteIfNeeded(c.Filename), w.Header().Get("Content-Disposition"), name)
		require.Equal(t, "nosniff", w.Header().Get("X-Content-Type-Options"))
		require.Equal(t, "sandbox", w.Header().Get("Content-Security-Policy"))
		require.Equal(t, c.Content, w.Body.String(), name)
	}
}

// quoteIfNeeded mirrors mime.FormatMediaType: tokens stay bare.
func quoteIfNeeded(s string) string {
	if strings.ContainsAny(s, " ()<>@,;:\\\"/[]?=") {
		return `"` + s + `"`
	}
	return s
}

func TestClientsForwardedProtoAndNoCA(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.goLive(id, "https://127.0.0.1:9443/", spec.Spec{Name: "E", APIName: "edges", Input: spec.Image, Output: spec.JSON}, workflows.StatusStopped)
	w := e.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", "tokA", nil, "X-Forwarded-Proto", "https")
	v := clientsOf(t, w, w.Body.Bytes())
	require.Equal(t, "https://example.com/api/ca.pem", v.CAURL)
	require.Equal(t, "https://127.0.0.1:9443", v.Endpoint)
	require.Equal(t, workflows.StatusStopped, v.Status, "a stopped endpoint keeps its clients")

	noCA := newEnv(t, func(c *Config) { c.CARootPEM = nil })
	id = noCA.create("tokA", "edges")
	noCA.goLive(id, "https://edges.example.com", spec.Spec{Name: "E", APIName: "edges", Input: spec.Image, Output: spec.JSON}, workflows.StatusLive)
	w = noCA.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", "tokA", nil)
	v = clientsOf(t, w, w.Body.Bytes())
	require.Empty(t, v.CAURL)
	require.NotContains(t, w.Body.String(), "cacert")
	require.NotContains(t, v.Clients[templates.ClientPython].Content, "algocloud-ca.pem")
}

// TestClientsWithPublicEndpointCerts: with ACME certificates the clients
// name no CA root (system roots); with the local CA (the same API, the flag
// off) they do.
func TestClientsWithPublicEndpointCerts(t *testing.T) {
	served := spec.Spec{Name: "Edge detector", APIName: "edges", Input: spec.Image, Output: spec.Image}
	for _, public := range []bool{true, false} {
		e := newEnv(t, func(c *Config) { c.PublicEndpointCerts = public })
		id := e.create("tokA", "edges")
		e.goLive(id, "https://edges.api.example.com", served, workflows.StatusLive)
		w := e.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", "tokA", nil)
		v := clientsOf(t, w, w.Body.Bytes())
		curl := v.Clients[templates.ClientCurl].Content
		py := v.Clients[templates.ClientPython].Content
		example := v.Clients[templates.ClientPythonExample].Content
		page := v.Clients[templates.ClientJQuery].Content
		if !public {
			require.Equal(t, "http://example.com/api/ca.pem", v.CAURL)
			require.Contains(t, curl, "--cacert algocloud-ca.pem")
			require.Contains(t, py, `CA_URL = "http://example.com/api/ca.pem"`)
			require.Contains(t, example, `ca="algocloud-ca.pem"`)
			require.Contains(t, page, "its root certificate")
			continue
		}
		require.Empty(t, v.CAURL)
		_, ok := jsonOf(t, w)["ca_url"]
		require.False(t, ok, "no ca_url in the answer")
		require.NotContains(t, w.Body.String(), "ca.pem", "no client names the local CA")
		require.NotContains(t, curl, "--cacert")
		require.Contains(t, curl, "'https://edges.api.example.com/predict'")
		require.Contains(t, py, "CA_URL = None  # the endpoint's certificate is publicly trusted")
		require.Contains(t, py, "algo = Algorithm(ENDPOINT, ca=None)")
		require.NotContains(t, example, "ca=")
		require.NotContains(t, page, "root certificate")
		require.NotContains(t, v.Clients[templates.ClientOpenAPI].Content, "platform's CA")
		want, err := templates.Clients(templates.ClientData{Name: "Edge detector", APIName: "edges",
			Endpoint: "https://edges.api.example.com", Input: spec.Image, Output: spec.Image})
		require.NoError(t, err)
		require.Equal(t, want, v.Clients)

		// The downloads are the same files.
		w = e.do(http.MethodGet, "/api/v1/deployments/"+id+"/clients/curl", "tokA", nil)
		require.Equal(t, http.StatusOK, w.Code, w.Body.String())
		require.Equal(t, curl, w.Body.String())
	}
}

func TestClientsErrors(t *testing.T) {
	e := newEnv(t)
	id := e.create("tokA", "edges")
	e.goLive(id, "https://127.0.0.1:9443", spec.Spec{Name: "E", APIName: "edges", Input: spec.Image, Output: spec.Image}, workflows.StatusLive)
	base := "/api/v1/deployments/" + id + "/clients"

	requireError(t, e.do(http.MethodGet, base, "", nil), http.StatusUnauthorized, "unauthorized")
	requireError(t, e.do(http.MethodGet, base, "tokB", nil), http.StatusNotFound, "not_found")
	requireError(t, e.do(http.MethodGet, base+"/curl", "tokB", nil), http.StatusNotFound, "not_found")
	m := requireError(t, e.do(http.MethodGet, base+"/java", "tokA", nil), http.StatusNotFound, "not_found")
	require.Len(t, m["clients"], len(templates.ClientNames))
	requireError(t, e.do(http.MethodPost, base, "tokA", nil), http.StatusMethodNotAllowed, "method_not_allowed")

	e.wf.mu.Lock()
	e.wf.stateErr = context.DeadlineExceeded
	e.wf.mu.Unlock()
	requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusServiceUnavailable, "temporal_unavailable")
	e.wf.mu.Lock()
	e.wf.stateErr = errors.Join(ErrWorkflowNotFound)
	e.wf.mu.Unlock()
	requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusNotFound, "workflow_not_found")
	e.wf.mu.Lock()
	e.wf.stateErr = nil
	st := e.wf.states[id]
	st.Status = workflows.StatusDeleting
	e.wf.states[id] = st
	e.wf.mu.Unlock()
	m = requireError(t, e.do(http.MethodGet, base, "tokA", nil), http.StatusConflict, "no_endpoint")
	require.Contains(t, m["message"], "deleted")
}

// TestOpenAPIValidKin validates the API's own document with kin-openapi, as
// the endpoints' documents are (templates).
func TestOpenAPIValidKin(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(context.Background()))
}
