package testenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// TestNewChromiumLoadsAPage starts the real Chromium with the shared options
// and reads a page served on 127.0.0.1, sized as asked.
func TestNewChromiumLoadsAPage(t *testing.T) {
	if _, err := os.Stat(ChromiumPath); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_TOOLS") != "" {
			t.Fatalf("Chromium is not installed at %s and ALGOCLOUD_REQUIRE_TOOLS is set", ChromiumPath)
		}
		t.Skipf("Chromium is not installed at %s (scripts/setup.sh installs it)", ChromiumPath)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`<!doctype html><title>testenv page</title><p>hello</p>`))
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(NewChromium(t, 640, 480), time.Minute)
	defer cancel()
	var title string
	var width int
	require.NoError(t, chromedp.Run(ctx,
		chromedp.Navigate(srv.URL),
		chromedp.Title(&title),
		chromedp.Evaluate(`window.innerWidth`, &width)))
	require.Equal(t, "testenv page", title)
	require.Equal(t, 640, width)
}
