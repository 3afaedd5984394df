package integration

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/predictions/webhook"
)

// postBatchHook uploads archive as a batch with multipart fields (webhook,
// webhook_events_filter, concurrency) beside it.
func postBatchHook(t testing.TB, base, token, apiName string, archive []byte, fields map[string]string) resp {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for k, v := range fields {
		require.NoError(t, w.WriteField(k, v))
	}
	fw, err := w.CreateFormFile("archive", "inputs.zip")
	require.NoError(t, err)
	_, err = fw.Write(archive)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/endpoints/"+apiName+"/batches", &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return testenv.NewAPIClient(t, base, token).Send(req)
}

// hookDelivery is one request a test receiver got.
type hookDelivery struct {
	id, path string
	body     map[string]any
	verified bool
	at       time.Time
}

// hookReceiver is a webhook receiver on 127.0.0.1 that verifies every
// request with the secret the owner was shown and answers 200.
func hookReceiver(t *testing.T, secret string) (*httptest.Server, func() []hookDelivery) {
	v, err := webhook.NewVerifier(secret)
	require.NoError(t, err)
	var mu sync.Mutex
	var got []hookDelivery
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		d := hookDelivery{id: req.Header.Get(webhook.HeaderID), path: req.URL.Path, verified: v.Verify(req.Header, raw) == nil, at: time.Now()}
		_ = json.Unmarshal(raw, &d.body)
		mu.Lock()
		got = append(got, d)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []hookDelivery { mu.Lock(); defer mu.Unlock(); return append([]hookDelivery(nil), got...) }
}

// bodyCount reads counts.<name> of a webhook body.
func bodyCount(body map[string]any, name string) int {
	c, _ := body["counts"].(map[string]any)
	n, _ := c[name].(float64)
	return int(n)
}

