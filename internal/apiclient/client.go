// Package apiclient is a small client of algocloud's REST API (package api):
// deployments, wizard steps, code uploads, progress events and generated
// clients, an endpoint's async predictions and batch jobs (jobs.go), plus a
// caller of a deployed endpoint. The algocloud CLI's deploy, predict,
// predictions, batch, logs and ls commands and their tests share it, and so does the
// platform benchmark (bench/platformbench), which walks the wizard with it. It depends on the
// standard library only, never on the platform's server side.
package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultBaseURL is where `algocloud dev` serves the API.
const DefaultBaseURL = "http://127.0.0.1:8080"

// maxErrorBody bounds how much of an error answer is read.
const maxErrorBody = 1 << 20

// Client calls one algocloud API with one API token. It is safe for
// concurrent use.
type Client struct {
	base  *url.URL
	token string
	hc    *http.Client
}

// New returns a client of the API at baseURL (e.g. DefaultBaseURL) that
// authenticates with token. A nil hc uses a client without an overall
// timeout: steps such as install_requirements answer when they are done, so
// bound calls with their contexts.
func New(baseURL, token string, hc *http.Client) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(strings.TrimSpace(baseURL), "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("API URL %q: want http(s)://host[:port]", baseURL)
	}
	if strings.TrimSpace(token) == "" {
		return nil, errors.New("no API token: set ALGOCLOUD_TOKEN (algocloud dev prints one; `algocloud token USER` makes another)")
	}
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{base: u, token: strings.TrimSpace(token), hc: hc}, nil
}

// BaseURL is the API's URL, without a trailing slash.
func (c *Client) BaseURL() string { return c.base.String() }

// Resolve turns a path the API answered (such as "/api/ca.pem") into an
// absolute URL on the API's host; absolute URLs come back unchanged.
func (c *Client) Resolve(ref string) string {
	r, err := url.Parse(ref)
	if err != nil {
		return ref
	}
	return c.base.ResolveReference(r).String()
}

// Error is an error answer of the API, or of an endpoint: JSON {"code",
// "message", ...}. Code is stable; Message is for people.
type Error struct {
	// StatusCode is the HTTP status.
	StatusCode int
	Code       string
	Message    string
	// Step and Status say where the deployment stands (step errors).
	Step   string
	Status string
	// FailedStep is the step that failed (code step_failed).
	FailedStep string
	// Traceback is the algorithm's Python traceback (code test_failed, or an
	// endpoint's predict_failed).
	Traceback string
	// Fields lists invalid fields (validation errors).
	Fields []FieldError
	// Body is the whole answer.
	Body json.RawMessage
}

// FieldError names one invalid field.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("%d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.Step != "" && e.Code != "test_failed" {
		msg += " (the deployment is at step " + e.Step + ")"
	}
	return msg
}

// ErrorCode returns the Code of an *Error in err's chain, "" when there is none.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// readError turns a non-2xx answer into an *Error.
func readError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	e := &Error{StatusCode: resp.StatusCode, Body: body}
	var m struct {
		Code       string       `json:"code"`
		Message    string       `json:"message"`
		Step       string       `json:"step"`
		Status     string       `json:"status"`
		FailedStep string       `json:"failed_step"`
		Traceback  string       `json:"traceback"`
		Fields     []FieldError `json:"fields"`
	}
	if json.Unmarshal(body, &m) == nil && m.Code != "" {
		e.Code, e.Message, e.Step, e.Status, e.FailedStep, e.Traceback, e.Fields =
			m.Code, m.Message, m.Step, m.Status, m.FailedStep, m.Traceback, m.Fields
		return e
	}
	e.Code = "http_" + strconv.Itoa(resp.StatusCode)
	e.Message = strings.TrimSpace(string(body))
	if len(e.Message) > 300 {
		e.Message = e.Message[:300] + "..."
	}
	if e.Message == "" {
		e.Message = http.StatusText(resp.StatusCode)
	}
	return e
}

