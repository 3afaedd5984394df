package templates_test

// The generated jQuery page in Debian's Chromium (headless), driven by
// chromedp, against live HTTPS endpoints: the page is opened from disk, as a
// user who downloaded it would, the token is typed in, the input picked, and
// the result the page shows and offers for download is checked.
//
// Chromium trusts the endpoints' certificates through
// --ignore-certificate-errors-spki-list: the base64 SHA-256 of the SPKI of each
// endpoint's own certificate (Chromium's IgnoreErrorsCertVerifier; it only
// works with --user-data-dir). Only those keys are accepted, not every
// certificate: an endpoint whose key is not listed is refused, which the test
// checks too. (The alternative, the test CA in an NSS database in a temporary
// HOME, needs certutil from libnss3-tools, which the machine does not have.)
//
// To keep the screenshots in docs/screenshots (client-jquery-*.png):
//
//	ALGOCLOUD_SCREENSHOTS=1 go test ./templates -run TestClientsJQueryInChromium -v

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/templates"
)

// requireToolsEnv, when set (scripts/test.sh sets it), turns a missing
// external tool (Chromium, oapi-codegen) into a failure instead of a skip.
const requireToolsEnv = "ALGOCLOUD_REQUIRE_TOOLS"

// missingTool skips the test, or fails it when requireToolsEnv is set.
func missingTool(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(requireToolsEnv) != "" {
		t.Fatalf("%s (%s is set: required tools must be present; scripts/setup-test.sh installs them)", msg, requireToolsEnv)
	}
	t.Skipf("%s (scripts/setup-test.sh installs it)", msg)
}

// spkiPin is the base64 SHA-256 of a PEM certificate file's public key, the
// form --ignore-certificate-errors-spki-list takes.
func spkiPin(t *testing.T, certFile string) string {
	t.Helper()
	raw, err := os.ReadFile(certFile)
	require.NoError(t, err)
	block, _ := pem.Decode(raw)
	require.NotNil(t, block, certFile)
	cert, err := x509.ParseCertificate(block.Bytes)
	require.NoError(t, err)
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}

// pageBrowser is one headless Chromium, one tab, that records the page's
// script errors.
type pageBrowser struct {
	t   *testing.T
	ctx context.Context

	mu       sync.Mutex
	problems []string
}

// newPageBrowser starts Chromium trusting exactly the listed SPKI pins.
func newPageBrowser(t *testing.T, pins ...string) *pageBrowser {
	t.Helper()
	if _, err := os.Stat(testenv.ChromiumPath); err != nil {
		missingTool(t, "Chromium is not installed at %s", testenv.ChromiumPath)
	}
	// The SPKI list is ignored without a user data dir; NewChromium gives
	// every browser one.
	ctx := testenv.NewChromium(t, 1000, 900,
		chromedp.Flag("ignore-certificate-errors-spki-list", strings.Join(pins, ",")))
	b := &pageBrowser{t: t, ctx: ctx}
	chromedp.ListenTarget(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventExceptionThrown:
			msg := e.ExceptionDetails.Text
			if e.ExceptionDetails.Exception != nil {
				msg += " " + e.ExceptionDetails.Exception.Description
			}
			b.problem("exception: " + msg)
		case *runtime.EventConsoleAPICalled:
			if e.Type == runtime.APITypeError || e.Type == runtime.APITypeAssert {
				var parts []string
				for _, a := range e.Args {
					parts = append(parts, string(a.Value)+a.Description)
				}
				b.problem("console." + string(e.Type) + ": " + strings.Join(parts, " "))
			}
		}
	})
	// The first Run starts the browser and ties it to ctx.
	require.NoError(t, chromedp.Run(ctx, runtime.Enable()))
	return b
}

func (b *pageBrowser) problem(s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.problems = append(b.problems, s)
}

// noProblems fails on any script error the pages reported so far.
func (b *pageBrowser) noProblems(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	require.Empty(t, b.problems, "the page reported script errors")
}

func (b *pageBrowser) run(t *testing.T, actions ...chromedp.Action) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 2*time.Minute)
	defer cancel()
	require.NoError(t, chromedp.Run(ctx, actions...))
}

