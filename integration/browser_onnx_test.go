package integration

// The web wizard for environment onnx, in Chromium against the whole
// platform: the API types an ONNX model does not serve are disabled and
// explained, the model is uploaded, aai_onnx.json is edited in the page and
// uploaded with the model, Test Code shows the classifier's JSON, and the
// completed endpoint answers it. Screenshots: docs/screenshots/onnx-*.png
// with ALGOCLOUD_SCREENSHOTS=1:
//
//	ALGOCLOUD_SCREENSHOTS=1 go test ./integration -run TestBrowserWizardONNX -v

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/inference/onnxrt"
)

// checkRadio chooses a radio button as a click on its card would.
func (b *browser) checkRadio(name, value string) {
	b.t.Helper()
	sel := `input[name=` + name + `][value="` + value + `"]`
	b.waitFor(sel)
	b.eval(`(() => { document.querySelector(`+jsString(sel)+`).click(); return true })()`, new(bool))
}

func (b *browser) checked(name, value string) bool {
	b.t.Helper()
	var ok bool
	b.eval(`!!document.querySelector('input[name=`+name+`][value="`+value+`"]').checked`, &ok)
	return ok
}

func TestBrowserWizardONNX(t *testing.T) {
	model := requireClassifier(t)
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	token := devToken(t, p)
	b := newBrowser(t, p.APIURL)

	// The files an author has: the model, a labels file and a sample line.
	files := t.TempDir()
	labels := filepath.Join(files, "labels.txt")
	require.NoError(t, os.WriteFile(labels, []byte("0\n180\n"), 0o644))
	sample := filepath.Join(files, "sample.png")
	require.NoError(t, os.WriteFile(sample, stripes(t, 192, 48), 0o644))
	archive := zipFiles(t, map[string][]byte{"labels.txt": []byte("0\n180\n"), "README.txt": []byte("text direction\n")})

	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.setValue("#token", token)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")

	// Select Data Type, Environment Type: a type the ONNX model does not
	// serve, chosen with Python, is explained beside the API types once
	// onnx is chosen, and stays chosen (switching back keeps it).
	b.click("#deploy-new")
	b.waitPage("/ui/new", "Select Data Type, Environment Type")
	b.checkRadio("apitype", "numpy:numpy")
	b.checkRadio("environment", "onnx")
	b.waitText("#apitype-error", "numpy → numpy is not one of them", 5*time.Second)
	require.True(t, b.checked("apitype", "numpy:numpy"), "the choice is kept")
	var disabled, enabled []string
	b.eval(`[...document.querySelectorAll('input[name=apitype]:disabled')].map(i => i.value)`, &disabled)
	b.eval(`[...document.querySelectorAll('input[name=apitype]:not(:disabled)')].map(i => i.value)`, &enabled)
	require.Equal(t, []string{"image:image", "image:json"}, enabled)
	require.Len(t, disabled, 14)
	// Each disabled type says why, and its input is described by it.
	var reason string
	b.eval(`(() => { const i = document.querySelector('input[name=apitype][value="file:image"]');
		return document.getElementById(i.getAttribute('aria-describedby')).innerText })()`, &reason)
	require.Contains(t, reason, "Not served by an ONNX model")
	require.Contains(t, b.text("#apitype-note"), "image → image and image → JSON")
	var invalid string
	b.eval(`document.querySelector('input[name=apitype][value="numpy:numpy"]').getAttribute('aria-invalid')`, &invalid)
	require.Equal(t, "true", invalid)
	b.shot("onnx-01-data-type-error", wide, narrow)
	// Going on is refused while the type does not fit.
	b.click("#to-server")
	b.waitText("#apitype-error", "not one of them", 5*time.Second)
	var path string
	b.eval(`location.pathname`, &path)
	require.Equal(t, "/ui/new", path)
	// Python again: the type was kept, nothing is disabled.
	b.checkRadio("environment", "python")
	b.waitJS("no error with Python", `document.querySelector('#apitype-error').textContent === ''`, 5*time.Second)
	require.True(t, b.checked("apitype", "numpy:numpy"))
	var nDisabled int
	b.eval(`document.querySelectorAll('input[name=apitype]:disabled').length`, &nDisabled)
	require.Zero(t, nDisabled, "Python serves every API type")
	b.checkRadio("environment", "onnx")
	// The keyboard moves between the two types it serves, skipping the others.
	b.run(chromedp.Focus(`input[name=apitype][value="image:image"]`, chromedp.ByQuery), chromedp.KeyEvent(kb.ArrowRight))
	b.waitJS("image → JSON chosen", `document.querySelector('input[name=apitype][value="image:json"]').checked`, 5*time.Second)
	b.waitJS("the error cleared", `document.querySelector('#apitype-error').textContent === ''`, 5*time.Second)
	var pictures string
	b.eval(`document.querySelector('input[value="image:json"]').closest('.choice').querySelector('svg').textContent`, &pictures)
	require.Contains(t, pictures, "aai_onnx.json", "the data flow goes through the model's configuration")
	b.shot("onnx-02-data-type", wide)
	b.run(chromedp.Focus("#to-server", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))

	// Select Server, Naming, Dependencies.
	b.waitPage("/ui/new/server", "Select Server, Naming, Dependencies")
	require.Contains(t, b.text(`[data-field="summary"]`), "ONNX model")
	require.Contains(t, b.text(`[data-field="requirements"]`), "without Python")
	b.typeInto("#f-name", "Text direction")
	b.typeInto("#f-api_name", "textdir")
	b.setValue("#f-threads", "1")
	b.click("#create")

	// Code Repo Integration: an archive with the labels, the model as an
	// extra file.
	b.waitPage("/code", "Code Repo Integration")
	b.eval(`location.pathname`, &path)
	id := strings.Split(path, "/")[3]
	require.Contains(t, b.text("#code-intro"), ".onnx")
	require.Contains(t, b.text("#code-intro"), onnxrt.ConfigFile)
	b.waitJS("server ready", `document.querySelector('#server-status.ok')`, 2*time.Minute)
	b.checkRadio("source", "upload")
	b.run(chromedp.SetUploadFiles("#f-archive", []string{archive}, chromedp.ByQuery))
	b.run(chromedp.SetUploadFiles("#f-files", []string{model}, chromedp.ByQuery))
	b.shot("onnx-03-code", wide, narrow)
	b.click("#fetch")

	// Integrate Algorithm into API: the editor holds the generated
	// aai_onnx.json naming the uploaded model, its fields explained beside.
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitText("#code-note", "had no aai_onnx.json", 10*time.Second)
	b.waitJS("the generated configuration", `document.querySelector('#editor').value.includes('"model": "`+onnxClassifier+`"')`, 10*time.Second)
	require.Contains(t, b.value("#editor"), `"kind": "json"`)
	require.Contains(t, b.text("#onnx-fields"), "top_k")
	require.NotContains(t, b.text("#onnx-fields"), "restore_size", "image postprocessing is not this deployment's")
	b.shot("onnx-04-integrate", wide, narrow)

	// Invalid JSON is explained beside the editor.
	b.setValue("#editor", `{"model": "models/cls.onnx",`)
	b.click("#use-code")
	b.waitText(`[data-field="config"] .field-error`, "not valid JSON", 5*time.Second)
	b.shot("onnx-05-integrate-errors", wide)
	// Saving is an edit of revision 1, which keeps the uploaded model where
	// it is; this configuration names another path, which the page says.
	require.Contains(t, b.text(`[data-field="onnx_files"]`), "its model and every other file are kept")
	b.setValue("#editor", classifierConfig)
	b.click("#use-code")
	b.waitText(`[data-field="onnx_files"] .field-error`, "which revision 1 does not hold", 5*time.Second)
	// The model lands where "model" says, the labels and sample where the
	// configuration names them.
	b.run(chromedp.SetUploadFiles("#f-onnx-files", []string{model, labels, sample}, chromedp.ByQuery))
	b.click("#use-code")

	// Test Your Code: the JSON answer is shown.
	b.waitPage("/test", "Test Your Code")
	b.waitText("main", "now code revision 2", 2*time.Minute)
	require.Contains(t, b.text("main"), "every other file of revision 1 kept")
	b.click("#test-code")
	b.waitJS("the test passed", `document.querySelector('#test-passed')`, 3*time.Minute)
	require.Contains(t, b.text("#test-passed"), "PNG 192x48", "Test Code sent sample.png")
	b.waitText("#test-text", `"label"`, 30*time.Second)
	requireDirection(t, []byte(b.text("#test-text")))
	require.Contains(t, b.text("#checklist"), "an ONNX model runs without Python")
	b.shot("onnx-06-test-json", wide, narrow)

	// Complete Deployment, then call the endpoint.
	b.click("#to-use")
	b.waitPage("/use", "Using the Algorithm")
	b.click("#to-complete")
	b.waitPage("/complete", "Complete Deployment")
	b.click("#complete")
	b.waitJS("the endpoint token", `(document.querySelector('#endpoint-token')||{}).value`, 3*time.Minute)
	epToken := b.value("#endpoint-token")
	endpoint := strings.TrimSuffix(b.text("#live-endpoint"), "/predict")
	b.shot("onnx-07-deployed", wide)

	res, out := predict(t, endpointClient(t, p), endpoint, epToken, stripes(t, 300, 60))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, "application/json", strings.Split(res.Header.Get("Content-Type"), ";")[0])
	requireDirection(t, out)

	// The code that was tested is what the editor uploaded.
	c := newClient(t, p, token)
	r := c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	code := r.Body["state"].(map[string]any)["code"].(map[string]any)
	got, err := os.ReadFile(filepath.Join(code["dir"].(string), onnxrt.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, classifierConfig, string(got))
	for _, f := range []string{"models/cls.onnx", "labels.txt", "sample.png"} {
		_, err := os.Stat(filepath.Join(code["dir"].(string), f))
		require.NoError(t, err, f)
	}
	b.noProblems()
}

