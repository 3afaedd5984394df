package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/predictions/batch"
	"github.com/algocloud/algocloud/store"
)

// Batches runs batch jobs over an endpoint's inputs; *batch.Service
// implements it. Errors wrap store.ErrNotFound for an unknown batch or
// endpoint, and are *batch.InputError or batch.ErrTooManyJobs for refused
// requests.
type Batches interface {
	Create(ctx context.Context, r batch.Request) (store.Batch, error)
	Get(ctx context.Context, algorithmID, id string) (store.Batch, error)
	List(ctx context.Context, algorithmID, cursor string, before time.Time, limit int) ([]store.Batch, string, error)
	Cancel(ctx context.Context, b store.Batch) (store.Batch, error)
	WriteOutputZip(ctx context.Context, w io.Writer, batchID string) error
	WriteErrors(ctx context.Context, w io.Writer, batchID string) error
}

var _ Batches = (*batch.Service)(nil)

// batchesAvailable answers 503 batches_unavailable on a server that runs
// no batch jobs (after authenticateEndpoint admitted the caller).
func (s *server) batchesAvailable(c *gin.Context) {
	if s.batches == nil {
		writeError(c, &apiError{Code: errcode.BatchesUnavailable, Message: "this server runs no batch jobs"})
		return
	}
	c.Next()
}

// toBatchJSON is a batch as the API shows it (batch.View, which a batch
// webhook's body is too).
func toBatchJSON(apiName string, b store.Batch) batch.View {
	return batch.NewView(b, "/api/v1/endpoints/"+apiName+"/batches", time.Now())
}

// batchRequest is a JSON batch request: urls or input.s3, and optionally
// output.s3.
type batchRequest struct {
	URLs                []string     `json:"urls"`
	Input               *batchS3Spec `json:"input"`
	Output              *batchS3Spec `json:"output"`
	S3Prefix            string       `json:"s3_prefix"` // the old spelling, refused with a pointer to input.s3
	Webhook             string       `json:"webhook"`
	WebhookEventsFilter []string     `json:"webhook_events_filter"`
	Concurrency         int          `json:"concurrency"`
}

// batchS3Spec is a batch's input or output: an S3 prefix with the user's
// own credentials (sealed at rest, never shown again).
type batchS3Spec struct {
	S3 *batch.S3Location `json:"s3"`
}

// createBatch starts a batch: multipart with an "archive" file part (zip,
// tar or tar.gz; optional "concurrency", "output" (JSON {"s3": {...}}),
// "webhook" and "webhook_events_filter" fields), or JSON {"urls": [...]}
// or {"input": {"s3": {...}}} with the same optional members.
func (s *server) createBatch(c *gin.Context) {
	alg, u := endpointOf(c), s.ownerOf(c)
	req := batch.Request{Algorithm: alg, OwnerID: u}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	if mt == "multipart/form-data" {
		f, e := s.receiveArchive(c, &req)
		if f != nil {
			defer os.Remove(f.Name())
			defer f.Close()
		}
		if e != nil {
			writeError(c, e)
			return
		}
		req.Archive = f
	} else {
		var br batchRequest
		if e := decodeJSON(c, &br, false); e != nil {
			writeError(c, e)
			return
		}
		switch {
		case br.S3Prefix != "":
			writeError(c, errField(errcode.InvalidBatch, "s3_prefix", "give an S3 input as input.s3: {uri, region, endpoint_url, access_key_id, secret_access_key, session_token}"))
			return
		case br.Input != nil && br.Input.S3 == nil:
			writeError(c, errField(errcode.InvalidBatch, "input.s3", "give the S3 prefix of the inputs: {uri, region, access_key_id, secret_access_key}"))
			return
		case br.URLs == nil && br.Input == nil:
			writeError(c, errField(errcode.InvalidBatch, "urls", "give urls (a list of http(s) URLs) or input.s3 (an S3 prefix), or upload an archive as multipart"))
			return
		}
		if e := outputS3(br.Output, &req); e != nil {
			writeError(c, e)
			return
		}
		req.URLs, req.Concurrency = br.URLs, br.Concurrency
		if br.Input != nil {
			req.InputS3 = br.Input.S3
		}
		req.Webhook, req.WebhookEvents = br.Webhook, br.WebhookEventsFilter
	}
	if e := s.checkBatchWebhook(req.Webhook, req.WebhookEvents); e != nil {
		writeError(c, e)
		return
	}
	b, err := s.batches.Create(c.Request.Context(), req)
	if err != nil {
		s.batchFailure(c, err)
		return
	}
	c.JSON(http.StatusAccepted, toBatchJSON(alg.APIName, b))
}

