package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/algocloud/algocloud/activities/actdef"
)

// Temporal application error types (ApplicationError.Type()) of update
// failures, for callers that branch on them. They are strings, not sentinel
// errors: match them with the error's Type(). Their values are recorded in
// workflow histories: never change a value.
const (
	// RejectedErrorType: the validator refused the step (out of order, busy, bad
	// request). Its details hold the current step. Nothing reached history.
	RejectedErrorType = "Rejected"
	// StepFailedErrorType: the step ran and failed; it can be retried.
	StepFailedErrorType = "StepFailed"
)

// historyLimit bounds State.History.
const historyLimit = 50

// a is nil on purpose: the workflow names activities by method value
// (actdef.Names; the worker runs *activities.Activities under those names).
var a *actdef.Names

// changeStepOutcomes versions fixes from acceptance testing, decided once
// when a run starts (so one run never mixes old and new behaviour; histories
// from before it replay with the old one):
//   - a failed Test Code is a failed step: its record says ok:false, LastError
//     holds it and the update fails (red in the Temporal UI), where it used
//     to succeed with "test failed: ..." as its message;
//   - a live deployment is `completed` only while its endpoint serves the
//     working copy's code and install: new requirements then a passing test
//     leave it `tested`, with Complete next, where only the code revision
//     used to count;
//   - Delete projects `deleting` into the store before its teardown (the
//     list read `live` until the end, for minutes if a worker died), and its
//     blob clean-up and the DNS upsert run with a heartbeat timeout, so a
//     lost attempt is retried in seconds instead of at its time limit.
const changeStepOutcomes = "step-outcomes"

// deployment holds a running workflow's state.
type deployment struct {
	st State
	// outcomes: this run has changeStepOutcomes.
	outcomes bool
	// searchAttrs: this run has changeSearchAttributes.
	searchAttrs bool
	reconcile   bool
	// renew is a pending certificate renewal request (the latest one).
	renew *RenewCertificateRequest
}

// Deployment is the durable life of one algorithm: the wizard's steps arrive
// as updates, then it owns the endpoint until it is deleted.
func Deployment(ctx workflow.Context, in Input) (State, error) {
	d := &deployment{}
	if in.State != nil {
		d.st = *in.State
	} else {
		d.st = State{DeploymentID: in.DeploymentID, OwnerID: in.OwnerID, Spec: in.Spec, Status: StatusDraft, History: []StepRecord{}}
	}
	d.st.UpdatedAt = workflow.Now(ctx)
	d.outcomes = workflow.GetVersion(ctx, changeStepOutcomes, workflow.DefaultVersion, 1) == 1
	d.st.refresh(d.outcomes)
	d.searchAttrs = workflow.GetVersion(ctx, changeSearchAttributes, workflow.DefaultVersion, 1) == 1
	d.upsertSearchAttributes(ctx)
	if err := d.register(ctx); err != nil {
		return d.st, err
	}
	sig := workflow.GetSignalChannel(ctx, SignalReconcile)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sig.Receive(ctx, nil)
			d.reconcile = true
		}
	})
	renew := workflow.GetSignalChannel(ctx, SignalRenewCertificate)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var r RenewCertificateRequest
			renew.Receive(ctx, &r)
			d.renew = &r
		}
	})
	for {
		err := workflow.Await(ctx, func() bool {
			return d.st.Status == StatusDeleted ||
				(d.st.Busy == "" && (d.reconcile || d.renew != nil || workflow.GetInfo(ctx).GetContinueAsNewSuggested()))
		})
		if err != nil {
			return d.st, err
		}
		if d.st.Status == StatusDeleted {
			_ = workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
			return d.st, nil
		}
		if d.reconcile {
			d.reconcile = false
			if d.st.Status == StatusLive && d.st.Live != nil {
				_ = d.run(ctx, "reconcile", func(ctx workflow.Context) (string, error) { return d.startService(ctx, false) })
			}
			continue
		}
		if d.renew != nil {
			// Between steps (Busy is empty, and run marks it): a renewal
			// never overlaps another step's activities, and steps asked for
			// meanwhile are refused as busy, like during any step.
			r := *d.renew
			d.renew = nil
			if workflow.GetVersion(ctx, changeCertRenewal, workflow.DefaultVersion, 1) == 1 && d.wantsRenewal(r) {
				_ = d.run(ctx, StepRenewCertificate, d.renewCertificate)
			}
			continue
		}
		if workflow.AllHandlersFinished(ctx) {
			st := d.st
			return d.st, workflow.NewContinueAsNewError(ctx, Deployment, Input{DeploymentID: st.DeploymentID, OwnerID: st.OwnerID, Spec: st.Spec, State: &st})
		}
	}
}

