package integration

// The web wizard driven in Debian's Chromium (headless), against the whole
// platform: every page a person sees, a broken algorithm's traceback, the
// in-page editor's upload, Add More Dependencies, a passing test with its
// image, Complete Deployment's token, and a call to the endpoint with it.
//
// Screenshots of every page are taken on each run; to keep them in
// docs/screenshots (NN-page.png), run with ALGOCLOUD_SCREENSHOTS=1:
//
//	ALGOCLOUD_SCREENSHOTS=1 go test ./integration -run TestBrowserWizard -v

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/api"
	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// Widths of the screenshots: a desktop and a 375 px phone.
const (
	wide   = 1280
	narrow = 375
)

// browser drives one headless Chromium and remembers what went wrong in the
// page: exceptions, console errors, CSP violations.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string
	shots string

	mu       sync.Mutex
	problems []string
	network  []string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	if _, err := os.Stat(testenv.ChromiumPath); err != nil {
		if os.Getenv("ALGOCLOUD_REQUIRE_TOOLS") != "" {
			t.Fatalf("Chromium is not installed at %s and ALGOCLOUD_REQUIRE_TOOLS is set (scripts/setup-test.sh installs it)", testenv.ChromiumPath)
		}
		t.Skipf("Chromium is not installed at %s (scripts/setup-test.sh installs it)", testenv.ChromiumPath)
	}
	shots := t.TempDir()
	if os.Getenv("ALGOCLOUD_SCREENSHOTS") != "" {
		shots = filepath.Join(repoRoot(t), "docs", "screenshots")
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}
	ctx := testenv.NewChromium(t, wide, 900)
	b := &browser{t: t, ctx: ctx, base: base, shots: shots}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			b.problem("exception: " + msg)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert || e.Type == runtime.APITypeWarning {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.problem("console." + string(e.Type) + ": " + strings.Join(parts, " "))
			}
		case *cdplog.EventEntryAdded:
			line := string(e.Entry.Source) + " " + string(e.Entry.Level) + ": " + e.Entry.Text + " " + e.Entry.URL
			switch {
			case e.Entry.Source == cdplog.SourceNetwork:
				// The API answers invalid input with 4xx by design; those
				// answers are shown in the page. Kept for the log.
				b.mu.Lock()
				b.network = append(b.network, line)
				b.mu.Unlock()
			case e.Entry.Level == cdplog.LevelError || e.Entry.Level == cdplog.LevelWarning:
				b.problem(line)
			}
		}
	})
	// The first Run starts the browser and ties it to ctx (a Run on a
	// shorter-lived child context would close it when that ends).
	require.NoError(t, chromedp.Run(ctx, cdplog.Enable(), runtime.Enable(), b.viewport(wide, 900)))
	return b
}

func (b *browser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// noProblems fails on anything the page reported as an error so far.
func (b *browser) noProblems() {
	b.t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(b.t, b.problems, "the page reported errors")
}

func (b *browser) run(actions ...chromedp.Action) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 3*time.Minute)
	defer cancel()
	require.NoError(b.t, chromedp.Run(ctx, actions...))
}

func (b *browser) viewport(w, h int64) chromedp.Action {
	return chromedp.EmulateViewport(w, h, func(p *emulation.SetDeviceMetricsOverrideParams, _ *emulation.SetTouchEmulationEnabledParams) {
		p.Mobile = w < 600
	})
}

// eval runs JavaScript in the page and decodes its value into res.
func (b *browser) eval(js string, res any) {
	b.t.Helper()
	b.run(chromedp.Evaluate(js, res))
}

