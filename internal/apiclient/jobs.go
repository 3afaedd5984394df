package apiclient

// This file calls the platform's async jobs API under
// /api/v1/endpoints/{api_name}/: predictions (create, get, list, cancel,
// output, webhook deliveries) and batches (create from an archive or URLs,
// get, list, cancel, output zip, error report). Those routes accept the
// endpoint's own token (ep_...) as well as the owner's API token (ac_...),
// so a Client made with either works.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Prediction statuses. Succeeded, failed and canceled are final.
const (
	StatusStarting   = "starting"
	StatusProcessing = "processing"
	StatusSucceeded  = "succeeded"
	StatusFailed     = "failed"
	StatusCanceled   = "canceled"
)

// Final reports whether a prediction or batch status is final.
func Final(status string) bool {
	switch status {
	case StatusSucceeded, StatusFailed, StatusCanceled:
		return true
	}
	return false
}

// Prediction is an async prediction as the API shows it.
type Prediction struct {
	ID          string     `json:"id"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Metrics     struct {
		// PredictTime is the seconds the endpoint spent on it.
		PredictTime float64 `json:"predict_time"`
	} `json:"metrics"`
	// Input summarises what was sent.
	Input json.RawMessage `json:"input,omitempty"`
	// Output is the JSON output inline, or, for images, arrays and files,
	// where to download it (see OutputFile).
	Output json.RawMessage `json:"output,omitempty"`
	// Error says why it failed (Traceback: the algorithm's Python one).
	Error *PredictionError `json:"error,omitempty"`
	// Logs is what the algorithm's predict printed (stdout and stderr, its
	// last 64 KiB). GET of one prediction carries it; lists leave it out.
	Logs string `json:"logs,omitempty"`
	// Expired is true once the platform's retention deleted the input and
	// output (ExpiresAt says when that happens).
	Expired   bool       `json:"expired,omitempty"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	// URLs are the prediction's own routes: get, cancel, output (paths or URLs).
	URLs map[string]string `json:"urls,omitempty"`
}

// PredictionError is a failed prediction's error.
type PredictionError struct {
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
}

// Final reports whether the prediction is over.
func (p Prediction) Final() bool { return Final(p.Status) }

