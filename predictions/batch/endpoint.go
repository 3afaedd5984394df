package batch

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/store"
)

// HTTPEndpoint calls deployments' endpoints over HTTPS with the platform
// caller token. The address is read from the store (the Deployment
// workflow projects its endpoint there) at every call, so an endpoint
// that moved after a restart is found again.
type HTTPEndpoint struct {
	// Algorithms gives a deployment's endpoint address.
	Algorithms interface {
		GetAlgorithmByID(ctx context.Context, id string) (store.Algorithm, error)
	}
	// Token returns the platform caller token of a deployment (derived,
	// never stored or put in a workflow's history).
	Token func(deploymentID string) string
	// Client sends the calls; its transport verifies the endpoints'
	// certificates (NewHTTPClient).
	Client *http.Client
	// MaxResponseBytes caps an answer; 0 is call.DefaultMaxResponseBytes.
	MaxResponseBytes int64
}

// NewHTTPClient is a client for HTTPEndpoint: call.NewClient (verifying
// endpoints with roots, nil for the system's), keeping enough idle
// connections per endpoint for a batch's concurrency, and ending a predict
// after timeout.
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	hc := call.NewClient(roots)
	hc.Timeout = timeout
	if tr, ok := hc.Transport.(*http.Transport); ok {
		tr.MaxIdleConnsPerHost = MaxConcurrency
	}
	return hc
}

// errNoEndpoint is a deployment that has no endpoint at the moment
// (stopping, restarting): waited for like a refused connection.
type errNoEndpoint struct{ msg string }

func (e *errNoEndpoint) Error() string { return e.msg }

// Predict posts body to the deployment's /predict once.
func (h *HTTPEndpoint) Predict(ctx context.Context, deploymentID string, body []byte, contentType string) (Response, error) {
	alg, err := h.Algorithms.GetAlgorithmByID(ctx, deploymentID)
	if err != nil {
		return Response{}, fmt.Errorf("resolve endpoint of %s: %w", deploymentID, err)
	}
	if alg.DeletedAt != nil {
		return Response{}, fmt.Errorf("deployment %s is deleted", deploymentID)
	}
	if !strings.HasPrefix(alg.Endpoint, "https://") {
		return Response{}, &errNoEndpoint{fmt.Sprintf("deployment %s has no endpoint now (status %s)", deploymentID, alg.Status)}
	}
	r, err := call.Do(ctx, h.Client, call.Target{URL: strings.TrimRight(alg.Endpoint, "/"), Token: h.Token(deploymentID)},
		call.Request{Body: body, ContentType: contentType, MaxResponseBytes: h.MaxResponseBytes})
	var se *call.StatusError
	if err != nil && !errors.As(err, &se) {
		return Response{}, err
	}
	// An answer, 2xx or not: the chunk decides what each status means.
	return Response{Status: r.Status, ContentType: r.ContentType, Body: r.Body, Header: r.Header}, nil
}

// Retryable reports whether err means the endpoint gave no answer
// (call.Retryable), or there is no endpoint at the moment.
func (h *HTTPEndpoint) Retryable(err error) bool {
	var ne *errNoEndpoint
	if errors.As(err, &ne) {
		return true
	}
	ok, _ := call.Retryable(err)
	return ok
}
