// Package retryafter reads an HTTP answer's Retry-After and waits it out.
//
// It imports the standard library only: the platform's batch activities
// (predictions/batch) and the server agent (cmd/algocloud-infer, which links
// no platform package and no Temporal) both send chunks to an endpoint that
// may answer 429/503, and they honour its Retry-After the same way.
package retryafter

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Bounds of what Of returns: Default when the header is absent or unreadable,
// never under Min (a "0" must not turn a refused chunk into a busy loop of
// resends) nor over Max (a wrong or hostile header must not stall a chunk).
const (
	Default = time.Second
	Min     = 50 * time.Millisecond
	Max     = time.Minute
)

// Of reads h's Retry-After, in seconds or as an HTTP date (RFC 9110 §10.2.3
// allows both), clamped to [Min, Max]; Default when absent or neither.
func Of(h http.Header) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	d := Default
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = time.Until(t)
	}
	return min(max(d, Min), Max)
}

// Sleep waits d, or until ctx is done: then it returns ctx's cause, so a
// caller stopped mid-wait says why.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}
