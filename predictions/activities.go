package predictions

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/store"
)

// Activities are the Prediction workflow's activities; the worker registers
// one value. Every field but HTTP is required.
type Activities struct {
	Store *store.Store
	Blobs blobs.Store
	// CredentialsKey derives the platform caller token (call.PlatformToken);
	// the token never leaves this process.
	CredentialsKey []byte
	// RootCAs verifies endpoints' certificates (the local CA's root); nil
	// means the system's roots (ACME certificates).
	RootCAs *x509.CertPool
	// HTTP calls the endpoints; nil makes one from RootCAs.
	HTTP *http.Client
	// APIBaseURL (http://host:port) makes the urls of webhook payloads
	// absolute; empty leaves them relative to the platform API.
	APIBaseURL string
}

// PredictInput is one predict call's references.
type PredictInput struct {
	ID               string `json:"id"`
	AlgorithmID      string `json:"algorithm_id"`
	InputKey         string `json:"input_key"`
	InputContentType string `json:"input_content_type"`
}

// PredictOutcome is what an answered predict became: succeeded with the
// output's blob key, or failed with the endpoint's error. It never holds
// the output itself (history stays small and free of user data).
type PredictOutcome struct {
	Status            string        `json:"status"`
	OutputKey         string        `json:"output_key,omitempty"`
	OutputContentType string        `json:"output_content_type,omitempty"`
	OutputSize        int64         `json:"output_size,omitempty"`
	PredictTime       time.Duration `json:"predict_time,omitempty"`
	Error             string        `json:"error,omitempty"`
	Traceback         string        `json:"traceback,omitempty"`
	// LogsKey is the blob of what the algorithm printed during the call
	// (succeeded or failed), empty when it printed nothing; LogsSize its bytes.
	LogsKey  string `json:"logs_key,omitempty"`
	LogsSize int64  `json:"logs_size,omitempty"`
}

// FinishInput records a prediction's end.
type FinishInput struct {
	ID          string         `json:"id"`
	AlgorithmID string         `json:"algorithm_id"`
	Outcome     PredictOutcome `json:"outcome"`
	Retention   time.Duration  `json:"retention"`
}

// ErrTypeNotAnswered is the error type of a predict call the endpoint did
// not answer (or answered 429/503): the retry policy retries it.
const ErrTypeNotAnswered = "PredictNotAnswered"

// StartPrediction marks the prediction processing (once; a repeat is a no-op).
func (a *Activities) StartPrediction(ctx context.Context, id string) error {
	_, err := a.Store.StartPrediction(ctx, id)
	return err
}

// CallEndpoint calls the endpoint once with the stored input. An answer (any
// status but 429/503) is an outcome, never an error, so it is never
// repeated; no answer, 429 and 503 are a retryable error carrying the delay
// the endpoint asked for. The endpoint's address is read now, not at
// create, so a restart that moved it does not break queued predictions.
func (a *Activities) CallEndpoint(ctx context.Context, in PredictInput) (PredictOutcome, error) {
	alg, err := a.Store.GetAlgorithmByID(ctx, in.AlgorithmID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && alg.DeletedAt != nil) {
		return PredictOutcome{Status: store.PredictionFailed, Error: "the deployment was deleted"}, nil
	}
	if err != nil {
		return PredictOutcome{}, err
	}
	if alg.Status != store.StatusLive || alg.Endpoint == "" {
		// Stopped or being redeployed: wait for it like for a 503.
		return PredictOutcome{}, temporal.NewApplicationErrorWithOptions("the endpoint is not live (status "+alg.Status+")",
			ErrTypeNotAnswered, temporal.ApplicationErrorOptions{NextRetryDelay: 5 * time.Second})
	}
	rc, err := a.Blobs.Get(ctx, in.InputKey)
	if errors.Is(err, blobs.ErrNotFound) {
		return PredictOutcome{Status: store.PredictionFailed, Error: "the input is gone (retention ended)"}, nil
	}
	if err != nil {
		return PredictOutcome{}, fmt.Errorf("read prediction input: %w", err)
	}
	body, err := io.ReadAll(rc)
	rc.Close()
	if err != nil {
		return PredictOutcome{}, fmt.Errorf("read prediction input: %w", err)
	}

	stop := heartbeat(ctx)
	defer stop()
	hc := a.HTTP
	if hc == nil {
		hc = call.NewClient(a.RootCAs)
	}
	start := time.Now()
	resp, err := call.Do(ctx, hc, call.Target{URL: alg.Endpoint, Token: call.PlatformToken(a.CredentialsKey, alg.ID), RootCAs: a.RootCAs},
		call.Request{Body: body, ContentType: in.InputContentType, Logs: true})
	took := time.Since(start)
	if ok, delay := call.Retryable(err); ok {
		return PredictOutcome{}, temporal.NewApplicationErrorWithOptions(err.Error(), ErrTypeNotAnswered,
			temporal.ApplicationErrorOptions{NextRetryDelay: delay})
	}
	if ctx.Err() != nil {
		return PredictOutcome{}, ctx.Err() // canceled or timed out: Temporal decides
	}
	logsKey, logsSize := a.storeLogs(ctx, in, resp.Logs)
	var se *call.StatusError
	switch {
	case errors.As(err, &se):
		msg, tb := endpointError(resp.Body)
		if msg == "" {
			msg = se.Error()
		}
		return PredictOutcome{Status: store.PredictionFailed, Error: msg, Traceback: tb, PredictTime: took,
			LogsKey: logsKey, LogsSize: logsSize}, nil
	case err != nil:
		// Answered but unusable (over the size cap, cut off mid-body).
		return PredictOutcome{Status: store.PredictionFailed, Error: err.Error(), PredictTime: took}, nil
	}
	key := blobPrefix(in.AlgorithmID, in.ID) + "/output"
	if err := a.Blobs.Put(ctx, key, bytes.NewReader(resp.Body), int64(len(resp.Body))); err != nil {
		// The answer is lost if this keeps failing; a retry would predict again.
		return PredictOutcome{}, temporal.NewNonRetryableApplicationError("store the output: "+err.Error(), "OutputNotStored", err)
	}
	return PredictOutcome{Status: store.PredictionSucceeded, OutputKey: key, OutputContentType: resp.ContentType,
		OutputSize: int64(len(resp.Body)), PredictTime: took, LogsKey: logsKey, LogsSize: logsSize}, nil
}

