// Package actdef is what the workflows and the API know of the activities:
// their names, their inputs' and results' types, and the error types of
// their failures. It is small and links no provider (no AWS SDK, lego or
// ONNX Runtime): the activities themselves (package activities) are linked
// by the worker only. docs/architecture.md, Layering.
package actdef

import (
	"time"

	"github.com/algocloud/algocloud/activities/compute"
	"github.com/algocloud/algocloud/spec"
)

// ProvisionInput asks for a deployment's server.
type ProvisionInput struct {
	DeploymentID string    `json:"deployment_id"`
	OwnerID      string    `json:"owner_id"`
	Spec         spec.Spec `json:"spec"`
	// Agent asks for a server agent on the server, where the provider can
	// run one and the worker is set up for agents (Server.Agent says
	// whether it got one).
	Agent bool `json:"agent,omitempty"`
}

// CertInput asks for the certificate of a deployment's endpoint.
type CertInput struct {
	DeploymentID string         `json:"deployment_id"`
	APIName      string         `json:"api_name"`
	Server       compute.Server `json:"server"`
	// Force issues a new certificate even when the current one is still
	// valid (a renewal); false reuses one valid for 30 more days.
	Force bool `json:"force,omitempty"`
}

// CertInfo locates a deployment's certificate on its server.
type CertInfo struct {
	CertFile string    `json:"cert_file"`
	KeyFile  string    `json:"key_file"`
	Names    []string  `json:"names"`
	NotAfter time.Time `json:"not_after"`
}

// UploadedFile is a file the API staged for the worker: an archive or a model.
// Exactly one of Key and Path is set.
type UploadedFile struct {
	// Key is where the API stored it in the blob store
	// (uploads/<deployment>/<random>/<name>).
	Key string `json:"key,omitempty"`
	// Path is where an older API stored it (inside the platform's upload
	// folder, shared with the worker); histories from before Key carry it.
	Path string `json:"path,omitempty"`
	// Name is the relative path it gets in the code folder.
	Name string `json:"name"`
}

// CodeSource is where code comes from: exactly one of GitURL, Archive or
// Edit. Files are added on top (for an edit: the changed files).
type CodeSource struct {
	GitURL string `json:"git_url,omitempty"`
	Ref    string `json:"ref,omitempty"`
	// Credentials is the blob key of the Git credentials the API sealed
	// (source.CredentialsPrefix/<deployment>/<random>; see source.SealGitCredentials):
	// an opaque reference, so the secret never enters the workflow's
	// history. Empty for a public repository.
	Credentials string         `json:"credentials,omitempty"`
	Archive     *UploadedFile  `json:"archive,omitempty"`
	Files       []UploadedFile `json:"files,omitempty"`
	// Edit makes the new revision from an earlier one with Files replaced
	// (the Integrate page's editor), so nothing else of the author's code,
	// models included, is lost. Histories from before it never carry it.
	Edit *CodeEdit `json:"edit,omitempty"`
}

// CodeEdit names the revision an edit starts from: the current one, as the
// API read it from the state (the workflow refuses an edit of any other, so
// two editors cannot silently undo each other).
type CodeEdit struct {
	Base CodeInfo `json:"base"`
}

// FetchCodeInput fetches code revision Revision into the server.
type FetchCodeInput struct {
	DeploymentID string         `json:"deployment_id"`
	Server       compute.Server `json:"server"`
	Spec         spec.Spec      `json:"spec"`
	Source       CodeSource     `json:"source"`
	Revision     int            `json:"revision"`
}

// CodeInfo describes a fetched code revision.
type CodeInfo struct {
	Revision int    `json:"revision"`
	Dir      string `json:"dir"`
	Source   string `json:"source"` // "git", "upload" or "edit"
	GitURL   string `json:"git_url,omitempty"`
	Ref      string `json:"ref,omitempty"`
	Commit   string `json:"commit,omitempty"`
	// WithCredentials says the clone used Git credentials (never which).
	WithCredentials bool     `json:"with_credentials,omitempty"`
	GeneratedMain   bool     `json:"generated_main"`
	Requirements    []string `json:"requirements"`
	Files           []string `json:"files,omitempty"`
	// BaseRevision is the revision an edit was made from (source "edit"; its
	// Git URL, ref and commit are carried over) and Edited the files it changed.
	BaseRevision int      `json:"base_revision,omitempty"`
	Edited       []string `json:"edited,omitempty"`
	// FilesKey is the blob holding this revision's file listing and its
	// small text files (see CodeFiles), which the API shows without the
	// worker's disk; empty for revisions fetched before it existed.
	FilesKey string `json:"files_key,omitempty"`
}

