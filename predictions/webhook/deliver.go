package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/internal/netpolicy"
	"github.com/algocloud/algocloud/store"
)

// WorkflowType is the delivery workflow's registered name.
const WorkflowType = "WebhookDeliver"

// Event types a prediction's webhook_events_filter names.
const (
	EventStart     = "start"
	EventOutput    = "output"
	EventLogs      = "logs"
	EventCompleted = "completed"
)

// Event is what one delivery sends: its type and the body, the prediction
// (or batch) JSON at that moment as GET returns it. The body is sent as it
// is, so a receiver sees what it would GET.
type Event struct {
	Type    string
	Payload []byte
}

// DeliverInput starts one delivery. The secret is not in it (nor in the
// workflow's history): SendWebhook reads and unseals it at send time.
type DeliverInput struct {
	// DeliveryID is the webhook-id header, the same on every attempt, and
	// names the workflow (WorkflowID), so starting one twice is a no-op.
	// Derive it from the subject and the event, e.g. "<prediction id>-completed".
	DeliveryID string
	// EndpointAlgorithmID is the endpoint (algorithm) whose secret signs.
	EndpointAlgorithmID string
	// SubjectID is the prediction or batch the event is about; the attempts
	// route lists attempts by it.
	SubjectID string
	// URL is the receiver, checked with CheckURL when the subject was
	// created and again (with every address it resolves to) on each attempt.
	URL   string
	Event Event
	// Retry paces the attempts; the zero value is the default schedule
	// (DefaultRetry). Tests shorten it.
	Retry RetryOptions
}

// RetryOptions paces a delivery's attempts: the n-th retry waits
// InitialInterval * BackoffCoefficient^(n-1), at most MaximumInterval, and
// no attempt starts after GiveUpAfter from the first.
type RetryOptions struct {
	InitialInterval    time.Duration
	BackoffCoefficient float64
	MaximumInterval    time.Duration
	GiveUpAfter        time.Duration
}

// DefaultRetry is the schedule of a delivery given no RetryOptions: 5 s,
// 10 s, 20 s, ... doubling up to an hour between attempts, for 24 hours
// (about 30 attempts).
var DefaultRetry = RetryOptions{
	InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Hour, GiveUpAfter: 24 * time.Hour,
}

func (r RetryOptions) withDefaults() RetryOptions {
	if r.InitialInterval <= 0 {
		r.InitialInterval = DefaultRetry.InitialInterval
	}
	if r.BackoffCoefficient < 1 {
		r.BackoffCoefficient = DefaultRetry.BackoffCoefficient
	}
	if r.MaximumInterval <= 0 {
		r.MaximumInterval = DefaultRetry.MaximumInterval
	}
	if r.GiveUpAfter <= 0 {
		r.GiveUpAfter = DefaultRetry.GiveUpAfter
	}
	return r
}

// Result is how a delivery ended: Outcome is store.WebhookDelivered,
// WebhookGone, WebhookRefused or WebhookFailed (gave up after GiveUpAfter).
type Result struct {
	Outcome    string
	StatusCode int
	Attempt    int
}

// WorkflowID is the delivery workflow's id for a delivery id.
func WorkflowID(deliveryID string) string { return "webhook-" + deliveryID }

// AttemptTimeout bounds one attempt: connect, send, and the receiver's
// answer (its status line; the body is read briefly after).
const AttemptTimeout = 10 * time.Second

// retryErrorType marks an attempt that failed and may be retried.
const retryErrorType = "WebhookAttemptFailed"

// Deliver is the delivery workflow: one SendWebhook activity that Temporal
// retries with exponential backoff (the server schedules the retries, so the
// history stays a few events long whatever the number of attempts, and a
// retry survives the worker's death) until an attempt is delivered (2xx),
// gone (410) or refused (policy, no secret), or GiveUpAfter has passed.
// It never fails: a delivery that gives up records a last "failed" line
// and returns Outcome WebhookFailed.
func Deliver(ctx workflow.Context, in DeliverInput) (Result, error) {
	r := in.Retry.withDefaults()
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    AttemptTimeout + 20*time.Second,
		ScheduleToCloseTimeout: r.GiveUpAfter,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: r.InitialInterval, BackoffCoefficient: r.BackoffCoefficient,
			MaximumInterval: r.MaximumInterval, MaximumAttempts: 0,
		},
	})
	var a *Activities
	var res Result
	err := workflow.ExecuteActivity(actx, a.SendWebhook, in).Get(ctx, &res)
	if err == nil {
		return res, nil
	}
	// Out of time (or an error no retry helps): say so where the
	// attempts are listed.
	gctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 20, MaximumInterval: time.Minute},
	})
	if gerr := workflow.ExecuteActivity(gctx, a.WebhookGaveUp, in, err.Error()).Get(ctx, nil); gerr != nil {
		workflow.GetLogger(ctx).Warn("record a webhook delivery that gave up", "delivery", in.DeliveryID, "error", gerr)
	}
	return Result{Outcome: store.WebhookFailed}, nil
}

