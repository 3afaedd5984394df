package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/algocloud/algocloud/activities/actdef"
	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/spec"
	"github.com/algocloud/algocloud/store"
	"github.com/algocloud/algocloud/workflows"
)

// startTimeout bounds starting a workflow. It runs detached from the request,
// so a client that leaves mid-way cannot leave a row without its workflow.
const startTimeout = 30 * time.Second

// stateTimeout bounds the state query of a read: with no worker polling, a
// query waits, and a read should rather answer without the state.
const stateTimeout = 5 * time.Second

// deploymentView is a deployment as listed: the store's row.
type deploymentView struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	APIName          string `json:"api_name"`
	WorkflowID       string `json:"workflow_id"`
	Step             string `json:"step"`
	Status           string `json:"status"`
	Endpoint         string `json:"endpoint,omitempty"`
	Error            string `json:"error,omitempty"`
	HasEndpointToken bool   `json:"has_endpoint_token"`
	// Serving is what the live endpoint serves (absent when nothing does);
	// Staged the working copy when Complete would change that (absent when
	// the working copy is what was completed). workflows.State.ServingAndStaged.
	Serving   *actdef.ServingRevision `json:"serving,omitempty"`
	Staged    *actdef.StagedRevision  `json:"staged,omitempty"`
	CreatedAt time.Time               `json:"created_at"`
	UpdatedAt time.Time               `json:"updated_at"`
}

func viewOf(a store.Algorithm) deploymentView {
	v := deploymentView{
		ID: a.ID, Name: a.Name, Description: a.Description, APIName: a.APIName, WorkflowID: a.WorkflowID,
		Step: a.Step, Status: a.Status, Endpoint: a.Endpoint, Error: a.Error,
		HasEndpointToken: a.HasEndpointToken, CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt,
	}
	// The workflow wrote these columns; one it could not have written (a
	// hand-edited row) is left out rather than failing the whole listing.
	if a.Serving != nil && json.Unmarshal(a.Serving, &v.Serving) != nil {
		v.Serving = nil
	}
	if a.Staged != nil && json.Unmarshal(a.Staged, &v.Staged) != nil {
		v.Staged = nil
	}
	return v
}

// stepView is one wizard step and whether the deployment is past it.
type stepView struct {
	Name string `json:"name"`
	Done bool   `json:"done"`
}

// deploymentDetail is one deployment: its row, overlaid with the workflow's
// state when that is known, and what to do next.
type deploymentDetail struct {
	deploymentView
	Spec json.RawMessage `json:"spec,omitempty"`
	// State is the workflow's state without its token hash; absent when the
	// workflow could not be asked (StateError says why).
	State      *workflows.State `json:"state,omitempty"`
	StateError string           `json:"state_error,omitempty"`
	// NextStep is the step (a POST .../steps/{step} name) the wizard offers next.
	NextStep string     `json:"next_step,omitempty"`
	Steps    []stepView `json:"steps"`
}

// stepOrder ranks State.Step values: the wizard step at index i of
// workflows.Steps is done when the rank is above i.
var stepOrder = map[string]int{
	workflows.StepConfigured: 0, workflows.StepProvisioned: 1, workflows.StepCodeFetched: 2,
	workflows.StepInstalled: 3, workflows.StepTested: 4, workflows.StepCompleted: 5,
}

// detailOf builds a deployment's detail; st, when known, wins over the row,
// which the workflow updates only after each step.
func detailOf(a store.Algorithm, st *workflows.State) deploymentDetail {
	d := deploymentDetail{deploymentView: viewOf(a), Spec: a.Spec}
	if st != nil {
		pub := *st
		pub.TokenSHA256 = "" // not secret, but nothing a client needs
		d.State = &pub
		d.Step, d.Status = st.Step, st.Status
		d.Name, d.Description = st.Spec.Name, st.Spec.Description
		d.Endpoint, d.Error = "", ""
		if st.Live != nil && st.Status == workflows.StatusLive {
			d.Endpoint = st.Live.Endpoint
		}
		if st.LastError != nil {
			d.Error = st.LastError.Step + ": " + st.LastError.Message
		}
		d.Serving, d.Staged = st.ServingAndStaged()
		if raw, err := json.Marshal(st.Spec); err == nil {
			d.Spec = raw
		}
	}
	rank, known := stepOrder[d.Step]
	d.Steps = make([]stepView, len(workflows.Steps))
	for i, name := range workflows.Steps {
		d.Steps[i] = stepView{Name: name, Done: known && rank > i}
	}
	switch {
	case !known, d.Status == workflows.StatusDeleting, d.Status == workflows.StatusDeleted:
	case d.Step == workflows.StepCompleted:
		if d.Status == workflows.StatusStopped {
			d.NextStep = workflows.UpdateStart
		}
	default:
		d.NextStep = workflows.Steps[rank]
	}
	return d
}

// deploymentKey is where loadDeployment leaves the caller's store.Algorithm.
const deploymentKey = "algocloud.deployment"

// loadDeployment finds the caller's deployment :id. Another owner's answers
// the same 404 as a missing one.
func (s *server) loadDeployment(c *gin.Context) {
	a, err := s.store.GetAlgorithm(c.Request.Context(), user(c).ID, c.Param("id"))
	if err != nil {
		s.fail(c, "get deployment", err)
		return
	}
	c.Set(deploymentKey, a)
	c.Next()
}

