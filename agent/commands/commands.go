// Package commands is the contract between the platform's deployment steps
// and a server's agent: the command kinds the agent runs author code for
// (install, test, serve, stop, status) and each kind's payload and output,
// carried as protocol.Command.Payload and protocol.Result.Output (JSON).
//
// Payloads hold references and settings, never a secret: a token travels as
// its SHA-256, certificates and keys are files the provider put on the
// server or sealed objects the agent fetches, code is a folder (locally) or
// a sealed object the agent fetches (Fetch). Every path in a payload is
// absolute on the server; on a remote server, whose home the platform does
// not know, a path may start with HomePlaceholder, which the agent replaces
// with its --home.
//
// The package imports nothing of the platform, so both the agent (no
// Temporal, no cloud SDK) and the workers can link it.
package commands

import (
	"encoding/json"
	"time"
)

// HomePlaceholder stands for the remote server's home folder in a payload
// (the agent's --home; /opt/algocloud on an EC2 instance): it is
// bundlelayout.HomePlaceholder, the one live.json.in uses.
const HomePlaceholder = "@ALGOCLOUD_HOME@"

// The command kinds.
const (
	// KindInstall makes a venv for a code revision and pip-installs its
	// requirements, in the sandbox, streaming pip's output as progress.
	KindInstall = "install"
	// KindTest boots a throwaway inference server on an installed revision,
	// sends testing_input_data() through its HTTP API and reports the
	// result. A failing algorithm is an OK result with TestOutput.OK false.
	KindTest = "test"
	// KindServe makes a revision the live one: started when nothing serves,
	// swapped in (no downtime) when another serves, nothing when it already
	// serves. A revision that fails to start never replaces the serving one.
	KindServe = "serve"
	// KindStop drains and stops the live revision.
	KindStop = "stop"
	// KindStatus reports what serves and what starts or drains.
	KindStatus = "status"
)

// Fetch names a sealed object an agent on a remote server (EC2) fetches
// before it runs a command: the code revision, the endpoint's certificate.
// The agent downloads <its --bundle-url>/Object (the deployment's folder of
// the bundle store, so it fetches only its own deployment's objects),
// checks its MAC and decrypts it with the keys its user data gave it (the
// bundle's, bundlelayout.Seal), and unpacks the tar.gz into Into. A name
// under "code/" is content-addressed: once unpacked, it is not fetched
// again. A local agent's commands have none (the code is a folder of the
// same machine).
type Fetch struct {
	// Object is the object's name in the deployment's folder
	// (bundlelayout.CodeObject, bundlelayout.CertObject).
	Object string `json:"object"`
	// Into is the folder it unpacks into, absolute on the server.
	Into string `json:"into"`
	// SHA256, when set (hex), makes Object a public, content-addressed
	// file of the artifacts store instead (the ONNX Runtime library,
	// bundlelayout.ONNXRuntimeObject), not sealed: the agent downloads
	// <its --artifacts-url>/Object, checks this sum and puts the file at
	// Into (a file, not a folder), kept while its sum matches.
	SHA256 string `json:"sha256,omitempty"`
}

// Install is KindInstall's payload.
type Install struct {
	// Fetch is fetched first (the code revision on a remote server).
	Fetch []Fetch `json:"fetch,omitempty"`
	// CodeDir is the revision's code folder (read only to pip).
	CodeDir string `json:"code_dir"`
	// Venv is the folder of the venv to make (system site packages: the
	// server image's numpy and Pillow); one per install revision.
	Venv string `json:"venv"`
	// Requirements are pip requirement strings, already validated.
	Requirements []string `json:"requirements,omitempty"`
	// Sandbox is inferapi/sandbox JSON (sandbox.Config) of the install role
	// (group "<server>.install"): its limits and network.
	Sandbox json.RawMessage `json:"sandbox"`
	// IndexURL, FindLinks and NoIndex are the platform's pip settings
	// (its --pip-index-url, --pip-find-links, --pip-no-index), so the
	// agent installs from where the platform's operator chose; empty:
	// pip's defaults. FindLinks are URLs or folders on the server.
	IndexURL  string   `json:"index_url,omitempty"`
	FindLinks []string `json:"find_links,omitempty"`
	NoIndex   bool     `json:"no_index,omitempty"`
}