// eval runs JavaScript in the page, awaiting a promise, into res.
func (b *pageBrowser) eval(t *testing.T, js string, res any) {
	t.Helper()
	b.run(t, chromedp.Evaluate(js, res, func(p *runtime.EvaluateParams) *runtime.EvaluateParams {
		return p.WithAwaitPromise(true)
	}))
}

// waitJS waits until the expression is true, failing with what the page
// shows when it never is.
func (b *pageBrowser) waitJS(t *testing.T, what, js string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var ok bool
		b.eval(t, "!!("+js+")", &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var text string
			b.eval(t, `document.body ? document.body.innerText : ''`, &text)
			t.Fatalf("waited a minute for %s; the page shows:\n%s", what, text)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (b *pageBrowser) text(t *testing.T, sel string) string {
	t.Helper()
	var s string
	b.eval(t, fmt.Sprintf(`(document.querySelector(%s)||{}).innerText || ''`, jsString(sel)), &s)
	return s
}

// visible reports whether sel is rendered: a hidden attribute that the
// page's CSS overrides does not count.
func (b *pageBrowser) visible(t *testing.T, sel string) bool {
	t.Helper()
	var ok bool
	b.eval(t, fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden' })()`, jsString(sel)), &ok)
	return ok
}

// open loads a generated page from disk and waits for its script.
func (b *pageBrowser) open(t *testing.T, file string) {
	t.Helper()
	b.run(t, chromedp.Navigate("file://"+file))
	b.waitJS(t, "the page's jQuery", `window.jQuery && document.querySelector('#send')`)
}

// setToken replaces the token field's text by typing it.
func (b *pageBrowser) setToken(t *testing.T, token string) {
	t.Helper()
	b.eval(t, `document.querySelector('#token').value = ''`, nil)
	b.run(t, chromedp.SendKeys("#token", token, chromedp.ByQuery))
}

// send presses Send and waits until the page has finished with the answer:
// a result ("Done.") or an error.
func (b *pageBrowser) send(t *testing.T) string {
	t.Helper()
	b.eval(t, `document.querySelector('#status').textContent = ''`, nil)
	b.run(t, chromedp.Click("#send", chromedp.ByQuery))
	b.waitJS(t, "the answer", `(() => { const s = document.querySelector('#status');
		return !document.querySelector('#send').disabled && (s.classList.contains('bad') || s.textContent === 'Done.') })()`)
	return b.text(t, "#status")
}

// download is what the page offers under its download link.
type download struct {
	Href, Name, Label, Type string
	Body                    []byte
}

// downloaded fetches the download link's blob, as saving it would.
func (b *pageBrowser) downloaded(t *testing.T) download {
	t.Helper()
	var res struct {
		Href, Name, Label, Type, B64 string
	}
	b.eval(t, `(async () => {
		const a = document.querySelector('#download');
		const r = await fetch(a.href);
		const bytes = new Uint8Array(await r.arrayBuffer());
		let s = '';
		for (let i = 0; i < bytes.length; i += 0x8000) { s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000)); }
		return {href: a.href, name: a.getAttribute('download'), label: a.innerText, type: r.headers.get('Content-Type') || '', b64: btoa(s)};
	})()`, &res)
	body, err := base64.StdEncoding.DecodeString(res.B64)
	require.NoError(t, err)
	return download{Href: res.Href, Name: res.Name, Label: res.Label, Type: res.Type, Body: body}
}

// shownImage draws the result <img> on a canvas and returns its pixels.
func (b *pageBrowser) shownImage(t *testing.T) *image.NRGBA {
	t.Helper()
	b.waitJS(t, "the result image", `(() => { const i = document.querySelector('#out-img'); return !i.hidden && i.complete && i.naturalWidth > 0 })()`)
	var res struct {
		W, H int
		B64  string
	}
	b.eval(t, `(() => {
		const img = document.querySelector('#out-img');
		const c = document.createElement('canvas');
		c.width = img.naturalWidth; c.height = img.naturalHeight;
		const g = c.getContext('2d');
		g.drawImage(img, 0, 0);
		const px = g.getImageData(0, 0, c.width, c.height).data;
		let s = '';
		for (let i = 0; i < px.length; i += 0x8000) { s += String.fromCharCode.apply(null, px.subarray(i, i + 0x8000)); }
		return {w: c.width, h: c.height, b64: btoa(s)};
	})()`, &res)
	pix, err := base64.StdEncoding.DecodeString(res.B64)
	require.NoError(t, err)
	require.Len(t, pix, res.W*res.H*4)
	return &image.NRGBA{Pix: pix, Stride: res.W * 4, Rect: image.Rect(0, 0, res.W, res.H)}
}

// screenshot saves the whole page as name.png under dir.
func (b *pageBrowser) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	var height int64
	b.eval(t, `Math.ceil(document.documentElement.scrollHeight)`, &height)
	var buf []byte
	b.run(t, chromedp.EmulateViewport(1000, height, func(*emulation.SetDeviceMetricsOverrideParams, *emulation.SetTouchEmulationEnabledParams) {}),
		chromedp.Sleep(200*time.Millisecond),
		chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			buf, err = page.CaptureScreenshot().WithFormat(page.CaptureScreenshotFormatPng).Do(ctx)
			return err
		}),
		chromedp.EmulateViewport(1000, 900))
	require.NoError(t, os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644))
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// liveCode is the algorithm TestClientsLive serves for in->out.
func liveCode(t *testing.T, in, out spec.IOType) string {
	t.Helper()
	for _, lc := range liveCases() {
		if lc.in == in && lc.out == out {
			return lc.code
		}
	}
	t.Fatalf("no live case for %s->%s", in, out)
	return ""
}