// deployment is the deployment loadDeployment found.
func deployment(c *gin.Context) store.Algorithm { return c.MustGet(deploymentKey).(store.Algorithm) }

// createDeployment is the wizard's configure step: a validated spec becomes a
// store row and a started workflow.
func (s *server) createDeployment(c *gin.Context) {
	ctx := c.Request.Context()
	var sp spec.Spec
	if e := decodeJSON(c, &sp, false); e != nil {
		writeError(c, e)
		return
	}
	sp = sp.WithDefaults()
	if err := sp.Validate(); err != nil {
		writeError(c, errValidation(errcode.InvalidSpec, err))
		return
	}
	raw, err := json.Marshal(sp)
	if err != nil {
		s.fail(c, "encode spec", err)
		return
	}
	u := user(c)
	id := uuid.NewString()
	a := store.Algorithm{
		ID: id, OwnerID: u.ID, Name: sp.Name, Description: sp.Description, APIName: sp.APIName,
		WorkflowID: workflows.WorkflowID(id), Spec: raw,
		Step: workflows.StepConfigured, Status: workflows.StatusDraft,
	}
	if err := s.store.CreateAlgorithm(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(c, (&apiError{Code: errcode.APINameTaken,
				Message: "api_name " + sp.APIName + " is taken; choose another"}).
				with("fields", []spec.FieldError{{Field: "api_name", Message: "is taken"}}))
			return
		}
		s.fail(c, "create deployment", err)
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), startTimeout)
	defer cancel()
	if err := s.wf.Start(sctx, workflows.Input{DeploymentID: id, OwnerID: u.ID, Spec: sp}, u.Name); err != nil {
		s.log.WarnContext(ctx, "start deployment workflow", "deployment", id, "error", err)
		if derr := s.store.MarkDeleted(sctx, id); derr != nil {
			s.log.ErrorContext(ctx, "free api name after failed start", "deployment", id, "error", derr)
		}
		_ = c.Error(err)
		writeError(c, &apiError{Code: errcode.TemporalUnavailable,
			Message: "the deployment's workflow could not be started; nothing was created, try again shortly"})
		return
	}
	if stored, err := s.store.GetAlgorithm(ctx, u.ID, id); err == nil {
		a = stored // with the store's timestamps
	}
	c.Header("Location", "/api/v1/deployments/"+id)
	c.JSON(http.StatusCreated, detailOf(a, nil))
}

// listDeployments lists the caller's deployments from the store.
func (s *server) listDeployments(c *gin.Context) {
	list, err := s.store.ListAlgorithms(c.Request.Context(), user(c).ID)
	if err != nil {
		s.fail(c, "list deployments", err)
		return
	}
	out := make([]deploymentView, len(list))
	for i, a := range list {
		out[i] = viewOf(a)
	}
	c.JSON(http.StatusOK, gin.H{"deployments": out})
}

// getDeployment answers the row and, when the workflow answers in time, its state.
func (s *server) getDeployment(c *gin.Context) {
	a := deployment(c)
	st, err := s.state(c.Request.Context(), a.ID)
	if err != nil {
		d := detailOf(a, nil)
		d.StateError = stateErrorText(err)
		c.JSON(http.StatusOK, d)
		return
	}
	c.JSON(http.StatusOK, detailOf(a, &st))
}

// state queries a deployment's state within stateTimeout.
func (s *server) state(ctx context.Context, id string) (workflows.State, error) {
	ctx, cancel := context.WithTimeout(ctx, stateTimeout)
	defer cancel()
	return s.wf.State(ctx, id)
}

func stateErrorText(err error) string {
	if errors.Is(err, ErrWorkflowNotFound) {
		return "the deployment's workflow no longer runs"
	}
	return "the workflow service did not answer in time"
}

// updateSpec changes the spec (configure). The API name cannot change.
func (s *server) updateSpec(c *gin.Context) {
	a := deployment(c)
	var sp spec.Spec
	if e := decodeJSON(c, &sp, false); e != nil {
		writeError(c, e)
		return
	}
	sp = sp.WithDefaults()
	if err := sp.Validate(); err != nil {
		writeError(c, errValidation(errcode.InvalidSpec, err))
		return
	}
	st, err := s.wf.Update(c.Request.Context(), a.ID, workflows.UpdateConfigure, workflows.ConfigureRequest{Spec: sp})
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	c.JSON(http.StatusOK, detailOf(a, &st))
}

// deleteDeployment tears the deployment down and waits for the teardown. A
// deployment whose workflow is gone is only hidden (nothing is left to tear down
// through it).
func (s *server) deleteDeployment(c *gin.Context) {
	a := deployment(c)
	ctx := c.Request.Context()
	st, err := s.wf.Update(ctx, a.ID, workflows.UpdateDelete, workflows.Empty{})
	if errors.Is(err, ErrWorkflowNotFound) {
		if err := s.store.MarkDeleted(ctx, a.ID); err != nil {
			s.fail(c, "mark deleted", err)
			return
		}
		d := detailOf(a, nil)
		d.Status, d.Step, d.StateError = workflows.StatusDeleted, workflows.StepDeleted, stateErrorText(err)
		c.JSON(http.StatusOK, d)
		return
	}
	if err != nil {
		s.stepFailure(c, a, err)
		return
	}
	c.JSON(http.StatusOK, detailOf(a, &st))
}
