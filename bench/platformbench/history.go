package platformbench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/algocloud/algocloud/workflows"
)

// queueStats splits the deployments' activity time, read from their
// workflow histories, into the wait for a worker slot (scheduled → started)
// and the run (started → closed), per activity type; and the wait of
// workflow tasks (scheduled → started).
type queueStats struct {
	Wait, Run map[string][]time.Duration
	Attempts  map[string]int // activity executions past the first attempt
	Failed    map[string]int // failed or timed-out attempts that closed the activity
	WFTWait   []time.Duration
	WFTFailed int             // workflow tasks that timed out or failed (then ran again)
	WFTWhy    map[string]int  // their timeout type or failure cause
	WFTFirst  []time.Duration // the wait of each workflow's first task (after its start)
	Histories int
	Errors    []string
}

type openActivity struct {
	name      string
	scheduled time.Time
	started   time.Time
}

// analyseHistories reads the Deployment workflow of every id.
func analyseHistories(ctx context.Context, c client.Client, ids []string) queueStats {
	q := queueStats{Wait: map[string][]time.Duration{}, Run: map[string][]time.Duration{}, Attempts: map[string]int{}, Failed: map[string]int{}, WFTWhy: map[string]int{}}
	for _, id := range ids {
		if err := q.read(ctx, c, workflows.WorkflowID(id)); err != nil {
			q.Errors = append(q.Errors, err.Error())
		}
	}
	return q
}

func (q *queueStats) read(ctx context.Context, c client.Client, wfID string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	it := c.GetWorkflowHistory(ctx, wfID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	acts := map[int64]*openActivity{}
	wft := map[int64]time.Time{}
	for it.HasNext() {
		e, err := it.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", wfID, err)
		}
		t := e.GetEventTime().AsTime()
		switch e.GetEventType() {
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			acts[e.GetEventId()] = &openActivity{name: e.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName(), scheduled: t}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_STARTED:
			a := e.GetActivityTaskStartedEventAttributes()
			if o := acts[a.GetScheduledEventId()]; o != nil {
				o.started = t
				if a.GetAttempt() > 1 {
					q.Attempts[o.name] += int(a.GetAttempt()) - 1
				}
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED, enumspb.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
			var sched int64
			switch e.GetEventType() {
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
				sched = e.GetActivityTaskCompletedEventAttributes().GetScheduledEventId()
			case enumspb.EVENT_TYPE_ACTIVITY_TASK_FAILED:
				sched = e.GetActivityTaskFailedEventAttributes().GetScheduledEventId()
			default:
				sched = e.GetActivityTaskTimedOutEventAttributes().GetScheduledEventId()
			}
			o := acts[sched]
			if o == nil || o.started.IsZero() {
				continue
			}
			if e.GetEventType() != enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED {
				q.Failed[o.name]++
			}
			// With retries, scheduled → started also holds the earlier
			// attempts; the started event is the last attempt's.
			q.Wait[o.name] = append(q.Wait[o.name], o.started.Sub(o.scheduled))
			q.Run[o.name] = append(q.Run[o.name], t.Sub(o.started))
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
			q.WFTFailed++
			q.WFTWhy["timed out: "+e.GetWorkflowTaskTimedOutEventAttributes().GetTimeoutType().String()]++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_FAILED:
			q.WFTFailed++
			q.WFTWhy["failed: "+e.GetWorkflowTaskFailedEventAttributes().GetCause().String()]++
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
			wft[e.GetEventId()] = t
		case enumspb.EVENT_TYPE_WORKFLOW_TASK_STARTED:
			if s, ok := wft[e.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId()]; ok {
				d := t.Sub(s)
				q.WFTWait = append(q.WFTWait, d)
				if e.GetWorkflowTaskStartedEventAttributes().GetScheduledEventId() == 2 {
					q.WFTFirst = append(q.WFTFirst, d)
				}
			}
		}
	}
	q.Histories++
	return nil
}

// markdown is a table of waits and runs per activity type.
func (q queueStats) markdown(title string) string {
	if q.Histories == 0 {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%s (from %d workflow histories):\n\n", title, q.Histories)
	t := newTable("activity", "count", "scheduled → started p50 (waiting for a worker slot; earlier attempts included)", "p95", "max", "run p50", "p95", "max", "retries", "failed")
	var names []string
	for n := range q.Run {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		w, r := q.Wait[n], q.Run[n]
		t.row("`"+n+"`", fmt.Sprint(len(r)), fd(pct(w, 50)), fd(pct(w, 95)), fd(maxDur(w)), fd(pct(r, 50)), fd(pct(r, 95)), fd(maxDur(r)), fmt.Sprint(q.Attempts[n]), fmt.Sprint(q.Failed[n]))
	}
	t.row("workflow tasks", fmt.Sprint(len(q.WFTWait)), fd(pct(q.WFTWait, 50)), fd(pct(q.WFTWait, 95)), fd(maxDur(q.WFTWait)), "", "", "", "", fmt.Sprintf("%d timed out or failed", q.WFTFailed))
	t.row("… of which each workflow's first", fmt.Sprint(len(q.WFTFirst)), fd(pct(q.WFTFirst, 50)), fd(pct(q.WFTFirst, 95)), fd(maxDur(q.WFTFirst)), "", "", "", "", "")
	b.WriteString(t.String())
	var why []string
	for k, n := range q.WFTWhy {
		why = append(why, fmt.Sprintf("%s ×%d", k, n))
	}
	slices.Sort(why)
	if len(why) > 0 {
		fmt.Fprintf(&b, "\nWorkflow tasks that timed out or failed: %s.\n", strings.Join(why, ", "))
	}
	for i, e := range q.Errors {
		if i == 3 {
			fmt.Fprintf(&b, "- … %d more errors reading histories\n", len(q.Errors)-3)
			break
		}
		fmt.Fprintf(&b, "- %s\n", oneLine(e))
	}
	return b.String()
}
