package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// Issue 8 item 7 in the browser: after a Git fetch of a repository with its
// own aai_main.py, a model and a notes file, Integrate Algorithm into API
// shows the author's file (not the skeleton) and lists the others; resetting
// to the skeleton asks first; the main button with nothing changed makes no
// revision, and with a change saves revision 2 keeping the model and the
// notes byte for byte (Test Code's predict reads them). Item 9: the dev
// server is called a local process, not the EC2 instance the spec names.
func TestBrowserIntegrateEditsTheAuthorsCode(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	token := devToken(t, p)
	c := newClient(t, p, token)
	model := append([]byte{0, 1, 2, 0xff}, []byte(strings.Repeat("w", 4096))...)
	sum := sha256.Sum256(model)
	repo, main := codeRepo(t, model)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Edit web", "api_name": "edit-web", "input": "image", "output": "json",
		"compute": "gpu", "instance_type": "g4dn.xlarge", "region": "us-east-1"})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))

	b := newBrowser(t, p.APIURL)
	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.setValue("#token", token)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")

	// Item 9: the server is a local process here, and the page says so.
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/code"))
	b.waitPage("/code", "Code Repo Integration")
	b.waitText("#server-status", "a local process on this machine", 10*time.Second)
	status := b.text("#server-status")
	require.Contains(t, status, "on EC2 it would be a GPU server g4dn.xlarge in")
	require.NotContains(t, status, "Server ready: GPU server", status)

	// The author's aai_main.py is in the editor; the other files are listed.
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/integrate"))
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitText("#code-note", "has its own aai_main.py", 10*time.Second)
	b.waitJS("the repository's aai_main.py in the editor", `document.querySelector('#editor').value === `+jsString(main), 10*time.Second)
	files := b.text("#code-files")
	require.Contains(t, files, "models/weights.bin")
	require.Contains(t, files, "notes.txt")
	b.click(`[data-view="notes.txt"]`)
	b.waitText("#file-view", "the author's notes", 10*time.Second)
	var viewable bool
	b.eval(`!!document.querySelector('[data-view="models/weights.bin"]')`, &viewable)
	require.False(t, viewable, "a binary file is listed, not shown")

	// Reset to the skeleton asks first; declining keeps the author's file.
	b.eval(`(() => { window.asked = []; window.confirm = (m) => { window.asked.push(m); return false; }; return true })()`, new(bool))
	b.click("#reset-skeleton")
	var asked []string
	b.eval(`window.asked`, &asked)
	require.Len(t, asked, 1)
	require.Contains(t, asked[0], "your aai_main.py")
	require.Equal(t, main, b.value("#editor"))

	// Nothing changed: the main button makes no new revision.
	b.click("#use-code")
	b.waitPage("/test", "Test Your Code")
	b.waitText("main", "Nothing changed: code revision 1", 10*time.Second)
	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, float64(1), r.Body["state"].(map[string]any)["code"].(map[string]any)["revision"])

	// A change is saved as revision 2, keeping every other file.
	edited := strings.Replace(main, `VERSION = "repo"`, `VERSION = "edited"`, 1)
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/integrate"))
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitJS("the editor", `document.querySelector('#editor') && document.querySelector('#editor').value.includes('VERSION')`, 10*time.Second)
	b.setValue("#editor", edited)
	b.click("#use-code")
	b.waitPage("/test", "Test Your Code")
	b.waitText("main", "now code revision 2", 2*time.Minute)
	require.Contains(t, b.text("main"), "every other file of revision 1 kept")
	out := testOutputJSON(t, c, id)
	require.Equal(t, "edited", out["version"])
	require.Equal(t, hex.EncodeToString(sum[:]), out["model_sha256"], "the model is kept byte for byte")
	require.Equal(t, "the author's notes\n", out["notes"])

	// The editor now opens revision 2's file.
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/integrate"))
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitJS("revision 2's aai_main.py in the editor", `document.querySelector('#editor').value === `+jsString(edited), 10*time.Second)
	b.noProblems()
}