// register installs the query and every update with its validator.
func (d *deployment) register(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryState, func() (State, error) { return d.st, nil }); err != nil {
		return err
	}
	type upd struct {
		name     string
		handler  any
		validate any
	}
	for _, u := range []upd{
		{UpdateConfigure, d.configure, d.validateConfigure},
		{UpdateProvision, d.provision, d.validateProvision},
		{UpdateFetchCode, d.fetchCode, d.validateFetchCode},
		{UpdateInstall, d.install, d.validateInstall},
		{UpdateTest, d.test, d.validateTest},
		{UpdateComplete, d.complete, d.validateComplete},
		{UpdateStop, d.stop, d.validateStop},
		{UpdateStart, d.start, d.validateStart},
		{UpdateDelete, d.delete, d.validateDelete},
		{UpdateRotateToken, d.rotateToken, d.validateRotateToken},
	} {
		if err := workflow.SetUpdateHandlerWithOptions(ctx, u.name, u.handler, workflow.UpdateHandlerOptions{Validator: u.validate}); err != nil {
			return fmt.Errorf("register update %s: %w", u.name, err)
		}
	}
	return nil
}

// reject is a validator's refusal; details carry the current step.
func (d *deployment) reject(format string, args ...any) error {
	return temporal.NewApplicationError(fmt.Sprintf(format, args...), RejectedErrorType, d.st.Step, d.st.Status)
}

// ready refuses any step while another runs or after deletion.
func (d *deployment) ready(step string) error {
	switch {
	case d.st.Status == StatusDeleted || d.st.Status == StatusDeleting:
		return d.reject("deployment is %s", d.st.Status)
	case d.st.Busy != "":
		return d.reject("%s is still running; wait for it to finish before %s", d.st.Busy, step)
	}
	return nil
}

// run marks step busy, runs fn, records the outcome and projects the state.
func (d *deployment) run(ctx workflow.Context, step string, fn func(workflow.Context) (string, error)) error {
	if d.st.Busy != "" { // two updates admitted in one task: the validator could not see the first
		return temporal.NewApplicationError(d.st.Busy+" is still running", RejectedErrorType, d.st.Step, d.st.Status)
	}
	d.st.Busy = step
	start := workflow.Now(ctx)
	msg, err := fn(ctx)
	now := workflow.Now(ctx)
	d.st.Busy = ""
	rec := StepRecord{Step: step, OK: err == nil, At: now, Duration: now.Sub(start).Round(time.Millisecond).String(), Message: msg}
	if err != nil {
		rec.Message = errorMessage(err)
		d.st.LastError = &StepError{Step: step, Message: rec.Message, At: now}
	} else if d.st.LastError != nil && d.st.LastError.Step == step {
		d.st.LastError = nil
	}
	d.st.History = append(d.st.History, rec)
	if len(d.st.History) > historyLimit {
		d.st.History = d.st.History[len(d.st.History)-historyLimit:]
	}
	d.st.UpdatedAt = now
	d.st.refresh(d.outcomes)
	d.project(ctx)
	if err != nil {
		return temporal.NewApplicationError(rec.Message, StepFailedErrorType, step)
	}
	return nil
}

// project writes the state's summary into the store; it must not fail the step.
func (d *deployment) project(ctx workflow.Context) {
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 10 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	rec := actdef.StateRecord{DeploymentID: d.st.DeploymentID, Step: d.st.Step, Status: d.st.Status}
	if d.st.Live != nil && d.st.Status == StatusLive {
		rec.Endpoint = d.st.Live.Endpoint
	}
	if d.st.LastError != nil {
		rec.Error = d.st.LastError.Step + ": " + d.st.LastError.Message
	}
	// Only the local activity's input grows: replay does not compare it,
	// so no history needs a version for it.
	rec.Serving, rec.Staged = d.st.ServingAndStaged()
	if err := workflow.ExecuteLocalActivity(lctx, a.RecordState, rec).Get(lctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("project state", "error", err)
	}
	d.upsertSearchAttributes(ctx)
}

