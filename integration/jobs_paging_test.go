package integration

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
)

// TestJobsPagePages: the wizard's Jobs page in Chromium with more
// predictions (22) and batches (11) than a page of each (20 and 10): each
// list shows its newest page in the list route's order, "Older" shows the
// rest, "Newer" goes back; the oldest batch, created with a webhook to a
// receiver on loopback, shows its start and completed deliveries like a
// prediction's. The list routes' cursors page without skipping or
// repeating an item.
func TestJobsPagePages(t *testing.T) {
	r := newJobsRig(t, func(o *platform.Options) { o.WebhookAllowLoopback = true })
	sec := r.c.Do(http.MethodPost, "/api/v1/deployments/"+r.id+"/webhook_secret", nil)
	require.Equal(t, http.StatusCreated, sec.Status, string(sec.Raw))
	srv, deliveries := hookReceiver(t, sec.Str("secret"))
	ec := testenv.NewAPIClient(t, r.p.APIURL, r.epToken)
	const base = "/api/v1/endpoints/seg"

	// 11 one-image batches, the first with a webhook; a user may have 4
	// queued or running, so a 429 waits for one to end.
	var batchIDs []string
	for i := 0; i < 11; i++ {
		fields := map[string]string{}
		if i == 0 {
			fields["webhook"] = srv.URL + "/hook"
		}
		var res resp
		require.Eventually(t, func() bool {
			res = postBatchHook(t, r.p.APIURL, r.epToken, "seg", makeZip(t, []zipEntry{{name: "a.png", body: batchPNG(t, i)}}), fields)
			return res.Status != http.StatusTooManyRequests
		}, 2*time.Minute, 300*time.Millisecond)
		require.Equal(t, http.StatusAccepted, res.Status, string(res.Raw))
		batchIDs = append(batchIDs, res.Str("id"))
	}
	// 22 async predictions.
	img := dataURI(samplePNG(t, 24, 16))
	for i := 0; i < 22; i++ {
		res := ec.Do(http.MethodPost, base+"/predictions", map[string]any{"input": img})
		require.Equal(t, http.StatusAccepted, res.Status, string(res.Raw))
	}
	for _, id := range batchIDs {
		require.Equal(t, "succeeded", waitBatch(t, ec, base+"/batches/"+id, 2*time.Minute).Str("status"))
	}
	require.Eventually(t, func() bool { return len(deliveries()) == 2 }, time.Minute, 100*time.Millisecond, "the first batch's start and completed")

	// The routes' order, page by page through the cursors.
	pages := func(path, key string, limit int) [][]string {
		var out [][]string
		cursor := ""
		for n := 0; n < 10; n++ {
			q := fmt.Sprintf("%s?limit=%d", path, limit)
			if cursor != "" {
				q += "&cursor=" + cursor
			}
			res := ec.Do(http.MethodGet, q, nil)
			require.Equal(t, http.StatusOK, res.Status, string(res.Raw))
			var ids []string
			for _, it := range res.Body[key].([]any) {
				ids = append(ids, it.(map[string]any)["id"].(string))
			}
			out = append(out, ids)
			cursor, _ = res.Body["next_cursor"].(string)
			if cursor == "" {
				return out
			}
		}
		t.Fatalf("%s pages without end", path)
		return nil
	}
	batchPages := pages(base+"/batches", "batches", 10)
	require.Len(t, batchPages, 2)
	require.Len(t, batchPages[0], 10)
	require.Equal(t, []string{batchIDs[0]}, batchPages[1], "the oldest batch is alone on the second page")
	predPages := pages(base+"/predictions", "predictions", 20)
	require.Len(t, predPages, 2)
	require.Len(t, predPages[1], 2)
	bad := ec.Do(http.MethodGet, base+"/batches?cursor=nonsense", nil)
	require.Equal(t, http.StatusBadRequest, bad.Status, string(bad.Raw))
	require.Contains(t, string(bad.Raw), `"field":"cursor"`)

	br := r.signIn(t)
	br.run(chromedp.Navigate(r.p.APIURL + "/ui/deployments/" + r.id + "/jobs"))
	br.waitPage("/jobs", "Jobs")
	shown := func(sel string) []string {
		var ids []string
		br.eval(`[...document.querySelectorAll('`+sel+`')].map((e) => e.dataset.id)`, &ids)
		return ids
	}
	br.waitJS("a page of batches", `document.querySelectorAll('section.batch').length === 10`, 20*time.Second)
	br.waitJS("a page of predictions", `document.querySelectorAll('#predictions tr.prediction').length === 20`, 20*time.Second)
	require.Equal(t, batchPages[0], shown("section.batch"))
	require.Equal(t, predPages[0], shown("#predictions tr.prediction"))

	// Older batches: the oldest, with its webhook deliveries.
	br.click("#batches-older")
	br.waitJS("the older batches", `document.querySelectorAll('section.batch').length === 1`, 10*time.Second)
	require.Equal(t, batchPages[1], shown("section.batch"))
	require.Equal(t, predPages[0], shown("#predictions tr.prediction"), "the predictions' page stays")
	card := `section.batch[data-id="` + batchIDs[0] + `"]`
	br.click(card + ` button[data-webhooks]`)
	br.waitJS("the batch's deliveries", `document.querySelectorAll('`+card+` .deliveries:not([hidden]) tr.delivery').length === 2`, 10*time.Second)
	rows := br.text(card + " .deliveries table")
	require.Contains(t, rows, "start")
	require.Contains(t, rows, "completed")
	require.Contains(t, rows, "delivered")
	var noOlder bool
	br.eval(`!document.querySelector('#batches-older') && !!document.querySelector('#batches-newer')`, &noOlder)
	require.True(t, noOlder, "the last page has Newer and no Older")
	// A refresh (every 10 s when nothing runs) keeps the page and the
	// deliveries open.
	time.Sleep(11 * time.Second)
	require.Equal(t, batchPages[1], shown("section.batch"))
	br.waitJS("the deliveries still shown", `document.querySelectorAll('`+card+` .deliveries:not([hidden]) tr.delivery').length === 2`, 5*time.Second)
	br.shot("jobs-older-batches", wide, narrow)
	br.click("#batches-newer")
	br.waitJS("back to the newest batches", `document.querySelectorAll('section.batch').length === 10`, 10*time.Second)
	require.Equal(t, batchPages[0], shown("section.batch"))

	// Older predictions.
	br.click("#predictions-older")
	br.waitJS("the older predictions", `document.querySelectorAll('#predictions tr.prediction').length === 2`, 10*time.Second)
	require.Equal(t, predPages[1], shown("#predictions tr.prediction"))
	br.click("#predictions-newer")
	br.waitJS("back to the newest predictions", `document.querySelectorAll('#predictions tr.prediction').length === 20`, 10*time.Second)
	require.Equal(t, predPages[0], shown("#predictions tr.prediction"))
	br.noProblems()
}
