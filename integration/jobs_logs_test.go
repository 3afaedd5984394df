package integration

// A prediction's logs (what predict printed) on every surface, against the
// whole platform and a real endpoint whose predict prints lines, one of them
// hostile (HTML with script, an escape sequence): the real CLI binary, the
// generated Python client run by /usr/bin/python3 and the wizard's Jobs page
// in Chromium; and the Jobs page's batch form with its webhook field.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
)

// hostileTag is printed by predict (polygonsRepo prints x["tag"]): markup
// that would run script if a page inserted it as HTML, and an escape
// sequence that would clear a terminal.
const hostileTag = `<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> &amp; ` + "\x1b[2J"

// polygonsInput is the JSON input of n unit squares, tagged.
func polygonsInput(tag string, n int) map[string]any {
	var polys [][][]float64
	for i := 0; i < n; i++ {
		x := float64(2 * i)
		polys = append(polys, [][]float64{{x, 0}, {x + 1, 0}, {x + 1, 1}, {x, 1}})
	}
	return map[string]any{"tag": tag, "polygons": polys}
}

// wantPolygonLogs is what examples/polygons (as polygonsRepo changes it)
// prints for polygonsInput(tag, n).
func wantPolygonLogs(tag string, n int) string {
	s := "start " + tag + "\nend " + tag + "\n"
	for i := 0; i < n; i++ {
		s += fmt.Sprintf("polygon %d: 4 vertices, area 1.000\n", i)
	}
	return s + fmt.Sprintf("%d polygons, total area %.3f\n", n, float64(n))
}

