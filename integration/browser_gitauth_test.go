package integration

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testgit"
)

// The Code Repo Integration page fetches a private repository with the
// credentials typed into its password field (with an extra file: the
// multipart request): a wrong password is explained beside nothing secret,
// the right one fetches, and the browser's storage never holds the password.
func TestBrowserCodePageGitCredentials(t *testing.T) {
	const password = "S3cret-web-Pw-2718"
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) { o.AllowPrivateGit = true })
	defer p.Stop()
	token := devToken(t, p)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	srv := testgit.ServeHTTP(t, filepath.Dir(repo), "alice", password)
	c := newClient(t, p, token)
	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{
		"name": "Private web", "description": "integration test", "api_name": "privateweb",
		"input": "image", "output": "image", "threads": 1,
	})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")

	b := newBrowser(t, p.APIURL)
	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.setValue("#token", token)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/code"))
	b.waitPage("/code", "Code Repo Integration")
	b.waitJS("server ready", `document.querySelector('#server-status.ok')`, 2*time.Minute)

	b.setValue("#f-git_url", srv.URL+"/"+filepath.Base(repo))
	b.run(chromedp.Click("#git-auth summary", chromedp.ByQuery))
	b.typeInto("#f-git_auth\\.username", "alice")
	b.typeInto("#f-git_auth\\.password", "Wrong-web-Pw")
	b.click("#fetch")
	b.waitText("main", "refused the credentials", time.Minute)

	b.setValue("#f-git_auth\\.password", "")
	b.typeInto("#f-git_auth\\.password", password)
	model := filepath.Join(t.TempDir(), "weights.bin")
	require.NoError(t, os.WriteFile(model, []byte{1, 2, 3}, 0o644))
	b.run(chromedp.SetUploadFiles("#f-files", []string{model}, chromedp.ByQuery))
	b.click("#fetch")
	b.waitPage("/integrate", "Integrate Algorithm into API")

	var storage string
	b.eval(`JSON.stringify(localStorage) + JSON.stringify(sessionStorage)`, &storage)
	require.NotContains(t, storage, password)
	require.NotContains(t, storage, "Wrong-web-Pw")
	st := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Contains(t, string(st.Raw), `"with_credentials":true`)
	require.NotContains(t, string(st.Raw), password)

	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/code"))
	b.waitPage("/code", "Code Repo Integration")
	b.waitText("main", "with credentials", 10*time.Second)
	require.Empty(t, b.value("#f-git_auth\\.password"), "the password is not shown back")
	b.noProblems()
}
