package integration

// The surfaces of async predictions and batches (issue 11 item 5) against
// the whole platform and a real deployed endpoint: the real algocloud
// binary's predict --async, predictions and batch commands, the generated
// Python client run by /usr/bin/python3, and the wizard's Jobs page in
// Chromium.

import (
	"archive/zip"
	"bytes"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
)

// cliRunner runs the real algocloud binary with env and returns its
// stdout and stderr apart.
func cliRunner(t *testing.T, env []string) func(args ...string) (string, string, error) {
	bin := algocloudBinary(t)
	return func(args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		return out.String(), errOut.String(), err
	}
}

// requirePNGWidth fails unless file holds a PNG w pixels wide.
func requirePNGWidth(t *testing.T, data []byte, w int, what string) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	require.NoError(t, err, what)
	require.Equal(t, w, img.Bounds().Dx(), what)
}

func TestAsyncJobsSurfaces(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	owner := devToken(t, p)
	c := newClient(t, p, owner)
	id, _, epToken := walk(t, c, "seg", "segmentation", "image")
	dir := t.TempDir()
	in := filepath.Join(dir, "in.png")
	require.NoError(t, os.WriteFile(in, samplePNG(t, 40, 30), 0o644))

	// The CLI with the endpoint token only (ALGOCLOUD_TOKEN unset).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALGOCLOUD_") {
			env = append(env, kv)
		}
	}
	run := cliRunner(t, append(env, "ALGOCLOUD_API="+p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN="+epToken))

	// predict --async --wait writes the mask as predict -o does.
	mask := filepath.Join(dir, "mask.png")
	out, errOut, err := run("predict", "--async", "--wait", "-o", mask, "seg", in)
	require.NoError(t, err, out+errOut)
	b, err := os.ReadFile(mask)
	require.NoError(t, err)
	requirePNGWidth(t, b, 40, "the async mask")

	// predict --async prints the id; predictions wait/get/ls follow it.
	out, errOut, err = run("predict", "--async", "seg", in)
	require.NoError(t, err, errOut)
	predID := strings.TrimSpace(out)
	require.NotEmpty(t, predID, errOut)
	require.Contains(t, errOut, "algocloud predictions get seg "+predID)
	mask2 := filepath.Join(dir, "mask2.png")
	out, errOut, err = run("predictions", "wait", "-o", mask2, "seg", predID)
	require.NoError(t, err, out+errOut)
	b, err = os.ReadFile(mask2)
	require.NoError(t, err)
	requirePNGWidth(t, b, 40, "predictions wait -o")
	out, errOut, err = run("predictions", "get", "seg", predID)
	require.NoError(t, err, errOut)
	require.Regexp(t, `status\s+succeeded`, out)
	out, errOut, err = run("predictions", "ls", "seg")
	require.NoError(t, err, errOut)
	require.Contains(t, out, predID)
	require.Regexp(t, regexp.QuoteMeta(predID)+`\s+succeeded`, out)

	// Another user's token, or none that fits, sees nothing of it.
	out, errOut, err = cliRunner(t, append(env, "ALGOCLOUD_API="+p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN=ep_wrong"))("predictions", "get", "seg", predID)
	require.Error(t, err, out)
	require.Regexp(t, `40[14]`, errOut)

	// batch: a folder of PNGs, progress on stderr, the outputs' zip.
	photos := filepath.Join(dir, "photos")
	require.NoError(t, os.MkdirAll(filepath.Join(photos, "more"), 0o755))
	for i, name := range []string{"a.png", "b.png", "more/c.png", "more/d.png"} {
		require.NoError(t, os.WriteFile(filepath.Join(photos, name), samplePNG(t, 20+i, 16), 0o644))
	}
	outZip := filepath.Join(dir, "masks.zip")
	out, errOut, err = run("batch", "seg", photos, "-o", outZip)
	require.NoError(t, err, out+errOut)
	require.Contains(t, errOut, "4 done, 0 failed, 0 left", errOut)
	batchID := regexp.MustCompile(`batch (\S+): 4 items`).FindStringSubmatch(errOut)
	require.NotNil(t, batchID, errOut)
	requireZipOfMasks(t, outZip, 4)
	// --resume follows a batch by its id (here: already over) and downloads again.
	again := filepath.Join(dir, "again.zip")
	out, errOut, err = run("batch", "seg", "--resume", batchID[1], "-o", again)
	require.NoError(t, err, out+errOut)
	requireZipOfMasks(t, again, 4)

	// The generated Python client, with the endpoint token, against the
	// live platform: predict_async, wait, output, and a batch.
	pyDir := t.TempDir()
	r := c.Do(http.MethodGet, "/api/v1/deployments/"+id+"/clients", nil)
	require.Equal(t, http.StatusOK, r.Status, string(r.Raw))
	module := r.Body["clients"].(map[string]any)["python"].(map[string]any)["content"].(string)
	require.Contains(t, module, `PLATFORM = "`+p.APIURL+`"`)
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud_client.py"), []byte(module), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud-ca.pem"), p.CA.RootPEM(), 0o644))
	script := fmt.Sprintf(`
import os, sys, zipfile
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
p = algo.predict_async(%q)
assert p.status in ("starting", "processing", "succeeded"), p.status
mask = p.wait(timeout=120).output()
assert p.status == "succeeded", p.data
print("mask", mask.shape, mask.dtype)
assert any(q.id == p.id for q in algo.predictions(limit=50)[0])
seen = []
b = algo.batch(%q, out="py.zip", progress=seen.append)
print("batch", b.status, b.data["done"], b.data["failed"], len(seen))
with zipfile.ZipFile("py.zip") as z:
    print("zip", len(z.namelist()))
`, in, photos)
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Dir = pyDir
	cmd.Env = append(env, "ALGOCLOUD_ENDPOINT_TOKEN="+epToken)
	pyOut, err := cmd.CombinedOutput()
	require.NoError(t, err, string(pyOut))
	require.Contains(t, string(pyOut), "mask (30, 40) uint8")
	require.Regexp(t, `batch \S+ 4 0 [1-9]`, string(pyOut))
	require.Contains(t, string(pyOut), "zip 4")

	// The wizard's Jobs page shows the predictions and batches.
	br := newBrowser(t, p.APIURL)
	br.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	br.setValue("#token", owner)
	br.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	br.waitPage("/ui/home", "Home")
	br.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + id + "/use"))
	br.waitPage("/use", "Using the Algorithm")
	br.click("#to-jobs")
	br.waitPage("/jobs", "Jobs")
	br.waitJS("the CLI's prediction listed", `!!document.querySelector('#predictions tr.prediction[data-id="`+predID+`"][data-status="succeeded"]')`, 20*time.Second)
	br.waitJS("the CLI's batch with its bar full", `(() => { const s = document.querySelector('section.batch[data-id="`+batchID[1]+`"]');
		return !!s && s.querySelector('progress').value === 4 && s.querySelector('progress').max === 4; })()`, 20*time.Second)
	require.Contains(t, br.text(`section.batch[data-id="`+batchID[1]+`"] .batch-counts`), "4 done")
	br.shot("jobs", wide, narrow)

	// A batch started from the page's form runs to the end on the page.
	before := 0
	br.eval(`document.querySelectorAll('section.batch').length`, &before)
	br.run(chromedp.SetUploadFiles("#batch-archive", []string{outZipOfInputs(t, photos)}, chromedp.ByQuery))
	br.click("#start-batch")
	br.waitText("#jobs-alert", "started", 20*time.Second)
	br.waitJS("the form's batch listed and over", fmt.Sprintf(`document.querySelectorAll('section.batch').length === %d &&
		[...document.querySelectorAll('section.batch')].every((s) => ['succeeded', 'completed'].includes(s.dataset.status))`, before+1), 2*time.Minute)
	br.noProblems()
}

// requireZipOfMasks fails unless path is a zip holding n PNG masks.
func requireZipOfMasks(t *testing.T, path string, n int) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	require.NoError(t, err)
	defer zr.Close()
	pngs := 0
	for _, f := range zr.File {
		rc, err := f.Open()
		require.NoError(t, err)
		var buf bytes.Buffer
		_, err = buf.ReadFrom(rc)
		rc.Close()
		require.NoError(t, err)
		if _, err := png.Decode(bytes.NewReader(buf.Bytes())); err == nil {
			pngs++
		}
	}
	require.Equal(t, n, pngs, "PNG outputs in %s", path)
}

// outZipOfInputs zips a folder's files for the page's upload.
func outZipOfInputs(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inputs.zip")
	f, err := os.Create(path)
	require.NoError(t, err)
	defer f.Close()
	zw := zip.NewWriter(f)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		require.NoError(t, err)
		w, err := zw.Create(e.Name())
		require.NoError(t, err)
		_, err = w.Write(b)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return path
}
