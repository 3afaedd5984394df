package api

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/algocloud/algocloud/workflows"
)

// Workflows reaches the Deployment workflows. Implementations are safe for
// concurrent use. A cancelled ctx stops waiting but not the work: an update
// the workflow accepted runs to its end.
//
// Errors the handlers branch on (with errors.As / errors.Is): *StepError when
// the workflow refused or failed a step, ErrWorkflowNotFound when no workflow
// runs for the deployment. Anything else means Temporal did not answer.
type Workflows interface {
	// Start starts the deployment's workflow (the wizard's configure step);
	// ownerName is the owner's user name, a search attribute of the workflow.
	Start(ctx context.Context, in workflows.Input, ownerName string) error
	// Update sends update (a workflows.Update* name) with arg and waits for the
	// step to finish, returning the state it left.
	Update(ctx context.Context, deploymentID, update string, arg any) (workflows.State, error)
	// State queries the deployment's current state.
	State(ctx context.Context, deploymentID string) (workflows.State, error)
}

// Kinds of StepError.
const (
	// StepRejected: the workflow's validator refused the step; nothing ran.
	StepRejected = "rejected"
	// StepFailed: the step ran and failed; it may be retried.
	StepFailed = "failed"
)

// StepError is a step the workflow refused (Kind StepRejected) or that ran and
// failed (Kind StepFailed).
type StepError struct {
	// Kind is StepRejected or StepFailed.
	Kind string
	// Message says why, for people.
	Message string
	// Step is the deployment's current step for a rejection (workflows.Step*),
	// the step that failed for a failure.
	Step string
	// Status is the deployment's status (workflows.Status*); set for rejections.
	Status string
	cause  error
}

func (e *StepError) Error() string { return "step " + e.Kind + ": " + e.Message }

// Unwrap returns the Temporal error it came from.
func (e *StepError) Unwrap() error { return e.cause }

// ErrWorkflowNotFound: no workflow runs for the deployment (never started, or
// finished after its deletion).
var ErrWorkflowNotFound = errors.New("deployment workflow not found")

// TemporalWorkflows is Workflows over a Temporal client.
type TemporalWorkflows struct {
	c client.Client
}

var _ Workflows = (*TemporalWorkflows)(nil)

// NewTemporalWorkflows returns Workflows that talks to Temporal through c.
func NewTemporalWorkflows(c client.Client) Workflows { return &TemporalWorkflows{c: c} }

// Start starts workflows.Deployment with ID workflows.WorkflowID; an existing
// workflow with that ID is an error, never silently reused. The workflow
// starts with the search attributes that do not follow its steps
// (workflows.StartSearchAttributes), so operators find it by name at once.
func (t *TemporalWorkflows) Start(ctx context.Context, in workflows.Input, ownerName string) error {
	_, err := t.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                                       workflows.WorkflowID(in.DeploymentID),
		TaskQueue:                                workflows.TaskQueue,
		WorkflowIDConflictPolicy:                 enums.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		TypedSearchAttributes:                    workflows.StartSearchAttributes(in.Spec, ownerName),
	}, workflows.Deployment, in)
	if err != nil {
		return convertError("start deployment "+in.DeploymentID, err)
	}
	return nil
}

// Update runs an update and waits until the workflow has finished it.
func (t *TemporalWorkflows) Update(ctx context.Context, deploymentID, update string, arg any) (workflows.State, error) {
	what := fmt.Sprintf("update %s of deployment %s", update, deploymentID)
	h, err := t.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.WorkflowID(deploymentID),
		UpdateName:   update,
		Args:         []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return workflows.State{}, convertError(what, err)
	}
	var st workflows.State
	if err := h.Get(ctx, &st); err != nil {
		return workflows.State{}, convertError(what, err)
	}
	return st, nil
}

// State runs the state query.
func (t *TemporalWorkflows) State(ctx context.Context, deploymentID string) (workflows.State, error) {
	what := "query state of deployment " + deploymentID
	v, err := t.c.QueryWorkflow(ctx, workflows.WorkflowID(deploymentID), "", workflows.QueryState)
	if err != nil {
		return workflows.State{}, convertError(what, err)
	}
	var st workflows.State
	if err := v.Get(&st); err != nil {
		return workflows.State{}, fmt.Errorf("%s: decode: %w", what, err)
	}
	return st, nil
}

// convertError turns the workflow's step errors into *StepError and a missing
// workflow into ErrWorkflowNotFound; anything else is wrapped as it is.
//
// The SDK hands an update's failure to the caller as the *temporal.ApplicationError
// the workflow returned (decoded by the failure converter): its Type is
// workflows.RejectedErrorType with details (current step, status) from validators,
// workflows.StepFailedErrorType with details (step) from a failed step. A workflow
// that does not exist, or has completed, answers serviceerror.NotFound.
func convertError(what string, err error) error {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		switch app.Type() {
		case workflows.RejectedErrorType:
			step, status := details(app)
			return &StepError{Kind: StepRejected, Message: app.Message(), Step: step, Status: status, cause: err}
		case workflows.StepFailedErrorType:
			step, _ := details(app)
			return &StepError{Kind: StepFailed, Message: app.Message(), Step: step, cause: err}
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s: %w: %v", what, ErrWorkflowNotFound, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// details reads up to two string details. Errors made in this process hold
// plain values (asking for more than there are fails); errors decoded from a
// failure hold payloads (extra targets stay zero). Decoding into any keeps a
// detail of another type from panicking.
func details(app *temporal.ApplicationError) (first, second string) {
	var a, b any
	if err := app.Details(&a, &b); err != nil {
		a, b = nil, nil
		if err := app.Details(&a); err != nil {
			return "", ""
		}
	}
	first, _ = a.(string)
	second, _ = b.(string)
	return first, second
}