// TestPredictionLogsSurfaces: algocloud predict --async --wait prints the
// output on stdout and the logs on stderr between its headings, the escape
// sequence made visible (-q: none); predictions get shows them the same
// way and get --logs prints exactly them; the Python client's wait()
// returns the prediction with .logs, and a listed one reads them; the Jobs
// page's Logs button shows them as text (the markup neither rendered nor
// run), long ones collapsed; the batch form's webhook field shows the API's
// refusal beside it, and a batch started with an accepted webhook delivers
// to it.
func TestPredictionLogsSurfaces(t *testing.T) {
	r := newJobsRigOf(t, func(c *client) (string, string) {
		id, _, tok := walkJSON(t, c, "poly", polygonsRepo(t), nil)
		return id, tok
	}, func(o *platform.Options) { o.WebhookAllowLoopback = true })
	want := wantPolygonLogs(hostileTag, 2)
	in := filepath.Join(r.dir, "in.json")
	b, err := json.Marshal(polygonsInput(hostileTag, 2))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(in, b, 0o644))

	// CLI: the output on stdout, the logs headed on stderr, made safe for a terminal.
	out, errOut, err := r.run("predict", "--async", "--wait", "poly", in)
	require.NoError(t, err, out+errOut)
	var answer map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &answer), "stdout is the output alone: %s", out)
	require.EqualValues(t, 2, answer["count"])
	predID := regexp.MustCompile(`(?m)^prediction (\S+)$`).FindStringSubmatch(errOut)
	require.NotNil(t, predID, errOut)
	visible := strings.ReplaceAll(want, "\x1b", `\x1b`)
	require.Contains(t, errOut, "--- logs of prediction "+predID[1]+" (what predict printed) ---\n"+visible+"--- end of logs ---\n")
	require.NotContains(t, errOut, "\x1b", "no raw escape reaches the terminal")

	out, errOut, err = r.run("predict", "--async", "--wait", "-q", "poly", in)
	require.NoError(t, err, out+errOut)
	require.NotContains(t, errOut, "--- logs", "-q leaves the logs out")
	require.NotContains(t, out, "start ")

	out, errOut, err = r.run("predictions", "get", "poly", predID[1])
	require.NoError(t, err, errOut)
	require.Regexp(t, `status\s+succeeded`, out)
	require.NotContains(t, out, "start ", "the summary on stdout, the logs on stderr")
	require.Contains(t, errOut, visible+"--- end of logs ---\n")
	out, errOut, err = r.run("predictions", "get", "--logs", "poly", predID[1])
	require.NoError(t, err, errOut)
	require.Equal(t, want, out, "get --logs: exactly what predict printed (piped: the bytes as they are)")

	// The API's GET carries the same logs.
	got := r.c.Do(http.MethodGet, "/api/v1/endpoints/poly/predictions/"+predID[1], nil)
	require.Equal(t, http.StatusOK, got.Status, string(got.Raw))
	require.Equal(t, want, got.Str("logs"))

	// The generated Python client: wait() returns the prediction with its
	// logs; a listed one (lists leave logs out) reads them when asked.
	pyIn, err := json.Marshal(polygonsInput("py", 1))
	require.NoError(t, err)
	pyOut := r.python(t, fmt.Sprintf(`
import json
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
p = algo.predict_async(json.loads(%q)).wait(timeout=120, interval=0.1)
print("WAITED " + json.dumps([p.status, p.logs]))
page, _ = algo.predictions(limit=50)
q = [q for q in page if q.id == %q][0]
print("LISTED " + json.dumps([q.status, q.logs]))
`, pyIn, predID[1]))
	requirePyLine(t, pyOut, "WAITED ", []any{"succeeded", wantPolygonLogs("py", 1)})
	requirePyLine(t, pyOut, "LISTED ", []any{"succeeded", want})

	// A long log (25 lines) to see collapsed.
	long, err := json.Marshal(polygonsInput("long", 22))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(r.dir, "long.json"), long, 0o644))
	out, errOut, err = r.run("predict", "--async", "poly", filepath.Join(r.dir, "long.json"))
	require.NoError(t, err, errOut)
	longID := strings.TrimSpace(out)
	_, errOut, err = r.run("predictions", "wait", "-q", "poly", longID)
	require.NoError(t, err, errOut)

	// The Jobs page: the Logs button shows the text, never markup.
	br := r.signIn(t)
	br.run(chromedp.Navigate(r.p.APIURL + "/ui/deployments/" + r.id + "/jobs"))
	br.waitPage("/jobs", "Jobs")
	row := `#predictions tr.prediction[data-id="` + predID[1] + `"]`
	br.waitJS("the CLI's prediction listed", `!!document.querySelector('`+row+`[data-status="succeeded"]')`, 20*time.Second)
	br.click(row + ` button[data-logs]`)
	logsPre := row + ` + tr .logs-box:not([hidden]) pre`
	br.waitFor(logsPre)
	var shown string
	br.eval(`document.querySelector('`+logsPre+`').textContent`, &shown)
	require.Equal(t, want, shown, "the logs shown as they were printed, as text")
	require.Contains(t, br.text(row+` + tr .logs-box`), "What predict printed: 5 lines")
	var markup struct {
		Pwned    bool `json:"pwned"`
		Elements int  `json:"elements"`
	}
	br.eval(`({pwned: window.__pwned !== undefined, elements: document.querySelectorAll('.logs-box img, .logs-box script').length})`, &markup)
	require.False(t, markup.Pwned, "the printed script ran")
	require.Zero(t, markup.Elements, "the printed markup became elements")

	longRow := `#predictions tr.prediction[data-id="` + longID + `"]`
	br.click(longRow + ` button[data-logs]`)
	longBox := longRow + ` + tr .logs-box:not([hidden]) details.logs`
	br.waitFor(longBox)
	var open bool
	br.eval(`document.querySelector('`+longBox+`').open`, &open)
	require.False(t, open, "25 lines start collapsed")
	require.Contains(t, br.text(longBox+" summary"), "25 lines")
	br.click(longBox + " summary")
	br.waitJS("the long logs expanded", `document.querySelector('`+longBox+`').open && document.querySelector('`+longBox+` pre').innerText.includes('polygon 21: 4 vertices')`, 10*time.Second)
	br.shot("jobs-logs", wide, narrow)

	// The batch form's webhook: a URL the policy refuses shows the API's
	// error beside the field; an accepted one gets the batch's deliveries.
	inputs := filepath.Join(r.dir, "batch")
	require.NoError(t, os.MkdirAll(inputs, 0o755))
	for i := 0; i < 2; i++ {
		b, err := json.Marshal(polygonsInput(fmt.Sprintf("b%d", i), 1))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(inputs, fmt.Sprintf("in%d.json", i)), b, 0o644))
	}
	archive := zipOfFiles(t, inputs)
	br.run(chromedp.SetUploadFiles("#batch-archive", []string{archive}, chromedp.ByQuery))
	br.setValue("#batch-webhook", "http://169.254.169.254/latest/meta-data/")
	br.click("#start-batch")
	br.waitText("#batch-webhook-error", "169.254.169.254", 20*time.Second)
	require.Contains(t, br.text("#batch-webhook-error"), "refused")
	require.Contains(t, br.text("#jobs-alert"), "webhook")
	var invalid string
	br.eval(`document.querySelector('#batch-webhook').getAttribute('aria-invalid') || ''`, &invalid)
	require.Equal(t, "true", invalid)

	sec := r.c.Do(http.MethodPost, "/api/v1/deployments/"+r.id+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, sec.Status, string(sec.Raw))
	srv, hooks := hookReceiver(t, sec.Str("secret"))
	br.setValue("#batch-webhook", srv.URL+"/batch")
	require.Empty(t, br.text("#batch-webhook-error"), "typing clears the field's error")
	br.click("#start-batch")
	br.waitText("#jobs-alert", "started", 20*time.Second)
	batchID := regexp.MustCompile(`Batch (\S+) started`).FindStringSubmatch(br.text("#jobs-alert"))
	require.NotNil(t, batchID, br.text("#jobs-alert"))
	require.Eventually(t, func() bool {
		for _, d := range hooks() {
			if d.body["id"] == batchID[1] && d.body["status"] == "succeeded" {
				require.True(t, d.verified, "the delivery verifies with the endpoint's secret")
				require.Equal(t, "/batch", d.path)
				return true
			}
		}
		return false
	}, 2*time.Minute, 100*time.Millisecond, "the batch's completed webhook")
	card := `section.batch[data-id="` + batchID[1] + `"]`
	br.waitJS("the batch over", `!!document.querySelector('`+card+`[data-status="succeeded"]')`, time.Minute)
	br.click(card + ` button[data-webhooks]`)
	br.waitJS("its deliveries listed", `document.querySelectorAll('`+card+` .deliveries:not([hidden]) tr.delivery').length >= 2`, 20*time.Second)
	br.noProblems()
}

// requirePyLine finds the line of out starting with prefix and requires
// the JSON after it to equal want.
func requirePyLine(t *testing.T, out, prefix string, want any) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			var got any
			require.NoError(t, json.Unmarshal([]byte(rest), &got), line)
			require.Equal(t, want, got, prefix)
			return
		}
	}
	t.Fatalf("no %q line in the script's output:\n%s", prefix, out)
}