// errorMessage is the innermost application message: what the user reads.
func errorMessage(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		// The message, not Error(): that appends "(type: ..., retryable: ...)",
		// Temporal's bookkeeping, which the author has no use for.
		if msg := app.Message(); msg != "" {
			return msg
		}
		return app.Error()
	}
	var timeout *temporal.TimeoutError
	if errors.As(err, &timeout) {
		return "timed out: " + timeout.Error()
	}
	return err.Error()
}

// refresh derives Step from what exists. servedInstall (changeStepOutcomes)
// counts a live deployment completed only while it serves the current
// install too, not just the current code.
func (s *State) refresh(servedInstall bool) {
	switch {
	case s.Status == StatusDeleted:
		s.Step = StepDeleted
	case s.Code == nil && s.Server != nil && s.Cert != nil:
		s.Step = StepProvisioned
	case s.Code == nil:
		s.Step = StepConfigured
	case s.Install == nil || s.Install.CodeRevision != s.Code.Revision:
		s.Step = StepCodeFetched
	case !s.testCurrent():
		s.Step = StepInstalled
	case s.Live != nil && s.Live.CodeRevision == s.Code.Revision && s.Status != StatusDraft &&
		(!servedInstall || s.servesInstall()):
		s.Step = StepCompleted
	default:
		s.Step = StepTested
	}
}

// servesInstall reports whether the endpoint serves the working copy's
// install revision (states from before Serving existed cannot tell: yes).
func (s *State) servesInstall() bool {
	return s.Serving == nil || s.Install == nil || s.Serving.Install.Revision == s.Install.Revision
}

// testCurrent reports a passing test of the current code and install.
func (s *State) testCurrent() bool {
	return s.Test != nil && s.Test.OK && s.Code != nil && s.Install != nil &&
		s.Test.CodeRevision == s.Code.Revision && s.Test.InstallRevision == s.Install.Revision
}

func (d *deployment) validateConfigure(r ConfigureRequest) error {
	if err := d.ready(UpdateConfigure); err != nil {
		return err
	}
	sp := r.Spec.WithDefaults()
	if err := sp.Validate(); err != nil {
		return temporal.NewApplicationError(err.Error(), RejectedErrorType, d.st.Step, d.st.Status)
	}
	if sp.APIName != d.st.Spec.APIName {
		return d.reject("api_name cannot change (it names the endpoint and its certificate); create a new deployment")
	}
	if d.st.Server != nil && (sp.Compute != d.st.Spec.Compute || sp.InstanceType != d.st.Spec.InstanceType || sp.Region != d.st.Spec.Region) {
		return d.reject("compute, instance_type and region are fixed once the server is provisioned")
	}
	return nil
}

func (d *deployment) configure(ctx workflow.Context, r ConfigureRequest) (State, error) {
	err := d.run(ctx, UpdateConfigure, func(ctx workflow.Context) (string, error) {
		sp := r.Spec.WithDefaults()
		if sp.Input != d.st.Spec.Input || sp.Output != d.st.Spec.Output || sp.Threads != d.st.Spec.Threads {
			d.st.Test = nil // the server changes: test again before completing
		}
		d.st.Spec = sp
		return "spec updated", nil
	})
	return d.st, err
}

// heartbeat is the heartbeat timeout of long activities (they beat every 5 s):
// a worker that dies mid-step is noticed this soon and the step retried.
const heartbeat = 20 * time.Second

// activityOptions are per-step timeouts and retry policies.
func activityOptions(ctx workflow.Context, startToClose, heartbeat time.Duration, attempts int32) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    heartbeat,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    time.Second,
			BackoffCoefficient: 2,
			MaximumInterval:    30 * time.Second,
			MaximumAttempts:    attempts,
		},
	})
}
