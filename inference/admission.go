package inference

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"sync/atomic"
	"time"
)

// admission bounds the server's memory under load, in three steps.
//
// At arrival, before its body is read, a /predict request is refused with
// 429 overloaded (ErrOverflow, Retry-After) when MaxQueueSize + Threads ×
// MaxBatchSize requests are in progress already: the queue plus what the
// workers hold.
//
// An admitted request then waits for an intake slot before it reads its
// body, and holds it to the end: at most 4 × (work slots) requests hold a
// body, a decoded input or an output at once, while the others wait at no
// cost (their bytes stay in the socket). Four times the work slots leaves
// room for slow uploads without stalling the workers.
//
// Once its body is read, a request waits for one of a few work slots before
// it decodes its input, and keeps it until its output is encoded: decoded
// pixels, worker replies and encoder state exist for those requests only.
// The work slots are enough to keep every core decoding or encoding and
// every worker busy with a full batch, with the next batch queued:
// 2 × Threads × MaxBatchSize + GOMAXPROCS. Both waits are bounded by Timeout
// (503 overloaded past it).
type admission struct {
	limit   int64
	active  atomic.Int64
	intake  chan struct{}
	slots   chan struct{}
	timeout time.Duration
}

func newAdmission(c Config) *admission {
	perBatch := c.Threads * c.MaxBatchSize
	work := 2*perBatch + runtime.GOMAXPROCS(0)
	return &admission{limit: int64(c.MaxQueueSize + perBatch), intake: make(chan struct{}, 4*work),
		slots: make(chan struct{}, work), timeout: time.Duration(c.Timeout)}
}

// admit counts a request in, or refuses it; release counts it out.
func (a *admission) admit() (release func(), err error) {
	if n := a.active.Add(1); n > a.limit {
		a.active.Add(-1)
		return nil, &APIError{Status: http.StatusTooManyRequests, Code: CodeOverloaded, cause: ErrOverflow,
			Message: fmt.Sprintf("%d requests are already in progress; retry later", a.limit)}
	}
	return func() { a.active.Add(-1) }, nil
}

// workTicket is one request's claim on an intake slot and a work slot; only
// the request's own goroutine uses it.
type workTicket struct {
	a                  *admission
	inTaken, workTaken bool
}

type workTicketKey struct{}

// withWork lets the codecs below find the request's ticket (enterWork).
func withWork(ctx context.Context, t *workTicket) context.Context {
	return context.WithValue(ctx, workTicketKey{}, t)
}

// enterWork takes the request's work slot if ctx carries a ticket and it
// does not hold one yet. Input codecs call it once the body is read.
func enterWork(ctx context.Context) error {
	if t, ok := ctx.Value(workTicketKey{}).(*workTicket); ok {
		return t.enter(ctx)
	}
	return nil
}

// enterIntake takes the intake slot, before the body is read.
func (t *workTicket) enterIntake(ctx context.Context) error {
	return t.take(ctx, t.a.intake, &t.inTaken, "intake")
}

// enter takes the work slot, once the body is read.
func (t *workTicket) enter(ctx context.Context) error {
	return t.take(ctx, t.a.slots, &t.workTaken, "work")
}

func (t *workTicket) take(ctx context.Context, sem chan struct{}, taken *bool, what string) error {
	if *taken {
		return nil
	}
	select { // the common case: a slot is free
	case sem <- struct{}{}:
		*taken = true
		return nil
	default:
	}
	timer := time.NewTimer(t.a.timeout)
	defer timer.Stop()
	select {
	case sem <- struct{}{}:
		*taken = true
		return nil
	case <-timer.C:
		return apiErr(http.StatusServiceUnavailable, CodeOverloaded, "no %s slot became free within %s; retry later", what, t.a.timeout)
	case <-ctx.Done():
		return fmt.Errorf("wait for a %s slot: %w", what, ctx.Err())
	}
}

// leaveWork gives the work slot back (if taken).
func (t *workTicket) leaveWork() {
	if t.workTaken {
		t.workTaken = false
		<-t.a.slots
	}
}

// leave gives both slots back (those taken).
func (t *workTicket) leave() {
	t.leaveWork()
	if t.inTaken {
		t.inTaken = false
		<-t.a.intake
	}
}
