// Package errcode is the registry of the platform API's error codes: each
// Code is one kind of error answer, with the stable snake_case name clients
// branch on (the body's "code"), the HTTP status it is answered with and a
// one-line meaning. Package api names only a Code where it answers an error,
// so a code's status is decided here, once; api/openapi.json's Error schema
// lists every name (enum) and docs/api-errors.md every code with its status
// and meaning, both kept in step with this table by package api's tests.
//
// The endpoints' inference server (package inference) has its own codes;
// the names both sides use (unauthorized, not_found, method_not_allowed,
// body_too_large, invalid_json, invalid_multipart, internal) are spelt alike.
package errcode

import "net/http"

// Code is one kind of error answer of the platform API. Its String is the
// name in the body's "code"; names never change meaning once released.
// Two Codes may share a name when one condition is answered with a different
// status by different methods (NoCode, NoCodeToEdit): the name stays what
// clients branch on, the status follows the method.
type Code uint8

// The platform API's error codes, in the order docs/api-errors.md lists them.
const (
	invalidCode Code = iota // the zero Code: never answered

	// Requests that are malformed or invalid (400).

	InvalidJSON         // invalid_json
	UnknownField        // unknown_field
	InvalidField        // invalid_field
	InvalidMultipart    // invalid_multipart
	InvalidInput        // invalid_input
	InvalidHeader       // invalid_header
	InvalidQuery        // invalid_query
	InvalidPath         // invalid_path
	InvalidRequest      // invalid_request
	InvalidSpec         // invalid_spec
	InvalidRequirements // invalid_requirements
	InvalidCodeSource   // invalid_code_source
	InvalidGitAuth      // invalid_git_auth
	InvalidArchive      // invalid_archive
	InvalidFileName     // invalid_file_name
	UnsupportedType     // unsupported_type
	InvalidBatch        // invalid_batch
	AgentProtocol       // agent_protocol_version
	InvalidArtifactName // invalid_artifact_name
	InvalidWebhook      // invalid_webhook

	// Authentication, routing and size (401, 404, 405, 413).

	Unauthorized     // unauthorized
	NotFound         // not_found
	WorkflowNotFound // workflow_not_found
	UnknownStep      // unknown_step
	NoCode           // no_code (404)
	FileNotFound     // file_not_found
	NoTestOutput     // no_test_output
	MethodNotAllowed // method_not_allowed
	BodyTooLarge     // body_too_large
	PayloadTooLarge  // payload_too_large

	// The server agents' channel refusing an agent (403, 404, 409).

	AgentForbidden       // agent_forbidden
	AgentCommandNotFound // agent_command_not_found
	AgentStaleLease      // agent_stale_lease
	AgentCommandDone     // agent_command_done

	// The deployment's state does not allow the request (409).

	APINameTaken // api_name_taken
	StepRejected // step_rejected
	NoOutput     // no_output
	NoCodeToEdit // no_code (409)
	CodeChanged  // code_changed
	CodeNotKept  // code_not_kept
	NoEndpoint   // no_endpoint

	// Too many requests (429).

	TooManyJobs // too_many_jobs

	// The request was understood and ran, and failed (422).

	StepFailed      // step_failed
	TestFailed      // test_failed
	FileNotViewable // file_not_viewable

	// The server (500) or what it depends on (503).

	Internal               // internal
	TemporalUnavailable    // temporal_unavailable
	PredictionsUnavailable // predictions_unavailable
	BlobsUnavailable       // blobs_unavailable
	UploadsUnavailable     // uploads_unavailable
	CredentialsUnavailable // credentials_unavailable
	SkeletonUnavailable    // skeleton_unavailable
	BatchesUnavailable     // batches_unavailable

	numCodes // the count of Codes, invalidCode included
)

// entry is a Code's row of the registry.
type entry struct {
	name    string
	status  int
	meaning string
}

