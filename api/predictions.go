package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/predictions"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
)

// Predictions is the async predictions service (*predictions.Service).
// Implementations are safe for concurrent use and honour ctx. Errors wrap
// store.ErrNotFound (no such endpoint), predictions.ErrNotFound,
// ErrTooManyJobs, ErrNoOutput, ErrExpired and ErrBadCursor.
type Predictions interface {
	// Endpoint returns the live algorithm named apiName and its endpoint
	// token's SHA-256 hex.
	Endpoint(ctx context.Context, apiName string) (store.Algorithm, string, error)
	// Create stores and starts a prediction; created is false when the
	// Idempotency-Key found an existing one, which is returned.
	Create(ctx context.Context, in predictions.CreateInput) (p store.Prediction, created bool, err error)
	// Get returns one of the algorithm's predictions.
	Get(ctx context.Context, algorithmID, id string) (store.Prediction, error)
	// Wait returns the prediction when final or after d.
	Wait(ctx context.Context, algorithmID, id string, d time.Duration) (store.Prediction, error)
	// List returns a page, newest first, and the next page's cursor.
	List(ctx context.Context, algorithmID, cursor string, limit int) ([]store.Prediction, string, error)
	// Cancel cancels a running prediction.
	Cancel(ctx context.Context, algorithmID, id string) (store.Prediction, error)
	// Output opens a succeeded prediction's output.
	Output(ctx context.Context, p store.Prediction) (io.ReadCloser, error)
	// Logs returns what a finished prediction's predict printed ("" when nothing).
	Logs(ctx context.Context, p store.Prediction) (string, error)
}

var _ Predictions = (*predictions.Service)(nil)

// maxPreferWait is the longest Prefer: wait=N.
const maxPreferWait = 60

// endpointKey is where authenticateEndpoint leaves the store.Algorithm.
const endpointKey = "algocloud.endpoint"