// outputS3 puts a request's output (JSON, or a multipart field's text)
// into req: only output.s3 exists; without output, outputs go to the zip.
func outputS3(out *batchS3Spec, req *batch.Request) *apiError {
	if out == nil {
		return nil
	}
	if out.S3 == nil {
		return errField(errcode.InvalidBatch, "output.s3", "give the S3 prefix the outputs go to, or leave output out for output.zip")
	}
	req.OutputS3 = out.S3
	return nil
}

// ownerOf is the endpoint's owner: batches count against them whoever calls.
func (s *server) ownerOf(c *gin.Context) string { return endpointOf(c).OwnerID }

// receiveArchive streams the multipart "archive" part to a temporary file
// (a zip is read from its end) and reads the "concurrency" field.
func (s *server) receiveArchive(c *gin.Context, req *batch.Request) (*os.File, *apiError) {
	if c.Request.ContentLength > s.maxUpload {
		return nil, errTooLarge(s.maxUpload)
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxUpload)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return nil, errorf(errcode.InvalidMultipart, "malformed multipart body: %v", err)
	}
	var f *os.File
	var e *apiError
	for n := 0; ; n++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return f, bodyError(err, s.maxUpload)
		}
		if n >= 10 {
			return f, errorf(errcode.InvalidMultipart, "more than 10 parts")
		}
		switch part.FormName() {
		case "archive":
			if f != nil {
				return f, errField(errcode.InvalidBatch, "archive", "upload one archive only")
			}
			if f, err = os.CreateTemp("", "algocloud-batch-*"); err != nil {
				s.log.ErrorContext(c.Request.Context(), "batch archive temp file", "error", err)
				return nil, errInternal()
			}
			src := &readErrors{r: part}
			if _, err := io.Copy(f, src); err != nil {
				if src.err != nil {
					return f, bodyError(src.err, s.maxUpload)
				}
				s.log.ErrorContext(c.Request.Context(), "write batch archive", "error", err)
				return f, errInternal()
			}
		case "concurrency":
			v, e := readTextField(part, "concurrency", s.maxUpload)
			if e != nil {
				return f, e
			}
			if req.Concurrency, err = strconv.Atoi(v); err != nil {
				return f, errField(errcode.InvalidBatch, "concurrency", "must be a whole number")
			}
		case "output":
			// JSON, as in a JSON request: {"s3": {...}}.
			v, e := readTextField(part, "output", s.maxUpload)
			if e != nil {
				return f, e
			}
			var out batchS3Spec
			dec := json.NewDecoder(strings.NewReader(v))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&out); err != nil {
				return f, errField(errcode.InvalidBatch, "output", "must be JSON: {\"s3\": {\"uri\": ..., \"region\": ..., \"access_key_id\": ..., \"secret_access_key\": ...}}")
			}
			if e := outputS3(&out, req); e != nil {
				return f, e
			}
		case "webhook":
			if req.Webhook, e = readTextField(part, "webhook", s.maxUpload); e != nil {
				return f, e
			}
		case "webhook_events_filter":
			v, e := readTextField(part, "webhook_events_filter", s.maxUpload)
			if e != nil {
				return f, e
			}
			for _, ev := range strings.Split(v, ",") {
				if ev = strings.TrimSpace(ev); ev != "" {
					req.WebhookEvents = append(req.WebhookEvents, ev)
				}
			}
		default:
			return f, errField(errcode.UnknownField, part.FormName(), "unknown form field; expected archive, concurrency, output, webhook or webhook_events_filter")
		}
	}
	if f == nil {
		return nil, errField(errcode.InvalidBatch, "archive", "upload the inputs as a file part named archive (zip, tar or tar.gz)")
	}
	return f, nil
}

// checkBatchWebhook checks a batch's webhook like a prediction's (the same
// URL policy, a 400 invalid_webhook naming "webhook") and its filter, whose
// events are a batch's (start, completed).
func (s *server) checkBatchWebhook(hook string, events []string) *apiError {
	for _, ev := range events {
		if !slices.Contains(batch.Events, ev) {
			return errField(errcode.InvalidField, "webhook_events_filter", "%q is not a batch event: one of %s", ev, strings.Join(batch.Events, ", "))
		}
	}
	if hook == "" {
		if len(events) > 0 {
			return errField(errcode.InvalidField, "webhook", "webhook_events_filter needs a webhook")
		}
		return nil
	}
	return s.checkWebhookURL("webhook", hook)
}

