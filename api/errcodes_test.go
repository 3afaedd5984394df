package api

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/algocloud/algocloud/api/errcode"
)

// errorCodesDoc is where every error code is documented for people.
const errorCodesDoc = "../docs/api-errors.md"

// TestErrorCodesInOpenAPI checks the Error schema's enum lists exactly the
// registry's codes, and that every code is also named where the document
// describes the answers (a route's response, or the info text), so a client
// author reading one route learns the codes it may answer.
func TestErrorCodesInOpenAPI(t *testing.T) {
	var doc struct {
		Components struct {
			Schemas struct {
				Error struct {
					Properties struct {
						Code struct {
							Enum []string `json:"enum"`
						} `json:"code"`
					} `json:"properties"`
				} `json:"Error"`
			} `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPIDoc, &doc))
	require.Equal(t, errcode.Names(), doc.Components.Schemas.Error.Properties.Code.Enum)

	var all map[string]any
	require.NoError(t, json.Unmarshal(openAPIDoc, &all))
	var texts []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "description" {
					texts = append(texts, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
	described := strings.Join(texts, "\n")
	for _, name := range errcode.Names() {
		require.Regexp(t, `\b`+name+`\b`, described, "no description in api/openapi.json names %s", name)
	}
}

// docRow is a row of the table in docs/api-errors.md: | `code` | status | meaning |.
var docRow = regexp.MustCompile("^\\| `([a-z_]+)` \\| ([0-9]{3}) \\| (.+) \\|$")

// TestErrorCodesDocumented checks docs/api-errors.md's table is the registry:
// every code with its status and meaning, in registry order, and nothing else.
func TestErrorCodesDocumented(t *testing.T) {
	raw, err := os.ReadFile(errorCodesDoc)
	require.NoError(t, err)
	var got []string
	for _, line := range strings.Split(string(raw), "\n") {
		if m := docRow.FindStringSubmatch(line); m != nil {
			got = append(got, line)
		}
	}
	var want []string
	for _, c := range errcode.All() {
		want = append(want, fmt.Sprintf("| `%s` | %d | %s |", c, c.Status(), c.Meaning()))
	}
	require.Equal(t, want, got, "docs/api-errors.md's table should read:\n%s", strings.Join(want, "\n"))
}

// TestNoRawErrorCodes fails when a file of package api spells an error code
// itself instead of naming an errcode.Code: a string literal that is a
// registered code's name (gin.H{"code": "not_found"}, a comparison), or a
// "code" member written anywhere but writeError. With either, a code's
// status would again be decided at a call site.
func TestNoRawErrorCodes(t *testing.T) {
	names := map[string]bool{}
	for _, n := range errcode.Names() {
		names[n] = true
	}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	codeKeys := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		ast.Inspect(f, func(n ast.Node) bool {
			if fn, ok := n.(*ast.FuncDecl); ok && fn.Recv == nil && fn.Name.Name == "writeError" {
				// The one place that writes "code": count it and look no further.
				ast.Inspect(fn, func(n ast.Node) bool {
					if lit, ok := n.(*ast.BasicLit); ok && lit.Value == `"code"` {
						codeKeys++
					}
					return true
				})
				return false
			}
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			v, err := strconv.Unquote(lit.Value)
			require.NoError(t, err)
			pos := fset.Position(lit.Pos())
			require.False(t, names[v], "%s: the error code %q is spelt out; name an errcode.Code", pos, v)
			require.NotEqual(t, "code", v, "%s: an error body's \"code\" is written outside writeError", pos)
			require.NotContains(t, v, `json:"code`, "%s: a struct with a \"code\" member would bypass the registry", pos)
			return true
		})
	}
	require.Equal(t, 1, codeKeys, "writeError writes the body's \"code\" once")
}