// newRequest builds a request to path (with its query) on the API.
func (c *Client) newRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL()+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "algocloud-cli")
	return req, nil
}

// send does req and returns the answer when it is 2xx, else an *Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, readError(resp)
	}
	return resp, nil
}

// do sends in (JSON, unless nil) and decodes a JSON answer into out (unless nil).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.newRequest(ctx, method, path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.send(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

func deploymentPath(id string) string { return "/api/v1/deployments/" + url.PathEscape(id) }

// User is who the token belongs to.
type User struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Deployment is a deployment as listed.
type Deployment struct {
	ID               string `json:"id"`
	Name             string `json:"name"`
	Description      string `json:"description"`
	APIName          string `json:"api_name"`
	Step             string `json:"step"`
	Status           string `json:"status"`
	Endpoint         string `json:"endpoint,omitempty"`
	Error            string `json:"error,omitempty"`
	HasEndpointToken bool   `json:"has_endpoint_token"`
	// Serving is what the live endpoint serves; nil when nothing does.
	Serving *ServingRevision `json:"serving,omitempty"`
	// Staged is the working copy when Complete would change what serves;
	// nil when the working copy is what was completed.
	Staged    *StagedRevision `json:"staged,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// ServingRevision is the code revision, commit and install a live endpoint
// serves, since when and where (the API's ServingRevision).
type ServingRevision struct {
	CodeRevision    int       `json:"code_revision"`
	Commit          string    `json:"commit,omitempty"`
	Source          string    `json:"source,omitempty"`
	InstallRevision int       `json:"install_revision"`
	Requirements    []string  `json:"requirements"`
	Since           time.Time `json:"since"`
	Endpoint        string    `json:"endpoint"`
}

// StagedRevision is the working copy waiting for Complete: its code
// revision and commit, its install (0: not installed yet) and its test (the
// API's StagedRevision).
type StagedRevision struct {
	CodeRevision    int    `json:"code_revision"`
	Commit          string `json:"commit,omitempty"`
	InstallRevision int    `json:"install_revision,omitempty"`
	Tested          bool   `json:"tested"`
	TestPassed      bool   `json:"test_passed"`
}

// StepView is one wizard step and whether the deployment is past it.
type StepView struct {
	Name string `json:"name"`
	Done bool   `json:"done"`
}

// DeploymentDetail is one deployment with the workflow's view of it.
type DeploymentDetail struct {
	Deployment
	// Spec is the deployment's configuration (spec.Spec's JSON).
	Spec json.RawMessage `json:"spec,omitempty"`
	// State is the workflow's state (workflows.State's JSON); absent when the
	// workflow did not answer (StateError says why).
	State      json.RawMessage `json:"state,omitempty"`
	StateError string          `json:"state_error,omitempty"`
	NextStep   string          `json:"next_step,omitempty"`
	Steps      []StepView      `json:"steps"`
}

// StepDone reports whether the deployment is past the wizard step name.
func (d DeploymentDetail) StepDone(name string) bool {
	for _, s := range d.Steps {
		if s.Name == name {
			return s.Done
		}
	}
	return false
}

// Completion is Complete Deployment's answer.
type Completion struct {
	DeploymentDetail
	// Token is the endpoint token, present only when this call made it.
	Token     string `json:"token,omitempty"`
	TokenNote string `json:"token_note"`
	// CAURL is where the root that signs the endpoint's certificate is (a
	// path on the API: see Resolve).
	CAURL string `json:"ca_url,omitempty"`
}

// Event is one progress event.
type Event struct {
	ID      int64     `json:"id"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind"`
	Message string    `json:"message"`
}

// EventPage is a page of events; NextAfter continues the list.
type EventPage struct {
	Events    []Event `json:"events"`
	NextAfter int64   `json:"next_after"`
}

// ClientFile is one generated client.
type ClientFile struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Title       string `json:"title"`
	Content     string `json:"content"`
}