// TestBatchWebhooks: a batch created with a webhook (a receiver on
// loopback, allowed by --webhook-allow-loopback) delivers start and
// completed once each, signed with the endpoint's secret, the completed
// body the batch as GET answers it (counts, absolute output and error
// report URLs); a canceled batch with the filter [completed] delivers only
// completed, once, with status canceled; the batch's webhooks route lists
// the attempts; a refused webhook URL or an unknown event is a 400 naming
// its field, in JSON and in multipart. It captures both Batch histories
// (the batch-webhooks change's new branch) for the replay corpus.
func TestBatchWebhooks(t *testing.T) {
	rig := newJobsRig(t, func(o *platform.Options) { o.WebhookAllowLoopback = true })
	p, epTok := rig.p, rig.epToken
	r := rig.c.Do(http.MethodPost, "/api/v1/deployments/"+rig.id+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	srv, deliveries := hookReceiver(t, r.Str("secret"))
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	const batches = "/api/v1/endpoints/seg/batches"

	// A finished batch: start, then completed, each once.
	entries := []zipEntry{{name: "notes.txt", body: []byte("not an image")}}
	for i := 0; i < 12; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%02d.png", i), body: batchPNG(t, i)})
	}
	r = postBatchHook(t, p.APIURL, epTok, "seg", makeZip(t, entries), map[string]string{"webhook": srv.URL + "/all"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	id := r.Str("id")
	fin := waitBatch(t, ec, r.Str("urls", "get"), 3*time.Minute)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Eventually(t, func() bool { return len(deliveries()) == 2 }, time.Minute, 50*time.Millisecond)
	byID := map[string]hookDelivery{}
	for _, d := range deliveries() {
		require.True(t, d.verified, "a webhook the shown secret does not verify: %s", d.id)
		require.Equal(t, "/all", d.path)
		byID[d.id] = d
	}
	start, done := byID[batch.DeliveryID(id, "start")], byID[batch.DeliveryID(id, "completed")]
	require.Equal(t, "running", start.body["status"], "start: %v", start.body)
	require.Equal(t, id, done.body["id"])
	require.Equal(t, "succeeded", done.body["status"], "completed: %v", done.body)
	require.Equal(t, 12, bodyCount(done.body, "done"))
	require.Equal(t, 1, bodyCount(done.body, "failed"))
	require.Equal(t, 0, bodyCount(done.body, "left"))
	if end, err := time.Parse(time.RFC3339Nano, fmt.Sprint(done.body["completed_at"])); err == nil {
		t.Logf("completed received %d ms after the batch's completed_at", done.at.Sub(end).Milliseconds())
	}
	urls, _ := done.body["urls"].(map[string]any)
	require.Equal(t, p.APIURL+batches+"/"+id+"/output.zip", urls["output"])
	require.Equal(t, p.APIURL+batches+"/"+id+"/errors", urls["errors"])
	status, zb := getRaw(t, p.APIURL, epTok, strings.TrimPrefix(urls["output"].(string), p.APIURL))
	require.Equal(t, http.StatusOK, status, "the body's output URL downloads: %s", zb)

	// The batch's deliveries, with the endpoint's token.
	a := ec.Do(http.MethodGet, batches+"/"+id+"/webhooks", nil)
	require.Equal(t, http.StatusOK, a.Status, string(a.Raw))
	var attempts struct {
		Attempts []struct {
			DeliveryID string `json:"delivery_id"`
			Event      string `json:"event"`
			Outcome    string `json:"outcome"`
			StatusCode int    `json:"status_code"`
		} `json:"attempts"`
	}
	require.NoError(t, json.Unmarshal(a.Raw, &attempts))
	require.Len(t, attempts.Attempts, 2, string(a.Raw))
	for _, at := range attempts.Attempts {
		require.Equal(t, "delivered", at.Outcome)
		require.Equal(t, http.StatusOK, at.StatusCode)
		require.Equal(t, batch.DeliveryID(id, at.Event), at.DeliveryID)
	}
	nf := ec.Do(http.MethodGet, batches+"/bat_nosuch/webhooks", nil)
	require.Equal(t, http.StatusNotFound, nf.Status, string(nf.Raw))

	// A canceled batch, only completed: once, canceled. 2,000 items at
	// concurrency 1, so the cancel lands while items are left: on the
	// server's agent 300 were done within the first result part or two,
	// before the cancel after the third item was seen.
	entries = entries[:0]
	for i := 0; i < 2000; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%03d.png", i), body: batchPNG(t, i)})
	}
	r = postBatchHook(t, p.APIURL, epTok, "seg", makeZip(t, entries), map[string]string{
		"webhook": srv.URL + "/done", "webhook_events_filter": "completed", "concurrency": "1"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	id2 := r.Str("id")
	require.Eventually(t, func() bool { return count(ec.Do(http.MethodGet, r.Str("urls", "get"), nil), "done") >= 3 }, 2*time.Minute, 100*time.Millisecond)
	cr := ec.Do(http.MethodPost, r.Str("urls", "cancel"), nil)
	require.Equal(t, http.StatusOK, cr.Status, string(cr.Raw))
	require.Eventually(t, func() bool { return len(deliveries()) == 3 }, time.Minute, 50*time.Millisecond)
	last := deliveries()[2]
	require.True(t, last.verified)
	require.Equal(t, batch.DeliveryID(id2, "completed"), last.id)
	require.Equal(t, "canceled", last.body["status"])
	require.Greater(t, bodyCount(last.body, "left"), 0)
	require.Eventually(t, func() bool {
		d, err := p.Client.DescribeWorkflowExecution(t.Context(), batch.WorkflowID(id2), "")
		return err == nil && d.WorkflowExecutionInfo.Status.String() == "Canceled"
	}, 30*time.Second, 200*time.Millisecond)
	time.Sleep(2 * time.Second)
	require.Len(t, deliveries(), 3, "an event was delivered twice, or a filtered-out one was delivered")

	// Refused at create, naming the field; nothing is created.
	list := ec.Do(http.MethodGet, batches, nil)
	require.Len(t, list.Body["batches"], 2)
	for _, hook := range []string{"https://192.168.1.10/hook", "http://169.254.169.254/latest", "ftp://example.com/x"} {
		r = postBatchHook(t, p.APIURL, epTok, "seg", makeZip(t, entries[:1]), map[string]string{"webhook": hook})
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", hook, r.Raw)
		require.Equal(t, "invalid_webhook", r.Str("code"), string(r.Raw))
		require.Contains(t, string(r.Raw), `"field":"webhook"`)
		r = ec.Do(http.MethodPost, batches, map[string]any{"urls": []string{srv.URL + "/a.png"}, "webhook": hook})
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", hook, r.Raw)
		require.Contains(t, string(r.Raw), `"field":"webhook"`)
	}
	r = ec.Do(http.MethodPost, batches, map[string]any{"urls": []string{srv.URL + "/a.png"}, "webhook": srv.URL, "webhook_events_filter": []string{"output"}})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"field":"webhook_events_filter"`)
	list = ec.Do(http.MethodGet, batches, nil)
	require.Len(t, list.Body["batches"], 2, "refused batches are not created")

	// The CLI: batch --webhook, then batches webhooks lists the delivery.
	photos := rig.photos(t, "photos", 2)
	out, errOut, err := rig.run("batch", "--webhook", srv.URL+"/cli", "--webhook-events", "completed", "seg", photos, "-o", filepath.Join(rig.dir, "cli.zip"))
	require.NoError(t, err, out+errOut)
	cliID := regexp.MustCompile(`batch (\S+): 2 items`).FindStringSubmatch(errOut)
	require.NotNil(t, cliID, errOut)
	require.Eventually(t, func() bool { return len(deliveries()) == 4 }, time.Minute, 50*time.Millisecond)
	require.Equal(t, batch.DeliveryID(cliID[1], "completed"), deliveries()[3].id)
	require.Equal(t, "/cli", deliveries()[3].path)
	out, errOut, err = rig.run("batches", "webhooks", "seg", cliID[1])
	require.NoError(t, err, out+errOut)
	require.Regexp(t, `completed\s+1\s+200\s+delivered`, out)
	out, errOut, err = rig.run("batches", "ls", "seg")
	require.NoError(t, err, out+errOut)
	require.Regexp(t, regexp.QuoteMeta(cliID[1])+`\s+succeeded`, out)
	_, errOut, err = rig.run("batch", "--webhook", "https://10.0.0.1/x", "seg", photos, "-o", filepath.Join(rig.dir, "refused.zip"))
	require.Error(t, err)
	require.Contains(t, errOut, "invalid_webhook", errOut)

	// The generated Python client: batch(webhook=...), then its webhooks().
	pyOut := rig.python(t, fmt.Sprintf(`
import time
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
b = algo.batch(%q, webhook=%q, webhook_events=["start", "completed"], interval=0.2)
for _ in range(100):
    hooks = b.webhooks()
    if len(hooks) == 2:
        break
    time.sleep(0.2)
print("batch", b.status, sorted(h["event"] + ":" + h["outcome"] for h in hooks))
`, photos, srv.URL+"/py"))
	require.Contains(t, pyOut, "batch succeeded ['completed:delivered', 'start:delivered']")

	captureBatchHistory(t, p, id, "batch-local-mark-webhooks.json")
	captureBatchHistory(t, p, id2, "batch-local-mark-webhooks-canceled.json")
}

// TestBatchWebhooksSurviveDevKills kills the real `algocloud dev` with
// SIGKILL while a batch with a webhook runs, and again the moment its
// status says it ended (the window between the end recorded and its
// completed delivery), starting it again each time on the same data: the
// receiver, which outlives the platform, gets exactly two webhook-ids,
// <batch>-start and <batch>-completed, each signed, the completed body
// saying succeeded with every item done. (A receiver may get one id twice
// when a worker dies after sending and before recording it: Standard
// Webhooks receivers dedupe by webhook-id; the count is logged.)
func TestBatchWebhooksSurviveDevKills(t *testing.T) {
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDevArgs(t, data, apiPort, temporalPort, "--webhook-allow-loopback")
	c := testenv.NewAPIClient(t, d.api, d.token)
	tok := d.token // a restarted dev prints no token
	depID, _, epTok := walk(t, c, "killhook", "segmentation", "image")
	r := c.Do(http.MethodPost, "/api/v1/deployments/"+depID+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, r.Status, string(r.Raw))
	srv, deliveries := hookReceiver(t, r.Str("secret"))

	const n = 150
	var entries []zipEntry
	for i := 0; i < n; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%03d.png", i), body: batchPNG(t, i)})
	}
	r = postBatchHook(t, d.api, epTok, "killhook", makeZip(t, entries), map[string]string{"webhook": srv.URL, "concurrency": "2"})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	id, get := r.Str("id"), r.Str("urls", "get")
	status := func() (string, int) {
		_, raw, err := testenv.TryAPI(c.Base, tok, http.MethodGet, get, nil)
		if err != nil {
			return "", -1
		}
		var b resp
		_ = json.Unmarshal(raw, &b.Body)
		s, _ := b.Body["status"].(string)
		return s, count(b, "done") + count(b, "failed")
	}
	restart := func() {
		require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
		<-d.Done()
		d = startDevArgs(t, data, apiPort, temporalPort, "--webhook-allow-loopback")
		c.Base = d.api
	}
	defer func() {
		_ = d.Cmd.Process.Signal(syscall.SIGINT)
		<-d.Done()
	}()
	require.Eventually(t, func() bool { _, k := status(); return k >= 30 }, 3*time.Minute, 50*time.Millisecond)
	restart()
	require.Eventually(t, func() bool { s, _ := status(); return s == "succeeded" || s == "failed" || s == "canceled" }, 5*time.Minute, 20*time.Millisecond)
	completedBeforeKill := 0
	for _, dl := range deliveries() {
		if dl.id == batch.DeliveryID(id, "completed") {
			completedBeforeKill++
		}
	}
	restart()
	require.Eventually(t, func() bool {
		for _, dl := range deliveries() {
			if dl.id == batch.DeliveryID(id, "completed") {
				return true
			}
		}
		return false
	}, 2*time.Minute, 100*time.Millisecond, "the completed webhook arrives")
	time.Sleep(3 * time.Second)
	got := map[string]int{}
	for _, dl := range deliveries() {
		require.True(t, dl.verified, "a webhook the shown secret does not verify: %s", dl.id)
		got[dl.id]++
		if dl.id == batch.DeliveryID(id, "completed") {
			require.Equal(t, "succeeded", dl.body["status"])
			require.Equal(t, n, bodyCount(dl.body, "done"))
		}
	}
	t.Logf("receipts by webhook-id %v (completed had arrived before the second kill: %d)", got, completedBeforeKill)
	require.Len(t, got, 2, "exactly the start and completed deliveries: %v", got)
	require.Contains(t, got, batch.DeliveryID(id, "start"))
	require.Contains(t, got, batch.DeliveryID(id, "completed"))
}
