// Package workflows holds the Deployment workflow: one long-lived workflow per
// algorithm whose wizard steps arrive as Temporal Updates (validated, so a
// rejected step leaves no history) and whose state is read with a query.
package workflows

import (
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"

	"github.com/algocloud/algocloud/activities/actdef"
)

// TaskQueue is where deployment workflows and their activities run.
const TaskQueue = "algocloud-deployments"

// Update, query and signal names: the wizard's messages.
const (
	UpdateConfigure = "configure"
	UpdateProvision = "provision"
	UpdateFetchCode = "fetch_code"
	UpdateInstall   = "install_requirements"
	UpdateTest      = "test"
	UpdateComplete  = "complete"
	UpdateStop      = "stop"
	UpdateStart     = "start"
	UpdateDelete    = "delete"
	// UpdateRotateToken replaces the endpoint token's hash (RotateTokenRequest).
	UpdateRotateToken = "rotate_token"
	QueryState        = "state"
	// SignalReconcile asks a live deployment to make sure its endpoint runs
	// (sent by workers when they start, so a platform restart brings endpoints back).
	SignalReconcile = "reconcile"
)

// Steps lists the wizard's step updates in the order the wizard runs them
// (configure comes before them; the Step* constants say how far one has come).
var Steps = []string{UpdateProvision, UpdateFetchCode, UpdateInstall, UpdateTest, UpdateComplete}

// Step values of State.Step: how far the working copy has come.
const (
	StepConfigured  = "configured"
	StepProvisioned = "provisioned"
	StepCodeFetched = "code_fetched"
	StepInstalled   = "requirements_installed"
	StepTested      = "tested"
	StepCompleted   = "completed"
	StepDeleted     = "deleted"
)

// Status values of State.Status: what the endpoint is doing.
const (
	StatusDraft    = "draft"    // never completed: nothing is served
	StatusLive     = "live"     // the endpoint answers
	StatusStopped  = "stopped"  // completed once, stopped by the owner
	StatusDeleting = "deleting" // teardown running
	StatusDeleted  = "deleted"
)

// WorkflowID is the workflow ID of a deployment.
func WorkflowID(deploymentID string) string { return "deployment-" + deploymentID }

// Input starts a Deployment workflow (the wizard's configure step).
type Input struct {
	DeploymentID string    `json:"deployment_id"`
	OwnerID      string    `json:"owner_id"`
	Spec         spec.Spec `json:"spec"`
	// State carries everything over a continue-as-new; nil on first start.
	State *State `json:"state,omitempty"`
}

// ConfigureRequest changes a deployment's spec. The API name cannot change.
type ConfigureRequest struct {
	Spec spec.Spec `json:"spec"`
}

// FetchCodeRequest is the Code Repo Integration step: Git or an uploaded archive,
// plus extra files (models) the API put in the blob store (UploadedFile.Key;
// histories from before it carry UploadedFile.Path on a shared disk).
type FetchCodeRequest = actdef.CodeSource

// InstallRequest installs the requirements. RequirementsTxt, when set, replaces
// aai_pip-requirements.txt first (the Add More Dependencies page).
type InstallRequest struct {
	RequirementsTxt *string `json:"requirements_txt,omitempty"`
}

// TestRequest is Test Code.
type TestRequest struct{}

// CompleteRequest is Complete Deployment. TokenSHA256 is the hash of the
// endpoint's token (the API makes the token and shows it once); empty keeps
// the current one.
type CompleteRequest struct {
	TokenSHA256 string `json:"token_sha256,omitempty"`
}

// RotateTokenRequest replaces the endpoint token: TokenSHA256 is the new
// token's hash (64 lowercase hex digits; the API makes the token and shows
// it once). A live endpoint refuses the old token once the update returns;
// a stopped or draft deployment uses the new one when it next starts.
type RotateTokenRequest struct {
	TokenSHA256 string `json:"token_sha256"`
}

// Empty is the request of stop, start and delete.
type Empty struct{}

// State is what the state query returns.
type State struct {
	DeploymentID string          `json:"deployment_id"`
	OwnerID      string          `json:"owner_id"`
	Spec         spec.Spec       `json:"spec"`
	Step         string          `json:"step"`
	Status       string          `json:"status"`
	Busy         string          `json:"busy,omitempty"`
	Server       *compute.Server `json:"server,omitempty"`
	// Servers are the deployment's servers (changeServerAgent): today the
	// one Server; agent commands address one of them, so replicas can
	// join the list without a new design.
	Servers []compute.Server `json:"servers,omitempty"`
	// AgentCommands counts the agent commands the deployment issued; each
	// command's ID holds it, so a step run again gets a new ID.
	AgentCommands int                 `json:"agent_commands,omitempty"`
	Cert          *actdef.CertInfo    `json:"cert,omitempty"`
	DNS           *actdef.DNSRecord   `json:"dns,omitempty"` // when the platform manages DNS
	Code          *actdef.CodeInfo    `json:"code,omitempty"`
	Install       *actdef.InstallInfo `json:"install,omitempty"`
	Test          *actdef.TestInfo    `json:"test,omitempty"`
	Live          *actdef.ServiceInfo `json:"live,omitempty"`
	// Serving is what the live endpoint runs: the spec, code and install that
	// were completed (the working copy may have moved on).
	Serving   *Serving   `json:"serving,omitempty"`
	LastError *StepError `json:"last_error,omitempty"`
	// TokenSHA256 is the endpoint token's hash (not secret; the API omits it).
	TokenSHA256 string       `json:"token_sha256,omitempty"`
	History     []StepRecord `json:"history"`
	Revisions   int          `json:"revisions"`
	UpdatedAt   time.Time    `json:"updated_at"`
}

// Serving is the completed configuration an endpoint serves.
type Serving struct {
	Spec    spec.Spec          `json:"spec"`
	Code    actdef.CodeInfo    `json:"code"`
	Install actdef.InstallInfo `json:"install"`
}

// StepError is the last step failure, kept until that step succeeds.
type StepError struct {
	Step    string    `json:"step"`
	Message string    `json:"message"`
	At      time.Time `json:"at"`
}

// StepRecord is one finished step, newest last (bounded).
type StepRecord struct {
	Step     string    `json:"step"`
	OK       bool      `json:"ok"`
	At       time.Time `json:"at"`
	Duration string    `json:"duration"`
	Message  string    `json:"message,omitempty"`
}