// authenticateEndpoint admits the endpoint's own token (ep_...) or a
// platform token of its owner (ac_...) for /api/v1/endpoints/{api_name}/...
// An unknown endpoint, another user's, or another endpoint's token answer
// 404 alike, so the answer never says that an endpoint exists.
func (s *server) authenticateEndpoint(c *gin.Context) {
	scheme, token, ok := strings.Cut(c.GetHeader("Authorization"), " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Header("WWW-Authenticate", `Bearer realm="algocloud"`)
		writeError(c, errUnauthorized("send the endpoint's token or your API token: Authorization: Bearer <token>"))
		return
	}
	ctx := c.Request.Context()
	isEndpointToken := strings.HasPrefix(token, "ep_")
	var u store.User
	if !isEndpointToken {
		var err error
		if u, err = s.store.Authenticate(ctx, token); err != nil {
			if errors.Is(err, store.ErrUnauthorized) || errors.Is(err, store.ErrNotFound) {
				c.Header("WWW-Authenticate", `Bearer realm="algocloud", error="invalid_token"`)
				writeError(c, errUnauthorized("the API token is unknown or revoked"))
				return
			}
			s.fail(c, "authenticate", err)
			return
		}
		c.Set(userKey, u)
	}
	if s.preds == nil {
		writeError(c, errorf(errcode.PredictionsUnavailable, "this server runs no async predictions"))
		return
	}
	notFound := errNotFound("no such endpoint")
	alg, hash, err := s.preds.Endpoint(ctx, c.Param("api_name"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.fail(c, "look up endpoint", err)
		return
	}
	if isEndpointToken {
		sum := sha256.Sum256([]byte(token))
		want, _ := hex.DecodeString(hash)
		if err != nil || len(want) != sha256.Size || subtle.ConstantTimeCompare(sum[:], want) != 1 {
			writeError(c, notFound)
			return
		}
	} else if err != nil || u.ID != alg.OwnerID {
		writeError(c, notFound)
		return
	}
	c.Set(endpointKey, alg)
	c.Next()
}

func endpointOf(c *gin.Context) store.Algorithm { return c.MustGet(endpointKey).(store.Algorithm) }

// predictionsBase is the collection's absolute URL, for the urls members.
func predictionsBase(c *gin.Context) string {
	scheme := "http"
	if c.Request.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + c.Request.Host + "/api/v1/endpoints/" + url.PathEscape(c.Param("api_name")) + "/predictions"
}

// predictionRequest is the JSON body of a create.
type predictionRequest struct {
	Input               json.RawMessage `json:"input"`
	Webhook             string          `json:"webhook"`
	WebhookEventsFilter []string        `json:"webhook_events_filter"`
}

// createPrediction: POST /api/v1/endpoints/{api_name}/predictions.
func (s *server) createPrediction(c *gin.Context) {
	alg := endpointOf(c)
	wait, aerr := preferWait(c.GetHeader("Prefer"))
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	key := c.GetHeader("Idempotency-Key")
	if len(key) > 255 {
		writeError(c, errField(errcode.InvalidHeader, "Idempotency-Key", "at most 255 bytes"))
		return
	}
	var sp spec.Spec
	if len(alg.Spec) > 0 {
		_ = json.Unmarshal(alg.Spec, &sp)
	}
	in := predictions.CreateInput{AlgorithmID: alg.ID, OwnerID: alg.OwnerID, IdempotencyKey: key}
	mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type"))
	var req predictionRequest
	if mt == "multipart/form-data" {
		aerr = s.readMultipartInput(c, &in, &req)
	} else {
		// base64 makes a data URI a third larger than its bytes.
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxPredictionInput*4/3+maxJSONBytes)
		if aerr = decodeJSONBody(c, &req); aerr == nil {
			aerr = s.readJSONInput(c.Request.Context(), sp.Input, req.Input, &in)
		}
	}
	if aerr != nil {
		writeError(c, aerr)
		return
	}
	if int64(len(in.Body)) > s.maxPredictionInput {
		writeError(c, errField(errcode.PayloadTooLarge, "input", "%d bytes, over the limit of %d", len(in.Body), s.maxPredictionInput))
		return
	}
	if aerr := s.checkWebhook(req.Webhook, req.WebhookEventsFilter); aerr != nil {
		writeError(c, aerr)
		return
	}
	in.Webhook, in.WebhookEvents = req.Webhook, req.WebhookEventsFilter
	ctx := c.Request.Context()
	p, _, err := s.preds.Create(ctx, in)
	if err != nil {
		s.predictionFail(c, "create prediction", err)
		return
	}
	base := predictionsBase(c)
	if wait > 0 && !store.PredictionFinal(p.Status) {
		if p, err = s.preds.Wait(ctx, alg.ID, p.ID, time.Duration(wait)*time.Second); err != nil {
			s.predictionFail(c, "wait for prediction", err)
			return
		}
	}
	if wait > 0 && store.PredictionFinal(p.Status) {
		s.predictionView(c, http.StatusCreated, p)
		return
	}
	c.Header("Location", base+"/"+p.ID)
	c.JSON(http.StatusAccepted, gin.H{
		"id": p.ID, "status": p.Status, "created_at": p.CreatedAt,
		"urls": gin.H{"get": base + "/" + p.ID, "cancel": base + "/" + p.ID + "/cancel"},
	})
}

// preferWait reads "Prefer: wait=N" (RFC 7240; other preferences ignored).
func preferWait(h string) (int, *apiError) {
	for _, pref := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pref), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "wait") {
			continue
		}
		n, err := strconv.Atoi(strings.Trim(strings.TrimSpace(v), `"`))
		if err != nil || n < 1 || n > maxPreferWait {
			return 0, errField(errcode.InvalidHeader, "Prefer", "wait=N takes N from 1 to %d seconds", maxPreferWait)
		}
		return n, nil
	}
	return 0, nil
}

// decodeJSONBody is decodeJSON over a body already limited by the caller.
func decodeJSONBody(c *gin.Context, dst any) *apiError {
	dec := json.NewDecoder(c.Request.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return errorf(errcode.InvalidJSON, "the request body is empty: send {\"input\": ...}")
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errField(errcode.PayloadTooLarge, "input", "the request is over the limit of %d bytes", tooBig.Limit)
		}
		return jsonError(err)
	}
	return nil
}