// ChildOptions are the options a prediction or batch workflow starts a
// delivery with: the delivery's own id, and ABANDON so the parent may
// complete (or be canceled) while the delivery retries. The parent must wait
// for the child to start (GetChildWorkflowExecution().Get) before it
// completes, or the child may never start; StartChild does both.
func ChildOptions(in DeliverInput) workflow.ChildWorkflowOptions {
	return workflow.ChildWorkflowOptions{
		WorkflowID:            WorkflowID(in.DeliveryID),
		ParentClosePolicy:     enums.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
	}
}

// StartChild starts a delivery as an abandoned child of the calling
// workflow and waits only until it has started, never for its attempts:
// a webhook never holds up a prediction. A delivery of that id already
// started (a replayed or retried parent) counts as started.
func StartChild(ctx workflow.Context, in DeliverInput) error {
	cctx := workflow.WithChildOptions(ctx, ChildOptions(in))
	f := workflow.ExecuteChildWorkflow(cctx, WorkflowType, in)
	err := f.GetChildWorkflowExecution().Get(ctx, nil)
	if err != nil && temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start webhook delivery %s: %w", in.DeliveryID, err)
	}
	return nil
}

// Start starts a delivery from outside a workflow (tests, an API handler)
// on taskQueue; a delivery of that id already started is not started again.
func Start(ctx context.Context, c client.Client, taskQueue string, in DeliverInput) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: WorkflowID(in.DeliveryID), TaskQueue: taskQueue,
		WorkflowIDReusePolicy:    enums.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enums.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, WorkflowType, in)
	if err != nil {
		return nil, fmt.Errorf("start webhook delivery %s: %w", in.DeliveryID, err)
	}
	return run, nil
}

// Registry is what Register needs of a Temporal worker.
type Registry interface {
	RegisterWorkflowWithOptions(w any, options workflow.RegisterOptions)
	RegisterActivity(a any)
}

// Register registers the delivery workflow and acts' activities.
func Register(w Registry, acts *Activities) {
	w.RegisterWorkflowWithOptions(Deliver, workflow.RegisterOptions{Name: WorkflowType})
	w.RegisterActivity(acts)
}

// Store is what the activities need of the store; *store.Store has it.
type Store interface {
	WebhookSecret(ctx context.Context, algorithmID string) ([]byte, error)
	AddWebhookAttempt(ctx context.Context, a store.WebhookAttempt) error
}

var _ Store = (*store.Store)(nil)

// MaxPayload bounds an event's body; a bigger one is refused (the prediction
// JSON links large outputs instead of embedding them).
const MaxPayload = 1 << 20

// maxAnswer is how much of a receiver's answer is read: a snippet of it is
// recorded with a failed attempt; the rest is not waited for.
const maxAnswer = 64 << 10

// Activities sends webhooks. Its fields are set once, before the worker
// starts.
type Activities struct {
	Store Store
	// Key is the platform's credentials key, which sealed the secrets.
	Key []byte
	// Dialer connects to receivers: its Policy is the webhook URL policy,
	// checked on every address dialled.
	Dialer *netpolicy.Dialer
	// RootCAs verifies receivers' certificates; nil is the system's roots.
	RootCAs *x509.CertPool
	// Timeout bounds one attempt; 0 is AttemptTimeout.
	Timeout time.Duration
	// Now is the clock of webhook-timestamp; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger

	once   sync.Once
	client *http.Client
}

