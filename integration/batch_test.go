package integration

import (
	"archive/tar"
	"archive/zip"
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/store"
)

// batchPNG is a small image that differs for every i (its Otsu mask too).
func batchPNG(t testing.TB, i int) []byte {
	w, h := 12+i%7, 10+i%5
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := uint8((x*37 + y*11 + i*53) % 256)
			img.Set(x, y, color.RGBA{v, uint8(i), 255 - v, 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

type zipEntry struct {
	name, link string
	body       []byte
}

func makeZip(t testing.TB, entries []zipEntry) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Store}
		body := e.body
		if e.link != "" {
			h.SetMode(os.ModeSymlink | 0o777)
			body = []byte(e.link)
		}
		w, err := zw.CreateHeader(h)
		require.NoError(t, err)
		_, err = w.Write(body)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	return buf.Bytes()
}

func makeTarGz(t testing.TB, name string, body []byte) []byte {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}))
	_, err := tw.Write(body)
	require.NoError(t, err)
	require.NoError(t, tw.Close())
	require.NoError(t, gz.Close())
	return buf.Bytes()
}

// postBatch uploads archive as a batch of apiName with token.
func postBatch(t testing.TB, base, token, apiName string, archive []byte, concurrency int) resp {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	fw, err := w.CreateFormFile("archive", "inputs.zip")
	require.NoError(t, err)
	_, err = fw.Write(archive)
	require.NoError(t, err)
	if concurrency > 0 {
		require.NoError(t, w.WriteField("concurrency", fmt.Sprint(concurrency)))
	}
	require.NoError(t, w.Close())
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/endpoints/"+apiName+"/batches", &buf)
	require.NoError(t, err)
	req.Header.Set("Content-Type", w.FormDataContentType())
	c := testenv.NewAPIClient(t, base, token)
	return c.Send(req)
}

// getRaw GETs path with token and returns the status and body.
func getRaw(t testing.TB, base, token, path string) (int, []byte) {
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, b
}

func count(r resp, name string) int {
	c, _ := r.Body["counts"].(map[string]any)
	n, _ := c[name].(float64)
	return int(n)
}

// waitBatch polls the batch until it ends.
func waitBatch(t testing.TB, c *client, path string, limit time.Duration) resp {
	var r resp
	require.Eventually(t, func() bool {
		r = c.Do(http.MethodGet, path, nil)
		s := r.Str("status")
		return s == "succeeded" || s == "failed" || s == "canceled"
	}, limit, 200*time.Millisecond, "the batch ends")
	return r
}

