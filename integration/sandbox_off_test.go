package integration

import (
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/activities"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/sandbox"
)

// TestSandboxOffIsSaidEverywhere: a platform started with --sandbox=none
// (its operator's explicit choice) says so in /api/v1/me, on every wizard
// page and in every Test Code result; a sandboxed one says nothing of it.
func TestSandboxOffIsSaidEverywhere(t *testing.T) {
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Sandbox = activities.SandboxSettings{Mode: sandbox.ModeNone}
	})
	defer p.Stop()
	token := devToken(t, p)
	c := newClient(t, p, token)

	me := c.Do(http.MethodGet, "/api/v1/me", nil)
	require.Equal(t, http.StatusOK, me.Status, string(me.Raw))
	require.Equal(t, "none", me.Str("sandbox"))
	require.Contains(t, me.Str("warning"), "UNSANDBOXED")

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Off", "api_name": "off", "input": "image", "output": "image"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	throughTest(t, c, id, gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation")))
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	test := st.Body["state"].(map[string]any)["test"].(map[string]any)
	require.Equal(t, true, test["ok"], test)
	require.Equal(t, true, test["unsandboxed"], test)
	require.Contains(t, test["warning"], "UNSANDBOXED")

	b := newBrowser(t, p.APIURL)
	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.setValue("#token", token)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")
	b.waitText("#sandbox-off", "Sandbox off", 10*time.Second)
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/test"))
	b.waitText("#test-unsandboxed", "UNSANDBOXED", 20*time.Second)
	b.waitText("#sandbox-off", "Sandbox off", 10*time.Second)
}