// readJSONInput turns the JSON body's input into what /predict gets: JSON
// itself for a JSON endpoint; otherwise a data URI's bytes, or an image URL
// (checked against the URL policy now; the endpoint fetches it, checking
// again at dial time).
func (s *server) readJSONInput(ctx context.Context, kind spec.IOType, raw json.RawMessage, in *predictions.CreateInput) *apiError {
	if len(raw) == 0 || string(raw) == "null" {
		return errField(errcode.InvalidInput, "input", "required: JSON, a data URI or an http(s) URL")
	}
	var str string
	isString := json.Unmarshal(raw, &str) == nil
	switch {
	case isString && strings.HasPrefix(str, "data:"):
		b, ct, err := parseDataURI(str)
		if err != nil {
			return errField(errcode.InvalidInput, "input", "%v", err)
		}
		in.Body, in.ContentType, in.Kind = b, ct, "data_uri"
	case kind == spec.JSON:
		in.Body, in.ContentType, in.Kind = []byte(raw), "application/json", "json"
	case isString && (strings.HasPrefix(str, "https://") || strings.HasPrefix(str, "http://")):
		if kind != spec.Image {
			return errField(errcode.InvalidInput, "input", "URL inputs are served for image endpoints; send a data URI or multipart")
		}
		if err := s.checkInputURL(ctx, str); err != nil {
			return errField(errcode.InvalidInput, "input", "%v", err)
		}
		b, _ := json.Marshal(map[string]string{"url": str})
		in.Body, in.ContentType, in.Kind = b, "application/json", "url"
	default:
		return errField(errcode.InvalidInput, "input", "this endpoint takes %s: send a data URI, an http(s) URL or a multipart file", kind)
	}
	return nil
}

// checkInputURL refuses URLs the policy refuses (loopback, private,
// metadata addresses unless the operator allows them).
func (s *server) checkInputURL(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("not a valid URL")
	}
	if u.User != nil {
		return errors.New("a URL with credentials is refused")
	}
	d := netpolicy.Dialer{Policy: s.urlPolicy, Timeout: 5 * time.Second}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := d.Resolve(rctx, u.Hostname()); err != nil {
		if netpolicy.IsForbidden(err) {
			return fmt.Errorf("the URL policy refuses %s: %w", u.Hostname(), err)
		}
		return fmt.Errorf("cannot resolve %s", u.Hostname())
	}
	return nil
}

// parseDataURI decodes data:[<media type>][;base64],<data>.
func parseDataURI(s string) ([]byte, string, error) {
	meta, data, ok := strings.Cut(strings.TrimPrefix(s, "data:"), ",")
	if !ok {
		return nil, "", errors.New("a data URI needs a comma before its data")
	}
	b64 := strings.HasSuffix(meta, ";base64")
	ct := strings.TrimSuffix(meta, ";base64")
	if ct == "" {
		ct = "application/octet-stream"
	}
	if !b64 {
		v, err := url.PathUnescape(data)
		if err != nil {
			return nil, "", errors.New("the data URI's data is not percent-encoded")
		}
		return []byte(v), ct, nil
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		if b, err = base64.RawStdEncoding.DecodeString(data); err != nil {
			return nil, "", errors.New("the data URI's base64 is malformed")
		}
	}
	return b, ct, nil
}

// readMultipartInput reads a multipart create: the file part input and the
// fields webhook and webhook_events_filter (repeated or comma-separated).
func (s *server) readMultipartInput(c *gin.Context, in *predictions.CreateInput, req *predictionRequest) *apiError {
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.maxPredictionInput+maxJSONBytes)
	mr, err := c.Request.MultipartReader()
	if err != nil {
		return errorf(errcode.InvalidMultipart, "malformed multipart body: %v", err)
	}
	for parts := 0; ; parts++ {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return errField(errcode.PayloadTooLarge, "input", "the request is over the limit of %d bytes", tooBig.Limit)
		}
		if err != nil || parts > 20 {
			return errorf(errcode.InvalidMultipart, "malformed multipart body or too many parts")
		}
		var buf bytes.Buffer
		_, err = io.Copy(&buf, io.LimitReader(part, s.maxPredictionInput+1))
		if errors.As(err, &tooBig) {
			return errField(errcode.PayloadTooLarge, "input", "the request is over the limit of %d bytes", tooBig.Limit)
		}
		if err != nil {
			return errorf(errcode.InvalidMultipart, "malformed multipart body: %v", err)
		}
		switch part.FormName() {
		case "input":
			in.Body, in.Kind = buf.Bytes(), "file"
			in.ContentType = part.Header.Get("Content-Type")
			if in.ContentType == "" || in.ContentType == "application/octet-stream" {
				in.ContentType = http.DetectContentType(in.Body)
			}
		case "webhook":
			req.Webhook = buf.String()
		case "webhook_events_filter":
			for _, e := range strings.Split(buf.String(), ",") {
				if e = strings.TrimSpace(e); e != "" {
					req.WebhookEventsFilter = append(req.WebhookEventsFilter, e)
				}
			}
		default:
			return errField(errcode.UnknownField, part.FormName(), "unknown field")
		}
	}
	if in.Body == nil {
		return errField(errcode.InvalidInput, "input", "required: a file part named input")
	}
	return nil
}

