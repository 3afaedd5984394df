// Package compute defines where an algorithm's inference server runs. A Provider
// provisions a server for a deployment and starts, checks and stops inference
// services on it. The local provider (compute/local) runs them as processes on
// this machine; the EC2 provider (compute/ec2) runs each on an instance of its
// own, behind the same interface.
package compute

import (
	"context"
	"errors"
)

// ServerSpec asks for a server for one deployment.
type ServerSpec struct {
	// DeploymentID identifies the deployment; providers derive idempotency keys
	// (EC2 ClientToken, local folder names) from it, so a retried Provision
	// re-attaches instead of creating a second server.
	DeploymentID string `json:"deployment_id"`
	Owner        string `json:"owner"`
	APIName      string `json:"api_name"`
	Compute      string `json:"compute"`
	InstanceType string `json:"instance_type"`
	Region       string `json:"region"`
	// Agent asks for a server that runs a server agent, where the provider
	// can give it one (the EC2 provider with its Agent option; the local
	// provider's agent is started by the activities).
	Agent bool `json:"agent,omitempty"`
}

// Server is a provisioned server. It is serialisable (it lives in workflow state)
// so that any worker can act on it after a restart.
type Server struct {
	Provider string `json:"provider"`
	ID       string `json:"id"`
	// Host is the address clients dial (an IP or a name).
	Host string `json:"host"`
	// Port is the endpoint port reserved for the live service.
	Port int `json:"port"`
	// Workdir is the server's folder (local provider) holding code, venv and certs.
	Workdir string `json:"workdir"`
	// Agent is true when the server runs a server agent (algocloud-infer
	// agent): the deployment's steps then run author code there through
	// agent commands (agenthub.RunOnServer), never on the worker.
	// Servers provisioned before agents existed, and EC2 servers of a
	// platform without EC2 agents, leave it false and keep the worker's
	// path.
	Agent bool `json:"agent,omitempty"`
	// AgentID is the server ID the agent's commands and credential are
	// scoped to when it is not ID (an EC2 instance's agent is named after
	// its deployment: its credential is minted before the instance ID
	// exists); see AgentServer.
	AgentID string `json:"agent_id,omitempty"`
}

// AgentServer is the ID the server's agent is addressed by: AgentID, or ID.
func (s Server) AgentServer() string {
	if s.AgentID != "" {
		return s.AgentID
	}
	return s.ID
}

// ServiceSpec describes an inference service to run on a server.
type ServiceSpec struct {
	Server Server `json:"server"`
	// Name tells services on one server apart: "live" or "test".
	Name string `json:"name"`
	// Port to listen on; 0 lets the provider pick a free one.
	Port int `json:"port"`
	// ConfigFile is the inference server's JSON config (see inferapi.Config).
	ConfigFile string `json:"config_file"`
	// Restart keeps the service running: the provider restarts it when it dies.
	Restart bool `json:"restart"`
	// Args, when set, replace the provider's "--config <ConfigFile>"
	// arguments (a service that is not an inference server: the server's
	// agent). ConfigFile still names the service's identity file and must
	// be one of Args (a pid is re-adopted only when its command line holds
	// it); the provider then leaves that file as it is (no "listen").
	Args []string `json:"args,omitempty"`
}

// Handle identifies a running service. It is serialisable, and Start with the
// same ServiceSpec returns the same Handle while the service runs.
type Handle struct {
	Provider string `json:"provider"`
	ServerID string `json:"server_id"`
	Name     string `json:"name"`
	// Address is host:port of the service.
	Address string `json:"address"`
	PID     int    `json:"pid,omitempty"`
}

// State of a service.
type State string

// Service states.
const (
	Running State = "running"
	Exited  State = "exited"
	Unknown State = "unknown"
)

// Status reports a service's state.
type Status struct {
	State    State  `json:"state"`
	Restarts int    `json:"restarts"`
	Detail   string `json:"detail,omitempty"`
}

// ErrNotFound is returned for a server or service the provider does not know.
var ErrNotFound = errors.New("compute: not found")

// Provider provisions servers and runs inference services on them.
//
// Every method may be called concurrently and is idempotent: Provision with the
// same DeploymentID returns the same Server, Start with the same server and
// name re-attaches to a running service, Stop and Release on something already
// gone return nil. Cancelling ctx abandons the wait, not the work already asked
// of the cloud: a retry re-attaches. Errors wrap ErrNotFound where it applies;
// permanent failures (invalid instance type, quota) are *PermanentError.
type Provider interface {
	Provision(ctx context.Context, spec ServerSpec) (Server, error)
	Start(ctx context.Context, spec ServiceSpec) (Handle, error)
	Status(ctx context.Context, h Handle) (Status, error)
	Stop(ctx context.Context, h Handle) error
	Release(ctx context.Context, s Server) error
}

// Sweeper is an optional Provider capability: Sweep removes everything the
// provider made for a deployment that it can find by the deployment ID
// alone (servers, their security groups, their folders), for a deployment
// whose Server was never recorded (a Provision whose instance was launched
// but whose answer was lost, then every later attempt failing). It waits
// until what it removes is gone, respecting ctx, and is idempotent: finding
// nothing returns nil. Like Release it never touches what the provider did
// not make; invalid deployment IDs are *PermanentError.
type Sweeper interface {
	Sweep(ctx context.Context, deploymentID string) error
}

// PermanentError marks a failure that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }
