package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// TestRedeployShowsServingAndStaged deploys through the real API, then
// redeploys new code: after fetch, install and test the new revision is
// staged while the first serves; after Complete (clicked in the wizard) the
// new one serves and nothing is staged. The API's detail and list, the
// CLI's ls and show, and the wizard's list and deployment page all say so.
func TestRedeployShowsServingAndStaged(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	tok := devToken(t, p)
	c := newClient(t, p, tok)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Revisions", "api_name": "revs", "input": "image", "output": "image", "threads": 1,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	require.NotContains(t, r.Body, "serving", "nothing serves a new deployment")
	require.NotContains(t, r.Body, "staged")
	throughTest(t, c, id, repo)
	r = c.Step(id, "complete", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	endpoint, epTok := r.Str("endpoint"), r.Str("token")
	commit1 := gitHead(t, repo)

	// Revision 1 serves; nothing is staged; the list's row says the same.
	d := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	sv := d.Body["serving"].(map[string]any)
	require.Equal(t, float64(1), sv["code_revision"], string(d.Raw))
	require.Equal(t, commit1, sv["commit"])
	require.Equal(t, "git", sv["source"])
	require.Equal(t, float64(1), sv["install_revision"])
	require.Equal(t, endpoint, sv["endpoint"])
	since1, err := time.Parse(time.RFC3339Nano, sv["since"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), since1, 2*time.Minute)
	require.NotContains(t, d.Body, "staged", string(d.Raw))
	row := listRow(t, c, id)
	require.Equal(t, sv, row["serving"], "the list answers the same from the store's row")
	require.NotContains(t, row, "staged")

	// New code: fetched, installed, tested: staged step by step while
	// revision 1 keeps serving.
	commit(t, repo, map[string]string{"NOTES.md": "revision two\n"})
	commit2 := gitHead(t, repo)
	require.NotEqual(t, commit1, commit2)
	want := map[string]map[string]any{
		"fetch_code":           {"code_revision": float64(2), "commit": commit2, "tested": false, "test_passed": false},
		"install_requirements": {"code_revision": float64(2), "commit": commit2, "install_revision": float64(2), "tested": false, "test_passed": false},
		"test":                 {"code_revision": float64(2), "commit": commit2, "install_revision": float64(2), "tested": true, "test_passed": true},
	}
	for _, step := range []string{"fetch_code", "install_requirements", "test"} {
		var body any
		if step == "fetch_code" {
			body = map[string]any{"git_url": repo, "ref": "main"}
		}
		r = c.Step(id, step, body)
		require.Equal(t, http.StatusOK, r.Status, "%s: %s", step, r.Raw)
		require.Equal(t, want[step], r.Body["staged"], "%s: %s", step, r.Raw)
		require.Equal(t, sv, r.Body["serving"], "%s: revision 1 still serves", step)
		row = listRow(t, c, id)
		require.Equal(t, want[step], row["staged"], "%s: the list's row", step)
		require.Equal(t, sv, row["serving"], step)
	}
	res, out := predict(t, endpointClient(t, p), endpoint, epTok, samplePNG(t, 16, 16))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))

	// The CLI says the same.
	run := cliRunner(t, append(os.Environ(), "ALGOCLOUD_TOKEN="+tok))
	cli := func(args ...string) string {
		t.Helper()
		out, errOut, err := run(append(args, "--api", p.APIURL)...)
		require.NoError(t, err, "algocloud %s: %s%s", strings.Join(args, " "), out, errOut)
		return out
	}
	out2 := cli("ls")
	require.Regexp(t, `SERVING\s+SINCE\s+STAGED`, out2)
	require.Regexp(t, fmt.Sprintf(`revs\s.*live\s+r1 %s i1\s+\S+ \S+\s+r2 i2 test passed\s+%s`, commit1[:7], endpoint), out2)
	out2 = cli("show", "revs")
	require.Regexp(t, fmt.Sprintf(`Serving\s+code revision 1 \(commit %s\), install revision 1\n`, commit1), out2)
	require.Regexp(t, fmt.Sprintf(`Staged\s+code revision 2 \(commit %s\), install revision 2: Test Code passed; Complete serves it\n`, commit2), out2)
	require.Regexp(t, `Next step\s+complete\n`, out2)

	// The wizard: Home's list and the deployment's page.
	b := newBrowser(t, p.APIURL)
	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.setValue("#token", tok)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")
	item := fmt.Sprintf(`.algo[data-id=%q]`, id)
	b.waitText(item+" .serving", "code revision 1 (commit "+commit1[:12]+"), install 1", 10*time.Second)
	b.waitText(item+" .staged", "code revision 2 (commit "+commit2[:12]+"), install 2: Test Code passed", 10*time.Second)
	b.shot("17-home-serving-staged", wide, narrow)
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/complete"))
	b.waitPage("/complete", "Complete Deployment")
	b.waitText("#revisions .serving", "Serving code revision 1", 10*time.Second)
	b.waitText("#revisions .staged", "Staged code revision 2", 10*time.Second)
	b.shot("18-complete-staged", wide, narrow)

	// Complete in the wizard: revision 2 serves, nothing is staged, and
	// the page head says so without a reload.
	b.click("#complete")
	b.waitFor("#deployed")
	b.waitText("#revisions .serving", "Serving code revision 2 (commit "+commit2[:12]+"), install 2", time.Minute)
	var staged int
	b.eval(`document.querySelectorAll('#revisions .staged').length`, &staged)
	require.Zero(t, staged, "nothing is staged once revision 2 serves")
	b.shot("19-complete-redeployed", wide)
	b.noProblems()

	d = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	sv2 := d.Body["serving"].(map[string]any)
	require.Equal(t, float64(2), sv2["code_revision"], string(d.Raw))
	require.Equal(t, commit2, sv2["commit"])
	require.Equal(t, float64(2), sv2["install_revision"])
	since2, err := time.Parse(time.RFC3339Nano, sv2["since"].(string))
	require.NoError(t, err)
	require.True(t, since2.After(since1), "since the second Complete: %s, %s", since1, since2)
	require.NotContains(t, d.Body, "staged", string(d.Raw))
	row = listRow(t, c, id)
	require.Equal(t, sv2, row["serving"])
	require.NotContains(t, row, "staged")
	res, out = predict(t, endpointClient(t, p), endpoint, epTok, samplePNG(t, 16, 16))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	out2 = cli("ls")
	require.Regexp(t, fmt.Sprintf(`revs\s.*live\s+r2 %s i2\s+\S+ \S+\s+-\s+%s`, commit2[:7], endpoint), out2)
	out2 = cli("show", id)
	require.Contains(t, out2, "nothing (the working copy is what was completed)")

	// Stopped: nothing serves, and Start would serve revision 2 again.
	r = c.Step(id, "stop", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	require.NotContains(t, r.Body, "serving", string(r.Raw))
	require.NotContains(t, r.Body, "staged", string(r.Raw))
	row = listRow(t, c, id)
	require.NotContains(t, row, "serving")
}