// predictionPath is a prediction route of api_name (id "" for the collection).
func predictionPath(apiName, id string) string {
	p := "/api/v1/endpoints/" + url.PathEscape(apiName) + "/predictions"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

// batchPath is a batch route of api_name (id "" for the collection).
func batchPath(apiName, id string) string {
	p := "/api/v1/endpoints/" + url.PathEscape(apiName) + "/batches"
	if id != "" {
		p += "/" + url.PathEscape(id)
	}
	return p
}

// AsyncOptions are the optional parts of a prediction's creation.
type AsyncOptions struct {
	// Webhook is the https URL told of the prediction's events.
	Webhook string
	// Events filters the webhook's events (start, output, logs, completed);
	// empty: the API's default.
	Events []string
	// IdempotencyKey makes a retried create return the same prediction.
	IdempotencyKey string
	// Wait (1..60 s) asks the API to answer with the finished prediction
	// when it ends within that long (Prefer: wait=N); 0 answers at once.
	Wait time.Duration
}

// AsyncInput is what a prediction is made of: an input's bytes (as
// SniffInput makes them), or an http(s) URL the platform fetches.
type AsyncInput struct {
	Input
	// URL, when set, is sent instead of the bytes.
	URL string
}

// CreatePrediction starts an async prediction of the endpoint apiName. JSON
// inputs and URLs go in a JSON body ({"input": ...}); images, arrays and
// files go as the multipart part "input" (no base64 inflation, no size
// limit of a JSON document). The answer is the prediction as created, or
// finished when o.Wait was given and it ended in time.
func (c *Client) CreatePrediction(ctx context.Context, apiName string, in AsyncInput, o AsyncOptions) (Prediction, error) {
	var (
		body  []byte
		ctype string
	)
	switch {
	case in.URL != "":
		fields := map[string]any{"input": in.URL}
		addWebhook(fields, o)
		b, err := json.Marshal(fields)
		if err != nil {
			return Prediction{}, err
		}
		body, ctype = b, JSONType
	case in.ContentType == JSONType:
		if !json.Valid(in.Body) {
			return Prediction{}, errors.New("the input is not valid JSON")
		}
		fields := map[string]any{"input": json.RawMessage(in.Body)}
		addWebhook(fields, o)
		b, err := json.Marshal(fields)
		if err != nil {
			return Prediction{}, err
		}
		body, ctype = b, JSONType
	default:
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		name := in.Filename
		if name == "" {
			name = "input"
		}
		h := make(textproto.MIMEHeader)
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="input"; filename=%q`, name))
		h.Set("Content-Type", in.ContentType)
		w, err := mw.CreatePart(h)
		if err != nil {
			return Prediction{}, err
		}
		_, _ = w.Write(in.Body)
		if o.Webhook != "" {
			_ = mw.WriteField("webhook", o.Webhook)
		}
		for _, e := range o.Events {
			_ = mw.WriteField("webhook_events_filter", e)
		}
		if err := mw.Close(); err != nil {
			return Prediction{}, err
		}
		body, ctype = buf.Bytes(), mw.FormDataContentType()
	}
	req, err := c.newRequest(ctx, http.MethodPost, predictionPath(apiName, ""), bytes.NewReader(body))
	if err != nil {
		return Prediction{}, err
	}
	req.Header.Set("Content-Type", ctype)
	if o.IdempotencyKey != "" {
		req.Header.Set("Idempotency-Key", o.IdempotencyKey)
	}
	if o.Wait > 0 {
		req.Header.Set("Prefer", "wait="+strconv.Itoa(int((o.Wait+time.Second-1)/time.Second)))
	}
	var p Prediction
	return p, c.decode(req, &p)
}

func addWebhook(fields map[string]any, o AsyncOptions) {
	if o.Webhook != "" {
		fields["webhook"] = o.Webhook
	}
	if len(o.Events) > 0 {
		fields["webhook_events_filter"] = o.Events
	}
}

// decode sends req and decodes its JSON answer into out.
func (c *Client) decode(req *http.Request, out any) error {
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// GetPrediction returns one prediction of the endpoint apiName.
func (c *Client) GetPrediction(ctx context.Context, apiName, id string) (Prediction, error) {
	var p Prediction
	return p, c.do(ctx, http.MethodGet, predictionPath(apiName, id), nil, &p)
}

// CancelPrediction asks the platform to cancel a prediction and returns it
// as it then stands (canceling a finished one changes nothing).
func (c *Client) CancelPrediction(ctx context.Context, apiName, id string) (Prediction, error) {
	var p Prediction
	return p, c.do(ctx, http.MethodPost, predictionPath(apiName, id)+"/cancel", nil, &p)
}

// PredictionPage is one page of an endpoint's predictions, newest first;
// NextCursor ("" on the last page) asks for the next one.
type PredictionPage struct {
	Predictions []Prediction `json:"predictions"`
	NextCursor  string       `json:"next_cursor,omitempty"`
}

// ListPredictions returns up to limit predictions of apiName after cursor
// ("" for the newest).
func (c *Client) ListPredictions(ctx context.Context, apiName string, limit int, cursor string) (PredictionPage, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := predictionPath(apiName, "")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var p PredictionPage
	return p, c.do(ctx, http.MethodGet, path, nil, &p)
}

// OutputFile is where a prediction's image, array or file output is
// downloaded; ok is false when the output is JSON inline (or absent).
func (p Prediction) OutputFile() (ref OutputRef, ok bool) {
	if len(p.Output) == 0 || p.Output[0] != '{' {
		return OutputRef{}, false
	}
	if json.Unmarshal(p.Output, &ref) != nil || ref.URL == "" || ref.ContentType == "" {
		return OutputRef{}, false
	}
	// A JSON output may itself be an object with a url: a stored output's
	// url is the prediction's own output route.
	if out := p.URLs["output"]; out != "" && ref.URL != out {
		return OutputRef{}, false
	}
	return ref, true
}

// OutputRef is an output stored as a file on the platform.
type OutputRef struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	Filename    string `json:"filename,omitempty"`
}

// PredictionOutput returns a finished prediction's output as a /predict
// answer would have been: a stored file is downloaded (its
// Content-Disposition name kept), JSON is the inline value.
func (c *Client) PredictionOutput(ctx context.Context, apiName string, p Prediction) (Output, error) {
	if p.Status != StatusSucceeded {
		return Output{}, fmt.Errorf("prediction %s is %s: it has no output", p.ID, p.Status)
	}
	if p.Expired {
		return Output{}, fmt.Errorf("prediction %s expired: the platform's retention deleted its output", p.ID)
	}
	if _, ok := p.OutputFile(); !ok {
		return Output{ContentType: JSONType, Body: p.Output}, nil
	}
	req, err := c.newRequest(ctx, http.MethodGet, predictionPath(apiName, p.ID)+"/output", nil)
	if err != nil {
		return Output{}, err
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.send(req)
	if err != nil {
		return Output{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return Output{}, fmt.Errorf("download the output of %s: %w", p.ID, err)
	}
	return Output{ContentType: mediaType(resp.Header.Get("Content-Type")), Filename: dispositionFilename(resp.Header.Get("Content-Disposition")), Body: body}, nil
}

// WaitPrediction polls a prediction every interval (backing off to 5 s)
// until it is final or ctx ends, calling seen (when not nil) on each status
// change. A transient failure of one poll (the API restarting) is retried.
func (c *Client) WaitPrediction(ctx context.Context, apiName string, p Prediction, interval time.Duration, seen func(Prediction)) (Prediction, error) {
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	last := ""
	fails := 0
	for {
		if p.Status != last && seen != nil {
			seen(p)
		}
		last = p.Status
		if p.Final() {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return p, ctx.Err()
		case <-time.After(interval):
		}
		if interval < 5*time.Second {
			interval = interval * 3 / 2
		}
		np, err := c.GetPrediction(ctx, apiName, p.ID)
		if err != nil {
			if ctx.Err() == nil && transient(err) && fails < 10 {
				fails++
				continue
			}
			return p, err
		}
		fails = 0
		p = np
	}
}

// transient reports whether err is worth polling again: no answer at all,
// or a 502/503/504 of a proxy or a restarting API.
func transient(err error) bool {
	var e *Error
	if errors.As(err, &e) {
		return e.StatusCode == http.StatusBadGateway || e.StatusCode == http.StatusServiceUnavailable || e.StatusCode == http.StatusGatewayTimeout
	}
	return true
}

// WebhookAttempt is one delivery attempt of a prediction's or a batch's webhook.
type WebhookAttempt struct {
	// DeliveryID is the webhook-id header: the same on every attempt of one event.
	DeliveryID string    `json:"delivery_id"`
	Event      string    `json:"event"`
	URL        string    `json:"url"`
	Attempt    int       `json:"attempt"`
	At         time.Time `json:"at"`
	DurationMS int64     `json:"duration_ms"`
	// StatusCode is the receiver's answer; 0 when none came.
	StatusCode int `json:"status_code"`
	// Outcome is delivered, retry, gone, refused or failed (gave up).
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// WebhookAttempts lists the delivery attempts of a prediction's webhook,
// oldest first.
func (c *Client) WebhookAttempts(ctx context.Context, apiName, id string) ([]WebhookAttempt, error) {
	var out struct {
		Attempts []WebhookAttempt `json:"attempts"`
	}
	return out.Attempts, c.do(ctx, http.MethodGet, predictionPath(apiName, id)+"/webhooks", nil, &out)
}

// Batch is a batch job as the API shows it.
type Batch struct {
	ID string `json:"id"`
	// Status is queued, running, succeeded, failed or canceled.
	Status string `json:"status"`
	// Source says where the inputs came from (archive, urls, s3).
	Source      string     `json:"source,omitempty"`
	Concurrency int        `json:"concurrency,omitempty"`
	CreatedAt   time.Time  `json:"created_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	CompletedAt *time.Time `json:"completed_at,omitempty"`
	Counts      struct {
		Total  int `json:"total"`
		Done   int `json:"done"`
		Failed int `json:"failed"`
		Left   int `json:"left"`
	} `json:"counts"`
	// Rate is items per second; ETASeconds the estimate of what is left
	// (nil while the API cannot tell yet).
	Rate       float64           `json:"rate"`
	ETASeconds *float64          `json:"eta_seconds,omitempty"`
	Error      string            `json:"error,omitempty"`
	URLs       map[string]string `json:"urls,omitempty"`
	// Output is set when the outputs go to an S3 prefix (no output.zip).
	Output *struct {
		S3 struct {
			URI string `json:"uri"`
		} `json:"s3"`
	} `json:"output,omitempty"`
}

// OutputS3 is the S3 prefix the batch writes its outputs to, "" when they
// go to output.zip.
func (b Batch) OutputS3() string {
	if b.Output == nil {
		return ""
	}
	return b.Output.S3.URI
}

// S3Location is an S3 prefix with the user's own credentials, for a
// batch's input or output (the platform never uses its own for a user's
// bucket; it keeps these sealed and drops them when the batch ends).
type S3Location struct {
	URI             string `json:"uri"` // s3://bucket/prefix/
	Region          string `json:"region,omitempty"`
	EndpointURL     string `json:"endpoint_url,omitempty"`
	AccessKeyID     string `json:"access_key_id"`
	SecretAccessKey string `json:"secret_access_key"`
	SessionToken    string `json:"session_token,omitempty"`
}

// Final reports whether the batch is over.
func (b Batch) Final() bool { return Final(b.Status) }

// BatchInput is what a batch is made of: an archive (zip or tar) of inputs,
// a list of URLs or an S3 prefix; and where its outputs go (output.zip, or
// an S3 prefix).
type BatchInput struct {
	// Archive is the archive's content and Name its file name (.zip, .tar).
	Archive io.Reader
	Name    string
	// URLs, when Archive is nil, are the inputs' http(s) URLs.
	URLs []string
	// InputS3, when Archive and URLs are not given, is the inputs' prefix.
	InputS3 *S3Location
	// OutputS3 sends the outputs to an S3 prefix instead of output.zip.
	OutputS3 *S3Location
	// Concurrency bounds the predictions in flight (0: the platform's default).
	Concurrency int
	// Webhook is the URL told of the batch's events (start, completed),
	// Events filters them (empty: both).
	Webhook string
	Events  []string
}

// CreateBatch starts a batch job of the endpoint apiName. An archive is
// streamed as the multipart part "archive".
func (c *Client) CreateBatch(ctx context.Context, apiName string, in BatchInput) (Batch, error) {
	var (
		body  io.Reader
		ctype string
		pr    *io.PipeReader
	)
	if in.Archive != nil {
		var pw *io.PipeWriter
		pr, pw = io.Pipe()
		mw := multipart.NewWriter(pw)
		go func() {
			var err error
			if in.Concurrency > 0 {
				err = mw.WriteField("concurrency", strconv.Itoa(in.Concurrency))
			}
			if err == nil && in.OutputS3 != nil {
				var out []byte
				if out, err = json.Marshal(map[string]any{"s3": in.OutputS3}); err == nil {
					err = mw.WriteField("output", string(out))
				}
			}
			if err == nil && in.Webhook != "" {
				err = mw.WriteField("webhook", in.Webhook)
			}
			if err == nil && len(in.Events) > 0 {
				err = mw.WriteField("webhook_events_filter", strings.Join(in.Events, ","))
			}
			if err == nil {
				err = writePart(mw, "archive", Upload{Name: in.Name, Body: in.Archive})
			}
			if err == nil {
				err = mw.Close()
			}
			pw.CloseWithError(err)
		}()
		body, ctype = pr, mw.FormDataContentType()
	} else {
		if len(in.URLs) == 0 && in.InputS3 == nil {
			return Batch{}, errors.New("a batch needs an archive, URLs or an S3 prefix")
		}
		fields := map[string]any{}
		if len(in.URLs) > 0 {
			fields["urls"] = in.URLs
		}
		if in.InputS3 != nil {
			fields["input"] = map[string]any{"s3": in.InputS3}
		}
		if in.OutputS3 != nil {
			fields["output"] = map[string]any{"s3": in.OutputS3}
		}
		if in.Concurrency > 0 {
			fields["concurrency"] = in.Concurrency
		}
		addWebhook(fields, AsyncOptions{Webhook: in.Webhook, Events: in.Events})
		b, err := json.Marshal(fields)
		if err != nil {
			return Batch{}, err
		}
		body, ctype = bytes.NewReader(b), JSONType
	}
	req, err := c.newRequest(ctx, http.MethodPost, batchPath(apiName, ""), body)
	if err != nil {
		if pr != nil {
			pr.Close()
		}
		return Batch{}, err
	}
	req.Header.Set("Content-Type", ctype)
	var b Batch
	err = c.decode(req, &b)
	if pr != nil {
		pr.Close() // ends the writer when the server answered early
	}
	return b, err
}

// GetBatch returns one batch of the endpoint apiName.
func (c *Client) GetBatch(ctx context.Context, apiName, id string) (Batch, error) {
	var b Batch
	return b, c.do(ctx, http.MethodGet, batchPath(apiName, id), nil, &b)
}

// CancelBatch asks the platform to stop a batch; finished items stay.
func (c *Client) CancelBatch(ctx context.Context, apiName, id string) (Batch, error) {
	var b Batch
	return b, c.do(ctx, http.MethodPost, batchPath(apiName, id)+"/cancel", nil, &b)
}

// ListBatches returns up to limit batches of apiName, newest first, created
// before before (zero: the newest); the next page is before the last one's
// CreatedAt.
func (c *Client) ListBatches(ctx context.Context, apiName string, limit int, before time.Time) ([]Batch, error) {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if !before.IsZero() {
		q.Set("before", before.Format(time.RFC3339Nano))
	}
	path := batchPath(apiName, "")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out struct {
		Batches []Batch `json:"batches"`
	}
	return out.Batches, c.do(ctx, http.MethodGet, path, nil, &out)
}

// BatchWebhookAttempts lists the delivery attempts of a batch's webhook
// (its start and completed events), oldest first.
func (c *Client) BatchWebhookAttempts(ctx context.Context, apiName, id string) ([]WebhookAttempt, error) {
	var out struct {
		Attempts []WebhookAttempt `json:"attempts"`
	}
	return out.Attempts, c.do(ctx, http.MethodGet, batchPath(apiName, id)+"/webhooks", nil, &out)
}

// DownloadBatchOutput writes a batch's output zip to w and returns its size.
func (c *Client) DownloadBatchOutput(ctx context.Context, apiName, id string, w io.Writer) (int64, error) {
	n, _, err := c.download(ctx, batchPath(apiName, id)+"/output.zip", w)
	return n, err
}

// DownloadBatchErrors writes a batch's per-item error report (JSON lines,
// one failed item each) to w and returns its size and media type.
func (c *Client) DownloadBatchErrors(ctx context.Context, apiName, id string, w io.Writer) (int64, string, error) {
	return c.download(ctx, batchPath(apiName, id)+"/errors", w)
}

// download copies a GET answer's body to w; it returns the size and the
// answer's media type.
func (c *Client) download(ctx context.Context, path string, w io.Writer) (int64, string, error) {
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.send(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, "", fmt.Errorf("download %s: %w", path, err)
	}
	return n, mediaType(resp.Header.Get("Content-Type")), nil
}

// mediaType is a Content-Type without its parameters.
func mediaType(h string) string {
	if i := strings.IndexByte(h, ';'); i >= 0 {
		h = h[:i]
	}
	return strings.ToLower(strings.TrimSpace(h))
}
