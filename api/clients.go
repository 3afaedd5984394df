package api

import (
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"

	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
	"github.com/algocloud/algocloud/workflows"
)

// clientsView is the generated clients of a deployment's endpoint.
type clientsView struct {
	// Endpoint is the base URL the clients call (POST Endpoint/predict).
	Endpoint string      `json:"endpoint"`
	Input    spec.IOType `json:"input"`
	Output   spec.IOType `json:"output"`
	// Status is the deployment's status: a stopped endpoint answers again after start.
	Status string `json:"status"`
	// CAURL is the root certificate the clients verify the endpoint with; absent
	// when endpoints have publicly trusted certificates.
	CAURL string `json:"ca_url,omitempty"`
	// TokenEnv is the environment variable the clients read the endpoint token from.
	TokenEnv string `json:"token_env"`
	// Order lists the clients' names in display order.
	Order   []string                    `json:"order"`
	Clients map[string]templates.Client `json:"clients"`
}

// listClients answers every generated client of the deployment's endpoint.
func (s *server) listClients(c *gin.Context) {
	v, ok := s.clients(c)
	if !ok {
		return
	}
	c.JSON(http.StatusOK, v)
}

// getClient downloads one generated client as a file.
func (s *server) getClient(c *gin.Context) {
	name := c.Param("name")
	if !isClientName(name) {
		writeError(c, errNotFound("no client named "+strconv.Quote(name)).with("clients", templates.ClientNames))
		return
	}
	v, ok := s.clients(c)
	if !ok {
		return
	}
	f := v.Clients[name]
	h := c.Writer.Header()
	h.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": f.Filename}))
	// A download, never a page of this origin (the jQuery client is HTML).
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	c.Data(http.StatusOK, f.ContentType, []byte(f.Content))
}

func isClientName(name string) bool {
	for _, n := range templates.ClientNames {
		if n == name {
			return true
		}
	}
	return false
}

// clients renders the deployment's clients from its workflow's state: the
// endpoint it serves and the API type of what it serves (which the working
// copy may since have changed). It answers the error itself when it cannot.
func (s *server) clients(c *gin.Context) (clientsView, bool) {
	a := deployment(c)
	st, err := s.state(c.Request.Context(), a.ID)
	if err != nil {
		s.workflowFailure(c, "query state", err)
		return clientsView{}, false
	}
	if st.Live == nil || st.Live.Endpoint == "" || st.Status == workflows.StatusDeleting || st.Status == workflows.StatusDeleted {
		msg := "the deployment has no endpoint yet: its clients exist once Complete Deployment has run (the deployment is at step " + st.Step + ")"
		if st.Status == workflows.StatusDeleting || st.Status == workflows.StatusDeleted {
			msg = "the deployment is being deleted: its endpoint is gone"
		}
		writeError(c, (&apiError{Code: errcode.NoEndpoint, Message: msg}).
			with("step", st.Step).with("status", st.Status))
		return clientsView{}, false
	}
	sp := st.Spec
	if st.Serving != nil {
		sp = st.Serving.Spec
	}
	d := templates.ClientData{
		Name: sp.Name, APIName: sp.APIName, Endpoint: st.Live.Endpoint, Input: sp.Input, Output: sp.Output,
		Environment: sp.Environment, MaxBatchSize: sp.MaxBatchSize, // the endpoint's OpenAPI document depends on them
	}
	if s.endpointCA {
		d.CAURL = requestBaseURL(c) + "/api/ca.pem"
	}
	files, err := templates.Clients(d)
	if err != nil {
		s.fail(c, "generate clients", err)
		return clientsView{}, false
	}
	return clientsView{
		Endpoint: strings.TrimRight(st.Live.Endpoint, "/"), Input: sp.Input, Output: sp.Output, Status: st.Status,
		CAURL: d.CAURL, TokenEnv: templates.TokenEnv, Order: templates.ClientNames, Clients: files,
	}, true
}

// requestBaseURL is the scheme and host this request reached the API at, as
// its client sees them (X-Forwarded-Proto from a TLS-terminating proxy).
// Whoever sets them only shapes the files they download themselves.
func requestBaseURL(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	if p := strings.ToLower(c.GetHeader("X-Forwarded-Proto")); p == "http" || p == "https" {
		scheme = p
	}
	return scheme + "://" + c.Request.Host
}