func (a *Activities) httpClient() *http.Client {
	a.once.Do(func() {
		d := a.Dialer
		if d == nil {
			d = &netpolicy.Dialer{} // public addresses only
		}
		if d.Timeout == 0 {
			copied := *d
			copied.Timeout = AttemptTimeout
			d = &copied
		}
		t := d.HTTPTransport()
		t.TLSClientConfig = &tls.Config{RootCAs: a.RootCAs, MinVersion: tls.VersionTLS12}
		t.ResponseHeaderTimeout = a.timeout()
		a.client = &http.Client{
			Transport: t,
			// Redirects are never followed: a receiver that moved must be
			// given its new URL; a 3xx is a failed attempt.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	return a.client
}

func (a *Activities) timeout() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout
	}
	return AttemptTimeout
}

func (a *Activities) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func (a *Activities) log() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

func (a *Activities) policy() netpolicy.Policy {
	if a.Dialer == nil {
		return netpolicy.Policy{}
	}
	return a.Dialer.Policy
}

// SendWebhook is one attempt of a delivery, recorded in the store. It
// returns a Result when the delivery is over (delivered, gone, refused) and
// an error for Temporal to retry after the backoff otherwise.
func (a *Activities) SendWebhook(ctx context.Context, in DeliverInput) (Result, error) {
	attempt := int(activity.GetInfo(ctx).Attempt)
	rec := store.WebhookAttempt{
		DeliveryID: in.DeliveryID, AlgorithmID: in.EndpointAlgorithmID, SubjectID: in.SubjectID,
		Event: in.Event.Type, URL: in.URL, Attempt: attempt, At: a.now(),
	}
	final := func(outcome string, status int, msg string) (Result, error) {
		rec.Outcome, rec.StatusCode, rec.Error = outcome, status, msg
		a.record(ctx, rec)
		return Result{Outcome: outcome, StatusCode: status, Attempt: attempt}, nil
	}
	retryAfter := time.Duration(0)
	retry := func(status int, msg string) (Result, error) {
		rec.Outcome, rec.StatusCode, rec.Error = store.WebhookRetry, status, msg
		a.record(ctx, rec)
		if retryAfter > 0 {
			// The receiver said when: that replaces this step of the backoff.
			return Result{}, temporal.NewApplicationErrorWithOptions(msg, retryErrorType, temporal.ApplicationErrorOptions{NextRetryDelay: retryAfter})
		}
		return Result{}, temporal.NewApplicationError(msg, retryErrorType)
	}
	if err := CheckURL(a.policy(), in.URL); err != nil {
		return final(store.WebhookRefused, 0, err.Error())
	}
	if len(in.Event.Payload) > MaxPayload {
		return final(store.WebhookRefused, 0, fmt.Sprintf("event body of %d bytes is over the limit of %d", len(in.Event.Payload), MaxPayload))
	}
	sealed, err := a.Store.WebhookSecret(ctx, in.EndpointAlgorithmID)
	if errors.Is(err, store.ErrNotFound) {
		return final(store.WebhookRefused, 0, "the endpoint has no webhook secret: create one (POST /api/v1/deployments/{id}/webhook_secret)")
	}
	if err != nil {
		return Result{}, fmt.Errorf("read webhook secret: %w", err)
	}
	secret, err := OpenSecret(a.Key, in.EndpointAlgorithmID, sealed)
	if err != nil {
		// The operator may fix the key; retry until then.
		return retry(0, err.Error())
	}
	sig, err := Sign(secret, in.DeliveryID, rec.At, in.Event.Payload)
	if err != nil {
		return final(store.WebhookRefused, 0, err.Error())
	}

	rctx, cancel := context.WithTimeout(ctx, a.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, in.URL, bytes.NewReader(in.Event.Payload))
	if err != nil {
		return final(store.WebhookRefused, 0, "build request: "+err.Error())
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "algocloud-webhooks/1")
	req.Header.Set(HeaderID, in.DeliveryID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(rec.At.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	start := time.Now()
	resp, err := a.httpClient().Do(req)
	rec.Duration = time.Since(start)
	if err != nil {
		if netpolicy.IsForbidden(err) {
			return final(store.WebhookRefused, 0, "refused by the webhook URL policy: "+err.Error())
		}
		return retry(0, "no answer: "+err.Error())
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now(), in.Retry.withDefaults().MaximumInterval)
	}
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	_ = resp.Body.Close()
	rec.Duration = time.Since(start)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return final(store.WebhookDelivered, resp.StatusCode, "")
	case resp.StatusCode == http.StatusGone:
		return final(store.WebhookGone, resp.StatusCode, "410 Gone: the receiver asked for no more attempts")
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return retry(resp.StatusCode, fmt.Sprintf("HTTP %d: redirect to %q not followed (give the final URL)", resp.StatusCode, resp.Header.Get("Location")))
	}
	msg := "HTTP " + strconv.Itoa(resp.StatusCode)
	if s := bytes.TrimSpace(snippet[:min(len(snippet), 512)]); len(s) > 0 {
		msg += ": " + string(s)
	}
	return retry(resp.StatusCode, msg)
}

// WebhookGaveUp records that a delivery stopped retrying (out of time).
func (a *Activities) WebhookGaveUp(ctx context.Context, in DeliverInput, reason string) error {
	err := a.Store.AddWebhookAttempt(ctx, store.WebhookAttempt{
		DeliveryID: in.DeliveryID, AlgorithmID: in.EndpointAlgorithmID, SubjectID: in.SubjectID,
		Event: in.Event.Type, URL: in.URL, Attempt: 0, At: a.now(), Outcome: store.WebhookFailed,
		Error: "gave up: " + reason,
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("record webhook delivery %s gave up: %w", in.DeliveryID, err)
	}
	return nil
}

// record stores an attempt. A store that fails does not fail the attempt:
// the receiver's answer stands, and the log says what was lost.
func (a *Activities) record(ctx context.Context, rec store.WebhookAttempt) {
	if err := a.Store.AddWebhookAttempt(ctx, rec); err != nil {
		a.log().WarnContext(ctx, "record webhook attempt", "delivery", rec.DeliveryID, "attempt", rec.Attempt, "outcome", rec.Outcome, "error", err)
	}
}

// parseRetryAfter reads a Retry-After value (seconds or an HTTP date) as a
// delay of at most limit; 0 when absent, malformed or past.
func parseRetryAfter(v string, now time.Time, limit time.Duration) time.Duration {
	if v == "" {
		return 0
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		d = time.Duration(min(secs, int64(limit/time.Second)+1)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return max(0, min(d, limit))
}
