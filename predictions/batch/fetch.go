package batch

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// URLFetcher downloads URL items through a netpolicy dialer: every address
// it connects to is checked when dialled (no DNS rebinding past the check
// made at create), and redirects are not followed (a 3xx fails the item),
// so none can lead to a refused address.
type URLFetcher struct {
	client   *http.Client
	maxBytes int64
}

// NewURLFetcher returns a fetcher under policy, reading at most maxBytes
// (0: DefaultLimits.MaxItemBytes) a URL.
func NewURLFetcher(policy netpolicy.Policy, maxBytes int64) *URLFetcher {
	if maxBytes <= 0 {
		maxBytes = DefaultLimits.MaxItemBytes
	}
	d := &netpolicy.Dialer{Policy: policy, Timeout: 10 * time.Second}
	t := d.HTTPTransport()
	t.ResponseHeaderTimeout = 30 * time.Second
	return &URLFetcher{maxBytes: maxBytes, client: &http.Client{Transport: t, Timeout: 2 * time.Minute,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// Fetch downloads rawURL and returns its bytes and Content-Type.
func (f *URLFetcher) Fetch(ctx context.Context, rawURL string) ([]byte, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, "", fmt.Errorf("bad URL: %w", err)
	}
	req.Header.Set("User-Agent", "algocloud-batch")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("the server answered %s (redirects are not followed)", resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("download: %w", err)
	}
	if int64(len(b)) > f.maxBytes {
		return nil, "", fmt.Errorf("over %d bytes", f.maxBytes)
	}
	return b, resp.Header.Get("Content-Type"), nil
}