// checkWebhook checks the webhook's filter and its URL: its form and the
// webhook URL policy (no loopback/private/metadata addresses unless the
// operator allows them; the worker checks again at every dial).
func (s *server) checkWebhook(hook string, events []string) *apiError {
	for _, e := range events {
		if !slices.Contains(predictions.Events, e) {
			return errField(errcode.InvalidField, "webhook_events_filter", "%q is not one of %s", e, strings.Join(predictions.Events, ", "))
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

// getPrediction: GET .../predictions/{id}.
func (s *server) getPrediction(c *gin.Context) {
	p, err := s.preds.Get(c.Request.Context(), endpointOf(c).ID, c.Param("id"))
	if err != nil {
		s.predictionFail(c, "get prediction", err)
		return
	}
	s.predictionView(c, http.StatusOK, p)
}

// predictionView answers p as GET shows it, logs included (a list leaves
// them out: one blob read per item).
func (s *server) predictionView(c *gin.Context, status int, p store.Prediction) {
	v := predictions.NewView(p, predictionsBase(c))
	logs, err := s.preds.Logs(c.Request.Context(), p)
	if err != nil {
		s.predictionFail(c, "read prediction logs", err)
		return
	}
	v.Logs = logs
	c.JSON(status, v)
}

// cancelPrediction: POST .../predictions/{id}/cancel.
func (s *server) cancelPrediction(c *gin.Context) {
	p, err := s.preds.Cancel(c.Request.Context(), endpointOf(c).ID, c.Param("id"))
	if err != nil {
		s.predictionFail(c, "cancel prediction", err)
		return
	}
	s.predictionView(c, http.StatusOK, p)
}

// predictionOutput: GET .../predictions/{id}/output downloads the output.
func (s *server) predictionOutput(c *gin.Context) {
	ctx := c.Request.Context()
	p, err := s.preds.Get(ctx, endpointOf(c).ID, c.Param("id"))
	if err != nil {
		s.predictionFail(c, "get prediction", err)
		return
	}
	rc, err := s.preds.Output(ctx, p)
	if err != nil {
		s.predictionFail(c, "open prediction output", err)
		return
	}
	defer rc.Close()
	ct := p.OutputContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	c.DataFromReader(http.StatusOK, p.OutputSize, ct, rc, nil)
}

// listPredictions: GET .../predictions?limit=&cursor=.
func (s *server) listPredictions(c *gin.Context) {
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(c, errField(errcode.InvalidQuery, "limit", "from 1 to 100"))
			return
		}
		limit = n
	}
	ps, next, err := s.preds.List(c.Request.Context(), endpointOf(c).ID, c.Query("cursor"), limit)
	if err != nil {
		s.predictionFail(c, "list predictions", err)
		return
	}
	base := predictionsBase(c)
	items := make([]predictions.View, 0, len(ps))
	for _, p := range ps {
		items = append(items, predictions.NewView(p, base))
	}
	body := gin.H{"predictions": items, "next_cursor": next}
	if next != "" {
		body["next"] = base + "?limit=" + strconv.Itoa(limit) + "&cursor=" + url.QueryEscape(next)
	}
	c.JSON(http.StatusOK, body)
}

// predictionFail maps the service's errors to answers.
func (s *server) predictionFail(c *gin.Context, what string, err error) {
	switch {
	case errors.Is(err, predictions.ErrNotFound):
		writeError(c, errNotFound("no such prediction"))
	case errors.Is(err, predictions.ErrTooManyJobs):
		c.Header("Retry-After", "10")
		writeError(c, errorf(errcode.TooManyJobs, "%v; try again when some finish", err))
	case errors.Is(err, predictions.ErrNoOutput):
		writeError(c, errorf(errcode.NoOutput, "the prediction has no output (not succeeded)"))
	case errors.Is(err, predictions.ErrExpired):
		writeError(c, errorf(errcode.NoOutput, "the prediction's output is deleted: its retention ended").with("expired", true))
	case errors.Is(err, predictions.ErrBadCursor):
		writeError(c, errField(errcode.InvalidQuery, "cursor", "not a cursor a list answer gave"))
	default:
		s.fail(c, what, err)
	}
}
