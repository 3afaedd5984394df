package inference

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/api/errcode"
	"github.com/algocloud/algocloud/inference/onnxrt"
	"github.com/algocloud/algocloud/spec"
)

// declaredCodes returns every error code the server answers: the values of
// the Code* string constants of this package and of inferapi (which holds
// those the client side shares), read from the source so none is left out.
func declaredCodes(t *testing.T) map[string]string {
	t.Helper()
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	shared, err := filepath.Glob("inferapi/*.go")
	require.NoError(t, err)
	files = append(files, shared...)
	codes := map[string]string{} // value -> constant
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					require.NoError(t, err)
					require.NotContains(t, codes, v, "%s and %s are one code", codes[v], id.Name)
					codes[v] = id.Name
				}
			}
		}
	}
	require.Greater(t, len(codes), 30)
	return codes
}

// TestCodesSpeltAsPlatform checks that an endpoint's error and the platform
// API's error for the same thing have the same name: a code here that is a
// platform code with bad_ for invalid_ (or the reverse) is the same error
// spelt twice, which clients of both would have to know (bad_json was).
func TestCodesSpeltAsPlatform(t *testing.T) {
	stem := func(code string) string {
		for _, p := range []string{"bad_", "invalid_"} {
			if s, ok := strings.CutPrefix(code, p); ok {
				return s
			}
		}
		return code
	}
	platform := map[string]string{}
	for _, n := range errcode.Names() {
		platform[stem(n)] = n
	}
	var shared []string
	for code, constant := range declaredCodes(t) {
		p, ok := platform[stem(code)]
		if !ok {
			continue
		}
		require.Equal(t, p, code, "%s: the platform API calls this error %s", constant, p)
		shared = append(shared, code)
	}
	sort.Strings(shared)
	require.Equal(t, []string{"body_too_large", "internal", "invalid_json", "invalid_multipart", "method_not_allowed", "not_found", "unauthorized"}, shared)
}

// TestPredictFailedStatusDocumented checks the endpoint's OpenAPI document
// gives predict_failed the statuses the server answers it with: 500 when a
// Python predict raised or ONNX Runtime's Run failed for the batch, and, on
// an ONNX endpoint only, 422 when the pipeline could not process one image
// (its pre- or postprocessing failed for that item alone: onnxValue).
func TestPredictFailedStatusDocumented(t *testing.T) {
	_, err := onnxValue(onnxrt.Result{Err: errors.New("onnxrt: output shape [1 2] has no item 1")})
	var ae *APIError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, http.StatusUnprocessableEntity, ae.Status)
	require.Equal(t, CodePredictFailed, ae.Code)

	for _, pair := range []spec.Pair{{In: spec.Image, Out: spec.Image}, {In: spec.Image, Out: spec.JSON}} {
		raw, err := OpenAPIDocument(OpenAPIParams{Input: pair.In, Output: pair.Out, Environment: spec.EnvONNX, ServerURL: "https://x.example"})
		require.NoError(t, err)
		onnx := predictResponses(t, raw)
		require.Contains(t, onnx["422"], CodePredictFailed, "%s onnx", pair)
		require.Contains(t, onnx["500"], CodePredictFailed, "%s onnx", pair)
		require.NotContains(t, onnx["500"], CodeWorkerCrashed, "%s: an ONNX endpoint has no workers", pair)
		require.NotContains(t, onnx["500"], "Python", "%s: an ONNX endpoint runs no Python", pair)

		raw, err = OpenAPIDocument(OpenAPIParams{Input: pair.In, Output: pair.Out, ServerURL: "https://x.example"})
		require.NoError(t, err)
		python := predictResponses(t, raw)
		require.NotContains(t, python["422"], CodePredictFailed, "%s: a Python endpoint answers predict_failed with 500 only", pair)
		require.Contains(t, python["422"], CodeOutOfMemory, "%s: a Python endpoint's worker may run out of its sandbox's memory", pair)
		require.Contains(t, python["500"], CodePredictFailed, "%s python", pair)
	}
}

// predictResponses returns /predict's responses in an OpenAPI document: each
// status's description.
func predictResponses(t *testing.T, raw []byte) map[string]string {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]struct {
				Description string `json:"description"`
			} `json:"responses"`
		} `json:"paths"`
	}
	require.NoError(t, json.Unmarshal(raw, &doc))
	out := map[string]string{}
	for status, r := range doc.Paths["/predict"]["post"].Responses {
		out[status] = r.Description
	}
	return out
}

// TestErrorCodesInOpenAPI checks the endpoint's OpenAPI document enumerates
// every code the server declares: the Error schema those of errors.go, the
// V2Error schema those and the /v2 ones, for each API type and environment.
func TestErrorCodesInOpenAPI(t *testing.T) {
	var listed []string
	listed = append(listed, errorCodes...)
	listed = append(listed, v2ErrorCodes...)
	declared := declaredCodes(t)
	require.Len(t, listed, len(declared))
	for _, c := range listed {
		require.Contains(t, declared, c, "errorCodes or v2ErrorCodes lists %q twice or a code that is not declared", c)
	}

	for pair := range spec.SupportedPairs {
		envs := []string{spec.EnvPython}
		if pair.In == spec.Image && (pair.Out == spec.Image || pair.Out == spec.JSON) {
			envs = append(envs, spec.EnvONNX)
		}
		for _, env := range envs {
			raw, err := OpenAPIDocument(OpenAPIParams{Input: pair.In, Output: pair.Out, Environment: env, ServerURL: "https://x.example"})
			require.NoError(t, err)
			var doc struct {
				Components struct {
					Schemas map[string]struct {
						Properties struct {
							Code struct {
								Enum []string `json:"enum"`
							} `json:"code"`
						} `json:"properties"`
					} `json:"schemas"`
				} `json:"components"`
			}
			require.NoError(t, json.Unmarshal(raw, &doc))
			require.Equal(t, errorCodes, doc.Components.Schemas["Error"].Properties.Code.Enum, "%s %s", pair, env)
			require.Equal(t, listed, doc.Components.Schemas["V2Error"].Properties.Code.Enum, "%s %s", pair, env)
		}
	}
}

// TestErrorCodesDocumented checks docs/inference-protocol.md names every code
// the server declares.
func TestErrorCodesDocumented(t *testing.T) {
	raw, err := os.ReadFile("../docs/inference-protocol.md")
	require.NoError(t, err)
	for code, constant := range declaredCodes(t) {
		require.Contains(t, string(raw), "`"+code+"`", "docs/inference-protocol.md does not name %s (%s)", code, constant)
	}
}