// InstallInput installs requirements for a code revision into the server's venv.
type InstallInput struct {
	DeploymentID string         `json:"deployment_id"`
	Server       compute.Server `json:"server"`
	Spec         spec.Spec      `json:"spec"`
	Code         CodeInfo       `json:"code"`
	// RequirementsTxt replaces aai_pip-requirements.txt when set.
	RequirementsTxt *string `json:"requirements_txt,omitempty"`
}

// InstallInfo is the outcome of an install.
type InstallInfo struct {
	CodeRevision int      `json:"code_revision"`
	Revision     int      `json:"revision"`
	Python       string   `json:"python"`
	Requirements []string `json:"requirements"`
	Output       string   `json:"output"`
}

// Build is what an inference server runs: a deployment's spec, code revision,
// install and certificate on its server. Test Code and the live endpoint
// both start from one.
type Build struct {
	DeploymentID string         `json:"deployment_id"`
	Server       compute.Server `json:"server"`
	Spec         spec.Spec      `json:"spec"`
	Code         CodeInfo       `json:"code"`
	Install      InstallInfo    `json:"install"`
	Cert         CertInfo       `json:"cert"`
}

// TestInput runs Test Code on a build.
type TestInput struct {
	Build
}

// TestInfo is the result of Test Code: OK, or the error with its traceback.
type TestInfo struct {
	OK              bool      `json:"ok"`
	At              time.Time `json:"at"`
	CodeRevision    int       `json:"code_revision"`
	InstallRevision int       `json:"install_revision"`
	Status          int       `json:"status,omitempty"`
	Code            string    `json:"code,omitempty"`
	Message         string    `json:"message,omitempty"`
	Traceback       string    `json:"traceback,omitempty"`
	ContentType     string    `json:"content_type,omitempty"`
	Summary         string    `json:"summary,omitempty"`
	InputSummary    string    `json:"input_summary,omitempty"`
	// OutputKey is the output's blob (tests/<deployment>/<revision>/<name>);
	// OutputFile is where older workers wrote it on their disk.
	OutputKey  string `json:"output_key,omitempty"`
	OutputFile string `json:"output_file,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// Stage names the part of the run that failed, which Message starts by
	// naming too ("import of aai_main.py failed: ModuleNotFoundError: ..."):
	// inferapi.StageImport, StageClass, StageInit, StageTestInput,
	// StagePredict, StageOutput or StageTestInputOutput; empty when the test
	// passed or the server could not tell (the worker died).
	Stage string `json:"stage,omitempty"`
	// Unsandboxed is set when the code ran without a sandbox (the platform
	// was started with --sandbox=none); Warning then says so.
	Unsandboxed bool   `json:"unsandboxed,omitempty"`
	Warning     string `json:"warning,omitempty"`
}

// ServiceInput (re)starts the live endpoint for a build.
type ServiceInput struct {
	Build
	TokenSHA256 string `json:"token_sha256"`
}

// ServiceInfo describes the live endpoint.
type ServiceInfo struct {
	Handle       compute.Handle `json:"handle"`
	Endpoint     string         `json:"endpoint"`
	CodeRevision int            `json:"code_revision"`
	Since        time.Time      `json:"since"`
}

// StateRecord projects a deployment's state into the store (listing, restarts).
type StateRecord struct {
	DeploymentID string `json:"deployment_id"`
	Step         string `json:"step"`
	Status       string `json:"status"`
	Endpoint     string `json:"endpoint"`
	Error        string `json:"error"`
	// Serving and Staged are workflows.State.ServingAndStaged(), so a
	// listing shows what serves and what waits without querying each
	// workflow; nil clears the row's (nothing serves, nothing is staged).
	Serving *ServingRevision `json:"serving,omitempty"`
	Staged  *StagedRevision  `json:"staged,omitempty"`
}

// ServingRevision is what a live endpoint serves: the code revision (and its
// Git commit and source), the install (its revision and requirements), since
// when and where. The API, wizard and CLI show it as a deployment's
// "serving"; it is derived from the Deployment workflow's state.
type ServingRevision struct {
	CodeRevision    int       `json:"code_revision"`
	Commit          string    `json:"commit,omitempty"`
	Source          string    `json:"source,omitempty"`
	InstallRevision int       `json:"install_revision"`
	Requirements    []string  `json:"requirements"`
	Since           time.Time `json:"since"`
	Endpoint        string    `json:"endpoint"`
}

// StagedRevision is the working copy when Complete would change what is
// served: its code revision and commit, the install made for that code (0:
// none yet) and whether Test Code ran, and passed, on exactly that code and
// install under the current spec.
type StagedRevision struct {
	CodeRevision    int    `json:"code_revision"`
	Commit          string `json:"commit,omitempty"`
	InstallRevision int    `json:"install_revision,omitempty"`
	Tested          bool   `json:"tested"`
	TestPassed      bool   `json:"test_passed"`
}
