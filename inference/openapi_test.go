package inference

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/spec"
)

// TestOpenAPIValid checks the document of every API type with
// openapi-spec-validator, where a Python on this machine has it (the pyenv
// Python here does; Debian's does not, so elsewhere the test skips).
func TestOpenAPIValid(t *testing.T) {
	var py string
	for _, p := range []string{"python3", testPython} {
		if exec.Command(p, "-c", "import openapi_spec_validator").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no Python with openapi_spec_validator")
	}
	dir := t.TempDir()
	var files []string
	for p := range spec.SupportedPairs {
		s, err := NewServer(Config{Name: "x", Listen: "127.0.0.1:0", TokenSHA256: tokenSHA(testToken), CodeDir: dir, Input: p.In, Output: p.Out}, nil)
		require.NoError(t, err)
		b, err := OpenAPIDocument(OpenAPIParams{Name: s.cfg.Name, Input: p.In, Output: p.Out, ServerURL: "https://x.example"})
		require.NoError(t, err)
		f := filepath.Join(dir, string(p.In)+"_"+string(p.Out)+".json")
		require.NoError(t, os.WriteFile(f, b, 0o644))
		files = append(files, f)
	}
	code := "import json, sys\nfrom openapi_spec_validator import validate\nfor f in sys.argv[1:]:\n    validate(json.load(open(f)))\n"
	out, err := exec.Command(py, append([]string{"-c", code}, files...)...).CombinedOutput()
	require.NoError(t, err, strings.TrimSpace(string(out)))
}

// openAPICases are the documents every endpoint kind has: each Python API
// type, the ONNX ones, with and without batching.
func openAPICases() []OpenAPIParams {
	var cases []OpenAPIParams
	for p := range spec.SupportedPairs {
		for _, batch := range []int{0, 8} {
			cases = append(cases, OpenAPIParams{Name: "model-" + string(p.In) + "-" + string(p.Out), Input: p.In, Output: p.Out,
				Environment: spec.EnvPython, ServerURL: "https://127.0.0.1:9443", MaxBatchSize: batch})
		}
	}
	for _, out := range []spec.IOType{spec.Image, spec.JSON} {
		cases = append(cases, OpenAPIParams{Name: "onnx-image-" + string(out), Input: spec.Image, Output: out,
			Environment: spec.EnvONNX, ServerURL: "https://127.0.0.1:9443", MaxBatchSize: 4})
	}
	return cases
}

// TestOpenAPIDocumentKinValidates loads every document with kin-openapi and
// validates it, examples included (example values without value or
// externalValue failed image->image and numpy->numpy).
func TestOpenAPIDocumentKinValidates(t *testing.T) {
	for _, p := range openAPICases() {
		b, err := OpenAPIDocument(p)
		require.NoError(t, err, p.Name)
		doc, err := openapi3.NewLoader().LoadFromData(b)
		require.NoError(t, err, p.Name)
		require.NoError(t, doc.Validate(t.Context(), openapi3.EnableExamplesValidation()), "%s (%s)", p.Name, p.Environment)
		require.Equal(t, p.ServerURL, doc.Servers[0].URL)
		if p.Environment == spec.EnvONNX {
			require.Contains(t, doc.Info.Description, "ONNX Runtime")
		}
	}
}

// TestOpenAPIDocumentNamesItsModel checks that each document names its own
// model, and no other, wherever a model name goes: the title, the v2 paths'
// name parameter (enum and example) and the examples of model metadata,
// readiness, configuration and inference.
func TestOpenAPIDocumentNamesItsModel(t *testing.T) {
	for _, p := range openAPICases() {
		b, err := OpenAPIDocument(p)
		require.NoError(t, err)
		require.NotContains(t, string(b), "otsu", p.Name)
		var doc struct {
			Info  struct{ Title string }
			Paths map[string]map[string]struct {
				Parameters []struct {
					Name    string
					Example any
					Schema  struct{ Enum []string }
				}
				RequestBody struct {
					Content map[string]struct{ Example map[string]any }
				} `json:"requestBody"`
				Responses map[string]struct {
					Content map[string]struct{ Example map[string]any }
				}
			}
		}
		require.NoError(t, json.Unmarshal(b, &doc))
		require.Equal(t, p.Name, doc.Info.Title)
		named := 0
		for path, ops := range doc.Paths {
			for method, op := range ops {
				where := method + " " + path
				for _, par := range op.Parameters {
					if par.Name == "name" {
						require.Equal(t, p.Name, par.Example, where)
						require.Equal(t, []string{p.Name}, par.Schema.Enum, where)
						named++
					}
				}
				for _, key := range []string{"name", "model_name"} {
					if path == "/v2" { // the server's metadata: its name is algocloud's
						break
					}
					if ex := op.Responses["200"].Content["application/json"].Example; ex[key] != nil {
						require.Equal(t, p.Name, ex[key], "%s: example %s", where, key)
						named++
					}
				}
			}
		}
		// infer, metadata, ready and config: each with the parameter; the
		// last three's examples and infer's response example name it too.
		require.Equal(t, 8, named, p.Name)
	}
}

// TestOpenAPIMediaTypeOrder checks the served order of the media types:
// an image input offers image/png, then multipart/form-data, before the base64
// JSON body, since tools default to the first one listed.
func TestOpenAPIMediaTypeOrder(t *testing.T) {
	for _, c := range []struct {
		in   spec.IOType
		want []string
	}{
		{spec.Image, []string{"image/png", "multipart/form-data", "image/jpeg", "application/json", "application/octet-stream"}},
		{spec.Numpy, []string{"multipart/form-data", npyMediaType, "application/octet-stream"}},
		{spec.File, []string{"multipart/form-data", "application/octet-stream", "*/*"}},
	} {
		b, err := OpenAPIDocument(OpenAPIParams{Name: "m", Input: c.in, Output: spec.JSON, ServerURL: "https://x.example"})
		require.NoError(t, err)
		require.Equal(t, c.want, objectKeys(t, b, "paths", "/predict", "post", "requestBody", "content"), string(c.in))
	}
}

// objectKeys is the keys of the object at path in the JSON text b, in the
// order they are written.
func objectKeys(t *testing.T, b []byte, path ...string) []string {
	t.Helper()
	var raw map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(b, &raw))
	for i, k := range path {
		v, ok := raw[k]
		require.True(t, ok, "no %s", strings.Join(path[:i+1], "."))
		if i == len(path)-1 {
			dec := json.NewDecoder(bytes.NewReader(v))
			_, err := dec.Token() // {
			require.NoError(t, err)
			var keys []string
			for dec.More() {
				tok, err := dec.Token()
				require.NoError(t, err)
				keys = append(keys, tok.(string))
				var skip json.RawMessage
				require.NoError(t, dec.Decode(&skip))
			}
			return keys
		}
		raw = nil
		require.NoError(t, json.Unmarshal(v, &raw))
	}
	return nil
}

// TestOpenAPIServedBytes checks that a live server's /openapi.json is
// OpenAPIDocument's bytes for its config, which the platform's clients
// listing offers too.
func TestOpenAPIServedBytes(t *testing.T) {
	ts := startServer(t, t.TempDir(), spec.Image, spec.Image, func(c *Config) { c.Name = "edges"; c.MaxBatchSize = 4 })
	resp, err := ts.Client.Get(ts.URL + "/openapi.json")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	got, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	want, err := OpenAPIDocument(OpenAPIParams{Name: "edges", Input: spec.Image, Output: spec.Image, ServerURL: ts.URL, MaxBatchSize: 4})
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))
}
