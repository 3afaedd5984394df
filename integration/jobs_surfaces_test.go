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

	"github.com/algocloud/algocloud/internal/platform"
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

// jobsRig is a platform with the segmentation example live as "seg", and
// the real CLI that sees only the endpoint token (ALGOCLOUD_TOKEN unset).
type jobsRig struct {
	p       *platform.Platform
	c       *client
	owner   string
	id      string
	epToken string
	env     []string
	run     func(args ...string) (string, string, error)
	dir     string
}

func newJobsRig(t *testing.T, opts ...func(*platform.Options)) *jobsRig {
	return newJobsRigOf(t, func(c *client) (string, string) {
		id, _, tok := walk(t, c, "seg", "segmentation", "image")
		return id, tok
	}, opts...)
}

// newJobsRigOf is newJobsRig with the endpoint deploy makes live (it
// returns the deployment's id and the endpoint's token).
func newJobsRigOf(t *testing.T, deploy func(c *client) (id, epToken string), opts ...func(*platform.Options)) *jobsRig {
	p := startPlatform(t, t.TempDir(), opts...)
	t.Cleanup(p.Stop)
	r := &jobsRig{p: p, owner: devToken(t, p), dir: t.TempDir()}
	r.c = newClient(t, p, r.owner)
	r.id, r.epToken = deploy(r.c)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALGOCLOUD_") {
			r.env = append(r.env, kv)
		}
	}
	r.run = cliRunner(t, r.envWith("ALGOCLOUD_API="+p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN="+r.epToken))
	return r
}

// envWith is the environment without ALGOCLOUD_ variables, plus kv, in a
// slice of its own (an append to r.env could share its array).
func (r *jobsRig) envWith(kv ...string) []string {
	return append(append([]string(nil), r.env...), kv...)
}

// photos writes n PNGs into a folder (half of them in a subfolder).
func (r *jobsRig) photos(t *testing.T, name string, n int) string {
	dir := filepath.Join(r.dir, name)
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "more"), 0o755))
	for i := 0; i < n; i++ {
		f := fmt.Sprintf("p%03d.png", i)
		if i%2 == 1 {
			f = "more/" + f
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, f), samplePNG(t, 20+i%9, 16), 0o644))
	}
	return dir
}

// python runs script with the generated client module in its folder.
func (r *jobsRig) python(t *testing.T, script string) string {
	pyDir := t.TempDir()
	res := r.c.Do(http.MethodGet, "/api/v1/deployments/"+r.id+"/clients", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Raw))
	module := res.Body["clients"].(map[string]any)["python"].(map[string]any)["content"].(string)
	require.Contains(t, module, `PLATFORM = "`+r.p.APIURL+`"`, "the client knows the platform it came from")
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud_client.py"), []byte(module), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud-ca.pem"), r.p.CA.RootPEM(), 0o644))
	cmd := exec.Command("/usr/bin/python3", "-c", script)
	cmd.Dir = pyDir
	cmd.Env = r.envWith("ALGOCLOUD_ENDPOINT_TOKEN=" + r.epToken)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, string(out))
	return string(out)
}