// TestBatchFromZip runs a batch of 50 PNGs and one text file through a real
// endpoint: the output zip holds 50 outputs, each byte for byte what a
// synchronous predict of the same input answers, and the error report holds
// the text file's failure (a 400 from the endpoint); the others succeed.
// It also checks who may call the batch routes, and the refusals at create.
func TestBatchFromZip(t *testing.T) {
	p := startPlatform(t, t.TempDir())
	defer p.Stop()
	tok := devToken(t, p)
	c := newClient(t, p, tok)
	hc := endpointClient(t, p)
	_, endpoint, epTok := walk(t, c, "batchseg", "segmentation", "image")

	var entries []zipEntry
	inputs := map[string][]byte{}
	for i := 0; i < 50; i++ {
		name := fmt.Sprintf("imgs/%02d.png", i)
		entries = append(entries, zipEntry{name: name, body: batchPNG(t, i)})
		inputs[strings.TrimSuffix(name, ".png")] = batchPNG(t, i)
		if i == 20 {
			entries = append(entries, zipEntry{name: "imgs/notes.txt", body: []byte("not an image")})
		}
	}
	r := postBatch(t, p.APIURL, epTok, "batchseg", makeZip(t, entries), 0)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	require.Equal(t, 51, count(r, "total"))
	require.Equal(t, 4, int(r.Body["concurrency"].(float64)), "default: threads (2) x 2")
	get := r.Str("urls", "get")

	// The endpoint's token and the owner's API token both see it.
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	fin := waitBatch(t, ec, get, 3*time.Minute)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, 50, count(fin, "done"), string(fin.Raw))
	require.Equal(t, 1, count(fin, "failed"), string(fin.Raw))
	require.Equal(t, 0, count(fin, "left"), string(fin.Raw))
	require.Equal(t, "succeeded", c.Do(http.MethodGet, get, nil).Str("status"))

	status, zb := getRaw(t, p.APIURL, epTok, r.Str("urls", "output"))
	require.Equal(t, http.StatusOK, status, string(zb))
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	require.NoError(t, err)
	require.Len(t, zr.File, 50)
	for _, f := range zr.File {
		in, ok := inputs[strings.TrimSuffix(f.Name, ".png")]
		require.True(t, ok, "output %s names its input", f.Name)
		rc, err := f.Open()
		require.NoError(t, err)
		got, err := io.ReadAll(rc)
		require.NoError(t, err)
		rc.Close()
		res, want := predict(t, hc, endpoint, epTok, in)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, want, got, "%s equals a synchronous predict", f.Name)
	}

	status, eb := getRaw(t, p.APIURL, epTok, r.Str("urls", "errors"))
	require.Equal(t, http.StatusOK, status)
	lines := strings.Split(strings.TrimSpace(string(eb)), "\n")
	require.Len(t, lines, 1, string(eb))
	var line struct {
		Index      int    `json:"index"`
		Name       string `json:"name"`
		Status     string `json:"status"`
		HTTPStatus int    `json:"http_status"`
		Error      string `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &line))
	require.Equal(t, 21, line.Index)
	require.Equal(t, "imgs/notes.txt", line.Name)
	require.Equal(t, "failed", line.Status)
	require.Equal(t, http.StatusBadRequest, line.HTTPStatus, line.Error)

	requireRanOnAgent(t, p, r.Str("id"), 50)
	captureBatchHistory(t, p, r.Str("id"), "batch-local-mark-succeeded.json")

	list := c.Do(http.MethodGet, "/api/v1/endpoints/batchseg/batches", nil)
	require.Equal(t, http.StatusOK, list.Status, string(list.Raw))
	require.Len(t, list.Body["batches"], 1)

	// Who may call: nobody without a token; another user and an unknown
	// api_name get the same 404.
	status, _ = getRaw(t, p.APIURL, "", get)
	require.Equal(t, http.StatusUnauthorized, status)
	other, err := p.Store.CreateUser(t.Context(), "other")
	require.NoError(t, err)
	otherTok, _, err := p.Store.CreateToken(t.Context(), other.ID, "t")
	require.NoError(t, err)
	for _, path := range []string{get, "/api/v1/endpoints/nosuch/batches"} {
		status, body := getRaw(t, p.APIURL, otherTok, path)
		require.Equal(t, http.StatusNotFound, status, string(body))
		require.Contains(t, string(body), `"not_found"`)
	}
	status, _ = getRaw(t, p.APIURL, "ep_wrong", get)
	require.Equal(t, http.StatusNotFound, status)

	// Refused at create, naming what is wrong; nothing is queued.
	for name, archive := range map[string][]byte{
		"symlink": makeZip(t, []zipEntry{{name: "a.png", body: batchPNG(t, 1)}, {name: "evil.png", link: "/etc/passwd"}}),
		"dotdot":  makeZip(t, []zipEntry{{name: "../x.png", body: batchPNG(t, 1)}}),
		"tar":     makeTarGz(t, "../../x.png", batchPNG(t, 1)),
	} {
		r := postBatch(t, p.APIURL, epTok, "batchseg", archive, 0)
		require.Equal(t, http.StatusBadRequest, r.Status, "%s: %s", name, r.Raw)
		require.Equal(t, "invalid_batch", r.Str("code"), name)
		require.NotEmpty(t, r.Str("member"), "%s: %s", name, r.Raw)
	}
	r = ec.Do(http.MethodPost, "/api/v1/endpoints/batchseg/batches", map[string]any{
		"urls": []string{"https://93.184.215.14/a.png", "http://127.0.0.1:9/b.png", "http://169.254.169.254/latest"},
	})
	require.Equal(t, http.StatusBadRequest, r.Status, string(r.Raw))
	require.Contains(t, string(r.Raw), `"field":"urls[1]"`)
	list = c.Do(http.MethodGet, "/api/v1/endpoints/batchseg/batches", nil)
	require.Len(t, list.Body["batches"], 1, "refused batches are not created")
}

// TestBatchCancel cancels a running batch: it ends canceled at once, and no
// item is recorded after the cancel answered (in-flight ones are dropped).
// The chunk runs on the server's agent (dev gives every server one), which
// is fast enough at concurrency 1 that the batch has 1,500 items, so it is
// canceled well before its end; the agent hears the cancel and stops
// sending predicts within a couple of seconds.
// startBatchToCancel starts a platform, walks apiName's wizard and posts a
// batch of 1,500 PNGs at concurrency 1 (long enough to cancel mid-way).
func startBatchToCancel(t *testing.T, apiName string) (p *platform.Platform, data string, r resp, epTok string) {
	data = t.TempDir()
	p = startPlatform(t, data)
	c := newClient(t, p, devToken(t, p))
	_, _, epTok = walk(t, c, apiName, "segmentation", "image")
	var entries []zipEntry
	for i := 0; i < 1500; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%04d.png", i), body: batchPNG(t, i)})
	}
	r = postBatch(t, p.APIURL, epTok, apiName, makeZip(t, entries), 1)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	return p, data, r, epTok
}

func TestBatchCancel(t *testing.T) {
	p, data, r, epTok := startBatchToCancel(t, "cancelseg")
	defer p.Stop()
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	get := r.Str("urls", "get")
	require.Eventually(t, func() bool { return count(ec.Do(http.MethodGet, get, nil), "done") >= 5 }, 2*time.Minute, 100*time.Millisecond)
	cr := ec.Do(http.MethodPost, r.Str("urls", "cancel"), nil)
	require.Equal(t, http.StatusOK, cr.Status, string(cr.Raw))
	require.Equal(t, "canceled", cr.Str("status"))
	doneAtCancel := count(cr, "done") + count(cr, "failed")
	time.Sleep(2 * time.Second)
	after := ec.Do(http.MethodGet, get, nil)
	require.Equal(t, "canceled", after.Str("status"))
	require.Equal(t, doneAtCancel, count(after, "done")+count(after, "failed"),
		"nothing is recorded after the cancel answered: requests in flight are dropped")
	require.Greater(t, count(after, "left"), 200)
	// The agent stopped: no predict completes a while after the cancel.
	sent := predictLines(t, data)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, sent, predictLines(t, data), "the agent still sends predicts after the cancel")
	require.Less(t, sent, 1500)
	t.Logf("done at the cancel %d, predicts completed %d of 1500", doneAtCancel, sent)
	// The workflow ended too.
	require.Eventually(t, func() bool {
		d, err := p.Client.DescribeWorkflowExecution(t.Context(), "batch-"+r.Str("id"), "")
		return err == nil && d.WorkflowExecutionInfo.Status.String() == "Canceled"
	}, 30*time.Second, 200*time.Millisecond)
	captureBatchHistory(t, p, r.Str("id"), "batch-local-mark-canceled.json")
}

// TestBatchCancelRightAfterCreate cancels a batch as soon as its POST is
// answered: the API issued the first chunk on the server's agent while the
// workflow started (predictions/batch/firstchunk.go), so the cancel must
// end that command even if the workflow never got to watch it. The agent
// stops, nothing is recorded after the cancel, and the workflow ends
// canceled.
func TestBatchCancelRightAfterCreate(t *testing.T) {
	p, data, r, epTok := startBatchToCancel(t, "earlycancel")
	defer p.Stop()
	id := fmt.Sprintf("batch-%s-0-1500", r.Str("id"))
	cmd, err := p.Store.GetAgentCommand(t.Context(), id)
	require.NoError(t, err, "the first chunk's command is issued by the time the POST answers")
	require.Equal(t, "batch", cmd.Kind)

	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	cr := ec.Do(http.MethodPost, r.Str("urls", "cancel"), nil)
	require.Equal(t, http.StatusOK, cr.Status, string(cr.Raw))
	require.Equal(t, "canceled", cr.Str("status"))
	doneAtCancel := count(cr, "done") + count(cr, "failed")
	cmd, err = p.Store.GetAgentCommand(t.Context(), id)
	require.NoError(t, err)
	require.Equal(t, store.AgentDone, cmd.State, "the cancel ended the first chunk's command")
	require.Contains(t, cmd.Result, "canceled")

	time.Sleep(time.Second)
	sent := predictLines(t, data)
	time.Sleep(1500 * time.Millisecond)
	require.Equal(t, sent, predictLines(t, data), "the agent still sends predicts after the cancel")
	require.Less(t, sent, 1500)
	after := ec.Do(http.MethodGet, r.Str("urls", "get"), nil)
	require.Equal(t, "canceled", after.Str("status"))
	require.Equal(t, doneAtCancel, count(after, "done")+count(after, "failed"), "nothing is recorded after the cancel answered")
	require.Eventually(t, func() bool {
		d, err := p.Client.DescribeWorkflowExecution(t.Context(), "batch-"+r.Str("id"), "")
		return err == nil && d.WorkflowExecutionInfo.Status.String() == "Canceled"
	}, 30*time.Second, 200*time.Millisecond)
	t.Logf("recorded at the cancel %d, predicts completed %d of 1500", doneAtCancel, sent)
}

// captureBatchHistory fetches a Batch workflow's history decoded, checks it
// replays with the current code and, with ALGOCLOUD_CAPTURE_HISTORIES=1,
// adds it to predictions/batch/testdata/histories/<name> (append-only, like
// the workflows package's corpus), which TestReplayBatchHistories replays.
func captureBatchHistory(t *testing.T, p *platform.Platform, batchID, name string) {
	t.Helper()
	h := decodedHistory(t, p, fetchHistory(t, p.Client, "batch-"+batchID))
	js, err := protojson.MarshalOptions{Indent: "  "}.Marshal(h)
	require.NoError(t, err)
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(batch.Batch, workflow.RegisterOptions{Name: batch.WorkflowName})
	parsed, err := sdkclient.HistoryFromJSON(bytes.NewReader(js), sdkclient.HistoryJSONOptions{})
	require.NoError(t, err)
	require.NoError(t, r.ReplayWorkflowHistory(nil, parsed), "batch %s replays with the current code", batchID)
	if os.Getenv(captureEnv) != "1" {
		return
	}
	path := filepath.Join(repoRoot(t), "predictions", "batch", "testdata", "histories", name)
	if _, err := os.Stat(path); err == nil {
		t.Logf("%s exists: the corpus is append-only, not rewritten", path)
		return
	}
	require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
	require.NoError(t, os.WriteFile(path, js, 0o644))
}

// predictLines counts the predicts the deployment's endpoints completed, from
// their request logs (appended across restarts): the worker-run endpoint's
// under logs/, each agent revision's under agent/revisions/<rev>/.
func predictLines(t testing.TB, data string) int {
	logs, _ := filepath.Glob(filepath.Join(data, "servers", "*", "logs", "*"))
	// Revisions the server's agent runs log beside their config.
	revs, _ := filepath.Glob(filepath.Join(data, "servers", "*", "agent", "revisions", "*", "server.log"))
	logs = append(logs, revs...)
	n := 0
	for _, l := range logs {
		f, err := os.Open(l)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.Contains(sc.Text(), `"path":"/predict"`) && strings.Contains(sc.Text(), `"status":200`) {
				n++
			}
		}
		f.Close()
	}
	return n
}

// TestBatchSurvivesDevKills kills the real `algocloud dev` (worker, API
// and Temporal) with SIGKILL three times while a 1,000-image batch runs,
// starting it again each time: the batch finishes with every item recorded
// once and none lost. The chunk runs on the server's agent. Locally the
// agent is dev's child and dies with it (the local provider's Pdeathsig;
// its live revision, a process group of its own, goes on serving and is
// adopted again); the restarted dev starts the agent again, which reads
// its journal back, and the worker's retried chunk finds the same command
// and records its parts. So what is sent twice is at most the requests in
// flight at each kill; the revision's request log (written by the
// revision, which was not killed) counts them exactly.
func TestBatchSurvivesDevKills(t *testing.T) {
	data := t.TempDir()
	apiPort, temporalPort := testenv.FreePort(t), testenv.FreePort(t)
	d := startDev(t, data, apiPort, temporalPort)
	c := testenv.NewAPIClient(t, d.api, d.token)
	tok := d.token // a restarted dev prints no token
	_, _, epTok := walk(t, c, "killseg", "segmentation", "image")
	const n, conc = 1000, 4
	var entries []zipEntry
	for i := 0; i < n; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%04d.png", i), body: batchPNG(t, i)})
	}
	baseline := predictLines(t, data)
	r := postBatch(t, d.api, epTok, "killseg", makeZip(t, entries), conc)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	get := r.Str("urls", "get")

	progress := func() int {
		_, raw, err := testenv.TryAPI(c.Base, tok, http.MethodGet, get, nil)
		if err != nil {
			return -1
		}
		var b resp
		_ = json.Unmarshal(raw, &b.Body)
		return count(b, "done") + count(b, "failed")
	}
	last, kills := 0, 0
	for kill := 1; kill <= 3; kill++ {
		// Kill once something more was recorded, while the batch is not
		// over (the agent may finish the chunk while dev is down).
		require.Eventually(t, func() bool { p := progress(); return p > last }, 3*time.Minute, 20*time.Millisecond, "progress before kill %d", kill)
		if last = progress(); last >= n {
			t.Logf("kill %d skipped: all %d items recorded", kill, n)
			break
		}
		require.NoError(t, d.Cmd.Process.Signal(syscall.SIGKILL))
		<-d.Done()
		kills++
		d = startDev(t, data, apiPort, temporalPort)
		c.Base = d.api
		t.Logf("kill %d at %d items recorded", kill, last)
	}
	require.GreaterOrEqual(t, kills, 1, "dev was killed during the batch at least once")
	fin := waitBatch(t, c, get, 5*time.Minute)
	defer func() {
		_ = d.Cmd.Process.Signal(syscall.SIGINT)
		<-d.Done()
	}()
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, n, count(fin, "done"), "no item lost: %s", fin.Raw)
	require.Equal(t, 0, count(fin, "failed"), string(fin.Raw))
	calls := predictLines(t, data) - baseline
	t.Logf("%d items, %d kills, %d predicts completed at the endpoint: %d sent again", n, kills, calls, calls-n)
	require.GreaterOrEqual(t, calls, n)
	require.LessOrEqual(t, calls-n, kills*conc, "only the requests in flight at a kill are sent again")

	status, zb := getRaw(t, d.api, epTok, r.Str("urls", "output"))
	require.Equal(t, http.StatusOK, status)
	zr, err := zip.NewReader(bytes.NewReader(zb), int64(len(zb)))
	require.NoError(t, err)
	require.Len(t, zr.File, n)
}

// TestBatchSurvivesAgentKill kills the server's agent with SIGKILL while
// it runs a batch chunk: its supervisor starts it again, the platform
// hands the command out again (the new agent's boot ID), and the new agent
// reads its journal back and sends only what it had not journaled. Every
// item is recorded once; the predicts sent twice are at most the ones in
// flight at the kill.
func TestBatchSurvivesAgentKill(t *testing.T) {
	data := t.TempDir()
	p := startPlatform(t, data)
	defer p.Stop()
	c := newClient(t, p, devToken(t, p))
	id, _, epTok := walk(t, c, "agentkillseg", "segmentation", "image")
	const n, conc = 1500, 4
	var entries []zipEntry
	for i := 0; i < n; i++ {
		entries = append(entries, zipEntry{name: fmt.Sprintf("%04d.png", i), body: batchPNG(t, i)})
	}
	baseline := predictLines(t, data)
	socketBase := socketPredicts(t, data)
	r := postBatch(t, p.APIURL, epTok, "agentkillseg", makeZip(t, entries), conc)
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	get := r.Str("urls", "get")
	// Kill it once its journal holds some results: it is mid-chunk.
	require.Eventually(t, func() bool {
		js, _ := filepath.Glob(filepath.Join(data, "servers", id, "agent", "batches", "*", "journal"))
		if len(js) != 1 {
			return false
		}
		fi, err := os.Stat(js[0])
		return err == nil && fi.Size() > 0
	}, 2*time.Minute, 5*time.Millisecond)
	pids := agentPIDs(t, id)
	require.Len(t, pids, 1)
	atKill := predictLines(t, data) - baseline
	require.NoError(t, syscall.Kill(pids[0], syscall.SIGKILL))
	fin := waitBatch(t, ec, get, 5*time.Minute)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, n, count(fin, "done"), "no item lost: %s", fin.Raw)
	require.Equal(t, 0, count(fin, "failed"), string(fin.Raw))
	calls := predictLines(t, data) - baseline
	t.Logf("killed the agent at %d predicts; %d items, %d predicts completed: %d sent again", atKill, n, calls, calls-n)
	require.Less(t, atKill, n, "the agent was killed mid-chunk")
	require.GreaterOrEqual(t, calls, n)
	require.LessOrEqual(t, calls-n, conc, "only the requests in flight at the kill are sent again")
	requireRanOnAgent(t, p, r.Str("id"), n)
	// Over the revision's agent socket (plain HTTP, no TLS or TCP), every
	// predict of the chunk: the sandbox never sees the socket's folder.
	require.Equal(t, calls, socketPredicts(t, data)-socketBase, "every predict of the chunk went over the agent socket")
}

// requireRanOnAgent checks that a batch's chunks ran on the deployment's
// server agent (dev gives every server one): each succeeded item's output
// is a range of a result part the agent sent, not a file of its own.
func requireRanOnAgent(t *testing.T, p *platform.Platform, batchID string, succeeded int) {
	t.Helper()
	items, err := p.Store.BatchItems(t.Context(), batchID, "succeeded", 0, 10000)
	require.NoError(t, err)
	require.Len(t, items, succeeded)
	for _, it := range items {
		require.Regexp(t, `^batches/`+batchID+`/parts/\d+-\d+/\d+#\d+\+\d+$`, it.OutputKey, "item %d ran on the agent", it.Index)
	}
}
