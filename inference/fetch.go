package inference

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/algocloud/algocloud/internal/netpolicy"
)

// urlFetchTimeout bounds downloading an image URL, redirects included.
const urlFetchTimeout = 30 * time.Second

// fetcher downloads image URLs for clients. It connects through a
// netpolicy.Dialer: every address, redirect targets included, is checked
// just before it is dialled (no DNS rebinding window), and proxies from the
// environment are not used.
type fetcher struct {
	client   *http.Client
	maxBytes int64
}

func newFetcher(dialer *netpolicy.Dialer, maxBytes int64) *fetcher {
	transport := dialer.HTTPTransport()
	transport.ResponseHeaderTimeout = urlFetchTimeout
	client := &http.Client{
		Transport: transport,
		Timeout:   urlFetchTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to a %s URL", req.URL.Scheme)
			}
			return nil
		},
	}
	return &fetcher{client: client, maxBytes: maxBytes}
}

// fetch downloads raw, at most maxBytes, and maps failures to API errors.
func (f *fetcher) fetch(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, apiErr(http.StatusBadRequest, CodeBadURL, "url must be an absolute http:// or https:// URL")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, CodeBadURL, "bad url: %v", err)
	}
	req.Header.Set("Accept", "image/png, image/jpeg, image/gif, */*;q=0.5")
	req.Header.Set("User-Agent", "algocloud-inference")
	resp, err := f.client.Do(req)
	if err != nil {
		var fe *netpolicy.ForbiddenError
		if errors.As(err, &fe) {
			return nil, apiErr(http.StatusBadRequest, CodeURLForbidden, "the server does not fetch %s: %v", u.Redacted(), fe)
		}
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: %v", u.Redacted(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: the server answered %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the image at the URL is %d bytes; the limit is %d", resp.ContentLength, f.maxBytes)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: %v", u.Redacted(), err)
	}
	if int64(len(b)) > f.maxBytes {
		return nil, apiErr(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the image at the URL exceeds %d bytes", f.maxBytes)
	}
	if len(b) == 0 {
		return nil, apiErr(http.StatusBadRequest, CodeURLFetchFailed, "download %s: the body is empty", u.Redacted())
	}
	return b, nil
}

// unwrapURLError drops url.Error's "Get \"...\":" prefix; the caller names the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