// signIn opens the wizard in Chromium, signed in as the owner.
func (r *jobsRig) signIn(t *testing.T) *browser {
	br := newBrowser(t, r.p.APIURL)
	br.run(chromedp.Navigate(r.p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	br.setValue("#token", r.owner)
	br.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	br.waitPage("/ui/home", "Home")
	return br
}

// TestBatchSurfaces: algocloud batch (a folder, progress on stderr, the
// outputs' zip; interrupted, it leaves the batch running and prints the
// resume command, which finishes it), the Python client's batch, and the
// wizard's Jobs page showing the batches and starting one from a zip.
func TestBatchSurfaces(t *testing.T) {
	r := newJobsRig(t)
	photos := r.photos(t, "photos", 4)

	outZip := filepath.Join(r.dir, "masks.zip")
	out, errOut, err := r.run("batch", "seg", photos, "-o", outZip)
	require.NoError(t, err, out+errOut)
	require.Contains(t, errOut, "4 done, 0 failed, 0 left", errOut)
	batchID := regexp.MustCompile(`batch (\S+): 4 items`).FindStringSubmatch(errOut)
	require.NotNil(t, batchID, errOut)
	requireZipOfMasks(t, outZip, 4)
	out, errOut, err = r.run("batch", "seg", photos, "-o", outZip)
	require.Error(t, err, "OUT exists: %s", out)
	require.Contains(t, errOut, "exists")

	// Ctrl-C while it runs: the batch goes on; the printed command resumes it.
	many := r.photos(t, "many", 40)
	cmd := exec.Command(algocloudBinary(t), "batch", "--concurrency", "1", "--poll", "100ms", "seg", many, "-o", filepath.Join(r.dir, "many.zip"))
	cmd.Env = r.envWith("ALGOCLOUD_API="+r.p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN="+r.epToken)
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	require.Eventually(t, func() bool { return strings.Contains(stderr.String(), " done, ") }, 2*time.Minute, 50*time.Millisecond, "no progress: %s", stderr)
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	require.Error(t, cmd.Wait(), "an interrupted batch command fails")
	resume := regexp.MustCompile(`algocloud (batch --api \S+ seg --resume (\S+) -o \S+)`).FindStringSubmatch(stderr.String())
	require.NotNil(t, resume, stderr.String())
	got := r.c.Do(http.MethodGet, "/api/v1/endpoints/seg/batches/"+resume[2], nil)
	require.Equal(t, http.StatusOK, got.Status, string(got.Raw))
	require.NotEqual(t, "canceled", got.Str("status"), "Ctrl-C does not cancel the batch")
	out, errOut, err = r.run(strings.Fields(resume[1])...)
	require.NoError(t, err, out+errOut)
	requireZipOfMasks(t, filepath.Join(r.dir, "many.zip"), 40)

	// The generated Python client's batch, with the endpoint token.
	pyOut := r.python(t, fmt.Sprintf(`
import zipfile
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
seen = []
b = algo.batch(%q, out="py.zip", progress=seen.append, interval=0.2)
print("batch", b.status, b.counts["done"], b.counts["failed"], len(seen) > 0)
with zipfile.ZipFile("py.zip") as z:
    print("zip", len(z.namelist()))
`, photos))
	require.Contains(t, pyOut, "batch succeeded 4 0 True")
	require.Contains(t, pyOut, "zip 4")

	// The wizard's Jobs page: the batches with full bars; a batch started
	// from the page's form runs to its end there.
	br := r.signIn(t)
	br.run(chromedp.Navigate(r.p.APIURL + "/ui/deployments/" + r.id + "/use"))
	br.waitPage("/use", "Using the Algorithm")
	br.click("#to-jobs")
	br.waitPage("/jobs", "Jobs")
	br.waitJS("the CLI's batch with its bar full", `(() => { const s = document.querySelector('section.batch[data-id="`+batchID[1]+`"]');
		return !!s && s.dataset.status === 'succeeded' && s.querySelector('progress').value === 4 && s.querySelector('progress').max === 4; })()`, 20*time.Second)
	require.Contains(t, br.text(`section.batch[data-id="`+batchID[1]+`"] .batch-counts`), "4 done")
	br.shot("jobs-batches", wide, narrow)
	before := 0
	br.eval(`document.querySelectorAll('section.batch').length`, &before)
	br.run(chromedp.SetUploadFiles("#batch-archive", []string{zipOfFiles(t, photos)}, chromedp.ByQuery))
	br.click("#start-batch")
	br.waitText("#jobs-alert", "started", 20*time.Second)
	br.waitJS("the form's batch listed and over", fmt.Sprintf(`document.querySelectorAll('section.batch').length === %d &&
		[...document.querySelectorAll('section.batch')].every((s) => s.dataset.status === 'succeeded')`, before+1), 2*time.Minute)
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

// zipOfFiles zips the files at a folder's top for the page's upload.
func zipOfFiles(t *testing.T, dir string) string {
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

// TestPredictionSurfaces: algocloud predict --async (with --wait, and
// followed by predictions wait/get/ls), the Python client's predict_async,
// wait and output, and the wizard's Jobs page listing the predictions
// beside a batch.
func TestPredictionSurfaces(t *testing.T) {
	r := newJobsRig(t)
	in := filepath.Join(r.dir, "in.png")
	require.NoError(t, os.WriteFile(in, samplePNG(t, 40, 30), 0o644))

	// predict --async --wait writes the mask as predict -o does.
	mask := filepath.Join(r.dir, "mask.png")
	out, errOut, err := r.run("predict", "--async", "--wait", "-o", mask, "seg", in)
	require.NoError(t, err, out+errOut)
	b, err := os.ReadFile(mask)
	require.NoError(t, err)
	requirePNGWidth(t, b, 40, "the async mask")

	// predict --async prints the id; predictions wait/get/ls follow it.
	out, errOut, err = r.run("predict", "--async", "seg", in)
	require.NoError(t, err, errOut)
	predID := strings.TrimSpace(out)
	require.NotEmpty(t, predID, errOut)
	require.Contains(t, errOut, "algocloud predictions get seg "+predID)
	mask2 := filepath.Join(r.dir, "mask2.png")
	out, errOut, err = r.run("predictions", "wait", "-o", mask2, "seg", predID)
	require.NoError(t, err, out+errOut)
	b, err = os.ReadFile(mask2)
	require.NoError(t, err)
	requirePNGWidth(t, b, 40, "predictions wait -o")
	out, errOut, err = r.run("predictions", "get", "seg", predID)
	require.NoError(t, err, errOut)
	require.Regexp(t, `status\s+succeeded`, out)
	require.Regexp(t, `output\s+\S+/predictions/`+regexp.QuoteMeta(predID)+`/output \(image/png`, out)
	out, errOut, err = r.run("predictions", "ls", "seg")
	require.NoError(t, err, errOut)
	require.Regexp(t, regexp.QuoteMeta(predID)+`\s+succeeded`, out)

	// A token that is not this endpoint's sees nothing of it.
	out, errOut, err = cliRunner(t, r.envWith("ALGOCLOUD_API="+r.p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN=ep_wrong"))("predictions", "get", "seg", predID)
	require.Error(t, err, out)
	require.Regexp(t, `40[14] `, errOut)

	// The generated Python client with the endpoint token.
	pyOut := r.python(t, fmt.Sprintf(`
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
p = algo.predict_async(%q)
assert p.status in ("starting", "processing", "succeeded"), p.data
mask = p.wait(timeout=120, interval=0.1).output()
print("mask", p.status, mask.shape, mask.dtype)
page, _ = algo.predictions(limit=50)
print("listed", p.id in [q.id for q in page], %q in [q.id for q in page])
`, in, predID))
	require.Contains(t, pyOut, "mask succeeded (30, 40) uint8")
	require.Contains(t, pyOut, "listed True True")

	// A batch beside them, then the Jobs page shows both.
	photos := r.photos(t, "photos", 2)
	out, errOut, err = r.run("batch", "seg", photos, "-o", filepath.Join(r.dir, "masks.zip"))
	require.NoError(t, err, out+errOut)
	batchID := regexp.MustCompile(`batch (\S+): 2 items`).FindStringSubmatch(errOut)
	require.NotNil(t, batchID, errOut)

	br := r.signIn(t)
	br.run(chromedp.Navigate(r.p.APIURL + "/ui/deployments/" + r.id + "/jobs"))
	br.waitPage("/jobs", "Jobs")
	row := `#predictions tr.prediction[data-id="` + predID + `"]`
	br.waitJS("the CLI's prediction listed as succeeded", `!!document.querySelector('`+row+`[data-status="succeeded"]')`, 20*time.Second)
	require.Contains(t, br.text(row+" button[data-download]"), "Download")
	var rows int
	br.eval(`document.querySelectorAll('#predictions tr.prediction').length`, &rows)
	require.Equal(t, 3, rows, "the two CLI predictions and the Python one")
	br.waitJS("the batch beside them", `!!document.querySelector('section.batch[data-id="`+batchID[1]+`"][data-status="succeeded"]')`, 20*time.Second)
	br.click(row + ` button[data-webhooks]`)
	br.waitJS("its webhook deliveries shown", `!!document.querySelector('`+row+` + tr .deliveries:not([hidden]) p, `+row+` + tr .deliveries:not([hidden]) table')`, 10*time.Second)
	br.shot("jobs", wide, narrow)
	br.noProblems()
}
