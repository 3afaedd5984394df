// Package predictions runs async predictions durably: the API stores the
// input in the blob store and a row in the store, then starts one
// Prediction workflow per prediction, which calls the endpoint's /predict
// with the platform caller token (retrying only what package call says is
// retryable), stores the output in the blob store and records every status
// change in the store, so reads never need Temporal. A sweep deletes inputs
// and outputs once their retention ends.
package predictions

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/algocloud/algocloud/internal/blobs"
	"github.com/algocloud/algocloud/predictions/call"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// TaskQueue is where Prediction workflows and their activities run: the
// deployments' queue, so the one worker binary serves both.
const TaskQueue = workflows.TaskQueue

// DefaultRetention is how long inputs and outputs are kept after a
// prediction ends when the platform's flag does not say otherwise.
const DefaultRetention = 24 * time.Hour

// DefaultMaxRunning caps the predictions in starting or processing per user.
const DefaultMaxRunning = 100

// DefaultMaxInputBytes caps one prediction's input.
const DefaultMaxInputBytes int64 = 32 << 20

// maxInlineJSON is the largest JSON output GET shows inline; larger ones are
// downloaded like images.
const maxInlineJSON = 64 << 10

// Webhook events a prediction emits (the filter's values).
const (
	EventStart     = "start"
	EventOutput    = "output"
	EventLogs      = "logs"
	EventCompleted = "completed"
)

// Events is every event name, in the order they happen.
var Events = []string{EventStart, EventOutput, EventLogs, EventCompleted}

// Errors the service returns; the API maps each to its answer.
var (
	// ErrNotFound: no such prediction of this endpoint.
	ErrNotFound = errors.New("no such prediction")
	// ErrTooManyJobs: the owner has DefaultMaxRunning predictions running.
	ErrTooManyJobs = errors.New("too many running predictions")
	// ErrNoOutput: the prediction has no output (not succeeded).
	ErrNoOutput = errors.New("the prediction has no output")
	// ErrExpired: the retention period ended and the output is deleted.
	ErrExpired = errors.New("the prediction's input and output are deleted (retention ended)")
)

// WorkflowID is the Prediction workflow's id for prediction id.
func WorkflowID(id string) string { return "prediction-" + id }

// CallerToken is the platform caller token the workflows call deployment
// deploymentID's endpoint with (call.PlatformToken; the batch workflow uses
// it too). key is the platform's credentials key.
func CallerToken(key []byte, deploymentID string) string {
	return call.PlatformToken(key, deploymentID)
}

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// newID is a random prediction id.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "p_" + idEncoding.EncodeToString(b)
}

// idempotentID is the prediction id for an Idempotency-Key: derived, so a
// retried create finds the same prediction (and the same workflow id) even
// if the first create died between the store and Temporal.
func idempotentID(algorithmID, keyHash string) string {
	sum := sha256.Sum256([]byte(algorithmID + "\x00" + keyHash))
	return "p_" + idEncoding.EncodeToString(sum[:16])
}

// keyHash is what the store keeps of an Idempotency-Key.
func keyHash(key string) string {
	if key == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(key))
	return strings.ToLower(idEncoding.EncodeToString(sum[:]))
}

// blobPrefix holds everything of one prediction in the blob store.
func blobPrefix(algorithmID, id string) string { return "predictions/" + algorithmID + "/" + id }

// logsKey is where a prediction's logs are (when the algorithm printed
// any): derived, so GET needs no column for it, and under blobPrefix, so
// the retention sweep deletes them with the input and output.
func logsKey(algorithmID, id string) string { return blobPrefix(algorithmID, id) + "/logs" }

// readLogs returns p's logs: "" when it has none, is not final yet or
// expired.
func readLogs(ctx context.Context, bs blobs.Store, p store.Prediction) (string, error) {
	if p.ExpiredAt != nil || !store.PredictionFinal(p.Status) {
		return "", nil
	}
	rc, err := bs.Get(ctx, logsKey(p.AlgorithmID, p.ID))
	if errors.Is(err, blobs.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read prediction %s's logs: %w", p.ID, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLogs))
	if err != nil {
		return "", fmt.Errorf("read prediction %s's logs: %w", p.ID, err)
	}
	return string(b), nil
}

// maxLogs bounds what readLogs reads (the endpoint sends at most 64 KiB).
const maxLogs = 1 << 20