// writePage renders the jQuery page for an endpoint into dir and returns its path.
func writePage(t *testing.T, dir, name, apiName string, ep endpoint, in, out spec.IOType) string {
	t.Helper()
	clients, err := templates.Clients(templates.ClientData{
		Name: name, APIName: apiName, Endpoint: ep.URL,
		Input: in, Output: out, CAURL: "http://127.0.0.1:8080/api/ca.pem",
	})
	require.NoError(t, err)
	c := clients[templates.ClientJQuery]
	path := filepath.Join(dir, c.Filename)
	require.NoError(t, os.WriteFile(path, []byte(c.Content), 0o644))
	return path
}

// pagePicture is a 240x160 picture, large enough to see in a screenshot:
// colour gradients with a dark disc.
func pagePicture() (*image.NRGBA, []byte) {
	img := image.NewNRGBA(image.Rect(0, 0, 240, 160))
	for y := 0; y < 160; y++ {
		for x := 0; x < 240; x++ {
			c := color.NRGBA{uint8(x), uint8(y * 3 / 2), uint8(255 - x/2), 0xff}
			if dx, dy := x-120, y-80; dx*dx+dy*dy < 50*50 {
				c = color.NRGBA{20, 30, uint8(40 + x/4), 0xff}
			}
			img.SetNRGBA(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return img, b.Bytes()
}

// TestClientsJQueryInChromium opens the generated page of image->image,
// image->JSON, numpy->numpy and JSON->JSON endpoints in Chromium, sends an
// input with the token and checks what the page shows and offers for
// download; a wrong token, a raising predict and an endpoint whose
// certificate the browser does not trust show their errors in the page.
func TestClientsJQueryInChromium(t *testing.T) {
	requireTools(t)
	ca := newTestCA(t)
	// An endpoint with its own CA, whose key the browser is not told about:
	// its certificate must be refused. No aai_main.py: nothing gets past TLS.
	otherCA := newTestCA(t)
	untrusted := startEndpoint(t, spec.Image, spec.Image, "", &otherCA)
	b := newPageBrowser(t, spkiPin(t, ca.CertFile))

	shots := t.TempDir()
	if os.Getenv("ALGOCLOUD_SCREENSHOTS") != "" {
		shots = filepath.Join("..", "docs", "screenshots")
		require.NoError(t, os.MkdirAll(shots, 0o755))
	}
	dir := t.TempDir()
	picture, picturePNG := pagePicture()
	pictureFile := filepath.Join(dir, "picture.png")
	require.NoError(t, os.WriteFile(pictureFile, picturePNG, 0o644))

	t.Run("image->image", func(t *testing.T) {
		ep := startEndpoint(t, spec.Image, spec.Image, liveCode(t, spec.Image, spec.Image), &ca)
		b.open(t, writePage(t, dir, "Invert colours", "invert", ep, spec.Image, spec.Image))
		b.setToken(t, liveToken)
		b.run(t, chromedp.SetUploadFiles("#file", []string{pictureFile}, chromedp.ByQuery))
		require.Equal(t, "Done.", b.send(t))
		require.Equal(t, "Result: image/png", b.text(t, "#result-title"))
		require.True(t, b.visible(t, "#out-img"))
		require.False(t, b.visible(t, "#out-text"))

		// The picture the page shows, read back through a canvas, is the
		// input inverted.
		requireInvertedImage(t, picture, b.shownImage(t))
		// The download link holds the endpoint's PNG.
		d := b.downloaded(t)
		require.True(t, strings.HasPrefix(d.Href, "blob:"), d.Href)
		require.Equal(t, "output.png", d.Name)
		require.Equal(t, fmt.Sprintf("Download output.png (%d bytes)", len(d.Body)), d.Label)
		require.True(t, b.visible(t, "#download"))
		got, err := png.Decode(bytes.NewReader(d.Body))
		require.NoError(t, err)
		requireInvertedImage(t, picture, got)
		b.screenshot(t, shots, "client-jquery-image")
		b.noProblems(t)

		// A wrong token: the endpoint's error, in the page, and no result.
		b.setToken(t, "ep_wrong")
		require.Equal(t, `HTTP 401: unauthorized: send the endpoint's token as "Authorization: Bearer <token>"`, b.send(t))
		require.False(t, b.visible(t, "#result"))
		b.screenshot(t, t.TempDir(), "wrong-token")
		b.noProblems(t)
	})

	t.Run("image->json", func(t *testing.T) {
		ep := startEndpoint(t, spec.Image, spec.JSON, liveCode(t, spec.Image, spec.JSON), &ca)
		b.open(t, writePage(t, dir, "Measure an image", "measure", ep, spec.Image, spec.JSON))
		b.setToken(t, liveToken)
		b.run(t, chromedp.SetUploadFiles("#file", []string{pictureFile}, chromedp.ByQuery))
		require.Equal(t, "Done.", b.send(t))
		b.waitJS(t, "the JSON text", `!document.querySelector('#out-text').hidden`)
		require.Equal(t, "Result: application/json", b.text(t, "#result-title"))
		require.True(t, b.visible(t, "#out-text"))
		require.False(t, b.visible(t, "#out-img"), "no image for a JSON answer")
		var sum float64
		for i := 0; i < len(picture.Pix); i += 4 {
			sum += float64(picture.Pix[i]) + float64(picture.Pix[i+1]) + float64(picture.Pix[i+2])
		}
		first := picture.NRGBAAt(0, 0)
		want := map[string]any{"height": 160.0, "width": 240.0, "sum": sum, "first": []any{float64(first.R), float64(first.G), float64(first.B)}}
		var shown map[string]any
		require.NoError(t, json.Unmarshal([]byte(b.text(t, "#out-text")), &shown))
		require.Equal(t, want, shown)
		d := b.downloaded(t)
		require.Equal(t, "output.json", d.Name)
		var saved map[string]any
		require.NoError(t, json.Unmarshal(d.Body, &saved), "%s", d.Body)
		require.Equal(t, want, saved)
		b.screenshot(t, shots, "client-jquery-json")
		b.noProblems(t)

		// predict raises on a first pixel of red 1: the page shows the
		// error and the Python traceback.
		boom := image.NewNRGBA(image.Rect(0, 0, 3, 2))
		boom.SetNRGBA(0, 0, color.NRGBA{1, 0, 0, 0xff})
		var bb bytes.Buffer
		require.NoError(t, png.Encode(&bb, boom))
		boomFile := filepath.Join(dir, "boom.png")
		require.NoError(t, os.WriteFile(boomFile, bb.Bytes(), 0o644))
		b.run(t, chromedp.SetUploadFiles("#file", []string{boomFile}, chromedp.ByQuery))
		status := b.send(t)
		require.True(t, strings.HasPrefix(status, "HTTP 500: predict_failed: "), status)
		b.waitJS(t, "the traceback", `!document.querySelector('#traceback').hidden`)
		require.Contains(t, b.text(t, "#traceback"), "ValueError: pixel says boom")
		require.False(t, b.visible(t, "#result"))
		b.noProblems(t)
	})

	t.Run("numpy->numpy", func(t *testing.T) {
		ep := startEndpoint(t, spec.Numpy, spec.Numpy, liveCode(t, spec.Numpy, spec.Numpy), &ca)
		b.open(t, writePage(t, dir, "Double an array", "double", ep, spec.Numpy, spec.Numpy))
		b.setToken(t, liveToken)
		npyFile := filepath.Join(dir, "input.npy")
		require.NoError(t, os.WriteFile(npyFile, npy(2, 3, []float32{0, 1, 2, 3, 4.5, -1}), 0o644))
		b.run(t, chromedp.SetUploadFiles("#file", []string{npyFile}, chromedp.ByQuery))
		require.Equal(t, "Done.", b.send(t))
		b.waitJS(t, "the array's header", `!document.querySelector('#out-text').hidden`)
		require.Equal(t, "numpy array {'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", b.text(t, "#out-text"))
		d := b.downloaded(t)
		require.Equal(t, "output.npy", d.Name)
		outFile := filepath.Join(t.TempDir(), "output.npy")
		require.NoError(t, os.WriteFile(outFile, d.Body, 0o644))
		out, err := exec.Command(python, "-c", "import numpy as np, sys; a = np.load(sys.argv[1]); print(a.dtype, a.shape, a.tolist())", outFile).CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Equal(t, "float64 (2, 3) [[0.0, 2.0, 4.0], [6.0, 9.0, -2.0]]", strings.TrimSpace(string(out)))
		b.noProblems(t)
	})

	t.Run("json->json", func(t *testing.T) {
		ep := startEndpoint(t, spec.JSON, spec.JSON, liveCode(t, spec.JSON, spec.JSON), &ca)
		b.open(t, writePage(t, dir, "Echo JSON", "echo", ep, spec.JSON, spec.JSON))
		b.setToken(t, liveToken)
		// Loading a .json file fills the text field, which is what is sent.
		jsonFile := filepath.Join(dir, "input.json")
		require.NoError(t, os.WriteFile(jsonFile, []byte(`{"a": [1, 2, 3], "b": "é"}`), 0o644))
		b.run(t, chromedp.SetUploadFiles("#file", []string{jsonFile}, chromedp.ByQuery))
		b.waitJS(t, "the file in the text field", `document.querySelector('#json').value.includes('"b"')`)
		require.Equal(t, "Done.", b.send(t))
		b.waitJS(t, "the JSON text", `!document.querySelector('#out-text').hidden`)
		require.JSONEq(t, `{"got": {"a": [1, 2, 3], "b": "é"}}`, b.text(t, "#out-text"))
		require.JSONEq(t, `{"got": {"a": [1, 2, 3], "b": "é"}}`, string(b.downloaded(t).Body))

		// Invalid JSON never leaves the page.
		b.eval(t, `document.querySelector('#json').value = '{"a": '`, nil)
		status := b.send(t)
		require.True(t, strings.HasPrefix(status, "The JSON input is not valid JSON: "), status)
		b.noProblems(t)
	})

	t.Run("untrusted certificate", func(t *testing.T) {
		b.open(t, writePage(t, dir, "Untrusted endpoint", "untrusted", untrusted, spec.Image, spec.Image))
		b.setToken(t, liveToken)
		b.run(t, chromedp.SetUploadFiles("#file", []string{pictureFile}, chromedp.ByQuery))
		status := b.send(t)
		require.True(t, strings.HasPrefix(status, "The request did not reach the endpoint (error). "), status)
		require.False(t, b.visible(t, "#result"))
		b.noProblems(t)
	})
}

// requireInvertedImage checks that got is want with every RGB channel
// inverted, fully opaque.
func requireInvertedImage(t *testing.T, want *image.NRGBA, got image.Image) {
	t.Helper()
	require.Equal(t, want.Bounds(), got.Bounds())
	for y := 0; y < want.Bounds().Dy(); y++ {
		for x := 0; x < want.Bounds().Dx(); x++ {
			w := want.NRGBAAt(x, y)
			g := color.NRGBAModel.Convert(got.At(x, y)).(color.NRGBA)
			require.Equal(t, color.NRGBA{255 - w.R, 255 - w.G, 255 - w.B, 0xff}, g, "pixel (%d, %d)", x, y)
		}
	}
}