// listRow is deployment id's row in GET /api/v1/deployments.
func listRow(t *testing.T, c *client, id string) map[string]any {
	t.Helper()
	r := c.Do(http.MethodGet, "/api/v1/deployments", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	for _, x := range r.Body["deployments"].([]any) {
		if m := x.(map[string]any); m["id"] == id {
			return m
		}
	}
	t.Fatalf("deployment %s is not listed: %s", id, r.Raw)
	return nil
}

// gitHead is repo's current commit.
func gitHead(t *testing.T, repo string) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	require.NoError(t, err)
	return strings.TrimSpace(string(out))
}

// TestServingSinceKeptOnReServe: serving.since is when the revision began to
// serve on the server (the agent's clock), so a re-serve of the revision
// that serves (a token rotation: the serve command runs again and the agent
// only rewrites the token file; reconcile takes the same path) keeps it,
// while a Stop then Start, after which the endpoint really started again,
// has a later one.
func TestServingSinceKeptOnReServe(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, _ := walk(t, c, "since-kept", "segmentation", "image")
	serving := func() map[string]any {
		t.Helper()
		d := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
		require.Equal(t, http.StatusOK, d.Status, string(d.Raw))
		sv, ok := d.Body["serving"].(map[string]any)
		require.True(t, ok, "a serving block: %s", d.Raw)
		return sv
	}
	sv1 := serving()
	since1, err := time.Parse(time.RFC3339Nano, sv1["since"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, time.Now(), since1, 2*time.Minute)
	require.True(t, deploymentState(t, p, id).Server.Agent, "the server runs an agent")

	time.Sleep(1100 * time.Millisecond) // a reset would show as a later second
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/token", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	require.Contains(t, eventsText(t, c, id), "serves already", "the rotation re-served the same revision")
	sv2 := serving()
	require.Equal(t, sv1["since"], sv2["since"], "a token rotation re-serves the same revision: since stays")
	require.Equal(t, sv1, sv2)
	require.Equal(t, sv1, listRow(t, c, id)["serving"], "the list's row too")

	r = c.Step(id, "stop", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	r = c.Step(id, "start", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	since3, err := time.Parse(time.RFC3339Nano, serving()["since"].(string))
	require.NoError(t, err)
	require.True(t, since3.After(since1), "started again after a stop: a new since (%s, %s)", since1, since3)
}

// eventsText is deployment id's progress log as one string.
func eventsText(t *testing.T, c *client, id string) string {
	t.Helper()
	ev := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/events", nil)
	require.Equal(t, http.StatusOK, ev.Status, string(ev.Raw))
	return string(ev.Raw)
}