// waitJS waits until the expression is true, failing with what the page
// shows when it never is.
func (b *browser) waitJS(what, js string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var ok bool
		// An element the page has not drawn yet is a "not yet", not an
		// error: the expression may dereference it (e.g. #editor's value
		// while the page still loads the author's file).
		b.eval("(() => { try { return !!("+js+"); } catch (e) { return false; } })()", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var text, path string
			b.eval(`document.querySelector('main') ? document.querySelector('main').innerText : ''`, &text)
			b.eval(`location.pathname`, &path)
			b.t.Fatalf("waited %s for %s at %s; the page shows:\n%s", timeout, what, path, text)
		}
		time.Sleep(150 * time.Millisecond)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// waitText waits until the element sel exists and its text contains want.
func (b *browser) waitText(sel, want string, timeout time.Duration) {
	b.t.Helper()
	b.waitJS(fmt.Sprintf("%s containing %q", sel, want),
		fmt.Sprintf(`(document.querySelector(%s)||{}).innerText && document.querySelector(%s).innerText.includes(%s)`, jsString(sel), jsString(sel), jsString(want)), timeout)
}

// waitPage waits for a wizard page: its path ends with suffix and its h1 is title.
func (b *browser) waitPage(suffix, title string) {
	b.t.Helper()
	b.waitJS("page "+suffix, fmt.Sprintf(`location.pathname.endsWith(%s) && document.querySelector('h1') && document.querySelector('h1').innerText === %s`,
		jsString(suffix), jsString(title)), 30*time.Second)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	var s string
	b.eval(fmt.Sprintf(`(document.querySelector(%s)||{}).innerText || ''`, jsString(sel)), &s)
	return s
}

func (b *browser) value(sel string) string {
	b.t.Helper()
	b.waitFor(sel)
	var s string
	b.eval(fmt.Sprintf(`document.querySelector(%s).value`, jsString(sel)), &s)
	return s
}

// setValue replaces a field's text as typing would, firing input.
func (b *browser) setValue(sel, v string) {
	b.t.Helper()
	b.waitFor(sel)
	b.eval(fmt.Sprintf(`(() => { const el = document.querySelector(%s); el.focus(); el.value = %s;
		el.dispatchEvent(new Event('input', {bubbles: true})); el.dispatchEvent(new Event('change', {bubbles: true})); return true })()`,
		jsString(sel), jsString(v)), new(bool))
}

// waitFor waits until an element matches sel: pages put their heading up
// before the rest of their body, which may wait on the API.
func (b *browser) waitFor(sel string) {
	b.t.Helper()
	b.waitJS(sel, fmt.Sprintf(`document.querySelector(%s)`, jsString(sel)), 30*time.Second)
}

func (b *browser) click(sel string) {
	b.t.Helper()
	b.run(chromedp.Click(sel, chromedp.ByQuery))
}

func (b *browser) typeInto(sel, text string) {
	b.t.Helper()
	b.run(chromedp.Focus(sel, chromedp.ByQuery), chromedp.SendKeys(sel, text, chromedp.ByQuery))
}

// shot saves a full-page screenshot of the page at each width as
// NN-name.png (the first width) and NN-name-narrow.png (a narrow one).
func (b *browser) shot(name string, widths ...int64) {
	b.t.Helper()
	if len(widths) == 0 {
		widths = []int64{wide}
	}
	for i, w := range widths {
		var height int64
		b.run(b.viewport(w, 900), chromedp.Sleep(200*time.Millisecond),
			chromedp.Evaluate(`Math.ceil(document.documentElement.scrollHeight)`, &height))
		var buf []byte
		b.run(b.viewport(w, height), chromedp.Sleep(200*time.Millisecond),
			chromedp.ActionFunc(func(ctx context.Context) error {
				var err error
				buf, err = page.CaptureScreenshot().WithFormat(page.CaptureScreenshotFormatPng).Do(ctx)
				return err
			}),
			b.viewport(wide, 900))
		file := name + ".png"
		if i > 0 || w < 600 && len(widths) > 1 {
			file = name + "-narrow.png"
		}
		require.NoError(b.t, os.WriteFile(filepath.Join(b.shots, file), buf, 0o644))
		// Nothing may be wider than the screen.
		var overflow int64
		b.run(b.viewport(w, 900), chromedp.Evaluate(`document.documentElement.scrollWidth - window.innerWidth`, &overflow), b.viewport(wide, 900))
		require.LessOrEqual(b.t, overflow, int64(0), "%s is wider than a %d px screen", name, w)
	}
}

// brokenSegmentation is examples/segmentation with a predict that raises.
func brokenSegmentation(t *testing.T) string {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "segmentation", "aai_main.py"))
	require.NoError(t, err)
	out := strings.Replace(string(src), "        return gray > t  # bool: the server sends True as 255, False as 0",
		"        raise ValueError('threshold out of range: %d' % t)", 1)
	require.NotEqual(t, string(src), out, "the example changed: update this test")
	return out
}

