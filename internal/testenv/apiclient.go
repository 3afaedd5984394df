package testenv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// apiTimeout bounds one call: steps such as install_requirements run pip
// and may take minutes, and a hung platform must still fail the test.
const apiTimeout = 5 * time.Minute

// APIClient calls the platform's REST API (/api/v1) as one user, with the
// bearer token the CLI and the wizard send. Its methods fail T on transport
// errors and return every answer, whatever its status, for the test to
// check; TryAPI is the form that returns errors instead.
type APIClient struct {
	// T is failed on transport errors.
	T testing.TB
	// Base is the API's base URL (http://127.0.0.1:PORT); a test that
	// restarts the platform on another port points it there.
	Base string
	// Token is the user's API token; empty sends no Authorization header.
	Token string
	// HTTP sends the requests.
	HTTP *http.Client
}

// NewAPIClient is a client of the API at base as the user whose token is
// token.
func NewAPIClient(t testing.TB, base, token string) *APIClient {
	return &APIClient{T: t, Base: base, Token: token, HTTP: &http.Client{Timeout: apiTimeout}}
}

// APIResp is an answer of the API: its status, its body and, when the body
// is a JSON object, that object decoded.
type APIResp struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

// Str is the string at path in the decoded body (keys of nested objects),
// or "" where there is none, so that tests can compare without checking
// each level's type.
func (r APIResp) Str(path ...string) string {
	var v any = r.Body
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// Do sends method path with body encoded as JSON (nil sends none).
func (c *APIClient) Do(method, path string, body any) APIResp {
	c.T.Helper()
	if _, ok := body.(*multipart.Writer); ok {
		c.T.Fatal("use Upload")
	}
	req, err := newAPIRequest(method, c.Base+path, body)
	if err != nil {
		c.T.Fatal(err)
	}
	return c.Send(req)
}

// Send sends req with the client's token and reads the answer.
func (c *APIClient) Send(req *http.Request) APIResp {
	c.T.Helper()
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		c.T.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		c.T.Fatalf("read the answer to %s %s: %v", req.Method, req.URL.Path, err)
	}
	out := APIResp{Status: res.StatusCode, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body) // not every answer is an object
	return out
}

// Upload posts a multipart form with files (field name -> paths on disk).
func (c *APIClient) Upload(path string, files map[string][]string) APIResp {
	c.T.Helper()
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for field, paths := range files {
		for _, p := range paths {
			fw, err := w.CreateFormFile(field, filepath.Base(p))
			if err != nil {
				c.T.Fatal(err)
			}
			b, err := os.ReadFile(p)
			if err != nil {
				c.T.Fatal(err)
			}
			_, _ = fw.Write(b)
		}
	}
	if err := w.Close(); err != nil {
		c.T.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, c.Base+path, &buf)
	if err != nil {
		c.T.Fatal(err)
	}
	req.Header.Set("Content-Type", w.FormDataContentType())
	return c.Send(req)
}

// Step posts the wizard step step of deployment id with body.
func (c *APIClient) Step(id, step string, body any) APIResp {
	c.T.Helper()
	return c.Do(http.MethodPost, "/api/v1/deployments/"+id+"/steps/"+step, body)
}

// TryAPI sends method path to the API at base as token's user, with body
// encoded as JSON (nil sends none), and reads the answer. It returns errors
// instead of failing a test, for goroutines and for calls to a platform
// that a test kills under them.
func TryAPI(base, token, method, path string, body any) (int, []byte, error) {
	req, err := newAPIRequest(method, base+path, body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := (&http.Client{Timeout: apiTimeout}).Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// newAPIRequest is a request with body as JSON, and its Content-Type, or
// with no body when body is nil.
func newAPIRequest(method, url string, body any) (*http.Request, error) {
	var rd io.Reader
	if body != nil {
		js, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode the body of %s %s: %w", method, url, err)
		}
		rd = bytes.NewReader(js)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return req, nil
}