// storeLogs puts an answered call's logs in the blob store beside the
// output and returns their key and size ("" when there are none). Failing
// to store them loses the logs, not the prediction: the call is answered
// and must not be made again.
func (a *Activities) storeLogs(ctx context.Context, in PredictInput, logs string) (string, int64) {
	if logs == "" {
		return "", 0
	}
	key := logsKey(in.AlgorithmID, in.ID)
	if err := a.Blobs.Put(ctx, key, strings.NewReader(logs), int64(len(logs))); err != nil {
		activity.GetLogger(ctx).Warn("store the prediction's logs", "prediction", in.ID, "error", err)
		return "", 0
	}
	return key, int64(len(logs))
}

// FinishPrediction records the end; it reports whether this end was the
// first (false after a cancel that came first: the result is discarded).
// A small JSON output is copied into the row so GET needs no blob read.
func (a *Activities) FinishPrediction(ctx context.Context, in FinishInput) (bool, error) {
	o := in.Outcome
	r := store.PredictionResult{Status: o.Status, OutputKey: o.OutputKey, OutputContentType: o.OutputContentType,
		OutputSize: o.OutputSize, Error: o.Error, Traceback: o.Traceback, Retention: in.Retention}
	if o.PredictTime > 0 {
		pt := o.PredictTime
		r.PredictTime = &pt
	}
	if o.Status == store.PredictionSucceeded && isJSON(o.OutputContentType) && o.OutputSize <= maxInlineJSON {
		rc, err := a.Blobs.Get(ctx, o.OutputKey)
		if err != nil {
			return false, fmt.Errorf("read the JSON output: %w", err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return false, fmt.Errorf("read the JSON output: %w", err)
		}
		if json.Valid(b) {
			r.OutputJSON = b
		}
	}
	return a.Store.FinishPrediction(ctx, in.ID, r)
}

// endpointError reads the inference server's JSON error body.
func endpointError(body []byte) (msg, traceback string) {
	var e struct {
		Code      string `json:"code"`
		Message   string `json:"message"`
		Traceback string `json:"traceback"`
	}
	if json.Unmarshal(body, &e) != nil {
		return "", ""
	}
	if e.Code != "" && e.Message != "" {
		msg = e.Code + ": " + e.Message
	}
	return msg, e.Traceback
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json"
}

// heartbeat records a heartbeat every few seconds until stop, so a cancel
// reaches the call and a dead worker is noticed at HeartbeatTimeout.
func heartbeat(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(3 * time.Second)
		defer t.Stop()
		// None at once: a call shorter than a tick needs none, and the SDK
		// would flush it after the activity ended (a logged warning per call).
		for {
			select {
			case <-done:
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done) }
}

// RenderPrediction is the prediction as GET answers it now (a webhook's
// payload).
func (a *Activities) RenderPrediction(ctx context.Context, id string) ([]byte, error) {
	p, err := a.Store.GetPredictionByID(ctx, id)
	if err != nil {
		return nil, err
	}
	alg, err := a.Store.GetAlgorithmByID(ctx, p.AlgorithmID)
	if err != nil {
		return nil, err
	}
	v := NewView(p, a.APIBaseURL+"/api/v1/endpoints/"+alg.APIName+"/predictions")
	if v.Logs, err = readLogs(ctx, a.Blobs, p); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