// registry holds every Code's name, status and meaning, indexed by Code.
var registry = [numCodes]entry{
	invalidCode: {"", http.StatusInternalServerError, ""},

	InvalidJSON:         {"invalid_json", http.StatusBadRequest, "the body is not one JSON value of the kind the route takes: empty, malformed, or data after the value"},
	UnknownField:        {"unknown_field", http.StatusBadRequest, "the body or form has a field the route does not take (fields names it)"},
	InvalidField:        {"invalid_field", http.StatusBadRequest, "a field has the wrong JSON type, e.g. a string where a number is due (fields names it)"},
	InvalidMultipart:    {"invalid_multipart", http.StatusBadRequest, "the multipart/form-data body is malformed or has too many parts"},
	InvalidInput:        {"invalid_input", http.StatusBadRequest, "a prediction's input is missing, not of the endpoint's input type, a malformed data URI, or a URL the URL policy refuses (fields names it)"},
	InvalidHeader:       {"invalid_header", http.StatusBadRequest, "a header is malformed: Prefer: wait=N outside 1..60, an Idempotency-Key over 255 bytes (fields names it)"},
	InvalidQuery:        {"invalid_query", http.StatusBadRequest, "a query parameter is missing or out of range (fields names it)"},
	InvalidPath:         {"invalid_path", http.StatusBadRequest, "?path= is missing or is not a safe relative path of the code folder"},
	InvalidRequest:      {"invalid_request", http.StatusBadRequest, "an API token's name is missing or over 100 characters (fields names it)"},
	InvalidSpec:         {"invalid_spec", http.StatusBadRequest, "the deployment's spec is invalid (fields names every invalid field)"},
	InvalidRequirements: {"invalid_requirements", http.StatusBadRequest, "requirements_txt is too large or not a valid pip requirements file"},
	InvalidCodeSource:   {"invalid_code_source", http.StatusBadRequest, "fetch_code's source is not exactly one of git_url and archive, or an edit's base_revision or files are wrong"},
	InvalidGitAuth:      {"invalid_git_auth", http.StatusBadRequest, "git_auth is invalid, too large or sent with an archive (never echoes the values)"},
	InvalidArchive:      {"invalid_archive", http.StatusBadRequest, "the uploaded archive is not a .zip or .tar.gz"},
	InvalidFileName:     {"invalid_file_name", http.StatusBadRequest, "a files part has no filename or one that is not a safe relative path"},
	UnsupportedType:     {"unsupported_type", http.StatusBadRequest, "no skeleton for this ?input=, ?output= and ?environment="},
	InvalidBatch:        {"invalid_batch", http.StatusBadRequest, "a batch's inputs are missing or refused: an archive member that is a link, absolute or has .., a URL malformed or refused by the URL policy, an S3 prefix malformed, refused by the URL policy or by S3 with S3's reason (fields names it: archive, urls[i], input.s3, output.s3 or one of their fields; member names the archive member)"},
	AgentProtocol:       {"agent_protocol_version", http.StatusBadRequest, "a server agent spoke a protocol version (header Algocloud-Agent-Protocol) this platform does not"},
	InvalidArtifactName: {"invalid_artifact_name", http.StatusBadRequest, "a server agent uploaded an artifact whose name is not 1 to 64 letters, digits, '.', '_' or '-' (fields names it)"},
	InvalidWebhook:      {"invalid_webhook", http.StatusBadRequest, "a webhook URL is malformed, carries credentials, or is refused by the webhook URL policy (loopback, private, metadata addresses; fields names it)"},

	Unauthorized:     {"unauthorized", http.StatusUnauthorized, "no API token, or an unknown or revoked one (on /api/agent/v1: no server credential, or an unknown or replaced one)"},
	NotFound:         {"not_found", http.StatusNotFound, "no such route, deployment (another user's too), client or local CA"},
	WorkflowNotFound: {"workflow_not_found", http.StatusNotFound, "the deployment's workflow no longer runs; delete the deployment and create it again"},
	UnknownStep:      {"unknown_step", http.StatusNotFound, "no wizard step of that name (valid_steps lists them)"},
	NoCode:           {"no_code", http.StatusNotFound, "the deployment has no code yet to list or show: fetch code first"},
	FileNotFound:     {"file_not_found", http.StatusNotFound, "the current code revision has no file at ?path="},
	NoTestOutput:     {"no_test_output", http.StatusNotFound, "no output of a Test Code run to show, or it is gone"},
	MethodNotAllowed: {"method_not_allowed", http.StatusMethodNotAllowed, "the route exists but not with this method"},
	BodyTooLarge:     {"body_too_large", http.StatusRequestEntityTooLarge, "the request body is over the route's limit"},
	PayloadTooLarge:  {"payload_too_large", http.StatusRequestEntityTooLarge, "a job's input is over a limit: a prediction's input, a batch archive's member, its total or its item count (fields and member name it)"},

	AgentForbidden:       {"agent_forbidden", http.StatusForbidden, "a server agent's credential is for another server than the path's, or the command is another server's"},
	AgentCommandNotFound: {"agent_command_not_found", http.StatusNotFound, "a server agent named a command the platform never issued (a forged command ID)"},
	AgentStaleLease:      {"agent_stale_lease", http.StatusConflict, "a server agent's progress or result carries a lease that is not the command's current hand-out (late, replayed or forged); the command comes back under a new lease if still wanted"},
	AgentCommandDone:     {"agent_command_done", http.StatusConflict, "a server agent posted a result for a command already completed with a different result (the same result again is acknowledged with duplicate: true)"},

	APINameTaken: {"api_name_taken", http.StatusConflict, "another live deployment has this api_name"},
	StepRejected: {"step_rejected", http.StatusConflict, "the workflow refused the step now: out of order, another step running, or the deployment deleted"},
	NoOutput:     {"no_output", http.StatusConflict, "the prediction has no output to download: not succeeded, or its retention ended (expired says so); or the batch wrote its outputs to an S3 prefix, not to a zip (output names it)"},
	NoCodeToEdit: {"no_code", http.StatusConflict, "an edit (base_revision) of a deployment that has no code yet: fetch code first"},
	CodeChanged:  {"code_changed", http.StatusConflict, "an edit's base_revision is no longer the current revision (current_revision says which is)"},
	CodeNotKept:  {"code_not_kept", http.StatusConflict, "the platform kept no copy of this revision's files (fetched before it did, or gone): fetch again"},
	NoEndpoint:   {"no_endpoint", http.StatusConflict, "the deployment has no endpoint (not completed yet, or being deleted), so no clients"},

	TooManyJobs: {"too_many_jobs", http.StatusTooManyRequests, "the user has as many predictions or batches queued or running as allowed; Retry-After says when to try again"},

	StepFailed:      {"step_failed", http.StatusUnprocessableEntity, "the step ran and failed (failed_step, the message and its details say why); it can be retried"},
	TestFailed:      {"test_failed", http.StatusUnprocessableEntity, "Test Code ran the algorithm and it failed (traceback and test say how)"},
	FileNotViewable: {"file_not_viewable", http.StatusUnprocessableEntity, "the file is listed only: binary or over 256 KiB"},

	Internal:               {"internal", http.StatusInternalServerError, "a bug in the platform; it has been logged"},
	TemporalUnavailable:    {"temporal_unavailable", http.StatusServiceUnavailable, "the workflow service did not answer, or a deployment's workflow could not start; try again shortly"},
	PredictionsUnavailable: {"predictions_unavailable", http.StatusServiceUnavailable, "this server runs no async predictions (no blob store or workflow service)"},
	BlobsUnavailable:       {"blobs_unavailable", http.StatusServiceUnavailable, "this server has no blob store to read a code revision's files from"},
	UploadsUnavailable:     {"uploads_unavailable", http.StatusServiceUnavailable, "this server has no blob store for uploads: fetch code from Git instead"},
	CredentialsUnavailable: {"credentials_unavailable", http.StatusServiceUnavailable, "this server has no blob store or key to keep Git credentials in"},
	SkeletonUnavailable:    {"skeleton_unavailable", http.StatusServiceUnavailable, "this server cannot generate skeletons"},
	BatchesUnavailable:     {"batches_unavailable", http.StatusServiceUnavailable, "this server runs no batch jobs (no blob store or workflow service)"},
}

// String returns the code's name, the body's "code".
func (c Code) String() string {
	if c >= numCodes {
		return ""
	}
	return registry[c].name
}

// Status returns the HTTP status the code is answered with; 500 for a Code
// outside the registry, which is a bug.
func (c Code) Status() int {
	if c == invalidCode || c >= numCodes {
		return http.StatusInternalServerError
	}
	return registry[c].status
}

// Meaning says in one line what the code tells a client.
func (c Code) Meaning() string {
	if c >= numCodes {
		return ""
	}
	return registry[c].meaning
}

// MarshalText encodes the code as its name, so that a Code in a JSON body is
// what clients read, never its number.
func (c Code) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// All returns every Code, in registry order.
func All() []Code {
	all := make([]Code, 0, numCodes-1)
	for c := invalidCode + 1; c < numCodes; c++ {
		all = append(all, c)
	}
	return all
}

// Names returns every distinct code name, in registry order: what the
// OpenAPI document's enum lists.
func Names() []string {
	var names []string
	seen := map[string]bool{}
	for _, c := range All() {
		if n := c.String(); !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	return names
}
