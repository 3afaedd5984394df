package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The request shapes of CreatePrediction (a unit test of the encoding; the
// integration package runs these calls against the real platform): JSON
// inputs and URLs in a JSON body, bytes as the multipart part "input", and
// the Idempotency-Key and Prefer headers.
func TestCreatePredictionEncoding(t *testing.T) {
	f, c := newFakeAPI(t)
	type got struct {
		ctype, key, prefer string
		fields             map[string][]string
		part               []byte
		partType, partName string
		json               map[string]any
	}
	var last got
	f.mux.HandleFunc("POST /api/v1/endpoints/seg/predictions", func(w http.ResponseWriter, r *http.Request) {
		last = got{key: r.Header.Get("Idempotency-Key"), prefer: r.Header.Get("Prefer"), fields: map[string][]string{}}
		mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		last.ctype = mt
		if mt == "multipart/form-data" {
			mr := multipart.NewReader(r.Body, params["boundary"])
			for {
				p, err := mr.NextPart()
				if err == io.EOF {
					break
				}
				require.NoError(t, err)
				b, _ := io.ReadAll(p)
				if p.FormName() == "input" {
					last.part, last.partType, last.partName = b, p.Header.Get("Content-Type"), p.FileName()
				} else {
					last.fields[p.FormName()] = append(last.fields[p.FormName()], string(b))
				}
			}
		} else {
			require.NoError(t, json.NewDecoder(r.Body).Decode(&last.json))
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"id": "p1", "status": "starting", "created_at": time.Now(),
			"urls": map[string]string{"get": "/api/v1/endpoints/seg/predictions/p1"}})
	})
	ctx := context.Background()

	p, err := c.CreatePrediction(ctx, "seg", AsyncInput{Input: SniffInput("x.png", []byte("\x89PNG\r\n\x1a\nrest"))},
		AsyncOptions{Webhook: "https://hooks.example.com/x", Events: []string{"completed", "start"}, IdempotencyKey: "k1", Wait: 1500 * time.Millisecond})
	require.NoError(t, err)
	require.Equal(t, "p1", p.ID)
	require.False(t, p.Final())
	require.Equal(t, "multipart/form-data", last.ctype)
	require.Equal(t, "\x89PNG\r\n\x1a\nrest", string(last.part))
	require.Equal(t, "image/png", last.partType)
	require.Equal(t, "x.png", last.partName)
	require.Equal(t, []string{"https://hooks.example.com/x"}, last.fields["webhook"])
	require.Equal(t, []string{"completed", "start"}, last.fields["webhook_events_filter"])
	require.Equal(t, "k1", last.key)
	require.Equal(t, "wait=2", last.prefer, "rounded up to whole seconds")

	_, err = c.CreatePrediction(ctx, "seg", AsyncInput{Input: SniffInput("in.json", []byte(`{"a": [1, 2]}`))}, AsyncOptions{})
	require.NoError(t, err)
	require.Equal(t, "application/json", last.ctype)
	require.Equal(t, map[string]any{"input": map[string]any{"a": []any{1.0, 2.0}}}, last.json)
	require.Empty(t, last.prefer)

	_, err = c.CreatePrediction(ctx, "seg", AsyncInput{URL: "https://img.example.com/a.png"}, AsyncOptions{Webhook: "https://h.example.com"})
	require.NoError(t, err)
	require.Equal(t, map[string]any{"input": "https://img.example.com/a.png", "webhook": "https://h.example.com"}, last.json)

	_, err = c.CreatePrediction(ctx, "seg", AsyncInput{Input: Input{Body: []byte("{not json"), ContentType: JSONType}}, AsyncOptions{})
	require.ErrorContains(t, err, "not valid JSON")
}

