package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/algocloud/algocloud/internal/platform"
	"github.com/algocloud/algocloud/internal/testenv"
	"github.com/algocloud/algocloud/internal/testenv/testmoto"
)

// lockedBuffer collects the platform's log lines from many goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestBatchS3 runs a batch from an S3 prefix of 20 PNGs (a "folder" key
// and a text file among them) to an S3 output prefix on a real moto
// server, through a real endpoint: every output object is byte for byte
// what a synchronous predict of its input answers, errors.jsonl holds the
// text file's failure and manifest.json every item. The user's
// credentials are nowhere in plain text: not in GET's answers, the store,
// the data folder, the logs or the workflow's history, and the batch's row
// no longer holds them once it ended. Refused at create, naming the field:
// a missing bucket, missing credentials, a prefix with more objects than a
// batch may have (413), and a plain-text output.zip request (409).
func TestBatchS3(t *testing.T) {
	moto := testmoto.Start(t)
	logs := &lockedBuffer{}
	data := t.TempDir()
	p := startPlatform(t, data, func(o *platform.Options) {
		o.AllowPrivateURLs = true // moto listens on 127.0.0.1 (dev: --allow-private-urls)
		o.MaxBatchItems = 25
		o.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	defer p.Stop()
	owner := devToken(t, p)
	c := newClient(t, p, owner)
	hc := endpointClient(t, p)
	depID, endpoint, epTok := walk(t, c, "s3seg", "segmentation", "image")

	ctx := context.Background()
	raw := s3.New(s3.Options{Region: "us-east-1", Credentials: testmoto.Credentials,
		BaseEndpoint: aws.String(moto.Endpoint), UsePathStyle: true})
	for _, b := range []string{"bs3-in", "bs3-out"} {
		_, err := raw.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)})
		require.NoError(t, err)
	}
	put := func(bucket, key string, body []byte) {
		_, err := raw.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body)})
		require.NoError(t, err)
	}
	inputs := map[string][]byte{}
	put("bs3-in", "in/imgs/", nil) // a "folder": not an item
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("imgs/%02d.png", i)
		inputs[name] = batchPNG(t, i)
		put("bs3-in", "in/"+name, inputs[name])
	}
	put("bs3-in", "in/notes.txt", []byte("not an image"))
	put("bs3-in", "input-elsewhere.png", batchPNG(t, 99)) // outside the prefix
	for i := 0; i < 26; i++ {
		put("bs3-in", fmt.Sprintf("big/%02d.png", i), batchPNG(t, i))
	}

	const secret, session = "wJalrXUtnFEMI-bs3-secret-K7MDENG", "bs3-session-token-FwoGZXIvYXdzEBYaD"
	loc := func(uri string) map[string]any {
		return map[string]any{"uri": uri, "region": "us-east-1", "endpoint_url": moto.Endpoint,
			"access_key_id": "AKIABS3TESTKEY", "secret_access_key": secret, "session_token": session}
	}
	ec := testenv.NewAPIClient(t, p.APIURL, epTok)
	const batches = "/api/v1/endpoints/s3seg/batches"
	r := ec.Do(http.MethodPost, batches, map[string]any{
		"input": map[string]any{"s3": loc("s3://bs3-in/in")}, "output": map[string]any{"s3": loc("s3://bs3-out/results/")},
	})
	require.Equal(t, http.StatusAccepted, r.Status, string(r.Raw))
	require.Equal(t, 21, count(r, "total"), "20 PNGs and the text file; not the folder key nor the object outside the prefix")
	require.Equal(t, "s3", r.Str("source"))
	require.Equal(t, "s3://bs3-out/results/", r.Str("output", "s3", "uri"))
	id := r.Str("id")
	get := r.Str("urls", "get")
	fin := waitBatch(t, ec, get, 3*time.Minute)
	require.Equal(t, "succeeded", fin.Str("status"), string(fin.Raw))
	require.Equal(t, 20, count(fin, "done"), string(fin.Raw))
	require.Equal(t, 1, count(fin, "failed"), string(fin.Raw))

	getObj := func(key string) []byte {
		out, err := raw.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bs3-out"), Key: aws.String(key)})
		require.NoError(t, err, key)
		defer out.Body.Close()
		b, err := io.ReadAll(out.Body)
		require.NoError(t, err)
		return b
	}
	for name, in := range inputs {
		got := getObj("results/" + name)
		res, want := predict(t, hc, endpoint, epTok, in)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, want, got, "%s equals a synchronous predict", name)
	}
	listed, err := raw.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bs3-out"), Prefix: aws.String("results/")})
	require.NoError(t, err)
	require.Len(t, listed.Contents, 22, "20 outputs, errors.jsonl and manifest.json")

	var line struct {
		Index      int    `json:"index"`
		Name       string `json:"name"`
		HTTPStatus int    `json:"http_status"`
	}
	errs := strings.Split(strings.TrimSpace(string(getObj("results/errors.jsonl"))), "\n")
	require.Len(t, errs, 1)
	require.NoError(t, json.Unmarshal([]byte(errs[0]), &line))
	require.Equal(t, "notes.txt", line.Name)
	require.Equal(t, http.StatusBadRequest, line.HTTPStatus)
	var manifest struct {
		Status string `json:"status"`
		Done   int    `json:"done"`
		Items  []struct {
			Name, Status, Output string
		} `json:"items"`
	}
	require.NoError(t, json.Unmarshal(getObj("results/manifest.json"), &manifest))
	require.Equal(t, "succeeded", manifest.Status)
	require.Equal(t, 20, manifest.Done)
	require.Len(t, manifest.Items, 21)
	for _, it := range manifest.Items {
		if it.Status == "succeeded" {
			require.Equal(t, "results/"+it.Name, it.Output)
		}
	}

	// The outputs are in S3: no zip, a 409 that says where they went.
	status, body := getRaw(t, p.APIURL, epTok, get+"/output.zip")
	require.Equal(t, http.StatusConflict, status, string(body))
	require.Contains(t, string(body), `"no_output"`)
	require.Contains(t, string(body), "s3://bs3-out/results/")

	// The credentials: gone from the row once the batch ended, and never
	// in plain text anywhere.
	require.Eventually(t, func() bool {
		box, err := p.Store.BatchS3Sealed(ctx, id)
		return err == nil && box == nil
	}, 30*time.Second, 100*time.Millisecond, "the sealed credentials are removed when the batch ends")
	list := ec.Do(http.MethodGet, batches, nil)
	h := decodedHistory(t, p, fetchHistory(t, p.Client, "batch-"+id))
	hj, err := protojson.Marshal(h)
	require.NoError(t, err)
	for _, s := range []string{secret, session} {
		require.NotContains(t, string(fin.Raw)+string(list.Raw)+string(r.Raw), s, "GET answers")
		require.NotContains(t, string(hj), s, "the workflow history")
		require.NotContains(t, logs.String(), s, "the logs")
	}
	require.NoError(t, filepath.WalkDir(data, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil //nolint:nilerr // files come and go under a running platform
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil //nolint:nilerr
		}
		for _, s := range []string{secret, session} {
			require.False(t, bytes.Contains(b, []byte(s)), "%s holds a credential in plain text", path)
		}
		return nil
	}))
	captureBatchHistory(t, p, id, "batch-s3.json")

	// The surfaces: the real CLI from S3 to S3, with the caller's AWS_*
	// variables; the generated Python client from a local folder to S3
	// (the output prefix as a multipart field beside the archive).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ALGOCLOUD_") && !strings.HasPrefix(kv, "AWS_") {
			env = append(env, kv)
		}
	}
	env = append(env, "ALGOCLOUD_API="+p.APIURL, "ALGOCLOUD_ENDPOINT_TOKEN="+epTok, "AWS_ACCESS_KEY_ID=AKIABS3CLI",
		"AWS_SECRET_ACCESS_KEY="+secret, "AWS_REGION=us-east-1")
	out, errOut, err := cliRunner(t, env)("batch", "--poll", "200ms", "--s3-endpoint", moto.Endpoint, "s3seg", "s3://bs3-in/in/", "-o", "s3://bs3-out/cli/")
	require.NoError(t, err, "items succeeded (one failed: errors.jsonl says why): %s", out+errOut)
	require.Contains(t, errOut, "outputs in s3://bs3-out/cli/", out+errOut)
	require.NotContains(t, out+errOut, secret)
	for name, in := range inputs {
		res, want := predict(t, hc, endpoint, epTok, in)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, want, getObj("cli/"+name), "the CLI's %s", name)
	}
	require.Contains(t, string(getObj("cli/errors.jsonl")), "notes.txt")

	folder := t.TempDir()
	for i := 0; i < 3; i++ {
		require.NoError(t, os.WriteFile(filepath.Join(folder, fmt.Sprintf("p%d.png", i)), batchPNG(t, 40+i), 0o644))
	}
	res := c.Do(http.MethodGet, "/api/v1/deployments/"+depID+"/clients", nil)
	require.Equal(t, http.StatusOK, res.Status, string(res.Raw))
	module := res.Body["clients"].(map[string]any)["python"].(map[string]any)["content"].(string)
	pyDir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud_client.py"), []byte(module), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(pyDir, "algocloud-ca.pem"), p.CA.RootPEM(), 0o644))
	py := exec.Command("/usr/bin/python3", "-c", fmt.Sprintf(`
from algocloud_client import Algorithm
algo = Algorithm(ca="algocloud-ca.pem")
b = algo.batch(%q, out="s3://bs3-out/py/", s3_endpoint=%q, interval=0.2)
print("batch", b.status, b.counts["done"], b.output_s3, b.download("unused.zip"))
`, folder, moto.Endpoint))
	py.Dir, py.Env = pyDir, env
	pyOut, err := py.CombinedOutput()
	require.NoError(t, err, string(pyOut))
	require.Contains(t, string(pyOut), "batch succeeded 3 s3://bs3-out/py/ []")
	for i := 0; i < 3; i++ {
		res, want := predict(t, hc, endpoint, epTok, batchPNG(t, 40+i))
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, want, getObj(fmt.Sprintf("py/p%d.png", i)), "the Python client's p%d.png", i)
	}

	// The wizard's Jobs page says where the outputs went, with no zip button.
	br := newBrowser(t, p.APIURL)
	br.run(chromedp.Navigate(p.APIURL+"/"), chromedp.WaitVisible("#token", chromedp.ByQuery))
	br.setValue("#token", owner)
	br.run(chromedp.SendKeys("#token", kb.Enter, chromedp.ByQuery))
	br.waitPage("/ui/home", "Home")
	br.run(chromedp.Navigate(p.APIURL + "/ui/deployments/" + depID + "/jobs"))
	br.waitPage("/jobs", "Jobs")
	br.waitJS("the S3 batch names its output prefix and offers no zip", `(() => {
		const s = document.querySelector('section.batch[data-id="`+id+`"]');
		return !!s && s.textContent.includes('outputs in s3://bs3-out/results/') && !s.querySelector('[data-batch-output]'); })()`, 20*time.Second)
	br.noProblems()

	// Refused at create, naming the field; nothing is created.
	for name, tc := range map[string]struct {
		body   map[string]any
		status int
		field  string
		text   string
	}{
		"missing bucket":     {map[string]any{"input": map[string]any{"s3": loc("s3://bs3-nosuch/in/")}}, 400, "input.s3", "NoSuchBucket"},
		"missing out bucket": {map[string]any{"input": map[string]any{"s3": loc("s3://bs3-in/in/")}, "output": map[string]any{"s3": loc("s3://bs3-nosuch/o/")}}, 400, "output.s3", "NoSuchBucket"},
		"no secret": {map[string]any{"input": map[string]any{"s3": map[string]any{"uri": "s3://bs3-in/in/", "endpoint_url": moto.Endpoint,
			"access_key_id": "AKIABS3TESTKEY"}}}, 400, "input.s3.secret_access_key", ""},
		"bad uri":        {map[string]any{"input": map[string]any{"s3": map[string]any{"uri": "https://bs3-in/in/"}}}, 400, "input.s3.uri", ""},
		"bad region":     {map[string]any{"input": map[string]any{"s3": map[string]any{"uri": "s3://bs3-in/in/", "region": "Mars 1"}}}, 400, "input.s3.region", ""},
		"too many":       {map[string]any{"input": map[string]any{"s3": loc("s3://bs3-in/big/")}}, 413, "input.s3", "more than 25"},
		"no s3 in input": {map[string]any{"input": map[string]any{}}, 400, "input.s3", ""},
		"old spelling":   {map[string]any{"s3_prefix": "s3://bs3-in/in/"}, 400, "s3_prefix", ""},
	} {
		r := ec.Do(http.MethodPost, batches, tc.body)
		require.Equal(t, tc.status, r.Status, "%s: %s", name, r.Raw)
		require.Contains(t, string(r.Raw), `"field":"`+tc.field+`"`, "%s: %s", name, r.Raw)
		require.Contains(t, string(r.Raw), tc.text, name)
		require.NotContains(t, string(r.Raw), secret, name)
	}
	list = ec.Do(http.MethodGet, batches, nil)
	require.Len(t, list.Body["batches"], 3, "refused batches are not created (the test's, the CLI's, the client's)")
}
