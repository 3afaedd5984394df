package batch

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

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
	// MaxResponseBytes caps an answer; 0 is 256 MiB.
	MaxResponseBytes int64
}

// NewHTTPClient is a client for HTTPEndpoint that verifies endpoints with
// roots (nil: the system's), keeps connections to each endpoint alive for
// a batch's concurrency, and ends a predict after timeout.
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		MaxIdleConnsPerHost: MaxConcurrency,
		IdleConnTimeout:     90 * time.Second,
		ForceAttemptHTTP2:   false,
	}, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// errNoAnswer wraps a call that got no answer: the predict is safe to send
// again (connection refused or reset, DNS, TLS handshake, no endpoint yet).
type errNoAnswer struct{ err error }

func (e *errNoAnswer) Error() string { return e.err.Error() }
func (e *errNoAnswer) Unwrap() error { return e.err }

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
		// Not live now (stopping, restarting): wait for it like a refused connection.
		return Response{}, &errNoAnswer{fmt.Errorf("deployment %s has no endpoint now (status %s)", deploymentID, alg.Status)}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(alg.Endpoint, "/")+"/predict", bytes.NewReader(body))
	if err != nil {
		return Response{}, fmt.Errorf("predict request: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+h.Token(deploymentID))
	resp, err := h.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, ctx.Err()
		}
		// No response byte came: the server did not answer this predict.
		return Response{}, &errNoAnswer{fmt.Errorf("call %s: %w", deploymentID, err)}
	}
	defer resp.Body.Close()
	limit := h.MaxResponseBytes
	if limit <= 0 {
		limit = 256 << 20
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Response{}, fmt.Errorf("read answer of %s: %w", deploymentID, err)
	}
	if int64(len(b)) > limit {
		return Response{}, fmt.Errorf("answer of %s is over %d bytes", deploymentID, limit)
	}
	return Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: b, Header: resp.Header}, nil
}

// Retryable reports whether err means the endpoint gave no answer.
func (h *HTTPEndpoint) Retryable(err error) bool {
	var na *errNoAnswer
	return errors.As(err, &na)
}