// batchFailure answers a failed batch call.
func (s *server) batchFailure(c *gin.Context, err error) {
	var ie *batch.InputError
	switch {
	case errors.As(err, &ie):
		code := errcode.InvalidBatch
		if ie.TooLarge {
			code = errcode.PayloadTooLarge
		}
		e := errField(code, ie.Field, "%s", ie.Msg)
		if ie.Member != "" {
			e = e.with("member", ie.Member)
		}
		writeError(c, e)
	case errors.Is(err, batch.ErrTooManyJobs):
		c.Header("Retry-After", "30")
		writeError(c, errorf(errcode.TooManyJobs, "%v; wait for one to finish or cancel one", err))
	case errors.Is(err, store.ErrNotFound):
		writeError(c, errNotFound("no such batch"))
	case errors.Is(err, batch.ErrBadCursor):
		writeError(c, errField(errcode.InvalidQuery, "cursor", "not a cursor a list answer gave"))
	default:
		s.fail(c, "batch", err)
	}
}

// loadBatch finds the endpoint's batch named in the path.
func (s *server) loadBatch(c *gin.Context) (store.Batch, bool) {
	b, err := s.batches.Get(c.Request.Context(), endpointOf(c).ID, c.Param("batch_id"))
	if err != nil {
		s.batchFailure(c, err)
		return b, false
	}
	return b, true
}

func (s *server) getBatch(c *gin.Context) {
	if b, ok := s.loadBatch(c); ok {
		c.JSON(http.StatusOK, toBatchJSON(endpointOf(c).APIName, b))
	}
}

// listBatches pages the endpoint's batches newest first: ?cursor= is the
// next_cursor of the page before (?before=, the created_at of the last
// batch seen, still works: it starts at the first batch created before it).
func (s *server) listBatches(c *gin.Context) {
	var before time.Time
	if v := c.Query("before"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(c, errField(errcode.InvalidQuery, "before", "must be an RFC 3339 time (a batch's created_at)"))
			return
		}
		before = t
	}
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, errField(errcode.InvalidQuery, "limit", "must be between 1 and 100"))
			return
		}
		limit = n
	}
	alg := endpointOf(c)
	bs, next, err := s.batches.List(c.Request.Context(), alg.ID, c.Query("cursor"), before, limit)
	if err != nil {
		s.batchFailure(c, err)
		return
	}
	out := make([]batch.View, 0, len(bs))
	for _, b := range bs {
		out = append(out, toBatchJSON(alg.APIName, b))
	}
	body := gin.H{"batches": out, "next_cursor": next}
	if next != "" {
		body["next"] = "/api/v1/endpoints/" + alg.APIName + "/batches?limit=" + strconv.Itoa(limit) + "&cursor=" + url.QueryEscape(next)
	}
	c.JSON(http.StatusOK, body)
}

// listBatchWebhooks lists the webhook delivery attempts of one batch of the
// endpoint (its start and completed events), oldest first, as
// .../predictions/{id}/webhooks does for a prediction.
func (s *server) listBatchWebhooks(c *gin.Context) {
	b, ok := s.loadBatch(c)
	if !ok {
		return
	}
	s.writeWebhookAttempts(c, b.ID)
}

func (s *server) cancelBatch(c *gin.Context) {
	b, ok := s.loadBatch(c)
	if !ok {
		return
	}
	b, err := s.batches.Cancel(c.Request.Context(), b)
	if err != nil {
		s.batchFailure(c, err)
		return
	}
	c.JSON(http.StatusOK, toBatchJSON(endpointOf(c).APIName, b))
}

// batchOutput streams a zip of the outputs recorded so far (all of them
// once the batch succeeded), built from the blob store as it is sent.
func (s *server) batchOutput(c *gin.Context) {
	b, ok := s.loadBatch(c)
	if !ok {
		return
	}
	if b.OutputURI != "" {
		// The API links no AWS SDK and holds no credentials to read the
		// user's bucket back; the outputs are where the user asked.
		writeError(c, errorf(errcode.NoOutput, "this batch writes its outputs to %s (with manifest.json and errors.jsonl there), not to a zip", b.OutputURI).
			with("output", b.OutputURI))
		return
	}
	c.Header("Content-Type", "application/zip")
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-output.zip"`, b.ID))
	c.Status(http.StatusOK)
	if err := s.batches.WriteOutputZip(c.Request.Context(), c.Writer, b.ID); err != nil {
		// Headers are gone: abort the connection so the client sees a
		// broken download, never a short zip that looks whole.
		s.log.ErrorContext(c.Request.Context(), "write batch output zip", "batch", b.ID, "error", err)
		panic(http.ErrAbortHandler)
	}
}

// batchErrors streams the per-item error report as JSON lines.
func (s *server) batchErrors(c *gin.Context) {
	b, ok := s.loadBatch(c)
	if !ok {
		return
	}
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	if err := s.batches.WriteErrors(c.Request.Context(), c.Writer, b.ID); err != nil {
		s.log.ErrorContext(c.Request.Context(), "write batch errors", "batch", b.ID, "error", err)
		panic(http.ErrAbortHandler)
	}
}