// TestBrowserONNXEditorKeepsGitModel: saving the editor's aai_onnx.json over
// code fetched from Git is an edit of that revision, so the repository's
// model comes along with nothing to upload (and a later commit on the branch
// is not taken).
func TestBrowserONNXEditorKeepsGitModel(t *testing.T) {
	model := requireClassifier(t)
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	token := devToken(t, p)
	c := newClient(t, p, token)

	src := t.TempDir()
	b, err := os.ReadFile(model)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(filepath.Join(src, "models"), 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(src, "models", "cls.onnx"), b, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "labels.txt"), []byte("0\n180\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(src, "sample.png"), stripes(t, 192, 48), 0o644))
	repo := gitRepo(t, src)

	r := c.Do(http.MethodPost, "/api/v1/deployments", map[string]any{"name": "Text direction", "api_name": "textdir-git",
		"environment": "onnx", "input": "image", "output": "json", "threads": 1})
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	id := r.Str("id")
	require.Equal(t, http.StatusOK, c.Step(id, "provision", nil).Status)
	r = c.Step(id, "fetch_code", map[string]any{"git_url": repo, "ref": "main"})
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	first := r.Body["state"].(map[string]any)["code"].(map[string]any)["commit"].(string)
	// The branch moves on: labels the test must not see.
	commit(t, repo, map[string]string{"labels.txt": "up\ndown\n"})

	br := newBrowser(t, p.APIURL)
	br.run(chromedp.Navigate(p.APIURL+"/ui/deployments/"+id+"/integrate"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	br.setValue("#token", token)
	br.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	br.waitPage("/integrate", "Integrate Algorithm into API")
	br.waitText(`[data-field="onnx_files"]`, "its model and every other file are kept", 10*time.Second)
	br.waitJS("the generated configuration", `document.querySelector('#editor').value.includes('"kind": "json"')`, 10*time.Second)
	br.setValue("#editor", classifierConfig)
	br.click("#use-code")
	br.waitPage("/test", "Test Your Code")
	br.waitText("main", "every other file of revision 1 kept", 2*time.Minute)
	br.click("#test-code")
	br.waitJS("the test passed", `document.querySelector('#test-passed')`, 3*time.Minute)
	br.waitText("#test-text", `"label"`, 30*time.Second)
	requireDirection(t, []byte(br.text("#test-text")))

	r = c.Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	code := r.Body["state"].(map[string]any)["code"].(map[string]any)
	require.Equal(t, first, code["commit"], "the same commit, not the branch's head")
	require.Equal(t, "edit", code["source"])
	require.Equal(t, []any{onnxrt.ConfigFile}, code["edited"])
	got, err := os.ReadFile(filepath.Join(code["dir"].(string), onnxrt.ConfigFile))
	require.NoError(t, err)
	require.Equal(t, classifierConfig, string(got))
	br.noProblems()
}