// OutputFile tells a stored output from inline JSON.
func TestPredictionOutputFile(t *testing.T) {
	ref, ok := Prediction{Output: json.RawMessage(`{"url": "/o", "content_type": "image/png", "size": 3}`)}.OutputFile()
	require.True(t, ok)
	require.Equal(t, OutputRef{URL: "/o", ContentType: "image/png", Size: 3}, ref)
	for _, inline := range []string{``, `null`, `[1]`, `{"label": "cat"}`, `{"url": "https://x"}`} {
		_, ok := Prediction{Output: json.RawMessage(inline)}.OutputFile()
		require.False(t, ok, inline)
	}
	// JSON that looks like a stored output's reference is still JSON when
	// its url is not the prediction's output route.
	_, ok = Prediction{Output: json.RawMessage(`{"url": "https://x", "content_type": "a/b", "size": 1}`),
		URLs: map[string]string{"output": "/api/v1/endpoints/seg/predictions/p1/output"}}.OutputFile()
	require.False(t, ok)
}

// WaitPrediction polls until the prediction is final and reports each
// status once; a poll that gets no answer is retried.
func TestWaitPrediction(t *testing.T) {
	f, c := newFakeAPI(t)
	polls := 0
	f.mux.HandleFunc("GET /api/v1/endpoints/seg/predictions/p1", func(w http.ResponseWriter, r *http.Request) {
		polls++
		status := map[int]string{1: StatusProcessing, 2: StatusProcessing}[polls]
		if status == "" {
			status = StatusSucceeded
		}
		if polls == 2 {
			writeJSON(w, http.StatusServiceUnavailable, map[string]any{"code": "unavailable", "message": "restarting"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"id": "p1", "status": status, "output": map[string]any{"n": 1}})
	})
	var seen []string
	p, err := c.WaitPrediction(context.Background(), "seg", Prediction{ID: "p1", Status: StatusStarting}, time.Millisecond,
		func(p Prediction) { seen = append(seen, p.Status) })
	require.NoError(t, err)
	require.Equal(t, StatusSucceeded, p.Status)
	require.Equal(t, []string{StatusStarting, StatusProcessing, StatusSucceeded}, seen)
	out, err := c.PredictionOutput(context.Background(), "seg", p)
	require.NoError(t, err)
	require.JSONEq(t, `{"n": 1}`, string(out.Body))
	require.Equal(t, JSONType, out.ContentType)
}

// CreateBatch streams an archive as the part "archive", or sends URLs as JSON.
func TestCreateBatch(t *testing.T) {
	f, c := newFakeAPI(t)
	var archive []byte
	var urls []string
	f.mux.HandleFunc("POST /api/v1/endpoints/seg/batches", func(w http.ResponseWriter, r *http.Request) {
		archive, urls = nil, nil
		if r.Header.Get("Content-Type") == JSONType {
			var in struct{ URLs []string }
			require.NoError(t, json.NewDecoder(r.Body).Decode(&in))
			urls = in.URLs
		} else {
			file, _, err := r.FormFile("archive")
			require.NoError(t, err)
			archive, _ = io.ReadAll(file)
		}
		writeJSON(w, http.StatusAccepted, map[string]any{"id": "b1", "status": "queued", "counts": map[string]int{"total": 2, "left": 2}})
	})
	b, err := c.CreateBatch(context.Background(), "seg", BatchInput{Archive: bytes.NewReader([]byte("PK zip")), Name: "in.zip"})
	require.NoError(t, err)
	require.Equal(t, "b1", b.ID)
	require.Equal(t, 2, b.Counts.Total)
	require.Nil(t, b.ETASeconds)
	require.Equal(t, "PK zip", string(archive))
	_, err = c.CreateBatch(context.Background(), "seg", BatchInput{URLs: []string{"https://a/1.png", "https://a/2.png"}})
	require.NoError(t, err)
	require.Equal(t, []string{"https://a/1.png", "https://a/2.png"}, urls)
	_, err = c.CreateBatch(context.Background(), "seg", BatchInput{})
	require.ErrorContains(t, err, "an archive, URLs or an S3 prefix")
}
