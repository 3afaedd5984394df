package testenv

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// ChromiumPath is Debian's chromium (scripts/setup.sh installs it).
const ChromiumPath = "/usr/bin/chromium"

// ChromiumOptions are the allocator options every browser test runs
// Chromium with: headless, no sandbox and no GPU (the test machines have
// neither), none of the background traffic a fresh profile starts (updates,
// sync, QUIC probes: tests reach 127.0.0.1 only), no scrollbars (screenshots
// stay the page's own width), profile as its user data dir (the only way to
// keep two tests' browsers apart, and required by some flags, such as
// ignore-certificate-errors-spki-list) and a window of width x height.
func ChromiumOptions(profile string, width, height int) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(ChromiumPath),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(width, height),
	}
}

// NewChromium starts Chromium with ChromiumOptions plus extra, on a fresh
// profile folder, and returns the chromedp context that drives its first
// tab. The browser is stopped and its profile removed when t ends. chromedp's
// errors are logged to t, except the ones about events this cdproto cannot
// unmarshal: a newer Chromium sends enum values it does not know, on events
// no test uses. Callers check first that ChromiumPath exists (whether a
// missing browser skips or fails is theirs to say).
func NewChromium(t testing.TB, width, height int, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	// A fresh folder, outside t.TempDir: Chromium's helpers may still write
	// for a moment after it exits, which would fail TempDir's own removal.
	profile, err := os.MkdirTemp("", "algocloud-chromium-*")
	if err != nil {
		t.Fatalf("chromium profile: %v", err)
	}
	opts := append(ChromiumOptions(profile, width, height), extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if !strings.Contains(format, "unmarshal event") {
			t.Logf("chromedp: "+format, args...)
		}
	}))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		for i := 0; i < 50 && os.RemoveAll(profile) != nil; i++ {
			time.Sleep(100 * time.Millisecond)
		}
	})
	return ctx
}