// Clients are the generated clients of a deployment's endpoint.
type Clients struct {
	Endpoint string                `json:"endpoint"`
	Input    string                `json:"input"`
	Output   string                `json:"output"`
	Status   string                `json:"status"`
	CAURL    string                `json:"ca_url,omitempty"`
	TokenEnv string                `json:"token_env"`
	Order    []string              `json:"order"`
	Clients  map[string]ClientFile `json:"clients"`
}

// Me returns the token's user.
func (c *Client) Me(ctx context.Context) (User, error) {
	var u User
	return u, c.do(ctx, http.MethodGet, "/api/v1/me", nil, &u)
}

// ListDeployments lists the caller's deployments.
func (c *Client) ListDeployments(ctx context.Context) ([]Deployment, error) {
	var out struct {
		Deployments []Deployment `json:"deployments"`
	}
	return out.Deployments, c.do(ctx, http.MethodGet, "/api/v1/deployments", nil, &out)
}

// GetDeployment returns one of the caller's deployments.
func (c *Client) GetDeployment(ctx context.Context, id string) (DeploymentDetail, error) {
	var d DeploymentDetail
	return d, c.do(ctx, http.MethodGet, deploymentPath(id), nil, &d)
}

// CreateDeployment is the wizard's configure step; spec is a spec.Spec (or its JSON).
func (c *Client) CreateDeployment(ctx context.Context, spec any) (DeploymentDetail, error) {
	var d DeploymentDetail
	return d, c.do(ctx, http.MethodPost, "/api/v1/deployments", spec, &d)
}

// UpdateSpec changes a deployment's configuration.
func (c *Client) UpdateSpec(ctx context.Context, id string, spec any) (DeploymentDetail, error) {
	var d DeploymentDetail
	return d, c.do(ctx, http.MethodPut, deploymentPath(id)+"/spec", spec, &d)
}

// Step runs a wizard step (provision, install_requirements, test, stop,
// start...) with an optional JSON body and waits until it is done. A test
// that ran and failed is an *Error with Code "test_failed" and the Traceback.
func (c *Client) Step(ctx context.Context, id, step string, body any) (DeploymentDetail, error) {
	var d DeploymentDetail
	return d, c.do(ctx, http.MethodPost, deploymentPath(id)+"/steps/"+url.PathEscape(step), body, &d)
}

// DeleteDeployment tears a deployment down (its endpoint, certificate, DNS
// record and instance) and answers when the teardown is done; the answer is
// the deployment in its deleted state.
func (c *Client) DeleteDeployment(ctx context.Context, id string) (DeploymentDetail, error) {
	var d DeploymentDetail
	return d, c.do(ctx, http.MethodDelete, deploymentPath(id), nil, &d)
}

// FetchCodeFromGit runs fetch_code from a Git URL and ref.
func (c *Client) FetchCodeFromGit(ctx context.Context, id, gitURL, ref string) (DeploymentDetail, error) {
	return c.Step(ctx, id, "fetch_code", map[string]string{"git_url": gitURL, "ref": ref})
}

// GitAuth is fetch_code's git_auth: a password or token for an https URL,
// or an SSH deploy key with the known_hosts lines of its server.
type GitAuth struct {
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	SSHPrivateKey string `json:"ssh_private_key,omitempty"`
	KnownHosts    string `json:"known_hosts,omitempty"`
}

// String never shows the secret (a GitAuth printed by mistake stays safe).
func (a GitAuth) String() string { return "git credentials (redacted)" }

// GoString keeps %#v from printing the secret.
func (a GitAuth) GoString() string { return a.String() }

// FetchCodeFromPrivateGit runs fetch_code from a private Git repository;
// the platform seals auth and never shows it back.
func (c *Client) FetchCodeFromPrivateGit(ctx context.Context, id, gitURL, ref string, auth GitAuth) (DeploymentDetail, error) {
	return c.Step(ctx, id, "fetch_code", map[string]any{"git_url": gitURL, "ref": ref, "git_auth": auth})
}

