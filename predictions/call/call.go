// Package call makes one call to a deployed endpoint's /predict and says
// whether a failed call may be made again.
//
// The rule it encodes: a predict the server answered is never repeated. Only
// a call that never got an answer (connection refused or reset before any
// response byte, DNS failure, TLS handshake failure) and the two answers that
// mean "not now" (429 and 503, honouring Retry-After) are retryable. Every
// other status is final: the algorithm ran (or refused the input), and
// running it again could do the work twice. The retries themselves are the
// caller's (the Prediction workflow retries its activity, the batch workflow
// its items), so this package holds no loop and no sleep.
package call

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/algocloud/algocloud/inference/inferapi"
)

// DefaultMaxResponseBytes caps a response body when Request.MaxResponseBytes
// is zero: larger than any output the inference server makes from its own
// input cap, small enough that a broken endpoint cannot exhaust the caller.
const DefaultMaxResponseBytes = 512 << 20

// MaxRetryAfter caps the delay a Retry-After header may ask for, so a broken
// or hostile endpoint cannot park a prediction for days.
const MaxRetryAfter = 5 * time.Minute

// DefaultRetryDelay is the delay for a retryable failure that names none
// (a 503 without Retry-After, a refused connection).
const DefaultRetryDelay = time.Second

// Target is the endpoint being called.
type Target struct {
	// URL is the endpoint's base address, https://host:port (no path).
	URL string
	// Token is the bearer token sent in Authorization.
	Token string
	// RootCAs verifies the endpoint's certificate; nil means the system roots.
	RootCAs *x509.CertPool
}

// Request is one predict call's input. The body is bytes (not a reader) so
// the same Request can be sent again after a retryable failure.
type Request struct {
	Body        []byte
	ContentType string
	// Accept is sent as the Accept header when not empty.
	Accept string
	// MaxResponseBytes caps the response body; 0 means DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// Logs asks the endpoint for what the algorithm printed during the call
	// (inferapi.LogsHeader); Response.Logs then holds it.
	Logs bool
}

// Response is an answered call: any status the server sent with its body.
type Response struct {
	Status      int
	ContentType string
	Body        []byte
	Header      http.Header
	// Logs is what the algorithm printed during the call, when the Request
	// asked and the endpoint has any (success or error alike).
	Logs string
}

// StatusError is the error Do returns with a non-2xx Response. Retryable
// reads Status and RetryAfter from it.
type StatusError struct {
	Status int
	// RetryAfter is the parsed Retry-After delay (capped), 0 when absent.
	RetryAfter time.Duration
	// Body is the start of the response body (the endpoint's JSON error).
	Body string
}

// Error implements error.
func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("predict answered %d", e.Status)
	}
	return fmt.Sprintf("predict answered %d: %s", e.Status, e.Body)
}

// TransportError is a call that failed before the server sent any response
// byte: the predict may or may not have run, but nothing was answered.
type TransportError struct{ Err error }

// Error implements error.
func (e *TransportError) Error() string { return "predict not answered: " + e.Err.Error() }

// Unwrap returns the dial, TLS or I/O error.
func (e *TransportError) Unwrap() error { return e.Err }

// ErrResponseTooLarge is returned when the answer's body exceeds the cap.
var ErrResponseTooLarge = errors.New("predict response larger than the cap")

// NewClient makes the HTTP client Do uses when given none: TLS verified
// against roots (nil = system), no redirects followed (an endpoint never
// redirects; following one would send the token elsewhere), no proxy from
// the environment.
func NewClient(roots *x509.CertPool) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:       &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 0, // a predict may take its whole timeout before the first byte
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// Do POSTs r to t's /predict once. A 2xx answer returns its Response and a nil
// error; any other answer returns its Response and a *StatusError; a call
// that got no answer returns a *TransportError (or the context's error when
// ctx ended). hc may be nil: a client from NewClient(t.RootCAs) is used.
func Do(ctx context.Context, hc *http.Client, t Target, r Request) (Response, error) {
	if hc == nil {
		hc = NewClient(t.RootCAs)
	}
	url := strings.TrimRight(t.URL, "/") + "/predict"
	var gotByte atomic.Bool
	trace := &httptrace.ClientTrace{GotFirstResponseByte: func() { gotByte.Store(true) }}
	req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, url, bytes.NewReader(r.Body))
	if err != nil {
		return Response{}, fmt.Errorf("build predict request for %s: %w", t.URL, err)
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if r.Accept != "" {
		req.Header.Set("Accept", r.Accept)
	}
	if t.Token != "" {
		req.Header.Set("Authorization", "Bearer "+t.Token)
	}
	if r.Logs {
		req.Header.Set(inferapi.LogsHeader, "1")
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("predict at %s: %w", t.URL, ctx.Err())
		}
		if gotByte.Load() {
			// Something was answered (a malformed header, say): the server
			// saw the request, so this is final like any answer.
			return Response{}, fmt.Errorf("predict at %s: reading the answer: %w", t.URL, err)
		}
		return Response{}, &TransportError{Err: err}
	}
	defer resp.Body.Close()
	limit := r.MaxResponseBytes
	if limit <= 0 {
		limit = DefaultMaxResponseBytes
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("predict at %s: %w", t.URL, ctx.Err())
		}
		// The status line arrived: the server answered, so never retried.
		return Response{}, fmt.Errorf("predict at %s: reading the %d answer: %w", t.URL, resp.StatusCode, err)
	}
	if int64(len(body)) > limit {
		return Response{}, fmt.Errorf("predict at %s: %w (%d bytes)", t.URL, ErrResponseTooLarge, limit)
	}
	out := Response{Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body, Header: resp.Header}
	if r.Logs {
		// Undecodable logs are dropped, never a failed call: the answer stands.
		out.Logs, _ = inferapi.Logs(resp.Header)
	}
	if resp.StatusCode/100 == 2 {
		return out, nil
	}
	se := &StatusError{Status: resp.StatusCode, Body: snippet(body)}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		se.RetryAfter = ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return out, se
}

// Retryable says whether the call that returned err may be made again and
// after how long: true for a *TransportError (DefaultRetryDelay) and for a
// 429 or 503 *StatusError (its Retry-After, or DefaultRetryDelay); false for
// everything else, the context's own errors included (the caller stopped).
func Retryable(err error) (bool, time.Duration) {
	if err == nil {
		return false, 0
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	var se *StatusError
	if errors.As(err, &se) {
		if se.Status != http.StatusTooManyRequests && se.Status != http.StatusServiceUnavailable {
			return false, 0
		}
		if se.RetryAfter > 0 {
			return true, se.RetryAfter
		}
		return true, DefaultRetryDelay
	}
	var te *TransportError
	if errors.As(err, &te) {
		return true, DefaultRetryDelay
	}
	return false, 0
}

// ParseRetryAfter reads a Retry-After value: delay-seconds or an HTTP-date
// (relative to now), capped at MaxRetryAfter. Empty, malformed or past
// values give 0 (the caller's default applies).
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		if n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter
		}
		d = time.Duration(n) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0
	}
	if d <= 0 {
		return 0
	}
	return min(d, MaxRetryAfter)
}

// snippet keeps an error body short enough for an error message.
func snippet(b []byte) string {
	const n = 512
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}