// helperSegmentation is the fixed algorithm, importing a package that only
// Add More Dependencies installs.
func helperSegmentation(t *testing.T) string {
	src, err := os.ReadFile(filepath.Join(repoRoot(t), "examples", "segmentation", "aai_main.py"))
	require.NoError(t, err)
	out := strings.Replace(string(src), "import numpy as np\n", "import numpy as np\nimport aaihelper\n", 1)
	out = strings.Replace(out, "        return gray > t  # bool: the server sends True as 255, False as 0",
		"        return aaihelper.mask(gray, t)", 1)
	require.Contains(t, out, "aaihelper.mask")
	return out
}

func TestBrowserWizard(t *testing.T) {
	wheels := t.TempDir()
	p := startPlatform(t, t.TempDir(), func(o *platform.Options) {
		o.Pip.NoIndex = true // no package index is reachable here
		o.Pip.FindLinks = []string{wheels}
	})
	defer p.Stop()
	writeWheel(t, wheels, "aaihelper", "0.1.1", "def mask(gray, t):\n    return gray > t\n")
	token := devToken(t, p)
	repo := gitRepo(t, filepath.Join(repoRoot(t), "examples", "segmentation"))
	commit(t, repo, map[string]string{"aai_main.py": brokenSegmentation(t)})

	b := newBrowser(t, p.APIURL)

	// The zip the editor uploads is one Go reads back, CRCs checked.
	var zipB64 string
	b.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	b.eval(`(() => { const z = AlgoZip.build([{name: 'aai_main.py', data: 'print("héllo")\n'}, {name: 'm/x.bin', data: new Uint8Array([0, 1, 255])}]);
		let s = ''; z.forEach((c) => { s += String.fromCharCode(c); }); return btoa(s); })()`, &zipB64)
	raw, err := base64.StdEncoding.DecodeString(zipB64)
	require.NoError(t, err)
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	require.NoError(t, err)
	require.Len(t, zr.File, 2)
	for i, want := range []string{"print(\"héllo\")\n", "\x00\x01\xff"} {
		rc, err := zr.File[i].Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc) // checks the CRC-32 at EOF
		require.NoError(t, err)
		require.Equal(t, want, string(got))
	}

	// Sign in with the keyboard: a wrong token is refused beside the field.
	b.shot("01-sign-in", wide, narrow)
	b.run(chromedp.Focus("#token", chromedp.ByQuery), chromedp.SendKeys("#token", "ac_wrong"+kb.Enter, chromedp.ByQuery))
	b.waitText(`[data-field="token"] .field-error`, "unknown or revoked", 10*time.Second)
	b.setValue("#token", token)
	b.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	b.waitPage("/ui/home", "Home")
	b.waitText("main", "No algorithms yet", 10*time.Second)
	require.Equal(t, "dev", b.text("#me"))
	b.shot("02-home-empty", wide, narrow)

	// Select Data Type, Environment Type: arrows move between radio choices.
	b.click("#deploy-new")
	b.waitPage("/ui/new", "Select Data Type, Environment Type")
	var n int
	b.eval(`document.querySelectorAll('input[name=apitype]').length`, &n)
	require.Equal(t, 16, n, "every API type spec.SupportedPairs lists")
	b.eval(`document.querySelectorAll('.choice svg').length`, &n)
	require.Equal(t, 16, n, "each API type has its data flow picture")
	b.run(chromedp.Focus(`input[name=compute][value=cpu]`, chromedp.ByQuery), chromedp.KeyEvent(kb.ArrowRight))
	b.waitJS("GPU chosen", `document.querySelector('input[name=compute][value=gpu]').checked`, 5*time.Second)
	b.run(chromedp.KeyEvent(kb.ArrowLeft))
	b.waitJS("CPU chosen", `document.querySelector('input[name=compute][value=cpu]').checked`, 5*time.Second)
	b.shot("03-data-type", wide, narrow)
	b.run(chromedp.Focus("#to-server", chromedp.ByQuery), chromedp.KeyEvent(kb.Enter))

	// Select Server, Naming, Dependencies: two invalid fields, each explained
	// beside itself; nothing typed is lost, not even across a reload.
	b.waitPage("/ui/new/server", "Select Server, Naming, Dependencies")
	var options []string
	b.eval(`[...document.querySelectorAll('#f-instance_type option')].map(o => o.value)`, &options)
	require.Contains(t, options, "t3.small")
	require.NotContains(t, options, "g4dn.xlarge", "CPU instance types only")
	b.typeInto("#f-name", "Otsu segmentation")
	b.typeInto("#f-description", "Foreground mask by Otsu's threshold")
	b.typeInto("#f-api_name", "Seg_Web")
	require.Equal(t, "https://Seg_Web.algocloud.test", b.text("#host-preview"), "the host name follows the typing")
	b.setValue("#f-threads", "2")
	b.setValue("#f-requirements", "-e evil\n")
	b.click("#create")
	b.waitText(`[data-field="api_name"] .field-error`, "DNS label", 15*time.Second)
	b.waitText(`[data-field="requirements"] .field-error`, "Line 1", 5*time.Second)
	var invalid string
	b.eval(`document.querySelector('#f-api_name').getAttribute('aria-invalid')`, &invalid)
	require.Equal(t, "true", invalid)
	b.shot("04-server-invalid", wide, narrow)
	b.run(chromedp.Reload())
	b.waitPage("/ui/new/server", "Select Server, Naming, Dependencies")
	require.Equal(t, "Otsu segmentation", b.value("#f-name"))
	require.Equal(t, "Foreground mask by Otsu's threshold", b.value("#f-description"))
	require.Equal(t, "Seg_Web", b.value("#f-api_name"))
	require.Equal(t, "2", b.value("#f-threads"))
	require.Equal(t, "-e evil\n", b.value("#f-requirements"))
	b.setValue("#f-api_name", "")
	b.typeInto("#f-api_name", "seg-web")
	b.setValue("#f-requirements", "")
	require.Equal(t, "outbound", b.value("#f-network"), "the sandbox's network defaults to outbound")
	b.setValue("#f-network", "none")
	require.Equal(t, "https://seg-web.algocloud.test", b.text("#host-preview"))
	b.shot("05-server", wide, narrow)
	b.click("#create")

	// Code Repo Integration: the server is provisioned while the author types.
	b.waitPage("/code", "Code Repo Integration")
	var path string
	b.eval(`location.pathname`, &path)
	id := strings.Split(path, "/")[3]
	created := newClient(t, p, token).Do(http.MethodGet, "/api/v1/deployments/"+id, nil)
	require.Equal(t, "none", created.Str("spec", "network"), "the wizard's network choice reaches the spec: %s", created.Raw)
	b.waitJS("server ready", `document.querySelector('#server-status.ok')`, 2*time.Minute)
	b.setValue("#f-git_url", repo)
	require.Equal(t, "main", b.value("#f-ref"))
	// An extra model file goes with the Git code (a multipart request).
	model := filepath.Join(t.TempDir(), "weights.bin")
	require.NoError(t, os.WriteFile(model, []byte{1, 2, 3}, 0o644))
	b.run(chromedp.SetUploadFiles("#f-files", []string{model}, chromedp.ByQuery))
	b.setValue("#f-folder", "models/")
	b.shot("06-code-repo", wide, narrow)
	b.click("#fetch")

	// Integrate Algorithm into API: the repository has its own aai_main.py.
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitText("#code-note", "has its own aai_main.py", 10*time.Second)
	require.Contains(t, b.text("#code-note"), "models/weights.bin")
	// The editor holds the repository's own aai_main.py, not the skeleton
	// (issue 8 item 7), and lists the other files.
	b.waitJS("the repository's aai_main.py in the editor", `document.querySelector('#editor').value === `+jsString(brokenSegmentation(t)), 10*time.Second)
	b.waitText("#code-files", "models/weights.bin", 5*time.Second)
	b.waitText("#types", "numpy.ndarray of shape (height, width, 3)", 5*time.Second)
	b.shot("07-integrate", wide, narrow)
	b.click("#to-test")

	// Test Your Code: reload while the test runs; the page picks it up and
	// shows the traceback.
	b.waitPage("/test", "Test Your Code")
	b.click("#test-code")
	b.waitJS("the test running", `document.querySelector('#progress[data-running="Testing your code"]')`, 3*time.Minute)
	b.run(chromedp.Reload())
	b.waitPage("/test", "Test Your Code")
	b.waitText("#test-failed", "threshold out of range", 2*time.Minute)
	require.Contains(t, b.text("#test-failed .traceback"), "Traceback")
	require.Contains(t, b.text("#test-failed .traceback"), "ValueError")
	b.waitJS("server booted and ready", `document.querySelector('#boot-status[data-state=ok]')`, 10*time.Second)
	require.Contains(t, b.text("#boot-status"), "Server booted and ready")
	// A reload of the deployment's address lands where it is.
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id))
	b.waitPage("/ui/deployments/"+id+"/test", "Test Your Code")
	b.waitText("#test-failed", "threshold out of range", 10*time.Second)
	b.shot("08-test-traceback", wide, narrow)

	// The traceback's "in the editor" link opens the author's file; the
	// fix is saved as an edit (revision 2 keeps the model file). It
	// imports a package that is not installed yet.
	b.click("#fix-in-editor")
	b.waitPage("/integrate", "Integrate Algorithm into API")
	b.waitJS("the repository's aai_main.py in the editor", `document.querySelector('#editor').value === `+jsString(brokenSegmentation(t)), 10*time.Second)
	b.setValue("#editor", helperSegmentation(t))
	b.shot("09-integrate-editor", wide)
	b.click("#use-code")
	b.waitPage("/test", "Test Your Code")
	b.waitText("main", "now code revision 2", 2*time.Minute)
	listing := newClient(t, p, token).Do(http.MethodGet, "/api/v1/deployments/"+id+"/code", nil)
	require.Equal(t, http.StatusOK, listing.Status, string(listing.Raw))
	require.Contains(t, string(listing.Raw), `{"path":"models/weights.bin","size":3,"text":false,"viewable":false}`)
	b.click("#test-code")
	b.waitText("#test-failed", "aaihelper", 3*time.Minute)
	require.Contains(t, b.text("#test-failed"), "ModuleNotFoundError")
	b.waitJS("boot failed", `document.querySelector('#boot-status[data-state=bad]')`, 10*time.Second)
	b.shot("10-test-import-error", wide)

	// Add More Dependencies: an invalid line first, then the package.
	b.click("#to-dependencies")
	b.waitPage("/dependencies", "Add More Dependencies")
	b.setValue("#f-requirements_txt", "--index-url http://evil.example\n")
	b.click("#update-requirements")
	b.waitText(`[data-field="requirements_txt"] .field-error`, "Line 1", 15*time.Second)
	b.setValue("#f-requirements_txt", "aaihelper==0.1.1\n")
	b.click("#update-requirements")
	b.waitJS("requirements installed", `document.querySelector('#retest')`, 3*time.Minute)
	require.Contains(t, b.text("main"), "aaihelper==0.1.1")
	b.shot("11-add-more-dependencies", wide, narrow)
	b.click("#retest")

	// The retest passes and shows the mask the algorithm returned.
	b.waitPage("/test", "Test Your Code")
	b.waitJS("the test passed", `document.querySelector('#test-passed')`, 3*time.Minute)
	b.waitJS("the output image", `(document.querySelector('#test-image')||{}).naturalWidth === 128`, 30*time.Second)
	b.shot("12-test-passed", wide, narrow)
	b.click("#to-use")

	// Using the Algorithm, then Complete Deployment.
	b.waitPage("/use", "Using the Algorithm")
	b.waitText("#clients", "curl", 10*time.Second)
	b.shot("13-using-the-algorithm", wide, narrow)
	b.click("#to-complete")
	b.waitPage("/complete", "Complete Deployment")
	b.waitText("main", "not deployed until you click Complete Deployment", 5*time.Second)
	b.shot("14-complete-deployment", wide)
	b.click("#complete")
	b.waitJS("the endpoint token", `(document.querySelector('#endpoint-token')||{}).value`, 3*time.Minute)
	epToken := b.value("#endpoint-token")
	require.True(t, strings.HasPrefix(epToken, "ep_"), epToken)
	require.Contains(t, b.text("#token-warning"), "shown only once")
	b.click("#token-box button")
	b.waitJS("copy answered", `document.querySelector('#token-box button[data-copied]')`, 5*time.Second)
	endpoint := strings.TrimSuffix(b.text("#live-endpoint"), "/predict")
	b.shot("15-deployed-token", wide, narrow)

	// The endpoint answers a PNG with that token.
	res, out := predict(t, endpointClient(t, p), endpoint, epToken, samplePNG(t, 64, 48))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	require.Equal(t, "image/png", res.Header.Get("Content-Type"))
	img, err := png.Decode(bytes.NewReader(out))
	require.NoError(t, err)
	require.Equal(t, 64, img.Bounds().Dx())

	// The token was shown once: a reload does not show it again.
	b.run(chromedp.Reload())
	b.waitPage("/complete", "Complete Deployment")
	b.waitText("#deployed", "live", 10*time.Second)
	var tokenShown bool
	b.eval(`!!document.querySelector('#endpoint-token')`, &tokenShown)
	require.False(t, tokenShown)
	require.NotContains(t, b.text("main"), epToken)

	// Whoever lost it makes a new one: the running endpoint takes it at once
	// (no restart) and the old token stops working.
	b.run(chromedp.Evaluate(`window.confirm = () => true`, nil))
	b.click("#new-token")
	b.waitJS("the new endpoint token", `(document.querySelector('#endpoint-token')||{}).value`, 3*time.Minute)
	require.Contains(t, b.text("#token-warning"), "now accepts only this token")
	newToken := b.value("#endpoint-token")
	require.NotEqual(t, epToken, newToken)
	res, out = predict(t, endpointClient(t, p), endpoint, newToken, samplePNG(t, 64, 48))
	require.Equal(t, http.StatusOK, res.StatusCode, string(out))
	res, out = predict(t, endpointClient(t, p), endpoint, epToken, samplePNG(t, 64, 48))
	require.Equal(t, http.StatusUnauthorized, res.StatusCode, string(out))
	b.shot("15b-new-token", wide)

	// Using the Algorithm now names the live endpoint and, where the API
	// generates clients, shows each with a copy button.
	b.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/use"))
	b.waitPage("/use", "Using the Algorithm")
	b.waitText("#endpoint", endpoint+"/predict", 10*time.Second)
	if strings.Contains(string(api.OpenAPI()), `"/api/v1/deployments/{id}/clients"`) {
		b.waitJS("generated clients", `document.querySelectorAll('#clients [data-client] button').length >= 4`, 20*time.Second)
		require.Contains(t, b.text(`#clients [data-client="curl"]`), endpoint)
		b.shot("17-using-the-algorithm-live", wide, narrow)
	}

	// Home lists it live.
	b.click(".brand")
	b.waitPage("/ui/home", "Home")
	b.waitText("#algorithms", "Otsu segmentation", 10*time.Second)
	require.Contains(t, strings.ToLower(b.text("#algorithms")), "live")
	require.Contains(t, b.text("#algorithms"), "seg-web.algocloud.test")
	b.shot("16-home", wide, narrow)

	// Sign out forgets the token and the forms.
	b.click("#sign-out")
	b.waitJS("signed out", `document.querySelector('#token') && sessionStorage.length === 0`, 10*time.Second)
	b.noProblems()
	b.mu.Lock()
	for _, l := range b.network {
		t.Log("network:", l)
	}
	b.mu.Unlock()
}