// Upload is one file of a code upload.
type Upload struct {
	// Name is the archive's file name, or an extra file's path in the code
	// folder (e.g. models/net.onnx).
	Name string
	Body io.Reader
}

// FetchCodeUpload runs fetch_code with an uploaded archive (.zip or
// .tar.gz) and extra files, streamed as multipart/form-data.
func (c *Client) FetchCodeUpload(ctx context.Context, id string, archive Upload, files ...Upload) (DeploymentDetail, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		err := writePart(mw, "archive", archive)
		for _, f := range files {
			if err == nil {
				err = writePart(mw, "files", f)
			}
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	req, err := c.newRequest(ctx, http.MethodPost, deploymentPath(id)+"/steps/fetch_code", pr)
	if err != nil {
		pr.Close()
		return DeploymentDetail{}, err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := c.send(req)
	pr.Close() // ends the writer when the server answered early
	if err != nil {
		return DeploymentDetail{}, err
	}
	defer resp.Body.Close()
	var d DeploymentDetail
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return d, fmt.Errorf("fetch_code: decode answer: %w", err)
	}
	return d, nil
}

func writePart(mw *multipart.Writer, field string, u Upload) error {
	w, err := mw.CreateFormFile(field, u.Name)
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, u.Body); err != nil {
		return fmt.Errorf("upload %s: %w", u.Name, err)
	}
	return nil
}

// InstallRequirements runs install_requirements; a non-nil requirementsTxt
// replaces aai_pip-requirements.txt first (Add More Dependencies).
func (c *Client) InstallRequirements(ctx context.Context, id string, requirementsTxt *string) (DeploymentDetail, error) {
	var body any
	if requirementsTxt != nil {
		body = map[string]string{"requirements_txt": *requirementsTxt}
	}
	return c.Step(ctx, id, "install_requirements", body)
}

// Complete is Complete Deployment.
func (c *Client) Complete(ctx context.Context, id string) (Completion, error) {
	var out Completion
	return out, c.do(ctx, http.MethodPost, deploymentPath(id)+"/steps/complete", nil, &out)
}

// Events returns up to limit events with IDs above after, oldest first.
func (c *Client) Events(ctx context.Context, id string, after int64, limit int) (EventPage, error) {
	q := url.Values{"after": {strconv.FormatInt(after, 10)}}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	var p EventPage
	return p, c.do(ctx, http.MethodGet, deploymentPath(id)+"/events?"+q.Encode(), nil, &p)
}

// LastEventID pages through a deployment's events and returns the last one's
// ID (0 when there is none).
func (c *Client) LastEventID(ctx context.Context, id string) (int64, error) {
	var after int64
	for {
		p, err := c.Events(ctx, id, after, 1000)
		if err != nil {
			return after, err
		}
		if len(p.Events) == 0 {
			return after, nil
		}
		after = p.NextAfter
	}
}

// Clients returns the generated clients of a deployment's endpoint.
func (c *Client) Clients(ctx context.Context, id string) (Clients, error) {
	var out Clients
	return out, c.do(ctx, http.MethodGet, deploymentPath(id)+"/clients", nil, &out)
}

// ClientFile downloads one generated client (python, python_example, curl,
// jquery or openapi) and its file name.
func (c *Client) ClientFile(ctx context.Context, id, name string) (filename string, content []byte, err error) {
	req, err := c.newRequest(ctx, http.MethodGet, deploymentPath(id)+"/clients/"+url.PathEscape(name), nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Accept", "*/*")
	resp, err := c.send(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	content, err = io.ReadAll(resp.Body)
	return dispositionFilename(resp.Header.Get("Content-Disposition")), content, err
}

// CARoot downloads the platform CA's root certificate (PEM); an *Error with
// Code not_found when endpoints use publicly trusted certificates.
func (c *Client) CARoot(ctx context.Context) ([]byte, error) {
	req, err := c.newRequest(ctx, http.MethodGet, "/api/ca.pem", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.send(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(io.LimitReader(resp.Body, 1<<20))
}
