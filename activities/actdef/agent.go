package actdef

import (
	"context"
	"encoding/json"

	"github.com/algocloud/algocloud/activities/compute"
)

// RunOnServerName is the activity type of agenthub's generic RunOnServer
// (agenthub.ActivityName; a test keeps them equal): the workflows name it by
// string, so they need not link the hub and its store.
const RunOnServerName = "RunOnServer"

// AgentCommand is RunOnServer's input (agenthub.Cmd, field for field: its
// JSON is the same) as the workflows build it from a plan activity's answer.
type AgentCommand struct {
	Server     string
	ID         string
	Kind       string
	Deployment string
	Payload    json.RawMessage
}

// AgentOutcome is RunOnServer's result (agenthub.Outcome): the kind's
// output (agent/commands), as JSON.
type AgentOutcome struct {
	Output json.RawMessage
}

// AgentInstallInput asks PlanAgentInstall for an install command.
type AgentInstallInput struct {
	InstallInput
	// CommandID is the command's ID, chosen by the workflow.
	CommandID string `json:"command_id"`
	// InstallRevision is the revision the install will be: its venv is
	// <server folder>/installs/<InstallRevision>/venv.
	InstallRevision int `json:"install_revision"`
}

// AgentInstallPlan is PlanAgentInstall's answer: the command to run, or
// none (Skip: an ONNX deployment without requirements needs no venv).
type AgentInstallPlan struct {
	Command      AgentCommand `json:"command"`
	Skip         bool         `json:"skip,omitempty"`
	Requirements []string     `json:"requirements"`
}

// AgentTestInput asks PlanAgentTest for a test command.
type AgentTestInput struct {
	Build
	CommandID string `json:"command_id"`
	// Revision names the test's log folder on the server.
	Revision string `json:"revision"`
}

// AgentTestResultInput asks AgentTestResult to turn a test command's
// output into TestInfo (its output artifact into a blob).
type AgentTestResultInput struct {
	DeploymentID    string         `json:"deployment_id"`
	Server          compute.Server `json:"server"`
	CommandID       string         `json:"command_id"`
	CodeRevision    int            `json:"code_revision"`
	InstallRevision int            `json:"install_revision"`
	// Output is the command's commands.TestOutput JSON.
	Output json.RawMessage `json:"output"`
}

// AgentServeInput asks PlanAgentServe for a serve command.
type AgentServeInput struct {
	Build
	CommandID   string `json:"command_id"`
	Revision    string `json:"revision"`
	TokenSHA256 string `json:"token_sha256"`
}

// AgentStopInput asks PlanAgentStop for a stop command.
type AgentStopInput struct {
	DeploymentID string         `json:"deployment_id"`
	Server       compute.Server `json:"server"`
	CommandID    string         `json:"command_id"`
}

// AgentActivities are the activities that plan a step's agent command: each
// makes sure the server's agent runs (the provider restarts it after a
// platform restart) and builds the command's payload with the worker's
// settings (sandbox mode and limits, predict timeout, the platform
// caller's token hash), references only.
type AgentActivities interface {
	PlanAgentInstall(ctx context.Context, in AgentInstallInput) (AgentInstallPlan, error)
	PlanAgentTest(ctx context.Context, in AgentTestInput) (AgentCommand, error)
	AgentTestResult(ctx context.Context, in AgentTestResultInput) (TestInfo, error)
	PlanAgentServe(ctx context.Context, in AgentServeInput) (AgentCommand, error)
	PlanAgentStop(ctx context.Context, in AgentStopInput) (AgentCommand, error)
}

var _ AgentActivities = (*Names)(nil)

// PlanAgentInstall names activities.Activities.PlanAgentInstall.
func (*Names) PlanAgentInstall(context.Context, AgentInstallInput) (AgentInstallPlan, error) {
	panic(ErrNotRunnable)
}

// PlanAgentTest names activities.Activities.PlanAgentTest.
func (*Names) PlanAgentTest(context.Context, AgentTestInput) (AgentCommand, error) {
	panic(ErrNotRunnable)
}

// AgentTestResult names activities.Activities.AgentTestResult.
func (*Names) AgentTestResult(context.Context, AgentTestResultInput) (TestInfo, error) {
	panic(ErrNotRunnable)
}

// PlanAgentServe names activities.Activities.PlanAgentServe.
func (*Names) PlanAgentServe(context.Context, AgentServeInput) (AgentCommand, error) {
	panic(ErrNotRunnable)
}

// PlanAgentStop names activities.Activities.PlanAgentStop.
func (*Names) PlanAgentStop(context.Context, AgentStopInput) (AgentCommand, error) {
	panic(ErrNotRunnable)
}
