package batch

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/store"
)

// HTTPEndpoint calls deployments' endpoints over HTTPS with the platform
// caller token. The address is read from the store (the Deployment
// workflow projects its endpoint there) at call time, reused for at most
// two seconds and dropped when a call gets no answer, so an endpoint that
// moved after a restart is found again. Safe for concurrent use.
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

	// cache keeps each deployment's address for addressTTL: one store read
	// per item would cost a batch of small images more than the predicts.
	mu    sync.Mutex
	cache map[string]cachedAddress
}

// addressTTL is how long a resolved endpoint address is reused; a call that
// gets no answer drops it at once (the endpoint may have moved).
const addressTTL = 2 * time.Second

type cachedAddress struct {
	alg store.Algorithm
	at  time.Time
}

func (h *HTTPEndpoint) resolve(ctx context.Context, deploymentID string) (store.Algorithm, error) {
	h.mu.Lock()
	c, ok := h.cache[deploymentID]
	h.mu.Unlock()
	if ok && time.Since(c.at) < addressTTL {
		return c.alg, nil
	}
	alg, err := h.Algorithms.GetAlgorithmByID(ctx, deploymentID)
	if err != nil {
		return alg, err
	}
	h.mu.Lock()
	if h.cache == nil {
		h.cache = map[string]cachedAddress{}
	}
	h.cache[deploymentID] = cachedAddress{alg: alg, at: time.Now()}
	h.mu.Unlock()
	return alg, nil
}

func (h *HTTPEndpoint) forget(deploymentID string) {
	h.mu.Lock()
	delete(h.cache, deploymentID)
	h.mu.Unlock()
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
		// HTTP/1.1, a connection per request in flight, as clients of the
		// endpoint use it: over one HTTP/2 connection every request of the
		// batch shares one TLS stream and its goroutines on both sides.
		tr.ForceAttemptHTTP2 = false
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return hc
}

// errNoEndpoint is a deployment that has no endpoint at the moment
// (stopping, restarting): waited for like a refused connection.
type errNoEndpoint struct{ msg string }

func (e *errNoEndpoint) Error() string { return e.msg }

// Predict posts body to the deployment's /predict once.
func (h *HTTPEndpoint) Predict(ctx context.Context, deploymentID string, body []byte, contentType string) (Response, error) {
	alg, err := h.resolve(ctx, deploymentID)
	if err != nil {
		return Response{}, fmt.Errorf("resolve endpoint of %s: %w", deploymentID, err)
	}
	if alg.DeletedAt != nil {
		return Response{}, fmt.Errorf("deployment %s is deleted", deploymentID)
	}
	if !strings.HasPrefix(alg.Endpoint, "https://") {
		h.forget(deploymentID)
		return Response{}, &errNoEndpoint{fmt.Sprintf("deployment %s has no endpoint now (status %s)", deploymentID, alg.Status)}
	}
	r, err := call.Do(ctx, h.Client, call.Target{URL: strings.TrimRight(alg.Endpoint, "/"), Token: h.Token(deploymentID)},
		call.Request{Body: body, ContentType: contentType, MaxResponseBytes: h.MaxResponseBytes})
	var se *call.StatusError
	if err != nil && !errors.As(err, &se) {
		h.forget(deploymentID)
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