// InstallOutput is KindInstall's output.
type InstallOutput struct {
	// Python is the venv's interpreter.
	Python string `json:"python"`
	// Output is the tail of pip's output.
	Output string `json:"output,omitempty"`
	// Failed is true when pip (or a package's build) failed: the author's
	// problem, not retried; Output says why.
	Failed bool `json:"failed,omitempty"`
	// OOMKilled is true when the sandbox's memory limit killed pip.
	OOMKilled bool `json:"oom_killed,omitempty"`
}

// Test is KindTest's payload.
type Test struct {
	// Fetch is fetched first (the code revision on a remote server).
	Fetch []Fetch `json:"fetch,omitempty"`
	// Revision names the test (its log folder): letters, digits, '.', '_', '-'.
	Revision string `json:"revision"`
	// Config is the test server's inference config (inferapi.Config JSON)
	// with its own sandbox group ("<server>.test"); its token is left to
	// the agent, which makes a random one that never leaves it.
	Config json.RawMessage `json:"config"`
	// ReadyTimeout bounds the server's start (its __init__), in seconds.
	ReadyTimeoutSeconds int `json:"ready_timeout_seconds,omitempty"`
}

// TestOutput is KindTest's output: inferapi.SelfTest's result.
type TestOutput struct {
	OK           bool   `json:"ok"`
	Status       int    `json:"status,omitempty"`
	Code         string `json:"code,omitempty"`
	Message      string `json:"message,omitempty"`
	Stage        string `json:"stage,omitempty"`
	Traceback    string `json:"traceback,omitempty"`
	ContentType  string `json:"content_type,omitempty"`
	Summary      string `json:"summary,omitempty"`
	InputSummary string `json:"input_summary,omitempty"`
	DurationMS   int64  `json:"duration_ms,omitempty"`
	// OutputArtifact names the test's output uploaded to the platform as
	// an artifact of the command (see protocol ArtifactPath); empty when
	// the test failed.
	OutputArtifact string `json:"output_artifact,omitempty"`
}

// Serve is KindServe's payload.
type Serve struct {
	// Fetch is fetched first (the code revision and the endpoint's
	// certificate on a remote server).
	Fetch []Fetch `json:"fetch,omitempty"`
	// Revision names the live revision (code revision, install, settings),
	// e.g. "c3-i2-s1": letters, digits, '.', '_', '-'.
	Revision string `json:"revision"`
	// Config is the revision's inference config (inferapi.Config JSON); its
	// listen is ignored (the agent owns the endpoint's socket), its sandbox
	// group is the revision's own ("<server>.live.<revision>"), its token
	// file is TokenFile.
	Config json.RawMessage `json:"config"`
	// TokenSHA256 is the endpoint token's hash, written to the config's
	// token file before the revision starts (a rotation alone rewrites it:
	// the serving revision follows the file).
	TokenSHA256 string `json:"token_sha256"`
}

// ServeOutput is KindServe's and KindStatus's output.
type ServeOutput struct {
	// Serving is the revision that serves, empty when none.
	Serving string `json:"serving,omitempty"`
	// Since is when it started serving.
	Since time.Time `json:"since,omitempty"`
	// Starting and Draining are revisions on their way in and out.
	Starting string   `json:"starting,omitempty"`
	Draining []string `json:"draining,omitempty"`
	// Failed is true when the revision failed to start (its __init__
	// raised, it crashed or hung): the one serving before still serves.
	// Error and Traceback say why.
	Failed    bool   `json:"failed,omitempty"`
	Error     string `json:"error,omitempty"`
	Traceback string `json:"traceback,omitempty"`
}
